/*
 * The backend's device registry: watches on our backend/pvcalls tree, on
 * every frontend's state and on @releaseDomain; start-up scan; dispatch of
 * watch events to the device state machine (back_dev.c).  See
 * include/pvc/xenbus.h.
 *
 * Everything is event driven: the caller polls pvc_xb_back_fd() and calls
 * pvc_xb_back_process(), which drains the queued events without blocking.
 * An event names a node; the device it belongs to is re-read from the
 * store, never taken from the event.
 */
#include "back_priv.h"

#include "pvc/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- discovery ----------------------------------------------------- */

/* A decimal directory name <= max (a domid or devid), or -1. */
static long parse_id(const char *s, size_t len, unsigned long max)
{
    if (len == 0 || len > 5)
        return -1;
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    return v > max ? -1 : (long)v;
}

static char **list_dir(struct pvc_xb_back *b, const char *path,
                       unsigned *n)
{
    char **names = xs_directory(b->xs, XBT_NULL, path, n);
    if (!names)
        *n = 0;
    return names;
}

static void scan_frontend(struct pvc_xb_back *b, unsigned fe_domid)
{
    char path[PVC_XB_PATH_MAX];
    unsigned n;
    if (xb_path(path, "%s/%u", b->base, fe_domid) < 0)
        return;
    char **devids = list_dir(b, path, &n);
    for (unsigned i = 0; i < n; i++) {
        long devid = parse_id(devids[i], strlen(devids[i]), XB_MAX_DEVID);
        if (devid < 0)
            continue;
        struct back_dev *d;
        uint32_t key = back_dev_key(fe_domid, (unsigned)devid);
        HASH_FIND(hh, b->devs, &key, sizeof(key), d);
        if (!d)
            back_dev_add(b, fe_domid, (unsigned)devid);
    }
    free(devids);
}

/* Pick up every device under our tree we do not track yet, and re-check
 * those we do (some may have vanished with the subtree). */
static void scan_all(struct pvc_xb_back *b)
{
    unsigned n;
    char **fes = list_dir(b, b->base, &n);
    for (unsigned i = 0; i < n; i++) {
        long fe = parse_id(fes[i], strlen(fes[i]), XB_MAX_DOMID);
        if (fe >= 0)
            scan_frontend(b, (unsigned)fe);
    }
    free(fes);
    struct back_dev *d, *tmp;
    HASH_ITER(hh, b->devs, d, tmp)
        back_dev_evaluate(b, d);
}

/* ---- event dispatch ------------------------------------------------ */

/* An event at or below <base>: find the device it is about. */
static void on_tree_event(struct pvc_xb_back *b, const char *path)
{
    size_t blen = strlen(b->base);
    if (strncmp(path, b->base, blen) || (path[blen] && path[blen] != '/'))
        return;
    const char *fe_s = path[blen] ? path + blen + 1 : path + blen;
    const char *slash = strchr(fe_s, '/');
    if (!slash) { /* the tree itself or a whole frontend's subtree */
        scan_all(b);
        return;
    }
    const char *devid_s = slash + 1;
    const char *end = strchr(devid_s, '/');
    long fe = parse_id(fe_s, (size_t)(slash - fe_s), XB_MAX_DOMID);
    long devid = parse_id(devid_s, end ? (size_t)(end - devid_s)
                                       : strlen(devid_s), XB_MAX_DEVID);
    if (fe < 0 || devid < 0)
        return;
    uint32_t key = back_dev_key((unsigned)fe, (unsigned)devid);
    struct back_dev *d;
    HASH_FIND(hh, b->devs, &key, sizeof(key), d);
    if (d)
        back_dev_evaluate(b, d);
    else
        back_dev_add(b, (unsigned)fe, (unsigned)devid);
}

