/* The in-process fuzzing platform: see fakeplat.h. */
#include "fakeplat.h"

#include "../platform/platform_impl.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

struct fake_chan {
    struct pvc_evtchn head; /* head.fd: what the code under test polls */
    unsigned notifies;
};

struct fake {
    int memfd;
    unsigned char *mem;               /* the harness's mapping */
    struct fake_chan *by_port[FAKE_PORTS];
    unsigned notifies[FAKE_PORTS];
    unsigned channels, maps;
    unsigned fail_grants;
    unsigned next_share;              /* frontend: next page to share */
    unsigned next_port;               /* frontend: next port to allocate */
    struct xs_handle *xs;
};

static struct fake *fake_of(struct pvc_platform *plat)
{
    return plat->priv;
}

static bool grant_fails(struct fake *f)
{
    if (!f->fail_grants)
        return false;
    f->fail_grants--;
    return true;
}

/* ---- grants: the backend side -------------------------------------- */

static void *fake_grant_map(struct pvc_platform *plat, pvc_domid_t peer,
                            unsigned npages, const pvc_gref_t *refs,
                            int readonly)
{
    struct fake *f = fake_of(plat);
    (void)peer;
    if (grant_fails(f) || npages > 1024) {
        errno = ENOENT;
        return NULL;
    }
    for (unsigned i = 0; i < npages; i++) {
        if (refs[i] < 1 || refs[i] > FAKE_PAGES) {
            errno = ENOENT;
            return NULL;
        }
    }
    size_t len = (size_t)npages * FAKE_PAGE;
    unsigned char *base = mmap(NULL, len, PROT_NONE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    int prot = PROT_READ | (readonly ? 0 : PROT_WRITE);
    for (unsigned i = 0; i < npages; i++) {
        off_t off = (off_t)(refs[i] - 1) * FAKE_PAGE;
        if (mmap(base + (size_t)i * FAKE_PAGE, FAKE_PAGE, prot,
                 MAP_SHARED | MAP_FIXED, f->memfd, off) == MAP_FAILED) {
            munmap(base, len);
            return NULL;
        }
    }
    f->maps++;
    return base;
}

static int fake_grant_unmap(struct pvc_platform *plat, void *addr,
                            unsigned npages)
{
    struct fake *f = fake_of(plat);
    f->maps--;
    return munmap(addr, (size_t)npages * FAKE_PAGE);
}

static int fake_grant_read(struct pvc_platform *plat, pvc_domid_t peer,
                           pvc_gref_t ref, size_t offset, void *buf,
                           size_t len)
{
    struct fake *f = fake_of(plat);
    (void)peer;
    if (grant_fails(f) || ref < 1 || ref > FAKE_PAGES) {
        errno = ENOENT;
        return -1;
    }
    memcpy(buf, f->mem + (size_t)(ref - 1) * FAKE_PAGE + offset, len);
    return 0;
}

/* ---- grants: the frontend side ------------------------------------- */

static int fake_grant_share(struct pvc_platform *plat, pvc_domid_t peer,
                            unsigned npages, int readonly, void **addr,
                            pvc_gref_t *refs)
{
    struct fake *f = fake_of(plat);
    (void)peer;
    (void)readonly;
    if (grant_fails(f) || npages > FAKE_PAGES - f->next_share) {
        errno = ENOSPC;
        return -1;
    }
    pvc_gref_t first = f->next_share + 1;
    for (unsigned i = 0; i < npages; i++)
        refs[i] = first + i;
    void *p = fake_grant_map(plat, peer, npages, refs, 0);
    if (!p)
        return -1;
    memset(p, 0, (size_t)npages * FAKE_PAGE);
    f->next_share += npages;
    *addr = p;
    return 0;
}

static int fake_grant_unshare(struct pvc_platform *plat, void *addr,
                              unsigned npages)
{
    return fake_grant_unmap(plat, addr, npages);
}

static int fake_grant_handoff(struct pvc_platform *plat, void *addr,
                              struct pvc_grant_handoff *out)
{
    (void)plat;
    (void)addr;
    (void)out;
    errno = ENOSYS;
    return -1;
}

/* ---- event channels ------------------------------------------------ */

static int chan_notify(struct pvc_evtchn *ch)
{
    struct fake_chan *c = (struct fake_chan *)ch;
    struct fake *f = fake_of(ch->plat);
    c->notifies++;
    if (ch->port < FAKE_PORTS)
        f->notifies[ch->port]++;
    return 0;
}

static int chan_ack(struct pvc_evtchn *ch)
{
    uint64_t n = 0;
    if (read(ch->fd, &n, sizeof(n)) != sizeof(n))
        return 0;
    return (int)n;
}

static int chan_kick_local(struct pvc_evtchn *ch)
{
    uint64_t one = 1;
    return write(ch->fd, &one, sizeof(one)) == sizeof(one) ? 0 : -1;
}

static int chan_handoff(struct pvc_evtchn *ch, struct pvc_evtchn_handoff *out)
{
    (void)ch;
    (void)out;
    errno = ENOSYS;
    return -1;
}

static void chan_close(struct pvc_evtchn *ch)
{
    struct fake *f = fake_of(ch->plat);
    if (ch->port < FAKE_PORTS && f->by_port[ch->port] == (void *)ch)
        f->by_port[ch->port] = NULL;
    f->channels--;
    close(ch->fd);
    free(ch);
}

static const struct pvc_evtchn_ops chan_ops = {
    .notify = chan_notify,
    .ack = chan_ack,
    .kick_local = chan_kick_local,
    .handoff = chan_handoff,
    .close = chan_close,
};

static struct pvc_evtchn *chan_new(struct pvc_platform *plat,
                                   pvc_port_t port)
{
    struct fake *f = fake_of(plat);
    struct fake_chan *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->head.ops = &chan_ops;
    c->head.plat = plat;
    c->head.port = port;
    c->head.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->head.fd < 0) {
        free(c);
        return NULL;
    }
    f->by_port[port] = c;
    f->channels++;
    return &c->head;
}

