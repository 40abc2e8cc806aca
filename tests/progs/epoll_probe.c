/*
 * epoll_probe: epoll, and poll/select on epoll fds, over TCP sockets and
 * pipes, one output line per observation.  tests/e2e/test_shim_epoll.c
 * runs it natively and under the shim and compares the outputs; each case
 * also checks what Linux does and exits non-zero at the first surprise,
 * so that the native run proves the expectations and the shim run is held
 * to them.  Event sets are printed sorted by their data, times as classes.
 *
 * The peer (PEER_ADDR PEER_PORT) is the test's loopback server, which
 * obeys one-byte commands on each connection:
 *   'w' N   write N bytes ('a', 'b', ...)
 *   'e'     echo everything from now on
 *   's'     shutdown(SHUT_WR)
 *   'r'     reset the connection (SO_LINGER 0, close)
 * The cases "pair", "listen" and "connect" use the probe's own listener
 * instead (under the shim, both ends cross PV Calls).
 *
 *   epoll_probe PEER_ADDR PEER_PORT CASE...
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LONG_MS 5000 /* "it comes": generous, the wait ends when it does */
#define QUIET_MS 100 /* "nothing comes" once the state has settled */
#define MAXEV 16

static struct sockaddr_in peer;
static const char *current = "";

/* ---- output and checks ----------------------------------------------- */

static void line(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s: ", current);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "epoll_probe %s: ", current);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    printf("FAILED\n");
    fflush(stdout);
    exit(1);
}

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond))                                                         \
            die(__VA_ARGS__);                                                \
    } while (0)

static const char *err_name(long r, int err)
{
    static char buf[64];
    if (r >= 0)
        snprintf(buf, sizeof(buf), "%ld", r);
    else
        snprintf(buf, sizeof(buf), "-1 %s", strerrorname_np(err));
    return buf;
}

/* Print a call's result as "0" or "-1 ENAME" and check it. */
#define EXPECT(name, call, want)                                             \
    do {                                                                     \
        errno = 0;                                                           \
        long r_ = (call);                                                    \
        const char *got_ = err_name(r_, errno);                              \
        line("%s: %s", name, got_);                                          \
        CHECK(!strcmp(got_, want), "%s: %s, expected %s", name, got_, want); \
    } while (0)

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- events ------------------------------------------------------------ */

static const struct {
    uint32_t bit;
    const char *name;
} flag_names[] = {
    { EPOLLIN, "IN" },     { EPOLLPRI, "PRI" },   { EPOLLOUT, "OUT" },
    { EPOLLERR, "ERR" },   { EPOLLHUP, "HUP" },   { EPOLLRDNORM, "RDNORM" },
    { EPOLLRDBAND, "RDBAND" }, { EPOLLWRNORM, "WRNORM" },
    { EPOLLWRBAND, "WRBAND" }, { EPOLLMSG, "MSG" }, { EPOLLRDHUP, "RDHUP" },
};

static void flags_str(uint32_t ev, char *buf, size_t len)
{
    buf[0] = 0;
    for (size_t i = 0; i < sizeof(flag_names) / sizeof(flag_names[0]); i++)
        if (ev & flag_names[i].bit)
            snprintf(buf + strlen(buf), len - strlen(buf), "%s%s",
                     buf[0] ? "|" : "", flag_names[i].name);
    if (!buf[0])
        snprintf(buf, len, "0");
}

static int by_data(const void *a, const void *b)
{
    uint64_t x = ((const struct epoll_event *)a)->data.u64;
    uint64_t y = ((const struct epoll_event *)b)->data.u64;
    return x < y ? -1 : x > y;
}

/* "1:IN 2:IN|OUT", sorted by data. */
static void events_str(struct epoll_event *ev, int n, char *buf, size_t len)
{
    qsort(ev, (size_t)n, sizeof(*ev), by_data);
    buf[0] = 0;
    for (int i = 0; i < n; i++) {
        char f[96];
        flags_str(ev[i].events, f, sizeof(f));
        snprintf(buf + strlen(buf), len - strlen(buf), "%s%llu:%s",
                 i ? " " : "", (unsigned long long)ev[i].data.u64, f);
    }
    if (!n)
        snprintf(buf, len, "none");
}

