/*
 * Sockets across exec under the shim (issue 7), through pvcalls-run
 * --isolate (the program has no network of its own: whatever it moves
 * crossed the rings), with the backend's audit log as the witness of
 * what reached dom0.  tests/progs/exec_inherit plays each case; a FIFO
 * in the test's directory holds it at the points where the test looks.
 *
 *  - a socket kept across execv: the new image reads bytes that arrived
 *    across the exec and echoes 256 KiB; RELEASE only once it closes it;
 *  - the same through execve with LD_PRELOAD and PVC_* stripped from the
 *    environment (the shim puts them back, unless PVC_NO_INHERIT=1), and
 *    through posix_spawn with the parent closing its copy at once;
 *  - a SOCK_CLOEXEC socket: gone after exec and released while the new
 *    image still runs;
 *  - a non-blocking connect still in progress at exec settles in the new
 *    image;
 *  - a listener inherited by an inetd-style handler accepts;
 *  - exec of a statically linked program holding a socket: one line on
 *    stderr names the inherited fd (not the close-on-exec one).
 */
#include "../lib/audit.h"
#include "../lib/hostnet.h"
#include "../lib/runprog.h"

#include <criterion/criterion.h>
#include <elf.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define RUN_MS 60000
#define AUDIT_MS 5000

struct ex {
    struct rp_env *e;
    struct hn_server *srv;
    char fifo[192];
    struct rp_child run;
};

/* pvcalls-run --isolate -- exec_inherit ROLE ARGS... (stdout a pipe). */
static void ex_start(struct ex *x, const char *const args[])
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/exec_inherit", x->e->progs);
    const char *prog[8] = { path };
    for (int i = 0; args[i] && i < 6; i++)
        prog[i + 1] = args[i];
    const char *argv[RP_MAX_ARGS];
    rp_shim_argv(x->e, true, NULL, prog, argv);
    rp_spawn(&x->run, argv, NULL, NULL, NULL);
}

static void ex_init(struct ex *x)
{
    x->e = rp_env_start(true);
    x->srv = hn_server_start(&(struct hn_server_cfg){ .mode = HN_ECHO });
    rp_path(x->e, "go", x->fifo, sizeof(x->fifo));
    cr_assert_eq(mkfifo(x->fifo, 0600), 0, "mkfifo: %m");
}

static void ex_fini(struct ex *x)
{
    hn_server_stop(x->srv);
    rp_env_stop(x->e);
}

static void expect_line(struct ex *x, const char *want)
{
    char line[128];
    cr_assert(rp_read_line(&x->run, line, sizeof(line), RUN_MS),
              "no \"%s\" from exec_inherit (got \"%s\")", want, line);
    cr_assert_str_eq(line, want);
}

/* Let the program go on past its eu_wait_go (it opens the FIFO for
 * reading; this open waits for that). */
static void go(struct ex *x)
{
    int fd = open(x->fifo, O_WRONLY | O_CLOEXEC);
    cr_assert(fd >= 0, "open %s: %m", x->fifo);
    close(fd);
}

static size_t count(struct ex *x, const char *cmd)
{
    struct audit a;
    cr_assert_eq(audit_load(&a, x->e->audit), 0);
    struct audit_q q = { .cmd = cmd, .dom = 1 };
    size_t n = audit_count(&a, &q);
    audit_free(&a);
    return n;
}

static void wait_count(struct ex *x, const char *cmd, size_t n)
{
    struct audit_q q = { .cmd = cmd, .dom = 1 };
    cr_assert_eq(audit_wait(x->e->audit, &q, n, AUDIT_MS), n,
                 "%s records: want %zu", cmd, n);
}

static void port_arg(struct ex *x, char port[8])
{
    snprintf(port, 8, "%u", hn_server_port(x->srv));
}

/* keep / noenv / spawn: the kept socket works in the new program and
 * lives exactly as long as that program holds it. */
