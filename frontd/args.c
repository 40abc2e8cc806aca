/* pvcalls-frontd's command line: see frontd_usage(). */
#include "frontd.h"
#include "pvc/parse.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

void frontd_usage(const char *prog, FILE *out)
{
    fprintf(out,
            "Usage: %s [OPTION]...\n"
            "The PV Calls guest daemon: owns this domain's PV Calls device "
            "and serves\nlibpvcalls.so (the shim) on a Unix socket.\n"
            "\n"
            "  --platform auto|sim|xen   platform (default auto)\n"
            "  --sim-dir DIR             simulated platform's directory\n"
            "  --domid N                 sim: our domain (default "
            "$PVC_SIM_DOMID or 1)\n"
            "  --device PATH             the device (default "
            "device/pvcalls/0)\n"
            "  --socket PATH             where shims connect (default "
            "$PVC_FRONTD_SOCK,\n"
            "                            else %s; sim: "
            "<sim-dir>/frontd-<domid>.sock)\n"
            "  --order N                 ring order of new sockets, 1..%u "
            "(default %u,\n"
            "                            at most the backend's "
            "max-page-order; smaller\n"
            "                            as the grant budget runs low)\n"
            "  --pool N                  rings kept ready, 0..%u "
            "(default %u)\n"
            "  --grant-limit N           Xen: raise the guest's gntalloc limit "
            "to N grants\n"
            "                            at start, 0 = leave it (default %u)\n"
            "  --ready-fd N              write \"ready\\n\" to fd N once "
            "serving\n"
            "  --help                    this text\n"
            "\n"
            "Environment: PVC_LOG=debug|info|warn|err, PVC_PLATFORM, "
            "PVC_SIM_DIR,\nPVC_SIM_DOMID, PVC_FRONTD_SOCK.\n",
            prog, PVC_FRONTD_DEFAULT_SOCK, PVC_MAX_RING_ORDER,
            FRONTD_DEFAULT_ORDER, FRONTD_MAX_POOL, FRONTD_DEFAULT_POOL,
            FRONTD_DEFAULT_GRANT_LIMIT);
}

enum { OPT_PLATFORM = 256, OPT_SIM_DIR, OPT_DOMID, OPT_DEVICE, OPT_SOCKET,
       OPT_ORDER, OPT_POOL, OPT_GRANT_LIMIT, OPT_READY_FD, OPT_HELP };

static const struct option long_opts[] = {
    { "platform", required_argument, NULL, OPT_PLATFORM },
    { "sim-dir", required_argument, NULL, OPT_SIM_DIR },
    { "domid", required_argument, NULL, OPT_DOMID },
    { "device", required_argument, NULL, OPT_DEVICE },
    { "socket", required_argument, NULL, OPT_SOCKET },
    { "order", required_argument, NULL, OPT_ORDER },
    { "pool", required_argument, NULL, OPT_POOL },
    { "grant-limit", required_argument, NULL, OPT_GRANT_LIMIT },
    { "ready-fd", required_argument, NULL, OPT_READY_FD },
    { "help", no_argument, NULL, OPT_HELP },
    { NULL, 0, NULL, 0 },
};

