/*
 * pvcb-echo: the server side of rr-64, connect and idle-10k.  One thread,
 * one epoll set: it accepts every connection and echoes back whatever
 * each one sends until the peer closes.
 *
 *   pvcb-echo ADDR PORT [HOLD_TARGET]
 *
 * Prints "listening PID" once it listens (the harness waits for that
 * line, and measures PID: the server itself, not a wrapper around it).
 * With HOLD_TARGET, also prints "held N" each time the number of open
 * connections first reaches a multiple of 250 or HOLD_TARGET, so that idle-10k
 * knows that the server, not only the kernel's backlog, holds them; and
 * "stopped N WHY" if accepting fails for lack of a resource (EMFILE,
 * ENOMEM...), after which it only serves the N it holds.
 * Exits 0 on SIGTERM or SIGINT.
 */
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BACKLOG 4096
#define EVENTS 256
#define BUF_SIZE 65536
/* How often "held N" is printed on the way to HOLD_TARGET. */
#define PROGRESS_EVERY 250

static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
}

static int listen_on(const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0)
        pvcb_die("socket");
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        pvcb_die("setsockopt SO_REUSEADDR");
    if (bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0)
        pvcb_die("bind");
    if (listen(fd, BACKLOG) < 0)
        pvcb_die("listen");
    return fd;
}

static void watch(int ep, int fd)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        pvcb_die("epoll_ctl");
}

/* Each count reported once, on the way up (connections come and go in
 * other workloads). */
static void report_held(long held, long target)
{
    static long reported;
    if (target > 0 && held > reported &&
        (held == target || held % PROGRESS_EVERY == 0)) {
        reported = held;
        printf("held %ld\n", held);
        fflush(stdout);
    }
}

/* Out of a resource: accepting again would fail the same way at once,
 * and the listener, level-triggered, would spin.  So stop accepting, say
 * how far it got ("stopped N WHY"), and keep serving what is held. */
static void stop_accepting(int ep, int lfd, long held)
{
    printf("stopped %ld accept: %s\n", held, strerror(errno));
    fflush(stdout);
    epoll_ctl(ep, EPOLL_CTL_DEL, lfd, NULL);
}

/* Accept everything queued.  Connections stay blocking: a reply is at
 * most what one read returned, which the peer is waiting to read. */
static void accept_all(int ep, int lfd, long *held, long target)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
                errno == ECONNABORTED)
                return;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) {
                stop_accepting(ep, lfd, *held);
                return;
            }
            pvcb_die("accept");
        }
        pvcb_nodelay(fd);
        watch(ep, fd);
        report_held(++*held, target);
    }
}

/* Echo what one read returns; close on EOF or error. */
static void echo_once(int fd, char *buf, long *held)
{
    ssize_t n = recv(fd, buf, BUF_SIZE, 0);
    if (n < 0 && errno == EINTR)
        return;
    if (n > 0 && pvcb_write_all(fd, buf, (size_t)n) == 0)
        return;
    close(fd); /* also leaves the epoll set */
    --*held;
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4)
        pvcb_usage("ADDR PORT [HOLD_TARGET]");
    struct sockaddr_in sa;
    pvcb_parse_addr(argv[1], argv[2], &sa);
    long target = argc == 4 ? pvcb_parse_count(argv[3], "target", 1 << 24)
                            : 0;
    pvcb_raise_nofile();
    struct sigaction act = { .sa_handler = on_stop };
    sigaction(SIGTERM, &act, NULL);
    sigaction(SIGINT, &act, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = listen_on(&sa);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        pvcb_die("epoll_create1");
    watch(ep, lfd);
    char *buf = malloc(BUF_SIZE);
    if (!buf)
        pvcb_die("malloc");
    printf("listening %d\n", (int)getpid());
    fflush(stdout);

    long held = 0;
    struct epoll_event evs[EVENTS];
    while (!stopping) {
        int n = epoll_wait(ep, evs, EVENTS, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            pvcb_die("epoll_wait");
        for (int i = 0; i < n; i++) {
            if (evs[i].data.fd == lfd)
                accept_all(ep, lfd, &held, target);
            else
                echo_once(evs[i].data.fd, buf, &held);
        }
    }
    free(buf);
    return 0;
}
