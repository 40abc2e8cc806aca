/*
 * pvcalls-backd's command line (backend/args.c): defaults, every option,
 * and the values it must refuse.
 */
#include "../../backend/backd.h"
#include "pvc/ext.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <criterion/redirect.h>

static struct backd_cfg cfg;
static char err[160];

/* argv from a NULL-terminated list of words after the program name. */
#define PARSE(...)                                                         \
    ({                                                                     \
        char *argv_[] = { "pvcalls-backd", __VA_ARGS__, NULL };            \
        backd_parse_args((int)(sizeof(argv_) / sizeof(argv_[0])) - 1,      \
                         argv_, &cfg, err, sizeof(err));                   \
    })

Test(backd_args, defaults)
{
    char *argv[] = { "pvcalls-backd", NULL };
    cr_assert_eq(backd_parse_args(1, argv, &cfg, err, sizeof(err)), 0);
    cr_assert_eq(cfg.platform, PVC_PLATFORM_AUTO);
    cr_assert_null(cfg.sim_dir);
    cr_assert_null(cfg.audit_path);
    cr_assert_eq(cfg.max_page_order, 9);
    cr_assert_eq(cfg.max_sockets, 1024);
    cr_assert_eq(cfg.ext, PVC_EXT_ALL);
    cr_assert_eq(cfg.ready_fd, -1);
}

Test(backd_args, every_option)
{
    cr_assert_eq(PARSE("--platform", "sim", "--sim-dir", "/tmp/x",
                       "--audit", "-", "--max-page-order", "4",
                       "--max-sockets", "7", "--ext", "ipv6,sockopt",
                       "--ready-fd", "5"), 0, "%s", err);
    cr_assert_eq(cfg.platform, PVC_PLATFORM_SIM);
    cr_assert_str_eq(cfg.sim_dir, "/tmp/x");
    cr_assert_str_eq(cfg.audit_path, "-");
    cr_assert_eq(cfg.max_page_order, 4);
    cr_assert_eq(cfg.max_sockets, 7);
    cr_assert_eq(cfg.ext, PVC_EXT_IPV6 | PVC_EXT_SOCKOPT);
    cr_assert_eq(cfg.ready_fd, 5);
    /* --opt=value works as well, and the last one wins. */
    cr_assert_eq(PARSE("--platform=xen", "--ext=none", "--max-page-order=9"),
                 0, "%s", err);
    cr_assert_eq(cfg.platform, PVC_PLATFORM_XEN);
    cr_assert_eq(cfg.ext, 0);
    cr_assert_eq(PARSE("--ext", "all", "--ext", "shutdown"), 0);
    cr_assert_eq(cfg.ext, PVC_EXT_SHUTDOWN);
}

Test(backd_args, page_order_bounds)
{
    cr_assert_eq(PARSE("--max-page-order", "3"), -1);
    cr_assert(strstr(err, "4..9"), "%s", err);
    cr_assert_eq(PARSE("--max-page-order", "10"), -1);
    cr_assert_eq(PARSE("--max-page-order", "-5"), -1);
    cr_assert_eq(PARSE("--max-page-order", "5x"), -1);
    cr_assert_eq(PARSE("--max-page-order", ""), -1);
    cr_assert_eq(PARSE("--max-page-order", "6"), 0);
    cr_assert_eq(cfg.max_page_order, 6);
}

Test(backd_args, refused)
{
    cr_assert_eq(PARSE("--platform", "kvm"), -1);
    cr_assert_eq(PARSE("--max-sockets", "0"), -1);
    cr_assert_eq(PARSE("--max-sockets", "99999999999999999999"), -1);
    cr_assert_eq(PARSE("--ext", "ipv6,bogus"), -1, "a typo is an error");
    cr_assert_eq(PARSE("--ready-fd", "-1"), -1);
    cr_assert_eq(PARSE("--no-such-option"), -1);
    cr_assert_eq(PARSE("--audit"), -1, "missing value");
    cr_assert_eq(PARSE("stray"), -1);
}

Test(backd_args, help, .init = cr_redirect_stdout)
{
    cr_assert_eq(PARSE("--help"), 1);
    fflush(stdout);
    char out[2048] = { 0 };
    FILE *f = cr_get_redirected_stdout();
    cr_assert_gt(fread(out, 1, sizeof(out) - 1, f), 0);
    cr_assert(strstr(out, "--max-page-order N"), "%s", out);
    cr_assert(strstr(out, "--ready-fd N"), "%s", out);
}
