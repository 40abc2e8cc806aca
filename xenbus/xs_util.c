/* Xenstore helpers: see xs_util.h. */
#include "xs_util.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int xb_path(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, PVC_XB_PATH_MAX, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= PVC_XB_PATH_MAX) {
        buf[0] = '\0';
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

static char *read_node(struct xs_handle *xs, xs_transaction_t t,
                       const char *dir, const char *key)
{
    char path[PVC_XB_PATH_MAX];
    if (xb_path(path, "%s/%s", dir, key) < 0)
        return NULL;
    unsigned int len;
    char *val = xs_read(xs, t, path, &len);
    if (val && strlen(val) != len) {
        /* An embedded NUL: not a value any of our keys can hold. */
        free(val);
        errno = EINVAL;
        return NULL;
    }
    return val;
}

char *xb_read_str(struct xs_handle *xs, xs_transaction_t t, const char *dir,
                  const char *key)
{
    return read_node(xs, t, dir, key);
}

/* Strict decimal: digits only, no sign, no blanks, no empty string. */
static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    if (!*s || strlen(s) > 20)
        return -1;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    errno = 0;
    unsigned long v = strtoul(s, NULL, 10);
    if (errno == ERANGE || v > max)
        return -1;
    *out = v;
    return 0;
}

int xb_read_uint(struct xs_handle *xs, xs_transaction_t t, const char *dir,
                 const char *key, unsigned long max, unsigned long *out)
{
    char *val = read_node(xs, t, dir, key);
    if (!val)
        return -1;
    int rc = parse_uint(val, max, out);
    free(val);
    if (rc < 0)
        errno = EINVAL;
    return rc;
}

int xb_read_state(struct xs_handle *xs, xs_transaction_t t, const char *dir)
{
    unsigned long state;
    if (xb_read_uint(xs, t, dir, "state", XenbusStateReconfigured, &state) < 0)
        return -1;
    return (int)state;
}

bool xb_exists(struct xs_handle *xs, xs_transaction_t t, const char *path)
{
    unsigned int len;
    char *val = xs_read(xs, t, path, &len);
    free(val);
    return val != NULL;
}

bool xb_write_str(struct xs_handle *xs, xs_transaction_t t, const char *dir,
                  const char *key, const char *value)
{
    char path[PVC_XB_PATH_MAX];
    if (xb_path(path, "%s/%s", dir, key) < 0)
        return false;
    return xs_write(xs, t, path, value, strlen(value));
}

bool xb_write_uint(struct xs_handle *xs, xs_transaction_t t, const char *dir,
                   const char *key, unsigned long value)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%lu", value);
    return xb_write_str(xs, t, dir, key, buf);
}

int xb_switch_state(struct xs_handle *xs, const char *dir, int state)
{
    for (int attempt = 0; attempt < XB_TXN_RETRIES; attempt++) {
        xs_transaction_t t = xs_transaction_start(xs);
        if (t == XBT_NULL)
            return -1;
        char path[PVC_XB_PATH_MAX];
        if (xb_path(path, "%s/state", dir) < 0 || !xb_exists(xs, t, path)) {
            int err = errno == ENAMETOOLONG ? ENAMETOOLONG : ENOENT;
            xs_transaction_end(xs, t, true);
            errno = err;
            return -1;
        }
        if (!xb_write_uint(xs, t, dir, "state", (unsigned long)state)) {
            int err = errno;
            xs_transaction_end(xs, t, true);
            errno = err;
            return -1;
        }
        if (xs_transaction_end(xs, t, false))
            return 0;
        if (errno != EAGAIN)
            return -1;
    }
    errno = EAGAIN;
    return -1;
}

void xb_drain_watches(struct xs_handle *xs)
{
    char **ev;
    while ((ev = xs_check_watch(xs)))
        free(ev);
}

int64_t xb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int xb_wait_watch(struct xs_handle *xs, int64_t deadline_ms)
{
    struct pollfd pfd = { .fd = xs_fileno(xs), .events = POLLIN };
    if (pfd.fd < 0)
        return -1;
    for (;;) {
        int64_t left = deadline_ms - xb_now_ms();
        if (left <= 0)
            return 0;
        int n = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}
