/*
 * Epoll instances (shim/epoll_inst.c) over sockets whose backend side this
 * test plays itself (rings in plain shared memory, eventfd channels), with
 * threads, so that ThreadSanitizer sees the instance, wait-queue and data
 * paths race against each other: a waiter woken by data from another
 * thread, a blocked recv and an epoll_wait on one socket that must both
 * see every arrival whoever acknowledges the event, an epoll inside an
 * epoll, the last close leaving every set, and ctl/wait/close churn.
 * (The interposed entry points are tested end to end by
 * tests/e2e/test_shim_epoll.c; here the internal calls are used, so that
 * this process's own poll and epoll stay libc's.)
 */
#include <criterion/criterion.h>

#include "../../shim/env.c"
#include "../../shim/real.c"
#include "../../shim/fdtable.c"
#include "../../shim/sigdefer.c"
#include "../../shim/daemon.c"
#include "../../shim/sock.c"
#include "../../shim/uaccess.c"
#include "../../shim/waitq.c"
#include "../../shim/wait.c"
#include "../../shim/conn.c"
#include "../../shim/data.c"
#include "../../shim/epoll_obj.c"
#include "../../shim/epoll_ready.c"
#include "../../shim/epoll_inst.c"

#include <pthread.h>
#include <sys/eventfd.h>

/* Defined by sig.c in the library (not linked here: it interposes
 * sigaction). */
__thread volatile sig_atomic_t shim_sig_norestart;

#define ORDER 1
#define LONG_NS 5000000000LL

/* A connected socket and its backend. */
struct tsock {
    void *mem;
    size_t len;
    struct shim_sock *s;
    struct pvc_data_ring back;
    int rx_efd, tx_efd; /* the backend's ends of the channel */
    int pair[2];        /* pair[0]: the "token", the socket's fd */
};

static void init_lock(pthread_mutex_t *m)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
}

static void tsock_open(struct tsock *t)
{
    shim_init();
    t->len = (1 + (1u << ORDER)) * 4096;
    t->mem = mmap(NULL, t->len, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(t->mem, MAP_FAILED);
    uint32_t refs[1u << ORDER] = { 0 };
    pvc_data_ring_init_intf(t->mem, ORDER, refs);
    void *data = (char *)t->mem + 4096;
    pvc_data_ring_attach(&t->back, t->mem, data, ORDER, PVC_SIDE_BACK);
    t->s = shim_sock_new(1, AF_INET);
    cr_assert_not_null(t->s);
    pvc_data_ring_attach(&t->s->ring, t->mem, data, ORDER, PVC_SIDE_FRONT);
    t->s->ring_map = t->mem; /* the release unmaps it */
    t->s->ring_len = t->len;
    struct pvc_sock_shared *sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(sh, MAP_FAILED);
    init_lock(&sh->rx_lock);
    init_lock(&sh->tx_lock);
    t->s->shared = sh;
    t->rx_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    t->tx_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct pvc_evtchn_handoff h = {
        .kind = PVC_PLATFORM_SIM, .port = 1, .nfds = 2,
        .fds = { dup(t->rx_efd), dup(t->tx_efd) },
    };
    t->s->evt = pvc_evtchn_adopt(&h);
    cr_assert_not_null(t->s->evt);
    t->s->evt_fd = pvc_evtchn_fd(t->s->evt);
    atomic_store(&t->s->state, SHIM_CONNECTED);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
                            t->pair), 0);
    cr_assert_eq(fdt_set(t->pair[0], &t->s->head), 0);
    shim_sock_put(t->s); /* the table's reference keeps it */
}

/* The application's close: out of the table (and every epoll set). */
static void tsock_close(struct tsock *t)
{
    fdt_remove(t->pair[0]);
    close(t->pair[0]);
    close(t->pair[1]);
    close(t->rx_efd);
    close(t->tx_efd);
}

