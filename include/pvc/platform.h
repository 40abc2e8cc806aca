/*
 * The platform layer: the three primitives Xen gives a split driver.
 *
 *   grants   - share pages with a peer domain (frontend side) and map the
 *              pages a peer domain granted to us (backend side)
 *   evtchns  - a doorbell between two domains, one pollable fd per channel
 *   store    - xenstore, always through the real libxenstore
 *
 * Two implementations sit behind this interface: platform/xen.c (gntalloc,
 * gntdev, evtchn devices) and platform/sim.c (the simulated platform's
 * broker, see sim/broker/proto.h).  Everything above this layer is the same
 * code on both.
 *
 * All functions return 0 / a valid pointer on success; on failure they
 * return -1 / NULL with errno set.
 */
#ifndef PVC_PLATFORM_H
#define PVC_PLATFORM_H

#include <stdint.h>
#include <stddef.h>

typedef uint16_t pvc_domid_t;
typedef uint32_t pvc_gref_t;
typedef uint32_t pvc_port_t;

enum pvc_platform_kind {
    PVC_PLATFORM_AUTO = 0, /* PVC_PLATFORM env, else xen if /dev/xen/evtchn
                            * exists, else sim */
    PVC_PLATFORM_XEN,
    PVC_PLATFORM_SIM,
};

struct pvc_platform_opts {
    enum pvc_platform_kind kind;
    /* Simulation only.  The domain this process claims to be (the sim
     * broker believes it, as the hypervisor knows a real domain's id);
     * -1 means PVC_SIM_DOMID from the environment, else 0. */
    int sim_domid;
    /* Simulation only.  Directory holding the broker and store sockets;
     * NULL means PVC_SIM_DIR from the environment, else pvc_sim_default_dir(). */
    const char *sim_dir;
};

struct pvc_platform;

struct pvc_platform *pvc_platform_open(const struct pvc_platform_opts *opts);
void pvc_platform_close(struct pvc_platform *plat);
enum pvc_platform_kind pvc_platform_kind(const struct pvc_platform *plat);
const char *pvc_platform_name(const struct pvc_platform *plat);
/* Why this platform was chosen, in words (for a log line). */
const char *pvc_platform_why(const struct pvc_platform *plat);
/* Our own domain id. */
pvc_domid_t pvc_platform_domid(const struct pvc_platform *plat);

/* The default simulation directory: /run/pvcalls-sim for root, else
 * $XDG_RUNTIME_DIR/pvcalls-sim, else /tmp/pvcalls-sim-<uid>.  Writes into
 * buf (size len); returns buf. */
char *pvc_sim_default_dir(char *buf, size_t len);

/* ---- grants -------------------------------------------------------- */

/* Frontend side: allocate npages zeroed pages, grant them to domain peer
 * (writable unless readonly), map them contiguously at *addr and write one
 * grant reference per page into refs[0..npages-1]. */
int pvc_grant_share(struct pvc_platform *plat, pvc_domid_t peer,
                    unsigned npages, int readonly, void **addr,
                    pvc_gref_t *refs);
/* Frontend side: end the grants made by one pvc_grant_share() call and
 * unmap the pages.  A peer that still maps them keeps its mapping valid
 * (the memory is freed when the last mapping goes). */
int pvc_grant_unshare(struct pvc_platform *plat, void *addr, unsigned npages);

/* Backend side: map the npages pages that domain peer granted with refs,
 * contiguously, in the order given.  Fails with EINVAL/ENOENT/EPERM if a
 * ref does not name a page granted by peer to us. */
void *pvc_grant_map(struct pvc_platform *plat, pvc_domid_t peer,
                    unsigned npages, const pvc_gref_t *refs, int readonly);
int pvc_grant_unmap(struct pvc_platform *plat, void *addr, unsigned npages);
/* Backend side: copy len bytes at offset of the page that domain peer
 * granted with ref into buf, without mapping it (Xen's GNTTABOP_copy).
 * For reading a few words once, e.g. a ring's order and page refs:
 * mapping a page, touching it and unmapping it costs a page fault and a
 * TLB shootdown.  Errors as pvc_grant_map(); EINVAL if offset + len is
 * more than a page. */
int pvc_grant_read(struct pvc_platform *plat, pvc_domid_t peer,
                   pvc_gref_t ref, size_t offset, void *buf, size_t len);

