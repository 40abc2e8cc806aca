/*
 * What platform.c needs from each implementation (xen.c, sim.c).  Private
 * to platform/: users see include/pvc/platform.h only.
 */
#ifndef PVC_PLATFORM_IMPL_H
#define PVC_PLATFORM_IMPL_H

#include "pvc/platform.h"

#define PVC_PAGE_SIZE 4096u

struct pvc_platform_ops {
    const char *name;
    /* Fill plat->domid and plat->priv; 0 or -1 with errno. */
    int (*open)(struct pvc_platform *plat,
                const struct pvc_platform_opts *opts);
    void (*close)(struct pvc_platform *plat);
    int (*grant_share)(struct pvc_platform *plat, pvc_domid_t peer,
                       unsigned npages, int readonly, void **addr,
                       pvc_gref_t *refs);
    int (*grant_unshare)(struct pvc_platform *plat, void *addr,
                         unsigned npages);
    void *(*grant_map)(struct pvc_platform *plat, pvc_domid_t peer,
                       unsigned npages, const pvc_gref_t *refs,
                       int readonly);
    int (*grant_unmap)(struct pvc_platform *plat, void *addr,
                       unsigned npages);
    struct pvc_evtchn *(*evtchn_alloc_unbound)(struct pvc_platform *plat,
                                               pvc_domid_t peer);
    struct pvc_evtchn *(*evtchn_bind_interdomain)(struct pvc_platform *plat,
                                                  pvc_domid_t peer,
                                                  pvc_port_t remote_port);
    int (*evtchn_notify)(struct pvc_evtchn *ch);
    int (*evtchn_ack)(struct pvc_evtchn *ch);
    void (*evtchn_close)(struct pvc_evtchn *ch);
    struct xs_handle *(*store_open)(struct pvc_platform *plat);
};

struct pvc_platform {
    const struct pvc_platform_ops *ops;
    enum pvc_platform_kind kind;
    pvc_domid_t domid;
    void *priv;
};

/* The part of a channel every implementation has; each embeds it first
 * in its own struct. */
struct pvc_evtchn {
    struct pvc_platform *plat;
    pvc_port_t port;
    int fd;
};

extern const struct pvc_platform_ops pvc_platform_xen_ops;
extern const struct pvc_platform_ops pvc_platform_sim_ops;

#endif
