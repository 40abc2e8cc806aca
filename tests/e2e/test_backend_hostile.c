/*
 * A hostile or broken frontend: malformed requests, bad rings, grant
 * references and event channels that do not exist, a flooded command
 * ring, corrupted data ring indexes, garbage in xenstore.  After each,
 * the backend must still be alive and serve a well-behaved second
 * domain (and, where the device survives, the offending one too).
 */
#include "../lib/checks.h"
#include "../lib/harness.h"
#include "../lib/hostnet.h"
#include "../lib/testfront.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xenstore.h>

static struct harness *two_domains(const char *const *backd_args)
{
    struct h_opts o = { .guests = 2 };
    for (size_t i = 0; backd_args && backd_args[i]; i++)
        o.backd_args[i] = backd_args[i];
    return h_start(&o);
}

/* The backend survived and still serves domain 2. */
static void assert_backend_serves(struct harness *h)
{
    cr_assert(h_backend_alive(h), "pvcalls-backd died");
    check_domain_serves(h, 2);
}

static struct xen_pvcalls_request request(uint32_t cmd, uint64_t id)
{
    struct xen_pvcalls_request req;
    memset(&req, 0, sizeof(req));
    req.cmd = cmd;
    req.u.socket.id = id; /* every command's body starts with the id */
    return req;
}

static int32_t raw_socket(struct tf *tf, uint64_t id, uint32_t domain,
                          uint32_t type, uint32_t protocol)
{
    struct xen_pvcalls_request req = request(PVCALLS_SOCKET, id);
    req.u.socket.domain = domain;
    req.u.socket.type = type;
    req.u.socket.protocol = protocol;
    return tf_call(tf, &req, TF_TIMEOUT_MS, NULL);
}

/* ---- malformed requests ------------------------------------------------- */

Test(backend_hostile, bad_socket_arguments, .fini = h_cleanup, .timeout = 30)
{
    struct harness *h = two_domains(NULL);
    struct tf *tf = tf_open_h(h, 1, 0);
    CHECK_RET(raw_socket(tf, 1, 1 /* AF_UNIX */, SOCK_STREAM, 0),
              -EAFNOSUPPORT);
    CHECK_RET(raw_socket(tf, 2, 10 /* AF_INET6, not negotiated */,
                         SOCK_STREAM, 0), -EAFNOSUPPORT);
    CHECK_RET(raw_socket(tf, 3, 0xffffffffu, SOCK_STREAM, 0), -EAFNOSUPPORT);
    CHECK_RET(raw_socket(tf, 4, AF_INET, SOCK_DGRAM, 0), -EAFNOSUPPORT);
    CHECK_RET(raw_socket(tf, 5, AF_INET, SOCK_RAW, 0), -EAFNOSUPPORT);
    CHECK_RET(raw_socket(tf, 6, AF_INET, SOCK_STREAM, 17 /* UDP */),
              -EAFNOSUPPORT);
    /* What Linux's own frontends send is accepted. */
    CHECK_RET(raw_socket(tf, 7, AF_INET, SOCK_STREAM, 0), 0);
    CHECK_RET(raw_socket(tf, 8, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), 0);
    check_tf_serves(h, tf);
    check_audit_journal(h, tf);
    tf_close(tf);
    assert_backend_serves(h);
    h_stop(h);
}

static int32_t raw_addr_cmd(struct tf *tf, uint32_t cmd, struct tf_sock *s,
                            const struct sockaddr_storage *addr,
                            uint32_t len)
{
    if (cmd == PVCALLS_CONNECT)
        return tf_connect(tf, s, addr, len);
    return tf_bind(tf, s, addr, len);
}

