/* The audit log: see audit.h. */
#include "audit.h"

#include "pvc/log.h"
#include "pvc/wire.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct audit {
    int fd;
    bool own_fd;     /* false for stderr */
    bool write_failed; /* logged once */
    void (*now)(struct timespec *ts);
};

static void realtime_now(struct timespec *ts)
{
    clock_gettime(CLOCK_REALTIME, ts);
}

struct audit *audit_open(const char *path)
{
    struct audit *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->now = realtime_now;
    if (!strcmp(path, "-")) {
        a->fd = STDERR_FILENO;
        return a;
    }
    /* O_APPEND: each record is one write at the end of the file, even if
     * another daemon or a log rotation shares it. */
    a->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (a->fd < 0) {
        int saved = errno;
        free(a);
        errno = saved;
        return NULL;
    }
    a->own_fd = true;
    return a;
}

void audit_close(struct audit *a)
{
    if (!a)
        return;
    if (a->own_fd)
        close(a->fd);
    free(a);
}

void audit_set_clock(struct audit *a, void (*now)(struct timespec *ts))
{
    a->now = now;
}

/* ---- formatting ---------------------------------------------------- */

char *audit_format_ts(const struct timespec *ts, char *buf, size_t len)
{
    struct tm tm;
    char date[24];
    time_t secs = ts->tv_sec;
    gmtime_r(&secs, &tm);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%06ldZ", date, (long)(ts->tv_nsec / 1000));
    return buf;
}

const char *audit_errname(int err, char *buf, size_t len)
{
    if (err == PVC_ENOTSUPP)
        return "ENOTSUPP"; /* Linux's kernel-internal value, see wire.h */
    const char *name = strerrorname_np(err);
    if (name)
        return name;
    snprintf(buf, len, "E%d", err);
    return buf;
}

/* Append raw bytes if they fit, leaving room for the closing
 * ",\"truncated\":true}\n"; otherwise mark the line full. */
#define JL_RESERVE 20u
static bool jl_fits(struct jline *j, size_t n)
{
    if (j->full || j->len + n + JL_RESERVE > sizeof(j->buf)) {
        j->full = true;
        return false;
    }
    return true;
}

/* The JSON string literal of s (quotes included) into out, or 0 if it
 * does not fit in outlen bytes. */
static size_t json_quote(const char *s, char *out, size_t outlen)
{
    size_t n = 0;
#define PUT(c)                 \
    do {                       \
        if (n + 1 >= outlen)   \
            return 0;          \
        out[n++] = (c);        \
    } while (0)
    PUT('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            PUT('\\');
            PUT((char)c);
        } else if (c < 0x20 || c == 0x7f) {
            char esc[7];
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            for (int i = 0; esc[i]; i++)
                PUT(esc[i]);
        } else {
            /* Bytes >= 0x80 pass through: every string we log is ours
             * (names, formatted addresses), so it is ASCII. */
            PUT((char)c);
        }
    }
    PUT('"');
#undef PUT
    out[n] = '\0';
    return n;
}

static void jl_field(struct jline *j, const char *key, const char *value_json)
{
    char qkey[64];
    size_t klen = json_quote(key, qkey, sizeof(qkey));
    size_t vlen = strlen(value_json);
    if (!klen || !jl_fits(j, 1 + klen + 1 + vlen))
        return;
    j->len += (size_t)sprintf(j->buf + j->len, ",%s:%s", qkey, value_json);
}

void jl_begin(struct jline *j, const struct timespec *ts)
{
    char when[40];
    j->full = false;
    j->len = (size_t)snprintf(j->buf, sizeof(j->buf), "{\"ts\":\"%s\"",
                              audit_format_ts(ts, when, sizeof(when)));
}

void jl_str(struct jline *j, const char *key, const char *val)
{
    char quoted[JLINE_MAX];
    if (!json_quote(val, quoted, sizeof(quoted))) {
        j->full = true;
        return;
    }
    jl_field(j, key, quoted);
}

void jl_u64(struct jline *j, const char *key, uint64_t val)
{
    char num[24];
    snprintf(num, sizeof(num), "%" PRIu64, val);
    jl_field(j, key, num);
}

void jl_i64(struct jline *j, const char *key, int64_t val)
{
    char num[24];
    snprintf(num, sizeof(num), "%" PRId64, val);
    jl_field(j, key, num);
}

size_t jl_end(struct jline *j)
{
    /* JL_RESERVE kept room for this whatever happened before. */
    j->len += (size_t)sprintf(j->buf + j->len, "%s}\n",
                              j->full ? ",\"truncated\":true" : "");
    return j->len;
}

/* ---- records ------------------------------------------------------- */

static void audit_begin(struct audit *a, struct jline *j, unsigned dom,
                        unsigned dev)
{
    struct timespec ts;
    a->now(&ts);
    jl_begin(j, &ts);
    jl_u64(j, "dom", dom);
    jl_u64(j, "dev", dev);
}

static void audit_emit(struct audit *a, struct jline *j)
{
    size_t len = jl_end(j);
    ssize_t n = write(a->fd, j->buf, len);
    if (n != (ssize_t)len && !a->write_failed) {
        a->write_failed = true;
        pvc_err("audit log write failed: %s",
                n < 0 ? strerror(errno) : "short write");
    }
}

void audit_command(struct audit *a, const struct audit_cmd *c)
{
    struct jline j;
    if (!a)
        return;
    audit_begin(a, &j, c->dom, c->dev);
    if (c->cmd) {
        jl_str(&j, "cmd", c->cmd);
    } else {
        jl_str(&j, "cmd", "unknown");
        jl_u64(&j, "cmd_num", c->cmd_num);
    }
    jl_u64(&j, "req_id", c->req_id);
    jl_u64(&j, "id", c->id);
    if (c->has_id_new)
        jl_u64(&j, "id_new", c->id_new);
    if (c->addr)
        jl_str(&j, "addr", c->addr);
    if (c->detail)
        jl_str(&j, "detail", c->detail);
    if (c->rule)
        jl_str(&j, "rule", c->rule);
    jl_i64(&j, "ret", c->ret);
    if (c->ret < 0) {
        char buf[16];
        jl_str(&j, "err", audit_errname(-c->ret, buf, sizeof(buf)));
    }
    audit_emit(a, &j);
}

void audit_sock_close(struct audit *a, unsigned dom, unsigned dev,
                      uint64_t id, uint64_t bytes_in, uint64_t bytes_out)
{
    struct jline j;
    if (!a)
        return;
    audit_begin(a, &j, dom, dev);
    jl_str(&j, "event", "close");
    jl_u64(&j, "id", id);
    jl_u64(&j, "bytes_in", bytes_in);
    jl_u64(&j, "bytes_out", bytes_out);
    audit_emit(a, &j);
}

void audit_device(struct audit *a, unsigned dom, unsigned dev,
                  bool connected)
{
    struct jline j;
    if (!a)
        return;
    audit_begin(a, &j, dom, dev);
    jl_str(&j, "event", connected ? "device-connect" : "device-disconnect");
    audit_emit(a, &j);
}

void audit_violation(struct audit *a, unsigned dom, unsigned dev,
                     bool has_id, uint64_t id, const char *what)
{
    struct jline j;
    if (!a)
        return;
    audit_begin(a, &j, dom, dev);
    jl_str(&j, "event", "violation");
    if (has_id)
        jl_u64(&j, "id", id);
    jl_str(&j, "what", what);
    audit_emit(a, &j);
}
