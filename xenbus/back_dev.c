/*
 * One backend device's state machine (research §1.3; Linux's
 * pvcalls-back frontend_changed/set_backend_state, plus what libxl does on
 * removal).
 *
 * Every evaluation re-reads the frontend's state, our own state node (the
 * toolstack writes it on removal) and online, and moves our state towards
 * the target the frontend's state implies:
 *
 *   frontend Initialising        -> InitWait (via Closing/Closed if we
 *                                   were connected: the frontend restarted)
 *   frontend Initialised         -> connect, Connected (Closing on failure)
 *   frontend Connected, we not   -> Closing: its ring belongs to an earlier
 *                                   backend instance, whose indexes and
 *                                   sockets we cannot know; it must reset
 *   frontend Closing             -> disconnect, Closing
 *   frontend Closed/Unknown/gone -> disconnect, Closed; forget if online=0
 *   online=0 and state 5 or 6    -> toolstack removal: disconnect, Closed,
 *                                   forget
 *
 * From Closing (after pvc_xb_back_reset, or a failed connect) only a
 * frontend that goes Closing/Closed or back to Initialising moves us: a
 * frontend still claiming Initialised/Connected is not reconnected to.
 * Evaluation is idempotent, so the events our own writes cause are
 * harmless.
 */
#include "back_priv.h"

#include "pvc/ext.h"
#include "pvc/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- writing our nodes --------------------------------------------- */

static void set_state(struct pvc_xb_back *b, struct back_dev *d, int state)
{
    if (d->pub.state == state)
        return;
    if (xb_switch_state(b->xs, d->pub.be_path, state) < 0) {
        pvc_warn("xenbus: %s: cannot switch to %s: %s", d->pub.be_path,
                 pvc_xb_state_name(state), strerror(errno));
        return;
    }
    pvc_debug("xenbus: %s: %s -> %s", d->pub.be_path,
              pvc_xb_state_name(d->pub.state), pvc_xb_state_name(state));
    d->pub.state = state;
}

static void disconnect(struct pvc_xb_back *b, struct back_dev *d)
{
    if (!d->connected)
        return;
    d->connected = false;
    b->ops->disconnect(b->ctx, &d->pub);
}

static bool write_feature_keys(struct pvc_xb_back *b, struct back_dev *d,
                               xs_transaction_t t)
{
    char path[PVC_XB_PATH_MAX];
    const char *dir = d->pub.be_path;
    /* A device the toolstack removed must not be recreated by us. */
    if (xb_path(path, "%s/state", dir) < 0 || !xb_exists(b->xs, t, path)) {
        errno = ENOENT;
        return false;
    }
    if (!xb_write_str(b->xs, t, dir, "versions", "1") ||
        !xb_write_uint(b->xs, t, dir, "max-page-order", b->cfg.max_page_order) ||
        !xb_write_str(b->xs, t, dir, "function-calls", "1"))
        return false;
    if (xb_path(path, "%s/%s", dir, PVC_EXT_KEY) < 0)
        return false;
    if (!b->cfg.ext_offered)
        return xs_rm(b->xs, t, path) || errno == ENOENT;
    char list[128];
    pvc_ext_format(b->cfg.ext_offered, list, sizeof(list));
    return xs_write(b->xs, t, path, list, strlen(list));
}

/* versions, max-page-order, function-calls, ext-features in one
 * transaction (as Linux does), then InitWait. */
static void go_initwait_fresh(struct pvc_xb_back *b, struct back_dev *d)
{
    for (int attempt = 0; attempt < XB_TXN_RETRIES; attempt++) {
        xs_transaction_t t = xs_transaction_start(b->xs);
        if (t == XBT_NULL)
            break;
        if (!write_feature_keys(b, d, t)) {
            int err = errno;
            xs_transaction_end(b->xs, t, true);
            pvc_warn("xenbus: %s: cannot write features: %s",
                     d->pub.be_path, strerror(err));
            return;
        }
        if (xs_transaction_end(b->xs, t, false)) {
            /* Force the write even if the node already says InitWait. */
            d->pub.state = XenbusStateUnknown;
            set_state(b, d, XenbusStateInitWait);
            return;
        }
        if (errno != EAGAIN)
            break;
    }
    pvc_warn("xenbus: %s: feature transaction failed: %s", d->pub.be_path,
             strerror(errno));
}

/* ---- transitions ---------------------------------------------------- */

/* Leave Connected the way Linux does: disconnect, then Closing. */
static void leave_connected(struct pvc_xb_back *b, struct back_dev *d)
{
    disconnect(b, d);
    if (d->pub.state == XenbusStateConnected)
        set_state(b, d, XenbusStateClosing);
}

static void go_initwait(struct pvc_xb_back *b, struct back_dev *d)
{
    if (d->pub.state == XenbusStateInitWait && !d->connected)
        return;
    /* A frontend that restarts walks us through Closing and Closed, so a
     * watcher of our state sees the old connection end. */
    leave_connected(b, d);
    if (d->pub.state == XenbusStateClosing)
        set_state(b, d, XenbusStateClosed);
    go_initwait_fresh(b, d);
}

