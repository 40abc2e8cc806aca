/* Running real programs natively and through pvcalls-run: see runprog.h. */
#include "runprog.h"

#include "hostnet.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define STOP_TIMEOUT_MS 20000

/* The environment of the running test, for rp_cleanup(). */
static struct rp_env *current;

/* ---- locating the script and the build --------------------------- */

/* The build directory: $PVC_BUILD, else the one this test lives in
 * (BUILD/tests/e2e/test_x).  Exported, so pvcalls-run uses it too. */
static void build_dir(char *out, size_t len)
{
    const char *env = getenv("PVC_BUILD");
    if (env && *env) {
        char full[PATH_MAX];
        cr_assert(realpath(env, full), "PVC_BUILD=%s: %m", env);
        cr_assert(strlen(full) < len, "PVC_BUILD too long");
        memcpy(out, full, strlen(full) + 1);
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    cr_assert(n > 0, "readlink /proc/self/exe: %m");
    exe[n] = '\0';
    snprintf(out, len, "%s", dirname(dirname(dirname(exe))));
    setenv("PVC_BUILD", out, 1);
}

static void find_script(const char *build, const char *name, char *out,
                        size_t len)
{
    char cand[PATH_MAX + 64];
    snprintf(cand, sizeof(cand), "%s/../scripts/%s", build, name);
    cr_assert(realpath(cand, out) && access(out, X_OK) == 0,
              "cannot find scripts/%s next to the build directory %s", name,
              build);
    (void)len;
}

static bool can_isolate(void)
{
    if (geteuid() == 0)
        return true;
    const char *argv[] = { "unshare", "--net", "--map-root-user", "true",
                           NULL };
    return rp_run(argv, NULL, "/dev/null", 10000) == 0;
}

struct rp_env *rp_env_start(bool need_isolate)
{
    cr_assert_null(current, "one environment per test");
    if (need_isolate && !can_isolate())
        cr_skip_test("--isolate needs root or user namespaces "
                     "(unshare --net --map-root-user failed): skipped");
    struct rp_env *e = calloc(1, sizeof(*e));
    cr_assert(e);
    snprintf(e->dir, sizeof(e->dir), "/tmp/pvc-run-XXXXXX");
    cr_assert(mkdtemp(e->dir), "mkdtemp: %m");
    /* --user tests: other users must reach the guest daemon's socket. */
    chmod(e->dir, 0711);
    snprintf(e->sim_dir, sizeof(e->sim_dir), "%s/sim", e->dir);
    snprintf(e->audit, sizeof(e->audit), "%s/audit.jsonl", e->dir);
    char build[PATH_MAX / 2];
    build_dir(build, sizeof(build));
    const char *run = getenv("PVC_RUN");
    if (run && *run)
        snprintf(e->script, sizeof(e->script), "%s", run);
    else
        find_script(build, "pvcalls-run", e->script, sizeof(e->script));
    find_script(build, "pvcalls-entrypoint", e->entrypoint,
                sizeof(e->entrypoint));
    snprintf(e->progs, sizeof(e->progs), "%s/progs", build);
    current = e;
    return e;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static int stop_sim(struct rp_env *e)
{
    const char *argv[] = { e->script, "--stop", "--sim-dir", e->sim_dir,
                           NULL };
    return rp_run(argv, NULL, "/dev/null", STOP_TIMEOUT_MS);
}

void rp_env_stop(struct rp_env *e)
{
    cr_assert_eq(e, current);
    int status = stop_sim(e);
    current = NULL;
    nftw(e->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(e);
    rp_assert_exit(status, 0, "pvcalls-run --stop");
}

void rp_cleanup(void)
{
    struct rp_env *e = current;
    if (!e)
        return;
    current = NULL;
    stop_sim(e);
    nftw(e->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(e);
}

const char *rp_path(struct rp_env *e, const char *name, char *buf,
                    size_t len)
{
    snprintf(buf, len, "%s/%s", e->dir, name);
    return buf;
}

/* ---- children --------------------------------------------------------- */

/* environ plus extra, built before fork(). */
static char **child_env(const char *const extra[])
{
    size_t n = 0, n_extra = 0;
    while (environ[n])
        n++;
    while (extra && extra[n_extra])
        n_extra++;
    char **env = calloc(n + n_extra + 1, sizeof(*env));
    cr_assert(env);
    memcpy(env, environ, n * sizeof(*env));
    for (size_t i = 0; i < n_extra; i++)
        env[n + i] = (char *)extra[i];
    return env;
}

/* Between fork() and exec(): async-signal-safe calls only. */
static void child_exec(pid_t parent, const char *const argv[], char **env,
                       int in_fd, int out_fd)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
        _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    sigaction(SIGPIPE, &dfl, NULL);
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0)
        _exit(127);
    syscall(SYS_close_range, 3u, ~0u, 0u);
    execvpe(argv[0], (char *const *)argv, env);
    _exit(127);
}

void rp_spawn(struct rp_child *c, const char *const argv[],
              const char *const extra_env[], const char *in_path,
              const char *out_path)
{
    *c = (struct rp_child){ .pid = 0, .pidfd = -1, .out_rd = -1 };
    int in_fd = open(in_path ? in_path : "/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert(in_fd >= 0, "open %s: %m", in_path);
    int out_fd, pipefd[2];
    if (out_path) {
        out_fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                      0644);
        cr_assert(out_fd >= 0, "open %s: %m", out_path);
    } else {
        cr_assert(pipe2(pipefd, O_CLOEXEC) == 0, "pipe: %m");
        c->out_rd = pipefd[0];
        out_fd = pipefd[1];
    }
    char **env = child_env(extra_env);
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %m");
    if (pid == 0)
        child_exec(parent, argv, env, in_fd, out_fd);
    free(env);
    close(in_fd);
    close(out_fd);
    c->pid = pid;
    c->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    cr_assert(c->pidfd >= 0, "pidfd_open: %m");
}

bool rp_read_line(struct rp_child *c, char *buf, size_t len, int timeout_ms)
{
    size_t got = 0;
    int64_t deadline = hn_now_ms() + timeout_ms;
    while (got + 1 < len) {
        int left = (int)(deadline - hn_now_ms());
        struct pollfd pfd = { .fd = c->out_rd, .events = POLLIN };
        if (left <= 0 || poll(&pfd, 1, left) == 0)
            break;
        /* One byte at a time: the rest stays in the pipe for the next
         * call (these are short status lines). */
        ssize_t n = read(c->out_rd, buf + got, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (buf[got] == '\n') {
            buf[got] = '\0';
            return true;
        }
        got++;
    }
    buf[got] = '\0';
    return false;
}

int rp_wait(struct rp_child *c, int timeout_ms)
{
    struct pollfd pfd = { .fd = c->pidfd, .events = POLLIN };
    int r;
    while ((r = poll(&pfd, 1, timeout_ms)) < 0 && errno == EINTR)
        ;
    int status = 0;
    if (r == 0) {
        kill(c->pid, SIGKILL);
        status = -ETIMEDOUT;
        waitpid(c->pid, NULL, 0);
    } else {
        while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    close(c->pidfd);
    if (c->out_rd >= 0)
        close(c->out_rd);
    *c = (struct rp_child){ .pid = 0, .pidfd = -1, .out_rd = -1 };
    return status;
}

void rp_signal(struct rp_child *c, int sig)
{
    if (c->pid > 0)
        kill(c->pid, sig);
}

int rp_run(const char *const argv[], const char *in_path,
           const char *out_path, int timeout_ms)
{
    struct rp_child c;
    rp_spawn(&c, argv, NULL, in_path, out_path ? out_path : "/dev/null");
    return rp_wait(&c, timeout_ms);
}

void rp_shim_argv(struct rp_env *e, bool isolate, const char *const opts[],
                  const char *const prog[], const char *argv[RP_MAX_ARGS])
{
    size_t n = 0;
    argv[n++] = e->script;
    if (isolate)
        argv[n++] = "--isolate";
    argv[n++] = "--sim-dir";
    argv[n++] = e->sim_dir;
    argv[n++] = "--audit";
    argv[n++] = e->audit;
    for (size_t i = 0; opts && opts[i]; i++) {
        cr_assert(n < RP_MAX_ARGS - 2);
        argv[n++] = opts[i];
    }
    argv[n++] = "--";
    for (size_t i = 0; prog[i]; i++) {
        cr_assert(n < RP_MAX_ARGS - 1);
        argv[n++] = prog[i];
    }
    argv[n] = NULL;
}

int rp_shim_run(struct rp_env *e, const char *const opts[],
                const char *const prog[], const char *in_path,
                const char *out_path, int timeout_ms)
{
    const char *argv[RP_MAX_ARGS];
    rp_shim_argv(e, true, opts, prog, argv);
    return rp_run(argv, in_path, out_path, timeout_ms);
}

void rp_assert_exit(int status, int want, const char *what)
{
    char why[64];
    if (status < 0)
        snprintf(why, sizeof(why), "did not finish");
    else if (WIFSIGNALED(status))
        snprintf(why, sizeof(why), "killed by signal %d", WTERMSIG(status));
    else
        snprintf(why, sizeof(why), "exit %d", WEXITSTATUS(status));
    cr_assert(status >= 0 && WIFEXITED(status) &&
                  WEXITSTATUS(status) == want,
              "%s: %s, expected exit %d", what, why, want);
}

/* ---- files ------------------------------------------------------------ */

void rp_sha256(const char *path, char out[65])
{
    const char *argv[] = { "sha256sum", path, NULL };
    struct rp_child c;
    rp_spawn(&c, argv, NULL, NULL, NULL);
    char line[256];
    bool ok = rp_read_line(&c, line, sizeof(line), 60000);
    rp_assert_exit(rp_wait(&c, 60000), 0, "sha256sum");
    cr_assert(ok && strlen(line) > 64 && line[64] == ' ',
              "sha256sum %s: \"%s\"", path, line);
    memcpy(out, line, 64);
    out[64] = '\0';
}

void rp_make_file(const char *path, size_t len, unsigned long long seed)
{
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s: %m", path);
    struct hn_stream s;
    hn_stream_init(&s, seed);
    static char buf[1 << 16];
    for (size_t done = 0; done < len;) {
        size_t n = len - done < sizeof(buf) ? len - done : sizeof(buf);
        hn_stream_fill(&s, buf, n);
        cr_assert_eq(fwrite(buf, 1, n, f), n, "write %s: %m", path);
        done += n;
    }
    cr_assert_eq(fclose(f), 0, "close %s: %m", path);
}

char *rp_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s: %m", path);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    cr_assert(buf);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert(buf);
        }
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

const char *rp_source_path(const struct rp_env *e, const char *rel,
                           char *buf, size_t len)
{
    /* e->entrypoint is SRC/scripts/pvcalls-entrypoint (a realpath). */
    char root[PATH_MAX];
    snprintf(root, sizeof(root), "%s", e->entrypoint);
    snprintf(buf, len, "%s/../%s", dirname(root), rel);
    cr_assert(access(buf, R_OK) == 0, "%s: %m", buf);
    return buf;
}

void rp_assert_exit_output(int status, int want, const char *what,
                           const char *out_path)
{
    if (status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == want)
        return;
    /* Copied out and freed before asserting: the assertion ends the
     * test, which must not leak. */
    char *text = rp_slurp(out_path);
    char head[2048];
    snprintf(head, sizeof(head), "%s", text);
    free(text);
    cr_log_error("%s printed:\n%s", what, head);
    rp_assert_exit(status, want, what);
}

void rp_assert_same_output(const char *native, const char *shim)
{
    const char *a = native, *b = shim;
    unsigned line = 1;
    while (*a && *a == *b) {
        if (*a == '\n')
            line++;
        a++, b++;
    }
    if (!*a && !*b)
        return;
    while (a > native && a[-1] != '\n')
        a--;
    while (b > shim && b[-1] != '\n')
        b--;
    cr_assert_fail("line %u differs:\n  native: %.*s\n  shim:   %.*s", line,
                   (int)strcspn(a, "\n"), a, (int)strcspn(b, "\n"), b);
}
