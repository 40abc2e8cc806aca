/*
 * The PV Calls wire format, from Xen's own headers.
 *
 * Every file that touches a ring includes this header instead of
 * <xen/io/pvcalls.h> directly: ring.h needs the memory barriers supplied by
 * its includer, and this is the one place where they are defined.
 */
#ifndef PVC_WIRE_H
#define PVC_WIRE_H

#include <stdint.h>
#include <string.h>
#include <xen/xen-compat.h>

/*
 * ring.h maps xen_mb()/xen_rmb()/xen_wmb() onto mb()/rmb()/wmb() for old
 * interface versions (the default for userspace) and expects the includer
 * to define the targets; newer versions expect xen_*() directly.  The
 * barriers order accesses to memory shared with another domain, which may
 * run on another CPU: a full fence for mb, acquire/release fences for the
 * one-sided ones (on x86 these compile to mfence and compiler barriers).
 */
#define PVC_MB()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define PVC_RMB() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define PVC_WMB() __atomic_thread_fence(__ATOMIC_RELEASE)
#if __XEN_INTERFACE_VERSION__ < 0x00030208
#ifndef mb
#define mb()  PVC_MB()
#define rmb() PVC_RMB()
#define wmb() PVC_WMB()
#endif
#else
#define xen_mb()  PVC_MB()
#define xen_rmb() PVC_RMB()
#define xen_wmb() PVC_WMB()
#endif

#include <xen/io/pvcalls.h>
#include <xen/io/xenbus.h>

/* A command ring occupies exactly one page (spec: "one page"). */
#define PVC_PAGE_SIZE 4096u
#define PVC_PAGE_SHIFT 12u

/* The biggest ring order a data ring's indexes page can describe:
 * ref[] must fit in the page, (4096 - 132) / 4 = 991 refs, so 2^9. */
#define PVC_MAX_RING_ORDER 9u

/* Linux's kernel-internal ENOTSUPP, which the spec calls ENOTSUP. */
#define PVC_ENOTSUPP 524

_Static_assert(sizeof(struct xen_pvcalls_request) == 64, "request size");
_Static_assert(sizeof(struct xen_pvcalls_response) == 24, "response size");
_Static_assert(__builtin_offsetof(struct pvcalls_data_intf, ring_order) == 128,
               "ring_order offset");

#endif
