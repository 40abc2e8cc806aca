/* Strict value parsing shared by the daemons' option parsers. */
#include "pvc/parse.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

bool pvc_parse_uint(const char *s, unsigned long min, unsigned long max,
                    unsigned long *out)
{
    char *end;
    if (!*s || *s == '-' || *s == '+')
        return false;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool pvc_parse_platform(const char *s, enum pvc_platform_kind *out)
{
    static const struct {
        const char *name;
        enum pvc_platform_kind kind;
    } kinds[] = { { "auto", PVC_PLATFORM_AUTO },
                  { "sim", PVC_PLATFORM_SIM },
                  { "xen", PVC_PLATFORM_XEN } };
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (!strcmp(s, kinds[i].name)) {
            *out = kinds[i].kind;
            return true;
        }
    }
    return false;
}

int pvc_parse_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

int pvc_parse_cmdline(const struct pvc_cmdline *cl, int argc, char **argv,
                      void *cfg, char *err, size_t errlen)
{
    optind = 0; /* full re-initialisation */
    opterr = 0; /* errors are reported through err */
    int opt;
    while ((opt = getopt_long(argc, argv, "", cl->opts, NULL)) != -1) {
        if (opt == cl->help_opt) {
            cl->usage(argv[0], stdout);
            return 1;
        }
        if (opt == '?' || opt == ':')
            return pvc_parse_fail(err, errlen, "bad option %s (see --help)",
                                  argv[optind - 1]);
        if (cl->apply(opt, optarg, cfg, err, errlen) < 0)
            return -1;
    }
    if (optind < argc)
        return pvc_parse_fail(err, errlen, "unexpected argument %s",
                              argv[optind]);
    return 0;
}
