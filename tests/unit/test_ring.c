/*
 * Data rings and the command ring, both sides attached to the same plain
 * memory (no platform): stream integrity across wraps, index wrap-around at
 * 2^32, full/empty, peek, the iov API, hostile peer indexes, and the
 * command ring's limits, ordering and notification decisions.
 *
 * The data area is malloc'ed at exactly 2^order pages, so under ASan any
 * access past it is caught; accesses into the wrong half are checked by
 * hand (in_bounds()).
 */
#include "pvc/ext.h"
#include "pvc/ring.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>

/* ---- fixtures ------------------------------------------------------ */

struct pair {
    struct pvcalls_data_intf *intf;
    unsigned char *data;
    unsigned order;
    struct pvc_data_ring front, back;
};

/* Both sides of a fresh ring, with every index starting at `start`. */
static void pair_open(struct pair *p, unsigned order, RING_IDX start)
{
    uint32_t refs[1u << PVC_MAX_RING_ORDER];
    for (unsigned i = 0; i < 1u << order; i++)
        refs[i] = 100 + i;
    p->order = order;
    p->intf = malloc(PVC_PAGE_SIZE);
    p->data = malloc((size_t)PVC_PAGE_SIZE << order);
    cr_assert(p->intf && p->data);
    memset(p->intf, 0xa5, PVC_PAGE_SIZE);
    pvc_data_ring_init_intf(p->intf, order, refs);
    cr_assert_eq(p->intf->ring_order, order);
    cr_assert_eq(p->intf->ref[(1u << order) - 1], 100 + (1u << order) - 1);
    cr_assert_eq(p->intf->in_error, 0);
    p->intf->in_prod = p->intf->in_cons = start;
    p->intf->out_prod = p->intf->out_cons = start;
    pvc_data_ring_attach(&p->front, p->intf, p->data, order, PVC_SIDE_FRONT);
    pvc_data_ring_attach(&p->back, p->intf, p->data, order, PVC_SIDE_BACK);
}

static void pair_close(struct pair *p)
{
    free(p->intf);
    free(p->data);
}

/* Does [base, base+len) lie inside buf[0..size)? */
static int in_bounds(const void *base, size_t len, const unsigned char *buf,
                     size_t size)
{
    const unsigned char *b = base;
    return len == 0 || (b >= buf && b + len <= buf + size);
}

static void assert_iov_in(const struct iovec iov[2], long n,
                          const unsigned char *buf, size_t size)
{
    cr_assert(in_bounds(iov[0].iov_base, iov[0].iov_len, buf, size));
    cr_assert(in_bounds(iov[1].iov_base, iov[1].iov_len, buf, size));
    cr_assert_eq(iov[0].iov_len + iov[1].iov_len, (size_t)n);
}

/* A deterministic byte stream: byte k of stream `seed`. */
static unsigned char stream_byte(uint64_t k, unsigned seed)
{
    uint64_t x = (k + seed) * 0x9E3779B97F4A7C15ull;
    return (unsigned char)(x >> 56);
}

/* ---- data rings: streams ------------------------------------------- */

/* Send `total` bytes from tx to rx in random chunk sizes, alternating
 * between the copy and iov APIs, checking every byte that arrives. */
