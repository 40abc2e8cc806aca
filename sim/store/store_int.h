/*
 * The store's shared state, for its parts: store.c (domains, listeners,
 * watch delivery), conn.c (one client connection's framing and buffers)
 * and ops.c (what each request does).
 */
#ifndef SIM_STORE_INT_H
#define SIM_STORE_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uthash.h>

#include "store.h"
#include "tree.h"

struct store_conn;

/* One simulated domain's listening socket. */
struct store_domain {
    struct sim_store *st;
    uint16_t domid;
    char *sock_path;
    int fd;
    struct pvc_watch w;
    unsigned n_conns;
    unsigned n_txns;            /* open, over all its connections */
    UT_hash_handle hh;
};

/* The special nodes xenstored invents for domain events: watchable, with
 * perms, but not part of the tree. */
enum store_special { SPECIAL_INTRODUCE, SPECIAL_RELEASE, SPECIAL_COUNT };

struct sim_store {
    struct pvc_loop *loop;
    struct tree *tree;
    struct store_domain *domains;   /* by domid */
    struct store_conn *conns;       /* every live connection */
    struct store_perms special_perms[SPECIAL_COUNT];
    /* Kept open so that one can be freed to accept-and-close a client
     * when out of descriptors (else the listener would spin). */
    int reserve_fd;
};

/* The special node named path, or -1. */
int store_special_index(const char *path);
/* Send the event for a change at path to every watch it concerns whose
 * domain may see the node (it, or its parent, is readable by them, or was
 * before a perms change), as xenstored does. */
void store_fire(struct sim_store *st, const char *path,
                const struct tree_node *node, enum tree_match match,
                const struct store_perms *old_perms);

#endif