/* One epoll_wait; prints and checks its event set. */
static void show(const char *name, int ep, int timeout_ms, const char *want)
{
    struct epoll_event ev[MAXEV];
    int n = epoll_wait(ep, ev, MAXEV, timeout_ms);
    CHECK(n >= 0, "%s: epoll_wait: %s", name, strerror(errno));
    char got[512];
    events_str(ev, n, got, sizeof(got));
    line("%s: %s", name, got);
    CHECK(!strcmp(got, want), "%s: %s, expected %s", name, got, want);
}

/* Wait until the events of `want` have all been reported (each may come
 * in a different epoll_wait), within LONG_MS; prints the union. */
static void expect(const char *name, int ep, const char *want)
{
    struct epoll_event all[MAXEV];
    int nall = 0;
    long end = now_ms() + LONG_MS;
    char got[512] = "none";
    while (now_ms() < end) {
        struct epoll_event ev[MAXEV];
        int n = epoll_wait(ep, ev, MAXEV, (int)(end - now_ms()));
        CHECK(n >= 0, "%s: epoll_wait: %s", name, strerror(errno));
        for (int i = 0; i < n; i++) {
            int j = 0;
            while (j < nall && all[j].data.u64 != ev[i].data.u64)
                j++;
            if (j == nall && nall < MAXEV)
                nall++;
            if (j < MAXEV)
                all[j] = ev[i];
        }
        struct epoll_event copy[MAXEV];
        memcpy(copy, all, sizeof(all));
        events_str(copy, nall, got, sizeof(got));
        if (!strcmp(got, want))
            break;
    }
    line("%s: %s", name, got);
    CHECK(!strcmp(got, want), "%s: %s, expected %s", name, got, want);
}

static void ctl(int ep, int op, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event ev = { .events = events, .data.u64 = data };
    CHECK(epoll_ctl(ep, op, fd, &ev) == 0, "epoll_ctl(%d, %d): %s", op, fd,
          strerror(errno));
}

static int new_epoll(void)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0, "epoll_create1: %s", strerror(errno));
    return ep;
}

/* ---- sockets ----------------------------------------------------------- */

static int peer_conn(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s >= 0, "socket: %s", strerror(errno));
    CHECK(connect(s, (struct sockaddr *)&peer, sizeof(peer)) == 0,
          "connect: %s", strerror(errno));
    return s;
}

static void send_all(int s, const void *buf, size_t len)
{
    CHECK(send(s, buf, len, MSG_NOSIGNAL) == (ssize_t)len, "send: %s",
          strerror(errno));
}

static void cmd(int s, char c, unsigned char n)
{
    char b[2] = { c, (char)n };
    send_all(s, b, c == 'w' ? 2 : 1);
}

/* Read exactly len bytes (blocking). */
static void recv_exact(int s, size_t len)
{
    char buf[256];
    while (len) {
        ssize_t n = recv(s, buf, len < sizeof(buf) ? len : sizeof(buf), 0);
        CHECK(n > 0, "recv: %zd %s", n, strerror(errno));
        len -= (size_t)n;
    }
}

static void set_nonblock(int fd, bool on)
{
    int fl = fcntl(fd, F_GETFL);
    CHECK(fl >= 0 && fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK
                                            : fl & ~O_NONBLOCK) == 0,
          "fcntl: %s", strerror(errno));
}

/* A listener of our own on 127.0.0.1 (under the shim: through PV Calls). */
static int own_listener(struct sockaddr_in *addr)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(l >= 0, "socket: %s", strerror(errno));
    *addr = (struct sockaddr_in){ .sin_family = AF_INET,
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(*addr);
    CHECK(bind(l, (struct sockaddr *)addr, len) == 0 && listen(l, 8) == 0 &&
              getsockname(l, (struct sockaddr *)addr, &len) == 0,
          "listen: %s", strerror(errno));
    return l;
}

/* ---- cases --------------------------------------------------------------- */

