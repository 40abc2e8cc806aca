/* Strict value parsing shared by the daemons' option parsers. */
#include "pvc/parse.h"

#include <errno.h>
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
