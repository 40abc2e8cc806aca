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
    struct pvc_sock_shared *shared; /* the state page, mapped */
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

/* Forget the ring and state page of an earlier attempt, if any. */
static void fs_drop_ring(struct fsock *s)
{
    if (s->pages)
        munmap(s->pages, (size_t)s->npages * PVC_PAGE_SIZE);
    if (s->shared)
        munmap(s->shared, PVC_PAGE_SIZE);
    if (s->ch)
        pvc_evtchn_close(s->ch);
    if (s->state_fd >= 0)
        close(s->state_fd);
    s->pages = NULL;
    s->shared = NULL;
    s->ch = NULL;
    s->state_fd = -1;
}

/* Map what a CONNECT or ACCEPT reply carried (fds from `first` on). */
static int adopt_ring(struct fsock *s, const struct pvc_fd_rsp *rsp,
                      int *fds, unsigned n, unsigned first)
{
    if (n != first + 2 + rsp->evt_nfds || rsp->evt_nfds > 2)
        return -EPROTO;
    fs_drop_ring(s);
    s->npages = 1 + (1u << rsp->order);
    struct pvc_grant_handoff gh = { .kind = rsp->evt_kind,
                                    .fd = fds[first],
                                    .offset = rsp->ring_offset,
                                    .npages = s->npages };
    s->pages = pvc_grant_adopt(&gh);
    close(fds[first]);
    s->state_fd = fds[first + 1];
    void *st = mmap(NULL, PVC_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                    s->state_fd, 0);
    s->shared = st == MAP_FAILED ? NULL : st;
    struct pvc_evtchn_handoff eh = { .kind = rsp->evt_kind,
                                     .port = rsp->evt_port,
                                     .nfds = (int)rsp->evt_nfds };
    for (unsigned i = 0; i < rsp->evt_nfds; i++)
        eh.fds[i] = fds[first + 2 + i];
    s->ch = pvc_evtchn_adopt(&eh);
    if (!s->pages || !s->ch || !s->shared)
        return -EPROTO;
    pvc_data_ring_attach(&s->ring, s->pages, s->pages + PVC_PAGE_SIZE,
                         rsp->order, PVC_SIDE_FRONT);
    return 0;
}

/* CONNECT as the daemon answers it: at once, -EINPROGRESS with the ring
 * (mapped here), or an error and no fds. */
static int32_t fs_connect_start(int conn, struct fsock *s,
                                const struct sockaddr_storage *a,
                                socklen_t len)
{
    struct pvc_fd_req req = sock_req(PVC_FD_CONNECT, s);
    memcpy(req.addr, a, len);
    req.addrlen = len;
    struct pvc_fd_rsp rsp;
    int fds[MAX_FDS];
    unsigned n = MAX_FDS;
    int32_t ret = fdc_call(conn, &req, s->tok, &rsp, fds, &n);
    if (ret != -EINPROGRESS) {
        for (unsigned i = 0; i < n; i++)
            close(fds[i]);
        return ret == 0 ? -EPROTO : ret;
    }
    int err = adopt_ring(s, &rsp, fds, n, 0);
    return err ? err : -EINPROGRESS;
}

/* The connect's outcome from the state page; -EINPROGRESS until done. */
static int32_t fs_connect_result(const struct fsock *s)
{
    if (!__atomic_load_n(&s->shared->connect_done, __ATOMIC_ACQUIRE))
        return -EINPROGRESS;
    return __atomic_load_n(&s->shared->connect_ret, __ATOMIC_RELAXED);
}

/* Empty the token of the daemon's news bytes (as the shim does). */
static void fs_drain_token(const struct fsock *s)
{
    char buf[64];
    while (recv(s->tok, buf, sizeof(buf), MSG_DONTWAIT) > 0)
        ;
}

