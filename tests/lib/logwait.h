/*
 * Servers that say on stderr when they listen (socat -d -d, sshd -e):
 * run one through pvcalls-run --isolate with its stderr folded into the
 * pipe that rp_read_line reads, and wait for the line that says it is
 * ready, without polling.
 */
#ifndef TEST_LOGWAIT_H
#define TEST_LOGWAIT_H

#include "runprog.h"

#include <stdbool.h>

/* Spawn prog under pvcalls-run --isolate (opts as rp_shim_argv), its
 * stderr into its stdout pipe (through sh), and wait until a line
 * containing `ready` appears; asserts with the last line seen. */
void lw_start(struct rp_env *e, const char *const opts[],
              const char *const prog[], const char *ready,
              struct rp_child *out, int timeout_ms);

#endif
