/*
 * The "waiting" extension's flags (docs/pvcalls-ext.md §4.7): a producer
 * that found its half full says so in the indexes page, and the consumer
 * notifies after consuming only then.  v1 makes the consumer notify after
 * every consumption, which wakes a producer that is not waiting (in a
 * request/response exchange: every message costs the peer a wake-up).
 *
 * The flags live in v1's padding: `in` (produced by the backend) at the
 * first word of pad1, `out` (produced by the frontend) at the first word of
 * pad2.  Both sides write both flags (the producer sets, the consumer
 * clears), so they are hints only: a hostile value costs its writer a
 * stalled ring or a spurious notification, never memory safety.
 *
 * No lost wake-up: the producer stores the flag, fences, then re-reads
 * the consumer's index; the consumer stores its index, fences, then reads
 * the flag.  With both fences, at least one of them sees the other's store
 * (Dekker): either the producer finds the space, or the consumer notifies.
 */
#include "pvc/ring.h"

#include "shared.h"

#include <stddef.h>

static RING_IDX *in_flag(struct pvcalls_data_intf *i)
{
    return (RING_IDX *)(void *)i->pad1;
}

static RING_IDX *out_flag(struct pvcalls_data_intf *i)
{
    return (RING_IDX *)(void *)i->pad2;
}

/* The flag of the half we produce into / consume from. */
static RING_IDX *tx_flag(struct pvc_data_ring *r)
{
    return r->side == PVC_SIDE_FRONT ? out_flag(r->intf) : in_flag(r->intf);
}

static RING_IDX *rx_flag(struct pvc_data_ring *r)
{
    return r->side == PVC_SIDE_FRONT ? in_flag(r->intf) : out_flag(r->intf);
}

long pvc_ring_tx_iov_waiting(struct pvc_data_ring *r, struct iovec iov[2])
{
    long space = pvc_ring_tx_iov(r, iov);
    if (space != 0)
        return space;
    shared_store(tx_flag(r), 1);
    xen_mb(); /* the flag is visible before we look at cons again */
    return pvc_ring_tx_iov(r, iov);
}

bool pvc_ring_rx_wake_due(struct pvc_data_ring *r)
{
    xen_mb(); /* our new cons is visible before we read the flag */
    if (!shared_load(rx_flag(r)))
        return false;
    shared_store(rx_flag(r), 0);
    return true;
}

long pvc_ring_tx_unconsumed_waiting(struct pvc_data_ring *r)
{
    long left = pvc_ring_tx_unconsumed(r);
    if (left <= 0)
        return left;
    shared_store(tx_flag(r), 1);
    xen_mb();
    return pvc_ring_tx_unconsumed(r);
}
