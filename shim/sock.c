/*
 * The managed socket object: what the daemon handed us for one token.
 */
#include "shim.h"

#include "pvc/ext.h"
#include "pvc/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096u

static void unmap_ring(void *ring_map, size_t ring_len, void *shared,
                       struct pvc_evtchn *evt)
{
    /* map_ring() puts the state page right before the ring: one munmap,
     * one TLB shootdown for both. */
    if (shared && ring_map == (unsigned char *)shared + PAGE) {
        munmap(shared, PAGE + ring_len);
    } else {
        if (ring_map)
            munmap(ring_map, ring_len);
        if (shared)
            munmap(shared, PAGE);
    }
    if (evt) {
        /* The platform closes the channel's fds with close(), which is
         * ours: inside the shim it closes private fds for real. */
        shim_in_shim++;
        pvc_evtchn_close(evt);
        shim_in_shim--;
    }
}

static void sock_release(struct fdt_obj *obj)
{
    struct shim_sock *s = (struct shim_sock *)obj;
    int saved = errno;
    unmap_ring(s->ring_map, s->ring_len, s->shared, s->evt);
    unmap_ring(s->stale_ring_map, s->stale_ring_len, s->stale_shared,
               s->stale_evt);
    shim_obj_fini(&s->head);
    free(s);
    errno = saved;
}

void shim_sock_detach(struct shim_sock *s)
{
    /* Two failed connects ago is long enough for any reader. */
    unmap_ring(s->stale_ring_map, s->stale_ring_len, s->stale_shared,
               s->stale_evt);
    s->stale_ring_map = s->ring_map;
    s->stale_ring_len = s->ring_len;
    s->stale_shared = s->shared;
    s->stale_evt = s->evt;
    s->ring_map = NULL;
    s->shared = NULL;
    s->evt = NULL;
    s->evt_fd = -1;
}

void shim_sock_setup(void)
{
    fdt_set_release(sock_release);
}

struct shim_sock *shim_sock_new(uint64_t ino, int domain)
{
    struct shim_sock *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    shim_obj_init(&s->head, FDT_SOCK);
    s->ino = ino;
    s->domain = domain;
    atomic_init(&s->state, SHIM_CREATED);
    s->evt_fd = -1;
    s->born_epoch = atomic_load(&shim_fork_epoch);
    return s;
}

int shim_family_check(int domain)
{
    uint32_t ext, max_order;
    int err = shim_daemon_hello(&ext, &max_order);
    if (err)
        return err;
    if (domain == AF_INET6 && !(ext & PVC_EXT_IPV6))
        return -EAFNOSUPPORT;
    return 0;
}

static void close_fds(int *fds, int from, int to)
{
    for (int i = from; i < to; i++)
        if (fds[i] >= 0) {
            REAL(close)(fds[i]);
            fds[i] = -1;
        }
}

/*
 * Map the state page (state_fd) and the ring pages (ring_fd) as one
 * region, state page first: unmapping touched pages costs a TLB
 * shootdown per munmap (far more under shadow paging), and a socket's
 * life should pay for one.  Both are plain MAP_SHARED mappings of the
 * handed-off files, as pvc_grant_adopt() makes them (gntalloc refuses
 * MAP_PRIVATE), placed into a reservation that holds nothing.  Sets
 * s->ring and s->ring_map and returns the state page, or NULL with
 * *err.
 */
