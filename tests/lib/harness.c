/* The simulated environment of one end-to-end test: see harness.h. */
#include "harness.h"

#include "sanitizer.h"
#include "pvc/log.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Generous: daemons start slowly under ASan on a loaded 2-core machine. */
#define READY_TIMEOUT_MS 15000
#define EXIT_TIMEOUT_MS 15000
#define SIMXL_TIMEOUT_MS 20000

/* The environment of the running test, for h_cleanup(). */
static struct harness *current;

static void find_bindir(char *out, size_t len)
{
    const char *build = getenv("PVC_BUILD");
    if (build && *build) {
        snprintf(out, len, "%s/bin", build);
        return;
    }
    /* BUILD/tests/e2e/test_x -> BUILD/bin */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    cr_assert(n > 0, "readlink /proc/self/exe: %m");
    exe[n] = '\0';
    char *build_dir = dirname(dirname(dirname(exe)));
    snprintf(out, len, "%s/bin", build_dir);
}

/* Environment for every daemon: the simulated platform in our directory,
 * and quiet logs unless the caller asked for more. */
static void daemon_env(struct harness *h, char *env[4])
{
    static char dir_var[256], log_var[64];
    snprintf(dir_var, sizeof(dir_var), "PVC_SIM_DIR=%s", h->dir);
    const char *log = getenv("PVC_LOG");
    snprintf(log_var, sizeof(log_var), "PVC_LOG=%s", log ? log : "warn");
    env[0] = dir_var;
    env[1] = (char *)"PVC_PLATFORM=sim";
    env[2] = log_var;
    env[3] = NULL;
}

static void start_daemon(struct harness *h, struct proc *p, char *argv[])
{
    char *env[4];
    daemon_env(h, env);
    int err = proc_spawn(p, argv, env, true);
    cr_assert_eq(err, 0, "spawn %s: %s", argv[0], strerror(-err));
    err = proc_wait_ready(p, READY_TIMEOUT_MS);
    if (err) {
        int status = proc_wait_exit(p, 0);
        char why[64];
        if (status < 0)
            proc_kill(p);
        cr_assert_fail("%s did not become ready: %s (%s)", argv[0],
                       strerror(-err), proc_status_str(status, why,
                                                      sizeof(why)));
    }
}

/* SIGTERM, then assert a clean exit: anything else (a crash, an ASan
 * leak report's exit code, a hang) fails the test. */