/* Wait up to timeout_ms for the token to become readable. */
static bool fs_token_readable(const struct fsock *s, int timeout_ms)
{
    struct pollfd p = { .fd = s->tok, .events = POLLIN };
    return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

static int64_t now_ms(void);

/* A blocking connect(2) as the shim does it: start, then wait for the
 * token and read the outcome from the state page. */
static int32_t fs_connect(int conn, struct fsock *s,
                          const struct sockaddr_storage *a, socklen_t len)
{
    int32_t ret = fs_connect_start(conn, s, a, len);
    int64_t deadline = now_ms() + 3 * IO_TIMEOUT_MS;
    while (ret == -EINPROGRESS) {
        fs_drain_token(s);
        ret = fs_connect_result(s);
        if (ret != -EINPROGRESS)
            break;
        int64_t left = deadline - now_ms();
        if (left <= 0 || !fs_token_readable(s, (int)left))
            return -ETIMEDOUT;
    }
    return ret;
}

/* One ACCEPT request on listener l, the token drained first as the shim
 * does: 0 with the new socket in *s (and the reply in *rsp if not NULL),
 * or the daemon's error (-EAGAIN: nothing parked). */
static int32_t fs_accept_once(int conn, struct fsock *l, struct fsock *s,
                              struct pvc_fd_rsp *rsp)
{
    struct pvc_fd_rsp local;
    if (!rsp)
        rsp = &local;
    fs_drain_token(l);
    struct pvc_fd_req req = sock_req(PVC_FD_ACCEPT, l);
    int fds[MAX_FDS];
    unsigned n = MAX_FDS;
    int32_t ret = fdc_call(conn, &req, l->tok, rsp, fds, &n);
    if (ret != 0) {
        for (unsigned i = 0; i < n; i++)
            close(fds[i]);
        return ret;
    }
    memset(s, 0, sizeof(*s));
    s->state_fd = -1;
    s->tok = n > 0 ? fds[0] : -1;
    s->ino = rsp->ino;
    return n > 0 ? adopt_ring(s, rsp, fds, n, 1) : -EPROTO;
}

/* A blocking accept(2) as the shim does it: ask, and while nothing is
 * parked, wait for the listener's token. */
static int32_t fs_accept(int conn, struct fsock *l, struct fsock *s,
                         struct pvc_fd_rsp *rsp)
{
    int64_t deadline = now_ms() + 3 * IO_TIMEOUT_MS;
    for (;;) {
        int32_t ret = fs_accept_once(conn, l, s, rsp);
        if (ret != -EAGAIN)
            return ret;
        int64_t left = deadline - now_ms();
        if (left <= 0 || !fs_token_readable(l, (int)left))
            return -ETIMEDOUT;
    }
}

static void fs_close(struct fsock *s)
{
    fs_drop_ring(s);
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

/* A loopback listener that never accepts, with its queue already full
 * (backlog 0 holds one connection, the filler): the kernel drops further
 * SYNs, so a connect() to it stays in SYN_SENT until the queue has room
 * and the SYN is sent again (1 s later, then 3 s ...). */
struct full_listener {
    int listen_fd, filler_fd;
    struct sockaddr_storage addr;
    socklen_t len;
};

static void full_listener_open(struct full_listener *fl)
{
    fl->len = hn_loopback(AF_INET, 0, &fl->addr);
    fl->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fl->listen_fd >= 0);
    cr_assert_eq(bind(fl->listen_fd, (struct sockaddr *)&fl->addr, fl->len),
                 0);
    cr_assert_eq(listen(fl->listen_fd, 0), 0);
    cr_assert_eq(getsockname(fl->listen_fd, (struct sockaddr *)&fl->addr,
                             &fl->len), 0);
    fl->filler_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(connect(fl->filler_fd, (struct sockaddr *)&fl->addr,
                         fl->len), 0, "filling the queue: %m");
}

static void full_listener_close(struct full_listener *fl)
{
    close(fl->filler_fd);
    close(fl->listen_fd);
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

    /* Nobody has connected: no news on the token, and ACCEPT says so
     * at once instead of waiting. */
    struct fsock s;
    cr_assert_not(fs_token_readable(&l, 0));
    cr_assert_eq(fs_accept_once(e.conn, &l, &s, NULL), -EAGAIN);
    cr_assert_not(fs_token_readable(&l, 0));

    enum { LEN = 20000 };
    struct hn_client *cl = hn_client_start(&bound, rsp.addrlen, LEN, 7);
    /* The connection is parked: the listener's token becomes readable. */
    cr_assert(fs_token_readable(&l, IO_TIMEOUT_MS),
              "the listener's token never became readable");
    cr_assert_eq(fs_accept_once(e.conn, &l, &s, &rsp), 0);
    cr_assert_eq(rsp.addrlen, sizeof(struct sockaddr_in), "accept-addr");
    struct sockaddr_in peer;
    memcpy(&peer, rsp.addr, sizeof(peer));
    cr_assert_eq(peer.sin_family, AF_INET);
    cr_assert_eq(peer.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    /* Nothing else is parked: no news left behind. */
    cr_assert_not(fs_token_readable(&l, 0));

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
static socklen_t listening_socket_bl(int conn, struct fsock *l,
                                     struct sockaddr_storage *a,
                                     int32_t backlog)
{
    cr_assert_eq(fs_socket(conn, AF_INET, l), 0);
    socklen_t len = hn_loopback(AF_INET, 0, a);
    struct pvc_fd_req req = sock_req(PVC_FD_BIND, l);
    memcpy(req.addr, a, len);
    req.addrlen = len;
    cr_assert_eq(fdc_call(conn, &req, l->tok, NULL, NULL, NULL), 0);
    req = sock_req(PVC_FD_LISTEN, l);
    req.backlog = backlog;
    cr_assert_eq(fdc_call(conn, &req, l->tok, NULL, NULL, NULL), 0);
    req = sock_req(PVC_FD_GETSOCKNAME, l);
    struct pvc_fd_rsp rsp;
    cr_assert_eq(fdc_call(conn, &req, l->tok, &rsp, NULL, NULL), 0);
    memset(a, 0, sizeof(*a));
    memcpy(a, rsp.addr, rsp.addrlen);
    return rsp.addrlen;
}

static socklen_t listening_socket(int conn, struct fsock *l,
                                  struct sockaddr_storage *a)
{
    return listening_socket_bl(conn, l, a, 4);
}

/* A round trip through the command ring on socket s: the daemon has then
 * taken every answer the backend gave before (they precede this one on
 * the ring), e.g. parked the connections the audit log shows. */
static void daemon_sync(int conn, struct fsock *s)
{
    struct pvc_fd_req req = sock_req(PVC_FD_GETSOCKNAME, s);
    cr_assert_eq(fdc_call(conn, &req, s->tok, NULL, NULL, NULL), 0);
}

/* The backend's ACCEPT answers so far (audit log) whose ret is want. */
static size_t accepts_with_ret(struct harness *h, long long want)
{
    struct audit a;
    h_audit(h, &a);
    struct audit_q q = { .cmd = "accept", .dom = 1 };
    size_t n = 0, pos = 0;
    const char *line;
    long long ret;
    while ((line = audit_next(&a, &q, &pos)))
        if (json_int(line, "ret", &ret) && ret == want)
            n++;
    audit_free(&a);
    return n;
}

static int native_connect(const struct sockaddr_storage *a, socklen_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(connect(fd, (const struct sockaddr *)a, len), 0, "%m");
    return fd;
}

Test(frontd, more_listeners_than_accept_slots)
{
    struct env e;
    env_start(&e, NULL);
    /* Each listener keeps a backend ACCEPT out; the command ring holds 32
     * and ACCEPTs get at most FRONTD_ACCEPT_SLOTS (24) of them. */
    enum { N = 40 };
    int conns[N], natives[N];
    struct fsock l[N];
    struct sockaddr_storage a[N];
    socklen_t alen[N];
    for (int i = 0; i < N; i++) {
        conns[i] = fdc_open(e.fd.sock);
        cr_assert_geq(conns[i], 0);
        alen[i] = listening_socket(conns[i], &l[i], &a[i]);
    }
    /* Meanwhile the daemon still serves other calls. */
    struct fsock other;
    cr_assert_eq(fs_socket(e.conn, AF_INET, &other), 0);
    fs_close(&other);
    for (int i = 0; i < N; i++)
        natives[i] = native_connect(&a[i], alen[i]);
    for (int i = 0; i < N; i++) {
        struct fsock s;
        int32_t ret = fs_accept(conns[i], &l[i], &s, NULL);
        cr_assert_eq(ret, 0, "accept %d: %d", i, ret);
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
    struct audit_q rel = { .cmd = "release", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &rel, 2 * N + 1, IO_TIMEOUT_MS),
                 2 * N + 1);
    /* (The ACCEPT each listener had out again was answered -EBADF before
     * its RELEASE, or never sent.) */
    cr_assert_eq(accepts_with_ret(e.h, 0), N);
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
    /* Version 2 only: a version 1 shim would wait for CONNECT's end. */
    hello.version = 1;
    cr_assert_eq(raw_call(bad, &hello, sizeof(hello), NULL, 0),
                 -EPROTONOSUPPORT);
    close(p[0]);
    close(p[1]);
    echo_once(e.conn, srv);

    /* Connections wait for the listener, not for the client that made
     * it: that client vanishes, and whoever holds the token takes them. */
    struct fsock l;
    struct sockaddr_storage a;
    socklen_t alen = listening_socket(bad, &l, &a);
    close(bad);
    int native = native_connect(&a, alen);
    struct fsock s;
    cr_assert_eq(fs_accept(e.conn, &l, &s, NULL), 0);
    char c = 'n';
    cr_assert_eq(write(native, &c, 1), 1);
    cr_assert_eq(fs_read(&s, &c, 1), 1);
    cr_assert_eq(c, 'n');
    fs_close(&s);
    char eof;
    cr_assert_eq(read(native, &eof, 1), 0, "the accepted socket was closed");
    close(native);
    fs_close(&l);
    /* Two echo sockets, the accepted one, the listener. */
    struct audit_q rel = { .cmd = "release", .dom = 1 };
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

    /* A listener, and a connect still going on, when the backend goes. */
    struct fsock l;
    listening_socket(e.conn, &l, &(struct sockaddr_storage){ 0 });
    struct full_listener fl;
    full_listener_open(&fl);
    struct fsock hung;
    cr_assert_eq(fs_socket(e.conn, AF_INET, &hung), 0);
    cr_assert_eq(fs_connect_start(e.conn, &hung, &fl.addr, fl.len),
                 -EINPROGRESS);

    h_backend_stop(e.h);
    /* The shim's ring reports the reset, woken by its own channel. */
    cr_assert_eq(fs_read(&s, buf, 1), -ECONNRESET);
    cr_assert_eq(pvc_ring_out_error(&s.ring), -ECONNRESET);
    /* The connect ends in the state page, and its token says so. */
    cr_assert(fs_token_readable(&hung, IO_TIMEOUT_MS));
    cr_assert_eq(fs_connect_result(&hung), -ECONNRESET);
    /* A waiting accept() is woken, asks, and hears of the reset. */
    cr_assert(fs_token_readable(&l, IO_TIMEOUT_MS));
    struct fsock none;
    cr_assert_eq(fs_accept_once(e.conn, &l, &none, NULL), -ECONNRESET);
    wait_fe_state(e.h, false);
    fs_close(&s);
    fs_close(&l);
    fs_close(&hung);
    full_listener_close(&fl);

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
        /* The "waiting" extension (frontd negotiates it): a full ring
         * raises our flag, or the backend would not notify on draining
         * (harmless without the extension: v1 backends ignore it). */
        long room = pvc_ring_tx_iov_waiting(&s->ring, iov);
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
    /* ... a listener with a connection parked and its next ACCEPT out ... */
    struct fsock l;
    struct sockaddr_storage la;
    socklen_t lalen = listening_socket(e.conn, &l, &la);
    int native = native_connect(&la, lalen);
    struct audit_q acc = { .cmd = "accept", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &acc, 1, IO_TIMEOUT_MS), 1);
    /* ... and a connect that hangs. */
    struct full_listener fl;
    full_listener_open(&fl);
    struct fsock hung;
    cr_assert_eq(fs_socket(e.conn, AF_INET, &hung), 0);
    cr_assert_eq(fs_connect_start(e.conn, &hung, &fl.addr, fl.len),
                 -EINPROGRESS);

    int64_t t0 = now_ms();
    h_frontd_stop(&e.fd); /* asserts exit 0, so no leak report either */
    cr_assert_lt(now_ms() - t0, 10000, "shutdown waited for the drain");
    /* The connect was ended, in the state page. */
    int32_t ret = fs_connect_result(&hung);
    cr_assert(ret < 0 && ret != -EINPROGRESS, "connect_ret %d", ret);
    /* The listener and its parked connection were released; the stuck
     * socket's RELEASE waits in the backend for its drain (the backend's
     * rule), until the device closes: the host sockets are closed either
     * way. */
    struct audit_q rel = { .cmd = "release", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &rel, 2, IO_TIMEOUT_MS), 2);
    struct audit_q closed = { .event = "close", .dom = 1 };
    cr_assert_geq(h_audit_wait(e.h, &closed, 3, IO_TIMEOUT_MS), 3);
    struct audit_q gone = { .event = "device-disconnect", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &gone, 1, IO_TIMEOUT_MS), 1);
    char c;
    cr_assert_eq(read(native, &c, 1), 0, "the parked connection was closed");
    close(native);
    fs_close(&l);
    fs_close(&hung);
    full_listener_close(&fl);
    close(e.conn);
    hn_server_open_gate(srv);
    hn_server_stop(srv);
    h_stop(e.h);
}

