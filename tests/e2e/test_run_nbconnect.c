/*
 * Non-blocking connect() under the shim behaves as Linux's (issue 6).
 * tests/progs/nbconnect_probe prints what a program can observe: the
 * connect() errno (EINPROGRESS), poll(POLLOUT, T)'s result and revents,
 * whether poll took less than T, getsockopt(SO_ERROR), and what a second
 * and a third connect() answer.  It runs natively and under the shim
 * (pvcalls-run --isolate) and both must print the same, for a listening
 * port, a closed port, and an address that never answers (a route into
 * lo for 10.255.255.0/24 in a network namespace the test creates, where
 * the backend then runs too: its SYNs go nowhere).
 */
#include "../lib/audit.h"
#include "../lib/hostnet.h"
#include "../lib/procstat.h"
#include "../lib/runprog.h"

#include <criterion/criterion.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RUN_MS 20000
#define AUDIT_MS 10000
/* poll's timeout: generous where the answer comes at once (refused,
 * accepted), short where none ever comes. */
#define ANSWER_T "5000"
#define SILENT_T "300"
#define SILENT_ADDR "10.255.255.1"

/* Run the probe natively or under the shim; its output (malloc'd). */
static char *probe(struct rp_env *e, bool shim, const char *addr,
                   unsigned port, const char *timeout_ms)
{
    char path[PATH_MAX + 32], port_s[8], out[160];
    snprintf(path, sizeof(path), "%s/nbconnect_probe", e->progs);
    snprintf(port_s, sizeof(port_s), "%u", port);
    rp_path(e, shim ? "probe.shim" : "probe.native", out, sizeof(out));
    const char *prog[] = { path, addr, port_s, timeout_ms, NULL };
    int status = shim ? rp_shim_run(e, NULL, prog, NULL, out, RUN_MS)
                      : rp_run(prog, NULL, out, RUN_MS);
    rp_assert_exit_output(status, 0, shim ? "nbconnect_probe under the shim"
                                          : "nbconnect_probe", out);
    return rp_slurp(out);
}

/* The native run printed want_native (what Linux does here, so that the
 * case tests what it claims); the shim run printed the same. */
static void compare(struct rp_env *e, const char *addr, unsigned port,
                    const char *timeout_ms, const char *want_native)
{
    char *native = probe(e, false, addr, port, timeout_ms);
    bool as_linux = !strcmp(native, want_native);
    cr_expect(as_linux, "native run printed:\n%s", native);
    char *shim = as_linux ? probe(e, true, addr, port, timeout_ms) : NULL;
    cr_expect(!shim || !strcmp(shim, native),
              "under the shim:\n%s\nnatively:\n%s", shim, native);
    free(native);
    free(shim);
}

/* Keep the simulation up for the whole test (a pvcalls-run of a sleep
 * that says when it runs), so that what the audit log shows after the
 * probe exited is the probe's doing, not the tear-down's. */
static void hold_env(struct rp_env *e, struct rp_child *holder)
{
    const char *prog[] = { "sh", "-c", "echo up; exec sleep 300", NULL };
    const char *argv[RP_MAX_ARGS];
    rp_shim_argv(e, true, NULL, prog, argv);
    rp_spawn(holder, argv, NULL, NULL, NULL);
    char line[64];
    cr_assert(rp_read_line(holder, line, sizeof(line), RUN_MS) &&
                  !strcmp(line, "up"),
              "the simulation did not start: \"%s\"", line);
}

static void release_env(struct rp_child *holder)
{
    rp_signal(holder, SIGTERM);
    rp_wait(holder, RUN_MS);
}

/* The backend made the connect for the guest (to addr:port, whatever its
 * outcome), and released the probe's socket once the probe was gone. */
static void check_audit(struct rp_env *e, unsigned port)
{
    cr_expect(audit_wait_closed(e->audit, 1, AUDIT_MS),
              "the probe's socket was not released");
    struct audit_q connect = { .cmd = "connect", .dom = 1 };
    struct audit_q release = { .cmd = "release", .dom = 1 };
    struct audit a;
    cr_assert_eq(audit_load(&a, e->audit), 0);
    cr_expect_geq(audit_count_port(&a, &connect, port, false), 1,
                  "no connect to port %u in the audit log", port);
    cr_expect_geq(audit_count(&a, &release), 1, "no release in the audit "
                  "log");
    audit_free(&a);
}

Test(run_nbconnect, listening_port, .fini = ps_test_fini, .timeout = 60)
{
    ps_adopt_orphans();
    struct rp_env *e = rp_env_start(true);
    struct rp_child holder;
    hold_env(e, &holder);
    struct hn_server *srv =
        hn_server_start(&(struct hn_server_cfg){ .mode = HN_SINK });
    unsigned port = hn_server_port(srv);
    compare(e, "127.0.0.1", port, ANSWER_T,
            "connect: EINPROGRESS\n"
            "poll: 1 revents=POLLOUT\n"
            "elapsed: <T\n"
            "so_error: 0\n"
            "connect2: 0\n"
            "connect3: EISCONN\n");
    check_audit(e, port);
    hn_server_stop(srv);
    release_env(&holder);
    rp_env_stop(e);
}

Test(run_nbconnect, closed_port, .fini = ps_test_fini, .timeout = 60)
{
    ps_adopt_orphans();
    struct rp_env *e = rp_env_start(true);
    struct rp_child holder;
    hold_env(e, &holder);
    unsigned port = hn_closed_port(AF_INET);
    /* Linux: the failure is reported once (SO_ERROR), then the socket is
     * unconnected and a third connect() starts a new attempt. */
    compare(e, "127.0.0.1", port, ANSWER_T,
            "connect: EINPROGRESS\n"
            "poll: 1 revents=POLLOUT|POLLERR|POLLHUP\n"
            "elapsed: <T\n"
            "so_error: ECONNREFUSED\n"
            "connect2: ECONNABORTED\n"
            "connect3: EINPROGRESS\n");
    check_audit(e, port);
    release_env(&holder);
    rp_env_stop(e);
}

/* A namespace of our own with lo up and 10.255.255.0/24 routed into lo:
 * a SYN to SILENT_ADDR loops back to a host that is not its destination
 * and does not forward, so it is dropped and never answered. */
static void silent_network(void)
{
    if (geteuid() != 0)
        cr_skip_test("a network namespace of its own needs root: skipped");
    cr_assert_eq(unshare(CLONE_NEWNET), 0, "unshare(CLONE_NEWNET): %m");
    const char *up[] = { "ip", "link", "set", "lo", "up", NULL };
    const char *route[] = { "ip", "route", "add", "10.255.255.0/24", "dev",
                            "lo", NULL };
    rp_assert_exit(rp_run(up, NULL, NULL, RUN_MS), 0, "ip link set lo up");
    rp_assert_exit(rp_run(route, NULL, NULL, RUN_MS), 0, "ip route add");
}

Test(run_nbconnect, unanswered_address, .fini = ps_test_fini, .timeout = 60)
{
    ps_adopt_orphans();
    silent_network();
    struct rp_env *e = rp_env_start(true);
    struct rp_child holder;
    hold_env(e, &holder);
    compare(e, SILENT_ADDR, 80, SILENT_T,
            "connect: EINPROGRESS\n"
            "poll: 0 revents=0\n"
            "elapsed: >=T\n"
            "so_error: 0\n"
            "connect2: EALREADY\n"
            "connect3: EALREADY\n");
    check_audit(e, 80);
    release_env(&holder);
    rp_env_stop(e);
}
