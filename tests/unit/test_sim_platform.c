/*
 * The simulated platform end to end: a real pvcalls-simd in a temporary
 * directory, the platform API (platform/sim.c) as two domains, the
 * toolstack pvcalls-simxl, and raw hostile clients of the broker.
 *
 * Binaries come from $PVC_BUILD/bin (scripts/run-tests sets it); by hand,
 * the build directory is found from this test's own path.
 */
#include <criterion/criterion.h>

#include "pvc/platform.h"
#include "pvc/sim_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xenstore.h>

#define PAGE 4096

static char build_dir[1024];
static char sim_dir[64];
static pid_t simd_pid = -1;

/* ---- harness ------------------------------------------------------- */

static void find_build_dir(void)
{
    const char *env = getenv("PVC_BUILD");
    if (env && *env) {
        snprintf(build_dir, sizeof(build_dir), "%s", env);
        return;
    }
    /* <build>/tests/unit/test_sim_platform */
    ssize_t n = readlink("/proc/self/exe", build_dir, sizeof(build_dir) - 1);
    cr_assert(n > 0, "cannot find the build directory; set PVC_BUILD");
    build_dir[n] = '\0';
    for (int i = 0; i < 3; i++)
        *strrchr(build_dir, '/') = '\0';
}

static void bin_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/bin/%s", build_dir, name);
}

/* Start pvcalls-simd on dir and wait for its "ready" line.  Returns the
 * pid, or -1 if it exited instead (its status in *status). */
