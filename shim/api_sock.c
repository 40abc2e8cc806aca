/*
 * Interposed socket lifecycle calls: socket, connect, bind, listen,
 * accept/accept4, shutdown.  Sockets we do not carry, and fds that are
 * not ours, go to libc untouched.
 *
 * Neither connect nor accept blocks inside the daemon: connect's state
 * machine is conn.c's; accept asks the daemon for a connection it has
 * already accepted from the backend and, if none is there, waits for the
 * listener's token to become readable (frontd_proto.h, "Token
 * readiness").
 */
#include "shim.h"

#include "pvc/ext.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* struct sockaddr_in6 without sin6_scope_id, the smallest Linux takes. */
#define SIN6_LEN_RFC2133 24

static bool carried(int domain, int type, int protocol)
{
    int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    return (domain == AF_INET || domain == AF_INET6) &&
           base == SOCK_STREAM && (protocol == 0 || protocol == IPPROTO_TCP);
}

static int fail(int err)
{
    errno = err;
    return -1;
}

/* The daemon cannot be reached: PVC_FALLBACK=native gives the program
 * libc's socket, otherwise the call fails (a program run under the shim
 * expects its traffic to cross PV Calls, never to leak onto the host's
 * network silently). */
static int unreachable(int domain, int type, int protocol, int err)
{
    static atomic_int logged;
    bool native = shim_env_fallback_native();
    if (!atomic_exchange(&logged, 1)) {
        char line[400];
        snprintf(line, sizeof(line),
                 "libpvcalls: cannot reach pvcalls-frontd at %s (%s): %s\n",
                 shim_env_frontd_sock(), strerror(-err),
                 native ? "PVC_FALLBACK=native, using the host's sockets"
                        : "TCP sockets fail with EACCES "
                          "(PVC_FALLBACK=native to use the host's)");
        ssize_t w = REAL(write)(2, line, strlen(line));
        (void)w;
    }
    if (native)
        return REAL(socket)(domain, type, protocol);
    return fail(EACCES);
}

/* Give the token the caller's SOCK_CLOEXEC / SOCK_NONBLOCK (it arrives
 * CLOEXEC from MSG_CMSG_CLOEXEC). */
static int apply_flags(int fd, int flags)
{
    if (!(flags & SOCK_CLOEXEC) && REAL(fcntl)(fd, F_SETFD, 0) < 0)
        return -1;
    if (flags & SOCK_NONBLOCK) {
        int fl = REAL(fcntl)(fd, F_GETFL);
        if (fl < 0 || REAL(fcntl)(fd, F_SETFL, fl | O_NONBLOCK) < 0)
            return -1;
    }
    return 0;
}

static void close_all(int *fds, int nfds)
{
    for (int i = 0; i < nfds; i++)
        if (fds[i] >= 0)
            REAL(close)(fds[i]);
}

/* Enter a managed token into the table; consumes our reference on s. */
static int publish(int token, struct shim_sock *s, int flags)
{
    if (apply_flags(token, flags) < 0 || fdt_set(token, &s->head) < 0) {
        int err = errno;
        REAL(close)(token);
        shim_sock_put(s);
        return fail(err);
    }
    shim_sock_put(s);
    return token;
}