static void pump(struct pvc_data_ring *tx, struct pvc_data_ring *rx,
                 uint64_t total, unsigned seed)
{
    unsigned char chunk[70000];
    uint64_t sent = 0, got = 0;
    srand(seed);
    while (got < total) {
        size_t want = 1 + (size_t)rand() % (tx->size + tx->size / 2);
        if (want > total - sent)
            want = (size_t)(total - sent);
        if (want && rand() % 2) {
            for (size_t i = 0; i < want; i++)
                chunk[i] = stream_byte(sent + i, seed);
            long n = pvc_ring_tx_copy(tx, chunk, want);
            cr_assert_geq(n, 0);
            sent += (uint64_t)n;
        } else if (want) {
            struct iovec iov[2];
            long space = pvc_ring_tx_iov(tx, iov);
            cr_assert_geq(space, 0);
            assert_iov_in(iov, space, tx->tx_buf, tx->size);
            size_t n = want < (size_t)space ? want : (size_t)space;
            for (size_t i = 0; i < n; i++) {
                unsigned char *dst = i < iov[0].iov_len
                    ? (unsigned char *)iov[0].iov_base + i
                    : (unsigned char *)iov[1].iov_base + (i - iov[0].iov_len);
                *dst = stream_byte(sent + i, seed);
            }
            pvc_ring_tx_produce(tx, (RING_IDX)n);
            sent += n;
        }
        cr_assert_eq(pvc_ring_tx_unconsumed(tx), (long)(sent - got));

        size_t take = 1 + (size_t)rand() % (rx->size + rx->size / 2);
        if (rand() % 2) {
            long n = pvc_ring_rx_copy(rx, chunk, take, 0);
            cr_assert_geq(n, 0);
            for (long i = 0; i < n; i++)
                cr_assert_eq(chunk[i], stream_byte(got + i, seed),
                             "byte %llu", (unsigned long long)(got + i));
            got += (uint64_t)n;
        } else {
            struct iovec iov[2];
            long avail = pvc_ring_rx_iov(rx, iov);
            cr_assert_geq(avail, 0);
            cr_assert_eq((uint64_t)avail, sent - got);
            assert_iov_in(iov, avail, rx->rx_buf, rx->size);
            size_t n = take < (size_t)avail ? take : (size_t)avail;
            for (size_t i = 0; i < n; i++) {
                const unsigned char *src = i < iov[0].iov_len
                    ? (unsigned char *)iov[0].iov_base + i
                    : (unsigned char *)iov[1].iov_base + (i - iov[0].iov_len);
                cr_assert_eq(*src, stream_byte(got + i, seed));
            }
            pvc_ring_rx_consume(rx, (RING_IDX)n);
            got += n;
        }
    }
    cr_assert_eq(sent, total);
    cr_assert_eq(pvc_ring_tx_unconsumed(tx), 0);
}

Test(data_ring, stream_front_to_back_many_wraps)
{
    struct pair p;
    pair_open(&p, 1, 0);
    pump(&p.front, &p.back, 100ull * p.front.size + 17, 1);
    /* The stream crossed the out half only: in is untouched. */
    cr_assert_eq(p.intf->in_prod, 0);
    cr_assert_eq(p.intf->in_cons, 0);
    pair_close(&p);
}

Test(data_ring, stream_back_to_front_many_wraps)
{
    struct pair p;
    pair_open(&p, 2, 0);
    pump(&p.back, &p.front, 100ull * p.back.size + 5, 2);
    cr_assert_eq(p.intf->out_prod, 0);
    pair_close(&p);
}

Test(data_ring, both_directions_at_once_order_4)
{
    struct pair p;
    pair_open(&p, 4, 0);
    for (int round = 0; round < 8; round++) {
        pump(&p.front, &p.back, 3ull * p.front.size + 1, 10 + round);
        pump(&p.back, &p.front, 3ull * p.back.size + 3, 20 + round);
    }
    pair_close(&p);
}

Test(data_ring, halves_are_where_the_header_says)
{
    struct pair p;
    pair_open(&p, 1, 0);
    cr_assert_eq(p.front.size, 4096);
    cr_assert_eq(p.front.rx_buf, p.data);        /* in: first half */
    cr_assert_eq(p.front.tx_buf, p.data + 4096); /* out: second half */
    cr_assert_eq(p.back.rx_buf, p.data + 4096);
    cr_assert_eq(p.back.tx_buf, p.data);
    cr_assert_eq(pvc_ring_tx_copy(&p.front, "abc", 3), 3);
    cr_assert_eq(memcmp(p.data + 4096, "abc", 3), 0);
    cr_assert_eq(p.intf->out_prod, 3);
    cr_assert_eq(pvc_ring_tx_copy(&p.back, "xy", 2), 2);
    cr_assert_eq(memcmp(p.data, "xy", 2), 0);
    cr_assert_eq(p.intf->in_prod, 2);
    pair_close(&p);
}

Test(data_ring, wraps_around_2_to_the_32)
{
    struct pair p;
    pair_open(&p, 1, UINT32_MAX - 1000);
    pump(&p.front, &p.back, 20ull * p.front.size, 3);
    pump(&p.back, &p.front, 20ull * p.back.size, 4);
    /* The free-running indexes really went through zero. */
    cr_assert_lt(p.intf->out_prod, 1000000u);
    cr_assert_lt(p.intf->in_prod, 1000000u);
    pair_close(&p);
}

