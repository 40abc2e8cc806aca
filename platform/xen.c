/*
 * The platform layer on real Xen: the gntalloc device to share pages,
 * libxengnttab (gntdev) to map a peer's pages, libxenevtchn for event
 * channels, libxenstore for the store.
 *
 * Checked on Xen 4.17 by `make check-xen` (scripts/xen/); the unit and
 * end-to-end suites exercise the same interface through platform/sim.c.
 *
 * Shares use the gntalloc device directly rather than libxengntshr: a ring
 * is handed to the shim process that owns the socket, which needs an fd
 * and an mmap offset for exactly that ring, and libxengntshr exposes
 * neither.  So every share gets its own gntalloc file: handing that file
 * to a client gives it its own ring and nobody else's.
 *
 * Each event channel gets its own xenevtchn handle, hence its own fd: a
 * channel can then be polled on its own and handed to another process
 * with SCM_RIGHTS without giving away the others.  A channel we allocate
 * also carries a loopback pair of ports bound on that same fd, so that
 * any holder can make the fd readable for the others (kick_local): an
 * interdomain port can only signal its remote end.
 */
#include "platform_impl.h"
#include "xen_libs.h"

#include "pvc/log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uthash.h>
#include <xenstore.h>
#include <xen/xen.h>
#include <xen/grant_table.h>
#include <xen/sys/gntalloc.h>

#define GNTALLOC_DEV "/dev/xen/gntalloc"

/* One pvc_grant_share(): its own gntalloc file and where its pages are. */
struct xen_share {
    void *addr;      /* hash key: the mapping we returned */
    int fd;          /* the gntalloc file holding only these grants */
    uint64_t index;  /* their mmap offset in fd */
    unsigned npages;
    UT_hash_handle hh;
};

struct xen_platform {
    pthread_mutex_t lock;      /* the two fields below */
    xengnttab_handle *gnttab;  /* gntdev: pages we map, opened on first use */
    struct xen_share *shares;  /* by address */
};

struct xen_evtchn {
    struct pvc_evtchn head;   /* head.fd = xl->xenevtchn_fd(xce) */
    xenevtchn_handle *xce;
    /* The loopback pair on the same handle (0 when absent): notifying
     * kick_port raises kick_peer's event on this fd, and vice versa. */
    evtchn_port_t kick_port, kick_peer;
};

/* libxengnttab and libxenevtchn, loaded by the first xen_open(): every
 * other function here runs on a platform or channel that one opened. */
static const struct pvc_xen_libs *xl;

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
        if (*end || domid < 0 || domid >= DOMID_FIRST_RESERVED)
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
    const char *why = NULL;
    xl = pvc_xen_libs(&why);
    if (!xl) {
        pvc_err("xen platform: %s (Debian packages libxengnttab1 and "
                "libxenevtchn1)", why);
        errno = ENOPKG;
        return -1;
    }
    struct xen_platform *xp = calloc(1, sizeof(*xp));
    if (!xp)
        return -1;
    pthread_mutex_init(&xp->lock, NULL);
    plat->priv = xp;
    plat->domid = read_own_domid();
    return 0;
}

/* Unmap (unless mapping failed), end the grants, close their file. */
static void share_free(struct xen_share *sh)
{
    if (sh->addr != MAP_FAILED)
        munmap(sh->addr, (size_t)sh->npages * PVC_PAGE_SIZE);
    struct ioctl_gntalloc_dealloc_gref dealloc = {
        .index = sh->index, .count = sh->npages,
    };
    /* The grants end when their last mapping goes: a peer that still
     * maps them keeps valid pages (gntalloc defers the free). */
    ioctl(sh->fd, IOCTL_GNTALLOC_DEALLOC_GREF, &dealloc);
    close(sh->fd);
    free(sh);
}

static void xen_close(struct pvc_platform *plat)
{
    struct xen_platform *xp = xen_of(plat);
    struct xen_share *sh, *tmp;
    HASH_ITER(hh, xp->shares, sh, tmp) {
        HASH_DEL(xp->shares, sh);
        share_free(sh);
    }
    if (xp->gnttab)
        xl->xengnttab_close(xp->gnttab);
    pthread_mutex_destroy(&xp->lock);
    free(xp);
}

static xengnttab_handle *gnttab_get(struct xen_platform *xp)
{
    pthread_mutex_lock(&xp->lock);
    if (!xp->gnttab)
        xp->gnttab = xl->xengnttab_open(NULL, 0);
    xengnttab_handle *h = xp->gnttab;
    int saved = errno;
    pthread_mutex_unlock(&xp->lock);
    errno = saved;
    return h;
}

/* ---- grants -------------------------------------------------------- */