static int apply_opt(int opt, const char *arg, void *cfg_out,
                     char *err, size_t errlen)
{
    struct frontd_cfg *cfg = cfg_out;
    unsigned long v;
    switch (opt) {
    case OPT_PLATFORM:
        if (!pvc_parse_platform(arg, &cfg->platform))
            return pvc_parse_fail(err, errlen, "--platform: auto, sim or xen");
        return 0;
    case OPT_SIM_DIR:
        cfg->sim_dir = arg;
        return 0;
    case OPT_DOMID:
        if (!pvc_parse_uint(arg, 1, 0x7fef, &v))
            return pvc_parse_fail(err, errlen, "--domid: 1..32751");
        cfg->domid = (int)v;
        return 0;
    case OPT_DEVICE:
        cfg->device = arg;
        return 0;
    case OPT_SOCKET:
        if (!*arg || strlen(arg) >= sizeof(cfg->sock_path))
            return pvc_parse_fail(err, errlen, "--socket: a path");
        snprintf(cfg->sock_path, sizeof(cfg->sock_path), "%s", arg);
        return 0;
    case OPT_ORDER:
        if (!pvc_parse_uint(arg, 1, PVC_MAX_RING_ORDER, &v))
            return pvc_parse_fail(err, errlen, "--order: 1..%u", PVC_MAX_RING_ORDER);
        cfg->order = (unsigned)v;
        return 0;
    case OPT_POOL:
        if (!pvc_parse_uint(arg, 0, FRONTD_MAX_POOL, &v))
            return pvc_parse_fail(err, errlen, "--pool: 0..%u", FRONTD_MAX_POOL);
        cfg->pool = (unsigned)v;
        return 0;
    case OPT_GRANT_LIMIT:
        if (!pvc_parse_uint(arg, 0, FRONTD_MAX_GRANT_LIMIT, &v))
            return pvc_parse_fail(err, errlen, "--grant-limit: 0..%u",
                                  FRONTD_MAX_GRANT_LIMIT);
        cfg->grant_limit = (unsigned)v;
        return 0;
    case OPT_READY_FD:
        if (!pvc_parse_uint(arg, 0, INT_MAX, &v))
            return pvc_parse_fail(err, errlen, "--ready-fd: a file descriptor");
        cfg->ready_fd = (int)v;
        return 0;
    default:
        return pvc_parse_fail(err, errlen, "unknown option (see --help)");
    }
}

/* The defaults that depend on other options and the environment. */
static int fill_defaults(struct frontd_cfg *cfg, char *err, size_t errlen)
{
    if (cfg->domid < 0) {
        const char *env = getenv("PVC_SIM_DOMID");
        unsigned long v = 1;
        if (env && *env && !pvc_parse_uint(env, 1, 0x7fef, &v))
            return pvc_parse_fail(err, errlen, "PVC_SIM_DOMID: 1..32751");
        cfg->domid = (int)v;
    }
    if (cfg->sock_path[0])
        return 0;
    const char *env = getenv("PVC_FRONTD_SOCK");
    const char *kind = getenv("PVC_PLATFORM");
    bool sim = cfg->platform == PVC_PLATFORM_SIM ||
               (cfg->platform == PVC_PLATFORM_AUTO && kind &&
                !strcmp(kind, "sim"));
    int n;
    if (env && *env) {
        n = snprintf(cfg->sock_path, sizeof(cfg->sock_path), "%s", env);
    } else if (sim) {
        char dflt[PATH_MAX / 2];
        const char *dir = cfg->sim_dir;
        if (!dir || !*dir)
            dir = getenv("PVC_SIM_DIR");
        if (!dir || !*dir)
            dir = pvc_sim_default_dir(dflt, sizeof(dflt));
        n = snprintf(cfg->sock_path, sizeof(cfg->sock_path),
                     "%s/frontd-%d.sock", dir, cfg->domid);
    } else {
        n = snprintf(cfg->sock_path, sizeof(cfg->sock_path), "%s",
                     PVC_FRONTD_DEFAULT_SOCK);
    }
    if (n < 0 || (size_t)n >= sizeof(cfg->sock_path))
        return pvc_parse_fail(err, errlen, "socket path too long");
    return 0;
}

int frontd_parse_args(int argc, char **argv, struct frontd_cfg *cfg,
                      char *err, size_t errlen)
{
    *cfg = (struct frontd_cfg){
        .platform = PVC_PLATFORM_AUTO,
        .domid = -1,
        .device = "device/pvcalls/0",
        .order = FRONTD_DEFAULT_ORDER,
        .pool = FRONTD_DEFAULT_POOL,
        .grant_limit = FRONTD_DEFAULT_GRANT_LIMIT,
        .ready_fd = -1,
    };
    static const struct pvc_cmdline cl = {
        .opts = long_opts,
        .help_opt = OPT_HELP,
        .usage = frontd_usage,
        .apply = apply_opt,
    };
    int rc = pvc_parse_cmdline(&cl, argc, argv, cfg, err, errlen);
    return rc != 0 ? rc : fill_defaults(cfg, err, errlen);
}
