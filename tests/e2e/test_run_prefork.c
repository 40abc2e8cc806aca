/*
 * A pre-fork server under the shim (issue 7): Debian's nginx with
 * master_process on, 2 workers and `user nobody nogroup`, in an isolated
 * namespace.  The master binds and listens; the workers, forked from it
 * and switched to nobody, accept on the inherited listener.
 *
 *  - curl (native) fetches a 4 MiB static file: sha256 matches;
 *  - ab (native) makes 10,000 requests for a small file: every one
 *    complete, none failed, all 2xx, every byte counted;
 *  - during a second ab run of 10,000, the master is told to reload
 *    (SIGHUP, what `nginx -s reload` sends): it starts 2 new workers and
 *    the old ones finish what they hold and exit.  Zero failed requests.
 *    ab runs without keep-alive (a new connection per request): an idle
 *    kept-alive connection that an old worker closes at reload is lost
 *    to ab, which never retries, while a browser would retry it; with a
 *    connection per request nothing may be lost.
 * The workers (old and new) run as uid 65534 (/proc), requests were
 * served by both generations, and the audit log has the bind, the listen
 * and every accepted connection.
 */
#include "../lib/audit.h"
#include "../lib/hostnet.h"
#include "../lib/loadgen.h"
#include "../lib/nginx.h"
#include "../lib/procstat.h"
#include "../lib/runprog.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define BIG_SIZE (4u << 20)
#define SMALL_SIZE 1000u
#define REQUESTS 10000
#define RUN_MS 40000
#define NOBODY_UID 65534
/* Requests served in the second run before the reload is sent. */
#define BEFORE_RELOAD 1000

static void setup(struct ngx_srv *n)
{
    ps_adopt_orphans();
    ngx_setup(n, rp_env_start(true), "nginx");
    ngx_conf_prepend(n, "user nobody nogroup;\n");
    char path[224];
    rp_make_file(ngx_www_path(n, "big.bin", path, sizeof(path)), BIG_SIZE, 1);
    rp_make_file(ngx_www_path(n, "small.bin", path, sizeof(path)),
                 SMALL_SIZE, 2);
}

static void fetch_big(struct ngx_srv *n)
{
    char url[96], got[192], want[65], have[65], path[224];
    ngx_url(n, "big.bin", url, sizeof(url));
    rp_path(n->e, "big.got", got, sizeof(got));
    const char *curl[] = { "curl", "-sS", "--fail", "-o", got, url, NULL };
    rp_assert_exit(rp_run(curl, NULL, NULL, RUN_MS), 0, "curl");
    rp_sha256(ngx_www_path(n, "big.bin", path, sizeof(path)), want);
    rp_sha256(got, have);
    cr_expect_str_eq(have, want, "sha256 of big.bin");
}

/* Workers now: exactly 2, running as nobody; returns them in w[2]. */
static void check_workers(const struct ngx_srv *n, pid_t w[NGX_WORKERS])
{
    pid_t all[8];
    size_t nw = ngx_workers(n, all, 8);
    cr_assert_eq(nw, NGX_WORKERS, "nginx has %zu workers", nw);
    for (size_t i = 0; i < NGX_WORKERS; i++) {
        w[i] = all[i];
        cr_expect_eq(ps_uid(w[i]), NOBODY_UID, "worker %d runs as uid %lld",
                     (int)w[i], ps_uid(w[i]));
    }
}

static bool served_by_one_of(const struct ngx_srv *n, const pid_t *w)
{
    pid_t served[16];
    size_t ns = ngx_served_by(n, served, 16);
    for (size_t i = 0; i < ns && i < 16; i++)
        for (size_t j = 0; j < NGX_WORKERS; j++)
            if (served[i] == w[j])
                return true;
    return false;
}

/* ---- waiting on nginx's files (inotify, no polling) -------------------- */

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

static unsigned count_lines_with(const char *path, const char *needle)
{
    char *text = rp_slurp(path);
    unsigned count = 0;
    for (const char *p = text; (p = strstr(p, needle)); p++)
        count++;
    free(text);
    return count;
}

struct file_goal {
    const char *path;
    long long min_size;      /* access log: at least this many bytes */
    const char *needle;      /* error log: at least min_count lines */
    unsigned min_count;
};

static bool goal_met(const struct file_goal *g)
{
    if (g->needle)
        return count_lines_with(g->path, g->needle) >= g->min_count;
    return file_size(g->path) >= g->min_size;
}