/* A socket and a pipe in one set: level-triggered, then edge-triggered. */
static void case_lt_et(void)
{
    int ep = new_epoll(), s = peer_conn(), p[2];
    CHECK(pipe(p) == 0, "pipe");
    ctl(ep, EPOLL_CTL_ADD, s, EPOLLIN, 1);
    ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN, 2);
    show("idle", ep, 0, "none");
    cmd(s, 'w', 5);
    expect("data", ep, "1:IN");
    show("level-triggered again", ep, 0, "1:IN");
    recv_exact(s, 5);
    show("drained", ep, QUIET_MS, "none");
    CHECK(write(p[1], "x", 1) == 1, "write");
    cmd(s, 'w', 3);
    expect("socket and pipe", ep, "1:IN 2:IN");
    show("both still", ep, 0, "1:IN 2:IN");
    ctl(ep, EPOLL_CTL_MOD, s, EPOLLIN | EPOLLET, 3);
    show("edge after MOD", ep, 0, "2:IN 3:IN");
    show("edge reported once", ep, 0, "2:IN");
    char c;
    CHECK(read(p[0], &c, 1) == 1, "read");
    show("quiet", ep, QUIET_MS, "none");
    cmd(s, 'w', 1);
    expect("new data, new edge", ep, "3:IN");
    show("edge once more", ep, QUIET_MS, "none");
    recv_exact(s, 4);
    close(s);
    close(p[0]);
    close(p[1]);
    close(ep);
}

static void case_oneshot(void)
{
    int ep = new_epoll(), s = peer_conn();
    ctl(ep, EPOLL_CTL_ADD, s, EPOLLIN | EPOLLONESHOT, 1);
    cmd(s, 'w', 4);
    expect("first", ep, "1:IN");
    show("disabled", ep, QUIET_MS, "none");
    ctl(ep, EPOLL_CTL_MOD, s, EPOLLIN | EPOLLONESHOT, 2);
    show("re-armed while readable", ep, 0, "2:IN");
    show("disabled again", ep, QUIET_MS, "none");
    recv_exact(s, 4);
    ctl(ep, EPOLL_CTL_MOD, s, EPOLLIN | EPOLLONESHOT, 3);
    show("armed, idle", ep, QUIET_MS, "none");
    cmd(s, 'w', 1);
    expect("armed, data", ep, "3:IN");
    recv_exact(s, 1);
    close(s);
    close(ep);
}

static void case_rdhup(void)
{
    int ep = new_epoll(), s = peer_conn();
    ctl(ep, EPOLL_CTL_ADD, s, EPOLLIN | EPOLLRDHUP, 1);
    cmd(s, 's', 0);
    expect("peer shut down", ep, "1:IN|RDHUP");
    char c;
    EXPECT("recv", recv(s, &c, 1, 0), "0");
    close(s);
    close(ep);
}

static void case_reset(void)
{
    int ep = new_epoll(), s = peer_conn();
    ctl(ep, EPOLL_CTL_ADD, s, 0, 1); /* nothing asked */
    show("nothing asked, nothing reported", ep, 0, "none");
    cmd(s, 'r', 0);
    expect("peer reset: ERR and HUP unasked", ep, "1:ERR|HUP");
    char c;
    EXPECT("recv", recv(s, &c, 1, 0), "-1 ECONNRESET");
    close(s);
    close(ep);
}

static int poll_one(int fd, int timeout_ms)
{
    struct pollfd p = { fd, POLLIN, 0 };
    int n = poll(&p, 1, timeout_ms);
    CHECK(n >= 0, "poll: %s", strerror(errno));
    return n ? p.revents : 0;
}

static int select_one(int fd)
{
    fd_set r;
    FD_ZERO(&r);
    FD_SET(fd, &r);
    struct timeval tv = { 0, 0 };
    int n = select(fd + 1, &r, NULL, NULL, &tv);
    CHECK(n >= 0, "select: %s", strerror(errno));
    return n;
}

/* An epoll fd holding a socket, inside poll, select and another epoll. */
static void case_nested(void)
{
    int ep = new_epoll(), outer = new_epoll(), s = peer_conn();
    ctl(ep, EPOLL_CTL_ADD, s, EPOLLIN, 1);
    ctl(outer, EPOLL_CTL_ADD, ep, EPOLLIN, 7);
    line("poll idle: %#x", poll_one(ep, 0));
    line("select idle: %d", select_one(ep));
    show("outer idle", outer, 0, "none");
    cmd(s, 'w', 2);
    int rev = poll_one(ep, LONG_MS);
    line("poll: %#x", rev);
    CHECK(rev == POLLIN, "poll on the epoll fd: %#x", rev);
    line("select: %d", select_one(ep));
    expect("outer", outer, "7:IN");
    show("inner", ep, 0, "1:IN");
    recv_exact(s, 2);
    line("poll drained: %#x", poll_one(ep, QUIET_MS));
    show("outer drained", outer, QUIET_MS, "none");
    EXPECT("loop", epoll_ctl(ep, EPOLL_CTL_ADD, outer,
                             &(struct epoll_event){ .events = EPOLLIN }),
           "-1 ELOOP");
    close(outer);
    cmd(s, 'w', 1);
    expect("inner after the outer closed", ep, "1:IN");
    recv_exact(s, 1);
    close(s);
    close(ep);
}

