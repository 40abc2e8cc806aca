/*
 * The simulated xenstore at the byte level, with hand-made messages:
 * framing, replies, errors, and clients that misbehave.  A well-behaved
 * libxenstore client must keep working through all of it.
 */
#include <sys/resource.h>
#include <dirent.h>

#include "test_store_harness.h"

TestSuite(store_wire, .init = harness_start, .fini = harness_stop,
          .timeout = 60);

static const char ok[] = "OK";

Test(store_wire, replies_echo_ids_and_name_errors)
{
    int fd = raw_connect(0);
    char body[XENSTORE_PAYLOAD_MAX + 1];
    raw_send(fd, XS_WRITE, 41, 0, "/w\0value", 8);
    struct xsd_sockmsg m = raw_recv(fd, body, sizeof(body));
    cr_assert_eq(m.type, XS_WRITE);
    cr_assert_eq(m.req_id, 41);
    cr_assert_eq(m.len, sizeof(ok));
    cr_assert_str_eq(body, ok);

    raw_send(fd, XS_READ, 42, 0, "/w", 3);
    m = raw_recv(fd, body, sizeof(body));
    cr_assert_eq(m.type, XS_READ);
    cr_assert_eq(m.req_id, 42);
    cr_assert_eq(m.len, 5);     /* the value, no nul added */
    cr_assert_eq(memcmp(body, "value", 5), 0);

    raw_send(fd, XS_READ, 43, 0, "/missing", 9);
    m = raw_recv(fd, body, sizeof(body));
    cr_assert_eq(m.type, XS_ERROR);
    cr_assert_eq(m.req_id, 43);
    cr_assert_eq(m.len, sizeof("ENOENT"));
    cr_assert_str_eq(body, "ENOENT");

    raw_send(fd, XS_TRANSACTION_START, 44, 0, "", 1);
    m = raw_recv(fd, body, sizeof(body));
    cr_assert_eq(m.type, XS_TRANSACTION_START);
    unsigned long tx = strtoul(body, NULL, 10);
    cr_assert_neq(tx, 0);
    raw_send(fd, XS_WRITE, 45, (uint32_t)tx, "/in-tx\0v", 8);
    m = raw_recv(fd, body, sizeof(body));
    cr_assert_eq(m.type, XS_WRITE);
    cr_assert_eq(m.req_id, 45);
    cr_assert_eq(m.tx_id, tx);
    raw_send(fd, XS_TRANSACTION_START, 46, (uint32_t)tx, "", 1);
    m = raw_recv(fd, body, sizeof(body));
    cr_assert_str_eq(body, "EBUSY");    /* no nesting */
    raw_send(fd, XS_TRANSACTION_END, 47, (uint32_t)tx, "X", 2);
    m = raw_recv(fd, body, sizeof(body));
    cr_assert_str_eq(body, "EINVAL");
    raw_send(fd, XS_TRANSACTION_END, 48, (uint32_t)tx, "T", 2);
    m = raw_recv(fd, body, sizeof(body));
    cr_assert_eq(m.type, XS_TRANSACTION_END);
    cr_assert_eq(m.tx_id, tx);
    raw_send(fd, XS_READ, 49, (uint32_t)tx, "/in-tx", 7);
    m = raw_recv(fd, body, sizeof(body));
    cr_assert_eq(m.type, XS_ERROR);
    cr_assert_str_eq(body, "ENOENT");   /* that transaction is over */
    close(fd);
}

