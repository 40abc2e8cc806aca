/*
 * Shared by the test_store_*.c binaries: a sim_store running on a pvc_loop
 * in a background thread, with one socket per domain in a temporary
 * directory, and helpers to reach it with the real libxenstore.
 *
 * The Makefile links sim/ only into pvcalls-simd, so the store's sources
 * are compiled into each test binary here.
 */
#ifndef TEST_STORE_HARNESS_H
#define TEST_STORE_HARNESS_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <xenstore.h>

#include "pvc/log.h"
#include "pvc/loop.h"
#include "../../sim/store/store.h"
#include "../../sim/store/store_limits.h"


/* Each binary uses only some of the helpers. */
#define HARNESS_FN static __attribute__((unused))

struct harness {
    char dir[64];
    struct pvc_loop *loop;
    struct sim_store *st;
    pthread_t thread;
    int cmd[2];
    struct pvc_watch cmd_w;
    int stop;
};

static struct harness H;

/* Work for the loop thread: the store is single-threaded by design, so
 * the test thread hands it calls through a pipe and waits. */
struct harness_cmd {
    void (*fn)(void *arg);
    void *arg;
    sem_t done;
};

HARNESS_FN void harness_on_cmd(void *ctx, uint32_t events)
{
    (void)ctx;
    (void)events;
    struct harness_cmd *cmd;
    if (read(H.cmd[0], &cmd, sizeof(cmd)) != sizeof(cmd))
        return;
    cmd->fn(cmd->arg);
    sem_post(&cmd->done);
}

HARNESS_FN void harness_call(void (*fn)(void *), void *arg)
{
    struct harness_cmd cmd = { .fn = fn, .arg = arg };
    struct harness_cmd *p = &cmd;
    sem_init(&cmd.done, 0, 0);
    cr_assert_eq(write(H.cmd[1], &p, sizeof(p)), (ssize_t)sizeof(p));
    while (sem_wait(&cmd.done) < 0 && errno == EINTR)
        ;
    sem_destroy(&cmd.done);
}

HARNESS_FN void *harness_thread(void *arg)
{
    (void)arg;
    while (!H.stop)
        pvc_loop_run_once(H.loop, -1);
    return NULL;
}

HARNESS_FN void harness_sock_path(pvc_domid_t domid, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%u.sock", H.dir, domid);
}

struct domain_arg {
    pvc_domid_t domid;
    int result;
};

HARNESS_FN void do_add_domain(void *p)
{
    struct domain_arg *a = p;
    char path[128];
    harness_sock_path(a->domid, path, sizeof(path));
    a->result = sim_store_domain_add(H.st, a->domid, path);
}

HARNESS_FN void harness_add_domain(pvc_domid_t domid)
{
    struct domain_arg a = { .domid = domid };
    harness_call(do_add_domain, &a);
    cr_assert_eq(a.result, 0, "domain_add(%u) failed", domid);
}

HARNESS_FN void do_remove_domain(void *p)
{
    struct domain_arg *a = p;
    sim_store_domain_remove(H.st, a->domid);
}

HARNESS_FN void harness_remove_domain(pvc_domid_t domid)
{
    struct domain_arg a = { .domid = domid };
    harness_call(do_remove_domain, &a);
}

/* Domains 0, 1 and 2 exist in every test. */
HARNESS_FN void harness_start(void)
{
    /* Decided now, so that the loop thread never reads the environment
     * while a test sets XENSTORED_PATH. */
    pvc_log_set_level(PVC_LOG_ERR);
    signal(SIGPIPE, SIG_IGN);
    snprintf(H.dir, sizeof(H.dir), "/tmp/pvc-store-XXXXXX");
    cr_assert_not_null(mkdtemp(H.dir));
    H.loop = pvc_loop_new();
    cr_assert_not_null(H.loop);
    H.st = sim_store_new(H.loop);
    cr_assert_not_null(H.st);
    cr_assert_eq(pipe2(H.cmd, O_CLOEXEC), 0);
    cr_assert_eq(pvc_loop_add(H.loop, &H.cmd_w, H.cmd[0], EPOLLIN,
                              harness_on_cmd, NULL), 0);
    cr_assert_eq(pthread_create(&H.thread, NULL, harness_thread, NULL), 0);
    for (pvc_domid_t d = 0; d < 3; d++)
        harness_add_domain(d);
}

HARNESS_FN void do_stop(void *p)
{
    (void)p;
    H.stop = 1;
}

HARNESS_FN void harness_stop(void)
{
    harness_call(do_stop, NULL);
    pthread_join(H.thread, NULL);
    sim_store_free(H.st);
    pvc_loop_del(H.loop, &H.cmd_w);
    pvc_loop_free(H.loop);
    close(H.cmd[0]);
    close(H.cmd[1]);
    /* sim_store_free unlinked the sockets. */
    cr_expect_eq(rmdir(H.dir), 0, "leftover files in %s", H.dir);
}

