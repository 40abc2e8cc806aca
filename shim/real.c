/*
 * The libc functions the shim wraps, resolved with dlsym(RTLD_NEXT) so
 * that the shim stacks with other preloaded libraries, and the process-wide
 * setup done on first use (never in a constructor: a constructor that
 * allocates or starts threads can hang under other allocators' preloads).
 */
#include "shim.h"

#include "pvc/log.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct shim_real shim_real;
__thread int shim_in_shim;
atomic_int shim_sandboxed;
atomic_int shim_fork_epoch;

static atomic_int resolved;          /* 0 until every pointer is set */
static __thread int resolving;       /* this thread is inside dlsym */
static atomic_int atfork_registered;

/* A symbol lookup that comes back into this library (a preload stacked
 * oddly) would loop forever: treat it as missing. */
static void *resolve(const char *name)
{
    void *fn = dlsym(RTLD_NEXT, name);
    Dl_info mine, theirs;
    if (fn && dladdr((void *)shim_init, &mine) && dladdr(fn, &theirs) &&
        mine.dli_fbase == theirs.dli_fbase)
        fn = NULL;
    return fn;
}

static void fork_prepare(void)
{
    fdt_fork_prepare();
}

static void fork_parent(void)
{
    atomic_fetch_add(&shim_fork_epoch, 1);
    fdt_fork_parent();
}

/* The child shares every socket with the parent through the kernel (token
 * fds) and MAP_SHARED memory (rings, state pages), so the table is kept as
 * it is; only the daemon connections are the parent's and must go, and
 * the wait machinery's locks and thread wake fds (waitq.c). */
static void fork_child(void)
{
    atomic_fetch_add(&shim_fork_epoch, 1);
    shim_sigdefer_fork_child();
    shim_uaccess_fork_child();
    fdt_fork_child();
    shim_daemon_fork_child();
    shim_waitq_fork_child();
}

void shim_init(void)
{
    if (atomic_load_explicit(&resolved, memory_order_acquire) || resolving)
        return;
    resolving = 1;
    /* Threads racing here all store the same values. */
#define SHIM_RESOLVE(ret, name, args)                                        \
    __atomic_store_n(&shim_real.name,                                       \
                     (ret(*) args)resolve(#name),             \
                     __ATOMIC_RELAXED);
    SHIM_REAL_FUNCS(SHIM_RESOLVE)
#undef SHIM_RESOLVE
    shim_sock_setup();
    atomic_store_explicit(&resolved, 1, memory_order_release);
    resolving = 0;
    if (!atomic_exchange(&atfork_registered, 1))
        pthread_atfork(fork_prepare, fork_parent, fork_child);
}

bool shim_log_enabled(void)
{
    return shim_env_log();
}

extern char *program_invocation_short_name;

void shim_log(const char *fmt, ...)
{
    if (!shim_log_enabled())
        return;
    int saved = errno;
    char line[512];
    int n = snprintf(line, sizeof(line), "libpvcalls[%s:%d]: ",
                     program_invocation_short_name, (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line))
        n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    /* One write, so that lines of several processes do not interleave. */
    ssize_t w = REAL(write)(2, line, (size_t)n);
    (void)w;
    errno = saved;
}
