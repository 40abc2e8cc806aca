/*
 * The simulated platform's broker connection: one SOCK_SEQPACKET packet
 * per request, one per reply, fds as SCM_RIGHTS (received close-on-exec).
 * Replies are checked before use: the op must echo the request's, the
 * variable part must fit, and fds beyond what the caller expects make the
 * reply malformed (they are closed, never leaked).
 */
#include "sim_impl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int send_request(int fd, const struct call *c)
{
    struct iovec iov[2] = {
        { .iov_base = (void *)&c->rq, .iov_len = sizeof(c->rq) },
        { .iov_base = (void *)c->rq_var, .iov_len = c->rq_nvar * 4 },
    };
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = c->rq_nvar ? 2 : 1 };
    ssize_t n;
    while ((n = sendmsg(fd, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    return n < 0 ? -1 : 0;
}

void sim_close_fds(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
}

/* Take the SCM_RIGHTS fds out of mh; -1 (all closed) if more than cap. */
static int collect_fds(struct msghdr *mh, struct call *c)
{
    int rc = 0;
    c->nfds = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm;
         cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (c->nfds < c->fds_cap)
                c->fds[c->nfds++] = fd;
            else {
                close(fd);
                rc = -1;
            }
        }
    }
    if (rc < 0 || (mh->msg_flags & MSG_CTRUNC)) {
        sim_close_fds(c->fds, c->nfds);
        c->nfds = 0;
        return -1;
    }
    return 0;
}

static int recv_reply(int fd, struct call *c)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * SIM_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov[2] = {
        { .iov_base = &c->rp, .iov_len = sizeof(c->rp) },
        { .iov_base = c->rp_var, .iov_len = c->rp_var_cap * 4 },
    };
    struct msghdr mh = {
        .msg_iov = iov, .msg_iovlen = c->rp_var_cap ? 2 : 1,
        .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
    };
    ssize_t n;
    while ((n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
        ;
    if (n == 0)
        errno = ECONNRESET;
    if (n <= 0)
        return -1;
    if (collect_fds(&mh, c) < 0 || (mh.msg_flags & MSG_TRUNC) ||
        (size_t)n < sizeof(c->rp) || (n - sizeof(c->rp)) % 4 ||
        c->rp.op != c->rq.op) {
        sim_close_fds(c->fds, c->nfds);
        c->nfds = 0;
        errno = EPROTO;
        return -1;
    }
    c->rp_nvar = (n - sizeof(c->rp)) / 4;
    return 0;
}

int sim_call_locked(struct sim_platform *sp, struct call *c)
{
    if (send_request(sp->fd, c) < 0 || recv_reply(sp->fd, c) < 0)
        return -1;
    if (c->rp.status) {
        sim_close_fds(c->fds, c->nfds);
        c->nfds = 0;
        errno = c->rp.status < 0 ? -c->rp.status : EPROTO;
        return -1;
    }
    return 0;
}

int sim_call(struct sim_platform *sp, struct call *c)
{
    pthread_mutex_lock(&sp->lock);
    int rc = sim_call_locked(sp, c);
    int saved = errno;
    pthread_mutex_unlock(&sp->lock);
    errno = saved;
    return rc;
}

int sim_broker_connect(const char *dir)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int n = snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s", dir,
                     SIM_BROKER_SOCK);
    if (n < 0 || (size_t)n >= sizeof(addr.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}
