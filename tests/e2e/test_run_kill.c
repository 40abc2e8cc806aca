/*
 * Process death and privileges under the shim: a program SIGKILLed while
 * holding 50 connections has all of them released at the backend within
 * a second (audit log), and an unprivileged program (uid nobody, through
 * pvcalls-run --user) can use the guest daemon.
 */
#include "../lib/audit.h"
#include "../lib/hostnet.h"
#include "../lib/runprog.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RUN_MS 60000
#define CONNS 50

Test(run_kill, sigkill_releases_all_connections, .fini = rp_cleanup,
     .timeout = 120)
{
    struct rp_env *e = rp_env_start(true);
    struct hn_server *srv = hn_server_start(
        &(struct hn_server_cfg){ .mode = HN_SINK });
    char prog_path[PATH_MAX + 32], port[8], n[8];
    snprintf(prog_path, sizeof(prog_path), "%s/hold_conns", e->progs);
    snprintf(port, sizeof(port), "%u", hn_server_port(srv));
    snprintf(n, sizeof(n), "%d", CONNS);
    const char *prog[] = { prog_path, port, n, NULL };
    const char *argv[RP_MAX_ARGS];
    rp_shim_argv(e, true, NULL, prog, argv);
    struct rp_child run;
    rp_spawn(&run, argv, NULL, NULL, NULL);
    char line[64];
    cr_assert(rp_read_line(&run, line, sizeof(line), RUN_MS) &&
                  !strncmp(line, "ready ", 6),
              "hold_conns did not connect: \"%s\"", line);
    pid_t holder = (pid_t)atoi(line + 6);
    cr_assert(hn_server_wait_accepted(srv, CONNS, RUN_MS));
    struct audit_q connects = { .cmd = "connect", .dom = 1 };
    cr_assert_eq(audit_wait(e->audit, &connects, CONNS, RUN_MS), CONNS);

    int64_t t0 = hn_now_ms();
    cr_assert_eq(kill(holder, SIGKILL), 0, "kill %d: %m", (int)holder);
    struct audit_q releases = { .cmd = "release", .dom = 1 };
    size_t released = audit_wait(e->audit, &releases, CONNS, 1000);
    int64_t took = hn_now_ms() - t0;
    cr_expect_eq(released, CONNS, "%zu of %d sockets released within 1 s",
                 released, CONNS);
    cr_expect(took <= 1000, "releases took %lld ms", (long long)took);
    /* Every byte sent before the kill reached the host. */
    cr_expect(hn_server_wait_done(srv, CONNS, RUN_MS));
    cr_expect_eq(hn_server_bytes_in(srv), CONNS);
    rp_assert_exit(rp_wait(&run, RUN_MS), 128 + SIGKILL,
                   "pvcalls-run of a SIGKILLed program");
    hn_server_stop(srv);
    rp_env_stop(e);
}

Test(run_kill, unprivileged_program, .fini = rp_cleanup, .timeout = 120)
{
    if (geteuid() != 0)
        cr_skip_test("--user needs root: skipped");
    struct rp_env *e = rp_env_start(true);
    struct hn_server *srv = hn_server_start(
        &(struct hn_server_cfg){ .mode = HN_ECHO });
    char in[192], out[192], script[256];
    rp_path(e, "in", in, sizeof(in));
    rp_path(e, "out", out, sizeof(out));
    rp_make_file(in, 1u << 20, 7);
    /* The uid first, then the echoed file. */
    snprintf(script, sizeof(script), "id -u; exec nc -N 127.0.0.1 %u",
             hn_server_port(srv));
    const char *opts[] = { "--user", "nobody", NULL };
    const char *prog[] = { "sh", "-c", script, NULL };
    rp_assert_exit(rp_shim_run(e, opts, prog, in, out, RUN_MS), 0,
                   "nc as nobody");
    char *got = rp_slurp(out);
    cr_expect(!strncmp(got, "65534\n", 6), "not run as nobody: %.20s", got);
    free(got);
    char want[65], echoed[65], cut[224];
    /* Strip the uid line: compare the rest with the input. */
    snprintf(cut, sizeof(cut), "%s.data", out);
    const char *tail[] = { "tail", "-c", "+7", out, NULL };
    rp_assert_exit(rp_run(tail, NULL, cut, RUN_MS), 0, "tail");
    rp_sha256(in, want);
    rp_sha256(cut, echoed);
    cr_expect_str_eq(echoed, want, "echoed data");
    struct audit a;
    cr_assert_eq(audit_load(&a, e->audit), 0);
    cr_expect_geq(audit_count(&a, &(struct audit_q){ .cmd = "connect", .dom = 1 }), 1);
    audit_free(&a);
    hn_server_stop(srv);
    rp_env_stop(e);
}