Test(backend_hostile, bad_address_lengths, .fini = h_cleanup, .timeout = 30)
{
    struct harness *h = two_domains(NULL);
    struct tf *tf = tf_open_h(h, 1, 0);
    struct hn_server *echo =
        hn_server_start(&(struct hn_server_cfg){ .mode = HN_ECHO });
    struct sockaddr_storage ss;
    hn_server_addr(echo, &ss);
    struct tf_sock *s = tf_sock_new(tf);
    CHECK_RET(tf_socket(tf, s), 0);
    static const uint32_t cmds[] = { PVCALLS_CONNECT, PVCALLS_BIND };
    for (size_t i = 0; i < 2; i++) {
        CHECK_RET(raw_addr_cmd(tf, cmds[i], s, &ss, 0), -EINVAL);
        CHECK_RET(raw_addr_cmd(tf, cmds[i], s, &ss, 1), -EINVAL);
        CHECK_RET(raw_addr_cmd(tf, cmds[i], s, &ss, 15), -EINVAL);
        CHECK_RET(raw_addr_cmd(tf, cmds[i], s, &ss, 1000), -EINVAL);
        CHECK_RET(raw_addr_cmd(tf, cmds[i], s, &ss, 0xffffffffu), -EINVAL);
    }
    /* An IPv6 address on an IPv4 socket. */
    struct sockaddr_storage v6;
    socklen_t v6_len = hn_loopback(AF_INET6, 80, &v6);
    CHECK_RET(tf_connect(tf, s, &v6, v6_len), -EAFNOSUPPORT);
    /* The socket is unharmed: a correct CONNECT (a 28-byte length, as
     * some frontends send for AF_INET, is fine) works. */
    CHECK_RET(tf_connect(tf, s, &ss, 28), 0);
    cr_assert_eq(tf_write(s, "ok", 2, TF_TIMEOUT_MS), 2);
    char buf[2];
    cr_assert_eq(tf_read_full(s, buf, 2, TF_TIMEOUT_MS), 2);
    CHECK_RET(tf_release(tf, s), 0);
    check_audit_journal(h, tf);
    tf_close(tf);
    hn_server_stop(echo);
    assert_backend_serves(h);
    h_stop(h);
}

Test(backend_hostile, duplicate_and_unknown_ids, .fini = h_cleanup,
     .timeout = 30)
{
    struct harness *h = two_domains(NULL);
    struct tf *tf = tf_open_h(h, 1, 0);
    CHECK_RET(raw_socket(tf, 42, AF_INET, SOCK_STREAM, 0), 0);
    CHECK_RET(raw_socket(tf, 42, AF_INET, SOCK_STREAM, 0), -EEXIST);

    /* Commands on an id that was never created. */
    struct tf_sock *ghost = tf_sock_new(tf);
    struct sockaddr_storage ss;
    socklen_t len = hn_loopback(AF_INET, hn_closed_port(AF_INET), &ss);
    CHECK_RET(tf_connect(tf, ghost, &ss, len), -EBADF);
    CHECK_RET(tf_bind(tf, ghost, &ss, len), -EBADF);
    CHECK_RET(tf_listen(tf, ghost, 5), -EINVAL);
    CHECK_RET(tf_poll(tf, ghost, TF_TIMEOUT_MS), -EINVAL);
    struct tf_sock *acc;
    CHECK_RET(tf_accept(tf, ghost, &acc, TF_TIMEOUT_MS), -EINVAL);
    /* RELEASE of an unknown id succeeds, as in Linux's backend. */
    CHECK_RET(tf_release(tf, ghost), 0);

    /* ACCEPT whose id_new is already taken. */
    struct tf_sock *ls = tf_sock_new(tf);
    CHECK_RET(tf_socket(tf, ls), 0);
    struct sockaddr_storage any;
    socklen_t any_len = hn_loopback(AF_INET, 0, &any);
    CHECK_RET(tf_bind(tf, ls, &any, any_len), 0);
    CHECK_RET(tf_listen(tf, ls, 5), 0);
    struct tf_sock *taken = tf_sock_new(tf);
    taken->id = 42;
    uint32_t req = tf_accept_send(tf, ls, taken);
    CHECK_RET(tf_accept_finish(tf, taken, req, TF_TIMEOUT_MS, NULL), -EEXIST);
    check_tf_serves(h, tf);
    check_audit_journal(h, tf);
    tf_close(tf);
    assert_backend_serves(h);
    h_stop(h);
}

Test(backend_hostile, unknown_commands, .fini = h_cleanup, .timeout = 30)
{
    struct harness *h = two_domains(NULL);
    struct tf *tf = tf_open_h(h, 1, 0); /* no extension negotiated */
    static const uint32_t cmds[] = { 7, 100, PVCALLS_EXT_SHUTDOWN,
                                     PVCALLS_EXT_GETSOCKOPT, 0x1fff,
                                     0xffffffffu };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        struct xen_pvcalls_request req = request(cmds[i], 1);
        union xen_pvcalls_sring_entry e;
        CHECK_RET(tf_call(tf, &req, TF_TIMEOUT_MS, &e), -PVC_ENOTSUPP);
    }
    /* Audited as unknown, with the number. */
    struct audit a;
    h_audit(h, &a);
    const char *line = audit_first(&a, &(struct audit_q){
        .dom = 1, .req_id = tf->journal[1].req_id });
    cr_assert_not_null(line);
    long long num;
    cr_assert(json_int(line, "cmd_num", &num), "%s", line);
    cr_assert_eq(num, 100);
    audit_free(&a);
    check_tf_serves(h, tf);
    check_audit_journal(h, tf);
    tf_close(tf);
    assert_backend_serves(h);
    h_stop(h);
}

