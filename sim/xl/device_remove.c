/*
 * Removing pvcalls devices the way libxl does
 * (libxl__initiate_device_generic_remove, libxl__ev_devstate_wait,
 * libxl__device_destroy in libxl_device.c):
 *
 *  1. per device, in one transaction: if the backend's state node is
 *     gone, skip to 3; else online=0 and, unless it is Closed already,
 *     state=5 (Closing);
 *  2. wait, with xenstore watches, up to LIBXL_DESTROY_TIMEOUT (10 s) for
 *     every backend state to become 6 (Closed) or vanish;
 *  3. in one transaction: remove the frontend dir, the /libxl copy and
 *     the backend dir, each with its parents that became empty.
 *
 * Like libxl, the entries are removed even after a timeout (its forced
 * removal); the timeout is reported.  Devices are handled together, as
 * libxl's multidev does, so n devices wait 10 s at most, not 10 s each.
 */
#include "simxl.h"

#include "pvc/log.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* libxl__parse_backend_path, restricted to pvcalls. */
static int parse_backend_path(const char *path, unsigned *be, unsigned *fe,
                              unsigned *devid)
{
    int end = 0;
    if (sscanf(path, "/local/domain/%u/backend/pvcalls/%u/%u%n", be, fe,
               devid, &end) != 3 || path[end] != '\0')
        return -1;
    return 0;
}

int simxl_device_find(struct xs_handle *xs, unsigned fe, unsigned devid,
                      struct simxl_dev *dev)
{
    char path[96];
    unsigned len, be, pfe, pdevid;
    snprintf(path, sizeof(path), "/libxl/%u/device/pvcalls/%u/backend", fe,
             devid);
    char *be_path = xs_read(xs, XBT_NULL, path, &len);
    if (!be_path) {
        errno = ENOENT;
        return -1;
    }
    int rc = parse_backend_path(be_path, &be, &pfe, &pdevid);
    free(be_path);
    if (rc < 0 || pfe != fe || pdevid != devid) {
        errno = ENOENT;
        return -1;
    }
    simxl_dev_init(dev, fe, be, devid);
    return 0;
}

int simxl_devices_list(struct xs_handle *xs, unsigned fe,
                       struct simxl_dev *devs, int max)
{
    char path[64];
    unsigned n = 0;
    snprintf(path, sizeof(path), "/libxl/%u/device/pvcalls", fe);
    char **ents = xs_directory(xs, XBT_NULL, path, &n);
    if (!ents)
        return errno == ENOENT ? 0 : -1;
    int found = 0;
    for (unsigned i = 0; i < n && found < max; i++) {
        char *end;
        unsigned long devid = strtoul(ents[i], &end, 10);
        if (*end || devid > 1000000)
            continue;
        if (simxl_device_find(xs, fe, (unsigned)devid, &devs[found]) == 0)
            found++;
    }
    free(ents);
    return found;
}

/* Step 1.  Returns 1 if we must wait for the backend, 0 if it is gone,
 * -1 on error. */
static int initiate_remove(struct xs_handle *xs, const struct simxl_dev *dev)
{
    char state_path[128], online_path[128];
    snprintf(state_path, sizeof(state_path), "%s/state", dev->be_path);
    snprintf(online_path, sizeof(online_path), "%s/online", dev->be_path);
    for (;;) {
        xs_transaction_t t = xs_transaction_start(xs);
        if (t == XBT_NULL)
            return -1;
        unsigned len;
        char *state = xs_read(xs, t, state_path, &len);
        if (!state) {
            int saved = errno;
            xs_transaction_end(xs, t, true);
            if (saved != ENOENT)
                return -1;
            pvc_info("backend %s already removed, cleanup frontend only",
                     dev->be_path);
            return 0;
        }
        bool closed = atoi(state) == XB_CLOSED;
        free(state);
        if (!simxl_write(xs, t, online_path, "0") ||
            (!closed && !simxl_write(xs, t, state_path, "5"))) {
            int saved = errno;
            xs_transaction_end(xs, t, true);
            errno = saved;
            return -1;
        }
        if (xs_transaction_end(xs, t, false))
            return 1;
        if (errno != EAGAIN)
            return -1;
    }
}

