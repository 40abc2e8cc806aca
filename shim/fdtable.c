/*
 * fd -> managed socket.  An array indexed by fd, reserved with mmap at the
 * first insert (untouched pages cost nothing, so it is sized from the
 * RLIMIT_NOFILE hard limit, capped).  Lookups of unmanaged fds, which is
 * nearly every call a program makes, read one atomic pointer and take no
 * lock.  Taking a reference on a managed entry and every update happen
 * under one mutex with signals blocked, so a signal handler that calls
 * send() on this thread can never deadlock on it.
 */
#include "shim.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>

#define FDT_MIN_CAP 65536u
#define FDT_MAX_CAP (1u << 24)

static _Atomic(struct fdt_obj *) *table;
static atomic_int capacity;
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*release_fn)(struct fdt_obj *);

/* LeakSanitizer does not scan anonymous mappings: in a sanitizer build
 * the table is registered as a root so that the sockets it holds at exit
 * are not reported as leaks (weak: absent in normal builds). */
extern void __lsan_register_root_region(const void *p, size_t size)
    __attribute__((weak));

void fdt_set_release(void (*release)(struct fdt_obj *))
{
    release_fn = release;
}

int fdt_capacity(void)
{
    return atomic_load(&capacity);
}

static void lock(sigset_t *saved)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, saved);
    pthread_mutex_lock(&table_lock);
}

static void unlock(const sigset_t *saved)
{
    pthread_mutex_unlock(&table_lock);
    pthread_sigmask(SIG_SETMASK, saved, NULL);
}

/* Under the lock. */
static int ensure_table(void)
{
    if (table)
        return 0;
    struct rlimit rl;
    rlim_t want = FDT_MIN_CAP;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max > want)
        want = rl.rlim_max;
    if (want > FDT_MAX_CAP)
        want = FDT_MAX_CAP;
    void *p = mmap(NULL, want * sizeof(*table), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    if (__lsan_register_root_region)
        __lsan_register_root_region(p, want * sizeof(*table));
    table = p;
    atomic_store(&capacity, (int)want);
    return 0;
}

static bool in_range(int fd)
{
    return fd >= 0 && fd < atomic_load_explicit(&capacity,
                                                memory_order_acquire);
}

bool fdt_has(int fd)
{
    return in_range(fd) &&
           atomic_load_explicit(&table[fd], memory_order_acquire) != NULL;
}

void fdt_ref(struct fdt_obj *obj)
{
    atomic_fetch_add(&obj->refs, 1);
}

void fdt_put(struct fdt_obj *obj)
{
    if (obj && atomic_fetch_sub(&obj->refs, 1) == 1 && release_fn)
        release_fn(obj);
}

struct fdt_obj *fdt_get(int fd)
{
    if (!fdt_has(fd))
        return NULL;
    sigset_t saved;
    lock(&saved);
    struct fdt_obj *obj = atomic_load(&table[fd]);
    if (obj)
        fdt_ref(obj);
    unlock(&saved);
    return obj;
}

int fdt_set(int fd, struct fdt_obj *obj)
{
    sigset_t saved;
    lock(&saved);
    if (ensure_table() < 0 || !in_range(fd)) {
        unlock(&saved);
        errno = fd < 0 ? EBADF : EMFILE;
        return -1;
    }
    fdt_ref(obj);
    struct fdt_obj *old = atomic_exchange(&table[fd], obj);
    unlock(&saved);
    fdt_put(old);
    return 0;
}

bool fdt_remove(int fd)
{
    if (!fdt_has(fd))
        return false;
    sigset_t saved;
    lock(&saved);
    struct fdt_obj *old = atomic_exchange(&table[fd], NULL);
    unlock(&saved);
    fdt_put(old);
    return old != NULL;
}

/* A fork while another thread holds the lock would leave the child's copy
 * locked forever: hold it across fork ourselves. */
static sigset_t fork_saved;

void fdt_fork_prepare(void)
{
    lock(&fork_saved);
}

void fdt_fork_parent(void)
{
    unlock(&fork_saved);
}

void fdt_fork_child(void)
{
    unlock(&fork_saved);
}
