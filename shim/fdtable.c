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
 *
 * A slot may also say "pending": an fd the process had when the library
 * loaded (inherited across exec) that looks like a token.  Looking such a
 * slot up asks the resolver (inherit.c) to settle it first, so the fast
 * paths pay nothing for it: a pending slot is just another non-zero word.
 *
 * The second table here is the shim's own fds (daemon connections, wake
 * eventfds, event-channel fds, hidden epolls): programs close every fd
 * (close_range, closefrom, a loop over /proc/self/fd), and those must
 * survive it.  They are moved to high numbers (out of the way of the
 * numbers a program picks itself, and of the lowest-free numbering it
 * expects) and marked in a bitmap that close, close_range and closefrom
 * consult (api_fd.c).  Only raw syscalls here: the table's users include
 * code that runs before anything is resolved.
 */
#include "shim.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FDT_MIN_CAP 65536u
#define FDT_MAX_CAP (1u << 24)
#define FDT_NKINDS 2

#define TAG_KIND ((uintptr_t)1)
#define TAG_ACTIVE ((uintptr_t)2)
#define TAG_MASK (TAG_KIND | TAG_ACTIVE)
/* No object, only a tag: an inherited fd still to be looked at. */
#define WORD_PENDING TAG_ACTIVE

static _Atomic uintptr_t *table;
static atomic_int capacity;
static atomic_int high_water; /* highest fd ever set + 1 */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*release_fn[FDT_NKINDS])(struct fdt_obj *);
static void (*closed_fn)(struct fdt_obj *);
static void (*pending_fn)(int fd);

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

/* No signal handler runs while the lock is held (sigdefer.c). */
static void lock(sigset_t *saved)
{
    shim_sigblock(saved);
    pthread_mutex_lock(&table_lock);
}

static void unlock(const sigset_t *saved)
{
    pthread_mutex_unlock(&table_lock);
    shim_sigrestore(saved);
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

/* The slot's word as it is: 0 when unmanaged (or out of range). */
static uintptr_t peek_raw(int fd)
{
    return in_range(fd)
               ? atomic_load_explicit(&table[fd], memory_order_acquire)
               : 0;
}

/* A pending slot: the resolver adopts the token (the slot then names a
 * socket) or clears it.  Still pending afterwards (the resolver is busy
 * on this thread, or absent): not managed, for now. */
static uintptr_t __attribute__((noinline)) fdt_pending_look(int fd)
{
    if (pending_fn)
        pending_fn(fd);
    else
        fdt_clear_pending(fd);
    uintptr_t w = peek_raw(fd);
    return w == WORD_PENDING ? 0 : w;
}

/* The slot's word once any pending look is done. */
static uintptr_t peek(int fd)
{
    uintptr_t w = peek_raw(fd);
    if (__builtin_expect(w == WORD_PENDING, 0))
        w = fdt_pending_look(fd);
    return w;
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
    /* Raw: closing an fd never needs a pending one looked at. */
    if (!peek_raw(fd))
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

int fdt_high_water(void)
{
    return atomic_load(&high_water);
}

bool fdt_maybe_sock(int fd)
{
    uintptr_t w = peek_raw(fd);
    return w && kind_of(w) == FDT_SOCK;
}

/* ---- inherited fds to look at ---------------------------------------- */

void fdt_set_pending_resolver(void (*resolve)(int fd))
{
    pending_fn = resolve;
}

int fdt_mark_pending(int fd)
{
    sigset_t saved;
    lock(&saved);
    int r = -1;
    if (ensure_table() == 0 && in_range(fd)) {
        uintptr_t expect = 0;
        if (atomic_compare_exchange_strong(&table[fd], &expect,
                                           WORD_PENDING) &&
            fd >= atomic_load(&high_water))
            atomic_store(&high_water, fd + 1);
        r = 0;
    }
    unlock(&saved);
    return r;
}

bool fdt_is_pending(int fd)
{
    return peek_raw(fd) == WORD_PENDING;
}

void fdt_clear_pending(int fd)
{
    if (!in_range(fd))
        return;
    uintptr_t expect = WORD_PENDING;
    atomic_compare_exchange_strong(&table[fd], &expect, 0);
}

/* ---- the shim's own fds ----------------------------------------------- */

#define PRIV_WORDS (FDT_MAX_CAP / 64)
/* Below this soft limit, no room worth keeping apart: fds stay put. */
#define PRIV_MIN_LIMIT 64
/* Never above this: the kernel grows a process's fd array up to the
 * highest number in use (8 bytes per slot), and every process pays. */
#define PRIV_MAX_BASE 4096

/* Closing one of our own fds.  A raw syscall: interposed close() would
 * come back into the shim, and this also runs where libc may not (vfork
 * children).  ThreadSanitizer tracks fds through libc's close, and takes
 * a number that a raw close freed and eventfd() handed out again for a
 * race; in its builds (never preloaded: only the unit tests) libc's. */
#if defined(__SANITIZE_THREAD__)
#define priv_raw_close(fd) close(fd)
#else
#define priv_raw_close(fd) syscall(SYS_close, (fd))
#endif

static _Atomic(_Atomic uint64_t *) priv_bits;
static atomic_int priv_count;
static atomic_int priv_high;      /* highest private fd ever + 1 */
static atomic_int priv_base = -1; /* where moved fds go (0: nowhere) */

static _Atomic uint64_t *priv_map(void)
{
    _Atomic uint64_t *b = atomic_load(&priv_bits);
    if (b)
        return b;
    void *p = mmap(NULL, PRIV_WORDS * sizeof(uint64_t),
                   PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    _Atomic uint64_t *expect = NULL;
    if (!atomic_compare_exchange_strong(&priv_bits, &expect, p)) {
        munmap(p, PRIV_WORDS * sizeof(uint64_t));
        return expect;
    }
    return p;
}

/* The first number of the private range: the top quarter of the soft
 * fd limit, capped. */
static int priv_base_get(void)
{
    int base = atomic_load(&priv_base);
    if (base >= 0)
        return base;
    struct rlimit rl;
    base = 0;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur >= PRIV_MIN_LIMIT &&
        rl.rlim_cur != RLIM_INFINITY) {
        rlim_t b = rl.rlim_cur - rl.rlim_cur / 4;
        base = b > PRIV_MAX_BASE ? PRIV_MAX_BASE : (int)b;
    }
    atomic_store(&priv_base, base);
    return base;
}

static void priv_mark(int fd)
{
    _Atomic uint64_t *b = priv_map();
    if (!b || fd < 0 || fd >= (int)FDT_MAX_CAP)
        return;
    uint64_t bit = 1ull << (fd % 64);
    if (!(atomic_fetch_or(&b[fd / 64], bit) & bit))
        atomic_fetch_add(&priv_count, 1);
    int high = atomic_load(&priv_high);
    while (fd >= high &&
           !atomic_compare_exchange_weak(&priv_high, &high, fd + 1))
        ;
}

/* Whether the soft fd limit may be raised for the shim's own use: the
 * hard limit leaves room, the soft one is small, no seccomp sandbox. */
static bool soft_limit_raisable(struct rlimit *rl)
{
    return !atomic_load(&shim_sandboxed) &&
           syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, rl) == 0 &&
           rl->rlim_cur < PRIV_MAX_BASE && rl->rlim_cur < rl->rlim_max;
}

rlim_t shim_fd_room_begin(unsigned nfds)
{
    struct rlimit rl;
    if (!soft_limit_raisable(&rl))
        return 0;
    /* Our own fds already sit just above the soft limit. */
    rlim_t top = (rlim_t)atomic_load(&priv_high);
    rlim_t want = (top > rl.rlim_cur ? top : rl.rlim_cur) + nfds;
    struct rlimit raised = { want < rl.rlim_max ? want : rl.rlim_max,
                             rl.rlim_max };
    if (syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, &raised, NULL) < 0)
        return 0;
    return rl.rlim_cur;
}

