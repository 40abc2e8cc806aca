/*
 * Real programs over PV Calls: curl fetches a 50 MB file from python3's
 * http.server, with either side under the shim in an isolated network
 * namespace (pvcalls-run --isolate), over IPv4 and IPv6.  The sha256 of
 * what arrived must match, and the backend's audit log must hold the
 * calls (connect, or listen and accept) and the bytes.
 */
#include "../lib/audit.h"
#include "../lib/hostnet.h"
#include "../lib/runprog.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define FILE_SIZE (50u << 20)
#define RUN_MS 120000
#define READY_MS 30000

struct http_case {
    struct rp_env *e;
    int family;
    char www[192], file[224], got[192], port[8], url[128];
    const char *bind_addr;
};

static void setup(struct http_case *c, int family)
{
    if (family == AF_INET6 && !hn_have_ipv6_loopback())
        cr_skip_test("this host has no IPv6 loopback: skipped");
    c->e = rp_env_start(true);
    c->family = family;
    rp_path(c->e, "www", c->www, sizeof(c->www));
    cr_assert_eq(mkdir(c->www, 0755), 0, "mkdir: %m");
    snprintf(c->file, sizeof(c->file), "%s/blob", c->www);
    rp_make_file(c->file, FILE_SIZE, 42);
    rp_path(c->e, "got", c->got, sizeof(c->got));
    /* http.server cannot report a port it chose: take a free one. */
    snprintf(c->port, sizeof(c->port), "%u", hn_closed_port(family));
    c->bind_addr = family == AF_INET6 ? "::1" : "127.0.0.1";
    snprintf(c->url, sizeof(c->url),
             family == AF_INET6 ? "http://[%s]:%s/blob" : "http://%s:%s/blob",
             c->bind_addr, c->port);
}

/* Start python3 -m http.server (under pvcalls-run if shim) and wait for
 * its "Serving HTTP" line, printed once it listens. */
static void start_server(struct http_case *c, bool shim, struct rp_child *srv)
{
    const char *prog[] = { "/usr/bin/python3", "-u", "-m", "http.server",
                           "--bind", c->bind_addr, "--directory", c->www,
                           c->port, NULL };
    const char *argv[RP_MAX_ARGS];
    if (shim)
        rp_shim_argv(c->e, true, NULL, prog, argv);
    rp_spawn(srv, shim ? argv : prog, NULL, NULL, NULL);
    char line[256];
    cr_assert(rp_read_line(srv, line, sizeof(line), READY_MS) &&
                  strstr(line, "Serving HTTP"),
              "http.server did not start: \"%s\"", line);
}

/* curl deadlocks in setlocale() at start-up when libasan is preloaded
 * into it (it does so without the shim too), so a sanitizer build, whose
 * shim needs libasan preloaded, fetches with python3's urllib instead. */
#ifdef __SANITIZE_ADDRESS__
#define ASAN_SHIM true
#else
#define ASAN_SHIM false
#endif

static void fetch(struct http_case *c, bool shim)
{
    const char *curl[] = { "curl", "-sS", "-g", "-o", c->got, c->url, NULL };
    const char *urllib[] = {
        "/usr/bin/python3", "-c",
        "import sys, urllib.request; "
        "urllib.request.urlretrieve(sys.argv[1], sys.argv[2])",
        c->url, c->got, NULL,
    };
    const char *const *prog = shim && ASAN_SHIM ? urllib : curl;
    int status = shim ? rp_shim_run(c->e, NULL, prog, NULL, NULL, RUN_MS)
                      : rp_run(prog, NULL, NULL, RUN_MS);
    rp_assert_exit(status, 0, prog[0]);
    char want[65], got[65];
    rp_sha256(c->file, want);
    rp_sha256(c->got, got);
    cr_assert_str_eq(got, want, "sha256 of the fetched file");
}

/* The audit log has a record of cmd whose addr ends with :port, and a
 * socket closed with at least FILE_SIZE bytes in direction key. */
static void check_audit(struct http_case *c, const char *cmd,
                        const char *bytes_key)
{
    struct audit a;
    cr_assert_eq(audit_load(&a, c->e->audit), 0);
    char suffix[16], addr[96];
    snprintf(suffix, sizeof(suffix), ":%s", c->port);
    struct audit_q q = { .cmd = cmd, .dom = 1 };
    size_t pos = 0;
    const char *line;
    bool found = false;
    while (!found && (line = audit_next(&a, &q, &pos)))
        found = json_str(line, "addr", addr, sizeof(addr)) &&
                strlen(addr) > strlen(suffix) &&
                !strcmp(addr + strlen(addr) - strlen(suffix), suffix);
    cr_expect(found, "no audit record of %s on port %s", cmd, c->port);
    struct audit_q closes = { .event = "close", .dom = 1 };
    long long most = 0, bytes;
    pos = 0;
    while ((line = audit_next(&a, &closes, &pos)))
        if (json_int(line, bytes_key, &bytes) && bytes > most)
            most = bytes;
    cr_expect(most >= FILE_SIZE, "largest %s in the audit log: %lld",
              bytes_key, most);
    audit_free(&a);
}

static void client_under_shim(int family)
{
    struct http_case c;
    setup(&c, family);
    struct rp_child srv;
    start_server(&c, false, &srv);
    fetch(&c, true);
    rp_signal(&srv, SIGTERM);
    rp_wait(&srv, RUN_MS);
    check_audit(&c, "connect", "bytes_in");
    rp_env_stop(c.e);
}

static void server_under_shim(int family)
{
    struct http_case c;
    setup(&c, family);
    struct rp_child srv;
    start_server(&c, true, &srv);
    fetch(&c, false);
    rp_signal(&srv, SIGTERM);
    rp_assert_exit(rp_wait(&srv, RUN_MS), 128 + SIGTERM,
                   "pvcalls-run of http.server on SIGTERM");
    check_audit(&c, "bind", "bytes_out");
    struct audit a;
    cr_assert_eq(audit_load(&a, c.e->audit), 0);
    cr_expect(audit_count(&a, &(struct audit_q){ .cmd = "listen", .dom = 1 }) >= 1);
    cr_expect(audit_count(&a, &(struct audit_q){ .cmd = "accept", .dom = 1 }) >= 1);
    audit_free(&a);
    rp_env_stop(c.e);
}

Test(run_curl, client_under_shim_ipv4, .fini = rp_cleanup, .timeout = 240)
{
    client_under_shim(AF_INET);
}

Test(run_curl, client_under_shim_ipv6, .fini = rp_cleanup, .timeout = 240)
{
    client_under_shim(AF_INET6);
}

Test(run_curl, server_under_shim_ipv4, .fini = rp_cleanup, .timeout = 240)
{
    server_under_shim(AF_INET);
}

Test(run_curl, server_under_shim_ipv6, .fini = rp_cleanup, .timeout = 240)
{
    server_under_shim(AF_INET6);
}
