/* Strict parsing of command-line and configuration values. */
#ifndef PVC_PARSE_H
#define PVC_PARSE_H

#include "pvc/platform.h"

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* A decimal number in [min, max] and nothing else (no sign, no blanks). */
bool pvc_parse_uint(const char *s, unsigned long min, unsigned long max,
                    unsigned long *out);
/* "auto", "sim" or "xen". */
bool pvc_parse_platform(const char *s, enum pvc_platform_kind *out);

/* Format a message into err (size errlen) and return -1: option
 * parsers report errors this way instead of printing them. */
int pvc_parse_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A daemon's command line: long options only, no operands. */
struct pvc_cmdline {
    const struct option *opts;
    int help_opt; /* the value of --help in opts */
    void (*usage)(const char *prog, FILE *out);
    /* Apply one option; 0, or -1 with a message in err. */
    int (*apply)(int opt, const char *arg, void *cfg, char *err,
                 size_t errlen);
};

/* Parse argv with cl into cfg.  Returns 0; 1 if --help was asked (usage
 * printed to stdout); -1 with a message in err on a bad command line.
 * Callable more than once (getopt is fully re-initialised). */
int pvc_parse_cmdline(const struct pvc_cmdline *cl, int argc, char **argv,
                      void *cfg, char *err, size_t errlen);

#endif
