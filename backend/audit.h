/*
 * The audit log: one JSON object per line, written with one write() per
 * record to a file opened O_APPEND (so records of several daemons never
 * interleave), or to stderr.  docs/backend.md describes the records.
 * A NULL struct audit * means auditing is off: every function accepts it.
 */
#ifndef BACKD_AUDIT_H
#define BACKD_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct audit;

/* path "-" means stderr.  Returns NULL with errno on failure. */
struct audit *audit_open(const char *path);
void audit_close(struct audit *a);
/* Tests: a fixed clock instead of CLOCK_REALTIME. */
void audit_set_clock(struct audit *a, void (*now)(struct timespec *ts));

struct audit_cmd {
    unsigned dom, dev;
    const char *cmd;     /* "connect" ...; NULL: unknown, cmd_num logged */
    uint32_t cmd_num;
    uint32_t req_id;
    uint64_t id;
    const char *addr;    /* NULL: none */
    bool has_id_new;     /* ACCEPT */
    uint64_t id_new;
    const char *detail;  /* e.g. an option name; NULL: none */
    const char *rule;    /* the policy rule that decided; NULL: none */
    int32_t ret;
};

void audit_command(struct audit *a, const struct audit_cmd *c);
void audit_sock_close(struct audit *a, unsigned dom, unsigned dev,
                      uint64_t id, uint64_t bytes_in, uint64_t bytes_out);
void audit_device(struct audit *a, unsigned dom, unsigned dev,
                  bool connected);
/* has_id false: a device-level violation (command ring). */
void audit_violation(struct audit *a, unsigned dom, unsigned dev,
                     bool has_id, uint64_t id, const char *what);

/* ---- formatting helpers, exposed for the unit tests ---------------- */

/* "2026-11-23T12:00:00.123456Z"; buf needs 28 bytes. */
char *audit_format_ts(const struct timespec *ts, char *buf, size_t len);
/* Linux's name for a positive errno ("ECONNREFUSED", "ENOTSUPP" for 524),
 * or "E<n>" for a number without one. */
const char *audit_errname(int err, char *buf, size_t len);

/* A JSON line under construction; a record that would not fit is cut at
 * a field boundary and marked "truncated":true, never left malformed. */
#define JLINE_MAX 768u
struct jline {
    char buf[JLINE_MAX];
    size_t len;
    bool full;
};

void jl_begin(struct jline *j, const struct timespec *ts);
void jl_str(struct jline *j, const char *key, const char *val);
void jl_u64(struct jline *j, const char *key, uint64_t val);
void jl_i64(struct jline *j, const char *key, int64_t val);
/* Closes the object and appends '\n'; returns the line's length. */
size_t jl_end(struct jline *j);

#endif
