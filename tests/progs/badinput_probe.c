/*
 * badinput_probe: invalid pointers, lengths, fds and flags passed to the
 * socket calls, one output line per call ("name: ret" or "name: -1
 * ERRNO"), so that a run under the shim can be compared with a native run
 * of the same binary.  The shim must give the same errors and never crash.
 * Peers are the probe's own loopback sockets (see errno_probe.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* An address that is never mapped (the first page); volatile so that the
 * compiler does not reject the calls it is passed to. */
static void *volatile bad_ptr = (void *)16;
#define BAD_PTR (bad_ptr)

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

static struct sockaddr_in lo4(unsigned short port)
{
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    return a;
}

static int tcp(void) { return must(socket(AF_INET, SOCK_STREAM, 0), "socket"); }

static unsigned short port_of_fd(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    must(getsockname(fd, (struct sockaddr *)&a, &len), "getsockname");
    return ntohs(a.sin_port);
}

static int listener(unsigned short *port)
{
    struct sockaddr_in a = lo4(0);
    int fd = tcp();
    must(bind(fd, (struct sockaddr *)&a, sizeof(a)), "bind");
    must(listen(fd, 16), "listen");
    *port = port_of_fd(fd);
    return fd;
}

static void pair(int lfd, unsigned short port, int *c, int *s)
{
    struct sockaddr_in a = lo4(port);
    *c = tcp();
    must(connect(*c, (struct sockaddr *)&a, sizeof(a)), "connect");
    *s = must(accept(lfd, NULL, NULL), "accept");
}

static void bad_socket_args(void)
{
    CALL("socket_bad_family", socket(12345, SOCK_STREAM, 0));
    CALL("socket_bad_type", socket(AF_INET, 99, 0));
    CALL("socket_bad_type_flags", socket(AF_INET, SOCK_STREAM | 0x40000000, 0));
    CALL("socket_udp_protocol_on_stream", socket(AF_INET, SOCK_STREAM, IPPROTO_UDP));
}

static void bad_fds(void)
{
    struct sockaddr_in a = lo4(1);
    char c;
    int devnull = must(open("/dev/null", O_RDWR), "open");
    CALL("connect_fd_minus1", connect(-1, (struct sockaddr *)&a, sizeof(a)));
    CALL("connect_fd_unused", connect(9999, (struct sockaddr *)&a, sizeof(a)));
    CALL("connect_not_socket", connect(devnull, (struct sockaddr *)&a, sizeof(a)));
    CALL("send_fd_unused", send(9999, "x", 1, 0));
    CALL("recv_not_socket", recv(devnull, &c, 1, 0));
    CALL("accept_fd_minus1", accept(-1, NULL, NULL));
    CALL("listen_not_socket", listen(devnull, 1));
    CALL("shutdown_fd_unused", shutdown(9999, SHUT_RDWR));
    CALL("getsockname_not_socket",
         getsockname(devnull, (struct sockaddr *)&a, &(socklen_t){ sizeof(a) }));
    CALL("close_fd_minus1", close(-1));
    int fd = tcp();
    CALL("close_socket", close(fd));
    CALL("close_socket_twice", close(fd));
    CALL("send_closed_socket", send(fd, "x", 1, 0));
    close(devnull);
}

static void bad_addresses(void)
{
    int fd = tcp();
    struct sockaddr_in a = lo4(1);
    struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
    CALL("connect_null_addr", connect(fd, NULL, sizeof(a)));
    CALL("connect_bad_ptr", connect(fd, BAD_PTR, sizeof(a)));
    CALL("connect_len_0", connect(fd, (struct sockaddr *)&a, 0));
    CALL("connect_len_3", connect(fd, (struct sockaddr *)&a, 3));
    CALL("connect_len_huge", connect(fd, (struct sockaddr *)&a, 1u << 30));
    CALL("connect_inet6_on_inet", connect(fd, (struct sockaddr *)&a6, sizeof(a6)));
    CALL("bind_null_addr", bind(fd, NULL, sizeof(a)));
    CALL("bind_len_8", bind(fd, (struct sockaddr *)&a, 8));
    CALL("bind_inet6_on_inet", bind(fd, (struct sockaddr *)&a6, sizeof(a6)));
    struct sockaddr_in far = { .sin_family = AF_INET, .sin_port = 0,
                               .sin_addr.s_addr = htonl(0xc0000201) };
    CALL("bind_nonlocal", bind(fd, (struct sockaddr *)&far, sizeof(far)));
    struct sockaddr_in any = lo4(0);
    CALL("bind_ok", bind(fd, (struct sockaddr *)&any, sizeof(any)));
    CALL("bind_twice", bind(fd, (struct sockaddr *)&any, sizeof(any)));
    socklen_t len = sizeof(a);
    CALL("getsockname_null_addr", getsockname(fd, NULL, &len));
    CALL("getsockname_null_len", getsockname(fd, (struct sockaddr *)&a, NULL));
    len = (socklen_t)-1;
    CALL("getsockname_negative_len", getsockname(fd, (struct sockaddr *)&a, &len));
    CALL("getpeername_bad_ptr", getpeername(fd, BAD_PTR, &(socklen_t){ 16 }));
    close(fd);
}