static void wait_goal(const struct ngx_srv *n, const struct file_goal *g,
                      const char *what)
{
    int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    cr_assert(in >= 0 && inotify_add_watch(in, n->dir, IN_MODIFY) >= 0,
              "inotify: %m");
    int64_t deadline = hn_now_ms() + RUN_MS;
    while (!goal_met(g)) {
        int left = (int)(deadline - hn_now_ms());
        cr_assert(left > 0, "timed out waiting for %s", what);
        struct pollfd p = { .fd = in, .events = POLLIN };
        if (poll(&p, 1, left) < 0 && errno != EINTR)
            cr_assert_fail("poll: %m");
        char ev[4096];
        while (read(in, ev, sizeof(ev)) > 0)
            ;
    }
    close(in);
}

/* ---- the test ------------------------------------------------------------ */

static void ab_start(struct ngx_srv *n, struct rp_child *ab, char *out,
                     size_t out_len)
{
    char url[96];
    ngx_url(n, "small.bin", url, sizeof(url));
    rp_path(n->e, "ab.out", out, out_len);
    lg_ab_spawn(ab, url, REQUESTS, 20, RUN_MS / 1000, out);
}

static void check_ab(struct rp_child *ab, const char *out)
{
    rp_assert_exit_output(rp_wait(ab, RUN_MS), 0, "ab", out);
    lg_ab_expect_clean(out, REQUESTS, SMALL_SIZE);
}

static void reload_under_load(struct ngx_srv *n, const pid_t old[2])
{
    char access[192], out[192];
    snprintf(access, sizeof(access), "%s/access.log", n->dir);
    long long line = (long long)strlen("12345 200 GET /small.bin HTTP/1.0\n");
    struct file_goal started = { .path = access,
                                 .min_size = file_size(access) +
                                             BEFORE_RELOAD * (line - 2) };
    struct rp_child ab;
    ab_start(n, &ab, out, sizeof(out));
    wait_goal(n, &started, "the second load run to get going");
    cr_assert_eq(kill(n->master, SIGHUP), 0, "SIGHUP to nginx: %m");
    struct file_goal reloaded = { .path = n->error_log,
                                  .needle = "start worker process ",
                                  .min_count = 2 * NGX_WORKERS };
    wait_goal(n, &reloaded, "new workers after the reload");
    check_ab(&ab, out);
    pid_t fresh[NGX_WORKERS];
    check_workers(n, fresh);
    for (int i = 0; i < NGX_WORKERS; i++)
        cr_expect(fresh[i] != old[0] && fresh[i] != old[1],
                  "worker %d survived the reload", (int)fresh[i]);
    cr_expect(served_by_one_of(n, fresh),
              "no request served by a new worker: the reload came after "
              "the load");
}

static void check_audit(struct ngx_srv *n, size_t conns)
{
    cr_expect(audit_wait_closed(n->e->audit, 1, RUN_MS),
              "sockets left open in the audit log");
    struct audit a;
    cr_assert_eq(audit_load(&a, n->e->audit), 0);
    unsigned port = (unsigned)atoi(n->port);
    struct audit_q bind = { .cmd = "bind", .dom = 1 };
    struct audit_q listen = { .cmd = "listen", .dom = 1 };
    struct audit_q accept = { .cmd = "accept", .dom = 1 };
    struct audit_q closes = { .event = "close", .dom = 1 };
    cr_expect_eq(audit_count_port(&a, &bind, port, true), 1);
    /* nginx listens again on its inherited listener at each reload (to
     * apply the backlog), as it does natively: once, then once more. */
    size_t listens = audit_count(&a, &listen);
    cr_expect_eq(listens, 2, "%zu listen records", listens);
    size_t accepted = audit_count_min(&a, &accept, "ret", 0);
    cr_expect_geq(accepted, conns, "%zu accepts, want %zu", accepted, conns);
    cr_expect_geq(audit_count_min(&a, &closes, "bytes_out", SMALL_SIZE),
                  conns);
    audit_free(&a);
}

Test(run_prefork, nginx_workers_as_nobody_reload_under_load,
     .fini = ps_test_fini, .timeout = 150)
{
    if (geteuid() != 0)
        cr_skip_test("nginx's `user` directive needs root: skipped");
    struct ngx_srv n;
    setup(&n);
    ngx_start(&n, true);
    fetch_big(&n);
    pid_t first[NGX_WORKERS];
    check_workers(&n, first);
    struct rp_child ab;
    char out[192];
    ab_start(&n, &ab, out, sizeof(out));
    check_ab(&ab, out);
    cr_expect(served_by_one_of(&n, first));
    reload_under_load(&n, first);
    ngx_stop(&n);
    check_audit(&n, 2 * REQUESTS + 1);
    rp_env_stop(n.e);
}
