/*
 * The simulated xenstore driven by the real libxenstore: nodes, paths,
 * permissions between domains, transactions, watches, domain life cycle.
 */
#include "test_store_harness.h"

TestSuite(store_proto, .init = harness_start, .fini = harness_stop,
          .timeout = 60);

Test(store_proto, write_read_creates_parents)
{
    struct xs_handle *xs = xs_as(0);
    put(xs, "/a/b/c", "hello");
    assert_value(xs, "/a/b/c", "hello");
    assert_value(xs, "/a/b", "");
    assert_value(xs, "/a", "");
    /* Values are binary-clean byte strings. */
    cr_assert(xs_write(xs, XBT_NULL, "/bin", "x\0y", 3));
    unsigned len;
    char *v = xs_read(xs, XBT_NULL, "/bin", &len);
    cr_assert_eq(len, 3);
    cr_assert_eq(memcmp(v, "x\0y", 3), 0);
    free(v);
    assert_read_fails(xs, "/a/nope", ENOENT);
    xs_close(xs);
}

Test(store_proto, mkdir_directory_rm)
{
    struct xs_handle *xs = xs_as(0);
    cr_assert(xs_mkdir(xs, XBT_NULL, "/d/one"));
    put(xs, "/d/two", "2");
    put(xs, "/d/three/deep", "3");
    /* mkdir leaves an existing value alone. */
    cr_assert(xs_mkdir(xs, XBT_NULL, "/d/two"));
    assert_value(xs, "/d/two", "2");

    unsigned n;
    char **names = xs_directory(xs, XBT_NULL, "/d", &n);
    cr_assert_not_null(names);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(names[0], "one");   /* creation order, as xenstored */
    cr_assert_str_eq(names[1], "two");
    cr_assert_str_eq(names[2], "three");
    free(names);

    cr_assert(xs_rm(xs, XBT_NULL, "/d/three"));
    assert_read_fails(xs, "/d/three/deep", ENOENT);
    /* Removing a missing node is fine if its parent exists... */
    cr_assert(xs_rm(xs, XBT_NULL, "/d/three"));
    /* ...and an error if the parent is missing too. */
    cr_assert_not(xs_rm(xs, XBT_NULL, "/d/three/deep"));
    cr_assert_eq(errno, ENOENT);
    cr_assert_not(xs_rm(xs, XBT_NULL, "/"));
    cr_assert_eq(errno, EINVAL);

    names = xs_directory(xs, XBT_NULL, "/d/one", &n);
    cr_assert_not_null(names);
    cr_assert_eq(n, 0);
    free(names);
    xs_close(xs);
}

Test(store_proto, invalid_paths)
{
    struct xs_handle *xs = xs_as(0);
    static const char *const bad[] = {
        "/a//b", "/a/", "/a b", "/a/b*", "@releaseDomain", "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errno = 0;
        cr_assert_not(xs_write(xs, XBT_NULL, bad[i], "x", 1), "%s", bad[i]);
        cr_assert_eq(errno, EINVAL, "'%s': %s", bad[i], strerror(errno));
    }
    char long_path[XENSTORE_ABS_PATH_MAX + 8];
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[0] = '/';
    long_path[sizeof(long_path) - 1] = '\0';
    cr_assert_not(xs_write(xs, XBT_NULL, long_path, "x", 1));
    cr_assert_eq(errno, EINVAL);
    xs_close(xs);
}

Test(store_proto, big_directory_is_listed_in_parts)
{
    struct xs_handle *xs = xs_as(0);
    enum { N = 300 };   /* 300 * 20 bytes: more than one 4096-byte reply */
    for (int i = 0; i < N; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/big/child-with-long-name-%04d", i);
        cr_assert(xs_mkdir(xs, XBT_NULL, path));
    }
    unsigned n;
    char **names = xs_directory(xs, XBT_NULL, "/big", &n);
    cr_assert_not_null(names, "%s", strerror(errno));
    cr_assert_eq(n, N);
    for (int i = 0; i < N; i++) {
        char want[64];
        snprintf(want, sizeof(want), "child-with-long-name-%04d", i);
        cr_assert_str_eq(names[i], want);
    }
    free(names);
    xs_close(xs);
}

