/*
 * The shim's fd table (shim/fdtable.c): references, replacement, removal,
 * bounds, and concurrent lookups against updates.
 */
#include <criterion/criterion.h>

#include "../../shim/fdtable.c"

#include <pthread.h>

struct obj {
    struct fdt_obj head;
    int released;
};

static atomic_int releases;

static void release(struct fdt_obj *o)
{
    ((struct obj *)o)->released++;
    atomic_fetch_add(&releases, 1);
}

static void setup(void)
{
    fdt_set_release(release);
}

static void obj_init(struct obj *o)
{
    atomic_init(&o->head.refs, 1);
    o->released = 0;
}

TestSuite(shim_fdtable, .init = setup);

Test(shim_fdtable, unmanaged_fds_are_absent)
{
    cr_assert_null(fdt_get(5));
    cr_assert_not(fdt_has(-1));
    cr_assert_not(fdt_remove(7));
}

Test(shim_fdtable, set_get_remove_keep_the_count)
{
    struct obj o;
    obj_init(&o);
    cr_assert_eq(fdt_set(10, &o.head), 0);
    cr_assert_eq(fdt_set(11, &o.head), 0); /* a dup */
    cr_assert_eq(atomic_load(&o.head.refs), 3);
    fdt_put(&o.head); /* the creator's reference */

    struct fdt_obj *g = fdt_get(11);
    cr_assert_eq(g, &o.head);
    fdt_put(g);
    cr_assert(fdt_remove(10));
    cr_assert_not(fdt_has(10));
    cr_assert_eq(o.released, 0, "still held at fd 11");
    cr_assert(fdt_remove(11));
    cr_assert_eq(o.released, 1);
}

Test(shim_fdtable, replacing_an_entry_releases_the_old_object)
{
    struct obj a, b;
    obj_init(&a);
    obj_init(&b);
    cr_assert_eq(fdt_set(3, &a.head), 0);
    fdt_put(&a.head);
    cr_assert_eq(fdt_set(3, &b.head), 0); /* dup2 over a managed fd */
    fdt_put(&b.head);
    cr_assert_eq(a.released, 1);
    cr_assert_eq(b.released, 0);
    cr_assert(fdt_remove(3));
    cr_assert_eq(b.released, 1);
}

Test(shim_fdtable, a_reference_outlives_removal)
{
    struct obj o;
    obj_init(&o);
    cr_assert_eq(fdt_set(4, &o.head), 0);
    fdt_put(&o.head);
    struct fdt_obj *g = fdt_get(4); /* a call in progress */
    cr_assert(fdt_remove(4));       /* another thread closes the fd */
    cr_assert_eq(o.released, 0);
    fdt_put(g);
    cr_assert_eq(o.released, 1);
}

Test(shim_fdtable, fds_beyond_the_table_are_refused)
{
    struct obj o;
    obj_init(&o);
    cr_assert_eq(fdt_set(-1, &o.head), -1);
    cr_assert_eq(errno, EBADF);
    cr_assert_eq(fdt_set(0, &o.head), 0); /* creates the table */
    int cap = fdt_capacity();
    cr_assert_geq(cap, 65536);
    cr_assert_eq(fdt_set(cap, &o.head), -1);
    cr_assert_eq(errno, EMFILE);
    cr_assert_null(fdt_get(cap));
    cr_assert(fdt_remove(0));
    fdt_put(&o.head);
    cr_assert_eq(o.released, 1);
}

/* Readers take and drop references while a writer keeps replacing the
 * entry: every object is released exactly once, after its last user. */
#define ROUNDS 20000
static struct obj pool[ROUNDS];
static atomic_int stop;

static void *reader(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        struct fdt_obj *g = fdt_get(42);
        if (g) {
            cr_assert_eq(((struct obj *)g)->released, 0);
            fdt_put(g);
        }
    }
    return NULL;
}

Test(shim_fdtable, concurrent_lookups_and_updates)
{
    atomic_store(&releases, 0);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, reader, NULL);
    for (int i = 0; i < ROUNDS; i++) {
        obj_init(&pool[i]);
        cr_assert_eq(fdt_set(42, &pool[i].head), 0);
        fdt_put(&pool[i].head);
        if (i % 3 == 0)
            fdt_remove(42);
    }
    fdt_remove(42);
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&releases), ROUNDS);
    for (int i = 0; i < ROUNDS; i++)
        cr_assert_eq(pool[i].released, 1, "object %d", i);
}