Test(backend_hostile, commands_on_wrong_socket_kinds, .fini = h_cleanup,
     .timeout = 30)
{
    struct harness *h = two_domains(NULL);
    struct tf *tf = tf_open_h(h, 1, 0);
    struct hn_server *echo =
        hn_server_start(&(struct hn_server_cfg){ .mode = HN_ECHO });
    struct sockaddr_storage ss;
    socklen_t len = hn_server_addr(echo, &ss);

    /* LISTEN without BIND. */
    struct tf_sock *fresh = tf_sock_new(tf);
    CHECK_RET(tf_socket(tf, fresh), 0);
    CHECK_RET(tf_listen(tf, fresh, 5), -EINVAL);
    /* ACCEPT and POLL on a socket that does not listen. */
    struct tf_sock *acc;
    CHECK_RET(tf_accept(tf, fresh, &acc, TF_TIMEOUT_MS), -EINVAL);
    CHECK_RET(tf_poll(tf, fresh, TF_TIMEOUT_MS), -EINVAL);

    /* On a connected socket: ACCEPT, POLL, LISTEN, BIND, CONNECT again. */
    struct tf_sock *conn = tf_sock_new(tf);
    CHECK_RET(tf_socket(tf, conn), 0);
    CHECK_RET(tf_connect(tf, conn, &ss, len), 0);
    CHECK_RET(tf_accept(tf, conn, &acc, TF_TIMEOUT_MS), -EINVAL);
    CHECK_RET(tf_poll(tf, conn, TF_TIMEOUT_MS), -EINVAL);
    CHECK_RET(tf_listen(tf, conn, 5), -EINVAL);
    CHECK_RET(tf_bind(tf, conn, &ss, len), -EINVAL);
    struct tf_ring *keep = conn->ring;
    conn->ring = NULL; /* a second ring for the second CONNECT */
    uint32_t req = tf_connect_send(tf, conn, &ss, len);
    CHECK_RET(tf_connect_finish(tf, conn, req, TF_TIMEOUT_MS), -EISCONN);
    conn->ring = keep;
    /* ... which still works. */
    cr_assert_eq(tf_write(conn, "abc", 3, TF_TIMEOUT_MS), 3);
    char buf[3];
    cr_assert_eq(tf_read_full(conn, buf, 3, TF_TIMEOUT_MS), 3);

    /* CONNECT on a listener. */
    struct tf_sock *ls = tf_sock_new(tf);
    CHECK_RET(tf_socket(tf, ls), 0);
    struct sockaddr_storage any;
    socklen_t any_len = hn_loopback(AF_INET, 0, &any);
    CHECK_RET(tf_bind(tf, ls, &any, any_len), 0);
    CHECK_RET(tf_listen(tf, ls, 5), 0);
    CHECK_RET(tf_connect(tf, ls, &ss, len), -EINVAL);

    CHECK_RET(tf_release(tf, conn), 0);
    CHECK_RET(tf_release(tf, ls), 0);
    CHECK_RET(tf_release(tf, fresh), 0);
    check_audit_journal(h, tf);
    tf_close(tf);
    hn_server_stop(echo);
    assert_backend_serves(h);
    h_stop(h);
}

/* One ACCEPT or POLL at a time per listener, as in Linux's backend. */
Test(backend_hostile, second_concurrent_accept, .fini = h_cleanup,
     .timeout = 30)
{
    struct harness *h = two_domains(NULL);
    struct tf *tf = tf_open_h(h, 1, PVC_EXT_SOCKNAME);
    struct tf_sock *ls = tf_sock_new(tf);
    CHECK_RET(tf_socket(tf, ls), 0);
    struct sockaddr_storage ss;
    socklen_t len = hn_loopback(AF_INET, 0, &ss);
    CHECK_RET(tf_bind(tf, ls, &ss, len), 0);
    CHECK_RET(tf_getsockname(tf, ls, &ss, &len), 0);
    CHECK_RET(tf_listen(tf, ls, 5), 0);

    struct tf_sock *first = tf_sock_new(tf);
    uint32_t req = tf_accept_send(tf, ls, first);
    struct tf_sock *second;
    CHECK_RET(tf_accept(tf, ls, &second, TF_TIMEOUT_MS), -EINTR);
    CHECK_RET(tf_poll(tf, ls, TF_TIMEOUT_MS), -EINTR);

    /* The first ACCEPT is intact. */
    struct hn_client *c = hn_client_start(&ss, len, 5, 3);
    CHECK_RET(tf_accept_finish(tf, first, req, TF_TIMEOUT_MS, NULL), 0);
    char buf[5];
    cr_assert_eq(tf_read_full(first, buf, 5, TF_TIMEOUT_MS), 5);
    cr_assert_eq(tf_write(first, buf, 5, TF_TIMEOUT_MS), 5);
    CHECK_RET(tf_release(tf, first), 0);
    struct hn_client_result r;
    cr_assert(hn_client_wait(c, TF_TIMEOUT_MS, &r));
    cr_assert_eq(r.bytes_in, 5);
    cr_assert_eq(r.hash_in, hn_stream_hash(3, 5));
    hn_client_free(c);
    CHECK_RET(tf_release(tf, ls), 0);
    check_audit_journal(h, tf);
    tf_close(tf);
    assert_backend_serves(h);
    h_stop(h);
}

