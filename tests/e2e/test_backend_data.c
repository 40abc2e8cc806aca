/*
 * Bulk data through the rings: 100 MB each way verified by checksum,
 * 100 sockets exchanging data at once, and a RELEASE that arrives while
 * megabytes are still queued for a slow host reader.  The audit log's
 * byte counts are checked against what actually moved.
 */
#include "../lib/checks.h"
#include "../lib/harness.h"
#include "../lib/hostnet.h"
#include "../lib/testfront.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#define BULK (100ull * 1000 * 1000)
/* Bulk tests run with Linux's ring size (order 4: 32 KiB a way) and the
 * backend's largest (order 9: 1 MiB a way). */
#define BIG_ORDER 9u
#define BULK_WAIT_MS 60000

static struct tf_sock *connect_to(struct tf *tf, struct hn_server *srv,
                                  unsigned order)
{
    struct tf_sock *s = tf_sock_new(tf);
    s->order = order;
    CHECK_RET(tf_socket(tf, s), 0);
    struct sockaddr_storage ss;
    socklen_t len = hn_server_addr(srv, &ss);
    CHECK_RET(tf_connect(tf, s, &ss, len), 0);
    return s;
}

static void bulk_frontend_to_host(unsigned order)
{
    struct harness *h = h_start(NULL);
    struct hn_server *sink =
        hn_server_start(&(struct hn_server_cfg){ .mode = HN_SINK });
    struct tf *tf = tf_open_h(h, 1, 0);
    struct tf_sock *s = connect_to(tf, sink, order);
    uint64_t id = s->id;

    struct hn_stream st;
    hn_stream_init(&st, 1234);
    uint64_t hash = HN_FNV_INIT;
    int64_t t0 = hn_now_ms();
    CHECK_RET(tf_write_stream(s, &st, BULK, &hash, BULK_WAIT_MS), 0);
    CHECK_RET(tf_release(tf, s), 0);
    cr_assert(hn_server_wait_done(sink, 1, BULK_WAIT_MS));
    cr_log_info("100 MB frontend -> host, order %u: %lld ms", order,
                (long long)(hn_now_ms() - t0));

    struct hn_conn_result r;
    cr_assert(hn_server_result(sink, 0, &r));
    cr_assert_eq(r.err, 0, "%s", strerror(r.err));
    cr_assert_eq(r.bytes_in, BULK);
    cr_assert_eq(r.hash_in, hash, "checksum of the received stream");
    check_close_record(h, 1, id, 0, BULK);
    check_audit_journal(h, tf);
    tf_close(tf);
    hn_server_stop(sink);
    h_stop(h);
}

static void bulk_host_to_frontend(unsigned order)
{
    struct harness *h = h_start(NULL);
    struct hn_server *src = hn_server_start(&(struct hn_server_cfg){
        .mode = HN_SOURCE, .total = BULK, .seed = 5678 });
    struct tf *tf = tf_open_h(h, 1, 0);
    struct tf_sock *s = connect_to(tf, src, order);
    uint64_t id = s->id;

    uint64_t bytes = 0, hash = HN_FNV_INIT;
    int64_t t0 = hn_now_ms();
    CHECK_RET(tf_read_to_eof(s, &bytes, &hash, BULK_WAIT_MS), 0);
    cr_log_info("100 MB host -> frontend, order %u: %lld ms", order,
                (long long)(hn_now_ms() - t0));
    cr_assert_eq(bytes, BULK);
    cr_assert_eq(hash, hn_stream_hash(5678, BULK), "checksum");
    CHECK_RET(tf_release(tf, s), 0);
    check_close_record(h, 1, id, BULK, 0);
    check_audit_journal(h, tf);
    tf_close(tf);
    hn_server_stop(src);
    h_stop(h);
}

Test(backend_data, bulk_frontend_to_host, .fini = h_cleanup, .timeout = 120)
{
    bulk_frontend_to_host(TF_DEFAULT_ORDER);
}

Test(backend_data, bulk_host_to_frontend, .fini = h_cleanup, .timeout = 120)
{
    bulk_host_to_frontend(TF_DEFAULT_ORDER);
}

Test(backend_data, bulk_frontend_to_host_big_ring, .fini = h_cleanup,
     .timeout = 120)
{
    bulk_frontend_to_host(BIG_ORDER);
}

Test(backend_data, bulk_host_to_frontend_big_ring, .fini = h_cleanup,
     .timeout = 120)
{
    bulk_host_to_frontend(BIG_ORDER);
}

/* 100 sockets connected at once; every round writes a distinct message
 * on all of them before reading any echo, so all 100 carry data at the
 * same time. */