/* ---- protocol v2: CONNECT and ACCEPT never block ----------------------- */

Test(frontd, connect_answers_at_once_and_finishes_in_the_state_page)
{
    struct env e;
    env_start(&e, NULL);
    struct full_listener fl;
    full_listener_open(&fl);
    struct fsock s;
    cr_assert_eq(fs_socket(e.conn, AF_INET, &s), 0);

    /* The backend's connect hangs; the daemon answers anyway, with the
     * ring (fs_connect_start checks the fds: pages, state, channel). */
    int64_t t0 = now_ms();
    cr_assert_eq(fs_connect_start(e.conn, &s, &fl.addr, fl.len),
                 -EINPROGRESS);
    cr_assert_lt(now_ms() - t0, 1000, "CONNECT waited for the backend");
    cr_assert_eq(fs_connect_result(&s), -EINPROGRESS);
    cr_assert_not(fs_token_readable(&s, 0), "news before the answer");

    /* A second CONNECT while the first goes on: nothing handed out. */
    struct pvc_fd_req req = sock_req(PVC_FD_CONNECT, &s);
    memcpy(req.addr, &fl.addr, fl.len);
    req.addrlen = fl.len;
    int fds[MAX_FDS];
    unsigned n = MAX_FDS;
    cr_assert_eq(fdc_call(e.conn, &req, s.tok, NULL, fds, &n), -EALREADY);
    cr_assert_eq(n, 0);

    /* Room in the host's queue: the SYN sent again gets in (~1 s). */
    int filler = accept(fl.listen_fd, NULL, NULL);
    cr_assert_geq(filler, 0);
    cr_assert(fs_token_readable(&s, 3 * IO_TIMEOUT_MS),
              "the token never became readable");
    cr_assert_eq(fs_connect_result(&s), 0);
    /* One byte of news, and only one. */
    char news[16];
    cr_assert_eq(recv(s.tok, news, sizeof(news), MSG_DONTWAIT), 1);
    cr_assert_not(fs_token_readable(&s, 0));

    /* The ring is live: bytes both ways with the host's end. */
    int peer = accept(fl.listen_fd, NULL, NULL);
    cr_assert_geq(peer, 0);
    char buf[8] = { 0 };
    cr_assert_eq(fs_write(&s, "ping", 4), 4);
    cr_assert_eq(read(peer, buf, 4), 4);
    cr_assert_str_eq(buf, "ping");
    cr_assert_eq(write(peer, "pong", 4), 4);
    cr_assert_eq(fs_read_full(&s, buf, 4), 4);
    cr_assert_str_eq(buf, "pong");
    /* Connected now. */
    n = MAX_FDS;
    cr_assert_eq(fdc_call(e.conn, &req, s.tok, NULL, fds, &n), -EISCONN);

    fs_close(&s);
    cr_assert_eq(read(peer, buf, 1), 0, "EOF after the release");
    close(peer);
    close(filler);
    full_listener_close(&fl);
    env_stop(&e);
}

