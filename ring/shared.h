/*
 * Accessors for words that live in memory shared with another domain.
 *
 * A peer can change shared memory at any moment, so every shared word is
 * read exactly once into a local and the local is what gets validated and
 * used: a plain read could legally be repeated by the compiler after the
 * check (a double fetch).  Relaxed atomics give single, untorn accesses;
 * the ordering between them comes from the explicit xen_*mb() fences the
 * protocol prescribes.
 */
#ifndef PVC_RING_SHARED_H
#define PVC_RING_SHARED_H

#include "pvc/wire.h"

static inline RING_IDX shared_load(const RING_IDX *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline void shared_store(RING_IDX *p, RING_IDX v)
{
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

#endif