Test(store_proto, relative_paths_and_domain_path)
{
    struct xs_handle *d1 = xs_as(1), *d0 = xs_as(0);
    char *home = xs_get_domain_path(d1, 1);
    cr_assert_str_eq(home, "/local/domain/1");
    free(home);
    put(d1, "dev/x", "rel");
    assert_value(d0, "/local/domain/1/dev/x", "rel");
    assert_value(d1, "/local/domain/1/dev/x", "rel");
    /* dom0's relative paths are below its own home. */
    put(d0, "mine", "0");
    assert_value(d0, "/local/domain/0/mine", "0");
    xs_close(d1);
    xs_close(d0);
}

static unsigned get_perms(struct xs_handle *xs, const char *path,
                          struct xs_permissions **perms)
{
    unsigned n;
    *perms = xs_get_permissions(xs, XBT_NULL, path, &n);
    cr_assert_not_null(*perms, "get perms %s: %s", path, strerror(errno));
    return n;
}

Test(store_proto, initial_tree_and_home_perms)
{
    struct xs_handle *d0 = xs_as(0), *d1 = xs_as(1);
    struct xs_permissions *p;
    cr_assert_eq(get_perms(d0, "/local/domain", &p), 1);
    cr_assert_eq(p[0].id, 0);
    cr_assert_eq(p[0].perms, XS_PERM_NONE);
    free(p);
    cr_assert_eq(get_perms(d0, "/local/domain/1", &p), 1);
    cr_assert_eq(p[0].id, 1);
    cr_assert_eq(p[0].perms, XS_PERM_NONE);
    free(p);
    /* A guest sees its home but not the rest of the tree. */
    cr_assert_eq(get_perms(d1, "/local/domain/1", &p), 1);
    free(p);
    assert_read_fails(d1, "/local/domain", EACCES);
    cr_assert_not(xs_write(d1, XBT_NULL, "/local/x", "1", 1));
    cr_assert_eq(errno, EACCES);
    cr_assert_not(xs_write(d1, XBT_NULL, "/local/domain/2/x", "1", 1));
    cr_assert_eq(errno, EACCES);
    xs_close(d0);
    xs_close(d1);
}

Test(store_proto, perms_between_two_domains)
{
    struct xs_handle *d1 = xs_as(1), *d2 = xs_as(2), *d0 = xs_as(0);
    put(d2, "/local/domain/2/secret", "s");
    assert_read_fails(d1, "/local/domain/2/secret", EACCES);
    /* Nor can dom1 learn whether a node exists there. */
    assert_read_fails(d1, "/local/domain/2/missing", EACCES);

    /* The creator owns the node and inherits the parent's other entries. */
    struct xs_permissions *p;
    cr_assert_eq(get_perms(d2, "secret", &p), 1);
    cr_assert_eq(p[0].id, 2);
    free(p);

    /* Only the owner changes perms, and a guest cannot give a node away. */
    struct xs_permissions readable[] = {
        { .id = 2, .perms = XS_PERM_NONE },
        { .id = 1, .perms = XS_PERM_READ },
    };
    cr_assert_not(xs_set_permissions(d1, XBT_NULL, "/local/domain/2/secret",
                                     readable, 2));
    cr_assert_eq(errno, EACCES);
    struct xs_permissions give[] = { { .id = 1, .perms = XS_PERM_NONE } };
    cr_assert_not(xs_set_permissions(d2, XBT_NULL, "secret", give, 1));
    cr_assert_eq(errno, EPERM);
    cr_assert(xs_set_permissions(d2, XBT_NULL, "secret", readable, 2));

    assert_value(d1, "/local/domain/2/secret", "s");
    cr_assert_not(xs_write(d1, XBT_NULL, "/local/domain/2/secret", "x", 1));
    cr_assert_eq(errno, EACCES);
    cr_assert_not(xs_rm(d1, XBT_NULL, "/local/domain/2/secret"));
    cr_assert_eq(errno, EACCES);

    /* Write access lets dom1 create below; dom1 then owns what it made,
     * keeping the parent's other entries. */
    struct xs_permissions writable[] = {
        { .id = 2, .perms = XS_PERM_NONE },
        { .id = 1, .perms = XS_PERM_READ | XS_PERM_WRITE },
    };
    cr_assert(xs_set_permissions(d2, XBT_NULL, "secret", writable, 2));
    put(d1, "/local/domain/2/secret/from1", "hi");
    cr_assert_eq(get_perms(d0, "/local/domain/2/secret/from1", &p), 2);
    cr_assert_eq(p[0].id, 1);
    cr_assert_eq(p[1].id, 1);
    free(p);
    /* A node dom0 creates keeps the inherited owner. */
    put(d0, "/local/domain/2/by0", "0");
    cr_assert_eq(get_perms(d0, "/local/domain/2/by0", &p), 1);
    cr_assert_eq(p[0].id, 2);
    free(p);
    /* dom0 bypasses every check, and may change owners. */
    assert_value(d0, "/local/domain/2/secret", "s");
    cr_assert(xs_set_permissions(d0, XBT_NULL, "/local/domain/2/secret",
                                 give, 1));
    assert_read_fails(d2, "secret", EACCES);
    xs_close(d0);
    xs_close(d1);
    xs_close(d2);
}

