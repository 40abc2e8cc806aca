/*
 * The same probe programs (tests/progs) run natively and under the shim
 * (pvcalls-run --isolate) must print identical results: errno values,
 * SIGPIPE, socket names, shutdown and dup semantics (errno_probe), and
 * invalid pointers, lengths, fds and flags (badinput_probe), without a
 * crash; non-blocking accept/connect/recv/send, readiness and
 * SO_RCVTIMEO/SO_SNDTIMEO (nonblock_probe).  The audit log shows that the calls did cross PV Calls.
 */
#include "../lib/audit.h"
#include "../lib/hostnet.h"
#include "../lib/runprog.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUN_MS 60000

/* Run probe (with optional arg) both ways; return the native output. */
static char *compare(struct rp_env *e, const char *probe, const char *arg)
{
    char path[PATH_MAX + 32], native_out[192], shim_out[192];
    snprintf(path, sizeof(path), "%s/%s", e->progs, probe);
    rp_path(e, "native.txt", native_out, sizeof(native_out));
    rp_path(e, "shim.txt", shim_out, sizeof(shim_out));
    const char *prog[] = { path, arg, NULL };
    rp_assert_exit(rp_run(prog, NULL, native_out, RUN_MS), 0, "native probe");
    rp_assert_exit(rp_shim_run(e, NULL, prog, NULL, shim_out, RUN_MS), 0,
                   "probe under the shim");
    char *native = rp_slurp(native_out), *shim = rp_slurp(shim_out);
    cr_assert(strstr(native, "\ndone\n"), "native probe incomplete:\n%s",
              native);
    rp_assert_same_output(native, shim);
    free(shim);
    return native;
}

static void expect_audit(struct rp_env *e, const char *cmd, const char *err)
{
    struct audit a;
    cr_assert_eq(audit_load(&a, e->audit), 0);
    struct audit_q q = { .cmd = cmd, .dom = 1 };
    size_t pos = 0;
    const char *line;
    bool found = false;
    while (!found && (line = audit_next(&a, &q, &pos))) {
        char got[32];
        found = err ? json_str(line, "err", got, sizeof(got)) &&
                          !strcmp(got, err)
                    : true;
    }
    audit_free(&a);
    cr_expect(found, "no audit record of %s%s%s", cmd, err ? " failing with " : "",
              err ? err : "");
}

Test(run_errno, native_vs_shim_ipv4, .fini = rp_cleanup, .timeout = 120)
{
    struct rp_env *e = rp_env_start(true);
    char *native = compare(e, "errno_probe", NULL);
    /* The probe itself saw what Linux does. */
    cr_expect(strstr(native, "connect_closed_port: -1 ECONNREFUSED\n"));
    cr_expect(strstr(native, "write_after_reset: -1 EPIPE\n"
                             "write_after_reset_sigpipe: 1\n"));
    cr_expect(strstr(native, "send_after_reset_nosignal_sigpipe: 0\n"));
    free(native);
    expect_audit(e, "connect", "ECONNREFUSED");
    expect_audit(e, "bind", "EADDRINUSE");
    expect_audit(e, "listen", NULL);
    expect_audit(e, "accept", NULL);
    expect_audit(e, "shutdown", NULL);
    rp_env_stop(e);
}

Test(run_errno, native_vs_shim_ipv6, .fini = rp_cleanup, .timeout = 120)
{
    if (!hn_have_ipv6_loopback())
        cr_skip_test("this host has no IPv6 loopback: skipped");
    struct rp_env *e = rp_env_start(true);
    char *native = compare(e, "errno_probe", "--ipv6");
    cr_expect(strstr(native, "family: AF_INET6\n"));
    free(native);
    expect_audit(e, "connect", "ECONNREFUSED");
    rp_env_stop(e);
}

Test(run_errno, bad_input_native_vs_shim, .fini = rp_cleanup, .timeout = 120)
{
    struct rp_env *e = rp_env_start(true);
    char *native = compare(e, "badinput_probe", NULL);
    cr_expect(strstr(native, "recv_bad_buf: -1 EFAULT\n"));
    free(native);
    expect_audit(e, "connect", NULL);
    rp_env_stop(e);
}

Test(run_errno, nonblocking_native_vs_shim, .fini = rp_cleanup,
     .timeout = 120)
{
    struct rp_env *e = rp_env_start(true);
    char *native = compare(e, "nonblock_probe", NULL);
    /* What Linux itself said, so that the comparison means something. */
    cr_expect(strstr(native, "accept empty nonblocking: -1 EAGAIN\n"));
    cr_expect(strstr(native, "poll listener after connect: 0x1\n"));
    cr_expect(strstr(native, "recv with SO_RCVTIMEO: -1 EAGAIN\n"
                             "recv with SO_RCVTIMEO elapsed: >=200ms\n"));
    cr_expect(strstr(native, "accept with SO_RCVTIMEO: -1 EAGAIN\n"));
    free(native);
    expect_audit(e, "listen", NULL);
    expect_audit(e, "accept", NULL);
    expect_audit(e, "connect", NULL);
    rp_env_stop(e);
}
