/*
 * The end-to-end test infrastructure checks itself: the audit log's JSON
 * reader, the byte streams and checksums every data test relies on, the
 * host-side peers, child processes and their ready pipes, and the
 * harness's own startup and teardown.  (Here rather than in tests/unit
 * because it belongs with the e2e tests it vouches for.)
 */
#include "../lib/audit.h"
#include "../lib/harness.h"
#include "../lib/hostnet.h"
#include "../lib/proc.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- JSON reader ----------------------------------------------------- */

Test(testlib, json_fields)
{
    const char *rec = "{\"ts\":\"2026-11-23T12:00:00Z\", \"dom\":1,"
                      "\"cmd\":\"connect\",\"req_id\":5,\"id\":18446744073709551,"
                      "\"addr\":\"127.0.0.1:8080\",\"ret\":-111,"
                      "\"err\":\"ECONNREFUSED\"}";
    char s[64];
    long long v;
    cr_assert(json_valid_object(rec));
    cr_assert(json_str(rec, "cmd", s, sizeof(s)));
    cr_assert_str_eq(s, "connect");
    cr_assert(json_int(rec, "ret", &v));
    cr_assert_eq(v, -111);
    cr_assert(json_int(rec, "id", &v));
    cr_assert_eq(v, 18446744073709551LL);
    cr_assert(!json_int(rec, "cmd", &v), "a string is no integer");
    cr_assert(!json_str(rec, "ret", s, sizeof(s)), "a number is no string");
    cr_assert(!json_str(rec, "missing", s, sizeof(s)));
    cr_assert(!json_str(rec, "addr", s, 5), "too long for the buffer");
}

Test(testlib, json_keys_only_at_top_level)
{
    /* "cmd" appears inside a string and inside a nested object: neither
     * is the record's cmd. */
    const char *rec = "{\"what\":\"\\\"cmd\\\":\\\"x\\\"\",\"nested\":{\"cmd\":"
                      "\"inner\",\"a\":[1,{\"cmd\":2}]},\"cmd\":\"outer\","
                      "\"esc\":\"a\\\\b\\n\\u0041\"}";
    char s[64];
    cr_assert(json_valid_object(rec));
    cr_assert(json_str(rec, "cmd", s, sizeof(s)));
    cr_assert_str_eq(s, "outer");
    cr_assert(json_str(rec, "esc", s, sizeof(s)));
    cr_assert_str_eq(s, "a\\b\nA");
    cr_assert(json_str(rec, "what", s, sizeof(s)));
    cr_assert_str_eq(s, "\"cmd\":\"x\"");
}