/* Closed, or vanished (libxl's devstate wait accepts both). */
static bool backend_closed(struct xs_handle *xs, const struct simxl_dev *dev)
{
    char path[128];
    unsigned len;
    snprintf(path, sizeof(path), "%s/state", dev->be_path);
    char *state = xs_read(xs, XBT_NULL, path, &len);
    if (!state)
        return errno == ENOENT;
    bool closed = atoi(state) == XB_CLOSED;
    free(state);
    return closed;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static void drain_watch_events(struct xs_handle *xs)
{
    char **ev;
    while ((ev = xs_check_watch(xs)))
        free(ev);
}

/* Step 2 for the devices with waiting[i] set.  Returns 0 when all are
 * closed, 1 on timeout, -1 on error.  Each wake-up comes from a watch
 * event (the first fires as soon as the watch is set). */
static int wait_closed(struct xs_handle *xs, const struct simxl_dev *devs,
                       const bool *waiting, int n)
{
    char path[128], token[16];
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (!waiting[i])
            continue;
        snprintf(path, sizeof(path), "%s/state", devs[i].be_path);
        snprintf(token, sizeof(token), "dev%d", i);
        if (!xs_watch(xs, path, token))
            return -1;
    }
    long deadline = now_ms() + SIMXL_DESTROY_TIMEOUT_MS;
    struct pollfd pfd = { .fd = xs_fileno(xs), .events = POLLIN };
    for (;;) {
        bool all = true;
        for (int i = 0; i < n && all; i++)
            if (waiting[i] && !backend_closed(xs, &devs[i]))
                all = false;
        if (all)
            break;
        long left = deadline - now_ms();
        if (left <= 0) {
            rc = 1;
            break;
        }
        if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) {
            rc = -1;
            break;
        }
        drain_watch_events(xs);
    }
    for (int i = 0; i < n; i++) {
        if (!waiting[i])
            continue;
        snprintf(path, sizeof(path), "%s/state", devs[i].be_path);
        snprintf(token, sizeof(token), "dev%d", i);
        xs_unwatch(xs, path, token);
    }
    return rc;
}

/* Step 3: libxl__device_destroy as the toolstack domain. */
static int destroy_entries(struct xs_handle *xs, const struct simxl_dev *dev)
{
    for (;;) {
        xs_transaction_t t = xs_transaction_start(xs);
        if (t == XBT_NULL)
            return -1;
        simxl_path_cleanup(xs, t, dev->fe_path);
        simxl_path_cleanup(xs, t, dev->libxl_path);
        simxl_path_cleanup(xs, t, dev->be_path);
        if (xs_transaction_end(xs, t, false))
            return 0;
        if (errno != EAGAIN)
            return -1;
    }
}

int simxl_devices_remove(struct xs_handle *xs, struct simxl_dev *devs, int n)
{
    bool *waiting = calloc(n ? n : 1, sizeof(bool));
    if (!waiting)
        return -1;
    int rc = 0;
    bool any = false;
    for (int i = 0; i < n; i++) {
        int r = initiate_remove(xs, &devs[i]);
        if (r < 0) {
            free(waiting);
            return -1;
        }
        waiting[i] = r == 1;
        any |= waiting[i];
    }
    if (any) {
        rc = wait_closed(xs, devs, waiting, n);
        if (rc < 0) {
            free(waiting);
            return -1;
        }
        if (rc == 1)
            for (int i = 0; i < n; i++)
                if (waiting[i] && !backend_closed(xs, &devs[i]))
                    fprintf(stderr, "pvcalls-simxl: backend did not close "
                            "in %d s: %s\n", SIMXL_DESTROY_TIMEOUT_MS / 1000,
                            devs[i].be_path);
    }
    free(waiting);
    for (int i = 0; i < n; i++)
        if (destroy_entries(xs, &devs[i]) < 0)
            return -1;
    return rc;
}