static void kept_socket(const char *role)
{
    struct ex x;
    ex_init(&x);
    char port[8];
    port_arg(&x, port);
    ex_start(&x, (const char *[]){ role, port, x.fifo, NULL });
    expect_line(&x, "holding");
    wait_count(&x, "connect", 1);
    cr_assert_eq(count(&x, "release"), 0,
                 "released while the exec'd program holds it");
    go(&x);
    expect_line(&x, "closed");
    wait_count(&x, "release", 1);
    go(&x);
    rp_assert_exit(rp_wait(&x.run, RUN_MS), 0, "exec_inherit");
    cr_assert_eq(count(&x, "connect"), 1);
    ex_fini(&x);
}

TestSuite(run_exec, .fini = rp_cleanup, .timeout = 120);

Test(run_exec, socket_kept_across_execv)
{
    kept_socket("keep");
}

Test(run_exec, environment_without_the_shim)
{
    kept_socket("noenv");
}

Test(run_exec, posix_spawn_then_parent_closes)
{
    kept_socket("spawn");
}

/* PVC_NO_INHERIT=1: an environment without the shim stays so. */
Test(run_exec, opt_out_of_inheritance)
{
    struct ex x;
    ex_init(&x);
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/exec_inherit", x.e->progs);
    const char *prog[] = { path, "optout", "-", "-", NULL };
    const char *argv[RP_MAX_ARGS];
    rp_shim_argv(x.e, true, NULL, prog, argv);
    rp_spawn(&x.run, argv, (const char *[]){ "PVC_NO_INHERIT=1", NULL },
             NULL, NULL);
    expect_line(&x, "no shim");
    rp_assert_exit(rp_wait(&x.run, RUN_MS), 0, "exec_inherit");
    ex_fini(&x);
}

Test(run_exec, cloexec_socket_released_at_exec)
{
    struct ex x;
    ex_init(&x);
    char port[8];
    port_arg(&x, port);
    ex_start(&x, (const char *[]){ "cloexec", port, x.fifo, NULL });
    expect_line(&x, "gone");
    /* The new image runs on (blocked on the FIFO) holding its second
     * socket: exactly the first one is released. */
    wait_count(&x, "release", 1);
    cr_assert_eq(count(&x, "connect"), 2);
    cr_assert_eq(count(&x, "release"), 1);
    go(&x);
    rp_assert_exit(rp_wait(&x.run, RUN_MS), 0, "exec_inherit");
    wait_count(&x, "release", 2);
    ex_fini(&x);
}

/* A loopback listener whose queue is full (backlog 0 holds the filler):
 * a connect to it stays in SYN_SENT until the filler is accepted. */
struct full_listener {
    int lfd, filler;
    uint16_t port;
};

static void full_listener_open(struct full_listener *fl)
{
    struct sockaddr_storage a;
    socklen_t len = hn_loopback(AF_INET, 0, &a);
    fl->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fl->lfd >= 0);
    cr_assert_eq(bind(fl->lfd, (struct sockaddr *)&a, len), 0);
    cr_assert_eq(listen(fl->lfd, 0), 0);
    cr_assert_eq(getsockname(fl->lfd, (struct sockaddr *)&a, &len), 0);
    fl->port = hn_port_of(&a);
    fl->filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(connect(fl->filler, (struct sockaddr *)&a, len), 0,
                 "filling the queue: %m");
}

/* Accept one connection within timeout_ms. */
static int accept_within(int lfd, int timeout_ms)
{
    struct pollfd p = { .fd = lfd, .events = POLLIN };
    cr_assert_eq(poll(&p, 1, timeout_ms), 1, "nothing to accept");
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert(fd >= 0, "accept: %m");
    return fd;
}

