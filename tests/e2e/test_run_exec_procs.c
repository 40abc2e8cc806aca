/*
 * Managed sockets that move between processes or outlive what a program
 * does to its fds (issue 7), under pvcalls-run --isolate with the audit
 * log checked:
 *
 *  - SCM_RIGHTS: A connects, passes the socket to B (which never had it)
 *    over a Unix socket and closes its copy; B moves 1 MiB, verified;
 *  - close_range(A + 1, ~0U), closefrom(A + 1) and a close() loop over
 *    /proc/self/fd: the shim's own fds survive (socket A and its epoll
 *    keep working, a new socket connects), socket B is released;
 *  - daemon(): fork + setsid + stdio to /dev/null, sockets keep working;
 *  - setuid to nobody with a socket open (as nginx workers do).
 */
#include "../lib/audit.h"
#include "../lib/hostnet.h"
#include "../lib/runprog.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RUN_MS 60000
#define AUDIT_MS 5000

struct px {
    struct rp_env *e;
    struct hn_server *srv;
    char port[8];
    char prog[PATH_MAX + 32];
};

static void px_init(struct px *x, const char *prog)
{
    x->e = rp_env_start(true);
    x->srv = hn_server_start(&(struct hn_server_cfg){ .mode = HN_ECHO });
    snprintf(x->port, sizeof(x->port), "%u", hn_server_port(x->srv));
    snprintf(x->prog, sizeof(x->prog), "%s/%s", x->e->progs, prog);
}

/* Every socket the program opened was released, and the backend saw
 * `connects` connections. */
static void px_fini(struct px *x, size_t connects)
{
    struct audit_q c = { .cmd = "connect", .dom = 1 };
    struct audit_q r = { .cmd = "release", .dom = 1 };
    cr_assert_eq(audit_wait(x->e->audit, &c, connects, AUDIT_MS), connects);
    cr_assert_eq(audit_wait(x->e->audit, &r, connects, AUDIT_MS), connects,
                 "not every socket was released");
    cr_assert(hn_server_wait_done(x->srv, (unsigned)connects, RUN_MS));
    hn_server_stop(x->srv);
    rp_env_stop(x->e);
}

TestSuite(run_exec_procs, .fini = rp_cleanup, .timeout = 120);

Test(run_exec_procs, scm_rights_to_another_process)
{
    struct px x;
    px_init(&x, "exec_scm");
    char out[192];
    rp_path(x.e, "out", out, sizeof(out));
    const char *prog[] = { x.prog, x.port, x.e->dir, NULL };
    rp_assert_exit_output(rp_shim_run(x.e, NULL, prog, NULL, out, RUN_MS),
                          0, "exec_scm", out);
    char *said = rp_slurp(out);
    cr_assert_str_eq(said, "passed\n");
    free(said);
    /* One connection, 1 MiB each way, all of it through B. */
    struct hn_conn_result res;
    cr_assert(hn_server_wait_done(x.srv, 1, RUN_MS));
    cr_assert(hn_server_result(x.srv, 0, &res));
    cr_assert_eq(res.bytes_in, 1u << 20);
    cr_assert_eq(res.bytes_out, 1u << 20);
    px_fini(&x, 1);
}

/* exec_closeall HOW: "closed R" once done (R: whether some close()
 * answered EBADF); B released while the program still runs. */
static void close_everything(const char *how, const char *want)
{
    struct px x;
    px_init(&x, "exec_closeall");
    char fifo[192];
    rp_path(x.e, "go", fifo, sizeof(fifo));
    cr_assert_eq(mkfifo(fifo, 0600), 0, "mkfifo: %m");
    const char *prog[] = { x.prog, how, x.port, fifo, NULL };
    const char *argv[RP_MAX_ARGS];
    rp_shim_argv(x.e, true, NULL, prog, argv);
    struct rp_child run;
    rp_spawn(&run, argv, NULL, NULL, NULL);
    char line[64];
    cr_assert(rp_read_line(&run, line, sizeof(line), RUN_MS),
              "exec_closeall said nothing (\"%s\")", line);
    cr_assert_str_eq(line, want);
    /* A and C are open: only B, closed by the sweep, is released. */
    struct audit_q r = { .cmd = "release", .dom = 1 };
    cr_assert_eq(audit_wait(x.e->audit, &r, 1, AUDIT_MS), 1);
    struct audit a;
    cr_assert_eq(audit_load(&a, x.e->audit), 0);
    cr_assert_eq(audit_count(&a, &r), 1);
    audit_free(&a);
    int fd = open(fifo, O_WRONLY | O_CLOEXEC);
    cr_assert(fd >= 0, "open %s: %m", fifo);
    close(fd);
    rp_assert_exit(rp_wait(&run, RUN_MS), 0, "exec_closeall");
    px_fini(&x, 3);
}

Test(run_exec_procs, close_range_spares_the_shim)
{
    close_everything("close_range", "closed 0");
}

Test(run_exec_procs, closefrom_spares_the_shim)
{
    close_everything("closefrom", "closed 0");
}

/* The listing shows the shim's fds too; closing them says EBADF, as for
 * an fd the program never had. */
Test(run_exec_procs, proc_fd_loop_spares_the_shim)
{
    close_everything("proc", "closed 1");
}

static void run_mode(const char *mode, const char *const opts[],
                     size_t connects)
{
    struct px x;
    px_init(&x, "exec_daemonize");
    char out[192];
    rp_path(x.e, "out", out, sizeof(out));
    const char *prog[] = { x.prog, mode, x.port, NULL };
    rp_assert_exit_output(rp_shim_run(x.e, opts, prog, NULL, out, RUN_MS),
                          0, mode, out);
    char *said = rp_slurp(out);
    cr_assert_str_eq(said, "ok\n");
    free(said);
    px_fini(&x, connects);
}

Test(run_exec_procs, daemon_keeps_sockets)
{
    run_mode("daemon", NULL, 2);
}

Test(run_exec_procs, setuid_after_sockets_are_open)
{
    if (geteuid() != 0)
        cr_skip_test("setuid needs root: skipped");
    run_mode("setuid", NULL, 3);
}
