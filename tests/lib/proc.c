/* Child processes for end-to-end tests: see proc.h. */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Does entry "NAME=..." set a name that one of extra also sets? */
static bool overridden(const char *entry, char *const extra[])
{
    const char *eq = strchr(entry, '=');
    size_t name_len = eq ? (size_t)(eq - entry) : strlen(entry);
    for (size_t i = 0; extra && extra[i]; i++)
        if (!strncmp(extra[i], entry, name_len) && extra[i][name_len] == '=')
            return true;
    return false;
}

/* The child's environment, built before fork() (malloc is not safe in
 * the child of a threaded process). */
static char **build_env(char *const extra[])
{
    size_t n = 0, n_extra = 0;
    while (environ[n])
        n++;
    while (extra && extra[n_extra])
        n_extra++;
    char **env = calloc(n + n_extra + 1, sizeof(*env));
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!overridden(environ[i], extra))
            env[k++] = environ[i];
    for (size_t i = 0; i < n_extra; i++)
        env[k++] = extra[i];
    return env;
}

/* In the child, between fork() and exec(): async-signal-safe calls only. */
static void child_exec(pid_t parent, char *const argv[], char **env,
                       int ready_wr)
{
    /* Die with the test, even if it crashes or is killed. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
        _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    sigaction(SIGPIPE, &dfl, NULL);
    int first_closed = 3;
    if (ready_wr >= 0) {
        if (ready_wr == PROC_READY_FD)
            fcntl(ready_wr, F_SETFD, 0);
        else if (dup2(ready_wr, PROC_READY_FD) < 0)
            _exit(127);
        first_closed = PROC_READY_FD + 1;
    }
    /* Nothing of the test's (listeners, rings) leaks into the daemon. */
    syscall(SYS_close_range, (unsigned)first_closed, ~0u, 0u);
    execve(argv[0], argv, env);
    _exit(127);
}

int proc_spawn(struct proc *p, char *const argv[], char *const extra_env[],
               bool with_ready)
{
    int pipefd[2] = { -1, -1 };
    *p = (struct proc){ .pid = 0, .pidfd = -1, .ready_rd = -1 };
    char **env = build_env(extra_env);
    if (!env)
        return -ENOMEM;
    if (with_ready && pipe2(pipefd, O_CLOEXEC) < 0) {
        free(env);
        return -errno;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        child_exec(parent, argv, env, pipefd[1]);
    int err = pid < 0 ? -errno : 0;
    free(env);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    if (err) {
        if (pipefd[0] >= 0)
            close(pipefd[0]);
        return err;
    }
    p->pid = pid;
    p->ready_rd = pipefd[0];
    /* Not reaped yet, so the pid cannot have been reused. */
    p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (p->pidfd < 0) {
        err = -errno;
        proc_kill(p);
        return err;
    }
    return 0;
}

int proc_wait_ready(struct proc *p, int timeout_ms)
{
    char buf[64];
    size_t got = 0;
    while (got < 5) {
        struct pollfd pfd = { .fd = p->ready_rd, .events = POLLIN };
        int r = poll(&pfd, 1, timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            return -ETIMEDOUT;
        ssize_t n = read(p->ready_rd, buf + got, sizeof(buf) - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -EPIPE;
        got += (size_t)n;
    }
    close(p->ready_rd);
    p->ready_rd = -1;
    return strncmp(buf, "ready", 5) ? -EPROTO : 0;
}

int proc_wait_exit(struct proc *p, int timeout_ms)
{
    struct pollfd pfd = { .fd = p->pidfd, .events = POLLIN };
    int r;
    while ((r = poll(&pfd, 1, timeout_ms)) < 0 && errno == EINTR)
        ;
    if (r == 0)
        return -ETIMEDOUT;
    int status;
    while (waitpid(p->pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    p->pid = 0;
    close(p->pidfd);
    p->pidfd = -1;
    if (p->ready_rd >= 0) {
        close(p->ready_rd);
        p->ready_rd = -1;
    }
    return status;
}

void proc_kill(struct proc *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        p->pid = 0;
    }
    if (p->pidfd >= 0)
        close(p->pidfd);
    if (p->ready_rd >= 0)
        close(p->ready_rd);
    p->pidfd = p->ready_rd = -1;
}

const char *proc_status_str(int status, char *buf, size_t len)
{
    if (status < 0)
        snprintf(buf, len, "not finished (%s)", strerror(-status));
    else if (WIFEXITED(status))
        snprintf(buf, len, "exit %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "status %#x", status);
    return buf;
}