int socket(int domain, int type, int protocol)
{
    if (shim_in_shim)
        return REAL(socket)(domain, type, protocol);
    if (!carried(domain, type, protocol)) {
        int fd = REAL(socket)(domain, type, protocol);
        if (shim_log_enabled())
            shim_log("socket(%d, %#x, %d) = %d: passed to libc (only TCP "
                     "over IPv4/IPv6 is carried)", domain, (unsigned)type,
                     protocol, fd);
        return fd;
    }
    int err = shim_family_check(domain);
    if (err == -EMFILE || err == -ENFILE)
        return fail(-err); /* no fd even for the daemon connection */
    if (err == -EAFNOSUPPORT) {
        shim_log("socket(AF_INET6): passed nowhere: the backend has no "
                 "ipv6 extension");
        return fail(EAFNOSUPPORT);
    }
    if (err)
        return unreachable(domain, type, protocol, err);
    struct pvc_fd_req req = { .op = PVC_FD_SOCKET, .domain = domain,
                              .type = SOCK_STREAM, .protocol = protocol };
    struct pvc_fd_rsp rsp;
    int fds[SHIM_MAX_RX_FDS], nfds;
    err = shim_daemon_call(&req, -1, &rsp, fds, &nfds);
    if (err == -EMFILE || err == -ENFILE)
        return fail(-err); /* no fd for the token: the daemon releases
                            * the socket when it sees its copy alone */
    if (err)
        return unreachable(domain, type, protocol, err);
    if (rsp.ret < 0) {
        close_all(fds, nfds);
        return fail(-rsp.ret);
    }
    struct stat st;
    if (nfds < 1 || fstat(fds[0], &st) < 0 || st.st_ino != rsp.ino) {
        close_all(fds, nfds);
        return fail(EPROTO);
    }
    close_all(fds + 1, nfds - 1);
    if (shim_fd_beyond_limit(fds[0])) {
        /* Received above the program's own limit (shim_fd_room_begin):
         * natively there was no fd for it.  Closing it releases it. */
        REAL(close)(fds[0]);
        return fail(EMFILE);
    }
    struct shim_sock *s = shim_sock_new(rsp.ino, domain);
    if (!s) {
        REAL(close)(fds[0]);
        return fail(ENOMEM);
    }
    int fd = publish(fds[0], s, type);
    shim_log("socket(%s, SOCK_STREAM) = %d: carried over PV Calls (ino %llu)",
             domain == AF_INET ? "AF_INET" : "AF_INET6", fd,
             (unsigned long long)rsp.ino);
    return fd;
}

/* Copy and check a socket address as Linux's inet/inet6 connect and bind
 * do.  Returns 0 or -errno. */
static int take_addr(const struct shim_sock *s, const struct sockaddr *uaddr,
                     socklen_t len, struct pvc_fd_req *req)
{
    struct sockaddr_storage ss;
    if ((int)len < 0 || len > sizeof(ss))
        return -EINVAL;
    if (len && shim_copy_from_user(&ss, uaddr, len) != (ssize_t)len)
        return -EFAULT;
    if (s->domain == AF_INET) {
        if (len < sizeof(struct sockaddr_in))
            return -EINVAL;
        if (ss.ss_family != AF_INET)
            return -EAFNOSUPPORT;
        len = sizeof(struct sockaddr_in);
    } else {
        if (len < SIN6_LEN_RFC2133)
            return -EINVAL;
        if (ss.ss_family != AF_INET6)
            return -EAFNOSUPPORT;
        if (len > sizeof(struct sockaddr_in6))
            len = sizeof(struct sockaddr_in6);
    }
    memcpy(req->addr, &ss, len);
    req->addrlen = len;
    return 0;
}

static int do_connect(struct shim_sock *s, int fd,
                      const struct sockaddr *addr, socklen_t len)
{
    struct pvc_fd_req req = { .op = PVC_FD_CONNECT, .ino = s->ino };
    int err = take_addr(s, addr, len, &req);
    if (!err)
        err = shim_connect(s, fd, &req);
    shim_log("connect(%d) = %s", fd, err ? strerror(-err) : "0");
    return err;
}

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    struct shim_sock *s = shim_in_shim ? NULL : shim_sock_get(fd);
    if (!s)
        return REAL(connect)(fd, addr, len);
    int err = do_connect(s, fd, addr, len);
    shim_sock_put(s);
    return err ? fail(-err) : 0;
}

