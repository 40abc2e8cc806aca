/*
 * PVC_FD_ADOPT at the daemon (include/pvc/frontd_proto.h), with a raw
 * client in the role of a process that got a token without a daemon
 * answer (after exec, or by SCM_RIGHTS): the real guest daemon and
 * backend on the simulated platform.
 *
 *  - what is no token of this daemon (a pipe, a socketpair of our own, a
 *    token named with another inode, no fd at all) is -ENOTSOCK;
 *  - a socket is described in every state: created, bound, listening,
 *    failed (with the connect's error), connected (with its ring, which
 *    maps to the same state page as the connecting client's);
 *  - SO_PEERCRED on a token names the daemon's pid, the same as on a
 *    connection to its socket (what the shim's cheap filter relies on).
 */
#include "../lib/harness.h"
#include "../lib/harness_frontd.h"
#include "../lib/hostnet.h"

#include "pvc/frontd_proto.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_FDS 8
#define IO_MS 5000

static int open_conn(const char *path)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0,
                 "connect %s: %m", path);
    return fd;
}

/* One call: req (with fd tok if >= 0) out, the answer and its fds in.
 * Returns rsp->ret. */
static int32_t call(int conn, struct pvc_fd_req *req, int tok,
                    struct pvc_fd_rsp *rsp, int fds[MAX_FDS], unsigned *nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = req, .iov_len = sizeof(*req) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (tok >= 0) {
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &tok, sizeof(int));
    }
    cr_assert_eq(sendmsg(conn, &mh, MSG_NOSIGNAL), (ssize_t)sizeof(*req));
    struct pollfd p = { .fd = conn, .events = POLLIN };
    cr_assert_eq(poll(&p, 1, IO_MS), 1, "no answer from the daemon");
    iov = (struct iovec){ .iov_base = rsp, .iov_len = sizeof(*rsp) };
    mh = (struct msghdr){ .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = ctl.buf,
                          .msg_controllen = sizeof(ctl.buf) };
    cr_assert_eq(recvmsg(conn, &mh, MSG_CMSG_CLOEXEC), (ssize_t)sizeof(*rsp));
    *nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
             i++)
            memcpy(&fds[(*nfds)++], CMSG_DATA(c) + i * sizeof(int),
                   sizeof(int));
    cr_assert_eq(rsp->op, req->op);
    return rsp->ret;
}

static void close_fds(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
}

static uint64_t ino_of(int fd)
{
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    return st.st_ino;
}

struct env {
    struct harness *h;
    struct h_frontd fd;
    int conn;
};

static void env_start(struct env *e)
{
    e->h = h_start(NULL);
    h_frontd_start(e->h, 1, NULL, &e->fd);
    e->conn = open_conn(e->fd.sock);
    struct pvc_fd_req req = { .op = PVC_FD_HELLO,
                              .version = PVC_FD_PROTO_VERSION };
    struct pvc_fd_rsp rsp;
    int fds[MAX_FDS];
    unsigned n;
    cr_assert_eq(call(e->conn, &req, -1, &rsp, fds, &n), 0);
}

static void env_stop(struct env *e)
{
    close(e->conn);
    cr_assert(h_frontd_alive(&e->fd), "pvcalls-frontd died");
    h_frontd_stop(&e->fd);
    h_stop(e->h);
}

/* A new socket's token. */
static int new_socket(struct env *e)
{
    struct pvc_fd_req req = { .op = PVC_FD_SOCKET, .domain = AF_INET,
                              .type = SOCK_STREAM };
    struct pvc_fd_rsp rsp;
    int fds[MAX_FDS];
    unsigned n;
    cr_assert_eq(call(e->conn, &req, -1, &rsp, fds, &n), 0);
    cr_assert_eq(n, 1);
    return fds[0];
}

/* A request on token tok that answers only ret. */
static int32_t on_token(struct env *e, uint32_t op, int tok,
                        struct pvc_fd_req *req)
{
    req->op = op;
    req->ino = ino_of(tok);
    struct pvc_fd_rsp rsp;
    int fds[MAX_FDS];
    unsigned n;
    int32_t ret = call(e->conn, req, tok, &rsp, fds, &n);
    close_fds(fds, n);
    return ret;
}

/* ADOPT of fd (named by ino) from connection conn. */
static int32_t adopt(int conn, int fd, uint64_t ino, struct pvc_fd_rsp *rsp,
                     int fds[MAX_FDS], unsigned *n)
{
    struct pvc_fd_req req = { .op = PVC_FD_ADOPT, .ino = ino };
    return call(conn, &req, fd, rsp, fds, n);
}

/* The state ADOPT reports for tok (no fds expected). */
static struct pvc_fd_rsp described(struct env *e, int tok)
{
    struct pvc_fd_rsp rsp;
    int fds[MAX_FDS];
    unsigned n;
    cr_assert_eq(adopt(e->conn, tok, ino_of(tok), &rsp, fds, &n), 0);
    cr_assert_eq(n, 0, "fds without a ring");
    cr_assert_eq(rsp.ino, ino_of(tok));
    cr_assert_eq(rsp.domain, AF_INET);
    cr_assert_eq(rsp.type, SOCK_STREAM);
    cr_assert_eq(rsp.protocol, IPPROTO_TCP);
    return rsp;
}

static void loopback(uint16_t port, struct pvc_fd_req *req)
{
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    memcpy(req->addr, &a, sizeof(a));
    req->addrlen = sizeof(a);
}

TestSuite(shim_exec_adopt, .fini = h_cleanup, .timeout = 60);

