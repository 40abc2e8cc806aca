/* Host-side peers for end-to-end tests: see hostnet.h. */
#include "hostnet.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HN_BUF 65536

/* ---- byte streams and checksums ------------------------------------ */

uint64_t hn_fnv1a(uint64_t h, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void hn_stream_init(struct hn_stream *s, uint64_t seed)
{
    s->state = seed;
    s->word = 0;
    s->word_off = 8;
}

void hn_stream_fill(struct hn_stream *s, void *buf, size_t len)
{
    unsigned char *p = buf;
    /* Finish the current word byte by byte, then whole words. */
    while (len && s->word_off < 8) {
        *p++ = (unsigned char)(s->word >> (8 * s->word_off++));
        len--;
    }
    while (len >= 8) {
        uint64_t w = splitmix64(&s->state);
        for (unsigned i = 0; i < 8; i++)
            p[i] = (unsigned char)(w >> (8 * i));
        p += 8;
        len -= 8;
    }
    if (len) {
        s->word = splitmix64(&s->state);
        s->word_off = 0;
        while (len--)
            *p++ = (unsigned char)(s->word >> (8 * s->word_off++));
    }
}

uint64_t hn_stream_hash(uint64_t seed, uint64_t len)
{
    static __thread unsigned char buf[HN_BUF];
    struct hn_stream s;
    uint64_t h = HN_FNV_INIT;
    hn_stream_init(&s, seed);
    while (len) {
        size_t n = len < sizeof(buf) ? (size_t)len : sizeof(buf);
        hn_stream_fill(&s, buf, n);
        h = hn_fnv1a(h, buf, n);
        len -= n;
    }
    return h;
}

/* ---- addresses ------------------------------------------------------ */

socklen_t hn_loopback(int family, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        a6->sin6_addr = in6addr_loopback;
        return sizeof(*a6);
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sizeof(*a4);
}

socklen_t hn_addr4(const char *dotted, uint16_t port,
                   struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    cr_assert_eq(inet_pton(AF_INET, dotted, &a4->sin_addr), 1, "%s", dotted);
    return sizeof(*a4);
}

uint16_t hn_port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

bool hn_have_ipv6_loopback(void)
{
    struct sockaddr_storage ss;
    socklen_t len = hn_loopback(AF_INET6, 0, &ss);
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool ok = bind(fd, (struct sockaddr *)&ss, len) == 0;
    close(fd);
    return ok;
}

uint16_t hn_closed_port(int family)
{
    struct sockaddr_storage ss;
    socklen_t len = hn_loopback(family, 0, &ss);
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&ss, len), 0, "%m");
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    /* Bound, never listening: nothing accepts while we hold the port. */
    uint16_t port = hn_port_of(&ss);
    close(fd);
    return port;
}

int64_t hn_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An absolute CLOCK_MONOTONIC deadline timeout_ms from now. */
static struct timespec deadline_in(int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

static void cond_init_monotonic(pthread_cond_t *c)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
}

