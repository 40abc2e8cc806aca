/*
 * The data pump of an active socket: host socket -> `in` ring and `out`
 * ring -> host socket, with flow control in both directions.
 *
 * No byte is copied twice: readv() writes straight into the ring's free
 * space and sendmsg() reads straight from the queued bytes (each as up to
 * two iovecs, the second for wrap-around).  We never read more than the
 * ring can take: while it is full the host socket leaves the interest set
 * and the kernel's receive window pushes back on the peer; the frontend's
 * doorbell after consuming resumes reading.  On the way out, a full send
 * buffer makes us wait for EPOLLOUT.
 *
 * Every event, from either side, is only a doorbell: after each one both
 * directions are re-examined from the ring state, then the interest set is
 * recomputed and the frontend notified once if anything changed.
 */
#include "backd.h"

#include "audit.h"
#include "pvc/ext.h"
#include "pvc/log.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* A violation of the ring protocol by the frontend: the socket is shut
 * down (the frontend sees a reset), the id stays until RELEASE, and no
 * other socket is affected. */
static void pump_break(struct bsock *s, const char *what)
{
    struct bdev *d = s->dev;
    pvc_warn("dom %u: socket %llu: bad %s: shutting it down", d->domid,
             (unsigned long long)s->id, what);
    audit_violation(d->bd->audit, d->domid, d->devid, true, s->id, what);
    s->broken = true;
    sock_close_fd(s);
    pvc_ring_set_in_error(&s->r.ring, -ECONNRESET);
    pvc_ring_set_out_error(&s->r.ring, -ECONNRESET);
    s->in_done = s->out_done = true;
    s->notify = true;
}

static int iov_count(const struct iovec iov[2])
{
    return iov[1].iov_len ? 2 : 1;
}

/* Shorten an iovec pair to n bytes. */
static void iov_trim(struct iovec iov[2], size_t n)
{
    if (iov[0].iov_len >= n) {
        iov[0].iov_len = n;
        iov[1].iov_len = 0;
    } else {
        iov[1].iov_len = n - iov[0].iov_len;
    }
}

/* Room in the in ring.  "waiting": a full ring raises our flag, so that
 * the frontend notifies when it makes room (v1 frontends notify after
 * every read anyway). */
static long in_space(struct bsock *s, struct iovec iov[2])
{
    return (s->dev->ext & PVC_EXT_WAITING)
               ? pvc_ring_tx_iov_waiting(&s->r.ring, iov)
               : pvc_ring_tx_iov(&s->r.ring, iov);
}

/* host -> in ring.  fd_event: the host socket reported something; else
 * only a doorbell, which matters if we stopped on a full ring. */
static void pump_in(struct bsock *s, bool fd_event)
{
    if (s->in_done || s->fd < 0 || (!fd_event && !s->in_full))
        return;
    struct iovec iov[2];
    long space = in_space(s, iov);
    if (space < 0) {
        pump_break(s, "in ring indexes");
        return;
    }
    s->in_full = space == 0;
    if (s->in_full)
        return;
    ssize_t n = readv(s->fd, iov, iov_count(iov));
    if (n > 0) {
        pvc_ring_tx_produce(&s->r.ring, (RING_IDX)n);
        s->bytes_in += (uint64_t)n;
        s->notify = true;
        /* Filled up: we stop reading until told there is room, so with
         * "waiting" the flag must be up (in_space raises it). */
        s->in_full = n == space && in_space(s, iov) == 0;
    } else if (n == 0) {
        /* Every byte before the FIN is in the ring already. */
        pvc_ring_set_in_error(&s->r.ring, -ENOTCONN);
        s->in_done = true;
        s->notify = true;
    } else if (errno != EAGAIN && errno != EINTR) {
        pvc_ring_set_in_error(&s->r.ring, -errno); /* e.g. -ECONNRESET */
        s->in_done = true;
        s->notify = true;
    }
}

