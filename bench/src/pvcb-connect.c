/*
 * pvcb-connect: connection rate (workload connect).  CONC threads, each
 * in a loop for SECONDS: socket, connect, send 1 byte, read the 1-byte
 * reply (pvcb-echo echoes it), close.
 *
 *   pvcb-connect ADDR PORT SECONDS CONC
 *
 * Prints one JSON object: connections (completed cycles), seconds, cps
 * (connections per second), errors (failed cycles) and first_error.
 * Exits 1 if no cycle completed.
 */
#include "bench_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_CONC 256
/* A thread that fails this many times in a row gives up (a broken
 * system must not spin for the whole run). */
#define MAX_FAILS_IN_A_ROW 100

struct worker {
    pthread_t thread;
    const struct sockaddr_in *sa;
    int64_t end_ns;
    long done, errors;
    int first_errno;
    const char *first_step;
};

/* A cycle stuck in a SYN retransmit or a lost reply must not hold the
 * run past its duration: Linux bounds connect by SO_SNDTIMEO, recv by
 * SO_RCVTIMEO; the cycle then counts as failed. */
#define CYCLE_TIMEOUT_S 2

static const char *set_timeouts(int fd)
{
    struct timeval tv = { .tv_sec = CYCLE_TIMEOUT_S };
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
        return "setsockopt SO_SNDTIMEO";
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
        return "setsockopt SO_RCVTIMEO";
    return NULL;
}

/* One cycle: 0, or the step that failed (errno set). */
static const char *one_cycle(const struct sockaddr_in *sa)
{
    char byte = 'c';
    const char *step = NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return "socket";
    if ((step = set_timeouts(fd)))
        ;
    else if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0)
        step = "connect";
    else if (pvcb_write_all(fd, &byte, 1) < 0)
        step = "send";
    else if (pvcb_read_all(fd, &byte, 1) < 0)
        step = "recv";
    int saved = errno;
    close(fd);
    errno = saved;
    return step;
}

static void *run_worker(void *arg)
{
    struct worker *w = arg;
    int fails = 0;
    while (pvcb_now_ns() < w->end_ns && fails < MAX_FAILS_IN_A_ROW) {
        const char *step = one_cycle(w->sa);
        if (!step) {
            w->done++;
            fails = 0;
            continue;
        }
        if (!w->errors++) {
            w->first_step = step;
            w->first_errno = errno;
        }
        fails++;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 5)
        pvcb_usage("ADDR PORT SECONDS CONC");
    struct sockaddr_in sa;
    pvcb_parse_addr(argv[1], argv[2], &sa);
    double seconds = pvcb_parse_seconds(argv[3]);
    int conc = (int)pvcb_parse_count(argv[4], "concurrency", MAX_CONC);
    pvcb_raise_nofile();

    struct worker ws[MAX_CONC];
    int64_t start = pvcb_now_ns();
    for (int i = 0; i < conc; i++) {
        ws[i] = (struct worker){ .sa = &sa,
                                 .end_ns = start + (int64_t)(seconds * 1e9) };
        errno = pthread_create(&ws[i].thread, NULL, run_worker, &ws[i]);
        if (errno)
            pvcb_die("pthread_create");
    }
    long done = 0, errors = 0;
    char first[160] = "";
    for (int i = 0; i < conc; i++) {
        pthread_join(ws[i].thread, NULL);
        done += ws[i].done;
        errors += ws[i].errors;
        if (ws[i].errors && !first[0])
            snprintf(first, sizeof(first), "%s: %s", ws[i].first_step,
                     strerror(ws[i].first_errno));
    }
    double elapsed = (double)(pvcb_now_ns() - start) / 1e9;
    printf("{\"connections\": %ld, \"seconds\": %.6f, \"cps\": %.1f, "
           "\"errors\": %ld, \"first_error\": \"%s\"}\n",
           done, elapsed, (double)done / elapsed, errors, first);
    return done > 0 ? 0 : 1;
}
