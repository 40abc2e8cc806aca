/*
 * Shim connections: a filesystem SOCK_SEQPACKET listener (mode 0666, so
 * that unprivileged processes may connect; its directory 0755), one
 * message per request and per reply, fds as SCM_RIGHTS (received
 * close-on-exec).  A connection makes one call at a time: while its call
 * waits for the backend we stop reading it, so a client that floods us
 * only fills its own socket buffer.  Anything malformed is answered
 * -EINVAL; a client that cannot take an answer is dropped.
 */
#include "frontd.h"

#include "pvc/log.h"

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <utlist.h>

/* At most one token fd per request; anything beyond is refused. */
#define MAX_REQ_FDS 4

static void client_free(struct frontd *d, struct fd_client *cl)
{
    pvc_loop_del(d->loop, &cl->watch);
    cmd_forget_client(d, cl);
    sock_client_gone(d, cl);
    DL_DELETE(d->clients, cl);
    close(cl->fd);
    pvc_loop_defer_free(d->loop, cl, free);
}

static void set_reading(struct frontd *d, struct fd_client *cl, bool on)
{
    pvc_loop_mod(d->loop, &cl->watch,
                 (on ? EPOLLIN : 0) | EPOLLRDHUP);
}

static void close_fds(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
}

/* One request: 1 = handled (or answered -EINVAL), 0 = nothing there,
 * -1 = the client is gone or broken. */
static int read_request(struct frontd *d, struct fd_client *cl)
{
    struct pvc_fd_req req;
    union {
        char buf[CMSG_SPACE(sizeof(int) * MAX_REQ_FDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = &req, .iov_len = sizeof(req) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = ctl.buf,
                         .msg_controllen = sizeof(ctl.buf) };
    ssize_t n = recvmsg(cl->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (n == 0)
        return -1;
    int fds[MAX_REQ_FDS];
    unsigned nfds = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm;
         cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k && nfds < MAX_REQ_FDS; i++)
            memcpy(&fds[nfds++], CMSG_DATA(cm) + i * sizeof(int),
                   sizeof(int));
    }
    bool bad = (size_t)n != sizeof(req) || (mh.msg_flags & MSG_TRUNC) ||
               (mh.msg_flags & MSG_CTRUNC) || nfds > 1;
    if (bad) {
        close_fds(fds, nfds);
        pvc_debug("client %d: malformed request (%zd bytes, %u fds)",
                  cl->fd, n, nfds);
        client_reply_err(d, cl, n >= 4 ? req.op : 0, -EINVAL);
        return 1;
    }
    set_reading(d, cl, false);
    ops_dispatch(d, cl, &req, nfds ? fds[0] : -1);
    return 1;
}

static void on_client(void *ctx, uint32_t events)
{
    struct fd_client *cl = ctx;
    struct frontd *d = cl->d;
    /* A request queued before a hang-up is still answered (its reply
     * is then lost, which drops the client). */
    if (events & EPOLLIN) {
        int r = read_request(d, cl);
        if (r < 0) {
            client_free(d, cl);
            return;
        }
        if (r > 0)
            return;
    }
    if (events & (EPOLLHUP | EPOLLRDHUP | EPOLLERR))
        client_free(d, cl);
}

static void on_listen(void *ctx, uint32_t events)
{
    struct frontd *d = ctx;
    (void)events;
    for (;;) {
        int fd = accept4(d->listen_fd, NULL, NULL,
                         SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                pvc_warn("accept on %s: %s", d->cfg.sock_path,
                         strerror(errno));
            return;
        }
        struct fd_client *cl = calloc(1, sizeof(*cl));
        if (!cl) {
            close(fd);
            continue;
        }
        cl->d = d;
        cl->fd = fd;
        if (pvc_loop_add(d->loop, &cl->watch, fd, EPOLLIN | EPOLLRDHUP,
                         on_client, cl) < 0) {
            close(fd);
            free(cl);
            continue;
        }
        DL_APPEND(d->clients, cl);
    }
}

void client_reply(struct frontd *d, struct fd_client *cl,
                  struct pvc_fd_rsp *rsp, const int *fds, unsigned nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * FRONTD_MAX_REPLY_FDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = rsp, .iov_len = sizeof(*rsp) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds > 0) {
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    cl->call = NULL;
    ssize_t n = sendmsg(cl->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n != (ssize_t)sizeof(*rsp)) {
        pvc_debug("client %d: reply lost (%s): dropping it", cl->fd,
                  n < 0 ? strerror(errno) : "short");
        client_free(d, cl);
        return;
    }
    set_reading(d, cl, true);
}

void client_reply_err(struct frontd *d, struct fd_client *cl, uint32_t op,
                      int32_t err)
{
    struct pvc_fd_rsp rsp;
    memset(&rsp, 0, sizeof(rsp));
    rsp.op = op;
    rsp.ret = err;
    client_reply(d, cl, &rsp, NULL, 0);
}

static int make_parent_dir(const char *path)
{
    char copy[PATH_MAX];
    snprintf(copy, sizeof(copy), "%s", path);
    char *dir = dirname(copy);
    if (!strcmp(dir, ".") || !strcmp(dir, "/"))
        return 0;
    /* Parents of the parent first (mkdir -p). */
    char *p = dir + 1;
    while ((p = strchr(p, '/'))) {
        *p = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            return -1;
        *p++ = '/';
    }
    return mkdir(dir, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

int clients_listen(struct frontd *d)
{
    const char *path = d->cfg.sock_path;
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(addr.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(addr.sun_path, path);
    if (make_parent_dir(path) < 0)
        return -1;
    d->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC |
                          SOCK_NONBLOCK, 0);
    if (d->listen_fd < 0)
        return -1;
    /* A stale socket of an earlier instance: a live one would answer. */
    int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (probe >= 0 &&
        connect(probe, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
        close(probe);
        errno = EADDRINUSE;
        return -1;
    }
    if (probe >= 0)
        close(probe);
    unlink(path);
    if (bind(d->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        chmod(path, 0666) < 0 || listen(d->listen_fd, 128) < 0)
        return -1;
    return pvc_loop_add(d->loop, &d->listen_watch, d->listen_fd, EPOLLIN,
                        on_listen, d);
}

void clients_close_all(struct frontd *d)
{
    struct fd_client *cl, *tmp;
    DL_FOREACH_SAFE(d->clients, cl, tmp)
        client_free(d, cl);
    if (d->listen_fd >= 0) {
        pvc_loop_del(d->loop, &d->listen_watch);
        close(d->listen_fd);
        unlink(d->cfg.sock_path);
        d->listen_fd = -1;
    }
}
