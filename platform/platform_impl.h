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
    int (*grant_read)(struct pvc_platform *plat, pvc_domid_t peer,
                      pvc_gref_t ref, size_t offset, void *buf, size_t len);
    struct pvc_evtchn *(*evtchn_alloc_unbound)(struct pvc_platform *plat,
                                               pvc_domid_t peer);
    struct pvc_evtchn *(*evtchn_bind_interdomain)(struct pvc_platform *plat,
                                                  pvc_domid_t peer,
                                                  pvc_port_t remote_port);
    struct xs_handle *(*store_open)(struct pvc_platform *plat);
    /* New fds for the pages of one share (pvc_grant_handoff). */
    int (*grant_handoff)(struct pvc_platform *plat, void *addr,
                         struct pvc_grant_handoff *out);
};

/*
 * What a channel does, per channel rather than per platform: a channel
 * adopted from a hand-off has no platform handle (the shim links only
 * platform/handoff.c), so every channel call dispatches through the
 * channel itself.
 */
struct pvc_evtchn_ops {
    int (*notify)(struct pvc_evtchn *ch);
    int (*ack)(struct pvc_evtchn *ch);
    /* Make our own end's fd readable (see pvc_evtchn_kick_local). */
    int (*kick_local)(struct pvc_evtchn *ch);
    int (*handoff)(struct pvc_evtchn *ch, struct pvc_evtchn_handoff *out);
    void (*close)(struct pvc_evtchn *ch);
};

struct pvc_platform {
    const struct pvc_platform_ops *ops;
    enum pvc_platform_kind kind;
    const char *why; /* how kind was chosen (a static string) */
    pvc_domid_t domid;
    void *priv;
};

/* The part of a channel every implementation has; each embeds it first
 * in its own struct. */
struct pvc_evtchn {
    const struct pvc_evtchn_ops *ops;
    struct pvc_platform *plat; /* NULL for an adopted channel */
    pvc_port_t port;
    int fd;
};

/* A simulated channel: two eventfds, one per direction (the broker's
 * channel as well as an adopted one). */
struct pvc_sim_evtchn {
    struct pvc_evtchn head; /* head.fd is the rx eventfd */
    int tx;
};

/* platform/handoff.c: the eventfd doorbell operations every simulated
 * channel shares, and hand-off of an fd set. */
int pvc_sim_evtchn_notify(struct pvc_evtchn *ch);
int pvc_sim_evtchn_ack(struct pvc_evtchn *ch);
int pvc_sim_evtchn_kick_local(struct pvc_evtchn *ch);
int pvc_sim_evtchn_handoff(struct pvc_evtchn *ch,
                           struct pvc_evtchn_handoff *out);
/* Xen: a dup of the channel's own evtchn fd. */
int pvc_xen_evtchn_handoff(struct pvc_evtchn *ch,
                           struct pvc_evtchn_handoff *out);

extern const struct pvc_platform_ops pvc_platform_xen_ops;
extern const struct pvc_platform_ops pvc_platform_sim_ops;

#endif
