/*
 * pvcalls-simd: the simulated platform's broker.  It plays the hypervisor
 * (grant tables, event channels, domains; the files beside this one) and hosts the
 * simulated xenstore (sim/store/), all in one epoll loop.
 *
 *   pvcalls-simd [--dir DIR] [--foreground] [--ready-fd N]
 *
 * DIR defaults to $PVC_SIM_DIR, else pvc_sim_default_dir().  Without
 * --foreground the broker detaches and the parent exits 0 once the child
 * accepts connections (1 if it failed to start).  With --ready-fd N it
 * writes "ready\n" to fd N at that moment and closes it, so that callers
 * need not sleep.  SIGTERM/SIGINT: free everything, unlink the sockets,
 * exit 0.
 */
#include "broker.h"
#include "../store/store.h"

#include "pvc/daemon.h"
#include "pvc/log.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

struct options {
    char dir[PATH_MAX / 2];
    bool foreground;
    int ready_fd;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: pvcalls-simd [--dir DIR] [--foreground] "
                 "[--ready-fd N]\n");
}

static int parse_fd(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < 0 || v > INT_MAX ||
        fcntl((int)v, F_GETFD) < 0)
        return -1;
    return (int)v;
}

/* DIR made absolute, so that the daemon can chdir("/"). */
static int set_dir(struct options *o, const char *dir)
{
    char cwd[PATH_MAX];
    int n;
    if (dir[0] == '/')
        n = snprintf(o->dir, sizeof(o->dir), "%s", dir);
    else if (getcwd(cwd, sizeof(cwd)))
        n = snprintf(o->dir, sizeof(o->dir), "%s/%s", cwd, dir);
    else
        return -1;
    return n > 0 && (size_t)n < sizeof(o->dir) ? 0 : -1;
}

static int parse_args(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        { "dir", required_argument, NULL, 'd' },
        { "foreground", no_argument, NULL, 'f' },
        { "ready-fd", required_argument, NULL, 'r' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    const char *dir = NULL;
    int ch;
    o->ready_fd = -1;
    while ((ch = getopt_long(argc, argv, "d:fr:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd': dir = optarg; break;
        case 'f': o->foreground = true; break;
        case 'r':
            if ((o->ready_fd = parse_fd(optarg)) < 0) {
                fprintf(stderr, "pvcalls-simd: bad --ready-fd %s\n", optarg);
                return -1;
            }
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return -1;
    }
    char def[PATH_MAX / 2];
    if (!dir)
        dir = getenv("PVC_SIM_DIR");
    if (!dir || !*dir)
        dir = pvc_sim_default_dir(def, sizeof(def));
    if (set_dir(o, dir) < 0) {
        fprintf(stderr, "pvcalls-simd: directory name too long\n");
        return -1;
    }
    return 0;
}

/* mkdir -p with mode for the last component (parents 0755 too). */
static int make_dir(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST)
        return -1;
    struct stat st;
    if (stat(tmp, &st) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* The broker holds two eventfds per channel and a memfd per share:
 * raise the fd limit as far as we may (root may go past the hard limit,
 * up to fs.nr_open). */
static void raise_fd_limit(void)
{
    struct rlimit rl = { .rlim_cur = 1u << 20, .rlim_max = 1u << 20 };
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        return;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void on_signal(void *ctx, uint32_t events)
{
    (void)events;
    struct broker *b = ctx;
    struct signalfd_siginfo si;
    if (read(b->signal_fd, &si, sizeof(si)) == sizeof(si)) {
        pvc_debug("signal %u: shutting down", si.ssi_signo);
        b->quit = true;
    }
}

static int broker_start(struct broker *b, const struct options *o)
{
    char path[PATH_MAX];
    snprintf(b->dir, sizeof(b->dir), "%s", o->dir);
    if (make_dir(b->dir, 0755) < 0) {
        pvc_err("cannot create %s: %s", b->dir, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof(path), "%s/%s", b->dir, SIM_STORE_DIR);
    if (make_dir(path, 0755) < 0) {
        pvc_err("cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    b->loop = pvc_loop_new();
    if (!b->loop || pvc_daemon_signals(b->loop, &b->signal_watch, &b->signal_fd, on_signal, b) < 0) {
        pvc_err("cannot set up the event loop: %s", strerror(errno));
        return -1;
    }
    /* The socket first: if another broker is live, touch nothing of its. */
    snprintf(path, sizeof(path), "%s/%s", b->dir, SIM_BROKER_SOCK);
    if (conn_listen_start(b, path) < 0) {
        if (errno == EADDRINUSE)
            pvc_err("a broker is already running on %s", path);
        else if (errno == EEXIST)
            pvc_err("%s exists and is not a socket", path);
        else
            pvc_err("cannot listen on %s: %s", path, strerror(errno));
        return -1;
    }
    b->store = sim_store_new(b->loop);
    if (!b->store) {
        pvc_err("cannot start the store: %s", strerror(errno));
        return -1;
    }
    int rc = domain_add_with_store(b, 0);
    if (rc) {
        pvc_err("cannot create domain 0's store socket: %s", strerror(-rc));
        return -1;
    }
    return 0;
}

static void broker_stop(struct broker *b)
{
    if (!b->loop)
        return;
    conn_close_all(b);
    if (b->listen_fd >= 0) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", b->dir, SIM_BROKER_SOCK);
        conn_listen_stop(b);
        unlink(path);
    }
    domains_free_all(b);
    if (b->store)
        sim_store_free(b->store);
    if (b->signal_fd >= 0) {
        pvc_loop_del(b->loop, &b->signal_watch);
        close(b->signal_fd);
    }
    pvc_loop_free(b->loop);
}

/* Fork; the parent waits for the child's word on a pipe and exits with
 * it.  Returns the write end the child reports on. */
static int daemonize(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        close(p[1]);
        char c = 0;
        ssize_t n;
        while ((n = read(p[0], &c, 1)) < 0 && errno == EINTR)
            ;
        _exit(n == 1 && c == 'r' ? 0 : 1);
    }
    close(p[0]);
    setsid();
    if (chdir("/") < 0)
        return -1;
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        close(null);
    }
    return p[1];
}

static void announce_ready(const struct options *o, int parent_fd)
{
    pvc_daemon_ready(o->ready_fd);
    if (parent_fd >= 0) {
        if (write(parent_fd, "r", 1) < 0)
            pvc_warn("cannot tell the parent: %s", strerror(errno));
        close(parent_fd);
    }
}

int main(int argc, char **argv)
{
    struct options o = { 0 };
    if (parse_args(argc, argv, &o) < 0)
        return 2;
    int parent_fd = -1;
    if (!o.foreground && (parent_fd = daemonize()) < 0) {
        pvc_err("cannot detach: %s", strerror(errno));
        return 1;
    }
    raise_fd_limit();
    struct broker b = { .listen_fd = -1, .signal_fd = -1 };
    int status = 0;
    if (broker_start(&b, &o) < 0) {
        status = 1;
        goto out;
    }
    pvc_debug("listening in %s", b.dir);
    announce_ready(&o, parent_fd);
    parent_fd = -1;
    while (!b.quit) {
        if (pvc_loop_run_once(b.loop, -1) < 0) {
            pvc_err("event loop: %s", strerror(errno));
            status = 1;
            break;
        }
    }
out:
    if (parent_fd >= 0)
        close(parent_fd);
    broker_stop(&b);
    return status;
}
