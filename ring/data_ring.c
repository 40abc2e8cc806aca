/*
 * Data rings: the byte streams of one active socket (spec "Indexes Page and
 * Data Ring", research §3).  See include/pvc/ring.h.
 *
 * Indexes run freely modulo 2^32 and are masked with pvcalls_mask() only
 * when they address the buffer, so a full ring (prod - cons == size) and an
 * empty one (prod == cons) are told apart without a spare byte.
 *
 * Our own indexes (rx_cons_pvt, tx_prod_pvt) are kept privately and only
 * written to shared memory; the peer's index is read once per operation and
 * validated against ours, so whatever the peer writes, every byte we touch
 * lies inside the half we were given.
 */
#include "pvc/ring.h"

#include "shared.h"

#include <assert.h>

void pvc_data_ring_init_intf(struct pvcalls_data_intf *intf, unsigned order,
                             const uint32_t *data_refs)
{
    assert(order <= PVC_MAX_RING_ORDER);
    /* The whole page: nothing stale from an earlier use reaches the peer. */
    memset(intf, 0, PVC_PAGE_SIZE);
    intf->ring_order = order;
    for (unsigned i = 0; i < 1u << order; i++)
        intf->ref[i] = data_refs[i];
}

void pvc_data_ring_attach(struct pvc_data_ring *r, void *intf, void *data,
                          unsigned order, enum pvc_ring_side side)
{
    /* order comes from the caller, who validated the peer's ring_order
     * before mapping that many pages; here it can only be a bug. */
    assert(order >= 1 && order <= PVC_MAX_RING_ORDER);
    struct pvcalls_data_intf *i = intf;
    unsigned char *in_half = data;

    r->intf = i;
    r->side = side;
    r->size = pvc_data_ring_half(order);
    if (side == PVC_SIDE_FRONT) {
        r->rx_buf = in_half;
        r->tx_buf = in_half + r->size;
        r->rx_prod = &i->in_prod;
        r->rx_cons = &i->in_cons;
        r->tx_prod = &i->out_prod;
        r->tx_cons = &i->out_cons;
    } else {
        r->rx_buf = in_half + r->size;
        r->tx_buf = in_half;
        r->rx_prod = &i->out_prod;
        r->rx_cons = &i->out_cons;
        r->tx_prod = &i->in_prod;
        r->tx_cons = &i->in_cons;
    }
    /* Whatever values these hold, the peer's index is later checked against
     * them, so a hostile start value cannot lead outside the buffer. */
    r->rx_cons_pvt = shared_load(r->rx_cons);
    r->tx_prod_pvt = shared_load(r->tx_prod);
}

void pvc_data_ring_resync_rx(struct pvc_data_ring *r)
{
    r->rx_cons_pvt = shared_load(r->rx_cons);
}

void pvc_data_ring_resync_tx(struct pvc_data_ring *r)
{
    r->tx_prod_pvt = shared_load(r->tx_prod);
}

/* Split `len` bytes starting at free-running index idx into at most two
 * pieces of buf (the second when they wrap past the end). */
static void ring_iov(unsigned char *buf, RING_IDX size, RING_IDX idx,
                     RING_IDX len, struct iovec iov[2])
{
    RING_IDX off = pvcalls_mask(idx, size);
    RING_IDX first = len < size - off ? len : size - off;

    iov[0].iov_base = buf + off;
    iov[0].iov_len = first;
    iov[1].iov_base = buf;
    iov[1].iov_len = len - first;
}

/* Copy n bytes between a flat buffer and an iovec pair, in either
 * direction; n never exceeds the pair's total. */
static void iov_to_buf(const struct iovec iov[2], void *buf, size_t n)
{
    size_t first = n < iov[0].iov_len ? n : iov[0].iov_len;
    memcpy(buf, iov[0].iov_base, first);
    memcpy((unsigned char *)buf + first, iov[1].iov_base, n - first);
}

static void buf_to_iov(const struct iovec iov[2], const void *buf, size_t n)
{
    size_t first = n < iov[0].iov_len ? n : iov[0].iov_len;
    memcpy(iov[0].iov_base, buf, first);
    memcpy(iov[1].iov_base, (const unsigned char *)buf + first, n - first);
}

