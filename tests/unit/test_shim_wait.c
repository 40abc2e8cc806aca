/*
 * Wake-ups (shim/waitq.c, shim/wait.c): a wake reaches every registered
 * waiter but its own owner's, through a wake fd or a callback; wakes
 * deferred inside a scope happen at its end; per-thread wake fds are
 * closed at thread exit and renewed in a forked child, where a queue lock
 * held by a vanished thread does not deadlock; and the property the whole
 * design is for: threads blocked in shim_wait on one socket, whose event
 * channel events are acknowledged by whichever of them wakes first, never
 * lose a wake-up (each event here lets exactly one of them through, and
 * every one must get through well before any timeout).
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

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/wait.h>

/* Defined by sig.c in the library (not linked here: it interposes
 * sigaction). */
__thread volatile sig_atomic_t shim_sig_norestart;

struct obj {
    struct fdt_obj head;
};

static bool readable(int fd, int timeout_ms)
{
    struct pollfd p = { fd, POLLIN, 0 };
    return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

static uint64_t drain(int fd)
{
    uint64_t v = 0;
    return read(fd, &v, sizeof(v)) == sizeof(v) ? v : 0;
}

static int called;

static void callback(struct shim_wnode *n)
{
    (void)n;
    called++;
}

Test(shim_wait, a_wake_reaches_every_node_but_its_owners)
{
    struct obj o;
    shim_obj_init(&o.head, FDT_SOCK);
    int a = eventfd(0, EFD_NONBLOCK), b = eventfd(0, EFD_NONBLOCK);
    struct shim_wnode na = { .owner = &a, .wake_fd = a },
                      nb = { .owner = &b, .wake_fd = b },
                      nc = { .owner = &called, .wake_fd = -1,
                             .wake = callback };
    uint64_t s0 = shim_waitq_add(&o.head.wq, &na);
    shim_waitq_add(&o.head.wq, &nb);
    shim_waitq_add(&o.head.wq, &nc);
    called = 0;

    shim_obj_wake(&o.head, &a); /* a acknowledged the channel */
    cr_assert_not(readable(a, 0), "its own node is skipped");
    cr_assert(readable(b, 0));
    cr_assert_eq(called, 1);
    uint64_t s1 = shim_waitq_del(&o.head.wq, &nb);
    cr_assert_neq(s0, s1, "the wake changed the sequence");
    cr_assert_eq(shim_waitq_del(&o.head.wq, &na), s1, "nothing since");

    drain(b);
    shim_obj_wake(&o.head, NULL);
    cr_assert_not(readable(a, 0) || readable(b, 0), "unregistered");
    cr_assert_eq(called, 2);
    shim_waitq_del(&o.head.wq, &nc);
    cr_assert_eq(atomic_load(&o.head.wq.count), 0);
    shim_obj_fini(&o.head);
    close(a);
    close(b);
}

Test(shim_wait, wakes_inside_a_defer_scope_happen_at_its_end)
{
    struct obj o;
    shim_obj_init(&o.head, FDT_SOCK);
    struct shim_wnode n = { .owner = NULL, .wake_fd = -1, .wake = callback };
    shim_waitq_add(&o.head.wq, &n);
    called = 0;
    shim_defer_begin();
    shim_defer_begin(); /* nested: nothing happens at the inner end */
    shim_obj_wake(&o.head, NULL);
    shim_obj_wake(&o.head, NULL); /* the same wake twice: once is enough */
    shim_defer_end();
    cr_assert_eq(called, 0);
    cr_assert_eq(atomic_load(&o.head.refs), 2, "pinned until done");
    shim_defer_end();
    cr_assert_eq(called, 1);
    cr_assert_eq(atomic_load(&o.head.refs), 1);
    shim_waitq_del(&o.head.wq, &n);
    shim_obj_fini(&o.head);
}

static void *wake_fd_of_thread(void *arg)
{
    *(int *)arg = shim_thread_wake_fd();
    return NULL;
}

Test(shim_wait, a_threads_wake_fd_is_closed_when_it_exits)
{
    int fd = -1;
    pthread_t t;
    pthread_create(&t, NULL, wake_fd_of_thread, &fd);
    pthread_join(t, NULL);
    cr_assert_geq(fd, 0);
    cr_assert_eq(fcntl(fd, F_GETFD), -1, "fd %d still open", fd);
    cr_assert_eq(errno, EBADF);
    int mine = shim_thread_wake_fd();
    cr_assert_geq(mine, 0);
    cr_assert_eq(shim_thread_wake_fd(), mine, "made once per thread");
    struct shim_wnode n;
    shim_thread_node(&n);
    cr_assert_eq(n.wake_fd, mine);
    cr_assert_eq(n.owner, shim_thread_owner());
    cr_assert_null(n.wake);
}

static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t held_cond = PTHREAD_COND_INITIALIZER;
static int held;

/* Holds the queue's lock while the main thread forks, as any thread
 * might at that moment. */
static void *hold_queue_lock(void *arg)
{
    struct obj *o = arg;
    pthread_mutex_lock(&o->head.wq.lock);
    pthread_mutex_lock(&held_lock);
    held = 1;
    pthread_cond_signal(&held_cond);
    while (held == 1)
        pthread_cond_wait(&held_cond, &held_lock);
    pthread_mutex_unlock(&held_lock);
    pthread_mutex_unlock(&o->head.wq.lock);
    return NULL;
}

Test(shim_wait, a_forked_child_gets_fresh_locks_and_its_own_wake_fd)
{
    struct obj o;
    shim_obj_init(&o.head, FDT_SOCK);
    int parent_fd = shim_thread_wake_fd();
    shim_thread_wake_drain();
    pthread_t t;
    pthread_create(&t, NULL, hold_queue_lock, &o);
    pthread_mutex_lock(&held_lock);
    while (!held)
        pthread_cond_wait(&held_cond, &held_lock);
    pthread_mutex_unlock(&held_lock);

    pid_t pid = fork();
    if (pid == 0) {
        shim_waitq_fork_child();
        alarm(5); /* a deadlock here fails the test */
        struct shim_wnode n;
        shim_thread_node(&n);
        if (n.wake_fd < 0)
            _exit(2);
        shim_waitq_add(&o.head.wq, &n);
        shim_obj_wake(&o.head, NULL);
        shim_waitq_del(&o.head.wq, &n);
        _exit(readable(n.wake_fd, 0) ? 0 : 3);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    pthread_mutex_lock(&held_lock);
    held = 2;
    pthread_cond_signal(&held_cond);
    pthread_mutex_unlock(&held_lock);
    pthread_join(t, NULL);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child status %#x", status);
    cr_assert_not(readable(parent_fd, 0),
                  "the child's wake reached the parent's thread");
    shim_obj_fini(&o.head);
}

/* ---- shim_wait: no lost wake-up between threads -------------------------- */

#define WAITERS 4
#define ROUNDS 400
#define LONG_NS_WAIT 5000000000LL

static struct {
    struct shim_sock *s;
    int rx_efd, tx_efd; /* the backend's ends of the event channel */
    int token;          /* the socket's fd: any fd */
    atomic_int ready[WAITERS]; /* what each waiter waits for */
    atomic_int timeouts;
    atomic_int done;
} w;

static void sock_setup(void)
{
    w.s = shim_sock_new(1, AF_INET);
    cr_assert_not_null(w.s);
    w.rx_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w.tx_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct pvc_evtchn_handoff h = {
        .kind = PVC_PLATFORM_SIM, .port = 1, .nfds = 2,
        .fds = { dup(w.rx_efd), dup(w.tx_efd) },
    };
    w.s->evt = pvc_evtchn_adopt(&h);
    cr_assert_not_null(w.s->evt);
    w.s->evt_fd = pvc_evtchn_fd(w.s->evt);
    atomic_store(&w.s->state, SHIM_CONNECTED);
    w.token = eventfd(0, EFD_CLOEXEC);
}

static void sock_teardown(void)
{
    shim_sock_setup();
    shim_sock_put(w.s);
    close(w.rx_efd);
    close(w.tx_efd);
    close(w.token);
}

/* A blocking call's loop (check, wait, check...) for waiter i's own
 * condition, as a recv and a send blocked on one socket each wait for
 * their own side of it while sharing one event channel. */
static void *waiter(void *arg)
{
    int i = (int)(intptr_t)arg;
    for (;;) {
        while (!atomic_exchange(&w.ready[i], 0)) {
            if (atomic_load(&w.done))
                return NULL;
            int err = shim_wait(w.s, w.token, shim_now_ns() + 5000000000);
            if (err == -ETIMEDOUT) {
                atomic_fetch_add(&w.timeouts, 1);
                return NULL;
            }
        }
    }
}

/* The backend: readiness for one waiter and one event at a time, the
 * next once that waiter has seen it.  Whichever waiter wakes first
 * acknowledges the event; when that is not the one it was for, only the
 * wait queue can still wake the right one. */
Test(shim_wait, threads_on_one_socket_never_lose_a_wakeup,
     .init = sock_setup, .fini = sock_teardown, .timeout = 60)
{
    pthread_t t[WAITERS];
    for (int i = 0; i < WAITERS; i++)
        pthread_create(&t[i], NULL, waiter, (void *)(intptr_t)i);
    for (int r = 0; r < ROUNDS && !atomic_load(&w.timeouts); r++) {
        int i = r % WAITERS;
        atomic_store(&w.ready[i], 1);
        uint64_t one = 1;
        cr_assert_eq(write(w.rx_efd, &one, 8), 8);
        while (atomic_load(&w.ready[i]) && !atomic_load(&w.timeouts))
            sched_yield();
    }
    /* Let them go: a kick wakes every waiter. */
    atomic_store(&w.done, 1);
    shim_sock_kick(w.s);
    for (int i = 0; i < WAITERS; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&w.timeouts), 0, "a waiter slept through");
}

Test(shim_wait, deadlines_and_the_first_wait_rechecks,
     .init = sock_setup, .fini = sock_teardown)
{
    /* The first wait on a socket returns at once: the caller's check may
     * predate a wake another thread consumed. */
    cr_assert_eq(shim_wait(w.s, w.token, -1), 0);
    int64_t start = shim_now_ns();
    cr_assert_eq(shim_wait(w.s, w.token, start + 50000000), -ETIMEDOUT);
    cr_assert_geq(shim_now_ns() - start, 50000000);
    cr_assert_eq(shim_wait(w.s, w.token, start), -ETIMEDOUT);
    /* An event: acknowledged by the wait. */
    uint64_t one = 1;
    cr_assert_eq(write(w.rx_efd, &one, 8), 8);
    cr_assert_eq(shim_wait(w.s, w.token, shim_now_ns() + 1000000000), 0);
    cr_assert_not(readable(w.s->evt_fd, 0), "acknowledged");
    /* A kick from another thread of the process wakes a waiter. */
    shim_sock_kick(w.s);
    cr_assert_eq(shim_wait(w.s, w.token, shim_now_ns() + 1000000000), 0);
}

Test(shim_wait, a_token_that_hung_up_ends_the_wait, .init = sock_setup,
     .fini = sock_teardown)
{
    /* A listening socket waits on its token; the daemon lets go of it. */
    int pair[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    atomic_store(&w.s->state, SHIM_LISTENING);
    cr_assert_eq(shim_wait(w.s, pair[0], -1), 0, "the first wait re-checks");
    cr_assert_eq(write(pair[1], "!", 1), 1); /* a notice: look again */
    cr_assert_eq(shim_wait(w.s, pair[0], shim_now_ns() + LONG_NS_WAIT), 0);
    char c;
    cr_assert_eq(read(pair[0], &c, 1), 1); /* the shim drains it */
    close(pair[1]);
    cr_assert_eq(shim_wait(w.s, pair[0], shim_now_ns() + LONG_NS_WAIT), 0,
                 "one re-check: a last notice may be pending");
    cr_assert_eq(shim_wait(w.s, pair[0], shim_now_ns() + LONG_NS_WAIT),
                 -ECONNABORTED, "waiting on would spin");
    close(pair[0]);
    atomic_store(&w.s->state, SHIM_CONNECTED);
}