/* Allocate npages grants to peer on a new gntalloc file; fills sh->fd,
 * sh->index and refs. */
static int gntalloc_grant(struct xen_share *sh, pvc_domid_t peer,
                          unsigned npages, int readonly, pvc_gref_t *refs)
{
    size_t size = sizeof(struct ioctl_gntalloc_alloc_gref) +
                  (npages - 1) * sizeof(uint32_t);
    struct ioctl_gntalloc_alloc_gref *req = calloc(1, size);
    if (!req)
        return -1;
    sh->fd = open(GNTALLOC_DEV, O_RDWR | O_CLOEXEC);
    int rc = -1;
    if (sh->fd >= 0) {
        req->domid = peer;
        req->flags = readonly ? 0 : GNTALLOC_FLAG_WRITABLE;
        req->count = npages;
        rc = ioctl(sh->fd, IOCTL_GNTALLOC_ALLOC_GREF, req);
    }
    if (rc == 0) {
        sh->index = req->index;
        memcpy(refs, req->gref_ids, npages * sizeof(uint32_t));
    } else if (sh->fd >= 0) {
        int saved = errno;
        close(sh->fd);
        errno = saved;
    }
    free(req);
    return rc < 0 ? -1 : 0;
}

static int xen_grant_share(struct pvc_platform *plat, pvc_domid_t peer,
                           unsigned npages, int readonly, void **addr,
                           pvc_gref_t *refs)
{
    struct xen_platform *xp = xen_of(plat);
    if (npages > (1u << 20)) {
        errno = EINVAL;
        return -1;
    }
    struct xen_share *sh = calloc(1, sizeof(*sh));
    if (!sh)
        return -1;
    if (gntalloc_grant(sh, peer, npages, readonly, refs) < 0) {
        free(sh);
        return -1;
    }
    sh->npages = npages;
    /* gntalloc's pages come zeroed; the mapping must be shared. */
    sh->addr = mmap(NULL, (size_t)npages * PVC_PAGE_SIZE,
                    PROT_READ | PROT_WRITE, MAP_SHARED, sh->fd,
                    (off_t)sh->index);
    if (sh->addr == MAP_FAILED) {
        int saved = errno;
        share_free(sh);
        errno = saved;
        return -1;
    }
    pthread_mutex_lock(&xp->lock);
    HASH_ADD_PTR(xp->shares, addr, sh);
    pthread_mutex_unlock(&xp->lock);
    *addr = sh->addr;
    return 0;
}

static struct xen_share *share_find(struct xen_platform *xp, void *addr)
{
    struct xen_share *sh;
    HASH_FIND_PTR(xp->shares, &addr, sh);
    return sh;
}

static int xen_grant_unshare(struct pvc_platform *plat, void *addr,
                             unsigned npages)
{
    struct xen_platform *xp = xen_of(plat);
    pthread_mutex_lock(&xp->lock);
    struct xen_share *sh = share_find(xp, addr);
    if (sh && sh->npages == npages)
        HASH_DEL(xp->shares, sh);
    else
        sh = NULL;
    pthread_mutex_unlock(&xp->lock);
    if (!sh) {
        errno = EINVAL;
        return -1;
    }
    share_free(sh);
    return 0;
}

/* A new fd on the share's own gntalloc file: whoever holds it reaches
 * these pages only (and, as any gntalloc holder, may allocate grants of
 * its own up to the guest-wide limit: issue 9 decides who is trusted). */
static int xen_grant_handoff(struct pvc_platform *plat, void *addr,
                             struct pvc_grant_handoff *out)
{
    struct xen_platform *xp = xen_of(plat);
    pthread_mutex_lock(&xp->lock);
    struct xen_share *sh = share_find(xp, addr);
    int fd = sh ? fcntl(sh->fd, F_DUPFD_CLOEXEC, 0) : -1;
    int saved = sh ? errno : EINVAL;
    if (fd >= 0)
        *out = (struct pvc_grant_handoff){
            .kind = PVC_PLATFORM_XEN, .fd = fd, .offset = sh->index,
            .npages = sh->npages,
        };
    pthread_mutex_unlock(&xp->lock);
    errno = saved;
    return fd < 0 ? -1 : 0;
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
    void *p = xl->xengnttab_map_domain_grant_refs(h, npages, peer, copy, prot);
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
    return xl->xengnttab_unmap(h, addr, npages);
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
    if (xl->xengnttab_grant_copy(h, 1, &seg) < 0)
        return -1;
    if (seg.status != GNTST_okay) {
        /* Bad ref, not granted to us: what a failed map reports. */
        errno = seg.status == GNTST_permission_denied ? EPERM : EINVAL;
        return -1;
    }
    return 0;
}

/* ---- event channels ------------------------------------------------ */

