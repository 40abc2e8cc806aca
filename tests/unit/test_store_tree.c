/*
 * The store's pure parts, without sockets: paths, permissions, the tree
 * with xenstored's access rules, transactions and watch matching.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../../sim/store/path.h"
#include "../../sim/store/perms.h"
#include "../../sim/store/tree.h"
#include "../../sim/store/txn.h"
#include "../../sim/store/watch.h"

/* ---- paths ------------------------------------------------------------ */

Test(store_path, canonical)
{
    char out[PATH_BUF];
    bool rel;
    cr_assert_eq(path_canonical(3, "device/vif", false, out, &rel), 0);
    cr_assert_str_eq(out, "/local/domain/3/device/vif");
    cr_assert(rel);
    cr_assert_eq(path_canonical(3, "/a/b-c_d@e", false, out, &rel), 0);
    cr_assert_str_eq(out, "/a/b-c_d@e");
    cr_assert_not(rel);
    cr_assert_eq(path_canonical(3, "/", false, out, NULL), 0);
    cr_assert_eq(path_canonical(3, "@releaseDomain", true, out, &rel), 0);
    cr_assert_str_eq(out, "@releaseDomain");
    cr_assert_not(rel);

    static const char *const bad[] = {
        "", "/a//b", "/a/", "a/", "/a b", "/a\n", "/a.b", "/ä",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(path_canonical(0, bad[i], true, out, NULL), -EINVAL,
                     "'%s' accepted", bad[i]);
    cr_assert_eq(path_canonical(0, "@releaseDomain", false, out, NULL),
                 -EINVAL);

    char longest[XENSTORE_ABS_PATH_MAX + 2];
    memset(longest, 'a', sizeof(longest));
    longest[0] = '/';
    longest[XENSTORE_ABS_PATH_MAX] = '\0';
    cr_assert_eq(path_canonical(0, longest, false, out, NULL), 0);
    longest[XENSTORE_ABS_PATH_MAX] = 'a';
    longest[XENSTORE_ABS_PATH_MAX + 1] = '\0';
    cr_assert_eq(path_canonical(0, longest, false, out, NULL), -EINVAL);
    /* A relative path counts with the prefix it gains. */
    cr_assert_eq(path_canonical(0, longest + 10, false, out, NULL), -EINVAL);
}

Test(store_path, below_and_parent)
{
    cr_assert(path_is_below("/a/b", "/a"));
    cr_assert(path_is_below("/a", "/a"));
    cr_assert(path_is_below("/a", "/"));
    cr_assert_not(path_is_below("/ab", "/a"));
    cr_assert_not(path_is_below("/a", "/a/b"));
    cr_assert_not(path_is_below("@releaseDomain", "/"));
    char out[PATH_BUF];
    path_parent("/a/b/c", out);
    cr_assert_str_eq(out, "/a/b");
    path_parent("/a", out);
    cr_assert_str_eq(out, "/");
    cr_assert_eq(path_relative_prefix_len(12), strlen("/local/domain/12/"));
}

/* ---- permissions -------------------------------------------------------- */

static int parse(const char *s, size_t len, struct store_perms *p)
{
    return perms_parse(s, len, p);
}

Test(store_perms, parse_and_format)
{
    static const char in[] = "n5\0r1\0w2\0b65535";
    struct store_perms p;
    cr_assert_eq(parse(in, sizeof(in), &p), 0);
    cr_assert_eq(p.n, 4);
    cr_assert_eq(perms_owner(&p), 5);
    cr_assert_eq(p.v[1].access, PERM_READ);
    cr_assert_eq(p.v[2].access, PERM_WRITE);
    cr_assert_eq(p.v[3].access, PERM_READ | PERM_WRITE);
    cr_assert_eq(p.v[3].domid, 65535);
    char out[64];
    cr_assert_eq(perms_format(&p, out, sizeof(out)), sizeof(in));
    cr_assert_eq(memcmp(out, in, sizeof(in)), 0);
    /* Too small a buffer: the needed length, nothing overrun. */
    char small[4] = "zzz";
    cr_assert_eq(perms_format(&p, small, 3), sizeof(in));
    cr_assert_eq(memcmp(small, "n5\0", 3), 0);

    static const char *const bad[] = { "x1", "r", "r65536", "r1a", "r-1",
                                       "" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(parse(bad[i], strlen(bad[i]) + 1, &p), -EINVAL,
                     "'%s' accepted", bad[i]);
    cr_assert_eq(parse("r1", 2, &p), -EINVAL);  /* not nul-terminated */
    cr_assert_eq(parse("", 0, &p), -EINVAL);

    char many[STORE_MAX_PERMS * 4 + 8];
    size_t len = 0;
    for (unsigned i = 0; i <= STORE_MAX_PERMS; i++)
        len += (size_t)sprintf(many + len, "r%u", i) + 1;
    cr_assert_eq(parse(many, len, &p), -ENOSPC);
}

Test(store_perms, access)
{
    struct store_perms p = { .n = 3, .v = { { 5, 0 }, { 1, PERM_READ },
                                            { 2, PERM_WRITE } } };
    const unsigned all = PERM_READ | PERM_WRITE | PERM_OWNER;
    cr_assert_eq(perms_access(&p, 0), all);     /* privileged */
    cr_assert_eq(perms_access(&p, 5), all);     /* owner */
    cr_assert_eq(perms_access(&p, 1), PERM_READ);
    cr_assert_eq(perms_access(&p, 2), PERM_WRITE);
    cr_assert_eq(perms_access(&p, 3), 0);       /* the owner's entry */
    p.v[0].access = PERM_READ;
    cr_assert_eq(perms_access(&p, 3), PERM_READ);
}

/* ---- the tree ----------------------------------------------------------- */

static struct tree *T;

/* Every notification, as "path:match[:oldperms]" lines. */
static char notes[4096];

static void record(void *ctx, const char *path, const struct tree_node *n,
                   enum tree_match match, const struct store_perms *old)
{
    (void)ctx;
    cr_assert_not_null(n);
    size_t len = strlen(notes);
    snprintf(notes + len, sizeof(notes) - len, "%s:%s%s\n", path,
             match == TREE_MATCH_EXACT ? "exact" : "subtree",
             old ? ":old" : "");
}

static void tree_setup(void)
{
    T = tree_new();
    cr_assert_not_null(T);
    tree_set_notify(T, record, NULL);
    notes[0] = '\0';
}

static void tree_teardown(void)
{
    tree_free(T);
}

static int write_str(struct tree *t, uint16_t domid, const char *path,
                     const char *s)
{
    struct tree_value *v = tree_value_new(s, strlen(s));
    int r = tree_write(t, domid, path, v, 0);
    tree_value_unref(v);
    return r;
}

static const char *value_of(const struct tree *t, const char *path)
{
    static char buf[256];
    const struct tree_node *n = tree_lookup(t, path);
    if (!n)
        return NULL;
    size_t len = n->value ? n->value->len : 0;
    memcpy(buf, n->value ? n->value->data : "", len);
    buf[len] = '\0';
    return buf;
}

static void give_home(uint16_t domid)
{
    char home[PATH_BUF];
    path_domain(domid, home);
    struct store_perms p = perms_single(domid, 0);
    cr_assert_eq(tree_mkdir(T, 0, home, 0), 0);
    cr_assert_eq(tree_set_perms(T, 0, home, &p), 0);
}

TestSuite(store_tree, .init = tree_setup, .fini = tree_teardown);

Test(store_tree, write_creates_parents_inheriting_perms)
{
    give_home(1);
    notes[0] = '\0';
    cr_assert_eq(write_str(T, 1, "/local/domain/1/a/b", "v"), 0);
    cr_assert_str_eq(value_of(T, "/local/domain/1/a/b"), "v");
    cr_assert_str_eq(value_of(T, "/local/domain/1/a"), "");
    cr_assert_eq(perms_owner(&tree_lookup(T, "/local/domain/1/a")->perms), 1);
    /* One notification, for the node written. */
    cr_assert_str_eq(notes, "/local/domain/1/a/b:subtree\n");
    cr_assert_eq(tree_owned(T, 1), 3);

    /* dom0 creating below keeps the inherited owner. */
    cr_assert_eq(write_str(T, 0, "/local/domain/1/by0", "x"), 0);
    cr_assert_eq(perms_owner(&tree_lookup(T, "/local/domain/1/by0")->perms),
                 1);
    /* An unprivileged creator owns what it creates but keeps the
     * parent's other entries. */
    struct store_perms shared = { .n = 2, .v = { { 1, 0 },
                                                 { 2, PERM_WRITE } } };
    cr_assert_eq(tree_set_perms(T, 1, "/local/domain/1/a", &shared), 0);
    cr_assert_eq(write_str(T, 2, "/local/domain/1/a/from2/x", "y"), 0);
    const struct tree_node *n = tree_lookup(T, "/local/domain/1/a/from2/x");
    cr_assert_eq(n->perms.n, 2);
    cr_assert_eq(perms_owner(&n->perms), 2);
    cr_assert_eq(n->perms.v[1].domid, 2);
    cr_assert_eq(tree_owned(T, 2), 2);
}

Test(store_tree, access_errors_hide_what_cannot_be_seen)
{
    give_home(1);
    give_home(2);
    const struct tree_node *n;
    cr_assert_eq(write_str(T, 2, "/local/domain/2/x", "s"), 0);
    cr_assert_eq(tree_get(T, 1, "/local/domain/2/x", PERM_READ, &n),
                 -EACCES);
    cr_assert_eq(tree_get(T, 1, "/local/domain/2/nope", PERM_READ, &n),
                 -EACCES);
    cr_assert_eq(tree_get(T, 2, "/local/domain/2/nope", PERM_READ, &n),
                 -ENOENT);
    cr_assert_eq(tree_get(T, 1, "/local/domain", PERM_READ, &n), -EACCES);
    cr_assert_eq(tree_get(T, 1, "/", PERM_READ, &n), -EACCES);
    cr_assert_eq(tree_get(T, 0, "/nope", PERM_READ, &n), -ENOENT);
    cr_assert_eq(write_str(T, 1, "/local/domain/2/y", "s"), -EACCES);
    cr_assert_eq(write_str(T, 1, "/new", "s"), -EACCES);
    cr_assert_eq(tree_mkdir(T, 1, "/local/domain/2/y", 0), -EACCES);
    cr_assert_eq(tree_rm(T, 1, "/local/domain/2/x"), -EACCES);
    cr_assert_null(tree_lookup(T, "/local/domain/2/y"));
    cr_assert_not_null(tree_lookup(T, "/local/domain/2/x"));

    /* Readable is not writable. */
    struct store_perms ro = { .n = 2, .v = { { 2, 0 }, { 1, PERM_READ } } };
    cr_assert_eq(tree_set_perms(T, 2, "/local/domain/2/x", &ro), 0);
    cr_assert_eq(tree_get(T, 1, "/local/domain/2/x", PERM_READ, &n), 0);
    cr_assert_eq(write_str(T, 1, "/local/domain/2/x", "s"), -EACCES);
    /* Below a node dom1 can read, a missing node is reported as such. */
    cr_assert_eq(tree_get(T, 1, "/local/domain/2/x/nope", PERM_READ, &n),
                 -ENOENT);
}

Test(store_tree, set_perms_rules)
{
    give_home(1);
    give_home(2);
    struct store_perms p = perms_single(2, PERM_READ);
    cr_assert_eq(tree_set_perms(T, 1, "/local/domain/2", &p), -EACCES);
    struct store_perms to1 = perms_single(1, 0);
    cr_assert_eq(tree_set_perms(T, 2, "/local/domain/2", &to1), -EPERM);
    notes[0] = '\0';
    cr_assert_eq(tree_set_perms(T, 2, "/local/domain/2", &p), 0);
    cr_assert_str_eq(notes, "/local/domain/2:subtree:old\n");
    cr_assert_eq(tree_owned(T, 2), 1);
    cr_assert_eq(tree_set_perms(T, 0, "/local/domain/2", &to1), 0);
    cr_assert_eq(tree_owned(T, 2), 0);
    cr_assert_eq(tree_owned(T, 1), 2);
}

Test(store_tree, rm_notifies_descendants_then_root)
{
    cr_assert_eq(write_str(T, 0, "/a/b/c", "1"), 0);
    cr_assert_eq(write_str(T, 0, "/a/d", "2"), 0);
    cr_assert_eq(write_str(T, 0, "/ab", "3"), 0);
    unsigned before = tree_owned(T, 0);
    notes[0] = '\0';
    cr_assert_eq(tree_rm(T, 0, "/a"), 0);
    cr_assert_str_eq(notes, "/a/b/c:exact\n/a/b:exact\n/a/d:exact\n"
                            "/a:subtree\n");
    cr_assert_null(tree_lookup(T, "/a"));
    cr_assert_not_null(tree_lookup(T, "/ab"));
    cr_assert_eq(tree_owned(T, 0), before - 4);
    /* Absent with a parent: fine; absent without: ENOENT; root: EINVAL. */
    cr_assert_eq(tree_rm(T, 0, "/a"), 0);
    cr_assert_eq(tree_rm(T, 0, "/a/b"), -ENOENT);
    cr_assert_eq(tree_rm(T, 0, "/"), -EINVAL);
}

Test(store_tree, mkdir_only_notifies_when_creating)
{
    cr_assert_eq(tree_mkdir(T, 0, "/m/n", 0), 0);
    cr_assert_str_eq(notes, "/m/n:subtree\n");
    cr_assert_eq(write_str(T, 0, "/m/n", "keep"), 0);
    notes[0] = '\0';
    cr_assert_eq(tree_mkdir(T, 0, "/m/n", 0), 0);
    cr_assert_str_eq(notes, "");
    cr_assert_str_eq(value_of(T, "/m/n"), "keep");
}

Test(store_tree, generations_and_children)
{
    cr_assert_eq(write_str(T, 0, "/g/x", "1"), 0);
    uint64_t g_parent = tree_lookup(T, "/g")->gen;
    uint64_t g_x = tree_lookup(T, "/g/x")->gen;
    cr_assert_eq(write_str(T, 0, "/g/x", "2"), 0);
    cr_assert_neq(tree_lookup(T, "/g/x")->gen, g_x);
    cr_assert_eq(tree_lookup(T, "/g")->gen, g_parent);  /* only values */
    cr_assert_eq(write_str(T, 0, "/g/y", "1"), 0);
    cr_assert_neq(tree_lookup(T, "/g")->gen, g_parent); /* child list */

    cr_assert_eq(tree_mkdir(T, 0, "/g/a", 0), 0);
    char names[64];
    size_t len = tree_child_names(tree_lookup(T, "/g"), names,
                                  sizeof(names));
    cr_assert_eq(len, 6);
    cr_assert_eq(memcmp(names, "x\0y\0a\0", 6), 0);
    cr_assert_eq(tree_child_names(tree_lookup(T, "/g"), NULL, 0), 6);
}

Test(store_tree, quota_for_unprivileged_owners)
{
    give_home(1);
    char path[64];
    unsigned i;
    for (i = 0; i < 2 * STORE_QUOTA_NODES; i++) {
        snprintf(path, sizeof(path), "/local/domain/1/n%u", i);
        if (tree_mkdir(T, 1, path, 0) < 0)
            break;
    }
    cr_assert_eq(i, STORE_QUOTA_NODES - 1);     /* the home counts too */
    cr_assert_eq(tree_mkdir(T, 1, path, 0), -ENOSPC);
    cr_assert_eq(tree_mkdir(T, 1, path, TREE_NO_QUOTA), 0);
    /* A path needing several new nodes is refused whole. */
    cr_assert_eq(tree_rm(T, 1, "/local/domain/1/n0"), 0);
    cr_assert_eq(tree_mkdir(T, 1, "/local/domain/1/p/q", 0), -ENOSPC);
    cr_assert_null(tree_lookup(T, "/local/domain/1/p"));
    /* dom0 has no quota. */
    cr_assert_eq(tree_mkdir(T, 0, "/local/domain/1/p/q", 0), 0);
}

Test(store_tree, copy_is_independent)
{
    cr_assert_eq(write_str(T, 0, "/c/x", "1"), 0);
    struct tree *copy = tree_copy(T);
    cr_assert_not_null(copy);
    cr_assert_eq(write_str(copy, 0, "/c/x", "2"), 0);
    cr_assert_eq(tree_rm(copy, 0, "/c"), 0);
    cr_assert_str_eq(value_of(T, "/c/x"), "1");
    cr_assert_eq(tree_owned(copy, 0) + 2, tree_owned(T, 0));
    /* The copy does not notify the original's observer. */
    cr_assert_str_eq(notes, "/c/x:subtree\n");
    tree_free(copy);
}

/* ---- transactions ------------------------------------------------------- */

TestSuite(store_txn, .init = tree_setup, .fini = tree_teardown);

static int txn_write_str(struct txn *txn, const char *path, const char *s)
{
    struct tree_value *v = tree_value_new(s, strlen(s));
    int r = txn_write(txn, path, v);
    tree_value_unref(v);
    return r;
}

Test(store_txn, commit_replays_and_notifies)
{
    cr_assert_eq(write_str(T, 0, "/t/old", "1"), 0);
    struct txn *txn = txn_start(T, 7, 0);
    cr_assert_eq(txn_id(txn), 7);
    cr_assert_eq(txn_write_str(txn, "/t/new/deep", "2"), 0);
    cr_assert_eq(txn_rm(txn, "/t/old"), 0);
    struct store_perms p = perms_single(0, PERM_READ);
    cr_assert_eq(txn_set_perms(txn, "/t", &p), 0);
    cr_assert_eq(txn_mkdir(txn, "/t/dir"), 0);
    notes[0] = '\0';
    /* Nothing is visible or notified before the commit. */
    cr_assert_null(tree_lookup(T, "/t/new"));
    cr_assert_str_eq(value_of(txn_tree(txn), "/t/new/deep"), "2");
    cr_assert_eq(txn_commit(txn, T), 0);
    txn_free(txn);
    cr_assert_str_eq(value_of(T, "/t/new/deep"), "2");
    cr_assert_null(tree_lookup(T, "/t/old"));
    cr_assert_not_null(tree_lookup(T, "/t/dir"));
    cr_assert_eq(tree_lookup(T, "/t")->perms.v[0].access, PERM_READ);
    cr_assert_str_eq(notes, "/t/new/deep:subtree\n/t/old:subtree\n"
                            "/t:subtree:old\n/t/dir:subtree\n");
}

Test(store_txn, conflicts)
{
    cr_assert_eq(write_str(T, 0, "/k/a", "1"), 0);
    cr_assert_eq(write_str(T, 0, "/k/b/c", "1"), 0);

    /* Read, then someone else changes it. */
    struct txn *txn = txn_start(T, 1, 0);
    cr_assert_eq(txn_note_read(txn, "/k/a"), 0);
    cr_assert_eq(write_str(T, 0, "/k/a", "2"), 0);
    cr_assert_eq(txn_commit(txn, T), -EAGAIN);
    txn_free(txn);

    /* Removal depends on every node below. */
    txn = txn_start(T, 2, 0);
    cr_assert_eq(txn_rm(txn, "/k/b"), 0);
    cr_assert_eq(write_str(T, 0, "/k/b/c", "2"), 0);
    cr_assert_eq(txn_commit(txn, T), -EAGAIN);
    txn_free(txn);
    cr_assert_not_null(tree_lookup(T, "/k/b/c"));

    /* Creation depends on the parent's child list. */
    txn = txn_start(T, 3, 0);
    cr_assert_eq(txn_write_str(txn, "/k/new", "1"), 0);
    cr_assert_eq(write_str(T, 0, "/k/other", "1"), 0);
    cr_assert_eq(txn_commit(txn, T), -EAGAIN);
    txn_free(txn);
    cr_assert_null(tree_lookup(T, "/k/new"));

    /* A missing node read, then created elsewhere. */
    txn = txn_start(T, 4, 0);
    cr_assert_eq(txn_note_read(txn, "/k/later"), 0);
    cr_assert_eq(write_str(T, 0, "/k/later", "1"), 0);
    cr_assert_eq(txn_commit(txn, T), -EAGAIN);
    txn_free(txn);

    /* Unrelated changes do not conflict. */
    txn = txn_start(T, 5, 0);
    cr_assert_eq(txn_write_str(txn, "/k/a", "3"), 0);
    cr_assert_eq(write_str(T, 0, "/elsewhere", "1"), 0);
    cr_assert_eq(write_str(T, 0, "/k/b/c", "3"), 0);
    cr_assert_eq(txn_commit(txn, T), 0);
    txn_free(txn);
    cr_assert_str_eq(value_of(T, "/k/a"), "3");
}

Test(store_txn, checks_access_and_bounds_changes)
{
    give_home(1);
    struct txn *txn = txn_start(T, 1, 1);
    cr_assert_eq(txn_write_str(txn, "/local/x", "1"), -EACCES);
    unsigned i;
    for (i = 0; i < STORE_MAX_TXN_OPS; i++)
        cr_assert_eq(txn_write_str(txn, "/local/domain/1/x", "1"), 0);
    cr_assert_eq(txn_write_str(txn, "/local/domain/1/x", "1"), -ENOSPC);
    txn_free(txn);
}

/* ---- watches ------------------------------------------------------------ */

Test(store_watch, add_match_remove)
{
    struct watch_list l = { 0 };
    struct watch *w = watch_add(&l, "/local/domain/4/dev", "t", true, 4);
    cr_assert_not_null(w);
    cr_assert_str_eq(watch_event_path(w, "/local/domain/4/dev/x"), "dev/x");
    cr_assert(watch_matches(w, "/local/domain/4/dev/x", TREE_MATCH_SUBTREE));
    cr_assert(watch_matches(w, "/local/domain/4/dev", TREE_MATCH_EXACT));
    cr_assert_not(watch_matches(w, "/local/domain/4/dev/x",
                                TREE_MATCH_EXACT));
    cr_assert_not(watch_matches(w, "/local/domain/4/devx",
                                TREE_MATCH_SUBTREE));
    cr_assert_not(watch_matches(w, "/local/domain/4", TREE_MATCH_SUBTREE));

    cr_assert_null(watch_add(&l, "/local/domain/4/dev", "t", false, 4));
    cr_assert_eq(errno, EEXIST);
    cr_assert_not_null(watch_add(&l, "/local/domain/4/dev", "u", false, 4));
    char token[STORE_MAX_TOKEN + 2];
    memset(token, 'x', sizeof(token) - 1);
    token[sizeof(token) - 1] = '\0';
    cr_assert_null(watch_add(&l, "/", token, false, 0));
    cr_assert_eq(errno, EINVAL);

    cr_assert_eq(watch_remove(&l, "/local/domain/4/dev", "t"), 0);
    cr_assert_eq(watch_remove(&l, "/local/domain/4/dev", "t"), -ENOENT);
    for (unsigned i = l.count; i < STORE_MAX_WATCHES; i++) {
        char t[16];
        snprintf(t, sizeof(t), "%u", i);
        cr_assert_not_null(watch_add(&l, "/", t, false, 0));
    }
    cr_assert_null(watch_add(&l, "/", "one-too-many", false, 0));
    cr_assert_eq(errno, ENOSPC);
    watch_clear(&l);
    cr_assert_eq(l.count, 0);
    cr_assert_null(l.head);
}
