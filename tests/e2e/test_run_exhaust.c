/*
 * Resource exhaustion under the shim (issue 7): a program (tests/progs/
 * exhaust) opens sockets, or sockets and connections, until a call
 * fails.  The failure must be a clean errno that Linux gives for
 * exhaustion (EMFILE, ENFILE, ENOBUFS, ENOMEM), never a hang or a crash,
 * and once the program closed them all a new connection must work.
 * Limits reached here, each in its own test:
 *  - the program's own RLIMIT_NOFILE (lowered to 64 by the program):
 *    compared with the same program run natively (same call, same errno);
 *  - the backend's --max-sockets (32 per guest): the audit log shows the
 *    refused SOCKET commands;
 *  - the guest daemon's per-client limit (FRONTD_MAX_SOCKS_PER_CLIENT,
 *    4096 sockets for one connection to the daemon, i.e. one thread).
 */
#include "../lib/audit.h"
#include "../lib/harness.h"
#include "../lib/hostnet.h"
#include "../lib/procstat.h"
#include "../lib/runprog.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUN_MS 40000
#define NOFILE "64"
#define BACKEND_MAX 32
#define FRONTD_CLIENT_MAX 4096

struct result {
    char call[16], err[16];
    long count;
    char after[64];
};

/* Parse exhaust's two lines. */
static void parse(const char *out_path, struct result *r)
{
    char *text = rp_slurp(out_path);
    memset(r, 0, sizeof(*r));
    int n = sscanf(text, "fail %15s %15s %ld", r->call, r->err, &r->count);
    const char *after = strstr(text, "after ");
    if (after)
        snprintf(r->after, sizeof(r->after), "%.*s",
                 (int)strcspn(after, "\n"), after);
    cr_log_info("exhaust: %s", text);
    free(text);
    cr_assert_eq(n, 3, "exhaust did not report a failure: see the log");
}

static void check_clean(const struct result *r)
{
    static const char *const ok[] = { "EMFILE", "ENFILE", "ENOBUFS",
                                      "ENOMEM" };
    bool clean = false;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        clean |= !strcmp(r->err, ok[i]);
    cr_expect(clean, "%s failed with %s after %ld sockets", r->call, r->err,
              r->count);
    cr_expect_str_eq(r->after, "after ok", "after closing everything");
}

/* Run exhaust MODE natively (e NULL: under no shim) or through
 * pvcalls-run --isolate with extra options. */
static void run_exhaust(struct rp_env *e, const char *const opts[],
                        const char *mode, uint16_t port, const char *nofile,
                        const char *max, struct result *r)
{
    char prog_path[PATH_MAX + 32], port_s[8], out[192];
    snprintf(prog_path, sizeof(prog_path), "%s/exhaust", e->progs);
    snprintf(port_s, sizeof(port_s), "%u", port);
    rp_path(e, opts ? "shim.out" : "native.out", out, sizeof(out));
    const char *prog[] = { prog_path, mode, port_s, nofile, max, NULL };
    int status = opts ? rp_shim_run(e, opts, prog, NULL, out, RUN_MS)
                      : rp_run(prog, NULL, out, RUN_MS);
    rp_assert_exit_output(status, 0, opts ? "exhaust under the shim"
                                          : "exhaust natively", out);
    parse(out, r);
}

/* RLIMIT_NOFILE: the same failing call and errno as natively. */
static void rlimit_case(const char *mode)
{
    ps_adopt_orphans();
    struct rp_env *e = rp_env_start(true);
    struct hn_server *srv = hn_server_start(
        &(struct hn_server_cfg){ .mode = HN_ECHO });
    struct result native, shim;
    const char *no_opts[] = { NULL };
    run_exhaust(e, NULL, mode, hn_server_port(srv), NOFILE, "100000",
                &native);
    run_exhaust(e, no_opts, mode, hn_server_port(srv), NOFILE, "100000",
                &shim);
    check_clean(&shim);
    cr_expect_str_eq(shim.call, native.call, "the call that failed");
    cr_expect_str_eq(shim.err, native.err, "%s's errno", shim.call);
    cr_expect_gt(shim.count, 0);
    cr_expect(audit_wait_closed(e->audit, 1, RUN_MS),
              "sockets left open in the audit log");
    hn_server_stop(srv);
    rp_env_stop(e);
}

Test(run_exhaust, rlimit_nofile_sockets, .fini = ps_test_fini,
     .timeout = 90)
{
    rlimit_case("socket");
}

Test(run_exhaust, rlimit_nofile_connections, .fini = ps_test_fini,
     .timeout = 90)
{
    rlimit_case("connect");
}

/* ---- limits of the daemons ---------------------------------------------- */

/* The daemons come from the test harness (a backend with our options);
 * pvcalls-run finds them running on its simulation directory and starts
 * only the guest daemon, which it stops again at the end. */
static struct harness *daemons_with(const char *backd_max)
{
    return h_start(&(struct h_opts){
        .backd_args = { "--max-sockets", backd_max, NULL } });
}

static void daemon_limit_case(const char *mode, const char *backd_max,
                              const char *nofile, const char *max,
                              long want_count, struct result *r,
                              struct harness **hp)
{
    struct rp_env *e = rp_env_start(true);
    struct harness *h = daemons_with(backd_max);
    struct hn_server *srv = hn_server_start(
        &(struct hn_server_cfg){ .mode = HN_ECHO });
    const char *opts[] = { "--sim-dir", h->dir, NULL };
    run_exhaust(e, opts, mode, hn_server_port(srv), nofile, max, r);
    check_clean(r);
    cr_expect_eq(r->count, want_count, "%s failed after %ld sockets",
                 r->call, r->count);
    cr_expect(audit_wait_closed(h->audit_path, 1, RUN_MS),
              "sockets left open in the audit log");
    hn_server_stop(srv);
    rp_env_stop(e);
    *hp = h;
}

static void fini(void)
{
    ps_test_fini();
    h_cleanup();
}

/* The backend refuses the 33rd SOCKET of the guest (all 32 still open). */
static void backend_case(const char *mode)
{
    struct result r;
    struct harness *h;
    char max[8];
    snprintf(max, sizeof(max), "%d", BACKEND_MAX);
    daemon_limit_case(mode, max, "0", "100000", BACKEND_MAX, &r, &h);
    struct audit a;
    h_audit(h, &a);
    struct audit_q sockets = { .cmd = "socket", .dom = 1 };
    size_t refused = audit_count(&a, &sockets) -
                     audit_count_min(&a, &sockets, "ret", 0);
    cr_expect_eq(refused, 1, "%zu SOCKET commands refused", refused);
    audit_free(&a);
    h_stop(h);
}

Test(run_exhaust, backend_max_sockets, .fini = fini, .timeout = 90)
{
    backend_case("socket");
}

Test(run_exhaust, backend_max_sockets_connected, .fini = fini,
     .timeout = 90)
{
    backend_case("connect");
}

/* One daemon client (one thread of one program) holds at most 4096
 * sockets; the backend allows more. */
Test(run_exhaust, frontd_client_limit, .fini = fini, .timeout = 120)
{
    struct result r;
    struct harness *h;
    daemon_limit_case("socket", "8192", "6000", "5000", FRONTD_CLIENT_MAX,
                      &r, &h);
    h_stop(h);
}
