/*
 * Passive sockets: BIND, LISTEN, POLL and ACCEPT with real local clients
 * (threads doing connect() to the port on 127.0.0.1), data both ways on
 * accepted sockets, and what happens to a pending ACCEPT at RELEASE.
 */
#include "../lib/checks.h"
#include "../lib/harness.h"
#include "../lib/hostnet.h"
#include "../lib/testfront.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

/* A listening socket of tf on 127.0.0.1.  With the sockname extension
 * it binds port 0 and asks the backend for the port; without, it binds
 * a port found free at run time. */
static struct tf_sock *listener(struct tf *tf, bool use_sockname,
                                uint16_t *port)
{
    struct tf_sock *ls = tf_sock_new(tf);
    CHECK_RET(tf_socket(tf, ls), 0);
    struct sockaddr_storage ss;
    socklen_t len = hn_loopback(AF_INET, use_sockname ? 0
                                                      : hn_closed_port(AF_INET),
                                &ss);
    CHECK_RET(tf_bind(tf, ls, &ss, len), 0);
    if (use_sockname) {
        CHECK_RET(tf_getsockname(tf, ls, &ss, &len), 0);
        cr_assert_eq(len, sizeof(struct sockaddr_in));
        cr_assert_eq(ss.ss_family, AF_INET);
    }
    *port = hn_port_of(&ss);
    cr_assert_neq(*port, 0);
    CHECK_RET(tf_listen(tf, ls, 16), 0);
    return ls;
}

static struct hn_client *client_to(uint16_t port, uint64_t total,
                                   uint64_t seed)
{
    struct sockaddr_storage ss;
    socklen_t len = hn_loopback(AF_INET, port, &ss);
    return hn_client_start(&ss, len, total, seed);
}

/* Echo everything the peer sends until its EOF; returns the bytes. */
static uint64_t echo_until_eof(struct tf_sock *s)
{
    static unsigned char buf[65536];
    uint64_t total = 0;
    long n;
    while ((n = tf_read(s, buf, sizeof(buf), TF_TIMEOUT_MS)) > 0) {
        cr_assert_eq(tf_write(s, buf, (size_t)n, TF_TIMEOUT_MS), n);
        total += (uint64_t)n;
    }
    CHECK_RET(n, 0); /* EOF, not an error */
    return total;
}

static void assert_client_echoed(struct hn_client *c, uint64_t total,
                                 uint64_t seed)
{
    struct hn_client_result r;
    cr_assert(hn_client_wait(c, TF_TIMEOUT_MS, &r), "client finished");
    cr_assert_eq(r.connect_err, 0, "connect: %s", strerror(r.connect_err));
    cr_assert_eq(r.err, 0, "client: %s", strerror(r.err));
    cr_assert_eq(r.bytes_out, total);
    cr_assert_eq(r.bytes_in, total, "the client got its bytes back");
    cr_assert_eq(r.hash_in, hn_stream_hash(seed, total));
}

Test(backend_listen, accept_and_exchange, .fini = h_cleanup, .timeout = 60)
{
    enum { TOTAL = 200000 };
    struct harness *h = h_start(NULL);
    struct tf *tf = tf_open_h(h, 1, 0);
    uint16_t port;
    struct tf_sock *ls = listener(tf, false, &port);

    /* ACCEPT first: it stays pending until the client arrives. */
    struct tf_sock *s = tf_sock_new(tf);
    uint32_t req = tf_accept_send(tf, ls, s);
    struct hn_client *c = client_to(port, TOTAL, 11);
    CHECK_RET(tf_accept_finish(tf, s, req, TF_TIMEOUT_MS, NULL), 0);
    uint64_t id = s->id;

    cr_assert_eq(echo_until_eof(s), TOTAL);
    CHECK_RET(tf_release(tf, s), 0); /* the client's EOF */
    assert_client_echoed(c, TOTAL, 11);
    hn_client_free(c);
    check_close_record(h, 1, id, TOTAL, TOTAL);

    /* The ACCEPT record names the new socket. */
    struct audit a;
    h_audit(h, &a);
    const char *line = audit_first(&a, &(struct audit_q){
        .cmd = "accept", .dom = 1, .req_id = req });
    cr_assert_not_null(line);
    long long id_new;
    cr_assert(json_int(line, "id_new", &id_new), "%s", line);
    cr_assert_eq(id_new, (long long)id);
    audit_free(&a);

    uint64_t listener_id = ls->id;
    CHECK_RET(tf_release(tf, ls), 0);
    check_close_record(h, 1, listener_id, 0, 0);
    check_audit_journal(h, tf);
    tf_close(tf);
    h_stop(h);
}

