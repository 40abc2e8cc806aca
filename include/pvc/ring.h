/*
 * Command-ring and data-ring operations shared by every frontend and
 * backend in the project.  No I/O here: these functions only read and
 * write shared memory and report whether the peer must be notified.
 *
 * The peer is never trusted.  Each side keeps a private copy of the indexes
 * it owns (a producer its prod, a consumer its cons) and reads only the
 * peer's index from shared memory, once per operation, validated: a peer
 * index that puts more than the ring's size between prod and cons is a
 * protocol violation (-EPROTO), never an out-of-bounds access.
 */
#ifndef PVC_RING_H
#define PVC_RING_H

#include "pvc/wire.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* ---- data rings (one per active socket) ---------------------------- */

enum pvc_ring_side {
    PVC_SIDE_FRONT, /* receives from `in`, sends into `out` */
    PVC_SIDE_BACK,  /* receives from `out`, sends into `in` */
};

struct pvc_data_ring {
    struct pvcalls_data_intf *intf;
    enum pvc_ring_side side;
    RING_IDX size;          /* bytes in each half: XEN_FLEX_RING_SIZE(order) */
    unsigned char *rx_buf;  /* the half we consume */
    unsigned char *tx_buf;  /* the half we produce */
    RING_IDX *rx_prod, *rx_cons; /* shared indexes of the rx half */
    RING_IDX *tx_prod, *tx_cons; /* shared indexes of the tx half */
    RING_IDX rx_cons_pvt;   /* our consumer index, the truth */
    RING_IDX tx_prod_pvt;   /* our producer index, the truth */
};

/* Bytes in one half of a data ring of the given order (1 ≤ order ≤ 9). */
static inline RING_IDX pvc_data_ring_half(unsigned order)
{
    return (RING_IDX)XEN_FLEX_RING_SIZE(order);
}

/* Attach to a ring: intf is the indexes page, data the 2^order data pages
 * mapped contiguously (in half first, out half second).  The private
 * indexes are loaded from the shared ones (0 for a fresh ring). */
void pvc_data_ring_attach(struct pvc_data_ring *r, void *intf, void *data,
                          unsigned order, enum pvc_ring_side side);
/* Reload our private index of one half from shared memory: for a ring
 * driven by several processes in turn (forked holders of one socket, each
 * under a shared lock), the previous holder may have moved it. */
void pvc_data_ring_resync_rx(struct pvc_data_ring *r);
void pvc_data_ring_resync_tx(struct pvc_data_ring *r);
/* Frontend only: initialise a fresh indexes page (all zero, ring_order,
 * refs of the data pages) before handing it to the backend. */
void pvc_data_ring_init_intf(struct pvcalls_data_intf *intf, unsigned order,
                             const uint32_t *data_refs);

/* Validated count of bytes between prod and cons in a ring of `size`:
 * 0..size, or -EPROTO if prod - cons > size. */
static inline long pvc_ring_span(RING_IDX prod, RING_IDX cons, RING_IDX size)
{
    RING_IDX span = prod - cons; /* modulo 2^32: wrap-around is fine */
    return span > size ? -EPROTO : (long)span;
}

/* Bytes ready to receive, described as up to two iovecs into the rx half
 * (the second covers wrap-around).  Returns the byte count (0: empty) or
 * -EPROTO. */
long pvc_ring_rx_iov(struct pvc_data_ring *r, struct iovec iov[2]);
/* Copy up to len received bytes into buf; consume them unless peek.
 * Returns bytes copied (0: empty) or -EPROTO. */
long pvc_ring_rx_copy(struct pvc_data_ring *r, void *buf, size_t len, int peek);
/* Mark n received bytes consumed (n ≤ what rx_iov returned). */
void pvc_ring_rx_consume(struct pvc_data_ring *r, RING_IDX n);

/* Free space to send into, as up to two iovecs into the tx half.
 * Returns the byte count (0: full) or -EPROTO. */
long pvc_ring_tx_iov(struct pvc_data_ring *r, struct iovec iov[2]);
/* Copy up to len bytes from buf into the ring and publish them.
 * Returns bytes copied (0: full) or -EPROTO. */