static void *map_ring(struct shim_sock *s, const struct pvc_fd_rsp *rsp,
                      int ring_fd, int state_fd, int *err)
{
    if (rsp->order < 1 || rsp->order > PVC_MAX_RING_ORDER) {
        *err = -EPROTO;
        return NULL;
    }
    if (rsp->ring_offset % PAGE || rsp->ring_offset > (uint64_t)INT64_MAX) {
        *err = -EINVAL; /* what pvc_grant_adopt() says */
        return NULL;
    }
    size_t ring_len = (size_t)(1u + (1u << rsp->order)) * PAGE;
    unsigned char *base = mmap(NULL, PAGE + ring_len, PROT_NONE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                               -1, 0);
    if (base == MAP_FAILED) {
        *err = -errno;
        return NULL;
    }
    int prot = PROT_READ | PROT_WRITE;
    if (mmap(base, PAGE, prot, MAP_SHARED | MAP_FIXED, state_fd, 0) ==
            MAP_FAILED ||
        mmap(base + PAGE, ring_len, prot, MAP_SHARED | MAP_FIXED, ring_fd,
             (off_t)rsp->ring_offset) == MAP_FAILED) {
        *err = -errno;
        munmap(base, PAGE + ring_len);
        return NULL;
    }
    struct pvcalls_data_intf *intf = (void *)(base + PAGE);
    if (__atomic_load_n(&intf->ring_order, __ATOMIC_RELAXED) != rsp->order) {
        *err = -EPROTO;
        munmap(base, PAGE + ring_len);
        return NULL;
    }
    s->ring_map = intf;
    s->ring_len = ring_len;
    pvc_data_ring_attach(&s->ring, intf, (unsigned char *)intf + PAGE,
                         rsp->order, PVC_SIDE_FRONT);
    return base;
}

int shim_sock_attach(struct shim_sock *s, const struct pvc_fd_rsp *rsp,
                     int *fds, int nfds, int first)
{
    int err = 0;
    if (rsp->evt_nfds < 1 || rsp->evt_nfds > PVC_HANDOFF_MAX_FDS ||
        nfds < first + 2 + (int)rsp->evt_nfds) {
        err = -EPROTO;
        goto out;
    }
    void *page = map_ring(s, rsp, fds[first], fds[first + 1], &err);
    if (!page)
        goto out;
    struct pvc_evtchn_handoff eh = {
        .kind = (enum pvc_platform_kind)rsp->evt_kind,
        .port = rsp->evt_port, .kick_port = rsp->evt_kick_port,
        .nfds = (int)rsp->evt_nfds,
    };
    /* The channel's fds live as long as the socket: the program must
     * not see them (close-everything loops, fd numbering). */
    for (int i = 0; i < eh.nfds; i++) {
        eh.fds[i] = shim_priv_fd(fds[first + 2 + i]);
        fds[first + 2 + i] = -1; /* adopt owns them, even on failure */
    }
    shim_in_shim++; /* its close() on failure must close private fds */
    s->evt = pvc_evtchn_adopt(&eh);
    shim_in_shim--;
    if (!s->evt) {
        err = -errno;
        /* The ring stays mapped (and is unmapped on release), as it
         * always did; only the state page goes. */
        munmap(page, PAGE);
        goto out;
    }
    s->evt_fd = pvc_evtchn_fd(s->evt);
    uint32_t ext = 0, max_order;
    s->waiting = shim_daemon_hello(&ext, &max_order) == 0 &&
                 (ext & PVC_EXT_WAITING);
    /* Last: a connecting socket's state page is how other threads learn
     * that everything above is in place (shim_conn_settle). */
    __atomic_store_n(&s->shared, (struct pvc_sock_shared *)page,
                     __ATOMIC_RELEASE);
out:
    close_fds(fds, first, nfds);
    return err;
}

/* A holder that died inside the critical section left the ring indexes
 * consistent (they are only ever published whole), so recovery is just
 * marking the mutex consistent. */
static void robust_lock(pthread_mutex_t *m)
{
    int r = pthread_mutex_lock(m);
    if (r == EOWNERDEAD)
        pthread_mutex_consistent(m);
}

void shim_lock_rx(struct shim_sock *s)
{
    robust_lock(&s->shared->rx_lock);
    pvc_data_ring_resync_rx(&s->ring);
}

void shim_unlock_rx(struct shim_sock *s)
{
    pthread_mutex_unlock(&s->shared->rx_lock);
}

void shim_lock_tx(struct shim_sock *s)
{
    robust_lock(&s->shared->tx_lock);
    pvc_data_ring_resync_tx(&s->ring);
}

void shim_unlock_tx(struct shim_sock *s)
{
    pthread_mutex_unlock(&s->shared->tx_lock);
}
