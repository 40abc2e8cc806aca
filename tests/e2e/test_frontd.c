/*
 * pvcalls-frontd end to end: the simulated platform, the real backend,
 * the real guest daemon, and a raw client written here (SOCK_SEQPACKET
 * requests with SCM_RIGHTS, as the shim speaks include/pvc/frontd_proto.h)
 * that maps the rings it is handed and moves bytes through them itself.
 * The backend's audit log shows what reached dom0.
 */
#include "../lib/harness.h"
#include "../lib/harness_frontd.h"
#include "../lib/hostnet.h"

#include "pvc/ext.h"
#include "pvc/frontd_proto.h"
#include "pvc/platform.h"
#include "pvc/ring.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xenstore.h>

#define IO_TIMEOUT_MS 5000
#define MAX_FDS 8

/* ---- a raw client of the daemon (no criterion asserts: used in forked
 * children too) ------------------------------------------------------ */

static int fdc_open(const char *path)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_with_fds(int conn, const void *msg, size_t len,
                         const int *fds, unsigned nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds) {
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    return sendmsg(conn, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* Receive one reply; *nfds in: capacity, out: count.  0 or -EIO. */
static int recv_reply(int conn, struct pvc_fd_rsp *rsp, int *fds,
                      unsigned *nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = rsp, .iov_len = sizeof(*rsp) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = ctl.buf,
                         .msg_controllen = sizeof(ctl.buf) };
    struct pollfd p = { .fd = conn, .events = POLLIN };
    if (poll(&p, 1, 3 * IO_TIMEOUT_MS) != 1)
        return -ETIMEDOUT;
    ssize_t n = recvmsg(conn, &mh, MSG_CMSG_CLOEXEC);
    unsigned got = 0, cap = nfds ? *nfds : 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm;
         cm = CMSG_NXTHDR(&mh, cm)) {
        size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (got < cap)
                fds[got++] = fd;
            else
                close(fd);
        }
    }
    if (nfds)
        *nfds = got;
    return n == (ssize_t)sizeof(*rsp) ? 0 : -EIO;
}

/* One call: the request (with the token fd if tok >= 0), the reply.
 * Returns rsp->ret, or -EIO/-ETIMEDOUT for a transport failure. */
static int32_t fdc_call(int conn, struct pvc_fd_req *req, int tok,
                        struct pvc_fd_rsp *rsp, int *fds, unsigned *nfds)
{
    struct pvc_fd_rsp local;
    if (!rsp)
        rsp = &local;
    if (send_with_fds(conn, req, sizeof(*req), &tok, tok >= 0) < 0)
        return -EIO;
    int err = recv_reply(conn, rsp, fds, nfds);
    if (err)
        return err;
    if (rsp->op != req->op)
        return -EIO;
    return rsp->ret;
}

/* A socket as the shim would hold it. */
struct fsock {
    int tok;
    uint64_t ino;
    unsigned char *pages;
    unsigned npages;
    int state_fd;
    struct pvc_evtchn *ch;
    struct pvc_data_ring ring;
};

static int32_t fs_socket(int conn, int domain, struct fsock *s)
{
    memset(s, 0, sizeof(*s));
    s->tok = s->state_fd = -1;
    struct pvc_fd_req req = { .op = PVC_FD_SOCKET, .domain = domain,
                              .type = SOCK_STREAM };
    struct pvc_fd_rsp rsp;
    int fds[MAX_FDS];
    unsigned n = MAX_FDS;
    int32_t ret = fdc_call(conn, &req, -1, &rsp, fds, &n);
    if (ret == 0 && n != 1)
        ret = -EPROTO;
    if (ret == 0) {
        s->tok = fds[0];
        s->ino = rsp.ino;
    }
    return ret;
}

static struct pvc_fd_req sock_req(uint32_t op, const struct fsock *s)
{
    struct pvc_fd_req req;
    memset(&req, 0, sizeof(req));
    req.op = op;
    req.ino = s->ino;
    return req;
}

/* Map what a CONNECT or ACCEPT reply carried (fds from `first` on). */
static int adopt_ring(struct fsock *s, const struct pvc_fd_rsp *rsp,
                      int *fds, unsigned n, unsigned first)
{
    if (n != first + 2 + rsp->evt_nfds || rsp->evt_nfds > 2)
        return -EPROTO;
    s->npages = 1 + (1u << rsp->order);
    struct pvc_grant_handoff gh = { .kind = rsp->evt_kind,
                                    .fd = fds[first],
                                    .offset = rsp->ring_offset,
                                    .npages = s->npages };
    s->pages = pvc_grant_adopt(&gh);
    close(fds[first]);
    s->state_fd = fds[first + 1];
    struct pvc_evtchn_handoff eh = { .kind = rsp->evt_kind,
                                     .port = rsp->evt_port,
                                     .nfds = (int)rsp->evt_nfds };
    for (unsigned i = 0; i < rsp->evt_nfds; i++)
        eh.fds[i] = fds[first + 2 + i];
    s->ch = pvc_evtchn_adopt(&eh);
    if (!s->pages || !s->ch)
        return -EPROTO;
    pvc_data_ring_attach(&s->ring, s->pages, s->pages + PVC_PAGE_SIZE,
                         rsp->order, PVC_SIDE_FRONT);
    return 0;
}

