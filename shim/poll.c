/*
 * poll/ppoll/select/pselect over sets that hold managed objects.
 *
 * A managed socket's token tells the kernel nothing about the ring, and an
 * epoll fd holding managed members tells it nothing about those, so the
 * kernel cannot answer for them.  With no such fd in the set, the call
 * goes straight to libc (no copy at all in a process that never had one).
 * Otherwise:
 *
 *   1. register on each managed object's wait queue (waitq.c), before
 *      any readiness is computed, so that an event another thread
 *      acknowledges from then on wakes us;
 *   2. compute the managed objects' readiness (shim_obj_mask: the rings,
 *      an epoll's ready list) and, if the set has native fds, look at
 *      them with a zero-timeout ppoll;
 *   3. if nothing is ready, one kernel wait over the native fds, each
 *      managed object's wait fds (a socket's event channel or token, an
 *      epoll's own fd and hidden epoll) and this thread's wake fd; then
 *      acknowledge what fired and loop to 2.
 *
 * An event is only a doorbell: readiness always comes from step 2.  Never
 * a timer-driven re-poll, never a spin: a wait fd that stays readable for
 * a reason the caller did not ask about (a listener's pending connection
 * when only POLLOUT was asked) is left out of the remaining waits of the
 * call, and a change of wait fd (a connect that finished) is followed.
 */
#include "shim.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define STACK_FDS 64

/* What the call keeps for one entry of the caller's array. */
struct pslot {
    struct fdt_obj *obj;   /* managed (referenced), or NULL: native */
    struct shim_wnode node;
    int wfd[2];            /* its wait fds as of the last kernel wait */
    int stuck[2];          /* wait fds left out (see the top) */
    bool fired[2];         /* reported, and stays readable */
    int extra;             /* kern index of its second wait fd, or -1 */
};

struct pset {
    nfds_t n;              /* the caller's entries */
    nfds_t nk;             /* kernel entries: n, the extras, the wake fd */
    struct pollfd *user;   /* copy of the caller's array */
    struct pollfd *kern;   /* what the kernel waits on */
    struct pslot *slot;
    struct pollfd user_st[STACK_FDS], kern_st[2 * STACK_FDS + 1];
    struct pslot slot_st[STACK_FDS];
};

static void pset_free(struct pset *p)
{
    for (nfds_t i = 0; i < p->n; i++) {
        struct pslot *s = &p->slot[i];
        if (s->obj) {
            shim_waitq_del(&s->obj->wq, &s->node);
            fdt_put(s->obj);
        }
    }
    if (p->user != p->user_st) {
        free(p->user);
        free(p->kern);
        free(p->slot);
    }
}

static int pset_alloc(struct pset *p, nfds_t n)
{
    p->n = 0;
    p->user = p->user_st;
    p->kern = p->kern_st;
    p->slot = p->slot_st;
    if (n <= STACK_FDS)
        return 0;
    p->user = calloc(n, sizeof(*p->user));
    p->kern = calloc(2 * n + 1, sizeof(*p->kern));
    p->slot = calloc(n, sizeof(*p->slot));
    if (!p->user || !p->kern || !p->slot) {
        free(p->user);
        free(p->kern);
        free(p->slot);
        return -ENOMEM;
    }
    return 0;
}

/* Take a reference on and register with each managed object. */
static void pset_register(struct pset *p)
{
    nfds_t extras = 0;
    shim_thread_wake_drain(); /* stale wakes of earlier waits */
    for (nfds_t i = 0; i < p->n; i++) {
        struct pslot *s = &p->slot[i];
        *s = (struct pslot){ .wfd = { -1, -1 }, .stuck = { -1, -1 },
                             .extra = -1 };
        int fd = p->user[i].fd;
        if (fd < 0 || !fdt_waitable(fd) ||
            !(s->obj = fdt_get_kind(fd, FDT_ANY)))
            continue;
        if (s->obj->kind == FDT_EPOLL)
            s->extra = (int)(p->n + extras++);
        shim_thread_node(&s->node);
        shim_waitq_add(&s->obj->wq, &s->node);
    }
    p->nk = p->n + extras + 1;
}

