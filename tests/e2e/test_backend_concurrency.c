/*
 * Commands and domains that run at the same time: a CONNECT that hangs
 * must not delay anything else (of its own domain or another one), and
 * two domains, each through its own frontend in its own thread, move
 * data and run commands simultaneously.
 */
#include "../lib/checks.h"
#include "../lib/harness.h"
#include "../lib/hostnet.h"
#include "../lib/testfront.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ---- a connect that hangs ----------------------------------------------- */

/* A loopback listener that never accepts, with its queue already full
 * (backlog 0 holds one connection, ours): the kernel drops further SYNs,
 * so a connect() to it stays in SYN_SENT for minutes, without any
 * traffic leaving the machine. */
struct full_listener {
    int listen_fd, filler_fd;
    struct sockaddr_storage addr;
    socklen_t len;
};

static void full_listener_open(struct full_listener *fl)
{
    fl->len = hn_loopback(AF_INET, 0, &fl->addr);
    fl->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fl->listen_fd >= 0);
    cr_assert_eq(bind(fl->listen_fd, (struct sockaddr *)&fl->addr, fl->len),
                 0);
    cr_assert_eq(listen(fl->listen_fd, 0), 0);
    cr_assert_eq(getsockname(fl->listen_fd, (struct sockaddr *)&fl->addr,
                             &fl->len), 0);
    fl->filler_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(connect(fl->filler_fd, (struct sockaddr *)&fl->addr,
                         fl->len), 0, "filling the queue: %m");
}

static void full_listener_close(struct full_listener *fl)
{
    close(fl->filler_fd);
    close(fl->listen_fd);
}

