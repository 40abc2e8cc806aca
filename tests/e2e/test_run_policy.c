/*
 * The backend's policy (pvcalls-backd --policy, through pvcalls-run
 * --policy) seen by real programs in an isolated namespace: default-deny
 * stops connect() with EACCES until a rule allows the destination; a
 * guest cannot bind a port it was not given; a published port (Docker's
 * -p) is reachable from the host while the guest sees its own port.  The
 * audit log names the deciding rule.
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

#define RUN_MS 60000
#define READY_MS 30000
#define FILE_SIZE (1u << 20)

/* Under the shim: connect (or bind) to 127.0.0.1:PORT, print "ok" or the
 * errno's name. */
static const char probe_py[] =
    "import errno, socket, sys\n"
    "s = socket.socket()\n"
    "try:\n"
    "    (s.connect if sys.argv[1] == 'connect' else s.bind)"
    "(('127.0.0.1', int(sys.argv[2])))\n"
    "    print('ok')\n"
    "except OSError as e:\n"
    "    print(errno.errorcode[e.errno])\n";

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s: %m", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* The probe's one line of output, under the shim with policy. */
static void probe(struct rp_env *e, const char *policy, const char *op,
                  unsigned port, char *out, size_t len)
{
    char port_s[8], out_path[128];
    snprintf(port_s, sizeof(port_s), "%u", port);
    rp_path(e, "probe.out", out_path, sizeof(out_path));
    const char *opts[] = { "--policy", policy, NULL };
    const char *prog[] = { "/usr/bin/python3", "-c", probe_py, op, port_s,
                           NULL };
    int st = rp_shim_run(e, opts, prog, NULL, out_path, RUN_MS);
    rp_assert_exit_output(st, 0, "probe", out_path);
    char *got = rp_slurp(out_path);
    got[strcspn(got, "\n")] = '\0';
    snprintf(out, len, "%s", got);
    free(got);
}

/* The last audit record of cmd for dom 1 whose addr ends with :port. */
static bool audit_last(struct rp_env *e, const char *cmd, unsigned port,
                       char *rec, size_t len)
{
    struct audit a;
    cr_assert_eq(audit_load(&a, e->audit), 0);
    struct audit_q q = { .cmd = cmd, .dom = 1 };
    char suffix[16], addr[96];
    snprintf(suffix, sizeof(suffix), ":%u", port);
    size_t pos = 0;
    const char *line;
    bool found = false;
    while ((line = audit_next(&a, &q, &pos)))
        if (json_str(line, "addr", addr, sizeof(addr)) &&
            strlen(addr) > strlen(suffix) &&
            !strcmp(addr + strlen(addr) - strlen(suffix), suffix)) {
            snprintf(rec, len, "%s", line);
            found = true;
        }
    audit_free(&a);
    return found;
}

static void expect_field(const char *rec, const char *key, const char *want)
{
    char got[200];
    cr_assert(json_str(rec, key, got, sizeof(got)), "no %s in %s", key, rec);
    cr_assert_str_eq(got, want, "%s of %s", key, rec);
}

static void start_http(struct rp_env *e, bool shim, const char *policy,
                       const char *bind, unsigned port, const char *www,
                       struct rp_child *srv, char *line, size_t len)
{
    char port_s[8];
    snprintf(port_s, sizeof(port_s), "%u", port);
    const char *prog[] = { "/usr/bin/python3", "-u", "-m", "http.server",
                           "--bind", bind, "--directory", www, port_s,
                           NULL };
    const char *opts[] = { "--policy", policy, NULL };
    const char *argv[RP_MAX_ARGS];
    if (shim)
        rp_shim_argv(e, true, opts, prog, argv);
    rp_spawn(srv, shim ? argv : prog, NULL, NULL, NULL);
    cr_assert(rp_read_line(srv, line, len, READY_MS) &&
                  strstr(line, "Serving HTTP"),
              "http.server did not start: \"%s\"", line);
}

/* curl deadlocks in setlocale() at start-up when libasan is preloaded
 * into it (test_run_curl.c), so a sanitizer build fetches with python3's
 * urllib; each exits with its own status when it cannot connect. */
#ifdef __SANITIZE_ADDRESS__
#define ASAN_SHIM true
#define FETCH_REFUSED 1
#else
#define ASAN_SHIM false
#define FETCH_REFUSED 7
#endif

/* Fetch url into path under the shim with policy: the exit status. */
static int fetch(struct rp_env *e, const char *policy, const char *url,
                 const char *path)
{
    const char *curl[] = { "curl", "-sS", "-o", path, url, NULL };
    const char *urllib[] = {
        "/usr/bin/python3", "-c",
        "import sys, urllib.request; "
        "urllib.request.urlretrieve(sys.argv[1], sys.argv[2])",
        url, path, NULL,
    };
    const char *opts[] = { "--policy", policy, NULL };
    return rp_shim_run(e, opts, ASAN_SHIM ? urllib : curl, NULL, NULL,
                       RUN_MS);
}

