/*
 * Xenstore paths: validation and resolution of relative paths, with
 * xenstored's rules (docs/misc/xenstore.txt).  Pure functions, no I/O.
 */
#ifndef SIM_STORE_PATH_H
#define SIM_STORE_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store_limits.h"

/* Room for any canonical path plus its nul. */
#define PATH_BUF (XENSTORE_ABS_PATH_MAX + 1)

/* Resolve `in` as domain `domid` sent it into out[PATH_BUF]: a relative
 * path is taken below /local/domain/<domid>.  Special paths ("@...") are
 * accepted only if allow_special.  *relative (may be NULL) tells whether
 * the caller used a relative path.  Returns 0 or -EINVAL. */
int path_canonical(uint16_t domid, const char *in, bool allow_special,
                   char *out, bool *relative);

/* Length of "/local/domain/<domid>/", the prefix a relative path gains. */
size_t path_relative_prefix_len(uint16_t domid);

/* "/local/domain/<domid>" into out[PATH_BUF]. */
void path_domain(uint16_t domid, char *out);

/* Is `child` the node `parent` or below it (component-wise)? */
bool path_is_below(const char *child, const char *parent);

/* Copy the parent of canonical non-root `path` into out[PATH_BUF]. */
void path_parent(const char *path, char *out);

#endif
