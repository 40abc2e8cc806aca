/*
 * The request handlers: validate the client's request, answer locally
 * what needs no backend (or what the backend cannot do without an
 * extension, the way Linux would answer), and forward the rest as a
 * command whose completion answers the client.  Every per-socket request
 * carries the socket's token fd as proof that the caller holds it.
 * CONNECT (connect.c) and ACCEPT (listener.c) never wait for the backend.
 */
#include "frontd.h"

#include "pvc/ext.h"
#include "pvc/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------- */

bool ops_has_ext(struct frontd *d, unsigned bit)
{
    return d->connected && (d->fe.ext_enabled & bit);
}

/* The socket the token fd names, or NULL with *err.  Closes tokfd. */
static struct fd_sock *token_sock(struct frontd *d,
                                  const struct pvc_fd_req *req, int tokfd,
                                  int32_t *err)
{
    struct fd_sock *s = NULL;
    struct stat st;
    if (tokfd >= 0 && fstat(tokfd, &st) == 0 && S_ISSOCK(st.st_mode) &&
        (uint64_t)st.st_ino == req->ino)
        s = sock_find(d, req->ino);
    if (tokfd >= 0)
        close(tokfd);
    *err = -EBADF;
    if (s && s->dead) {
        *err = -ECONNRESET;
        return NULL;
    }
    return s && !s->gone ? s : NULL;
}

/* A command on behalf of cl's call (and on socket s, if not NULL). */
static struct fd_cmd *call_cmd(struct fd_client *cl, struct fd_sock *s,
                               uint32_t op, uint32_t cmd, fd_cmd_done done)
{
    struct fd_cmd *c = cmd_new(cmd, done);
    if (!c)
        return NULL;
    c->op = op;
    c->client = cl;
    cl->call = c;
    if (s) {
        c->sock = s;
        s->pending++;
    }
    return c;
}

/* Check a socket address from the client against the socket's family;
 * the length to send (16 for IPv4, as Linux's backend insists), or a
 * negative errno. */
int32_t ops_check_addr(struct frontd *d, const struct fd_sock *s,
                       const struct pvc_fd_req *req)
{
    sa_family_t family;
    if (req->addrlen < sizeof(family) || req->addrlen > PVC_FD_ADDR_MAX)
        return -EINVAL;
    memcpy(&family, req->addr, sizeof(family));
    if (family != s->domain)
        return -EAFNOSUPPORT;
    if (family == AF_INET)
        return req->addrlen < sizeof(struct sockaddr_in)
                   ? -EINVAL : (int32_t)sizeof(struct sockaddr_in);
    if (family == AF_INET6 && ops_has_ext(d, PVC_EXT_IPV6))
        /* 24: an RFC 2133 sockaddr_in6 without scope id. */
        return req->addrlen < 24 ? -EINVAL
                                 : (int32_t)sizeof(struct sockaddr_in6);
    return -EAFNOSUPPORT;
}

unsigned ops_ring_order(struct frontd *d, uint32_t want)
{
    unsigned order = want ? want : d->order;
    if (order < 1)
        order = 1;
    if (order > d->fe.max_page_order)
        order = d->fe.max_page_order;
    return order;
}

int ops_reply_ring(struct frontd *d, struct fd_client *cl,
                   struct pvc_fd_rsp *rsp, int token, struct fd_ring *r,
                   int state_fd)
{
    struct pvc_grant_handoff gh;
    struct pvc_evtchn_handoff eh;
    if (pvc_grant_handoff(d->plat, r->pages, &gh) < 0)
        return -errno;
    if (pvc_evtchn_handoff(r->evtchn, &eh) < 0) {
        int err = errno;
        close(gh.fd);
        return -err;
    }
    int fds[FRONTD_MAX_REPLY_FDS];
    unsigned n = 0;
    if (token >= 0)
        fds[n++] = token;
    fds[n++] = gh.fd;
    fds[n++] = state_fd;
    for (int i = 0; i < eh.nfds && i < PVC_HANDOFF_MAX_FDS; i++)
        fds[n++] = eh.fds[i];
    rsp->order = r->order;
    rsp->ring_offset = gh.offset;
    rsp->evt_kind = eh.kind;
    rsp->evt_port = eh.port;
    rsp->evt_kick_port = eh.kick_port;
    rsp->evt_nfds = (uint32_t)eh.nfds;
    client_reply(d, cl, rsp, fds, n);
    close(gh.fd);
    for (int i = 0; i < eh.nfds && i < PVC_HANDOFF_MAX_FDS; i++)
        close(eh.fds[i]);
    return 0;
}

