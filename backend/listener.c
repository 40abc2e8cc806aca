/*
 * ACCEPT and POLL on a listening socket: at most one of them pending per
 * listener (as Linux's backend), answered when a connection is queued.
 * The listener's host socket is watched only while one is pending.
 */
#include "backd.h"

#include "addr.h"
#include "pvc/ext.h"

#include <errno.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static struct bsock *listener_for(struct bdev *d, uint64_t id, int32_t *ret)
{
    struct bsock *s = sock_find(d, id);
    if (!s || s->state != BS_LISTENING || s->fd < 0) {
        *ret = -EINVAL;
        return NULL;
    }
    if (s->op_pending) {
        *ret = -EINTR; /* one ACCEPT or POLL at a time, as Linux */
        return NULL;
    }
    return s;
}

void cmd_accept_answer(struct bdev *d, const struct xen_pvcalls_request *req,
                       int32_t ret, const struct sockaddr_storage *peer,
                       socklen_t peer_len)
{
    char addr_buf[ADDR_STR_MAX];
    struct pvc_ext_addr_rsp rsp = { .id = req->u.accept.id };
    struct answer_extra x = { 0 };
    if (peer)
        x.addr = addr_format((const struct sockaddr *)peer, peer_len,
                             addr_buf, sizeof(addr_buf));
    if (d->ext & PVC_EXT_ACCEPT_ADDR) {
        if (peer)
            addr_to_wire((const struct sockaddr *)peer, peer_len, rsp.addr,
                         &rsp.len);
        x.rsp = &rsp;
        x.len = sizeof(rsp);
    }
    cmd_answer_ex(d, req, ret, &x);
}

/* A connection was accepted for the pending ACCEPT req: give it the
 * frontend's ring and make it socket id_new. */
static void accept_finish(struct bsock *ls,
                          const struct xen_pvcalls_request *req, int fd,
                          const struct sockaddr_storage *peer,
                          socklen_t peer_len)
{
    struct bdev *d = ls->dev;
    const struct xen_pvcalls_accept *r = &req->u.accept;
    struct bring ring;
    int32_t ret = 0;
    /* The frontend may have used id_new for a SOCKET meanwhile. */
    if (sock_find(d, r->id_new))
        ret = -EEXIST;
    else
        ret = bring_map(d, &ring, r->ref, r->evtchn);
    if (ret < 0) {
        close(fd); /* the connection the frontend cannot take */
        cmd_accept_answer(d, req, ret, NULL, 0);
        return;
    }
    struct bsock *s = sock_new(d, r->id_new, ls->family, fd, BS_ACTIVE);
    if (!s) {
        bring_unmap(d, &ring);
        cmd_accept_answer(d, req, -ENOMEM, NULL, 0);
        return;
    }
    s->published = ls->published;
    s->guest_name = ls->guest_name;
    s->guest_name_len = ls->guest_name_len;
    ret = sock_attach_ring(s, &ring);
    if (ret < 0) {
        sock_destroy(s);
        cmd_accept_answer(d, req, ret, NULL, 0);
        return;
    }
    cmd_accept_answer(d, req, 0, peer, peer_len);
    pump_start(s);
}

/* accept(2) lists these as network errors to treat like EAGAIN: the
 * connection died in the queue, the listener is fine. */
static bool accept_retryable(int err)
{
    switch (err) {
    case EAGAIN:
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
        return true;
    default:
        return false;
    }
}

static void listener_try_accept(struct bsock *ls)
{
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof(peer);
    int fd = accept4(ls->fd, (struct sockaddr *)&peer, &peer_len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0 && accept_retryable(errno)) {
        sock_watch_fd(ls, EPOLLIN);
        return;
    }
    /* Answered either way: nothing is left to watch, so EMFILE or ENFILE
     * cannot make the loop spin; the frontend sees accept() fail as it
     * would natively, and may ask again. */
    sock_watch_fd(ls, 0);
    struct xen_pvcalls_request req = ls->op_req;
    sock_op_done(ls);
    if (fd < 0) {
        cmd_accept_answer(ls->dev, &req, -errno, NULL, 0);
        return;
    }
    accept_finish(ls, &req, fd, &peer, peer_len);
}

static int32_t accept_check(struct bdev *d,
                            const struct xen_pvcalls_request *req,
                            struct bsock **ls)
{
    int32_t ret;
    *ls = listener_for(d, req->u.accept.id, &ret);
    if (!*ls)
        return ret;
    if (sock_find(d, req->u.accept.id_new))
        return -EEXIST;
    if (dev_sock_count(d) >= dev_max_sockets(d))
        return -EMFILE;
    return 0;
}

int32_t cmd_accept(struct bdev *d, const struct xen_pvcalls_request *req)
{
    struct bsock *ls;
    int32_t ret = accept_check(d, req, &ls);
    if (ret < 0) {
        cmd_accept_answer(d, req, ret, NULL, 0); /* maybe whole-entry */
        return 1;
    }
    ls->op_req = *req;
    ls->op_pending = true;
    d->reserved++; /* id_new's place, until answered */
    listener_try_accept(ls);
    return 1;
}

int32_t cmd_poll(struct bdev *d, const struct xen_pvcalls_request *req)
{
    int32_t ret;
    struct bsock *ls = listener_for(d, req->u.poll.id, &ret);
    if (!ls)
        return ret; /* Linux's backend would never answer */
    struct pollfd pfd = { .fd = ls->fd, .events = POLLIN };
    if (poll(&pfd, 1, 0) > 0)
        return 0;
    ls->op_req = *req;
    ls->op_pending = true;
    sock_watch_fd(ls, EPOLLIN);
    return 1;
}

void cmd_listener_event(struct bsock *ls, uint32_t events)
{
    (void)events;
    if (!ls->op_pending) {
        sock_watch_fd(ls, 0);
        return;
    }
    if (ls->op_req.cmd == PVCALLS_ACCEPT) {
        listener_try_accept(ls);
        return;
    }
    /* POLL: a connection is waiting. */
    sock_watch_fd(ls, 0);
    struct xen_pvcalls_request req = ls->op_req;
    sock_op_done(ls);
    cmd_answer(ls->dev, &req, 0);
}