static pid_t start_simd(const char *dir, int *status)
{
    char exe[PATH_MAX], fdarg[16];
    int p[2];
    bin_path(exe, sizeof(exe), "pvcalls-simd");
    cr_assert(pipe(p) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
        execl(exe, exe, "--dir", dir, "--foreground", "--ready-fd", fdarg,
              (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char buf[16] = { 0 };
    struct pollfd pfd = { .fd = p[0], .events = POLLIN };
    cr_assert(poll(&pfd, 1, 20000) == 1, "pvcalls-simd did not start");
    ssize_t n = read(p[0], buf, sizeof(buf) - 1);
    close(p[0]);
    if (n <= 0) {
        waitpid(pid, status, 0);
        return -1;
    }
    cr_assert_str_eq(buf, "ready\n");
    return pid;
}

/* SIGTERM the broker and return its exit status. */
static int stop_simd(pid_t pid)
{
    int status;
    kill(pid, SIGTERM);
    cr_assert(waitpid(pid, &status, 0) == pid);
    return status;
}

static void setup(void)
{
    find_build_dir();
    snprintf(sim_dir, sizeof(sim_dir), "/tmp/pvc-test-sim-XXXXXX");
    cr_assert(mkdtemp(sim_dir));
    int status;
    simd_pid = start_simd(sim_dir, &status);
    cr_assert(simd_pid > 0, "pvcalls-simd failed to start (status %d)",
              status);
}

static void remove_tree(const char *dir)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

static void teardown(void)
{
    if (simd_pid > 0) {
        int status = stop_simd(simd_pid);
        simd_pid = -1;
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "pvcalls-simd exit status %d on SIGTERM", status);
    }
    remove_tree(sim_dir);
}

/* Run pvcalls-simxl --sim-dir sim_dir ARGS...; its stderr goes into err
 * (if not NULL), its stdout into out.  Returns the exit status. */
static int simxl(char *out, size_t outlen, char *err, size_t errlen, ...)
{
    char exe[PATH_MAX];
    const char *argv[16] = { exe, "--sim-dir", sim_dir };
    int argc = 3;
    va_list ap;
    va_start(ap, errlen);
    const char *a;
    while ((a = va_arg(ap, const char *)) && argc < 15)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    bin_path(exe, sizeof(exe), "pvcalls-simxl");

    int po[2], pe[2];
    cr_assert(pipe(po) == 0 && pipe(pe) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]); close(pe[0]); close(po[1]); close(pe[1]);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    struct { int fd; char *buf; size_t len, used; } s[2] = {
        { po[0], out, outlen, 0 }, { pe[0], err, errlen, 0 },
    };
    for (int open_fds = 2; open_fds > 0;) {
        struct pollfd pfd[2] = { { s[0].fd, POLLIN, 0 },
                                 { s[1].fd, POLLIN, 0 } };
        cr_assert(poll(pfd, 2, 60000) > 0, "pvcalls-simxl hangs");
        for (int i = 0; i < 2; i++) {
            if (s[i].fd < 0 || !pfd[i].revents)
                continue;
            char tmp[512];
            ssize_t n = read(s[i].fd, tmp, sizeof(tmp));
            if (n <= 0) {
                close(s[i].fd);
                s[i].fd = -1;
                open_fds--;
                continue;
            }
            if (s[i].buf && s[i].used + 1 < s[i].len) {
                size_t k = (size_t)n;
                if (k > s[i].len - 1 - s[i].used)
                    k = s[i].len - 1 - s[i].used;
                memcpy(s[i].buf + s[i].used, tmp, k);
                s[i].used += k;
            }
        }
    }
    if (out)
        out[s[0].used] = '\0';
    if (err)
        err[s[1].used] = '\0';
    int status;
    cr_assert(waitpid(pid, &status, 0) == pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#define SIMXL(...) simxl(NULL, 0, NULL, 0, __VA_ARGS__, (char *)NULL)

static struct pvc_platform *open_dom(int domid)
{
    struct pvc_platform_opts o = {
        .kind = PVC_PLATFORM_SIM, .sim_domid = domid, .sim_dir = sim_dir,
    };
    return pvc_platform_open(&o);
}

/* Domain 1 created (without a device unless asked) and both handles. */
static void two_domains(struct pvc_platform **d0, struct pvc_platform **d1)
{
    cr_assert_eq(SIMXL("create", "1", "--no-pvcalls"), 0);
    *d0 = open_dom(0);
    *d1 = open_dom(1);
    cr_assert(*d0 && *d1, "platform open: %s", strerror(errno));
    cr_assert_eq(pvc_platform_domid(*d0), 0);
    cr_assert_eq(pvc_platform_domid(*d1), 1);
    cr_assert_str_eq(pvc_platform_name(*d1), "sim");
    cr_assert_eq(pvc_platform_kind(*d1), PVC_PLATFORM_SIM);
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

TestSuite(sim, .init = setup, .fini = teardown, .timeout = 120);

/* ---- grants -------------------------------------------------------- */

Test(sim, grant_share_map_both_directions)
{
    struct pvc_platform *d0, *d1;
    two_domains(&d0, &d1);
    void *addr;
    pvc_gref_t refs[3];
    cr_assert_eq(pvc_grant_share(d1, 0, 3, 0, &addr, refs), 0);
    cr_assert(refs[0] && refs[1] && refs[2], "ref 0 handed out");
    cr_assert(refs[0] != refs[1] && refs[1] != refs[2]);
    unsigned char *fe = addr;
    for (int i = 0; i < 3 * PAGE; i++)
        cr_assert_eq(fe[i], 0, "shared pages are not zeroed");
    memcpy(fe + PAGE + 10, "from dom1", 10);

    unsigned char *be = pvc_grant_map(d0, 1, 3, refs, 0);
    cr_assert(be, "map: %s", strerror(errno));
    cr_assert_str_eq((char *)be + PAGE + 10, "from dom1");
    memcpy(be + 2 * PAGE, "from dom0", 10);
    cr_assert_str_eq((char *)fe + 2 * PAGE, "from dom0");

    cr_assert_eq(pvc_grant_unmap(d0, be, 3), 0);
    cr_assert_eq(pvc_grant_unshare(d1, addr, 3), 0);
    pvc_platform_close(d0);
    pvc_platform_close(d1);
}

Test(sim, grant_map_is_contiguous_across_shares)
{
    struct pvc_platform *d0, *d1;
    two_domains(&d0, &d1);
    void *a, *b;
    pvc_gref_t ra[1], rb[2];
    cr_assert_eq(pvc_grant_share(d1, 0, 1, 0, &a, ra), 0);
    cr_assert_eq(pvc_grant_share(d1, 0, 2, 0, &b, rb), 0);
    strcpy(a, "A0");
    strcpy(b, "B0");
    strcpy((char *)b + PAGE, "B1");
    pvc_gref_t order[3] = { rb[1], ra[0], rb[0] };
    char *m = pvc_grant_map(d0, 1, 3, order, 0);
    cr_assert(m, "map: %s", strerror(errno));
    cr_assert_str_eq(m, "B1");
    cr_assert_str_eq(m + PAGE, "A0");
    cr_assert_str_eq(m + 2 * PAGE, "B0");
    /* The same page twice is two views of one page. */
    pvc_gref_t twice[2] = { ra[0], ra[0] };
    char *t = pvc_grant_map(d0, 1, 2, twice, 0);
    cr_assert(t);
    t[100] = 'x';
    cr_assert_eq(t[PAGE + 100], 'x');
    cr_assert_eq(((char *)a)[100], 'x');
    pvc_grant_unmap(d0, t, 2);
    pvc_grant_unmap(d0, m, 3);
    pvc_grant_unshare(d1, a, 1);
    pvc_grant_unshare(d1, b, 2);
    pvc_platform_close(d0);
    pvc_platform_close(d1);
}

Test(sim, grant_map_checks_peer_and_ref)
{
    struct pvc_platform *d0, *d1;
    two_domains(&d0, &d1);
    void *a;
    pvc_gref_t r;
    /* Granted to domain 2, not to us. */
    cr_assert_eq(pvc_grant_share(d1, 2, 1, 0, &a, &r), 0);
    errno = 0;
    cr_assert_null(pvc_grant_map(d0, 1, 1, &r, 0));
    cr_assert_eq(errno, EPERM);
    /* The right ref asked of the wrong granter. */
    errno = 0;
    cr_assert_null(pvc_grant_map(d1, 0, 1, &r, 0));
    cr_assert_eq(errno, ENOENT);
    pvc_gref_t bogus = 0x7fffffff;
    errno = 0;
    cr_assert_null(pvc_grant_map(d0, 1, 1, &bogus, 0));
    cr_assert_eq(errno, ENOENT);
    pvc_gref_t zero = 0;
    cr_assert_null(pvc_grant_map(d0, 1, 1, &zero, 0));
    cr_assert_eq(errno, ENOENT);
    /* A granter that does not exist. */
    cr_assert_null(pvc_grant_map(d0, 77, 1, &r, 0));
    cr_assert_eq(errno, ENOENT);
    cr_assert_eq(pvc_grant_unshare(d1, a, 1), 0);
    pvc_platform_close(d0);
    pvc_platform_close(d1);
}

Test(sim, grant_readonly_is_enforced)
{
    struct pvc_platform *d0, *d1;
    two_domains(&d0, &d1);
    void *a;
    pvc_gref_t r;
    cr_assert_eq(pvc_grant_share(d1, 0, 1, 1, &a, &r), 0);
    strcpy(a, "read me");
    errno = 0;
    cr_assert_null(pvc_grant_map(d0, 1, 1, &r, 0));
    cr_assert_eq(errno, EACCES);
    char *m = pvc_grant_map(d0, 1, 1, &r, 1);
    cr_assert(m, "readonly map: %s", strerror(errno));
    cr_assert_str_eq(m, "read me");
    /* The fd behind the mapping is read-only: no way to make it
     * writable. */
    cr_assert_eq(mprotect(m, PAGE, PROT_READ | PROT_WRITE), -1);
    cr_assert_eq(errno, EACCES);
    pvc_grant_unmap(d0, m, 1);
    pvc_grant_unshare(d1, a, 1);
    pvc_platform_close(d0);
    pvc_platform_close(d1);
}

Test(sim, grant_unshare_ends_grant_but_not_mapping)
{
    struct pvc_platform *d0, *d1;
    two_domains(&d0, &d1);
    void *a;
    pvc_gref_t r;
    cr_assert_eq(pvc_grant_share(d1, 0, 1, 0, &a, &r), 0);
    char *m = pvc_grant_map(d0, 1, 1, &r, 0);
    cr_assert(m);
    strcpy(a, "still here");
    cr_assert_eq(pvc_grant_unshare(d1, a, 1), 0);
    cr_assert_str_eq(m, "still here");
    errno = 0;
    cr_assert_null(pvc_grant_map(d0, 1, 1, &r, 0));
    cr_assert_eq(errno, ENOENT);
    /* Unknown address or wrong size. */
    cr_assert_eq(pvc_grant_unshare(d1, a, 1), -1);
    cr_assert_eq(errno, EINVAL);
    /* A new share never gets the old ref back at once. */
    pvc_gref_t r2;
    cr_assert_eq(pvc_grant_share(d1, 0, 1, 0, &a, &r2), 0);
    cr_assert_neq(r2, r);
    cr_assert_eq(pvc_grant_unshare(d1, a, 1), 0);
    pvc_grant_unmap(d0, m, 1);
    pvc_platform_close(d0);
    pvc_platform_close(d1);
}

Test(sim, grants_outlive_the_connection)
{
    struct pvc_platform *d0, *d1;
    two_domains(&d0, &d1);
    void *a;
    pvc_gref_t r;
    cr_assert_eq(pvc_grant_share(d1, 0, 1, 0, &a, &r), 0);
    strcpy(a, "kept");
    pvc_platform_close(d1);   /* unmaps our side, the grant stays */
    char *m = pvc_grant_map(d0, 1, 1, &r, 0);
    cr_assert(m, "map after the granter's connection closed: %s",
              strerror(errno));
    cr_assert_str_eq(m, "kept");
    pvc_grant_unmap(d0, m, 1);
    pvc_platform_close(d0);
}

Test(sim, grant_limits)
{
    struct pvc_platform *d0, *d1;
    two_domains(&d0, &d1);
    /* A map needing more than SIM_MAX_FDS memfds is refused. */
    enum { NSMALL = SIM_MAX_FDS + 1 };
    void *small[NSMALL];
    pvc_gref_t spread[NSMALL];
    for (int i = 0; i < NSMALL; i++)
        cr_assert_eq(pvc_grant_share(d1, 0, 1, 0, &small[i], &spread[i]), 0);
    char *m = pvc_grant_map(d0, 1, SIM_MAX_FDS, spread, 0);
    cr_assert(m, "map from 64 memfds: %s", strerror(errno));
    pvc_grant_unmap(d0, m, SIM_MAX_FDS);
    errno = 0;
    cr_assert_null(pvc_grant_map(d0, 1, NSMALL, spread, 0));
    cr_assert_eq(errno, E2BIG);
    for (int i = 0; i < NSMALL; i++)
        cr_assert_eq(pvc_grant_unshare(d1, small[i], 1), 0);

    /* One domain may have 2^20 pages granted at once
     * (SIM_MAX_GRANTS_PER_DOMAIN, sim/broker/broker.h). */
    enum { PER = SIM_MAX_REFS, SHARES = (1u << 20) / PER };
    static void *addr[SHARES];
    static pvc_gref_t refs[SHARES][PER];
    for (int i = 0; i < SHARES; i++)
        cr_assert_eq(pvc_grant_share(d1, 0, PER, 0, &addr[i], refs[i]), 0,
                     "share %d: %s", i, strerror(errno));
    void *more;
    pvc_gref_t one, too_many[PER + 1];
    cr_assert_eq(pvc_grant_share(d1, 0, 1, 0, &more, &one), -1);
    cr_assert_eq(errno, ENOSPC);
    cr_assert_eq(pvc_grant_share(d1, 0, PER + 1, 0, &more, too_many), -1);
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(pvc_grant_unshare(d1, addr[0], PER), 0);
    cr_assert_eq(pvc_grant_share(d1, 0, 1, 0, &more, &one), 0);
    cr_assert_eq(pvc_grant_unshare(d1, more, 1), 0);
    for (int i = 1; i < SHARES; i++)
        cr_assert_eq(pvc_grant_unshare(d1, addr[i], PER), 0);
    pvc_platform_close(d0);
    pvc_platform_close(d1);
}

/* ---- event channels ------------------------------------------------ */

static int readable(int fd, int timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    return poll(&pfd, 1, timeout_ms) == 1 && (pfd.revents & POLLIN);
}

Test(sim, evtchn_both_directions)
{
    struct pvc_platform *d0, *d1;
    two_domains(&d0, &d1);
    struct pvc_evtchn *fe = pvc_evtchn_alloc_unbound(d1, 0);
    cr_assert(fe, "alloc: %s", strerror(errno));
    cr_assert_geq(pvc_evtchn_port(fe), 1);
    struct pvc_evtchn *be = pvc_evtchn_bind_interdomain(d0, 1,
                                                        pvc_evtchn_port(fe));
    cr_assert(be, "bind: %s", strerror(errno));

    cr_assert_not(readable(pvc_evtchn_fd(be), 0));
    cr_assert_eq(pvc_evtchn_ack(be), 0);
    cr_assert_eq(pvc_evtchn_notify(fe), 0);
    cr_assert(readable(pvc_evtchn_fd(be), 5000));
    cr_assert_not(readable(pvc_evtchn_fd(fe), 0), "notify came back");
    cr_assert_gt(pvc_evtchn_ack(be), 0);
    cr_assert_not(readable(pvc_evtchn_fd(be), 0));
    cr_assert_eq(pvc_evtchn_ack(be), 0);

    cr_assert_eq(pvc_evtchn_notify(be), 0);
    cr_assert_eq(pvc_evtchn_notify(be), 0);
    cr_assert(readable(pvc_evtchn_fd(fe), 5000));
    cr_assert_gt(pvc_evtchn_ack(fe), 0);
    cr_assert_eq(pvc_evtchn_ack(fe), 0);

    /* Closing one end: the other's notifies go nowhere, harmlessly. */
    pvc_evtchn_close(be);
    cr_assert_eq(pvc_evtchn_notify(fe), 0);
    pvc_evtchn_close(fe);
    pvc_platform_close(d0);
    pvc_platform_close(d1);
}

static void expect_doorbell(struct pvc_evtchn *from, struct pvc_evtchn *to)
{
    cr_assert_eq(pvc_evtchn_notify(from), 0);
    cr_assert(readable(pvc_evtchn_fd(to), 5000), "no event on port %u",
              pvc_evtchn_port(to));
    cr_assert_gt(pvc_evtchn_ack(to), 0);
    cr_assert_eq(pvc_evtchn_ack(to), 0);
}

/* As on Xen: when one end closes, the other end is unbound again and
 * the closer's domain (only) may bind it anew. */
Test(sim, evtchn_rebind_after_the_peer_closed)
{
    struct pvc_platform *d0, *d1;
    two_domains(&d0, &d1);
    cr_assert_eq(SIMXL("create", "2", "--no-pvcalls"), 0);
    struct pvc_platform *d2 = open_dom(2);
    cr_assert(d2);
    struct pvc_evtchn *fe = pvc_evtchn_alloc_unbound(d1, 0);
    cr_assert(fe);
    pvc_port_t fe_port = pvc_evtchn_port(fe);
    struct pvc_evtchn *be = pvc_evtchn_bind_interdomain(d0, 1, fe_port);
    cr_assert(be);
    pvc_evtchn_close(be);
    /* Notifying an unbound port goes nowhere, as on Xen: the next
     * binder finds nothing pending. */
    cr_assert_eq(pvc_evtchn_notify(fe), 0);
    cr_assert_null(pvc_evtchn_bind_interdomain(d2, 1, fe_port));
    cr_assert_eq(errno, EINVAL);
    be = pvc_evtchn_bind_interdomain(d0, 1, fe_port);
    cr_assert(be, "rebind: %s", strerror(errno));
    cr_assert_not(readable(pvc_evtchn_fd(be), 0));
    expect_doorbell(fe, be);
    expect_doorbell(be, fe);

    /* The allocator's end closing frees the binder's end for it. */
    pvc_port_t be_port = pvc_evtchn_port(be);
    pvc_evtchn_close(fe);
    errno = 0;
    cr_assert_null(pvc_evtchn_bind_interdomain(d2, 0, be_port));
    cr_assert_eq(errno, EINVAL);
    fe = pvc_evtchn_bind_interdomain(d1, 0, be_port);
    cr_assert(fe, "rebind from the other side: %s", strerror(errno));
    expect_doorbell(fe, be);
    expect_doorbell(be, fe);
    pvc_evtchn_close(fe);
    pvc_evtchn_close(be);
    pvc_platform_close(d0);
    pvc_platform_close(d1);
    pvc_platform_close(d2);
}

Test(sim, evtchn_bind_is_validated)
{
    struct pvc_platform *d0, *d1;
    two_domains(&d0, &d1);
    errno = 0;
    cr_assert_null(pvc_evtchn_bind_interdomain(d0, 1, 42));
    cr_assert_eq(errno, EINVAL);
    /* Allocated for domain 2: domain 0 may not take it. */
    struct pvc_evtchn *for2 = pvc_evtchn_alloc_unbound(d1, 2);
    cr_assert(for2);
    errno = 0;
    cr_assert_null(pvc_evtchn_bind_interdomain(d0, 1, pvc_evtchn_port(for2)));
    cr_assert_eq(errno, EINVAL);
    /* Bound once, not twice. */
    struct pvc_evtchn *fe = pvc_evtchn_alloc_unbound(d1, 0);
    cr_assert(fe);
    struct pvc_evtchn *be = pvc_evtchn_bind_interdomain(d0, 1,
                                                        pvc_evtchn_port(fe));
    cr_assert(be);
    errno = 0;
    cr_assert_null(pvc_evtchn_bind_interdomain(d0, 1, pvc_evtchn_port(fe)));
    cr_assert_eq(errno, EBUSY);
    /* Nonexistent peer domain. */
    cr_assert_null(pvc_evtchn_bind_interdomain(d0, 9, 1));
    cr_assert_eq(errno, EINVAL);
    pvc_evtchn_close(be);
    pvc_evtchn_close(fe);
    pvc_evtchn_close(for2);
    pvc_platform_close(d0);
    pvc_platform_close(d1);
}

Test(sim, evtchn_ports_die_with_the_connection)
{
    struct pvc_platform *d0, *d1;
    two_domains(&d0, &d1);
    /* A process of domain 1 allocates a port and dies without closing
     * anything: its broker connection goes, and the port with it. */
    int p[2];
    cr_assert(pipe(p) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        struct pvc_platform *d = open_dom(1);
        struct pvc_evtchn *ch = d ? pvc_evtchn_alloc_unbound(d, 0) : NULL;
        pvc_port_t port = ch ? pvc_evtchn_port(ch) : 0;
        if (write(p[1], &port, sizeof(port)) != sizeof(port))
            _exit(1);
        _exit(0);
    }
    close(p[1]);
    pvc_port_t port = 0;
    cr_assert_eq(read(p[0], &port, sizeof(port)), (ssize_t)sizeof(port));
    close(p[0]);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert_neq(port, 0);
    /* The hang-up reached the broker's ready list before our request
     * did, and it handles them in that order. */
    errno = 0;
    struct pvc_evtchn *be = pvc_evtchn_bind_interdomain(d0, 1, port);
    cr_assert_null(be, "bound a dead process's port");
    cr_assert_eq(errno, EINVAL);
    /* Its port number is free again (Xen hands out the lowest). */
    struct pvc_evtchn *fe = pvc_evtchn_alloc_unbound(d1, 0);
    cr_assert(fe);
    cr_assert_eq(pvc_evtchn_port(fe), port);
    pvc_evtchn_close(fe);
    pvc_platform_close(d0);
    pvc_platform_close(d1);
}

/* ---- domains and HELLO --------------------------------------------- */

Test(sim, hello_needs_a_created_domain)
{
    errno = 0;
    cr_assert_null(open_dom(5));
    cr_assert_eq(errno, ESRCH);
    cr_assert_eq(SIMXL("create", "5", "--no-pvcalls"), 0);
    struct pvc_platform *d5 = open_dom(5);
    cr_assert(d5, "open after create: %s", strerror(errno));
    pvc_platform_close(d5);
    cr_assert_neq(SIMXL("create", "5", "--no-pvcalls"), 0, "created twice");
    cr_assert_eq(SIMXL("destroy", "5"), 0);
    cr_assert_null(open_dom(5));
    cr_assert_eq(errno, ESRCH);
    cr_assert_neq(SIMXL("destroy", "5"), 0, "destroyed twice");
}

Test(sim, domain_destroy_revokes_everything)
{
    struct pvc_platform *d0, *d1;
    two_domains(&d0, &d1);
    void *a;
    pvc_gref_t r;
    cr_assert_eq(pvc_grant_share(d1, 0, 1, 0, &a, &r), 0);
    struct pvc_evtchn *fe = pvc_evtchn_alloc_unbound(d1, 0);
    cr_assert(fe);
    pvc_port_t port = pvc_evtchn_port(fe);
    cr_assert_eq(SIMXL("destroy", "1"), 0);
    errno = 0;
    cr_assert_null(pvc_grant_map(d0, 1, 1, &r, 0));
    cr_assert_eq(errno, ENOENT);
    cr_assert_null(pvc_evtchn_bind_interdomain(d0, 1, port));
    /* Domain 1's connection was closed by the broker. */
    void *b;
    pvc_gref_t r2;
    cr_assert_eq(pvc_grant_share(d1, 0, 1, 0, &b, &r2), -1);
    pvc_evtchn_close(fe);   /* frees it though the broker is gone */
    pvc_platform_close(d1);
    pvc_platform_close(d0);
}

/* ---- the toolstack ------------------------------------------------- */

static struct xs_handle *dom0_store(struct pvc_platform **d0)
{
    *d0 = open_dom(0);
    cr_assert(*d0);
    struct xs_handle *xs = pvc_store_open(*d0);
    cr_assert(xs, "store: %s", strerror(errno));
    return xs;
}

/* Every node under path as "path=value" lines, sorted, into buf. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void walk(struct xs_handle *xs, const char *path, char **lines,
                 int *n)
{
    unsigned len, nent;
    char *val = xs_read(xs, XBT_NULL, path, &len);
    cr_assert(val, "read %s: %s", path, strerror(errno));
    cr_assert(asprintf(&lines[(*n)++], "%s=%s", path, val) > 0);
    free(val);
    char **ents = xs_directory(xs, XBT_NULL, path, &nent);
    cr_assert(ents);
    for (unsigned i = 0; i < nent; i++) {
        char child[256];
        snprintf(child, sizeof(child), "%s/%s", path, ents[i]);
        walk(xs, child, lines, n);
    }
    free(ents);
}

static void expect_tree(struct xs_handle *xs, const char *path,
                        const char *const *expected)
{
    char *lines[64];
    const char *want[64];
    int n = 0, nwant = 0;
    walk(xs, path, lines, &n);
    while (expected[nwant])
        want[nwant] = expected[nwant], nwant++;
    qsort(lines, n, sizeof(lines[0]), cmp_str);
    qsort(want, nwant, sizeof(want[0]), cmp_str);
    cr_expect_eq(n, nwant, "%d nodes under %s, expected %d", n, path, nwant);
    for (int i = 0; i < n && i < nwant; i++)
        cr_expect_str_eq(lines[i], want[i]);
    for (int k = 0; k < n; k++)
        free(lines[k]);
}

static void expect_perms(struct xs_handle *xs, const char *path,
                         unsigned owner, unsigned reader)
{
    unsigned num = 0;
    struct xs_permissions *p = xs_get_permissions(xs, XBT_NULL, path, &num);
    cr_assert(p, "perms of %s: %s", path, strerror(errno));
    cr_assert_eq(num, 2, "%s has %u perms", path, num);
    cr_expect_eq(p[0].id, owner);
    cr_expect_eq(p[0].perms, XS_PERM_NONE);
    cr_expect_eq(p[1].id, reader);
    cr_expect_eq(p[1].perms, XS_PERM_READ);
    free(p);
}

static bool exists(struct xs_handle *xs, const char *path)
{
    unsigned len;
    char *v = xs_read(xs, XBT_NULL, path, &len);
    free(v);
    return v != NULL;
}

Test(sim, simxl_create_writes_libxl_keys)
{
    cr_assert_eq(SIMXL("create", "1"), 0);
    struct pvc_platform *d0;
    struct xs_handle *xs = dom0_store(&d0);
    static const char *const fe[] = {
        "/local/domain/1/device/pvcalls=",
        "/local/domain/1/device/pvcalls/0=",
        "/local/domain/1/device/pvcalls/0/backend="
            "/local/domain/0/backend/pvcalls/1/0",
        "/local/domain/1/device/pvcalls/0/backend-id=0",
        "/local/domain/1/device/pvcalls/0/state=1",
        NULL,
    };
    static const char *const be[] = {
        "/local/domain/0/backend/pvcalls/1=",
        "/local/domain/0/backend/pvcalls/1/0=",
        "/local/domain/0/backend/pvcalls/1/0/frontend="
            "/local/domain/1/device/pvcalls/0",
        "/local/domain/0/backend/pvcalls/1/0/frontend-id=1",
        "/local/domain/0/backend/pvcalls/1/0/online=1",
        "/local/domain/0/backend/pvcalls/1/0/state=1",
        NULL,
    };
    static const char *const priv[] = {
        "/libxl/1=",
        "/libxl/1/device=",
        "/libxl/1/device/pvcalls=",
        "/libxl/1/device/pvcalls/0=",
        "/libxl/1/device/pvcalls/0/backend="
            "/local/domain/0/backend/pvcalls/1/0",
        "/libxl/1/device/pvcalls/0/frontend="
            "/local/domain/1/device/pvcalls/0",
        "/libxl/1/device/pvcalls/0/frontend-id=1",
        "/libxl/1/device/pvcalls/0/online=1",
        "/libxl/1/device/pvcalls/0/state=1",
        NULL,
    };
    expect_tree(xs, "/local/domain/1/device/pvcalls", fe);
    expect_tree(xs, "/local/domain/0/backend/pvcalls/1", be);
    expect_tree(xs, "/libxl/1", priv);
    expect_perms(xs, "/local/domain/1/device/pvcalls/0", 1, 0);
    expect_perms(xs, "/local/domain/1/device/pvcalls/0/state", 1, 0);
    expect_perms(xs, "/local/domain/1/device/pvcalls/0/backend-id", 1, 0);
    expect_perms(xs, "/local/domain/0/backend/pvcalls/1/0", 0, 1);

    char out[64];
    cr_assert_eq(simxl(out, sizeof(out), NULL, 0, "device-add", "1",
                       (char *)NULL), 0);
    cr_assert_str_eq(out, "1\n");
    cr_assert(exists(xs, "/local/domain/0/backend/pvcalls/1/1/state"));
    cr_assert(exists(xs, "/local/domain/1/device/pvcalls/1/backend-id"));

    cr_assert_eq(simxl(out, sizeof(out), NULL, 0, "list", (char *)NULL), 0);
    cr_assert_str_eq(out, "0\n1\n");
    xs_close(xs);
    pvc_platform_close(d0);
}

Test(sim, simxl_rejects_bad_input)
{
    char err[512];
    cr_assert_eq(simxl(NULL, 0, err, sizeof(err), "create", "0",
                       (char *)NULL), 1);
    cr_assert(strstr(err, "domain 0"), "message: %s", err);
    cr_assert_eq(SIMXL("create", "abc"), 2);
    cr_assert_eq(SIMXL("create", "99999"), 2);
    cr_assert_eq(SIMXL("frobnicate", "1"), 2);
    cr_assert_eq(simxl(NULL, 0, err, sizeof(err), "create", "3",
                       "--pvcalls-backend", "7", (char *)NULL), 1);
    cr_assert(strstr(err, "backend domain 7 does not exist"), "%s", err);
    cr_assert_null(open_dom(3), "a failed create left the domain");
    cr_assert_eq(SIMXL("destroy", "4"), 1);
    cr_assert_eq(SIMXL("device-add", "4"), 1);
    cr_assert_eq(SIMXL("create", "4", "--no-pvcalls"), 0);
    cr_assert_eq(SIMXL("device-remove", "4", "0"), 1);
}

/* A fake backend: waits (with a watch) for the toolstack's state=5 on
 * each backend dir given, answers 6. */
struct fake_backend {
    const char *paths[4];
    int npaths;
    int answered;
};

static void *fake_backend_main(void *arg)
{
    struct fake_backend *fb = arg;
    struct pvc_platform *d0;
    struct xs_handle *xs = dom0_store(&d0);
    char state[4][160];
    bool done[4] = { false };
    for (int i = 0; i < fb->npaths; i++) {
        snprintf(state[i], sizeof(state[i]), "%s/state", fb->paths[i]);
        cr_assert(xs_watch(xs, state[i], "fake"));
    }
    struct pollfd pfd = { .fd = xs_fileno(xs), .events = POLLIN };
    long deadline = now_ms() + 30000;
    while (fb->answered < fb->npaths && now_ms() < deadline) {
        poll(&pfd, 1, 1000);
        char **ev;
        while ((ev = xs_check_watch(xs)))
            free(ev);
        for (int i = 0; i < fb->npaths; i++) {
            unsigned len;
            char *v = xs_read(xs, XBT_NULL, state[i], &len);
            if (!done[i] && v && !strcmp(v, "5")) {
                cr_assert(xs_write(xs, XBT_NULL, state[i], "6", 1));
                done[i] = true;
                fb->answered++;
            }
            free(v);
        }
    }
    xs_close(xs);
    pvc_platform_close(d0);
    return NULL;
}

Test(sim, simxl_destroy_with_a_backend_is_quick)
{
    cr_assert_eq(SIMXL("create", "1"), 0);
    cr_assert_eq(SIMXL("device-add", "1"), 0);
    struct fake_backend fb = {
        .paths = { "/local/domain/0/backend/pvcalls/1/0",
                   "/local/domain/0/backend/pvcalls/1/1" },
        .npaths = 2,
    };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, fake_backend_main, &fb), 0);
    long t0 = now_ms();
    char err[512];
    int rc = simxl(NULL, 0, err, sizeof(err), "destroy", "1", (char *)NULL);
    long took = now_ms() - t0;
    pthread_join(th, NULL);
    cr_assert_eq(rc, 0, "destroy failed: %s", err);
    cr_assert_eq(fb.answered, 2);
    cr_assert_lt(took, 5000, "destroy took %ld ms", took);
    cr_assert_null(strstr(err, "did not close"), "%s", err);

    struct pvc_platform *d0;
    struct xs_handle *xs = dom0_store(&d0);
    cr_assert_not(exists(xs, "/local/domain/0/backend/pvcalls"));
    cr_assert_not(exists(xs, "/local/domain/1"));
    cr_assert_not(exists(xs, "/libxl/1"));
    cr_assert_null(open_dom(1));
    xs_close(xs);
    pvc_platform_close(d0);
}

Test(sim, simxl_device_remove_one)
{
    cr_assert_eq(SIMXL("create", "1"), 0);
    cr_assert_eq(SIMXL("device-add", "1"), 0);
    struct fake_backend fb = {
        .paths = { "/local/domain/0/backend/pvcalls/1/1" }, .npaths = 1,
    };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, fake_backend_main, &fb), 0);
    cr_assert_eq(SIMXL("device-remove", "1", "1"), 0);
    pthread_join(th, NULL);
    struct pvc_platform *d0;
    struct xs_handle *xs = dom0_store(&d0);
    cr_assert_not(exists(xs, "/local/domain/0/backend/pvcalls/1/1"));
    cr_assert_not(exists(xs, "/local/domain/1/device/pvcalls/1"));
    cr_assert_not(exists(xs, "/libxl/1/device/pvcalls/1"));
    cr_assert(exists(xs, "/local/domain/0/backend/pvcalls/1/0/state"));
    cr_assert(exists(xs, "/libxl/1/device/pvcalls/0/backend"));
    /* Next devid after removing the last one. */
    char out[16];
    cr_assert_eq(simxl(out, sizeof(out), NULL, 0, "device-add", "1",
                       (char *)NULL), 0);
    cr_assert_str_eq(out, "1\n");
    xs_close(xs);
    pvc_platform_close(d0);
}