/* ---- bad rings, grants and event channels -------------------------------- */

/* CONNECT s to addr with a ring whose indexes page was tampered with by
 * tamper(ring, arg) first; returns the answer. */
static int32_t connect_tampered(struct tf *tf, struct tf_sock *s,
                                const struct sockaddr_storage *addr,
                                socklen_t len,
                                void (*tamper)(struct tf_ring *, long),
                                long arg)
{
    s->ring = tf_ring_new(tf, s->order);
    cr_assert_not_null(s->ring);
    tamper(s->ring, arg);
    return tf_connect(tf, s, addr, len);
}

static void set_ring_order(struct tf_ring *r, long order)
{
    struct pvcalls_data_intf *intf = r->pages;
    intf->ring_order = (RING_IDX)order;
}

static void set_data_ref(struct tf_ring *r, long which)
{
    struct pvcalls_data_intf *intf = r->pages;
    intf->ref[which] = 0x7ffffff0u; /* never handed out */
}

Test(backend_hostile, bad_ring_orders, .fini = h_cleanup, .timeout = 30)
{
    static const char *const args[] = { "--max-page-order", "5", NULL };
    struct harness *h = two_domains(args);
    struct tf *tf = tf_open_h(h, 1, 0);
    cr_assert_eq(tf->fe.max_page_order, 5);
    struct hn_server *echo =
        hn_server_start(&(struct hn_server_cfg){ .mode = HN_ECHO });
    struct sockaddr_storage ss;
    socklen_t len = hn_server_addr(echo, &ss);
    struct tf_sock *s = tf_sock_new(tf);
    CHECK_RET(tf_socket(tf, s), 0);

    CHECK_RET(connect_tampered(tf, s, &ss, len, set_ring_order, 0), -EINVAL);
    /* 2^6 pages really granted, but more than the backend offers. */
    s->order = 6;
    CHECK_RET(connect_tampered(tf, s, &ss, len, set_ring_order, 6), -EINVAL);
    s->order = 4;
    CHECK_RET(connect_tampered(tf, s, &ss, len, set_ring_order, 10), -EINVAL);
    CHECK_RET(connect_tampered(tf, s, &ss, len, set_ring_order, 0xffffffff),
              -EINVAL);
    /* The largest order offered works. */
    s->order = 5;
    CHECK_RET(tf_connect(tf, s, &ss, len), 0);
    cr_assert_eq(tf_write(s, "x", 1, TF_TIMEOUT_MS), 1);
    char c;
    cr_assert_eq(tf_read(s, &c, 1, TF_TIMEOUT_MS), 1);
    CHECK_RET(tf_release(tf, s), 0);
    check_audit_journal(h, tf);
    tf_close(tf);
    hn_server_stop(echo);
    assert_backend_serves(h);
    h_stop(h);
}