static void case_two_sets(void)
{
    int a = new_epoll(), b = new_epoll(), s = peer_conn();
    ctl(a, EPOLL_CTL_ADD, s, EPOLLIN, 1);
    ctl(b, EPOLL_CTL_ADD, s, EPOLLIN | EPOLLET, 2);
    cmd(s, 'w', 1);
    expect("first set", a, "1:IN");
    expect("second set", b, "2:IN");
    recv_exact(s, 1);
    show("first drained", a, QUIET_MS, "none");
    show("second drained", b, 0, "none");
    ctl(a, EPOLL_CTL_DEL, s, 0, 0);
    cmd(s, 'w', 1);
    expect("second set alone", b, "2:IN");
    show("first without it", a, QUIET_MS, "none");
    recv_exact(s, 1);
    close(s);
    close(a);
    close(b);
}

/* The last close of a socket takes it out of the set; a dup keeps it. */
static void case_close(void)
{
    int ep = new_epoll(), s = peer_conn();
    ctl(ep, EPOLL_CTL_ADD, s, EPOLLIN, 1);
    cmd(s, 'w', 1);
    expect("readable", ep, "1:IN");
    int d = dup(s);
    CHECK(d >= 0, "dup");
    close(s);
    show("its dup keeps it in the set", ep, 0, "1:IN");
    close(d);
    show("the last close removes it", ep, QUIET_MS, "none");
    EXPECT("DEL of the closed fd",
           epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL), "-1 EBADF");
    int s2 = peer_conn(); /* most likely the same number again */
    EXPECT("ADD of a new socket", epoll_ctl(ep, EPOLL_CTL_ADD, s2,
                                            &(struct epoll_event){
                                                .events = EPOLLIN,
                                                .data.u64 = 2 }),
           "0");
    cmd(s2, 'w', 1);
    expect("the new one", ep, "2:IN");
    /* A dup of the epoll fd shares the set. */
    int ep2 = dup(ep);
    show("through a dup of the epoll fd", ep2, 0, "2:IN");
    close(ep);
    show("after closing the original", ep2, 0, "2:IN");
    recv_exact(s2, 1);
    close(s2);
    close(ep2);
}

struct waiter_arg {
    int ep, timeout, n;
    struct epoll_event ev[MAXEV];
};

static void *epoll_waiter(void *arg)
{
    struct waiter_arg *w = arg;
    w->n = epoll_wait(w->ep, w->ev, MAXEV, w->timeout);
    return NULL;
}

/* One thread in epoll_wait while another sends, then closes. */
static void case_threads_epoll(void)
{
    int ep = new_epoll(), s = peer_conn(), p[2];
    CHECK(pipe(p) == 0, "pipe");
    cmd(s, 'e', 0);
    ctl(ep, EPOLL_CTL_ADD, s, EPOLLIN, 1);
    ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN, 2);
    struct waiter_arg w = { .ep = ep, .timeout = LONG_MS };
    pthread_t t;
    pthread_create(&t, NULL, epoll_waiter, &w);
    send_all(s, "ping", 4);
    pthread_join(t, NULL);
    char got[256];
    events_str(w.ev, w.n, got, sizeof(got));
    line("woken by the echo: %s", got);
    CHECK(!strcmp(got, "1:IN"), "waiter: %s", got);
    recv_exact(s, 4);

    w = (struct waiter_arg){ .ep = ep, .timeout = LONG_MS };
    pthread_create(&t, NULL, epoll_waiter, &w);
    close(s);
    CHECK(write(p[1], "x", 1) == 1, "write");
    pthread_join(t, NULL);
    events_str(w.ev, w.n, got, sizeof(got));
    line("socket closed meanwhile, woken by the pipe: %s", got);
    CHECK(!strcmp(got, "2:IN"), "waiter: %s", got);
    close(p[0]);
    close(p[1]);
    close(ep);
}

