/*
 * Socket options and ioctls on managed sockets.  What the shim knows
 * itself (SO_ERROR, SO_TYPE, SO_DOMAIN, SO_PROTOCOL, SO_ACCEPTCONN,
 * FIONREAD, SIOCOUTQ) is answered here; other options go to the backend
 * through the daemon (the sockopt extension).  Without that extension,
 * setting a few options that only tune the host's socket is accepted and
 * ignored (a server that sets SO_REUSEADDR must still start); everything
 * else is ENOPROTOOPT.
 */
#include "shim.h"

#include "pvc/ext.h"

#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>

static int fail(int err)
{
    errno = err;
    return -1;
}

/* Linux's int options: copy min(len, 4) bytes and report that length. */
static int give_int(void *uval, socklen_t *ulen, socklen_t len, int v)
{
    if (len > sizeof(int))
        len = sizeof(int);
    if (len && shim_copy_to_user(uval, &v, len) != (ssize_t)len)
        return -EFAULT;
    if (shim_copy_to_user(ulen, &len, sizeof(len)) != sizeof(len))
        return -EFAULT;
    return 0;
}

/* SO_RCVTIMEO/SO_SNDTIMEO (either ABI): kept by the kernel on the token
 * itself, which validates them exactly as for any socket and shares them
 * with every holder of the open file; the shim caches the value for its
 * waits (conn.c, data.c, accept). */
static bool timeo_opt(int level, int name)
{
    return level == SOL_SOCKET &&
           (name == SO_RCVTIMEO_OLD || name == SO_RCVTIMEO_NEW ||
            name == SO_SNDTIMEO_OLD || name == SO_SNDTIMEO_NEW);
}

static void cache_timeo(struct shim_sock *s, int fd, int name)
{
    bool rcv = name == SO_RCVTIMEO_OLD || name == SO_RCVTIMEO_NEW;
    struct timeval tv;
    socklen_t len = sizeof(tv);
    if (REAL(getsockopt)(fd, SOL_SOCKET, rcv ? SO_RCVTIMEO_OLD
                                             : SO_SNDTIMEO_OLD,
                         &tv, &len) < 0)
        return;
    int64_t ns = (int64_t)tv.tv_sec * 1000000000 + tv.tv_usec * 1000;
    atomic_store(rcv ? &s->rcvtimeo_ns : &s->sndtimeo_ns, ns);
}

/* 1: answered locally into *v; 0: not ours. */
static int local_opt(struct shim_sock *s, int fd, int level, int name,
                     int *v)
{
    if (level != SOL_SOCKET)
        return 0;
    switch (name) {
    case SO_ERROR:
        shim_conn_settle(s, fd);
        *v = -atomic_exchange(&s->so_error, 0);
        if (!*v && s->shared)
            *v = -__atomic_exchange_n(&s->shared->so_error, 0,
                                      __ATOMIC_ACQ_REL);
        return 1;
    case SO_TYPE:
        *v = SOCK_STREAM;
        return 1;
    case SO_DOMAIN:
        *v = s->domain;
        return 1;
    case SO_PROTOCOL:
        *v = IPPROTO_TCP;
        return 1;
    case SO_ACCEPTCONN:
        *v = atomic_load(&s->state) == SHIM_LISTENING;
        return 1;
    }
    return 0;
}

/* TCP_INFO describes a TCP stack, and the guest runs none: the bytes
 * cross a lossless ring and the host's socket does the TCP.  So the
 * answer holds what is true of the guest's side, the connection's state,
 * and zero for every counter of a stack that is not there (no
 * retransmits, no congestion window).  Programs that log it (iperf3)
 * print zeros instead of failing or printing garbage. */
static int give_tcp_info(struct shim_sock *s, int fd, void *uval,
                         socklen_t *ulen, socklen_t len)
{
    struct tcp_info ti;
    memset(&ti, 0, sizeof(ti));
    switch (shim_conn_settle(s, fd)) {
    case SHIM_CONNECTED:
        ti.tcpi_state = pvc_ring_in_error(&s->ring) < 0 &&
                                pvc_ring_out_error(&s->ring) < 0
                            ? TCP_CLOSE : TCP_ESTABLISHED;
        break;
    case SHIM_CONNECTING:
        ti.tcpi_state = TCP_SYN_SENT;
        break;
    case SHIM_LISTENING:
        ti.tcpi_state = TCP_LISTEN;
        break;
    default:
        ti.tcpi_state = TCP_CLOSE;
        break;
    }
    if (len > sizeof(ti))
        len = sizeof(ti);
    if (len && shim_copy_to_user(uval, &ti, len) != (ssize_t)len)
        return -EFAULT;
    if (shim_copy_to_user(ulen, &len, sizeof(len)) != sizeof(len))
        return -EFAULT;
    return 0;
}

static bool have_sockopt_ext(void)
{
    uint32_t ext = 0, max_order;
    return shim_daemon_hello(&ext, &max_order) == 0 &&
           (ext & PVC_EXT_SOCKOPT);
}

/* Options that only tune the host's TCP socket, harmless to ignore. */
static bool ignorable(int level, int name)
{
    if (level == SOL_SOCKET)
        return name == SO_REUSEADDR || name == SO_REUSEPORT ||
               name == SO_KEEPALIVE;
    return level == IPPROTO_TCP && name == TCP_NODELAY;
}

