/*
 * Debian's redis-server in an end-to-end test: started natively or under
 * pvcalls-run --isolate on a free loopback port, without persistence
 * (--save "" --appendonly no), bound to 127.0.0.1; ready once it logs
 * "Ready to accept connections" (after it listens).  redis-cli runs,
 * natively or under the shim, against it.
 */
#ifndef TEST_REDIS_H
#define TEST_REDIS_H

#include "runprog.h"

#include <stdbool.h>
#include <sys/types.h>

struct redis_srv {
    struct rp_env *e;
    char port[8];
    char pid_file[160];
    bool shim;
    struct rp_child run; /* redis-server, or pvcalls-run */
};

/* Start it and wait until it is ready (asserts; fails at once if it
 * exits first). */
void redis_start(struct redis_srv *r, struct rp_env *e, bool shim);
/* The server's pid (from its pid file, written before it is ready). */
pid_t redis_pid(const struct redis_srv *r);
/* SIGTERM and assert a clean exit 0. */
void redis_stop(struct redis_srv *r);
/* redis-cli -h 127.0.0.1 -p PORT ARGS... (natively or under the shim):
 * stdin from in_path (NULL: none), stdout into out_path; asserts exit 0. */
void redis_cli(struct redis_srv *r, bool shim, const char *const args[],
               const char *in_path, const char *out_path);

#endif