static bool any_waitable(const struct pollfd *fds, nfds_t n)
{
    for (nfds_t i = 0; i < n; i++)
        if (fds[i].fd >= 0 && fdt_waitable(fds[i].fd))
            return true;
    return false;
}

/* 1: holds managed objects (set up); 0: none (nothing to free), or a
 * bad array (the real call says EFAULT); -errno. */
static int pset_init(struct pset *p, const struct pollfd *ufds, nfds_t n)
{
    int err = pset_alloc(p, n);
    if (err)
        return err;
    size_t bytes = n * sizeof(*ufds);
    if ((n && shim_copy_from_user(p->user, ufds, bytes) != (ssize_t)bytes) ||
        !any_waitable(p->user, n)) {
        pset_free(p);
        return 0;
    }
    p->n = n;
    pset_register(p);
    return 1;
}

static int kern_fd(const struct pslot *s, int k, int wfd)
{
    return wfd == s->stuck[k] ? -1 : wfd;
}

/* The kernel array for the next wait: natives as asked, managed objects'
 * current wait fds, this thread's wake fd last. */
static void pset_refresh(struct pset *p)
{
    for (nfds_t i = 0; i < p->n; i++) {
        struct pslot *s = &p->slot[i];
        if (!s->obj) {
            p->kern[i] = p->user[i];
            p->kern[i].revents = 0;
            continue;
        }
        shim_obj_wait_fds(s->obj, p->user[i].fd, s->wfd);
        p->kern[i] = (struct pollfd){ kern_fd(s, 0, s->wfd[0]), POLLIN, 0 };
        if (s->extra >= 0)
            p->kern[s->extra] =
                (struct pollfd){ kern_fd(s, 1, s->wfd[1]), POLLIN, 0 };
    }
    p->kern[p->nk - 1] = (struct pollfd){ shim_thread_wake_fd(), POLLIN, 0 };
}

/* After a kernel wait: acknowledge the managed wait fds that fired (which
 * wakes the other waiters of those objects), empty our wake fd. */
static void pset_ack(struct pset *p)
{
    const void *self = shim_thread_owner();
    for (nfds_t i = 0; i < p->n; i++) {
        struct pslot *s = &p->slot[i];
        for (int k = 0; s->obj && k < 2; k++) {
            int idx = k == 0 ? (int)i : s->extra;
            if (idx < 0 || !p->kern[idx].revents || p->kern[idx].fd < 0)
                continue;
            s->fired[k] = !shim_obj_fired(s->obj, p->user[i].fd,
                                          p->kern[idx].fd, self);
        }
    }
    if (p->kern[p->nk - 1].revents)
        shim_thread_wake_drain();
}

/* A managed entry's revents; a wait fd that fired and stays readable
 * while the entry reports nothing asked is left out from now on. */
static short managed_revents(struct pslot *s, const struct pollfd *u)
{
    short ev = (short)(shim_obj_mask(s->obj, u->fd) &
                       (uint16_t)(u->events | POLLERR | POLLHUP));
    for (int k = 0; k < 2; k++) {
        if (s->fired[k] && !ev)
            s->stuck[k] = s->wfd[k];
        s->fired[k] = false;
    }
    return ev;
}

/* Fill user revents from the managed masks and the kernel's answers for
 * native fds (when it has answered); returns the count of ready
 * entries. */
static int pset_collect(struct pset *p, bool kernel_valid)
{
    int ready = 0;
    for (nfds_t i = 0; i < p->n; i++) {
        struct pollfd *u = &p->user[i];
        if (p->slot[i].obj)
            u->revents = managed_revents(&p->slot[i], u);
        else
            u->revents = kernel_valid ? p->kern[i].revents : 0;
        if (u->revents)
            ready++;
    }
    return ready;
}

