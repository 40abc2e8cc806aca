/*
 * Event channels: EVT_ALLOC_UNBOUND, EVT_BIND_INTERDOMAIN, EVT_CLOSE.
 *
 * A channel is two eventfds, one per direction (struct efd_pair).  The
 * allocator gets [rx, tx]; the binder gets the same pair swapped.
 * Notifications never pass through the broker.
 *
 * Ports belong to the connection that made them (as on Xen they belong to
 * the evtchn file that bound them) and are freed when it closes.  Closing
 * one end of a bound channel does what Xen's evtchn_close does: the other
 * end becomes unbound again, bindable by the closer's domain only, and
 * its notifies go nowhere meanwhile (a new binder finds none pending).  That is how a backend that reset
 * its side re-binds the port the frontend still advertises.
 */
#include "broker.h"

#include "pvc/log.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

static struct efd_pair *pair_new(void)
{
    struct efd_pair *pr = calloc(1, sizeof(*pr));
    if (!pr)
        return NULL;
    pr->fd[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pr->fd[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (pr->fd[0] < 0 || pr->fd[1] < 0) {
        int saved = errno;
        if (pr->fd[0] >= 0)
            close(pr->fd[0]);
        if (pr->fd[1] >= 0)
            close(pr->fd[1]);
        free(pr);
        errno = saved;
        return NULL;
    }
    return pr;
}

static void pair_put(struct efd_pair *pr)
{
    if (--pr->refs)
        return;
    close(pr->fd[0]);
    close(pr->fd[1]);
    free(pr);
}

static struct port *port_find(struct domain *d, uint32_t port)
{
    struct port *p;
    HASH_FIND(hh, d->ports, &port, sizeof(port), p);
    return p;
}

/* Xen hands out the lowest free port; so do we. */
static uint32_t port_lowest_free(struct domain *d)
{
    uint32_t port = 1;
    while (port_find(d, port))
        port++;
    return port;
}

static struct port *port_new(struct domain *d, struct conn *owner,
                             pvc_domid_t peer, struct efd_pair *pr,
                             unsigned side)
{
    if (d->nports >= SIM_MAX_PORTS_PER_DOMAIN) {
        errno = ENOSPC;
        return NULL;
    }
    struct port *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->port = port_lowest_free(d);
    p->owner = owner;
    p->peer = peer;
    p->pair = pr;
    p->side = side;
    pr->refs++;
    HASH_ADD(hh, d->ports, port, sizeof(p->port), p);
    d->nports++;
    return p;
}

static void port_free_raw(struct domain *d, struct port *p)
{
    pair_put(p->pair);
    HASH_DEL(d->ports, p);
    d->nports--;
    free(p);
}

/* The other end of a bound port, if it still points back at p. */
static struct port *port_remote(struct broker *b, struct domain *d,
                                struct port *p)
{
    if (p->state != PORT_BOUND)
        return NULL;
    struct domain *rd = domain_find(b, p->peer);
    struct port *rp = rd ? port_find(rd, p->remote_port) : NULL;
    if (!rp || rp->state != PORT_BOUND || rp->peer != d->domid ||
        rp->remote_port != p->port)
        return NULL;
    return rp;
}

static void port_close(struct broker *b, struct domain *d, struct port *p)
{
    struct port *rp = port_remote(b, d, p);
    if (rp) {
        /* Unbound again, for our domain (its peer) to bind. */
        rp->state = PORT_UNBOUND;
        rp->remote_port = 0;
    }
    port_free_raw(d, p);
}

void ports_free_all(struct domain *d)
{
    struct port *p, *tmp;
    HASH_ITER(hh, d->ports, p, tmp)
        port_free_raw(d, p);
}

void ports_free_conn(struct domain *d, struct conn *c)
{
    struct port *p, *tmp;
    HASH_ITER(hh, d->ports, p, tmp)
        if (p->owner == c)
            port_close(c->broker, d, p);
}

/* Xen drops notifications sent to an unbound port and clears a closed
 * port's pending bit, so a new binding starts with nothing pending. */
static void drain(int efd)
{
    uint64_t count;
    while (read(efd, &count, sizeof(count)) == sizeof(count))
        ;
}

/* [rx, tx] of port p; the broker keeps its copies. */
static void reply_port(struct reply *rp, const struct port *p)
{
    rp->msg.port = p->port;
    reply_add_fd(rp, p->pair->fd[p->side], false);
    reply_add_fd(rp, p->pair->fd[1 - p->side], false);
}

int op_evt_alloc_unbound(struct conn *c, const struct request *rq,
                         struct reply *rp)
{
    struct domain *d = domain_find(c->broker, c->domid);
    if (rq->msg->peer >= SIM_DOMID_LIMIT)
        return -EINVAL;
    struct efd_pair *pr = pair_new();
    if (!pr)
        return -errno;
    struct port *p = port_new(d, c, (pvc_domid_t)rq->msg->peer, pr, 0);
    if (!p) {
        int rc = -errno;
        pr->refs = 1;
        pair_put(pr);
        return rc;
    }
    p->state = PORT_UNBOUND;
    reply_port(rp, p);
    pvc_debug("domain %u port %u unbound for %u", c->domid, p->port,
              rq->msg->peer);
    return 0;
}

int op_evt_bind_interdomain(struct conn *c, const struct request *rq,
                            struct reply *rp)
{
    struct broker *b = c->broker;
    if (rq->msg->peer >= SIM_DOMID_LIMIT)
        return -EINVAL;
    struct domain *rd = domain_find(b, (pvc_domid_t)rq->msg->peer);
    struct port *remote = rd ? port_find(rd, rq->msg->port) : NULL;
    if (!remote || remote->peer != c->domid)
        return -EINVAL;
    if (remote->state == PORT_BOUND)
        return -EBUSY;
    struct domain *d = domain_find(b, c->domid);
    struct port *p = port_new(d, c, rd->domid, remote->pair,
                              1 - remote->side);
    if (!p)
        return -errno;
    p->state = remote->state = PORT_BOUND;
    p->remote_port = remote->port;
    remote->remote_port = p->port;
    drain(p->pair->fd[p->side]);
    reply_port(rp, p);
    pvc_debug("domain %u port %u bound to %u:%u", c->domid, p->port,
              rd->domid, remote->port);
    return 0;
}

int op_evt_close(struct conn *c, const struct request *rq, struct reply *rp)
{
    (void)rp;
    struct domain *d = domain_find(c->broker, c->domid);
    struct port *p = port_find(d, rq->msg->port);
    if (!p || p->owner != c)
        return -EINVAL;
    port_close(c->broker, d, p);
    return 0;
}
