/*
 * An epoll instance's managed members (the Onload/VMA model).  The
 * application's epoll fd stays the kernel epoll holding its native fds;
 * managed members (sockets, other epoll instances) live here:
 *
 *   entries   (fd, object) -> events, data, ready-list state (epoll_ready.c)
 *   watches   one per member object: its wait fds registered, edge-
 *             triggered, in the instance's hidden kernel epoll (data: the
 *             watch's id, never a pointer, so a stale kernel entry can
 *             never reach freed memory), and a node on the object's wait
 *             queue, so that whoever acknowledges the object's event
 *             channel marks our entries ready
 *   wake fd   an eventfd in the hidden epoll, written when entries become
 *             ready outside an epoll_wait (a wake from another thread,
 *             ADD/MOD), so that a sleeper wakes
 *
 * epoll_wait takes events from the ready list, then the native ones with a
 * zero-timeout real epoll_wait, and if there are none, blocks in one
 * ppoll over {the user's epoll fd, the hidden epoll}.
 *
 * Edge-triggered entries must see "a wake-up of the file", as the kernel
 * delivers them (new data, freed space, a state change), not every
 * doorbell of the backend: a socket watch compares the ring's counters
 * with the last ones it saw to tell which (watch_key).
 *
 * Locks, in order: ctl_lock (serialises epoll_ctl and removals) ->
 * topo_lock (epoll-in-epoll insertions) -> an object's wait-queue lock ->
 * the instance's lock -> the instances it contains (polling a nested
 * member) -> a socket's ring locks.  Wakes are never issued under an
 * instance's lock (shim_defer_begin/end).
 */
#include "shim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <uthash.h>

#define HIDDEN_BATCH 64
#define WAIT_CHUNK 128
#define EP_MAX_NESTS 4 /* Linux's limit on epoll nesting */
#define WAKE_ID 0      /* the wake fd's data in the hidden epoll */

struct ep_key {
    struct fdt_obj *obj;
    int64_t fd; /* 64 bits: no padding in the hashed key */
};

/* What a socket looked like when a watch last looked (watch_key). */
struct ep_gen {
    int state;
    uint32_t rx_prod, tx_cons;
    int32_t in_err, out_err;
    uint32_t shut_rd, shut_wr;
};

struct ep_watch;

struct ep_entry {
    struct epr_item item; /* first: the ready list hands it back */
    struct ep_key key;
    struct ep_watch *w;
    struct ep_entry *wnext; /* the watch's other entries (dup'ed fds) */
    UT_hash_handle hh;
};

struct ep_watch {
    struct shim_wnode node; /* first: the wake callback gets it */
    struct shim_epoll *ep;
    struct fdt_obj *obj;    /* referenced */
    int fd;                 /* the fd it was added with (for the token) */
    uint64_t id;            /* 0 until registered */
    int reg_fd[2];          /* what the hidden epoll holds for us */
    struct ep_gen gen;
    bool dead;              /* being removed: wakes must not touch it */
    struct ep_entry *entries;
    UT_hash_handle hh_obj, hh_id;
};

struct shim_epoll {
    struct fdt_obj head;    /* first: the fd table's handle */
    atomic_int hidden;      /* -1 until the first managed member */
    atomic_int wake_fd;
    pthread_mutex_t ctl_lock;
    pthread_mutex_t lock;   /* everything below */
    atomic_uint gen;        /* fork generation of the two locks */
    struct ep_entry *entries;
    struct ep_watch *by_obj, *by_id;
    struct epr_list ready;
    uint64_t next_id;
    int sleepers;           /* threads blocked in epoll_wait on it */
    bool rung;              /* wake_fd holds an unread wake */
    bool native_first;      /* alternates, so that neither side starves */
    atomic_int nentries;
    int marker_fd;          /* see wake_fast_waiters; under ctl_lock */
};

static void ep_release(struct fdt_obj *o);
static void obj_closed(struct fdt_obj *o);
static void watch_wake(struct shim_wnode *n);

/* ---- process-wide state ------------------------------------------------ */

static pthread_mutex_t topo_lock;   /* epoll-in-epoll insertions */
static pthread_mutex_t kernel_lock; /* creating hidden epolls */
static pthread_mutex_t adopt_lock;  /* adopting untracked epoll fds */
static atomic_uint globals_gen = UINT32_MAX;

static void globals_reset(void *unused)
{
    (void)unused;
    pthread_mutex_init(&topo_lock, NULL);
    pthread_mutex_init(&kernel_lock, NULL);
    pthread_mutex_init(&adopt_lock, NULL);
}

/* A global lock, with signals blocked (see waitq.c). */
static void global_lock(pthread_mutex_t *m, sigset_t *saved)
{
    shim_sigblock(saved);
    shim_refork(&globals_gen, globals_reset, NULL);
    pthread_mutex_lock(m);
}

