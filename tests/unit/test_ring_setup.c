/*
 * What a connection's ring set-up relies on since it stopped mapping
 * pages it only needs to read or initialise once:
 *
 *   - pvc_grant_read() copies from a peer's granted page without mapping
 *     it (the backend reads ring_order and the refs this way), with the
 *     checks pvc_grant_map() makes;
 *   - state_page_new() writes a template instead of initialising the
 *     mutexes in place: the page must still hold working process-shared,
 *     robust mutexes.
 *
 * A real pvcalls-simd runs in a temporary directory; binaries come from
 * $PVC_BUILD/bin (scripts/run-tests sets it) or from this test's build.
 */
#include <criterion/criterion.h>

#include "../../frontd/frontd.h"
#include "pvc/platform.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096

static char build_dir[PATH_MAX / 2];
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
    /* <build>/tests/unit/test_ring_setup */
    ssize_t n = readlink("/proc/self/exe", build_dir, sizeof(build_dir) - 1);
    cr_assert(n > 0, "cannot find the build directory; set PVC_BUILD");
    build_dir[n] = '\0';
    for (int i = 0; i < 3; i++)
        *strrchr(build_dir, '/') = '\0';
}

/* Run build_dir/bin/<argv[0]>; with ready_fd, wait for its "ready" line
 * and return its pid, else wait for it and return its exit status. */
static int run_bin(const char *const *argv, bool ready_fd)
{
    char exe[PATH_MAX], fdarg[16];
    snprintf(exe, sizeof(exe), "%s/bin/%s", build_dir, argv[0]);
    const char *args[16];
    int n = 0;
    args[n++] = exe;
    for (int i = 1; argv[i] && n < 12; i++)
        args[n++] = argv[i];
    int p[2];
    cr_assert(pipe(p) == 0);
    if (ready_fd) {
        snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
        args[n++] = "--ready-fd";
        args[n++] = fdarg;
    }
    args[n] = NULL;
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        execv(exe, (char *const *)args);
        _exit(127);
    }
    close(p[1]);
    int status;
    if (!ready_fd) {
        close(p[0]);
        cr_assert(waitpid(pid, &status, 0) == pid);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    struct pollfd pfd = { .fd = p[0], .events = POLLIN };
    cr_assert(poll(&pfd, 1, 20000) == 1, "%s did not start", argv[0]);
    char buf[16] = { 0 };
    ssize_t got = read(p[0], buf, sizeof(buf) - 1);
    close(p[0]);
    cr_assert(got > 0 && !strcmp(buf, "ready\n"), "%s failed to start",
              argv[0]);
    return pid;
}

static void setup(void)
{
    find_build_dir();
    snprintf(sim_dir, sizeof(sim_dir), "/tmp/pvc-test-rs-XXXXXX");
    cr_assert(mkdtemp(sim_dir));
    const char *simd[] = { "pvcalls-simd", "--dir", sim_dir, "--foreground",
                           NULL };
    simd_pid = run_bin(simd, true);
    const char *create[] = { "pvcalls-simxl", "--sim-dir", sim_dir, "create",
                             "1", "--no-pvcalls", NULL };
    cr_assert_eq(run_bin(create, false), 0, "pvcalls-simxl create 1");
}

static void teardown(void)
{
    if (simd_pid > 0) {
        int status;
        kill(simd_pid, SIGTERM);
        cr_assert(waitpid(simd_pid, &status, 0) == simd_pid);
        simd_pid = -1;
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "pvcalls-simd exit status %d on SIGTERM", status);
    }
    char cmd[PATH_MAX];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sim_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", sim_dir);
}

static struct pvc_platform *open_dom(int domid)
{
    struct pvc_platform_opts o = {
        .kind = PVC_PLATFORM_SIM, .sim_domid = domid, .sim_dir = sim_dir,
    };
    struct pvc_platform *p = pvc_platform_open(&o);
    cr_assert(p, "platform open as %d: %s", domid, strerror(errno));
    return p;
}

static unsigned open_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert(d);
    unsigned n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

TestSuite(grant_read, .init = setup, .fini = teardown, .timeout = 60);

/* ---- pvc_grant_read ------------------------------------------------- */

Test(grant_read, copies_the_granted_bytes)
{
    struct pvc_platform *d0 = open_dom(0), *d1 = open_dom(1);
    void *addr;
    pvc_gref_t refs[2];
    cr_assert_eq(pvc_grant_share(d1, 0, 2, 0, &addr, refs), 0);
    unsigned char *fe = addr;
    for (int i = 0; i < 2 * PAGE; i++)
        fe[i] = (unsigned char)(i * 7 + 3);

    unsigned before = open_fd_count();
    unsigned char buf[PAGE];
    /* The second page, at an offset, as the backend reads ring_order and
     * the refs. */
    memset(buf, 0, sizeof(buf));
    cr_assert_eq(pvc_grant_read(d0, 1, refs[1], 128, buf, 200), 0,
                 "read: %s", strerror(errno));
    cr_assert_arr_eq(buf, fe + PAGE + 128, 200);
    /* A whole page, and nothing at all. */
    cr_assert_eq(pvc_grant_read(d0, 1, refs[0], 0, buf, PAGE), 0);
    cr_assert_arr_eq(buf, fe, PAGE);
    cr_assert_eq(pvc_grant_read(d0, 1, refs[0], PAGE, buf, 0), 0);
    /* A copy, not a mapping: later writes are not seen. */
    cr_assert_eq(pvc_grant_read(d0, 1, refs[0], 0, buf, 16), 0);
    fe[0] ^= 0xFF;
    cr_assert_neq(buf[0], fe[0]);
    cr_assert_eq(open_fd_count(), before, "the broker's fd was kept");

    cr_assert_eq(pvc_grant_unshare(d1, addr, 2), 0);
    pvc_platform_close(d0);
    pvc_platform_close(d1);
}

