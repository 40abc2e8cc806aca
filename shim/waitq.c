/*
 * Wait queues: wake-ups that no waiter of this process loses.
 *
 * An event channel is a doorbell that whoever acknowledges it consumes:
 * when several threads wait on one socket, the one that acknowledges can
 * swallow the event another needed (poll() wakes them all, but a thread
 * that re-polls after the acknowledgement sees nothing and sleeps on).
 * So every managed object keeps a queue of waiters: a blocking call, a
 * poll() over it, an epoll instance holding it.  A waiter registers a node
 * *before* it checks readiness and sleeps in one kernel wait that includes
 * its node's wake fd; whoever acknowledges the object's channel, or
 * changes the object, writes every other node's wake fd (or calls its
 * wake function: an epoll instance marks its entries ready).  A change
 * after the check therefore always reaches the sleeper.
 *
 * Thread nodes share one eventfd per thread, made on first use and closed
 * at thread exit.  Wakes are counted in a per-queue sequence taken from
 * one process-wide counter, so that a waiter can tell, without a node,
 * whether anything happened since it last looked (wait.c).
 *
 * Cross-process waiters (forked holders of one socket) have no node here:
 * between them the event channel stays the only doorbell (a known limit,
 * see README.md).
 */
#include "shim.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* ---- locks: signals blocked, re-initialised after fork --------------- */

static atomic_uint fork_gen;
/* Serialises the post-fork re-initialisations (re-made in the child). */
static pthread_mutex_t refork_lock = PTHREAD_MUTEX_INITIALIZER;

unsigned shim_fork_gen(void)
{
    return atomic_load_explicit(&fork_gen, memory_order_acquire);
}

void shim_refork(atomic_uint *gen, void (*reset)(void *), void *arg)
{
    unsigned now = shim_fork_gen();
    if (atomic_load_explicit(gen, memory_order_acquire) == now)
        return;
    pthread_mutex_lock(&refork_lock);
    if (atomic_load(gen) != now) {
        reset(arg);
        atomic_store_explicit(gen, now, memory_order_release);
    }
    pthread_mutex_unlock(&refork_lock);
}

/* ---- per-thread wake fd ------------------------------------------------ */

static __thread int thread_wake_fd = -1;
static pthread_key_t wake_key;
static pthread_once_t wake_key_once = PTHREAD_ONCE_INIT;

static void wake_fd_dtor(void *unused)
{
    (void)unused;
    shim_priv_close(thread_wake_fd);
    thread_wake_fd = -1;
}

static void wake_key_init(void)
{
    pthread_key_create(&wake_key, wake_fd_dtor);
}

int shim_thread_wake_fd(void)
{
    if (thread_wake_fd >= 0)
        return thread_wake_fd;
    /* In a seccomp sandbox eventfd may kill us: waits go without. */
    if (atomic_load(&shim_sandboxed))
        return -1;
    pthread_once(&wake_key_once, wake_key_init);
    int saved = errno;
    thread_wake_fd = shim_priv_fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    /* Any non-NULL value makes the destructor run at thread exit. */
    if (thread_wake_fd >= 0)
        pthread_setspecific(wake_key, &thread_wake_fd);
    errno = saved;
    return thread_wake_fd;
}

const void *shim_thread_owner(void)
{
    return &thread_wake_fd; /* one address per thread */
}

void shim_thread_node(struct shim_wnode *n)
{
    *n = (struct shim_wnode){ .owner = shim_thread_owner(),
                              .wake_fd = shim_thread_wake_fd() };
}

void shim_thread_wake_drain(void)
{
    if (thread_wake_fd < 0)
        return;
    int saved = errno;
    uint64_t v;
    ssize_t n = REAL(read)(thread_wake_fd, &v, sizeof(v));
    (void)n;
    errno = saved;
}

/* The parent's threads do not exist here, and this thread's eventfd is
 * shared with its parent twin: a wake written here would reach it. */
void shim_waitq_fork_child(void)
{
    pthread_mutex_init(&refork_lock, NULL);
    atomic_fetch_add(&fork_gen, 1);
    shim_priv_close(thread_wake_fd);
    thread_wake_fd = -1;
}

/* ---- queues ------------------------------------------------------------ */

static _Atomic uint64_t seq_source;

static uint64_t next_seq(void)
{
    return atomic_fetch_add(&seq_source, 1) + 1;
}

static void waitq_init(struct shim_waitq *q)
{
    pthread_mutex_init(&q->lock, NULL);
    q->head = NULL;
    atomic_init(&q->gen, shim_fork_gen());
    atomic_init(&q->seq, next_seq());
    atomic_init(&q->count, 0);
}

void shim_obj_init(struct fdt_obj *obj, int kind)
{
    fdt_obj_init(obj, kind);
    waitq_init(&obj->wq);
}

void shim_obj_fini(struct fdt_obj *obj)
{
    pthread_mutex_destroy(&obj->wq.lock);
}

