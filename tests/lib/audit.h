/*
 * Reading pvcalls-backd's audit log in tests: one JSON object per line,
 * e.g. {"ts":..,"dom":1,"dev":0,"cmd":"connect","req_id":5,"id":7,
 * "addr":"127.0.0.1:8080","ret":0} or {"event":"close","dom":1,"id":7,
 * "bytes_in":N,"bytes_out":M}.
 *
 * The JSON reader is deliberately small but honest: it walks the
 * top-level object token by token (strings with escapes, numbers,
 * literals, nested values skipped), so a key is only ever found as a
 * key of the record itself, never inside a string value.
 */
#ifndef TEST_AUDIT_H
#define TEST_AUDIT_H

#include <stdbool.h>
#include <stddef.h>

/* Find key in the top-level JSON object obj.  json_str decodes a string
 * value (false if absent, not a string, or longer than len - 1);
 * json_int reads an integer value (false if absent or not an integer). */
bool json_str(const char *obj, const char *key, char *out, size_t len);
bool json_int(const char *obj, const char *key, long long *out);
/* Is obj one well-formed JSON object (and nothing else)? */
bool json_valid_object(const char *obj);

struct audit {
    char **lines;
    size_t n;
};

/* Load every complete line of the file (a missing file gives 0 lines).
 * Returns 0 or -errno. */
int audit_load(struct audit *a, const char *path);
void audit_free(struct audit *a);

/* A record filter; each field left 0/NULL matches anything (tests never
 * use domain 0, request id 0 or socket id 0 for what they look up). */
struct audit_q {
    const char *cmd;   /* "connect", "release", ... */
    const char *event; /* "close", "violation", "device-connect", ... */
    long long dom;
    long long id;
    long long req_id;
};

bool audit_match(const char *line, const struct audit_q *q);
/* The first matching line at or after *pos (*pos then points past it),
 * or NULL. */
const char *audit_next(const struct audit *a, const struct audit_q *q,
                       size_t *pos);
const char *audit_first(const struct audit *a, const struct audit_q *q);
size_t audit_count(const struct audit *a, const struct audit_q *q);

/* Records matching q whose "addr" names port ("...:port"); with
 * succeeded, only those with "ret":0. */
size_t audit_count_port(const struct audit *a, const struct audit_q *q,
                        unsigned port, bool succeeded);
/* Records matching q whose integer key is at least min (e.g. close
 * records with "bytes_out" >= a file's size). */
size_t audit_count_min(const struct audit *a, const struct audit_q *q,
                       const char *key, long long min);

/* Block (inotify on the file's directory, no polling) until the file at
 * path holds at least `count` records matching q, or timeout_ms passes.
 * Returns the number found (possibly fewer). */
size_t audit_wait(const char *path, const struct audit_q *q, size_t count,
                  int timeout_ms);

/* Once the guest's programs are gone: wait until every socket domain dom
 * opened so far (socket and accept records with ret >= 0) has its close
 * record.  True if they all have within timeout_ms. */
bool audit_wait_closed(const char *path, long long dom, int timeout_ms);

#endif