/* ring-ref, port and the frontend's ext-features; all hostile input. */
static int read_ring_keys(struct pvc_xb_back *b, struct back_dev *d)
{
    unsigned long ref, port;
    if (xb_read_uint(b->xs, XBT_NULL, d->pub.fe_path, "ring-ref", UINT32_MAX,
                     &ref) < 0 ||
        xb_read_uint(b->xs, XBT_NULL, d->pub.fe_path, "port", UINT32_MAX,
                     &port) < 0)
        return -1;
    d->pub.ring_ref = (uint32_t)ref;
    d->pub.port = (uint32_t)port;
    char *ext = xb_read_str(b->xs, XBT_NULL, d->pub.fe_path, PVC_EXT_KEY);
    d->pub.ext_enabled = pvc_ext_parse(ext) & b->cfg.ext_offered;
    free(ext);
    return 0;
}

static void go_connected(struct pvc_xb_back *b, struct back_dev *d,
                         int fe_state)
{
    if (d->connected || d->pub.state == XenbusStateClosing)
        return;
    if (fe_state == XenbusStateConnected) {
        pvc_warn("xenbus: %s: frontend claims a connection we do not have; "
                 "asking it to reset", d->pub.be_path);
        set_state(b, d, XenbusStateClosing);
        return;
    }
    if (d->pub.state != XenbusStateInitWait)
        go_initwait(b, d);
    if (d->pub.state != XenbusStateInitWait)
        return;
    if (read_ring_keys(b, d) < 0) {
        pvc_warn("xenbus: %s: frontend's ring-ref/port unusable: %s",
                 d->pub.fe_path, strerror(errno));
        set_state(b, d, XenbusStateClosing);
        return;
    }
    int rc = b->ops->connect(b->ctx, &d->pub);
    if (rc < 0) {
        pvc_warn("xenbus: %s: connect failed: %s", d->pub.be_path,
                 strerror(-rc));
        set_state(b, d, XenbusStateClosing);
        return;
    }
    d->connected = true;
    set_state(b, d, XenbusStateConnected);
    pvc_info("xenbus: %s connected (ring-ref %u port %u ext %#x)",
             d->pub.be_path, d->pub.ring_ref, d->pub.port,
             d->pub.ext_enabled);
}

static void go_closed(struct pvc_xb_back *b, struct back_dev *d)
{
    leave_connected(b, d);
    set_state(b, d, XenbusStateClosed);
}

/* ---- evaluation ----------------------------------------------------- */

/* libxl removes a device by writing online=0 and our state=5, then waits
 * for 6; the frontend is not consulted. */
static bool toolstack_removing(struct pvc_xb_back *b, struct back_dev *d,
                               bool *offline)
{
    unsigned long online;
    /* Missing or malformed online: not a removal we can recognise. */
    *offline = xb_read_uint(b->xs, XBT_NULL, d->pub.be_path, "online", 1,
                            &online) == 0 && online == 0;
    if (!*offline)
        return false;
    int node = xb_read_state(b->xs, XBT_NULL, d->pub.be_path);
    return node == XenbusStateClosing || node == XenbusStateClosed;
}

void back_dev_evaluate(struct pvc_xb_back *b, struct back_dev *d)
{
    if (!xb_exists(b->xs, XBT_NULL, d->pub.be_path)) {
        back_dev_forget(b, d, false, "directory removed");
        return;
    }
    bool offline;
    if (toolstack_removing(b, d, &offline)) {
        d->pub.state = XenbusStateUnknown; /* the node says 5, not ours */
        back_dev_forget(b, d, true, "removed by the toolstack");
        return;
    }
    int fe_state = xb_read_state(b->xs, XBT_NULL, d->pub.fe_path);
    if (fe_state < 0) {
        if (errno != ENOENT) {
            pvc_debug("xenbus: %s: ignoring unreadable frontend state",
                      d->pub.fe_path);
            return;
        }
        fe_state = XenbusStateUnknown;
    }
    switch (fe_state) {
    case XenbusStateInitialising:
        go_initwait(b, d);
        break;
    case XenbusStateInitialised:
    case XenbusStateConnected:
        go_connected(b, d, fe_state);
        break;
    case XenbusStateClosing:
        leave_connected(b, d);
        set_state(b, d, XenbusStateClosing);
        break;
    case XenbusStateClosed:
    case XenbusStateUnknown:
        go_closed(b, d);
        if (offline)
            back_dev_forget(b, d, false, "frontend closed, device offline");
        break;
    default: /* InitWait, Reconfiguring, Reconfigured: not for PV Calls */
        break;
    }
}

void back_dev_reset(struct pvc_xb_back *b, struct back_dev *d)
{
    pvc_warn("xenbus: %s: protocol violation, closing", d->pub.be_path);
    disconnect(b, d);
    set_state(b, d, XenbusStateClosing);
}

