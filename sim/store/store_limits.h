/*
 * Bounds on what one domain can make the store hold.  Every count here is
 * driven by a (possibly hostile) guest, so each has a ceiling; the values
 * follow xenstored's default quotas where it has one.
 */
#ifndef SIM_STORE_LIMITS_H
#define SIM_STORE_LIMITS_H

#include <xen/io/xs_wire.h>

#define STORE_MAX_PERMS 16u          /* entries in one node's perm list */
#define STORE_QUOTA_NODES 1000u      /* nodes an unprivileged domain owns */
#define STORE_MAX_WATCHES 128u       /* watches per connection */
#define STORE_MAX_TXNS 10u           /* open transactions per connection */
/* A transaction holds a copy of the tree, so a domain's total is bounded
 * too, whatever number of connections it opens. */
#define STORE_MAX_DOMAIN_TXNS 16u
#define STORE_MAX_TXN_OPS 1024u      /* changes inside one transaction */
#define STORE_MAX_CONNS 64u          /* connections per domain */
/* Unsent output after which a connection that does not read is dropped. */
#define STORE_MAX_OUTPUT (1024u * 1024u)
/* A watch event carries a path (at most XENSTORE_ABS_PATH_MAX) and the
 * token in one payload, so tokens are bounded to what fits beside it. */
#define STORE_MAX_TOKEN (XENSTORE_PAYLOAD_MAX - XENSTORE_ABS_PATH_MAX - 2)

#endif