Test(shim_exec_adopt, not_a_token)
{
    struct env e;
    env_start(&e);
    struct pvc_fd_rsp rsp;
    int fds[MAX_FDS], p[2], sp[2];
    unsigned n;
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    cr_assert_eq(adopt(e.conn, p[0], ino_of(p[0]), &rsp, fds, &n),
                 -ENOTSOCK);
    cr_assert_eq(adopt(e.conn, sp[0], ino_of(sp[0]), &rsp, fds, &n),
                 -ENOTSOCK);
    cr_assert_eq(adopt(e.conn, -1, 1, &rsp, fds, &n), -ENOTSOCK);
    /* A real token, named as another socket: no proof of that one. */
    int tok = new_socket(&e), other = new_socket(&e);
    cr_assert_eq(adopt(e.conn, tok, ino_of(other), &rsp, fds, &n),
                 -ENOTSOCK);
    cr_assert_eq(n, 0);
    close_fds(p, 2);
    close_fds(sp, 2);
    close(tok);
    close(other);
    env_stop(&e);
}

Test(shim_exec_adopt, every_state_described)
{
    struct env e;
    env_start(&e);
    int tok = new_socket(&e);
    cr_assert_eq(described(&e, tok).sock_state, PVC_FD_SOCK_CREATED);
    struct pvc_fd_req req = { 0 };
    loopback(0, &req);
    cr_assert_eq(on_token(&e, PVC_FD_BIND, tok, &req), 0);
    struct pvc_fd_rsp r = described(&e, tok);
    cr_assert_eq(r.sock_state, PVC_FD_SOCK_BOUND);
    cr_assert_eq(r.sock_flags, PVC_FD_SOCK_F_BOUND);
    req = (struct pvc_fd_req){ .backlog = 4 };
    cr_assert_eq(on_token(&e, PVC_FD_LISTEN, tok, &req), 0);
    cr_assert_eq(described(&e, tok).sock_state, PVC_FD_SOCK_LISTENING);
    close(tok);

    /* A refused connect: FAILED with the error, no ring. */
    tok = new_socket(&e);
    req = (struct pvc_fd_req){ 0 };
    loopback(hn_closed_port(AF_INET), &req);
    cr_assert_eq(on_token(&e, PVC_FD_CONNECT, tok, &req), -EINPROGRESS);
    struct pollfd p = { .fd = tok, .events = POLLIN };
    cr_assert_eq(poll(&p, 1, IO_MS), 1, "no connect result");
    r = described(&e, tok);
    cr_assert_eq(r.sock_state, PVC_FD_SOCK_FAILED);
    cr_assert_eq(r.so_error, -ECONNREFUSED);
    cr_assert_eq(r.sock_flags, 0);
    close(tok);
    env_stop(&e);
}

Test(shim_exec_adopt, connected_socket_ring_handed_over)
{
    struct env e;
    env_start(&e);
    struct hn_server *srv =
        hn_server_start(&(struct hn_server_cfg){ .mode = HN_ECHO });
    int tok = new_socket(&e);
    struct pvc_fd_req req = { 0 };
    loopback(hn_server_port(srv), &req);
    req.op = PVC_FD_CONNECT;
    req.ino = ino_of(tok);
    struct pvc_fd_rsp crsp;
    int cfds[MAX_FDS];
    unsigned cn;
    cr_assert_eq(call(e.conn, &req, tok, &crsp, cfds, &cn), -EINPROGRESS);
    struct pollfd p = { .fd = tok, .events = POLLIN };
    cr_assert_eq(poll(&p, 1, IO_MS), 1, "no connect result");

    /* Another connection to the daemon: another process, in effect. */
    int conn2 = open_conn(e.fd.sock);
    struct pvc_fd_req hello = { .op = PVC_FD_HELLO,
                                .version = PVC_FD_PROTO_VERSION };
    struct pvc_fd_rsp rsp;
    int fds[MAX_FDS];
    unsigned n;
    cr_assert_eq(call(conn2, &hello, -1, &rsp, fds, &n), 0);
    cr_assert_eq(adopt(conn2, tok, ino_of(tok), &rsp, fds, &n), 0);
    cr_assert_eq(rsp.sock_state, PVC_FD_SOCK_CONNECTED);
    cr_assert_eq(rsp.order, crsp.order);
    cr_assert_eq(rsp.evt_kind, crsp.evt_kind);
    cr_assert_eq(rsp.evt_port, crsp.evt_port);
    cr_assert_eq(n, 2 + rsp.evt_nfds, "ring, state page, channel");
    /* The state page is the one the connecting client has: the result
     * it carries is the same memory. */
    struct pvc_sock_shared *mine = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                                        MAP_SHARED, cfds[1], 0);
    struct pvc_sock_shared *adopted = mmap(NULL, 4096, PROT_READ,
                                           MAP_SHARED, fds[1], 0);
    cr_assert(mine != MAP_FAILED && adopted != MAP_FAILED);
    cr_assert_eq(adopted->connect_done, 1);
    cr_assert_eq(adopted->connect_ret, 0);
    mine->so_error = -1234;
    cr_assert_eq(adopted->so_error, -1234);
    munmap(mine, 4096);
    munmap(adopted, 4096);

    /* The invariant the shim's filter relies on. */
    struct ucred tc, dc;
    socklen_t len = sizeof(tc);
    cr_assert_eq(getsockopt(tok, SOL_SOCKET, SO_PEERCRED, &tc, &len), 0);
    len = sizeof(dc);
    cr_assert_eq(getsockopt(conn2, SOL_SOCKET, SO_PEERCRED, &dc, &len), 0);
    cr_assert_eq(tc.pid, dc.pid);
    cr_assert_eq(tc.pid, e.fd.proc.pid);

    close_fds(fds, n);
    close_fds(cfds, cn);
    close(conn2);
    close(tok);
    hn_server_stop(srv);
    env_stop(&e);
}