static void back_send(struct tsock *t, const void *buf, size_t len)
{
    cr_assert_eq(pvc_ring_tx_copy(&t->back, buf, len), (long)len);
    uint64_t one = 1;
    cr_assert_eq(write(t->rx_efd, &one, 8), 8);
}

static ssize_t app_recv(struct tsock *t, void *buf, size_t len, int flags)
{
    struct iovec iov = { buf, len };
    return shim_recv_iov(t->s, t->pair[0], &iov, 1, flags);
}

/* A tracked epoll fd and its instance. */
static struct shim_epoll *new_epoll(int *epfd)
{
    *epfd = epoll_create1(EPOLL_CLOEXEC);
    cr_assert_geq(*epfd, 0);
    cr_assert_eq(shim_epoll_track(*epfd), 0);
    struct shim_epoll *ep = shim_epoll_get(*epfd);
    cr_assert_not_null(ep);
    return ep;
}

static void close_epoll(struct shim_epoll *ep, int epfd)
{
    shim_epoll_put(ep);
    fdt_remove(epfd);
    close(epfd);
}

static int ctl_fd(struct shim_epoll *ep, int epfd, int op, int fd,
                  uint32_t events, uint64_t data)
{
    struct fdt_obj *obj = fdt_get_kind(fd, FDT_ANY);
    cr_assert_not_null(obj);
    struct epoll_event ev = { .events = events, .data.u64 = data };
    int r = shim_epoll_ctl(ep, epfd, op, fd, obj, &ev);
    fdt_put(obj);
    return r;
}

TestSuite(shim_epoll_inst, .timeout = 60);

struct waiter {
    struct shim_epoll *ep;
    int epfd, n;
    struct epoll_event ev[4];
    int64_t deadline;
};

static void *wait_thread(void *arg)
{
    struct waiter *w = arg;
    w->n = shim_epoll_wait(w->ep, w->epfd, w->ev, 4, w->deadline, NULL);
    return NULL;
}

Test(shim_epoll_inst, a_waiter_wakes_on_data_from_another_thread)
{
    struct tsock t;
    tsock_open(&t);
    int epfd;
    struct shim_epoll *ep = new_epoll(&epfd);
    cr_assert_eq(ctl_fd(ep, epfd, EPOLL_CTL_ADD, t.pair[0], EPOLLIN, 5), 0);
    cr_assert_not(shim_epoll_unmanaged(ep));
    cr_assert(fdt_waitable(epfd), "now the shim's to answer");
    struct waiter w = { ep, epfd, 0, { { 0 } }, shim_now_ns() + LONG_NS };
    pthread_t th;
    pthread_create(&th, NULL, wait_thread, &w);
    back_send(&t, "x", 1);
    pthread_join(th, NULL);
    cr_assert_eq(w.n, 1);
    cr_assert_eq(w.ev[0].events, EPOLLIN);
    cr_assert_eq(w.ev[0].data.u64, 5);
    close_epoll(ep, epfd);
    tsock_close(&t);
}

/* ---- a recv and an epoll_wait on one socket ----------------------------- */

#define ROUNDS 200

static struct {
    struct tsock t;
    struct shim_epoll *ep;
    int epfd;
    atomic_int round;       /* the round the main thread is in */
    atomic_int recv_seen, epoll_seen; /* the last round each one saw */
    atomic_int failed;
} both;

/* Peeks, so that both watchers see every byte; the main thread drains. */
static void *peeking_receiver(void *arg)
{
    (void)arg;
    for (int r = 1; r <= ROUNDS && !atomic_load(&both.failed); r++) {
        while (atomic_load(&both.round) < r)
            sched_yield();
        char c;
        if (app_recv(&both.t, &c, 1, MSG_PEEK) != 1)
            atomic_store(&both.failed, 1);
        atomic_store(&both.recv_seen, r);
    }
    return NULL;
}

