/*
 * Adding a pvcalls device the way libxl__device_add() and
 * libxl__device_generic_add() do (libxl_device.c): pvcalls has no
 * set_xenstore_config hook, so only the generic keys are written, all in
 * one transaction retried on EAGAIN.
 *
 *   /libxl/<fe>/device/pvcalls/<devid>/    frontend, backend, then the
 *                                          backend's keys again (libxl's
 *                                          private copy)
 *   /local/domain/<fe>/device/pvcalls/<devid>/
 *       perms: owner fe, be may read (every key set explicitly)
 *       backend, backend-id, state=1
 *   /local/domain/<be>/backend/pvcalls/<fe>/<devid>/
 *       perms: owner be, fe may read (keys inherit them)
 *       frontend, frontend-id, online=1, state=1
 */
#include "simxl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

void simxl_dev_init(struct simxl_dev *dev, unsigned fe, unsigned be,
                    unsigned devid)
{
    dev->fe_domid = fe;
    dev->be_domid = be;
    dev->devid = devid;
    snprintf(dev->fe_path, sizeof(dev->fe_path),
             "/local/domain/%u/device/pvcalls/%u", fe, devid);
    snprintf(dev->be_path, sizeof(dev->be_path),
             "/local/domain/%u/backend/pvcalls/%u/%u", be, fe, devid);
    snprintf(dev->libxl_path, sizeof(dev->libxl_path),
             "/libxl/%u/device/pvcalls/%u", fe, devid);
}

/* libxl__device_nextid takes the last directory entry + 1; the largest
 * entry + 1 is the same in the usual case and can never collide. */
static int next_devid(struct xs_handle *xs, unsigned fe)
{
    char path[64];
    unsigned n = 0;
    snprintf(path, sizeof(path), "/libxl/%u/device/pvcalls", fe);
    char **ents = xs_directory(xs, XBT_NULL, path, &n);
    if (!ents)
        return errno == ENOENT ? 0 : -1;
    long next = 0;
    for (unsigned i = 0; i < n; i++) {
        char *end;
        long id = strtol(ents[i], &end, 10);
        if (!*end && id >= next && id < 1000000)
            next = id + 1;
    }
    free(ents);
    return (int)next;
}

struct kv {
    const char *key;
    const char *val;
};

/* libxl__xs_writev_perms: each key, then (if perms) its permissions. */
static bool writev(struct xs_handle *xs, xs_transaction_t t, const char *dir,
                   const struct kv *kvs, struct xs_permissions *perms,
                   unsigned nperms)
{
    char path[160];
    for (; kvs->key; kvs++) {
        snprintf(path, sizeof(path), "%s/%s", dir, kvs->key);
        if (!simxl_write(xs, t, path, kvs->val))
            return false;
        if (perms && !xs_set_permissions(xs, t, path, perms, nperms))
            return false;
    }
    return true;
}

static bool rm_ok(struct xs_handle *xs, xs_transaction_t t, const char *path)
{
    return xs_rm(xs, t, path) || errno == ENOENT;
}

/* The body of libxl__device_generic_add's transaction. */
static bool generic_add(struct xs_handle *xs, xs_transaction_t t,
                        const struct simxl_dev *dev)
{
    char fe_id[16], be_id[16], path[160];
    snprintf(fe_id, sizeof(fe_id), "%u", dev->fe_domid);
    snprintf(be_id, sizeof(be_id), "%u", dev->be_domid);
    const struct kv bents[] = {
        { "frontend-id", fe_id }, { "online", "1" }, { "state", "1" }, { 0 },
    };
    const struct kv fents[] = {
        { "backend-id", be_id }, { "state", "1" }, { 0 },
    };
    struct xs_permissions fe_perms[2] = {
        { .id = dev->fe_domid, .perms = XS_PERM_NONE },
        { .id = dev->be_domid, .perms = XS_PERM_READ },
    };
    struct xs_permissions be_perms[2] = {
        { .id = dev->be_domid, .perms = XS_PERM_NONE },
        { .id = dev->fe_domid, .perms = XS_PERM_READ },
    };

    if (!rm_ok(xs, t, dev->libxl_path))
        return false;
    snprintf(path, sizeof(path), "%s/frontend", dev->libxl_path);
    if (!simxl_write(xs, t, path, dev->fe_path))
        return false;
    snprintf(path, sizeof(path), "%s/backend", dev->libxl_path);
    if (!simxl_write(xs, t, path, dev->be_path))
        return false;

    snprintf(path, sizeof(path), "%s/backend", dev->fe_path);
    if (!rm_ok(xs, t, dev->fe_path) || !xs_mkdir(xs, t, dev->fe_path) ||
        !xs_set_permissions(xs, t, dev->fe_path, fe_perms, 2) ||
        !simxl_write(xs, t, path, dev->be_path) ||
        !writev(xs, t, dev->fe_path, fents, fe_perms, 2))
        return false;

    snprintf(path, sizeof(path), "%s/frontend", dev->be_path);
    if (!rm_ok(xs, t, dev->be_path) || !xs_mkdir(xs, t, dev->be_path) ||
        !xs_set_permissions(xs, t, dev->be_path, be_perms, 2) ||
        !simxl_write(xs, t, path, dev->fe_path) ||
        !writev(xs, t, dev->be_path, bents, NULL, 0))
        return false;

    return writev(xs, t, dev->libxl_path, bents, NULL, 0);
}

int simxl_device_add(struct xs_handle *xs, unsigned fe, unsigned be,
                     unsigned *devid)
{
    int id = next_devid(xs, fe);
    if (id < 0)
        return -1;
    struct simxl_dev dev;
    simxl_dev_init(&dev, fe, be, (unsigned)id);
    for (;;) {
        xs_transaction_t t = xs_transaction_start(xs);
        if (t == XBT_NULL)
            return -1;
        if (!generic_add(xs, t, &dev)) {
            int saved = errno;
            xs_transaction_end(xs, t, true);
            errno = saved;
            return -1;
        }
        if (xs_transaction_end(xs, t, false))
            break;
        if (errno != EAGAIN)
            return -1;
    }
    *devid = (unsigned)id;
    return 0;
}
