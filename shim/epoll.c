/*
 * The interposed epoll calls.  Every epoll fd the program creates is
 * tracked (so that dup and fork share what the shim keeps for it), but an
 * epoll call goes to libc untouched unless a managed object is involved:
 * epoll_ctl of a managed socket or epoll fd, epoll_wait on an instance
 * holding one.  Argument errors are checked in the kernel's order so that
 * errno is what the native call would say.
 */
#include "shim.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

/* Linux's limits (fs/eventpoll.c). */
#define EP_MAX_EVENTS (INT_MAX / (int)sizeof(struct epoll_event))
#define EXCLUSIVE_OK_BITS (EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP |         \
                           EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE)

static int fail(int err)
{
    errno = err;
    return -1;
}

/* A failure to track costs nothing now: a later epoll_ctl of a managed
 * socket adopts the fd (shim_epoll_get). */
static int track(int epfd)
{
    if (epfd >= 0 && !shim_in_shim) {
        int saved = errno;
        shim_epoll_track(epfd);
        errno = saved;
    }
    return epfd;
}

int epoll_create(int size)
{
    return track(REAL(epoll_create)(size));
}

int epoll_create1(int flags)
{
    return track(REAL(epoll_create1)(flags));
}

/* EPOLLEXCLUSIVE's rules: ADD only, not on an epoll fd, with few bits. */
static int exclusive_check(int op, const struct epoll_event *ev,
                           const struct fdt_obj *obj)
{
    if (op == EPOLL_CTL_DEL || !(ev->events & EPOLLEXCLUSIVE))
        return 0;
    if (op == EPOLL_CTL_MOD)
        return -EINVAL;
    if (op == EPOLL_CTL_ADD &&
        (obj->kind == FDT_EPOLL || (ev->events & ~EXCLUSIVE_OK_BITS)))
        return -EINVAL;
    return 0;
}

static int ctl_managed(int epfd, int op, int fd, struct fdt_obj *obj,
                       const struct epoll_event *ev)
{
    struct shim_epoll *ep = shim_epoll_get(epfd);
    if (!ep)
        return -errno;
    int err = 0;
    if ((struct fdt_obj *)ep == obj)
        err = -EINVAL; /* an epoll fd inside itself */
    if (!err)
        err = exclusive_check(op, ev, obj);
    if (!err)
        err = shim_epoll_ctl(ep, epfd, op, fd, obj, ev);
    shim_epoll_put(ep);
    return err;
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    if (shim_in_shim || !fdt_has_any(fd))
        return REAL(epoll_ctl)(epfd, op, fd, event);
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    if (op != EPOLL_CTL_DEL &&
        shim_copy_from_user(&ev, event, sizeof(ev)) != (ssize_t)sizeof(ev))
        return fail(EFAULT);
    struct fdt_obj *obj = fdt_get_kind(fd, FDT_ANY);
    if (!obj) /* closed meanwhile */
        return REAL(epoll_ctl)(epfd, op, fd, event);
    int err = ctl_managed(epfd, op, fd, obj, &ev);
    fdt_put(obj);
    return err ? fail(-err) : 0;
}

/* The instance behind epfd if the shim must answer this wait (a
 * reference), else NULL: the real call will do. */
static struct shim_epoll *managed_instance(int epfd)
{
    if (shim_in_shim || !fdt_waitable(epfd))
        return NULL;
    struct shim_epoll *ep = (struct shim_epoll *)fdt_get_kind(epfd,
                                                              FDT_EPOLL);
    if (ep && shim_epoll_unmanaged(ep)) {
        shim_epoll_put(ep);
        ep = NULL;
    }
    return ep;
}

/* One epoll_wait, epoll_pwait or epoll_pwait2 call. */
struct wait_call {
    int epfd;
    struct epoll_event *events;
    int maxevents;
    const sigset_t *sigmask;
    bool pwait2;
    int timeout_ms;               /* epoll_wait, epoll_pwait */
    const struct timespec *uts;   /* epoll_pwait2 (user memory) */
    struct timespec ts;           /* its copy, once checked */
    int ts_err;                   /* 0, EFAULT or EINVAL */
    int64_t deadline_ns;          /* < 0: none */
};