/* ---- consumer ------------------------------------------------------ */

long pvc_ring_rx_iov(struct pvc_data_ring *r, struct iovec iov[2])
{
    RING_IDX prod = shared_load(r->rx_prod);
    xen_rmb(); /* the data we read below was written before prod */
    long avail = pvc_ring_span(prod, r->rx_cons_pvt, r->size);
    if (avail < 0)
        return avail;
    ring_iov(r->rx_buf, r->size, r->rx_cons_pvt, (RING_IDX)avail, iov);
    return avail;
}

void pvc_ring_rx_consume(struct pvc_data_ring *r, RING_IDX n)
{
    assert(n <= r->size);
    xen_mb(); /* finish reading the data before the peer may overwrite it */
    r->rx_cons_pvt += n;
    shared_store(r->rx_cons, r->rx_cons_pvt);
}

long pvc_ring_rx_copy(struct pvc_data_ring *r, void *buf, size_t len,
                      int peek)
{
    struct iovec iov[2];
    long avail = pvc_ring_rx_iov(r, iov);
    if (avail <= 0)
        return avail;
    size_t n = len < (size_t)avail ? len : (size_t)avail;
    iov_to_buf(iov, buf, n);
    if (!peek)
        pvc_ring_rx_consume(r, (RING_IDX)n);
    return (long)n;
}

/* ---- producer ------------------------------------------------------ */

long pvc_ring_tx_iov(struct pvc_data_ring *r, struct iovec iov[2])
{
    RING_IDX cons = shared_load(r->tx_cons);
    xen_mb(); /* the peer finished reading before it advanced cons */
    long queued = pvc_ring_span(r->tx_prod_pvt, cons, r->size);
    if (queued < 0)
        return queued;
    RING_IDX space = r->size - (RING_IDX)queued;
    ring_iov(r->tx_buf, r->size, r->tx_prod_pvt, space, iov);
    return (long)space;
}

void pvc_ring_tx_produce(struct pvc_data_ring *r, RING_IDX n)
{
    assert(n <= r->size);
    xen_wmb(); /* the peer sees the data before the new prod */
    r->tx_prod_pvt += n;
    shared_store(r->tx_prod, r->tx_prod_pvt);
}

long pvc_ring_tx_copy(struct pvc_data_ring *r, const void *buf, size_t len)
{
    struct iovec iov[2];
    long space = pvc_ring_tx_iov(r, iov);
    if (space <= 0)
        return space;
    size_t n = len < (size_t)space ? len : (size_t)space;
    buf_to_iov(iov, buf, n);
    pvc_ring_tx_produce(r, (RING_IDX)n);
    return (long)n;
}

long pvc_ring_tx_unconsumed(struct pvc_data_ring *r)
{
    RING_IDX cons = shared_load(r->tx_cons);
    xen_rmb();
    return pvc_ring_span(r->tx_prod_pvt, cons, r->size);
}

/* ---- error words --------------------------------------------------- */

/* The error words are RING_IDX in Xen's header but int32_t in the spec:
 * negative errnos.  Read once, then rmb so that data read afterwards is not
 * older than the error we saw. */
static int32_t error_load(const RING_IDX *word)
{
    int32_t err = (int32_t)shared_load(word);
    xen_rmb();
    return err;
}

static void error_store(RING_IDX *word, int32_t err)
{
    xen_wmb(); /* data and prod written before are visible first */
    shared_store(word, (RING_IDX)err);
}

int32_t pvc_ring_in_error(const struct pvc_data_ring *r)
{
    return error_load(&r->intf->in_error);
}

int32_t pvc_ring_out_error(const struct pvc_data_ring *r)
{
    return error_load(&r->intf->out_error);
}

void pvc_ring_set_in_error(struct pvc_data_ring *r, int32_t err)
{
    error_store(&r->intf->in_error, err);
}

void pvc_ring_set_out_error(struct pvc_data_ring *r, int32_t err)
{
    error_store(&r->intf->out_error, err);
}