Test(backend_hostile, grants_that_do_not_exist, .fini = h_cleanup,
     .timeout = 30)
{
    struct harness *h = two_domains(NULL);
    struct tf *tf = tf_open_h(h, 1, 0);
    struct hn_server *echo =
        hn_server_start(&(struct hn_server_cfg){ .mode = HN_ECHO });
    struct sockaddr_storage ss;
    socklen_t len = hn_server_addr(echo, &ss);
    struct tf_sock *s = tf_sock_new(tf);
    CHECK_RET(tf_socket(tf, s), 0);

    /* An indexes page ref nobody granted. */
    struct tf_ring *r = tf_ring_new(tf, 4);
    struct xen_pvcalls_request req = request(PVCALLS_CONNECT, s->id);
    memcpy(req.u.connect.addr, &ss, len);
    req.u.connect.len = len;
    req.u.connect.ref = 0x7ffffff0u;
    req.u.connect.evtchn = pvc_evtchn_port(r->evtchn);
    CHECK_RET(tf_call(tf, &req, TF_TIMEOUT_MS, NULL), -EFAULT);
    /* A page of domain 1 granted to domain 2, not to the backend. */
    void *page;
    pvc_gref_t to_other;
    cr_assert_eq(pvc_grant_share(tf->plat, 2, 1, 0, &page, &to_other), 0);
    req.u.connect.ref = to_other;
    CHECK_RET(tf_call(tf, &req, TF_TIMEOUT_MS, NULL), -EFAULT);
    pvc_grant_unshare(tf->plat, page, 1);
    /* A page granted read-only: the backend must be able to write. */
    cr_assert_eq(pvc_grant_share(tf->plat, 0, 1, 1, &page, &to_other), 0);
    req.u.connect.ref = to_other;
    CHECK_RET(tf_call(tf, &req, TF_TIMEOUT_MS, NULL), -EFAULT);
    pvc_grant_unshare(tf->plat, page, 1);
    tf_ring_free(tf, r);
    /* Data page refs that do not exist: the first, a middle one. */
    CHECK_RET(connect_tampered(tf, s, &ss, len, set_data_ref, 0), -EFAULT);
    CHECK_RET(connect_tampered(tf, s, &ss, len, set_data_ref, 7), -EFAULT);

    /* An ACCEPT with a bad ring fails when the connection comes, and
     * the listener goes on. */
    struct tf_sock *ls = tf_sock_new(tf);
    CHECK_RET(tf_socket(tf, ls), 0);
    uint16_t port = hn_closed_port(AF_INET);
    struct sockaddr_storage lss;
    socklen_t llen = hn_loopback(AF_INET, port, &lss);
    CHECK_RET(tf_bind(tf, ls, &lss, llen), 0);
    CHECK_RET(tf_listen(tf, ls, 5), 0);
    struct tf_sock *bad = tf_sock_new(tf);
    bad->ring = tf_ring_new(tf, 4);
    set_data_ref(bad->ring, 3);
    uint32_t acc = tf_accept_send(tf, ls, bad);
    struct hn_client *c1 = hn_client_start(&lss, llen, 0, 0);
    CHECK_RET(tf_accept_finish(tf, bad, acc, TF_TIMEOUT_MS, NULL), -EFAULT);
    struct hn_client *c2 = hn_client_start(&lss, llen, 3, 4);
    struct tf_sock *good;
    CHECK_RET(tf_accept(tf, ls, &good, TF_TIMEOUT_MS), 0);
    char buf[3];
    cr_assert_eq(tf_read_full(good, buf, 3, TF_TIMEOUT_MS), 3);
    CHECK_RET(tf_release(tf, good), 0);
    hn_client_free(c1);
    hn_client_free(c2);

    /* The socket itself is fine. */
    CHECK_RET(tf_connect(tf, s, &ss, len), 0);
    CHECK_RET(tf_release(tf, s), 0);
    check_audit_journal(h, tf);
    tf_close(tf);
    hn_server_stop(echo);
    assert_backend_serves(h);
    h_stop(h);
}

Test(backend_hostile, event_channels_that_do_not_exist, .fini = h_cleanup,
     .timeout = 30)
{
    struct harness *h = two_domains(NULL);
    struct tf *tf = tf_open_h(h, 1, 0);
    struct hn_server *echo =
        hn_server_start(&(struct hn_server_cfg){ .mode = HN_ECHO });
    struct sockaddr_storage ss;
    socklen_t len = hn_server_addr(echo, &ss);
    struct tf_sock *s = tf_sock_new(tf);
    CHECK_RET(tf_socket(tf, s), 0);

    struct tf_ring *r = tf_ring_new(tf, 4);
    struct xen_pvcalls_request req = request(PVCALLS_CONNECT, s->id);
    memcpy(req.u.connect.addr, &ss, len);
    req.u.connect.len = len;
    req.u.connect.ref = r->refs[0];
    static const uint32_t ports[] = { 0, 4095, 100000, 0xffffffffu };
    for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
        req.u.connect.evtchn = ports[i];
        CHECK_RET(tf_call(tf, &req, TF_TIMEOUT_MS, NULL), -EINVAL);
    }
    /* A channel of domain 1 meant for domain 2, and domain 1's command
     * channel (bound already). */
    struct pvc_evtchn *to_other = pvc_evtchn_alloc_unbound(tf->plat, 2);
    cr_assert_not_null(to_other);
    req.u.connect.evtchn = pvc_evtchn_port(to_other);
    CHECK_RET(tf_call(tf, &req, TF_TIMEOUT_MS, NULL), -EINVAL);
    pvc_evtchn_close(to_other);
    req.u.connect.evtchn = pvc_evtchn_port(tf->fe.cmd_evtchn);
    CHECK_RET(tf_call(tf, &req, TF_TIMEOUT_MS, NULL), -EINVAL);
    /* The ring's own channel works (so the failures freed the mapping
     * and nothing of the ring was kept). */
    req.u.connect.evtchn = pvc_evtchn_port(r->evtchn);
    CHECK_RET(tf_call(tf, &req, TF_TIMEOUT_MS, NULL), 0);
    s->ring = r;
    cr_assert_eq(tf_write(s, "ok", 2, TF_TIMEOUT_MS), 2);
    char buf[2];
    cr_assert_eq(tf_read_full(s, buf, 2, TF_TIMEOUT_MS), 2);
    CHECK_RET(tf_release(tf, s), 0);
    check_audit_journal(h, tf);
    tf_close(tf);
    hn_server_stop(echo);
    assert_backend_serves(h);
    h_stop(h);
}

