/*
 * The store's tree of nodes: values, permissions, generation counts and
 * per-domain node quotas, with xenstored's access rules.  No I/O: changes
 * are reported through a notify callback (the live tree's fires watches; a
 * transaction's private copy has none).
 *
 * Operations take the acting domain and return 0 or a negative errno:
 * -ENOENT, -EACCES (xenstored answers EACCES rather than ENOENT when the
 * caller may not even see the nearest existing ancestor), -EINVAL, -EPERM,
 * -ENOSPC (quota), -ENOMEM.  Paths are canonical (see path.h).
 */
#ifndef SIM_STORE_TREE_H
#define SIM_STORE_TREE_H

#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

#include "perms.h"

/* Values are immutable and shared by reference between the live tree,
 * transaction snapshots and transaction logs. */
struct tree_value {
    unsigned refs;
    size_t len;
    char data[];
};

struct tree_value *tree_value_new(const void *data, size_t len);
struct tree_value *tree_value_ref(struct tree_value *v);
void tree_value_unref(struct tree_value *v);

struct tree_node {
    char *name;                 /* leaf name; "" for the root */
    struct tree_node *parent;
    struct tree_node *children; /* uthash head; iterates in creation order */
    UT_hash_handle hh;
    struct tree_value *value;   /* NULL: empty */
    struct store_perms perms;
    /* Changes whenever the node's value, perms or child list changes;
     * transactions compare it to detect conflicts. */
    uint64_t gen;
};

enum tree_match {
    TREE_MATCH_SUBTREE, /* watches on the path or above it fire */
    TREE_MATCH_EXACT,   /* only watches on exactly this path fire */
};

/* Called after a node was created or changed, and for each removed node
 * (descendants first) just before it goes.  old_perms: the perms before a
 * perms change, else NULL. */
typedef void (*tree_notify_fn)(void *ctx, const char *path,
                               const struct tree_node *node,
                               enum tree_match match,
                               const struct store_perms *old_perms);

struct tree;

/* "/" alone, owned by domain 0, no access for others. */
struct tree *tree_new(void);
/* A private deep copy (values shared), without the notify callback. */
struct tree *tree_copy(const struct tree *t);
void tree_free(struct tree *t);
void tree_set_notify(struct tree *t, tree_notify_fn fn, void *ctx);

/* Quota is not enforced (replaying a committed transaction). */
#define TREE_NO_QUOTA 1u

struct tree_node *tree_lookup(const struct tree *t, const char *path);
/* Look up path for domid, needing the `need` PERM_* bits. */
int tree_get(const struct tree *t, uint16_t domid, const char *path,
             unsigned need, const struct tree_node **out);
/* Set a node's value, creating it and missing parents (which inherit
 * their parent's perms, owned by domid unless domid is 0).  On success
 * the node holds its own reference to v. */
int tree_write(struct tree *t, uint16_t domid, const char *path,
               struct tree_value *v, unsigned flags);
/* Create path (and parents) with an empty value if missing. */
int tree_mkdir(struct tree *t, uint16_t domid, const char *path,
               unsigned flags);
/* Remove path and everything below.  Success if path is absent but its
 * parent exists; -EINVAL for "/". */
int tree_rm(struct tree *t, uint16_t domid, const char *path);
/* Only the owner (or domain 0) may; only domain 0 may change the owner
 * (-EPERM). */
int tree_set_perms(struct tree *t, uint16_t domid, const char *path,
                   const struct store_perms *perms);

/* The child names, each nul-terminated, in creation order, into buf (cap
 * bytes); returns the length needed. */
size_t tree_child_names(const struct tree_node *node, char *buf, size_t cap);
/* Nodes owned by domid (counted against STORE_QUOTA_NODES). */
unsigned tree_owned(const struct tree *t, uint16_t domid);

#endif