static int32_t fs_connect(int conn, struct fsock *s,
                          const struct sockaddr_storage *a, socklen_t len)
{
    struct pvc_fd_req req = sock_req(PVC_FD_CONNECT, s);
    memcpy(req.addr, a, len);
    req.addrlen = len;
    struct pvc_fd_rsp rsp;
    int fds[MAX_FDS];
    unsigned n = MAX_FDS;
    int32_t ret = fdc_call(conn, &req, s->tok, &rsp, fds, &n);
    if (ret != 0) {
        for (unsigned i = 0; i < n; i++)
            close(fds[i]);
        return ret;
    }
    return adopt_ring(s, &rsp, fds, n, 0);
}

static void fs_close(struct fsock *s)
{
    if (s->pages)
        munmap(s->pages, (size_t)s->npages * PVC_PAGE_SIZE);
    if (s->ch)
        pvc_evtchn_close(s->ch);
    if (s->state_fd >= 0)
        close(s->state_fd);
    if (s->tok >= 0)
        close(s->tok);
    memset(s, 0, sizeof(*s));
    s->tok = s->state_fd = -1;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Block on the socket's channel until an event or the deadline. */
static bool fs_wait(struct fsock *s, int64_t deadline)
{
    int64_t left = deadline - now_ms();
    if (left <= 0)
        return false;
    struct pollfd p = { .fd = pvc_evtchn_fd(s->ch), .events = POLLIN };
    if (poll(&p, 1, (int)left) < 0)
        return false;
    pvc_evtchn_ack(s->ch);
    return true;
}

static long fs_write(struct fsock *s, const void *buf, size_t len)
{
    int64_t deadline = now_ms() + IO_TIMEOUT_MS;
    size_t done = 0;
    while (done < len) {
        int32_t err = pvc_ring_out_error(&s->ring);
        if (err)
            return err;
        long n = pvc_ring_tx_copy(&s->ring, (const char *)buf + done,
                                  len - done);
        if (n < 0)
            return n;
        if (n > 0) {
            done += (size_t)n;
            pvc_evtchn_notify(s->ch);
            continue;
        }
        if (!fs_wait(s, deadline))
            return -ETIMEDOUT;
    }
    return (long)done;
}

/* At least one byte, 0 at EOF, or the ring's error. */
static long fs_read(struct fsock *s, void *buf, size_t len)
{
    int64_t deadline = now_ms() + IO_TIMEOUT_MS;
    for (;;) {
        long n = pvc_ring_rx_copy(&s->ring, buf, len, 0);
        if (n != 0) {
            pvc_evtchn_notify(s->ch);
            return n;
        }
        int32_t err = pvc_ring_in_error(&s->ring);
        if (err == -ENOTCONN)
            return 0;
        if (err)
            return err;
        if (!fs_wait(s, deadline))
            return -ETIMEDOUT;
    }
}

static long fs_read_full(struct fsock *s, void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        long n = fs_read(s, (char *)buf + done, len - done);
        if (n <= 0)
            return n;
        done += (size_t)n;
    }
    return (long)done;
}

/* ---- test helpers ---------------------------------------------------- */

struct env {
    struct harness *h;
    struct h_frontd fd;
    int conn;
};

static void env_start(struct env *e, const struct h_opts *opts)
{
    e->h = h_start(opts);
    h_frontd_start(e->h, 1, NULL, &e->fd);
    e->conn = fdc_open(e->fd.sock);
    cr_assert_geq(e->conn, 0, "connect to %s: %m", e->fd.sock);
    struct pvc_fd_req req = { .op = PVC_FD_HELLO,
                              .version = PVC_FD_PROTO_VERSION };
    struct pvc_fd_rsp rsp;
    cr_assert_eq(fdc_call(e->conn, &req, -1, &rsp, NULL, NULL), 0);
    cr_assert_geq(rsp.max_order, 4);
}

static void env_stop(struct env *e)
{
    close(e->conn);
    cr_assert(h_frontd_alive(&e->fd), "pvcalls-frontd died");
    h_frontd_stop(&e->fd);
    h_stop(e->h);
}

static struct hn_server *echo_server(void)
{
    return hn_server_start(&(struct hn_server_cfg){ .mode = HN_ECHO });
}

static void connected_socket(int conn, struct hn_server *srv,
                             struct fsock *s)
{
    cr_assert_eq(fs_socket(conn, AF_INET, s), 0);
    struct sockaddr_storage a;
    socklen_t len = hn_server_addr(srv, &a);
    cr_assert_eq(fs_connect(conn, s, &a, len), 0);
}

