/*
 * Dispatch of the command ring's requests, and the simple v1 commands:
 * SOCKET, BIND, LISTEN, RELEASE (CONNECT is in connect.c, ACCEPT and POLL
 * in listener.c, the extensions in ext_commands.c).
 *
 * Where v1 leaves room we differ from Linux's backend (docs/pvcalls-ext.md
 * §5): SOCKET creates the host socket (so options and bind-before-connect
 * work), CONNECT is asynchronous, RELEASE drains the out ring before it
 * answers, a pending ACCEPT or POLL is answered -EBADF before the RELEASE
 * that ends it, and every request gets an answer.
 */
#include "backd.h"

#include "addr.h"
#include "policy.h"
#include "pvc/ext.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* ---- SOCKET -------------------------------------------------------- */

static int32_t do_socket(struct bdev *d, const struct xen_pvcalls_request *req)
{
    const struct xen_pvcalls_socket *r = &req->u.socket;
    int family;
    int32_t ret = addr_check_socket(r->domain, r->type, r->protocol,
                                    d->ext & PVC_EXT_IPV6, &family);
    if (ret < 0)
        return ret;
    if (sock_find(d, r->id))
        return -EEXIST;
    if (dev_sock_count(d) >= dev_max_sockets(d))
        return -EMFILE;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    return sock_new(d, r->id, family, fd, BS_FRESH) ? 0 : -ENOMEM;
}

/* ---- RELEASE ------------------------------------------------------- */

void cmd_drained(struct bsock *s)
{
    if (s->op_pending && s->op_req.cmd == PVCALLS_EXT_SHUTDOWN)
        ext_shutdown_drained(s);
    if (!s->release_pending)
        return;
    struct xen_pvcalls_request req = s->release_req;
    struct bdev *d = s->dev;
    sock_destroy(s);
    cmd_answer(d, &req, 0);
}

static int32_t do_release(struct bdev *d,
                          const struct xen_pvcalls_request *req)
{
    struct bsock *s = sock_find(d, req->u.release.id);
    if (!s)
        return 0; /* as Linux's backend */
    if (s->state == BS_RELEASING)
        return -EBADF;
    /* r->reuse is a hint the spec lets us ignore. */
    if (s->state == BS_ACTIVE) {
        s->state = BS_RELEASING;
        s->release_req = *req;
        s->release_pending = true;
        /* Answered once every byte queued so far went out (or cannot),
         * from cmd_drained(); the other commands go on meanwhile. */
        pump_drain(s, true);
        return 1;
    }
    /* A pending CONNECT, ACCEPT or POLL is answered first. */
    cmd_abort_pending(s, -EBADF);
    sock_destroy(s);
    return 0;
}

/* ---- BIND, LISTEN -------------------------------------------------- */

/* A successful BIND's answer: its audit record names the policy rule and,
 * for a published port, the dom0 address bound instead. */
static int32_t bind_answer(struct bdev *d,
                           const struct xen_pvcalls_request *req,
                           const struct bsock *s,
                           const struct sockaddr_storage *host,
                           socklen_t host_len, const char *rule)
{
    char host_text[ADDR_STR_MAX], detail[ADDR_STR_MAX + 16];
    bool described = s->published &&
                     addr_format((const struct sockaddr *)host, host_len,
                                 host_text, sizeof(host_text));
    if (described)
        snprintf(detail, sizeof(detail), "dom0 binds %s", host_text);
    struct answer_extra x = { .detail = described ? detail : NULL,
                              .rule = *rule ? rule : NULL };
    cmd_answer_ex(d, req, 0, &x);
    return 1;
}

static int32_t do_bind(struct bdev *d, const struct xen_pvcalls_request *req)
{
    const struct xen_pvcalls_bind *r = &req->u.bind;
    struct bsock *s = sock_find(d, r->id);
    if (!s)
        return -EBADF;
    if (s->state != BS_FRESH || s->fd < 0)
        return -EINVAL; /* as bind() on a bound or connected socket */
    struct sockaddr_storage sa;
    socklen_t sa_len;
    int32_t ret = addr_from_wire(s->family, r->addr, r->len, &sa, &sa_len);
    if (ret < 0)
        return ret;
    struct sockaddr_storage host;
    socklen_t host_len;
    char rule[POLICY_WHY_MAX];
    if (dev_policy_bind(d, req, (struct sockaddr *)&sa, sa_len, &host,
                        &host_len, rule))
        return 1;
    if (!(d->ext & PVC_EXT_SOCKOPT)) {
        /* A v1 frontend cannot ask for SO_REUSEADDR, which nearly every
         * server sets; on Linux it only allows binding over TIME_WAIT. */
        int one = 1;
        setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    }
    if (bind(s->fd, (struct sockaddr *)&host, host_len) < 0)
        return -errno;
    s->state = BS_BOUND;
    s->published = sa_len != host_len || memcmp(&sa, &host, sa_len) != 0;
    s->guest_name = sa;
    s->guest_name_len = sa_len;
    return bind_answer(d, req, s, &host, host_len, rule);
}

static int32_t do_listen(struct bdev *d, const struct xen_pvcalls_request *req)
{
    struct bsock *s = sock_find(d, req->u.listen.id);
    /* Linux's backend: LISTEN needs an earlier BIND, else -EINVAL. */
    if (!s || (s->state != BS_BOUND && s->state != BS_LISTENING) ||
        s->fd < 0)
        return -EINVAL;
    uint32_t backlog = req->u.listen.backlog;
    if (listen(s->fd, backlog > SOMAXCONN ? SOMAXCONN : (int)backlog) < 0)
        return -errno;
    s->state = BS_LISTENING;
    return 0;
}

/* ---- dispatch ------------------------------------------------------ */

void cmd_dispatch(struct bdev *d, const struct xen_pvcalls_request *req)
{
    int32_t ret;
    switch (req->cmd) {
    case PVCALLS_SOCKET: ret = do_socket(d, req); break;
    case PVCALLS_CONNECT: ret = cmd_connect(d, req); break;
    case PVCALLS_RELEASE: ret = do_release(d, req); break;
    case PVCALLS_BIND: ret = do_bind(d, req); break;
    case PVCALLS_LISTEN: ret = do_listen(d, req); break;
    case PVCALLS_ACCEPT: ret = cmd_accept(d, req); break;
    case PVCALLS_POLL: ret = cmd_poll(d, req); break;
    default:
        if (!ext_dispatch(d, req))
            cmd_answer_unsupported(d, req);
        return;
    }
    if (ret <= 0)
        cmd_answer(d, req, ret);
    /* 1: answered already, or later. */
}