static bool has_native(const struct pset *p)
{
    for (nfds_t i = 0; i < p->n; i++)
        if (!p->slot[i].obj && p->user[i].fd >= 0)
            return true;
    return false;
}

/* The kernel's look; -errno on failure. */
static int kernel_wait(struct pset *p, const struct timespec *tp,
                       const sigset_t *sigmask)
{
    pset_refresh(p);
    /* No wake fd (sandboxed: see shim_sandboxed): not even an entry. */
    nfds_t nk = p->kern[p->nk - 1].fd >= 0 ? p->nk : p->nk - 1;
    if (REAL(ppoll)(p->kern, nk, tp, sigmask) < 0)
        return -errno; /* EINTR included: poll is never restarted */
    pset_ack(p);
    return 0;
}

/* The wait loop.  deadline_ns < 0: none.  Returns ready count or
 * -errno. */
static int pset_wait(struct pset *p, int64_t deadline_ns,
                     const sigset_t *sigmask)
{
    const struct timespec zero = { 0, 0 };
    bool fresh = false;
    if (has_native(p)) {
        /* A first look at the native fds, without blocking. */
        int err = kernel_wait(p, &zero, NULL);
        if (err)
            return err;
        fresh = true;
    }
    for (;;) {
        int ready = pset_collect(p, fresh);
        if (ready)
            return ready;
        struct timespec left, *tp = NULL;
        if (deadline_ns >= 0) {
            int64_t rem = deadline_ns - shim_now_ns();
            if (rem <= 0)
                return 0;
            left = (struct timespec){ rem / 1000000000, rem % 1000000000 };
            tp = &left;
        }
        int err = kernel_wait(p, tp, sigmask);
        if (err)
            return err;
        fresh = true;
    }
}

static int poll_managed(struct pollfd *ufds, nfds_t n,
                        const struct timespec *timeout,
                        const sigset_t *sigmask, bool *mine)
{
    *mine = false;
    if (fdt_capacity() == 0 || shim_in_shim)
        return 0;
    /* (Sandboxed, prlimit64 may kill: the kernel's ppoll checks it.) */
    struct rlimit rl;
    if (!atomic_load(&shim_sandboxed) &&
        getrlimit(RLIMIT_NOFILE, &rl) == 0 && n > rl.rlim_cur)
        return 0; /* the kernel's EINVAL */
    struct pset p;
    int r = pset_init(&p, ufds, n);
    if (r == 0)
        return 0;
    *mine = true;
    if (r < 0) {
        errno = -r;
        return -1;
    }
    int64_t deadline = -1;
    if (timeout)
        deadline = shim_now_ns() + (int64_t)timeout->tv_sec * 1000000000 +
                   timeout->tv_nsec;
    r = pset_wait(&p, deadline, sigmask);
    if (r >= 0) {
        for (nfds_t i = 0; i < n && r >= 0; i++)
            if (shim_copy_to_user(&ufds[i].revents, &p.user[i].revents,
                                  sizeof(short)) != sizeof(short))
                r = -EFAULT;
    }
    pset_free(&p);
    if (r < 0) {
        errno = -r;
        return -1;
    }
    return r;
}

int poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
    struct timespec ts = { timeout_ms / 1000, (timeout_ms % 1000) * 1000000L };
    bool mine;
    int r = poll_managed(fds, n, timeout_ms < 0 ? NULL : &ts, NULL, &mine);
    return mine ? r : REAL(poll)(fds, n, timeout_ms);
}

int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
          const sigset_t *sigmask)
{
    struct timespec ts;
    if (timeout) {
        if (shim_copy_from_user(&ts, timeout, sizeof(ts)) != sizeof(ts) ||
            ts.tv_sec < 0 || ts.tv_nsec < 0 || ts.tv_nsec >= 1000000000)
            return REAL(ppoll)(fds, n, timeout, sigmask);
    }
    bool mine;
    int r = poll_managed(fds, n, timeout ? &ts : NULL, sigmask, &mine);
    return mine ? r : REAL(ppoll)(fds, n, timeout, sigmask);
}