/* ---- tests ----------------------------------------------------------- */

TestSuite(frontd, .fini = h_cleanup, .timeout = 90);

Test(frontd, connect_echo_and_release)
{
    struct env e;
    env_start(&e, NULL);
    struct hn_server *srv = echo_server();
    struct fsock s;
    connected_socket(e.conn, srv, &s);

    enum { LEN = 100000 }; /* more than a ring half of order 6 */
    static unsigned char out[LEN], in[LEN];
    struct hn_stream st;
    hn_stream_init(&st, 42);
    hn_stream_fill(&st, out, LEN);
    /* Write and read interleaved: the echo fills our in half meanwhile. */
    size_t sent = 0, got = 0;
    while (got < LEN) {
        if (sent < LEN) {
            size_t chunk = LEN - sent < 8192 ? LEN - sent : 8192;
            cr_assert_eq(fs_write(&s, out + sent, chunk), (long)chunk);
            sent += chunk;
        }
        long n = fs_read(&s, in + got, LEN - got);
        cr_assert_gt(n, 0, "read: %ld", n);
        got += (size_t)n;
    }
    cr_assert_eq(memcmp(in, out, LEN), 0);

    /* Closing the last holder releases the socket at the backend. */
    fs_close(&s);
    struct audit_q rel = { .cmd = "release", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &rel, 1, IO_TIMEOUT_MS), 1);
    struct audit_q closed = { .event = "close", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &closed, 1, IO_TIMEOUT_MS), 1);
    struct audit a;
    h_audit(e.h, &a);
    const char *line = audit_first(&a, &closed);
    long long bin = -1, bout = -1;
    cr_assert(json_int(line, "bytes_in", &bin));
    cr_assert(json_int(line, "bytes_out", &bout));
    cr_expect_eq(bin, LEN);
    cr_expect_eq(bout, LEN);
    audit_free(&a);
    hn_server_stop(srv);
    env_stop(&e);
}

Test(frontd, bad_tokens_and_states)
{
    struct env e;
    env_start(&e, NULL);
    struct fsock s, other;
    cr_assert_eq(fs_socket(e.conn, AF_INET, &s), 0);
    cr_assert_eq(fs_socket(e.conn, AF_INET, &other), 0);

    /* Bypassing the shim fails visibly: the token takes no data. */
    errno = 0;
    cr_assert_eq(send(s.tok, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT), -1);
    cr_assert_eq(errno, EPIPE);
    /* ... and a shutdown() that bypassed the shim releases nothing. */
    cr_assert_eq(shutdown(other.tok, SHUT_WR), 0);

    /* No token, a token of another socket, a pipe. */
    struct pvc_fd_req req = sock_req(PVC_FD_LISTEN, &s);
    cr_assert_eq(fdc_call(e.conn, &req, -1, NULL, NULL, NULL), -EBADF);
    cr_assert_eq(fdc_call(e.conn, &req, other.tok, NULL, NULL, NULL),
                 -EBADF);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(fdc_call(e.conn, &req, p[0], NULL, NULL, NULL), -EBADF);
    close(p[0]);
    close(p[1]);
    /* ACCEPT on a socket that does not listen; an unknown op. */
    req.op = PVC_FD_ACCEPT;
    cr_assert_eq(fdc_call(e.conn, &req, s.tok, NULL, NULL, NULL), -EINVAL);
    req.op = 999;
    cr_assert_eq(fdc_call(e.conn, &req, s.tok, NULL, NULL, NULL), -EINVAL);
    /* A bad address family and a short address. */
    req = sock_req(PVC_FD_CONNECT, &s);
    req.addrlen = 16;
    req.addr[0] = AF_UNIX;
    cr_assert_eq(fdc_call(e.conn, &req, s.tok, NULL, NULL, NULL),
                 -EAFNOSUPPORT);
    req.addr[0] = AF_INET;
    req.addrlen = 8;
    cr_assert_eq(fdc_call(e.conn, &req, s.tok, NULL, NULL, NULL), -EINVAL);
    /* SOCKET: UDP is not ours. */
    struct pvc_fd_req sreq = { .op = PVC_FD_SOCKET, .domain = AF_INET,
                               .type = SOCK_DGRAM };
    cr_assert_eq(fdc_call(e.conn, &sreq, -1, NULL, NULL, NULL),
                 -EPROTONOSUPPORT);
    /* A refused connection is reported as such, and the socket stays
     * usable for the caller to close. */
    struct sockaddr_storage a;
    socklen_t len = hn_loopback(AF_INET, hn_closed_port(AF_INET), &a);
    cr_assert_eq(fs_connect(e.conn, &s, &a, len), -ECONNREFUSED);
    /* (PV Calls listens only on a bound socket: the backend's -EINVAL,
     * not the daemon's -EBADF for a socket it no longer knows.) */
    struct pvc_fd_req lreq = sock_req(PVC_FD_LISTEN, &other);
    int32_t lret = fdc_call(e.conn, &lreq, other.tok, NULL, NULL, NULL);
    cr_assert_eq(lret, -EINVAL, "the half-shut socket is still ours: %d",
                 lret);
    fs_close(&s);
    fs_close(&other);
    struct audit_q rel = { .cmd = "release", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &rel, 2, IO_TIMEOUT_MS), 2);
    env_stop(&e);
}

