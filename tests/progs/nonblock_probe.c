/*
 * nonblock_probe: non-blocking sockets, readiness and timeouts, one output
 * line per observation, so that a run under the shim can be compared with
 * a native run of the same binary line by line (tests/e2e/test_run_errno.c).
 * Both ends are the probe's own loopback sockets, so under pvcalls-run
 * --isolate both cross PV Calls.
 *
 * Times are printed as classes (">=200ms", "<100ms"), never raw.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "TIMEOUT\n";
    ssize_t n = write(STDOUT_FILENO, msg, sizeof(msg) - 1);
    (void)n;
    _exit(3);
}

static void report(const char *name, long ret, int err)
{
    if (ret < 0)
        printf("%s: -1 %s\n", name, strerrorname_np(err));
    else
        printf("%s: %ld\n", name, ret);
    fflush(stdout);
}

/* Evaluate the call, then read errno (argument order is unspecified). */
#define REPORT(name, call)                                                   \
    do {                                                                     \
        errno = 0;                                                           \
        long ret_ = (call);                                                  \
        report(name, ret_, errno);                                           \
    } while (0)

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void elapsed(const char *name, long start, long bound)
{
    long ms = now_ms() - start;
    printf("%s elapsed: %s%ldms\n", name, ms >= bound ? ">=" : "<", bound);
    fflush(stdout);
}

static int listener(struct sockaddr_in *a)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    a->sin_family = AF_INET;
    a->sin_port = 0;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(*a);
    if (l < 0 || bind(l, (struct sockaddr *)a, len) < 0 || listen(l, 8) < 0 ||
        getsockname(l, (struct sockaddr *)a, &len) < 0) {
        perror("listener");
        exit(2);
    }
    return l;
}

static short poll1(int fd, short events, int ms)
{
    struct pollfd p = { .fd = fd, .events = events };
    int r = poll(&p, 1, ms);
    return r < 0 ? -1 : p.revents;
}

/* Non-blocking listener: EAGAIN, readiness, accept4 flags. */
static int accept_cases(int l, const struct sockaddr_in *a, int *client)
{
    REPORT("accept empty nonblocking", accept(l, NULL, NULL));
    printf("poll listener empty: %#x\n", poll1(l, POLLIN, 0));
    *client = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    errno = 0;
    int r = connect(*client, (const struct sockaddr *)a, sizeof(*a));
    printf("connect nonblocking: %s\n",
           r == 0 || errno == EINPROGRESS ? "0 or EINPROGRESS"
                                          : strerrorname_np(errno));
    printf("poll listener after connect: %#x\n", poll1(l, POLLIN, 5000));
    printf("poll client: %#x\n", poll1(*client, POLLOUT, 5000));
    int err = -1;
    socklen_t len = sizeof(err);
    getsockopt(*client, SOL_SOCKET, SO_ERROR, &err, &len);
    printf("client SO_ERROR: %d\n", err);
    REPORT("connect again once connected", connect(*client,
           (const struct sockaddr *)a, sizeof(*a)) == 0 ? 0 : -1);
    REPORT("connect a third time", connect(*client,
           (const struct sockaddr *)a, sizeof(*a)));
    int s = accept4(l, NULL, NULL, SOCK_NONBLOCK);
    REPORT("accept4 nonblock", s < 0 ? -1 : 0);
    printf("accepted O_NONBLOCK: %d\n", (fcntl(s, F_GETFL) & O_NONBLOCK) != 0);
    REPORT("accept drained", accept(l, NULL, NULL));
    printf("poll listener drained: %#x\n", poll1(l, POLLIN, 0));
    return s;
}

/* Empty and filled rings on non-blocking sockets. */
static void data_cases(int s, int c)
{
    char buf[64];
    REPORT("recv empty nonblocking", recv(s, buf, sizeof(buf), 0));
    printf("poll connected idle: %#x\n", poll1(s, POLLIN | POLLOUT, 0));
    REPORT("send", send(c, "hello", 5, 0));
    printf("poll after send: %#x\n", poll1(s, POLLIN, 5000));
    REPORT("recv", recv(s, buf, sizeof(buf), 0));
    int fl = fcntl(s, F_GETFL);
    fcntl(s, F_SETFL, fl & ~O_NONBLOCK);
    REPORT("recv MSG_DONTWAIT on blocking", recv(s, buf, sizeof(buf),
                                                 MSG_DONTWAIT));
    fd_set r;
    FD_ZERO(&r);
    FD_SET(s, &r);
    struct timeval tv = { 0, 100000 };
    long t0 = now_ms();
    REPORT("select idle 100ms", select(s + 1, &r, NULL, NULL, &tv));
    elapsed("select idle", t0, 100);
}

/* SO_RCVTIMEO / SO_SNDTIMEO on blocking calls. */
static void timeout_cases(int l, int s, int c)
{
    struct timeval tv = { 0, 200000 }, got;
    socklen_t len = sizeof(got);
    char buf[64];
    REPORT("set SO_RCVTIMEO", setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv,
                                         sizeof(tv)));
    getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &got, &len);
    printf("get SO_RCVTIMEO: %ld.%06ld\n", (long)got.tv_sec,
           (long)got.tv_usec);
    long t0 = now_ms();
    REPORT("recv with SO_RCVTIMEO", recv(s, buf, sizeof(buf), 0));
    elapsed("recv with SO_RCVTIMEO", t0, 200);
    struct timeval bad = { 0, 1000000 };
    REPORT("set SO_RCVTIMEO bad usec", setsockopt(s, SOL_SOCKET, SO_RCVTIMEO,
                                                  &bad, sizeof(bad)));
    int fl = fcntl(l, F_GETFL);
    fcntl(l, F_SETFL, fl & ~O_NONBLOCK);
    setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    t0 = now_ms();
    REPORT("accept with SO_RCVTIMEO", accept(l, NULL, NULL));
    elapsed("accept with SO_RCVTIMEO", t0, 200);
    /* Fill until the send times out. */
    fl = fcntl(c, F_GETFL);
    fcntl(c, F_SETFL, fl & ~O_NONBLOCK);
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    static char chunk[1 << 16];
    long r;
    t0 = now_ms();
    errno = 0;
    while ((r = send(c, chunk, sizeof(chunk), 0)) > 0)
        errno = 0;
    report("send until SO_SNDTIMEO", r, errno);
    elapsed("send until SO_SNDTIMEO", t0, 200);
}

int main(void)
{
    signal(SIGALRM, on_alarm);
    alarm(30);
    struct sockaddr_in a;
    int l = listener(&a), c;
    int s = accept_cases(l, &a, &c);
    data_cases(s, c);
    timeout_cases(l, s, c);
    close(s);
    close(c);
    close(l);
    printf("done\n");
    return 0;
}
