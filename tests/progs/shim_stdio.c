/*
 * stdio and epoll on a TCP socket, for the shim's smoke test: connects to
 * an echo server at ADDR PORT, exchanges lines through an fdopen()ed
 * FILE (fileno must be the socket), then tries to register the socket
 * with epoll and prints what epoll_ctl answered ("epoll_ctl: ok", natively
 * and under the shim).
 * Exit 0 when the stdio exchange is exact and, if EXPECT is given,
 * epoll_ctl answered that ("ok" or an errno name).
 *
 *   shim_stdio ADDR PORT [EXPECT]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static int fail(const char *what)
{
    fprintf(stderr, "shim_stdio: %s: %s\n", what, strerror(errno));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4)
        return fprintf(stderr, "usage: shim_stdio ADDR PORT [EXPECT]\n"), 2;
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons((uint16_t)atoi(argv[2])) };
    if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1)
        return fprintf(stderr, "shim_stdio: bad address\n"), 2;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return fail("connect");

    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN };
    int r = epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    const char *epoll_said = r == 0 ? "ok" : strerrorname_np(errno);
    printf("epoll_ctl: %s\n", epoll_said);
    close(ep);
    if (argc == 4 && strcmp(argv[3], epoll_said))
        return fprintf(stderr, "shim_stdio: epoll_ctl said %s, not %s\n",
                       epoll_said, argv[3]), 3;

    FILE *fp = fdopen(fd, "r+");
    if (!fp)
        return fail("fdopen");
    if (fileno(fp) != fd)
        return fprintf(stderr, "shim_stdio: fileno %d != %d\n", fileno(fp), fd), 1;
    char line[128];
    for (int i = 0; i < 100; i++) {
        if (fprintf(fp, "line %d through stdio\n", i) < 0 || fflush(fp))
            return fail("fprintf");
        if (!fgets(line, sizeof(line), fp))
            return fail("fgets");
        char want[64];
        snprintf(want, sizeof(want), "line %d through stdio\n", i);
        if (strcmp(line, want))
            return fprintf(stderr, "shim_stdio: got \"%s\"\n", line), 1;
    }
    if (fclose(fp))
        return fail("fclose");
    printf("stdio: ok\n");
    return 0;
}
