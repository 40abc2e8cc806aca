/*
 * Answers to requests: the response written to the command ring and its
 * audit record, always together, whenever the answer is given (a deferred
 * CONNECT, ACCEPT, POLL or RELEASE is audited when it completes).
 */
#include "backd.h"

#include "addr.h"
#include "audit.h"
#include "pvc/ext.h"

static const char *cmd_name(uint32_t cmd)
{
    switch (cmd) {
    case PVCALLS_SOCKET: return "socket";
    case PVCALLS_CONNECT: return "connect";
    case PVCALLS_RELEASE: return "release";
    case PVCALLS_BIND: return "bind";
    case PVCALLS_LISTEN: return "listen";
    case PVCALLS_ACCEPT: return "accept";
    case PVCALLS_POLL: return "poll";
    case PVCALLS_EXT_SHUTDOWN: return "shutdown";
    case PVCALLS_EXT_GETSOCKNAME: return "getsockname";
    case PVCALLS_EXT_GETPEERNAME: return "getpeername";
    case PVCALLS_EXT_SETSOCKOPT: return "setsockopt";
    case PVCALLS_EXT_GETSOCKOPT: return "getsockopt";
    default: return NULL;
    }
}

/* Every request this daemon knows starts its body with the socket id. */
static uint64_t req_sock_id(const struct xen_pvcalls_request *req)
{
    return req->u.socket.id;
}

static void audit_answer(struct bdev *d, const struct xen_pvcalls_request *req,
                         uint64_t id, int32_t ret,
                         const struct answer_extra *x)
{
    struct audit *a = d->bd->audit;
    if (!a)
        return;
    char addr_buf[ADDR_STR_MAX];
    const char *addr = x ? x->addr : NULL;
    if (!addr && (req->cmd == PVCALLS_CONNECT || req->cmd == PVCALLS_BIND))
        addr = addr_format_wire(req->u.connect.addr, req->u.connect.len,
                                addr_buf, sizeof(addr_buf));
    struct audit_cmd c = {
        .dom = d->domid,
        .dev = d->devid,
        .cmd = cmd_name(req->cmd),
        .cmd_num = req->cmd,
        .req_id = req->req_id,
        .id = id,
        .addr = addr,
        .has_id_new = req->cmd == PVCALLS_ACCEPT,
        .id_new = req->u.accept.id_new,
        .detail = x ? x->detail : NULL,
        .rule = x ? x->rule : NULL,
        .ret = ret,
    };
    audit_command(a, &c);
}

void cmd_answer_ex(struct bdev *d, const struct xen_pvcalls_request *req,
                   int32_t ret, const struct answer_extra *x)
{
    uint64_t id = req_sock_id(req);
    if (x && x->rsp) {
        struct pvc_ext_rsp_hdr *hdr = x->rsp;
        *hdr = (struct pvc_ext_rsp_hdr){
            .req_id = req->req_id, .cmd = req->cmd, .ret = ret };
        dev_respond(d, x->rsp, x->len);
    } else {
        struct xen_pvcalls_response rsp = {
            .req_id = req->req_id, .cmd = req->cmd, .ret = ret };
        rsp.u.socket.id = id;
        dev_respond(d, &rsp, sizeof(rsp));
    }
    audit_answer(d, req, id, ret, x);
}

void cmd_answer(struct bdev *d, const struct xen_pvcalls_request *req,
                int32_t ret)
{
    cmd_answer_ex(d, req, ret, NULL);
}

void cmd_answer_unsupported(struct bdev *d,
                            const struct xen_pvcalls_request *req)
{
    /* As Linux's backend: -ENOTSUPP, and u.*.id not filled in. */
    struct xen_pvcalls_response rsp = {
        .req_id = req->req_id, .cmd = req->cmd, .ret = -PVC_ENOTSUPP };
    dev_respond(d, &rsp, sizeof(rsp));
    audit_answer(d, req, 0, -PVC_ENOTSUPP, NULL);
}

void cmd_abort_pending(struct bsock *s, int32_t ret)
{
    if (!s->op_pending)
        return;
    struct xen_pvcalls_request req = s->op_req;
    sock_op_done(s);
    if (req.cmd == PVCALLS_ACCEPT)
        cmd_accept_answer(s->dev, &req, ret, NULL, 0);
    else
        cmd_answer(s->dev, &req, ret);
}
