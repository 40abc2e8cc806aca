/*
 * The shim's critical sections and signals.  A handler that calls into the
 * shim on a thread that holds one of its locks would deadlock, so those
 * sections used to block every signal: a pthread_sigmask pair, two
 * syscalls (2 µs on the 2-core VM) per lock, up to four locks per socket
 * call.  Instead a thread-local depth marks the section, and the signal
 * trampoline (sig.c), which every application handler goes through,
 * defers a signal that lands inside one: it is recorded and sent again
 * to this thread (rt_tgsigqueueinfo, same siginfo) when the outermost
 * section ends, which is what unblocking a blocked signal does.  A
 * one-shot handler (SA_RESETHAND: the kernel already reset the signal to
 * its default action when it reached the trampoline) is called directly
 * instead, as the kernel would have called it once.
 *
 * Kept on the blocking path: a seccomp-sandboxed program (re-sending a
 * signal is a syscall its policy may kill for) and sections that wait in
 * the kernel (shim_sigblock_hard: a deferred signal would interrupt the
 * wait, which blocking does not).  Faults (SIGSEGV, SIGBUS, ...) are never
 * deferred: returning would fault again.  Handlers installed behind the
 * shim's back (a raw rt_sigaction syscall) run at once, as they always
 * could run outside a section.
 */
#include "shim.h"

#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* In the last word of a saved mask (beyond the kernel's 64 signals, which
 * pthread_sigmask never passes on): this section took the fast path. */
#define FAST_MARK 0x5056434641535431ull
#define SAVED_WORDS (sizeof(sigset_t) / sizeof(unsigned long))

/* Signals deferred while this thread was in a section: a few with their
 * siginfo, the rest (rarer than rare) only by number. */
#define DEFER_MAX 8

static __thread volatile sig_atomic_t crit_depth;
static __thread volatile sig_atomic_t n_deferred;
static __thread siginfo_t deferred[DEFER_MAX];
static __thread bool deferred_direct[DEFER_MAX];
static __thread volatile sig_atomic_t overflow_pending;
static __thread sigset_t overflow;

/* sig.c's, weak: the unit tests that build the shim's locks without the
 * trampoline have no one-shot handler to run. */
extern void shim_sig_run(int sig, siginfo_t *si) __attribute__((weak));

static bool is_fast(const sigset_t *saved)
{
    const unsigned long *w = (const unsigned long *)(const void *)saved;
    return w[SAVED_WORDS - 1] == (unsigned long)FAST_MARK;
}

void shim_sigblock_hard(sigset_t *saved)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, saved);
}

void shim_sigblock(sigset_t *saved)
{
    if (atomic_load_explicit(&shim_sandboxed, memory_order_relaxed)) {
        shim_sigblock_hard(saved);
        /* A mask the kernel gave back can never carry the mark. */
        ((unsigned long *)(void *)saved)[SAVED_WORDS - 1] = 0;
        return;
    }
    ((unsigned long *)(void *)saved)[SAVED_WORDS - 1] =
        (unsigned long)FAST_MARK;
    crit_depth++;
    atomic_signal_fence(memory_order_seq_cst);
}

static void resend(int sig, siginfo_t *si)
{
    pid_t pid = getpid();
    pid_t tid = (pid_t)syscall(SYS_gettid);
    if (!si || syscall(SYS_rt_tgsigqueueinfo, pid, tid, sig, si) != 0)
        syscall(SYS_tgkill, pid, tid, sig);
}

/* The outermost section ended: the deferred signals arrive now.  A signal
 * landing meanwhile (depth is 0) is handled at once by the trampoline. */
static void replay(void)
{
    while (n_deferred > 0) {
        siginfo_t si = deferred[n_deferred - 1];
        bool direct = deferred_direct[n_deferred - 1];
        n_deferred--;
        if (direct && shim_sig_run)
            shim_sig_run(si.si_signo, &si);
        else
            resend(si.si_signo, &si);
    }
    if (overflow_pending) {
        overflow_pending = 0;
        for (int sig = 1; sig < _NSIG; sig++)
            if (sigismember(&overflow, sig) == 1) {
                sigdelset(&overflow, sig);
                resend(sig, NULL);
            }
    }
}

void shim_sigrestore(const sigset_t *saved)
{
    if (!is_fast(saved)) {
        pthread_sigmask(SIG_SETMASK, saved, NULL);
        return;
    }
    atomic_signal_fence(memory_order_seq_cst);
    if (--crit_depth == 0 && (n_deferred > 0 || overflow_pending))
        replay();
}

static bool is_fault(int sig)
{
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL ||
           sig == SIGFPE || sig == SIGTRAP || sig == SIGSYS;
}

bool shim_sig_defer(int sig, const siginfo_t *si, bool one_shot)
{
    if (crit_depth == 0 || is_fault(sig))
        return false;
    int n = n_deferred;
    if (n < DEFER_MAX && (si || one_shot)) {
        if (si)
            deferred[n] = *si;
        else
            memset(&deferred[n], 0, sizeof(deferred[n]));
        deferred[n].si_signo = sig;
        deferred_direct[n] = one_shot;
        n_deferred = n + 1;
    } else {
        sigaddset(&overflow, sig);
        overflow_pending = 1;
    }
    return true;
}

/* atfork child: signals deferred meanwhile were the parent's (sent to its
 * thread); the child must not receive them again. */
void shim_sigdefer_fork_child(void)
{
    n_deferred = 0;
    overflow_pending = 0;
    sigemptyset(&overflow);
}