/* Wait (bounded) until thread tid sleeps in epoll_wait. */
static void until_in_epoll_wait(pid_t tid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/task/%d/wchan", (int)tid);
    long end = now_ms() + LONG_MS;
    while (now_ms() < end) {
        char wchan[64] = "";
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(wchan, sizeof(wchan), f))
                wchan[0] = 0;
            fclose(f);
        }
        if (strstr(wchan, "epoll_wait") || strstr(wchan, "ep_poll"))
            return;
        sched_yield();
    }
    die("the waiter never blocked in epoll_wait");
}

struct tid_waiter {
    struct waiter_arg w;
    _Atomic pid_t tid;
};

static void *tid_epoll_waiter(void *arg)
{
    struct tid_waiter *t = arg;
    atomic_store(&t->tid, gettid());
    return epoll_waiter(&t->w);
}

/* A thread blocked in epoll_wait on a set of native fds only, when
 * another thread adds a socket to it. */
static void case_add_while_waiting(void)
{
    int ep = new_epoll(), p[2];
    CHECK(pipe(p) == 0, "pipe");
    ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN, 2);
    struct tid_waiter t = { .w = { .ep = ep, .timeout = LONG_MS } };
    pthread_t th;
    pthread_create(&th, NULL, tid_epoll_waiter, &t);
    while (!atomic_load(&t.tid))
        sched_yield();
    until_in_epoll_wait(atomic_load(&t.tid));
    int s = peer_conn();
    ctl(ep, EPOLL_CTL_ADD, s, EPOLLIN, 1);
    cmd(s, 'w', 1);
    pthread_join(th, NULL);
    char got[256];
    events_str(t.w.ev, t.w.n, got, sizeof(got));
    line("added while it waited, then data: %s", got);
    CHECK(!strcmp(got, "1:IN"), "waiter: %s", got);
    recv_exact(s, 1);
    close(s);
    close(p[0]);
    close(p[1]);
    close(ep);
}

#define ROUND_TRIPS 200

struct recv_arg {
    int s;
    size_t want, got;
};

static void *receiver(void *arg)
{
    struct recv_arg *r = arg;
    char buf[64];
    while (r->got < r->want) {
        ssize_t n = recv(r->s, buf, sizeof(buf), 0);
        if (n <= 0)
            break;
        r->got += (size_t)n;
    }
    return NULL;
}

static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t shared_got;

/* Two threads blocked in recv on one socket, each taking what comes. */
static void *shared_receiver(void *arg)
{
    struct recv_arg *r = arg;
    char c;
    for (;;) {
        pthread_mutex_lock(&count_lock);
        bool done = shared_got >= r->want;
        pthread_mutex_unlock(&count_lock);
        if (done)
            return NULL;
        ssize_t n = recv(r->s, &c, 1, 0);
        if (n <= 0)
            return NULL;
        if (c == '.') /* the end marker */
            return NULL;
        pthread_mutex_lock(&count_lock);
        shared_got++;
        r->got++;
        pthread_mutex_unlock(&count_lock);
    }
}

/* A thread blocked in recv while another sends on the same socket. */
static void case_threads_recv(void)
{
    int s = peer_conn();
    cmd(s, 'e', 0);
    struct recv_arg r = { .s = s, .want = ROUND_TRIPS * 8 };
    pthread_t t;
    pthread_create(&t, NULL, receiver, &r);
    for (int i = 0; i < ROUND_TRIPS; i++)
        send_all(s, "12345678", 8);
    pthread_join(t, NULL);
    line("echoed while receiving: %zu", r.got);
    CHECK(r.got == ROUND_TRIPS * 8, "got %zu", r.got);

    struct recv_arg a = { .s = s, .want = ROUND_TRIPS },
                    b = { .s = s, .want = ROUND_TRIPS };
    pthread_t ta, tb;
    pthread_create(&ta, NULL, shared_receiver, &a);
    pthread_create(&tb, NULL, shared_receiver, &b);
    for (int i = 0; i < ROUND_TRIPS; i++)
        send_all(s, "x", 1);
    send_all(s, "..", 2); /* one end marker for each */
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    line("two receivers on one socket: %zu", a.got + b.got);
    CHECK(a.got + b.got == ROUND_TRIPS, "got %zu", a.got + b.got);
    close(s);
}

