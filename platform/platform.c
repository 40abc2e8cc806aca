/*
 * The platform layer's front door: choose Xen or the simulation, then
 * forward every call to the chosen implementation.
 */
#include "platform_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* libxenstore's default xenstored socket (xs_daemon_socket()). */
#define XENSTORED_SOCKET "/var/run/xenstored/socket"

char *pvc_sim_default_dir(char *buf, size_t len)
{
    const char *runtime = getenv("XDG_RUNTIME_DIR");
    if (geteuid() == 0)
        snprintf(buf, len, "/run/pvcalls-sim");
    else if (runtime && runtime[0] == '/')
        snprintf(buf, len, "%s/pvcalls-sim", runtime);
    else
        snprintf(buf, len, "/tmp/pvcalls-sim-%u", (unsigned)geteuid());
    return buf;
}

static int usable(const char *path)
{
    return access(path, R_OK | W_OK) == 0;
}

static int xenstored_socket_usable(void)
{
    const char *path = getenv("XENSTORED_PATH");
    struct stat st;
    if (!path)
        path = XENSTORED_SOCKET;
    return stat(path, &st) == 0 && S_ISSOCK(st.st_mode) && usable(path);
}

/* Real Xen needs the event channel device and a way to the store. */
static int xen_present(void)
{
    return access("/dev/xen/evtchn", F_OK) == 0 &&
           (usable("/dev/xen/xenbus") || xenstored_socket_usable());
}

/* The platform to use, and why (for the daemons' first log line: a
 * wrong guess here is the first thing an administrator must see). */
static int resolve_kind(enum pvc_platform_kind kind, const char **why)
{
    if (kind == PVC_PLATFORM_XEN || kind == PVC_PLATFORM_SIM) {
        *why = "asked for on the command line";
        return kind;
    }
    if (kind != PVC_PLATFORM_AUTO)
        return -1;
    const char *env = getenv("PVC_PLATFORM");
    if (env && *env) {
        *why = "PVC_PLATFORM in the environment";
        if (!strcmp(env, "sim"))
            return PVC_PLATFORM_SIM;
        if (!strcmp(env, "xen"))
            return PVC_PLATFORM_XEN;
        return -1;
    }
    if (xen_present()) {
        *why = "/dev/xen/evtchn and a xenstore connection are present";
        return PVC_PLATFORM_XEN;
    }
    *why = "no Xen here (/dev/xen/evtchn or xenstore missing)";
    return PVC_PLATFORM_SIM;
}

struct pvc_platform *pvc_platform_open(const struct pvc_platform_opts *opts)
{
    static const struct pvc_platform_opts defaults = { .sim_domid = -1 };
    if (!opts)
        opts = &defaults;
    const char *why = "";
    int kind = resolve_kind(opts->kind, &why);
    if (kind < 0) {
        errno = EINVAL;
        return NULL;
    }
    struct pvc_platform *plat = calloc(1, sizeof(*plat));
    if (!plat)
        return NULL;
    plat->kind = kind;
    plat->why = why;
    plat->ops = kind == PVC_PLATFORM_XEN ? &pvc_platform_xen_ops
                                         : &pvc_platform_sim_ops;
    if (plat->ops->open(plat, opts) < 0) {
        int saved = errno;
        free(plat);
        errno = saved;
        return NULL;
    }
    return plat;
}

void pvc_platform_close(struct pvc_platform *plat)
{
    if (!plat)
        return;
    plat->ops->close(plat);
    free(plat);
}

enum pvc_platform_kind pvc_platform_kind(const struct pvc_platform *plat)
{
    return plat->kind;
}

const char *pvc_platform_name(const struct pvc_platform *plat)
{
    return plat->ops->name;
}

const char *pvc_platform_why(const struct pvc_platform *plat)
{
    return plat->why;
}

pvc_domid_t pvc_platform_domid(const struct pvc_platform *plat)
{
    return plat->domid;
}

int pvc_grant_share(struct pvc_platform *plat, pvc_domid_t peer,
                    unsigned npages, int readonly, void **addr,
                    pvc_gref_t *refs)
{
    if (npages == 0 || !addr || !refs) {
        errno = EINVAL;
        return -1;
    }
    return plat->ops->grant_share(plat, peer, npages, readonly, addr, refs);
}

int pvc_grant_unshare(struct pvc_platform *plat, void *addr, unsigned npages)
{
    if (!addr || npages == 0) {
        errno = EINVAL;
        return -1;
    }
    return plat->ops->grant_unshare(plat, addr, npages);
}

void *pvc_grant_map(struct pvc_platform *plat, pvc_domid_t peer,
                    unsigned npages, const pvc_gref_t *refs, int readonly)
{
    if (npages == 0 || !refs) {
        errno = EINVAL;
        return NULL;
    }
    return plat->ops->grant_map(plat, peer, npages, refs, readonly);
}

int pvc_grant_unmap(struct pvc_platform *plat, void *addr, unsigned npages)
{
    if (!addr || npages == 0 || (uintptr_t)addr % PVC_PAGE_SIZE) {
        errno = EINVAL;
        return -1;
    }
    return plat->ops->grant_unmap(plat, addr, npages);
}

int pvc_grant_read(struct pvc_platform *plat, pvc_domid_t peer,
                   pvc_gref_t ref, size_t offset, void *buf, size_t len)
{
    if ((!buf && len) || offset > PVC_PAGE_SIZE ||
        len > PVC_PAGE_SIZE - offset) {
        errno = EINVAL;
        return -1;
    }
    return plat->ops->grant_read(plat, peer, ref, offset, buf, len);
}

struct pvc_evtchn *pvc_evtchn_alloc_unbound(struct pvc_platform *plat,
                                            pvc_domid_t peer)
{
    return plat->ops->evtchn_alloc_unbound(plat, peer);
}

struct pvc_evtchn *pvc_evtchn_bind_interdomain(struct pvc_platform *plat,
                                               pvc_domid_t peer,
                                               pvc_port_t remote_port)
{
    return plat->ops->evtchn_bind_interdomain(plat, peer, remote_port);
}

struct xs_handle *pvc_store_open(struct pvc_platform *plat)
{
    return plat->ops->store_open(plat);
}

int pvc_grant_handoff(struct pvc_platform *plat, void *addr,
                      struct pvc_grant_handoff *out)
{
    if (!addr || !out) {
        errno = EINVAL;
        return -1;
    }
    return plat->ops->grant_handoff(plat, addr, out);
}
