/*
 * The active-socket commands against real local peers: CONNECT, data
 * both ways and RELEASE with an echo server; EOF in both directions;
 * connects that are refused or have no route.  Every test checks the
 * audit records of what it did.
 */
#include "../lib/checks.h"
#include "../lib/harness.h"
#include "../lib/hostnet.h"
#include "../lib/testfront.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static struct hn_server *server(enum hn_mode mode, uint64_t total)
{
    struct hn_server_cfg cfg = { .mode = mode, .total = total, .seed = 42 };
    return hn_server_start(&cfg);
}

/* A connected socket of tf to server srv. */
static struct tf_sock *connected(struct tf *tf, struct hn_server *srv)
{
    struct tf_sock *s = tf_sock_new(tf);
    CHECK_RET(tf_socket(tf, s), 0);
    struct sockaddr_storage ss;
    socklen_t len = hn_server_addr(srv, &ss);
    CHECK_RET(tf_connect(tf, s, &ss, len), 0);
    return s;
}

Test(backend_basic, connect_send_recv_release, .fini = h_cleanup,
     .timeout = 60)
{
    struct harness *h = h_start(NULL);
    struct hn_server *echo = server(HN_ECHO, 0);
    struct tf *tf = tf_open_h(h, 1, 0);
    struct tf_sock *s = connected(tf, echo);
    uint64_t id = s->id;

    /* Message sizes from 1 byte to several times the 32 KiB ring, so
     * that both rings fill and wrap. */
    static const size_t sizes[] = { 1, 7, 1000, 4096, 32768, 65536, 100000 };
    static unsigned char out[100000], in[100000];
    struct hn_stream st;
    hn_stream_init(&st, 7);
    uint64_t moved = 0;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        hn_stream_fill(&st, out, n);
        /* Echoed piecewise: read back what fits while writing. */
        size_t written = 0, got = 0;
        while (got < n) {
            size_t w = n - written < 16384 ? n - written : 16384;
            if (w) {
                cr_assert_eq(tf_write(s, out + written, w, TF_TIMEOUT_MS),
                             (long)w);
                written += w;
            }
            long r = tf_read(s, in + got, written - got, TF_TIMEOUT_MS);
            cr_assert_gt(r, 0, "read: %ld", r);
            got += (size_t)r;
        }
        cr_assert_arr_eq(in, out, n, "echo of %zu bytes differs", n);
        moved += n;
    }

    CHECK_RET(tf_release(tf, s), 0);
    /* The echo server saw our EOF after every byte. */
    cr_assert(hn_server_wait_done(echo, 1, TF_TIMEOUT_MS));
    struct hn_conn_result r;
    cr_assert(hn_server_result(echo, 0, &r));
    cr_expect_eq(r.err, 0);
    cr_expect_eq(r.bytes_in, moved);
    check_close_record(h, 1, id, moved, moved);

    /* The CONNECT record names the peer. */
    struct audit a;
    h_audit(h, &a);
    const char *line = audit_first(&a, &(struct audit_q){
        .cmd = "connect", .dom = 1, .id = (long long)id });
    cr_assert_not_null(line);
    char addr[64], want[64];
    cr_assert(json_str(line, "addr", addr, sizeof(addr)), "%s", line);
    snprintf(want, sizeof(want), "127.0.0.1:%u", hn_server_port(echo));
    cr_expect_str_eq(addr, want);
    audit_free(&a);
    check_audit_journal(h, tf);

    tf_close(tf);
    hn_server_stop(echo);
    h_stop(h);
}

Test(backend_basic, eof_when_host_closes, .fini = h_cleanup, .timeout = 60)
{
    enum { TOTAL = 300000 };
    struct harness *h = h_start(NULL);
    struct hn_server *src = server(HN_SOURCE, TOTAL);
    struct tf *tf = tf_open_h(h, 1, 0);
    struct tf_sock *s = connected(tf, src);
    uint64_t id = s->id;

    uint64_t bytes = 0, hash = HN_FNV_INIT;
    cr_assert_eq(tf_read_to_eof(s, &bytes, &hash, TF_TIMEOUT_MS), 0,
                 "EOF after the data");
    cr_assert_eq(bytes, TOTAL);
    cr_assert_eq(hash, hn_stream_hash(42, TOTAL));
    /* EOF stays EOF. */
    char c;
    cr_assert_eq(tf_read(s, &c, 1, 100), 0);
    cr_assert_eq(pvc_ring_in_error(&s->ring->ring), -ENOTCONN);

    CHECK_RET(tf_release(tf, s), 0);
    check_close_record(h, 1, id, TOTAL, 0);
    check_audit_journal(h, tf);
    tf_close(tf);
    hn_server_stop(src);
    h_stop(h);
}

