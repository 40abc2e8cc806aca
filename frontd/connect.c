/*
 * CONNECT, which never blocks (include/pvc/frontd_proto.h): the daemon
 * takes a ring and a fresh state page, answers the client -EINPROGRESS
 * with both at once, and sends the backend's CONNECT.  The backend's
 * answer goes into the state page (connect_ret, then connect_done with
 * release order: a shim that sees done sees the result) and a byte on the
 * token makes the app's fd readable.  A blocking connect(2) is the shim
 * waiting for that; a signal or a timeout leaves the connect going on, as
 * in Linux.
 *
 * Why answer before sending: the client has its ring in hand before any
 * news can arrive, and a command that fails at once (backend gone) is
 * reported the same way as one that fails later.
 *
 * A failed attempt frees the ring (the backend may have mapped it: it is
 * never reused) but keeps the state page, whose connect_ret the shim may
 * still have to read; the socket may CONNECT again (Linux allows a new
 * connect() after a failed one) and gets a new ring and a new page.
 */
#include "frontd.h"

#include "pvc/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The socket's state page becomes fd (mapped at st); the previous
 * attempt's page, if any, goes (the shim holds its own copy). */
static void sock_set_state(struct fd_sock *s, int fd,
                           struct pvc_sock_shared *st)
{
    if (s->state_fd >= 0)
        close(s->state_fd);
    state_page_unmap(s->shared);
    s->state_fd = fd;
    s->shared = st;
}

/* Publish the outcome of the attempt: state page first, then the token. */
static void connect_publish(struct fd_sock *s, int32_t ret)
{
    if (s->shared) {
        __atomic_store_n(&s->shared->connect_ret, ret, __ATOMIC_RELAXED);
        __atomic_store_n(&s->shared->connect_done, 1u, __ATOMIC_RELEASE);
    }
    sock_notify(s);
}

static void connect_done(struct frontd *d, struct fd_cmd *c,
                         const union xen_pvcalls_sring_entry *e)
{
    struct fd_sock *s = c->sock;
    int32_t ret = e->rsp.ret;
    /* A hostile backend's positive "error" would read as success to
     * nobody and as garbage to the shim. */
    if (ret > 0)
        ret = -EPROTO;
    /* Backend lost: what every ring of the lost backend reports. */
    if (s->dead)
        ret = -ECONNRESET;
    s->connecting = false;
    s->connect_ring = NULL;
    if (ret == 0) {
        s->ring = c->ring;
        s->connected = true;
    } else {
        ring_free(d, c->ring);
    }
    pvc_debug("socket %llu: connect answered %d", (unsigned long long)s->id,
              ret);
    connect_publish(s, ret);
    sock_cmd_done(d, s);
}

static void attempt_free(struct frontd *d, struct fd_ring *r, int state_fd,
                         struct pvc_sock_shared *st)
{
    ring_free(d, r);
    state_page_unmap(st);
    if (state_fd >= 0)
        close(state_fd);
}

/* A ring and a mapped state page for one attempt; 0, -ENOBUFS when the
 * guest's grants or event channels ran out (what Linux's TCP connect gives
 * when it cannot get buffers), or -ENOMEM. */
static int32_t attempt_resources(struct frontd *d, uint32_t order,
                                 struct fd_ring **r, int *state_fd,
                                 struct pvc_sock_shared **st)
{
    *r = pool_take(d, ops_ring_order(d, order));
    *state_fd = *r ? state_page_new() : -1;
    *st = *state_fd >= 0 ? state_page_map(*state_fd) : NULL;
    if (*st)
        return 0;
    int32_t err = *r ? -ENOMEM : -ENOBUFS;
    attempt_free(d, *r, *state_fd, NULL);
    return err;
}

int32_t connect_start(struct frontd *d, struct fd_client *cl,
                      struct fd_sock *s, const struct pvc_fd_req *req)
{
    if (s->connecting)
        return -EALREADY;
    if (s->connected || s->listening)
        return -EISCONN;
    int32_t len = ops_check_addr(d, s, req);
    if (len < 0)
        return len;
    struct fd_ring *r;
    int state_fd;
    struct pvc_sock_shared *st;
    if (attempt_resources(d, req->order, &r, &state_fd, &st) < 0)
        return -ENOMEM;
    struct fd_cmd *c = cmd_new(PVCALLS_CONNECT, connect_done);
    if (!c) {
        attempt_free(d, r, state_fd, st);
        return -ENOMEM;
    }
    struct pvc_fd_rsp rsp;
    memset(&rsp, 0, sizeof(rsp));
    rsp.op = PVC_FD_CONNECT;
    rsp.ret = -EINPROGRESS;
    int err = ops_reply_ring(d, cl, &rsp, -1, r, state_fd);
    if (err < 0) {
        free(c);
        attempt_free(d, r, state_fd, st);
        return err;
    }
    /* Answered (or the client is gone, and so is its call): from here on
     * the attempt runs whatever happens to the caller. */
    sock_set_state(s, state_fd, st);
    c->sock = s;
    s->pending++;
    c->ring = r;
    c->req.u.connect.id = s->id;
    memcpy(c->req.u.connect.addr, req->addr,
           (size_t)len < req->addrlen ? (size_t)len : req->addrlen);
    c->req.u.connect.len = (uint32_t)len;
    c->req.u.connect.flags = 0;
    c->req.u.connect.ref = r->refs[0];
    c->req.u.connect.evtchn = pvc_evtchn_port(r->evtchn);
    s->connecting = true;
    s->connect_ring = r;
    cmd_submit(d, c);
    return 0;
}
