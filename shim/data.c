/*
 * The data path of a connected socket: bytes move between the
 * application's buffers and the ring pages with no daemon involved.
 *
 * Every index update is followed by a notify (PV Calls v1 requires it; the
 * backend refills `in` and drains `out` only when told), one per ring
 * pass; with the "waiting" extension, consuming notifies only a backend
 * that said it waits for room, and a full `out` ring says we wait.  Waits
 * re-check the ring after every wake-up.  Ring access happens under the
 * state page's rx/tx lock, so forked holders and threads of one socket
 * never interleave bytes.
 */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>

/* A position in the application's iovec array. */
struct ucursor {
    const struct iovec *iov;
    int cnt, idx;
    size_t off;
};

/* Copy up to len bytes between kernel-side buffer buf and the cursor's
 * user memory.  Returns bytes copied, or -EFAULT if none could be. */
static ssize_t ucursor_copy(struct ucursor *c, void *buf, size_t len,
                            bool to_user)
{
    size_t done = 0;
    while (done < len && c->idx < c->cnt) {
        const struct iovec *v = &c->iov[c->idx];
        size_t room = v->iov_len - c->off;
        if (room == 0) {
            c->idx++;
            c->off = 0;
            continue;
        }
        size_t n = len - done < room ? len - done : room;
        char *u = (char *)v->iov_base + c->off;
        char *k = (char *)buf + done;
        ssize_t r = to_user ? shim_copy_to_user(u, k, n)
                            : shim_copy_from_user(k, u, n);
        if (r < 0)
            return done ? (ssize_t)done : r;
        done += (size_t)r;
        c->off += (size_t)r;
        if ((size_t)r < n)
            return (ssize_t)done; /* a bad page: stop here */
    }
    return (ssize_t)done;
}

/* Copy between the cursor and a ring iovec pair; returns bytes or
 * -EFAULT (nothing copied). */
static ssize_t ring_copy(struct ucursor *c, struct iovec ring[2],
                         size_t len, bool to_user)
{
    size_t done = 0;
    for (int i = 0; i < 2 && done < len; i++) {
        size_t want = len - done < ring[i].iov_len ? len - done
                                                   : ring[i].iov_len;
        if (!want)
            continue;
        ssize_t r = ucursor_copy(c, ring[i].iov_base, want, to_user);
        if (r < 0)
            return done ? (ssize_t)done : r;
        done += (size_t)r;
        if ((size_t)r < want)
            break;
    }
    return (ssize_t)done;
}

static size_t iov_total(const struct iovec *iov, int cnt)
{
    size_t t = 0;
    for (int i = 0; i < cnt; i++)
        t += iov[i].iov_len;
    return t;
}

bool shim_fd_nonblock(int fd)
{
    if (atomic_load_explicit(&shim_sandboxed, memory_order_relaxed)) {
        struct shim_sock *s = shim_sock_get(fd);
        bool nb = s && atomic_load(&s->nonblock_snap);
        if (s)
            shim_sock_put(s);
        return nb;
    }
    int fl = REAL(fcntl)(fd, F_GETFL);
    return fl >= 0 && (fl & O_NONBLOCK);
}

/* EPIPE raises SIGPIPE on the calling thread, as the kernel does (not in
 * a seccomp sandbox: sending a signal is a syscall it kills for). */
static ssize_t send_error(int err, int flags)
{
    if (err == -EPIPE && !(flags & MSG_NOSIGNAL) &&
        !atomic_load(&shim_sandboxed))
        pthread_kill(pthread_self(), SIGPIPE);
    return err;
}

/* The connection's send-side error, if any. */
static int tx_error(struct shim_sock *s)
{
    if (__atomic_load_n(&s->shared->shut_wr, __ATOMIC_ACQUIRE))
        return -EPIPE;
    int32_t e = pvc_ring_out_error(&s->ring);
    if (e < 0)
        return e == -ENOTCONN ? -EPIPE : e;
    e = pvc_ring_in_error(&s->ring);
    if (e < 0 && e != -ENOTCONN)
        return e == -ECONNRESET && atomic_load(&s->rx_err_done) ? -EPIPE : e;
    return 0;
}

/* Would this call block?  Asked only when it is about to (the fcntl is a
 * syscall: a call that moves data right away need not know). */
static bool call_nonblock(int fd, int flags)
{
    return (flags & MSG_DONTWAIT) || shim_fd_nonblock(fd);
}

/* A wait's -ETIMEDOUT is SO_RCVTIMEO/SO_SNDTIMEO expiring: EAGAIN. */
static int wait_error(int err)
{
    return err == -ETIMEDOUT ? -EAGAIN : err;
}

