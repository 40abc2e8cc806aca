/*
 * The shim's fd table (shim/fdtable.c): references, replacement, removal,
 * bounds, object kinds (sockets and epoll instances), the last-close hook,
 * and concurrent lookups against updates.
 */
#include <criterion/criterion.h>

#include "../../shim/fdtable.c"
#include "../../shim/sigdefer.c"

#include <pthread.h>

/* The library defines it in real.c, which this test does not include. */
atomic_int shim_sandboxed;

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
    fdt_obj_init(&o->head, FDT_SOCK);
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

/* ---- kinds, last close, active epolls --------------------------------- */

static struct fdt_obj *closed_obj;
static int closed_calls, closed_refs;

static void on_closed(struct fdt_obj *o)
{
    closed_obj = o;
    closed_calls++;
    closed_refs = atomic_load(&o->refs); /* still held while we look */
}

Test(shim_fdtable, socket_lookups_never_return_an_epoll)
{
    struct obj s, e;
    obj_init(&s);
    fdt_obj_init(&e.head, FDT_EPOLL);
    e.released = 0;
    fdt_set_kind_release(FDT_EPOLL, release);
    cr_assert_eq(fdt_set(20, &s.head), 0);
    cr_assert_eq(fdt_set(21, &e.head), 0);
    fdt_put(&s.head);
    fdt_put(&e.head);

    cr_assert(fdt_has(20));
    cr_assert_not(fdt_has(21), "an epoll fd is no managed socket");
    cr_assert(fdt_has_any(21));
    cr_assert_null(fdt_get(21));
    struct fdt_obj *g = fdt_get_kind(21, FDT_EPOLL);
    cr_assert_eq(g, &e.head);
    fdt_put(g);
    cr_assert_null(fdt_get_kind(20, FDT_EPOLL));
    g = fdt_get_kind(20, FDT_ANY);
    cr_assert_eq(g, &s.head);
    fdt_put(g);

    cr_assert(fdt_remove(20));
    cr_assert(fdt_remove(21));
    cr_assert_eq(s.released, 1);
    cr_assert_eq(e.released, 1, "the epoll kind's own release ran");
}

Test(shim_fdtable, the_last_slot_going_calls_the_closed_hook_once)
{
    struct obj o;
    obj_init(&o);
    closed_calls = 0;
    fdt_set_closed(on_closed);
    cr_assert_eq(fdt_set(30, &o.head), 0);
    cr_assert_eq(fdt_set(31, &o.head), 0); /* a dup */
    fdt_put(&o.head);
    cr_assert(fdt_remove(30));
    cr_assert_eq(closed_calls, 0, "fd 31 still names it");

    struct obj other;
    obj_init(&other);
    cr_assert_eq(fdt_set(31, &other.head), 0); /* dup2 over the last one */
    fdt_put(&other.head);
    cr_assert_eq(closed_calls, 1);
    cr_assert_eq(closed_obj, &o.head);
    cr_assert_geq(closed_refs, 1, "the hook runs before the release");
    cr_assert_eq(o.released, 1);

    cr_assert(fdt_remove(31));
    cr_assert_eq(closed_calls, 2);
    cr_assert_eq(closed_obj, &other.head);
    fdt_set_closed(NULL);
}

Test(shim_fdtable, an_active_epoll_is_waitable_at_every_fd_naming_it)
{
    struct obj e, s;
    fdt_obj_init(&e.head, FDT_EPOLL);
    e.released = 0;
    obj_init(&s);
    fdt_set_kind_release(FDT_EPOLL, release);
    cr_assert_eq(fdt_set(40, &e.head), 0);
    cr_assert_eq(fdt_set(41, &e.head), 0);
    cr_assert_eq(fdt_set(42, &s.head), 0);
    cr_assert_not(fdt_waitable(40), "no managed member yet: the real calls");
    cr_assert(fdt_waitable(42), "a socket always is");

    fdt_mark_active(&e.head);
    cr_assert(fdt_waitable(40));
    cr_assert(fdt_waitable(41));
    cr_assert_eq(fdt_set(43, &e.head), 0); /* a dup after the mark */
    cr_assert(fdt_waitable(43));
    cr_assert_not(fdt_has(43));

    fdt_put(&e.head);
    fdt_put(&s.head);
    for (int fd = 40; fd <= 43; fd++)
        cr_assert(fdt_remove(fd));
    cr_assert_eq(e.released, 1);
    cr_assert_eq(s.released, 1);
}