void shim_fd_room_end(rlim_t soft)
{
    struct rlimit rl;
    if (soft == 0 || syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &rl) < 0)
        return;
    rl.rlim_cur = soft;
    syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, &rl, NULL);
}

bool shim_fd_beyond_limit(int fd)
{
    struct rlimit rl;
    return !atomic_load(&shim_sandboxed) &&
           syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &rl) == 0 &&
           rl.rlim_cur != RLIM_INFINITY && (rlim_t)fd >= rl.rlim_cur;
}

/* A copy of fd numbered at or above the program's soft limit, when the
 * hard limit leaves room and the soft one is small (a program that lowered
 * it to count its own fds): then the shim's fds never take a number the
 * program could have had, and it meets EMFILE exactly where it would
 * natively.  The soft limit is raised only for the dup, and never in a
 * seccomp sandbox (prlimit is not in such filters).  -1 if not done. */
static int dup_above_soft_limit(int fd)
{
    rlim_t soft = shim_fd_room_begin(1);
    if (soft == 0)
        return -1;
    long hi = syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, (long)soft);
    shim_fd_room_end(soft);
    return (int)hi;
}

int shim_priv_fd(int fd)
{
    if (fd < 0)
        return fd;
    int saved = errno;
    long above = dup_above_soft_limit(fd);
    if (above >= 0) {
        priv_raw_close(fd);
        priv_mark((int)above);
        errno = saved;
        return (int)above;
    }
    int base = priv_base_get();
    if (base > fd) {
        long hi = syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, base);
        if (hi >= 0) {
            priv_raw_close(fd);
            fd = (int)hi;
        }
    }
    priv_mark(fd);
    errno = saved;
    return fd;
}

bool shim_priv_is(int fd)
{
    _Atomic uint64_t *b = atomic_load_explicit(&priv_bits,
                                               memory_order_acquire);
    if (!b || fd < 0 || fd >= atomic_load(&priv_high))
        return false;
    return atomic_load(&b[fd / 64]) & (1ull << (fd % 64));
}

void shim_priv_forget(int fd)
{
    if (!shim_priv_is(fd))
        return;
    uint64_t bit = 1ull << (fd % 64);
    if (atomic_fetch_and(&atomic_load(&priv_bits)[fd / 64], ~bit) & bit)
        atomic_fetch_sub(&priv_count, 1);
}

void shim_priv_close(int fd)
{
    if (fd < 0)
        return;
    int saved = errno;
    shim_priv_forget(fd);
    priv_raw_close(fd);
    errno = saved;
}

static int priv_close_part(unsigned first, unsigned last, unsigned flags)
{
    return syscall(SYS_close_range, first, last, flags) < 0 ? -errno : 0;
}

int shim_priv_close_range(unsigned first, unsigned last, unsigned flags)
{
    if (first > last || atomic_load(&priv_count) == 0)
        return priv_close_part(first, last, flags);
    unsigned high = (unsigned)atomic_load(&priv_high);
    unsigned from = first;
    int err = 0;
    for (unsigned fd = first; fd < high && fd <= last; fd++) {
        if (!shim_priv_is((int)fd))
            continue;
        if (fd > from) {
            int e = priv_close_part(from, fd - 1, flags);
            err = err ? err : e;
        }
        from = fd + 1;
    }
    if (from <= last) {
        int e = priv_close_part(from, last, flags);
        err = err ? err : e;
    }
    return err;
}