Test(store_proto, guest_node_quota)
{
    struct xs_handle *d1 = xs_as(1);
    char path[64];
    int i;
    for (i = 0; i < 2000; i++) {
        snprintf(path, sizeof(path), "q/n%d", i);
        if (!xs_write(d1, XBT_NULL, path, "", 0))
            break;
    }
    cr_assert_eq(errno, ENOSPC);
    cr_assert_lt(i, (int)STORE_QUOTA_NODES);
    cr_assert(xs_rm(d1, XBT_NULL, "q"));
    put(d1, "q/again", "ok");
    xs_close(d1);
}

/* ---- transactions --------------------------------------------------- */

Test(store_proto, transaction_commit_and_abort)
{
    struct xs_handle *xs = xs_as(0), *other = xs_as(0);
    xs_transaction_t t = xs_transaction_start(xs);
    cr_assert_neq(t, XBT_NULL);
    cr_assert(xs_write(xs, t, "/tx/a", "1", 1));
    /* Invisible outside until committed, visible inside. */
    assert_read_fails(other, "/tx/a", ENOENT);
    unsigned len;
    char *v = xs_read(xs, t, "/tx/a", &len);
    cr_assert_str_eq(v, "1");
    free(v);
    cr_assert(xs_transaction_end(xs, t, false));
    assert_value(other, "/tx/a", "1");

    t = xs_transaction_start(xs);
    cr_assert(xs_write(xs, t, "/tx/b", "2", 1));
    cr_assert(xs_rm(xs, t, "/tx/a"));
    cr_assert(xs_transaction_end(xs, t, true));   /* abort */
    assert_read_fails(other, "/tx/b", ENOENT);
    assert_value(other, "/tx/a", "1");
    /* The id is gone once ended. */
    cr_assert_not(xs_write(xs, t, "/tx/c", "3", 1));
    cr_assert_eq(errno, ENOENT);
    xs_close(xs);
    xs_close(other);
}

Test(store_proto, transaction_conflict_is_eagain)
{
    struct xs_handle *xs = xs_as(1), *other = xs_as(0);
    put(xs, "x", "0");
    xs_transaction_t t = xs_transaction_start(xs);
    char *v = xs_read(xs, t, "x", NULL);
    cr_assert_str_eq(v, "0");
    free(v);
    put(other, "/local/domain/1/x", "changed");
    cr_assert(xs_write(xs, t, "y", "1", 1));
    /* The snapshot still shows the old value. */
    v = xs_read(xs, t, "x", NULL);
    cr_assert_str_eq(v, "0");
    free(v);
    cr_assert_not(xs_transaction_end(xs, t, false));
    cr_assert_eq(errno, EAGAIN);
    assert_read_fails(xs, "y", ENOENT);

    /* A concurrent change to a node the transaction never used does not
     * conflict. */
    t = xs_transaction_start(xs);
    cr_assert(xs_write(xs, t, "y", "1", 1));
    put(other, "/local/domain/0/unrelated", "u");
    cr_assert(xs_transaction_end(xs, t, false), "%s", strerror(errno));
    assert_value(xs, "y", "1");

    /* Creating a node the transaction found missing conflicts. */
    t = xs_transaction_start(xs);
    cr_assert_null(xs_read(xs, t, "z", NULL));
    put(other, "/local/domain/1/z", "late");
    cr_assert(xs_write(xs, t, "w", "1", 1));
    cr_assert_not(xs_transaction_end(xs, t, false));
    cr_assert_eq(errno, EAGAIN);
    xs_close(xs);
    xs_close(other);
}