static void on_frontend_event(struct pvc_xb_back *b, const char *token)
{
    unsigned fe, devid;
    char tail;
    if (sscanf(token, XB_TOKEN_FE_FMT "%c", &fe, &devid, &tail) != 2 ||
        fe > XB_MAX_DOMID || devid > XB_MAX_DEVID)
        return;
    uint32_t key = back_dev_key(fe, devid);
    struct back_dev *d;
    HASH_FIND(hh, b->devs, &key, sizeof(key), d);
    if (d) /* a stale event of a forgotten device finds nothing */
        back_dev_evaluate(b, d);
}

/* A domain died: let go of every device whose frontend went with it. */
static void on_release_domain(struct pvc_xb_back *b)
{
    struct back_dev *d, *tmp;
    HASH_ITER(hh, b->devs, d, tmp) {
        char path[40];
        snprintf(path, sizeof(path), "/local/domain/%u", d->pub.fe_domid);
        if (!xb_exists(b->xs, XBT_NULL, path))
            back_dev_forget(b, d, true, "frontend domain is gone");
    }
}

void pvc_xb_back_process(struct pvc_xb_back *b)
{
    char **ev;
    while ((ev = xs_check_watch(b->xs))) {
        const char *path = ev[XS_WATCH_PATH], *token = ev[XS_WATCH_TOKEN];
        if (!strcmp(token, XB_TOKEN_TREE))
            on_tree_event(b, path);
        else if (!strcmp(token, XB_TOKEN_RELEASE))
            on_release_domain(b);
        else
            on_frontend_event(b, token);
        free(ev);
    }
}

/* ---- life cycle ---------------------------------------------------- */

struct pvc_xb_back *pvc_xb_back_new(struct pvc_platform *plat,
                                    struct xs_handle *xs,
                                    const struct pvc_xb_back_cfg *cfg,
                                    const struct pvc_xb_back_ops *ops,
                                    void *ctx)
{
    struct pvc_xb_back *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->plat = plat;
    b->xs = xs;
    b->cfg = *cfg;
    b->ops = ops;
    b->ctx = ctx;
    char *home = xs_get_domain_path(xs, pvc_platform_domid(plat));
    int rc = home ? xb_path(b->base, "%s/backend/pvcalls", home) : -1;
    free(home);
    if (rc < 0)
        goto fail;
    /* Watch before scanning, so a device created in between is seen. */
    if (!xs_watch(xs, b->base, XB_TOKEN_TREE))
        goto fail;
    b->watching_tree = true;
    /* Without it dead frontends are still noticed when their nodes go,
     * only later: not a reason to refuse service. */
    if (xs_watch(xs, "@releaseDomain", XB_TOKEN_RELEASE))
        b->watching_release = true;
    else
        pvc_warn("xenbus: cannot watch @releaseDomain: %s", strerror(errno));
    scan_all(b);
    pvc_info("xenbus: backend watching %s", b->base);
    return b;
fail:
    pvc_err("xenbus: cannot start the backend: %s", strerror(errno));
    pvc_xb_back_free(b);
    return NULL;
}

int pvc_xb_back_fd(const struct pvc_xb_back *b)
{
    return xs_fileno(b->xs);
}

_Static_assert(__builtin_offsetof(struct back_dev, pub) == 0,
               "the ops' device is the first member of ours");

void pvc_xb_back_reset(struct pvc_xb_back *b, struct pvc_xb_back_dev *dev)
{
    back_dev_reset(b, (struct back_dev *)dev);
}

void pvc_xb_back_free(struct pvc_xb_back *b)
{
    if (!b)
        return;
    struct back_dev *d, *tmp;
    HASH_ITER(hh, b->devs, d, tmp)
        back_dev_forget(b, d, true, "backend shutting down");
    if (b->watching_tree)
        xs_unwatch(b->xs, b->base, XB_TOKEN_TREE);
    if (b->watching_release)
        xs_unwatch(b->xs, "@releaseDomain", XB_TOKEN_RELEASE);
    /* Events still queued refer to what we just freed. */
    xb_drain_watches(b->xs);
    free(b);
}