Test(data_ring, full_and_empty_exactly)
{
    struct pair p;
    pair_open(&p, 1, UINT32_MAX - 10); /* full straddles 2^32 */
    RING_IDX size = p.front.size;
    unsigned char *buf = malloc(size + 100);
    memset(buf, 'x', size + 100);

    cr_assert_eq(pvc_ring_rx_copy(&p.back, buf, 10, 0), 0); /* empty */
    cr_assert_eq(pvc_ring_tx_copy(&p.front, buf, size + 100), (long)size);
    cr_assert_eq(pvc_ring_tx_copy(&p.front, buf, 1), 0); /* full */
    struct iovec iov[2];
    cr_assert_eq(pvc_ring_tx_iov(&p.front, iov), 0);
    cr_assert_eq(iov[0].iov_len + iov[1].iov_len, 0);
    cr_assert_eq(pvc_ring_tx_unconsumed(&p.front), (long)size);
    cr_assert_eq(pvc_ring_rx_iov(&p.back, iov), (long)size);

    cr_assert_eq(pvc_ring_rx_copy(&p.back, buf, size - 1, 0), (long)size - 1);
    cr_assert_eq(pvc_ring_tx_iov(&p.front, iov), size - 1);
    cr_assert_eq(pvc_ring_rx_copy(&p.back, buf, size, 0), 1);
    cr_assert_eq(pvc_ring_rx_copy(&p.back, buf, size, 0), 0);
    cr_assert_eq(pvc_ring_tx_unconsumed(&p.front), 0);
    cr_assert_eq(pvc_ring_tx_iov(&p.front, iov), (long)size);
    free(buf);
    pair_close(&p);
}

Test(data_ring, peek_does_not_consume)
{
    struct pair p;
    pair_open(&p, 1, 0);
    char out[16] = { 0 };
    cr_assert_eq(pvc_ring_tx_copy(&p.back, "hello world", 11), 11);
    cr_assert_eq(pvc_ring_rx_copy(&p.front, out, 5, 1), 5);
    cr_assert_str_eq(out, "hello");
    cr_assert_eq(p.intf->in_cons, 0, "peek must not move in_cons");
    memset(out, 0, sizeof(out));
    cr_assert_eq(pvc_ring_rx_copy(&p.front, out, sizeof(out), 1), 11);
    cr_assert_str_eq(out, "hello world");
    memset(out, 0, sizeof(out));
    cr_assert_eq(pvc_ring_rx_copy(&p.front, out, 6, 0), 6);
    cr_assert_str_eq(out, "hello ");
    cr_assert_eq(p.intf->in_cons, 6);
    memset(out, 0, sizeof(out));
    cr_assert_eq(pvc_ring_rx_copy(&p.front, out, sizeof(out), 0), 5);
    cr_assert_str_eq(out, "world");
    pair_close(&p);
}

Test(data_ring, iov_splits_at_the_end_of_the_half)
{
    struct pair p;
    pair_open(&p, 1, 0);
    RING_IDX size = p.front.size;
    unsigned char *buf = calloc(1, size);
    /* Move both indexes to 100 bytes before the end of the half. */
    cr_assert_eq(pvc_ring_tx_copy(&p.front, buf, size - 100), size - 100);
    cr_assert_eq(pvc_ring_rx_copy(&p.back, buf, size, 0), size - 100);

    struct iovec iov[2];
    cr_assert_eq(pvc_ring_tx_iov(&p.front, iov), (long)size);
    cr_assert_eq(iov[0].iov_base, p.front.tx_buf + size - 100);
    cr_assert_eq(iov[0].iov_len, 100);
    cr_assert_eq(iov[1].iov_base, p.front.tx_buf);
    cr_assert_eq(iov[1].iov_len, size - 100);
    memset(iov[0].iov_base, 'A', 100);
    memset(iov[1].iov_base, 'B', 50);
    pvc_ring_tx_produce(&p.front, 150);

    cr_assert_eq(pvc_ring_rx_iov(&p.back, iov), 150);
    cr_assert_eq(iov[0].iov_base, p.back.rx_buf + size - 100);
    cr_assert_eq(iov[0].iov_len, 100);
    cr_assert_eq(iov[1].iov_base, p.back.rx_buf);
    cr_assert_eq(iov[1].iov_len, 50);
    pvc_ring_rx_consume(&p.back, 120);
    cr_assert_eq(pvc_ring_rx_copy(&p.back, buf, size, 0), 30);
    for (int i = 0; i < 30; i++)
        cr_assert_eq(buf[i], 'B');
    free(buf);
    pair_close(&p);
}