Test(sim, simxl_destroy_without_backend_times_out)
{
    cr_assert_eq(SIMXL("create", "1"), 0);
    long t0 = now_ms();
    char err[512];
    int rc = simxl(NULL, 0, err, sizeof(err), "destroy", "1", (char *)NULL);
    long took = now_ms() - t0;
    cr_assert_eq(rc, 0);
    cr_assert(strstr(err, "backend did not close in 10 s"), "stderr: %s",
              err);
    cr_assert_geq(took, 10000);
    cr_assert_lt(took, 14000);
    struct pvc_platform *d0;
    struct xs_handle *xs = dom0_store(&d0);
    cr_assert_not(exists(xs, "/local/domain/0/backend/pvcalls/1/0"));
    cr_assert_not(exists(xs, "/libxl/1"));
    cr_assert_null(open_dom(1));
    xs_close(xs);
    pvc_platform_close(d0);
}

/* ---- hostile clients ----------------------------------------------- */

static int raw_connect(void)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s", sim_dir,
             SIM_BROKER_SOCK);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    return fd;
}

/* Send len bytes (with an fd attached if pass_fd >= 0) and return the
 * reply's status; the reply must echo op. */
static int raw_call(int fd, const void *buf, size_t len, int pass_fd,
                    uint32_t op)
{
    union {
        char b[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (pass_fd >= 0) {
        mh.msg_control = ctl.b;
        mh.msg_controllen = sizeof(ctl.b);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
    }
    cr_assert(sendmsg(fd, &mh, 0) == (ssize_t)len, "send: %s",
              strerror(errno));
    struct sim_msg rp;
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    cr_assert(poll(&pfd, 1, 5000) == 1, "no reply");
    ssize_t n = recv(fd, &rp, sizeof(rp), 0);
    cr_assert_eq(n, (ssize_t)sizeof(rp), "reply of %zd bytes", n);
    cr_assert_eq(rp.op, op);
    return rp.status;
}

static int raw_msg(int fd, struct sim_msg m)
{
    return raw_call(fd, &m, sizeof(m), -1, m.op);
}

Test(sim, hostile_client_gets_errors_and_broker_survives)
{
    int fd = raw_connect();
    /* Short packets. */
    cr_assert_eq(raw_call(fd, "abc", 3, -1, 0), -EINVAL);
    uint32_t op_only = SIM_OP_HELLO;
    cr_assert_eq(raw_call(fd, &op_only, 4, -1, SIM_OP_HELLO), -EINVAL);
    /* Unknown ops. */
    cr_assert_eq(raw_msg(fd, (struct sim_msg){ .op = 0 }), -ENOSYS);
    cr_assert_eq(raw_msg(fd, (struct sim_msg){ .op = 999 }), -ENOSYS);
    cr_assert_eq(raw_msg(fd, (struct sim_msg){ .op = 0xffffffff }), -ENOSYS);
    /* Anything before HELLO. */
    cr_assert_eq(raw_msg(fd, (struct sim_msg){ .op = SIM_OP_GNT_SHARE,
                                               .count = 1 }), -EPROTO);
    cr_assert_eq(raw_msg(fd, (struct sim_msg){ .op = SIM_OP_DOMAIN_CREATE,
                                               .domid = 3 }), -EPROTO);
    /* HELLO as a domain that does not exist, or out of range. */
    cr_assert_eq(raw_msg(fd, (struct sim_msg){ .op = SIM_OP_HELLO,
                                               .domid = 12 }), -ESRCH);
    cr_assert_eq(raw_msg(fd, (struct sim_msg){ .op = SIM_OP_HELLO,
                                               .domid = 0x10000 }), -ESRCH);
    /* A HELLO with an fd attached, and trailing bytes. */
    int devnull = open("/dev/null", O_RDONLY);
    struct { struct sim_msg m; uint32_t extra; } big = {
        { .op = SIM_OP_HELLO }, 7,
    };
    cr_assert_eq(raw_call(fd, &big, sizeof(big), devnull, SIM_OP_HELLO),
                 -EINVAL);
    close(devnull);
    cr_assert_eq(raw_msg(fd, (struct sim_msg){ .op = SIM_OP_HELLO }), 0);
    cr_assert_eq(raw_msg(fd, (struct sim_msg){ .op = SIM_OP_HELLO }),
                 -EISCONN);

    /* Counts that do not match the packet, or out of bounds. */
    struct { struct sim_msg m; uint32_t refs[2]; } map = {
        { .op = SIM_OP_GNT_MAP, .peer = 0, .count = 5 }, { 1, 2 },
    };
    cr_assert_eq(raw_call(fd, &map, sizeof(map), -1, SIM_OP_GNT_MAP),
                 -EINVAL);
    map.m.count = 0;
    cr_assert_eq(raw_call(fd, &map, sizeof(map.m), -1, SIM_OP_GNT_MAP),
                 -EINVAL);
    map.m.count = 2;
    map.m.flags = 0x80;
    cr_assert_eq(raw_call(fd, &map, sizeof(map), -1, SIM_OP_GNT_MAP),
                 -EINVAL);
    cr_assert_eq(raw_msg(fd, (struct sim_msg){ .op = SIM_OP_GNT_SHARE,
                                               .count = 0 }), -EINVAL);
    cr_assert_eq(raw_msg(fd, (struct sim_msg){ .op = SIM_OP_GNT_SHARE,
                                               .count = SIM_MAX_REFS + 1 }),
                 -EINVAL);
    cr_assert_eq(raw_msg(fd, (struct sim_msg){ .op = SIM_OP_GNT_SHARE,
                                               .count = 1,
                                               .peer = 0xffff }), -EINVAL);
    /* An oversized packet. */
    size_t huge_len = sizeof(struct sim_msg) + 4 * (SIM_MAX_REFS + 10);
    uint32_t *huge = calloc(1, huge_len);
    huge[0] = SIM_OP_GNT_UNSHARE;
    huge[6] = SIM_MAX_REFS + 10;
    cr_assert_eq(raw_call(fd, huge, huge_len, -1, SIM_OP_GNT_UNSHARE),
                 -EINVAL);
    free(huge);
    /* Unsharing or closing what is not ours. */
    struct { struct sim_msg m; uint32_t ref; } un = {
        { .op = SIM_OP_GNT_UNSHARE, .count = 1 }, 1,
    };
    cr_assert_eq(raw_call(fd, &un, sizeof(un), -1, SIM_OP_GNT_UNSHARE),
                 -ENOENT);
    cr_assert_eq(raw_msg(fd, (struct sim_msg){ .op = SIM_OP_EVT_CLOSE,
                                               .port = 1 }), -EINVAL);
    /* Toolstack ops: dom0 only, sane ids. */
    cr_assert_eq(raw_msg(fd, (struct sim_msg){ .op = SIM_OP_DOMAIN_CREATE,
                                               .domid = 0 }), -EINVAL);
    cr_assert_eq(raw_msg(fd, (struct sim_msg){ .op = SIM_OP_DOMAIN_CREATE,
                                               .domid = 0x7ff0 }), -EINVAL);
    cr_assert_eq(raw_msg(fd, (struct sim_msg){ .op = SIM_OP_DOMAIN_DESTROY,
                                               .domid = 0 }), -EINVAL);
    cr_assert_eq(raw_msg(fd, (struct sim_msg){ .op = SIM_OP_DOMAIN_DESTROY,
                                               .domid = 33 }), -ESRCH);
    cr_assert_eq(raw_msg(fd, (struct sim_msg){ .op = SIM_OP_DOMAIN_CREATE,
                                               .domid = 2 }), 0);
    cr_assert_eq(raw_msg(fd, (struct sim_msg){ .op = SIM_OP_DOMAIN_CREATE,
                                               .domid = 2 }), -EEXIST);
    int fd2 = raw_connect();
    cr_assert_eq(raw_msg(fd2, (struct sim_msg){ .op = SIM_OP_HELLO,
                                                .domid = 2 }), 0);
    cr_assert_eq(raw_msg(fd2, (struct sim_msg){ .op = SIM_OP_DOMAIN_CREATE,
                                                .domid = 3 }), -EPERM);
    cr_assert_eq(raw_msg(fd2, (struct sim_msg){ .op = SIM_OP_DOMAIN_DESTROY,
                                                .domid = 2 }), -EPERM);
    close(fd2);

    /* A client that pipelines requests and never reads its replies is
     * dropped instead of blocking the broker. */
    int greedy = raw_connect();
    struct sim_msg bad = { .op = 0 };
    for (int i = 0; i < 100000; i++)
        if (send(greedy, &bad, sizeof(bad), MSG_DONTWAIT) < 0)
            break;
    /* The broker still serves everyone else. */
    close(fd);
    struct pvc_platform *d0 = open_dom(0);
    cr_assert(d0, "broker died: %s", strerror(errno));
    struct pvc_evtchn *ch = pvc_evtchn_alloc_unbound(d0, 0);
    cr_assert(ch);
    struct pvc_evtchn *ch2 = pvc_evtchn_bind_interdomain(d0, 0,
                                                         pvc_evtchn_port(ch));
    cr_assert(ch2, "loopback bind: %s", strerror(errno));
    pvc_evtchn_close(ch2);
    pvc_evtchn_close(ch);
    pvc_platform_close(d0);
    close(greedy);
}

/* ---- the daemon itself --------------------------------------------- */

Test(sim, second_broker_refuses_and_sigterm_cleans_up)
{
    int status;
    cr_assert_eq(start_simd(sim_dir, &status), -1,
                 "two brokers on one directory");
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0);
    /* The first one was not disturbed. */
    struct pvc_platform *d0 = open_dom(0);
    cr_assert(d0);
    pvc_platform_close(d0);

    status = stop_simd(simd_pid);
    simd_pid = -1;
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "exit status %d", status);
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", sim_dir, SIM_BROKER_SOCK);
    cr_assert_neq(stat(path, &st), 0, "broker.sock left behind");
    snprintf(path, sizeof(path), "%s/store/0.sock", sim_dir);
    cr_assert_neq(stat(path, &st), 0, "store socket left behind");

    /* A stale socket file does not stop a new broker. */
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s", sim_dir,
             SIM_BROKER_SOCK);
    int s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    cr_assert_eq(bind(s, (struct sockaddr *)&addr, sizeof(addr)), 0);
    close(s);
    simd_pid = start_simd(sim_dir, &status);
    cr_assert(simd_pid > 0, "stale socket blocked the broker");
    d0 = open_dom(0);
    cr_assert(d0);
    pvc_platform_close(d0);
}

