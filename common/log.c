/* Diagnostics: see include/pvc/log.h. */
#include "pvc/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char *program_invocation_short_name;

static int log_level = -1;

void pvc_log_set_level(enum pvc_log_level level)
{
    log_level = level;
}

static int level_from_env(void)
{
    const char *s = getenv("PVC_LOG");
    if (!s)
        return PVC_LOG_INFO;
    if (!strcmp(s, "debug"))
        return PVC_LOG_DEBUG;
    if (!strcmp(s, "warn"))
        return PVC_LOG_WARN;
    if (!strcmp(s, "err"))
        return PVC_LOG_ERR;
    return PVC_LOG_INFO;
}

void pvc_log(enum pvc_log_level level, const char *fmt, ...)
{
    static const char *const names[] = { "error", "warning", "info", "debug" };
    int saved = errno;
    if (log_level < 0)
        log_level = level_from_env();
    if ((int)level > log_level) {
        errno = saved;
        return;
    }
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(line, sizeof(line), "%s: %s: ",
                     program_invocation_short_name, names[level]);
    if (n > 0 && (size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    /* One write per message, so lines from several processes do not mix. */
    fprintf(stderr, "%s\n", line);
    errno = saved;
}
