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

#define SHARED_WAIT_MS 100

int shim_wait(struct shim_sock *s)
{
    struct pollfd p = { .fd = s->evt_fd, .events = POLLIN };
    int others = atomic_fetch_add(&s->waiters, 1);
    shim_sig_norestart = 0;
    int r = REAL(poll)(&p, 1, others ? SHARED_WAIT_MS : -1);
    int err = errno;
    atomic_fetch_sub(&s->waiters, 1);
    if (r < 0 && err == EINTR)
        return shim_sig_norestart ? -EINTR : 0;
    if (r < 0)
        return -err;
    if (r > 0 && pvc_evtchn_ack(s->evt) < 0 && errno != EAGAIN)
        return -errno;
    return 0;
}