static void global_unlock(pthread_mutex_t *m, const sigset_t *saved)
{
    pthread_mutex_unlock(m);
    shim_sigrestore(saved);
}

static pthread_once_t setup_once = PTHREAD_ONCE_INIT;

/* Until an instance exists, no object can be in an epoll set, so the
 * hooks are set with the first one (real.c then needs no epoll code). */
static void setup(void)
{
    fdt_set_kind_release(FDT_EPOLL, ep_release);
    fdt_set_closed(obj_closed);
}

/* ---- instance locks ------------------------------------------------------ */

static void ep_reset(void *arg)
{
    struct shim_epoll *ep = arg;
    pthread_mutex_init(&ep->ctl_lock, NULL);
    pthread_mutex_init(&ep->lock, NULL);
    ep->sleepers = 0; /* the parent's sleepers are not here */
}

static void ep_lock_m(struct shim_epoll *ep, pthread_mutex_t *m,
                      sigset_t *saved)
{
    shim_sigblock(saved);
    shim_refork(&ep->gen, ep_reset, ep);
    pthread_mutex_lock(m);
}

static void ep_unlock_m(pthread_mutex_t *m, const sigset_t *saved)
{
    pthread_mutex_unlock(m);
    shim_sigrestore(saved);
}

#define ep_lock(ep, saved) ep_lock_m((ep), &(ep)->lock, (saved))
#define ep_unlock(ep, saved) ep_unlock_m(&(ep)->lock, (saved))
#define ctl_lock(ep, saved) ep_lock_m((ep), &(ep)->ctl_lock, (saved))
#define ctl_unlock(ep, saved) ep_unlock_m(&(ep)->ctl_lock, (saved))

/* ---- creation, adoption, release ---------------------------------------- */

static struct shim_epoll *ep_new(void)
{
    pthread_once(&setup_once, setup);
    struct shim_epoll *ep = calloc(1, sizeof(*ep));
    if (!ep)
        return NULL;
    shim_obj_init(&ep->head, FDT_EPOLL);
    atomic_init(&ep->hidden, -1);
    atomic_init(&ep->wake_fd, -1);
    pthread_mutex_init(&ep->ctl_lock, NULL);
    pthread_mutex_init(&ep->lock, NULL);
    atomic_init(&ep->gen, shim_fork_gen());
    ep->next_id = WAKE_ID + 1;
    atomic_init(&ep->nentries, 0);
    ep->marker_fd = -1;
    return ep;
}

int shim_epoll_track(int epfd)
{
    struct shim_epoll *ep = ep_new();
    if (!ep)
        return -ENOMEM;
    int r = fdt_set(epfd, &ep->head) < 0 ? -errno : 0;
    fdt_put(&ep->head);
    return r;
}

/* Is epfd an epoll fd?  The kernel answers a DEL of an fd it does not
 * hold with ENOENT only on an epoll (EINVAL otherwise, EBADF if closed). */
static int probe_epoll(int epfd)
{
    int probe = REAL(epoll_create1)(EPOLL_CLOEXEC);
    if (probe < 0)
        return -errno;
    int r = REAL(epoll_ctl)(epfd, EPOLL_CTL_DEL, probe, NULL) < 0 ? errno : 0;
    REAL(close)(probe);
    if (r == ENOENT)
        return 0;
    return r == EBADF ? -EBADF : -EINVAL;
}

static struct shim_epoll *adopt(int epfd)
{
    sigset_t saved;
    global_lock(&adopt_lock, &saved);
    struct fdt_obj *o = fdt_get_kind(epfd, FDT_EPOLL);
    int err = 0;
    if (!o) {
        err = probe_epoll(epfd);
        if (!err)
            err = shim_epoll_track(epfd);
        if (!err) {
            o = fdt_get_kind(epfd, FDT_EPOLL);
            shim_log("epoll fd %d (created before us or by a raw syscall): "
                     "tracked from now on", epfd);
        }
    }
    global_unlock(&adopt_lock, &saved);
    if (!o)
        errno = err ? -err : EBADF;
    return (struct shim_epoll *)o;
}

struct shim_epoll *shim_epoll_get(int epfd)
{
    struct fdt_obj *o = fdt_get_kind(epfd, FDT_EPOLL);
    if (o)
        return (struct shim_epoll *)o;
    if (fdt_has(epfd)) { /* a managed socket is no epoll fd */
        errno = EINVAL;
        return NULL;
    }
    return adopt(epfd);
}

bool shim_epoll_unmanaged(struct shim_epoll *ep)
{
    return atomic_load(&ep->nentries) == 0;
}

/* The hidden epoll and the wake fd, made with the first managed member
 * (or when the instance becomes one). */
