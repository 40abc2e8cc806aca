/* The guest daemon in an end-to-end test: see harness_frontd.h. */
#include "harness_frontd.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FRONTD_READY_TIMEOUT_MS 20000
#define FRONTD_EXIT_TIMEOUT_MS 20000
#define FRONTD_MAX_ARGS 32

void h_frontd_start(struct harness *h, unsigned domid,
                    const char *const *extra_args, struct h_frontd *fd)
{
    memset(fd, 0, sizeof(*fd));
    fd->proc = (struct proc){ .pidfd = -1, .ready_rd = -1 };
    fd->domid = domid;
    snprintf(fd->sock, sizeof(fd->sock), "%s/frontd-%u.sock", h->dir, domid);

    char bin[PATH_MAX + 32], dom[16];
    snprintf(bin, sizeof(bin), "%s/pvcalls-frontd", h->bindir);
    snprintf(dom, sizeof(dom), "%u", domid);
    char *argv[FRONTD_MAX_ARGS + 16] = {
        bin, (char *)"--platform", (char *)"sim", (char *)"--sim-dir",
        h->dir, (char *)"--domid", dom, (char *)"--socket", fd->sock,
        (char *)"--ready-fd", (char *)"3",
    };
    size_t n = 11;
    for (size_t i = 0; extra_args && extra_args[i]; i++) {
        cr_assert(i < FRONTD_MAX_ARGS, "too many frontd arguments");
        argv[n++] = (char *)extra_args[i];
    }
    argv[n] = NULL;

    char dir_var[256], log_var[64];
    const char *log = getenv("PVC_LOG");
    snprintf(dir_var, sizeof(dir_var), "PVC_SIM_DIR=%s", h->dir);
    snprintf(log_var, sizeof(log_var), "PVC_LOG=%s", log ? log : "warn");
    char *env[] = { dir_var, (char *)"PVC_PLATFORM=sim", log_var, NULL };

    int err = proc_spawn(&fd->proc, argv, env, true);
    cr_assert_eq(err, 0, "spawn %s: %s", bin, strerror(-err));
    err = proc_wait_ready(&fd->proc, FRONTD_READY_TIMEOUT_MS);
    if (err) {
        int status = proc_wait_exit(&fd->proc, 0);
        char why[64];
        if (status < 0)
            proc_kill(&fd->proc);
        cr_assert_fail("pvcalls-frontd did not become ready: %s (%s)",
                       strerror(-err),
                       proc_status_str(status, why, sizeof(why)));
    }
}

void h_frontd_stop(struct h_frontd *fd)
{
    if (fd->proc.pid <= 0)
        return;
    kill(fd->proc.pid, SIGTERM);
    int status = proc_wait_exit(&fd->proc, FRONTD_EXIT_TIMEOUT_MS);
    char why[64];
    if (status < 0)
        proc_kill(&fd->proc);
    cr_assert(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "pvcalls-frontd on SIGTERM: %s",
              proc_status_str(status, why, sizeof(why)));
}

void h_frontd_kill(struct h_frontd *fd)
{
    proc_kill(&fd->proc);
}

bool h_frontd_alive(struct h_frontd *fd)
{
    if (fd->proc.pid <= 0)
        return false;
    return proc_wait_exit(&fd->proc, 0) < 0;
}

long h_frontd_cpu_ms(struct h_frontd *fd)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)fd->proc.pid);
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields after the command name, which may hold spaces and ')':
     * state is field 3, utime 14 and stime 15 (proc(5)). */
    char *p = strrchr(buf, ')');
    unsigned long utime = 0, stime = 0;
    cr_assert(p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u "
                                 "%*u %lu %lu", &utime, &stime) == 2,
              "cannot parse %s", path);
    long hz = sysconf(_SC_CLK_TCK);
    return (long)((utime + stime) * 1000 / (unsigned long)(hz > 0 ? hz : 100));
}