static const struct pvc_evtchn_ops xen_evtchn_ops;

static struct xen_evtchn *evtchn_new(struct pvc_platform *plat)
{
    struct xen_evtchn *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return NULL;
    ch->xce = xl->xenevtchn_open(NULL, 0);
    if (!ch->xce) {
        int saved = errno;
        free(ch);
        errno = saved;
        return NULL;
    }
    ch->head.ops = &xen_evtchn_ops;
    ch->head.plat = plat;
    ch->head.fd = xl->xenevtchn_fd(ch->xce);
    /* Belt and braces: ack polls before each xl->xenevtchn_pending() as the
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
        xl->xenevtchn_close(ch->xce);
        free(ch);
        errno = saved;
        return NULL;
    }
    ch->head.port = (pvc_port_t)port;
    return &ch->head;
}

/* The loopback pair kick_local uses: an unbound port for ourselves and a
 * port bound to it, both on the channel's own handle.  A frontend's
 * channels need it (the guest daemon wakes the shims through it when the
 * backend goes away; a shim wakes its forked peers); failing to make one
 * costs those wake-ups, not the channel, so it is only logged upstream. */
static void bind_kick_pair(struct xen_evtchn *ch, pvc_domid_t self)
{
    xenevtchn_port_or_error_t a = xl->xenevtchn_bind_unbound_port(ch->xce, self);
    if (a < 0)
        return;
    xenevtchn_port_or_error_t b =
        xl->xenevtchn_bind_interdomain(ch->xce, self, (evtchn_port_t)a);
    if (b < 0) {
        xl->xenevtchn_unbind(ch->xce, (evtchn_port_t)a);
        return;
    }
    ch->kick_port = (evtchn_port_t)a;
    ch->kick_peer = (evtchn_port_t)b;
}

static struct pvc_evtchn *xen_evtchn_alloc_unbound(struct pvc_platform *plat,
                                                   pvc_domid_t peer)
{
    struct xen_evtchn *ch = evtchn_new(plat);
    if (!ch)
        return NULL;
    struct pvc_evtchn *head =
        evtchn_bound(ch, xl->xenevtchn_bind_unbound_port(ch->xce, peer));
    if (head)
        bind_kick_pair(ch, plat->domid);
    return head;
}

static struct pvc_evtchn *
xen_evtchn_bind_interdomain(struct pvc_platform *plat, pvc_domid_t peer,
                            pvc_port_t remote_port)
{
    struct xen_evtchn *ch = evtchn_new(plat);
    if (!ch)
        return NULL;
    return evtchn_bound(ch, xl->xenevtchn_bind_interdomain(ch->xce, peer,
                                                       remote_port));
}

static int xen_evtchn_notify(struct pvc_evtchn *head)
{
    struct xen_evtchn *ch = (struct xen_evtchn *)head;
    return xl->xenevtchn_notify(ch->xce, head->port);
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
        xenevtchn_port_or_error_t port = xl->xenevtchn_pending(ch->xce);
        if (port < 0) {
            if (errno == EAGAIN)
                break;
            return -1;
        }
        if (xl->xenevtchn_unmask(ch->xce, (evtchn_port_t)port) < 0)
            return -1;
        consumed++;
    }
    return consumed;
}

static void xen_evtchn_close(struct pvc_evtchn *head)
{
    struct xen_evtchn *ch = (struct xen_evtchn *)head;
    if (ch->kick_port) {
        xl->xenevtchn_unbind(ch->xce, ch->kick_peer);
        xl->xenevtchn_unbind(ch->xce, ch->kick_port);
    }
    xl->xenevtchn_unbind(ch->xce, head->port);
    xl->xenevtchn_close(ch->xce);
    free(ch);
}

/* Raise the loopback pair's event on our own fd. */
static int xen_evtchn_kick_local(struct pvc_evtchn *head)
{
    struct xen_evtchn *ch = (struct xen_evtchn *)head;
    if (!ch->kick_port) {
        errno = ENOSYS;
        return -1;
    }
    return xl->xenevtchn_notify(ch->xce, ch->kick_port);
}

static int xen_evtchn_handoff(struct pvc_evtchn *head,
                              struct pvc_evtchn_handoff *out)
{
    struct xen_evtchn *ch = (struct xen_evtchn *)head;
    if (pvc_xen_evtchn_handoff(head, out) < 0)
        return -1;
    out->kick_port = ch->kick_port;
    return 0;
}

static const struct pvc_evtchn_ops xen_evtchn_ops = {
    .notify = xen_evtchn_notify,
    .ack = xen_evtchn_ack,
    .kick_local = xen_evtchn_kick_local,
    .handoff = xen_evtchn_handoff,
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
