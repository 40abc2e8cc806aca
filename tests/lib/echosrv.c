/* A single-threaded epoll echo server that knows its peers by port:
 * see echosrv.h. */
#include "echosrv.h"

#include "hostnet.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uthash.h>

#define ES_BUF 65536
#define ES_EVENTS 64

struct es_conn {
    int port; /* hash key: the peer's port */
    int fd;   /* -1 once closed */
    char *buf;
    size_t pend_off, pend_len; /* read but not yet echoed */
    struct es_conn_info info;
    UT_hash_handle hh;
};

struct es_server {
    int listen_fd, ep, stop_fd;
    uint16_t port;
    pthread_t thread;
    pthread_mutex_t lock; /* conns, counts */
    pthread_cond_t changed;
    struct es_conn *conns;
    size_t accepted, closed;
};

static void conn_close(struct es_server *s, struct es_conn *c, int err)
{
    epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->info.closed = true;
    c->info.err = err;
    s->closed++;
    pthread_cond_broadcast(&s->changed);
}

static void conn_watch(struct es_server *s, struct es_conn *c, uint32_t ev)
{
    struct epoll_event e = { .events = ev, .data.ptr = c };
    epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &e);
}

/* Echo what is pending; true if all of it went (else wait for EPOLLOUT). */
static bool conn_flush(struct es_server *s, struct es_conn *c)
{
    while (c->pend_len > 0) {
        ssize_t n = send(c->fd, c->buf + c->pend_off, c->pend_len,
                         MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) {
            conn_watch(s, c, EPOLLOUT);
            return false;
        }
        if (n < 0) {
            conn_close(s, c, errno);
            return false;
        }
        c->pend_off += (size_t)n;
        c->pend_len -= (size_t)n;
    }
    return true;
}

static void conn_readable(struct es_server *s, struct es_conn *c)
{
    ssize_t n = recv(c->fd, c->buf, ES_BUF, 0);
    if (n < 0 && errno == EAGAIN)
        return;
    if (n <= 0) {
        conn_close(s, c, n < 0 ? errno : 0);
        return;
    }
    c->info.bytes += (uint64_t)n;
    c->pend_off = 0;
    c->pend_len = (size_t)n;
    conn_flush(s, c);
}

static void conn_event(struct es_server *s, struct es_conn *c, uint32_t ev)
{
    if (c->pend_len > 0) {
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP) && conn_flush(s, c))
            conn_watch(s, c, EPOLLIN);
        return;
    }
    conn_readable(s, c);
}

static void accept_all(struct es_server *s)
{
    for (;;) {
        struct sockaddr_in peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(s->listen_fd, (struct sockaddr *)&peer, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct es_conn *c = calloc(1, sizeof(*c));
        char *buf = malloc(ES_BUF);
        if (!c || !buf)
            abort();
        c->port = ntohs(peer.sin_port);
        c->fd = fd;
        c->buf = buf;
        struct es_conn *old;
        HASH_FIND_INT(s->conns, &c->port, old);
        if (old) { /* a port reused after its first connection closed */
            HASH_DEL(s->conns, old);
            free(old);
        }
        HASH_ADD_INT(s->conns, port, c);
        struct epoll_event e = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &e) < 0)
            abort();
        s->accepted++;
        pthread_cond_broadcast(&s->changed);
    }
}

static void *serve(void *arg)
{
    struct es_server *s = arg;
    struct epoll_event ev[ES_EVENTS];
    for (;;) {
        int n = epoll_wait(s->ep, ev, ES_EVENTS, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            abort();
        pthread_mutex_lock(&s->lock);
        for (int i = 0; i < n; i++) {
            if (ev[i].data.ptr == &s->stop_fd) {
                pthread_mutex_unlock(&s->lock);
                return NULL;
            }
            if (ev[i].data.ptr == &s->listen_fd)
                accept_all(s);
            else
                conn_event(s, ev[i].data.ptr, ev[i].events);
        }
        pthread_mutex_unlock(&s->lock);
    }
}

struct es_server *es_start(void)
{
    struct es_server *s = calloc(1, sizeof(*s));
    cr_assert(s);
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->changed, &ca);
    pthread_condattr_destroy(&ca);
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                          0);
    cr_assert(s->listen_fd >= 0, "socket: %m");
    struct sockaddr_storage ss;
    socklen_t len = hn_loopback(AF_INET, 0, &ss);
    cr_assert_eq(bind(s->listen_fd, (struct sockaddr *)&ss, len), 0,
                 "bind: %m");
    cr_assert_eq(listen(s->listen_fd, 4096), 0, "listen: %m");
    len = sizeof(ss);
    getsockname(s->listen_fd, (struct sockaddr *)&ss, &len);
    s->port = hn_port_of(&ss);
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    s->stop_fd = eventfd(0, EFD_CLOEXEC);
    cr_assert(s->ep >= 0 && s->stop_fd >= 0, "epoll/eventfd: %m");
    struct epoll_event l = { .events = EPOLLIN, .data.ptr = &s->listen_fd };
    struct epoll_event st = { .events = EPOLLIN, .data.ptr = &s->stop_fd };
    cr_assert(epoll_ctl(s->ep, EPOLL_CTL_ADD, s->listen_fd, &l) == 0 &&
              epoll_ctl(s->ep, EPOLL_CTL_ADD, s->stop_fd, &st) == 0);
    cr_assert_eq(pthread_create(&s->thread, NULL, serve, s), 0);
    return s;
}

uint16_t es_port(const struct es_server *s)
{
    return s->port;
}

/* Wait (under s->lock) until *counter >= n. */
static bool wait_count(struct es_server *s, const size_t *counter, size_t n,
                       int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&s->lock);
    int r = 0;
    while (*counter < n && r == 0)
        r = pthread_cond_timedwait(&s->changed, &s->lock, &deadline);
    bool ok = *counter >= n;
    pthread_mutex_unlock(&s->lock);
    return ok;
}

bool es_wait_accepted(struct es_server *s, size_t n, int timeout_ms)
{
    return wait_count(s, &s->accepted, n, timeout_ms);
}

bool es_wait_closed(struct es_server *s, size_t n, int timeout_ms)
{
    return wait_count(s, &s->closed, n, timeout_ms);
}

size_t es_closed_count(struct es_server *s)
{
    pthread_mutex_lock(&s->lock);
    size_t n = s->closed;
    pthread_mutex_unlock(&s->lock);
    return n;
}

bool es_conn(struct es_server *s, uint16_t port, struct es_conn_info *out)
{
    int key = port;
    pthread_mutex_lock(&s->lock);
    struct es_conn *c;
    HASH_FIND_INT(s->conns, &key, c);
    if (c)
        *out = c->info;
    pthread_mutex_unlock(&s->lock);
    return c != NULL;
}

void es_stop(struct es_server *s)
{
    uint64_t one = 1;
    if (write(s->stop_fd, &one, sizeof(one)) != sizeof(one))
        abort();
    pthread_join(s->thread, NULL);
    struct es_conn *c, *tmp;
    HASH_ITER(hh, s->conns, c, tmp) {
        HASH_DEL(s->conns, c);
        if (c->fd >= 0)
            close(c->fd);
        free(c->buf);
        free(c);
    }
    close(s->listen_fd);
    close(s->ep);
    close(s->stop_fd);
    pthread_cond_destroy(&s->changed);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
