/*
 * redis over PV Calls (issue 6: event-driven programs).  redis-server
 * (its ae event loop runs on epoll) under the shim in an isolated
 * namespace serves redis-benchmark (native: -q -n 2000 -t set,get) and
 * redis-cli under the shim, which stores a 256 KiB binary value and reads
 * it back (compared byte for byte, also through a native redis-cli).
 * The other way round, redis-cli under the shim against a native server.
 * The backend's audit log must hold the calls (bind/listen/accept, or
 * connect) and the value's bytes in the close records.
 */
#include "../lib/audit.h"
#include "../lib/procstat.h"
#include "../lib/redis.h"
#include "../lib/runprog.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VALUE_SIZE (256u << 10)
#define BENCH_REQUESTS 2000
#define RUN_MS 30000
#define AUDIT_MS 10000

/* redis-benchmark -q prints "SET: <n> requests per second, ..." per
 * test, with progress lines before it separated by '\r'. */
static void benchmark(struct redis_srv *r)
{
    char out[160], count[8];
    rp_path(r->e, "bench.out", out, sizeof(out));
    snprintf(count, sizeof(count), "%d", BENCH_REQUESTS);
    const char *prog[] = { "/usr/bin/redis-benchmark", "-h", "127.0.0.1",
                           "-p", r->port, "-q", "-n", count, "-t",
                           "set,get", NULL };
    rp_assert_exit(rp_run(prog, NULL, out, RUN_MS), 0, "redis-benchmark");
    char *report = rp_slurp(out);
    cr_expect(strstr(report, "SET: ") &&
                  strstr(strstr(report, "SET: "), "requests per second"),
              "no SET result: %s", report);
    cr_expect(strstr(report, "GET: ") &&
                  strstr(strstr(report, "GET: "), "requests per second"),
              "no GET result: %s", report);
    free(report);
}

/* The whole content of a file (len bytes, malloc'd). */
static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s: %m", path);
    size_t cap = VALUE_SIZE + 4096, n = 0, got;
    unsigned char *buf = malloc(cap);
    cr_assert(buf);
    while (n < cap && (got = fread(buf + n, 1, cap - n, f)) > 0)
        n += got;
    fclose(f);
    *len = n;
    return buf;
}

/* GET key through redis-cli (under the shim or not): --raw prints the
 * value's bytes and a newline. */
static void check_get(struct redis_srv *r, bool shim, const char *value)
{
    char got[160];
    rp_path(r->e, shim ? "get.shim" : "get.native", got, sizeof(got));
    const char *args[] = { "--raw", "GET", "key", NULL };
    redis_cli(r, shim, args, NULL, got);
    size_t want_len, got_len;
    unsigned char *want = read_all(value, &want_len);
    unsigned char *have = read_all(got, &got_len);
    cr_expect_eq(got_len, want_len + 1, "GET %s returned %zu bytes",
                 shim ? "under the shim" : "natively", got_len);
    cr_expect(got_len == want_len + 1 && !memcmp(have, want, want_len) &&
                  have[want_len] == '\n',
              "GET %s: the value differs", shim ? "under the shim"
                                                : "natively");
    free(want);
    free(have);
}

/* SET key from a file under the shim (-x: the last argument from stdin),
 * then GET it back under the shim and natively. */
static void set_get(struct redis_srv *r, char *value, size_t len)
{
    rp_path(r->e, "value", value, len);
    rp_make_file(value, VALUE_SIZE, 6379);
    char reply[160];
    rp_path(r->e, "set.out", reply, sizeof(reply));
    const char *set[] = { "-x", "SET", "key", NULL };
    redis_cli(r, true, set, value, reply);
    char *ok = rp_slurp(reply);
    cr_expect_str_eq(ok, "OK\n", "SET replied \"%s\"", ok);
    free(ok);
    check_get(r, true, value);
    check_get(r, false, value);
}

/* The value crossed the rings whole: into the server (server side: a
 * socket with bytes_in >= VALUE_SIZE) and out of it; or, client side,
 * out of the SET client and into the GET client. */
static void check_audit(struct redis_srv *r, bool server)
{
    cr_expect(audit_wait_closed(r->e->audit, 1, AUDIT_MS),
              "sockets left open in the audit log");
    struct audit a;
    cr_assert_eq(audit_load(&a, r->e->audit), 0);
    unsigned port = (unsigned)atoi(r->port);
    if (server) {
        struct audit_q bind = { .cmd = "bind", .dom = 1 };
        struct audit_q listen = { .cmd = "listen", .dom = 1 };
        struct audit_q accept = { .cmd = "accept", .dom = 1 };
        cr_expect_geq(audit_count_port(&a, &bind, port, true), 1,
                      "no bind to port %u", port);
        cr_expect_geq(audit_count(&a, &listen), 1, "no listen");
        /* redis-benchmark's 50 clients per test, and 3 redis-cli. */
        size_t accepts = audit_count_min(&a, &accept, "ret", 0);
        cr_expect_geq(accepts, 2 * 50 + 3, "%zu accepts", accepts);
    } else {
        struct audit_q connect = { .cmd = "connect", .dom = 1 };
        cr_expect_eq(audit_count_port(&a, &connect, port, true), 2,
                     "2 connects to port %u expected", port);
    }
    struct audit_q closes = { .event = "close", .dom = 1 };
    cr_expect_geq(audit_count_min(&a, &closes, "bytes_in", VALUE_SIZE), 1,
                  "no socket received the value");
    cr_expect_geq(audit_count_min(&a, &closes, "bytes_out", VALUE_SIZE), 1,
                  "no socket sent the value");
    audit_free(&a);
}

Test(run_redis, server_under_shim, .fini = ps_test_fini, .timeout = 90)
{
    ps_adopt_orphans();
    struct rp_env *e = rp_env_start(true);
    struct redis_srv r;
    redis_start(&r, e, true);
    benchmark(&r);
    char value[160];
    set_get(&r, value, sizeof(value));
    redis_stop(&r);
    check_audit(&r, true);
    rp_env_stop(e);
}

Test(run_redis, client_under_shim, .fini = ps_test_fini, .timeout = 90)
{
    ps_adopt_orphans();
    struct rp_env *e = rp_env_start(true);
    struct redis_srv r;
    redis_start(&r, e, false);
    char value[160];
    set_get(&r, value, sizeof(value));
    redis_stop(&r);
    check_audit(&r, false);
    rp_env_stop(e);
}