static struct pvc_evtchn *fake_bind(struct pvc_platform *plat,
                                   pvc_domid_t peer, pvc_port_t port)
{
    (void)peer;
    if (port < 1 || port >= FAKE_PORTS) {
        errno = EINVAL;
        return NULL;
    }
    return chan_new(plat, port);
}

static struct pvc_evtchn *fake_alloc_unbound(struct pvc_platform *plat,
                                            pvc_domid_t peer)
{
    struct fake *f = fake_of(plat);
    (void)peer;
    if (f->next_port >= FAKE_PORTS) {
        errno = ENOSPC;
        return NULL;
    }
    return chan_new(plat, f->next_port++);
}

static struct xs_handle *fake_store_open(struct pvc_platform *plat)
{
    struct xs_handle *xs = fake_of(plat)->xs;
    if (!xs)
        errno = ENOENT;
    return xs;
}

/* ---- the platform -------------------------------------------------- */

static int fake_open(struct pvc_platform *plat,
                     const struct pvc_platform_opts *opts)
{
    (void)plat;
    (void)opts;
    return 0;
}

static void fake_close(struct pvc_platform *plat)
{
    struct fake *f = fake_of(plat);
    munmap(f->mem, (size_t)FAKE_PAGES * FAKE_PAGE);
    close(f->memfd);
    free(f);
}

static const struct pvc_platform_ops fake_ops = {
    .name = "fuzz",
    .open = fake_open,
    .close = fake_close,
    .grant_share = fake_grant_share,
    .grant_unshare = fake_grant_unshare,
    .grant_map = fake_grant_map,
    .grant_unmap = fake_grant_unmap,
    .grant_read = fake_grant_read,
    .evtchn_alloc_unbound = fake_alloc_unbound,
    .evtchn_bind_interdomain = fake_bind,
    .store_open = fake_store_open,
    .grant_handoff = fake_grant_handoff,
};

struct pvc_platform *fakeplat_open(pvc_domid_t own_domid)
{
    struct pvc_platform *plat = calloc(1, sizeof(*plat));
    struct fake *f = calloc(1, sizeof(*f));
    if (!plat || !f)
        abort();
    f->memfd = memfd_create("fuzz-guest", MFD_CLOEXEC);
    if (f->memfd < 0 ||
        ftruncate(f->memfd, (off_t)FAKE_PAGES * FAKE_PAGE) < 0)
        abort();
    f->mem = mmap(NULL, (size_t)FAKE_PAGES * FAKE_PAGE,
                  PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd, 0);
    if (f->mem == MAP_FAILED)
        abort();
    f->next_port = 1;
    plat->ops = &fake_ops;
    plat->kind = PVC_PLATFORM_SIM;
    plat->why = "fuzzing";
    plat->domid = own_domid;
    plat->priv = f;
    return plat;
}

void fakeplat_close(struct pvc_platform *plat)
{
    struct fake *f = fake_of(plat);
    /* A leaked mapping or channel is a bug LeakSanitizer cannot see. */
    if (f->maps || f->channels)
        abort();
    pvc_platform_close(plat);
}

unsigned char *fakeplat_mem(struct pvc_platform *plat)
{
    return fake_of(plat)->mem;
}

void fakeplat_zero(struct pvc_platform *plat)
{
    struct fake *f = fake_of(plat);
    memset(f->mem, 0, (size_t)FAKE_PAGES * FAKE_PAGE);
    memset(f->notifies, 0, sizeof(f->notifies));
    f->fail_grants = 0;
    f->next_share = 0;
    f->next_port = 1;
}

bool fakeplat_kick(struct pvc_platform *plat, pvc_port_t port)
{
    struct fake *f = fake_of(plat);
    if (port >= FAKE_PORTS || !f->by_port[port])
        return false;
    uint64_t one = 1;
    return write(f->by_port[port]->head.fd, &one, sizeof(one)) ==
           sizeof(one);
}

unsigned fakeplat_take_notifies(struct pvc_platform *plat, pvc_port_t port)
{
    struct fake *f = fake_of(plat);
    if (port >= FAKE_PORTS)
        return 0;
    unsigned n = f->notifies[port];
    f->notifies[port] = 0;
    return n;
}

unsigned fakeplat_open_channels(struct pvc_platform *plat)
{
    return fake_of(plat)->channels;
}

unsigned fakeplat_live_maps(struct pvc_platform *plat)
{
    return fake_of(plat)->maps;
}

void fakeplat_fail_grants(struct pvc_platform *plat, unsigned n)
{
    fake_of(plat)->fail_grants = n;
}

void fakeplat_set_store(struct pvc_platform *plat, struct xs_handle *xs)
{
    fake_of(plat)->xs = xs;
}
