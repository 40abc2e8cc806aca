/*
 * The socket options a frontend may set or read through the sockopt
 * extension (docs/pvcalls-ext.md, "sockopt").  Pure: unit-tested in
 * tests/unit/test_backd_sockopt.c.
 */
#ifndef BACKD_SOCKOPT_H
#define BACKD_SOCKOPT_H

#include <stdbool.h>
#include <stdint.h>

/* Whether (level, name) with a value of len bytes may be passed to the
 * host's setsockopt (set) or getsockopt (!set).  Returns 0, -ENOPROTOOPT
 * for an option outside the whitelist (or read-only, for set), or -EINVAL
 * for a length the option cannot take (set: at least the option's size;
 * get: 1..PVC_EXT_OPTVAL_MAX, the kernel truncates). */
int sockopt_check(uint32_t level, uint32_t name, uint32_t len, bool set);

/* "SO_REUSEADDR" etc. for logs; NULL if not whitelisted. */
const char *sockopt_name(uint32_t level, uint32_t name);

#endif