Test(data_ring, error_words_are_signed)
{
    struct pair p;
    pair_open(&p, 1, 0);
    cr_assert_eq(pvc_ring_in_error(&p.front), 0);
    cr_assert_eq(pvc_ring_out_error(&p.front), 0);
    pvc_ring_set_in_error(&p.back, -ENOTCONN);
    pvc_ring_set_out_error(&p.back, -EPIPE);
    cr_assert_eq(pvc_ring_in_error(&p.front), -ENOTCONN);
    cr_assert_eq(pvc_ring_out_error(&p.front), -EPIPE);
    cr_assert_eq(p.intf->in_error, (RING_IDX)-107);
    pair_close(&p);
}

Test(data_ring, reattach_resumes_from_shared_indexes)
{
    struct pair p;
    pair_open(&p, 1, 0);
    cr_assert_eq(pvc_ring_tx_copy(&p.front, "0123456789", 10), 10);
    char out[4];
    cr_assert_eq(pvc_ring_rx_copy(&p.back, out, 4, 0), 4);
    struct pvc_data_ring again;
    pvc_data_ring_attach(&again, p.intf, p.data, 1, PVC_SIDE_BACK);
    cr_assert_eq(again.rx_cons_pvt, 4);
    cr_assert_eq(pvc_ring_rx_copy(&again, out, 4, 0), 4);
    cr_assert_eq(memcmp(out, "4567", 4), 0);
    pair_close(&p);
}

/* ---- data rings: hostile peers ------------------------------------- */

Test(data_ring_hostile, prod_beyond_size_is_eproto)
{
    struct pair p;
    pair_open(&p, 1, 0);
    char buf[64];
    struct iovec iov[2];
    /* A backend claiming size+1 bytes in `in`. */
    p.intf->in_prod = p.intf->in_cons + p.front.size + 1;
    cr_assert_eq(pvc_ring_rx_iov(&p.front, iov), -EPROTO);
    cr_assert_eq(pvc_ring_rx_copy(&p.front, buf, sizeof(buf), 0), -EPROTO);
    cr_assert_eq(pvc_ring_rx_copy(&p.front, buf, sizeof(buf), 1), -EPROTO);
    cr_assert_eq(p.intf->in_cons, 0, "nothing consumed on error");
    /* Exactly size is a legal full ring. */
    p.intf->in_prod = p.front.size;
    cr_assert_eq(pvc_ring_rx_iov(&p.front, iov), (long)p.front.size);
    /* prod behind cons looks like ~4 GiB queued. */
    p.intf->in_prod = (RING_IDX)-1;
    cr_assert_eq(pvc_ring_rx_iov(&p.front, iov), -EPROTO);
    pair_close(&p);
}

Test(data_ring_hostile, random_prod_never_leaves_the_half)
{
    struct pair p;
    pair_open(&p, 1, 0);
    unsigned char buf[8192];
    srand(7);
    int valid = 0;
    for (int i = 0; i < 20000; i++) {
        /* Mostly near cons, sometimes anywhere, from either peer. */
        RING_IDX noise = (RING_IDX)rand() ^ ((RING_IDX)rand() << 16);
        RING_IDX near = p.front.rx_cons_pvt + (RING_IDX)(rand() % 9000) - 200;
        p.intf->in_prod = i % 3 ? near : noise;
        p.intf->out_prod = i % 3 ? p.back.rx_cons_pvt + (RING_IDX)(rand() % 9000)
                                 : noise;
        struct iovec iov[2];
        long n = pvc_ring_rx_iov(&p.front, iov);
        cr_assert(n == -EPROTO || (n >= 0 && n <= (long)p.front.size));
        if (n >= 0) {
            valid++;
            assert_iov_in(iov, n, p.front.rx_buf, p.front.size);
        }
        /* Copying reads every claimed byte: ASan checks the bounds. */
        long c = pvc_ring_rx_copy(&p.back, buf, sizeof(buf), i % 2);
        cr_assert(c == -EPROTO || (c >= 0 && c <= (long)p.back.size));
        c = pvc_ring_rx_copy(&p.front, buf, sizeof(buf), i % 2);
        cr_assert(c == -EPROTO || (c >= 0 && c <= (long)p.front.size));
    }
    cr_assert_gt(valid, 1000, "the near values exercise the valid path");
    pair_close(&p);
}