static void *edge_watcher(void *arg)
{
    (void)arg;
    for (int r = 1; r <= ROUNDS && !atomic_load(&both.failed); r++) {
        struct epoll_event ev[2];
        int n = 0;
        while (n == 0 && !atomic_load(&both.failed)) {
            n = shim_epoll_wait(both.ep, both.epfd, ev, 2,
                                shim_now_ns() + LONG_NS, NULL);
            if (n == 0)
                atomic_store(&both.failed, 2);
        }
        if (n > 0)
            atomic_store(&both.epoll_seen, atomic_load(&both.round));
        while (atomic_load(&both.round) == r && !atomic_load(&both.failed))
            sched_yield();
    }
    return NULL;
}

/* Both asleep: the recv registered on the socket (beside the epoll's
 * watch), the epoll_wait counted as a sleeper. */
static bool both_blocked(void)
{
    if (atomic_load(&both.t.s->head.wq.count) < 2)
        return false;
    sigset_t saved;
    ep_lock(both.ep, &saved);
    bool sleeping = both.ep->sleepers > 0;
    ep_unlock(both.ep, &saved);
    return sleeping;
}

/* Whichever of them acknowledges the event channel first, the other one
 * must still be woken (the wait queue, and the epoll watch on it). */
Test(shim_epoll_inst, a_blocked_recv_and_an_epoll_wait_both_see_each_arrival)
{
    tsock_open(&both.t);
    both.ep = new_epoll(&both.epfd);
    cr_assert_eq(ctl_fd(both.ep, both.epfd, EPOLL_CTL_ADD, both.t.pair[0],
                     EPOLLIN | EPOLLET, 1), 0);
    pthread_t tr, te;
    pthread_create(&tr, NULL, peeking_receiver, NULL);
    pthread_create(&te, NULL, edge_watcher, NULL);
    for (int r = 1; r <= ROUNDS && !atomic_load(&both.failed); r++) {
        atomic_store(&both.round, r);
        int64_t end = shim_now_ns() + LONG_NS;
        while (!both_blocked() && shim_now_ns() < end)
            sched_yield();
        back_send(&both.t, "y", 1);
        while ((atomic_load(&both.recv_seen) < r ||
                atomic_load(&both.epoll_seen) < r) &&
               !atomic_load(&both.failed) && shim_now_ns() < end)
            sched_yield();
        cr_assert_eq(atomic_load(&both.failed), 0, "round %d", r);
        cr_assert_eq(atomic_load(&both.recv_seen), r, "recv slept through");
        cr_assert_eq(atomic_load(&both.epoll_seen), r,
                     "epoll_wait slept through round %d", r);
        char c;
        cr_assert_eq(app_recv(&both.t, &c, 1, MSG_DONTWAIT), 1);
    }
    atomic_store(&both.round, ROUNDS + 1);
    pthread_join(tr, NULL);
    pthread_join(te, NULL);
    close_epoll(both.ep, both.epfd);
    tsock_close(&both.t);
}

Test(shim_epoll_inst, an_epoll_inside_an_epoll_wakes_the_outer_waiter)
{
    struct tsock t;
    tsock_open(&t);
    int infd, outfd;
    struct shim_epoll *inner = new_epoll(&infd), *outer = new_epoll(&outfd);
    cr_assert_eq(ctl_fd(inner, infd, EPOLL_CTL_ADD, t.pair[0], EPOLLIN, 1), 0);
    cr_assert_eq(ctl_fd(outer, outfd, EPOLL_CTL_ADD, infd, EPOLLIN, 2), 0);
    cr_assert_eq(ctl_fd(inner, infd, EPOLL_CTL_ADD, outfd, EPOLLIN, 3), -ELOOP);
    cr_assert_eq(shim_obj_mask(&inner->head, infd), 0);
    struct waiter w = { outer, outfd, 0, { { 0 } }, shim_now_ns() + LONG_NS };
    pthread_t th;
    pthread_create(&th, NULL, wait_thread, &w);
    back_send(&t, "z", 1);
    pthread_join(th, NULL);
    cr_assert_eq(w.n, 1);
    cr_assert_eq(w.ev[0].data.u64, 2);
    cr_assert_eq(shim_obj_mask(&inner->head, infd), EPOLLIN | EPOLLRDNORM);
    close_epoll(outer, outfd);
    close_epoll(inner, infd);
    tsock_close(&t);
}

