/*
 * The per-device socket table and the lifetime of one socket: its host
 * socket, its mapped data ring and event channel, and its end.
 */
#include "backd.h"

#include "audit.h"
#include "pvc/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

struct bsock *sock_find(struct bdev *d, uint64_t id)
{
    struct bsock *s;
    HASH_FIND(hh, d->socks, &id, sizeof(id), s);
    return s;
}

unsigned dev_sock_count(const struct bdev *d)
{
    return HASH_COUNT(d->socks) + d->reserved;
}

/* uthash reports a failed table allocation here (HASH_NONFATAL_OOM). */
static bool hash_oom;
#undef uthash_nonfatal_oom
#define uthash_nonfatal_oom(obj) (hash_oom = true)

struct bsock *sock_new(struct bdev *d, uint64_t id, int family, int fd,
                       enum bsock_state state)
{
    struct bsock *s = calloc(1, sizeof(*s));
    if (!s) {
        close(fd);
        return NULL;
    }
    s->id = id;
    s->dev = d;
    s->family = family;
    s->fd = fd;
    s->state = state;
    hash_oom = false;
    HASH_ADD(hh, d->socks, id, sizeof(s->id), s);
    if (hash_oom) {
        close(fd);
        free(s);
        return NULL;
    }
    return s;
}

/* The loop calls this for the host socket; what it means depends on what
 * the socket is doing. */
static void sock_fd_event(void *ctx, uint32_t events)
{
    struct bsock *s = ctx;
    switch (s->state) {
    case BS_CONNECTING:
        cmd_connect_event(s, events);
        break;
    case BS_LISTENING:
        cmd_listener_event(s, events);
        break;
    case BS_ACTIVE:
    case BS_RELEASING:
        pump_fd_event(s, events);
        break;
    default:
        /* Not watched in other states; a stale event is harmless. */
        sock_watch_fd(s, 0);
        break;
    }
}

void sock_watch_fd(struct bsock *s, uint32_t events)
{
    struct pvc_loop *loop = s->dev->bd->loop;
    if (s->fd < 0 || events == s->fd_events)
        return;
    /* EPOLLERR and EPOLLHUP are reported whatever the interest set: a
     * socket we have nothing to ask of must leave the set, or a dead
     * connection would wake us forever. */
    if (!events) {
        pvc_loop_del(loop, &s->fd_watch);
    } else if (!s->fd_events) {
        if (pvc_loop_add(loop, &s->fd_watch, s->fd, events, sock_fd_event,
                         s) < 0) {
            pvc_err("epoll add: %s", strerror(errno));
            return;
        }
    } else if (pvc_loop_mod(loop, &s->fd_watch, events) < 0) {
        pvc_err("epoll mod: %s", strerror(errno));
        return;
    }
    s->fd_events = events;
}

/* SO_LINGER with a timeout makes close() wait for the peer to take the
 * data, even on a non-blocking socket: the one thread serving every
 * domain must not.  Fall back to the default close, which sends the rest
 * in the background (an abortive l_linger = 0 is kept: it does not wait). */