Test(data_ring_hostile, cons_beyond_prod_is_eproto)
{
    struct pair p;
    pair_open(&p, 1, 0);
    char buf[100] = { 0 };
    struct iovec iov[2];
    cr_assert_eq(pvc_ring_tx_copy(&p.front, buf, 100), 100);
    /* The backend claims to have consumed more than we produced. */
    p.intf->out_cons = 101;
    cr_assert_eq(pvc_ring_tx_iov(&p.front, iov), -EPROTO);
    cr_assert_eq(pvc_ring_tx_copy(&p.front, buf, 10), -EPROTO);
    cr_assert_eq(pvc_ring_tx_unconsumed(&p.front), -EPROTO);
    cr_assert_eq(p.intf->out_prod, 100, "nothing produced on error");
    /* ... or moves cons back by more than the ring holds. */
    p.intf->out_cons = 100 - p.front.size - 1;
    cr_assert_eq(pvc_ring_tx_iov(&p.front, iov), -EPROTO);
    /* Back by exactly the size: a full ring, zero space, no write. */
    p.intf->out_cons = 100 - p.front.size;
    cr_assert_eq(pvc_ring_tx_copy(&p.front, buf, 10), 0);
    /* The frontend does the same to the backend's `in`. */
    cr_assert_eq(pvc_ring_tx_copy(&p.back, buf, 50), 50);
    p.intf->in_cons = 51;
    cr_assert_eq(pvc_ring_tx_copy(&p.back, buf, 1), -EPROTO);
    p.intf->in_cons = 0xdeadbeef;
    cr_assert_eq(pvc_ring_tx_unconsumed(&p.back), -EPROTO);
    pair_close(&p);
}

Test(data_ring_hostile, random_cons_never_leaves_the_half)
{
    struct pair p;
    pair_open(&p, 1, UINT32_MAX - 3000);
    unsigned char buf[9000];
    memset(buf, 1, sizeof(buf));
    srand(11);
    int wrote = 0;
    for (int i = 0; i < 20000; i++) {
        RING_IDX base = p.front.tx_prod_pvt;
        p.intf->out_cons = i % 2 ? base - (RING_IDX)(rand() % 9000)
                                 : (RING_IDX)rand() * 7919u;
        long n = pvc_ring_tx_copy(&p.front, buf, (size_t)(rand() % 9000));
        cr_assert(n == -EPROTO || (n >= 0 && n <= (long)p.front.size));
        if (n > 0)
            wrote++;
        struct iovec iov[2];
        n = pvc_ring_tx_iov(&p.front, iov);
        if (n >= 0)
            assert_iov_in(iov, n, p.front.tx_buf, p.front.size);
    }
    cr_assert_gt(wrote, 1000);
    pair_close(&p);
}

/* ---- command ring -------------------------------------------------- */

struct cmd_pair {
    void *page;
    struct pvc_cmd_front fe;
    struct pvc_cmd_back be;
};

static void cmd_open(struct cmd_pair *c)
{
    c->page = malloc(PVC_PAGE_SIZE);
    cr_assert(c->page);
    memset(c->page, 0xee, PVC_PAGE_SIZE);
    pvc_cmd_front_init(&c->fe, c->page);
    pvc_cmd_back_attach(&c->be, c->page);
}

static struct xen_pvcalls_request make_req(uint32_t req_id, uint32_t cmd)
{
    struct xen_pvcalls_request req;
    memset(&req, 0, sizeof(req));
    req.req_id = req_id;
    req.cmd = cmd;
    req.u.socket.id = 0x1000 + req_id;
    return req;
}

static void answer(struct cmd_pair *c, const struct xen_pvcalls_request *req,
                   int32_t ret)
{
    struct xen_pvcalls_response rsp;
    memset(&rsp, 0, sizeof(rsp));
    rsp.req_id = req->req_id;
    rsp.cmd = req->cmd;
    rsp.ret = ret;
    rsp.u.socket.id = req->u.socket.id;
    cr_assert_eq(pvc_cmd_back_put(&c->be, &rsp, sizeof(rsp)), 0);
}

Test(cmd_ring, geometry)
{
    struct cmd_pair c;
    cmd_open(&c);
    cr_assert_eq(RING_SIZE(&c.fe.ring), 32);
    cr_assert_eq(RING_SIZE(&c.be.ring), 32);
    cr_assert_eq(pvc_cmd_front_free_slots(&c.fe), 32);
    free(c.page);
}

