/*
 * Blocking on a socket's event channel.  An event is only a doorbell: other
 * threads and forked holders of the same socket may consume it, so callers
 * re-check the ring after every return from here and wait again.  We use
 * poll() on the channel's fd (not a consuming blocking read) so that every
 * waiter of this process wakes on one event.
 *
 * One race remains between waiters of the same socket: a thread that has
 * checked the ring but is not yet in poll() can lose an event that another
 * thread acknowledged meanwhile.  A thread that is not the only waiter in
 * this process therefore waits with a bounded timeout (a re-check, never a
 * spin); a lone waiter, the common case, sleeps until the doorbell.
 */
#include "shim.h"

#include <errno.h>
#include <time.h>

#define SHARED_WAIT_MS 100

int64_t shim_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int shim_sock_wait_fd(struct shim_sock *s, int fd)
{
    switch (atomic_load(&s->state)) {
    case SHIM_CONNECTED:
        return s->evt_fd;
    case SHIM_LISTENING:
    case SHIM_CONNECTING:
        return fd;
    default:
        return -1;
    }
}

void shim_sock_kick(struct shim_sock *s)
{
    int saved = errno;
    if (s->evt)
        pvc_evtchn_kick_local(s->evt);
    errno = saved;
}

int shim_wait(struct shim_sock *s, int fd, int64_t deadline_ns)
{
    int wfd = shim_sock_wait_fd(s, fd);
    struct pollfd p = { .fd = wfd, .events = POLLIN };
    int others = atomic_fetch_add(&s->waiters, 1);
    int ms = others ? SHARED_WAIT_MS : -1;
    if (deadline_ns >= 0) {
        int64_t left = deadline_ns - shim_now_ns();
        if (left <= 0) {
            atomic_fetch_sub(&s->waiters, 1);
            return -ETIMEDOUT;
        }
        int64_t lms = (left + 999999) / 1000000;
        if (ms < 0 || lms < ms)
            ms = lms > 1000000000 ? 1000000000 : (int)lms;
    }
    shim_sig_norestart = 0;
    int r = REAL(poll)(&p, 1, ms);
    int err = errno;
    atomic_fetch_sub(&s->waiters, 1);
    if (r < 0 && err == EINTR)
        return shim_sig_norestart ? -EINTR : 0;
    if (r < 0)
        return -err;
    if (r > 0 && wfd == s->evt_fd && pvc_evtchn_ack(s->evt) < 0 &&
        errno != EAGAIN)
        return -errno;
    return 0;
}
