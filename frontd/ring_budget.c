/*
 * How big a new socket's ring may be.  Rings cannot grow after CONNECT,
 * and every page is a grant out of a per-domain budget (gntalloc's limit
 * on Xen, the broker's on the simulated platform): at the default order a
 * ring takes 65 grants, at order 9 513, so a fixed order either starves
 * bulk transfers (small rings cap throughput near 0.4 of native) or caps
 * the socket count (1,008 sockets filled the simulated 65,536 at order 6).
 * So a ring may take at most 1/FRONTD_BUDGET_SHARE of what is still free:
 * the asked-for order while the budget is plentiful, then smaller and
 * smaller ones (each halving of the order leaves room for as many rings
 * again), and the smallest (order 1, 3 grants) as long as any fits.
 */
#include "frontd.h"

unsigned ring_budget_order(unsigned want, unsigned long used,
                           unsigned long budget)
{
    unsigned long free = used < budget ? budget - used : 0;
    unsigned order = want < 1 ? 1 : want;
    while (order > 1 &&
           (1ul + (1ul << order)) * FRONTD_BUDGET_SHARE > free)
        order--;
    return order;
}
