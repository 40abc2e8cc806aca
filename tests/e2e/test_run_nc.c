/*
 * netcat (OpenBSD) both ways over PV Calls, each side sending a file and
 * half-closing at its end (nc -N): the exchange only finishes if each
 * shutdown(SHUT_WR) crosses as an EOF while the other direction keeps
 * flowing.  Once with the client under the shim, once the server.
 */
#include "../lib/audit.h"
#include "../lib/hostnet.h"
#include "../lib/runprog.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define RUN_MS 60000

struct nc_case {
    struct rp_env *e;
    char a[192], b[192], got_a[192], got_b[192], port[8];
};

static void setup(struct nc_case *c)
{
    c->e = rp_env_start(true);
    rp_path(c->e, "a", c->a, sizeof(c->a));
    rp_path(c->e, "b", c->b, sizeof(c->b));
    rp_path(c->e, "got_a", c->got_a, sizeof(c->got_a));
    rp_path(c->e, "got_b", c->got_b, sizeof(c->got_b));
    rp_make_file(c->a, 3u << 20, 1);
    rp_make_file(c->b, (2u << 20) + 12345, 2);
    snprintf(c->port, sizeof(c->port), "%u", hn_closed_port(AF_INET));
}

/* The server (nc -l) sends b and stores what it receives in got_a; its
 * "Listening on" line (stderr) comes to us on the pipe. */
static void start_server(struct nc_case *c, bool shim, struct rp_child *srv)
{
    char script[600];
    snprintf(script, sizeof(script),
             "exec 3>&1; exec nc -N -lv 127.0.0.1 %s <'%s' >'%s' 2>&3",
             c->port, c->b, c->got_a);
    const char *prog[] = { "sh", "-c", script, NULL };
    const char *argv[RP_MAX_ARGS];
    if (shim)
        rp_shim_argv(c->e, true, NULL, prog, argv);
    rp_spawn(srv, shim ? argv : prog, NULL, NULL, NULL);
    char line[256];
    cr_assert(rp_read_line(srv, line, sizeof(line), RUN_MS) &&
                  strstr(line, "Listening on"),
              "nc -l did not start: \"%s\"", line);
}

static void run_client(struct nc_case *c, bool shim)
{
    const char *prog[] = { "nc", "-N", "127.0.0.1", c->port, NULL };
    int status = shim ? rp_shim_run(c->e, NULL, prog, c->a, c->got_b, RUN_MS)
                      : rp_run(prog, c->a, c->got_b, RUN_MS);
    rp_assert_exit(status, 0, "nc client");
}

static void check_files(struct nc_case *c)
{
    char want[65], got[65];
    rp_sha256(c->a, want);
    rp_sha256(c->got_a, got);
    cr_expect_str_eq(got, want, "client to server");
    rp_sha256(c->b, want);
    rp_sha256(c->got_b, got);
    cr_expect_str_eq(got, want, "server to client");
}

static void check_audit(struct nc_case *c, const char *cmd)
{
    struct audit a;
    cr_assert_eq(audit_load(&a, c->e->audit), 0);
    struct audit_q q = { .cmd = cmd, .dom = 1 };
    cr_expect(audit_count(&a, &q) >= 1, "no %s in the audit log", cmd);
    struct audit_q shut = { .cmd = "shutdown", .dom = 1 };
    cr_expect(audit_count(&a, &shut) >= 1, "no shutdown in the audit log");
    audit_free(&a);
}

Test(run_nc, client_under_shim, .fini = rp_cleanup, .timeout = 120)
{
    struct nc_case c;
    setup(&c);
    struct rp_child srv;
    start_server(&c, false, &srv);
    run_client(&c, true);
    rp_assert_exit(rp_wait(&srv, RUN_MS), 0, "native nc -l");
    check_files(&c);
    check_audit(&c, "connect");
    rp_env_stop(c.e);
}

Test(run_nc, server_under_shim, .fini = rp_cleanup, .timeout = 120)
{
    struct nc_case c;
    setup(&c);
    struct rp_child srv;
    start_server(&c, true, &srv);
    run_client(&c, false);
    rp_assert_exit(rp_wait(&srv, RUN_MS), 0, "nc -l under the shim");
    check_files(&c);
    check_audit(&c, "accept");
    rp_env_stop(c.e);
}