Test(shim_epoll_inst, the_last_close_leaves_every_set)
{
    struct tsock t;
    tsock_open(&t);
    int fd1, fd2;
    struct shim_epoll *a = new_epoll(&fd1), *b = new_epoll(&fd2);
    cr_assert_eq(ctl_fd(a, fd1, EPOLL_CTL_ADD, t.pair[0], EPOLLIN, 1), 0);
    cr_assert_eq(ctl_fd(b, fd2, EPOLL_CTL_ADD, t.pair[0], EPOLLIN, 2), 0);
    int d = dup(t.pair[0]);
    cr_assert_eq(fdt_set(d, &t.s->head), 0);
    fdt_remove(t.pair[0]); /* a dup still names it */
    cr_assert_not(shim_epoll_unmanaged(a));
    fdt_remove(d);
    close(d);
    cr_assert(shim_epoll_unmanaged(a));
    cr_assert(shim_epoll_unmanaged(b));
    close_epoll(a, fd1);
    close_epoll(b, fd2);
    tsock_close(&t);
}

/* ---- churn ---------------------------------------------------------------- */

static struct {
    struct tsock t;
    struct shim_epoll *ep;
    int epfd;
    atomic_int stop;
} churn;

static void *churn_waiter(void *arg)
{
    (void)arg;
    while (!atomic_load(&churn.stop)) {
        struct epoll_event ev[4];
        shim_epoll_wait(churn.ep, churn.epfd, ev, 4,
                        shim_now_ns() + 2000000, NULL);
        char buf[16];
        app_recv(&churn.t, buf, sizeof(buf), MSG_DONTWAIT);
    }
    return NULL;
}

static void *churn_ctl(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000 && !atomic_load(&churn.stop); i++) {
        uint32_t ev = i % 3 == 0 ? EPOLLIN | EPOLLET
                      : i % 3 == 1 ? EPOLLIN | EPOLLONESHOT : EPOLLIN;
        if (ctl_fd(churn.ep, churn.epfd, EPOLL_CTL_ADD, churn.t.pair[0], ev, 1) == 0) {
            ctl_fd(churn.ep, churn.epfd, EPOLL_CTL_MOD, churn.t.pair[0], ev, 2);
            ctl_fd(churn.ep, churn.epfd, EPOLL_CTL_DEL, churn.t.pair[0], 0, 0);
        }
    }
    return NULL;
}

/* Waits, adds, removes, data and finally a close, all at once. */
Test(shim_epoll_inst, ctl_wait_data_and_close_race_cleanly)
{
    tsock_open(&churn.t);
    churn.ep = new_epoll(&churn.epfd);
    cr_assert_eq(ctl_fd(churn.ep, churn.epfd, EPOLL_CTL_ADD, churn.t.pair[0], EPOLLIN, 9),
                 0);
    fdt_ref(&churn.t.s->head); /* the waiters use it after the close */
    pthread_t tw[2], tc;
    for (int i = 0; i < 2; i++)
        pthread_create(&tw[i], NULL, churn_waiter, NULL);
    pthread_create(&tc, NULL, churn_ctl, NULL);
    for (int i = 0; i < 300; i++) {
        struct iovec iov[2];
        if (pvc_ring_tx_iov(&churn.t.back, iov) > 0)
            back_send(&churn.t, "d", 1);
        sched_yield();
    }
    pthread_join(tc, NULL);
    fdt_remove(churn.t.pair[0]); /* the close, while they wait */
    cr_assert(shim_epoll_unmanaged(churn.ep));
    atomic_store(&churn.stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(tw[i], NULL);
    shim_sock_put(churn.t.s);
    close_epoll(churn.ep, churn.epfd);
    close(churn.t.pair[0]);
    close(churn.t.pair[1]);
    close(churn.t.rx_efd);
    close(churn.t.tx_efd);
}