/* A request on a socket that answers only ret. */
static int simple_call(struct shim_sock *s, int fd, struct pvc_fd_req *req)
{
    struct pvc_fd_rsp rsp;
    int fds[SHIM_MAX_RX_FDS], nfds;
    req->ino = s->ino;
    int err = shim_daemon_call(req, fd, &rsp, fds, &nfds);
    close_all(fds, nfds);
    return err ? err : rsp.ret;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    struct shim_sock *s = shim_in_shim ? NULL : shim_sock_get(fd);
    if (!s)
        return REAL(bind)(fd, addr, len);
    struct pvc_fd_req req = { .op = PVC_FD_BIND };
    int err = take_addr(s, addr, len, &req);
    if (!err && atomic_load(&s->state) != SHIM_CREATED)
        err = -EINVAL;
    if (!err)
        err = simple_call(s, fd, &req);
    if (!err) {
        int expect = SHIM_CREATED;
        atomic_compare_exchange_strong(&s->state, &expect, SHIM_BOUND);
    }
    shim_log("bind(%d) = %s", fd, err ? strerror(-err) : "0");
    shim_sock_put(s);
    return err ? fail(-err) : 0;
}

int listen(int fd, int backlog)
{
    struct shim_sock *s = shim_in_shim ? NULL : shim_sock_get(fd);
    if (!s)
        return REAL(listen)(fd, backlog);
    int st = atomic_load(&s->state), err = 0;
    if (st == SHIM_CONNECTED || st == SHIM_CONNECTING)
        err = -EINVAL;
    if (!err) {
        struct pvc_fd_req req = { .op = PVC_FD_LISTEN, .backlog = backlog };
        err = simple_call(s, fd, &req);
    }
    if (!err)
        atomic_store(&s->state, SHIM_LISTENING);
    shim_log("listen(%d) = %s", fd, err ? strerror(-err) : "0");
    shim_sock_put(s);
    return err ? fail(-err) : 0;
}

/* Write an address the daemon returned to the application's buffer with
 * accept/getsockname semantics: truncate to *ulen, report the real
 * length. */
static int give_addr(struct sockaddr *uaddr, socklen_t *ulen,
                     const void *addr, socklen_t alen, bool optional)
{
    if (!uaddr && optional)
        return 0;
    socklen_t len;
    if (shim_copy_from_user(&len, ulen, sizeof(len)) != sizeof(len))
        return -EFAULT;
    if ((int)len < 0)
        return -EINVAL;
    socklen_t n = len < alen ? len : alen;
    if (n && shim_copy_to_user(uaddr, addr, n) != (ssize_t)n)
        return -EFAULT;
    if (shim_copy_to_user(ulen, &alen, sizeof(alen)) != sizeof(alen))
        return -EFAULT;
    return 0;
}

static int sockname_call(struct shim_sock *s, int fd, uint32_t op,
                         struct pvc_fd_rsp *rsp)
{
    struct pvc_fd_req req = { .op = op, .ino = s->ino };
    int fds[SHIM_MAX_RX_FDS], nfds;
    int err = shim_daemon_call(&req, fd, rsp, fds, &nfds);
    close_all(fds, nfds);
    if (!err && rsp->ret < 0)
        err = rsp->ret;
    if (!err && rsp->addrlen > PVC_FD_ADDR_MAX)
        err = -EPROTO;
    return err;
}

/* One connection the daemon has accepted for this listener: 0 (rsp and
 * fds set) or -errno; blocks as accept(2) does unless fd is non-blocking
 * (SO_RCVTIMEO bounds the wait: EAGAIN). */
static int ask_accept(struct shim_sock *s, int fd, struct pvc_fd_rsp *rsp,
                      int fds[SHIM_MAX_RX_FDS], int *nfds)
{
    int64_t deadline = shim_deadline(atomic_load(&s->rcvtimeo_ns));
    for (;;) {
        /* Drain before asking: the daemon writes again after our request
         * if connections remain, so no notice is lost. */
        shim_token_drain(fd);
        struct pvc_fd_req req = { .op = PVC_FD_ACCEPT, .ino = s->ino };
        int err = shim_daemon_call(&req, fd, rsp, fds, nfds);
        if (!err && rsp->ret < 0)
            err = rsp->ret;
        if (!err && *nfds < 1)
            err = -EPROTO;
        if (!err)
            return 0;
        close_all(fds, *nfds);
        *nfds = 0;
        if (err != -EAGAIN || shim_fd_nonblock(fd))
            return err;
        err = shim_wait(s, fd, deadline);
        if (err)
            return err == -ETIMEDOUT ? -EAGAIN : err;
    }
}

