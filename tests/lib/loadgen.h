/*
 * ApacheBench (ab) as a native load generator: run it in the background
 * and check its report (every request complete, none failed, all 2xx,
 * no write error, every body byte counted).  ab runs without keep-alive:
 * one connection per request.
 */
#ifndef TEST_LOADGEN_H
#define TEST_LOADGEN_H

#include "runprog.h"

#include <stddef.h>

/* ab -q -s TIMEOUT -n REQUESTS -c CONCURRENCY URL, its report into out. */
void lg_ab_spawn(struct rp_child *ab, const char *url, int requests,
                 int concurrency, int timeout_s, const char *out);
/* The number after `label` in ab's report, 0 if the line is absent (ab
 * prints "Non-2xx responses" and "Write errors" only when nonzero). */
long long lg_ab_field(const char *report, const char *label);
/* Expect a clean report of `requests` requests of body_size bytes. */
void lg_ab_expect_clean(const char *out, int requests, size_t body_size);

#endif