static int ep_kernel(struct shim_epoll *ep)
{
    if (atomic_load(&ep->hidden) >= 0)
        return 0;
    sigset_t saved;
    global_lock(&kernel_lock, &saved);
    int err = 0;
    if (atomic_load(&ep->hidden) < 0) {
        int h = shim_priv_fd(REAL(epoll_create1)(EPOLL_CLOEXEC));
        int w = h < 0 ? -1 : eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        w = shim_priv_fd(w);
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = WAKE_ID };
        if (w < 0 || REAL(epoll_ctl)(h, EPOLL_CTL_ADD, w, &ev) < 0) {
            err = -errno;
            shim_priv_close(h);
            shim_priv_close(w);
        } else {
            atomic_store(&ep->wake_fd, w);
            atomic_store(&ep->hidden, h);
        }
    }
    global_unlock(&kernel_lock, &saved);
    return err;
}

static void watch_free(struct ep_watch *w)
{
    shim_waitq_del(&w->obj->wq, &w->node); /* waits out a running wake */
    fdt_put(w->obj);
    free(w);
}

/* Nobody else holds a reference, but wakes of the members may be running:
 * mark every watch dead first, then leave the queues, then free. */
static void ep_release(struct fdt_obj *o)
{
    struct shim_epoll *ep = (struct shim_epoll *)o;
    int saved_errno = errno;
    sigset_t saved;
    ep_lock(ep, &saved);
    struct ep_watch *w, *wt;
    HASH_ITER(hh_obj, ep->by_obj, w, wt)
        w->dead = true;
    ep_unlock(ep, &saved);
    struct ep_entry *e, *et;
    HASH_ITER(hh, ep->entries, e, et) {
        HASH_DEL(ep->entries, e);
        free(e);
    }
    HASH_CLEAR(hh_id, ep->by_id);
    HASH_ITER(hh_obj, ep->by_obj, w, wt) {
        HASH_DELETE(hh_obj, ep->by_obj, w);
        watch_free(w);
    }
    if (atomic_load(&ep->hidden) >= 0) {
        shim_priv_close(atomic_load(&ep->hidden));
        shim_priv_close(atomic_load(&ep->wake_fd));
    }
    shim_priv_close(ep->marker_fd);
    pthread_mutex_destroy(&ep->ctl_lock);
    pthread_mutex_destroy(&ep->lock);
    shim_obj_fini(&ep->head);
    free(ep);
    errno = saved_errno;
}

/* ---- watches: the hidden epoll's view of a member ------------------------ */

/* The fds to register: a connected socket's event channel, else its token
 * (the daemon's notice byte, for any state: a socket added before its
 * connect starts must still hear the connect finish); an epoll's own fd
 * and hidden epoll.  One fd per watch, whatever fd its entries use. */
static void watch_fds(struct ep_watch *w, int out[2])
{
    if (w->obj->kind == FDT_EPOLL) {
        shim_epoll_wait_fds((struct shim_epoll *)w->obj, w->fd, out);
        return;
    }
    struct shim_sock *s = (struct shim_sock *)w->obj;
    out[0] = atomic_load(&s->state) == SHIM_CONNECTED ? s->evt_fd : w->fd;
    out[1] = -1;
}

/* Under the instance lock. */
static void watch_unregister(struct shim_epoll *ep, struct ep_watch *w)
{
    int h = atomic_load(&ep->hidden);
    for (int k = 0; k < 2; k++) {
        if (w->reg_fd[k] >= 0)
            REAL(epoll_ctl)(h, EPOLL_CTL_DEL, w->reg_fd[k], NULL);
        w->reg_fd[k] = -1; /* a failed DEL: the stale entry's id is dead */
    }
    if (w->id)
        HASH_DELETE(hh_id, ep->by_id, w);
    w->id = 0;
}

/* Under the instance lock.  A fresh id each time: events of the previous
 * registration still queued in the kernel are ignored.  0 or -errno. */
static int watch_register(struct shim_epoll *ep, struct ep_watch *w,
                          const int fds[2])
{
    watch_unregister(ep, w);
    w->id = ep->next_id++;
    HASH_ADD(hh_id, ep->by_id, id, sizeof(w->id), w);
    int h = atomic_load(&ep->hidden);
    for (int k = 0; k < 2; k++) {
        if (fds[k] < 0)
            continue;
        struct epoll_event ev = { .events = EPOLLIN | EPOLLET,
                                  .data.u64 = w->id };
        if (REAL(epoll_ctl)(h, EPOLL_CTL_ADD, fds[k], &ev) < 0)
            return -errno;
        w->reg_fd[k] = fds[k];
    }
    return 0;
}

/* A socket's wait fd changes when its connect finishes. */
static void watch_refresh(struct shim_epoll *ep, struct ep_watch *w)
{
    if (w->obj->kind != FDT_SOCK)
        return;
    int fds[2];
    watch_fds(w, fds);
    if (fds[0] != w->reg_fd[0])
        watch_register(ep, w, fds);
}