Test(grant_read, checks_peer_ref_and_bounds)
{
    struct pvc_platform *d0 = open_dom(0), *d1 = open_dom(1);
    void *addr;
    pvc_gref_t ref;
    cr_assert_eq(pvc_grant_share(d1, 0, 1, 0, &addr, &ref), 0);
    unsigned char buf[PAGE];
    unsigned before = open_fd_count();

    /* Past the end of the page. */
    errno = 0;
    cr_assert_eq(pvc_grant_read(d0, 1, ref, PAGE - 8, buf, 9), -1);
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(pvc_grant_read(d0, 1, ref, PAGE + 1, buf, 0), -1);
    cr_assert_eq(errno, EINVAL);
    /* Not a ref of domain 1's; the wrong granter; granted to another
     * domain than the reader (domain 1 reading its own grant). */
    pvc_gref_t bogus = ref + 1000;
    cr_assert_eq(pvc_grant_read(d0, 1, bogus, 0, buf, 4), -1);
    cr_assert_eq(errno, ENOENT);
    cr_assert_eq(pvc_grant_read(d0, 77, ref, 0, buf, 4), -1);
    cr_assert_eq(errno, ENOENT);
    cr_assert_eq(pvc_grant_read(d1, 1, ref, 0, buf, 4), -1);
    cr_assert_eq(errno, EPERM);
    cr_assert_eq(open_fd_count(), before, "an fd leaked on a failure");
    /* Gone after unshare. */
    cr_assert_eq(pvc_grant_unshare(d1, addr, 1), 0);
    cr_assert_eq(pvc_grant_read(d0, 1, ref, 0, buf, 4), -1);
    cr_assert_eq(errno, ENOENT);

    pvc_platform_close(d0);
    pvc_platform_close(d1);
}

Test(grant_read, reads_a_read_only_grant)
{
    struct pvc_platform *d0 = open_dom(0), *d1 = open_dom(1);
    void *addr;
    pvc_gref_t ref;
    cr_assert_eq(pvc_grant_share(d1, 0, 1, 1, &addr, &ref), 0);
    memcpy(addr, "read-only", 10);
    char buf[10];
    cr_assert_eq(pvc_grant_read(d0, 1, ref, 0, buf, 10), 0);
    cr_assert_str_eq(buf, "read-only");
    /* ...which still cannot be mapped writable. */
    cr_assert_null(pvc_grant_map(d0, 1, 1, &ref, 0));
    cr_assert_eq(pvc_grant_unshare(d1, addr, 1), 0);
    pvc_platform_close(d0);
    pvc_platform_close(d1);
}

/* ---- state pages ---------------------------------------------------- */

/* Lock m in a child that exits holding it. */
static void die_holding(pthread_mutex_t *m)
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0)
        _exit(pthread_mutex_lock(m) == 0 ? 0 : 1);
    int status;
    cr_assert(waitpid(pid, &status, 0) == pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the child could not lock");
}

Test(state_page, holds_shared_robust_mutexes)
{
    int fd = state_page_new();
    cr_assert(fd >= 0, "state_page_new: %s", strerror(errno));
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    cr_assert_eq(st.st_size, PAGE, "the page is not exactly one page");
    /* Two mappings, as the daemon and a shim have: one mutex. */
    struct pvc_sock_shared *a = state_page_map(fd);
    struct pvc_sock_shared *b = state_page_map(fd);
    cr_assert(a && b);
    cr_assert_eq(a->shut_rd | a->shut_wr | a->connect_done, 0);
    cr_assert_eq(a->so_error | a->connect_ret, 0);
    cr_assert_eq(pthread_mutex_lock(&a->rx_lock), 0);
    cr_assert_eq(pthread_mutex_trylock(&b->rx_lock), EBUSY,
                 "not the same lock through two mappings");
    cr_assert_eq(pthread_mutex_unlock(&a->rx_lock), 0);
    /* Process-shared and robust: a holder that dies leaves it
     * recoverable in another process. */
    for (int i = 0; i < 2; i++) {
        die_holding(i ? &b->tx_lock : &b->rx_lock);
        /* Recovered through the other mapping (and only through it: a
         * robust mutex is on its holder's list by address). */
        pthread_mutex_t *m = i ? &a->tx_lock : &a->rx_lock;
        cr_assert_eq(pthread_mutex_lock(m), EOWNERDEAD,
                     "mutex %d is not robust", i);
        cr_assert_eq(pthread_mutex_consistent(m), 0);
        cr_assert_eq(pthread_mutex_unlock(m), 0);
    }
    state_page_unmap(a);
    state_page_unmap(b);
    /* Every page is a new file: nothing carries over. */
    int fd2 = state_page_new();
    cr_assert(fd2 >= 0);
    struct pvc_sock_shared *c = state_page_map(fd2);
    cr_assert(c);
    cr_assert_eq(pthread_mutex_trylock(&c->rx_lock), 0);
    cr_assert_eq(pthread_mutex_unlock(&c->rx_lock), 0);
    state_page_unmap(c);
    close(fd);
    close(fd2);
}
