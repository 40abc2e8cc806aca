/*
 * pvcb-hold: the client side of idle-10k.  Opens N TCP connections and
 * holds them without sending anything until killed.
 *
 *   pvcb-hold ADDR PORT N
 *
 * Prints "ready N PID" once all N are connected (PID: this process, for
 * the harness to measure), or "failed K WHY" after K successful
 * connections if one fails (and exits 1); "connected K" every 250 on the
 * way (what a harness that gives up waiting can report).  Connections
 * are made one after the other: the set-up time is not what idle-10k
 * measures.
 */
#include "bench_util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS (1 << 20)
/* How often "connected K" is printed on the way to N. */
#define PROGRESS_EVERY 250

int main(int argc, char **argv)
{
    if (argc != 4)
        pvcb_usage("ADDR PORT N");
    struct sockaddr_in sa;
    pvcb_parse_addr(argv[1], argv[2], &sa);
    long n = pvcb_parse_count(argv[3], "N", MAX_CONNS);
    pvcb_raise_nofile();

    for (long i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        const char *step = fd < 0 ? "socket" : NULL;
        if (fd >= 0 &&
            connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0)
            step = "connect";
        if (step) {
            printf("failed %ld %s: %s\n", i, step, strerror(errno));
            fflush(stdout);
            return 1;
        }
        if ((i + 1) % PROGRESS_EVERY == 0 && i + 1 < n) {
            printf("connected %ld\n", i + 1);
            fflush(stdout);
        }
    }
    printf("ready %ld %d\n", n, (int)getpid());
    fflush(stdout);
    for (;;)
        pause();
}