static void sock_gen(struct shim_sock *s, struct ep_gen *g)
{
    memset(g, 0, sizeof(*g));
    g->state = atomic_load(&s->state);
    if (g->state != SHIM_CONNECTED)
        return;
    g->rx_prod = __atomic_load_n(s->ring.rx_prod, __ATOMIC_ACQUIRE);
    g->tx_cons = __atomic_load_n(s->ring.tx_cons, __ATOMIC_ACQUIRE);
    g->in_err = pvc_ring_in_error(&s->ring);
    g->out_err = pvc_ring_out_error(&s->ring);
    struct pvc_sock_shared *sh = __atomic_load_n(&s->shared,
                                                 __ATOMIC_ACQUIRE);
    g->shut_rd = __atomic_load_n(&sh->shut_rd, __ATOMIC_ACQUIRE);
    g->shut_wr = __atomic_load_n(&sh->shut_wr, __ATOMIC_ACQUIRE);
}

/* Which wake-up the kernel would have delivered since the watch last
 * looked: new data (EPOLLIN's), space freed (EPOLLOUT's), anything else
 * (a state change or an error: all); a doorbell that changed nothing is
 * no wake-up at all.  Under the instance lock. */
static uint32_t watch_key(struct ep_watch *w)
{
    if (w->obj->kind != FDT_SOCK)
        return EPR_KEY_ALL;
    struct ep_gen was = w->gen, now;
    sock_gen((struct shim_sock *)w->obj, &now);
    w->gen = now;
    if (now.state != SHIM_CONNECTED || was.state != now.state ||
        now.in_err != was.in_err || now.out_err != was.out_err ||
        now.shut_rd != was.shut_rd || now.shut_wr != was.shut_wr)
        return EPR_KEY_ALL;
    uint32_t key = 0;
    if (now.rx_prod != was.rx_prod)
        key |= EPR_KEY_IN;
    if (now.tx_cons != was.tx_cons)
        key |= EPR_KEY_OUT;
    return key;
}

/* Under the instance lock (no syscall of ours can be avoided here: the
 * write only when nothing is pending). */
static void ep_ring(struct shim_epoll *ep)
{
    if (ep->rung)
        return;
    uint64_t one = 1;
    ssize_t n = REAL(write)(atomic_load(&ep->wake_fd), &one, sizeof(one));
    (void)n;
    ep->rung = true;
}

/* The member may have changed: queue the interested entries.  Returns
 * whether any was queued.  Under the instance lock. */
static bool watch_changed(struct shim_epoll *ep, struct ep_watch *w)
{
    uint32_t key = watch_key(w);
    bool queued = false;
    for (struct ep_entry *e = w->entries; e; e = e->wnext)
        queued |= epr_wake(&ep->ready, &e->item, key);
    return queued;
}

/* Another thread acknowledged the member's event channel (or kicked it):
 * under the member's queue lock. */
static void watch_wake(struct shim_wnode *n)
{
    struct ep_watch *w = (struct ep_watch *)n;
    struct shim_epoll *ep = w->ep;
    sigset_t saved;
    ep_lock(ep, &saved);
    if (!w->dead && watch_changed(ep, w))
        ep_ring(ep);
    ep_unlock(ep, &saved);
}

/* ---- readiness ------------------------------------------------------------ */

/* epr_poll_fn: an entry's current readiness.  The wait fd is refreshed
 * before (a connect that finished) and after (the mask may settle it). */
static uint32_t entry_poll(struct epr_item *item, void *ctx)
{
    struct shim_epoll *ep = ctx;
    struct ep_entry *e = (struct ep_entry *)item;
    watch_refresh(ep, e->w);
    uint32_t m = shim_obj_mask(e->w->obj, (int)e->key.fd);
    watch_refresh(ep, e->w);
    return m;
}

static void drain_wake_fd(struct shim_epoll *ep)
{
    uint64_t v;
    ssize_t n = REAL(read)(atomic_load(&ep->wake_fd), &v, sizeof(v));
    (void)n;
    ep->rung = false;
}

/* Bring what the hidden epoll saw into the ready list.  Under the
 * instance lock, inside a defer scope (acknowledgements wake other
 * waiters of the members). */
static void ep_collect(struct shim_epoll *ep)
{
    int h = atomic_load(&ep->hidden);
    if (h < 0)
        return;
    struct epoll_event ev[HIDDEN_BATCH];
    int n;
    do {
        n = REAL(epoll_wait)(h, ev, HIDDEN_BATCH, 0);
        for (int i = 0; i < n; i++) {
            uint64_t id = ev[i].data.u64;
            if (id == WAKE_ID) {
                drain_wake_fd(ep);
                continue;
            }
            struct ep_watch *w;
            HASH_FIND(hh_id, ep->by_id, &id, sizeof(id), w);
            if (!w || w->dead)
                continue; /* an earlier registration's */
            if (w->obj->kind == FDT_SOCK)
                shim_sock_ack((struct shim_sock *)w->obj, w->reg_fd[0], ep);
            watch_changed(ep, w);
        }
    } while (n == HIDDEN_BATCH);
}

/* After a look that left entries queued: wake whoever else may wait for
 * them (others: waiters registered on the instance besides the caller). */
