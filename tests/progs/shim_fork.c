/*
 * fork with shared sockets, as pre-fork servers do: the parent listens on
 * 127.0.0.1 (port chosen by the system), forks a worker that accepts, and
 * closes its own copy of the listener at once (which must not take the
 * worker's away); then it connects as a client.  Worker and client
 * exchange a message each way and check addresses.  Under the shim both
 * ends cross PV Calls, and the worker's calls need a daemon connection
 * of its own after fork.  Exit 0 when all holds.
 *
 *   shim_fork
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "shim_fork[%d]: %s: %s\n", (int)getpid(), what,
                strerror(errno));
        exit(1);
    }
}

static void worker(int lfd, uint16_t port)
{
    struct sockaddr_in peer;
    socklen_t len = sizeof(peer);
    int fd = accept(lfd, (struct sockaddr *)&peer, &len);
    check(fd >= 0, "accept");
    check(len == sizeof(peer) && peer.sin_family == AF_INET &&
              peer.sin_addr.s_addr == htonl(INADDR_LOOPBACK),
          "accept address");
    char buf[5];
    check(recv(fd, buf, 5, MSG_WAITALL) == 5 && !memcmp(buf, "hello", 5),
          "recv hello");
    check(send(fd, "world", 5, 0) == 5, "send world");
    struct sockaddr_in self;
    len = sizeof(self);
    check(getsockname(fd, (struct sockaddr *)&self, &len) == 0 &&
              ntohs(self.sin_port) == port,
          "getsockname of the accepted socket");
    check(recv(fd, buf, 1, 0) == 0, "EOF from the client");
    check(close(fd) == 0 && close(lfd) == 0, "close");
    exit(0);
}

int main(void)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    check(lfd >= 0, "socket");
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    check(bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0, "bind");
    check(listen(lfd, 4) == 0, "listen");
    socklen_t len = sizeof(a);
    check(getsockname(lfd, (struct sockaddr *)&a, &len) == 0, "getsockname");
    uint16_t port = ntohs(a.sin_port);

    pid_t pid = fork();
    check(pid >= 0, "fork");
    if (pid == 0)
        worker(lfd, port);
    check(close(lfd) == 0, "parent closes its listener copy");

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    check(fd >= 0, "client socket");
    check(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect");
    check(send(fd, "hello", 5, 0) == 5, "send hello");
    char buf[5];
    check(recv(fd, buf, 5, MSG_WAITALL) == 5 && !memcmp(buf, "world", 5),
          "recv world");
    check(shutdown(fd, SHUT_WR) == 0, "shutdown");
    int status;
    check(waitpid(pid, &status, 0) == pid, "waitpid");
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "worker failed");
    check(close(fd) == 0, "close");
    printf("ok\n");
    return 0;
}
