/*
 * The shim's epoll ready list (shim/epoll_ready.c) with a fake readiness
 * source: level-triggered items are reported while ready, EPOLLET ones
 * once per wake-up, EPOLLONESHOT ones once until re-armed; wake-up keys
 * filter by interest; EPOLLERR/EPOLLHUP are reported unasked; a harvest
 * bounded by maxevents keeps the rest in order; a failed copy puts items
 * back as they were; polling the epoll itself drops stale items.
 */
#include <criterion/criterion.h>

#include "../../shim/epoll_ready.c"

struct fake {
    struct epr_item item; /* first: the list hands it back */
    uint32_t mask;        /* what the "file" reports now */
    int polls;
};

static uint32_t fake_poll(struct epr_item *item, void *ctx)
{
    (void)ctx;
    struct fake *f = (struct fake *)item;
    f->polls++;
    return f->mask;
}

static void fake_init(struct fake *f, uint32_t events, uint64_t id)
{
    *f = (struct fake){ 0 };
    epr_set(&f->item, events, (epoll_data_t){ .u64 = id });
}

static int harvest(struct epr_list *l, struct epoll_event *out, int max)
{
    struct epr_undo undo[16];
    cr_assert_leq(max, 16);
    return epr_harvest(l, out, undo, max, fake_poll, NULL);
}

Test(epoll_ready, level_triggered_reports_while_ready)
{
    struct epr_list l = { 0 };
    struct fake f;
    fake_init(&f, EPOLLIN, 7);
    f.mask = EPOLLIN | EPOLLOUT;
    cr_assert(epr_queue(&l, &f.item));
    struct epoll_event ev[4];
    for (int round = 0; round < 3; round++) {
        cr_assert_eq(harvest(&l, ev, 4), 1);
        cr_assert_eq(ev[0].events, EPOLLIN, "EPOLLOUT was not asked");
        cr_assert_eq(ev[0].data.u64, 7);
    }
    f.mask = EPOLLOUT;
    cr_assert_eq(harvest(&l, ev, 4), 0);
    cr_assert(epr_empty(&l), "no longer ready: off the list");
    cr_assert_eq(harvest(&l, ev, 4), 0);
}

Test(epoll_ready, edge_triggered_reports_once_per_wakeup)
{
    struct epr_list l = { 0 };
    struct fake f;
    fake_init(&f, EPOLLIN | EPOLLET, 1);
    f.mask = EPOLLIN;
    struct epoll_event ev[4];
    cr_assert(epr_wake(&l, &f.item, EPR_KEY_IN));
    cr_assert_not(epr_wake(&l, &f.item, EPR_KEY_IN), "already queued");
    cr_assert_eq(harvest(&l, ev, 4), 1);
    cr_assert_eq(harvest(&l, ev, 4), 0, "still readable, but no new edge");
    cr_assert(epr_wake(&l, &f.item, EPR_KEY_IN));
    cr_assert_eq(harvest(&l, ev, 4), 1);
    cr_assert_eq(ev[0].events, EPOLLIN);
}

Test(epoll_ready, oneshot_disables_until_modified)
{
    struct epr_list l = { 0 };
    struct fake f;
    fake_init(&f, EPOLLIN | EPOLLONESHOT, 2);
    f.mask = EPOLLIN | EPOLLHUP;
    struct epoll_event ev[4];
    cr_assert(epr_queue(&l, &f.item));
    cr_assert_eq(harvest(&l, ev, 4), 1);
    cr_assert_eq(ev[0].events, EPOLLIN | EPOLLHUP);
    cr_assert_not(epr_enabled(&f.item));
    cr_assert_not(epr_wake(&l, &f.item, EPR_KEY_ALL), "disabled");
    cr_assert_not(epr_queue(&l, &f.item));
    cr_assert_eq(harvest(&l, ev, 4), 0);
    /* EPOLL_CTL_MOD re-arms it. */
    epr_set(&f.item, EPOLLIN | EPOLLONESHOT, (epoll_data_t){ .u64 = 3 });
    cr_assert(epr_queue(&l, &f.item));
    cr_assert_eq(harvest(&l, ev, 4), 1);
    cr_assert_eq(ev[0].data.u64, 3);
}

Test(epoll_ready, wakeup_keys_filter_by_interest)
{
    struct epr_list l = { 0 };
    struct fake out, in;
    fake_init(&out, EPOLLOUT | EPOLLET, 1);
    fake_init(&in, EPOLLIN | EPOLLET, 2);
    cr_assert_not(epr_wake(&l, &out.item, EPR_KEY_IN),
                  "new data is no news for a writer");
    cr_assert(epr_wake(&l, &in.item, EPR_KEY_IN));
    cr_assert(epr_wake(&l, &out.item, EPR_KEY_OUT));
    cr_assert_not(epr_wake(&l, &in.item, 0), "a doorbell that changed nothing");
    struct fake any;
    fake_init(&any, EPOLLOUT | EPOLLET, 3);
    cr_assert(epr_wake(&l, &any.item, EPOLLERR), "errors reach everyone");
}

