/*
 * Python asyncio over PV Calls (issue 6: event-driven programs).  An
 * asyncio echo server and client (tests/progs/asyncio_echo.py, asyncio's
 * default epoll loop): 8 concurrent connections, each sending messages of
 * 1 B .. 256 KiB and comparing every byte of the echo, then a half-close
 * answered by a clean EOF.  Each side under the shim in turn, the other
 * native.  The backend's audit log must hold the 8 connects (or accepts)
 * and 8 close records with exactly the bytes of one connection each way.
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

#define PYTHON "/usr/bin/python3"
#define CONNS 8
#define RUN_MS 20000
#define AUDIT_MS 10000

struct echo_case {
    struct rp_env *e;
    char script[PATH_MAX];
    char port[8];
};

static void setup(struct echo_case *c)
{
    ps_adopt_orphans();
    c->e = rp_env_start(true);
    rp_source_path(c->e, "tests/progs/asyncio_echo.py", c->script,
                   sizeof(c->script));
    snprintf(c->port, sizeof(c->port), "%u", hn_closed_port(AF_INET));
}

/* The server prints "listening" once its socket listens. */
static void start_server(struct echo_case *c, bool shim, struct rp_child *srv)
{
    const char *prog[] = { PYTHON, c->script, "server", "127.0.0.1",
                           c->port, NULL };
    const char *argv[RP_MAX_ARGS];
    if (shim)
        rp_shim_argv(c->e, true, NULL, prog, argv);
    rp_spawn(srv, shim ? argv : prog, NULL, NULL, NULL);
    char line[256];
    cr_assert(rp_read_line(srv, line, sizeof(line), RUN_MS) &&
                  !strcmp(line, "listening"),
              "the asyncio server did not start: \"%s\"", line);
}

static void stop_server(struct rp_child *srv, bool shim)
{
    rp_signal(srv, SIGTERM);
    rp_assert_exit(rp_wait(srv, RUN_MS), 0,
                   shim ? "asyncio server under the shim, on SIGTERM"
                        : "asyncio server on SIGTERM");
}

/* Run the clients; returns the bytes each connection sent (and got). */
static long long run_clients(struct echo_case *c, bool shim)
{
    char conns[8], out[160];
    snprintf(conns, sizeof(conns), "%d", CONNS);
    rp_path(c->e, "client.out", out, sizeof(out));
    const char *prog[] = { PYTHON, c->script, "client", "127.0.0.1",
                           c->port, conns, NULL };
    int status = shim ? rp_shim_run(c->e, NULL, prog, NULL, out, RUN_MS)
                      : rp_run(prog, NULL, out, RUN_MS);
    rp_assert_exit_output(status, 0, shim ? "asyncio clients under the shim"
                                          : "asyncio clients", out);
    char *report = rp_slurp(out);
    int got_conns = 0;
    long long bytes = 0;
    int n = sscanf(report, "ok conns=%d bytes=%lld", &got_conns, &bytes);
    free(report);
    cr_assert(n == 2 && got_conns == CONNS, "the clients did not report "
              "%d connections (see %s)", CONNS, out);
    /* The largest message alone is 256 KiB. */
    cr_assert_geq(bytes, 256 << 10);
    return bytes;
}

/* Close records with exactly `bytes` in each direction. */
static size_t count_exact_closes(const struct audit *a, long long bytes)
{
    struct audit_q closes = { .event = "close", .dom = 1 };
    size_t n = 0, pos = 0;
    const char *line;
    long long in, out;
    while ((line = audit_next(a, &closes, &pos)))
        if (json_int(line, "bytes_in", &in) && in == bytes &&
            json_int(line, "bytes_out", &out) && out == bytes)
            n++;
    return n;
}

static void check_audit(struct echo_case *c, bool server, long long bytes)
{
    cr_expect(audit_wait_closed(c->e->audit, 1, AUDIT_MS),
              "sockets left open in the audit log");
    struct audit a;
    cr_assert_eq(audit_load(&a, c->e->audit), 0);
    unsigned port = (unsigned)atoi(c->port);
    if (server) {
        struct audit_q bind = { .cmd = "bind", .dom = 1 };
        struct audit_q accept = { .cmd = "accept", .dom = 1 };
        cr_expect_eq(audit_count_port(&a, &bind, port, true), 1,
                     "no bind to port %u", port);
        cr_expect_eq(audit_count_min(&a, &accept, "ret", 0), CONNS,
                     "%d accepts expected", CONNS);
    } else {
        struct audit_q connect = { .cmd = "connect", .dom = 1 };
        cr_expect_eq(audit_count_port(&a, &connect, port, true), CONNS,
                     "%d connects to port %u expected", CONNS, port);
    }
    size_t exact = count_exact_closes(&a, bytes);
    cr_expect_eq(exact, CONNS,
                 "%zu close records with %lld bytes each way, expected %d",
                 exact, bytes, CONNS);
    audit_free(&a);
}

Test(run_asyncio, client_under_shim, .fini = ps_test_fini, .timeout = 90)
{
    struct echo_case c;
    setup(&c);
    struct rp_child srv;
    start_server(&c, false, &srv);
    long long bytes = run_clients(&c, true);
    stop_server(&srv, false);
    check_audit(&c, false, bytes);
    rp_env_stop(c.e);
}

Test(run_asyncio, server_under_shim, .fini = ps_test_fini, .timeout = 90)
{
    struct echo_case c;
    setup(&c);
    struct rp_child srv;
    start_server(&c, true, &srv);
    long long bytes = run_clients(&c, false);
    stop_server(&srv, true);
    check_audit(&c, true, bytes);
    rp_env_stop(c.e);
}