/* ---- flooding and corrupting the rings --------------------------------- */

static void wait_backend_state(struct tf *tf, int a, int b, int timeout_ms)
{
    int64_t deadline = hn_now_ms() + timeout_ms;
    int st;
    /* The frontend's watch on the backend state (token pvc-be-state)
     * fires on every change: block on it. */
    while ((st = pvc_xb_front_backend_state(&tf->fe)) != a && st != b) {
        int64_t left = deadline - hn_now_ms();
        cr_assert_gt(left, 0, "backend state %d, expected %d or %d", st, a,
                     b);
        struct pollfd p = { .fd = xs_fileno(tf->xs), .events = POLLIN };
        if (poll(&p, 1, (int)left) > 0) {
            unsigned n;
            free(xs_read_watch(tf->xs, &n));
        }
    }
}

Test(backend_hostile, request_flood_resets_the_device, .fini = h_cleanup,
     .timeout = 60)
{
    struct harness *h = two_domains(NULL);
    struct hn_server *echo =
        hn_server_start(&(struct hn_server_cfg){ .mode = HN_ECHO });
    struct sockaddr_storage ss;
    socklen_t len = hn_server_addr(echo, &ss);
    /* Domain 2 has a live connection through the whole episode. */
    struct tf *tf2 = tf_open_h(h, 2, 0);
    struct tf_sock *s2 = tf_sock_new(tf2);
    CHECK_RET(tf_socket(tf2, s2), 0);
    CHECK_RET(tf_connect(tf2, s2, &ss, len), 0);

    struct tf *tf1 = tf_open_h(h, 1, 0);
    struct tf_sock *s1 = tf_sock_new(tf1);
    CHECK_RET(tf_socket(tf1, s1), 0);
    CHECK_RET(tf_connect(tf1, s1, &ss, len), 0);
    /* 1000 requests claimed on a ring of 32. */
    tf1->fe.cmd.ring.sring->req_prod += 1000;
    tf_notify_cmd(tf1);

    cr_assert_eq(h_audit_wait(h, &(struct audit_q){ .event = "violation",
                                                    .dom = 1 }, 1, 5000), 1);
    cr_assert_eq(h_audit_wait(h, &(struct audit_q){
                     .event = "device-disconnect", .dom = 1 }, 1, 5000), 1);
    wait_backend_state(tf1, XenbusStateClosing, XenbusStateClosed, 5000);
    /* Its sockets went with it: the host side saw the connection end. */
    cr_assert(hn_server_wait_done(echo, 1, TF_TIMEOUT_MS));
    check_close_record(h, 1, s1->id, 0, 0);

    /* Domain 2 never noticed. */
    char buf[16];
    cr_assert_eq(tf_write(s2, "still here", 10, TF_TIMEOUT_MS), 10);
    cr_assert_eq(tf_read_full(s2, buf, 10, TF_TIMEOUT_MS), 10);
    cr_assert_arr_eq(buf, "still here", 10);
    CHECK_RET(tf_release(tf2, s2), 0);
    check_audit_journal(h, tf2);
    tf_close(tf2);
    assert_backend_serves(h);

    /* Domain 1 resets and is served again. */
    CHECK_RET(tf_reconnect(tf1, 0, TF_TIMEOUT_MS), 0);
    tf1->next_req_id = 1000; /* req_ids of the old session are audited */
    tf1->next_sock_id = 1000;
    check_tf_serves(h, tf1);
    tf_close(tf1);
    hn_server_stop(echo);
    h_stop(h);
}

static void corrupt_out_prod(struct tf_sock *s)
{
    struct pvcalls_data_intf *intf = s->ring->pages;
    intf->out_prod = intf->out_cons + 0x80000000u;
    tf_notify(s);
}

static void corrupt_in_cons(struct tf_sock *s)
{
    struct pvcalls_data_intf *intf = s->ring->pages;
    intf->in_cons = intf->in_prod + 12345;
    /* Data coming back from the echo server makes the backend look. */
    cr_assert_eq(tf_write(s, "boom", 4, TF_TIMEOUT_MS), 4);
}