extern void __chk_fail(void) __attribute__((noreturn));

int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
    if (fdslen / sizeof(*fds) < n)
        __chk_fail();
    return poll(fds, n, timeout);
}

int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
                const sigset_t *sigmask, size_t fdslen)
{
    if (fdslen / sizeof(*fds) < n)
        __chk_fail();
    return ppoll(fds, n, timeout, sigmask);
}

/* ---- select ---------------------------------------------------------- */

static bool sets_have_managed(int nfds, fd_set *r, fd_set *w, fd_set *e)
{
    if (fdt_capacity() == 0 || shim_in_shim || nfds <= 0 || nfds > FD_SETSIZE)
        return false;
    for (int fd = 0; fd < nfds; fd++)
        if (((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) ||
             (e && FD_ISSET(fd, e))) && fdt_waitable(fd))
            return true;
    return false;
}

/* select over our poll: returns the bit count or -1 with errno. */
static int select_managed(int nfds, fd_set *r, fd_set *w, fd_set *e,
                          const struct timespec *timeout,
                          const sigset_t *sigmask)
{
    struct pollfd pf[FD_SETSIZE];
    nfds_t n = 0;
    for (int fd = 0; fd < nfds; fd++) {
        short ev = 0;
        if (r && FD_ISSET(fd, r))
            ev |= POLLIN;
        if (w && FD_ISSET(fd, w))
            ev |= POLLOUT;
        if (e && FD_ISSET(fd, e))
            ev |= POLLPRI;
        if (ev)
            pf[n++] = (struct pollfd){ fd, ev, 0 };
    }
    bool mine;
    int k = poll_managed(pf, n, timeout, sigmask, &mine);
    if (!mine)
        k = REAL(ppoll)(pf, n, timeout, sigmask);
    if (k < 0)
        return -1;
    for (nfds_t i = 0; i < n; i++)
        if (pf[i].revents & POLLNVAL) {
            errno = EBADF;
            return -1;
        }
    int bits = 0;
    for (nfds_t i = 0; i < n; i++) {
        int fd = pf[i].fd;
        short rv = pf[i].revents;
        if (r && FD_ISSET(fd, r)) {
            if (rv & (POLLIN | POLLHUP | POLLERR))
                bits++;
            else
                FD_CLR(fd, r);
        }
        if (w && FD_ISSET(fd, w)) {
            if (rv & (POLLOUT | POLLERR))
                bits++;
            else
                FD_CLR(fd, w);
        }
        if (e && FD_ISSET(fd, e)) {
            if (rv & POLLPRI)
                bits++;
            else
                FD_CLR(fd, e);
        }
    }
    return bits;
}

int select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
    if (!sets_have_managed(nfds, r, w, e))
        return REAL(select)(nfds, r, w, e, tv);
    if (tv && (tv->tv_sec < 0 || tv->tv_usec < 0)) {
        errno = EINVAL;
        return -1;
    }
    struct timespec ts, *tp = NULL;
    int64_t start = shim_now_ns();
    if (tv) {
        ts = (struct timespec){ tv->tv_sec + tv->tv_usec / 1000000,
                                (tv->tv_usec % 1000000) * 1000 };
        tp = &ts;
    }
    int k = select_managed(nfds, r, w, e, tp, NULL);
    if (tv) {
        /* Linux reports the time left. */
        int64_t left = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec -
                       (shim_now_ns() - start);
        if (left < 0)
            left = 0;
        tv->tv_sec = left / 1000000000;
        tv->tv_usec = (left % 1000000000) / 1000;
    }
    return k;
}

int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e,
            const struct timespec *timeout, const sigset_t *sigmask)
{
    if (!sets_have_managed(nfds, r, w, e))
        return REAL(pselect)(nfds, r, w, e, timeout, sigmask);
    return select_managed(nfds, r, w, e, timeout, sigmask);
}
