/*
 * epoll, and poll/select on epoll fds, under libpvcalls.so against the
 * native calls: tests/progs/epoll_probe runs each group of cases natively
 * and with the shim preloaded on the simulated platform (sim, backend,
 * pvcalls-frontd), and both runs must print the same lines (the probe
 * itself checks them against Linux's behaviour, so the native run proves
 * the expectations).  The peer is a loopback server in this process that
 * obeys the probe's one-byte commands (write N bytes, echo, shut down,
 * reset).  The audit log shows that the shim run's sockets crossed PV
 * Calls.
 */
#include <criterion/criterion.h>

#include "../lib/harness.h"
#include "../lib/harness_frontd.h"
#include "../lib/runprog.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define RUN_MS 60000
#define AUDIT_MS 5000
#define PEER_CONNS 64

/* ---- the commanded peer ------------------------------------------------ */

struct peer_conn {
    int fd;
    bool echo;
    bool want_count; /* a 'w' waits for its count byte */
};

struct peer {
    int lfd, stop[2];
    uint16_t port;
    pthread_t thread;
    struct peer_conn conns[PEER_CONNS];
    int nconns;
};

static void write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n <= 0)
            return; /* the probe went away: its own checks will say */
        buf += n;
        len -= (size_t)n;
    }
}