Test(backend_data, hundred_sockets, .fini = h_cleanup, .timeout = 120)
{
    enum { N = 100, ROUNDS = 3, MSG = 1500 };
    struct harness *h = h_start(NULL);
    struct hn_server *echo =
        hn_server_start(&(struct hn_server_cfg){ .mode = HN_ECHO });
    struct tf *tf = tf_open_h(h, 1, 0);
    struct sockaddr_storage ss;
    socklen_t len = hn_server_addr(echo, &ss);

    /* All CONNECTs in flight together (tf_send waits for ring slots). */
    struct tf_sock *s[N];
    uint32_t req[N];
    uint64_t ids[N];
    for (int i = 0; i < N; i++) {
        s[i] = tf_sock_new(tf);
        ids[i] = s[i]->id;
        CHECK_RET(tf_socket(tf, s[i]), 0);
    }
    for (int i = 0; i < N; i++)
        req[i] = tf_connect_send(tf, s[i], &ss, len);
    for (int i = 0; i < N; i++)
        CHECK_RET(tf_connect_finish(tf, s[i], req[i], TF_TIMEOUT_MS), 0);
    cr_assert(hn_server_wait_accepted(echo, N, TF_TIMEOUT_MS));

    static unsigned char out[N][MSG], in[MSG];
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < N; i++) {
            struct hn_stream st;
            hn_stream_init(&st, (uint64_t)(round * N + i));
            hn_stream_fill(&st, out[i], MSG);
            cr_assert_eq(tf_write(s[i], out[i], MSG, TF_TIMEOUT_MS), MSG);
        }
        for (int i = 0; i < N; i++) {
            cr_assert_eq(tf_read_full(s[i], in, MSG, TF_TIMEOUT_MS), MSG,
                         "socket %d round %d", i, round);
            cr_assert_arr_eq(in, out[i], MSG, "socket %d round %d", i,
                             round);
        }
    }
    for (int i = 0; i < N; i++)
        req[i] = tf_release_send(tf, s[i]);
    for (int i = 0; i < N; i++)
        CHECK_RET(tf_release_finish(tf, s[i], req[i], TF_TIMEOUT_MS), 0);
    cr_assert(hn_server_wait_done(echo, N, TF_TIMEOUT_MS));
    for (int i = 0; i < N; i++)
        check_close_record(h, 1, ids[i], ROUNDS * MSG, ROUNDS * MSG);
    check_audit_journal(h, tf);
    tf_close(tf);
    hn_server_stop(echo);
    h_stop(h);
}

/* The frontend writes 8 MB and sends RELEASE at once; the host reads
 * slowly.  Megabytes are still queued (in the ring and the host socket)
 * when RELEASE arrives, and every byte must still reach the host. */
Test(backend_data, release_with_unsent_data, .fini = h_cleanup,
     .timeout = 120)
{
    enum { TOTAL = 8 * 1024 * 1024 };
    struct harness *h = h_start(NULL);
    /* 16 KiB every 2 ms: about 8 MB/s, so the write finishes seconds
     * before the host has read everything. */
    struct hn_server *sink = hn_server_start(&(struct hn_server_cfg){
        .mode = HN_SINK, .slow_us = 2000, .read_max = 16384,
        .rcvbuf = 65536 });
    /* A small host send buffer (sockopt extension) keeps the backlog in
     * the ring, where only the backend can still drain it. */
    struct tf *tf = tf_open_h(h, 1, PVC_EXT_SOCKOPT);
    struct tf_sock *s = tf_sock_new(tf);
    s->order = BIG_ORDER;
    CHECK_RET(tf_socket(tf, s), 0);
    int sndbuf = 32768;
    CHECK_RET(tf_setsockopt(tf, s, SOL_SOCKET, SO_SNDBUF, &sndbuf,
                            sizeof(sndbuf)), 0);
    struct sockaddr_storage ss;
    socklen_t len = hn_server_addr(sink, &ss);
    CHECK_RET(tf_connect(tf, s, &ss, len), 0);
    uint64_t id = s->id;

    struct hn_stream st;
    hn_stream_init(&st, 99);
    uint64_t hash = HN_FNV_INIT;
    CHECK_RET(tf_write_stream(s, &st, TOTAL, &hash, BULK_WAIT_MS), 0);
    uint32_t req = tf_release_send(tf, s);
    uint64_t at_release = hn_server_bytes_in(sink);
    long queued = pvc_ring_tx_unconsumed(&s->ring->ring);
    cr_log_info("at RELEASE: host has %llu bytes, %ld still in the ring",
                (unsigned long long)at_release, queued);
    cr_assert_gt(queued, 256 * 1024,
                 "the test needs unsent data in the ring at RELEASE");
    cr_assert_lt(at_release, TOTAL - (uint64_t)queued);

    CHECK_RET(tf_release_finish(tf, s, req, BULK_WAIT_MS), 0);
    cr_assert(hn_server_wait_done(sink, 1, BULK_WAIT_MS));
    struct hn_conn_result r;
    cr_assert(hn_server_result(sink, 0, &r));
    cr_assert_eq(r.err, 0, "%s", strerror(r.err));
    cr_assert_eq(r.bytes_in, TOTAL, "the host received every byte");
    cr_assert_eq(r.hash_in, hash, "checksum");
    check_close_record(h, 1, id, 0, TOTAL);
    check_audit_journal(h, tf);
    tf_close(tf);
    hn_server_stop(sink);
    h_stop(h);
}