Test(store_proto, transactions_are_bounded_per_connection)
{
    struct xs_handle *xs = xs_as(1);
    xs_transaction_t t[STORE_MAX_TXNS];
    for (unsigned i = 0; i < STORE_MAX_TXNS; i++) {
        t[i] = xs_transaction_start(xs);
        cr_assert_neq(t[i], XBT_NULL);
    }
    cr_assert_eq(xs_transaction_start(xs), XBT_NULL);
    cr_assert_eq(errno, ENOSPC);
    /* Another connection of the same domain gets what is left of the
     * domain's allowance. */
    struct xs_handle *xs2 = xs_as(1);
    unsigned more = 0;
    xs_transaction_t t2[STORE_MAX_TXNS];
    while (more < STORE_MAX_TXNS &&
           (t2[more] = xs_transaction_start(xs2)) != XBT_NULL)
        more++;
    cr_assert_eq(errno, ENOSPC);
    cr_assert_eq(more, STORE_MAX_DOMAIN_TXNS - STORE_MAX_TXNS);
    /* Ending (or losing) a connection's transactions gives them back. */
    xs_close(xs);
    xs = xs_as(1);
    for (unsigned i = 0; i < STORE_MAX_TXNS; i++) {
        t[i] = xs_transaction_start(xs);
        cr_assert_neq(t[i], XBT_NULL, "%u: %s", i, strerror(errno));
    }
    for (unsigned i = 0; i < STORE_MAX_TXNS; i++)
        cr_assert(xs_transaction_end(xs, t[i], true));
    for (unsigned i = 0; i < more; i++)
        cr_assert(xs_transaction_end(xs2, t2[i], true));
    xs_close(xs);
    xs_close(xs2);
}

/* ---- watches ------------------------------------------------------------ */

Test(store_proto, watch_fires_initially_on_change_and_removal)
{
    struct xs_handle *w = xs_as(0), *xs = xs_as(0);
    cr_assert(xs_watch(w, "/wa", "tok"));
    expect_event(w, "/wa|tok");
    put(xs, "/wa/b/c", "1");
    expect_event(w, "/wa/b/c|tok");
    put(xs, "/wab", "not below /wa");
    cr_assert(xs_rm(xs, XBT_NULL, "/wa"));
    expect_event(w, "/wa|tok");

    /* A watch below a removed subtree fires with its own path. */
    put(xs, "/r/deep/node", "1");
    cr_assert(xs_watch(w, "/r/deep/node", "t2"));
    expect_event(w, "/r/deep/node|t2");
    cr_assert(xs_rm(xs, XBT_NULL, "/r"));
    expect_event(w, "/r/deep/node|t2");

    cr_assert(xs_unwatch(w, "/wa", "tok"));
    cr_assert(xs_unwatch(w, "/r/deep/node", "t2"));
    put(xs, "/wa", "after unwatch");
    expect_no_event_before_barrier(w, "/barrier");
    cr_assert_not(xs_unwatch(w, "/wa", "tok"));
    cr_assert_eq(errno, ENOENT);
    xs_close(w);
    xs_close(xs);
}

Test(store_proto, watch_in_transaction_fires_on_commit)
{
    struct xs_handle *w = xs_as(0), *xs = xs_as(0);
    cr_assert(xs_watch(w, "/tw", "t"));
    expect_event(w, "/tw|t");
    xs_transaction_t t = xs_transaction_start(xs);
    cr_assert(xs_write(xs, t, "/tw/aborted", "1", 1));
    cr_assert(xs_transaction_end(xs, t, true));
    t = xs_transaction_start(xs);
    cr_assert(xs_write(xs, t, "/tw/x", "1", 1));
    expect_no_event_before_barrier(w, "/barrier");
    cr_assert(xs_transaction_end(xs, t, false));
    expect_event(w, "/tw/x|t");
    xs_close(w);
    xs_close(xs);
}