static struct pvc_fd_rsp rsp_for(const struct fd_cmd *c, int32_t ret)
{
    struct pvc_fd_rsp rsp;
    memset(&rsp, 0, sizeof(rsp));
    rsp.op = c->op;
    rsp.ret = ret;
    return rsp;
}

/* ---- HELLO, SOCKET ----------------------------------------------------- */

static void op_hello(struct frontd *d, struct fd_client *cl,
                     const struct pvc_fd_req *req)
{
    struct pvc_fd_rsp rsp;
    memset(&rsp, 0, sizeof(rsp));
    rsp.op = PVC_FD_HELLO;
    rsp.ret = req->version == PVC_FD_PROTO_VERSION ? 0 : -EPROTONOSUPPORT;
    if (d->connected) {
        rsp.ext = d->fe.ext_enabled;
        rsp.max_order = d->fe.max_page_order;
    }
    client_reply(d, cl, &rsp, NULL, 0);
}

static void socket_done(struct frontd *d, struct fd_cmd *c,
                        const union xen_pvcalls_sring_entry *e)
{
    uint64_t id = c->req.u.socket.id;
    int32_t ret = e->rsp.ret;
    if (ret == 0 && !c->client) {
        sock_release_orphan(d, id, NULL, -1);
        return;
    }
    if (ret != 0) {
        if (c->client)
            client_reply_err(d, c->client, c->op, ret);
        return;
    }
    int app_end;
    struct fd_sock *s = sock_new(d, id, c->domain, &app_end);
    if (!s) {
        int err = errno;
        sock_release_orphan(d, id, NULL, -1);
        client_reply_err(d, c->client, c->op, -err);
        return;
    }
    s->owner = c->client;
    c->client->nsocks++;
    struct pvc_fd_rsp rsp = rsp_for(c, 0);
    rsp.ino = s->ino;
    client_reply(d, c->client, &rsp, &app_end, 1);
    /* Our copy goes; if the reply was lost, so is the last reference,
     * and the token's hang-up releases the socket. */
    close(app_end);
}

static int32_t op_socket(struct frontd *d, struct fd_client *cl,
                         const struct pvc_fd_req *req)
{
    if (req->domain != AF_INET && req->domain != AF_INET6)
        return -EAFNOSUPPORT;
    if (req->domain == AF_INET6 && d->connected &&
        !ops_has_ext(d, PVC_EXT_IPV6))
        return -EAFNOSUPPORT;
    if (req->type != SOCK_STREAM)
        return -EPROTONOSUPPORT;
    if (req->protocol != 0 && req->protocol != IPPROTO_TCP)
        return -EPROTONOSUPPORT;
    if (cl->nsocks >= FRONTD_MAX_SOCKS_PER_CLIENT)
        return -EMFILE;
    if (!d->connected)
        return -ENETDOWN;
    struct fd_cmd *c = call_cmd(cl, NULL, PVC_FD_SOCKET, PVCALLS_SOCKET,
                                socket_done);
    if (!c)
        return -ENOMEM;
    c->domain = req->domain;
    c->req.u.socket.id = ++d->next_sock_id;
    c->req.u.socket.domain = (uint32_t)req->domain;
    c->req.u.socket.type = SOCK_STREAM;
    c->req.u.socket.protocol = 0; /* Linux's backend rejects IPPROTO_TCP */
    cmd_submit(d, c);
    return 0;
}

/* ---- BIND, LISTEN --------------------------------------------------- */