Test(frontd, refused_connect_reports_in_the_state_page_and_may_retry)
{
    struct env e;
    env_start(&e, NULL);
    struct fsock s;
    cr_assert_eq(fs_socket(e.conn, AF_INET, &s), 0);
    struct sockaddr_storage a;
    socklen_t len = hn_loopback(AF_INET, hn_closed_port(AF_INET), &a);
    cr_assert_eq(fs_connect_start(e.conn, &s, &a, len), -EINPROGRESS);
    cr_assert(fs_token_readable(&s, IO_TIMEOUT_MS));
    cr_assert_eq(fs_connect_result(&s), -ECONNREFUSED);
    char news[16];
    cr_assert_eq(recv(s.tok, news, sizeof(news), MSG_DONTWAIT), 1);

    /* Linux allows connect() again after a failed attempt: a new ring,
     * a new state page. */
    struct hn_server *srv = echo_server();
    len = hn_server_addr(srv, &a);
    cr_assert_eq(fs_connect(e.conn, &s, &a, len), 0);
    char buf[4] = { 0 };
    cr_assert_eq(fs_write(&s, "two", 3), 3);
    cr_assert_eq(fs_read_full(&s, buf, 3), 3);
    cr_assert_str_eq(buf, "two");
    fs_close(&s);
    struct audit_q rel = { .cmd = "release", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &rel, 1, IO_TIMEOUT_MS), 1);
    struct audit_q conn = { .cmd = "connect", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &conn, 2, IO_TIMEOUT_MS), 2);
    hn_server_stop(srv);
    env_stop(&e);
}