/* A libxenstore handle speaking as domid. */
HARNESS_FN struct xs_handle *xs_as(pvc_domid_t domid)
{
    char path[128];
    harness_sock_path(domid, path, sizeof(path));
    setenv("XENSTORED_PATH", path, 1);
    struct xs_handle *xs = xs_open(0);
    cr_assert_not_null(xs, "xs_open as domain %u: %s", domid,
                       strerror(errno));
    return xs;
}

/* Read a node as a C string (NULL with errno on failure). */
HARNESS_FN char *xs_get(struct xs_handle *xs, const char *path)
{
    unsigned len;
    return xs_read(xs, XBT_NULL, path, &len);
}

HARNESS_FN void assert_value(struct xs_handle *xs, const char *path,
                         const char *want)
{
    char *v = xs_get(xs, path);
    cr_assert_not_null(v, "read %s: %s", path, strerror(errno));
    cr_assert_str_eq(v, want, "%s", path);
    free(v);
}

HARNESS_FN void assert_read_fails(struct xs_handle *xs, const char *path,
                              int err)
{
    errno = 0;
    char *v = xs_get(xs, path);
    cr_assert_null(v, "read %s unexpectedly gave '%s'", path, v);
    cr_assert_eq(errno, err, "read %s: errno %d (%s), wanted %d", path,
                 errno, strerror(errno), err);
}

HARNESS_FN void put(struct xs_handle *xs, const char *path, const char *value)
{
    cr_assert(xs_write(xs, XBT_NULL, path, value, strlen(value)),
              "write %s: %s", path, strerror(errno));
}

/* The next watch event within timeout_ms, as "path|token"; NULL if none
 * arrived (the fd from xs_fileno() is readable iff one is queued). */
HARNESS_FN char *next_event(struct xs_handle *xs, int timeout_ms)
{
    struct pollfd pfd = { .fd = xs_fileno(xs), .events = POLLIN };
    if (poll(&pfd, 1, timeout_ms) <= 0)
        return NULL;
    unsigned n;
    char **ev = xs_read_watch(xs, &n);
    if (!ev)
        return NULL;
    char *s;
    cr_assert(asprintf(&s, "%s|%s", ev[XS_WATCH_PATH],
                       ev[XS_WATCH_TOKEN]) > 0);
    free(ev);
    return s;
}

HARNESS_FN void expect_event(struct xs_handle *xs, const char *want)
{
    char *got = next_event(xs, 5000);
    cr_assert_not_null(got, "no watch event, wanted %s", want);
    cr_assert_str_eq(got, want);
    free(got);
}

/* No event is queued before the one `barrier` produces: set a watch with a
 * fresh token (xenstored fires it at once) and expect exactly that next. */
HARNESS_FN void expect_no_event_before_barrier(struct xs_handle *xs,
                                           const char *barrier_path)
{
    static int n;
    char token[32], want[256];
    snprintf(token, sizeof(token), "barrier%d", n++);
    cr_assert(xs_watch(xs, barrier_path, token));
    snprintf(want, sizeof(want), "%s|%s", barrier_path, token);
    expect_event(xs, want);
    cr_assert(xs_unwatch(xs, barrier_path, token));
}

/* ---- raw clients, for what libxenstore never sends ---------------------- */

HARNESS_FN int raw_connect(pvc_domid_t domid)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    harness_sock_path(domid, sa.sun_path, sizeof(sa.sun_path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

HARNESS_FN void raw_send(int fd, uint32_t type, uint32_t req_id,
                         uint32_t tx_id, const void *body, uint32_t len)
{
    struct xsd_sockmsg hdr = { type, req_id, tx_id, len };
    cr_assert_eq(write(fd, &hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
    if (len)
        cr_assert_eq(write(fd, body, len), (ssize_t)len);
}

/* Read exactly len bytes within 5 s; false on EOF/timeout. */
HARNESS_FN bool raw_read_full(int fd, void *buf, size_t len)
{
    size_t have = 0;
    while (have < len) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (poll(&pfd, 1, 5000) <= 0)
            return false;
        ssize_t n = read(fd, (char *)buf + have, len - have);
        if (n <= 0)
            return false;
        have += (size_t)n;
    }
    return true;
}

/* Receive one message; body (nul-terminated) into body[cap]. */
HARNESS_FN struct xsd_sockmsg raw_recv(int fd, char *body, size_t cap)
{
    struct xsd_sockmsg hdr;
    cr_assert(raw_read_full(fd, &hdr, sizeof(hdr)), "no reply header");
    cr_assert_leq(hdr.len, XENSTORE_PAYLOAD_MAX);
    cr_assert_lt(hdr.len, cap);
    cr_assert(raw_read_full(fd, body, hdr.len), "short reply body");
    body[hdr.len] = '\0';
    return hdr;
}

/* True if the server closed fd within 5 s (after any pending data). */
HARNESS_FN bool raw_closed_by_server(int fd)
{
    char buf[65536];
    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (poll(&pfd, 1, 5000) <= 0)
            return false;
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
        if (n < 0)
            return false;
    }
}

#endif
