/*
 * Assertions shared by the end-to-end tests: that a domain is served
 * (a full echo exchange through a fresh frontend), that the audit log
 * holds a socket's true byte counts, and that it accounts for every
 * response a test frontend received.
 */
#ifndef TEST_CHECKS_H
#define TEST_CHECKS_H

#include <stdint.h>
#include <string.h>

/* Assert that a command returned want, naming both errnos otherwise. */
#define CHECK_RET(expr, want)                                              \
    do {                                                                   \
        long got_ = (long)(expr), want_ = (long)(want);                    \
        cr_assert_eq(got_, want_, "%s = %ld (%s), expected %ld (%s)",      \
                     #expr, got_, got_ < 0 ? strerror((int)-got_) : "ok",  \
                     want_, want_ < 0 ? strerror((int)-want_) : "ok");     \
    } while (0)

struct harness;
struct tf;

#define CHECK_AUDIT_WAIT_MS 5000

/* The audit log's name for command cmd ("connect", ...; "unknown"). */
const char *check_cmd_name(uint32_t cmd);

/* Open a frontend for domid, connect to a fresh echo server, exchange
 * 64 KiB both ways, release, close; assert every step and the socket's
 * audit record. */
void check_domain_serves(struct harness *h, int domid);
/* The same through an open frontend (its journal is checked too). */
void check_tf_serves(struct harness *h, struct tf *tf);

/* Wait for the close record of socket id of domain dom and assert its
 * byte counts (in: host to guest, out: guest to host). */
void check_close_record(struct harness *h, int dom, uint64_t id,
                        uint64_t bytes_in, uint64_t bytes_out);

/* Every response tf received has one audit record of its domain with
 * the same req_id, command and ret (and errno name when ret < 0). */
void check_audit_journal(struct harness *h, const struct tf *tf);

#endif
