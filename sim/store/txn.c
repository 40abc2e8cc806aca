/* Transactions: see txn.h. */
#include "txn.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "path.h"

/* A node the transaction depends on, as it was when the transaction
 * started. */
struct txn_access {
    char *path;
    bool existed;
    uint64_t gen;
    UT_hash_handle hh;
};

enum txn_op_kind { OP_WRITE, OP_MKDIR, OP_RM, OP_SET_PERMS };

struct txn_op {
    enum txn_op_kind kind;
    char *path;
    struct tree_value *value;   /* OP_WRITE */
    struct store_perms perms;   /* OP_SET_PERMS */
    struct txn_op *next;
};

struct txn {
    uint32_t id;
    uint16_t domid;
    struct tree *tree;
    struct txn_access *accessed;
    struct txn_op *ops, **ops_tail;
    unsigned n_ops;
};

struct txn *txn_start(const struct tree *live, uint32_t id, uint16_t domid)
{
    struct txn *txn = calloc(1, sizeof(*txn));
    if (!txn)
        return NULL;
    txn->tree = tree_copy(live);
    if (!txn->tree) {
        free(txn);
        return NULL;
    }
    txn->id = id;
    txn->domid = domid;
    txn->ops_tail = &txn->ops;
    return txn;
}

static void op_free(struct txn_op *op)
{
    tree_value_unref(op->value);
    free(op->path);
    free(op);
}

void txn_free(struct txn *txn)
{
    if (!txn)
        return;
    struct txn_access *a, *tmp;
    HASH_ITER(hh, txn->accessed, a, tmp) {
        HASH_DEL(txn->accessed, a);
        free(a->path);
        free(a);
    }
    while (txn->ops) {
        struct txn_op *op = txn->ops;
        txn->ops = op->next;
        op_free(op);
    }
    tree_free(txn->tree);
    free(txn);
}

uint32_t txn_id(const struct txn *txn)
{
    return txn->id;
}

const struct tree *txn_tree(const struct txn *txn)
{
    return txn->tree;
}

/* ---- what the transaction depends on ------------------------------------ */

/* The first note of a path wins: every change is preceded by notes of all
 * the nodes it alters, so a first note always sees the starting state. */
static int note(struct txn *txn, const char *path)
{
    struct txn_access *a;
    HASH_FIND_STR(txn->accessed, path, a);
    if (a)
        return 0;
    a = calloc(1, sizeof(*a));
    if (!a || !(a->path = strdup(path))) {
        free(a);
        return -ENOMEM;
    }
    const struct tree_node *n = tree_lookup(txn->tree, path);
    a->existed = n != NULL;
    a->gen = n ? n->gen : 0;
    HASH_ADD_KEYPTR(hh, txn->accessed, a->path, strlen(a->path), a);
    return 0;
}

int txn_note_read(struct txn *txn, const char *path)
{
    return note(txn, path);
}

/* A write or mkdir alters path and every missing parent, and the child
 * list of the deepest existing one. */
static int note_create(struct txn *txn, const char *path)
{
    char cur[PATH_BUF];
    snprintf(cur, sizeof(cur), "%s", path);
    for (;;) {
        int r = note(txn, cur);
        if (r < 0)
            return r;
        if (tree_lookup(txn->tree, cur) || !strcmp(cur, "/"))
            return 0;
        char parent[PATH_BUF];
        path_parent(cur, parent);
        memcpy(cur, parent, sizeof(cur));
    }
}

static int note_below(struct txn *txn, const struct tree_node *n,
                      char *path)
{
    size_t len = strlen(path);
    for (const struct tree_node *c = n->children; c; c = c->hh.next) {
        snprintf(path + len, PATH_BUF - len, "/%s", c->name);
        int r = note(txn, path);
        if (r == 0)
            r = note_below(txn, c, path);
        path[len] = '\0';
        if (r < 0)
            return r;
    }
    return 0;
}

