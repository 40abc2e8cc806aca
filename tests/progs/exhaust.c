/*
 * exhaust: open TCP sockets until a call fails, report how, free them
 * all, then check that a new connection works.
 *
 *   exhaust MODE PORT NOFILE [MAX]
 *
 * MODE socket: socket() only; MODE connect: socket() + connect() to the
 * echo server at 127.0.0.1:PORT.  NOFILE > 0 lowers RLIMIT_NOFILE's soft
 * limit first (so that the limit is reached quickly); 0 keeps it.  At
 * most MAX sockets (default 100000): reaching MAX is "nolimit".
 * Prints "fail CALL ERRNO-NAME COUNT" (or "nolimit COUNT"), then, after
 * closing everything, "after ok" once a fresh connection echoed 4 bytes
 * ("after CALL ERRNO-NAME" if not).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_in server;

/* A new socket, connected if `connect_it`; -1 with *call naming the
 * call that failed (errno set). */
static int open_one(int connect_it, const char **call)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        *call = "socket";
        return -1;
    }
    if (connect_it &&
        connect(fd, (struct sockaddr *)&server, sizeof(server)) < 0) {
        int err = errno;
        close(fd);
        errno = err;
        *call = "connect";
        return -1;
    }
    return fd;
}

static int echo_works(const char **call)
{
    int fd = open_one(1, call);
    if (fd < 0)
        return 0;
    char buf[4];
    if (send(fd, "ping", 4, MSG_NOSIGNAL) != 4) {
        *call = "send";
        close(fd);
        return 0;
    }
    size_t got = 0;
    while (got < 4) {
        ssize_t n = recv(fd, buf + got, 4 - got, 0);
        if (n <= 0) {
            if (n == 0)
                errno = EPIPE;
            *call = "recv";
            close(fd);
            return 0;
        }
        got += (size_t)n;
    }
    close(fd);
    return memcmp(buf, "ping", 4) == 0;
}

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[1], "socket") && strcmp(argv[1], "connect"))) {
        fprintf(stderr, "usage: exhaust socket|connect PORT NOFILE [MAX]\n");
        return 2;
    }
    int connect_it = !strcmp(argv[1], "connect");
    server.sin_family = AF_INET;
    server.sin_port = htons((unsigned short)atoi(argv[2]));
    server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    long nofile = atol(argv[3]);
    long max = argc > 4 ? atol(argv[4]) : 100000;
    if (nofile > 0) {
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = (rlim_t)nofile;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            perror("setrlimit");
            return 1;
        }
    }
    int *fds = calloc((size_t)max, sizeof(*fds));
    if (!fds)
        return 1;
    long count = 0;
    const char *call = "";
    int err = 0;
    while (count < max) {
        int fd = open_one(connect_it, &call);
        if (fd < 0) {
            err = errno;
            break;
        }
        fds[count++] = fd;
    }
    if (count == max)
        printf("nolimit %ld\n", count);
    else
        printf("fail %s %s %ld\n", call, strerrorname_np(err), count);
    fflush(stdout);
    for (long i = 0; i < count; i++)
        close(fds[i]);
    free(fds);
    if (echo_works(&call))
        printf("after ok\n");
    else
        printf("after %s %s\n", call, strerrorname_np(errno));
    return 0;
}