static void case_timeout(void)
{
    int ep = new_epoll(), s = peer_conn();
    ctl(ep, EPOLL_CTL_ADD, s, EPOLLIN, 1);
    struct epoll_event ev[1];
    long t0 = now_ms();
    int n = epoll_wait(ep, ev, 1, 50);
    long ms = now_ms() - t0;
    line("epoll_wait 50ms: %d %s", n, ms >= 50 ? ">=50ms" : "<50ms");
    CHECK(n == 0 && ms >= 50, "epoll_wait: %d after %ldms", n, ms);
    struct timespec ts = { 0, 50000000 };
    t0 = now_ms();
    n = epoll_pwait2(ep, ev, 1, &ts, NULL);
    ms = now_ms() - t0;
    line("epoll_pwait2 50ms: %d %s", n, ms >= 50 ? ">=50ms" : "<50ms");
    CHECK(n == 0 && ms >= 50, "epoll_pwait2: %d after %ldms", n, ms);
    close(s);
    close(ep);
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

static void alarm_in_ms(int ms, int flags)
{
    struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = flags };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = { .it_value = { 0, ms * 1000 } };
    setitimer(ITIMER_REAL, &it, NULL);
}

static void case_eintr(void)
{
    int ep = new_epoll(), s = peer_conn();
    ctl(ep, EPOLL_CTL_ADD, s, EPOLLIN, 1);
    struct epoll_event ev[1];
    alarm_in_ms(50, 0);
    EXPECT("handler without SA_RESTART", epoll_wait(ep, ev, 1, LONG_MS),
           "-1 EINTR");
    alarm_in_ms(50, SA_RESTART);
    EXPECT("handler with SA_RESTART (never restarted)",
           epoll_wait(ep, ev, 1, LONG_MS), "-1 EINTR");
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGALRM);
    alarms = 0;
    alarm_in_ms(50, 0);
    EXPECT("signal blocked by epoll_pwait's mask",
           epoll_pwait(ep, ev, 1, 300, &block), "0");
    line("handler ran after the wait: %d", (int)alarms);
    signal(SIGALRM, SIG_DFL);
    close(s);
    close(ep);
}

/* Bad arguments, hidden from the compiler's checks. */
static struct epoll_event *volatile bad_events = (struct epoll_event *)16;
static volatile int minus_one = -1;

