/*
 * The guest's gntalloc limit.  Linux's gntalloc driver caps the grants
 * that all its users together may hold at a module parameter whose default
 * (1024) is 15 sockets at ring order 6.  The hypervisor's own cap is the
 * domain's grant table (Xen 4.17: 64 frames of 512 entries by default),
 * so the daemon, which owns every PV Calls grant of this guest, raises the
 * driver's limit to what it was told to plan for, once, at start.
 */
#include "frontd.h"

#include "pvc/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define GNTALLOC_LIMIT "/sys/module/xen_gntalloc/parameters/limit"

static int read_limit(unsigned long *limit)
{
    FILE *f = fopen(GNTALLOC_LIMIT, "r");
    if (!f)
        return -1;
    int ok = fscanf(f, "%lu", limit) == 1;
    fclose(f);
    return ok ? 0 : -1;
}

static int write_limit(unsigned long limit)
{
    FILE *f = fopen(GNTALLOC_LIMIT, "w");
    if (!f)
        return -1;
    int ok = fprintf(f, "%lu\n", limit) > 0;
    /* sysfs reports a refused value at close. */
    if (fclose(f) != 0)
        ok = 0;
    return ok ? 0 : -1;
}

void frontd_raise_grant_limit(unsigned long want)
{
    unsigned long limit;
    if (want == 0)
        return;
    if (read_limit(&limit) < 0) {
        pvc_warn("gntalloc limit: cannot read %s: %s", GNTALLOC_LIMIT,
                 strerror(errno));
        return;
    }
    if (limit >= want) {
        pvc_info("gntalloc limit: %lu grants", limit);
        return;
    }
    if (write_limit(want) < 0) {
        pvc_warn("gntalloc limit: %lu grants (about %lu sockets at ring "
                 "order 6); raising it to %lu failed: %s", limit, limit / 65,
                 want, strerror(errno));
        return;
    }
    pvc_info("gntalloc limit: raised from %lu to %lu grants", limit, want);
}