static void make_www(struct rp_env *e, char *www, size_t www_len,
                     char *file, size_t file_len)
{
    rp_path(e, "www", www, www_len);
    cr_assert_eq(mkdir(www, 0755), 0, "mkdir: %m");
    snprintf(file, file_len, "%s/blob", www);
    rp_make_file(file, FILE_SIZE, 7);
}

static void same_file(const char *a, const char *b)
{
    char want[65], got[65];
    rp_sha256(a, want);
    rp_sha256(b, got);
    cr_assert_str_eq(got, want, "sha256 of %s", b);
}

Test(policy, default_deny_until_a_rule_allows, .fini = rp_cleanup,
     .timeout = 180)
{
    struct rp_env *e = rp_env_start(true);
    char www[160], file[192], got[128], url[96], deny[128], allow[128];
    make_www(e, www, sizeof(www), file, sizeof(file));
    unsigned port = hn_closed_port(AF_INET);
    struct rp_child srv;
    char line[256];
    start_http(e, false, NULL, "127.0.0.1", port, www, &srv, line,
               sizeof(line));

    rp_path(e, "deny.ini", deny, sizeof(deny));
    write_file(deny, "[defaults]\nmode = deny\n");
    char text[256];
    probe(e, deny, "connect", port, text, sizeof(text));
    cr_assert_str_eq(text, "EACCES", "connect under default-deny");
    char rec[1024];
    cr_assert(audit_last(e, "connect", port, rec, sizeof(rec)));
    expect_field(rec, "err", "EACCES");
    expect_field(rec, "rule", "[defaults] no connect rule matches");
    /* A real program fails the way it fails on a firewalled host. */
    rp_path(e, "got", got, sizeof(got));
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/blob", port);
    rp_assert_exit(fetch(e, deny, url, got), FETCH_REFUSED,
                   "fetch under default-deny (cannot connect)");

    rp_path(e, "allow.ini", allow, sizeof(allow));
    snprintf(text, sizeof(text),
             "[defaults]\nmode = deny\n[domain 1]\nconnect = 127.0.0.1:%u\n",
             port);
    write_file(allow, text);
    rp_assert_exit(fetch(e, allow, url, got), 0,
                   "fetch with a rule for the server");
    same_file(file, got);
    cr_assert(audit_last(e, "connect", port, rec, sizeof(rec)));
    long long ret = -1;
    cr_assert(json_int(rec, "ret", &ret) && ret == 0, "%s", rec);
    /* Any other destination stays denied. */
    probe(e, allow, "connect", port + 1 == 65536 ? 1 : port + 1, text,
          sizeof(text));
    cr_assert_str_eq(text, "EACCES");
    rp_signal(&srv, SIGTERM);
    rp_wait(&srv, 10000);
    rp_env_stop(e);
}

Test(policy, binds_only_what_was_given_and_publishes, .fini = rp_cleanup,
     .timeout = 180)
{
    struct rp_env *e = rp_env_start(true);
    char www[160], file[192], got[128], url[96], pol[128], text[256];
    make_www(e, www, sizeof(www), file, sizeof(file));
    unsigned host_port = hn_closed_port(AF_INET);
    rp_path(e, "publish.ini", pol, sizeof(pol));
    snprintf(text, sizeof(text),
             "[defaults]\nmode = deny\n"
             "[domain 1]\npublish = 127.0.0.1:%u:8080\n", host_port);
    write_file(pol, text);

    /* A port it was not given: EACCES, as for a privileged port. */
    probe(e, pol, "bind", 8081, text, sizeof(text));
    cr_assert_str_eq(text, "EACCES", "bind of a port not given");
    char rec[1024];
    cr_assert(audit_last(e, "bind", 8081, rec, sizeof(rec)));
    expect_field(rec, "rule", "[domain 1] no bind or publish rule matches");

    /* Its port 8080 is dom0's 127.0.0.1:host_port; the server sees 8080. */
    struct rp_child srv;
    char line[256];
    start_http(e, true, pol, "0.0.0.0", 8080, www, &srv, line, sizeof(line));
    cr_assert(strstr(line, "port 8080"), "the guest's view: \"%s\"", line);
    rp_path(e, "got", got, sizeof(got));
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/blob", host_port);
    const char *curl[] = { "curl", "-sS", "-o", got, url, NULL };
    rp_assert_exit(rp_run(curl, NULL, NULL, RUN_MS), 0,
                   "native curl to the published port");
    same_file(file, got);
    cr_assert(audit_last(e, "bind", 8080, rec, sizeof(rec)));
    snprintf(text, sizeof(text), "dom0 binds 127.0.0.1:%u", host_port);
    expect_field(rec, "detail", text);
    snprintf(text, sizeof(text), "[domain 1] publish = 127.0.0.1:%u:8080",
             host_port);
    expect_field(rec, "rule", text);
    rp_signal(&srv, SIGTERM);
    rp_wait(&srv, 10000);
    rp_env_stop(e);
}