/* A forked client connects n sockets, reports, and waits to be killed. */
static int holder_main(const char *path, struct hn_server *srv, unsigned n,
                       int ready)
{
    int conn = fdc_open(path);
    if (conn < 0)
        return 10;
    struct sockaddr_storage a;
    socklen_t len = hn_server_addr(srv, &a);
    static struct fsock s[64];
    for (unsigned i = 0; i < n; i++) {
        if (fs_socket(conn, AF_INET, &s[i]) != 0)
            return 11;
        if (fs_connect(conn, &s[i], &a, len) != 0)
            return 12;
        if (fs_write(&s[i], "x", 1) != 1)
            return 13;
    }
    if (write(ready, "r", 1) != 1)
        return 14;
    for (;;)
        pause();
}

Test(frontd, sigkill_releases_every_socket_within_a_second)
{
    struct env e;
    env_start(&e, NULL);
    struct hn_server *srv = echo_server();
    enum { N = 50 };
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(p[0]);
        _exit(holder_main(e.fd.sock, srv, N, p[1]));
    }
    close(p[1]);
    char c;
    struct pollfd pfd = { .fd = p[0], .events = POLLIN };
    cr_assert_eq(poll(&pfd, 1, 30000), 1);
    ssize_t r = read(p[0], &c, 1);
    close(p[0]);
    if (r != 1) {
        int status;
        waitpid(pid, &status, 0);
        cr_assert_fail("holder failed: exit %d",
                       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    struct audit_q conn_q = { .cmd = "connect", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &conn_q, N, IO_TIMEOUT_MS), N);
    int64_t t0 = now_ms();
    kill(pid, SIGKILL);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    struct audit_q rel = { .cmd = "release", .dom = 1 };
    size_t got = h_audit_wait(e.h, &rel, N, 1000);
    int64_t took = now_ms() - t0;
    cr_assert_eq(got, N, "%zu of %d released within 1 s", got, N);
    cr_log_info("50 sockets released %lld ms after SIGKILL",
                (long long)took);
    /* Every byte the holder wrote reached the host. */
    struct audit_q closed = { .event = "close", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &closed, N, IO_TIMEOUT_MS), N);
    hn_server_stop(srv);
    env_stop(&e);
}

Test(frontd, listen_accept_with_a_native_client)
{
    struct env e;
    env_start(&e, NULL);
    struct fsock l;
    cr_assert_eq(fs_socket(e.conn, AF_INET, &l), 0);
    struct sockaddr_storage a;
    socklen_t len = hn_loopback(AF_INET, 0, &a);
    struct pvc_fd_req req = sock_req(PVC_FD_BIND, &l);
    memcpy(req.addr, &a, len);
    req.addrlen = len;
    cr_assert_eq(fdc_call(e.conn, &req, l.tok, NULL, NULL, NULL), 0);
    req = sock_req(PVC_FD_LISTEN, &l);
    req.backlog = 8;
    cr_assert_eq(fdc_call(e.conn, &req, l.tok, NULL, NULL, NULL), 0);
    req = sock_req(PVC_FD_GETSOCKNAME, &l);
    struct pvc_fd_rsp rsp;
    cr_assert_eq(fdc_call(e.conn, &req, l.tok, &rsp, NULL, NULL), 0);
    cr_assert_eq(rsp.addrlen, sizeof(struct sockaddr_in));
    struct sockaddr_storage bound = { 0 };
    memcpy(&bound, rsp.addr, rsp.addrlen);
    cr_assert_neq(hn_port_of(&bound), 0);

    enum { LEN = 20000 };
    struct hn_client *cl = hn_client_start(&bound, rsp.addrlen, LEN, 7);
    req = sock_req(PVC_FD_ACCEPT, &l);
    int fds[MAX_FDS];
    unsigned n = MAX_FDS;
    cr_assert_eq(fdc_call(e.conn, &req, l.tok, &rsp, fds, &n), 0);
    struct fsock s = { .tok = fds[0], .ino = rsp.ino, .state_fd = -1 };
    cr_assert_eq(adopt_ring(&s, &rsp, fds, n, 1), 0);
    cr_assert_eq(rsp.addrlen, sizeof(struct sockaddr_in), "accept-addr");

    /* Echo what the native client sends, then close: the client sees
     * every byte back before EOF (the daemon lets the ring drain). */
    static unsigned char buf[LEN];
    cr_assert_eq(fs_read_full(&s, buf, LEN), LEN);
    cr_assert_eq(fs_read(&s, buf, 1), 0, "EOF after the half-close");
    cr_assert_eq(fs_write(&s, buf, LEN), LEN);
    fs_close(&s);
    struct hn_client_result res;
    cr_assert(hn_client_wait(cl, IO_TIMEOUT_MS, &res));
    hn_client_free(cl);
    cr_assert_eq(res.connect_err, 0);
    cr_assert_eq(res.bytes_out, LEN);
    cr_assert_eq(res.bytes_in, LEN, "echoed %llu of %d",
                 (unsigned long long)res.bytes_in, LEN);
    cr_assert_eq(res.hash_in, hn_stream_hash(7, LEN));
    fs_close(&l);
    struct audit_q rel = { .cmd = "release", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &rel, 2, IO_TIMEOUT_MS), 2);
    env_stop(&e);
}