/* BIND, LISTEN and the extension commands that answer only ret. */
static void simple_done(struct frontd *d, struct fd_cmd *c,
                        const union xen_pvcalls_sring_entry *e)
{
    struct fd_sock *s = c->sock;
    int32_t ret = e->rsp.ret;
    if (ret == 0 && c->req.cmd == PVCALLS_BIND)
        s->bound = true;
    if (c->client)
        client_reply_err(d, c->client, c->op, ret);
    if (ret == 0 && c->req.cmd == PVCALLS_LISTEN)
        listener_start(d, s);
    sock_cmd_done(d, s);
}

static int32_t op_bind(struct frontd *d, struct fd_client *cl,
                       struct fd_sock *s, const struct pvc_fd_req *req)
{
    if (s->bound || s->connected || s->connecting || s->listening)
        return -EINVAL;
    int32_t len = ops_check_addr(d, s, req);
    if (len < 0)
        return len;
    struct fd_cmd *c = call_cmd(cl, s, PVC_FD_BIND, PVCALLS_BIND,
                                simple_done);
    if (!c)
        return -ENOMEM;
    c->req.u.bind.id = s->id;
    memcpy(c->req.u.bind.addr, req->addr,
           (size_t)len < req->addrlen ? (size_t)len : req->addrlen);
    c->req.u.bind.len = (uint32_t)len;
    cmd_submit(d, c);
    return 0;
}

static int32_t op_listen(struct frontd *d, struct fd_client *cl,
                         struct fd_sock *s, const struct pvc_fd_req *req)
{
    if (s->connected || s->connecting)
        return -EINVAL;
    struct fd_cmd *c = call_cmd(cl, s, PVC_FD_LISTEN, PVCALLS_LISTEN,
                                simple_done);
    if (!c)
        return -ENOMEM;
    c->req.u.listen.id = s->id;
    c->req.u.listen.backlog = req->backlog < 0 ? 0 : (uint32_t)req->backlog;
    cmd_submit(d, c);
    return 0;
}

/* ---- extension commands ---------------------------------------------- */

static int32_t op_shutdown(struct frontd *d, struct fd_client *cl,
                           struct fd_sock *s, const struct pvc_fd_req *req)
{
    if (req->how < SHUT_RD || req->how > SHUT_RDWR)
        return -EINVAL;
    if (!s->connected)
        return -ENOTCONN;
    if (!ops_has_ext(d, PVC_EXT_SHUTDOWN))
        return -EOPNOTSUPP;
    struct fd_cmd *c = call_cmd(cl, s, PVC_FD_SHUTDOWN, PVCALLS_EXT_SHUTDOWN,
                                simple_done);
    if (!c)
        return -ENOMEM;
    struct pvc_ext_shutdown_req x = { .id = s->id, .how = (uint32_t)req->how };
    memcpy(&c->req.u, &x, sizeof(x));
    cmd_submit(d, c);
    return 0;
}

static void sockname_done(struct frontd *d, struct fd_cmd *c,
                          const union xen_pvcalls_sring_entry *e)
{
    if (c->client) {
        struct pvc_fd_rsp rsp = rsp_for(c, e->rsp.ret);
        struct pvc_ext_addr_rsp ar;
        memcpy(&ar, e, sizeof(ar));
        if (rsp.ret == 0 && ar.len > PVC_FD_ADDR_MAX)
            rsp.ret = -EPROTO;
        if (rsp.ret == 0) {
            rsp.addrlen = ar.len;
            memcpy(rsp.addr, ar.addr, ar.len);
        }
        client_reply(d, c->client, &rsp, NULL, 0);
    }
    sock_cmd_done(d, c->sock);
}

static int32_t op_sockname(struct frontd *d, struct fd_client *cl,
                           struct fd_sock *s, uint32_t op)
{
    if (!ops_has_ext(d, PVC_EXT_SOCKNAME))
        return -EOPNOTSUPP;
    uint32_t cmd = op == PVC_FD_GETSOCKNAME ? PVCALLS_EXT_GETSOCKNAME
                                            : PVCALLS_EXT_GETPEERNAME;
    struct fd_cmd *c = call_cmd(cl, s, op, cmd, sockname_done);
    if (!c)
        return -ENOMEM;
    struct pvc_ext_sockname_req x = { .id = s->id };
    memcpy(&c->req.u, &x, sizeof(x));
    cmd_submit(d, c);
    return 0;
}

