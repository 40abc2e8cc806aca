/*
 * pvcalls-frontd's command line (frontd/args.c): defaults that depend on
 * the environment, every option, and the values it must refuse.
 */
#include "../../frontd/frontd.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static struct frontd_cfg cfg;
static char err[200];

#define PARSE(...)                                                         \
    ({                                                                     \
        char *argv_[] = { "pvcalls-frontd", __VA_ARGS__, NULL };           \
        frontd_parse_args((int)(sizeof(argv_) / sizeof(argv_[0])) - 1,     \
                          argv_, &cfg, err, sizeof(err));                  \
    })

static void clean_env(void)
{
    unsetenv("PVC_FRONTD_SOCK");
    unsetenv("PVC_SIM_DOMID");
    unsetenv("PVC_SIM_DIR");
    unsetenv("PVC_PLATFORM");
}

TestSuite(frontd_args, .init = clean_env);

Test(frontd_args, defaults_on_xen)
{
    cr_assert_eq(PARSE("--platform", "xen"), 0, "%s", err);
    cr_assert_eq(cfg.domid, 1);
    cr_assert_str_eq(cfg.device, "device/pvcalls/0");
    cr_assert_str_eq(cfg.sock_path, PVC_FRONTD_DEFAULT_SOCK);
    cr_assert_eq(cfg.order, FRONTD_DEFAULT_ORDER);
    cr_assert_eq(cfg.pool, FRONTD_DEFAULT_POOL);
    cr_assert_eq(cfg.ready_fd, -1);
}

Test(frontd_args, sim_socket_lives_in_the_sim_dir)
{
    setenv("PVC_SIM_DOMID", "3", 1);
    cr_assert_eq(PARSE("--platform", "sim", "--sim-dir", "/tmp/simx"), 0);
    cr_assert_eq(cfg.domid, 3);
    cr_assert_str_eq(cfg.sock_path, "/tmp/simx/frontd-3.sock");
    cr_assert_eq(PARSE("--platform", "sim", "--sim-dir", "/tmp/simx",
                       "--domid", "7"), 0);
    cr_assert_str_eq(cfg.sock_path, "/tmp/simx/frontd-7.sock");
    setenv("PVC_FRONTD_SOCK", "/tmp/env.sock", 1);
    cr_assert_eq(PARSE("--platform", "sim"), 0);
    cr_assert_str_eq(cfg.sock_path, "/tmp/env.sock");
    cr_assert_eq(PARSE("--platform", "sim", "--socket", "/tmp/arg.sock"), 0);
    cr_assert_str_eq(cfg.sock_path, "/tmp/arg.sock");
}

Test(frontd_args, every_option)
{
    cr_assert_eq(PARSE("--platform", "auto", "--device", "device/pvcalls/1",
                       "--order", "9", "--pool", "0", "--ready-fd", "5",
                       "--socket", "/x.sock"), 0, "%s", err);
    cr_assert_eq(cfg.platform, PVC_PLATFORM_AUTO);
    cr_assert_str_eq(cfg.device, "device/pvcalls/1");
    cr_assert_eq(cfg.order, 9);
    cr_assert_eq(cfg.pool, 0);
    cr_assert_eq(cfg.ready_fd, 5);
}

Test(frontd_args, refuses_bad_values)
{
    cr_assert_eq(PARSE("--order", "0"), -1);
    cr_assert_eq(PARSE("--order", "10"), -1);
    cr_assert_eq(PARSE("--pool", "-1"), -1);
    cr_assert_eq(PARSE("--domid", "0"), -1);
    cr_assert_eq(PARSE("--domid", "40000"), -1);
    cr_assert_eq(PARSE("--platform", "kvm"), -1);
    cr_assert_eq(PARSE("--bogus"), -1);
    cr_assert_eq(PARSE("extra"), -1);
    setenv("PVC_SIM_DOMID", "x", 1);
    cr_assert_eq(PARSE("--platform", "sim"), -1);
}