/* ---- more than 32 commands in flight, hostile clients, backend loss -- */

/* A listening socket on 127.0.0.1:<any>; its address in *a. */
static socklen_t listening_socket(int conn, struct fsock *l,
                                  struct sockaddr_storage *a)
{
    cr_assert_eq(fs_socket(conn, AF_INET, l), 0);
    socklen_t len = hn_loopback(AF_INET, 0, a);
    struct pvc_fd_req req = sock_req(PVC_FD_BIND, l);
    memcpy(req.addr, a, len);
    req.addrlen = len;
    cr_assert_eq(fdc_call(conn, &req, l->tok, NULL, NULL, NULL), 0);
    req = sock_req(PVC_FD_LISTEN, l);
    req.backlog = 4;
    cr_assert_eq(fdc_call(conn, &req, l->tok, NULL, NULL, NULL), 0);
    req = sock_req(PVC_FD_GETSOCKNAME, l);
    struct pvc_fd_rsp rsp;
    cr_assert_eq(fdc_call(conn, &req, l->tok, &rsp, NULL, NULL), 0);
    memset(a, 0, sizeof(*a));
    memcpy(a, rsp.addr, rsp.addrlen);
    return rsp.addrlen;
}

static int native_connect(const struct sockaddr_storage *a, socklen_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(connect(fd, (const struct sockaddr *)a, len), 0, "%m");
    return fd;
}

Test(frontd, more_accepts_pending_than_ring_slots)
{
    struct env e;
    env_start(&e, NULL);
    enum { N = 40 }; /* the command ring holds 32 */
    int conns[N], natives[N];
    struct fsock l[N];
    struct sockaddr_storage a[N];
    socklen_t alen[N];
    for (int i = 0; i < N; i++) {
        conns[i] = fdc_open(e.fd.sock);
        cr_assert_geq(conns[i], 0);
        alen[i] = listening_socket(conns[i], &l[i], &a[i]);
    }
    for (int i = 0; i < N; i++) {
        struct pvc_fd_req req = sock_req(PVC_FD_ACCEPT, &l[i]);
        cr_assert_eq(send_with_fds(conns[i], &req, sizeof(req), &l[i].tok,
                                   1), 0);
    }
    /* Meanwhile the daemon still serves other calls. */
    struct fsock other;
    cr_assert_eq(fs_socket(e.conn, AF_INET, &other), 0);
    fs_close(&other);
    for (int i = 0; i < N; i++)
        natives[i] = native_connect(&a[i], alen[i]);
    for (int i = 0; i < N; i++) {
        struct pvc_fd_rsp rsp;
        int fds[MAX_FDS];
        unsigned n = MAX_FDS;
        cr_assert_eq(recv_reply(conns[i], &rsp, fds, &n), 0);
        cr_assert_eq(rsp.op, PVC_FD_ACCEPT);
        cr_assert_eq(rsp.ret, 0, "accept %d: %d", i, rsp.ret);
        struct fsock s = { .tok = fds[0], .ino = rsp.ino, .state_fd = -1 };
        cr_assert_eq(adopt_ring(&s, &rsp, fds, n, 1), 0);
        /* The accepted socket is really that native connection. */
        char c = (char)i;
        cr_assert_eq(write(natives[i], &c, 1), 1);
        cr_assert_eq(fs_read(&s, &c, 1), 1);
        cr_assert_eq(c, (char)i);
        fs_close(&s);
        fs_close(&l[i]);
        close(natives[i]);
        close(conns[i]);
    }
    struct audit_q acc = { .cmd = "accept", .dom = 1 };
    struct audit a_log;
    h_audit(e.h, &a_log);
    cr_assert_eq(audit_count(&a_log, &acc), N);
    audit_free(&a_log);
    struct audit_q rel = { .cmd = "release", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &rel, 2 * N + 1, IO_TIMEOUT_MS),
                 2 * N + 1);
    env_stop(&e);
}

