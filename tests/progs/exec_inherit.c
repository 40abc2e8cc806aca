/*
 * A socket across exec, as sshd, inetd-style servers and shells use one.
 * Each first role opens a socket and execs this program again in a
 * second role that finds it (or not) under the same number.  Lines on
 * stdout tell the test where it is; FIFO is where the test says "go on".
 *
 *   exec_inherit keep PORT FIFO      connect to the echo server, send a
 *       few bytes, execv (fd kept); the new image reads their echo (it
 *       arrived across the exec), echoes 256 KiB, says "holding", waits,
 *       closes, says "closed", waits, exits
 *   exec_inherit noenv PORT FIFO     the same, but execve with an
 *       environment without LD_PRELOAD and PVC_* (the shim puts them back)
 *   exec_inherit spawn PORT FIFO     the same role run by posix_spawn
 *       (environment stripped too); the parent closes its copy at once
 *       and waits for the child
 *   exec_inherit cloexec PORT FIFO   a SOCK_CLOEXEC socket: gone in the
 *       new image (EBADF), which then connects afresh, says "gone",
 *       waits, exits
 *   exec_inherit connecting PORT -   non-blocking connect, exec while it
 *       is still in progress ("connecting"); the new image says
 *       "waiting", then polls for the result, sends "hi", says
 *       "connected"
 *   exec_inherit listen - -          listen on 127.0.0.1 (port printed as
 *       "port N"), exec; the new image accepts one connection, echoes
 *       one line back, exits
 *   exec_inherit optout - -          execve with LD_PRELOAD and PVC_*
 *       stripped; the new image says "shim" or "no shim" (whether
 *       LD_PRELOAD names the shim): "no shim" if PVC_NO_INHERIT=1
 *   exec_inherit static PORT ERRFILE one socket kept and one CLOEXEC
 *       ("fds K C"), stderr into ERRFILE, exec of /bin/busybox true (a
 *       statically linked program)
 */
#include "exec_util.h"

#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>

#define KEEP_LEN (256u << 10)
#define HELLO "before-exec"

extern char **environ;

static char self[4096];

/* This program again, in role `role` with fd and args. */
static void again(const char *role, int fd, const char *arg,
                  const char *arg2, char **env)
{
    char fds[16];
    snprintf(fds, sizeof(fds), "%d", fd);
    char *argv[] = { self, (char *)role, fds, (char *)arg, (char *)arg2,
                     NULL };
    if (env)
        execve(self, argv, env);
    else
        execv(self, argv);
    eu_die("exec %s", self);
}

/* environ without LD_PRELOAD and PVC_* (what a scrubbing program
 * passes on). */
static char **stripped_env(void)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 1, sizeof(char *));
    EU_CHECK(env != NULL, "calloc");
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "LD_PRELOAD=", 11) &&
            strncmp(environ[i], "PVC_", 4))
            env[k++] = environ[i];
    return env;
}

static int opened_with_hello(int port)
{
    int fd = eu_connect(port, 0);
    eu_write_all(fd, HELLO, strlen(HELLO));
    return fd;
}

/* ---- second roles ----------------------------------------------------- */

static void child_keep(int fd, const char *fifo)
{
    const char *pre = getenv("LD_PRELOAD");
    if (!pre || !strstr(pre, "libpvcalls")) {
        errno = ENOENT;
        eu_die("LD_PRELOAD without the shim after exec: %s", pre);
    }
    char buf[sizeof(HELLO)] = { 0 };
    eu_read_all(fd, buf, strlen(HELLO));
    if (strcmp(buf, HELLO)) {
        errno = EILSEQ;
        eu_die("bytes echoed across exec: \"%s\"", buf);
    }
    eu_echo(fd, KEEP_LEN, 7);
    eu_say("holding");
    eu_wait_go(fifo);
    EU_CHECK(close(fd) == 0, "close");
    eu_say("closed");
    eu_wait_go(fifo);
}

static void child_cloexec(int fd, const char *port, const char *fifo)
{
    EU_CHECK(fcntl(fd, F_GETFD) < 0 && errno == EBADF,
             "fd %d still open after exec", fd);
    int fresh = eu_connect(eu_port(port), 0);
    eu_echo(fresh, 4096, 3);
    eu_say("gone");
    eu_wait_go(fifo);
}

static void child_connecting(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    EU_CHECK(poll(&p, 1, 0) == 0, "connect no longer pending after exec");
    eu_say("waiting");
    EU_CHECK(poll(&p, 1, 20000) == 1 && (p.revents & POLLOUT),
             "poll for the connect's result");
    int err = -1;
    socklen_t len = sizeof(err);
    EU_CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0,
             "SO_ERROR");
    errno = err;
    EU_CHECK(err == 0, "the connect failed");
    int fl = fcntl(fd, F_GETFL);
    EU_CHECK(fl >= 0 && fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == 0, "F_SETFL");
    eu_write_all(fd, "hi", 2);
    eu_say("connected");
}

