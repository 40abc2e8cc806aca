/*
 * Small xenstore helpers shared by the frontend and backend handshakes.
 *
 * Every value read here may have been written by another domain, so the
 * readers parse strictly (decimal digits only, range-checked) and report
 * a missing node (ENOENT) apart from a malformed one (EINVAL).
 */
#ifndef PVC_XENBUS_XS_UTIL_H
#define PVC_XENBUS_XS_UTIL_H

#include "pvc/xenbus.h"

#include <stdbool.h>
#include <stdint.h>
#include <xenstore.h>

/* Give up on a transaction that keeps conflicting after this many tries. */
#define XB_TXN_RETRIES 64

/* snprintf into a path buffer of PVC_XB_PATH_MAX; -1/ENAMETOOLONG if it
 * does not fit (the input came from xenstore and may be anything). */
int xb_path(char *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Read dir/key as a decimal unsigned value <= max.  0, or -1 with errno
 * ENOENT (missing), EINVAL (not a number, or above max) or the store's
 * error. */
int xb_read_uint(struct xs_handle *xs, xs_transaction_t t, const char *dir,
                 const char *key, unsigned long max, unsigned long *out);
/* The XenbusState in dir/state (0..8), or -1 with errno as above. */
int xb_read_state(struct xs_handle *xs, xs_transaction_t t, const char *dir);
/* Read dir/key as a malloc'ed string (NULL with errno). */
char *xb_read_str(struct xs_handle *xs, xs_transaction_t t, const char *dir,
                  const char *key);
/* Does the node at path exist? (false on any error.) */
bool xb_exists(struct xs_handle *xs, xs_transaction_t t, const char *path);
/* Write dir/key = value. */
bool xb_write_str(struct xs_handle *xs, xs_transaction_t t, const char *dir,
                  const char *key, const char *value);
bool xb_write_uint(struct xs_handle *xs, xs_transaction_t t, const char *dir,
                   const char *key, unsigned long value);

/* Write dir/state = state in a transaction that first checks dir/state
 * exists, as Linux's xenbus_switch_state does: writing to a removed
 * device would recreate its directory.  0, or -1 with errno (ENOENT if
 * the device is gone). */
int xb_switch_state(struct xs_handle *xs, const char *dir, int state);

/* Discard every watch event queued on xs without blocking.  Callers
 * re-read the nodes they care about afterwards: an event is a doorbell,
 * and its value may already be stale. */
void xb_drain_watches(struct xs_handle *xs);

/* Milliseconds on the monotonic clock. */
int64_t xb_now_ms(void);
/* Block until a watch event may be queued on xs or the deadline passes.
 * Returns 1 if readable, 0 on timeout, -1 with errno. */
int xb_wait_watch(struct xs_handle *xs, int64_t deadline_ms);

#endif