static void case_errors(void)
{
    int ep = new_epoll(), s = peer_conn(), other = new_epoll(), p[2];
    CHECK(pipe(p) == 0, "pipe");
    struct epoll_event ev = { .events = EPOLLIN }, out[4];
    EXPECT("ADD", epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev), "0");
    EXPECT("ADD again", epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev), "-1 EEXIST");
    EXPECT("MOD non-member", epoll_ctl(other, EPOLL_CTL_MOD, s, &ev),
           "-1 ENOENT");
    EXPECT("DEL non-member", epoll_ctl(other, EPOLL_CTL_DEL, s, NULL),
           "-1 ENOENT");
    EXPECT("bad op", epoll_ctl(ep, 42, s, &ev), "-1 EINVAL");
    EXPECT("into itself", epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev), "-1 EINVAL");
    EXPECT("into a pipe", epoll_ctl(p[0], EPOLL_CTL_ADD, s, &ev),
           "-1 EINVAL");
    EXPECT("into a closed fd", epoll_ctl(999, EPOLL_CTL_ADD, s, &ev),
           "-1 EBADF");
    EXPECT("bad event pointer",
           epoll_ctl(other, EPOLL_CTL_ADD, s, bad_events), "-1 EFAULT");
    FILE *f = tmpfile();
    EXPECT("a regular file", epoll_ctl(ep, EPOLL_CTL_ADD, fileno(f), &ev),
           "-1 EPERM");
    fclose(f);
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    EXPECT("ADD exclusive", epoll_ctl(other, EPOLL_CTL_ADD, s, &ev), "0");
    EXPECT("MOD exclusive", epoll_ctl(other, EPOLL_CTL_MOD, s, &ev),
           "-1 EINVAL");
    ev.events = EPOLLIN;
    EXPECT("MOD of an exclusive entry",
           epoll_ctl(other, EPOLL_CTL_MOD, s, &ev), "-1 EINVAL");
    EXPECT("DEL of an exclusive entry",
           epoll_ctl(other, EPOLL_CTL_DEL, s, NULL), "0");
    ev.events = EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT;
    EXPECT("exclusive with oneshot", epoll_ctl(other, EPOLL_CTL_ADD, s, &ev),
           "-1 EINVAL");
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    EXPECT("exclusive epoll member",
           epoll_ctl(other, EPOLL_CTL_ADD, ep, &ev), "-1 EINVAL");
    ev.events = EPOLLIN;
    EXPECT("epoll in epoll", epoll_ctl(other, EPOLL_CTL_ADD, ep, &ev), "0");
    EXPECT("loop", epoll_ctl(ep, EPOLL_CTL_ADD, other, &ev), "-1 ELOOP");
    EXPECT("maxevents 0", epoll_wait(ep, out, 0, 0), "-1 EINVAL");
    EXPECT("maxevents -1", epoll_wait(ep, out, minus_one, 0), "-1 EINVAL");
    EXPECT("epoll_wait on a pipe", epoll_wait(p[0], out, 4, 0), "-1 EINVAL");
    struct timespec bad = { 0, 1000000000 };
    EXPECT("bad timespec", epoll_pwait2(ep, out, 4, &bad, NULL), "-1 EINVAL");
    EXPECT("nothing ready, bad buffer", epoll_wait(ep, bad_events, 4, 0),
           "0");
    cmd(s, 'w', 1);
    expect("ready", ep, "0:IN");
    EXPECT("bad events buffer", epoll_wait(ep, bad_events, 4, 0),
           "-1 EFAULT");
    show("the event was kept", ep, 0, "0:IN");
    recv_exact(s, 1);
    close(s);
    close(p[0]);
    close(p[1]);
    close(other);
    close(ep);
}

/* An epoll fd the shim did not see created (a raw syscall). */
static void case_raw_epoll(void)
{
    int ep = (int)syscall(SYS_epoll_create1, EPOLL_CLOEXEC);
    CHECK(ep >= 0, "epoll_create1: %s", strerror(errno));
    int s = peer_conn();
    ctl(ep, EPOLL_CTL_ADD, s, EPOLLIN, 1);
    cmd(s, 'w', 1);
    expect("raw epoll fd", ep, "1:IN");
    recv_exact(s, 1);
    close(s);
    close(ep);
}

/* A forked child inherits the set: nothing may crash. */
static void case_fork(void)
{
    int ep = new_epoll(), s = peer_conn();
    ctl(ep, EPOLL_CTL_ADD, s, EPOLLIN, 1);
    cmd(s, 'w', 1);
    expect("before fork", ep, "1:IN");
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        struct epoll_event ev[2];
        int n = epoll_wait(ep, ev, 2, 0);
        close(s);
        close(ep);
        _exit(n >= 0 ? 0 : 1);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
    line("child: %s", WIFEXITED(st) && !WEXITSTATUS(st) ? "ok" : "failed");
    CHECK(WIFEXITED(st) && !WEXITSTATUS(st), "child status %#x", st);
    recv_exact(s, 1);
    show("parent after", ep, QUIET_MS, "none");
    close(s);
    close(ep);
}

/* ---- cases over our own listener (need non-blocking listen/connect) ---- */