static void stop_daemon(struct proc *p, const char *name)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGTERM);
    int status = proc_wait_exit(p, EXIT_TIMEOUT_MS);
    char why[64];
    if (status < 0)
        proc_kill(p);
    cr_assert(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "%s on SIGTERM: %s", name,
              proc_status_str(status, why, sizeof(why)));
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void remove_dir(const char *dir)
{
    if (dir[0])
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

struct harness *h_start(const struct h_opts *opts)
{
    cr_assert_null(current, "one environment per test");
    struct harness *h = calloc(1, sizeof(*h));
    cr_assert(h);
    h->simd = h->backd = (struct proc){ .pidfd = -1, .ready_rd = -1 };
    if (opts)
        h->opts = *opts;
    if (!h->opts.guests)
        h->opts.guests = 1;
    cr_assert(h->opts.guests <= H_MAX_GUESTS);
    current = h;
    /* The test frontend logs through the same code as the daemons. */
    if (!getenv("PVC_LOG"))
        pvc_log_set_level(PVC_LOG_WARN);
    snprintf(h->dir, sizeof(h->dir), "/tmp/pvc-e2e-XXXXXX");
    cr_assert(mkdtemp(h->dir), "mkdtemp: %m");
    find_bindir(h->bindir, sizeof(h->bindir));

    char simd[PATH_MAX + 32];
    snprintf(simd, sizeof(simd), "%s/pvcalls-simd", h->bindir);
    char *argv[] = { simd, (char *)"--dir", h->dir, (char *)"--foreground",
                     (char *)"--ready-fd", (char *)"3", NULL };
    start_daemon(h, &h->simd, argv);
    for (unsigned dom = 1; dom <= h->opts.guests; dom++)
        cr_assert_eq(h_simxl(h, "create", dom, SIMXL_TIMEOUT_MS), 0,
                     "pvcalls-simxl create %u", dom);
    if (!h->opts.no_backend)
        h_backend_start(h);
    return h;
}

void h_backend_start(struct harness *h)
{
    cr_assert_eq(h->backd.pid, 0, "backend already running");
    h->backend_gen++;
    snprintf(h->audit_path, sizeof(h->audit_path), "%s/audit-%u.jsonl",
             h->dir, h->backend_gen);
    char backd[PATH_MAX + 32];
    snprintf(backd, sizeof(backd), "%s/pvcalls-backd", h->bindir);
    char *argv[8 + H_MAX_ARGS] = {
        backd, (char *)"--platform", (char *)"sim", (char *)"--sim-dir",
        h->dir, (char *)"--audit", h->audit_path, (char *)"--ready-fd",
        (char *)"3",
    };
    size_t n = 9;
    for (size_t i = 0; i < H_MAX_ARGS && h->opts.backd_args[i]; i++)
        argv[n++] = (char *)h->opts.backd_args[i];
    argv[n] = NULL;
    start_daemon(h, &h->backd, argv);
}

void h_backend_stop(struct harness *h)
{
    stop_daemon(&h->backd, "pvcalls-backd");
}

bool h_backend_alive(struct harness *h)
{
    if (h->backd.pid <= 0)
        return false;
    int status = proc_wait_exit(&h->backd, 0);
    if (status < 0)
        return true;
    char why[64];
    cr_log_error("pvcalls-backd died: %s",
                 proc_status_str(status, why, sizeof(why)));
    return false;
}

int h_simxl(struct harness *h, const char *verb, unsigned domid,
            int timeout_ms)
{
    char simxl[PATH_MAX + 32], dom[16];
    snprintf(simxl, sizeof(simxl), "%s/pvcalls-simxl", h->bindir);
    snprintf(dom, sizeof(dom), "%u", domid);
    char *argv[] = { simxl, (char *)"--sim-dir", h->dir, (char *)verb, dom,
                     NULL };
    char *env[4];
    daemon_env(h, env);
    struct proc p;
    int err = proc_spawn(&p, argv, env, false);
    cr_assert_eq(err, 0, "spawn %s: %s", simxl, strerror(-err));
    int status = proc_wait_exit(&p, timeout_ms);
    if (status < 0) {
        proc_kill(&p);
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void h_stop(struct harness *h)
{
    cr_assert_eq(h, current);
    stop_daemon(&h->backd, "pvcalls-backd");
    stop_daemon(&h->simd, "pvcalls-simd");
    remove_dir(h->dir);
    current = NULL;
    free(h);
    /* Everything the test allocated is freed or still referenced by
     * now: anything unreachable is a leak of the frontend side (the test
     * library or the platform/xenbus code it runs). */
    cr_assert(sanitizer_no_leaks(), "leaks in the test process (report "
              "above)");
}

void h_cleanup(void)
{
    struct harness *h = current;
    if (!h)
        return;
    proc_kill(&h->backd);
    proc_kill(&h->simd);
    remove_dir(h->dir);
    current = NULL;
    free(h);
}

void h_skip(const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    h_cleanup();
    cr_skip_test("%s", msg);
    abort(); /* not reached */
}

void h_audit(struct harness *h, struct audit *a)
{
    int err = audit_load(a, h->audit_path);
    cr_assert_eq(err, 0, "%s: %s", h->audit_path, strerror(-err));
}

size_t h_audit_wait(struct harness *h, const struct audit_q *q, size_t count,
                    int timeout_ms)
{
    return audit_wait(h->audit_path, q, count, timeout_ms);
}

void h_audit_assert_wellformed(struct harness *h)
{
    struct audit a;
    h_audit(h, &a);
    for (size_t i = 0; i < a.n; i++)
        cr_expect(json_valid_object(a.lines[i]), "audit line %zu: %s", i + 1,
                  a.lines[i]);
    audit_free(&a);
}
