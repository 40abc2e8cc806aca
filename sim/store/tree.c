/* The store's tree of nodes: see tree.h. */
#include "tree.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "path.h"

struct owner_count {
    uint16_t domid;
    unsigned count;
    UT_hash_handle hh;
};

struct tree {
    struct tree_node *root;
    uint64_t gen;
    struct owner_count *owners;
    tree_notify_fn notify;
    void *notify_ctx;
};

/* ---- values ------------------------------------------------------------- */

struct tree_value *tree_value_new(const void *data, size_t len)
{
    struct tree_value *v = malloc(sizeof(*v) + len);
    if (!v)
        return NULL;
    v->refs = 1;
    v->len = len;
    if (len)
        memcpy(v->data, data, len);
    return v;
}

struct tree_value *tree_value_ref(struct tree_value *v)
{
    if (v)
        v->refs++;
    return v;
}

void tree_value_unref(struct tree_value *v)
{
    if (v && --v->refs == 0)
        free(v);
}

/* ---- owner accounting --------------------------------------------------- */

static struct owner_count *owner_find(const struct tree *t, uint16_t domid)
{
    struct owner_count *oc;
    HASH_FIND(hh, t->owners, &domid, sizeof(domid), oc);
    return oc;
}

unsigned tree_owned(const struct tree *t, uint16_t domid)
{
    struct owner_count *oc = owner_find(t, domid);
    return oc ? oc->count : 0;
}

static int owner_add(struct tree *t, uint16_t domid, int delta)
{
    struct owner_count *oc = owner_find(t, domid);
    if (!oc) {
        if (delta <= 0)
            return 0;
        oc = calloc(1, sizeof(*oc));
        if (!oc)
            return -ENOMEM;
        oc->domid = domid;
        HASH_ADD(hh, t->owners, domid, sizeof(oc->domid), oc);
    }
    oc->count += (unsigned)delta;
    if (oc->count == 0) {
        HASH_DEL(t->owners, oc);
        free(oc);
    }
    return 0;
}

/* ---- nodes -------------------------------------------------------------- */

static struct tree_node *node_new(const char *name, size_t name_len,
                                  const struct store_perms *perms)
{
    struct tree_node *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->name = strndup(name, name_len);
    if (!n->name) {
        free(n);
        return NULL;
    }
    n->perms = *perms;
    return n;
}

static void node_attach(struct tree_node *parent, struct tree_node *child)
{
    child->parent = parent;
    HASH_ADD_KEYPTR(hh, parent->children, child->name, strlen(child->name),
                    child);
}

static void node_free_subtree(struct tree_node *n)
{
    struct tree_node *c, *tmp;
    HASH_ITER(hh, n->children, c, tmp) {
        HASH_DEL(n->children, c);
        node_free_subtree(c);
    }
    tree_value_unref(n->value);
    free(n->name);
    free(n);
}

static void touch(struct tree *t, struct tree_node *n)
{
    n->gen = ++t->gen;
}

/* ---- whole trees -------------------------------------------------------- */

struct tree *tree_new(void)
{
    struct tree *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    struct store_perms root_perms = perms_single(0, 0);
    t->root = node_new("", 0, &root_perms);
    if (!t->root || owner_add(t, 0, 1) < 0) {
        tree_free(t);
        return NULL;
    }
    touch(t, t->root);
    return t;
}

static struct tree_node *copy_subtree(const struct tree_node *src)
{
    struct tree_node *dst = node_new(src->name, strlen(src->name),
                                     &src->perms);
    if (!dst)
        return NULL;
    dst->value = tree_value_ref(src->value);
    dst->gen = src->gen;
    for (const struct tree_node *c = src->children; c; c = c->hh.next) {
        struct tree_node *cc = copy_subtree(c);
        if (!cc) {
            node_free_subtree(dst);
            return NULL;
        }
        node_attach(dst, cc);
    }
    return dst;
}

