/*
 * idle_conns: open N TCP connections to 127.0.0.1:PORT and hold them
 * without ever sending a byte; print "ready" once all are connected, then
 * wait to be killed.  The idle clients of test_run_idle (a server must
 * not spend CPU on connections that say nothing).
 *
 *   idle_conns PORT N
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: idle_conns PORT N\n");
        return 2;
    }
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons((unsigned short)atoi(argv[1])),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int n = atoi(argv[2]);
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
            fprintf(stderr, "idle_conns: connection %d: %s\n", i,
                    strerror(errno));
            return 1;
        }
    }
    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause();
}
