/*
 * The platform layer on real Xen: libxengntshr (gntalloc) to share pages,
 * libxengnttab (gntdev) to map a peer's pages, libxenevtchn for event
 * channels, libxenstore for the store, each used as its header documents.
 *
 * VERIFIED ONLY ON REAL XEN (issue 5): nothing here can run on a machine
 * without /dev/xen; the test suite exercises the same interface through
 * platform/sim.c.  It is compiled with -Werror on every build so that it
 * cannot rot, but its behaviour is checked by the Xen-in-QEMU harness
 * only (scripts/, research notes §6).
 *
 * Each event channel gets its own xenevtchn handle, hence its own fd: a
 * channel can then be polled on its own and handed to another process
 * with SCM_RIGHTS without giving away the others.  The grant handles are
 * opened on first use, so that a frontend does not need gntdev nor a
 * backend gntalloc.
 */
#include "platform_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>
#include <xen/xen.h>
#include <xen/grant_table.h>

struct xen_platform {
    pthread_mutex_t lock;     /* lazy opening of the handles below */
    xengntshr_handle *gntshr; /* gntalloc: pages we share */
    xengnttab_handle *gnttab; /* gntdev: pages we map */
};

struct xen_evtchn {
    struct pvc_evtchn head;   /* head.fd = xenevtchn_fd(xce) */
    xenevtchn_handle *xce;
};

static struct xen_platform *xen_of(struct pvc_platform *plat)
{
    return plat->priv;
}

/* Our domid: the "domid" key the toolstack writes in each domain's own
 * directory (a relative path resolves there).  dom0's may be missing
 * when xen-init-dom0 has not run; then we are dom0. */
static pvc_domid_t read_own_domid(void)
{
    struct xs_handle *xs = xs_open(0);
    if (!xs)
        return 0;
    unsigned len = 0;
    char *val = xs_read(xs, XBT_NULL, "domid", &len);
    long domid = 0;
    if (val) {
        char *end;
        domid = strtol(val, &end, 10);
        if (*end || domid < 0 || domid >= 0x7FF0)
            domid = 0;
        free(val);
    }
    xs_close(xs);
    return (pvc_domid_t)domid;
}

static int xen_open(struct pvc_platform *plat,
                    const struct pvc_platform_opts *opts)
{
    (void)opts;
    struct xen_platform *xp = calloc(1, sizeof(*xp));
    if (!xp)
        return -1;
    pthread_mutex_init(&xp->lock, NULL);
    plat->priv = xp;
    plat->domid = read_own_domid();
    return 0;
}

static void xen_close(struct pvc_platform *plat)
{
    struct xen_platform *xp = xen_of(plat);
    if (xp->gntshr)
        xengntshr_close(xp->gntshr);
    if (xp->gnttab)
        xengnttab_close(xp->gnttab);
    pthread_mutex_destroy(&xp->lock);
    free(xp);
}

static xengntshr_handle *gntshr_get(struct xen_platform *xp)
{
    pthread_mutex_lock(&xp->lock);
    if (!xp->gntshr)
        xp->gntshr = xengntshr_open(NULL, 0);
    xengntshr_handle *h = xp->gntshr;
    int saved = errno;
    pthread_mutex_unlock(&xp->lock);
    errno = saved;
    return h;
}

static xengnttab_handle *gnttab_get(struct xen_platform *xp)
{
    pthread_mutex_lock(&xp->lock);
    if (!xp->gnttab)
        xp->gnttab = xengnttab_open(NULL, 0);
    xengnttab_handle *h = xp->gnttab;
    int saved = errno;
    pthread_mutex_unlock(&xp->lock);
    errno = saved;
    return h;
}

/* ---- grants -------------------------------------------------------- */

static int xen_grant_share(struct pvc_platform *plat, pvc_domid_t peer,
                           unsigned npages, int readonly, void **addr,
                           pvc_gref_t *refs)
{
    xengntshr_handle *h = gntshr_get(xen_of(plat));
    if (!h)
        return -1;
    if (npages > INT32_MAX) {
        errno = EINVAL;
        return -1;
    }
    /* gntalloc hands out zeroed pages, mapped contiguously. */
    void *p = xengntshr_share_pages(h, peer, (int)npages, refs, !readonly);
    if (!p)
        return -1;
    *addr = p;
    return 0;
}