/* The accepted socket: token, ring and peer address. */
static int do_accept(struct shim_sock *s, int fd, struct sockaddr *addr,
                     socklen_t *alen, int flags)
{
    if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC))
        return -EINVAL;
    if (atomic_load(&s->state) != SHIM_LISTENING)
        return -EINVAL;
    if (addr) {
        socklen_t len;
        if (shim_copy_from_user(&len, alen, sizeof(len)) != sizeof(len))
            return -EFAULT;
        if ((int)len < 0)
            return -EINVAL;
    }
    int nfds;
    int fds[SHIM_MAX_RX_FDS];
    struct pvc_fd_rsp rsp;
    int err = ask_accept(s, fd, &rsp, fds, &nfds);
    if (err)
        return err;
    int token = fds[0];
    if (shim_fd_beyond_limit(token)) {
        /* See socket(): the connection is lost, where Linux would leave
         * it queued for a later accept (a documented difference). */
        close_all(fds, nfds);
        return -EMFILE;
    }
    struct shim_sock *ns = shim_sock_new(rsp.ino, s->domain);
    err = ns ? shim_sock_attach(ns, &rsp, fds, nfds, 1) : -ENOMEM;
    if (!ns)
        close_all(fds + 1, nfds - 1);
    if (err) {
        REAL(close)(token);
        if (ns)
            shim_sock_put(ns);
        return err;
    }
    atomic_store(&ns->state, SHIM_CONNECTED);
    if (addr && rsp.addrlen == 0)
        sockname_call(ns, token, PVC_FD_GETPEERNAME, &rsp);
    int nfd = publish(token, ns, flags);
    if (nfd < 0)
        return -errno;
    err = rsp.addrlen <= PVC_FD_ADDR_MAX
              ? give_addr(addr, alen, rsp.addr, rsp.addrlen, true) : 0;
    shim_log("accept(%d) = %d: carried over PV Calls (ino %llu)", fd, nfd,
             (unsigned long long)rsp.ino);
    /* Linux has the connection accepted even when it cannot write the
     * address; it then reports EFAULT and the new fd is lost to the
     * program, so we close it. */
    if (err) {
        fdt_remove(nfd);
        REAL(close)(nfd);
        return err;
    }
    return nfd;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *alen, int flags)
{
    struct shim_sock *s = shim_in_shim ? NULL : shim_sock_get(fd);
    if (!s)
        return REAL(accept4)(fd, addr, alen, flags);
    int r = do_accept(s, fd, addr, alen, flags);
    shim_sock_put(s);
    return r < 0 ? fail(-r) : r;
}

int accept(int fd, struct sockaddr *addr, socklen_t *alen)
{
    if (shim_in_shim || !fdt_has(fd))
        return REAL(accept)(fd, addr, alen);
    return accept4(fd, addr, alen, 0);
}

/* Has the connection reached Linux's TCP_CLOSE (reset, or both FINs
 * exchanged)?  shutdown and getpeername then say ENOTCONN. */
static bool fully_closed(struct shim_sock *s)
{
    if (atomic_load(&s->state) != SHIM_CONNECTED)
        return false;
    int32_t in = pvc_ring_in_error(&s->ring);
    if (in < 0 && in != -ENOTCONN)
        return true;
    return in == -ENOTCONN &&
           __atomic_load_n(&s->shared->shut_wr, __ATOMIC_ACQUIRE);
}

