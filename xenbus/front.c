/*
 * The frontend's half of the xenstore handshake (research §1.3, "Suggested
 * sequence for a userspace frontend"): reset a device an earlier instance
 * left behind, wait for the backend's features, publish the command ring,
 * wait for Connected.  See include/pvc/xenbus.h.
 *
 * Waiting is a watch on the backend's state plus poll() on xs_fileno()
 * with the time left; after every wake-up the state node is re-read, so a
 * coalesced or stale event is harmless.  The xs handle is ours while we
 * wait: watch events of other tokens queued on it are discarded.
 */
#include "pvc/xenbus.h"

#include "pvc/ext.h"
#include "pvc/log.h"
#include "xs_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BE_STATE_TOKEN "pvc-be-state"
/* Largest domid a real domain can have (DOMID_FIRST_RESERVED - 1). */
#define MAX_DOMID 0x7fefu

#define STATE_BIT(s) (1u << (s))
/* The backend's state node is gone: the device was removed. */
#define BE_GONE (1u << 31)

/* ---- waiting for the backend --------------------------------------- */

/* Wait until the backend's state is in `want`.  A state in `fatal` fails
 * with EPROTO.  Returns the state reached (or -2 for a vanished backend
 * when BE_GONE is wanted), -1 with errno otherwise. */
static int wait_backend(struct pvc_xb_front *fe, unsigned want,
                        unsigned fatal, int64_t deadline)
{
    for (;;) {
        xb_drain_watches(fe->xs);
        int st = xb_read_state(fe->xs, XBT_NULL, fe->be_path);
        if (st < 0 && errno == ENOENT) {
            if (want & BE_GONE)
                return -2;
            errno = ENODEV;
            return -1;
        }
        if (st >= 0 && (want & STATE_BIT(st)))
            return st;
        if (st >= 0 && (fatal & STATE_BIT(st))) {
            pvc_warn("xenbus: backend %s went %s", fe->be_path,
                     pvc_xb_state_name(st));
            errno = EPROTO;
            return -1;
        }
        /* Any other state, or a malformed one: wait for the next write. */
        int rc = xb_wait_watch(fe->xs, deadline);
        if (rc == 0)
            errno = ETIMEDOUT;
        if (rc <= 0)
            return -1;
    }
}

/* ---- reading the device -------------------------------------------- */

static int resolve_fe_path(struct pvc_xb_front *fe, const char *dev)
{
    if (dev[0] == '/')
        return xb_path(fe->fe_path, "%s", dev);
    char *home = xs_get_domain_path(fe->xs, pvc_platform_domid(fe->plat));
    if (!home)
        return -1;
    int rc = xb_path(fe->fe_path, "%s/%s", home, dev);
    free(home);
    return rc;
}

/* backend and backend-id, written by the toolstack. */
static int read_backend_location(struct pvc_xb_front *fe)
{
    unsigned long be_domid;
    char *be_path = xb_read_str(fe->xs, XBT_NULL, fe->fe_path, "backend");
    if (!be_path ||
        xb_read_uint(fe->xs, XBT_NULL, fe->fe_path, "backend-id", MAX_DOMID,
                     &be_domid) < 0 ||
        be_path[0] != '/' || xb_path(fe->be_path, "%s", be_path) < 0) {
        pvc_err("xenbus: %s has no usable backend/backend-id", fe->fe_path);
        free(be_path);
        errno = ENODEV;
        return -1;
    }
    free(be_path);
    fe->be_domid = (pvc_domid_t)be_domid;
    return 0;
}

/* Does the comma-separated list contain exactly the token "1"? */
static bool versions_has_1(const char *list)
{
    for (const char *p = list; p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 1 && p[0] == '1')
            return true;
        p = comma ? comma + 1 : NULL;
    }
    return false;
}

/* The backend's feature keys, written before it went InitWait. */
static int read_backend_features(struct pvc_xb_front *fe)
{
    unsigned long calls, order;
    char *versions = xb_read_str(fe->xs, XBT_NULL, fe->be_path, "versions");
    bool ok = versions && versions_has_1(versions);
    free(versions);
    if (!ok || xb_read_uint(fe->xs, XBT_NULL, fe->be_path, "function-calls",
                            1, &calls) < 0 || calls != 1 ||
        xb_read_uint(fe->xs, XBT_NULL, fe->be_path, "max-page-order",
                     31, &order) < 0 || order < 1) {
        pvc_err("xenbus: backend %s does not offer PV Calls v1 "
                "(versions, function-calls, max-page-order)", fe->be_path);
        errno = ENODEV;
        return -1;
    }
    /* A backend may advertise more than an indexes page can describe. */
    fe->max_page_order = order > PVC_MAX_RING_ORDER ? PVC_MAX_RING_ORDER
                                                    : (unsigned)order;
    char *ext = xb_read_str(fe->xs, XBT_NULL, fe->be_path, PVC_EXT_KEY);
    fe->ext_offered = pvc_ext_parse(ext) & PVC_EXT_ALL;
    free(ext);
    return 0;
}