Test(cmd_ring, at_most_32_outstanding)
{
    struct cmd_pair c;
    cmd_open(&c);
    for (uint32_t i = 0; i < 32; i++) {
        struct xen_pvcalls_request req = make_req(i, PVCALLS_SOCKET);
        cr_assert_geq(pvc_cmd_front_push(&c.fe, &req), 0);
    }
    cr_assert_eq(pvc_cmd_front_free_slots(&c.fe), 0);
    struct xen_pvcalls_request extra = make_req(99, PVCALLS_POLL);
    cr_assert_eq(pvc_cmd_front_push(&c.fe, &extra), -EBUSY);

    /* The backend consumes them all: the slots stay taken until the
     * frontend has popped the responses. */
    struct xen_pvcalls_request got[32];
    for (int i = 0; i < 32; i++)
        cr_assert_eq(pvc_cmd_back_pop(&c.be, &got[i]), 1);
    cr_assert_eq(pvc_cmd_back_pop(&c.be, &got[0]), 0);
    cr_assert_eq(pvc_cmd_front_push(&c.fe, &extra), -EBUSY);

    answer(&c, &got[5], 0);
    pvc_cmd_back_publish(&c.be);
    cr_assert_eq(pvc_cmd_front_free_slots(&c.fe), 0);
    union xen_pvcalls_sring_entry slot;
    cr_assert_eq(pvc_cmd_front_pop(&c.fe, &slot), 1);
    cr_assert_eq(slot.rsp.req_id, 5);
    cr_assert_eq(pvc_cmd_front_free_slots(&c.fe), 1);
    cr_assert_geq(pvc_cmd_front_push(&c.fe, &extra), 0);
    cr_assert_eq(pvc_cmd_front_push(&c.fe, &extra), -EBUSY);
    free(c.page);
}

Test(cmd_ring, requests_arrive_whole_and_responses_out_of_order)
{
    struct cmd_pair c;
    cmd_open(&c);
    /* Many rounds, so the indexes wrap the 32 slots several times. */
    for (uint32_t round = 0; round < 20; round++) {
        for (uint32_t i = 0; i < 5; i++) {
            struct xen_pvcalls_request req = make_req(round * 10 + i, i);
            memset(req.u.dummy.dummy + 40, (int)(round + i), 16);
            cr_assert_geq(pvc_cmd_front_push(&c.fe, &req), 0);
        }
        struct xen_pvcalls_request got[5];
        for (uint32_t i = 0; i < 5; i++) {
            cr_assert_eq(pvc_cmd_back_pop(&c.be, &got[i]), 1);
            struct xen_pvcalls_request want = make_req(round * 10 + i, i);
            memset(want.u.dummy.dummy + 40, (int)(round + i), 16);
            cr_assert_eq(memcmp(&got[i], &want, sizeof(want)), 0);
        }
        static const int order[5] = { 4, 2, 0, 1, 3 };
        for (int i = 0; i < 5; i++)
            answer(&c, &got[order[i]], -order[i]);
        pvc_cmd_back_publish(&c.be);
        for (int i = 0; i < 5; i++) {
            union xen_pvcalls_sring_entry slot;
            cr_assert_eq(pvc_cmd_front_pop(&c.fe, &slot), 1);
            cr_assert_eq(slot.rsp.req_id, round * 10 + (uint32_t)order[i]);
            cr_assert_eq(slot.rsp.ret, -order[i]);
            cr_assert_eq(slot.rsp.u.socket.id, 0x1000 + slot.rsp.req_id);
        }
        union xen_pvcalls_sring_entry slot;
        cr_assert_eq(pvc_cmd_front_pop(&c.fe, &slot), 0);
        cr_assert_eq(pvc_cmd_front_free_slots(&c.fe), 32);
    }
    free(c.page);
}

Test(cmd_ring, request_copy_is_private)
{
    struct cmd_pair c;
    cmd_open(&c);
    struct xen_pvcalls_request req = make_req(7, PVCALLS_CONNECT);
    pvc_cmd_front_push(&c.fe, &req);
    struct xen_pvcalls_request got;
    cr_assert_eq(pvc_cmd_back_pop(&c.be, &got), 1);
    /* A frontend rewriting the slot after the pop changes nothing. */
    RING_GET_REQUEST(&c.fe.ring, 0)->cmd = 0xbad;
    cr_assert_eq(got.cmd, PVCALLS_CONNECT);
    free(c.page);
}

