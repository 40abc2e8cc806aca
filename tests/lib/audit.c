/* The backend's audit log, read back by tests: see audit.h. */
#include "audit.h"

#include "hostnet.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

/* ---- a minimal JSON walker ------------------------------------------ */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Parse the string starting at p (on its opening quote).  Decodes into
 * out (if not NULL, up to len - 1 bytes; *fits says whether it all fit;
 * \u escapes outside ASCII decode as '?').  Returns the position after
 * the closing quote, or NULL if malformed. */
static const char *parse_string(const char *p, char *out, size_t len,
                                bool *fits)
{
    size_t n = 0;
    bool ok = true;
    if (*p++ != '"')
        return NULL;
    for (;;) {
        char c = *p++;
        if (c == '\0' || (unsigned char)c < 0x20)
            return NULL;
        if (c == '"')
            break;
        if (c == '\\') {
            char e = *p++;
            const char *map = strchr("\"\\/bfnrt", e);
            if (!e || !map) {
                if (e != 'u')
                    return NULL;
                int v = 0;
                for (int i = 0; i < 4; i++) {
                    int h = hexval(*p++);
                    if (h < 0)
                        return NULL;
                    v = v * 16 + h;
                }
                c = v < 0x80 ? (char)v : '?';
            } else {
                c = "\"\\/\b\f\n\r\t"[map - "\"\\/bfnrt"];
            }
        }
        if (out && n + 1 < len)
            out[n++] = c;
        else
            ok = false;
    }
    if (out && len)
        out[n] = '\0';
    if (fits)
        *fits = ok;
    return p;
}

static const char *skip_value(const char *p, int depth);

/* Skip a number: JSON's grammar, loosely (digits, sign, '.', exponent). */
static const char *skip_number(const char *p)
{
    const char *start = p;
    if (*p == '-')
        p++;
    if (*p < '0' || *p > '9')
        return NULL;
    while ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' ||
           *p == 'E' || *p == '+' || *p == '-')
        p++;
    return p > start ? p : NULL;
}

/* Skip an object or array starting at p (on its bracket). */
static const char *skip_container(const char *p, int depth)
{
    char close = *p == '{' ? '}' : ']';
    bool object = *p == '{';
    p = skip_ws(p + 1);
    if (*p == close)
        return p + 1;
    for (;;) {
        if (object) {
            p = parse_string(p, NULL, 0, NULL);
            if (!p)
                return NULL;
            p = skip_ws(p);
            if (*p++ != ':')
                return NULL;
        }
        p = skip_value(skip_ws(p), depth + 1);
        if (!p)
            return NULL;
        p = skip_ws(p);
        if (*p == close)
            return p + 1;
        if (*p++ != ',')
            return NULL;
        p = skip_ws(p);
    }
}

static const char *skip_value(const char *p, int depth)
{
    if (depth > 16)
        return NULL;
    switch (*p) {
    case '"':
        return parse_string(p, NULL, 0, NULL);
    case '{':
    case '[':
        return skip_container(p, depth);
    case 't':
        return strncmp(p, "true", 4) ? NULL : p + 4;
    case 'f':
        return strncmp(p, "false", 5) ? NULL : p + 5;
    case 'n':
        return strncmp(p, "null", 4) ? NULL : p + 4;
    default:
        return skip_number(p);
    }
}

/* The value of key in the top-level object obj, or NULL. */
static const char *find_value(const char *obj, const char *key)
{
    const char *p = skip_ws(obj);
    if (*p++ != '{')
        return NULL;
    p = skip_ws(p);
    if (*p == '}')
        return NULL;
    for (;;) {
        char name[64];
        bool fits;
        p = parse_string(p, name, sizeof(name), &fits);
        if (!p)
            return NULL;
        p = skip_ws(p);
        if (*p++ != ':')
            return NULL;
        p = skip_ws(p);
        if (fits && !strcmp(name, key))
            return p;
        p = skip_value(p, 1);
        if (!p)
            return NULL;
        p = skip_ws(p);
        if (*p++ != ',')
            return NULL;
        p = skip_ws(p);
    }
}

bool json_str(const char *obj, const char *key, char *out, size_t len)
{
    const char *v = find_value(obj, key);
    bool fits;
    return v && *v == '"' && parse_string(v, out, len, &fits) && fits;
}

bool json_int(const char *obj, const char *key, long long *out)
{
    const char *v = find_value(obj, key);
    if (!v || (*v != '-' && (*v < '0' || *v > '9')))
        return false;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    /* An integer, not the integer part of 1.5 or 1e3. */
    if (errno || *end == '.' || *end == 'e' || *end == 'E')
        return false;
    *out = x;
    return true;
}

bool json_valid_object(const char *obj)
{
    const char *p = skip_ws(obj);
    if (*p != '{')
        return false;
    p = skip_value(p, 0);
    return p && *skip_ws(p) == '\0';
}

/* ---- the log --------------------------------------------------------- */