Test(testlib, json_rejects_malformed)
{
    static const char *const bad[] = {
        "", "{", "{\"a\":}", "{\"a\" 1}", "{\"a\":1,}", "{\"a\":1} x",
        "{\"a\":\"unterminated}", "{\"a\":tru}", "[1]", "{\"a\":\"\\q\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert(!json_valid_object(bad[i]), "%s", bad[i]);
    long long v;
    cr_assert(!json_int("{\"a\":1.5}", "a", &v));
    cr_assert(!json_int("{\"a\":1e3}", "a", &v));
}

Test(testlib, audit_queries)
{
    char path[] = "/tmp/pvc-audit-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    const char log[] =
        "{\"dom\":1,\"cmd\":\"socket\",\"req_id\":1,\"id\":7,\"ret\":0}\n"
        "{\"dom\":2,\"cmd\":\"socket\",\"req_id\":1,\"id\":7,\"ret\":0}\n"
        "{\"dom\":1,\"event\":\"close\",\"id\":7,\"bytes_in\":3,"
        "\"bytes_out\":4}\n"
        "{\"dom\":1,\"cmd\":\"rele"; /* being written: not a record */
    cr_assert_eq(write(fd, log, strlen(log)), (ssize_t)strlen(log));
    close(fd);
    struct audit a;
    cr_assert_eq(audit_load(&a, path), 0);
    cr_assert_eq(a.n, 3);
    cr_assert_eq(audit_count(&a, &(struct audit_q){ .cmd = "socket" }), 2);
    cr_assert_eq(audit_count(&a, &(struct audit_q){ .dom = 1 }), 2);
    cr_assert_eq(audit_count(&a, &(struct audit_q){ .dom = 1, .id = 7,
                                                    .event = "close" }), 1);
    cr_assert_null(audit_first(&a, &(struct audit_q){ .cmd = "release" }));
    audit_free(&a);
    /* Waiting for a record that is there returns at once; for one that
     * never comes, after the timeout. */
    int64_t t0 = hn_now_ms();
    cr_assert_eq(audit_wait(path, &(struct audit_q){ .event = "close" }, 1,
                            5000), 1);
    cr_assert_lt(hn_now_ms() - t0, 1000);
    cr_assert_eq(audit_wait(path, &(struct audit_q){ .cmd = "release" }, 1,
                            100), 0);
    unlink(path);
}

/* ---- streams and checksums ------------------------------------------- */

Test(testlib, fnv1a_known_values)
{
    /* Published FNV-1a 64 test vectors. */
    cr_assert_eq(hn_fnv1a(HN_FNV_INIT, "", 0), 0xcbf29ce484222325ull);
    cr_assert_eq(hn_fnv1a(HN_FNV_INIT, "a", 1), 0xaf63dc4c8601ec8cull);
    cr_assert_eq(hn_fnv1a(HN_FNV_INIT, "foobar", 6), 0x85944171f73967e8ull);
    /* Incremental equals one-shot. */
    cr_assert_eq(hn_fnv1a(hn_fnv1a(HN_FNV_INIT, "foo", 3), "bar", 3),
                 0x85944171f73967e8ull);
}

Test(testlib, stream_is_independent_of_chunking)
{
    enum { N = 10007 };
    static unsigned char whole[N], pieces[N];
    struct hn_stream a, b;
    hn_stream_init(&a, 99);
    hn_stream_fill(&a, whole, N);
    hn_stream_init(&b, 99);
    for (size_t off = 0, step = 1; off < N; off += step, step = step * 3 % 17 + 1)
        hn_stream_fill(&b, pieces + off, off + step > N ? N - off : step);
    cr_assert_arr_eq(whole, pieces, N);
    cr_assert_eq(hn_stream_hash(99, N), hn_fnv1a(HN_FNV_INIT, whole, N));
    /* Different seeds, different streams. */
    cr_assert_neq(hn_stream_hash(98, N), hn_stream_hash(99, N));
}

/* ---- host peers -------------------------------------------------------- */

Test(testlib, host_peers_exchange_streams)
{
    struct hn_server *echo =
        hn_server_start(&(struct hn_server_cfg){ .mode = HN_ECHO });
    struct sockaddr_storage ss;
    socklen_t len = hn_server_addr(echo, &ss);
    struct hn_client *c = hn_client_start(&ss, len, 1000000, 5);
    struct hn_client_result r;
    cr_assert(hn_client_wait(c, 10000, &r));
    cr_assert_eq(r.connect_err, 0);
    cr_assert_eq(r.bytes_in, 1000000);
    cr_assert_eq(r.hash_in, hn_stream_hash(5, 1000000));
    hn_client_free(c);
    cr_assert(hn_server_wait_done(echo, 1, 5000));
    struct hn_conn_result cr;
    cr_assert(hn_server_result(echo, 0, &cr));
    cr_assert_eq(cr.bytes_in, 1000000);
    cr_assert_eq(cr.bytes_out, 1000000);
    hn_server_stop(echo);

    /* A source's stream, read by a client that sends nothing. */
    struct hn_server *src = hn_server_start(&(struct hn_server_cfg){
        .mode = HN_SOURCE, .total = 77777, .seed = 3 });
    len = hn_server_addr(src, &ss);
    c = hn_client_start(&ss, len, 0, 0);
    cr_assert(hn_client_wait(c, 10000, &r));
    cr_assert_eq(r.bytes_in, 77777);
    cr_assert_eq(r.hash_in, hn_stream_hash(3, 77777), "connection 0: seed");
    hn_client_free(c);
    hn_server_stop(src);

    /* Nothing listens on a closed port. */
    len = hn_loopback(AF_INET, hn_closed_port(AF_INET), &ss);
    c = hn_client_start(&ss, len, 1, 0);
    cr_assert(hn_client_wait(c, 5000, &r));
    cr_assert_eq(r.connect_err, ECONNREFUSED);
    hn_client_free(c);
}

/* ---- child processes --------------------------------------------------- */

Test(testlib, proc_ready_and_exit)
{
    struct proc p;
    char *ok[] = { "/bin/sh", "-c", "echo ready >&3; exit 7", NULL };
    cr_assert_eq(proc_spawn(&p, ok, NULL, true), 0);
    cr_assert_eq(proc_wait_ready(&p, 5000), 0);
    int st = proc_wait_exit(&p, 5000);
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 7);

    /* Dies before ready: reported at once, not after the timeout. */
    char *dies[] = { "/bin/sh", "-c", "exit 3", NULL };
    cr_assert_eq(proc_spawn(&p, dies, NULL, true), 0);
    int64_t t0 = hn_now_ms();
    cr_assert_eq(proc_wait_ready(&p, 5000), -EPIPE);
    cr_assert_lt(hn_now_ms() - t0, 2000);
    proc_kill(&p);

    /* Never ready, never exits: both waits time out; kill works. */
    char *hangs[] = { "/bin/sleep", "60", NULL };
    cr_assert_eq(proc_spawn(&p, hangs, NULL, true), 0);
    cr_assert_eq(proc_wait_ready(&p, 100), -ETIMEDOUT);
    cr_assert_eq(proc_wait_exit(&p, 100), -ETIMEDOUT);
    proc_kill(&p);
    cr_assert_eq(p.pid, 0);

    /* The environment passed on, overriding. */
    char *env[] = { "PVC_TESTLIB_VAR=yes", NULL };
    char *check[] = { "/bin/sh", "-c", "test \"$PVC_TESTLIB_VAR\" = yes", NULL };
    setenv("PVC_TESTLIB_VAR", "no", 1);
    cr_assert_eq(proc_spawn(&p, check, env, false), 0);
    st = proc_wait_exit(&p, 5000);
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ---- the harness itself ------------------------------------------------- */

Test(testlib, harness_starts_and_stops, .fini = h_cleanup, .timeout = 30)
{
    struct harness *h = h_start(&(struct h_opts){ .guests = 2 });
    struct stat st;
    char path[256];
    snprintf(path, sizeof(path), "%s/broker.sock", h->dir);
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    cr_assert(h_backend_alive(h));
    cr_assert_eq(h->backend_gen, 1);
    /* The audit log exists and is well formed from the start. */
    h_audit_assert_wellformed(h);
    h_backend_stop(h);
    cr_assert(!h_backend_alive(h));
    h_backend_start(h);
    cr_assert_eq(h->backend_gen, 2);
    cr_assert(strstr(h->audit_path, "audit-2"));
    char dir[sizeof(h->dir)];
    snprintf(dir, sizeof(dir), "%s", h->dir);
    h_stop(h);
    cr_assert_neq(stat(dir, &st), 0, "the directory is removed");
}