Test(frontd, a_listener_parks_at_most_the_limit_ahead_of_the_program)
{
    struct env e;
    env_start(&e, NULL);
    enum { N = 70 };
    cr_assert_lt(PVC_FD_ACCEPT_PARK, N);
    struct fsock l;
    struct sockaddr_storage a;
    socklen_t alen = listening_socket_bl(e.conn, &l, &a, 128);
    int natives[N];
    for (int i = 0; i < N; i++) {
        natives[i] = native_connect(&a, alen);
        unsigned char c = (unsigned char)i;
        cr_assert_eq(write(natives[i], &c, 1), 1);
    }
    /* Nobody accepts: the daemon takes PVC_FD_ACCEPT_PARK from the backend
     * and leaves the rest in the backend's backlog. */
    struct audit_q acc = { .cmd = "accept", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &acc, PVC_FD_ACCEPT_PARK, IO_TIMEOUT_MS),
                 PVC_FD_ACCEPT_PARK);
    cr_assert_eq(h_audit_wait(e.h, &acc, PVC_FD_ACCEPT_PARK + 1, 300),
                 PVC_FD_ACCEPT_PARK, "the daemon parked more than the limit");
    cr_assert(fs_token_readable(&l, 0));

    /* Then all of them, in turn; each is one of the native connections,
     * with a ring that works both ways. */
    bool seen[N] = { false };
    for (int i = 0; i < N; i++) {
        struct fsock s;
        int32_t ret = fs_accept(e.conn, &l, &s, NULL);
        cr_assert_eq(ret, 0, "accept %d: %d", i, ret);
        unsigned char c;
        cr_assert_eq(fs_read(&s, &c, 1), 1);
        cr_assert(c < N && !seen[c], "connection %u twice", c);
        seen[c] = true;
        cr_assert_eq(fs_write(&s, &c, 1), 1);
        fs_close(&s);
    }
    for (int i = 0; i < N; i++) {
        unsigned char c;
        cr_assert_eq(read(natives[i], &c, 1), 1);
        cr_assert_eq(c, (unsigned char)i);
        close(natives[i]);
    }
    cr_assert_eq(fs_accept_once(e.conn, &l, &(struct fsock){ 0 }, NULL),
                 -EAGAIN);
    cr_assert_eq(accepts_with_ret(e.h, 0), N);
    fs_close(&l);
    struct audit_q rel = { .cmd = "release", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &rel, N + 1, IO_TIMEOUT_MS), N + 1);
    env_stop(&e);
}