int shutdown(int fd, int how)
{
    struct shim_sock *s = shim_in_shim ? NULL : shim_sock_get(fd);
    if (!s)
        return REAL(shutdown)(fd, how);
    int err = 0, st = atomic_load(&s->state);
    if (how < SHUT_RD || how > SHUT_RDWR)
        err = -EINVAL;
    else if (st == SHIM_CREATED || st == SHIM_BOUND ||
             st == SHIM_CONNECTING || fully_closed(s))
        err = -ENOTCONN;
    if (!err) {
        struct pvc_fd_req req = { .op = PVC_FD_SHUTDOWN, .how = how };
        err = simple_call(s, fd, &req);
        /* Without the backend's shutdown extension, SHUT_RD is still ours
         * to implement: it only stops our own reads. */
        if (err && how == SHUT_RD && st == SHIM_CONNECTED)
            err = 0;
    }
    if (!err && st == SHIM_CONNECTED) {
        if (how != SHUT_WR)
            __atomic_store_n(&s->shared->shut_rd, 1, __ATOMIC_RELEASE);
        if (how != SHUT_RD)
            __atomic_store_n(&s->shared->shut_wr, 1, __ATOMIC_RELEASE);
        /* Threads blocked on this socket must see it (recv returns 0,
         * send EPIPE). */
        shim_sock_kick(s);
    }
    shim_log("shutdown(%d, %d) = %s", fd, how, err ? strerror(-err) : "0");
    shim_sock_put(s);
    return err ? fail(-err) : 0;
}

/* The wildcard address and port 0, as Linux reports for an unbound socket. */
static void wildcard_name(const struct shim_sock *s, struct pvc_fd_rsp *rsp)
{
    struct sockaddr_in6 any = { .sin6_family = (sa_family_t)s->domain };
    memcpy(rsp->addr, &any, sizeof(any));
    rsp->addrlen = s->domain == AF_INET ? sizeof(struct sockaddr_in)
                                        : sizeof(struct sockaddr_in6);
}

static int name_common(struct shim_sock *s, int fd, struct sockaddr *addr,
                       socklen_t *alen, bool peer)
{
    int st = atomic_load(&s->state), err = 0;
    struct pvc_fd_rsp rsp = { 0 };
    if (!alen) {
        err = -EFAULT;
    } else if (peer && (st != SHIM_CONNECTED || fully_closed(s))) {
        err = -ENOTCONN;
    } else if (!peer && st == SHIM_CREATED) {
        wildcard_name(s, &rsp);
    } else {
        err = sockname_call(s, fd, peer ? PVC_FD_GETPEERNAME
                                        : PVC_FD_GETSOCKNAME, &rsp);
        /* A backend without the sockname extension (Linux's, v1) cannot
         * tell the addresses: the peer is the one connect() was given, our
         * own the wildcard and port 0 (as is the peer of an accepted
         * socket), rather than an error Linux never gives (curl gives up
         * on one). */
        if (err == -EOPNOTSUPP && peer && s->peer_len) {
            memcpy(rsp.addr, s->peer_addr, s->peer_len);
            rsp.addrlen = s->peer_len;
            err = 0;
        } else if (err == -EOPNOTSUPP) {
            wildcard_name(s, &rsp);
            err = 0;
        }
    }
    if (!err)
        err = give_addr(addr, alen, rsp.addr, rsp.addrlen, false);
    shim_sock_put(s);
    return err ? fail(-err) : 0;
}

int getsockname(int fd, struct sockaddr *addr, socklen_t *alen)
{
    struct shim_sock *s = shim_in_shim ? NULL : shim_sock_get(fd);
    if (!s)
        return REAL(getsockname)(fd, addr, alen);
    return name_common(s, fd, addr, alen, false);
}

int getpeername(int fd, struct sockaddr *addr, socklen_t *alen)
{
    struct shim_sock *s = shim_in_shim ? NULL : shim_sock_get(fd);
    if (!s)
        return REAL(getpeername)(fd, addr, alen);
    return name_common(s, fd, addr, alen, true);
}