/* Before data can move.  0: connected; a connecting socket is waited
 * for (blocking) or -EAGAIN.  One whose connect failed gives its error
 * once, then 1 ("closed": send says EPIPE, recv EOF, as Linux's
 * tcp_sendmsg/tcp_recvmsg do).  -ENOTCONN: never connected. */
static int until_connected(struct shim_sock *s, int fd, int flags,
                           int64_t deadline)
{
    int st = shim_conn_settle(s, fd);
    if (st == SHIM_CONNECTING) {
        if (call_nonblock(fd, flags))
            return -EAGAIN;
        int err = shim_conn_wait(s, fd, deadline);
        if (err)
            return wait_error(err);
        st = atomic_load(&s->state);
    }
    if (st == SHIM_CONNECTED)
        return 0;
    if (st == SHIM_REFUSED) {
        int err = atomic_exchange(&s->so_error, 0);
        return err ? err : 1;
    }
    return -ENOTCONN;
}

/* Free room in the out ring; a full ring raises our "waiting" flag when
 * negotiated, so that the backend notifies when it drains. */
static long tx_space(struct shim_sock *s, struct iovec ring[2])
{
    return s->waiting ? pvc_ring_tx_iov_waiting(&s->ring, ring)
                      : pvc_ring_tx_iov(&s->ring, ring);
}

/* One pass: copy what fits.  Returns bytes queued (0: full) or -errno. */
static ssize_t tx_pass(struct shim_sock *s, struct ucursor *c, size_t left)
{
    shim_lock_tx(s);
    struct iovec ring[2];
    long space = tx_space(s, ring);
    ssize_t n = space;
    if (space > 0) {
        size_t want = left < (size_t)space ? left : (size_t)space;
        n = ring_copy(c, ring, want, false);
        if (n > 0)
            pvc_ring_tx_produce(&s->ring, (RING_IDX)n);
    }
    shim_unlock_tx(s);
    if (n > 0)
        pvc_evtchn_notify(s->evt);
    return n;
}

ssize_t shim_send_iov(struct shim_sock *s, int fd, const struct iovec *iov,
                      int iovcnt, int flags)
{
    int bad = shim_check_user_iov(iov, iovcnt);
    if (bad)
        return bad;
    int64_t deadline = shim_deadline(atomic_load(&s->sndtimeo_ns));
    int err = until_connected(s, fd, flags, deadline);
    if (err)
        return send_error(err == 1 || err == -ENOTCONN ? -EPIPE : err,
                          flags);
    size_t total = iov_total(iov, iovcnt), sent = 0;
    if (total == 0)
        return 0;
    struct ucursor c = { .iov = iov, .cnt = iovcnt };
    for (;;) {
        err = tx_error(s);
        if (err)
            return sent ? (ssize_t)sent : send_error(err, flags);
        ssize_t n = tx_pass(s, &c, total - sent);
        if (n < 0)
            return sent ? (ssize_t)sent : n;
        sent += (size_t)n;
        if (sent == total)
            return (ssize_t)sent;
        if (n > 0)
            continue; /* short because of a wrap or a bad page? re-check */
        if (call_nonblock(fd, flags))
            return sent ? (ssize_t)sent : -EAGAIN;
        err = shim_wait(s, fd, deadline);
        if (err)
            return sent ? (ssize_t)sent : wait_error(err);
    }
}

/* One pass: copy what is there.  Returns bytes (0: empty) or -errno. */
static ssize_t rx_pass(struct shim_sock *s, struct ucursor *c, size_t left,
                       bool peek)
{
    shim_lock_rx(s);
    struct iovec ring[2];
    long avail = pvc_ring_rx_iov(&s->ring, ring);
    ssize_t n = avail;
    if (avail > 0) {
        size_t want = left < (size_t)avail ? left : (size_t)avail;
        n = ring_copy(c, ring, want, true);
        if (n > 0 && !peek)
            pvc_ring_rx_consume(&s->ring, (RING_IDX)n);
    }
    /* v1: always; "waiting": only a backend that stopped on a full ring
     * needs to hear that there is room. */
    bool notify = n > 0 && !peek &&
                  (!s->waiting || pvc_ring_rx_wake_due(&s->ring));
    shim_unlock_rx(s);
    if (notify)
        pvc_evtchn_notify(s->evt);
    return n;
}

/* The ring is empty: what does that mean?  1: wait for more, 0: EOF,
 * -errno: the connection's error (reported once, then EOF). */
