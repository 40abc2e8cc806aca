/* Debian's nginx in end-to-end tests: see nginx.h. */
#include "nginx.h"

#include "hostnet.h"
#include "procstat.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define NGX_BIN "/usr/sbin/nginx"
#define START_MS 20000
#define STOP_MS 20000

static void write_conf(const struct ngx_srv *n)
{
    FILE *f = fopen(n->conf, "w");
    cr_assert(f, "%s: %m", n->conf);
    /* Temp paths: nginx creates them and hands them to the worker
     * user at start-up; they must not default to /var/lib/nginx. */
    fprintf(f,
            "daemon off;\n"
            "master_process on;\n"
            "worker_processes %d;\n"
            "pid %s;\n"
            "error_log %s notice;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            "    log_format served_by '$pid $status $request';\n"
            "    access_log %s/access.log served_by;\n"
            "    client_body_temp_path %s/tmp/body;\n"
            "    proxy_temp_path %s/tmp/proxy;\n"
            "    fastcgi_temp_path %s/tmp/fastcgi;\n"
            "    uwsgi_temp_path %s/tmp/uwsgi;\n"
            "    scgi_temp_path %s/tmp/scgi;\n"
            "    sendfile on;\n"
            "    server {\n"
            "        listen 127.0.0.1:%s;\n"
            "        root %s;\n"
            "        location = /status { stub_status; }\n"
            "    }\n"
            "}\n",
            NGX_WORKERS, n->pid_file, n->error_log, n->dir, n->dir, n->dir,
            n->dir, n->dir, n->dir, n->port, n->www);
    cr_assert_eq(fclose(f), 0, "%s: %m", n->conf);
}

void ngx_setup(struct ngx_srv *n, struct rp_env *e, const char *name)
{
    memset(n, 0, sizeof(*n));
    n->e = e;
    n->run.pidfd = n->run.out_rd = -1;
    rp_path(e, name, n->dir, sizeof(n->dir));
    snprintf(n->www, sizeof(n->www), "%s/www", n->dir);
    snprintf(n->conf, sizeof(n->conf), "%s/nginx.conf", n->dir);
    snprintf(n->pid_file, sizeof(n->pid_file), "%s/nginx.pid", n->dir);
    snprintf(n->error_log, sizeof(n->error_log), "%s/error.log", n->dir);
    snprintf(n->port, sizeof(n->port), "%u", hn_closed_port(AF_INET));
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s/tmp", n->dir);
    cr_assert(mkdir(n->dir, 0755) == 0 && mkdir(n->www, 0755) == 0 &&
                  mkdir(tmp, 0755) == 0,
              "mkdir in %s: %m", n->dir);
    write_conf(n);
}

void ngx_conf_prepend(struct ngx_srv *n, const char *directives)
{
    char *old = rp_slurp(n->conf);
    FILE *f = fopen(n->conf, "w");
    cr_assert(f, "%s: %m", n->conf);
    fputs(directives, f);
    fputs(old, f);
    free(old);
    cr_assert_eq(fclose(f), 0, "%s: %m", n->conf);
}

const char *ngx_www_path(const struct ngx_srv *n, const char *name,
                         char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", n->www, name);
    return buf;
}

const char *ngx_url(const struct ngx_srv *n, const char *name, char *buf,
                    size_t len)
{
    snprintf(buf, len, "http://127.0.0.1:%s/%s", n->port, name);
    return buf;
}

/* ---- waiting for nginx's own files, without polling ------------------ */

/* How many times needle occurs in the file (0 if unreadable). */
static unsigned count_in_file(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    unsigned count = 0;
    char line[1024];
    while (fgets(line, sizeof(line), f))
        if (strstr(line, needle))
            count++;
    fclose(f);
    return count;
}

static bool ready(const struct ngx_srv *n)
{
    return ps_read_pidfile(n->pid_file) > 0 &&
           count_in_file(n->error_log, "start worker process ") >=
               NGX_WORKERS;
}

/* Wait until ready(n): inotify on nginx's directory wakes us on every
 * write there; the child's pidfd says if it died first. */
static void wait_ready(struct ngx_srv *n)
{
    int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    cr_assert(in >= 0, "inotify_init1: %m");
    cr_assert(inotify_add_watch(in, n->dir, IN_CLOSE_WRITE | IN_MODIFY |
                                                IN_MOVED_TO) >= 0,
              "inotify_add_watch %s: %m", n->dir);
    int64_t deadline = hn_now_ms() + START_MS;
    bool died = false;
    while (!ready(n) && !died) {
        int left = (int)(deadline - hn_now_ms());
        cr_assert(left > 0, "nginx did not start within %d ms (see %s)",
                  START_MS, n->error_log);
        struct pollfd p[2] = { { .fd = in, .events = POLLIN },
                               { .fd = n->run.pidfd, .events = POLLIN } };
        if (poll(p, 2, left) < 0 && errno != EINTR)
            cr_assert_fail("poll: %m");
        char ev[4096];
        while (read(in, ev, sizeof(ev)) > 0)
            ;
        died = p[1].revents & POLLIN;
    }
    close(in);
    cr_assert(!died || ready(n), "nginx exited at start-up (see %s)",
              n->error_log);
}

void ngx_start(struct ngx_srv *n, bool shim)
{
    const char *prog[] = { NGX_BIN, "-p", n->dir, "-c", n->conf, NULL };
    const char *argv[RP_MAX_ARGS];
    n->shim = shim;
    if (shim)
        rp_shim_argv(n->e, true, NULL, prog, argv);
    rp_spawn(&n->run, shim ? argv : prog, NULL, NULL, "/dev/null");
    wait_ready(n);
    n->master = ps_read_pidfile(n->pid_file);
    cr_assert(n->master > 0);
}

size_t ngx_workers(const struct ngx_srv *n, pid_t *out, size_t max)
{
    return ps_children(n->master, out, max);
}

size_t ngx_served_by(const struct ngx_srv *n, pid_t *out, size_t max)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/access.log", n->dir);
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s: %m", path);
    size_t count = 0;
    int pid;
    char rest[512];
    while (fscanf(f, "%d %511[^\n]", &pid, rest) == 2) {
        bool seen = false;
        for (size_t i = 0; i < count && !seen; i++)
            seen = out[i] == (pid_t)pid;
        if (!seen && count < max)
            out[count++] = (pid_t)pid;
    }
    fclose(f);
    return count;
}

void ngx_stop(struct ngx_srv *n)
{
    rp_signal(&n->run, SIGTERM);
    rp_assert_exit(rp_wait(&n->run, STOP_MS), 0,
                   n->shim ? "nginx under pvcalls-run, on SIGTERM"
                           : "nginx on SIGTERM");
}
