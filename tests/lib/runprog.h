/*
 * Running real programs in end-to-end tests, natively and through
 * scripts/pvcalls-run: a private simulation directory per test, child
 * processes with their stdin/stdout redirected, lines read from a child
 * with a timeout, and the checksums that prove a transfer intact.
 *
 *     Test(run, x, .fini = rp_cleanup, .timeout = 60) {
 *         struct rp_env *e = rp_env_start(true);  // skips if no --isolate
 *         const char *prog[] = { "curl", ..., NULL };
 *         int st = rp_shim_run(e, NULL, prog, NULL, out_path, 20000);
 *         ...
 *         rp_env_stop(e);
 *     }
 *
 * pvcalls-run is found as $PVC_RUN, else beside the build directory
 * ($PVC_BUILD/../scripts), else relative to the test binary; the
 * programs of tests/progs in $PVC_BUILD/progs.  Children die with the
 * test (PR_SET_PDEATHSIG); rp_cleanup() stops a simulation that a failed
 * test left running (pvcalls-run --stop).
 */
#ifndef TEST_RUNPROG_H
#define TEST_RUNPROG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define RP_MAX_ARGS 48

struct rp_env {
    char dir[64];          /* private temporary directory */
    char sim_dir[96];      /* dir/sim */
    char audit[96];        /* dir/audit.jsonl */
    char script[PATH_MAX]; /* scripts/pvcalls-run */
    char entrypoint[PATH_MAX];
    char progs[PATH_MAX];  /* BUILD/progs */
};

/* Create the directory and find the script.  With need_isolate, skip the
 * test (clearly) when network namespaces are not available to us. */
struct rp_env *rp_env_start(bool need_isolate);
/* pvcalls-run --stop on the simulation directory (asserting that it
 * succeeds), remove the directory, free e. */
void rp_env_stop(struct rp_env *e);
/* .fini: the same without assertions, if a test failed midway. */
void rp_cleanup(void);

/* A path in the test's directory. */
const char *rp_path(struct rp_env *e, const char *name, char *buf,
                    size_t len);

struct rp_child {
    pid_t pid;
    int pidfd;
    int out_rd; /* read end of the child's stdout, or -1 */
};

/* Spawn argv[0] (searched in PATH) with stdin from in_path (NULL:
 * /dev/null) and stdout into out_path (NULL: a pipe, read with
 * rp_read_line); stderr is the test's.  extra_env: "NAME=value" strings,
 * NULL-terminated, added to the environment.  Asserts on failure. */
void rp_spawn(struct rp_child *c, const char *const argv[],
              const char *const extra_env[], const char *in_path,
              const char *out_path);
/* Read one line of the child's stdout (without the newline) within
 * timeout_ms; false on EOF or timeout. */
bool rp_read_line(struct rp_child *c, char *buf, size_t len, int timeout_ms);
/* Wait for the child: its wait status, or -ETIMEDOUT (it is then
 * killed). */
int rp_wait(struct rp_child *c, int timeout_ms);
/* Send sig to the child (not reaped). */
void rp_signal(struct rp_child *c, int sig);

/* argv of: pvcalls-run --isolate --sim-dir S --audit A OPTS... -- PROG...
 * (isolate false: without --isolate).  Points into e and the arrays. */
void rp_shim_argv(struct rp_env *e, bool isolate, const char *const opts[],
                  const char *const prog[], const char *argv[RP_MAX_ARGS]);
/* Run a program to completion: status, or -ETIMEDOUT. */
int rp_run(const char *const argv[], const char *in_path,
           const char *out_path, int timeout_ms);
/* The same through pvcalls-run --isolate. */
int rp_shim_run(struct rp_env *e, const char *const opts[],
                const char *const prog[], const char *in_path,
                const char *out_path, int timeout_ms);

/* Assert that a wait status is "exited with want", naming it otherwise. */
void rp_assert_exit(int status, int want, const char *what);
/* The same, quoting (the start of) the program's output file on failure. */
void rp_assert_exit_output(int status, int want, const char *what,
                           const char *out_path);

/* Assert that a probe printed the same natively and under the shim,
 * naming the first line that differs. */
void rp_assert_same_output(const char *native, const char *shim);

/* sha256sum of a file, as 64 hex digits (asserts). */
void rp_sha256(const char *path, char out[65]);
/* A file of len bytes of reproducible pseudo-random data. */
void rp_make_file(const char *path, size_t len, unsigned long long seed);
/* The whole content of a small file, NUL-terminated (malloc'd; asserts). */
char *rp_slurp(const char *path);

/* A file of the source tree (e.g. "tests/progs/x.py"), found beside the
 * scripts directory that holds pvcalls-entrypoint; asserts it exists. */
const char *rp_source_path(const struct rp_env *e, const char *rel,
                           char *buf, size_t len);

#endif
