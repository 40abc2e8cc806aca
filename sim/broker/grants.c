/*
 * Grant tables: GNT_SHARE, GNT_UNSHARE, GNT_MAP.
 *
 * Each domain has its own table, ref -> (memfd page, peer, readonly).
 * The memory of a share is one memfd; the owner maps it whole, a mapper
 * gets the memfds holding the pages it asked for and maps page by page.
 * Memory is never recycled between shares (a new share is a new memfd),
 * so a ref reused after GNT_UNSHARE can never expose an old page: it
 * names a fresh page granted to whoever the new share names.
 */
#include "broker.h"

#include "pvc/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static void memobj_put(struct memobj *m)
{
    if (--m->users)
        return;
    close(m->fd_rw);
    if (m->fd_ro >= 0)
        close(m->fd_ro);
    free(m);
}

/* A read-only open file description of the same memfd: mapping it
 * PROT_WRITE with MAP_SHARED fails with EACCES, so a read-only grant
 * stays read-only even though the mapper holds the fd. */
static int reopen_readonly(int fd)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    return open(path, O_RDONLY | O_CLOEXEC);
}

static struct memobj *memobj_new(unsigned npages, bool readonly)
{
    struct memobj *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->fd_ro = -1;
    m->fd_rw = memfd_create("pvc-grant", MFD_CLOEXEC);
    if (m->fd_rw < 0)
        goto fail;
    if (ftruncate(m->fd_rw, (off_t)npages * SIM_PAGE_SIZE) < 0)
        goto fail;
    if (readonly && (m->fd_ro = reopen_readonly(m->fd_rw)) < 0)
        goto fail;
    return m;
fail:;
    int saved = errno;
    if (m->fd_rw >= 0)
        close(m->fd_rw);
    free(m);
    errno = saved;
    return NULL;
}

static struct grant *grant_find(struct domain *d, uint32_t ref)
{
    struct grant *g;
    HASH_FIND(hh, d->grants, &ref, sizeof(ref), g);
    return g;
}

static void grant_remove(struct domain *d, struct grant *g)
{
    HASH_DEL(d->grants, g);
    memobj_put(g->mem);
    free(g);
    d->ngrants--;
}

void grants_free_all(struct domain *d)
{
    struct grant *g, *tmp;
    HASH_ITER(hh, d->grants, g, tmp)
        grant_remove(d, g);
}

/* A ref that is neither 0 nor in use.  Refs count up and wrap, so a
 * freed ref is reused as late as possible. */
static uint32_t ref_alloc(struct domain *d)
{
    for (;;) {
        uint32_t ref = d->next_ref++;
        if (ref != 0 && !grant_find(d, ref))
            return ref;
    }
}

static bool valid_npages(uint32_t count)
{
    return count >= 1 && count <= SIM_MAX_REFS;
}

int op_gnt_share(struct conn *c, const struct request *rq, struct reply *rp)
{
    struct domain *d = domain_find(c->broker, c->domid);
    uint32_t npages = rq->msg->count;
    bool readonly = rq->msg->flags & SIM_F_READONLY;
    if (!valid_npages(npages) || (rq->msg->flags & ~SIM_F_READONLY) ||
        rq->msg->peer >= SIM_DOMID_LIMIT)
        return -EINVAL;
    if (d->ngrants + npages > SIM_MAX_GRANTS_PER_DOMAIN)
        return -ENOSPC;
    struct memobj *m = memobj_new(npages, readonly);
    if (!m)
        return -errno;
    for (uint32_t i = 0; i < npages; i++) {
        struct grant *g = calloc(1, sizeof(*g));
        if (!g) {
            /* Undo the pages granted so far (each holds m). */
            m->users++;
            for (uint32_t j = 0; j < i; j++)
                grant_remove(d, grant_find(d, rp->var[j]));
            memobj_put(m);
            return -ENOMEM;
        }
        g->ref = ref_alloc(d);
        g->mem = m;
        g->page = i;
        g->peer = (pvc_domid_t)rq->msg->peer;
        g->readonly = readonly;
        m->users++;
        HASH_ADD(hh, d->grants, ref, sizeof(g->ref), g);
        d->ngrants++;
        rp->var[i] = g->ref;
    }
    rp->nvar = npages;
    rp->msg.count = npages;
    reply_add_fd(rp, m->fd_rw, false);
    pvc_debug("domain %u shared %u pages with %u (refs %u..)", c->domid,
              npages, rq->msg->peer, rp->var[0]);
    return 0;
}

int op_gnt_unshare(struct conn *c, const struct request *rq,
                   struct reply *rp)
{
    (void)rp;
    struct domain *d = domain_find(c->broker, c->domid);
    if (!valid_npages(rq->msg->count))
        return -EINVAL;
    /* All or nothing: check every ref before removing any. */
    for (size_t i = 0; i < rq->nvar; i++)
        if (!grant_find(d, rq->var[i]))
            return -ENOENT;
    for (size_t i = 0; i < rq->nvar; i++) {
        struct grant *g = grant_find(d, rq->var[i]);
        if (g) /* a ref listed twice is gone the second time */
            grant_remove(d, g);
    }
    return 0;
}

/* The fd index of m in the reply, adding it if new; -1 when full. */
static int map_fd_index(struct memobj **mems, unsigned *nmems,
                        struct memobj *m)
{
    for (unsigned i = 0; i < *nmems; i++)
        if (mems[i] == m)
            return (int)i;
    if (*nmems == SIM_MAX_FDS)
        return -1;
    mems[*nmems] = m;
    return (int)(*nmems)++;
}

/* Whether the caller may map g with the access it asked for. */
static int grant_check(const struct grant *g, pvc_domid_t caller,
                       bool readonly)
{
    if (!g)
        return -ENOENT;
    if (g->peer != caller)
        return -EPERM;
    if (g->readonly && !readonly)
        return -EACCES;
    return 0;
}

int op_gnt_map(struct conn *c, const struct request *rq, struct reply *rp)
{
    uint32_t npages = rq->msg->count;
    bool readonly = rq->msg->flags & SIM_F_READONLY;
    if (!valid_npages(npages) || (rq->msg->flags & ~SIM_F_READONLY))
        return -EINVAL;
    if (rq->msg->peer >= SIM_DOMID_LIMIT)
        return -ENOENT;
    struct domain *granter = domain_find(c->broker, rq->msg->peer);
    if (!granter)
        return -ENOENT;
    struct memobj *mems[SIM_MAX_FDS];
    unsigned nmems = 0;
    for (uint32_t i = 0; i < npages; i++) {
        struct grant *g = grant_find(granter, rq->var[i]);
        int rc = grant_check(g, c->domid, readonly);
        if (rc)
            return rc;
        int idx = map_fd_index(mems, &nmems, g->mem);
        if (idx < 0)
            return -E2BIG;
        rp->var[2 * i] = (uint32_t)idx;
        rp->var[2 * i + 1] = g->page;
    }
    for (unsigned i = 0; i < nmems; i++)
        reply_add_fd(rp, mems[i]->fd_ro >= 0 ? mems[i]->fd_ro
                                             : mems[i]->fd_rw, false);
    rp->nvar = 2 * npages;
    rp->msg.count = npages;
    return 0;
}
