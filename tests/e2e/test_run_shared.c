/*
 * Concurrent pvcalls-run invocations on one simulation directory share
 * the daemons, and the last one to finish stops them.
 */
#include "../lib/runprog.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RUN_MS 30000

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

/* Two concurrent pvcalls-run share the daemons; the last stops them. */
Test(run_shared, concurrent_runs_share, .fini = rp_cleanup, .timeout = 90)
{
    struct rp_env *e = rp_env_start(false);
    /* The first one runs until we SIGTERM it (pvcalls-run passes it on). */
    const char *hold[] = { "sh", "-c", "echo started; exec sleep 60", NULL };
    const char *argv[RP_MAX_ARGS];
    rp_shim_argv(e, false, NULL, hold, argv);
    struct rp_child first;
    rp_spawn(&first, argv, NULL, NULL, NULL);
    char line[64];
    cr_assert(rp_read_line(&first, line, sizeof(line), RUN_MS) &&
                  !strcmp(line, "started"),
              "first pvcalls-run did not start its program: \"%s\"", line);
    const char *quick[] = { "true", NULL };
    rp_shim_argv(e, false, NULL, quick, argv);
    rp_assert_exit(rp_run(argv, NULL, NULL, RUN_MS), 0, "second pvcalls-run");
    cr_assert(frontd_socket_exists(e),
              "the second run stopped the daemons the first still uses");
    rp_signal(&first, SIGTERM);
    rp_assert_exit(rp_wait(&first, RUN_MS), 128 + SIGTERM,
                   "first pvcalls-run on SIGTERM");
    cr_assert_not(daemon_recorded(e, "backd") || frontd_socket_exists(e),
              "the last pvcalls-run left the daemons running");
    rp_env_stop(e);
}

