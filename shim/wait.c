/*
 * Blocking on a socket: one kernel wait over the socket's wait fd (its
 * event channel, or the token while listening or connecting) and this
 * thread's wake fd, with the caller's deadline.  An event is only a
 * doorbell: callers re-check the socket after every return and wait again.
 *
 * No lost wake-up between threads of this process (waitq.c): the thread
 * registers on the socket's wait queue, and whoever acknowledges the
 * event channel or kicks the socket writes its wake fd.  The caller checks
 * readiness *before* calling us, though, and an acknowledgement by another
 * thread between that check and our registration would go unseen.  So the
 * queue's wake sequence is compared with the one this thread saw when its
 * previous wait on the same socket ended: if anything happened since (or
 * this is the first wait here), we return at once for the caller to
 * re-check, now registered... and the next call, finding the sequence
 * unchanged, sleeps.  At most one extra check per wait, never a spin, no
 * timer.
 */
#include "shim.h"

#include <errno.h>
#include <time.h>

/* The socket and wake sequence of this thread's last wait. */
static __thread const void *last_obj;
static __thread uint64_t last_seq;
/* The socket whose wait fd hung up at this thread's last wait. */
static __thread const void *hup_obj;

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

bool shim_sock_ack(struct shim_sock *s, int wfd, const void *self)
{
    if (atomic_load(&s->state) != SHIM_CONNECTED || wfd != s->evt_fd ||
        !s->evt)
        return false;
    int saved = errno;
    if (pvc_evtchn_ack(s->evt) > 0)
        shim_obj_wake(&s->head, self);
    errno = saved;
    return true;
}

void shim_sock_kick(struct shim_sock *s)
{
    int saved = errno;
    /* Forked holders have no node here: the channel is their doorbell. */
    if (atomic_load(&s->state) == SHIM_CONNECTED && s->evt)
        pvc_evtchn_kick_local(s->evt);
    shim_obj_wake(&s->head, NULL);
    errno = saved;
}

/* The kernel wait; ppoll's result with errno. */
static int sleep_on(struct pollfd *p, int n, int64_t deadline_ns)
{
    struct timespec ts, *tp = NULL;
    if (deadline_ns >= 0) {
        int64_t left = deadline_ns - shim_now_ns();
        if (left < 0)
            left = 0;
        ts = (struct timespec){ left / 1000000000, left % 1000000000 };
        tp = &ts;
    }
    return REAL(ppoll)(p, (nfds_t)n, tp, NULL);
}

/* How a wait that slept ended: r and err from ppoll, p[0] the wait fd. */
static int wait_result(struct shim_sock *s, int r, int err,
                       const struct pollfd *p, int64_t deadline_ns)
{
    if (r < 0 && err == EINTR)
        return shim_sig_norestart ? -EINTR : 0;
    if (r < 0)
        return -err;
    /* A token hangs up only when the daemon let go of the socket: it can
     * never ring again, and waiting on it would spin.  One re-check first
     * (a last notice may be pending), then the wait ends. */
    bool hup = r > 0 && (p[0].revents & (POLLHUP | POLLERR | POLLNVAL));
    if (hup && hup_obj == s)
        return -ECONNABORTED;
    hup_obj = hup ? s : NULL;
    if (r == 0 && deadline_ns >= 0 && shim_now_ns() >= deadline_ns)
        return -ETIMEDOUT;
    return 0;
}

/* Holders of one socket in different processes share only its event
 * channel: one of them may take (acknowledge) an event that another one
 * was waiting for, which would then sleep until the next event (cat
 * writing into an inherited socket while head reads from it can stall
 * for good).  So a socket that other processes may hold (made before a
 * fork this process took part in, or received through exec or
 * SCM_RIGHTS) is re-checked at least every SHARED_RECHECK_NS: a lost
 * wake-up costs that much, and only such sockets pay anything. */
#define SHARED_RECHECK_NS (50 * 1000000LL)

static int64_t bounded_if_shared(const struct shim_sock *s, int wfd,
                                 int64_t deadline_ns)
{
    if (wfd != s->evt_fd || s->born_epoch == atomic_load(&shim_fork_epoch))
        return deadline_ns;
    int64_t bound = shim_now_ns() + SHARED_RECHECK_NS;
    return deadline_ns >= 0 && deadline_ns < bound ? deadline_ns : bound;
}

int shim_wait(struct shim_sock *s, int fd, int64_t deadline_ns)
{
    if (deadline_ns >= 0 && shim_now_ns() >= deadline_ns)
        return -ETIMEDOUT;
    int wfd = shim_sock_wait_fd(s, fd);
    struct shim_wnode node;
    shim_thread_node(&node);
    if (wfd < 0 && node.wake_fd < 0 && deadline_ns < 0)
        return -ENOMEM; /* nothing could ever wake us */
    uint64_t seq = shim_waitq_add(&s->head.wq, &node);
    if (last_obj != s || last_seq != seq) {
        /* Registered now; the caller's check may predate a wake. */
        last_obj = s;
        last_seq = shim_waitq_del(&s->head.wq, &node);
        return 0;
    }
    struct pollfd p[2] = { { wfd, POLLIN, 0 }, { node.wake_fd, POLLIN, 0 } };
    shim_sig_norestart = 0;
    /* No wake fd (sandboxed): one entry, as RLIMIT_NOFILE may be 1. */
    int r = sleep_on(p, node.wake_fd >= 0 ? 2 : 1,
                     bounded_if_shared(s, wfd, deadline_ns));
    int err = errno;
    if (r > 0 && (p[0].revents & POLLIN))
        shim_sock_ack(s, wfd, node.owner);
    /* Emptied only when it fired (not before every sleep: a syscall per
     * wait): a stale wake from an earlier wait costs one extra re-check. */
    if (r > 0 && node.wake_fd >= 0 && (p[1].revents & POLLIN))
        shim_thread_wake_drain();
    last_seq = shim_waitq_del(&s->head.wq, &node);
    return wait_result(s, r, err, p, deadline_ns);
}