/* A removal alters the node, all below it and its parent's child list. */
static int note_subtree(struct txn *txn, const char *path)
{
    char buf[PATH_BUF];
    path_parent(path, buf);
    int r = note(txn, buf);
    if (r == 0)
        r = note(txn, path);
    const struct tree_node *n = tree_lookup(txn->tree, path);
    if (r < 0 || !n)
        return r;
    snprintf(buf, sizeof(buf), "%s", path);
    /* Below "/" children are "/x", not "//x". */
    if (!strcmp(buf, "/"))
        buf[0] = '\0';
    return note_below(txn, n, buf);
}

/* ---- changes ------------------------------------------------------------ */

static struct txn_op *op_new(struct txn *txn, enum txn_op_kind kind,
                             const char *path)
{
    if (txn->n_ops >= STORE_MAX_TXN_OPS) {
        errno = ENOSPC;
        return NULL;
    }
    struct txn_op *op = calloc(1, sizeof(*op));
    if (!op || !(op->path = strdup(path))) {
        free(op);
        errno = ENOMEM;
        return NULL;
    }
    op->kind = kind;
    return op;
}

/* Keep op if the change succeeded in the private tree, else drop it. */
static int op_finish(struct txn *txn, struct txn_op *op, int result)
{
    if (result < 0) {
        op_free(op);
        return result;
    }
    *txn->ops_tail = op;
    txn->ops_tail = &op->next;
    txn->n_ops++;
    return 0;
}

int txn_write(struct txn *txn, const char *path, struct tree_value *v)
{
    struct txn_op *op = op_new(txn, OP_WRITE, path);
    if (!op)
        return -errno;
    int r = note_create(txn, path);
    if (r == 0)
        r = tree_write(txn->tree, txn->domid, path, v, 0);
    if (r == 0)
        op->value = tree_value_ref(v);
    return op_finish(txn, op, r);
}

int txn_mkdir(struct txn *txn, const char *path)
{
    struct txn_op *op = op_new(txn, OP_MKDIR, path);
    if (!op)
        return -errno;
    int r = note_create(txn, path);
    if (r == 0)
        r = tree_mkdir(txn->tree, txn->domid, path, 0);
    return op_finish(txn, op, r);
}

int txn_rm(struct txn *txn, const char *path)
{
    struct txn_op *op = op_new(txn, OP_RM, path);
    if (!op)
        return -errno;
    int r = note_subtree(txn, path);
    if (r == 0)
        r = tree_rm(txn->tree, txn->domid, path);
    return op_finish(txn, op, r);
}

int txn_set_perms(struct txn *txn, const char *path,
                  const struct store_perms *perms)
{
    struct txn_op *op = op_new(txn, OP_SET_PERMS, path);
    if (!op)
        return -errno;
    int r = note(txn, path);
    if (r == 0)
        r = tree_set_perms(txn->tree, txn->domid, path, perms);
    if (r == 0)
        op->perms = *perms;
    return op_finish(txn, op, r);
}

/* ---- commit ------------------------------------------------------------- */

static bool conflicts(const struct txn *txn, const struct tree *live)
{
    for (const struct txn_access *a = txn->accessed; a; a = a->hh.next) {
        const struct tree_node *n = tree_lookup(live, a->path);
        if ((n != NULL) != a->existed || (n && n->gen != a->gen))
            return true;
    }
    return false;
}

/* Every node an operation depends on is unchanged since the start, so it
 * does on live what it did on the private copy; quota was checked there. */
static void replay(const struct txn *txn, const struct txn_op *op,
                   struct tree *live)
{
    switch (op->kind) {
    case OP_WRITE:
        tree_write(live, txn->domid, op->path, op->value, TREE_NO_QUOTA);
        break;
    case OP_MKDIR:
        tree_mkdir(live, txn->domid, op->path, TREE_NO_QUOTA);
        break;
    case OP_RM:
        tree_rm(live, txn->domid, op->path);
        break;
    case OP_SET_PERMS:
        tree_set_perms(live, txn->domid, op->path, &op->perms);
        break;
    }
}

int txn_commit(struct txn *txn, struct tree *live)
{
    if (conflicts(txn, live))
        return -EAGAIN;
    for (const struct txn_op *op = txn->ops; op; op = op->next)
        replay(txn, op, live);
    return 0;
}