Test(backend_listen, poll_then_accept, .fini = h_cleanup, .timeout = 60)
{
    struct harness *h = h_start(NULL);
    struct tf *tf = tf_open_h(h, 1, PVC_EXT_SOCKNAME);
    uint16_t port;
    struct tf_sock *ls = listener(tf, true, &port);

    /* Nobody is connecting: POLL stays pending. */
    uint32_t poll_req = tf_poll_send(tf, ls);
    cr_assert_eq(tf_wait(tf, poll_req, 300, NULL), -ETIMEDOUT,
                 "POLL answered with no connection waiting");
    struct hn_client *c = client_to(port, 1000, 12);
    CHECK_RET(tf_result(tf, poll_req, TF_TIMEOUT_MS, NULL), 0);

    /* A connection is queued: ACCEPT is answered at once. */
    struct tf_sock *s;
    CHECK_RET(tf_accept(tf, ls, &s, 1000), 0);
    cr_assert_eq(echo_until_eof(s), 1000);

    /* The accepted socket's peer is the client, on loopback. */
    struct sockaddr_storage peer;
    socklen_t len;
    CHECK_RET(tf_getpeername(tf, s, &peer, &len), 0);
    cr_assert_eq(peer.ss_family, AF_INET);
    cr_assert_eq(((struct sockaddr_in *)&peer)->sin_addr.s_addr,
                 htonl(INADDR_LOOPBACK));
    struct sockaddr_storage self;
    CHECK_RET(tf_getsockname(tf, s, &self, &len), 0);
    cr_assert_eq(hn_port_of(&self), port);

    CHECK_RET(tf_release(tf, s), 0);
    assert_client_echoed(c, 1000, 12);
    hn_client_free(c);
    CHECK_RET(tf_release(tf, ls), 0);
    check_audit_journal(h, tf);
    tf_close(tf);
    h_stop(h);
}

/* With accept-addr, the ACCEPT response carries the peer's address. */
Test(backend_listen, accept_addr_extension, .fini = h_cleanup, .timeout = 60)
{
    struct harness *h = h_start(NULL);
    struct tf *tf = tf_open_h(h, 1, PVC_EXT_SOCKNAME | PVC_EXT_ACCEPT_ADDR);
    uint16_t port;
    struct tf_sock *ls = listener(tf, true, &port);
    struct hn_client *c = client_to(port, 10, 13);
    struct tf_sock *s = tf_sock_new(tf);
    union xen_pvcalls_sring_entry e;
    uint32_t req = tf_accept_send(tf, ls, s);
    CHECK_RET(tf_accept_finish(tf, s, req, TF_TIMEOUT_MS, &e), 0);
    struct pvc_ext_addr_rsp rsp;
    memcpy(&rsp, &e, sizeof(rsp));
    cr_assert_eq(rsp.len, sizeof(struct sockaddr_in));
    struct sockaddr_in peer;
    memcpy(&peer, rsp.addr, sizeof(peer));
    cr_assert_eq(peer.sin_family, AF_INET);
    cr_assert_eq(peer.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    cr_assert_neq(peer.sin_port, 0);

    cr_assert_eq(echo_until_eof(s), 10);
    CHECK_RET(tf_release(tf, s), 0);
    assert_client_echoed(c, 10, 13);
    hn_client_free(c);
    CHECK_RET(tf_release(tf, ls), 0);
    tf_close(tf);
    h_stop(h);
}

/* Several clients queue up at once; each ACCEPT takes one. */
Test(backend_listen, several_clients, .fini = h_cleanup, .timeout = 60)
{
    enum { N = 5, TOTAL = 50000 };
    struct harness *h = h_start(NULL);
    struct tf *tf = tf_open_h(h, 1, 0);
    uint16_t port;
    struct tf_sock *ls = listener(tf, false, &port);
    struct hn_client *c[N];
    for (int i = 0; i < N; i++)
        c[i] = client_to(port, TOTAL, 100 + (uint64_t)i);
    for (int i = 0; i < N; i++) {
        struct tf_sock *s;
        CHECK_RET(tf_accept(tf, ls, &s, TF_TIMEOUT_MS), 0);
        cr_assert_eq(echo_until_eof(s), TOTAL);
        CHECK_RET(tf_release(tf, s), 0);
    }
    /* Which client came first is up to the kernel; each got its own
     * bytes back. */
    for (int i = 0; i < N; i++) {
        assert_client_echoed(c[i], TOTAL, 100 + (uint64_t)i);
        hn_client_free(c[i]);
    }
    CHECK_RET(tf_release(tf, ls), 0);
    check_audit_journal(h, tf);
    tf_close(tf);
    h_stop(h);
}

/* RELEASE of a listener answers its pending ACCEPT (-EBADF) first, so
 * the frontend's ring slot and pre-allocated ring come back. */
Test(backend_listen, release_answers_pending_accept, .fini = h_cleanup,
     .timeout = 30)
{
    struct harness *h = h_start(NULL);
    struct tf *tf = tf_open_h(h, 1, 0);
    uint16_t port;
    struct tf_sock *ls = listener(tf, false, &port);
    struct tf_sock *s = tf_sock_new(tf);
    uint32_t acc = tf_accept_send(tf, ls, s);
    cr_assert_eq(tf_wait(tf, acc, 200, NULL), -ETIMEDOUT);
    uint32_t rel = tf_release_send(tf, ls);
    CHECK_RET(tf_release_finish(tf, ls, rel, TF_TIMEOUT_MS), 0);
    CHECK_RET(tf_accept_finish(tf, s, acc, TF_TIMEOUT_MS, NULL), -EBADF);

    /* ACCEPT's answer arrived before RELEASE's. */
    size_t acc_at = SIZE_MAX, rel_at = SIZE_MAX;
    for (size_t i = 0; i < tf->njournal; i++) {
        if (tf->journal[i].req_id == acc)
            acc_at = i;
        if (tf->journal[i].req_id == rel)
            rel_at = i;
    }
    cr_assert_lt(acc_at, rel_at);
    check_audit_journal(h, tf);
    tf_close(tf);
    h_stop(h);
}
