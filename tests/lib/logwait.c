/* Servers that log when they are ready: see logwait.h. */
#include "logwait.h"

#include "hostnet.h"

#include <criterion/criterion.h>
#include <string.h>

void lw_start(struct rp_env *e, const char *const opts[],
              const char *const prog[], const char *ready,
              struct rp_child *out, int timeout_ms)
{
    /* sh -c 'exec "$@" 2>&1' sh PROG...: the program itself replaces
     * the shell, with stderr on the pipe. */
    const char *wrapped[RP_MAX_ARGS] = { "/bin/sh", "-c", "exec \"$@\" 2>&1",
                                         "sh" };
    size_t n = 4;
    for (size_t i = 0; prog[i]; i++) {
        cr_assert(n < RP_MAX_ARGS - 1);
        wrapped[n++] = prog[i];
    }
    wrapped[n] = NULL;
    const char *argv[RP_MAX_ARGS];
    rp_shim_argv(e, true, opts, wrapped, argv);
    rp_spawn(out, argv, NULL, NULL, NULL);
    char line[512] = "";
    int64_t deadline = hn_now_ms() + timeout_ms;
    for (;;) {
        int left = (int)(deadline - hn_now_ms());
        bool got = left > 0 && rp_read_line(out, line, sizeof(line), left);
        cr_assert(got, "%s did not say \"%s\" (last line: \"%s\")", prog[0],
                  ready, line);
        if (strstr(line, ready))
            return;
    }
}
