/* ApacheBench as a load generator: see loadgen.h. */
#include "loadgen.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lg_ab_spawn(struct rp_child *ab, const char *url, int requests,
                 int concurrency, int timeout_s, const char *out)
{
    char n[16], c[16], s[16];
    snprintf(n, sizeof(n), "%d", requests);
    snprintf(c, sizeof(c), "%d", concurrency);
    snprintf(s, sizeof(s), "%d", timeout_s);
    const char *argv[] = { "ab", "-q", "-s", s, "-n", n, "-c", c, url, NULL };
    rp_spawn(ab, argv, NULL, NULL, out);
}

long long lg_ab_field(const char *report, const char *label)
{
    const char *p = strstr(report, label);
    return p ? strtoll(p + strlen(label), NULL, 10) : 0;
}

void lg_ab_expect_clean(const char *out, int requests, size_t body_size)
{
    char *report = rp_slurp(out);
    cr_expect_eq(lg_ab_field(report, "Complete requests:"), requests, "%s",
                 report);
    cr_expect_eq(lg_ab_field(report, "Failed requests:"), 0, "%s", report);
    cr_expect_eq(lg_ab_field(report, "Non-2xx responses:"), 0, "%s", report);
    cr_expect_eq(lg_ab_field(report, "Write errors:"), 0, "%s", report);
    cr_expect_eq(lg_ab_field(report, "HTML transferred:"),
                 (long long)requests * (long long)body_size, "%s", report);
    free(report);
}
