/*
 * iperf3 over PV Calls (issue 6: event-driven programs; iperf3 drives
 * its control and data sockets with select() and non-blocking I/O).
 * iperf3 -c sends 200 MiB (-n 200M) to iperf3 -s -1, with the client
 * under the shim in an isolated namespace and the server native, then the
 * other way round.  Both must end without error: exit 0, no "error" in
 * the client's JSON report (-J; with --get-server-output it carries the
 * server's report too) nor in the server's output.  The server runs in
 * text mode: its "Server listening" line is how the test knows that it
 * listens.  The backend's audit log must hold the calls and the data
 * stream's bytes in a close record.
 */
#include "../lib/audit.h"
#include "../lib/hostnet.h"
#include "../lib/procstat.h"
#include "../lib/runprog.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define IPERF "/usr/bin/iperf3"
#define BYTES (200ll << 20)
#define RUN_MS 20000
/* For the server to end once the client is done. */
#define END_MS 10000
#define AUDIT_MS 10000

struct iperf_case {
    struct rp_env *e;
    char port[8];
    char json[160];
};

static void setup(struct iperf_case *c)
{
    ps_adopt_orphans();
    c->e = rp_env_start(true);
    snprintf(c->port, sizeof(c->port), "%u", hn_closed_port(AF_INET));
    rp_path(c->e, "client.json", c->json, sizeof(c->json));
}

/* iperf3 -s -1 (one test, then exit), stdout and stderr (where it
 * writes its errors) on our pipe. */
static void start_server(struct iperf_case *c, bool shim,
                         struct rp_child *srv)
{
    char script[160];
    snprintf(script, sizeof(script),
             "exec %s -s -1 -B 127.0.0.1 -p %s --forceflush 2>&1", IPERF,
             c->port);
    const char *prog[] = { "sh", "-c", script, NULL };
    const char *argv[RP_MAX_ARGS];
    if (shim)
        rp_shim_argv(c->e, true, NULL, prog, argv);
    rp_spawn(srv, shim ? argv : prog, NULL, NULL, NULL);
    char line[256];
    bool ok;
    while ((ok = rp_read_line(srv, line, sizeof(line), RUN_MS)) &&
           !strstr(line, "Server listening on"))
        ;
    cr_assert(ok, "iperf3 -s did not start: \"%s\"", line);
}

/* The rest of the server's output, checked for errors, and its exit
 * (it ends by itself once its one test is over). */
static void finish_server(struct rp_child *srv, bool shim)
{
    char line[512];
    int64_t deadline = hn_now_ms() + END_MS;
    int left;
    while ((left = (int)(deadline - hn_now_ms())) > 0 &&
           rp_read_line(srv, line, sizeof(line), left))
        cr_expect(!strstr(line, "error"), "iperf3 -s: %s", line);
    left = (int)(deadline - hn_now_ms());
    rp_assert_exit(rp_wait(srv, left > 0 ? left : 1), 0,
                   shim ? "iperf3 -s -1 under the shim" : "iperf3 -s -1");
}

/* The integer after key, searched from `from` on (-1 if absent). */
static long long json_after(const char *from, const char *key)
{
    const char *p = from ? strstr(from, key) : NULL;
    return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

/* Run the client: its wait status (the report is in c->json). */
static int run_client(struct iperf_case *c, bool shim)
{
    const char *prog[] = { IPERF, "-c", "127.0.0.1", "-p", c->port, "-n",
                           "200M", "-J", "--get-server-output", NULL };
    return shim ? rp_shim_run(c->e, NULL, prog, NULL, c->json, RUN_MS)
                : rp_run(prog, NULL, c->json, RUN_MS);
}

/* What the report says went through the data stream. */
struct iperf_bytes {
    long long sent;     /* by the client: all 200 MiB */
    long long received; /* by the server: with -n it stops reading at
                         * the end of the test, so possibly less */
};

/* Check the client's exit and report. */
static struct iperf_bytes check_client(struct iperf_case *c, int status,
                                       bool shim)
{
    rp_assert_exit_output(status, 0, shim ? "iperf3 -c under the shim"
                                          : "iperf3 -c", c->json);
    char *report = rp_slurp(c->json);
    const char *err = strstr(report, "\"error\"");
    cr_expect(!err, "iperf3 -c reported %.120s", err);
    cr_expect(strstr(report, "\"server_output_text\""),
              "no server report in the client's");
    const char *end = strstr(report, "\"end\":");
    end = end ? end : "";
    struct iperf_bytes b = {
        .sent = json_after(strstr(end, "\"sum_sent\":"), "\"bytes\":"),
        .received = json_after(strstr(end, "\"sum_received\":"),
                               "\"bytes\":"),
    };
    free(report);
    cr_expect_eq(b.sent, BYTES, "iperf3 sent %lld bytes", b.sent);
    cr_expect(b.received > 0 && b.received <= b.sent,
              "iperf3 sent %lld bytes, received %lld", b.sent, b.received);
    return b;
}

/* The data stream's socket was closed with the bytes that crossed the
 * rings: everything the client sent (out of the guest), or at least what
 * the server read (into the guest). */
static void check_audit(struct iperf_case *c, bool server,
                        struct iperf_bytes b)
{
    cr_expect(audit_wait_closed(c->e->audit, 1, AUDIT_MS),
              "sockets left open in the audit log");
    struct audit_q closes = { .event = "close", .dom = 1 };
    struct audit a;
    cr_assert_eq(audit_load(&a, c->e->audit), 0);
    unsigned port = (unsigned)atoi(c->port);
    if (server) {
        struct audit_q bind = { .cmd = "bind", .dom = 1 };
        struct audit_q accept = { .cmd = "accept", .dom = 1 };
        cr_expect_eq(audit_count_port(&a, &bind, port, true), 1,
                     "no bind to port %u", port);
        cr_expect_geq(audit_count_min(&a, &accept, "ret", 0), 2,
                      "fewer than 2 accepts");
    } else {
        struct audit_q connect = { .cmd = "connect", .dom = 1 };
        cr_expect_eq(audit_count_port(&a, &connect, port, true), 2,
                     "2 connects to port %u expected", port);
    }
    const char *key = server ? "bytes_in" : "bytes_out";
    long long min = server ? b.received : b.sent;
    cr_expect_eq(audit_count_min(&a, &closes, key, min), 1,
                 "no close record with %s >= %lld", key, min);
    audit_free(&a);
}

Test(run_iperf3, client_under_shim, .fini = ps_test_fini, .timeout = 90)
{
    struct iperf_case c;
    setup(&c);
    struct rp_child srv;
    start_server(&c, false, &srv);
    int status = run_client(&c, true);
    finish_server(&srv, false);
    struct iperf_bytes b = check_client(&c, status, true);
    check_audit(&c, false, b);
    rp_env_stop(c.e);
}

Test(run_iperf3, server_under_shim, .fini = ps_test_fini, .timeout = 90)
{
    struct iperf_case c;
    setup(&c);
    struct rp_child srv;
    start_server(&c, true, &srv);
    int status = run_client(&c, false);
    finish_server(&srv, true);
    struct iperf_bytes b = check_client(&c, status, false);
    check_audit(&c, true, b);
    rp_env_stop(c.e);
}
