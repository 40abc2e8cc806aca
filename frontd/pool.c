/*
 * Data rings and state pages.  Allocating a ring (a grant share and an
 * event channel) takes broker or hypervisor round trips, so a few rings
 * of the default order are kept ready: CONNECT and ACCEPT take one and the
 * loop refills the pool after the batch.  A ring that has been offered to
 * the backend is never reused: it goes back to the platform.
 */
#include "frontd.h"

#include "pvc/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static struct fd_ring *ring_new(struct frontd *d, unsigned order)
{
    unsigned npages = 1 + (1u << order);
    struct fd_ring *r = calloc(1, sizeof(*r) + npages * sizeof(pvc_gref_t));
    if (!r)
        return NULL;
    r->order = order;
    r->npages = npages;
    if (pvc_grant_share(d->plat, d->fe.be_domid, npages, 0, &r->pages,
                        r->refs) < 0) {
        free(r);
        return NULL;
    }
    r->evtchn = pvc_evtchn_alloc_unbound(d->plat, d->fe.be_domid);
    if (!r->evtchn) {
        int err = errno;
        pvc_grant_unshare(d->plat, r->pages, npages);
        free(r);
        errno = err;
        return NULL;
    }
    pvc_data_ring_init_intf(r->pages, order, r->refs + 1);
    d->grants_used += npages;
    return r;
}

void ring_free(struct frontd *d, struct fd_ring *r)
{
    if (!r)
        return;
    pvc_loop_del(d->loop, &r->watch);
    pvc_evtchn_close(r->evtchn);
    pvc_grant_unshare(d->plat, r->pages, r->npages);
    d->grants_used -= r->npages;
    free(r);
}

struct fd_ring *pool_take(struct frontd *d, unsigned order)
{
    order = ring_budget_order(order, d->grants_used, d->grant_budget);
    if (order == d->order && d->pool_n > 0)
        return d->pool[--d->pool_n];
    struct fd_ring *r = ring_new(d, order);
    if (!r)
        pvc_warn("ring of order %u: %s", order, strerror(errno));
    return r;
}

void pool_refill(struct frontd *d)
{
    unsigned want = d->cfg.pool < FRONTD_MAX_POOL ? d->cfg.pool
                                                  : FRONTD_MAX_POOL;
    /* Under budget pressure new rings are smaller than the pool's. */
    while (d->connected && d->pool_n < want &&
           ring_budget_order(d->order, d->grants_used, d->grant_budget) ==
               d->order) {
        struct fd_ring *r = ring_new(d, d->order);
        if (!r) {
            pvc_warn("ring pool: %s", strerror(errno));
            return;
        }
        d->pool[d->pool_n++] = r;
    }
}

void pool_flush(struct frontd *d)
{
    while (d->pool_n > 0)
        ring_free(d, d->pool[--d->pool_n]);
}

/* Robust and process-shared: a holder killed inside a critical section
 * leaves the lock recoverable (EOWNERDEAD) for the others. */
static int init_shared_mutex(pthread_mutex_t *m)
{
    pthread_mutexattr_t a;
    if (pthread_mutexattr_init(&a))
        return -1;
    int rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) ||
             pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) ||
             pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
    return rc ? -1 : 0;
}

struct pvc_sock_shared *state_page_map(int fd)
{
    void *st = mmap(NULL, PVC_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                    fd, 0);
    return st == MAP_FAILED ? NULL : st;
}

void state_page_unmap(struct pvc_sock_shared *st)
{
    if (st)
        munmap(st, PVC_PAGE_SIZE);
}

/*
 * A fresh state page is written, not mapped: touching a page of a new
 * mapping and unmapping it again costs a page fault and a TLB shootdown,
 * tens of microseconds each (far more under shadow paging), against one
 * pwrite().  The content is a template initialised once by
 * pthread_mutex_init(): an unlocked process-shared robust mutex holds no
 * address or owner (glibc fills in only its kind; the robust-list links
 * are set while it is locked), so its bytes are the same wherever the
 * initialisation runs.  The template itself is never locked.
 */
static union {
    struct pvc_sock_shared st;
    unsigned char page[PVC_PAGE_SIZE];
} state_template;
static int state_template_err;
static pthread_once_t state_template_once = PTHREAD_ONCE_INIT;

static void state_template_init(void)
{
    if (init_shared_mutex(&state_template.st.rx_lock) ||
        init_shared_mutex(&state_template.st.tx_lock))
        state_template_err = ENOMEM;
}

int state_page_new(void)
{
    pthread_once(&state_template_once, state_template_init);
    if (state_template_err) {
        errno = state_template_err;
        return -1;
    }
    int fd = memfd_create("pvcalls-sock-state", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    /* Writing the whole page also sizes the file. */
    ssize_t n = pwrite(fd, state_template.page, PVC_PAGE_SIZE, 0);
    if (n == (ssize_t)PVC_PAGE_SIZE)
        return fd;
    int err = n < 0 ? errno : EIO;
    close(fd);
    errno = err;
    return -1;
}
