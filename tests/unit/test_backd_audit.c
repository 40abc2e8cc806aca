/*
 * pvcalls-backd's audit log (backend/audit.c): the exact records, JSON
 * escaping, truncation, and one line per record in an O_APPEND file.
 */
#include "../../backend/audit.h"
#include <unistd.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

/* From the tests' own JSON reader (tests/lib/audit.c), an independent
 * check that what we write is what the harness can read.  Declared here
 * because its header's struct audit is not ours. */
bool json_valid_object(const char *obj);
bool json_str(const char *obj, const char *key, char *out, size_t len);

static void fixed_clock(struct timespec *ts)
{
    /* 2026-11-23T12:00:00.123456Z */
    ts->tv_sec = 1795435200;
    ts->tv_nsec = 123456789;
}

static char path[64];

static struct audit *open_temp(void)
{
    strcpy(path, "/tmp/test_backd_audit.XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    struct audit *a = audit_open(path);
    cr_assert_not_null(a);
    audit_set_clock(a, fixed_clock);
    return a;
}

/* The whole file (a static buffer) and its line count; removes it. */
static char *slurp(size_t *n_lines)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    static char buf[8192];
    size_t len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = '\0';
    *n_lines = 0;
    for (size_t i = 0; i < len; i++)
        *n_lines += buf[i] == '\n';
    unlink(path);
    return buf;
}

Test(backd_audit, timestamp_format)
{
    char buf[40];
    struct timespec ts;
    fixed_clock(&ts);
    cr_assert_str_eq(audit_format_ts(&ts, buf, sizeof(buf)),
                     "2026-11-23T12:00:00.123456Z");
    ts.tv_sec = 0;
    ts.tv_nsec = 999;
    cr_assert_str_eq(audit_format_ts(&ts, buf, sizeof(buf)),
                     "1970-01-01T00:00:00.000000Z");
}

Test(backd_audit, errno_names)
{
    char buf[16];
    cr_assert_str_eq(audit_errname(ECONNREFUSED, buf, sizeof(buf)),
                     "ECONNREFUSED");
    cr_assert_str_eq(audit_errname(524, buf, sizeof(buf)), "ENOTSUPP");
    cr_assert_str_eq(audit_errname(4000, buf, sizeof(buf)), "E4000");
}

Test(backd_audit, records)
{
    struct audit *a = open_temp();
    struct audit_cmd c = { .dom = 1, .dev = 0, .cmd = "connect",
                           .req_id = 5, .id = 7, .addr = "127.0.0.1:8080",
                           .ret = 0 };
    audit_command(a, &c);
    c.ret = -ECONNREFUSED;
    audit_command(a, &c);
    struct audit_cmd acc = { .dom = 2, .dev = 1, .cmd = "accept",
                             .req_id = 9, .id = 3, .has_id_new = true,
                             .id_new = 18446744073709551615ull,
                             .addr = "[::1]:4242", .ret = 0 };
    audit_command(a, &acc);
    struct audit_cmd unk = { .dom = 1, .cmd_num = 4660, .req_id = 1,
                             .ret = -524 };
    audit_command(a, &unk);
    struct audit_cmd opt = { .dom = 1, .cmd = "setsockopt", .req_id = 2,
                             .id = 4, .detail = "TCP_NODELAY", .ret = 0 };
    audit_command(a, &opt);
    audit_sock_close(a, 1, 0, 7, 123, 456);
    audit_device(a, 3, 0, true);
    audit_device(a, 3, 0, false);
    audit_violation(a, 1, 0, true, 7, "out ring indexes");
    audit_violation(a, 1, 0, false, 0, "command ring indexes");
    audit_close(a);

    size_t n;
    const char *got = slurp(&n);
    const char *want =
        "{\"ts\":\"2026-11-23T12:00:00.123456Z\",\"dom\":1,\"dev\":0,"
        "\"cmd\":\"connect\",\"req_id\":5,\"id\":7,"
        "\"addr\":\"127.0.0.1:8080\",\"ret\":0}\n"
        "{\"ts\":\"2026-11-23T12:00:00.123456Z\",\"dom\":1,\"dev\":0,"
        "\"cmd\":\"connect\",\"req_id\":5,\"id\":7,"
        "\"addr\":\"127.0.0.1:8080\",\"ret\":-111,\"err\":\"ECONNREFUSED\"}\n"
        "{\"ts\":\"2026-11-23T12:00:00.123456Z\",\"dom\":2,\"dev\":1,"
        "\"cmd\":\"accept\",\"req_id\":9,\"id\":3,"
        "\"id_new\":18446744073709551615,\"addr\":\"[::1]:4242\",\"ret\":0}\n"
        "{\"ts\":\"2026-11-23T12:00:00.123456Z\",\"dom\":1,\"dev\":0,"
        "\"cmd\":\"unknown\",\"cmd_num\":4660,\"req_id\":1,\"id\":0,"
        "\"ret\":-524,\"err\":\"ENOTSUPP\"}\n"
        "{\"ts\":\"2026-11-23T12:00:00.123456Z\",\"dom\":1,\"dev\":0,"
        "\"cmd\":\"setsockopt\",\"req_id\":2,\"id\":4,"
        "\"detail\":\"TCP_NODELAY\",\"ret\":0}\n"
        "{\"ts\":\"2026-11-23T12:00:00.123456Z\",\"dom\":1,\"dev\":0,"
        "\"event\":\"close\",\"id\":7,\"bytes_in\":123,\"bytes_out\":456}\n"
        "{\"ts\":\"2026-11-23T12:00:00.123456Z\",\"dom\":3,\"dev\":0,"
        "\"event\":\"device-connect\"}\n"
        "{\"ts\":\"2026-11-23T12:00:00.123456Z\",\"dom\":3,\"dev\":0,"
        "\"event\":\"device-disconnect\"}\n"
        "{\"ts\":\"2026-11-23T12:00:00.123456Z\",\"dom\":1,\"dev\":0,"
        "\"event\":\"violation\",\"id\":7,\"what\":\"out ring indexes\"}\n"
        "{\"ts\":\"2026-11-23T12:00:00.123456Z\",\"dom\":1,\"dev\":0,"
        "\"event\":\"violation\",\"what\":\"command ring indexes\"}\n";
    cr_assert_str_eq(got, want);
    cr_assert_eq(n, 10);
}