void back_dev_forget(struct pvc_xb_back *b, struct back_dev *d,
                     bool write_closed, const char *why)
{
    pvc_info("xenbus: %s: %s", d->pub.be_path, why);
    disconnect(b, d);
    if (write_closed)
        set_state(b, d, XenbusStateClosed);
    char path[PVC_XB_PATH_MAX];
    if (d->watching && xb_path(path, "%s/state", d->pub.fe_path) == 0)
        xs_unwatch(b->xs, path, d->fe_token);
    HASH_DEL(b->devs, d);
    free(d);
}

/* ---- discovery ----------------------------------------------------- */

/* The frontend path the toolstack wrote must be inside the frontend's
 * own domain: anything else would have us watch and read foreign nodes. */
static int read_frontend_path(struct pvc_xb_back *b, struct back_dev *d)
{
    unsigned long id;
    char prefix[40];
    if (xb_read_uint(b->xs, XBT_NULL, d->pub.be_path, "frontend-id",
                     XB_MAX_DOMID, &id) < 0 || id != d->pub.fe_domid)
        return -1;
    char *fe_path = xb_read_str(b->xs, XBT_NULL, d->pub.be_path, "frontend");
    if (!fe_path)
        return -1;
    snprintf(prefix, sizeof(prefix), "/local/domain/%u/", d->pub.fe_domid);
    int rc = strncmp(fe_path, prefix, strlen(prefix)) == 0 &&
                     !strstr(fe_path, "/../")
                 ? xb_path(d->pub.fe_path, "%s", fe_path)
                 : -1;
    free(fe_path);
    return rc;
}

static bool domain_exists(struct pvc_xb_back *b, unsigned domid)
{
    char path[40];
    snprintf(path, sizeof(path), "/local/domain/%u", domid);
    return xb_exists(b->xs, XBT_NULL, path);
}

/* First contact, possibly with a device an earlier daemon served. */
static void initial_setup(struct pvc_xb_back *b, struct back_dev *d)
{
    int node = xb_read_state(b->xs, XBT_NULL, d->pub.be_path);
    switch (node) {
    case XenbusStateInitialised:
    case XenbusStateConnected:
        /* An earlier instance was connected and died: its rings are
         * lost, so the frontend has to reset. */
        d->pub.state = node;
        set_state(b, d, XenbusStateClosing);
        break;
    case XenbusStateClosing:
        d->pub.state = node; /* a reset or removal in progress: keep it */
        break;
    default: /* Initialising, InitWait, Closed (earlier daemon stopped),
              * or garbage: (re)write the keys */
        go_initwait_fresh(b, d);
        break;
    }
}

/* online=0: the toolstack is removing the device (possibly one we just
 * forgot, whose directory is not deleted yet).  Never set it up again; if
 * the toolstack waits for Closed (we were not running when it asked),
 * give it that. */
static bool being_removed(struct pvc_xb_back *b, struct back_dev *d)
{
    unsigned long online;
    if (xb_read_uint(b->xs, XBT_NULL, d->pub.be_path, "online", 1,
                     &online) < 0 || online != 0)
        return false;
    if (xb_read_state(b->xs, XBT_NULL, d->pub.be_path) == XenbusStateClosing)
        xb_switch_state(b->xs, d->pub.be_path, XenbusStateClosed);
    return true;
}

void back_dev_add(struct pvc_xb_back *b, unsigned fe_domid, unsigned devid)
{
    struct back_dev *d = calloc(1, sizeof(*d));
    if (!d)
        return;
    d->pub.fe_domid = (pvc_domid_t)fe_domid;
    d->pub.devid = devid;
    d->key = back_dev_key(fe_domid, devid);
    d->pub.state = XenbusStateUnknown;
    if (xb_path(d->pub.be_path, "%s/%u/%u", b->base, fe_domid, devid) < 0 ||
        (xb_read_state(b->xs, XBT_NULL, d->pub.be_path) < 0 &&
         errno == ENOENT) ||
        read_frontend_path(b, d) < 0 || !domain_exists(b, fe_domid)) {
        /* Incomplete (being created or removed) or bogus: the next event
         * under our tree looks again. */
        free(d);
        return;
    }
    if (being_removed(b, d)) {
        free(d);
        return;
    }
    HASH_ADD(hh, b->devs, key, sizeof(d->key), d);
    pvc_info("xenbus: found %s (frontend %s)", d->pub.be_path,
             d->pub.fe_path);

    char path[PVC_XB_PATH_MAX];
    snprintf(d->fe_token, sizeof(d->fe_token), XB_TOKEN_FE_FMT, fe_domid,
             devid);
    if (xb_path(path, "%s/state", d->pub.fe_path) == 0 &&
        xs_watch(b->xs, path, d->fe_token))
        d->watching = true;
    else
        pvc_warn("xenbus: cannot watch %s: %s", path, strerror(errno));

    initial_setup(b, d);
    back_dev_evaluate(b, d); /* may forget it again: a removal under way */
}
