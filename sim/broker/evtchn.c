/*
 * Event channels: EVT_ALLOC_UNBOUND, EVT_BIND_INTERDOMAIN, EVT_CLOSE.
 *
 * A channel is two eventfds, one per direction.  The allocator gets
 * [rx, tx]; the binder gets the same pair swapped.  The broker holds both
 * only while the port is unbound and drops them once both ends have
 * them: from then on notifications never pass through the broker.
 *
 * Ports belong to the connection that made them (as on Xen they belong to
 * the evtchn file that bound them) and are freed when it closes.  Closing
 * one end leaves the other end orphaned, as Xen does: its notifies go
 * nowhere and nobody can bind it again.
 */
#include "broker.h"

#include "pvc/log.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

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
                             pvc_domid_t peer)
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
    p->efd_to_owner = p->efd_from_owner = -1;
    HASH_ADD(hh, d->ports, port, sizeof(p->port), p);
    d->nports++;
    return p;
}

static void close_efds(struct port *p)
{
    if (p->efd_to_owner >= 0)
        close(p->efd_to_owner);
    if (p->efd_from_owner >= 0)
        close(p->efd_from_owner);
    p->efd_to_owner = p->efd_from_owner = -1;
}

static void port_free_raw(struct domain *d, struct port *p)
{
    close_efds(p);
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
    if (rp)
        rp->state = PORT_ORPHANED;
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

int op_evt_alloc_unbound(struct conn *c, const struct request *rq,
                         struct reply *rp)
{
    struct domain *d = domain_find(c->broker, c->domid);
    if (rq->msg->peer >= SIM_DOMID_LIMIT)
        return -EINVAL;
    int to_owner = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int from_owner = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct port *p = NULL;
    if (to_owner >= 0 && from_owner >= 0)
        p = port_new(d, c, (pvc_domid_t)rq->msg->peer);
    if (!p) {
        int rc = -errno;
        if (to_owner >= 0)
            close(to_owner);
        if (from_owner >= 0)
            close(from_owner);
        return rc;
    }
    p->state = PORT_UNBOUND;
    p->efd_to_owner = to_owner;
    p->efd_from_owner = from_owner;
    rp->msg.port = p->port;
    reply_add_fd(rp, p->efd_to_owner, false);
    reply_add_fd(rp, p->efd_from_owner, false);
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
    if (remote->state != PORT_UNBOUND)
        return -EINVAL;
    struct domain *d = domain_find(b, c->domid);
    struct port *p = port_new(d, c, rd->domid);
    if (!p)
        return -errno;
    p->state = remote->state = PORT_BOUND;
    p->remote_port = remote->port;
    remote->remote_port = p->port;
    rp->msg.port = p->port;
    /* Our rx is what the allocator sends on, our tx what it reads.  The
     * broker's copies go with this reply. */
    reply_add_fd(rp, remote->efd_from_owner, true);
    reply_add_fd(rp, remote->efd_to_owner, true);
    remote->efd_to_owner = remote->efd_from_owner = -1;
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