static void getsockopt_done(struct frontd *d, struct fd_cmd *c,
                            const union xen_pvcalls_sring_entry *e)
{
    if (c->client) {
        struct pvc_fd_rsp rsp = rsp_for(c, e->rsp.ret);
        struct pvc_ext_sockopt_rsp orsp;
        memcpy(&orsp, e, sizeof(orsp));
        if (rsp.ret == 0 && orsp.len > PVC_FD_OPT_MAX)
            rsp.ret = -EPROTO;
        if (rsp.ret == 0) {
            rsp.optlen = orsp.len;
            memcpy(rsp.optval, orsp.val, orsp.len);
        }
        client_reply(d, c->client, &rsp, NULL, 0);
    }
    sock_cmd_done(d, c->sock);
}

static int32_t op_sockopt(struct frontd *d, struct fd_client *cl,
                          struct fd_sock *s, const struct pvc_fd_req *req)
{
    if (!ops_has_ext(d, PVC_EXT_SOCKOPT))
        return -ENOPROTOOPT;
    if (req->optlen > PVC_FD_OPT_MAX)
        return -EINVAL;
    bool set = req->op == PVC_FD_SETSOCKOPT;
    struct fd_cmd *c = call_cmd(cl, s, req->op,
                                set ? PVCALLS_EXT_SETSOCKOPT
                                    : PVCALLS_EXT_GETSOCKOPT,
                                set ? simple_done : getsockopt_done);
    if (!c)
        return -ENOMEM;
    struct pvc_ext_sockopt_req x = {
        .id = s->id, .level = (uint32_t)req->level,
        .name = (uint32_t)req->optname, .len = req->optlen,
    };
    if (set)
        memcpy(x.val, req->optval, req->optlen);
    memcpy(&c->req.u, &x, sizeof(x));
    cmd_submit(d, c);
    return 0;
}

/* ---- dispatch -------------------------------------------------------- */

static int32_t on_socket(struct frontd *d, struct fd_client *cl,
                         const struct pvc_fd_req *req, int tokfd)
{
    int32_t err;
    struct fd_sock *s = token_sock(d, req, tokfd, &err);
    if (!s)
        return err;
    if (!d->connected)
        return -ENETDOWN;
    switch (req->op) {
    case PVC_FD_CONNECT:
        return connect_start(d, cl, s, req);
    case PVC_FD_BIND:
        return op_bind(d, cl, s, req);
    case PVC_FD_LISTEN:
        return op_listen(d, cl, s, req);
    case PVC_FD_ACCEPT:
        return listener_take(d, cl, s);
    case PVC_FD_SHUTDOWN:
        return op_shutdown(d, cl, s, req);
    case PVC_FD_GETSOCKNAME:
    case PVC_FD_GETPEERNAME:
        return op_sockname(d, cl, s, req->op);
    case PVC_FD_SETSOCKOPT:
    case PVC_FD_GETSOCKOPT:
        return op_sockopt(d, cl, s, req);
    default:
        return -EINVAL;
    }
}

void ops_dispatch(struct frontd *d, struct fd_client *cl,
                  const struct pvc_fd_req *req, int tokfd)
{
    int32_t ret;
    switch (req->op) {
    case PVC_FD_HELLO:
        if (tokfd >= 0)
            close(tokfd);
        op_hello(d, cl, req);
        return;
    case PVC_FD_SOCKET:
        if (tokfd >= 0)
            close(tokfd);
        ret = op_socket(d, cl, req);
        break;
    case PVC_FD_CONNECT ... PVC_FD_GETSOCKOPT:
        ret = on_socket(d, cl, req, tokfd);
        break;
    case PVC_FD_ADOPT:
        ret = adopt_answer(d, cl, req, tokfd);
        break;
    default:
        if (tokfd >= 0)
            close(tokfd);
        ret = -EINVAL;
        break;
    }
    /* 0: a command is on its way and its completion answers; a command
     * may also have completed at once (backend lost), answering already. */
    if (ret < 0)
        client_reply_err(d, cl, req->op, ret);
}