/* ---- event channels ------------------------------------------------ */

struct pvc_evtchn;

/* Frontend side: a new channel that peer may bind to. */
struct pvc_evtchn *pvc_evtchn_alloc_unbound(struct pvc_platform *plat,
                                            pvc_domid_t peer);
/* Backend side: connect to the unbound port remote_port of domain peer. */
struct pvc_evtchn *pvc_evtchn_bind_interdomain(struct pvc_platform *plat,
                                               pvc_domid_t peer,
                                               pvc_port_t remote_port);
/* Our end's port number (what a frontend writes into xenstore or a
 * request for the backend to bind). */
pvc_port_t pvc_evtchn_port(const struct pvc_evtchn *ch);
/* Readable (POLLIN) while an event from the peer is pending. */
int pvc_evtchn_fd(const struct pvc_evtchn *ch);
/* Ring the peer's doorbell. */
int pvc_evtchn_notify(struct pvc_evtchn *ch);
/* Consume pending events and re-arm the channel (unmask).  Returns the
 * number of events consumed (0 if none was pending).  Callers must
 * re-check the shared ring state after calling this: an event is a
 * doorbell, never a message. */
int pvc_evtchn_ack(struct pvc_evtchn *ch);
/* Unbind and free. */
void pvc_evtchn_close(struct pvc_evtchn *ch);
/* Make our own end's fd readable, as if the peer had notified: wakes the
 * other holders of a handed-off channel (the guest daemon uses it to tell
 * shims that the backend went away).  On Xen only channels made by
 * pvc_evtchn_alloc_unbound() (and their hand-offs) can: ENOSYS otherwise. */
int pvc_evtchn_kick_local(struct pvc_evtchn *ch);

/* ---- store --------------------------------------------------------- */

struct xs_handle;

/* A libxenstore connection to this domain's store: /dev/xen/xenbus or
 * xenstored's socket on Xen, the broker's per-domain store socket in
 * simulation.  Relative paths resolve against /local/domain/<domid>. */
struct xs_handle *pvc_store_open(struct pvc_platform *plat);

/* ---- hand-off to another process ----------------------------------- */

/*
 * The guest daemon allocates each socket's ring and channel and hands them
 * to the process that owns the socket (SCM_RIGHTS), which then drives the
 * data ring itself.  A hand-off is a set of fds plus what is needed to use
 * them; it gives access to that ring and channel only (sim: the share's
 * memfd and the channel's eventfds; Xen: a gntalloc fd opened for that
 * client and the channel's own evtchn fd).
 */
#define PVC_HANDOFF_MAX_FDS 2

struct pvc_grant_handoff {
    enum pvc_platform_kind kind;
    int fd;          /* mmap(fd, offset, npages * 4096, MAP_SHARED) */
    uint64_t offset;
    unsigned npages;
};

struct pvc_evtchn_handoff {
    enum pvc_platform_kind kind;
    pvc_port_t port;
    /* Xen: a loopback port bound on the same fd; notifying it makes the fd
     * readable for every holder (pvc_evtchn_kick_local).  0: none. */
    pvc_port_t kick_port;
    int nfds;
    int fds[PVC_HANDOFF_MAX_FDS]; /* sim: [0] rx eventfd, [1] tx eventfd;
                                   * xen: [0] evtchn fd bound to port */
};

/* New fds (CLOEXEC, owned by the caller) for the pages of one
 * pvc_grant_share() call starting at addr. */
int pvc_grant_handoff(struct pvc_platform *plat, void *addr,
                      struct pvc_grant_handoff *out);
/* Map a received grant hand-off (needs no platform handle); the caller
 * may close h->fd afterwards.  Unmap with munmap(addr, npages * 4096). */
void *pvc_grant_adopt(const struct pvc_grant_handoff *h);

/* New fds (CLOEXEC, owned by the caller) for one channel. */
int pvc_evtchn_handoff(struct pvc_evtchn *ch, struct pvc_evtchn_handoff *out);
/* A channel object over received fds (takes ownership of them, closing
 * them if it fails); needs no platform handle.  pvc_evtchn_close() on it closes the fds only: the
 * channel stays bound for its other holders (the daemon unbinds it). */
struct pvc_evtchn *pvc_evtchn_adopt(const struct pvc_evtchn_handoff *h);

#endif
