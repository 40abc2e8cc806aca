/*
 * errno_probe: the socket error cases of issue 4, one output line each,
 * so that a run under the shim can be compared with a native run of the
 * same binary line by line.  Every peer is created by the probe itself
 * (loopback TCP through the same socket calls), so under pvcalls-run
 * --isolate both ends cross PV Calls and the probe is self-contained.
 *
 *   errno_probe [--ipv6]
 *
 * Ports differ from run to run, so addresses are printed as the family,
 * the address and whether the port is the expected one.  SIGPIPE is
 * counted by a handler and printed per case.  An alarm bounds the whole
 * run so that a hang shows as "TIMEOUT" rather than a stuck test.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t sigpipes;
static int family = AF_INET;

static void on_sigpipe(int sig) { (void)sig; sigpipes++; }

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "TIMEOUT\n";
    ssize_t n = write(STDOUT_FILENO, msg, sizeof(msg) - 1);
    (void)n;
    _exit(3);
}

/* "ok 5" or "-1 ECONNREFUSED" */
static void report(const char *name, long ret, int err)
{
    if (ret < 0)
        printf("%s: -1 %s\n", name, strerrorname_np(err));
    else
        printf("%s: %ld\n", name, ret);
    fflush(stdout);
}

#define CALL(name, expr)                                                   \
    do {                                                                   \
        errno = 0;                                                         \
        long r_ = (long)(expr);                                            \
        report(name, r_, errno);                                           \
    } while (0)

static int must(int r, const char *what)
{
    if (r < 0) {
        printf("SETUP FAILED: %s: %s\n", what, strerrorname_np(errno));
        exit(2);
    }
    return r;
}

static socklen_t loopback(struct sockaddr_storage *ss, unsigned short port)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        a->sin6_port = htons(port);
        return sizeof(*a);
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->sin_port = htons(port);
    return sizeof(*a);
}

static unsigned short port_of(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET6
                     ? ((const struct sockaddr_in6 *)ss)->sin6_port
                     : ((const struct sockaddr_in *)ss)->sin_port);
}

static int tcp_socket(void)
{
    return must(socket(family, SOCK_STREAM, 0), "socket");
}

static unsigned short local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    must(getsockname(fd, (struct sockaddr *)&ss, &len), "getsockname");
    return port_of(&ss);
}

/* A listener on loopback port 0; *port gets the port. */
static int listener(unsigned short *port)
{
    struct sockaddr_storage ss;
    int fd = tcp_socket();
    must(bind(fd, (struct sockaddr *)&ss, loopback(&ss, 0)), "bind");
    must(listen(fd, 16), "listen");
    *port = local_port(fd);
    return fd;
}

/* A connected pair: *client connected to lfd's port, *server accepted. */
static void pair(int lfd, unsigned short port, int *client, int *server)
{
    struct sockaddr_storage ss;
    *client = tcp_socket();
    must(connect(*client, (struct sockaddr *)&ss, loopback(&ss, port)),
         "connect");
    *server = must(accept(lfd, NULL, NULL), "accept");
}

static void case_connect_closed_port(void)
{
    /* A bound socket that does not listen keeps the port ours and
     * refuses connections. */
    struct sockaddr_storage ss;
    int holder = tcp_socket();
    must(bind(holder, (struct sockaddr *)&ss, loopback(&ss, 0)), "bind");
    unsigned short port = local_port(holder);
    int fd = tcp_socket();
    CALL("connect_closed_port",
         connect(fd, (struct sockaddr *)&ss, loopback(&ss, port)));
    int err = -1;
    socklen_t len = sizeof(err);
    CALL("connect_closed_port_so_error",
         getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len));
    printf("connect_closed_port_so_error_value: %d\n", err);
    close(fd);
    close(holder);
}

static void case_bind_used_port(int lfd, unsigned short port)
{
    (void)lfd;
    struct sockaddr_storage ss;
    int fd = tcp_socket();
    CALL("bind_used_port", bind(fd, (struct sockaddr *)&ss, loopback(&ss, port)));
    close(fd);
}