static void conn_close(struct peer *p, int i, bool reset)
{
    if (reset) {
        struct linger lg = { .l_onoff = 1, .l_linger = 0 };
        setsockopt(p->conns[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(p->conns[i].fd);
    p->conns[i] = p->conns[--p->nconns];
}

/* Obey one byte; false if the connection is gone. */
static bool obey(struct peer *p, int i, unsigned char c)
{
    struct peer_conn *k = &p->conns[i];
    if (k->echo) {
        write_all(k->fd, (const char *)&c, 1);
    } else if (k->want_count) {
        char buf[256];
        for (unsigned j = 0; j < c; j++)
            buf[j] = (char)('a' + j % 26);
        write_all(k->fd, buf, c);
        k->want_count = false;
    } else if (c == 'w') {
        k->want_count = true;
    } else if (c == 'e') {
        k->echo = true;
    } else if (c == 's') {
        shutdown(k->fd, SHUT_WR);
    } else if (c == 'r') {
        conn_close(p, i, true);
        return false;
    }
    return true;
}

static void serve(struct peer *p, int i)
{
    unsigned char buf[512];
    ssize_t n = recv(p->conns[i].fd, buf, sizeof(buf), 0);
    if (n <= 0) {
        conn_close(p, i, false);
        return;
    }
    for (ssize_t j = 0; j < n; j++)
        if (!obey(p, i, buf[j]))
            return;
}

static void *peer_loop(void *arg)
{
    struct peer *p = arg;
    for (;;) {
        struct pollfd pf[PEER_CONNS + 2] = {
            { p->stop[0], POLLIN, 0 }, { p->lfd, POLLIN, 0 } };
        int n = p->nconns;
        for (int i = 0; i < n; i++)
            pf[i + 2] = (struct pollfd){ p->conns[i].fd, POLLIN, 0 };
        if (poll(pf, (nfds_t)n + 2, -1) < 0 && errno != EINTR)
            return NULL;
        if (pf[0].revents)
            return NULL;
        if ((pf[1].revents & POLLIN) && p->nconns < PEER_CONNS) {
            int c = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
            if (c >= 0)
                p->conns[p->nconns++] = (struct peer_conn){ .fd = c };
        }
        /* Backwards: serve() may drop entry i (the last moves there). */
        for (int i = n - 1; i >= 0; i--)
            if (pf[i + 2].revents)
                serve(p, i);
    }
}

static struct peer *peer_start(void)
{
    struct peer *p = calloc(1, sizeof(*p));
    cr_assert_not_null(p);
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    cr_assert(p->lfd >= 0 && bind(p->lfd, (struct sockaddr *)&a, len) == 0 &&
              listen(p->lfd, 16) == 0 &&
              getsockname(p->lfd, (struct sockaddr *)&a, &len) == 0);
    p->port = ntohs(a.sin_port);
    cr_assert_eq(pipe2(p->stop, O_CLOEXEC), 0);
    cr_assert_eq(pthread_create(&p->thread, NULL, peer_loop, p), 0);
    return p;
}

static void peer_stop(struct peer *p)
{
    cr_assert_eq(write(p->stop[1], "x", 1), 1);
    pthread_join(p->thread, NULL);
    while (p->nconns)
        conn_close(p, 0, false);
    close(p->lfd);
    close(p->stop[0]);
    close(p->stop[1]);
    free(p);
}

/* ---- running the probe --------------------------------------------------- */

/* A sanitizer build's shim needs its runtime first in the process:
 * preload the one this test binary runs with. */
static int find_san_runtime(struct dl_phdr_info *info, size_t size,
                            void *out)
{
    (void)size;
    if (info->dlpi_name && (strstr(info->dlpi_name, "libasan.so") ||
                            strstr(info->dlpi_name, "libtsan.so"))) {
        snprintf(out, PATH_MAX, "%s", info->dlpi_name);
        return 1;
    }
    return 0;
}

/* Run the probe with the cases; its output (malloc'ed) and status. */
static char *run_probe(const struct harness *h, const struct h_frontd *fd,
                       const struct peer *p, const char *const cases[],
                       int *status)
{
    char prog[PATH_MAX + 32], port[16], out[] = "/tmp/epoll_probe.XXXXXX";
    snprintf(prog, sizeof(prog), "%s/../progs/epoll_probe", h->bindir);
    snprintf(port, sizeof(port), "%u", p->port);
    const char *argv[24] = { prog, "127.0.0.1", port };
    size_t n = 3;
    for (size_t i = 0; cases[i] && n < 23; i++)
        argv[n++] = cases[i];
    argv[n] = NULL;
    char preload[2 * PATH_MAX + 64], sock[256], san[PATH_MAX] = "";
    dl_iterate_phdr(find_san_runtime, san);
    snprintf(preload, sizeof(preload), "LD_PRELOAD=%s%s%s/../lib/libpvcalls.so",
             san, san[0] ? " " : "", h->bindir);
    snprintf(sock, sizeof(sock), "PVC_FRONTD_SOCK=%s", fd ? fd->sock : "");
    const char *env[] = { preload, sock, "PVC_SHIM_LOG=1",
                          "ASAN_OPTIONS=verify_asan_link_order=0:"
                          "detect_leaks=1",
                          NULL };
    int tmp = mkstemp(out);
    cr_assert_geq(tmp, 0);
    close(tmp);
    struct rp_child c;
    rp_spawn(&c, argv, fd ? env : NULL, NULL, out);
    *status = rp_wait(&c, RUN_MS);
    char *text = rp_slurp(out);
    unlink(out);
    return text;
}

static void check_status(int status, const char *what, const char *out)
{
    char why[64];
    cr_assert(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "%s: %s\n%s", what,
              status < 0 ? "timed out" : proc_status_str(status, why,
                                                         sizeof(why)),
              out);
}

/* The cases natively, then under the shim: same output, both complete;
 * the shim's sockets were carried (audit: connects of domain 1). */
static void compare(const char *const cases[])
{
    char san[PATH_MAX] = "";
    dl_iterate_phdr(find_san_runtime, san);
    if (strstr(san, "libtsan"))
        cr_skip_test("a ThreadSanitizer shim cannot be preloaded (TSan's "
                     "own start-up calls the shim's sigaction before TSan "
                     "is ready); tests/unit/test_shim_epoll_inst runs the "
                     "threaded paths under TSan");
    struct harness *h = h_start(NULL);
    struct h_frontd fd;
    h_frontd_start(h, 1, NULL, &fd);
    struct peer *p = peer_start();
    int st;
    char *native = run_probe(h, NULL, p, cases, &st);
    check_status(st, "native probe", native);
    cr_assert(strstr(native, "probe: done\n"), "native: %s", native);
    char *shim = run_probe(h, &fd, p, cases, &st);
    check_status(st, "probe under the shim", shim);
    rp_assert_same_output(native, shim);
    struct audit_q q = { .cmd = "connect", .dom = 1 };
    cr_assert_geq(h_audit_wait(h, &q, 1, AUDIT_MS), 1);
    free(native);
    free(shim);
    peer_stop(p);
    cr_assert(h_frontd_alive(&fd), "pvcalls-frontd died");
    h_frontd_stop(&fd);
    h_stop(h);
}

TestSuite(shim_epoll, .fini = h_cleanup, .timeout = 120);

Test(shim_epoll, level_edge_and_oneshot_with_a_pipe_in_the_set)
{
    compare((const char *const[]){ "lt_et", "oneshot", NULL });
}

Test(shim_epoll, peer_shutdown_rdhup_and_reset_err_hup_unasked)
{
    compare((const char *const[]){ "rdhup", "reset", NULL });
}

Test(shim_epoll, epoll_inside_poll_select_and_epoll)
{
    compare((const char *const[]){ "nested", NULL });
}

Test(shim_epoll, two_sets_close_removes_dup_shares)
{
    compare((const char *const[]){ "two_sets", "close", NULL });
}

Test(shim_epoll, threads_waiting_sending_and_closing)
{
    compare((const char *const[]){ "threads_epoll", "add_while_waiting",
                                   "threads_recv", NULL });
}

Test(shim_epoll, timeouts_and_signals)
{
    compare((const char *const[]){ "timeout", "eintr", NULL });
}

Test(shim_epoll, errors_raw_epoll_fds_and_fork)
{
    compare((const char *const[]){ "errors", "raw_epoll", "fork", NULL });
}

/* These need the daemon's listeners and non-blocking connect. */
Test(shim_epoll, listeners_connects_and_a_pair_of_our_own)
{
    compare((const char *const[]){ "listen", "connect", "pair", NULL });
}
