/*
 * The shim's data path (shim/data.c with the socket, wait and copy
 * modules) against a ring in plain shared memory whose backend side this
 * test drives itself: partial reads, MSG_PEEK, MSG_WAITALL across a wrap,
 * EOF and reset, a full ring (EAGAIN, blocking until the backend drains),
 * EPIPE with and without SIGPIPE, bad buffers, EINTR, and poll masks.
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

#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/time.h>

/* Defined by sig.c in the library (not linked here: it interposes
 * sigaction). */
__thread volatile sig_atomic_t shim_sig_norestart;

#define ORDER 1 /* two data pages: 4096 bytes per half */

struct fixture {
    void *mem;
    size_t len;
    struct shim_sock *s;
    struct pvc_data_ring back;
    int rx_efd; /* the backend notifies us here */
    int tx_efd; /* we notify the backend here */
    int fd;     /* the "token": any fd, for O_NONBLOCK */
};

static struct fixture fx;

static void init_lock(pthread_mutex_t *m)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
}

static void setup(void)
{
    fx.len = (1 + (1u << ORDER)) * 4096;
    fx.mem = mmap(NULL, fx.len, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(fx.mem, MAP_FAILED);
    uint32_t refs[1u << ORDER] = { 0 };
    pvc_data_ring_init_intf(fx.mem, ORDER, refs);
    void *data = (char *)fx.mem + 4096;
    pvc_data_ring_attach(&fx.back, fx.mem, data, ORDER, PVC_SIDE_BACK);

    fx.s = shim_sock_new(1, AF_INET);
    cr_assert_not_null(fx.s);
    pvc_data_ring_attach(&fx.s->ring, fx.mem, data, ORDER, PVC_SIDE_FRONT);
    fx.s->shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(fx.s->shared, MAP_FAILED);
    init_lock(&fx.s->shared->rx_lock);
    init_lock(&fx.s->shared->tx_lock);

    fx.rx_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    fx.tx_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct pvc_evtchn_handoff h = {
        .kind = PVC_PLATFORM_SIM, .port = 1, .nfds = 2,
        .fds = { dup(fx.rx_efd), dup(fx.tx_efd) },
    };
    fx.s->evt = pvc_evtchn_adopt(&h);
    cr_assert_not_null(fx.s->evt);
    fx.s->evt_fd = pvc_evtchn_fd(fx.s->evt);
    atomic_store(&fx.s->state, SHIM_CONNECTED);
    fx.fd = eventfd(0, EFD_CLOEXEC);
}

static void teardown(void)
{
    /* The release function unmaps the ring mapping it was given. */
    fx.s->ring_map = fx.mem;
    fx.s->ring_len = fx.len;
    shim_sock_setup();
    shim_sock_put(fx.s);
    close(fx.rx_efd);
    close(fx.tx_efd);
    close(fx.fd);
}

/* ---- the backend's side ---------------------------------------------- */

static void back_send(const void *buf, size_t len)
{
    cr_assert_eq(pvc_ring_tx_copy(&fx.back, buf, len), (long)len);
    uint64_t one = 1;
    cr_assert_eq(write(fx.rx_efd, &one, 8), 8);
}

static long back_recv(void *buf, size_t len)
{
    return pvc_ring_rx_copy(&fx.back, buf, len, 0);
}

static bool notified(void)
{
    uint64_t v;
    return read(fx.tx_efd, &v, 8) == 8;
}

static ssize_t recv_buf(void *buf, size_t len, int flags)
{
    struct iovec iov = { buf, len };
    return shim_recv_iov(fx.s, fx.fd, &iov, 1, flags);
}

static ssize_t send_buf(const void *buf, size_t len, int flags)
{
    struct iovec iov = { (void *)buf, len };
    return shim_send_iov(fx.s, fx.fd, &iov, 1, flags);
}

TestSuite(shim_data, .init = setup, .fini = teardown, .timeout = 20);

Test(shim_data, recv_returns_what_is_there_and_peek_keeps_it)
{
    back_send("hello", 5);
    char buf[16];
    cr_assert_eq(recv_buf(buf, 3, MSG_PEEK), 3);
    cr_assert_not(notified(), "a peek consumes nothing");
    cr_assert_eq(recv_buf(buf, sizeof(buf), 0), 5);
    cr_assert_eq(memcmp(buf, "hello", 5), 0);
    cr_assert(notified(), "consuming must notify the backend");
    cr_assert_eq(recv_buf(buf, 1, MSG_DONTWAIT), -EAGAIN);
    cr_assert_eq(recv_buf(buf, 0, 0), 0);
}

Test(shim_data, readv_scatters)
{
    back_send("abcdefgh", 8);
    char a[3], b[5];
    struct iovec iov[2] = { { a, 3 }, { b, 5 } };
    cr_assert_eq(shim_recv_iov(fx.s, fx.fd, iov, 2, 0), 8);
    cr_assert_eq(memcmp(a, "abc", 3), 0);
    cr_assert_eq(memcmp(b, "defgh", 5), 0);
}

static void *late_backend(void *arg)
{
    (void)arg;
    /* Wait for the front's first consumption notify (it has read the
     * first part and is blocked for the rest), then send the rest. */
    struct pollfd p = { fx.tx_efd, POLLIN, 0 };
    poll(&p, 1, 5000);
    static char rest[3000];
    memset(rest, 'b', sizeof(rest));
    back_send(rest, sizeof(rest));
    return NULL;
}

Test(shim_data, waitall_blocks_across_the_wrap)
{
    /* Move the indexes near the end of the half so the data wraps. */
    static char first[3000], got[6000];
    memset(first, 'x', sizeof(first));
    back_send(first, sizeof(first));
    cr_assert_eq(recv_buf(got, sizeof(first), 0), 3000);
    notified();
    memset(first, 'a', sizeof(first));
    back_send(first, sizeof(first));
    pthread_t t;
    pthread_create(&t, NULL, late_backend, NULL);
    cr_assert_eq(recv_buf(got, 6000, MSG_WAITALL), 6000);
    pthread_join(t, NULL);
    cr_assert_eq(got[2999], 'a');
    cr_assert_eq(got[3000], 'b');
    cr_assert_eq(got[5999], 'b');
}

Test(shim_data, eof_after_the_data)
{
    back_send("bye", 3);
    pvc_ring_set_in_error(&fx.back, -ENOTCONN);
    char buf[8];
    cr_assert_eq(recv_buf(buf, sizeof(buf), MSG_WAITALL), 3);
    cr_assert_eq(recv_buf(buf, sizeof(buf), 0), 0);
    cr_assert_eq(recv_buf(buf, sizeof(buf), 0), 0);
    cr_assert(shim_poll_mask(fx.s, fx.fd, POLLIN) & POLLIN);
}

Test(shim_data, reset_is_reported_once_then_eof)
{
    back_send("x", 1);
    pvc_ring_set_in_error(&fx.back, -ECONNRESET);
    char buf[8];
    cr_assert_eq(recv_buf(buf, sizeof(buf), 0), 1);
    cr_assert(shim_poll_mask(fx.s, fx.fd, POLLIN) & POLLERR);
    cr_assert_eq(recv_buf(buf, sizeof(buf), 0), -ECONNRESET);
    cr_assert_eq(recv_buf(buf, sizeof(buf), 0), 0);
}

Test(shim_data, a_full_ring_gives_a_partial_send_then_eagain)
{
    static char big[10000];
    cr_assert(shim_poll_mask(fx.s, fx.fd, POLLOUT) & POLLOUT);
    cr_assert_eq(send_buf(big, sizeof(big), MSG_DONTWAIT), 4096);
    cr_assert(notified());
    cr_assert_eq(send_buf(big, 1, MSG_DONTWAIT), -EAGAIN);
    cr_assert_eq(shim_poll_mask(fx.s, fx.fd, POLLOUT), 0);
    cr_assert_eq(shim_rx_ready(fx.s), 0);
}

static void *draining_backend(void *arg)
{
    size_t *total = arg;
    static char sink[4096];
    while (*total < 10000) {
        struct pollfd p = { fx.tx_efd, POLLIN, 0 };
        poll(&p, 1, 5000);
        notified();
        long n;
        while ((n = back_recv(sink, sizeof(sink))) > 0) {
            *total += (size_t)n;
            uint64_t one = 1;
            cr_assert_eq(write(fx.rx_efd, &one, 8), 8);
        }
    }
    return NULL;
}

Test(shim_data, a_blocking_send_waits_for_the_backend_to_drain)
{
    static char big[10000];
    size_t total = 0;
    pthread_t t;
    pthread_create(&t, NULL, draining_backend, &total);
    cr_assert_eq(send_buf(big, sizeof(big), 0), 10000);
    pthread_join(t, NULL);
    cr_assert_eq(total, 10000);
}

static volatile sig_atomic_t pipes;

static void on_pipe(int sig)
{
    (void)sig;
    pipes++;
}

Test(shim_data, epipe_raises_sigpipe_unless_nosignal)
{
    signal(SIGPIPE, on_pipe);
    pvc_ring_set_out_error(&fx.back, -EPIPE);
    cr_assert_eq(send_buf("x", 1, 0), -EPIPE);
    cr_assert_eq(pipes, 1);
    cr_assert_eq(send_buf("x", 1, MSG_NOSIGNAL), -EPIPE);
    cr_assert_eq(pipes, 1);
    __atomic_store_n(&fx.s->shared->shut_wr, 1, __ATOMIC_RELEASE);
    cr_assert(shim_poll_mask(fx.s, fx.fd, POLLOUT) & POLLOUT);
}

Test(shim_data, bad_buffers_give_efault_and_consume_only_what_was_copied)
{
    static char data[200];
    memset(data, 'd', sizeof(data));
    back_send(data, sizeof(data));
    cr_assert_eq(recv_buf((void *)8, 10, 0), -EFAULT);
    cr_assert_eq(shim_rx_ready(fx.s), 200, "nothing consumed");
    char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_eq(mprotect(p + 4096, 4096, PROT_NONE), 0);
    cr_assert_eq(recv_buf(p + 4096 - 50, 200, 0), 50);
    cr_assert_eq(shim_rx_ready(fx.s), 150);
    cr_assert_eq(send_buf((void *)8, 10, 0), -EFAULT);
    cr_assert_eq(send_buf(p + 4096 - 20, 100, 0), 20);
    munmap(p, 8192);
}

static void on_alarm(int sig)
{
    (void)sig;
    shim_sig_norestart = 1; /* what sig.c's trampoline records */
}

Test(shim_data, a_blocked_recv_ends_with_eintr)
{
    struct sigaction sa = { .sa_handler = on_alarm };
    sigaction(SIGALRM, &sa, NULL);
    /* Repeating, so that one lands while the wait is in the kernel. */
    struct itimerval it = { { 0, 20000 }, { 0, 20000 } };
    setitimer(ITIMER_REAL, &it, NULL);
    char buf[4];
    cr_assert_eq(recv_buf(buf, sizeof(buf), 0), -EINTR);
    struct itimerval off = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_REAL, &off, NULL);
}

Test(shim_data, o_nonblock_on_the_token_means_eagain)
{
    int fl = fcntl(fx.fd, F_GETFL);
    cr_assert_eq(fcntl(fx.fd, F_SETFL, fl | O_NONBLOCK), 0);
    char buf[4];
    cr_assert_eq(recv_buf(buf, sizeof(buf), 0), -EAGAIN);
}
