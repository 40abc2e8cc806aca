/*
 * pvcb-rr: request/response over one TCP connection (workload rr-64).
 * Sends SIZE bytes, reads SIZE bytes back (pvcb-echo echoes them), and
 * again, for SECONDS; every round trip is timed.
 *
 *   pvcb-rr ADDR PORT SIZE SECONDS
 *
 * Prints one JSON object: round_trips, seconds, rtps (round trips per
 * second), p50_us and p99_us (latency percentiles, microseconds).
 * The first 50 ms are not counted (connection warm-up).
 */
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_SIZE (1 << 20)
#define WARMUP_NS 50000000ll

struct samples {
    uint32_t *ns; /* one round trip each; capped at ~4.3 s, far above any */
    size_t n, cap;
};

static void add_sample(struct samples *s, int64_t ns)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 65536;
        s->ns = realloc(s->ns, s->cap * sizeof(*s->ns));
        if (!s->ns)
            pvcb_die("realloc");
    }
    s->ns[s->n++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* The q-quantile (0..1) of sorted samples, in microseconds. */
static double quantile_us(const struct samples *s, double q)
{
    size_t i = (size_t)(q * (double)(s->n - 1) + 0.5);
    return s->ns[i] / 1000.0;
}

static int connect_to(const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        pvcb_die("socket");
    if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0)
        pvcb_die("connect");
    pvcb_nodelay(fd);
    return fd;
}

static void round_trip(int fd, char *buf, size_t size)
{
    if (pvcb_write_all(fd, buf, size) < 0)
        pvcb_die("send");
    if (pvcb_read_all(fd, buf, size) < 0)
        pvcb_die("recv");
}

int main(int argc, char **argv)
{
    if (argc != 5)
        pvcb_usage("ADDR PORT SIZE SECONDS");
    struct sockaddr_in sa;
    pvcb_parse_addr(argv[1], argv[2], &sa);
    size_t size = (size_t)pvcb_parse_count(argv[3], "size", MAX_SIZE);
    double seconds = pvcb_parse_seconds(argv[4]);
    char *buf = calloc(1, size);
    if (!buf)
        pvcb_die("calloc");
    int fd = connect_to(&sa);

    int64_t start = pvcb_now_ns();
    while (pvcb_now_ns() - start < WARMUP_NS)
        round_trip(fd, buf, size);
    struct samples s = { 0 };
    start = pvcb_now_ns();
    int64_t end = start + (int64_t)(seconds * 1e9), t0 = start, t1;
    do {
        round_trip(fd, buf, size);
        t1 = pvcb_now_ns();
        add_sample(&s, t1 - t0);
        t0 = t1;
    } while (t1 < end);
    close(fd);

    double elapsed = (double)(t1 - start) / 1e9;
    qsort(s.ns, s.n, sizeof(*s.ns), cmp_u32);
    printf("{\"round_trips\": %zu, \"seconds\": %.6f, \"rtps\": %.1f, "
           "\"p50_us\": %.2f, \"p99_us\": %.2f}\n",
           s.n, elapsed, (double)s.n / elapsed, quantile_us(&s, 0.50),
           quantile_us(&s, 0.99));
    free(s.ns);
    free(buf);
    return 0;
}