/* Parse the timeout once, before anything waits. */
static void take_timeout(struct wait_call *c)
{
    c->deadline_ns = -1;
    if (!c->pwait2) {
        if (c->timeout_ms >= 0)
            c->deadline_ns = shim_now_ns() + (int64_t)c->timeout_ms * 1000000;
        return;
    }
    if (!c->uts)
        return;
    if (shim_copy_from_user(&c->ts, c->uts, sizeof(c->ts)) !=
        sizeof(c->ts))
        c->ts_err = EFAULT;
    else if (c->ts.tv_sec < 0 || c->ts.tv_nsec < 0 ||
             c->ts.tv_nsec >= 1000000000)
        c->ts_err = EINVAL;
    else if (c->ts.tv_sec <= INT64_MAX / 1000000000 / 2) /* else: forever */
        c->deadline_ns = shim_now_ns() + c->ts.tv_sec * 1000000000 +
                         c->ts.tv_nsec;
}

/* The real call: with the caller's own timeout the first time (the
 * native call exactly), with what is left of it after a marker woke us. */
static int call_real(const struct wait_call *c, bool first)
{
    int64_t left = c->deadline_ns < 0 ? -1 : c->deadline_ns - shim_now_ns();
    if (left < -1)
        left = 0;
    if (c->pwait2) {
        struct timespec ts = { left / 1000000000, left % 1000000000 };
        return shim_real.epoll_pwait2(c->epfd, c->events, c->maxevents,
                                      first || left < 0 ? c->uts : &ts,
                                      c->sigmask);
    }
    int ms = first || left < 0 ? c->timeout_ms
                               : (int)((left + 999999) / 1000000);
    return REAL(epoll_pwait)(c->epfd, c->events, c->maxevents, ms,
                             c->sigmask);
}

/* The kernel reads _NSIG / 8 bytes of a sigmask. */
static int take_sigmask(const sigset_t *usig, sigset_t *set)
{
    sigemptyset(set);
    return shim_copy_from_user(set, usig, _NSIG / 8) == _NSIG / 8 ? 0
                                                                 : -EFAULT;
}

/* The shim's answer, with the kernel's order of argument errors. */
static int wait_managed(struct shim_epoll *ep, const struct wait_call *c)
{
    sigset_t set;
    int r = -c->ts_err;
    if (!r && c->sigmask)
        r = take_sigmask(c->sigmask, &set);
    if (!r && (c->maxevents <= 0 || c->maxevents > EP_MAX_EVENTS))
        r = -EINVAL;
    if (!r)
        r = shim_epoll_wait(ep, c->epfd, c->events, c->maxevents,
                            c->deadline_ns, c->sigmask ? &set : NULL);
    shim_epoll_put(ep);
    return r < 0 ? fail(-r) : r;
}

static int wait_common(struct wait_call *c)
{
    take_timeout(c);
    for (bool first = true;; first = false) {
        shim_epoll_fast_enter();
        struct shim_epoll *ep = managed_instance(c->epfd);
        if (ep) {
            shim_epoll_fast_leave();
            return wait_managed(ep, c);
        }
        int r = call_real(c, first);
        int err = errno;
        shim_epoll_fast_leave();
        errno = err;
        /* Woken only by the marker of an instance that now holds managed
         * members (shim_epoll_drop_markers): its wait is the shim's now. */
        if (r <= 0 || !fdt_waitable(c->epfd))
            return r;
        int kept = shim_epoll_drop_markers(c->events, r);
        if (kept)
            return kept;
    }
}

int epoll_wait(int epfd, struct epoll_event *events, int maxevents,
               int timeout)
{
    if (shim_in_shim || !fdt_has_any(epfd))
        return REAL(epoll_wait)(epfd, events, maxevents, timeout);
    struct wait_call c = { .epfd = epfd, .events = events,
                           .maxevents = maxevents, .timeout_ms = timeout };
    return wait_common(&c);
}

int epoll_pwait(int epfd, struct epoll_event *events, int maxevents,
                int timeout, const sigset_t *sigmask)
{
    if (shim_in_shim || !fdt_has_any(epfd))
        return REAL(epoll_pwait)(epfd, events, maxevents, timeout, sigmask);
    struct wait_call c = { .epfd = epfd, .events = events,
                           .maxevents = maxevents, .sigmask = sigmask,
                           .timeout_ms = timeout };
    return wait_common(&c);
}

int epoll_pwait2(int epfd, struct epoll_event *events, int maxevents,
                 const struct timespec *timeout, const sigset_t *sigmask)
{
    if (!REAL(epoll_pwait2))
        return fail(ENOSYS);
    if (shim_in_shim || !fdt_has_any(epfd))
        return shim_real.epoll_pwait2(epfd, events, maxevents, timeout,
                                      sigmask);
    struct wait_call c = { .epfd = epfd, .events = events,
                           .maxevents = maxevents, .sigmask = sigmask,
                           .pwait2 = true, .uts = timeout };
    return wait_common(&c);
}