struct tree *tree_copy(const struct tree *src)
{
    struct tree *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->gen = src->gen;
    t->root = copy_subtree(src->root);
    if (!t->root)
        goto fail;
    for (const struct owner_count *oc = src->owners; oc; oc = oc->hh.next)
        if (owner_add(t, oc->domid, (int)oc->count) < 0)
            goto fail;
    return t;
fail:
    tree_free(t);
    return NULL;
}

void tree_free(struct tree *t)
{
    if (!t)
        return;
    if (t->root)
        node_free_subtree(t->root);
    struct owner_count *oc, *tmp;
    HASH_ITER(hh, t->owners, oc, tmp) {
        HASH_DEL(t->owners, oc);
        free(oc);
    }
    free(t);
}

void tree_set_notify(struct tree *t, tree_notify_fn fn, void *ctx)
{
    t->notify = fn;
    t->notify_ctx = ctx;
}

static void notify(struct tree *t, const char *path,
                   const struct tree_node *n, enum tree_match match,
                   const struct store_perms *old_perms)
{
    if (t->notify)
        t->notify(t->notify_ctx, path, n, match, old_perms);
}

/* ---- lookup and access -------------------------------------------------- */

/* The deepest existing node on path; *rest points at the first missing
 * component, or at the terminating nul if the whole path exists. */
static struct tree_node *deepest(const struct tree *t, const char *path,
                                 const char **rest)
{
    struct tree_node *n = t->root;
    const char *p = path + 1;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        struct tree_node *c;
        HASH_FIND(hh, n->children, p, len, c);
        if (!c)
            break;
        n = c;
        p += len + (slash ? 1 : 0);
    }
    *rest = p;
    return n;
}

struct tree_node *tree_lookup(const struct tree *t, const char *path)
{
    const char *rest;
    struct tree_node *n = deepest(t, path, &rest);
    return *rest ? NULL : n;
}

/* xenstored's errno_from_parents(): a failure is reported as err only if
 * the caller has some of `need` on the nearest existing ancestor, so that
 * a guest cannot probe for nodes it may not see. */
static int denial(const struct tree *t, uint16_t domid, const char *path,
                  int err, unsigned need)
{
    const char *rest;
    const struct tree_node *n = deepest(t, path, &rest);
    if (!*rest && n->parent)
        n = n->parent;
    return (perms_access(&n->perms, domid) & need) ? -err : -EACCES;
}

int tree_get(const struct tree *t, uint16_t domid, const char *path,
             unsigned need, const struct tree_node **out)
{
    const struct tree_node *n = tree_lookup(t, path);
    if (!n)
        return denial(t, domid, path, ENOENT, need);
    if ((perms_access(&n->perms, domid) & need) != need)
        return denial(t, domid, path, EACCES, need);
    *out = n;
    return 0;
}

/* ---- changes ------------------------------------------------------------ */

static unsigned count_components(const char *p)
{
    unsigned n = *p ? 1 : 0;
    for (; *p; p++)
        n += *p == '/';
    return n;
}

/* Create the missing tail of path below its deepest existing node. */
static int create(struct tree *t, uint16_t domid, const char *path,
                  unsigned flags, struct tree_node **out)
{
    const char *rest;
    struct tree_node *n = deepest(t, path, &rest);
    unsigned missing = count_components(rest);
    if (domid != 0 && !(flags & TREE_NO_QUOTA) &&
        tree_owned(t, domid) + missing > STORE_QUOTA_NODES)
        return -ENOSPC;
    touch(t, n);
    while (*rest) {
        const char *slash = strchr(rest, '/');
        size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
        /* Inherit the parent's perms; unprivileged domains own what they
         * create (xenstored's construct_node()). */
        struct store_perms perms = n->perms;
        if (domid != 0)
            perms.v[0].domid = domid;
        struct tree_node *c = node_new(rest, len, &perms);
        if (!c || owner_add(t, perms_owner(&perms), 1) < 0) {
            if (c)
                node_free_subtree(c);
            return -ENOMEM;
        }
        node_attach(n, c);
        touch(t, c);
        n = c;
        rest += len + (slash ? 1 : 0);
    }
    *out = n;
    return 0;
}

