/*
 * Programs that close every fd they do not know (ssh, daemons, shells
 * before exec) must not break the shim.
 *
 *   exec_closeall HOW PORT FIFO      HOW: close_range, closefrom or proc
 *
 * An epoll instance, socket A (in it) and socket B are made, in that
 * order, and used (so the shim has opened what it opens for them: the
 * daemon connection, event-channel fds, wake fds, the hidden epoll); a
 * second thread uses A too.  Then every fd above A's number is closed,
 * as a server keeping one connection before it execs a handler would:
 * close_range(A + 1, ~0U, 0), closefrom(A + 1), or close() of each
 * number above A listed in /proc/self/fd.  Whatever the shim opened for
 * A after A itself is in that range.  A must still move data and wake
 * epoll_wait (from this thread and a new one), a new socket C must get
 * the lowest free number, connect and move data, and B must be gone for
 * real: the program says "closed R", waits for the test (which checks
 * that B was released), then exits 0.  R is 1 if some close() answered
 * EBADF (the shim's own fds do: the program never had them).
 */
#include "exec_util.h"

#include <dirent.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/syscall.h>

#define LEN (64u << 10)

/* Echo through sock after epoll says it is readable. */
static void echo_via_epoll(int ep, int sock, unsigned seed)
{
    enum { N = 4096 };
    unsigned char out[N], in[N];
    for (unsigned i = 0; i < N; i++)
        out[i] = eu_byte(i, seed);
    eu_write_all(sock, out, N);
    size_t got = 0;
    while (got < N) {
        struct epoll_event ev;
        int n = epoll_wait(ep, &ev, 1, 10000);
        EU_CHECK(n == 1 && ev.data.fd == sock, "epoll_wait");
        ssize_t r = read(sock, in + got, N - got);
        EU_CHECK(r > 0, "read");
        got += (size_t)r;
    }
    EU_CHECK(!memcmp(in, out, N), "echo via epoll");
}

struct waiter {
    int sock;
};

/* Another thread: its own daemon connection and wake fd. */
static void *thread_echo(void *arg)
{
    struct waiter *w = arg;
    eu_echo(w->sock, LEN, 5);
    return NULL;
}

static int close_proc_listed(int from)
{
    int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    EU_CHECK(dir >= 0, "open /proc/self/fd");
    int fds[4096], n = 0, refused = 0;
    DIR *d = fdopendir(dir);
    EU_CHECK(d != NULL, "fdopendir");
    struct dirent *de;
    while ((de = readdir(d)) && n < 4096) {
        int fd = atoi(de->d_name);
        if (de->d_name[0] != '.' && fd >= from && fd != dir)
            fds[n++] = fd;
    }
    closedir(d);
    for (int i = 0; i < n; i++)
        if (close(fds[i]) < 0) {
            EU_CHECK(errno == EBADF, "close(%d)", fds[i]);
            refused++;
        }
    return refused;
}

int main(int argc, char **argv)
{
    eu_name = "exec_closeall";
    EU_CHECK(argc == 4, "usage: exec_closeall HOW PORT FIFO");
    int port = eu_port(argv[2]);
    int ep = epoll_create1(0);
    EU_CHECK(ep >= 0, "epoll_create1");
    int a = eu_connect(port, 0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = a };
    EU_CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, a, &ev) == 0, "epoll_ctl");
    int b = eu_connect(port, 0);
    EU_CHECK(ep < a && a < b, "fd order %d %d %d", ep, a, b);
    echo_via_epoll(ep, a, 1);
    eu_echo(b, LEN, 2);
    pthread_t t;
    struct waiter w = { .sock = a };
    EU_CHECK(pthread_create(&t, NULL, thread_echo, &w) == 0, "thread");
    EU_CHECK(pthread_join(t, NULL) == 0, "join");

    int refused = 0;
    if (!strcmp(argv[1], "close_range"))
        EU_CHECK(close_range((unsigned)a + 1, ~0U, 0) == 0, "close_range");
    else if (!strcmp(argv[1], "closefrom"))
        closefrom(a + 1);
    else if (!strcmp(argv[1], "proc"))
        refused = close_proc_listed(a + 1);
    else
        eu_die("unknown way to close: %s", argv[1]);
    EU_CHECK(fcntl(b, F_GETFD) < 0 && errno == EBADF, "B still open");

    echo_via_epoll(ep, a, 3);
    eu_echo(a, LEN, 4);
    EU_CHECK(pthread_create(&t, NULL, thread_echo, &w) == 0 &&
                 pthread_join(t, NULL) == 0,
             "thread after the close");
    int c = eu_connect(port, 0);
    EU_CHECK(c == a + 1, "C got fd %d, not %d", c, a + 1);
    eu_echo(c, LEN, 6);
    eu_say("closed %d", refused > 0);
    eu_wait_go(argv[3]);
    return 0;
}