static void ring_for_others(struct shim_epoll *ep, int self_nodes)
{
    if (!epr_empty(&ep->ready) &&
        (ep->sleepers > 0 ||
         atomic_load(&ep->head.wq.count) > self_nodes))
        ep_ring(ep);
}

uint32_t shim_epoll_mask(struct shim_epoll *ep, int fd)
{
    bool ready = false;
    if (atomic_load(&ep->hidden) >= 0) {
        sigset_t saved;
        shim_defer_begin();
        ep_lock(ep, &saved);
        ep_collect(ep);
        ready = epr_peek(&ep->ready, entry_poll, ep);
        ring_for_others(ep, 1);
        ep_unlock(ep, &saved);
        shim_defer_end();
    }
    if (!ready) { /* the native members: the user's epoll fd itself */
        struct pollfd p = { fd, POLLIN, 0 };
        ready = REAL(poll)(&p, 1, 0) > 0 && (p.revents & POLLIN);
    }
    return ready ? EPOLLIN | EPOLLRDNORM : 0;
}

void shim_epoll_wait_fds(struct shim_epoll *ep, int fd, int out[2])
{
    out[0] = fd;
    out[1] = atomic_load(&ep->hidden);
}

/* ---- epoll_ctl ------------------------------------------------------------ */

static struct ep_entry *find_entry(struct shim_epoll *ep, int fd,
                                   struct fdt_obj *obj)
{
    struct ep_key key;
    memset(&key, 0, sizeof(key));
    key.obj = obj;
    key.fd = fd;
    struct ep_entry *e;
    HASH_FIND(hh, ep->entries, &key, sizeof(key), e);
    return e;
}

static struct ep_watch *find_watch(struct shim_epoll *ep,
                                   struct fdt_obj *obj)
{
    struct ep_watch *w;
    HASH_FIND(hh_obj, ep->by_obj, &obj, sizeof(obj), w);
    return w;
}

/* Off every list; the watch, when this was its last entry, is returned
 * (dead, unregistered) for watch_free after the instance lock.  Under
 * the instance lock. */
static struct ep_watch *entry_unlink(struct shim_epoll *ep,
                                     struct ep_entry *e)
{
    epr_unqueue(&ep->ready, &e->item);
    HASH_DEL(ep->entries, e);
    atomic_fetch_sub(&ep->nentries, 1);
    struct ep_watch *w = e->w;
    struct ep_entry **pp = &w->entries;
    while (*pp != e)
        pp = &(*pp)->wnext;
    *pp = e->wnext;
    if (w->entries)
        return NULL;
    w->dead = true;
    watch_unregister(ep, w);
    HASH_DELETE(hh_obj, ep->by_obj, w);
    return w;
}

/* ADD/MOD: report it if it is ready now (Linux polls it there too). */
static void queue_if_ready(struct shim_epoll *ep, struct ep_entry *e)
{
    if ((entry_poll(&e->item, ep) & e->item.events & ~EPR_FLAG_BITS) &&
        epr_queue(&ep->ready, &e->item))
        ep_ring(ep);
}

static struct ep_watch *watch_new(struct shim_epoll *ep, struct fdt_obj *obj,
                                  int fd)
{
    struct ep_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->ep = ep;
    w->obj = obj;
    w->fd = fd;
    fdt_ref(obj);
    w->reg_fd[0] = w->reg_fd[1] = -1;
    w->node = (struct shim_wnode){ .owner = ep, .wake_fd = -1,
                                   .wake = watch_wake };
    if (obj->kind == FDT_SOCK)
        sock_gen((struct shim_sock *)obj, &w->gen);
    /* Before the first look (queue_if_ready): nothing after it is
     * missed.  It has no entry yet, so its wakes change nothing. */
    shim_waitq_add(&obj->wq, &w->node);
    return w;
}

/* Insert e (and w if new) and look at it once.  0 or -errno. */
static int insert(struct shim_epoll *ep, struct ep_entry *e,
                  struct ep_watch *w, bool new_watch)
{
    sigset_t saved;
    int err = 0;
    shim_defer_begin();
    ep_lock(ep, &saved);
    if (new_watch) {
        int fds[2];
        watch_fds(w, fds);
        err = watch_register(ep, w, fds);
        if (err)
            watch_unregister(ep, w);
        else
            HASH_ADD(hh_obj, ep->by_obj, obj, sizeof(w->obj), w);
    }
    if (!err) {
        HASH_ADD(hh, ep->entries, key, sizeof(e->key), e);
        e->wnext = w->entries;
        w->entries = e;
        atomic_fetch_add(&ep->nentries, 1);
        queue_if_ready(ep, e);
    }
    ep_unlock(ep, &saved);
    shim_defer_end();
    return err;
}

static int loop_check(struct shim_epoll *into, struct shim_epoll *x);

/* The data of the marker event (see wake_fast_waiters): the address of
 * this object, which no application data can equal. */
