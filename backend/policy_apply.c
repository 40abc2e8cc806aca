/*
 * The policy (policy.h) applied to the daemon's devices: each device gets
 * its domain's rules when it connects (by domid, else by the name the
 * toolstack wrote in xenstore), and CONNECT, BIND and the socket count
 * are checked against them.  A denied call is answered here, with the
 * deciding rule in its audit record.
 */
#include "backd.h"

#include "policy.h"
#include "pvc/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xenstore.h>

int backd_policy_load(struct backd *bd)
{
    const char *path = bd->cfg.policy_path;
    if (!path) {
        bd->policy = policy_permissive();
        if (!bd->policy)
            pvc_err("out of memory");
        return bd->policy ? 0 : -1;
    }
    char err[256];
    bd->policy = policy_load(path, err, sizeof(err));
    if (!bd->policy) {
        pvc_err("policy: %s", err);
        return -1;
    }
    pvc_info("policy: %s", path);
    return 0;
}

void dev_policy_attach(struct bdev *d)
{
    char path[64];
    snprintf(path, sizeof(path), "/local/domain/%u/name", d->domid);
    unsigned len = 0;
    char *name = xs_read(d->bd->xs, XBT_NULL, path, &len);
    d->pol = policy_for(d->bd->policy, d->domid, name);
    pvc_info("dom %u (%s): policy %s", d->domid, name ? name : "no name",
             policy_section(d->pol));
    free(name);
}

uint32_t dev_max_sockets(const struct bdev *d)
{
    uint32_t by_policy = policy_max_sockets(d->pol);
    return by_policy < d->bd->cfg.max_sockets ? by_policy
                                              : d->bd->cfg.max_sockets;
}

static unsigned dev_connecting(struct bdev *d)
{
    unsigned n = 0;
    for (struct bsock *s = d->socks; s; s = s->hh.next)
        n += s->state == BS_CONNECTING;
    return n;
}

static void answer_denied(struct bdev *d,
                          const struct xen_pvcalls_request *req, int32_t ret,
                          const char *rule)
{
    struct answer_extra x = { .rule = rule };
    cmd_answer_ex(d, req, ret, &x);
}

int32_t dev_policy_connect(struct bdev *d,
                           const struct xen_pvcalls_request *req,
                           const struct sockaddr *sa, socklen_t len)
{
    struct policy_why why;
    if (!policy_connect(d->pol, sa, len, &why)) {
        answer_denied(d, req, -EACCES, why.text);
        return 1;
    }
    uint32_t max = policy_max_pending_connects(d->pol);
    if (max != POLICY_UNLIMITED && dev_connecting(d) >= max) {
        /* As connect() when the kernel cannot take another one now. */
        snprintf(why.text, sizeof(why.text), "%s max-pending-connects = %u",
                 policy_section(d->pol), max);
        answer_denied(d, req, -EAGAIN, why.text);
        return 1;
    }
    return 0;
}

int32_t dev_policy_bind(struct bdev *d, const struct xen_pvcalls_request *req,
                        const struct sockaddr *sa, socklen_t len,
                        struct sockaddr_storage *host, socklen_t *host_len,
                        char *rule)
{
    struct policy_why why;
    if (!policy_bind(d->pol, sa, len, host, host_len, &why)) {
        answer_denied(d, req, -EACCES, why.text);
        return 1;
    }
    snprintf(rule, POLICY_WHY_MAX, "%s", d->bd->cfg.policy_path ? why.text : "");
    return 0;
}
