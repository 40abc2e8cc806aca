/*
 * A plain TCP client for the shim's smoke test: it knows nothing of PV
 * Calls.  Connects to an echo server at ADDR PORT (IPv4 or IPv6 literal),
 * sends LEN bytes of a pattern while reading the echo back, checks it
 * (also with MSG_PEEK, writev, getpeername, poll/select, MSG_DONTWAIT),
 * half-closes and reads to EOF, then closes.  Exit 0 on success; otherwise prints what failed.
 *
 *   shim_smoke ADDR PORT [LEN]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static int fail(const char *what)
{
    fprintf(stderr, "shim_smoke: %s: %s\n", what, strerror(errno));
    return 1;
}

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 131 + (i >> 9));
}

static socklen_t parse_addr(const char *host, int port,
                            struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        return sizeof(*a4);
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        return sizeof(*a6);
    }
    return 0;
}

/* Send everything while draining the echo into in[]. */
static int exchange(int fd, const unsigned char *out, unsigned char *in,
                    size_t len)
{
    size_t sent = 0, got = 0;
    while (got < len) {
        if (sent < len) {
            size_t chunk = len - sent < 16384 ? len - sent : 16384;
            /* Every other chunk as two iovecs, to cover writev. */
            struct iovec iov[2] = {
                { (void *)(out + sent), chunk / 2 },
                { (void *)(out + sent + chunk / 2), chunk - chunk / 2 },
            };
            ssize_t n = (sent / 16384) % 2 ? writev(fd, iov, 2)
                                           : send(fd, out + sent, chunk, 0);
            if (n <= 0)
                return fail("send");
            sent += (size_t)n;
        }
        ssize_t n = recv(fd, in + got, len - got, 0);
        if (n <= 0) {
            if (n == 0)
                errno = ECONNRESET;
            return fail("recv");
        }
        got += (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: shim_smoke ADDR PORT [LEN]\n");
        return 2;
    }
    size_t len = argc > 3 ? strtoul(argv[3], NULL, 0) : 200000;
    struct sockaddr_storage ss;
    socklen_t alen = parse_addr(argv[1], atoi(argv[2]), &ss);
    if (!alen || len == 0) {
        fprintf(stderr, "shim_smoke: bad address or length\n");
        return 2;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail("socket");
    if (connect(fd, (struct sockaddr *)&ss, alen) < 0)
        return fail("connect");
    struct sockaddr_storage peer;
    socklen_t plen = sizeof(peer);
    if (getpeername(fd, (struct sockaddr *)&peer, &plen) < 0)
        return fail("getpeername");
    if (plen != alen || memcmp(&peer, &ss, alen) != 0) {
        fprintf(stderr, "shim_smoke: getpeername differs\n");
        return 1;
    }

    unsigned char *out = malloc(len), *in = malloc(len);
    if (!out || !in)
        return fail("malloc");
    for (size_t i = 0; i < len; i++)
        out[i] = pattern(i);
    if (exchange(fd, out, in, len))
        return 1;
    if (memcmp(in, out, len) != 0) {
        fprintf(stderr, "shim_smoke: echo differs\n");
        return 1;
    }

    /* An idle socket: poll times out, a non-blocking recv says EAGAIN,
     * and it is writable. */
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    if (poll(&pfd, 1, 50) != 0)
        return fail("poll on an idle socket did not time out");
    char byte;
    if (recv(fd, &byte, 1, MSG_DONTWAIT) != -1 || errno != EAGAIN)
        return fail("recv MSG_DONTWAIT on an idle socket");
    pfd.events = POLLOUT;
    if (poll(&pfd, 1, 1000) != 1 || !(pfd.revents & POLLOUT))
        return fail("poll POLLOUT");

    /* MSG_PEEK leaves the bytes for the next recv. */
    unsigned char peek[4], real[4];
    if (send(fd, "ping", 4, MSG_NOSIGNAL) != 4)
        return fail("send ping");
    /* select, then poll, report the echo without consuming it. */
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(fd, &rd);
    struct timeval tv = { 5, 0 };
    if (select(fd + 1, &rd, NULL, NULL, &tv) != 1 || !FD_ISSET(fd, &rd))
        return fail("select for the echo");
    pfd.events = POLLIN;
    if (poll(&pfd, 1, -1) != 1 || !(pfd.revents & POLLIN))
        return fail("poll for the echo");
    if (recv(fd, peek, 4, MSG_PEEK | MSG_WAITALL) <= 0)
        return fail("recv peek");
    if (recv(fd, real, 4, MSG_WAITALL) != 4)
        return fail("recv ping");
    if (memcmp(real, "ping", 4) || peek[0] != 'p') {
        fprintf(stderr, "shim_smoke: peek/ping differs\n");
        return 1;
    }

    /* Half-close: the echo server sees EOF and closes, we see EOF. */
    if (shutdown(fd, SHUT_WR) < 0)
        return fail("shutdown");
    ssize_t n = recv(fd, in, len, 0);
    if (n != 0) {
        fprintf(stderr, "shim_smoke: expected EOF, got %zd\n", n);
        return 1;
    }
    if (send(fd, "x", 1, MSG_NOSIGNAL) != -1 || errno != EPIPE) {
        fprintf(stderr, "shim_smoke: send after SHUT_WR: not EPIPE\n");
        return 1;
    }
    if (close(fd) < 0)
        return fail("close");
    free(out);
    free(in);
    printf("ok %zu bytes\n", len);
    return 0;
}