/* Send raw bytes (and fds) as one message; the daemon's answer's ret. */
static int32_t raw_call(int conn, const void *msg, size_t len, const int *fds,
                        unsigned nfds)
{
    cr_assert_eq(send_with_fds(conn, msg, len, fds, nfds), 0);
    struct pvc_fd_rsp rsp;
    cr_assert_eq(recv_reply(conn, &rsp, NULL, NULL), 0);
    return rsp.ret;
}

static void echo_once(int conn, struct hn_server *srv)
{
    struct fsock s;
    connected_socket(conn, srv, &s);
    char buf[6] = { 0 };
    cr_assert_eq(fs_write(&s, "hello", 5), 5);
    cr_assert_eq(fs_read_full(&s, buf, 5), 5);
    cr_assert_str_eq(buf, "hello");
    fs_close(&s);
}

Test(frontd, hostile_clients_do_not_disturb_a_good_one)
{
    struct env e;
    env_start(&e, NULL);
    struct hn_server *srv = echo_server();
    echo_once(e.conn, srv);

    int bad = fdc_open(e.fd.sock);
    cr_assert_geq(bad, 0);
    char junk[sizeof(struct pvc_fd_req) + 16];
    memset(junk, 0xA5, sizeof(junk));
    cr_assert_eq(raw_call(bad, junk, 3, NULL, 0), -EINVAL);
    cr_assert_eq(raw_call(bad, junk, sizeof(junk), NULL, 0), -EINVAL);
    cr_assert_eq(raw_call(bad, junk, sizeof(struct pvc_fd_req), NULL, 0),
                 -EINVAL);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    int three[3] = { p[0], p[1], p[0] };
    struct pvc_fd_req hello = { .op = PVC_FD_HELLO, .version = 99 };
    cr_assert_eq(raw_call(bad, &hello, sizeof(hello), three, 3), -EINVAL);
    cr_assert_eq(raw_call(bad, &hello, sizeof(hello), NULL, 0),
                 -EPROTONOSUPPORT);
    close(p[0]);
    close(p[1]);
    echo_once(e.conn, srv);

    /* A client that vanishes while its ACCEPT is pending: the connection
     * accepted later is released, not leaked. */
    struct fsock l;
    struct sockaddr_storage a;
    socklen_t alen = listening_socket(bad, &l, &a);
    struct pvc_fd_req req = sock_req(PVC_FD_ACCEPT, &l);
    cr_assert_eq(send_with_fds(bad, &req, sizeof(req), &l.tok, 1), 0);
    close(bad);
    int native = native_connect(&a, alen);
    struct audit_q acc = { .cmd = "accept", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &acc, 1, IO_TIMEOUT_MS), 1);
    struct audit_q rel = { .cmd = "release", .dom = 1 };
    /* Two echo sockets, then the orphaned accepted socket. */
    cr_assert_eq(h_audit_wait(e.h, &rel, 3, IO_TIMEOUT_MS), 3);
    char c;
    cr_assert_eq(read(native, &c, 1), 0, "the orphan was closed");
    close(native);
    fs_close(&l);
    cr_assert_eq(h_audit_wait(e.h, &rel, 4, IO_TIMEOUT_MS), 4);

    /* A client that never reads its answers is dropped, not waited for. */
    int flood = fdc_open(e.fd.sock);
    cr_assert_geq(flood, 0);
    hello.version = PVC_FD_PROTO_VERSION;
    for (int i = 0; i < 100000; i++)
        if (send(flood, &hello, sizeof(hello),
                 MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            break;
    echo_once(e.conn, srv);
    close(flood);
    hn_server_stop(srv);
    env_stop(&e);
}

/* Wait until the frontend device's state satisfies want(state). */
static void wait_fe_state(struct harness *h, bool connected)
{
    struct pvc_platform_opts o = { .kind = PVC_PLATFORM_SIM, .sim_domid = 0,
                                   .sim_dir = h->dir };
    struct pvc_platform *plat = pvc_platform_open(&o);
    cr_assert(plat);
    struct xs_handle *xs = pvc_store_open(plat);
    cr_assert(xs);
    const char *path = "/local/domain/1/device/pvcalls/0/state";
    cr_assert(xs_watch(xs, path, "t"));
    int64_t deadline = now_ms() + 3 * IO_TIMEOUT_MS;
    for (;;) {
        char **ev;
        while ((ev = xs_check_watch(xs)))
            free(ev);
        unsigned len;
        char *v = xs_read(xs, XBT_NULL, path, &len);
        bool is_connected = v && !strcmp(v, "4");
        free(v);
        if (is_connected == connected)
            break;
        struct pollfd p = { .fd = xs_fileno(xs), .events = POLLIN };
        int64_t left = deadline - now_ms();
        cr_assert(left > 0 && poll(&p, 1, (int)left) == 1,
                  "frontend never became %sconnected", connected ? "" : "dis");
    }
    xs_unwatch(xs, path, "t");
    xs_close(xs);
    pvc_platform_close(plat);
}

Test(frontd, backend_restart_resets_rings_and_recovers)
{
    struct env e;
    env_start(&e, NULL);
    struct hn_server *srv = echo_server();
    struct fsock s;
    connected_socket(e.conn, srv, &s);
    cr_assert_eq(fs_write(&s, "abc", 3), 3);
    char buf[4];
    cr_assert_eq(fs_read_full(&s, buf, 3), 3);

    /* A call pending when the backend goes. */
    int waiter = fdc_open(e.fd.sock);
    struct fsock l;
    listening_socket(waiter, &l, &(struct sockaddr_storage){ 0 });
    struct pvc_fd_req req = sock_req(PVC_FD_ACCEPT, &l);
    cr_assert_eq(send_with_fds(waiter, &req, sizeof(req), &l.tok, 1), 0);

    h_backend_stop(e.h);
    /* The shim's ring reports the reset, woken by its own channel. */
    cr_assert_eq(fs_read(&s, buf, 1), -ECONNRESET);
    cr_assert_eq(pvc_ring_out_error(&s.ring), -ECONNRESET);
    struct pvc_fd_rsp rsp;
    cr_assert_eq(recv_reply(waiter, &rsp, NULL, NULL), 0);
    cr_assert_lt(rsp.ret, 0, "the pending accept failed");
    wait_fe_state(e.h, false);
    fs_close(&s);
    fs_close(&l);
    close(waiter);

    h_backend_start(e.h);
    wait_fe_state(e.h, true);
    echo_once(e.conn, srv);
    struct audit_q rel = { .cmd = "release", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &rel, 1, IO_TIMEOUT_MS), 1);
    hn_server_stop(srv);
    env_stop(&e);
}