static const char fast_marker;

int shim_epoll_drop_markers(struct epoll_event *ev, int n)
{
    int kept = 0;
    for (int i = 0; i < n; i++)
        if (ev[i].data.ptr != (void *)&fast_marker)
            ev[kept++] = ev[i];
    return kept;
}

/* Threads in a real epoll_wait on a tracked epoll fd (any). */
static atomic_int fast_waiters;

void shim_epoll_fast_enter(void)
{
    atomic_fetch_add(&fast_waiters, 1);
    /* Before it looks at the instance: see wake_fast_waiters. */
    atomic_thread_fence(memory_order_seq_cst);
}

void shim_epoll_fast_leave(void)
{
    atomic_fetch_sub(&fast_waiters, 1);
}

/* The instance has just gained its first managed member, but threads may
 * already be blocked in the real epoll_wait on it (it had none when they
 * came; another thread added this one), where the member can never wake
 * them.  So an eventfd of ours sits in the user's kernel epoll (edge-
 * triggered, data: fast_marker), and a write to it wakes one such waiter;
 * the interposed epoll_wait drops the marker and goes on as the shim's.
 * Only when some thread is in a real epoll_wait at all (a waiter counts
 * itself before it looks at the instance, and we look after the member
 * is in: one of the two sees the other), so that a marker nobody takes
 * does not linger in the set.  Under ctl_lock. */
static void wake_fast_waiters(struct shim_epoll *ep, int epfd)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load(&fast_waiters) == 0)
        return;
    if (ep->marker_fd < 0) {
        int m = shim_priv_fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        struct epoll_event ev = { .events = EPOLLIN | EPOLLET,
                                  .data.ptr = (void *)&fast_marker };
        if (m >= 0 && REAL(epoll_ctl)(epfd, EPOLL_CTL_ADD, m, &ev) < 0) {
            shim_priv_close(m);
            m = -1;
        }
        ep->marker_fd = m;
    }
    if (ep->marker_fd >= 0) {
        uint64_t one = 1;
        ssize_t n = REAL(write)(ep->marker_fd, &one, sizeof(one));
        (void)n; /* EAGAIN: already pending */
    }
}

/* Before a member goes in: the kernel side exists, and for an epoll
 * member, no loop or too deep a nesting (under topo_lock). */
static int add_check(struct shim_epoll *ep, struct fdt_obj *obj)
{
    int err = ep_kernel(ep);
    if (!err && obj->kind == FDT_EPOLL)
        err = loop_check(ep, (struct shim_epoll *)obj);
    if (!err && obj->kind == FDT_EPOLL)
        err = ep_kernel((struct shim_epoll *)obj);
    return err;
}

/* The entry (and its watch when the object has none yet) made and
 * inserted.  0 or -errno (then nothing is left behind). */
static int add_entry(struct shim_epoll *ep, int fd, struct fdt_obj *obj,
                     const struct epoll_event *ev, struct ep_watch *w)
{
    bool new_watch = !w;
    struct ep_entry *e = calloc(1, sizeof(*e));
    if (e && new_watch)
        w = watch_new(ep, obj, fd);
    if (!e || !w) {
        free(e);
        return -ENOMEM;
    }
    e->key.obj = obj;
    e->key.fd = fd;
    e->w = w;
    epr_set(&e->item, ev->events, ev->data);
    int err = insert(ep, e, w, new_watch);
    if (err) {
        free(e);
        if (new_watch)
            watch_free(w);
    }
    return err;
}

static int ep_add(struct shim_epoll *ep, int epfd, int fd,
                  struct fdt_obj *obj, const struct epoll_event *ev)
{
    sigset_t saved, tsaved;
    ep_lock(ep, &saved);
    bool exists = find_entry(ep, fd, obj) != NULL;
    struct ep_watch *w = exists ? NULL : find_watch(ep, obj);
    ep_unlock(ep, &saved);
    if (exists)
        return -EEXIST;
    bool nested = obj->kind == FDT_EPOLL;
    if (nested) /* held until inserted: no loop can form meanwhile */
        global_lock(&topo_lock, &tsaved);
    int err = add_check(ep, obj);
    if (!err)
        err = add_entry(ep, fd, obj, ev, w);
    if (nested)
        global_unlock(&topo_lock, &tsaved);
    if (err)
        return err;
    fdt_mark_active(&ep->head);
    if (atomic_load(&ep->nentries) == 1)
        wake_fast_waiters(ep, epfd);
    shim_log("epoll_ctl(%d, ADD, %d): a PV Calls %s in an epoll set", epfd,
             fd, nested ? "epoll instance" : "socket");
    return 0;
}

static int ep_del(struct shim_epoll *ep, int fd, struct fdt_obj *obj)
{
    sigset_t saved;
    ep_lock(ep, &saved);
    struct ep_entry *e = find_entry(ep, fd, obj);
    struct ep_watch *dead = e ? entry_unlink(ep, e) : NULL;
    ep_unlock(ep, &saved);
    if (!e)
        return -ENOENT;
    free(e);
    if (dead)
        watch_free(dead);
    return 0;
}

