/* Strict parsing of command-line and configuration values. */
#ifndef PVC_PARSE_H
#define PVC_PARSE_H

#include "pvc/platform.h"

#include <stdbool.h>

/* A decimal number in [min, max] and nothing else (no sign, no blanks). */
bool pvc_parse_uint(const char *s, unsigned long min, unsigned long max,
                    unsigned long *out);
/* "auto", "sim" or "xen". */
bool pvc_parse_platform(const char *s, enum pvc_platform_kind *out);

#endif