Test(frontd, closing_a_listener_releases_what_it_parked)
{
    struct env e;
    env_start(&e, NULL);
    enum { K = 3 };
    struct fsock l;
    struct sockaddr_storage a;
    socklen_t alen = listening_socket(e.conn, &l, &a);
    int natives[K];
    for (int i = 0; i < K; i++)
        natives[i] = native_connect(&a, alen);
    struct audit_q acc = { .cmd = "accept", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &acc, K, IO_TIMEOUT_MS), K);
    daemon_sync(e.conn, &l);
    cr_assert(fs_token_readable(&l, 0));

    /* The last holder goes with K connections parked and an ACCEPT out. */
    fs_close(&l);
    struct audit_q rel = { .cmd = "release", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &rel, K + 1, IO_TIMEOUT_MS), K + 1);
    for (int i = 0; i < K; i++) {
        char c;
        cr_assert_eq(read(natives[i], &c, 1), 0, "parked %d not closed", i);
        close(natives[i]);
    }
    /* The ACCEPT that was out ended before the listener's RELEASE, and
     * its ring was not parked. */
    cr_assert_eq(accepts_with_ret(e.h, -EBADF), 1);
    cr_assert_eq(accepts_with_ret(e.h, 0), K);
    env_stop(&e); /* exit 0 under ASan: nothing leaked */
}