Test(store_proto, relative_watch_gets_relative_paths)
{
    struct xs_handle *w = xs_as(1), *d0 = xs_as(0);
    cr_assert(xs_watch(w, "dev", "rel"));
    expect_event(w, "dev|rel");
    put(d0, "/local/domain/1/dev/state", "4");
    expect_event(w, "dev/state|rel");
    cr_assert(xs_watch(w, "/local/domain/1/dev", "abs"));
    expect_event(w, "/local/domain/1/dev|abs");
    xs_close(w);
    xs_close(d0);
}

Test(store_proto, watch_needs_read_access)
{
    struct xs_handle *w = xs_as(1), *d2 = xs_as(2);
    put(d2, "hidden", "1");
    cr_assert(xs_watch(w, "/local/domain/2/hidden", "h"));
    expect_event(w, "/local/domain/2/hidden|h");    /* the initial one */
    put(d2, "hidden", "2");
    expect_no_event_before_barrier(w, "/local/domain/1");
    /* Granting read access is itself an event dom1 may see. */
    struct xs_permissions readable[] = {
        { .id = 2, .perms = XS_PERM_NONE },
        { .id = 1, .perms = XS_PERM_READ },
    };
    cr_assert(xs_set_permissions(d2, XBT_NULL, "hidden", readable, 2));
    expect_event(w, "/local/domain/2/hidden|h");
    put(d2, "hidden", "3");
    expect_event(w, "/local/domain/2/hidden|h");
    xs_close(w);
    xs_close(d2);
}

Test(store_proto, domain_introduce_and_release)
{
    struct xs_handle *w = xs_as(0);
    cr_assert(xs_watch(w, "@introduceDomain", "intro"));
    expect_event(w, "@introduceDomain|intro");
    cr_assert(xs_watch(w, "@releaseDomain", "rel"));
    expect_event(w, "@releaseDomain|rel");
    cr_assert(xs_watch(w, "/local/domain/5", "home"));
    expect_event(w, "/local/domain/5|home");

    harness_add_domain(5);
    /* Its home appears (two changes: created, then given to domain 5). */
    expect_event(w, "/local/domain/5|home");
    expect_event(w, "/local/domain/5|home");
    expect_event(w, "@introduceDomain|intro");
    struct xs_handle *d5 = xs_as(5);
    put(d5, "data", "x");
    expect_event(w, "/local/domain/5/data|home");

    /* A guest may not see domain events unless dom0 allows it. */
    struct xs_handle *d1 = xs_as(1);
    cr_assert(xs_watch(d1, "@releaseDomain", "g"));
    expect_event(d1, "@releaseDomain|g");

    harness_remove_domain(5);
    expect_event(w, "/local/domain/5|home");
    expect_event(w, "@releaseDomain|rel");
    expect_no_event_before_barrier(d1, "/local/domain/1");
    assert_read_fails(w, "/local/domain/5", ENOENT);
    /* Its connections are gone. */
    cr_assert_null(xs_get(d5, "data"));
    char path[128];
    harness_sock_path(5, path, sizeof(path));
    cr_assert_neq(access(path, F_OK), 0, "socket file left behind");
    xs_close(d5);

    struct xs_permissions allow[] = {
        { .id = 0, .perms = XS_PERM_NONE },
        { .id = 1, .perms = XS_PERM_READ },
    };
    cr_assert(xs_set_permissions(w, XBT_NULL, "@releaseDomain", allow, 2));
    harness_add_domain(6);
    harness_remove_domain(6);
    expect_event(d1, "@releaseDomain|g");
    xs_close(d1);
    xs_close(w);
}

Test(store_proto, watcher_sees_its_own_changes)
{
    /* The event precedes the write's reply on the same connection, as
     * from xenstored; libxenstore's reader thread sorts them out. */
    struct xs_handle *xs = xs_as(2);
    cr_assert(xs_watch(xs, "own", "o"));
    expect_event(xs, "own|o");
    for (int i = 0; i < 20; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i);
        put(xs, "own", v);
        expect_event(xs, "own|o");
        assert_value(xs, "own", v);
    }
    xs_close(xs);
}