Test(store_wire, unsupported_and_malformed_requests)
{
    int fd = raw_connect(1);
    char body[XENSTORE_PAYLOAD_MAX + 1];
    static const struct {
        uint32_t type;
        const char *body;
        uint32_t len;
        const char *err;
    } cases[] = {
        { XS_INTRODUCE, "1\0002\0003", 6, "ENOSYS" },
        { XS_RESET_WATCHES, "", 1, "ENOSYS" },
        { XS_WATCH_EVENT, "a\0b", 4, "ENOSYS" },
        { XS_ERROR, "x", 2, "ENOSYS" },
        { 999, "", 0, "ENOSYS" },
        { XS_READ, "a", 1, "EINVAL" },          /* no nul */
        { XS_READ, "a\0b", 4, "EINVAL" },       /* two strings */
        { XS_READ, "", 0, "EINVAL" },
        { XS_WRITE, "abc", 3, "EINVAL" },       /* no path end */
        { XS_WATCH, "a", 2, "EINVAL" },         /* no token */
        { XS_SET_PERMS, "a", 2, "EINVAL" },     /* no perms */
        { XS_SET_PERMS, "a\0q1", 5, "EINVAL" },
        { XS_DIRECTORY_PART, "a\0x1", 5, "EINVAL" },
        { XS_GET_DOMAIN_PATH, "70000", 6, "EINVAL" },
        { XS_TRANSACTION_END, "T", 2, "ENOENT" }, /* no transaction */
        { XS_GET_PERMS, "@nothing", 9, "ENOENT" },
        { XS_GET_PERMS, "@releaseDomain", 15, "EACCES" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        raw_send(fd, cases[i].type, (uint32_t)i, 0, cases[i].body,
                 cases[i].len);
        struct xsd_sockmsg m = raw_recv(fd, body, sizeof(body));
        cr_assert_eq(m.type, XS_ERROR, "case %zu", i);
        cr_assert_eq(m.req_id, i);
        cr_assert_str_eq(body, cases[i].err, "case %zu", i);
    }
    /* An unknown transaction id is refused for any request. */
    raw_send(fd, XS_READ, 77, 12345, "x", 2);
    struct xsd_sockmsg m = raw_recv(fd, body, sizeof(body));
    cr_assert_eq(m.tx_id, 12345);
    cr_assert_str_eq(body, "ENOENT");
    raw_send(fd, XS_GET_DOMAIN_PATH, 78, 0, "7", 2);
    m = raw_recv(fd, body, sizeof(body));
    cr_assert_eq(m.type, XS_GET_DOMAIN_PATH);
    cr_assert_eq(m.len, sizeof("/local/domain/7"));
    cr_assert_str_eq(body, "/local/domain/7");
    close(fd);
}

Test(store_wire, pipelined_and_dribbled_requests)
{
    int fd = raw_connect(0);
    char body[XENSTORE_PAYLOAD_MAX + 1];
    /* Three requests in one write. */
    char buf[3 * (sizeof(struct xsd_sockmsg) + 8)];
    size_t len = 0;
    for (uint32_t i = 0; i < 3; i++) {
        struct xsd_sockmsg h = { XS_WRITE, i, 0, 8 };
        memcpy(buf + len, &h, sizeof(h));
        len += sizeof(h);
        char req[8];
        snprintf(req, sizeof(req), "/p%u", i);  /* "/pN\0" then "val" */
        memcpy(req + 4, "val", 4);
        memcpy(buf + len, req, 8);
        len += 8;
    }
    cr_assert_eq(write(fd, buf, len), (ssize_t)len);
    for (uint32_t i = 0; i < 3; i++) {
        struct xsd_sockmsg m = raw_recv(fd, body, sizeof(body));
        cr_assert_eq(m.type, XS_WRITE);
        cr_assert_eq(m.req_id, i);
    }
    /* One byte at a time. */
    struct xsd_sockmsg h = { XS_READ, 9, 0, 4 };
    char msg[sizeof(h) + 4];
    memcpy(msg, &h, sizeof(h));
    memcpy(msg + sizeof(h), "/p1", 4);
    for (size_t i = 0; i < sizeof(msg); i++)
        cr_assert_eq(write(fd, msg + i, 1), 1);
    struct xsd_sockmsg m = raw_recv(fd, body, sizeof(body));
    cr_assert_eq(m.req_id, 9);
    cr_assert_str_eq(body, "val");
    close(fd);
}

Test(store_wire, directory_part_pages_long_listings)
{
    struct xs_handle *xs = xs_as(0);
    for (int i = 0; i < 400; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/dp/a-fairly-long-child-name-%d", i);
        cr_assert(xs_mkdir(xs, XBT_NULL, path));
    }
    int fd = raw_connect(0);
    char body[XENSTORE_PAYLOAD_MAX + 1];
    raw_send(fd, XS_DIRECTORY, 1, 0, "/dp", 4);
    struct xsd_sockmsg m = raw_recv(fd, body, sizeof(body));
    cr_assert_str_eq(body, "E2BIG");
    unsigned off = 0, names = 0, pages = 0;
    char gen[32] = "";
    for (;;) {
        char req[32];
        int n = snprintf(req, sizeof(req), "/dp%c%u", 0, off);
        raw_send(fd, XS_DIRECTORY_PART, 2, 0, req, (uint32_t)n + 1);
        m = raw_recv(fd, body, sizeof(body));
        cr_assert_eq(m.type, XS_DIRECTORY_PART);
        pages++;
        if (!gen[0]) {
            cr_assert_lt(strlen(body), sizeof(gen));
            strcpy(gen, body);
        }
        cr_assert_str_eq(body, gen, "generation changed");
        size_t p = strlen(body) + 1;
        bool end = false;
        while (p < m.len) {
            if (body[p] == '\0') {  /* the empty string that ends it */
                end = true;
                break;
            }
            names++;
            off += (unsigned)strlen(body + p) + 1;
            p += strlen(body + p) + 1;
        }
        if (end)
            break;
        cr_assert_lt(pages, 20);
    }
    cr_assert_eq(names, 400);
    cr_assert_gt(pages, 1);
    close(fd);
    xs_close(xs);
}

/* The good client: a full libxenstore round trip. */
static void good_client_works(struct xs_handle *xs, const char *tag)
{
    put(xs, "/good", tag);
    assert_value(xs, "/good", tag);
}

Test(store_wire, hostile_framing_does_not_hurt_others)
{
    struct xs_handle *good = xs_as(0);
    good_client_works(good, "start");

    /* Half a header, then silence: others are served meanwhile. */
    int stalled = raw_connect(1);
    cr_assert_eq(write(stalled, "\x02\x00\x00", 3), 3);
    good_client_works(good, "while stalled");

    /* A payload longer than XENSTORE_PAYLOAD_MAX: dropped, as xenstored. */
    int huge = raw_connect(1);
    struct xsd_sockmsg h = { XS_WRITE, 0, 0, XENSTORE_PAYLOAD_MAX + 1 };
    cr_assert_eq(write(huge, &h, sizeof(h)), (ssize_t)sizeof(h));
    cr_assert(raw_closed_by_server(huge));
    close(huge);
    h.len = UINT32_MAX;
    huge = raw_connect(1);
    cr_assert_eq(write(huge, &h, sizeof(h)), (ssize_t)sizeof(h));
    cr_assert(raw_closed_by_server(huge));
    close(huge);

    /* Vanishing mid-header and mid-body. */
    int gone = raw_connect(1);
    cr_assert_eq(write(gone, "\x02\x00", 2), 2);
    close(gone);
    gone = raw_connect(1);
    h = (struct xsd_sockmsg){ XS_WRITE, 0, 0, 100 };
    cr_assert_eq(write(gone, &h, sizeof(h)), (ssize_t)sizeof(h));
    cr_assert_eq(write(gone, "/x", 2), 2);
    close(gone);

    /* Binary garbage of valid length. */
    int garbage = raw_connect(1);
    char junk[sizeof(struct xsd_sockmsg) + 64];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)(i * 37 + 11);
    h = (struct xsd_sockmsg){ XS_SET_PERMS, 1, 0, 64 };
    memcpy(junk, &h, sizeof(h));
    cr_assert_eq(write(garbage, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    char body[XENSTORE_PAYLOAD_MAX + 1];
    struct xsd_sockmsg m = raw_recv(garbage, body, sizeof(body));
    cr_assert_eq(m.type, XS_ERROR);
    cr_assert_str_eq(body, "EINVAL");

    good_client_works(good, "end");
    /* The stalled client finishes its request late and is answered. */
    h = (struct xsd_sockmsg){ XS_READ, 5, 0, 3 };
    cr_assert_eq(write(stalled, (char *)&h + 3, sizeof(h) - 3),
                 (ssize_t)sizeof(h) - 3);
    cr_assert_eq(write(stalled, "ab", 3), 3);
    m = raw_recv(stalled, body, sizeof(body));
    cr_assert_eq(m.req_id, 5);
    cr_assert_str_eq(body, "ENOENT");
    close(stalled);
    close(garbage);
    xs_close(good);
}

Test(store_wire, client_that_never_reads_is_dropped)
{
    struct xs_handle *good = xs_as(0);
    int lazy = raw_connect(0);
    char req[STORE_MAX_TOKEN + 8];
    memcpy(req, "/\0", 2);
    memset(req + 2, 't', STORE_MAX_TOKEN);
    req[2 + STORE_MAX_TOKEN] = '\0';
    raw_send(lazy, XS_WATCH, 1, 0, req, 3 + STORE_MAX_TOKEN);
    /* Every write below queues a ~1 KiB event for the lazy client; the
     * writer never waits for it. */
    int i;
    for (i = 0; i < 3000; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/flood/%d", i % 10);
        put(good, path, "x");
    }
    cr_assert(raw_closed_by_server(lazy));
    close(lazy);
    good_client_works(good, "after flood");
    xs_close(good);
}

Test(store_wire, connections_per_domain_are_bounded)
{
    int fds[STORE_MAX_CONNS + 1];
    char body[XENSTORE_PAYLOAD_MAX + 1];
    for (unsigned i = 0; i < STORE_MAX_CONNS; i++) {
        fds[i] = raw_connect(1);
        /* A round trip, so that the server has accepted it. */
        raw_send(fds[i], XS_GET_DOMAIN_PATH, i, 0, "1", 2);
        raw_recv(fds[i], body, sizeof(body));
    }
    fds[STORE_MAX_CONNS] = raw_connect(1);
    cr_assert(raw_closed_by_server(fds[STORE_MAX_CONNS]));
    /* Other domains are not affected. */
    struct xs_handle *d2 = xs_as(2);
    put(d2, "ok", "1");
    assert_value(d2, "ok", "1");
    xs_close(d2);
    for (unsigned i = 0; i <= STORE_MAX_CONNS; i++)
        close(fds[i]);
}

static unsigned open_fds(void)
{
    unsigned n = 0;
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3;   /* ".", ".." and the DIR's own fd */
}

Test(store_wire, out_of_descriptors_refuses_instead_of_spinning)
{
    struct rlimit old, low;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    /* Room for exactly one more descriptor, which the client takes: the
     * server's accept then fails with EMFILE. */
    low = old;
    low.rlim_cur = open_fds() + 1;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fd = raw_connect(1);
    bool closed = raw_closed_by_server(fd);
    close(fd);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    cr_assert(closed, "client neither served nor refused");
    /* And the store still serves. */
    struct xs_handle *xs = xs_as(0);
    good_client_works(xs, "after EMFILE");
    xs_close(xs);
}

static double loop_thread_cpu_ms(void)
{
    clockid_t clk;
    struct timespec ts;
    cr_assert_eq(pthread_getcpuclockid(H.thread, &clk), 0);
    cr_assert_eq(clock_gettime(clk, &ts), 0);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

Test(store_wire, idle_store_sleeps)
{
    /* Idle clients of every kind: one mid-header, one with a watch, one
     * that does not read while the store has output queued for it. */
    struct xs_handle *xs = xs_as(0);
    cr_assert(xs_watch(xs, "/idle", "i"));
    expect_event(xs, "/idle|i");
    int stalled = raw_connect(1);
    cr_assert_eq(write(stalled, "\x02", 1), 1);
    int lazy = raw_connect(0);
    char req[STORE_MAX_TOKEN + 8];
    memcpy(req, "/\0", 2);
    memset(req + 2, 't', STORE_MAX_TOKEN);
    req[2 + STORE_MAX_TOKEN] = '\0';
    raw_send(lazy, XS_WATCH, 1, 0, req, 3 + STORE_MAX_TOKEN);
    for (int i = 0; i < 400; i++)   /* ~400 KiB: more than a socket holds */
        put(xs, "/busy", "x");
    good_client_works(xs, "settled");

    /* Not a synchronisation: a window in which to measure nothing. */
    double before = loop_thread_cpu_ms();
    usleep(300 * 1000);
    double used = loop_thread_cpu_ms() - before;
    cr_assert_lt(used, 15.0, "the idle store used %.1f ms of CPU", used);
    close(lazy);
    close(stalled);
    xs_close(xs);
}
