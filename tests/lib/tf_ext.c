/*
 * The test frontend's extension commands (docs/pvcalls-ext.md,
 * include/pvc/ext.h): SHUTDOWN, GETSOCKNAME/GETPEERNAME,
 * SETSOCKOPT/GETSOCKOPT.  Responses are whole ring entries; their
 * lengths come from the backend and are checked before use.
 */
#include "testfront.h"

#include <criterion/criterion.h>
#include <string.h>

static struct xen_pvcalls_request ext_request(uint32_t cmd)
{
    struct xen_pvcalls_request req;
    memset(&req, 0, sizeof(req));
    req.cmd = cmd;
    return req;
}

int32_t tf_shutdown(struct tf *tf, struct tf_sock *s, uint32_t how)
{
    struct xen_pvcalls_request req = ext_request(PVCALLS_EXT_SHUTDOWN);
    struct pvc_ext_shutdown_req *body = (void *)&req.u;
    body->id = s->id;
    body->how = how;
    return tf_call(tf, &req, TF_TIMEOUT_MS, NULL);
}

static int32_t sockname(struct tf *tf, uint32_t cmd, struct tf_sock *s,
                        struct sockaddr_storage *addr, socklen_t *len)
{
    struct xen_pvcalls_request req = ext_request(cmd);
    struct pvc_ext_sockname_req *body = (void *)&req.u;
    body->id = s->id;
    union xen_pvcalls_sring_entry e;
    int32_t ret = tf_call(tf, &req, TF_TIMEOUT_MS, &e);
    if (ret != 0)
        return ret;
    struct pvc_ext_addr_rsp rsp;
    memcpy(&rsp, &e, sizeof(rsp));
    cr_assert_eq(rsp.id, s->id, "address response for id %llu, asked %llu",
                 (unsigned long long)rsp.id, (unsigned long long)s->id);
    cr_assert(rsp.len <= sizeof(rsp.addr), "address length %u", rsp.len);
    memset(addr, 0, sizeof(*addr));
    memcpy(addr, rsp.addr, rsp.len);
    *len = rsp.len;
    return 0;
}

int32_t tf_getsockname(struct tf *tf, struct tf_sock *s,
                       struct sockaddr_storage *addr, socklen_t *len)
{
    return sockname(tf, PVCALLS_EXT_GETSOCKNAME, s, addr, len);
}

int32_t tf_getpeername(struct tf *tf, struct tf_sock *s,
                       struct sockaddr_storage *addr, socklen_t *len)
{
    return sockname(tf, PVCALLS_EXT_GETPEERNAME, s, addr, len);
}

int32_t tf_setsockopt(struct tf *tf, struct tf_sock *s, uint32_t level,
                      uint32_t name, const void *val, uint32_t len)
{
    struct xen_pvcalls_request req = ext_request(PVCALLS_EXT_SETSOCKOPT);
    struct pvc_ext_sockopt_req *body = (void *)&req.u;
    body->id = s->id;
    body->level = level;
    body->name = name;
    body->len = len;
    memcpy(body->val, val, len < PVC_EXT_OPTVAL_MAX ? len
                                                     : PVC_EXT_OPTVAL_MAX);
    return tf_call(tf, &req, TF_TIMEOUT_MS, NULL);
}

int32_t tf_getsockopt(struct tf *tf, struct tf_sock *s, uint32_t level,
                      uint32_t name, void *val, uint32_t *len)
{
    struct xen_pvcalls_request req = ext_request(PVCALLS_EXT_GETSOCKOPT);
    struct pvc_ext_sockopt_req *body = (void *)&req.u;
    body->id = s->id;
    body->level = level;
    body->name = name;
    body->len = *len;
    union xen_pvcalls_sring_entry e;
    int32_t ret = tf_call(tf, &req, TF_TIMEOUT_MS, &e);
    if (ret != 0)
        return ret;
    struct pvc_ext_sockopt_rsp rsp;
    memcpy(&rsp, &e, sizeof(rsp));
    cr_assert(rsp.len <= PVC_EXT_OPTVAL_MAX && rsp.len <= *len,
              "option length %u (asked for %u)", rsp.len, *len);
    memcpy(val, rsp.val, rsp.len);
    *len = rsp.len;
    return 0;
}