static void case_unconnected(void)
{
    char c = 'x';
    int fd = tcp_socket();
    int before = sigpipes;
    CALL("send_unconnected", send(fd, &c, 1, 0));
    printf("send_unconnected_sigpipe: %d\n", sigpipes - before);
    before = sigpipes;
    CALL("send_unconnected_nosignal", send(fd, &c, 1, MSG_NOSIGNAL));
    printf("send_unconnected_nosignal_sigpipe: %d\n", sigpipes - before);
    CALL("recv_unconnected", recv(fd, &c, 1, 0));
    CALL("write_unconnected", write(fd, &c, 1));
    printf("write_unconnected_sigpipe_total: %d\n", sigpipes - before);
    close(fd);
}

static void case_recv_after_peer_close(int lfd, unsigned short port)
{
    char buf[16];
    int c, s;
    pair(lfd, port, &c, &s);
    must((int)send(s, "bye", 3, 0), "send");
    close(s);
    CALL("recv_after_peer_close_data", recv(c, buf, sizeof(buf), MSG_WAITALL));
    CALL("recv_after_peer_close_eof", recv(c, buf, sizeof(buf), 0));
    CALL("recv_after_peer_close_eof_again", read(c, buf, sizeof(buf)));
    close(c);
}

static void case_write_after_reset(int lfd, unsigned short port)
{
    char buf[16];
    int c, s;
    pair(lfd, port, &c, &s);
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    must(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), "linger");
    close(s); /* sends RST */
    /* The reset is observed first (the shim learns of it asynchronously,
     * so this recv is the synchronisation point in both runs). */
    CALL("recv_after_reset", recv(c, buf, sizeof(buf), 0));
    int before = sigpipes;
    CALL("write_after_reset", write(c, "x", 1));
    printf("write_after_reset_sigpipe: %d\n", sigpipes - before);
    before = sigpipes;
    CALL("send_after_reset_nosignal", send(c, "x", 1, MSG_NOSIGNAL));
    printf("send_after_reset_nosignal_sigpipe: %d\n", sigpipes - before);
    close(c);
}

static void print_addr(const char *name, int ret, int err,
                       const struct sockaddr_storage *ss, socklen_t len,
                       int want_port)
{
    if (ret < 0) {
        report(name, ret, err);
        return;
    }
    char host[INET6_ADDRSTRLEN] = "?";
    const void *a = ss->ss_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
    inet_ntop(ss->ss_family, a, host, sizeof(host));
    const char *port = want_port < 0 ? (port_of(ss) ? "nonzero" : "zero")
                       : port_of(ss) == want_port ? "expected" : "UNEXPECTED";
    printf("%s: family=%s len=%u addr=%s port=%s\n", name,
           ss->ss_family == AF_INET6 ? "AF_INET6"
           : ss->ss_family == AF_INET ? "AF_INET" : "other",
           (unsigned)len, host, port);
}

#define NAME_CALL(name, fn, fd, want)                                      \
    do {                                                                   \
        struct sockaddr_storage ss_;                                       \
        memset(&ss_, 0, sizeof(ss_));                                      \
        socklen_t len_ = sizeof(ss_);                                      \
        errno = 0;                                                         \
        int r_ = fn(fd, (struct sockaddr *)&ss_, &len_);                   \
        print_addr(name, r_, errno, &ss_, len_, want);                     \
    } while (0)

