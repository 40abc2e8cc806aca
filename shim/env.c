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
#include <unistd.h>

static char frontd_sock[PATH_MAX];
static bool fallback_native;
static bool log_wanted;
static bool no_inherit;
static atomic_int captured;

/* For exec'd programs (exec.c): LD_PRELOAD and every PVC_* setting as
 * "NAME=value" strings, put back into an environment that lost them. */
#define SETTINGS_MAX 32
#define SETTINGS_BYTES 8192
static char preload[2 * PATH_MAX];
static char settings_buf[SETTINGS_BYTES];
static const char *settings[SETTINGS_MAX + 1];

/* Also the sanitizer runtime's options in a sanitizer build: a program
 * exec'd with the shim (and libasan) put back needs them as much. */
static bool setting_kept(const char *entry)
{
    if (!strncmp(entry, "PVC_", 4))
        return true;
#if defined(__SANITIZE_ADDRESS__)
    return !strncmp(entry, "ASAN_OPTIONS=", 13) ||
           !strncmp(entry, "LSAN_OPTIONS=", 13) ||
           !strncmp(entry, "UBSAN_OPTIONS=", 14);
#else
    return false;
#endif
}

static void copy_settings(void)
{
    size_t used = 0, n = 0;
    for (char **e = environ; e && *e && n < SETTINGS_MAX; e++) {
        size_t len = strlen(*e) + 1;
        if (!setting_kept(*e) || !strchr(*e, '=') ||
            len > SETTINGS_BYTES - used)
            continue;
        memcpy(settings_buf + used, *e, len);
        settings[n++] = settings_buf + used;
        used += len;
    }
    settings[n] = NULL;
}

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
    const char *ni = getenv("PVC_NO_INHERIT");
    no_inherit = ni && *ni && strcmp(ni, "0");
    copy_setting(preload, sizeof(preload), "LD_PRELOAD");
    copy_settings();
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

bool shim_env_no_inherit(void)
{
    shim_env_capture();
    return no_inherit;
}

const char *shim_env_preload(void)
{
    shim_env_capture();
    return preload[0] ? preload : NULL;
}

const char *const *shim_env_settings(void)
{
    shim_env_capture();
    return settings;
}