static int write_all(int fd, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- servers --------------------------------------------------------- */

struct hn_conn {
    struct hn_server *srv;
    int fd;
    unsigned index; /* accept order */
    pthread_t thread;
    struct hn_conn *next;
};

struct hn_server {
    struct hn_server_cfg cfg;
    int listen_fd;
    uint16_t port;
    pthread_t acceptor;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    bool gate_open;
    bool stopping;
    unsigned accepted;
    uint64_t bytes_in; /* atomic */
    struct hn_conn *conns;
    struct hn_conn_result *results; /* in finish order */
    unsigned nresults, cap_results;
};

static void server_record(struct hn_server *s, const struct hn_conn_result *r)
{
    pthread_mutex_lock(&s->lock);
    if (s->nresults == s->cap_results) {
        s->cap_results = s->cap_results ? 2 * s->cap_results : 16;
        s->results = realloc(s->results,
                             s->cap_results * sizeof(*s->results));
        if (!s->results)
            abort();
    }
    s->results[s->nresults++] = *r;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
}

/* Read until EOF; echo everything back if echo. */
static void serve_read(struct hn_conn *c, bool echo, struct hn_conn_result *r)
{
    const struct hn_server_cfg *cfg = &c->srv->cfg;
    size_t chunk = cfg->read_max && cfg->read_max < HN_BUF ? cfg->read_max
                                                          : HN_BUF;
    unsigned char *buf = malloc(HN_BUF);
    if (!buf)
        abort();
    for (;;) {
        if (cfg->slow_us && r->bytes_in)
            usleep(cfg->slow_us);
        ssize_t n = recv(c->fd, buf, chunk, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r->err = errno;
            break;
        }
        if (n == 0)
            break;
        r->bytes_in += (uint64_t)n;
        r->hash_in = hn_fnv1a(r->hash_in, buf, (size_t)n);
        __atomic_add_fetch(&c->srv->bytes_in, (uint64_t)n, __ATOMIC_RELAXED);
        if (echo) {
            int err = write_all(c->fd, buf, (size_t)n);
            if (err) {
                r->err = -err;
                break;
            }
            r->bytes_out += (uint64_t)n;
        }
    }
    free(buf);
    if (echo && !r->err)
        shutdown(c->fd, SHUT_WR);
}

static void serve_source(struct hn_conn *c, struct hn_conn_result *r)
{
    unsigned char *buf = malloc(HN_BUF);
    if (!buf)
        abort();
    struct hn_stream st;
    hn_stream_init(&st, c->srv->cfg.seed + c->index);
    uint64_t left = c->srv->cfg.total;
    while (left) {
        size_t n = left < HN_BUF ? (size_t)left : HN_BUF;
        hn_stream_fill(&st, buf, n);
        int err = write_all(c->fd, buf, n);
        if (err) {
            r->err = -err;
            break;
        }
        r->bytes_out += n;
        left -= n;
    }
    free(buf);
    shutdown(c->fd, SHUT_WR);
}

/* Block until the gate opens or the server stops; false if stopping. */
static bool wait_gate(struct hn_server *s)
{
    pthread_mutex_lock(&s->lock);
    while (!s->gate_open && !s->stopping)
        pthread_cond_wait(&s->changed, &s->lock);
    bool go = !s->stopping;
    pthread_mutex_unlock(&s->lock);
    return go;
}

static void *conn_main(void *arg)
{
    struct hn_conn *c = arg;
    struct hn_server *s = c->srv;
    struct hn_conn_result r = { .hash_in = HN_FNV_INIT };
    switch (s->cfg.mode) {
    case HN_ECHO:
        serve_read(c, true, &r);
        break;
    case HN_SINK:
        if (!s->cfg.gated || wait_gate(s))
            serve_read(c, false, &r);
        else
            r.err = ECANCELED;
        break;
    case HN_SOURCE:
        serve_source(c, &r);
        break;
    }
    server_record(s, &r);
    return NULL;
}

static void *acceptor_main(void *arg)
{
    struct hn_server *s = arg;
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
            continue;
        if (fd < 0)
            break; /* shutdown() of the listener by hn_server_stop */
        struct hn_conn *c = calloc(1, sizeof(*c));
        if (!c)
            abort();
        c->srv = s;
        c->fd = fd;
        pthread_mutex_lock(&s->lock);
        if (s->stopping) {
            pthread_mutex_unlock(&s->lock);
            close(fd);
            free(c);
            break;
        }
        c->index = s->accepted++;
        c->next = s->conns;
        s->conns = c;
        if (pthread_create(&c->thread, NULL, conn_main, c) != 0)
            abort();
        pthread_cond_broadcast(&s->changed);
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

static int listen_socket(int family, size_t rcvbuf, uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t len = hn_loopback(family, 0, &ss);
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0, "socket: %m");
    /* Set on the listener so accepted sockets inherit it before the
     * handshake fixes the window scale. */
    if (rcvbuf)
        cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
                                sizeof(int)), 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&ss, len), 0, "bind: %m");
    cr_assert_eq(listen(fd, 512), 0, "listen: %m");
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    *port = hn_port_of(&ss);
    return fd;
}

struct hn_server *hn_server_start(const struct hn_server_cfg *cfg)
{
    struct hn_server *s = calloc(1, sizeof(*s));
    cr_assert(s);
    s->cfg = *cfg;
    if (!s->cfg.family)
        s->cfg.family = AF_INET;
    pthread_mutex_init(&s->lock, NULL);
    cond_init_monotonic(&s->changed);
    s->listen_fd = listen_socket(s->cfg.family, s->cfg.rcvbuf, &s->port);
    cr_assert_eq(pthread_create(&s->acceptor, NULL, acceptor_main, s), 0);
    return s;
}

uint16_t hn_server_port(const struct hn_server *s)
{
    return s->port;
}

socklen_t hn_server_addr(const struct hn_server *s,
                         struct sockaddr_storage *ss)
{
    return hn_loopback(s->cfg.family, s->port, ss);
}

void hn_server_open_gate(struct hn_server *s)
{
    pthread_mutex_lock(&s->lock);
    s->gate_open = true;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
}

/* Wait until *counter >= n (counter is protected by s->lock). */
static bool server_wait(struct hn_server *s, const unsigned *counter,
                        unsigned n, int timeout_ms)
{
    struct timespec dl = deadline_in(timeout_ms);
    bool ok = true;
    pthread_mutex_lock(&s->lock);
    while (*counter < n && ok)
        ok = pthread_cond_timedwait(&s->changed, &s->lock, &dl) == 0 ||
             *counter >= n;
    ok = *counter >= n;
    pthread_mutex_unlock(&s->lock);
    return ok;
}

bool hn_server_wait_accepted(struct hn_server *s, unsigned n, int timeout_ms)
{
    return server_wait(s, &s->accepted, n, timeout_ms);
}

bool hn_server_wait_done(struct hn_server *s, unsigned n, int timeout_ms)
{
    return server_wait(s, &s->nresults, n, timeout_ms);
}