static void case_names(int lfd, unsigned short port)
{
    int c, s;
    pair(lfd, port, &c, &s);
    unsigned short cport = local_port(c);
    NAME_CALL("listener_sockname", getsockname, lfd, port);
    NAME_CALL("client_sockname", getsockname, c, -1);
    NAME_CALL("client_peername", getpeername, c, port);
    NAME_CALL("server_sockname", getsockname, s, port);
    NAME_CALL("server_peername", getpeername, s, cport);
    int fresh = tcp_socket();
    NAME_CALL("unbound_sockname", getsockname, fresh, 0);
    NAME_CALL("unconnected_peername", getpeername, fresh, 0);
    NAME_CALL("listener_peername", getpeername, lfd, 0);
    /* A short buffer: the length says how much there was. */
    struct sockaddr_in small;
    socklen_t len = 4;
    CALL("client_sockname_short", getsockname(c, (struct sockaddr *)&small, &len));
    printf("client_sockname_short_len: %u\n", (unsigned)len);
    close(fresh);
    close(c);
    close(s);
}

static void case_shutdown(int lfd, unsigned short port)
{
    char buf[16];
    int c, s, before;
    /* SHUT_WR: the peer reads EOF, the reverse direction still works. */
    pair(lfd, port, &c, &s);
    CALL("shut_wr", shutdown(c, SHUT_WR));
    CALL("shut_wr_peer_recv", recv(s, buf, sizeof(buf), 0));
    CALL("shut_wr_reverse_send", send(s, "abc", 3, 0));
    CALL("shut_wr_reverse_recv", recv(c, buf, 3, MSG_WAITALL));
    before = sigpipes;
    CALL("shut_wr_send", send(c, "x", 1, 0));
    printf("shut_wr_send_sigpipe: %d\n", sigpipes - before);
    close(c);
    close(s);

    /* SHUT_RD: recv returns 0 at once; sending still works both ways. */
    pair(lfd, port, &c, &s);
    CALL("shut_rd", shutdown(c, SHUT_RD));
    CALL("shut_rd_recv", recv(c, buf, sizeof(buf), 0));
    CALL("shut_rd_send", send(c, "def", 3, 0));
    CALL("shut_rd_peer_recv", recv(s, buf, 3, MSG_WAITALL));
    close(c);
    close(s);

    /* SHUT_RDWR: both. */
    pair(lfd, port, &c, &s);
    CALL("shut_rdwr", shutdown(c, SHUT_RDWR));
    CALL("shut_rdwr_recv", recv(c, buf, sizeof(buf), 0));
    CALL("shut_rdwr_send", send(c, "x", 1, MSG_NOSIGNAL));
    CALL("shut_rdwr_peer_recv", recv(s, buf, sizeof(buf), 0));
    close(c);
    close(s);

    int fresh = tcp_socket();
    CALL("shutdown_unconnected", shutdown(fresh, SHUT_RDWR));
    close(fresh);
}

static void case_dup_close(int lfd, unsigned short port)
{
    char buf[16];
    int c, s;
    pair(lfd, port, &c, &s);
    int d = dup(c);
    CALL("dup", d >= 0 ? 0 : -1);
    CALL("close_original", close(c));
    CALL("send_on_closed_original", send(c, "x", 1, 0));
    CALL("send_on_dup", send(d, "ghi", 3, 0));
    CALL("peer_recv_from_dup", recv(s, buf, 3, MSG_WAITALL));
    CALL("peer_send_to_dup", send(s, "jk", 2, 0));
    CALL("recv_on_dup", recv(d, buf, 2, MSG_WAITALL));
    CALL("close_dup", close(d));
    CALL("peer_recv_eof_after_last_close", recv(s, buf, sizeof(buf), 0));
    close(s);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--ipv6"))
        family = AF_INET6;
    struct sigaction sa = { .sa_handler = on_sigpipe };
    sigaction(SIGPIPE, &sa, NULL);
    signal(SIGALRM, on_alarm);
    alarm(20);
    printf("family: %s\n", family == AF_INET6 ? "AF_INET6" : "AF_INET");

    unsigned short port;
    int lfd = listener(&port);
    case_connect_closed_port();
    case_bind_used_port(lfd, port);
    case_unconnected();
    case_recv_after_peer_close(lfd, port);
    case_write_after_reset(lfd, port);
    case_names(lfd, port);
    case_shutdown(lfd, port);
    case_dup_close(lfd, port);
    close(lfd);
    printf("done\n");
    return 0;
}