/* Fill the out ring until the backend stops taking bytes (its host
 * socket is full): returns the bytes written, all of stream seed. */
static uint64_t fill_until_stuck(struct fsock *s, struct hn_stream *st,
                                 uint64_t *hash)
{
    uint64_t total = 0;
    static unsigned char chunk[16384];
    for (;;) {
        struct iovec iov[2];
        long room = pvc_ring_tx_iov(&s->ring, iov);
        cr_assert_geq(room, 0);
        if (room == 0) {
            /* No progress for 500 ms: the backend's socket is full. */
            struct pollfd p = { .fd = pvc_evtchn_fd(s->ch), .events = POLLIN };
            if (poll(&p, 1, 500) == 0)
                return total;
            pvc_evtchn_ack(s->ch);
            continue;
        }
        size_t n = (size_t)room < sizeof(chunk) ? (size_t)room : sizeof(chunk);
        hn_stream_fill(st, chunk, n);
        *hash = hn_fnv1a(*hash, chunk, n);
        cr_assert_eq(pvc_ring_tx_copy(&s->ring, chunk, n), (long)n);
        pvc_evtchn_notify(s->ch);
        total += n;
    }
}

Test(frontd, last_holder_gone_waits_for_the_out_ring_to_drain)
{
    struct env e;
    env_start(&e, NULL);
    struct hn_server *srv = hn_server_start(&(struct hn_server_cfg){
        .mode = HN_SINK, .gated = true, .rcvbuf = 4096 });
    struct fsock s;
    connected_socket(e.conn, srv, &s);
    struct hn_stream st;
    hn_stream_init(&st, 99);
    uint64_t hash = HN_FNV_INIT;
    uint64_t total = fill_until_stuck(&s, &st, &hash);
    cr_assert(pvc_ring_tx_unconsumed(&s.ring) > 0, "the ring is not empty");

    /* The last holder goes with bytes still in the ring: no RELEASE yet. */
    fs_close(&s);
    struct audit_q rel = { .cmd = "release", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &rel, 1, 300), 0,
                 "released before the out ring drained");
    /* The host reads again: the ring drains, then the socket goes. */
    hn_server_open_gate(srv);
    cr_assert_eq(h_audit_wait(e.h, &rel, 1, IO_TIMEOUT_MS), 1);
    cr_assert(hn_server_wait_done(srv, 1, IO_TIMEOUT_MS));
    struct hn_conn_result res;
    cr_assert(hn_server_result(srv, 0, &res));
    cr_assert_eq(res.bytes_in, total, "%llu of %llu bytes arrived",
                 (unsigned long long)res.bytes_in,
                 (unsigned long long)total);
    cr_assert_eq(res.hash_in, hash);
    hn_server_stop(srv);
    env_stop(&e);
}

