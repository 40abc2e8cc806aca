/*
 * The backend daemon's device, in process, for the fuzz targets: a struct
 * backd on the fake platform (fakeplat.h) and fake xenstore (fakexs.h),
 * one connected frontend domain whose command ring and data rings live
 * in the fake guest memory, which the harness writes as a hostile
 * frontend would.  Host sockets are real, on loopback only: every
 * address a request names is rewritten to 127.0.0.1 or ::1, and every
 * CONNECT goes to the harness's own listener (or to a closed port), so a
 * fuzzer never talks to anything else on the machine.
 */
#ifndef FUZZ_BACKEND_HARNESS_H
#define FUZZ_BACKEND_HARNESS_H

#include "cursor.h"
#include "pvc/ring.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bdev;

/* Guest memory layout: the command ring is ref 1 on port 1; data rings
 * use refs from 2 on and ports 2..15. */
#define BH_CMD_REF 1u
#define BH_CMD_PORT 1u
#define BH_PEERS 8u

struct bh {
    struct pvc_cmd_front front; /* the frontend's view of the ring */
    bool front_trusted;         /* false once raw indexes were written */
    int peers[BH_PEERS];        /* host ends of connections, -1: none */
};

/* Connect a device with extensions ext (masked to what exists). */
void bh_begin(struct bh *h, unsigned ext);
/* Tear everything down: afterwards nothing may be left allocated. */
void bh_end(struct bh *h);
/* The device, or NULL once it was reset for a violation. */
struct bdev *bh_dev(void);

/* Push a request (addresses made safe) and ring the doorbell. */
void bh_request(struct bh *h, struct xen_pvcalls_request *req, bool kick);
/* One pass of the daemon's loop, without waiting. */
void bh_run(void);
/* Take every response the backend published; checks each answers a
 * request we made (when the ring was not tampered with). */
void bh_take_responses(struct bh *h);
/* Overwrite one of the command ring's shared indexes. */
void bh_poke_cmd_index(struct bh *h, unsigned which, uint32_t val);
/* Write into guest memory (page index and offset wrap). */
void bh_write_mem(struct bh *h, unsigned page, unsigned offset, const uint8_t *data,
                  size_t len);
/* Lay out a well-formed data ring: indexes page `ref`, ring_order
 * `order`, data pages right after it.  Returns the indexes page. */
struct pvcalls_data_intf *bh_make_ring(uint32_t ref, unsigned order);
void bh_kick(uint32_t port);
/* Host side of connections: accept what the listener has, connect to a
 * listening socket of the device, write into / close one of them. */
void bh_peer_accept(struct bh *h);
void bh_peer_connect(struct bh *h, uint64_t listener_id);
void bh_peer_send(struct bh *h, unsigned which, const uint8_t *data,
                  size_t len);
void bh_peer_drain(struct bh *h, unsigned which);
void bh_peer_close(struct bh *h, unsigned which);
void bh_fail_grants(unsigned n);

#endif