Test(backend_hostile, corrupted_data_ring_indexes, .fini = h_cleanup,
     .timeout = 60)
{
    struct harness *h = two_domains(NULL);
    struct hn_server *echo =
        hn_server_start(&(struct hn_server_cfg){ .mode = HN_ECHO });
    struct sockaddr_storage ss;
    socklen_t len = hn_server_addr(echo, &ss);
    struct tf *tf = tf_open_h(h, 1, 0);
    struct tf_sock *s[3];
    for (int i = 0; i < 3; i++) {
        s[i] = tf_sock_new(tf);
        CHECK_RET(tf_socket(tf, s[i]), 0);
        CHECK_RET(tf_connect(tf, s[i], &ss, len), 0);
    }
    corrupt_out_prod(s[0]);
    corrupt_in_cons(s[1]);

    /* Both broken sockets are shut down: reset seen on the ring... */
    char buf[16];
    for (int i = 0; i < 2; i++) {
        CHECK_RET(tf_read(s[i], buf, sizeof(buf), TF_TIMEOUT_MS),
                  -ECONNRESET);
        cr_assert_eq(pvc_ring_out_error(&s[i]->ring->ring), -ECONNRESET);
        cr_assert_eq(h_audit_wait(h, &(struct audit_q){
                         .event = "violation", .dom = 1,
                         .id = (long long)s[i]->id }, 1, 5000), 1);
    }
    /* ... and on the host: both connections ended. */
    cr_assert(hn_server_wait_done(echo, 2, TF_TIMEOUT_MS));

    /* The third socket of the same domain works on. */
    cr_assert_eq(tf_write(s[2], "fine", 4, TF_TIMEOUT_MS), 4);
    cr_assert_eq(tf_read_full(s[2], buf, 4, TF_TIMEOUT_MS), 4);
    cr_assert_arr_eq(buf, "fine", 4);
    /* The broken ones can be released. */
    for (int i = 0; i < 3; i++)
        CHECK_RET(tf_release(tf, s[i]), 0);
    check_tf_serves(h, tf);
    tf_close(tf);
    hn_server_stop(echo);
    assert_backend_serves(h);
    h_stop(h);
}

/* ---- garbage in xenstore ------------------------------------------------- */

struct raw_fe {
    struct pvc_platform *plat;
    struct xs_handle *xs;
    char fe[128], be[128];
};

static void raw_fe_open(struct harness *h, int domid, struct raw_fe *r)
{
    struct pvc_platform_opts po = { .kind = PVC_PLATFORM_SIM,
                                    .sim_domid = domid, .sim_dir = h->dir };
    r->plat = pvc_platform_open(&po);
    cr_assert_not_null(r->plat);
    r->xs = pvc_store_open(r->plat);
    cr_assert_not_null(r->xs);
    snprintf(r->fe, sizeof(r->fe), "/local/domain/%d/device/pvcalls/0",
             domid);
    char path[160];
    snprintf(path, sizeof(path), "%s/backend", r->fe);
    unsigned n;
    char *be = xs_read(r->xs, XBT_NULL, path, &n);
    cr_assert_not_null(be);
    snprintf(r->be, sizeof(r->be), "%s", be);
    free(be);
}

static void raw_fe_close(struct raw_fe *r)
{
    xs_close(r->xs);
    pvc_platform_close(r->plat);
}

static void raw_write(struct raw_fe *r, const char *key, const char *val)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/%s", r->fe, key);
    cr_assert(xs_write(r->xs, XBT_NULL, path, val, strlen(val)), "%s", path);
}

static int raw_be_state(struct raw_fe *r)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/state", r->be);
    unsigned n;
    char *v = xs_read(r->xs, XBT_NULL, path, &n);
    int st = v ? atoi(v) : -1;
    free(v);
    return st;
}

/* Block on a watch of the backend's state until it is one of a or b. */
static int raw_wait_be(struct raw_fe *r, int a, int b, int timeout_ms)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/state", r->be);
    cr_assert(xs_watch(r->xs, path, "raw"));
    int64_t deadline = hn_now_ms() + timeout_ms;
    int st;
    while ((st = raw_be_state(r)) != a && st != b) {
        int64_t left = deadline - hn_now_ms();
        if (left <= 0)
            break;
        struct pollfd p = { .fd = xs_fileno(r->xs), .events = POLLIN };
        if (poll(&p, 1, (int)left) > 0) {
            unsigned n;
            free(xs_read_watch(r->xs, &n));
        }
    }
    xs_unwatch(r->xs, path, "raw");
    return st;
}

/* The backend's state stays `state` for quiet_ms: it does not keep
 * retrying a frontend that did not move (which would burn a CPU and
 * starve every other domain). */