Test(backend_basic, eof_after_release, .fini = h_cleanup, .timeout = 60)
{
    enum { TOTAL = 300000 };
    struct harness *h = h_start(NULL);
    struct hn_server *sink = server(HN_SINK, 0);
    struct tf *tf = tf_open_h(h, 1, 0);
    struct tf_sock *s = connected(tf, sink);
    uint64_t id = s->id;

    struct hn_stream st;
    hn_stream_init(&st, 9);
    uint64_t hash = HN_FNV_INIT;
    cr_assert_eq(tf_write_stream(s, &st, TOTAL, &hash, TF_TIMEOUT_MS), 0);
    CHECK_RET(tf_release(tf, s), 0);

    /* The host reads every byte, then EOF (not a reset). */
    cr_assert(hn_server_wait_done(sink, 1, TF_TIMEOUT_MS));
    struct hn_conn_result r;
    cr_assert(hn_server_result(sink, 0, &r));
    cr_expect_eq(r.err, 0, "host side ended with %s", strerror(r.err));
    cr_expect_eq(r.bytes_in, TOTAL);
    cr_expect_eq(r.hash_in, hash);
    check_close_record(h, 1, id, 0, TOTAL);
    check_audit_journal(h, tf);
    tf_close(tf);
    hn_server_stop(sink);
    h_stop(h);
}

Test(backend_basic, connect_refused, .fini = h_cleanup, .timeout = 30)
{
    struct harness *h = h_start(NULL);
    struct tf *tf = tf_open_h(h, 1, 0);
    struct tf_sock *s = tf_sock_new(tf);
    CHECK_RET(tf_socket(tf, s), 0);
    struct sockaddr_storage ss;
    socklen_t len = hn_loopback(AF_INET, hn_closed_port(AF_INET), &ss);
    CHECK_RET(tf_connect(tf, s, &ss, len), -ECONNREFUSED);
    cr_assert_null(s->ring, "the ring is ours again after a failure");

    /* As after a failed connect(2), the socket can try again. */
    struct hn_server *echo = server(HN_ECHO, 0);
    len = hn_server_addr(echo, &ss);
    CHECK_RET(tf_connect(tf, s, &ss, len), 0);
    cr_assert_eq(tf_write(s, "x", 1, TF_TIMEOUT_MS), 1);
    char c = 0;
    cr_assert_eq(tf_read(s, &c, 1, TF_TIMEOUT_MS), 1);
    cr_assert_eq(c, 'x');
    CHECK_RET(tf_release(tf, s), 0);
    check_audit_journal(h, tf);
    tf_close(tf);
    hn_server_stop(echo);
    h_stop(h);
}

/* TCP refuses multicast destinations before sending anything (Linux's
 * tcp_v4_connect: -ENETUNREACH), on any host, with or without routes. */
Test(backend_basic, connect_unreachable_multicast, .fini = h_cleanup,
     .timeout = 30)
{
    struct harness *h = h_start(NULL);
    struct tf *tf = tf_open_h(h, 1, 0);
    struct tf_sock *s = tf_sock_new(tf);
    CHECK_RET(tf_socket(tf, s), 0);
    struct sockaddr_storage ss;
    socklen_t len = hn_addr4("224.0.0.1", 80, &ss);
    CHECK_RET(tf_connect(tf, s, &ss, len), -ENETUNREACH);
    CHECK_RET(tf_release(tf, s), 0);
    check_audit_journal(h, tf);
    tf_close(tf);
    h_stop(h);
}

/* Is there a route to addr?  A UDP connect() only looks the route up, it
 * sends nothing. */
static bool have_route(const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t len = hn_addr4(addr, 9, &ss);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    bool routed = connect(fd, (struct sockaddr *)&ss, len) == 0;
    close(fd);
    return routed;
}

/* TEST-NET-1 with no route: -ENETUNREACH.  On a host whose default route
 * covers it, a connect would go out on the network and hang: skipped. */
Test(backend_basic, connect_unreachable_no_route, .fini = h_cleanup,
     .timeout = 30)
{
    if (have_route("192.0.2.1"))
        h_skip("this host has a route to 192.0.2.1 (TEST-NET-1); "
               "not sending traffic to it");
    struct harness *h = h_start(NULL);
    struct tf *tf = tf_open_h(h, 1, 0);
    struct tf_sock *s = tf_sock_new(tf);
    CHECK_RET(tf_socket(tf, s), 0);
    struct sockaddr_storage ss;
    socklen_t len = hn_addr4("192.0.2.1", 80, &ss);
    CHECK_RET(tf_connect(tf, s, &ss, len), -ENETUNREACH);
    CHECK_RET(tf_release(tf, s), 0);
    check_audit_journal(h, tf);
    tf_close(tf);
    h_stop(h);
}
