/*
 * A shell with an inherited socket (issue 7): bash under the shim opens
 * `exec 3<>/dev/tcp/127.0.0.1/PORT` (its own socket + connect + dup2 to
 * fd 3), then programs it starts use fd 3: a pipeline of cat (writing
 * 1 MiB into the socket) and head (reading the echo back) running at
 * once, a python3 one-liner writing and reading through fd 3, and bash's
 * own builtins (printf >&3, read -u 3).  A native echo server checks
 * every byte it received (count and FNV-1a of the stream); the echo is
 * compared on the guest side too.  The audit log has the connect and the
 * close record with the bytes.
 */
#include "../lib/audit.h"
#include "../lib/hostnet.h"
#include "../lib/procstat.h"
#include "../lib/runprog.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUN_MS 30000
#define PIPE_BYTES (1u << 20)
#define PY_BYTES (200u << 10)

struct bash_case {
    struct rp_env *e;
    struct hn_server *srv;
    char port[8], in[192], out[192], len[16];
};

static void setup(struct bash_case *c, size_t bytes)
{
    ps_adopt_orphans();
    c->e = rp_env_start(true);
    c->srv = hn_server_start(&(struct hn_server_cfg){ .mode = HN_ECHO });
    snprintf(c->port, sizeof(c->port), "%u", hn_server_port(c->srv));
    snprintf(c->len, sizeof(c->len), "%zu", bytes);
    rp_path(c->e, "in", c->in, sizeof(c->in));
    rp_path(c->e, "out", c->out, sizeof(c->out));
    if (bytes)
        rp_make_file(c->in, bytes, 77);
}

/* bash -c SCRIPT bash PORT IN LEN under the shim; its stdout into OUT. */
static void run_bash(struct bash_case *c, const char *script)
{
    const char *prog[] = { "bash", "-c", script, "bash", c->port, c->in,
                           c->len, NULL };
    rp_assert_exit_output(rp_shim_run(c->e, NULL, prog, NULL, c->out, RUN_MS),
                          0, "bash under the shim", c->out);
}

/* The server got exactly `bytes` bytes of stream `seed` (or, seed 0,
 * with FNV-1a `hash`) on one connection, which then ended cleanly. */
static void check_server(struct bash_case *c, uint64_t bytes, uint64_t hash)
{
    cr_assert(hn_server_wait_done(c->srv, 1, RUN_MS), "no connection ended");
    struct hn_conn_result r;
    cr_assert(hn_server_result(c->srv, 0, &r));
    cr_expect_eq(r.err, 0, "server: %s", strerror(r.err));
    cr_expect_eq(r.bytes_in, bytes, "server got %llu bytes",
                 (unsigned long long)r.bytes_in);
    cr_expect_eq(r.hash_in, hash, "server got other bytes");
}

static void check_audit_and_stop(struct bash_case *c, long long bytes)
{
    cr_expect(audit_wait_closed(c->e->audit, 1, RUN_MS),
              "sockets left open in the audit log");
    struct audit a;
    cr_assert_eq(audit_load(&a, c->e->audit), 0);
    struct audit_q connect = { .cmd = "connect", .dom = 1 };
    struct audit_q closes = { .event = "close", .dom = 1 };
    cr_expect_eq(audit_count_port(&a, &connect,
                                  hn_server_port(c->srv), true), 1);
    cr_expect_eq(audit_count_min(&a, &closes, "bytes_out", bytes), 1);
    audit_free(&a);
    hn_server_stop(c->srv);
    rp_env_stop(c->e);
}

/* cat writes into fd 3 while head reads the echo from it: two children
 * of bash holding the socket at once, then bash closes its copy. */
Test(run_bash, pipeline_children_use_fd3, .fini = ps_test_fini,
     .timeout = 90)
{
    struct bash_case c;
    setup(&c, PIPE_BYTES);
    run_bash(&c, "exec 3<>/dev/tcp/127.0.0.1/$1 || exit 3\n"
                 "head -c $3 <&3 & reader=$!\n"
                 "cat \"$2\" >&3 || exit 4\n"
                 "wait $reader || exit 5\n"
                 "exec 3>&-\n");
    char want[65], got[65];
    rp_sha256(c.in, want);
    rp_sha256(c.out, got);
    cr_expect_str_eq(got, want, "the echo head read back");
    check_server(&c, PIPE_BYTES, hn_stream_hash(77, PIPE_BYTES));
    check_audit_and_stop(&c, PIPE_BYTES);
}

/* A python3 child writes the file through fd 3 and reads the echo. */
Test(run_bash, python_child_uses_fd3, .fini = ps_test_fini, .timeout = 90)
{
    struct bash_case c;
    setup(&c, PY_BYTES);
    run_bash(&c, "exec 3<>/dev/tcp/127.0.0.1/$1 || exit 3\n"
                 "/usr/bin/python3 -c '\n"
                 "import os, sys\n"
                 "data = open(sys.argv[1], \"rb\").read()\n"
                 "with os.fdopen(3, \"r+b\", buffering=0) as s:\n"
                 "    got = b\"\"\n"
                 "    sent = 0\n"
                 "    while len(got) < len(data):\n"
                 "        if sent < len(data):\n"
                 "            sent += s.write(data[sent:sent + 16384])\n"
                 "        while len(got) < sent:\n"
                 "            chunk = s.read(sent - len(got))\n"
                 "            if not chunk:\n"
                 "                sys.exit(\"EOF after %d bytes\" % len(got))\n"
                 "            got += chunk\n"
                 "print(\"python\", \"ok\" if got == data else \"differs\")\n"
                 "' \"$2\" || exit 4\n"
                 "exec 3>&-\n");
    char *out = rp_slurp(c.out);
    cr_expect_str_eq(out, "python ok\n");
    free(out);
    check_server(&c, PY_BYTES, hn_stream_hash(77, PY_BYTES));
    check_audit_and_stop(&c, PY_BYTES);
}
