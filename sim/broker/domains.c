/*
 * Simulated domains: HELLO (which domain a connection is) and the
 * toolstack's DOMAIN_CREATE / DOMAIN_DESTROY.
 */
#include "broker.h"
#include "../store/store.h"

#include "pvc/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

struct domain *domain_find(struct broker *b, pvc_domid_t domid)
{
    struct domain *d;
    HASH_FIND(hh, b->domains, &domid, sizeof(domid), d);
    return d;
}

struct domain *domain_new(struct broker *b, pvc_domid_t domid)
{
    struct domain *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->domid = domid;
    d->next_ref = 1;
    HASH_ADD(hh, b->domains, domid, sizeof(d->domid), d);
    return d;
}

void domain_free(struct broker *b, struct domain *d)
{
    grants_free_all(d);
    ports_free_all(d);
    HASH_DEL(b->domains, d);
    free(d);
}

void domains_free_all(struct broker *b)
{
    struct domain *d, *tmp;
    HASH_ITER(hh, b->domains, d, tmp)
        domain_free(b, d);
}

int op_hello(struct conn *c, const struct request *rq, struct reply *rp)
{
    (void)rp;
    if (c->hello_done)
        return -EISCONN;
    if (rq->msg->domid >= SIM_DOMID_LIMIT ||
        !domain_find(c->broker, rq->msg->domid))
        return -ESRCH;
    c->domid = rq->msg->domid;
    c->hello_done = true;
    pvc_debug("connection fd %d is domain %u", c->fd, c->domid);
    return 0;
}

static int store_sock_path(struct broker *b, pvc_domid_t domid, char *buf,
                           size_t len)
{
    int n = snprintf(buf, len, "%s/%s/%u.sock", b->dir, SIM_STORE_DIR,
                     domid);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Domain 0 exists from the start: the broker's own setup calls this. */
int domain_add_with_store(struct broker *b, pvc_domid_t domid)
{
    char path[PATH_MAX];
    int rc = store_sock_path(b, domid, path, sizeof(path));
    if (rc)
        return rc;
    struct domain *d = domain_new(b, domid);
    if (!d)
        return -ENOMEM;
    if (sim_store_domain_add(b->store, domid, path) < 0) {
        rc = errno ? -errno : -EIO;
        domain_free(b, d);
        return rc;
    }
    return 0;
}

int op_domain_create(struct conn *c, const struct request *rq,
                     struct reply *rp)
{
    (void)rp;
    struct broker *b = c->broker;
    uint32_t domid = rq->msg->domid;
    if (c->domid != 0)
        return -EPERM;
    if (domid == 0 || domid >= SIM_DOMID_LIMIT)
        return -EINVAL;
    if (domain_find(b, domid))
        return -EEXIST;
    int rc = domain_add_with_store(b, domid);
    if (rc == 0)
        pvc_debug("domain %u created", domid);
    return rc;
}

int op_domain_destroy(struct conn *c, const struct request *rq,
                      struct reply *rp)
{
    (void)rp;
    struct broker *b = c->broker;
    uint32_t domid = rq->msg->domid;
    if (c->domid != 0)
        return -EPERM;
    if (domid == 0 || domid >= SIM_DOMID_LIMIT)
        return -EINVAL;
    struct domain *d = domain_find(b, domid);
    if (!d)
        return -ESRCH;
    /* Connections first: they point at the domain's ports. */
    conn_close_domain(b, domid);
    domain_free(b, d);
    sim_store_domain_remove(b->store, domid);
    pvc_debug("domain %u destroyed", domid);
    return 0;
}
