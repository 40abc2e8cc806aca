/* pvcalls-backd's command line: see backd_usage(). */
#include "backd.h"
#include "pvc/parse.h"

#include "pvc/ext.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

void backd_usage(const char *prog, FILE *out)
{
    fprintf(out,
            "Usage: %s [OPTION]...\n"
            "A userspace PV Calls backend: serves every frontend domain that "
            "has a\nbackend/pvcalls device for this domain, on host sockets.\n"
            "\n"
            "  --platform auto|sim|xen   platform (default auto)\n"
            "  --sim-dir DIR             simulated platform's directory\n"
            "  --audit FILE|-            append a JSON audit log to FILE "
            "(- : stderr)\n"
            "  --policy FILE             what each domain may do (INI, "
            "pvcalls-policy(5));\n"
            "                            default: everything\n"
            "  --max-page-order N        largest data ring order, %u..%u "
            "(default %u)\n"
            "  --max-sockets N           sockets per frontend domain "
            "(default %u)\n"
            "  --ext LIST|all|none       extensions to offer "
            "(default all)\n"
            "  --ready-fd N              write \"ready\\n\" to fd N once "
            "serving\n"
            "  --help                    this text\n",
            prog, BACKD_MIN_ORDER, PVC_MAX_RING_ORDER, BACKD_DEFAULT_ORDER,
            BACKD_DEFAULT_MAX_SOCKETS);
}

/* "all", "none", or comma-separated names, each of them known. */
static bool parse_ext(const char *list, unsigned *out)
{
    if (!strcmp(list, "all")) {
        *out = PVC_EXT_ALL;
        return true;
    }
    if (!strcmp(list, "none") || !*list) {
        *out = 0;
        return true;
    }
    unsigned bits = 0;
    char *copy = strdup(list);
    if (!copy)
        return false;
    bool ok = true;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        unsigned bit = pvc_ext_parse(tok);
        if (!bit) {
            ok = false; /* a typo must not silently disable a feature */
            break;
        }
        bits |= bit;
    }
    free(copy);
    *out = bits;
    return ok;
}

enum { OPT_PLATFORM = 256, OPT_SIM_DIR, OPT_AUDIT, OPT_POLICY, OPT_ORDER,
       OPT_SOCKETS, OPT_EXT, OPT_READY_FD, OPT_HELP };

static const struct option long_opts[] = {
    { "platform", required_argument, NULL, OPT_PLATFORM },
    { "sim-dir", required_argument, NULL, OPT_SIM_DIR },
    { "audit", required_argument, NULL, OPT_AUDIT },
    { "policy", required_argument, NULL, OPT_POLICY },
    { "max-page-order", required_argument, NULL, OPT_ORDER },
    { "max-sockets", required_argument, NULL, OPT_SOCKETS },
    { "ext", required_argument, NULL, OPT_EXT },
    { "ready-fd", required_argument, NULL, OPT_READY_FD },
    { "help", no_argument, NULL, OPT_HELP },
    { NULL, 0, NULL, 0 },
};

static int apply_opt(int opt, const char *arg, void *cfg_out,
                     char *err, size_t errlen)
{
    struct backd_cfg *cfg = cfg_out;
    unsigned long v;
    switch (opt) {
    case OPT_PLATFORM:
        if (!pvc_parse_platform(arg, &cfg->platform))
            return pvc_parse_fail(err, errlen, "--platform: auto, sim or xen");
        return 0;
    case OPT_SIM_DIR:
        cfg->sim_dir = arg;
        return 0;
    case OPT_AUDIT:
        cfg->audit_path = arg;
        return 0;
    case OPT_POLICY:
        cfg->policy_path = arg;
        return 0;
    case OPT_ORDER:
        if (!pvc_parse_uint(arg, BACKD_MIN_ORDER, PVC_MAX_RING_ORDER, &v))
            return pvc_parse_fail(err, errlen, "--max-page-order: %u..%u",
                        BACKD_MIN_ORDER, PVC_MAX_RING_ORDER);
        cfg->max_page_order = (unsigned)v;
        return 0;
    case OPT_SOCKETS:
        if (!pvc_parse_uint(arg, 1, BACKD_MAX_MAX_SOCKETS, &v))
            return pvc_parse_fail(err, errlen, "--max-sockets: 1..%u",
                        BACKD_MAX_MAX_SOCKETS);
        cfg->max_sockets = (unsigned)v;
        return 0;
    case OPT_EXT:
        if (!parse_ext(arg, &cfg->ext))
            return pvc_parse_fail(err, errlen, "--ext: all, none or a list of: "
                        "ipv6,shutdown,sockname,sockopt,accept-addr,"
                        "bind-connect,waiting");
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

int backd_parse_args(int argc, char **argv, struct backd_cfg *cfg,
                     char *err, size_t errlen)
{
    *cfg = (struct backd_cfg){
        .platform = PVC_PLATFORM_AUTO,
        .max_page_order = BACKD_DEFAULT_ORDER,
        .max_sockets = BACKD_DEFAULT_MAX_SOCKETS,
        .ext = PVC_EXT_ALL,
        .ready_fd = -1,
    };
    static const struct pvc_cmdline cl = {
        .opts = long_opts,
        .help_opt = OPT_HELP,
        .usage = backd_usage,
        .apply = apply_opt,
    };
    return pvc_parse_cmdline(&cl, argc, argv, cfg, err, errlen);
}