static int xen_grant_unshare(struct pvc_platform *plat, void *addr,
                             unsigned npages)
{
    xengntshr_handle *h = gntshr_get(xen_of(plat));
    if (!h)
        return -1;
    return xengntshr_unshare(h, addr, npages);
}

static void *xen_grant_map(struct pvc_platform *plat, pvc_domid_t peer,
                           unsigned npages, const pvc_gref_t *refs,
                           int readonly)
{
    xengnttab_handle *h = gnttab_get(xen_of(plat));
    if (!h)
        return NULL;
    /* The library's prototype takes a non-const array. */
    uint32_t *copy = malloc(npages * sizeof(uint32_t));
    if (!copy)
        return NULL;
    memcpy(copy, refs, npages * sizeof(uint32_t));
    int prot = readonly ? PROT_READ : PROT_READ | PROT_WRITE;
    void *p = xengnttab_map_domain_grant_refs(h, npages, peer, copy, prot);
    int saved = errno;
    free(copy);
    errno = saved;
    return p;
}

static int xen_grant_unmap(struct pvc_platform *plat, void *addr,
                           unsigned npages)
{
    xengnttab_handle *h = gnttab_get(xen_of(plat));
    if (!h)
        return -1;
    return xengnttab_unmap(h, addr, npages);
}

/* GNTTABOP_copy from the granted page into ours: no mapping. */
static int xen_grant_read(struct pvc_platform *plat, pvc_domid_t peer,
                          pvc_gref_t ref, size_t offset, void *buf,
                          size_t len)
{
    if (len == 0)
        return 0;
    xengnttab_handle *h = gnttab_get(xen_of(plat));
    if (!h)
        return -1;
    xengnttab_grant_copy_segment_t seg = {
        .source.foreign = { .ref = ref, .offset = (uint16_t)offset,
                            .domid = peer },
        .dest.virt = buf,
        .len = (uint16_t)len,
        .flags = GNTCOPY_source_gref,
    };
    if (xengnttab_grant_copy(h, 1, &seg) < 0)
        return -1;
    if (seg.status != GNTST_okay) {
        /* Bad ref, not granted to us: what a failed map reports. */
        errno = seg.status == GNTST_permission_denied ? EPERM : EINVAL;
        return -1;
    }
    return 0;
}

/* Handing pages to another process needs a gntalloc file opened for that
 * client (so that it can reach its own rings only), which the share
 * above does not have: ISSUE 5 gives each client its own gntshr handle
 * and shares that client's rings through it.  Until then: ENOSYS. */
static int xen_grant_handoff(struct pvc_platform *plat, void *addr,
                             struct pvc_grant_handoff *out)
{
    (void)plat, (void)addr, (void)out;
    errno = ENOSYS;
    return -1;
}

/* ---- event channels ------------------------------------------------ */

static const struct pvc_evtchn_ops xen_evtchn_ops;

static struct xen_evtchn *evtchn_new(struct pvc_platform *plat)
{
    struct xen_evtchn *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return NULL;
    ch->xce = xenevtchn_open(NULL, 0);
    if (!ch->xce) {
        int saved = errno;
        free(ch);
        errno = saved;
        return NULL;
    }
    ch->head.ops = &xen_evtchn_ops;
    ch->head.plat = plat;
    ch->head.fd = xenevtchn_fd(ch->xce);
    /* Belt and braces: ack polls before each xenevtchn_pending() as the
     * header demands, but a non-blocking fd cannot hang us either. */
    int fl = fcntl(ch->head.fd, F_GETFL);
    if (fl >= 0)
        fcntl(ch->head.fd, F_SETFL, fl | O_NONBLOCK);
    return ch;
}