static void raw_assert_settled(struct raw_fe *r, int state, int quiet_ms)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/state", r->be);
    cr_assert(xs_watch(r->xs, path, "settle"));
    int64_t deadline = hn_now_ms() + quiet_ms;
    int changes = -1; /* xs_watch fires once at registration */
    for (int64_t left; (left = deadline - hn_now_ms()) > 0;) {
        struct pollfd p = { .fd = xs_fileno(r->xs), .events = POLLIN };
        if (poll(&p, 1, (int)left) > 0) {
            unsigned n;
            char **ev = xs_read_watch(r->xs, &n);
            /* Events of raw_wait_be's watch may still be queued: count
             * only this watch's. */
            if (ev && n > XS_WATCH_TOKEN && !strcmp(ev[XS_WATCH_TOKEN], "settle"))
                changes++;
            free(ev);
        }
    }
    xs_unwatch(r->xs, path, "settle");
    cr_assert_leq(changes, 0, "the backend state changed %d times in %d ms "
                  "with the frontend idle", changes, quiet_ms);
    cr_assert_eq(raw_be_state(r), state);
}

/* Go through the handshake with the keys given, and return the state the
 * backend settles in: it must refuse (Closing), never connect. */
static int garbage_handshake(struct raw_fe *r, const char *ring_ref,
                             const char *port)
{
    raw_write(r, "state", "1");
    cr_assert_eq(raw_wait_be(r, XenbusStateInitWait, XenbusStateInitWait,
                             5000), XenbusStateInitWait);
    char path[160];
    snprintf(path, sizeof(path), "%s/ring-ref", r->fe);
    xs_rm(r->xs, XBT_NULL, path);
    snprintf(path, sizeof(path), "%s/port", r->fe);
    xs_rm(r->xs, XBT_NULL, path);
    if (ring_ref)
        raw_write(r, "ring-ref", ring_ref);
    if (port)
        raw_write(r, "port", port);
    raw_write(r, "version", "1");
    raw_write(r, "state", "3");
    return raw_wait_be(r, XenbusStateClosing, XenbusStateConnected, 5000);
}

Test(backend_hostile, garbage_xenstore_values, .fini = h_cleanup,
     .timeout = 60)
{
    struct harness *h = two_domains(NULL);
    struct raw_fe r;
    raw_fe_open(h, 1, &r);
    /* A real grant and channel, to pair with garbage in the other key. */
    void *page;
    pvc_gref_t ref;
    cr_assert_eq(pvc_grant_share(r.plat, 0, 1, 0, &page, &ref), 0);
    struct pvc_evtchn *ch = pvc_evtchn_alloc_unbound(r.plat, 0);
    cr_assert_not_null(ch);
    char good_ref[16], good_port[16];
    snprintf(good_ref, sizeof(good_ref), "%u", ref);
    snprintf(good_port, sizeof(good_port), "%u", pvc_evtchn_port(ch));

    static const struct {
        const char *ring_ref, *port;
    } cases[] = {
        { "abc", NULL },
        { "", NULL },
        { "12abc", NULL },
        { "-1", NULL },
        { "99999999999999999999", NULL },
        { "2147483000", NULL }, /* a number, but no such grant */
        { NULL, "xyz" },
        { NULL, "" },
        { NULL, "4294967296" },
        { NULL, "4000" }, /* a number, but no such channel */
        { NULL, "-" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *rr = cases[i].ring_ref ? cases[i].ring_ref : good_ref;
        const char *pt = cases[i].port ? cases[i].port : good_port;
        cr_assert_eq(garbage_handshake(&r, rr, pt), XenbusStateClosing,
                     "ring-ref \"%s\" port \"%s\"", rr, pt);
        cr_assert(h_backend_alive(h));
    }
    /* Missing keys. */
    cr_assert_eq(garbage_handshake(&r, NULL, good_port),
                 XenbusStateClosing);
    cr_assert_eq(garbage_handshake(&r, good_ref, NULL),
                 XenbusStateClosing);
    /* The frontend stays Initialised with its garbage. */
    raw_assert_settled(&r, XenbusStateClosing, 500);
    pvc_evtchn_close(ch);
    pvc_grant_unshare(r.plat, page, 1);
    raw_fe_close(&r);
    assert_backend_serves(h);

    /* No device-connect for domain 1 was ever audited... */
    struct audit a;
    h_audit(h, &a);
    cr_assert_eq(audit_count(&a, &(struct audit_q){
                     .event = "device-connect", .dom = 1 }), 0);
    audit_free(&a);
    /* ... and a real frontend of domain 1 resets and is served. */
    check_domain_serves(h, 1);
    h_stop(h);
}
