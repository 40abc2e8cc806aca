/*
 * frontd's choice of ring order under a grant budget (ring_budget.c):
 * the asked-for order while the budget is plentiful, smaller rings as it
 * runs low, the smallest while anything is left, never more than asked.
 */
#include "../../frontd/frontd.h"

#include <criterion/criterion.h>

static unsigned long pages(unsigned order)
{
    return 1ul + (1ul << order);
}

Test(frontd_budget, plentiful_budget_gives_what_was_asked)
{
    cr_assert_eq(ring_budget_order(9, 0, 1ul << 20), 9);
    cr_assert_eq(ring_budget_order(6, 0, 1ul << 20), 6);
    cr_assert_eq(ring_budget_order(0, 0, 1ul << 20), 1, "order 0: 1");
}

Test(frontd_budget, shrinks_as_the_budget_runs_low)
{
    unsigned long budget = 1ul << 20;
    /* Just enough free for an order-9 ring at the share rule... */
    unsigned long used = budget - pages(9) * FRONTD_BUDGET_SHARE;
    cr_assert_eq(ring_budget_order(9, used, budget), 9);
    /* ... one page less: order 8. */
    cr_assert_eq(ring_budget_order(9, used + 1, budget), 8);
    cr_assert_eq(ring_budget_order(9, budget - 10, budget), 1);
    cr_assert_eq(ring_budget_order(9, budget, budget), 1,
                 "nothing left: the smallest, the platform says no");
    cr_assert_eq(ring_budget_order(9, budget + 5, budget), 1);
}

/* Filling a budget socket by socket: every socket gets a ring until the
 * budget is spent, big ones first, and they all fit. */
Test(frontd_budget, a_full_budget_holds_many_sockets)
{
    unsigned long budget = 1ul << 20, used = 0;
    unsigned long sockets = 0, big = 0;
    for (;;) {
        unsigned o = ring_budget_order(9, used, budget);
        if (used + pages(o) > budget)
            break;
        used += pages(o);
        sockets++;
        big += o == 9;
    }
    cr_assert_geq(big, 1500, "order-9 rings while plentiful: %lu", big);
    cr_assert_geq(sockets, 3500, "sockets in 2^20 grants: %lu", sockets);
    cr_assert_gt(used + pages(1), budget, "the budget is spent");
    /* At order 6 the same budget holds 10,000 idle sockets. */
    used = 0;
    for (sockets = 0; sockets < 10000; sockets++) {
        unsigned o = ring_budget_order(6, used, budget);
        cr_assert_eq(o, 6, "socket %lu got order %u", sockets, o);
        used += pages(o);
    }
}