Test(cmd_ring, request_notify_only_when_backend_armed)
{
    struct cmd_pair c;
    cmd_open(&c);
    struct xen_pvcalls_request req = make_req(1, PVCALLS_SOCKET);
    struct xen_pvcalls_request got;
    /* SHARED_RING_INIT arms req_event for the first request. */
    cr_assert_eq(pvc_cmd_front_push(&c.fe, &req), 1);
    /* The backend has not run its final check: no more doorbells. */
    cr_assert_eq(pvc_cmd_front_push(&c.fe, &req), 0);
    cr_assert_eq(pvc_cmd_front_push(&c.fe, &req), 0);
    cr_assert_eq(pvc_cmd_back_pop(&c.be, &got), 1);
    cr_assert_eq(pvc_cmd_back_pop(&c.be, &got), 1);
    /* Still busy (not drained): pushing now does not notify either. */
    cr_assert_eq(pvc_cmd_front_push(&c.fe, &req), 0);
    cr_assert_eq(pvc_cmd_back_pop(&c.be, &got), 1);
    cr_assert_eq(pvc_cmd_back_pop(&c.be, &got), 1);
    /* Drained: this pop returns 0 and arms req_event ... */
    cr_assert_eq(pvc_cmd_back_pop(&c.be, &got), 0);
    cr_assert_eq(c.fe.ring.sring->req_event, c.be.ring.req_cons + 1);
    /* ... so the next request rings the doorbell, the one after not. */
    cr_assert_eq(pvc_cmd_front_push(&c.fe, &req), 1);
    cr_assert_eq(pvc_cmd_front_push(&c.fe, &req), 0);
    free(c.page);
}

Test(cmd_ring, pop_takes_requests_whatever_req_event_says)
{
    struct cmd_pair c;
    cmd_open(&c);
    struct xen_pvcalls_request req = make_req(1, PVCALLS_SOCKET), got;
    /* The event index only decides doorbells; a frontend that scribbles
     * on it cannot hide queued requests from a pop. */
    c.fe.ring.sring->req_event = 0x7777;
    pvc_cmd_front_push(&c.fe, &req);
    pvc_cmd_front_push(&c.fe, &req);
    cr_assert_eq(pvc_cmd_back_pop(&c.be, &got), 1);
    cr_assert_eq(pvc_cmd_back_pop(&c.be, &got), 1);
    cr_assert_eq(pvc_cmd_back_pop(&c.be, &got), 0);
    cr_assert_eq(c.fe.ring.sring->req_event, 3);
    free(c.page);
}

Test(cmd_ring, response_notify_only_when_frontend_armed)
{
    struct cmd_pair c;
    cmd_open(&c);
    struct xen_pvcalls_request req = make_req(1, PVCALLS_SOCKET), got[4];
    for (int i = 0; i < 4; i++)
        pvc_cmd_front_push(&c.fe, &req);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pvc_cmd_back_pop(&c.be, &got[i]), 1);
    answer(&c, &got[0], 0);
    cr_assert_eq(pvc_cmd_back_publish(&c.be), 1); /* rsp_event starts at 1 */
    answer(&c, &got[1], 0);
    cr_assert_eq(pvc_cmd_back_publish(&c.be), 0); /* frontend not armed */
    union xen_pvcalls_sring_entry slot;
    cr_assert_eq(pvc_cmd_front_pop(&c.fe, &slot), 1);
    cr_assert_eq(pvc_cmd_front_pop(&c.fe, &slot), 1);
    cr_assert_eq(pvc_cmd_front_pop(&c.fe, &slot), 0); /* arms rsp_event */
    answer(&c, &got[2], 0);
    cr_assert_eq(pvc_cmd_back_publish(&c.be), 1);
    answer(&c, &got[3], 0);
    cr_assert_eq(pvc_cmd_back_publish(&c.be), 0);
    /* Publishing nothing new never notifies. */
    cr_assert_eq(pvc_cmd_back_publish(&c.be), 0);
    free(c.page);
}

Test(cmd_ring, put_needs_a_consumed_request)
{
    struct cmd_pair c;
    cmd_open(&c);
    struct xen_pvcalls_response rsp = { .req_id = 1 };
    cr_assert_eq(pvc_cmd_back_put(&c.be, &rsp, sizeof(rsp)), -EBUSY);
    struct xen_pvcalls_request req = make_req(1, PVCALLS_SOCKET), got;
    pvc_cmd_front_push(&c.fe, &req);
    cr_assert_eq(pvc_cmd_back_put(&c.be, &rsp, sizeof(rsp)), -EBUSY,
                 "queued but not yet consumed");
    cr_assert_eq(pvc_cmd_back_pop(&c.be, &got), 1);
    cr_assert_eq(pvc_cmd_back_put(&c.be, &rsp, 23), -EINVAL);
    cr_assert_eq(pvc_cmd_back_put(&c.be, &rsp, 65), -EINVAL);
    cr_assert_eq(pvc_cmd_back_put(&c.be, &rsp, sizeof(rsp)), 0);
    cr_assert_eq(pvc_cmd_back_put(&c.be, &rsp, sizeof(rsp)), -EBUSY);
    free(c.page);
}

