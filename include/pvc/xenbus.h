/*
 * The PV Calls xenstore handshake, both sides (research §1; spec
 * "Frontend XenBus Nodes" ... "State Machine").
 *
 * Frontend: /local/domain/<fe>/device/pvcalls/<devid>/
 *   written by the toolstack: backend, backend-id, state=1
 *   written by us: version=1, ring-ref, port, ext-features (optional),
 *                  state
 * Backend:  /local/domain/<be>/backend/pvcalls/<fe>/<devid>/
 *   written by the toolstack: frontend, frontend-id, online=1, state=1
 *   written by us: versions="1", max-page-order, function-calls="1",
 *                  ext-features, state
 *
 * The toolstack removes a device by writing online=0 and the backend's
 * state=5, then waits up to 10 s for the backend's state=6 before it
 * deletes both directories.
 */
#ifndef PVC_XENBUS_H
#define PVC_XENBUS_H

#include "pvc/platform.h"
#include "pvc/ring.h"

#include <stdbool.h>

#define PVC_XB_PATH_MAX 128

/* XenbusState as a name, for logs ("Initialising", ...; "?" if unknown). */
const char *pvc_xb_state_name(int state);

/* ---- frontend ------------------------------------------------------ */

struct pvc_xb_front {
    struct pvc_platform *plat;
    struct xs_handle *xs;
    char fe_path[PVC_XB_PATH_MAX]; /* /local/domain/<fe>/device/pvcalls/N */
    char be_path[PVC_XB_PATH_MAX];
    pvc_domid_t be_domid;
    unsigned max_page_order; /* the backend's max-page-order */
    unsigned ext_offered;    /* PVC_EXT_* bits the backend lists */
    unsigned ext_enabled;    /* the subset we asked for */
    void *cmd_page;          /* the command ring page, shared with be */
    pvc_gref_t cmd_ref;
    struct pvc_evtchn *cmd_evtchn;
    struct pvc_cmd_front cmd;
    bool watching;           /* a watch on <be_path>/state is registered */
};

/* Run the frontend handshake on device dev ("device/pvcalls/0" or a full
 * path), blocking up to timeout_ms in total:
 *   - if our state is not Initialising (an earlier frontend instance died
 *     or closed), first reset: state=Closing, wait for the backend to reach
 *     Closing/Closed (or InitWait), then state=Initialising;
 *   - wait for backend state InitWait (or Connected, for a backend that
 *     kept the keys), check versions contains "1", function-calls = 1,
 *     max-page-order >= 1, read ext-features;
 *   - share the command ring page, allocate the channel, write version,
 *     ring-ref, port and ext-features (ext_wanted & offered) in one
 *     transaction, state=Initialised;
 *   - wait for backend Connected, then state=Connected.
 * Also registers a watch on the backend's state (token "pvc-be-state")
 * so that pvc_xb_front_poll_backend() can notice the backend leaving.
 * Returns 0, or -1 with errno (ETIMEDOUT, ENODEV if the device or a key
 * is missing or unacceptable, EPROTO for a backend in a wrong state). */
int pvc_xb_front_connect(struct pvc_platform *plat, struct xs_handle *xs,
                         const char *dev, unsigned ext_wanted,
                         int timeout_ms, struct pvc_xb_front *fe);

/* The backend's current state (XenbusState), or -1 if unreadable
 * (directory gone: treat as Closed). */
int pvc_xb_front_backend_state(struct pvc_xb_front *fe);

/* Orderly shutdown: state=Closing, wait (up to timeout_ms) for the backend
 * to reach Closing or Closed, end the grant and close the channel, then
 * state=Closed.  Frees everything fe holds except xs and plat. */
int pvc_xb_front_close(struct pvc_xb_front *fe, int timeout_ms);

/* ---- backend ------------------------------------------------------- */

struct pvc_xb_back;

struct pvc_xb_back_dev {
    pvc_domid_t fe_domid;
    unsigned devid;
    char be_path[PVC_XB_PATH_MAX];
    char fe_path[PVC_XB_PATH_MAX];
    int state;            /* our state, as last written */
    uint32_t ring_ref;    /* valid in connect() */
    uint32_t port;        /* valid in connect() */
    unsigned ext_enabled; /* PVC_EXT_* agreed with this frontend */
    void *priv;           /* owned by the ops */
};

struct pvc_xb_back_ops {
    /* The frontend is Initialised with ring-ref/port: map the ring and
     * bind the channel.  Return 0 to go Connected; -errno sends the
     * device to Closing. */
    int (*connect)(void *ctx, struct pvc_xb_back_dev *dev);
    /* Release everything attached to dev (frontend closing or gone,
     * toolstack removal, domain death, daemon shutdown).  Called at most
     * once per successful connect(), before the backend state leaves
     * Connected for Closing/Closed. */
    void (*disconnect)(void *ctx, struct pvc_xb_back_dev *dev);
};

struct pvc_xb_back_cfg {
    unsigned max_page_order; /* advertised; at least 4 */
    unsigned ext_offered;    /* PVC_EXT_* bits to advertise */
};

/* Watch <own domain>/backend/pvcalls, pick up devices that already exist,
 * and watch @releaseDomain. */
struct pvc_xb_back *pvc_xb_back_new(struct pvc_platform *plat,
                                    struct xs_handle *xs,
                                    const struct pvc_xb_back_cfg *cfg,
                                    const struct pvc_xb_back_ops *ops,
                                    void *ctx);
/* Readable when a watch fired; then call pvc_xb_back_process(). */
int pvc_xb_back_fd(const struct pvc_xb_back *b);
void pvc_xb_back_process(struct pvc_xb_back *b);
/* The backend found a fatal protocol violation on dev: disconnect it and
 * set state Closing; the frontend may reconnect by going back to
 * Initialising after Closed. */
void pvc_xb_back_reset(struct pvc_xb_back *b, struct pvc_xb_back_dev *dev);
/* SIGTERM: disconnect every device and set state Closed (the keys stay,
 * so a restarted daemon picks the devices up again). */
void pvc_xb_back_free(struct pvc_xb_back *b);

#endif