static int ep_mod(struct shim_epoll *ep, int fd, struct fdt_obj *obj,
                  const struct epoll_event *ev)
{
    sigset_t saved;
    int err = 0;
    shim_defer_begin();
    ep_lock(ep, &saved);
    struct ep_entry *e = find_entry(ep, fd, obj);
    if (!e) {
        err = -ENOENT;
    } else if (e->item.events & EPOLLEXCLUSIVE) {
        err = -EINVAL; /* as Linux: an exclusive entry cannot change */
    } else {
        epr_set(&e->item, ev->events, ev->data);
        queue_if_ready(ep, e);
    }
    ep_unlock(ep, &saved);
    shim_defer_end();
    return err;
}

int shim_epoll_ctl(struct shim_epoll *ep, int epfd, int op, int fd,
                   struct fdt_obj *obj, const struct epoll_event *ev)
{
    sigset_t saved;
    ctl_lock(ep, &saved);
    int err;
    switch (op) {
    case EPOLL_CTL_ADD:
        err = ep_add(ep, epfd, fd, obj, ev);
        break;
    case EPOLL_CTL_DEL:
        err = ep_del(ep, fd, obj);
        break;
    case EPOLL_CTL_MOD:
        err = ep_mod(ep, fd, obj, ev);
        break;
    default:
        err = -EINVAL;
    }
    ctl_unlock(ep, &saved);
    return err;
}

/* ---- last close: out of every set ---------------------------------------- */

struct ep_list {
    struct shim_epoll **v;
    int n, cap;
};

static void list_add_ref(struct ep_list *l, struct shim_epoll *ep)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 8;
        struct shim_epoll **v = realloc(l->v, (size_t)cap * sizeof(*v));
        if (!v)
            return; /* out of memory: that set keeps a stale member */
        l->v = v;
        l->cap = cap;
    }
    fdt_ref(&ep->head);
    l->v[l->n++] = ep;
}

static void list_put(struct ep_list *l)
{
    for (int i = 0; i < l->n; i++)
        shim_epoll_put(l->v[i]);
    free(l->v);
}

/* shim_waitq_each callback: the instance holding this watch. */
static void add_container(struct shim_wnode *n, void *arg)
{
    list_add_ref(arg, ((struct ep_watch *)n)->ep);
}

static void forget_obj(struct shim_epoll *ep, struct fdt_obj *obj)
{
    sigset_t csaved, saved;
    ctl_lock(ep, &csaved);
    ep_lock(ep, &saved);
    struct ep_watch *w = find_watch(ep, obj), *dead = NULL;
    struct ep_entry *gone = NULL;
    while (w && !dead) {
        struct ep_entry *e = w->entries;
        dead = entry_unlink(ep, e);
        e->wnext = gone;
        gone = e;
    }
    ep_unlock(ep, &saved);
    while (gone) {
        struct ep_entry *next = gone->wnext;
        free(gone);
        gone = next;
    }
    if (dead)
        watch_free(dead);
    ctl_unlock(ep, &csaved);
}

/* fdt closed hook: the object's last fd in this process is gone. */
static void obj_closed(struct fdt_obj *obj)
{
    struct ep_list l = { 0 };
    shim_waitq_each(&obj->wq, watch_wake, add_container, &l);
    for (int i = 0; i < l.n; i++)
        forget_obj(l.v[i], obj);
    list_put(&l);
}

/* ---- loops and nesting depth (Linux's ep_loop_check) --------------------- */

/* The epoll instances among ep's members, referenced. */
static void members_of(struct shim_epoll *ep, struct ep_list *l)
{
    sigset_t saved;
    ep_lock(ep, &saved);
    struct ep_watch *w, *wt;
    HASH_ITER(hh_obj, ep->by_obj, w, wt)
        if (w->obj->kind == FDT_EPOLL)
            list_add_ref(l, (struct shim_epoll *)w->obj);
    ep_unlock(ep, &saved);
}

/* How deep the epolls below x go (edges), or more than EP_MAX_NESTS if
 * `into` is among them (a loop) or they go too deep. */
static int depth_below(struct shim_epoll *x, struct shim_epoll *into,
                       int depth)
{
    struct ep_list l = { 0 };
    members_of(x, &l);
    int result = 0;
    for (int i = 0; i < l.n && result <= EP_MAX_NESTS; i++) {
        int d = l.v[i] == into || depth > EP_MAX_NESTS
                    ? EP_MAX_NESTS + 1
                    : depth_below(l.v[i], into, depth + 1) + 1;
        if (d > result)
            result = d;
    }
    list_put(&l);
    return result;
}

