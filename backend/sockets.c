/*
 * The per-device socket table and the lifetime of one socket: its host
 * socket, its mapped data ring and event channel, and its end.
 */
#include "backd.h"

#include "audit.h"
#include "pvc/log.h"

#include <errno.h>
#include <stddef.h>
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

/* What bring_map() reads of the indexes page before mapping anything:
 * ring_order and the data pages' refs, which follow it. */
struct intf_head {
    uint32_t ring_order;
    pvc_gref_t ref[1u << PVC_MAX_RING_ORDER];
};
_Static_assert(offsetof(struct pvcalls_data_intf, ref) ==
                   offsetof(struct pvcalls_data_intf, ring_order) +
                       offsetof(struct intf_head, ref),
               "ring_order and ref[] as in <xen/io/pvcalls.h>");

/* Whether the indexes page can be mapped writable, as the ring needs.
 * Only asked when its ring_order is invalid: a page that could not be
 * mapped at all is -EFAULT whatever it holds, as when it was mapped
 * first and read after. */
static bool intf_writable(struct bdev *d, pvc_gref_t ref)
{
    void *page = pvc_grant_map(d->bd->plat, d->domid, 1, &ref, 0);
    if (!page)
        return false;
    pvc_grant_unmap(d->bd->plat, page, 1);
    return true;
}

/*
 * The indexes page and the data pages are mapped as one region, with one
 * map and one unmap: every unmap of touched pages costs a TLB shootdown,
 * and a connection's life should pay for one.  So ring_order and the
 * refs are copied out of the granted page first (no mapping), exactly
 * once: the frontend may rewrite the page meanwhile, and what we map and
 * how we size the ring is what we validated here.
 */
int bring_map(struct bdev *d, struct bring *r, uint32_t ref, uint32_t evtchn)
{
    struct pvc_platform *plat = d->bd->plat;
    unsigned max_order = d->bd->cfg.max_page_order;
    struct intf_head head;
    pvc_gref_t refs[1 + (1u << PVC_MAX_RING_ORDER)];
    memset(r, 0, sizeof(*r));
    if (max_order > PVC_MAX_RING_ORDER)
        max_order = PVC_MAX_RING_ORDER;
    size_t want = offsetof(struct intf_head, ref) +
                  ((size_t)1 << max_order) * sizeof(pvc_gref_t);
    if (pvc_grant_read(plat, d->domid, ref,
                       offsetof(struct pvcalls_data_intf, ring_order), &head,
                       want) < 0)
        return -EFAULT; /* as Linux's backend */
    unsigned order = head.ring_order;
    if (order < 1 || order > max_order)
        return intf_writable(d, ref) ? -EINVAL : -EFAULT;
    unsigned npages = 1 + (1u << order);
    refs[0] = ref;
    memcpy(refs + 1, head.ref, (npages - 1) * sizeof(pvc_gref_t));
    r->intf = pvc_grant_map(plat, d->domid, npages, refs, 0);
    if (!r->intf)
        return -EFAULT;
    r->order = order;
    r->data = (char *)r->intf + PVC_PAGE_SIZE;
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
    /* data lies in the same mapping, right after intf. */
    if (r->intf)
        pvc_grant_unmap(plat, r->intf, 1 + (1u << r->order));
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
