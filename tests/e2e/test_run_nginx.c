/*
 * nginx over PV Calls (issue 6: event-driven programs).  Debian's nginx,
 * epoll event loop, master + 2 workers (see ../lib/nginx.h), serves a
 * 20 MiB file and small files to curl (sha256 checked) and 2000 requests
 * to ApacheBench (ab -n 2000 -c 20: every request complete, none failed,
 * all 2xx, every body byte counted): once with nginx under the shim in an
 * isolated namespace and the clients native, once the other way round.
 * The backend's audit log must hold the calls (bind/listen/accept, or
 * connect) and the bytes in the close records.
 */
#include "../lib/audit.h"
#include "../lib/nginx.h"
#include "../lib/procstat.h"
#include "../lib/runprog.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BIG_SIZE (20u << 20)
#define LOAD_FILE_SIZE 1000u
#define LOAD_REQUESTS 2000
#define RUN_MS 20000
#define AUDIT_MS 10000
#define NOBODY_UID 65534

/* The files nginx serves (pseudo-random bytes, seed 100 + index). */
static const struct {
    const char *name;
    size_t size;
} files[] = {
    { "big.bin", BIG_SIZE },
    { "one.bin", 1 },
    { "small.bin", LOAD_FILE_SIZE },
    { "medium.bin", 70000 },
};
#define NFILES (sizeof(files) / sizeof(files[0]))

/* curl deadlocks in setlocale() at start-up when libasan is preloaded
 * into it (test_run_curl.c), so a sanitizer build, whose shim needs
 * libasan preloaded, fetches with python3's urllib instead.  ab, nginx
 * and python3 take libasan preloaded. */
#ifdef __SANITIZE_ADDRESS__
#define ASAN_SHIM true
#else
#define ASAN_SHIM false
#endif

static void setup(struct ngx_srv *n)
{
    ps_adopt_orphans();
    ngx_setup(n, rp_env_start(true), "nginx");
    char path[224];
    for (size_t i = 0; i < NFILES; i++)
        rp_make_file(ngx_www_path(n, files[i].name, path, sizeof(path)),
                     files[i].size, 100 + i);
}

/* nginx has its 2 workers, and those that served requests (the access
 * log names them) run as nobody, nginx's default user, when started as
 * root: under the shim they reach the guest daemon as that user. */
static void check_workers(const struct ngx_srv *n)
{
    pid_t workers[8], served[8];
    size_t nw = ngx_workers(n, workers, 8);
    size_t ns = ngx_served_by(n, served, 8);
    cr_expect_eq(nw, NGX_WORKERS, "nginx has %zu workers", nw);
    cr_expect_geq(ns, 1, "no request in the access log");
    for (size_t i = 0; i < ns; i++) {
        bool is_worker = false;
        for (size_t j = 0; j < nw && j < 8; j++)
            is_worker |= workers[j] == served[i];
        cr_expect(is_worker, "pid %d served, not a live worker",
                  (int)served[i]);
        if (geteuid() == 0)
            cr_expect_eq(ps_uid(served[i]), NOBODY_UID,
                         "worker %d runs as uid %lld", (int)served[i],
                         ps_uid(served[i]));
    }
}

/* ---- curl ----------------------------------------------------------- */

/* Fetch every file in one client run (one kept-alive connection for
 * curl), into got/NAME; compare sha256s. */
static void fetch_all(struct ngx_srv *n, bool shim)
{
    char got_dir[128], url[NFILES][96], got[NFILES][192];
    rp_path(n->e, "got", got_dir, sizeof(got_dir));
    cr_assert_eq(mkdir(got_dir, 0755), 0, "%m");
    const char *curl[RP_MAX_ARGS] = { "curl", "-sS", "--fail" };
    const char *urllib[RP_MAX_ARGS] = {
        "/usr/bin/python3", "-c",
        "import sys, urllib.request\n"
        "a = sys.argv[1:]\n"
        "for i in range(0, len(a), 2):\n"
        "    urllib.request.urlretrieve(a[i], a[i + 1])\n",
    };
    size_t nc = 3, nu = 3;
    for (size_t i = 0; i < NFILES; i++) {
        ngx_url(n, files[i].name, url[i], sizeof(url[i]));
        snprintf(got[i], sizeof(got[i]), "%s/%s", got_dir, files[i].name);
        curl[nc++] = "-o";
        curl[nc++] = got[i];
        curl[nc++] = url[i];
        urllib[nu++] = url[i];
        urllib[nu++] = got[i];
    }
    const char *const *prog = shim && ASAN_SHIM ? urllib : curl;
    int status = shim ? rp_shim_run(n->e, NULL, prog, NULL, NULL, RUN_MS)
                      : rp_run(prog, NULL, NULL, RUN_MS);
    rp_assert_exit(status, 0, prog[0]);
    char path[224], want[65], have[65];
    for (size_t i = 0; i < NFILES; i++) {
        rp_sha256(ngx_www_path(n, files[i].name, path, sizeof(path)), want);
        rp_sha256(got[i], have);
        cr_expect_str_eq(have, want, "sha256 of %s", files[i].name);
    }
}

/* ---- ApacheBench ------------------------------------------------------ */

/* The number after "label" in ab's report, or 0 if the line is absent
 * (ab prints "Non-2xx responses" and "Write errors" only when nonzero). */
