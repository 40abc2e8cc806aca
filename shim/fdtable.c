/*
 * fd -> managed object (a socket, or an epoll instance).  An array indexed
 * by fd, reserved with mmap at the first insert (untouched pages cost
 * nothing, so it is sized from the RLIMIT_NOFILE hard limit, capped).
 * Lookups of unmanaged fds, which is nearly every call a program makes,
 * read one atomic word and take no lock.  Taking a reference on a managed
 * entry and every update happen under one mutex with signals blocked, so
 * a signal handler that calls send() on this thread can never deadlock on
 * it.
 *
 * Each slot holds the object's address with two tag bits: its kind, and
 * whether it is an "active" epoll instance (one that has held a managed
 * member).  Objects are malloc'ed, so the low bits are free.  The tags
 * let the questions of the hot paths ("is this a managed socket?", "must
 * epoll_wait on this fd go through the shim?") be answered without a
 * reference, which would cost the lock.
 *
 * Objects also count the slots naming them: when the last goes, Linux
 * would release the file, which removes it from every epoll set; the
 * closed() hook does that.
 */
#include "shim.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>

#define FDT_MIN_CAP 65536u
#define FDT_MAX_CAP (1u << 24)
#define FDT_NKINDS 2

#define TAG_KIND ((uintptr_t)1)
#define TAG_ACTIVE ((uintptr_t)2)
#define TAG_MASK (TAG_KIND | TAG_ACTIVE)

static _Atomic uintptr_t *table;
static atomic_int capacity;
static atomic_int high_water; /* highest fd ever set + 1 */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*release_fn[FDT_NKINDS])(struct fdt_obj *);
static void (*closed_fn)(struct fdt_obj *);

/* LeakSanitizer does not scan anonymous mappings: in a sanitizer build
 * the table is registered as a root so that the sockets it holds at exit
 * are not reported as leaks (weak: absent in normal builds).  The tag
 * bits do not hide the objects: LSan accepts interior pointers. */
extern void __lsan_register_root_region(const void *p, size_t size)
    __attribute__((weak));

void fdt_obj_init(struct fdt_obj *obj, int kind)
{
    atomic_init(&obj->refs, 1);
    obj->kind = kind;
    atomic_init(&obj->nfds, 0);
    atomic_init(&obj->active, 0);
}

void fdt_set_release(void (*release)(struct fdt_obj *))
{
    release_fn[FDT_SOCK] = release;
}

void fdt_set_kind_release(int kind, void (*release)(struct fdt_obj *))
{
    if (kind >= 0 && kind < FDT_NKINDS)
        release_fn[kind] = release;
}

void fdt_set_closed(void (*closed)(struct fdt_obj *))
{
    closed_fn = closed;
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

/* The slot's word: 0 when unmanaged (or out of range). */
static uintptr_t peek(int fd)
{
    return in_range(fd)
               ? atomic_load_explicit(&table[fd], memory_order_acquire)
               : 0;
}

static struct fdt_obj *obj_of(uintptr_t word)
{
    return (struct fdt_obj *)(word & ~TAG_MASK);
}

static uintptr_t word_of(struct fdt_obj *obj)
{
    uintptr_t w = (uintptr_t)obj;
    if (obj->kind == FDT_EPOLL)
        w |= TAG_KIND;
    if (atomic_load(&obj->active))
        w |= TAG_ACTIVE;
    return w;
}

static int kind_of(uintptr_t word)
{
    return (word & TAG_KIND) ? FDT_EPOLL : FDT_SOCK;
}

bool fdt_has(int fd)
{
    uintptr_t w = peek(fd);
    return w && kind_of(w) == FDT_SOCK;
}

bool fdt_has_any(int fd)
{
    return peek(fd) != 0;
}

bool fdt_waitable(int fd)
{
    uintptr_t w = peek(fd);
    return w && (kind_of(w) == FDT_SOCK || (w & TAG_ACTIVE));
}

void fdt_ref(struct fdt_obj *obj)
{
    atomic_fetch_add(&obj->refs, 1);
}

void fdt_put(struct fdt_obj *obj)
{
    if (obj && atomic_fetch_sub(&obj->refs, 1) == 1) {
        void (*release)(struct fdt_obj *) =
            obj->kind >= 0 && obj->kind < FDT_NKINDS ? release_fn[obj->kind]
                                                     : NULL;
        if (release)
            release(obj);
    }
}

struct fdt_obj *fdt_get_kind(int fd, int kind)
{
    uintptr_t w = peek(fd);
    if (!w || (kind != FDT_ANY && kind_of(w) != kind))
        return NULL;
    sigset_t saved;
    lock(&saved);
    w = atomic_load(&table[fd]);
    struct fdt_obj *obj = obj_of(w);
    if (obj && (kind == FDT_ANY || kind_of(w) == kind))
        fdt_ref(obj);
    else
        obj = NULL;
    unlock(&saved);
    return obj;
}

struct fdt_obj *fdt_get(int fd)
{
    return fdt_get_kind(fd, FDT_SOCK);
}

/* One slot fewer names old (a reference still held by the caller). */
static void slot_gone(struct fdt_obj *old)
{
    if (old && atomic_fetch_sub(&old->nfds, 1) == 1 && closed_fn)
        closed_fn(old);
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
    atomic_fetch_add(&obj->nfds, 1);
    struct fdt_obj *old = obj_of(atomic_exchange(&table[fd], word_of(obj)));
    if (fd >= atomic_load(&high_water))
        atomic_store(&high_water, fd + 1);
    unlock(&saved);
    slot_gone(old);
    fdt_put(old);
    return 0;
}

bool fdt_remove(int fd)
{
    if (!fdt_has_any(fd))
        return false;
    sigset_t saved;
    lock(&saved);
    struct fdt_obj *old = obj_of(atomic_exchange(&table[fd], 0));
    unlock(&saved);
    slot_gone(old);
    fdt_put(old);
    return old != NULL;
}

/* Rare (an epoll instance's first managed member), so a scan of the fds
 * in use is fine; under the lock, so no dup of obj can miss the tag. */
void fdt_mark_active(struct fdt_obj *obj)
{
    if (atomic_load(&obj->active))
        return;
    sigset_t saved;
    lock(&saved);
    atomic_store(&obj->active, 1);
    int end = atomic_load(&high_water);
    for (int fd = 0; table && fd < end; fd++)
        if (obj_of(atomic_load(&table[fd])) == obj)
            atomic_store(&table[fd], word_of(obj));
    unlock(&saved);
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