long pvc_ring_tx_copy(struct pvc_data_ring *r, const void *buf, size_t len);
/* Publish n bytes written into the iovecs from tx_iov. */
void pvc_ring_tx_produce(struct pvc_data_ring *r, RING_IDX n);

/* Bytes we have sent that the peer has not consumed yet (0 when the
 * peer has drained our tx half), or -EPROTO. */
long pvc_ring_tx_unconsumed(struct pvc_data_ring *r);

/* The "waiting" extension (docs/pvcalls-ext.md §4.7), only when it was
 * negotiated.  pvc_ring_tx_iov_waiting: as pvc_ring_tx_iov, but a full
 * half raises our "producer waiting" flag (then looks again), so that
 * the peer notifies us when it consumes.  pvc_ring_rx_wake_due: after
 * consuming (pvc_ring_rx_consume), whether the peer's producer flag was
 * up (it is cleared): notify only then.  pvc_ring_tx_unconsumed_waiting:
 * as pvc_ring_tx_unconsumed, raising the flag while bytes are left (for a
 * sender waiting for the peer to drain). */
long pvc_ring_tx_iov_waiting(struct pvc_data_ring *r, struct iovec iov[2]);
bool pvc_ring_rx_wake_due(struct pvc_data_ring *r);
long pvc_ring_tx_unconsumed_waiting(struct pvc_data_ring *r);

/* Error words, set only by the backend: in_error (EOF is -ENOTCONN) and
 * out_error.  Read with the ordering the spec asks for. */
int32_t pvc_ring_in_error(const struct pvc_data_ring *r);
int32_t pvc_ring_out_error(const struct pvc_data_ring *r);
void pvc_ring_set_in_error(struct pvc_data_ring *r, int32_t err);
void pvc_ring_set_out_error(struct pvc_data_ring *r, int32_t err);

/* ---- the command ring ---------------------------------------------- */

/* The frontend's view.  Requests are matched to responses by req_id, never
 * by position: the backend answers out of order. */
struct pvc_cmd_front {
    struct xen_pvcalls_front_ring ring;
};

/* Initialise a fresh command-ring page (SHARED_RING_INIT+FRONT_RING_INIT). */
void pvc_cmd_front_init(struct pvc_cmd_front *c, void *page);
/* Requests that may still be queued: RING_SIZE minus those outstanding. */
unsigned pvc_cmd_front_free_slots(const struct pvc_cmd_front *c);
/* Queue one request.  Returns 1 if the backend must be notified, 0 if
 * not, -EBUSY if the ring is full.  The response slot for it is counted
 * as outstanding until pvc_cmd_front_pop() returns its response. */
int pvc_cmd_front_push(struct pvc_cmd_front *c,
                       const struct xen_pvcalls_request *req);
/* Take the next response into *slot (a whole 64-byte ring entry: the
 * project's extension responses use more than the 24 bytes of
 * struct xen_pvcalls_response).  Returns 1 with a response, 0 if none
 * (and the event index is armed, so a later response notifies us), or
 * -EPROTO if the backend's rsp_prod claims more responses than requests
 * outstanding. */
int pvc_cmd_front_pop(struct pvc_cmd_front *c,
                      union xen_pvcalls_sring_entry *slot);

/* The backend's view. */
struct pvc_cmd_back {
    struct xen_pvcalls_back_ring ring;
};

/* Attach to a command-ring page that the frontend initialised. */
void pvc_cmd_back_attach(struct pvc_cmd_back *c, void *page);
/* Copy the next request into *req.  Returns 1 with a request, 0 if none
 * (event index armed), or -EPROTO if the frontend queued more requests than
 * the ring holds (req_prod - rsp_prod_pvt > RING_SIZE). */
int pvc_cmd_back_pop(struct pvc_cmd_back *c, struct xen_pvcalls_request *req);
/* Write one response of len bytes (24 for v1, up to 64 for extension
 * responses, which then fill the whole entry) into the next response
 * slot.  Returns -EBUSY if every consumed request already has its
 * response, otherwise 0.  Call pvc_cmd_back_publish() after a batch. */
int pvc_cmd_back_put(struct pvc_cmd_back *c, const void *rsp, size_t len);
/* Publish the responses put so far.  Returns 1 if the frontend must be
 * notified, else 0. */
int pvc_cmd_back_publish(struct pvc_cmd_back *c);

#endif
