/*
 * CONNECT, asynchronous: the data ring is mapped and validated first, then
 * a non-blocking connect() is answered at once or when the host socket
 * reports the outcome, so a connect that never completes delays nothing.
 */
#include "backd.h"

#include "addr.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>

static void connect_done(struct bsock *s,
                         const struct xen_pvcalls_request *req, int err)
{
    if (err) {
        /* The socket stays, unconnected, and may CONNECT again.  Linux
         * leaves a socket whose non-blocking connect failed half in
         * "connecting" (the next connect() gives ECONNABORTED); an
         * AF_UNSPEC connect resets it, keeping an explicit bind. */
        struct sockaddr unspec = { .sa_family = AF_UNSPEC };
        connect(s->fd, &unspec, sizeof(unspec));
        s->state = s->pre_connect;
        sock_detach_ring(s);
        cmd_answer(s->dev, req, -err);
        return;
    }
    s->state = BS_ACTIVE;
    cmd_answer(s->dev, req, 0);
    pump_start(s);
}

static int32_t connect_check_state(const struct bsock *s)
{
    switch (s->state) {
    case BS_FRESH:
    case BS_BOUND:
        return s->fd < 0 ? -ENOTCONN : 0;
    case BS_CONNECTING:
        return -EALREADY;
    case BS_ACTIVE:
        return -EISCONN;
    case BS_RELEASING:
        return -EBADF;
    case BS_LISTENING:
    default:
        return -EINVAL;
    }
}

int32_t cmd_connect(struct bdev *d, const struct xen_pvcalls_request *req)
{
    const struct xen_pvcalls_connect *r = &req->u.connect;
    struct bsock *s = sock_find(d, r->id);
    if (!s)
        return -EBADF;
    int32_t ret = connect_check_state(s);
    if (ret < 0)
        return ret;
    struct sockaddr_storage sa;
    socklen_t sa_len;
    ret = addr_from_wire(s->family, r->addr, r->len, &sa, &sa_len);
    if (ret < 0)
        return ret;
    if (dev_policy_connect(d, req, (struct sockaddr *)&sa, sa_len))
        return 1;
    /* r->flags is reserved in v1: ignored. */
    struct bring ring;
    ret = bring_map(d, &ring, r->ref, r->evtchn);
    if (ret < 0)
        return ret;
    ret = sock_attach_ring(s, &ring);
    if (ret < 0)
        return ret;
    /* An earlier BIND is honoured: this is the bound socket. */
    s->pre_connect = s->state;
    if (connect(s->fd, (struct sockaddr *)&sa, sa_len) == 0) {
        connect_done(s, req, 0);
        return 1;
    }
    if (errno != EINPROGRESS) {
        connect_done(s, req, errno);
        return 1;
    }
    /* Answered from cmd_connect_event: a connect that never completes
     * delays nothing else. */
    s->state = BS_CONNECTING;
    s->op_req = *req;
    s->op_pending = true;
    sock_watch_fd(s, EPOLLOUT);
    return 1;
}

void cmd_connect_event(struct bsock *s, uint32_t events)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (!err && !(events & (EPOLLOUT | EPOLLHUP | EPOLLERR)))
        return; /* not finished yet */
    if (!err) {
        /* A hang-up without a pending error (which we must not leave in
         * the interest set: it would be reported forever): connected only
         * if there is a peer. */
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        if (getpeername(s->fd, (struct sockaddr *)&peer, &peer_len) < 0)
            err = errno == ENOTCONN ? ECONNRESET : errno;
    }
    sock_watch_fd(s, 0);
    struct xen_pvcalls_request req = s->op_req;
    sock_op_done(s);
    connect_done(s, &req, err);
}