/* ---- publishing our side ------------------------------------------- */

static int share_ring(struct pvc_xb_front *fe)
{
    if (pvc_grant_share(fe->plat, fe->be_domid, 1, 0, &fe->cmd_page,
                        &fe->cmd_ref) < 0) {
        fe->cmd_page = NULL;
        return -1;
    }
    pvc_cmd_front_init(&fe->cmd, fe->cmd_page);
    fe->cmd_evtchn = pvc_evtchn_alloc_unbound(fe->plat, fe->be_domid);
    return fe->cmd_evtchn ? 0 : -1;
}

static bool write_ring_keys(struct pvc_xb_front *fe, xs_transaction_t t)
{
    char path[PVC_XB_PATH_MAX];
    if (!xb_write_str(fe->xs, t, fe->fe_path, "version", "1") ||
        !xb_write_uint(fe->xs, t, fe->fe_path, "ring-ref", fe->cmd_ref) ||
        !xb_write_uint(fe->xs, t, fe->fe_path, "port",
                       pvc_evtchn_port(fe->cmd_evtchn)))
        return false;
    if (fe->ext_enabled) {
        char list[128];
        pvc_ext_format(fe->ext_enabled, list, sizeof(list));
        return xb_write_str(fe->xs, t, fe->fe_path, PVC_EXT_KEY, list);
    }
    /* A v1 frontend writes no ext-features; remove an earlier instance's. */
    if (xb_path(path, "%s/%s", fe->fe_path, PVC_EXT_KEY) < 0)
        return false;
    return xs_rm(fe->xs, t, path) || errno == ENOENT;
}

/* version, ring-ref, port (and ext-features) in one transaction. */
static int publish_ring(struct pvc_xb_front *fe)
{
    for (int attempt = 0; attempt < XB_TXN_RETRIES; attempt++) {
        xs_transaction_t t = xs_transaction_start(fe->xs);
        if (t == XBT_NULL)
            return -1;
        if (!write_ring_keys(fe, t)) {
            int err = errno;
            xs_transaction_end(fe->xs, t, true);
            errno = err;
            return -1;
        }
        if (xs_transaction_end(fe->xs, t, false))
            return 0;
        if (errno != EAGAIN)
            return -1;
    }
    errno = EAGAIN;
    return -1;
}

static void release_ring(struct pvc_xb_front *fe)
{
    if (fe->cmd_evtchn)
        pvc_evtchn_close(fe->cmd_evtchn);
    if (fe->cmd_page)
        pvc_grant_unshare(fe->plat, fe->cmd_page, 1);
    fe->cmd_evtchn = NULL;
    fe->cmd_page = NULL;
}

static void stop_watching(struct pvc_xb_front *fe)
{
    char path[PVC_XB_PATH_MAX];
    if (fe->watching && xb_path(path, "%s/state", fe->be_path) == 0)
        xs_unwatch(fe->xs, path, BE_STATE_TOKEN);
    fe->watching = false;
}

/* ---- the handshake ------------------------------------------------- */

/* An earlier instance left our state past Initialising: tell the backend
 * to let go of whatever it had, then start over (research §1.3). */
static int reset_device(struct pvc_xb_front *fe, int64_t deadline)
{
    pvc_info("xenbus: resetting %s", fe->fe_path);
    if (xb_switch_state(fe->xs, fe->fe_path, XenbusStateClosing) < 0)
        return -1;
    /* Not InitWait: a backend still in InitWait may not have seen our
     * Closing yet, and if it sees it after we are Initialised again it
     * goes Closing and waits for a reset that never comes.  Both Linux's
     * backend and ours answer a frontend Closing from InitWait with
     * Closing.  Initialising: no backend ever ran, nothing to undo. */
    unsigned idle = STATE_BIT(XenbusStateInitialising) |
                    STATE_BIT(XenbusStateClosing) |
                    STATE_BIT(XenbusStateClosed) | BE_GONE;
    int st = wait_backend(fe, idle, 0, deadline);
    if (st == -2) {
        errno = ENODEV;
        return -1;
    }
    if (st < 0)
        return -1;
    return xb_switch_state(fe->xs, fe->fe_path, XenbusStateInitialising);
}

