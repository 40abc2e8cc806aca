/*
 * pvcalls-simxl: the simulated platform's toolstack ("xl" for the
 * simulation).  It runs as domain 0: domain lifecycle through the broker,
 * devices through the store with the real libxenstore, following what
 * libxl does for `pvcalls = [ 'backend=N' ]` (research notes §1.1;
 * tools/libs/light/libxl_device.c).
 */
#ifndef SIMXL_H
#define SIMXL_H

#include "pvc/platform.h"

#include <stdbool.h>
#include <stdint.h>
#include <xenstore.h>

/* libxl's LIBXL_DESTROY_TIMEOUT. */
#define SIMXL_DESTROY_TIMEOUT_MS 10000

/* XenbusState values the toolstack writes or waits for. */
#define XB_INITIALISING 1
#define XB_CLOSING 5
#define XB_CLOSED 6

/* One pvcalls device, as libxl names it. */
struct simxl_dev {
    unsigned fe_domid;
    unsigned be_domid;
    unsigned devid;
    char fe_path[96];    /* /local/domain/<fe>/device/pvcalls/<devid> */
    char be_path[96];    /* /local/domain/<be>/backend/pvcalls/<fe>/<devid> */
    char libxl_path[96]; /* /libxl/<fe>/device/pvcalls/<devid> */
};

void simxl_dev_init(struct simxl_dev *dev, unsigned fe, unsigned be,
                    unsigned devid);

/* broker.c: a toolstack operation (SIM_OP_DOMAIN_*) as domain 0.
 * Returns 0 or a negative errno. */
int simxl_broker_call(const char *sim_dir, uint32_t op, uint32_t domid);

/* device_add.c: add a pvcalls device with the next free devid. */
int simxl_device_add(struct xs_handle *xs, unsigned fe, unsigned be,
                     unsigned *devid);

/* device_remove.c: the pvcalls devices of domain fe (at most max);
 * returns how many, or -1. */
int simxl_devices_list(struct xs_handle *xs, unsigned fe,
                       struct simxl_dev *devs, int max);
/* Find device devid of domain fe; 0, or -1 with errno ENOENT. */
int simxl_device_find(struct xs_handle *xs, unsigned fe, unsigned devid,
                      struct simxl_dev *dev);
/* Remove devices as libxl does: online=0 and backend state=5, wait up to
 * SIMXL_DESTROY_TIMEOUT_MS for every backend to reach state 6, then
 * delete the frontend, backend and /libxl entries.  Returns 0, 1 if some
 * backend did not close in time (the entries are removed anyway), or -1
 * on a store error. */
int simxl_devices_remove(struct xs_handle *xs, struct simxl_dev *devs,
                         int n);

/* xs_util.c */
/* libxl__xs_path_cleanup: remove path, then each parent that has become
 * an empty directory with an empty value. */
void simxl_path_cleanup(struct xs_handle *xs, xs_transaction_t t,
                        const char *path);
bool simxl_write(struct xs_handle *xs, xs_transaction_t t, const char *path,
                 const char *val);

#endif
