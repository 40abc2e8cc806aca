/*
 * Xen's grant-table and event-channel libraries, loaded at run time.
 *
 * The daemons run on the simulated platform wherever Linux runs, so they
 * must start where libxengnttab and libxenevtchn are not installed: those
 * are loaded only when the Xen platform is chosen.  (libxenstore is linked
 * normally: both platforms speak xenstore through it.)  The function types
 * come from Xen's own headers.
 */
#ifndef PVC_XEN_LIBS_H
#define PVC_XEN_LIBS_H

#include <xenevtchn.h>
#include <xengnttab.h>

#define PVC_XEN_LIB_FUNCS(X)                                                  \
    X(xengnttab_open) X(xengnttab_close) X(xengnttab_map_domain_grant_refs)   \
    X(xengnttab_unmap) X(xengnttab_grant_copy)                                \
    X(xenevtchn_open) X(xenevtchn_close) X(xenevtchn_fd)                      \
    X(xenevtchn_bind_unbound_port) X(xenevtchn_bind_interdomain)              \
    X(xenevtchn_notify) X(xenevtchn_pending) X(xenevtchn_unmask)              \
    X(xenevtchn_unbind)

struct pvc_xen_libs {
#define PVC_XEN_LIB_PTR(name) __typeof__(name) *name;
    PVC_XEN_LIB_FUNCS(PVC_XEN_LIB_PTR)
#undef PVC_XEN_LIB_PTR
};

/* The loaded functions (loaded once, kept for the process's life), or
 * NULL with errno ENOPKG and the reason in *why (dlerror's text). */
const struct pvc_xen_libs *pvc_xen_libs(const char **why);

#endif