static int handshake(struct pvc_xb_front *fe, unsigned ext_wanted,
                     int64_t deadline)
{
    char path[PVC_XB_PATH_MAX];
    if (read_backend_location(fe) < 0 ||
        xb_path(path, "%s/state", fe->be_path) < 0)
        return -1;
    if (!xs_watch(fe->xs, path, BE_STATE_TOKEN))
        return -1;
    fe->watching = true;

    int own = xb_read_state(fe->xs, XBT_NULL, fe->fe_path);
    if (own < 0 && errno == ENOENT) {
        errno = ENODEV;
        return -1;
    }
    if (own != XenbusStateInitialising && reset_device(fe, deadline) < 0)
        return -1;

    unsigned ready = STATE_BIT(XenbusStateInitWait) |
                     STATE_BIT(XenbusStateConnected);
    if (wait_backend(fe, ready, 0, deadline) < 0 ||
        read_backend_features(fe) < 0)
        return -1;
    fe->ext_enabled = ext_wanted & fe->ext_offered;

    if (share_ring(fe) < 0 || publish_ring(fe) < 0 ||
        xb_switch_state(fe->xs, fe->fe_path, XenbusStateInitialised) < 0)
        return -1;

    unsigned gone = STATE_BIT(XenbusStateClosing) |
                    STATE_BIT(XenbusStateClosed) |
                    STATE_BIT(XenbusStateUnknown);
    if (wait_backend(fe, STATE_BIT(XenbusStateConnected), gone, deadline) < 0)
        return -1;
    return xb_switch_state(fe->xs, fe->fe_path, XenbusStateConnected);
}

int pvc_xb_front_connect(struct pvc_platform *plat, struct xs_handle *xs,
                         const char *dev, unsigned ext_wanted,
                         int timeout_ms, struct pvc_xb_front *fe)
{
    memset(fe, 0, sizeof(*fe));
    fe->plat = plat;
    fe->xs = xs;
    int64_t deadline = xb_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);

    if (resolve_fe_path(fe, dev) < 0)
        return -1;
    if (handshake(fe, ext_wanted, deadline) == 0) {
        pvc_info("xenbus: %s connected to domain %u (ext %#x)", fe->fe_path,
                 fe->be_domid, fe->ext_enabled);
        return 0;
    }
    int err = errno;
    pvc_err("xenbus: connecting %s failed: %s", fe->fe_path, strerror(err));
    /* If we got as far as offering a ring, take the offer back before the
     * pages go: the backend must not connect to a ring that is gone. */
    if (fe->cmd_page)
        xb_switch_state(xs, fe->fe_path, XenbusStateClosing);
    release_ring(fe);
    stop_watching(fe);
    errno = err;
    return -1;
}

int pvc_xb_front_backend_state(struct pvc_xb_front *fe)
{
    /* The caller woke up on xs_fileno(): consume the doorbell. */
    xb_drain_watches(fe->xs);
    return xb_read_state(fe->xs, XBT_NULL, fe->be_path);
}

int pvc_xb_front_close(struct pvc_xb_front *fe, int timeout_ms)
{
    int64_t deadline = xb_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    int rc = 0, err = 0;

    if (xb_switch_state(fe->xs, fe->fe_path, XenbusStateClosing) == 0) {
        unsigned done = STATE_BIT(XenbusStateClosing) |
                        STATE_BIT(XenbusStateClosed) |
                        STATE_BIT(XenbusStateUnknown) | BE_GONE;
        if (wait_backend(fe, done, 0, deadline) == -1) {
            rc = -1;
            err = errno;
            pvc_warn("xenbus: backend of %s did not close: %s", fe->fe_path,
                     strerror(err));
        }
    } else if (errno != ENOENT) {
        rc = -1;
        err = errno;
    }
    /* Whatever the backend did, our side goes: the grant's end keeps a
     * slow backend's mapping valid until it unmaps. */
    release_ring(fe);
    if (xb_switch_state(fe->xs, fe->fe_path, XenbusStateClosed) < 0 &&
        errno != ENOENT && rc == 0) {
        rc = -1;
        err = errno;
    }
    stop_watching(fe);
    struct pvc_platform *plat = fe->plat;
    struct xs_handle *xs = fe->xs;
    memset(fe, 0, sizeof(*fe));
    fe->plat = plat;
    fe->xs = xs;
    errno = err;
    return rc;
}