Test(run_exec, connect_in_progress_settles_after_exec)
{
    struct ex x;
    ex_init(&x);
    struct full_listener fl;
    full_listener_open(&fl);
    char port[8];
    snprintf(port, sizeof(port), "%u", fl.port);
    ex_start(&x, (const char *[]){ "connecting", port, "-", NULL });
    expect_line(&x, "connecting");
    expect_line(&x, "waiting"); /* adopted while still connecting */
    /* Room in the queue: the backend's next SYN gets through. */
    close(accept_within(fl.lfd, RUN_MS));
    int fd = accept_within(fl.lfd, 20000);
    char buf[2];
    cr_assert_eq(recv(fd, buf, 2, MSG_WAITALL), 2);
    cr_assert_eq(memcmp(buf, "hi", 2), 0);
    expect_line(&x, "connected");
    rp_assert_exit(rp_wait(&x.run, RUN_MS), 0, "exec_inherit");
    close(fd);
    close(fl.filler);
    close(fl.lfd);
    ex_fini(&x);
}

Test(run_exec, inherited_listener_accepts)
{
    struct ex x;
    ex_init(&x);
    ex_start(&x, (const char *[]){ "listen", "-", "-", NULL });
    char line[64];
    cr_assert(rp_read_line(&x.run, line, sizeof(line), RUN_MS) &&
                  !strncmp(line, "port ", 5),
              "no port from exec_inherit: \"%s\"", line);
    struct sockaddr_storage a;
    socklen_t len = hn_loopback(AF_INET, (uint16_t)atoi(line + 5), &a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, len), 0,
                 "connect to the guest's listener: %m");
    cr_assert_eq(send(fd, "ping\n", 5, 0), 5);
    char buf[6] = { 0 };
    cr_assert_eq(recv(fd, buf, 5, MSG_WAITALL), 5);
    cr_assert_str_eq(buf, "ping\n");
    close(fd);
    rp_assert_exit(rp_wait(&x.run, RUN_MS), 0, "exec_inherit");
    ex_fini(&x);
}

/* Is path an ELF program without an interpreter? */
static bool statically_linked(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    Elf64_Ehdr eh;
    bool ok = fread(&eh, sizeof(eh), 1, f) == 1 &&
              !memcmp(eh.e_ident, ELFMAG, SELFMAG) &&
              eh.e_ident[EI_CLASS] == ELFCLASS64;
    for (unsigned i = 0; ok && i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        ok = fseek(f, (long)(eh.e_phoff + (uint64_t)i * eh.e_phentsize),
                   SEEK_SET) == 0 &&
             fread(&ph, sizeof(ph), 1, f) == 1 && ph.p_type != PT_INTERP;
    }
    fclose(f);
    return ok;
}

Test(run_exec, static_target_named_on_stderr)
{
    if (!statically_linked("/bin/busybox"))
        cr_skip_test("no statically linked /bin/busybox (busybox-static): "
                     "skipped");
    struct ex x;
    ex_init(&x);
    char port[8], err[192], line[64];
    port_arg(&x, port);
    rp_path(x.e, "stderr", err, sizeof(err));
    ex_start(&x, (const char *[]){ "static", port, err, NULL });
    int kept, gone;
    cr_assert(rp_read_line(&x.run, line, sizeof(line), RUN_MS) &&
                  sscanf(line, "fds %d %d", &kept, &gone) == 2,
              "no fds from exec_inherit: \"%s\"", line);
    rp_assert_exit(rp_wait(&x.run, RUN_MS), 0, "busybox true");
    char *msg = rp_slurp(err);
    char want[128];
    snprintf(want, sizeof(want),
             "the PV Calls socket on fd %d will not work in it", kept);
    cr_assert(strstr(msg, "/bin/busybox is statically linked") &&
                  strstr(msg, want),
              "stderr of the exec: \"%s\"", msg);
    char *nl = strchr(msg, '\n');
    cr_assert(nl && !nl[1], "more than one line: \"%s\"", msg);
    free(msg);
    /* busybox exited: both sockets are gone. */
    wait_count(&x, "release", 2);
    ex_fini(&x);
}
