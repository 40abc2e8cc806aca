/*
 * nbconnect_probe: the observable steps of a non-blocking connect(), as
 * stable text that a test compares between a native run and a run under
 * the shim.
 *
 *   nbconnect_probe ADDR PORT TIMEOUT_MS
 *
 * Prints, one per line:
 *   connect: <errno name, or 0>
 *   poll: <poll's return> revents=<POLLOUT|POLLERR|... or 0>
 *   elapsed: <T or >=T   (how long poll() took against TIMEOUT_MS)
 *   so_error: <errno name of getsockopt(SO_ERROR), or 0>
 *   connect2: <errno name of a second connect(), or 0>
 *   connect3: <the same for a third>
 * Exit status 0 once everything was printed, 1 if a step itself failed
 * (socket(), getsockopt()), 2 on bad arguments.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *errno_name(int err)
{
    switch (err) {
    case 0: return "0";
    case EINPROGRESS: return "EINPROGRESS";
    case EALREADY: return "EALREADY";
    case EISCONN: return "EISCONN";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ECONNRESET: return "ECONNRESET";
    case ECONNABORTED: return "ECONNABORTED";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETUNREACH: return "ENETUNREACH";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EAGAIN: return "EAGAIN";
    case EINVAL: return "EINVAL";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EBADF: return "EBADF";
    case ENOTSOCK: return "ENOTSOCK";
    default: {
        static char other[32];
        snprintf(other, sizeof(other), "errno %d", err);
        return other;
    }
    }
}

/* revents as names, in a fixed order. */
static void print_revents(short revents)
{
    static const struct { short bit; const char *name; } bits[] = {
        { POLLIN, "POLLIN" },     { POLLPRI, "POLLPRI" },
        { POLLOUT, "POLLOUT" },   { POLLERR, "POLLERR" },
        { POLLHUP, "POLLHUP" },   { POLLNVAL, "POLLNVAL" },
        { POLLRDHUP, "POLLRDHUP" },
    };
    const char *sep = "";
    if (!revents)
        printf("0");
    for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
        if (revents & bits[i].bit) {
            printf("%s%s", sep, bits[i].name);
            sep = "|";
            revents &= (short)~bits[i].bit;
        }
    }
    if (revents)
        printf("%s0x%x", sep, (unsigned)revents);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int connect_errno(int fd, const struct sockaddr_in *a)
{
    return connect(fd, (const struct sockaddr *)a, sizeof(*a)) == 0 ? 0
                                                                  : errno;
}

int main(int argc, char **argv)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    if (argc != 4 || inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) {
        fprintf(stderr, "usage: nbconnect_probe ADDR PORT TIMEOUT_MS\n");
        return 2;
    }
    a.sin_port = htons((unsigned short)atoi(argv[2]));
    int timeout_ms = atoi(argv[3]);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        perror("nbconnect_probe: socket");
        return 1;
    }
    printf("connect: %s\n", errno_name(connect_errno(fd, &a)));

    struct pollfd p = { .fd = fd, .events = POLLOUT };
    long long t0 = now_ms();
    int n = poll(&p, 1, timeout_ms);
    long long took = now_ms() - t0;
    printf("poll: %d revents=", n < 0 ? -errno : n);
    print_revents(p.revents);
    printf("\nelapsed: %s\n", took < timeout_ms ? "<T" : ">=T");

    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
        perror("nbconnect_probe: getsockopt");
        return 1;
    }
    printf("so_error: %s\n", errno_name(err));
    /* Linux answers the second call with the outcome (0 once, then
     * EISCONN; EALREADY while pending; ECONNABORTED after a failure). */
    printf("connect2: %s\n", errno_name(connect_errno(fd, &a)));
    printf("connect3: %s\n", errno_name(connect_errno(fd, &a)));
    close(fd);
    return 0;
}