Test(epoll_ready, errors_and_hangups_are_reported_unasked)
{
    struct epr_list l = { 0 };
    struct fake f;
    fake_init(&f, EPOLLIN | EPOLLET, 1);
    f.mask = EPOLLERR | EPOLLHUP | EPOLLOUT | EPOLLRDHUP;
    struct epoll_event ev[2];
    cr_assert(epr_wake(&l, &f.item, EPR_KEY_ALL));
    cr_assert_eq(harvest(&l, ev, 2), 1);
    cr_assert_eq(ev[0].events, EPOLLERR | EPOLLHUP,
                 "EPOLLRDHUP and EPOLLOUT were not asked");
}

Test(epoll_ready, maxevents_bounds_a_harvest_and_keeps_the_order)
{
    struct epr_list l = { 0 };
    struct fake f[3];
    for (int i = 0; i < 3; i++) {
        fake_init(&f[i], EPOLLIN, (uint64_t)i);
        f[i].mask = EPOLLIN;
        cr_assert(epr_queue(&l, &f[i].item));
    }
    struct epoll_event ev[4];
    cr_assert_eq(harvest(&l, ev, 2), 2);
    cr_assert_eq(ev[0].data.u64, 0);
    cr_assert_eq(ev[1].data.u64, 1);
    cr_assert_eq(f[2].polls, 0, "not visited");
    /* The one not taken comes first, then the level-triggered ones put
     * back in the order they were reported. */
    cr_assert_eq(harvest(&l, ev, 4), 3);
    cr_assert_eq(ev[0].data.u64, 2);
    cr_assert_eq(ev[1].data.u64, 0);
    cr_assert_eq(ev[2].data.u64, 1);
}

Test(epoll_ready, a_failed_copy_puts_items_back_as_they_were)
{
    struct epr_list l = { 0 };
    struct fake a, b;
    fake_init(&a, EPOLLIN | EPOLLONESHOT, 1);
    fake_init(&b, EPOLLIN | EPOLLET, 2);
    a.mask = b.mask = EPOLLIN;
    epr_queue(&l, &a.item);
    epr_queue(&l, &b.item);
    struct epoll_event ev[2];
    struct epr_undo undo[2];
    cr_assert_eq(epr_harvest(&l, ev, undo, 2, fake_poll, NULL), 2);
    cr_assert_not(epr_enabled(&a.item));
    /* Only the first reached the caller. */
    epr_unharvest(&l, undo + 1, 1);
    cr_assert_not(epr_enabled(&a.item), "the delivered one stays fired");
    cr_assert_eq(harvest(&l, ev, 2), 1);
    cr_assert_eq(ev[0].data.u64, 2);
    /* Nothing delivered at all: both back, re-armed as before. */
    epr_set(&a.item, EPOLLIN | EPOLLONESHOT, (epoll_data_t){ .u64 = 1 });
    epr_queue(&l, &a.item);
    epr_wake(&l, &b.item, EPR_KEY_IN);
    cr_assert_eq(epr_harvest(&l, ev, undo, 2, fake_poll, NULL), 2);
    epr_unharvest(&l, undo, 2);
    cr_assert(epr_enabled(&a.item));
    cr_assert_eq(harvest(&l, ev, 2), 2);
    cr_assert_eq(ev[0].data.u64, 1);
    cr_assert_eq(ev[1].data.u64, 2);
}

Test(epoll_ready, peeking_drops_stale_items_and_consumes_nothing)
{
    struct epr_list l = { 0 };
    struct fake stale, et;
    fake_init(&stale, EPOLLIN, 1);
    fake_init(&et, EPOLLIN | EPOLLET, 2);
    epr_queue(&l, &stale.item);
    cr_assert_not(epr_peek(&l, fake_poll, NULL));
    cr_assert(epr_empty(&l));
    epr_queue(&l, &stale.item);
    epr_wake(&l, &et.item, EPR_KEY_IN);
    et.mask = EPOLLIN;
    cr_assert(epr_peek(&l, fake_poll, NULL));
    cr_assert(epr_peek(&l, fake_poll, NULL), "a peek takes no edge");
    struct epoll_event ev[2];
    cr_assert_eq(harvest(&l, ev, 2), 1);
    cr_assert_eq(ev[0].data.u64, 2);
}

Test(epoll_ready, unqueue_anywhere_in_the_list)
{
    struct epr_list l = { 0 };
    struct fake f[3];
    for (int i = 0; i < 3; i++) {
        fake_init(&f[i], EPOLLIN, (uint64_t)i);
        f[i].mask = EPOLLIN;
        epr_queue(&l, &f[i].item);
    }
    epr_unqueue(&l, &f[1].item); /* EPOLL_CTL_DEL of a queued member */
    epr_unqueue(&l, &f[1].item); /* twice is harmless */
    struct epoll_event ev[4];
    cr_assert_eq(harvest(&l, ev, 4), 2);
    cr_assert_eq(ev[0].data.u64, 0);
    cr_assert_eq(ev[1].data.u64, 2);
    epr_unqueue(&l, &f[2].item);
    epr_unqueue(&l, &f[0].item);
    cr_assert(epr_empty(&l));
}