static struct pvc_evtchn *evtchn_bound(struct xen_evtchn *ch,
                                       xenevtchn_port_or_error_t port)
{
    if (port < 0) {
        int saved = errno;
        xenevtchn_close(ch->xce);
        free(ch);
        errno = saved;
        return NULL;
    }
    ch->head.port = (pvc_port_t)port;
    return &ch->head;
}

static struct pvc_evtchn *xen_evtchn_alloc_unbound(struct pvc_platform *plat,
                                                   pvc_domid_t peer)
{
    struct xen_evtchn *ch = evtchn_new(plat);
    if (!ch)
        return NULL;
    return evtchn_bound(ch, xenevtchn_bind_unbound_port(ch->xce, peer));
}

static struct pvc_evtchn *
xen_evtchn_bind_interdomain(struct pvc_platform *plat, pvc_domid_t peer,
                            pvc_port_t remote_port)
{
    struct xen_evtchn *ch = evtchn_new(plat);
    if (!ch)
        return NULL;
    return evtchn_bound(ch, xenevtchn_bind_interdomain(ch->xce, peer,
                                                       remote_port));
}

static int xen_evtchn_notify(struct pvc_evtchn *head)
{
    struct xen_evtchn *ch = (struct xen_evtchn *)head;
    return xenevtchn_notify(ch->xce, head->port);
}

static int readable_now(int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    int n;
    while ((n = poll(&pfd, 1, 0)) < 0 && errno == EINTR)
        ;
    return n > 0 && (pfd.revents & POLLIN);
}

/* The kernel masks a port when it delivers its event; read every pending
 * port off the handle and unmask it, until none is left.  The handle
 * carries only this channel, so any port read is ours. */
static int xen_evtchn_ack(struct pvc_evtchn *head)
{
    struct xen_evtchn *ch = (struct xen_evtchn *)head;
    int consumed = 0;
    while (readable_now(head->fd)) {
        xenevtchn_port_or_error_t port = xenevtchn_pending(ch->xce);
        if (port < 0) {
            if (errno == EAGAIN)
                break;
            return -1;
        }
        if (xenevtchn_unmask(ch->xce, (evtchn_port_t)port) < 0)
            return -1;
        consumed++;
    }
    return consumed;
}

static void xen_evtchn_close(struct pvc_evtchn *head)
{
    struct xen_evtchn *ch = (struct xen_evtchn *)head;
    xenevtchn_unbind(ch->xce, head->port);
    xenevtchn_close(ch->xce);
    free(ch);
}

/* An interdomain channel cannot signal its own end from userspace
 * (IOCTL_EVTCHN_NOTIFY rings the remote end).  Issue 5: the daemon can
 * wake a shim by other means (e.g. setting the ring's error words and
 * notifying through the backend, or a per-socket eventfd). */
static int xen_evtchn_kick_local(struct pvc_evtchn *head)
{
    (void)head;
    errno = ENOSYS;
    return -1;
}

static const struct pvc_evtchn_ops xen_evtchn_ops = {
    .notify = xen_evtchn_notify,
    .ack = xen_evtchn_ack,
    .kick_local = xen_evtchn_kick_local,
    .handoff = pvc_xen_evtchn_handoff,
    .close = xen_evtchn_close,
};

/* ---- store --------------------------------------------------------- */

/* /dev/xen/xenbus in a guest, xenstored's socket in dom0: libxenstore
 * picks (and honours XENSTORED_PATH). */
static struct xs_handle *xen_store_open(struct pvc_platform *plat)
{
    (void)plat;
    return xs_open(0);
}

const struct pvc_platform_ops pvc_platform_xen_ops = {
    .name = "xen",
    .open = xen_open,
    .close = xen_close,
    .grant_share = xen_grant_share,
    .grant_unshare = xen_grant_unshare,
    .grant_map = xen_grant_map,
    .grant_unmap = xen_grant_unmap,
    .grant_read = xen_grant_read,
    .evtchn_alloc_unbound = xen_evtchn_alloc_unbound,
    .evtchn_bind_interdomain = xen_evtchn_bind_interdomain,
    .store_open = xen_store_open,
    .grant_handoff = xen_grant_handoff,
};