/* A listener, a non-blocking connect, and the accepted socket. */
static void own_pair(int ep, int *client, int *server)
{
    struct sockaddr_in a;
    int l = own_listener(&a);
    ctl(ep, EPOLL_CTL_ADD, l, EPOLLIN, 9);
    show("listener idle", ep, 0, "none");
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(c >= 0, "socket");
    ctl(ep, EPOLL_CTL_ADD, c, EPOLLOUT, 8); /* before the connect */
    int r = connect(c, (struct sockaddr *)&a, sizeof(a));
    CHECK(r == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
    expect("listener readable, connect done", ep, "8:OUT 9:IN");
    int sv = accept4(l, NULL, NULL, SOCK_NONBLOCK);
    CHECK(sv >= 0, "accept: %s", strerror(errno));
    ctl(ep, EPOLL_CTL_MOD, c, EPOLLIN, 8);
    show("listener drained", ep, QUIET_MS, "none");
    EXPECT("accept again", accept(l, NULL, NULL), "-1 EAGAIN");
    close(l);
    set_nonblock(c, false);
    set_nonblock(sv, false);
    *client = c;
    *server = sv;
}

static void case_listen(void)
{
    int ep = new_epoll(), c, sv;
    own_pair(ep, &c, &sv);
    ctl(ep, EPOLL_CTL_ADD, sv, EPOLLIN | EPOLLRDHUP, 10);
    send_all(c, "hi", 2);
    expect("accepted socket readable", ep, "10:IN");
    recv_exact(sv, 2);
    send_all(sv, "yo", 2);
    expect("client readable", ep, "8:IN");
    recv_exact(c, 2);
    shutdown(c, SHUT_WR);
    expect("client shut down", ep, "10:IN|RDHUP");
    close(c);
    close(sv);
    close(ep);
}

/* Both directions of a pair of our own sockets, each with a thread
 * blocked in recv while the other end sends. */
static void case_pair(void)
{
    int ep = new_epoll(), c, sv;
    own_pair(ep, &c, &sv);
    close(ep);
    struct recv_arg rs = { .s = sv, .want = ROUND_TRIPS * 8 },
                    rc = { .s = c, .want = ROUND_TRIPS * 8 };
    pthread_t ts, tc;
    pthread_create(&ts, NULL, receiver, &rs);
    pthread_create(&tc, NULL, receiver, &rc);
    for (int i = 0; i < ROUND_TRIPS; i++) {
        send_all(c, "12345678", 8);
        send_all(sv, "abcdefgh", 8);
    }
    pthread_join(ts, NULL);
    pthread_join(tc, NULL);
    line("both directions: %zu %zu", rs.got, rc.got);
    CHECK(rs.got == ROUND_TRIPS * 8 && rc.got == ROUND_TRIPS * 8,
          "got %zu %zu", rs.got, rc.got);
    close(c);
    close(sv);
}

/* A non-blocking connect registered after it started. */
static void case_connect(void)
{
    struct sockaddr_in a;
    int l = own_listener(&a), ep = new_epoll();
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(c >= 0, "socket");
    int r = connect(c, (struct sockaddr *)&a, sizeof(a));
    CHECK(r == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
    ctl(ep, EPOLL_CTL_ADD, c, EPOLLOUT | EPOLLET, 1);
    expect("connected", ep, "1:OUT");
    int err = -1;
    socklen_t len = sizeof(err);
    CHECK(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len) == 0, "SO_ERROR");
    line("SO_ERROR: %d", err);
    close(c);
    close(l);
    close(ep);
}

static const struct {
    const char *name;
    void (*run)(void);
} cases[] = {
    { "lt_et", case_lt_et },
    { "oneshot", case_oneshot },
    { "rdhup", case_rdhup },
    { "reset", case_reset },
    { "nested", case_nested },
    { "two_sets", case_two_sets },
    { "close", case_close },
    { "threads_epoll", case_threads_epoll },
    { "add_while_waiting", case_add_while_waiting },
    { "threads_recv", case_threads_recv },
    { "timeout", case_timeout },
    { "eintr", case_eintr },
    { "errors", case_errors },
    { "raw_epoll", case_raw_epoll },
    { "fork", case_fork },
    { "listen", case_listen },
    { "pair", case_pair },
    { "connect", case_connect },
};

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: epoll_probe PEER_ADDR PEER_PORT CASE...\n");
        return 2;
    }
    peer = (struct sockaddr_in){ .sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)atoi(argv[2])) };
    if (inet_pton(AF_INET, argv[1], &peer.sin_addr) != 1)
        return fprintf(stderr, "epoll_probe: bad address\n"), 2;
    for (int i = 3; i < argc; i++) {
        size_t k = 0;
        while (k < sizeof(cases) / sizeof(cases[0]) &&
               strcmp(cases[k].name, argv[i]))
            k++;
        if (k == sizeof(cases) / sizeof(cases[0]))
            return fprintf(stderr, "epoll_probe: no case %s\n", argv[i]), 2;
        current = cases[k].name;
        cases[k].run();
    }
    current = "probe";
    line("done");
    return 0;
}