int tree_write(struct tree *t, uint16_t domid, const char *path,
               struct tree_value *v, unsigned flags)
{
    const struct tree_node *found;
    struct tree_node *n;
    int r = tree_get(t, domid, path, PERM_WRITE, &found);
    if (r == -ENOENT)
        r = create(t, domid, path, flags, &n);
    else if (r == 0)
        n = (struct tree_node *)found;
    if (r < 0)
        return r;
    tree_value_unref(n->value);
    n->value = tree_value_ref(v);
    touch(t, n);
    notify(t, path, n, TREE_MATCH_SUBTREE, NULL);
    return 0;
}

int tree_mkdir(struct tree *t, uint16_t domid, const char *path,
               unsigned flags)
{
    const struct tree_node *found;
    struct tree_node *n;
    int r = tree_get(t, domid, path, PERM_WRITE, &found);
    if (r != -ENOENT)
        return r;
    r = create(t, domid, path, flags, &n);
    if (r < 0)
        return r;
    notify(t, path, n, TREE_MATCH_SUBTREE, NULL);
    return 0;
}

/* Remove n and below, descendants first, notifying each while it (and
 * its parent) can still be seen.  path holds n's path, in a PATH_BUF. */
static void rm_subtree(struct tree *t, struct tree_node *n, char *path,
                       enum tree_match match)
{
    size_t len = strlen(path);
    struct tree_node *c, *tmp;
    HASH_ITER(hh, n->children, c, tmp) {
        /* Stored children came from canonical paths, so this fits. */
        snprintf(path + len, PATH_BUF - len, "/%s", c->name);
        rm_subtree(t, c, path, TREE_MATCH_EXACT);
        path[len] = '\0';
    }
    notify(t, path, n, match, NULL);
    owner_add(t, perms_owner(&n->perms), -1);
    HASH_DEL(n->parent->children, n);
    node_free_subtree(n);
}

int tree_rm(struct tree *t, uint16_t domid, const char *path)
{
    const struct tree_node *found;
    int r = tree_get(t, domid, path, PERM_WRITE, &found);
    if (r == -ENOENT) {
        char parent[PATH_BUF];
        path_parent(path, parent);
        return tree_lookup(t, parent) ? 0 : -ENOENT;
    }
    if (r < 0)
        return r;
    struct tree_node *n = (struct tree_node *)found;
    if (!n->parent)
        return -EINVAL;
    struct tree_node *parent = n->parent;
    char buf[PATH_BUF];
    snprintf(buf, sizeof(buf), "%s", path);
    rm_subtree(t, n, buf, TREE_MATCH_SUBTREE);
    touch(t, parent);
    return 0;
}

int tree_set_perms(struct tree *t, uint16_t domid, const char *path,
                   const struct store_perms *perms)
{
    const struct tree_node *found;
    int r = tree_get(t, domid, path, PERM_WRITE | PERM_OWNER, &found);
    if (r < 0)
        return r;
    struct tree_node *n = (struct tree_node *)found;
    if (domid != 0 && perms_owner(perms) != perms_owner(&n->perms))
        return -EPERM;
    if (owner_add(t, perms_owner(perms), 1) < 0)
        return -ENOMEM;
    owner_add(t, perms_owner(&n->perms), -1);
    struct store_perms old = n->perms;
    n->perms = *perms;
    touch(t, n);
    notify(t, path, n, TREE_MATCH_SUBTREE, &old);
    return 0;
}

size_t tree_child_names(const struct tree_node *node, char *buf, size_t cap)
{
    size_t used = 0;
    for (const struct tree_node *c = node->children; c; c = c->hh.next) {
        size_t len = strlen(c->name) + 1;
        if (used + len <= cap)
            memcpy(buf + used, c->name, len);
        used += len;
    }
    return used;
}