static int rx_empty_verdict(struct shim_sock *s)
{
    if (__atomic_load_n(&s->shared->shut_rd, __ATOMIC_ACQUIRE))
        return 0;
    int32_t e = pvc_ring_in_error(&s->ring);
    if (e == 0)
        return 1;
    /* Data written before the error is visible now (error_load's rmb):
     * drain it first. */
    struct iovec ring[2];
    shim_lock_rx(s);
    long avail = pvc_ring_rx_iov(&s->ring, ring);
    shim_unlock_rx(s);
    if (avail != 0)
        return avail < 0 ? (int)avail : 2;
    if (e == -ENOTCONN || e > 0)
        return 0;
    return atomic_exchange(&s->rx_err_done, 1) ? 0 : e;
}

ssize_t shim_recv_iov(struct shim_sock *s, int fd, const struct iovec *iov,
                      int iovcnt, int flags)
{
    int bad = shim_check_user_iov(iov, iovcnt);
    if (bad)
        return bad;
    int64_t deadline = shim_deadline(atomic_load(&s->rcvtimeo_ns));
    int err = until_connected(s, fd, flags, deadline);
    if (err)
        return err == 1 ? 0 : err;
    size_t total = iov_total(iov, iovcnt), got = 0;
    if (total == 0)
        return 0;
    bool peek = flags & MSG_PEEK;
    bool waitall = (flags & MSG_WAITALL) && !peek;
    struct ucursor c = { .iov = iov, .cnt = iovcnt };
    for (;;) {
        ssize_t n = rx_pass(s, &c, total - got, peek);
        if (n < 0)
            return got ? (ssize_t)got : n;
        got += (size_t)n;
        if (got == total || (got && !waitall))
            return (ssize_t)got;
        if (n > 0)
            continue;
        int v = rx_empty_verdict(s);
        if (v == 2)
            continue;
        if (v <= 0)
            return got ? (ssize_t)got : v;
        if (call_nonblock(fd, flags))
            return got ? (ssize_t)got : -EAGAIN;
        err = shim_wait(s, fd, deadline);
        if (err)
            return got ? (ssize_t)got : wait_error(err);
    }
}

long shim_rx_ready(struct shim_sock *s)
{
    if (atomic_load(&s->state) != SHIM_CONNECTED)
        return 0;
    struct iovec ring[2];
    shim_lock_rx(s);
    long avail = pvc_ring_rx_iov(&s->ring, ring);
    shim_unlock_rx(s);
    return avail < 0 ? 0 : avail;
}

short shim_poll_mask(struct shim_sock *s, int fd, short events)
{
    short m = 0;
    int st = shim_conn_settle(s, fd);
    if (st == SHIM_LISTENING) {
        /* The daemon's notice byte: a connection is parked (or was, and
         * another holder took it: accept then says EAGAIN, the same
         * thundering herd as Linux's). */
        struct pollfd tok = { .fd = fd, .events = POLLIN };
        if (REAL(poll)(&tok, 1, 0) > 0 && (tok.revents & POLLIN))
            m = POLLIN | POLLRDNORM;
    } else if (st == SHIM_REFUSED) {
        /* Linux's tcp_poll on a socket its connect closed. */
        m = POLLIN | POLLRDNORM | POLLRDHUP | POLLOUT | POLLWRNORM | POLLHUP;
        if (atomic_load(&s->so_error))
            m |= POLLERR;
    } else if (st == SHIM_CREATED || st == SHIM_BOUND) {
        m = POLLOUT | POLLWRNORM | POLLHUP; /* as Linux's tcp_poll */
    } else if (st == SHIM_CONNECTED) {
        struct iovec ring[2];
        shim_lock_rx(s);
        long avail = pvc_ring_rx_iov(&s->ring, ring);
        shim_unlock_rx(s);
        shim_lock_tx(s);
        long space = (events & POLLOUT) ? tx_space(s, ring)
                                        : pvc_ring_tx_iov(&s->ring, ring);
        shim_unlock_tx(s);
        int32_t in_err = pvc_ring_in_error(&s->ring);
        int32_t out_err = pvc_ring_out_error(&s->ring);
        bool rd_shut = __atomic_load_n(&s->shared->shut_rd, __ATOMIC_ACQUIRE);
        bool wr_shut = __atomic_load_n(&s->shared->shut_wr, __ATOMIC_ACQUIRE);
        bool rd_eof = rd_shut || in_err == -ENOTCONN;
        bool wr_dead = wr_shut || out_err < 0;
        if (avail != 0 || in_err != 0 || rd_shut)
            m |= POLLIN | POLLRDNORM;
        if (rd_eof)
            m |= POLLRDHUP;
        if ((in_err < 0 && in_err != -ENOTCONN) || avail < 0 || space < 0)
            m |= POLLERR | POLLHUP;
        if (space != 0 || wr_dead)
            m |= POLLOUT | POLLWRNORM;
        if (rd_eof && wr_dead)
            m |= POLLHUP;
    }
    return m & (events | POLLERR | POLLHUP | POLLNVAL);
}