Test(backd_audit, strings_are_escaped)
{
    struct audit *a = open_temp();
    audit_violation(a, 1, 0, true, 1, "q\"b\\s\nt\tc\x01" "d\x7f");
    audit_close(a);
    size_t n;
    char *line = slurp(&n);
    cr_assert_eq(n, 1);
    cr_assert(strstr(line, "\"what\":\"q\\\"b\\\\s\\u000at\\u0009c\\u0001d"
                           "\\u007f\"}"),
              "%s", line);
    line[strlen(line) - 1] = '\0';
    cr_assert(json_valid_object(line), "%s", line);
    char what[32];
    cr_assert(json_str(line, "what", what, sizeof(what)));
    cr_assert_str_eq(what, "q\"b\\s\nt\tc\x01" "d\x7f");
}

Test(backd_audit, oversized_record_stays_valid_json)
{
    struct audit *a = open_temp();
    char big[2000];
    memset(big, '"', sizeof(big) - 1); /* each escapes to two bytes */
    big[sizeof(big) - 1] = '\0';
    audit_violation(a, 1, 0, true, 1, big);
    struct audit_cmd c = { .dom = 1, .cmd = "bind", .addr = big, .ret = -1 };
    audit_command(a, &c);
    audit_close(a);
    size_t n;
    char *buf = slurp(&n);
    cr_assert_eq(n, 2, "one line per record, however long");
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        cr_assert(json_valid_object(line), "%s", line);
        cr_assert(strstr(line, "\"truncated\":true}"), "%s", line);
        cr_assert_lt(strlen(line), JLINE_MAX);
    }
}

Test(backd_audit, appends_and_null_is_off)
{
    /* A NULL log accepts every call. */
    struct audit_cmd c = { .cmd = "socket" };
    audit_command(NULL, &c);
    audit_sock_close(NULL, 1, 0, 1, 0, 0);
    audit_device(NULL, 1, 0, true);
    audit_violation(NULL, 1, 0, false, 0, "x");
    audit_close(NULL);

    struct audit *a = open_temp();
    audit_device(a, 1, 0, true);
    audit_close(a);
    /* Reopening appends instead of truncating. */
    a = audit_open(path);
    cr_assert_not_null(a);
    audit_device(a, 1, 0, false);
    audit_close(a);
    size_t n;
    const char *buf = slurp(&n);
    cr_assert_eq(n, 2);
    cr_assert(strstr(buf, "device-connect") < strstr(buf, "device-disconnect"));
    cr_assert_null(audit_open("/nonexistent-dir/audit.log"));
}
