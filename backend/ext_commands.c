/*
 * The extension commands (docs/pvcalls-ext.md): SHUTDOWN, GETSOCKNAME,
 * GETPEERNAME, SETSOCKOPT, GETSOCKOPT.  Each is answered -524 unless its
 * extension was negotiated on the device, exactly like an unknown command.
 */
#include "backd.h"

#include "addr.h"
#include "pvc/ext.h"
#include "sockopt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* The socket an extension command names, or NULL with the answer. */
static struct bsock *ext_sock(struct bdev *d, uint64_t id, int32_t *ret)
{
    struct bsock *s = sock_find(d, id);
    if (!s || s->state == BS_RELEASING) {
        *ret = -EBADF;
        return NULL;
    }
    if (s->fd < 0) {
        *ret = -ENOTCONN; /* shut down after a ring violation */
        return NULL;
    }
    return s;
}

/* ---- SHUTDOWN ------------------------------------------------------ */

void ext_shutdown_drained(struct bsock *s)
{
    struct xen_pvcalls_request req = s->op_req;
    struct pvc_ext_shutdown_req r;
    memcpy(&r, &req.u, sizeof(r));
    sock_op_done(s);
    int32_t ret = 0;
    if (s->fd < 0)
        ret = -ENOTCONN;
    else if (shutdown(s->fd, (int)r.how) < 0)
        ret = -errno;
    cmd_answer(s->dev, &req, ret);
}

static int32_t do_shutdown(struct bdev *d,
                           const struct xen_pvcalls_request *req)
{
    struct pvc_ext_shutdown_req r;
    memcpy(&r, &req->u, sizeof(r));
    int32_t ret;
    struct bsock *s = ext_sock(d, r.id, &ret);
    if (!s)
        return ret;
    if (r.how > SHUT_RDWR)
        return -EINVAL;
    if (s->state != BS_ACTIVE)
        return -ENOTCONN; /* as shutdown() on an unconnected socket */
    if (s->op_pending)
        return -EALREADY; /* one SHUTDOWN at a time */
    if (r.how == SHUT_RD)
        return shutdown(s->fd, SHUT_RD) < 0 ? -errno : 0;
    /* SHUT_WR and SHUT_RDWR: the FIN goes after every byte queued in the
     * out ring, so wait for them (ext_shutdown_drained answers). */
    s->op_req = *req;
    s->op_pending = true;
    pump_drain(s, false);
    return 1;
}

/* ---- GETSOCKNAME, GETPEERNAME -------------------------------------- */

static void do_sockname(struct bdev *d, const struct xen_pvcalls_request *req,
                        bool peer)
{
    struct pvc_ext_sockname_req r;
    memcpy(&r, &req->u, sizeof(r));
    struct pvc_ext_addr_rsp rsp = { .id = r.id };
    char addr_buf[ADDR_STR_MAX];
    struct answer_extra x = { .rsp = &rsp, .len = sizeof(rsp) };
    int32_t ret;
    struct bsock *s = ext_sock(d, r.id, &ret);
    if (s) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof(sa);
        int rc = peer ? getpeername(s->fd, (struct sockaddr *)&sa, &len)
                      : getsockname(s->fd, (struct sockaddr *)&sa, &len);
        if (rc == 0 && !peer && s->published) {
            sa = s->guest_name; /* its own port, not dom0's */
            len = s->guest_name_len;
        }
        if (rc < 0)
            ret = -errno;
        else
            ret = addr_to_wire((struct sockaddr *)&sa, len, rsp.addr,
                               &rsp.len);
        if (ret == 0)
            x.addr = addr_format((struct sockaddr *)&sa, len, addr_buf,
                                 sizeof(addr_buf));
    }
    cmd_answer_ex(d, req, ret, &x);
}

/* ---- SETSOCKOPT, GETSOCKOPT ---------------------------------------- */

static void do_sockopt(struct bdev *d, const struct xen_pvcalls_request *req,
                       bool set)
{
    struct pvc_ext_sockopt_req r;
    memcpy(&r, &req->u, sizeof(r));
    struct pvc_ext_sockopt_rsp rsp = { .id = r.id };
    char detail[48];
    const char *name = sockopt_name(r.level, r.name);
    if (name)
        snprintf(detail, sizeof(detail), "%s", name);
    else
        snprintf(detail, sizeof(detail), "level %u name %u", r.level, r.name);
    struct answer_extra x = { .detail = detail };
    if (!set) {
        x.rsp = &rsp;
        x.len = sizeof(rsp);
    }
    int32_t ret;
    struct bsock *s = ext_sock(d, r.id, &ret);
    if (s)
        ret = sockopt_check(r.level, r.name, r.len, set);
    if (s && ret == 0) {
        socklen_t len = r.len; /* at most PVC_EXT_OPTVAL_MAX: checked */
        int rc = set ? setsockopt(s->fd, (int)r.level, (int)r.name, r.val,
                                  len)
                     : getsockopt(s->fd, (int)r.level, (int)r.name, rsp.val,
                                  &len);
        if (rc < 0)
            ret = -errno;
        else if (set && r.level == SOL_SOCKET && r.name == SO_LINGER)
            s->linger_set = true; /* see sock_close_fd() */
        else if (!set)
            rsp.len = len < PVC_EXT_OPTVAL_MAX ? len : PVC_EXT_OPTVAL_MAX;
    }
    cmd_answer_ex(d, req, ret, &x);
}

/* ---- dispatch ------------------------------------------------------ */

static unsigned ext_needed(uint32_t cmd)
{
    switch (cmd) {
    case PVCALLS_EXT_SHUTDOWN: return PVC_EXT_SHUTDOWN;
    case PVCALLS_EXT_GETSOCKNAME:
    case PVCALLS_EXT_GETPEERNAME: return PVC_EXT_SOCKNAME;
    case PVCALLS_EXT_SETSOCKOPT:
    case PVCALLS_EXT_GETSOCKOPT: return PVC_EXT_SOCKOPT;
    default: return 0;
    }
}

bool ext_dispatch(struct bdev *d, const struct xen_pvcalls_request *req)
{
    unsigned need = ext_needed(req->cmd);
    if (!need)
        return false;
    if (!(d->ext & need)) {
        cmd_answer_unsupported(d, req);
        return true;
    }
    switch (req->cmd) {
    case PVCALLS_EXT_SHUTDOWN: {
        int32_t ret = do_shutdown(d, req);
        if (ret <= 0)
            cmd_answer(d, req, ret);
        break;
    }
    case PVCALLS_EXT_GETSOCKNAME: do_sockname(d, req, false); break;
    case PVCALLS_EXT_GETPEERNAME: do_sockname(d, req, true); break;
    case PVCALLS_EXT_SETSOCKOPT: do_sockopt(d, req, true); break;
    case PVCALLS_EXT_GETSOCKOPT: do_sockopt(d, req, false); break;
    }
    return true;
}