Test(frontd, ipv6_through_the_extension)
{
    if (!hn_have_ipv6_loopback())
        h_skip("no ::1 on this host");
    struct env e;
    env_start(&e, NULL);
    struct hn_server *srv = hn_server_start(&(struct hn_server_cfg){
        .mode = HN_ECHO, .family = AF_INET6 });
    struct fsock s;
    cr_assert_eq(fs_socket(e.conn, AF_INET6, &s), 0);
    struct sockaddr_storage a;
    socklen_t len = hn_server_addr(srv, &a);
    /* An IPv4 address on an IPv6 socket is refused locally. */
    struct sockaddr_storage a4;
    socklen_t len4 = hn_loopback(AF_INET, hn_server_port(srv), &a4);
    cr_assert_eq(fs_connect(e.conn, &s, &a4, len4), -EAFNOSUPPORT);
    cr_assert_eq(fs_connect(e.conn, &s, &a, len), 0);
    char buf[4] = { 0 };
    cr_assert_eq(fs_write(&s, "v6!", 3), 3);
    cr_assert_eq(fs_read_full(&s, buf, 3), 3);
    cr_assert_str_eq(buf, "v6!");
    fs_close(&s);
    hn_server_stop(srv);
    env_stop(&e);
}

Test(frontd, v1_backend_gets_local_answers)
{
    struct env e;
    env_start(&e, &(struct h_opts){ .backd_args = { "--ext", "none" } });
    struct pvc_fd_req req = { .op = PVC_FD_HELLO,
                              .version = PVC_FD_PROTO_VERSION };
    struct pvc_fd_rsp rsp;
    cr_assert_eq(fdc_call(e.conn, &req, -1, &rsp, NULL, NULL), 0);
    cr_assert_eq(rsp.ext, 0);
    struct fsock s6;
    cr_assert_eq(fs_socket(e.conn, AF_INET6, &s6), -EAFNOSUPPORT);

    struct hn_server *srv = echo_server();
    struct fsock s;
    connected_socket(e.conn, srv, &s);
    req = sock_req(PVC_FD_SHUTDOWN, &s);
    req.how = SHUT_WR;
    cr_assert_eq(fdc_call(e.conn, &req, s.tok, NULL, NULL, NULL),
                 -EOPNOTSUPP);
    req = sock_req(PVC_FD_GETPEERNAME, &s);
    cr_assert_eq(fdc_call(e.conn, &req, s.tok, NULL, NULL, NULL),
                 -EOPNOTSUPP);
    req = sock_req(PVC_FD_GETSOCKOPT, &s);
    req.level = SOL_SOCKET;
    req.optname = SO_KEEPALIVE;
    req.optlen = 4;
    cr_assert_eq(fdc_call(e.conn, &req, s.tok, NULL, NULL, NULL),
                 -ENOPROTOOPT);
    /* The data path does not care. */
    char buf[3] = { 0 };
    cr_assert_eq(fs_write(&s, "v1", 2), 2);
    cr_assert_eq(fs_read_full(&s, buf, 2), 2);
    cr_assert_str_eq(buf, "v1");
    fs_close(&s);
    hn_server_stop(srv);
    env_stop(&e);
}

Test(frontd, sigterm_with_work_in_flight_exits_cleanly)
{
    struct env e;
    env_start(&e, NULL);
    struct hn_server *srv = hn_server_start(&(struct hn_server_cfg){
        .mode = HN_SINK, .gated = true, .rcvbuf = 4096 });
    /* A socket whose out ring cannot drain, whose holder is gone ... */
    struct fsock s;
    connected_socket(e.conn, srv, &s);
    struct hn_stream st;
    hn_stream_init(&st, 5);
    uint64_t hash = HN_FNV_INIT;
    fill_until_stuck(&s, &st, &hash);
    fs_close(&s);
    /* ... and an accept() waiting for a connection. */
    int waiter = fdc_open(e.fd.sock);
    struct fsock l;
    listening_socket(waiter, &l, &(struct sockaddr_storage){ 0 });
    struct pvc_fd_req req = sock_req(PVC_FD_ACCEPT, &l);
    cr_assert_eq(send_with_fds(waiter, &req, sizeof(req), &l.tok, 1), 0);

    int64_t t0 = now_ms();
    h_frontd_stop(&e.fd); /* asserts exit 0, so no leak report either */
    cr_assert_lt(now_ms() - t0, 10000, "shutdown waited for the drain");
    struct pvc_fd_rsp rsp;
    int rc = recv_reply(waiter, &rsp, NULL, NULL);
    cr_assert(rc != 0 || rsp.ret < 0, "the accept did not succeed");
    /* The listener was released; the stuck socket's RELEASE waits in the
     * backend for its drain (the backend's rule), until the device
     * closes: both host sockets are closed either way. */
    struct audit_q rel = { .cmd = "release", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &rel, 1, IO_TIMEOUT_MS), 1);
    struct audit_q closed = { .event = "close", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &closed, 2, IO_TIMEOUT_MS), 2);
    struct audit_q gone = { .event = "device-disconnect", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &gone, 1, IO_TIMEOUT_MS), 1);
    close(waiter);
    fs_close(&l);
    close(e.conn);
    hn_server_open_gate(srv);
    hn_server_stop(srv);
    h_stop(e.h);
}