static int opt_call(struct shim_sock *s, int fd, struct pvc_fd_req *req,
                    struct pvc_fd_rsp *rsp)
{
    int fds[SHIM_MAX_RX_FDS], nfds;
    req->ino = s->ino;
    int err = shim_daemon_call(req, fd, rsp, fds, &nfds);
    for (int i = 0; i < nfds; i++)
        REAL(close)(fds[i]);
    if (!err)
        err = rsp->ret;
    if (err == -PVC_ENOTSUPP || err == -EOPNOTSUPP)
        err = -ENOPROTOOPT;
    return err;
}

static int do_getsockopt(struct shim_sock *s, int fd, int level, int name,
                         void *uval, socklen_t *ulen)
{
    socklen_t len;
    if (shim_copy_from_user(&len, ulen, sizeof(len)) != sizeof(len))
        return -EFAULT;
    if ((int)len < 0)
        return -EINVAL;
    int v;
    if (local_opt(s, fd, level, name, &v))
        return give_int(uval, ulen, len, v);
    if (level == IPPROTO_TCP && name == TCP_INFO)
        return give_tcp_info(s, fd, uval, ulen, len);
    if (!have_sockopt_ext())
        return -ENOPROTOOPT;
    struct pvc_fd_req req = {
        .op = PVC_FD_GETSOCKOPT, .level = level, .optname = name,
        .optlen = len < PVC_FD_OPT_MAX ? len : PVC_FD_OPT_MAX,
    };
    struct pvc_fd_rsp rsp;
    int err = opt_call(s, fd, &req, &rsp);
    if (err)
        return err;
    socklen_t n = rsp.optlen < PVC_FD_OPT_MAX ? rsp.optlen : PVC_FD_OPT_MAX;
    if (n > len)
        n = len;
    if (n && shim_copy_to_user(uval, rsp.optval, n) != (ssize_t)n)
        return -EFAULT;
    if (shim_copy_to_user(ulen, &n, sizeof(n)) != sizeof(n))
        return -EFAULT;
    return 0;
}

int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    struct shim_sock *s = shim_in_shim ? NULL : shim_sock_get(fd);
    if (!s || timeo_opt(level, name)) {
        if (s)
            shim_sock_put(s);
        return REAL(getsockopt)(fd, level, name, val, len);
    }
    int err = do_getsockopt(s, fd, level, name, val, len);
    if (err)
        shim_log("getsockopt(%d, %d, %d) = %s", fd, level, name,
                 strerror(-err));
    shim_sock_put(s);
    return err ? fail(-err) : 0;
}

static int do_setsockopt(struct shim_sock *s, int fd, int level, int name,
                         const void *uval, socklen_t len)
{
    if ((int)len < 0)
        return -EINVAL;
    struct pvc_fd_req req = { .op = PVC_FD_SETSOCKOPT, .level = level,
                              .optname = name };
    req.optlen = len < PVC_FD_OPT_MAX ? len : PVC_FD_OPT_MAX;
    if (req.optlen &&
        shim_copy_from_user(req.optval, uval, req.optlen) !=
            (ssize_t)req.optlen)
        return -EFAULT;
    if (level == SOL_SOCKET &&
        (name == SO_TYPE || name == SO_DOMAIN || name == SO_PROTOCOL ||
         name == SO_ERROR || name == SO_ACCEPTCONN))
        return -ENOPROTOOPT;
    if (ignorable(level, name) && req.optlen < sizeof(int))
        return -EINVAL;
    int err = -ENOPROTOOPT;
    struct pvc_fd_rsp rsp;
    if (have_sockopt_ext())
        err = opt_call(s, fd, &req, &rsp);
    if (err == -ENOPROTOOPT && ignorable(level, name)) {
        shim_log("setsockopt(%d, %d, %d): ignored (no backend support)", fd,
                 level, name);
        err = 0;
    }
    return err;
}

int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    struct shim_sock *s = shim_in_shim ? NULL : shim_sock_get(fd);
    if (!s)
        return REAL(setsockopt)(fd, level, name, val, len);
    if (timeo_opt(level, name)) {
        int r = REAL(setsockopt)(fd, level, name, val, len);
        int saved = errno;
        if (r == 0)
            cache_timeo(s, fd, name);
        shim_sock_put(s);
        errno = saved;
        return r;
    }
    int err = do_setsockopt(s, fd, level, name, val, len);
    if (err)
        shim_log("setsockopt(%d, %d, %d) = %s", fd, level, name,
                 strerror(-err));
    shim_sock_put(s);
    return err ? fail(-err) : 0;
}

static int do_ioctl(struct shim_sock *s, unsigned long req, void *arg,
                    bool *handled)
{
    int v;
    *handled = true;
    switch (req) {
    case FIONREAD: /* == SIOCINQ */
        if (atomic_load(&s->state) == SHIM_LISTENING)
            return -EINVAL;
        v = (int)shim_rx_ready(s);
        break;
    case SIOCOUTQ: {
        long q = 0;
        if (atomic_load(&s->state) == SHIM_LISTENING)
            return -EINVAL;
        if (atomic_load(&s->state) == SHIM_CONNECTED)
            q = pvc_ring_tx_unconsumed(&s->ring);
        v = q < 0 ? 0 : (int)q;
        break;
    }
    default:
        /* FIONBIO and FIOCLEX act on the token, the truth for both. */
        *handled = false;
        return 0;
    }
    if (shim_copy_to_user(arg, &v, sizeof(v)) != sizeof(v))
        return -EFAULT;
    return 0;
}

int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    struct shim_sock *s = shim_in_shim ? NULL : shim_sock_get(fd);
    if (!s)
        return REAL(ioctl)(fd, req, arg);
    bool handled;
    int err = do_ioctl(s, req, arg, &handled);
    shim_sock_put(s);
    if (!handled)
        return REAL(ioctl)(fd, req, arg);
    return err ? fail(-err) : 0;
}
