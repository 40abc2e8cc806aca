/*
 * Shared helpers of the benchmark tools (bench/src/pvcb-*.c): address
 * parsing, a monotonic clock, and failing loudly.  The tools are plain
 * socket programs: they run natively, in a network namespace, or under
 * the shim, unchanged, so that every system measures the same code.
 */
#ifndef PVCB_BENCH_UTIL_H
#define PVCB_BENCH_UTIL_H

#include <netinet/in.h>
#include <stdint.h>

/* Print "PROG: what: errno text" on stderr and exit 1. */
void pvcb_die(const char *what) __attribute__((noreturn));
/* Print a message on stderr and exit 2 (bad usage). */
void pvcb_usage(const char *usage) __attribute__((noreturn));

/* ADDR (dotted IPv4) and PORT (1..65535) into *sa, or exit 2. */
void pvcb_parse_addr(const char *addr, const char *port,
                     struct sockaddr_in *sa);
/* A positive integer argument no larger than max, or exit 2. */
long pvcb_parse_count(const char *arg, const char *name, long max);
/* A positive duration in seconds (fractions allowed), or exit 2. */
double pvcb_parse_seconds(const char *arg);

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t pvcb_now_ns(void);

/* Disable Nagle: every tool measures small messages, which Nagle would
 * hold back for the peer's ACK. */
void pvcb_nodelay(int fd);
/* Raise RLIMIT_NOFILE's soft limit to its hard limit (idle tests hold
 * many sockets). */
void pvcb_raise_nofile(void);

/* Write/read exactly len bytes (blocking socket): 0, or -1 with errno
 * (ECONNRESET-like, or 0 bytes read: errno = EPIPE). */
int pvcb_write_all(int fd, const void *buf, size_t len);
int pvcb_read_all(int fd, void *buf, size_t len);

#endif
