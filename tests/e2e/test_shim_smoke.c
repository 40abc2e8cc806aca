/*
 * libpvcalls.so end to end, with a plain program that knows nothing of
 * PV Calls (tests/progs/shim_smoke): the simulated platform, the backend,
 * pvcalls-frontd, and the program run with LD_PRELOAD against a native
 * echo server on loopback.  The backend's audit log must show its
 * connect and, after it closed, the release.  tests/progs/shim_signals
 * checks EINTR/SA_RESTART and SIGPIPE the same way, tests/progs/shim_fork
 * a pre-fork server.
 */
#include <criterion/criterion.h>

#include "../lib/harness.h"
#include "../lib/harness_frontd.h"
#include "../lib/hostnet.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#define RUN_TIMEOUT_MS 20000
#define AUDIT_TIMEOUT_MS 5000

/* In a sanitizer build the shim is ASan-instrumented too, and ASan's
 * runtime must come first in the process: preload the runtime this test
 * binary itself runs with, before the shim. */
static int find_libasan(struct dl_phdr_info *info, size_t size, void *out)
{
    (void)size;
    if (info->dlpi_name && strstr(info->dlpi_name, "libasan.so")) {
        snprintf(out, PATH_MAX, "%s", info->dlpi_name);
        return 1;
    }
    return 0;
}

static void preload_var(const struct harness *h, char *buf, size_t len)
{
    char asan[PATH_MAX] = "";
    dl_iterate_phdr(find_libasan, asan);
    snprintf(buf, len, "LD_PRELOAD=%s%s%s/../lib/libpvcalls.so", asan,
             asan[0] ? " " : "", h->bindir);
}

/* Run progs/NAME under the shim with args; returns its wait status. */
static int run_shim_prog(const struct harness *h, const struct h_frontd *fd,
                         const char *name, char *const args[])
{
    char prog[PATH_MAX + 64], preload[2 * PATH_MAX + 64], sock[256];
    snprintf(prog, sizeof(prog), "%s/../progs/%s", h->bindir, name);
    preload_var(h, preload, sizeof(preload));
    snprintf(sock, sizeof(sock), "PVC_FRONTD_SOCK=%s", fd->sock);
    char *argv[16] = { prog };
    size_t n = 1;
    for (size_t i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char *env[] = { preload, sock, (char *)"PVC_SHIM_LOG=1",
                    (char *)"ASAN_OPTIONS=verify_asan_link_order=0:"
                            "detect_leaks=1",
                    NULL };
    struct proc p;
    int err = proc_spawn(&p, argv, env, false);
    cr_assert_eq(err, 0, "spawn %s: %s", prog, strerror(-err));
    int status = proc_wait_exit(&p, RUN_TIMEOUT_MS);
    if (status < 0)
        proc_kill(&p);
    return status;
}

static void smoke(int family)
{
    if (family == AF_INET6 && !hn_have_ipv6_loopback())
        h_skip("no IPv6 loopback on this host");
    struct harness *h = h_start(NULL);
    struct h_frontd fd;
    h_frontd_start(h, 1, NULL, &fd);
    struct hn_server *srv = hn_server_start(
        &(struct hn_server_cfg){ .mode = HN_ECHO, .family = family });
    char port[16];
    snprintf(port, sizeof(port), "%u", hn_server_port(srv));
    char *args[] = { family == AF_INET6 ? (char *)"::1"
                                        : (char *)"127.0.0.1",
                     port, (char *)"300000", NULL };

    int status = run_shim_prog(h, &fd, "shim_smoke", args);
    char why[64];
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "shim_smoke: %s", proc_status_str(status, why, sizeof(why)));

    /* Its traffic crossed the rings: the backend connected for domain 1
     * and released the socket once the program closed it. */
    struct audit_q conn = { .cmd = "connect", .dom = 1 };
    cr_assert_eq(h_audit_wait(h, &conn, 1, AUDIT_TIMEOUT_MS), 1);
    struct audit_q rel = { .cmd = "release", .dom = 1 };
    cr_assert_eq(h_audit_wait(h, &rel, 1, AUDIT_TIMEOUT_MS), 1);
    cr_assert(hn_server_wait_done(srv, 1, AUDIT_TIMEOUT_MS));
    struct hn_conn_result r;
    cr_assert(hn_server_result(srv, 0, &r));
    /* 300000 bytes of echo plus the 4-byte ping. */
    cr_expect_eq(r.bytes_in, 300004);

    hn_server_stop(srv);
    cr_assert(h_frontd_alive(&fd), "pvcalls-frontd died");
    h_frontd_stop(&fd);
    h_stop(h);
}