/* How many epolls up from ep the deepest chain of containers goes. */
static int depth_above(struct shim_epoll *ep, int depth)
{
    if (depth > EP_MAX_NESTS)
        return EP_MAX_NESTS + 1;
    struct ep_list l = { 0 };
    shim_waitq_each(&ep->head.wq, watch_wake, add_container, &l);
    int result = 0;
    for (int i = 0; i < l.n; i++) {
        int d = depth_above(l.v[i], depth + 1) + 1;
        if (d > result)
            result = d;
    }
    list_put(&l);
    return result;
}

/* Under topo_lock, so that two insertions cannot build a loop between
 * them. */
static int loop_check(struct shim_epoll *into, struct shim_epoll *x)
{
    int down = depth_below(x, into, 0);
    if (down > EP_MAX_NESTS)
        return -ELOOP;
    return down + 1 + depth_above(into, 0) > EP_MAX_NESTS ? -ELOOP : 0;
}

/* ---- epoll_wait ----------------------------------------------------------- */

/* The managed part of one look: harvest into the caller's array.  Count,
 * or -EFAULT if none could be delivered.  Under the instance lock. */
static int take_managed(struct shim_epoll *ep, struct epoll_event *uev,
                        int max)
{
    struct epoll_event out[WAIT_CHUNK];
    struct epr_undo undo[WAIT_CHUNK];
    ep_collect(ep);
    int n = epr_harvest(&ep->ready, out, undo,
                        max < WAIT_CHUNK ? max : WAIT_CHUNK, entry_poll, ep);
    if (n == 0)
        return 0;
    ssize_t c = shim_copy_to_user(uev, out, (size_t)n * sizeof(*out));
    int done = c < 0 ? 0 : (int)((size_t)c / sizeof(*out));
    if (done < n)
        epr_unharvest(&ep->ready, undo + done, n - done);
    return done ? done : -EFAULT;
}

/* The native part: the kernel's own epoll, without waiting (and without
 * our marker event, when it is among them). */
static int take_native(int epfd, struct epoll_event *uev, int max)
{
    int n = REAL(epoll_wait)(epfd, uev, max, 0);
    if (n < 0)
        return -errno;
    struct epoll_event ev[WAIT_CHUNK];
    if (n == 0 || n > WAIT_CHUNK ||
        shim_copy_from_user(ev, uev, (size_t)n * sizeof(*ev)) !=
            (ssize_t)((size_t)n * sizeof(*ev)))
        return n;
    int kept = shim_epoll_drop_markers(ev, n);
    if (kept < n)
        shim_copy_to_user(uev, ev, (size_t)kept * sizeof(*ev));
    return kept;
}

/* One look at both sides, the side first alternating so that a busy one
 * cannot starve the other.  With nothing, the caller becomes a sleeper in
 * the same critical section, so that a wake after the look cannot be
 * missed.  Count, 0 (now a sleeper) or -errno. */
static int ep_pass(struct shim_epoll *ep, int epfd, struct epoll_event *uev,
                   int max)
{
    sigset_t saved;
    shim_defer_begin();
    ep_lock(ep, &saved);
    bool native_first = ep->native_first;
    ep->native_first = !native_first;
    int got = 0, err = 0;
    for (int side = 0; side < 2 && got < max; side++) {
        bool native = (side == 0) == native_first;
        int n = native ? take_native(epfd, uev + got, max - got)
                       : take_managed(ep, uev + got, max - got);
        if (n < 0)
            err = err ? err : n;
        else
            got += n;
    }
    if (got == 0 && err == 0)
        ep->sleepers++;
    else
        ring_for_others(ep, 0);
    ep_unlock(ep, &saved);
    shim_defer_end();
    return got ? got : err;
}

static void ep_unsleep(struct shim_epoll *ep)
{
    sigset_t saved;
    ep_lock(ep, &saved);
    if (ep->sleepers > 0)
        ep->sleepers--;
    ep_unlock(ep, &saved);
}

int shim_epoll_wait(struct shim_epoll *ep, int epfd,
                    struct epoll_event *uevents, int maxevents,
                    int64_t deadline_ns, const sigset_t *sigmask)
{
    for (;;) {
        int n = ep_pass(ep, epfd, uevents, maxevents);
        if (n != 0)
            return n;
        struct timespec ts, *tp = NULL;
        if (deadline_ns >= 0) {
            int64_t left = deadline_ns - shim_now_ns();
            if (left <= 0) {
                ep_unsleep(ep);
                return 0;
            }
            ts = (struct timespec){ left / 1000000000, left % 1000000000 };
            tp = &ts;
        }
        struct pollfd p[2] = { { epfd, POLLIN, 0 },
                               { atomic_load(&ep->hidden), POLLIN, 0 } };
        int r = REAL(ppoll)(p, 2, tp, sigmask);
        int err = errno;
        ep_unsleep(ep);
        if (r < 0)
            return -err; /* EINTR: epoll_wait is never restarted */
        if (p[0].revents & POLLNVAL)
            return -EBADF;
    }
}