/* out ring -> host.  writable: the host socket reported EPOLLOUT (or an
 * error); without it a blocked socket is left alone. */
static void pump_out(struct bsock *s, bool writable)
{
    if (s->out_done || s->fd < 0 || (s->out_blocked && !writable))
        return;
    struct iovec iov[2];
    long avail = pvc_ring_rx_iov(&s->r.ring, iov);
    if (avail < 0) {
        pump_break(s, "out ring indexes");
        return;
    }
    if (s->draining) {
        /* Only what was queued when SHUTDOWN/RELEASE came is owed. */
        RING_IDX owed = s->drain_target - s->r.ring.rx_cons_pvt;
        if ((RING_IDX)avail > owed) {
            avail = (long)owed;
            iov_trim(iov, owed);
        }
    }
    if (avail == 0) {
        s->out_blocked = false;
        return;
    }
    struct msghdr msg = { .msg_iov = iov, .msg_iovlen = iov_count(iov) };
    ssize_t n = sendmsg(s->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
        pvc_ring_rx_consume(&s->r.ring, (RING_IDX)n);
        s->bytes_out += (uint64_t)n;
        /* The frontend may be waiting for space: with "waiting", only if
         * it said so (a request/response peer is not, and a doorbell
         * would only wake it for nothing). */
        if (!(s->dev->ext & PVC_EXT_WAITING) ||
            pvc_ring_rx_wake_due(&s->r.ring))
            s->notify = true;
        s->out_blocked = n < avail;
    } else if (n == 0 || errno == EAGAIN || errno == EINTR) {
        s->out_blocked = true;
    } else {
        pvc_ring_set_out_error(&s->r.ring, -errno); /* -EPIPE, ... */
        s->out_done = true;
        s->out_blocked = false;
        s->notify = true;
    }
}

static bool pump_drained(struct bsock *s)
{
    return s->out_done || s->fd < 0 ||
           s->r.ring.rx_cons_pvt == s->drain_target;
}

/* After each event: interest set, one notification, drain completion.
 * May free s (a completed RELEASE): callers return right after. */
static void pump_settle(struct bsock *s)
{
    uint32_t want = 0;
    if (!s->in_done && !s->in_full)
        want |= EPOLLIN | EPOLLRDHUP;
    if (!s->out_done && s->out_blocked)
        want |= EPOLLOUT;
    sock_watch_fd(s, want);
    if (s->notify) {
        s->notify = false;
        pvc_evtchn_notify(s->r.ch);
    }
    if (s->draining && pump_drained(s)) {
        s->draining = false;
        cmd_drained(s);
    }
}

void pump_start(struct bsock *s)
{
    /* The frontend may have queued bytes already; reading waits for the
     * host socket to report EPOLLIN. */
    pump_out(s, false);
    pump_settle(s);
}

void pump_fd_event(struct bsock *s, uint32_t events)
{
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        pump_out(s, true);
    /* An error or hang-up is read as such by readv: an RST with no data
     * reaches the frontend as in_error = -ECONNRESET. */
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        pump_in(s, true);
    pump_settle(s);
}

void pump_doorbell(struct bsock *s)
{
    pump_out(s, false);
    pump_in(s, false);
    pump_settle(s);
}

void pump_drain(struct bsock *s, bool stop_in)
{
    if (stop_in)
        s->in_done = true; /* RELEASE: nobody will read the in ring */
    if (!s->out_done && s->fd >= 0) {
        struct iovec iov[2];
        long avail = pvc_ring_rx_iov(&s->r.ring, iov);
        if (avail < 0) {
            pump_break(s, "out ring indexes");
        } else {
            s->drain_target = s->r.ring.rx_cons_pvt + (RING_IDX)avail;
            s->draining = true;
            pump_out(s, false);
        }
    }
    s->draining = true; /* pump_settle completes it, now or later */
    pump_settle(s);
}
