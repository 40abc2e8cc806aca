/*
 * poll/ppoll/select/pselect over sets that hold managed sockets.
 *
 * A managed socket's token never becomes readable (its peer is the
 * daemon, which sends nothing), so the kernel cannot answer for it.  With
 * no managed fd in the set, the call goes straight to libc (no copy at all
 * in a process that never had one).  Otherwise: acknowledge each managed
 * socket's event channel, compute its readiness from the ring, and if
 * nothing is ready, make one kernel wait over the native fds plus the
 * managed sockets' event-channel fds; after it, loop (an event is only a
 * doorbell, readiness always comes from the ring).  Never a timer-driven
 * re-poll, never a spin.
 *
 * epoll on managed sockets is the next issue's: epoll_ctl on a token
 * registers the token itself, which never reports readiness.
 */
#include "shim.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define STACK_FDS 64

struct pset {
    nfds_t n;
    struct pollfd *user;   /* copy of the caller's array */
    struct pollfd *kern;   /* what the kernel waits on */
    struct shim_sock **socks; /* managed sockets (NULL: native) */
    struct pollfd user_st[STACK_FDS], kern_st[STACK_FDS];
    struct shim_sock *socks_st[STACK_FDS];
};

static void pset_free(struct pset *p)
{
    for (nfds_t i = 0; i < p->n; i++)
        if (p->socks[i])
            shim_sock_put(p->socks[i]);
    if (p->user != p->user_st) {
        free(p->user);
        free(p->kern);
        free(p->socks);
    }
}

/* 1: holds managed sockets (set up); 0: none (nothing to free);
 * -errno. */
static int pset_init(struct pset *p, const struct pollfd *ufds, nfds_t n)
{
    p->n = 0;
    p->user = p->user_st;
    p->kern = p->kern_st;
    p->socks = p->socks_st;
    if (n > STACK_FDS) {
        p->user = calloc(n, sizeof(*p->user));
        p->kern = calloc(n, sizeof(*p->kern));
        p->socks = calloc(n, sizeof(*p->socks));
        if (!p->user || !p->kern || !p->socks) {
            pset_free(p);
            return -ENOMEM;
        }
    }
    size_t bytes = n * sizeof(*ufds);
    if (n && shim_copy_from_user(p->user, ufds, bytes) != (ssize_t)bytes) {
        pset_free(p);
        return -EFAULT;
    }
    p->n = n;
    bool any = false;
    for (nfds_t i = 0; i < n; i++) {
        p->socks[i] = p->user[i].fd >= 0 ? shim_sock_get(p->user[i].fd)
                                         : NULL;
        struct shim_sock *s = p->socks[i];
        p->kern[i] = p->user[i];
        if (s) {
            any = true;
            /* Connected: its doorbell.  Otherwise nothing the kernel
             * could report (-1 is skipped): our mask decides, and the
             * token's own HUP (the daemon gone) would only make the wait
             * spin. */
            p->kern[i] = s->evt_fd >= 0 && atomic_load(&s->state) ==
                                                   SHIM_CONNECTED
                             ? (struct pollfd){ s->evt_fd, POLLIN, 0 }
                             : (struct pollfd){ -1, 0, 0 };
        }
    }
    if (!any) {
        pset_free(p);
        return 0;
    }
    return 1;
}

/* Fill user revents from the managed masks and the kernel's answers for
 * native fds; returns the count of ready entries. */
static int pset_collect(struct pset *p, bool kernel_valid)
{
    int ready = 0;
    for (nfds_t i = 0; i < p->n; i++) {
        struct pollfd *u = &p->user[i];
        if (p->socks[i])
            u->revents = shim_poll_mask(p->socks[i], u->fd, u->events);
        else
            u->revents = kernel_valid ? p->kern[i].revents : 0;
        if (u->revents)
            ready++;
    }
    return ready;
}

static void ack_all(struct pset *p)
{
    for (nfds_t i = 0; i < p->n; i++)
        if (p->socks[i] && p->socks[i]->evt && p->kern[i].events)
            pvc_evtchn_ack(p->socks[i]->evt);
}

static bool has_native(const struct pset *p)
{
    for (nfds_t i = 0; i < p->n; i++)
        if (!p->socks[i] && p->user[i].fd >= 0)
            return true;
    return false;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The wait loop.  deadline_ns < 0: none.  Returns ready count or
 * -errno. */
static int pset_wait(struct pset *p, int64_t deadline_ns,
                     const sigset_t *sigmask)
{
    const struct timespec zero = { 0, 0 };
    for (;;) {
        ack_all(p);
        int ready = pset_collect(p, false);
        if (has_native(p)) {
            /* A look at the native fds without blocking. */
            for (nfds_t i = 0; i < p->n; i++)
                p->kern[i].revents = 0;
            if (REAL(ppoll)(p->kern, p->n, &zero, NULL) < 0)
                return -errno;
            ready = pset_collect(p, true);
        }
        if (ready)
            return ready;
        struct timespec left, *tp = NULL;
        if (deadline_ns >= 0) {
            int64_t rem = deadline_ns - now_ns();
            if (rem <= 0)
                return 0;
            left = (struct timespec){ rem / 1000000000, rem % 1000000000 };
            tp = &left;
        }
        int r = REAL(ppoll)(p->kern, p->n, tp, sigmask);
        if (r < 0)
            return -errno; /* EINTR included: poll is never restarted */
    }
}

static int poll_managed(struct pollfd *ufds, nfds_t n,
                        const struct timespec *timeout,
                        const sigset_t *sigmask, bool *mine)
{
    *mine = false;
    if (fdt_capacity() == 0 || shim_in_shim)
        return 0;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && n > rl.rlim_cur)
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
        deadline = now_ns() + (int64_t)timeout->tv_sec * 1000000000 +
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
             (e && FD_ISSET(fd, e))) && fdt_has(fd))
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
    int64_t start = now_ns();
    if (tv) {
        ts = (struct timespec){ tv->tv_sec + tv->tv_usec / 1000000,
                                (tv->tv_usec % 1000000) * 1000 };
        tp = &ts;
    }
    int k = select_managed(nfds, r, w, e, tp, NULL);
    if (tv) {
        /* Linux reports the time left. */
        int64_t left = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec -
                       (now_ns() - start);
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