static void child_listen(int lfd)
{
    int fd = accept(lfd, NULL, NULL);
    EU_CHECK(fd >= 0, "accept on the inherited listener");
    char line[64];
    size_t n = 0;
    while (n < sizeof(line) - 1) {
        ssize_t r = read(fd, line + n, 1);
        EU_CHECK(r == 1, "read");
        if (line[n++] == '\n')
            break;
    }
    eu_write_all(fd, line, n);
    close(fd);
    close(lfd);
}

/* ---- first roles ------------------------------------------------------ */

static void first_spawn(int port, const char *fifo)
{
    int fd = opened_with_hello(port);
    char fds[16];
    snprintf(fds, sizeof(fds), "%d", fd);
    char *argv[] = { self, "child-keep", fds, (char *)fifo, "-", NULL };
    pid_t pid;
    int err = posix_spawn(&pid, self, NULL, NULL, argv, stripped_env());
    errno = err;
    EU_CHECK(err == 0, "posix_spawn");
    EU_CHECK(close(fd) == 0, "close the parent's copy");
    int st;
    EU_CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
    exit(WIFEXITED(st) ? WEXITSTATUS(st) : 1);
}

static void first_connecting(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    EU_CHECK(fd >= 0, "socket");
    struct sockaddr_in a = eu_loopback(port);
    EU_CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 &&
                 errno == EINPROGRESS,
             "non-blocking connect");
    eu_say("connecting");
    again("child-connecting", fd, "-", "-", NULL);
}

static void first_listen(void)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    EU_CHECK(lfd >= 0, "socket");
    struct sockaddr_in a = eu_loopback(0);
    a.sin_port = 0;
    socklen_t len = sizeof(a);
    EU_CHECK(bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
                 listen(lfd, 4) == 0 &&
                 getsockname(lfd, (struct sockaddr *)&a, &len) == 0,
             "listen");
    eu_say("port %d", ntohs(a.sin_port));
    again("child-listen", lfd, "-", "-", NULL);
}

static void first_static(int port, const char *errfile)
{
    int kept = eu_connect(port, 0);
    int gone = eu_connect(port, SOCK_CLOEXEC);
    eu_say("fds %d %d", kept, gone);
    int err = open(errfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    EU_CHECK(err >= 0 && dup2(err, 2) == 2, "stderr into %s", errfile);
    execl("/bin/busybox", "true", (char *)NULL);
    eu_die("exec /bin/busybox");
}

int main(int argc, char **argv)
{
    eu_name = "exec_inherit";
    EU_CHECK(argc >= 4, "usage: exec_inherit ROLE ARG ARG [ARG]");
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    EU_CHECK(n > 0, "readlink /proc/self/exe");
    self[n] = '\0';
    const char *role = argv[1], *a = argv[2], *b = argv[3];
    const char *c = argc > 4 ? argv[4] : "-";
    if (!strcmp(role, "keep"))
        again("child-keep", opened_with_hello(eu_port(a)), b, "-", NULL);
    else if (!strcmp(role, "noenv"))
        again("child-keep", opened_with_hello(eu_port(a)), b, "-",
              stripped_env());
    else if (!strcmp(role, "spawn"))
        first_spawn(eu_port(a), b);
    else if (!strcmp(role, "cloexec"))
        again("child-cloexec", eu_connect(eu_port(a), SOCK_CLOEXEC), a, b,
              NULL);
    else if (!strcmp(role, "connecting"))
        first_connecting(eu_port(a));
    else if (!strcmp(role, "listen"))
        first_listen();
    else if (!strcmp(role, "optout"))
        again("child-env", 0, "-", "-", stripped_env());
    else if (!strcmp(role, "child-env"))
        eu_say(getenv("LD_PRELOAD") && strstr(getenv("LD_PRELOAD"),
                                              "libpvcalls")
                   ? "shim" : "no shim");
    else if (!strcmp(role, "static"))
        first_static(eu_port(a), b);
    else if (!strcmp(role, "child-keep"))
        child_keep(eu_fd(a), b);
    else if (!strcmp(role, "child-cloexec"))
        child_cloexec(eu_fd(a), b, c);
    else if (!strcmp(role, "child-connecting"))
        child_connecting(eu_fd(a));
    else if (!strcmp(role, "child-listen"))
        child_listen(eu_fd(a));
    else
        eu_die("unknown role %s", role);
    return 0;
}
