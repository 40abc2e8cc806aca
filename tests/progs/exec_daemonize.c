/*
 * Daemons and privilege drops with sockets open.
 *
 *   exec_daemonize daemon PORT
 *       Socket S is connected and used; a child calls daemon(0, 0) (fork,
 *       setsid, stdio to /dev/null); the daemon echoes through S, makes
 *       and uses a new socket T, and reports "ok" (or what failed) on a
 *       pipe, while the original process closes its own copy of S at
 *       once.  The original prints the report and exits 0 if it is "ok".
 *   exec_daemonize setuid PORT
 *       (root) Socket S is connected and used; then setgid/setuid to
 *       65534 (nobody) as nginx workers do; S keeps working, and new
 *       sockets work both from this thread and from a new one (a new
 *       daemon connection, made as nobody).  Prints "ok".
 */
#include "exec_util.h"

#include <grp.h>
#include <pthread.h>
#include <sys/wait.h>

#define LEN (64u << 10)

static int port;

static void daemon_side(int s, int report)
{
    if (daemon(0, 0) < 0)
        _exit(2);
    /* daemon() made stderr /dev/null: failures go to the report. */
    if (dup2(report, 2) != 2)
        _exit(3);
    eu_echo(s, LEN, 21);
    int t = eu_connect(port, 0);
    eu_echo(t, LEN, 22);
    close(t);
    close(s);
    eu_write_all(report, "ok", 2);
    _exit(0);
}

static int run_daemon(void)
{
    int s = eu_connect(port, 0);
    eu_echo(s, LEN, 20);
    int p[2];
    EU_CHECK(pipe2(p, O_CLOEXEC) == 0, "pipe");
    pid_t pid = fork();
    EU_CHECK(pid >= 0, "fork");
    if (pid == 0) {
        close(p[0]);
        daemon_side(s, p[1]);
    }
    close(p[1]);
    EU_CHECK(close(s) == 0, "close the parent's copy");
    int st;
    EU_CHECK(waitpid(pid, &st, 0) == pid, "waitpid"); /* daemon()'s fork */
    char report[512] = { 0 };
    size_t n = 0;
    ssize_t r;
    while (n < sizeof(report) - 1 &&
           (r = read(p[0], report + n, sizeof(report) - 1 - n)) > 0)
        n += (size_t)r;
    eu_say("%s", report);
    return strcmp(report, "ok") ? 1 : 0;
}

static void *fresh_socket(void *arg)
{
    (void)arg;
    int t = eu_connect(port, 0);
    eu_echo(t, LEN, 32);
    close(t);
    return NULL;
}

static int run_setuid(void)
{
    int s = eu_connect(port, 0);
    eu_echo(s, LEN, 30);
    EU_CHECK(setgroups(0, NULL) == 0 && setgid(65534) == 0 &&
                 setuid(65534) == 0,
             "dropping privileges");
    EU_CHECK(geteuid() == 65534, "still uid %d", (int)geteuid());
    eu_echo(s, LEN, 31);
    pthread_t t;
    EU_CHECK(pthread_create(&t, NULL, fresh_socket, NULL) == 0 &&
                 pthread_join(t, NULL) == 0,
             "thread");
    fresh_socket(NULL);
    close(s);
    eu_say("ok");
    return 0;
}

int main(int argc, char **argv)
{
    eu_name = "exec_daemonize";
    EU_CHECK(argc == 3, "usage: exec_daemonize daemon|setuid PORT");
    port = eu_port(argv[2]);
    if (!strcmp(argv[1], "daemon"))
        return run_daemon();
    if (!strcmp(argv[1], "setuid"))
        return run_setuid();
    eu_die("unknown mode %s", argv[1]);
}
