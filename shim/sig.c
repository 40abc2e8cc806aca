/*
 * Signal handlers and SA_RESTART.  A blocking socket call that the shim
 * implements as a wait on an event channel must end like the kernel's:
 * EINTR when the signal's handler was installed without SA_RESTART, a
 * transparent restart when with.  poll() itself is never restarted by the
 * kernel, so we must know which handlers ran during the wait: every
 * handler the application installs is wrapped by a trampoline that records
 * "a handler without SA_RESTART ran" in a thread-local flag, then calls the
 * application's handler.  The application always sees its own handler in
 * sigaction()'s old value.
 */
#include "shim.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

__thread volatile sig_atomic_t shim_sig_norestart;

/* What the application installed, per signal. */
static struct sigaction app_act[_NSIG];
/* Signals siginterrupt(sig, 1) asked not to restart (for signal()). */
static sigset_t sigintr;

static void run_handler(int sig, siginfo_t *si, void *uc)
{
    const struct sigaction *a = &app_act[sig];
    if (!(a->sa_flags & SA_RESTART))
        shim_sig_norestart = 1;
    if (a->sa_flags & SA_SIGINFO) {
        a->sa_sigaction(sig, si, uc);
        return;
    }
    void (*h)(int) = a->sa_handler;
    if (h != SIG_IGN && h != SIG_DFL)
        h(sig);
}

void shim_sig_run(int sig, siginfo_t *si)
{
    if (sig > 0 && sig < _NSIG)
        run_handler(sig, si, NULL);
}

static void trampoline(int sig, siginfo_t *si, void *uc)
{
    int saved_errno = errno;
    bool later = shim_sig_defer(sig, si,
                                app_act[sig].sa_flags & SA_RESETHAND);
    errno = saved_errno;
    if (later)
        return; /* the end of the shim's section delivers it */
    run_handler(sig, si, uc);
}

static bool is_trampoline(const struct sigaction *k)
{
    return (k->sa_flags & SA_SIGINFO) && k->sa_sigaction == trampoline;
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
    if (sig <= 0 || sig >= _NSIG || sig == SIGKILL || sig == SIGSTOP ||
        shim_in_shim)
        return REAL(sigaction)(sig, act, oact);
    struct sigaction want, kold, prev = app_act[sig];
    const struct sigaction *kact = NULL;
    if (act) {
        if (shim_copy_from_user(&want, act, sizeof(want)) !=
            (ssize_t)sizeof(want)) {
            errno = EFAULT;
            return -1;
        }
        bool handler = (want.sa_flags & SA_SIGINFO) ||
                       (want.sa_handler != SIG_DFL &&
                        want.sa_handler != SIG_IGN);
        struct sigaction k = want;
        if (handler) {
            /* Store first: the signal may arrive as soon as it is set. */
            app_act[sig] = want;
            k.sa_sigaction = trampoline;
            k.sa_flags |= SA_SIGINFO;
        }
        want = k;
        kact = &want;
    }
    if (REAL(sigaction)(sig, kact, &kold) < 0) {
        int err = errno;
        app_act[sig] = prev;
        errno = err;
        return -1;
    }
    if (oact) {
        const struct sigaction *show = is_trampoline(&kold) ? &prev : &kold;
        if (shim_copy_to_user(oact, show, sizeof(*show)) !=
            (ssize_t)sizeof(*show)) {
            errno = EFAULT;
            return -1;
        }
    }
    return 0;
}

/* glibc's BSD-style signal(): SA_RESTART unless siginterrupt() said
 * otherwise, the signal blocked in its own handler. */
static sighandler_t install(int sig, sighandler_t h, int flags, bool self)
{
    struct sigaction a, old;
    memset(&a, 0, sizeof(a));
    a.sa_handler = h;
    sigemptyset(&a.sa_mask);
    if (self && sig > 0 && sig < _NSIG)
        sigaddset(&a.sa_mask, sig);
    a.sa_flags = flags;
    if (h == SIG_ERR || sigaction(sig, &a, &old) < 0) {
        errno = EINVAL;
        return SIG_ERR;
    }
    return old.sa_handler;
}

sighandler_t signal(int sig, sighandler_t h)
{
    int restart = sig > 0 && sig < _NSIG && sigismember(&sigintr, sig) == 1
                      ? 0 : SA_RESTART;
    return install(sig, h, restart, true);
}

sighandler_t bsd_signal(int sig, sighandler_t h)
{
    return signal(sig, h);
}

/* System V semantics: one-shot, not blocked in its handler, no restart. */
sighandler_t sysv_signal(int sig, sighandler_t h)
{
    return install(sig, h, SA_RESETHAND | SA_NODEFER, false);
}

sighandler_t __sysv_signal(int sig, sighandler_t h)
{
    return sysv_signal(sig, h);
}

int siginterrupt(int sig, int flag)
{
    struct sigaction a;
    if (sig <= 0 || sig >= _NSIG || sigaction(sig, NULL, &a) < 0) {
        errno = EINVAL;
        return -1;
    }
    if (flag) {
        sigaddset(&sigintr, sig);
        a.sa_flags &= ~SA_RESTART;
    } else {
        sigdelset(&sigintr, sig);
        a.sa_flags |= SA_RESTART;
    }
    return sigaction(sig, &a, NULL);
}