uint64_t hn_server_bytes_in(struct hn_server *s)
{
    return __atomic_load_n(&s->bytes_in, __ATOMIC_RELAXED);
}

bool hn_server_result(struct hn_server *s, unsigned i,
                      struct hn_conn_result *out)
{
    pthread_mutex_lock(&s->lock);
    bool ok = i < s->nresults;
    if (ok)
        *out = s->results[i];
    pthread_mutex_unlock(&s->lock);
    return ok;
}

void hn_server_stop(struct hn_server *s)
{
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->changed);
    /* shutdown() wakes the threads blocked in accept() and recv(). */
    shutdown(s->listen_fd, SHUT_RDWR);
    for (struct hn_conn *c = s->conns; c; c = c->next)
        shutdown(c->fd, SHUT_RDWR);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->acceptor, NULL);
    close(s->listen_fd);
    struct hn_conn *c = s->conns;
    while (c) {
        struct hn_conn *next = c->next;
        pthread_join(c->thread, NULL);
        close(c->fd);
        free(c);
        c = next;
    }
    pthread_cond_destroy(&s->changed);
    pthread_mutex_destroy(&s->lock);
    free(s->results);
    free(s);
}

/* ---- clients --------------------------------------------------------- */

struct hn_client {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    uint64_t send_total;
    uint64_t seed;
    int fd;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    bool done;
    struct hn_client_result res;
};

/* Send the stream and read everything back, multiplexed with poll() so
 * that a peer which echoes never deadlocks us. */
static void client_exchange(struct hn_client *c, struct hn_client_result *r)
{
    unsigned char *out = malloc(HN_BUF), *in = malloc(HN_BUF);
    if (!out || !in)
        abort();
    struct hn_stream st;
    hn_stream_init(&st, c->seed);
    size_t out_len = 0, out_off = 0;
    bool wr_open = true;
    if (c->send_total == 0) {
        shutdown(c->fd, SHUT_WR);
        wr_open = false;
    }
    for (;;) {
        struct pollfd p = { .fd = c->fd,
                            .events = POLLIN | (wr_open ? POLLOUT : 0) };
        if (poll(&p, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            r->err = errno;
            break;
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(c->fd, in, HN_BUF, MSG_DONTWAIT);
            if (n == 0)
                break;
            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                r->err = errno;
                break;
            }
            if (n > 0) {
                r->bytes_in += (uint64_t)n;
                r->hash_in = hn_fnv1a(r->hash_in, in, (size_t)n);
            }
        }
        if (wr_open && (p.revents & POLLOUT)) {
            if (out_off == out_len) {
                uint64_t left = c->send_total - r->bytes_out;
                out_len = left < HN_BUF ? (size_t)left : HN_BUF;
                out_off = 0;
                hn_stream_fill(&st, out, out_len);
            }
            ssize_t n = send(c->fd, out + out_off, out_len - out_off,
                             MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                r->err = errno;
                break;
            }
            if (n > 0) {
                out_off += (size_t)n;
                r->bytes_out += (uint64_t)n;
            }
            if (r->bytes_out == c->send_total) {
                shutdown(c->fd, SHUT_WR);
                wr_open = false;
            }
        }
    }
    free(out);
    free(in);
}

static void *client_main(void *arg)
{
    struct hn_client *c = arg;
    struct hn_client_result r = { .hash_in = HN_FNV_INIT };
    if (connect(c->fd, (struct sockaddr *)&c->addr, c->addr_len) < 0)
        r.connect_err = errno;
    else
        client_exchange(c, &r);
    pthread_mutex_lock(&c->lock);
    c->res = r;
    c->done = true;
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

struct hn_client *hn_client_start(const struct sockaddr_storage *addr,
                                  socklen_t len, uint64_t send_total,
                                  uint64_t seed)
{
    struct hn_client *c = calloc(1, sizeof(*c));
    cr_assert(c);
    c->addr = *addr;
    c->addr_len = len;
    c->send_total = send_total;
    c->seed = seed;
    c->fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(c->fd >= 0, "socket: %m");
    pthread_mutex_init(&c->lock, NULL);
    cond_init_monotonic(&c->changed);
    cr_assert_eq(pthread_create(&c->thread, NULL, client_main, c), 0);
    return c;
}

bool hn_client_wait(struct hn_client *c, int timeout_ms,
                    struct hn_client_result *out)
{
    struct timespec dl = deadline_in(timeout_ms);
    pthread_mutex_lock(&c->lock);
    while (!c->done &&
           pthread_cond_timedwait(&c->changed, &c->lock, &dl) == 0)
        ;
    bool done = c->done;
    if (done && out)
        *out = c->res;
    pthread_mutex_unlock(&c->lock);
    return done;
}

void hn_client_free(struct hn_client *c)
{
    /* Wakes a thread still blocked in connect(), poll() or recv(). */
    shutdown(c->fd, SHUT_RDWR);
    pthread_join(c->thread, NULL);
    close(c->fd);
    pthread_cond_destroy(&c->changed);
    pthread_mutex_destroy(&c->lock);
    free(c);
}
