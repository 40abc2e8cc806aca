/*
 * The simulated platform's xenstore: a tree of nodes with permissions,
 * transactions and watches, served to each simulated domain on its own
 * filesystem Unix socket in xenstored's wire protocol (<xen/io/xs_wire.h>),
 * so that every program uses the real libxenstore (XENSTORED_PATH).
 *
 * The socket a connection arrives on is its domain, as the xenbus device
 * is on Xen.  Domain 0 is privileged (bypasses permissions).
 */
#ifndef SIM_STORE_H
#define SIM_STORE_H

#include "pvc/loop.h"
#include "pvc/platform.h"

struct sim_store;

struct sim_store *sim_store_new(struct pvc_loop *loop);
/* Closes every connection and socket (unlinking the socket files). */
void sim_store_free(struct sim_store *st);

/* Listen for domid's connections on a new socket at sock_path (mode 0666:
 * simulated guests run as any user).  Creates /local/domain/<domid> owned
 * by domid if absent, and for domid != 0 fires @introduceDomain. */
int sim_store_domain_add(struct sim_store *st, pvc_domid_t domid,
                         const char *sock_path);
/* The domain is dead: close its connections and socket, unlink the
 * socket file, remove /local/domain/<domid>, fire @releaseDomain. */
void sim_store_domain_remove(struct sim_store *st, pvc_domid_t domid);

#endif