static void bad_options(void)
{
    int fd = tcp();
    int v = 1;
    socklen_t len = sizeof(v);
    CALL("setsockopt_null_val", setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, NULL, sizeof(int)));
    CALL("setsockopt_len_0", setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, 0));
    CALL("setsockopt_bad_level", setsockopt(fd, 12345, 1, &v, sizeof(v)));
    CALL("getsockopt_null_len", getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, NULL));
    len = (socklen_t)-1;
    CALL("getsockopt_negative_len", getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len));
    len = sizeof(v);
    CALL("getsockopt_bad_val", getsockopt(fd, SOL_SOCKET, SO_TYPE, BAD_PTR, &len));
    CALL("shutdown_bad_how", shutdown(fd, 7));
    CALL("fcntl_bad_cmd", fcntl(fd, 9999));
    CALL("ioctl_fionread_null", ioctl(fd, FIONREAD, NULL));
    CALL("accept4_bad_flags", accept4(fd, NULL, NULL, 0x1234));
    CALL("accept_not_listening", accept(fd, NULL, NULL));
    close(fd);
}

static void bad_buffers(int lfd, unsigned short port)
{
    int c, s;
    char buf[64];
    pair(lfd, port, &c, &s);
    /* Data is pending, so the reads fail on the buffer, not by blocking. */
    must((int)send(s, "hello", 5, 0), "send");
    must((int)recv(c, buf, 1, MSG_PEEK | MSG_WAITALL), "peek");
    CALL("recv_null_buf", recv(c, NULL, 5, 0));
    CALL("recv_bad_buf", recv(c, BAD_PTR, 5, 0));
    CALL("recv_len_0", recv(c, buf, 0, 0));
    /* A huge length is capped at MAX_RW_COUNT and the range checked
     * against the top of user space: a static buffer (low addresses)
     * passes whatever the stack's randomised place, so both runs agree;
     * a range that crosses the top fails before anything moves. */
    static char low_buf[64];
    CALL("recv_len_huge", recv(c, low_buf, SIZE_MAX, 0));
#if defined(__x86_64__)
    CALL("recv_past_user_space",
         recv(c, (char *)0x7ffffffff000ull - 16, 32, 0));
    CALL("send_past_user_space",
         send(c, (char *)0x7ffffffff000ull - 16, 32, MSG_NOSIGNAL));
#endif
    CALL("send_null_buf", send(c, NULL, 5, 0));
    CALL("send_bad_buf", send(c, BAD_PTR, 5, 0));
    CALL("send_len_0", send(c, buf, 0, 0));
    CALL("sendmsg_null_msg", sendmsg(c, NULL, 0));
    struct msghdr m = { 0 };
    m.msg_iov = NULL;
    m.msg_iovlen = 1;
    CALL("sendmsg_null_iov", sendmsg(c, &m, 0));
    struct iovec iov = { .iov_base = buf, .iov_len = 1 };
    m.msg_iov = &iov;
    m.msg_iovlen = 5000;
    CALL("sendmsg_iovlen_huge", sendmsg(c, &m, 0));
    CALL("recvmsg_null_msg", recvmsg(c, NULL, 0));
    must((int)send(s, "more", 4, 0), "send");
    must((int)recv(c, buf, 1, MSG_PEEK), "peek");
    struct iovec bad_iov = { .iov_base = BAD_PTR, .iov_len = 4 };
    struct msghdr rm = { .msg_iov = &bad_iov, .msg_iovlen = 1 };
    CALL("recvmsg_bad_iov", recvmsg(c, &rm, 0));
    CALL("read_bad_buf", read(c, BAD_PTR, 4));
    CALL("write_bad_buf", write(c, BAD_PTR, 4));
    CALL("recv_after_faults", recv(c, buf, sizeof(buf), MSG_DONTWAIT));
    close(c);
    close(s);
}

int main(void)
{
    signal(SIGALRM, on_alarm);
    signal(SIGPIPE, SIG_IGN);
    alarm(20);
    unsigned short port;
    int lfd = listener(&port);
    bad_socket_args();
    bad_fds();
    bad_addresses();
    bad_options();
    bad_buffers(lfd, port);
    close(lfd);
    printf("done\n");
    return 0;
}