/* In a forked child: the lock may be held by a thread that is not here,
 * and thread nodes belong to such threads.  Epoll nodes stay: the
 * instances were copied with the rest of memory. */
static void waitq_reset(void *arg)
{
    struct shim_waitq *q = arg;
    pthread_mutex_init(&q->lock, NULL);
    struct shim_wnode *n = q->head, *last = NULL;
    int count = 0;
    q->head = NULL;
    while (n) {
        struct shim_wnode *next = n->next;
        if (n->wake) {
            n->prev = last;
            n->next = NULL;
            if (last)
                last->next = n;
            else
                q->head = n;
            last = n;
            count++;
        }
        n = next;
    }
    atomic_store(&q->count, count);
}

static void q_lock(struct shim_waitq *q, sigset_t *saved)
{
    shim_sigblock(saved);
    shim_refork(&q->gen, waitq_reset, q);
    pthread_mutex_lock(&q->lock);
}

static void q_unlock(struct shim_waitq *q, const sigset_t *saved)
{
    pthread_mutex_unlock(&q->lock);
    shim_sigrestore(saved);
}

uint64_t shim_waitq_add(struct shim_waitq *q, struct shim_wnode *n)
{
    sigset_t saved;
    q_lock(q, &saved);
    n->prev = NULL;
    n->next = q->head;
    if (q->head)
        q->head->prev = n;
    q->head = n;
    atomic_fetch_add(&q->count, 1);
    uint64_t seq = atomic_load(&q->seq);
    q_unlock(q, &saved);
    return seq;
}

uint64_t shim_waitq_del(struct shim_waitq *q, struct shim_wnode *n)
{
    sigset_t saved;
    q_lock(q, &saved);
    if (n->prev)
        n->prev->next = n->next;
    else if (q->head == n)
        q->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    n->prev = n->next = NULL;
    atomic_fetch_sub(&q->count, 1);
    uint64_t seq = atomic_load(&q->seq);
    q_unlock(q, &saved);
    return seq;
}

void shim_waitq_each(struct shim_waitq *q, void (*wake)(struct shim_wnode *),
                     void (*fn)(struct shim_wnode *, void *), void *arg)
{
    sigset_t saved;
    q_lock(q, &saved);
    for (struct shim_wnode *n = q->head; n; n = n->next)
        if (n->wake == wake)
            fn(n, arg);
    q_unlock(q, &saved);
}

static void wake_now(struct fdt_obj *obj, const void *self)
{
    struct shim_waitq *q = &obj->wq;
    sigset_t saved;
    int err = errno;
    q_lock(q, &saved);
    atomic_store(&q->seq, next_seq());
    for (struct shim_wnode *n = q->head; n; n = n->next) {
        if (self && n->owner == self)
            continue;
        if (n->wake) {
            n->wake(n);
        } else if (n->wake_fd >= 0) {
            uint64_t one = 1;
            ssize_t w = REAL(write)(n->wake_fd, &one, sizeof(one));
            (void)w; /* EAGAIN: the counter is already non-zero */
        }
    }
    q_unlock(q, &saved);
    errno = err;
}

/* ---- deferred wakes ---------------------------------------------------- */

#define DEFER_STATIC 16

struct deferred {
    struct fdt_obj *obj;
    const void *self;
};

static __thread struct {
    int depth, n, cap;
    struct deferred *v;
    struct deferred st[DEFER_STATIC];
} defer;

void shim_defer_begin(void)
{
    defer.depth++;
}

static bool defer_push(struct fdt_obj *obj, const void *self)
{
    for (int i = 0; i < defer.n; i++)
        if (defer.v[i].obj == obj && defer.v[i].self == self)
            return true;
    if (!defer.v) {
        defer.v = defer.st;
        defer.cap = DEFER_STATIC;
    }
    if (defer.n == defer.cap) {
        struct deferred *nv = malloc(2 * (size_t)defer.cap * sizeof(*nv));
        if (!nv)
            return false;
        for (int i = 0; i < defer.n; i++)
            nv[i] = defer.v[i];
        if (defer.v != defer.st)
            free(defer.v);
        defer.v = nv;
        defer.cap *= 2;
    }
    fdt_ref(obj);
    defer.v[defer.n++] = (struct deferred){ obj, self };
    return true;
}

void shim_defer_end(void)
{
    if (--defer.depth > 0)
        return;
    /* Wakes done here may defer nothing (depth is 0), but a release they
     * cause may: take the list first. */
    while (defer.n) {
        struct deferred d = defer.v[--defer.n];
        wake_now(d.obj, d.self);
        fdt_put(d.obj);
    }
    if (defer.v != defer.st)
        free(defer.v);
    defer.v = NULL;
    defer.cap = 0;
}

void shim_obj_wake(struct fdt_obj *obj, const void *self)
{
    /* Out of memory for the list: waking now risks a deadlock on a lock
     * the scope holds, which is worse than a late wake; the next event
     * or kick will do. */
    if (defer.depth > 0) {
        defer_push(obj, self);
        return;
    }
    wake_now(obj, self);
}