Test(frontd, junk_in_tokens_does_not_wake_the_daemon)
{
    struct env e;
    env_start(&e, NULL);
    struct hn_server *srv = echo_server();
    struct fsock l, c, idle;
    struct sockaddr_storage a;
    socklen_t alen = listening_socket(e.conn, &l, &a);
    connected_socket(e.conn, srv, &c);
    cr_assert_eq(fs_socket(e.conn, AF_INET, &idle), 0);

    /* Bytes, fds and urgent data into every kind of token: refused by
     * the kernel, never queued at the daemon. */
    const struct fsock *all[] = { &l, &c, &idle };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        char junk[4096];
        memset(junk, 'j', sizeof(junk));
        errno = 0;
        cr_assert_eq(send(all[i]->tok, junk, sizeof(junk),
                          MSG_NOSIGNAL | MSG_DONTWAIT), -1);
        cr_assert_eq(errno, EPIPE);
        cr_assert_eq(send_with_fds(all[i]->tok, "f", 1, &e.conn, 1), -1);
        cr_assert_eq(send(all[i]->tok, "u", 1,
                          MSG_OOB | MSG_NOSIGNAL | MSG_DONTWAIT), -1);
        cr_assert_eq(shutdown(all[i]->tok, SHUT_WR), 0);
    }
    /* The daemon stays asleep. */
    long cpu0 = h_frontd_cpu_ms(&e.fd);
    cr_assert_eq(poll(NULL, 0, 1000), 0); /* the window we measure */
    long used = h_frontd_cpu_ms(&e.fd) - cpu0;
    cr_assert_leq(used, 50, "the daemon used %ld ms of CPU in 1 s", used);

    /* And every socket still works. */
    int native = native_connect(&a, alen);
    struct fsock s;
    cr_assert_eq(fs_accept(e.conn, &l, &s, NULL), 0);
    char buf[4] = { 0 };
    cr_assert_eq(write(native, "acc", 3), 3);
    cr_assert_eq(fs_read_full(&s, buf, 3), 3);
    cr_assert_str_eq(buf, "acc");
    cr_assert_eq(fs_write(&c, "ech", 3), 3);
    cr_assert_eq(fs_read_full(&c, buf, 3), 3);
    cr_assert_str_eq(buf, "ech");
    close(native);
    fs_close(&s);
    fs_close(&c);
    fs_close(&idle);
    fs_close(&l);
    struct audit_q rel = { .cmd = "release", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &rel, 4, IO_TIMEOUT_MS), 4);
    hn_server_stop(srv);
    env_stop(&e);
}

