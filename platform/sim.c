/*
 * The platform layer on the simulated platform: the client side of the
 * broker protocol (include/pvc/sim_proto.h).
 *
 * Grants are pages of memfds the broker hands out; event channels are a
 * pair of eventfds; the store is the broker's per-domain xenstored socket
 * reached through the real libxenstore.  One broker connection per
 * platform handle, used synchronously (one request, one reply) under a
 * mutex so that several threads may share the handle.
 */
#include "sim_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xenstore.h>

#define SIM_DOMID_LIMIT 0x7FF0u /* DOMID_FIRST_RESERVED */

static struct sim_platform *sim_of(struct pvc_platform *plat)
{
    return plat->priv;
}

/* ---- open / close -------------------------------------------------- */

static int choose_domid(const struct pvc_platform_opts *opts)
{
    long domid = opts->sim_domid;
    if (domid < 0) {
        const char *env = getenv("PVC_SIM_DOMID");
        domid = 0;
        if (env && *env) {
            char *end;
            errno = 0;
            domid = strtol(env, &end, 10);
            if (errno || *end)
                return -1;
        }
    }
    return domid >= 0 && domid < SIM_DOMID_LIMIT ? (int)domid : -1;
}

static int choose_dir(const struct pvc_platform_opts *opts, char *buf,
                      size_t len)
{
    const char *dir = opts->sim_dir;
    if (!dir || !*dir)
        dir = getenv("PVC_SIM_DIR");
    if (!dir || !*dir) {
        pvc_sim_default_dir(buf, len);
        return 0;
    }
    int n = snprintf(buf, len, "%s", dir);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

static int sim_open(struct pvc_platform *plat,
                    const struct pvc_platform_opts *opts)
{
    int domid = choose_domid(opts);
    if (domid < 0) {
        errno = EINVAL;
        return -1;
    }
    struct sim_platform *sp = calloc(1, sizeof(*sp));
    if (!sp)
        return -1;
    pthread_mutex_init(&sp->lock, NULL);
    if (choose_dir(opts, sp->dir, sizeof(sp->dir)) < 0) {
        errno = ENAMETOOLONG;
        goto fail;
    }
    if ((sp->fd = sim_broker_connect(sp->dir)) < 0)
        goto fail;
    struct call c = { .rq = { .op = SIM_OP_HELLO, .domid = (uint32_t)domid } };
    if (sim_call(sp, &c) < 0) {
        int saved = errno;
        close(sp->fd);
        errno = saved;
        goto fail;
    }
    plat->domid = (pvc_domid_t)domid;
    plat->priv = sp;
    return 0;
fail:;
    int saved = errno;
    pthread_mutex_destroy(&sp->lock);
    free(sp);
    errno = saved;
    return -1;
}

static void sim_close(struct pvc_platform *plat)
{
    struct sim_platform *sp = sim_of(plat);
    struct share *s, *tmp;
    /* Shares still in place stay granted (as on Xen, where grants are
     * the domain's, not the process's); only our mappings go. */
    HASH_ITER(hh, sp->shares, s, tmp) {
        HASH_DEL(sp->shares, s);
        munmap(s->addr, (size_t)s->npages * PVC_PAGE_SIZE);
        close(s->memfd);
        free(s);
    }
    close(sp->fd);
    pthread_mutex_destroy(&sp->lock);
    free(sp);
}

/* ---- grants -------------------------------------------------------- */

static int unshare_refs_locked(struct sim_platform *sp, const pvc_gref_t *refs,
                               unsigned npages)
{
    struct call c = {
        .rq = { .op = SIM_OP_GNT_UNSHARE, .count = npages },
        .rq_var = refs, .rq_nvar = npages,
    };
    return sim_call_locked(sp, &c);
}

/* Ask the broker for npages fresh pages granted to peer and map them;
 * the share is recorded in s.  Caller holds the lock. */
static int share_locked(struct sim_platform *sp, pvc_domid_t peer,
                        unsigned npages, int readonly, struct share *s)
{
    int memfd = -1;
    struct call c = {
        .rq = { .op = SIM_OP_GNT_SHARE, .peer = peer, .count = npages,
                .flags = readonly ? SIM_F_READONLY : 0 },
        .rp_var = s->refs, .rp_var_cap = npages,
        .fds = &memfd, .fds_cap = 1,
    };
    if (sim_call_locked(sp, &c) < 0)
        return -1;
    s->addr = MAP_FAILED;
    if (c.nfds != 1 || c.rp.count != npages || c.rp_nvar != npages)
        errno = EPROTO;
    else
        s->addr = mmap(NULL, (size_t)npages * PVC_PAGE_SIZE,
                       PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    int saved = errno;
    if (s->addr == MAP_FAILED) {
        if (memfd >= 0)
            close(memfd);
        /* The broker granted pages we cannot use: give them back. */
        if (c.rp_nvar == npages)
            unshare_refs_locked(sp, s->refs, npages);
        errno = saved;
        return -1;
    }
    s->npages = npages;
    s->memfd = memfd;
    HASH_ADD_PTR(sp->shares, addr, s);
    return 0;
}

static int sim_grant_share(struct pvc_platform *plat, pvc_domid_t peer,
                           unsigned npages, int readonly, void **addr,
                           pvc_gref_t *refs)
{
    struct sim_platform *sp = sim_of(plat);
    if (npages > SIM_MAX_REFS) {
        errno = EINVAL;
        return -1;
    }
    struct share *s = malloc(sizeof(*s) + npages * sizeof(pvc_gref_t));
    if (!s)
        return -1;
    pthread_mutex_lock(&sp->lock);
    int rc = share_locked(sp, peer, npages, readonly, s);
    int saved = errno;
    if (rc == 0) {
        /* Before unlocking: from then on another thread may unshare. */
        memcpy(refs, s->refs, npages * sizeof(pvc_gref_t));
        *addr = s->addr;
    }
    pthread_mutex_unlock(&sp->lock);
    if (rc < 0) {
        free(s);
        errno = saved;
    }
    return rc;
}

static int sim_grant_unshare(struct pvc_platform *plat, void *addr,
                             unsigned npages)
{
    struct sim_platform *sp = sim_of(plat);
    struct share *s;
    pthread_mutex_lock(&sp->lock);
    HASH_FIND_PTR(sp->shares, &addr, s);
    if (!s || s->npages != npages) {
        pthread_mutex_unlock(&sp->lock);
        errno = EINVAL;
        return -1;
    }
    HASH_DEL(sp->shares, s);
    int rc = unshare_refs_locked(sp, s->refs, npages);
    int saved = errno;
    pthread_mutex_unlock(&sp->lock);
    munmap(s->addr, (size_t)npages * PVC_PAGE_SIZE);
    close(s->memfd);
    free(s);
    errno = saved;
    return rc;
}

/* The share's own memfd holds exactly its pages, from offset 0: a dup of
 * it gives the receiver these pages and nothing else. */
static int sim_grant_handoff(struct pvc_platform *plat, void *addr,
                             struct pvc_grant_handoff *out)
{
    struct sim_platform *sp = sim_of(plat);
    struct share *s;
    pthread_mutex_lock(&sp->lock);
    HASH_FIND_PTR(sp->shares, &addr, s);
    int fd = s ? fcntl(s->memfd, F_DUPFD_CLOEXEC, 0) : -1;
    unsigned npages = s ? s->npages : 0;
    int saved = s ? errno : EINVAL;
    pthread_mutex_unlock(&sp->lock);
    if (fd < 0) {
        errno = saved;
        return -1;
    }
    *out = (struct pvc_grant_handoff){ .kind = PVC_PLATFORM_SIM, .fd = fd,
                                       .offset = 0, .npages = npages };
    return 0;
}

/* Each fd must hold every page the reply points into. */
static int check_pages(const uint32_t *pairs, unsigned npages,
                       const int *fds, unsigned nfds)
{
    off_t size[SIM_MAX_FDS];
    for (unsigned i = 0; i < nfds; i++) {
        struct stat st;
        if (fstat(fds[i], &st) < 0)
            return -1;
        size[i] = st.st_size;
    }
    for (unsigned i = 0; i < npages; i++) {
        uint32_t idx = pairs[2 * i], page = pairs[2 * i + 1];
        if (idx >= nfds ||
            ((off_t)page + 1) * PVC_PAGE_SIZE > size[idx]) {
            errno = EPROTO;
            return -1;
        }
    }
    return 0;
}

/* check_pages() made sure the page is in the file: a short read means
 * the file shrank under us (it never does). */
static int pread_all(int fd, void *buf, size_t len, off_t at)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done,
                          at + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EPROTO;
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

/* Whether the pages are consecutive pages of one memfd. */
static int one_run(const uint32_t *pairs, unsigned npages)
{
    for (unsigned i = 1; i < npages; i++)
        if (pairs[2 * i] != pairs[0] || pairs[2 * i + 1] != pairs[1] + i)
            return 0;
    return 1;
}

/* Map the pages into the reserved region, one mmap per run of pages
 * that are contiguous in the same memfd. */
static int map_pages(char *base, const uint32_t *pairs, unsigned npages,
                     const int *fds, int prot)
{
    unsigned i = 0;
    while (i < npages) {
        unsigned run = 1;
        while (i + run < npages && pairs[2 * (i + run)] == pairs[2 * i] &&
               pairs[2 * (i + run) + 1] == pairs[2 * i + 1] + run)
            run++;
        void *p = mmap(base + (size_t)i * PVC_PAGE_SIZE,
                       (size_t)run * PVC_PAGE_SIZE, prot,
                       MAP_SHARED | MAP_FIXED, fds[pairs[2 * i]],
                       (off_t)pairs[2 * i + 1] * PVC_PAGE_SIZE);
        if (p == MAP_FAILED)
            return -1;
        i += run;
    }
    return 0;
}

static void *sim_grant_map(struct pvc_platform *plat, pvc_domid_t peer,
                           unsigned npages, const pvc_gref_t *refs,
                           int readonly)
{
    struct sim_platform *sp = sim_of(plat);
    if (npages > SIM_MAX_REFS) {
        errno = EINVAL;
        return NULL;
    }
    uint32_t *pairs = malloc(2 * npages * sizeof(uint32_t));
    if (!pairs)
        return NULL;
    int fds[SIM_MAX_FDS];
    struct call c = {
        .rq = { .op = SIM_OP_GNT_MAP, .peer = peer, .count = npages,
                .flags = readonly ? SIM_F_READONLY : 0 },
        .rq_var = refs, .rq_nvar = npages,
        .rp_var = pairs, .rp_var_cap = 2 * npages,
        .fds = fds, .fds_cap = SIM_MAX_FDS,
    };
    char *base = MAP_FAILED;
    size_t len = (size_t)npages * PVC_PAGE_SIZE;
    if (sim_call(sp, &c) < 0)
        goto out;
    if (c.rp.count != npages || c.rp_nvar != 2 * npages) {
        errno = EPROTO;
        goto out;
    }
    if (check_pages(pairs, npages, fds, c.nfds) < 0)
        goto out;
    int prot = readonly ? PROT_READ : PROT_READ | PROT_WRITE;
    if (one_run(pairs, npages)) {
        /* The usual case (one share, in order): a single mapping. */
        base = mmap(NULL, len, prot, MAP_SHARED, fds[pairs[0]],
                    (off_t)pairs[1] * PVC_PAGE_SIZE);
        goto out;
    }
    /* Reserve the whole range first so that pages from different memfds
     * land contiguously. */
    base = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
                MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        goto out;
    if (map_pages(base, pairs, npages, fds, prot) < 0) {
        int saved = errno;
        munmap(base, len);
        base = MAP_FAILED;
        errno = saved;
    }
out:;
    int saved = errno;
    sim_close_fds(fds, c.nfds);
    free(pairs);
    errno = saved;
    return base == MAP_FAILED ? NULL : base;
}

static int sim_grant_unmap(struct pvc_platform *plat, void *addr,
                           unsigned npages)
{
    (void)plat;
    return munmap(addr, (size_t)npages * PVC_PAGE_SIZE);
}

/* The broker has no copy operation: it hands out the page's memfd as for
 * a one-page map (read-only access is enough), which we read with
 * pread() instead of mapping. */
static int sim_grant_read(struct pvc_platform *plat, pvc_domid_t peer,
                          pvc_gref_t ref, size_t offset, void *buf,
                          size_t len)
{
    struct sim_platform *sp = sim_of(plat);
    uint32_t pair[2];
    int fds[SIM_MAX_FDS];
    struct call c = {
        .rq = { .op = SIM_OP_GNT_MAP, .peer = peer, .count = 1,
                .flags = SIM_F_READONLY },
        .rq_var = &ref, .rq_nvar = 1,
        .rp_var = pair, .rp_var_cap = 2,
        .fds = fds, .fds_cap = SIM_MAX_FDS,
    };
    if (sim_call(sp, &c) < 0)
        return -1;
    int rc = -1;
    if (c.rp.count != 1 || c.rp_nvar != 2)
        errno = EPROTO;
    else if (check_pages(pair, 1, fds, c.nfds) == 0)
        rc = pread_all(fds[pair[0]], buf, len,
                       (off_t)pair[1] * PVC_PAGE_SIZE + (off_t)offset);
    int saved = errno;
    sim_close_fds(fds, c.nfds);
    errno = saved;
    return rc;
}

/* ---- event channels ------------------------------------------------ */

static void sim_evtchn_close(struct pvc_evtchn *head);

static const struct pvc_evtchn_ops sim_evtchn_ops = {
    .notify = pvc_sim_evtchn_notify,
    .ack = pvc_sim_evtchn_ack,
    .kick_local = pvc_sim_evtchn_kick_local,
    .handoff = pvc_sim_evtchn_handoff,
    .close = sim_evtchn_close,
};

static struct pvc_evtchn *evtchn_call(struct pvc_platform *plat,
                                      struct sim_msg rq)
{
    struct sim_platform *sp = sim_of(plat);
    struct pvc_sim_evtchn *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return NULL;
    int fds[2];
    struct call c = { .rq = rq, .fds = fds, .fds_cap = 2 };
    if (sim_call(sp, &c) < 0)
        goto fail;
    if (c.nfds != 2) {
        sim_close_fds(fds, c.nfds);
        errno = EPROTO;
        goto fail;
    }
    ch->head.ops = &sim_evtchn_ops;
    ch->head.plat = plat;
    ch->head.port = c.rp.port;
    ch->head.fd = fds[0];
    ch->tx = fds[1];
    return &ch->head;
fail:;
    int saved = errno;
    free(ch);
    errno = saved;
    return NULL;
}

static struct pvc_evtchn *sim_evtchn_alloc_unbound(struct pvc_platform *plat,
                                                   pvc_domid_t peer)
{
    return evtchn_call(plat, (struct sim_msg){
        .op = SIM_OP_EVT_ALLOC_UNBOUND, .peer = peer });
}

static struct pvc_evtchn *
sim_evtchn_bind_interdomain(struct pvc_platform *plat, pvc_domid_t peer,
                            pvc_port_t remote_port)
{
    return evtchn_call(plat, (struct sim_msg){
        .op = SIM_OP_EVT_BIND_INTERDOMAIN, .peer = peer,
        .port = remote_port });
}

static void sim_evtchn_close(struct pvc_evtchn *head)
{
    struct pvc_sim_evtchn *ch = (struct pvc_sim_evtchn *)head;
    struct call c = { .rq = { .op = SIM_OP_EVT_CLOSE, .port = head->port } };
    sim_call(sim_of(head->plat), &c);
    close(head->fd);
    close(ch->tx);
    free(ch);
}

/* ---- store --------------------------------------------------------- */

/* libxenstore connects to $XENSTORED_PATH when that is a socket; the
 * socket of our own domain is what makes us that domain in the store.
 * The variable stays set, so that xenstore-* commands we spawn use the
 * same store. */
static struct xs_handle *sim_store_open(struct pvc_platform *plat)
{
    struct sim_platform *sp = sim_of(plat);
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/%s/%u.sock", sp->dir,
                     SIM_STORE_DIR, plat->domid);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    pthread_mutex_lock(&sp->lock);
    struct xs_handle *xs = NULL;
    if (setenv("XENSTORED_PATH", path, 1) == 0)
        xs = xs_open(0);
    int saved = errno;
    pthread_mutex_unlock(&sp->lock);
    errno = saved;
    return xs;
}

const struct pvc_platform_ops pvc_platform_sim_ops = {
    .name = "sim",
    .open = sim_open,
    .close = sim_close,
    .grant_share = sim_grant_share,
    .grant_unshare = sim_grant_unshare,
    .grant_map = sim_grant_map,
    .grant_unmap = sim_grant_unmap,
    .grant_read = sim_grant_read,
    .evtchn_alloc_unbound = sim_evtchn_alloc_unbound,
    .evtchn_bind_interdomain = sim_evtchn_bind_interdomain,
    .store_open = sim_store_open,
    .grant_handoff = sim_grant_handoff,
};