TestSuite(shim_smoke, .fini = h_cleanup, .timeout = 60);

Test(shim_smoke, ipv4_echo_through_the_rings)
{
    smoke(AF_INET);
}

Test(shim_smoke, ipv6_echo_through_the_rings)
{
    smoke(AF_INET6);
}

/* Blocking recv interrupted by a handler without SA_RESTART (EINTR),
 * restarted with one, sigaction's view, SIGPIPE and MSG_NOSIGNAL. */
Test(shim_smoke, signals_and_sigpipe_as_linux)
{
    struct harness *h = h_start(NULL);
    struct h_frontd fd;
    h_frontd_start(h, 1, NULL, &fd);
    struct hn_server *srv =
        hn_server_start(&(struct hn_server_cfg){ .mode = HN_ECHO });
    char port[16];
    snprintf(port, sizeof(port), "%u", hn_server_port(srv));
    char *args[] = { (char *)"127.0.0.1", port, NULL };

    int status = run_shim_prog(h, &fd, "shim_signals", args);
    char why[64];
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "shim_signals: %s", proc_status_str(status, why, sizeof(why)));
    struct audit_q conn = { .cmd = "connect", .dom = 1 };
    cr_assert_eq(h_audit_wait(h, &conn, 1, AUDIT_TIMEOUT_MS), 1);

    hn_server_stop(srv);
    cr_assert(h_frontd_alive(&fd), "pvcalls-frontd died");
    h_frontd_stop(&fd);
    h_stop(h);
}

/* stdio on an fdopen()ed socket is carried (glibc's FILE calls internal
 * read/write that no preload sees, so the shim builds the FILE itself),
 * and epoll_ctl takes a managed socket as it takes any socket. */
Test(shim_smoke, stdio_carried_and_epoll_accepted)
{
    struct harness *h = h_start(NULL);
    struct h_frontd fd;
    h_frontd_start(h, 1, NULL, &fd);
    struct hn_server *srv =
        hn_server_start(&(struct hn_server_cfg){ .mode = HN_ECHO });
    char port[16];
    snprintf(port, sizeof(port), "%u", hn_server_port(srv));
    char *args[] = { (char *)"127.0.0.1", port, (char *)"ok", NULL };

    int status = run_shim_prog(h, &fd, "shim_stdio", args);
    char why[64];
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "shim_stdio: %s", proc_status_str(status, why, sizeof(why)));
    struct audit_q conn = { .cmd = "connect", .dom = 1 };
    cr_assert_eq(h_audit_wait(h, &conn, 1, AUDIT_TIMEOUT_MS), 1);
    struct audit_q rel = { .cmd = "release", .dom = 1 };
    cr_assert_eq(h_audit_wait(h, &rel, 1, AUDIT_TIMEOUT_MS), 1);

    hn_server_stop(srv);
    cr_assert(h_frontd_alive(&fd), "pvcalls-frontd died");
    h_frontd_stop(&fd);
    h_stop(h);
}

/* A pre-fork server under the shim: listen in the parent, accept in a
 * forked worker after the parent closed its copy of the listener, the
 * parent as the client: both ends cross PV Calls. */
Test(shim_smoke, prefork_listen_accept_across_fork)
{
    struct harness *h = h_start(NULL);
    struct h_frontd fd;
    h_frontd_start(h, 1, NULL, &fd);
    char *args[] = { NULL };

    int status = run_shim_prog(h, &fd, "shim_fork", args);
    char why[64];
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "shim_fork: %s", proc_status_str(status, why, sizeof(why)));
    struct audit_q listen_q = { .cmd = "listen", .dom = 1 };
    cr_assert_eq(h_audit_wait(h, &listen_q, 1, AUDIT_TIMEOUT_MS), 1);
    struct audit_q accept_q = { .cmd = "accept", .dom = 1 };
    cr_assert_geq(h_audit_wait(h, &accept_q, 1, AUDIT_TIMEOUT_MS), 1);
    /* Listener, client and accepted socket: all released in the end. */
    struct audit_q rel = { .cmd = "release", .dom = 1 };
    cr_assert_eq(h_audit_wait(h, &rel, 3, AUDIT_TIMEOUT_MS), 3);

    cr_assert(h_frontd_alive(&fd), "pvcalls-frontd died");
    h_frontd_stop(&fd);
    h_stop(h);
}
