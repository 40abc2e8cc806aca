/*
 * scripts/pvcalls-run and scripts/pvcalls-entrypoint themselves: exit
 * statuses, the isolated namespace, the environment a program gets,
 * interception checks, sharing and stopping the daemons.
 */
#include "../lib/runprog.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define RUN_MS 30000

/* Is the guest daemon of the test's simulation serving? */
static bool frontd_socket_exists(struct rp_env *e)
{
    char path[192];
    struct stat st;
    snprintf(path, sizeof(path), "%s/frontd-1.sock", e->sim_dir);
    return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

static bool daemon_recorded(struct rp_env *e, const char *name)
{
    char path[192];
    snprintf(path, sizeof(path), "%s/run/%s.pid", e->sim_dir, name);
    return access(path, F_OK) == 0;
}

static void assert_all_stopped(struct rp_env *e)
{
    cr_assert_not(daemon_recorded(e, "simd"), "simd still recorded");
    cr_assert_not(daemon_recorded(e, "backd"), "backd still recorded");
    cr_assert_not(daemon_recorded(e, "frontd-1"), "frontd still recorded");
    cr_assert_not(frontd_socket_exists(e), "frontd socket left behind");
}

Test(run_script, exit_status_and_cleanup, .fini = rp_cleanup, .timeout = 90)
{
    struct rp_env *e = rp_env_start(true);
    const char *exit7[] = { "sh", "-c", "exit 7", NULL };
    rp_assert_exit(rp_shim_run(e, NULL, exit7, NULL, NULL, RUN_MS), 7,
                   "sh -c 'exit 7'");
    assert_all_stopped(e);
    const char *killed[] = { "sh", "-c", "kill -TERM $$", NULL };
    rp_assert_exit(rp_shim_run(e, NULL, killed, NULL, NULL, RUN_MS),
                   128 + SIGTERM, "a program killed by SIGTERM");
    assert_all_stopped(e);
    rp_env_stop(e);
}

Test(run_script, isolate_has_only_downed_lo, .fini = rp_cleanup,
     .timeout = 60)
{
    struct rp_env *e = rp_env_start(true);
    char out[192];
    rp_path(e, "out", out, sizeof(out));
    /* ip reads the namespace it runs in (sysfs would show the host's). */
    const char *prog[] = { "ip", "-o", "link", "show", NULL };
    rp_assert_exit(rp_shim_run(e, NULL, prog, NULL, out, RUN_MS), 0,
                   "ip -o link show");
    char *got = rp_slurp(out);
    cr_expect(!strncmp(got, "1: lo: ", 7) && strstr(got, "state DOWN") &&
                  strchr(got, '\n') == got + strlen(got) - 1,
              "expected only a downed lo, got:\n%s", got);
    free(got);
    rp_env_stop(e);
}

Test(run_script, program_environment, .fini = rp_cleanup, .timeout = 60)
{
    struct rp_env *e = rp_env_start(true);
    char out[192];
    rp_path(e, "out", out, sizeof(out));
    const char *prog[] = { "sh", "-c", "echo \"$LD_PRELOAD\"; "
                           "echo \"$PVC_FRONTD_SOCK\"; test -S \"$PVC_FRONTD_SOCK\"",
                           NULL };
    rp_assert_exit(rp_shim_run(e, NULL, prog, NULL, out, RUN_MS), 0,
                   "printing the environment");
    char *got = rp_slurp(out);
    char sock[192];
    snprintf(sock, sizeof(sock), "\n%s/frontd-1.sock\n", e->sim_dir);
    cr_expect(strstr(got, "/lib/libpvcalls.so"), "LD_PRELOAD: %s", got);
    cr_expect(strstr(got, sock), "PVC_FRONTD_SOCK: %s", got);
    free(got);
    rp_env_stop(e);
}

/* /sbin/ldconfig is statically linked on Debian. */
Test(run_script, static_program_is_flagged, .fini = rp_cleanup,
     .timeout = 60)
{
    struct rp_env *e = rp_env_start(false);
    if (access("/sbin/ldconfig", X_OK) != 0)
        cr_skip_test("no /sbin/ldconfig to serve as a static program");
    char err[192];
    rp_path(e, "err", err, sizeof(err));
    const char *check[] = { e->script, "--check", "--", "/sbin/ldconfig",
                            NULL };
    rp_assert_exit(rp_run(check, NULL, NULL, RUN_MS), 1, "--check ldconfig");
    const char *dyn[] = { e->script, "--check", "--", "sh", NULL };
    rp_assert_exit(rp_run(dyn, NULL, NULL, RUN_MS), 0, "--check sh");
    const char *strict[] = { e->script, "--strict", "--sim-dir", e->sim_dir,
                             "--", "/sbin/ldconfig", "--version", NULL };
    rp_assert_exit(rp_run(strict, NULL, NULL, RUN_MS), 126,
                   "--strict on a static program");
    rp_env_stop(e);
}

/* Started with --keep, the daemons outlive the program until --stop. */
Test(run_script, keep_then_stop, .fini = rp_cleanup, .timeout = 60)
{
    struct rp_env *e = rp_env_start(false);
    const char *opts[] = { "--keep", NULL };
    const char *prog[] = { "true", NULL };
    const char *argv[RP_MAX_ARGS];
    rp_shim_argv(e, false, opts, prog, argv);
    rp_assert_exit(rp_run(argv, NULL, NULL, RUN_MS), 0, "--keep true");
    cr_assert(frontd_socket_exists(e) && daemon_recorded(e, "backd"),
              "--keep: the daemons should still run");
    rp_env_stop(e); /* pvcalls-run --stop */
}

Test(run_script, help_documents_options, .fini = rp_cleanup, .timeout = 30)
{
    struct rp_env *e = rp_env_start(false);
    char out[192];
    rp_path(e, "help", out, sizeof(out));
    const char *argv[] = { e->script, "--help", NULL };
    rp_assert_exit(rp_run(argv, NULL, out, RUN_MS), 0, "--help");
    char *help = rp_slurp(out);
    static const char *const words[] = {
        "--isolate", "--audit", "--sim-dir", "--domid", "--keep", "--stop",
        "--user", "--platform", "--verbose", "--strict", "--socket",
        "--attach", "--check", "PVC_PLATFORM", "PVC_SIM_DIR",
        "PVC_FRONTD_SOCK", "PVC_BUILD", "PREFIX", "LD_PRELOAD",
        "ASAN_OPTIONS", NULL,
    };
    for (size_t i = 0; words[i]; i++)
        cr_expect(strstr(help, words[i]), "--help does not mention %s",
                  words[i]);
    free(help);
    rp_env_stop(e);
}

Test(run_script, entrypoint, .fini = rp_cleanup, .timeout = 60)
{
    struct rp_env *e = rp_env_start(false);
    char out[192], sock[192], sock_env[224];
    rp_path(e, "out", out, sizeof(out));
    snprintf(sock, sizeof(sock), "%s/frontd-1.sock", e->sim_dir);
    snprintf(sock_env, sizeof(sock_env), "PVC_FRONTD_SOCK=%s", sock);
    const char *env[] = { sock_env, NULL };
    const char *argv[] = { e->entrypoint, "sh", "-c", "echo \"$LD_PRELOAD\"",
                           NULL };
    struct rp_child c;
    /* Without a guest daemon: a clear refusal. */
    rp_spawn(&c, argv, env, NULL, "/dev/null");
    rp_assert_exit(rp_wait(&c, RUN_MS), 125, "entrypoint without a socket");
    /* With one (kept running by pvcalls-run --keep). */
    const char *opts[] = { "--keep", NULL };
    const char *keep[] = { "true", NULL };
    const char *run[RP_MAX_ARGS];
    rp_shim_argv(e, false, opts, keep, run);
    rp_assert_exit(rp_run(run, NULL, NULL, RUN_MS), 0, "--keep true");
    rp_spawn(&c, argv, env, NULL, out);
    rp_assert_exit(rp_wait(&c, RUN_MS), 0, "entrypoint");
    char *got = rp_slurp(out);
    cr_expect(strstr(got, "/lib/libpvcalls.so"), "LD_PRELOAD: %s", got);
    free(got);
    rp_env_stop(e);
}