Test(cmd_ring, ext_response_fills_the_whole_entry)
{
    struct cmd_pair c;
    cmd_open(&c);
    struct xen_pvcalls_request req = make_req(42, PVCALLS_EXT_GETPEERNAME);
    struct xen_pvcalls_request got;
    pvc_cmd_front_push(&c.fe, &req);
    cr_assert_eq(pvc_cmd_back_pop(&c.be, &got), 1);
    struct pvc_ext_addr_rsp rsp;
    for (size_t i = 0; i < sizeof(rsp); i++)
        ((unsigned char *)&rsp)[i] = (unsigned char)(i * 3 + 1);
    rsp.hdr.req_id = got.req_id;
    rsp.hdr.cmd = got.cmd;
    cr_assert_eq(pvc_cmd_back_put(&c.be, &rsp, sizeof(rsp)), 0);
    pvc_cmd_back_publish(&c.be);
    union xen_pvcalls_sring_entry slot;
    cr_assert_eq(pvc_cmd_front_pop(&c.fe, &slot), 1);
    cr_assert_eq(sizeof(slot), 64);
    cr_assert_eq(memcmp(&slot, &rsp, 64), 0);
    free(c.page);
}

Test(cmd_ring_hostile, backend_overclaiming_responses)
{
    struct cmd_pair c;
    cmd_open(&c);
    struct xen_pvcalls_request req = make_req(1, PVCALLS_SOCKET);
    union xen_pvcalls_sring_entry slot;
    /* Nothing outstanding, yet the backend says one response. */
    c.fe.ring.sring->rsp_prod = 1;
    cr_assert_eq(pvc_cmd_front_pop(&c.fe, &slot), -EPROTO);
    c.fe.ring.sring->rsp_prod = 0;
    pvc_cmd_front_push(&c.fe, &req);
    pvc_cmd_front_push(&c.fe, &req);
    c.fe.ring.sring->rsp_prod = 3; /* two outstanding */
    cr_assert_eq(pvc_cmd_front_pop(&c.fe, &slot), -EPROTO);
    c.fe.ring.sring->rsp_prod = (RING_IDX)-1; /* behind rsp_cons */
    cr_assert_eq(pvc_cmd_front_pop(&c.fe, &slot), -EPROTO);
    cr_assert_eq(c.fe.ring.rsp_cons, 0, "nothing taken on error");
    c.fe.ring.sring->rsp_prod = 2; /* the honest value works */
    cr_assert_eq(pvc_cmd_front_pop(&c.fe, &slot), 1);
    cr_assert_eq(pvc_cmd_front_pop(&c.fe, &slot), 1);
    cr_assert_eq(pvc_cmd_front_pop(&c.fe, &slot), 0);
    free(c.page);
}

Test(cmd_ring_hostile, frontend_overflowing_requests)
{
    struct cmd_pair c;
    cmd_open(&c);
    struct xen_pvcalls_request got;
    /* 33 requests without a response: more than the ring can hold. */
    c.fe.ring.sring->req_prod = 33;
    cr_assert_eq(pvc_cmd_back_pop(&c.be, &got), -EPROTO);
    c.fe.ring.sring->req_prod = 0xfffffff0;
    cr_assert_eq(pvc_cmd_back_pop(&c.be, &got), -EPROTO);
    cr_assert_eq(c.be.ring.req_cons, 0);
    /* Exactly 32 is legal. */
    c.fe.ring.sring->req_prod = 32;
    for (int i = 0; i < 32; i++)
        cr_assert_eq(pvc_cmd_back_pop(&c.be, &got), 1);
    cr_assert_eq(pvc_cmd_back_pop(&c.be, &got), 0);
    /* Taking back requests the backend already consumed. */
    c.fe.ring.sring->req_prod = 30;
    cr_assert_eq(pvc_cmd_back_pop(&c.be, &got), -EPROTO);
    /* After answering one, a 33rd request is legal, a 34th is not. */
    c.fe.ring.sring->req_prod = 32;
    struct xen_pvcalls_response rsp = { .req_id = 0 };
    cr_assert_eq(pvc_cmd_back_put(&c.be, &rsp, sizeof(rsp)), 0);
    c.fe.ring.sring->req_prod = 34;
    cr_assert_eq(pvc_cmd_back_pop(&c.be, &got), -EPROTO);
    c.fe.ring.sring->req_prod = 33;
    cr_assert_eq(pvc_cmd_back_pop(&c.be, &got), 1);
    free(c.page);
}
