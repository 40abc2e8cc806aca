/*
 * The daemon's xenbus connection: the handshake, noticing the backend
 * leave Connected, and reconnecting once it is back.
 *
 * After a loss we close our side (Closing, then Closed), go back to
 * Initialising so that a backend that (re)starts offers InitWait, and
 * watch the backend's state; the handshake itself (which blocks until the
 * backend is Connected) only runs once the backend already sits in
 * InitWait, so the daemon does not stall waiting for a backend that is
 * not there.
 */
#include "frontd.h"

#include "pvc/ext.h"
#include "pvc/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <xenstore.h>

#define BE_WATCH_TOKEN "frontd-be-state"
#define CLOSE_TIMEOUT_MS 2000

static int read_state(struct frontd *d, const char *dir)
{
    char path[PVC_XB_PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/state", dir);
    unsigned len = 0;
    char *v = xs_read(d->xs, XBT_NULL, path, &len);
    if (!v)
        return -1;
    char *end;
    long st = strtol(v, &end, 10);
    bool ok = end != v && *end == '\0' && st >= 0 && st <= 8;
    free(v);
    return ok ? (int)st : -1;
}

static void drain_watch_events(struct frontd *d)
{
    char **ev;
    while ((ev = xs_check_watch(d->xs)))
        free(ev);
}

static void on_cmd(void *ctx, uint32_t events)
{
    (void)events;
    cmd_process(ctx);
}

static int handshake(struct frontd *d, int timeout_ms)
{
    if (pvc_xb_front_connect(d->plat, d->xs, d->cfg.device, PVC_EXT_ALL,
                             timeout_ms, &d->fe) < 0)
        return -1;
    snprintf(d->fe_path, sizeof(d->fe_path), "%s", d->fe.fe_path);
    snprintf(d->be_path, sizeof(d->be_path), "%s", d->fe.be_path);
    if (pvc_loop_add(d->loop, &d->cmd_watch, pvc_evtchn_fd(d->fe.cmd_evtchn),
                     EPOLLIN, on_cmd, d) < 0) {
        pvc_xb_front_close(&d->fe, CLOSE_TIMEOUT_MS);
        return -1;
    }
    d->connected = true;
    d->ever_connected = true;
    d->order = d->cfg.order;
    if (d->order > d->fe.max_page_order)
        d->order = d->fe.max_page_order;
    if (d->order < 1)
        d->order = 1;
    pvc_info("connected to the backend in domain %u (max-page-order %u, "
             "ring order %u, extensions %#x)", d->fe.be_domid,
             d->fe.max_page_order, d->order, d->fe.ext_enabled);
    pool_refill(d);
    return 0;
}

/* Disconnected: our own watch on the backend's state, Initialising. */
static void await_backend(struct frontd *d)
{
    char path[PVC_XB_PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/state", d->be_path);
    if (!d->be_watch && d->be_path[0])
        d->be_watch = xs_watch(d->xs, path, BE_WATCH_TOKEN);
    snprintf(path, sizeof(path), "%s/state", d->fe_path);
    char val[4];
    snprintf(val, sizeof(val), "%d", XenbusStateInitialising);
    if (d->fe_path[0] && !xs_write(d->xs, XBT_NULL, path, val, strlen(val)))
        pvc_warn("writing %s: %s", path, strerror(errno));
}

static void stop_await(struct frontd *d)
{
    char path[PVC_XB_PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/state", d->be_path);
    if (d->be_watch)
        xs_unwatch(d->xs, path, BE_WATCH_TOKEN);
    d->be_watch = false;
}

static void try_reconnect(struct frontd *d)
{
    int st = read_state(d, d->be_path);
    if (st != XenbusStateInitWait)
        return;
    stop_await(d);
    if (handshake(d, FRONTD_CONNECT_TIMEOUT_MS) == 0)
        return;
    pvc_warn("reconnecting to the backend failed: %s", strerror(errno));
    await_backend(d);
}

void frontd_backend_lost(struct frontd *d)
{
    if (!d->connected)
        return;
    pvc_warn("the backend went away: resetting every socket");
    d->connected = false;
    pvc_loop_del(d->loop, &d->cmd_watch);
    /* Rings first, so that shims woken by a failed call see the reset. */
    socks_backend_lost(d);
    cmd_fail_all(d, -ENETDOWN);
    pool_flush(d);
    pvc_xb_front_close(&d->fe, CLOSE_TIMEOUT_MS);
    await_backend(d);
}

static void on_xs(void *ctx, uint32_t events)
{
    struct frontd *d = ctx;
    (void)events;
    if (d->connected) {
        int st = pvc_xb_front_backend_state(&d->fe);
        if (st != XenbusStateConnected)
            frontd_backend_lost(d);
        return;
    }
    drain_watch_events(d);
    try_reconnect(d);
}

int frontd_backend_start(struct frontd *d)
{
    d->xs = pvc_store_open(d->plat);
    if (!d->xs)
        return -1;
    if (handshake(d, FRONTD_CONNECT_TIMEOUT_MS) < 0)
        return -1;
    /* The front's watch on the backend state (and ours later) wakes this. */
    return pvc_loop_add(d->loop, &d->xs_watch, xs_fileno(d->xs), EPOLLIN,
                        on_xs, d);
}

void frontd_backend_stop(struct frontd *d)
{
    if (!d->xs)
        return;
    pvc_loop_del(d->loop, &d->xs_watch);
    if (d->connected) {
        /* Give the RELEASEs just sent a moment to be answered. */
        int64_t deadline = frontd_now_ms() + CLOSE_TIMEOUT_MS;
        while (d->ninflight > 0 && frontd_now_ms() < deadline) {
            int left = (int)(deadline - frontd_now_ms());
            if (pvc_loop_run_once(d->loop, left) < 0)
                break;
        }
        d->connected = false;
        pvc_loop_del(d->loop, &d->cmd_watch);
        cmd_fail_all(d, -ENETDOWN);
        pool_flush(d);
        pvc_xb_front_close(&d->fe, CLOSE_TIMEOUT_MS);
    }
    stop_await(d);
    xs_close(d->xs);
    d->xs = NULL;
}
