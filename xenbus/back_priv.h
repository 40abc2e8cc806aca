/*
 * The backend's internals, shared by back.c (registry, watches, dispatch)
 * and back_dev.c (one device's state machine).
 */
#ifndef PVC_XENBUS_BACK_PRIV_H
#define PVC_XENBUS_BACK_PRIV_H

#include "pvc/xenbus.h"

#include "xs_util.h"

#include <stdbool.h>
#include <uthash.h>

/* Largest domid a real domain can have (DOMID_FIRST_RESERVED - 1). */
#define XB_MAX_DOMID 0x7fefu
/* devids are small counters (libxl starts at 0); bound what we accept. */
#define XB_MAX_DEVID 0xffffu

#define XB_TOKEN_TREE "pvc:be"
#define XB_TOKEN_RELEASE "pvc:release"
/* Per-device token for the frontend's state: "pvc:<fe>:<devid>:fe". */
#define XB_TOKEN_FE_FMT "pvc:%u:%u:fe"

struct back_dev {
    struct pvc_xb_back_dev pub; /* what the ops see */
    uint32_t key;               /* fe_domid << 16 | devid */
    bool connected;             /* connect() succeeded, disconnect() owed */
    bool watching;              /* the frontend's state is watched */
    char fe_token[32];
    UT_hash_handle hh;
};

struct pvc_xb_back {
    struct pvc_platform *plat;
    struct xs_handle *xs;
    struct pvc_xb_back_cfg cfg;
    const struct pvc_xb_back_ops *ops;
    void *ctx;
    char base[PVC_XB_PATH_MAX]; /* <own domain path>/backend/pvcalls */
    bool watching_tree, watching_release;
    struct back_dev *devs;      /* uthash, by key */
};

static inline uint32_t back_dev_key(unsigned fe_domid, unsigned devid)
{
    return (uint32_t)fe_domid << 16 | devid;
}

/* back_dev.c */

/* Start tracking the device at <base>/<fe>/<devid> if its toolstack keys
 * are complete and its frontend domain exists; set it up (InitWait, or
 * Closing for a stale connection) and evaluate it.  A device that is not
 * (yet) usable is left alone: the next event under our tree retries. */
void back_dev_add(struct pvc_xb_back *b, unsigned fe_domid, unsigned devid);
/* Re-read the device's nodes and move it towards what the frontend and
 * toolstack ask for.  May free the device. */
void back_dev_evaluate(struct pvc_xb_back *b, struct back_dev *d);
/* Disconnect (if connected), optionally write state Closed, stop
 * watching and free the device. */
void back_dev_forget(struct pvc_xb_back *b, struct back_dev *d,
                     bool write_closed, const char *why);
/* Protocol violation: disconnect and go Closing. */
void back_dev_reset(struct pvc_xb_back *b, struct back_dev *d);

#endif