Test(frontd, a_failing_backend_accept_is_reported_once_per_request)
{
    /* Room for two sockets at the backend: the listener and one more. */
    struct env e;
    env_start(&e, &(struct h_opts){ .backd_args = { "--max-sockets", "2" } });
    struct fsock l, none;
    struct sockaddr_storage a;
    socklen_t alen = listening_socket(e.conn, &l, &a);
    int n1 = native_connect(&a, alen);
    /* The first connection is parked; the next ACCEPT fails (-EMFILE)
     * and is parked as an error... */
    struct audit_q acc = { .cmd = "accept", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &acc, 2, IO_TIMEOUT_MS), 2);
    cr_assert_eq(accepts_with_ret(e.h, -EMFILE), 1);
    /* ... and nothing is sent again before a client has heard of it. */
    cr_assert_eq(h_audit_wait(e.h, &acc, 3, 300), 2, "ACCEPT re-sent");

    /* In order: the connection, then the error, once. */
    struct fsock s1;
    daemon_sync(e.conn, &l);
    cr_assert_eq(fs_accept_once(e.conn, &l, &s1, NULL), 0);
    cr_assert(fs_token_readable(&l, 0), "the parked error is news");
    cr_assert_eq(fs_accept_once(e.conn, &l, &none, NULL), -EMFILE);
    /* Reported: the ACCEPT goes out again, fails again, waits again. */
    cr_assert_eq(h_audit_wait(e.h, &acc, 3, IO_TIMEOUT_MS), 3);
    cr_assert_eq(h_audit_wait(e.h, &acc, 4, 300), 3, "ACCEPT re-sent");
    cr_assert(fs_token_readable(&l, IO_TIMEOUT_MS));

    /* Room again at the backend: the pending error is told, the ACCEPT
     * sent after it succeeds. */
    fs_close(&s1);
    struct audit_q rel = { .cmd = "release", .dom = 1 };
    cr_assert_eq(h_audit_wait(e.h, &rel, 1, IO_TIMEOUT_MS), 1);
    cr_assert_eq(fs_accept_once(e.conn, &l, &none, NULL), -EMFILE);
    int n2 = native_connect(&a, alen);
    struct fsock s2;
    cr_assert_eq(fs_accept(e.conn, &l, &s2, NULL), 0);
    char c = '2';
    cr_assert_eq(write(n2, &c, 1), 1);
    cr_assert_eq(fs_read(&s2, &c, 1), 1);
    cr_assert_eq(c, '2');
    /* With s2 the backend is full again: the ACCEPT after it fails. */
    cr_assert_eq(h_audit_wait(e.h, &acc, 5, IO_TIMEOUT_MS), 5);
    cr_assert_eq(accepts_with_ret(e.h, 0), 2);
    cr_assert_eq(accepts_with_ret(e.h, -EMFILE), 3);
    fs_close(&s2);
    fs_close(&l);
    close(n1);
    close(n2);
    cr_assert_eq(h_audit_wait(e.h, &rel, 3, IO_TIMEOUT_MS), 3);
    env_stop(&e);
}
