/*
 * The shim's settings from the environment, read once when the library
 * loads.  Programs clear or rebuild their environment after start-up
 * (nginx's workers keep only TZ, daemons scrub it before fork), yet their
 * sockets must keep reaching the same guest daemon: so the values are
 * copied at load time, never looked up again.  (A constructor that only
 * copies strings: no malloc, no threads, safe before main.)
 */
#include "shim.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static char frontd_sock[PATH_MAX];
static bool fallback_native;
static bool log_wanted;
static atomic_int captured;

static void copy_setting(char *dst, size_t len, const char *name)
{
    const char *v = getenv(name);
    if (v && *v && strlen(v) < len)
        strcpy(dst, v);
}

__attribute__((constructor)) static void shim_env_capture(void)
{
    if (atomic_exchange(&captured, 1))
        return;
    copy_setting(frontd_sock, sizeof(frontd_sock), "PVC_FRONTD_SOCK");
    const char *fb = getenv("PVC_FALLBACK");
    fallback_native = fb && !strcmp(fb, "native");
    const char *v = getenv("PVC_SHIM_LOG");
    const char *l = getenv("PVC_LOG");
    log_wanted = (v && *v && strcmp(v, "0")) || (l && !strcmp(l, "debug"));
}

const char *shim_env_frontd_sock(void)
{
    shim_env_capture();
    return frontd_sock[0] ? frontd_sock : PVC_FRONTD_DEFAULT_SOCK;
}

bool shim_env_fallback_native(void)
{
    shim_env_capture();
    return fallback_native;
}

bool shim_env_log(void)
{
    shim_env_capture();
    return log_wanted;
}