static void disarm_linger(struct bsock *s)
{
    struct linger l = { 0 };
    socklen_t len = sizeof(l);
    if (getsockopt(s->fd, SOL_SOCKET, SO_LINGER, &l, &len) == 0 &&
        l.l_onoff && l.l_linger > 0) {
        l = (struct linger){ 0 };
        setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
}

void sock_close_fd(struct bsock *s)
{
    if (s->fd < 0)
        return;
    sock_watch_fd(s, 0);
    if (s->linger_set)
        disarm_linger(s);
    close(s->fd);
    s->fd = -1;
}

/* ---- data rings ---------------------------------------------------- */

static void sock_channel_event(void *ctx, uint32_t events)
{
    struct bsock *s = ctx;
    (void)events;
    /* Ack before looking: a notify sent after this rings again. */
    pvc_evtchn_ack(s->r.ch);
    if (s->state == BS_ACTIVE || s->state == BS_RELEASING)
        pump_doorbell(s);
    /* Connecting: the pump starts when the connection does. */
}

/* ring_order from the frontend's indexes page, read exactly once. */
static unsigned read_ring_order(const struct pvcalls_data_intf *intf)
{
    return __atomic_load_n(&intf->ring_order, __ATOMIC_RELAXED);
}

int bring_map(struct bdev *d, struct bring *r, uint32_t ref, uint32_t evtchn)
{
    struct pvc_platform *plat = d->bd->plat;
    pvc_gref_t refs[1u << PVC_MAX_RING_ORDER];
    memset(r, 0, sizeof(*r));
    pvc_gref_t intf_ref = ref;
    r->intf = pvc_grant_map(plat, d->domid, 1, &intf_ref, 0);
    if (!r->intf)
        return -EFAULT; /* as Linux's backend */
    unsigned order = read_ring_order(r->intf);
    if (order < 1 || order > d->bd->cfg.max_page_order) {
        bring_unmap(d, r);
        return -EINVAL;
    }
    r->order = order;
    /* Copy the refs once: the frontend can rewrite the page meanwhile. */
    const struct pvcalls_data_intf *intf = r->intf;
    for (unsigned i = 0; i < 1u << order; i++)
        refs[i] = __atomic_load_n(&intf->ref[i], __ATOMIC_RELAXED);
    r->data = pvc_grant_map(plat, d->domid, 1u << order, refs, 0);
    if (!r->data) {
        bring_unmap(d, r);
        return -EFAULT;
    }
    r->ch = pvc_evtchn_bind_interdomain(plat, d->domid, evtchn);
    if (!r->ch) {
        bring_unmap(d, r);
        return -EINVAL;
    }
    pvc_data_ring_attach(&r->ring, r->intf, r->data, order, PVC_SIDE_BACK);
    return 0;
}

void bring_unmap(struct bdev *d, struct bring *r)
{
    struct pvc_platform *plat = d->bd->plat;
    pvc_loop_del(d->bd->loop, &r->ch_watch);
    if (r->ch)
        pvc_evtchn_close(r->ch);
    if (r->data)
        pvc_grant_unmap(plat, r->data, 1u << r->order);
    if (r->intf)
        pvc_grant_unmap(plat, r->intf, 1);
    memset(r, 0, sizeof(*r));
}

int sock_attach_ring(struct bsock *s, struct bring *r)
{
    s->r = *r;
    /* The watch records its own address: register it where it lives. */
    memset(&s->r.ch_watch, 0, sizeof(s->r.ch_watch));
    s->mapped = true;
    if (pvc_loop_add(s->dev->bd->loop, &s->r.ch_watch, pvc_evtchn_fd(s->r.ch),
                     EPOLLIN, sock_channel_event, s) < 0) {
        int err = -errno;
        bring_unmap(s->dev, &s->r);
        s->mapped = false;
        return err;
    }
    s->in_done = s->in_full = s->out_done = s->out_blocked = false;
    s->broken = s->draining = s->notify = false;
    return 0;
}

void sock_detach_ring(struct bsock *s)
{
    if (!s->mapped)
        return;
    bring_unmap(s->dev, &s->r);
    s->mapped = false;
}

void sock_op_done(struct bsock *s)
{
    if (s->op_pending && s->op_req.cmd == PVCALLS_ACCEPT)
        s->dev->reserved--;
    s->op_pending = false;
}

void sock_destroy(struct bsock *s)
{
    struct bdev *d = s->dev;
    sock_close_fd(s);
    sock_detach_ring(s);
    sock_op_done(s);
    s->release_pending = false;
    HASH_DEL(d->socks, s);
    audit_sock_close(d->bd->audit, d->domid, d->devid, s->id, s->bytes_in,
                     s->bytes_out);
    pvc_loop_defer_free(d->bd->loop, s, free);
}