/* Run one synchronous command and assert it took less than 1 s. */
#define PROMPTLY(expr, want)                                               \
    do {                                                                   \
        int64_t t0_ = hn_now_ms();                                         \
        CHECK_RET(expr, want);                                             \
        int64_t ms_ = hn_now_ms() - t0_;                                   \
        cr_assert_lt(ms_, 1000, "%s took %lld ms", #expr, (long long)ms_); \
    } while (0)

static void echo_once(struct tf_sock *s, const char *msg)
{
    size_t n = strlen(msg);
    char buf[64];
    cr_assert_eq(tf_write(s, msg, n, TF_TIMEOUT_MS), (long)n);
    cr_assert_eq(tf_read_full(s, buf, n, TF_TIMEOUT_MS), (long)n);
    cr_assert_arr_eq(buf, msg, n);
}

Test(backend_concurrency, hanging_connect_blocks_nothing, .fini = h_cleanup,
     .timeout = 60)
{
    struct harness *h = h_start(&(struct h_opts){ .guests = 2 });
    struct hn_server *echo =
        hn_server_start(&(struct hn_server_cfg){ .mode = HN_ECHO });
    struct sockaddr_storage echo_addr;
    socklen_t echo_len = hn_server_addr(echo, &echo_addr);
    struct full_listener fl;
    full_listener_open(&fl);
    struct tf *tf1 = tf_open_h(h, 1, 0);
    struct tf *tf2 = tf_open_h(h, 2, 0);

    struct tf_sock *hung = tf_sock_new(tf1);
    CHECK_RET(tf_socket(tf1, hung), 0);
    uint32_t hung_req = tf_connect_send(tf1, hung, &fl.addr, fl.len);
    cr_assert_eq(tf_wait(tf1, hung_req, 300, NULL), -ETIMEDOUT,
                 "the connect to a full listener should hang");

    /* Meanwhile domain 1 goes on: SOCKET, BIND, LISTEN, CONNECT, data. */
    struct tf_sock *ls = tf_sock_new(tf1);
    PROMPTLY(tf_socket(tf1, ls), 0);
    struct sockaddr_storage any;
    socklen_t any_len = hn_loopback(AF_INET, 0, &any);
    PROMPTLY(tf_bind(tf1, ls, &any, any_len), 0);
    PROMPTLY(tf_listen(tf1, ls, 4), 0);
    struct tf_sock *s1 = tf_sock_new(tf1);
    PROMPTLY(tf_socket(tf1, s1), 0);
    PROMPTLY(tf_connect(tf1, s1, &echo_addr, echo_len), 0);
    echo_once(s1, "domain 1 is not blocked");

    /* ... and so does domain 2. */
    struct tf_sock *s2 = tf_sock_new(tf2);
    PROMPTLY(tf_socket(tf2, s2), 0);
    PROMPTLY(tf_connect(tf2, s2, &echo_addr, echo_len), 0);
    echo_once(s2, "domain 2 is not blocked");

    /* Still hanging; RELEASE ends it: CONNECT answered first. */
    cr_assert(!tf_answered(tf1, hung_req), "CONNECT answered meanwhile");
    uint32_t rel = tf_release_send(tf1, hung);
    CHECK_RET(tf_release_finish(tf1, hung, rel, TF_TIMEOUT_MS), 0);
    CHECK_RET(tf_result(tf1, hung_req, TF_TIMEOUT_MS, NULL), -EBADF);

    CHECK_RET(tf_release(tf1, s1), 0);
    CHECK_RET(tf_release(tf1, ls), 0);
    CHECK_RET(tf_release(tf2, s2), 0);
    check_audit_journal(h, tf1);
    check_audit_journal(h, tf2);
    tf_close(tf1);
    tf_close(tf2);
    full_listener_close(&fl);
    hn_server_stop(echo);
    h_stop(h);
}

/* ---- two domains at once -------------------------------------------------- */

#define TWO_DOM_TOTAL (20u * 1024 * 1024)
#define TWO_DOM_CHUNK (1024u * 1024)

/* One domain's work, run in its own thread.  Nothing here asserts
 * (criterion's assertions belong to the test's thread): failures are
 * recorded and checked after the join. */
struct dom_job {
    struct tf *tf;
    struct tf_sock *s;
    bool sending;       /* frontend -> host, else host -> frontend */
    uint64_t seed;
    uint64_t bytes, hash;
    int commands;       /* SOCKET+RELEASE pairs answered 0 */
    char failure[128];
};

static void job_fail(struct dom_job *j, const char *what, long v)
{
    if (!j->failure[0])
        snprintf(j->failure, sizeof(j->failure), "dom %u: %s: %ld",
                 j->tf->domid, what, v);
}

/* A command round trip without assertions: its ret, or a failure. */
static bool job_command(struct dom_job *j, uint32_t cmd, uint64_t id)
{
    struct xen_pvcalls_request req = { .cmd = cmd };
    req.u.socket.id = id; /* every command's body starts with the id */
    if (cmd == PVCALLS_SOCKET)
        req.u.socket.domain = AF_INET, req.u.socket.type = SOCK_STREAM;
    uint32_t req_id = tf_send(j->tf, &req);
    union xen_pvcalls_sring_entry e;
    int err = req_id ? tf_wait(j->tf, req_id, TF_TIMEOUT_MS, &e) : -EBUSY;
    if (err) {
        job_fail(j, "no response", err);
        return false;
    }
    if (e.rsp.ret != 0) {
        job_fail(j, cmd == PVCALLS_SOCKET ? "SOCKET" : "RELEASE", e.rsp.ret);
        return false;
    }
    return true;
}

/* Between chunks of data, a SOCKET and its RELEASE on a fresh id. */
static void job_commands(struct dom_job *j)
{
    uint64_t id = 1000 + (uint64_t)j->commands;
    if (job_command(j, PVCALLS_SOCKET, id) &&
        job_command(j, PVCALLS_RELEASE, id))
        j->commands++;
}

static void *dom_worker(void *arg)
{
    struct dom_job *j = arg;
    struct hn_stream st;
    hn_stream_init(&st, j->seed);
    j->hash = HN_FNV_INIT;
    while (!j->failure[0]) {
        long r;
        if (j->sending) {
            if (j->bytes == TWO_DOM_TOTAL)
                break;
            r = tf_write_stream(j->s, &st, TWO_DOM_CHUNK, &j->hash,
                                TF_TIMEOUT_MS);
            if (r == 0)
                j->bytes += TWO_DOM_CHUNK;
        } else {
            static __thread unsigned char buf[TWO_DOM_CHUNK];
            r = tf_read_full(j->s, buf, TWO_DOM_CHUNK, TF_TIMEOUT_MS);
            if (r == TWO_DOM_CHUNK) {
                j->bytes += TWO_DOM_CHUNK;
                j->hash = hn_fnv1a(j->hash, buf, TWO_DOM_CHUNK);
                r = 0;
            } else if (r == 0) {
                break; /* EOF */
            }
        }
        if (r != 0)
            job_fail(j, "data", r);
        else
            job_commands(j);
    }
    return NULL;
}

static struct tf_sock *connect_to(struct tf *tf, struct hn_server *srv)
{
    struct tf_sock *s = tf_sock_new(tf);
    s->order = 6;
    CHECK_RET(tf_socket(tf, s), 0);
    struct sockaddr_storage ss;
    socklen_t len = hn_server_addr(srv, &ss);
    CHECK_RET(tf_connect(tf, s, &ss, len), 0);
    return s;
}

Test(backend_concurrency, two_domains_at_once, .fini = h_cleanup,
     .timeout = 120)
{
    struct harness *h = h_start(&(struct h_opts){ .guests = 2 });
    struct hn_server *sink =
        hn_server_start(&(struct hn_server_cfg){ .mode = HN_SINK });
    struct hn_server *src = hn_server_start(&(struct hn_server_cfg){
        .mode = HN_SOURCE, .total = TWO_DOM_TOTAL, .seed = 77 });
    struct dom_job j1 = { .tf = tf_open_h(h, 1, 0), .sending = true,
                          .seed = 66 };
    struct dom_job j2 = { .tf = tf_open_h(h, 2, 0), .sending = false };
    j1.s = connect_to(j1.tf, sink);
    j2.s = connect_to(j2.tf, src);
    uint64_t id1 = j1.s->id, id2 = j2.s->id;

    pthread_t t1, t2;
    cr_assert_eq(pthread_create(&t1, NULL, dom_worker, &j1), 0);
    cr_assert_eq(pthread_create(&t2, NULL, dom_worker, &j2), 0);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    cr_assert_str_empty(j1.failure, "%s", j1.failure);
    cr_assert_str_empty(j2.failure, "%s", j2.failure);

    cr_assert_eq(j2.bytes, TWO_DOM_TOTAL);
    cr_assert_eq(j2.hash, hn_stream_hash(77, TWO_DOM_TOTAL));
    cr_assert_gt(j1.commands, 0);
    cr_assert_gt(j2.commands, 0);
    CHECK_RET(tf_release(j1.tf, j1.s), 0);
    CHECK_RET(tf_release(j2.tf, j2.s), 0);
    cr_assert(hn_server_wait_done(sink, 1, TF_TIMEOUT_MS));
    struct hn_conn_result r;
    cr_assert(hn_server_result(sink, 0, &r));
    cr_assert_eq(r.bytes_in, TWO_DOM_TOTAL);
    cr_assert_eq(r.hash_in, j1.hash);

    check_close_record(h, 1, id1, 0, TWO_DOM_TOTAL);
    check_close_record(h, 2, id2, TWO_DOM_TOTAL, 0);
    check_audit_journal(h, j1.tf);
    check_audit_journal(h, j2.tf);
    tf_close(j1.tf);
    tf_close(j2.tf);
    hn_server_stop(sink);
    hn_server_stop(src);
    h_stop(h);
}