Test(sim, platform_open_defaults_from_environment)
{
    setenv("PVC_SIM_DIR", sim_dir, 1);
    setenv("PVC_PLATFORM", "sim", 1);
    setenv("PVC_SIM_DOMID", "0", 1);
    struct pvc_platform *p = pvc_platform_open(NULL);
    cr_assert(p, "open: %s", strerror(errno));
    cr_assert_eq(pvc_platform_kind(p), PVC_PLATFORM_SIM);
    cr_assert_eq(pvc_platform_domid(p), 0);
    pvc_platform_close(p);
    setenv("PVC_SIM_DOMID", "6", 1);
    cr_assert_null(pvc_platform_open(NULL));
    cr_assert_eq(errno, ESRCH);
    setenv("PVC_SIM_DOMID", "junk", 1);
    cr_assert_null(pvc_platform_open(NULL));
    cr_assert_eq(errno, EINVAL);
    setenv("PVC_PLATFORM", "bogus", 1);
    cr_assert_null(pvc_platform_open(NULL));
    cr_assert_eq(errno, EINVAL);

    char buf[PATH_MAX];
    unsetenv("XDG_RUNTIME_DIR");
    pvc_sim_default_dir(buf, sizeof(buf));
    if (geteuid() == 0)
        cr_assert_str_eq(buf, "/run/pvcalls-sim");
    else
        cr_assert(strstr(buf, "/tmp/pvcalls-sim-") == buf);
}
