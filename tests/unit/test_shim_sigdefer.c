/*
 * Signals inside the shim's critical sections (shim/sigdefer.c): a handler
 * never runs inside a section; it runs, with its siginfo, when the
 * outermost section ends; faults are not deferred; a sandboxed process
 * blocks signals for real.  The handler here plays the trampoline's part
 * (sig.c asks shim_sig_defer first, exactly like this).
 */
#include <criterion/criterion.h>

#include "../../shim/sigdefer.c"

#include <signal.h>

/* The library defines them in real.c and sig.c, which this test does not
 * include. */
atomic_int shim_sandboxed;

static volatile sig_atomic_t run_directly, run_directly_sig;

void shim_sig_run(int sig, siginfo_t *si)
{
    (void)si;
    run_directly++;
    run_directly_sig = sig;
}

static volatile sig_atomic_t ran, ran_inside, last_value;
static volatile sig_atomic_t inside;

static void handler(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (shim_sig_defer(sig, si, false))
        return;
    ran++;
    if (inside)
        ran_inside++;
    last_value = si->si_value.sival_int;
}

/* ThreadSanitizer holds signals back until its next interceptor: a
 * signal sent to ourselves is not delivered on return, which is what
 * these tests time against. */
static void skip_under_tsan(void)
{
#ifdef __SANITIZE_THREAD__
    cr_skip_test("TSan delays the delivery of signals");
#endif
}

static void install(int sig)
{
    skip_under_tsan();
    struct sigaction sa = { .sa_sigaction = handler, .sa_flags = SA_SIGINFO };
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(sig, &sa, NULL), 0);
    ran = ran_inside = last_value = 0;
}

static void queue_self(int sig, int value)
{
    union sigval v = { .sival_int = value };
    cr_assert_eq(pthread_sigqueue(pthread_self(), sig, v), 0);
}

Test(sigdefer, handler_runs_after_the_outermost_section)
{
    install(SIGUSR1);
    sigset_t outer, inner;
    shim_sigblock(&outer);
    shim_sigblock(&inner);
    inside = 1;
    queue_self(SIGUSR1, 42);
    cr_assert_eq(ran, 0, "not inside a section");
    shim_sigrestore(&inner);
    cr_assert_eq(ran, 0, "not inside the outer section either");
    inside = 0;
    shim_sigrestore(&outer);
    cr_assert_eq(ran, 1, "delivered when the section ended");
    cr_assert_eq(ran_inside, 0);
    cr_assert_eq(last_value, 42, "with its siginfo");
}

Test(sigdefer, outside_a_section_the_handler_runs_at_once)
{
    install(SIGUSR2);
    queue_self(SIGUSR2, 7);
    cr_assert_eq(ran, 1);
    cr_assert_eq(last_value, 7);
}

Test(sigdefer, several_signals_all_arrive)
{
    install(SIGRTMIN);
    sigset_t saved;
    shim_sigblock(&saved);
    inside = 1;
    for (int i = 0; i < DEFER_MAX + 3; i++)
        queue_self(SIGRTMIN, i);
    inside = 0;
    shim_sigrestore(&saved);
    /* The first DEFER_MAX with their siginfo, the rest at least once. */
    cr_assert_geq(ran, DEFER_MAX + 1);
    cr_assert_eq(ran_inside, 0);
}

Test(sigdefer, a_fault_is_not_deferred)
{
    cr_assert_not(shim_sig_defer(SIGTERM, NULL, false), "outside a section");
    sigset_t saved;
    shim_sigblock(&saved);
    cr_assert_not(shim_sig_defer(SIGSEGV, NULL, false));
    cr_assert_not(shim_sig_defer(SIGBUS, NULL, false));
    cr_assert(shim_sig_defer(SIGTERM, NULL, false));
    shim_sigdefer_fork_child(); /* forget it: not a real signal */
    shim_sigrestore(&saved);
}

Test(sigdefer, sandboxed_sections_block_for_real)
{
    atomic_store(&shim_sandboxed, 1);
    sigset_t saved, now;
    shim_sigblock(&saved);
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, NULL, &now), 0);
    cr_assert_eq(sigismember(&now, SIGUSR1), 1, "blocked in the kernel");
    atomic_store(&shim_sandboxed, 0); /* restore follows the saved mark */
    shim_sigrestore(&saved);
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, NULL, &now), 0);
    cr_assert_eq(sigismember(&now, SIGUSR1), 0);
}

/* A one-shot handler (SA_RESETHAND): the kernel has already reset the
 * signal to its default action, so sending it again would apply that
 * (SIGUSR1 would kill us); it is run directly, once. */
static void one_shot_handler(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (shim_sig_defer(sig, si, true))
        return;
    ran++;
}

Test(sigdefer, a_one_shot_handler_runs_directly_after_the_section)
{
    skip_under_tsan();
    struct sigaction sa = { .sa_sigaction = one_shot_handler,
                            .sa_flags = SA_SIGINFO | SA_RESETHAND };
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
    ran = run_directly = 0;
    sigset_t saved;
    shim_sigblock(&saved);
    queue_self(SIGUSR1, 3);
    cr_assert_eq(run_directly, 0);
    shim_sigrestore(&saved);
    cr_assert_eq(run_directly, 1, "run once, directly");
    cr_assert_eq(run_directly_sig, SIGUSR1);
    cr_assert_eq(ran, 0, "not sent again (the default action would kill)");
}