static long long ab_field(const char *report, const char *label)
{
    const char *p = strstr(report, label);
    return p ? strtoll(p + strlen(label), NULL, 10) : 0;
}

static void load(struct ngx_srv *n, bool shim)
{
    char url[96], timeout[8], out[160], count[8];
    ngx_url(n, "small.bin", url, sizeof(url));
    snprintf(timeout, sizeof(timeout), "%d", RUN_MS / 1000);
    snprintf(count, sizeof(count), "%d", LOAD_REQUESTS);
    rp_path(n->e, "ab.out", out, sizeof(out));
    const char *ab[] = { "ab", "-q", "-s", timeout, "-n", count, "-c", "20",
                         url, NULL };
    int status = shim ? rp_shim_run(n->e, NULL, ab, NULL, out, RUN_MS)
                      : rp_run(ab, NULL, out, RUN_MS);
    rp_assert_exit_output(status, 0, shim ? "ab under the shim" : "ab",
                          out);
    char *report = rp_slurp(out);
    cr_expect_eq(ab_field(report, "Complete requests:"), LOAD_REQUESTS,
                 "%s", report);
    cr_expect_eq(ab_field(report, "Failed requests:"), 0, "%s", report);
    cr_expect_eq(ab_field(report, "Non-2xx responses:"), 0, "%s", report);
    cr_expect_eq(ab_field(report, "Write errors:"), 0, "%s", report);
    cr_expect_eq(ab_field(report, "HTML transferred:"),
                 (long long)LOAD_REQUESTS * LOAD_FILE_SIZE, "%s", report);
    free(report);
}

/* ---- the audit log --------------------------------------------------- */

/* Every socket of the guest was closed, at least `sockets` of them with
 * at least min_bytes in direction key. */
static void check_closes(struct ngx_srv *n, size_t sockets,
                         const char *key, long long min_bytes)
{
    cr_expect(audit_wait_closed(n->e->audit, 1, AUDIT_MS),
              "sockets left open in the audit log");
    struct audit_q closes = { .event = "close", .dom = 1 };
    struct audit a;
    cr_assert_eq(audit_load(&a, n->e->audit), 0);
    size_t got = audit_count_min(&a, &closes, key, min_bytes);
    cr_expect_geq(got, sockets, "%zu close records with %s >= %lld, "
                  "expected %zu", got, key, min_bytes, sockets);
    audit_free(&a);
}

/* The guest's calls: bind/listen/accept (server under the shim) or
 * connect (clients), at least `conns` of the connections. */
static void check_calls(struct ngx_srv *n, bool server, size_t conns)
{
    struct audit a;
    cr_assert_eq(audit_load(&a, n->e->audit), 0);
    unsigned port = (unsigned)atoi(n->port);
    if (server) {
        struct audit_q bind = { .cmd = "bind", .dom = 1 };
        struct audit_q listen = { .cmd = "listen", .dom = 1 };
        struct audit_q accept = { .cmd = "accept", .dom = 1 };
        cr_expect_geq(audit_count_port(&a, &bind, port, true), 1,
                      "no bind to port %u", port);
        cr_expect_geq(audit_count(&a, &listen), 1, "no listen");
        cr_expect_geq(audit_count_min(&a, &accept, "ret", 0), conns,
                      "fewer than %zu accepts", conns);
    } else {
        struct audit_q connect = { .cmd = "connect", .dom = 1 };
        cr_expect_geq(audit_count_port(&a, &connect, port, true), conns,
                      "fewer than %zu connects to port %u", conns, port);
    }
    audit_free(&a);
}

/* ---- the tests ------------------------------------------------------- */

Test(run_nginx, server_under_shim_curl, .fini = ps_test_fini, .timeout = 90)
{
    struct ngx_srv n;
    setup(&n);
    ngx_start(&n, true);
    fetch_all(&n, false);
    check_workers(&n);
    ngx_stop(&n);
    check_calls(&n, true, 1);
    check_closes(&n, 1, "bytes_out", BIG_SIZE);
    rp_env_stop(n.e);
}

Test(run_nginx, server_under_shim_load, .fini = ps_test_fini, .timeout = 90)
{
    struct ngx_srv n;
    setup(&n);
    ngx_start(&n, true);
    load(&n, false);
    check_workers(&n);
    ngx_stop(&n);
    check_calls(&n, true, LOAD_REQUESTS);
    check_closes(&n, LOAD_REQUESTS, "bytes_out", LOAD_FILE_SIZE);
    rp_env_stop(n.e);
}

Test(run_nginx, clients_under_shim_curl, .fini = ps_test_fini, .timeout = 90)
{
    struct ngx_srv n;
    setup(&n);
    ngx_start(&n, false);
    fetch_all(&n, true);
    check_workers(&n);
    ngx_stop(&n);
    check_calls(&n, false, 1);
    check_closes(&n, 1, "bytes_in", BIG_SIZE);
    rp_env_stop(n.e);
}

Test(run_nginx, clients_under_shim_load, .fini = ps_test_fini, .timeout = 90)
{
    struct ngx_srv n;
    setup(&n);
    ngx_start(&n, false);
    load(&n, true);
    check_workers(&n);
    ngx_stop(&n);
    check_calls(&n, false, LOAD_REQUESTS);
    check_closes(&n, LOAD_REQUESTS, "bytes_in", LOAD_FILE_SIZE);
    rp_env_stop(n.e);
}