int audit_load(struct audit *a, const char *path)
{
    a->lines = NULL;
    a->n = 0;
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    char *line = NULL;
    size_t cap = 0, alloc = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        /* A line still being written has no newline yet: not a record. */
        if (line[len - 1] != '\n')
            break;
        line[len - 1] = '\0';
        if (a->n == alloc) {
            alloc = alloc ? 2 * alloc : 64;
            char **grown = realloc(a->lines, alloc * sizeof(*grown));
            if (!grown)
                abort();
            a->lines = grown;
        }
        a->lines[a->n] = strdup(line);
        if (!a->lines[a->n])
            abort();
        a->n++;
    }
    free(line);
    fclose(f);
    return 0;
}

void audit_free(struct audit *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->lines[i]);
    free(a->lines);
    a->lines = NULL;
    a->n = 0;
}

static bool str_field_is(const char *line, const char *key, const char *want)
{
    char val[64];
    return json_str(line, key, val, sizeof(val)) && !strcmp(val, want);
}

static bool int_field_is(const char *line, const char *key, long long want)
{
    long long v;
    return json_int(line, key, &v) && v == want;
}

bool audit_match(const char *line, const struct audit_q *q)
{
    return (!q->cmd || str_field_is(line, "cmd", q->cmd)) &&
           (!q->event || str_field_is(line, "event", q->event)) &&
           (!q->dom || int_field_is(line, "dom", q->dom)) &&
           (!q->id || int_field_is(line, "id", q->id)) &&
           (!q->req_id || int_field_is(line, "req_id", q->req_id));
}

const char *audit_next(const struct audit *a, const struct audit_q *q,
                       size_t *pos)
{
    for (size_t i = *pos; i < a->n; i++) {
        if (audit_match(a->lines[i], q)) {
            *pos = i + 1;
            return a->lines[i];
        }
    }
    *pos = a->n;
    return NULL;
}

const char *audit_first(const struct audit *a, const struct audit_q *q)
{
    size_t pos = 0;
    return audit_next(a, q, &pos);
}

size_t audit_count(const struct audit *a, const struct audit_q *q)
{
    size_t n = 0, pos = 0;
    while (audit_next(a, q, &pos))
        n++;
    return n;
}

static size_t count_in_file(const char *path, const struct audit_q *q)
{
    struct audit a;
    if (audit_load(&a, path) < 0)
        return 0;
    size_t n = audit_count(&a, q);
    audit_free(&a);
    return n;
}

size_t audit_wait(const char *path, const struct audit_q *q, size_t count,
                  int timeout_ms)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (in < 0)
        return count_in_file(path, q);
    /* Watch before the first read, so no write can slip in between. */
    inotify_add_watch(in, dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO);
    int64_t deadline = hn_now_ms() + timeout_ms;
    size_t n;
    while ((n = count_in_file(path, q)) < count) {
        int64_t left = deadline - hn_now_ms();
        if (left <= 0)
            break;
        struct pollfd p = { .fd = in, .events = POLLIN };
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        char buf[4096];
        while (read(in, buf, sizeof(buf)) > 0)
            ;
    }
    close(in);
    return n;
}

/* ---- records about one port, byte counts ------------------------------ */

/* Does the record's "addr" ("127.0.0.1:80", "[::1]:80") name port? */
static bool addr_has_port(const char *line, unsigned port)
{
    char addr[96], suffix[16];
    if (!json_str(line, "addr", addr, sizeof(addr)))
        return false;
    int n = snprintf(suffix, sizeof(suffix), ":%u", port);
    size_t len = strlen(addr);
    return len > (size_t)n && !strcmp(addr + len - (size_t)n, suffix);
}

size_t audit_count_port(const struct audit *a, const struct audit_q *q,
                        unsigned port, bool succeeded)
{
    size_t n = 0, pos = 0;
    const char *line;
    long long ret;
    while ((line = audit_next(a, q, &pos)))
        if (addr_has_port(line, port) &&
            (!succeeded || (json_int(line, "ret", &ret) && ret == 0)))
            n++;
    return n;
}

size_t audit_count_min(const struct audit *a, const struct audit_q *q,
                       const char *key, long long min)
{
    size_t n = 0, pos = 0;
    const char *line;
    long long v;
    while ((line = audit_next(a, q, &pos)))
        if (json_int(line, key, &v) && v >= min)
            n++;
    return n;
}

bool audit_wait_closed(const char *path, long long dom, int timeout_ms)
{
    struct audit a;
    if (audit_load(&a, path) < 0)
        return false;
    struct audit_q created = { .cmd = "socket", .dom = dom };
    struct audit_q accepted = { .cmd = "accept", .dom = dom };
    size_t opened = audit_count_min(&a, &created, "ret", 0) +
                    audit_count_min(&a, &accepted, "ret", 0);
    audit_free(&a);
    struct audit_q closes = { .event = "close", .dom = dom };
    return audit_wait(path, &closes, opened, timeout_ms) >= opened;
}
