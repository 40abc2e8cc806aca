/*
 * The "waiting" extension's flags (ring/wait_flags.c, docs/pvcalls-ext.md
 * §4.7): a producer that finds its half full raises its flag, the
 * consumer learns after consuming that a notification is due (once), the
 * flags sit in v1's padding where the spec's fields are untouched, and a
 * flag raised while the peer frees room is never lost.
 */
#include "pvc/ring.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct pair {
    struct pvcalls_data_intf *intf;
    unsigned char *data;
    struct pvc_data_ring front, back;
};

static void pair_open(struct pair *p, unsigned order)
{
    uint32_t refs[1u << PVC_MAX_RING_ORDER] = { 0 };
    p->intf = aligned_alloc(PVC_PAGE_SIZE, PVC_PAGE_SIZE);
    p->data = malloc((size_t)PVC_PAGE_SIZE << order);
    cr_assert(p->intf && p->data);
    pvc_data_ring_init_intf(p->intf, order, refs);
    pvc_data_ring_attach(&p->front, p->intf, p->data, order, PVC_SIDE_FRONT);
    pvc_data_ring_attach(&p->back, p->intf, p->data, order, PVC_SIDE_BACK);
}

static void pair_close(struct pair *p)
{
    free(p->intf);
    free(p->data);
}

static uint32_t word_at(const struct pair *p, size_t off)
{
    uint32_t v;
    memcpy(&v, (const unsigned char *)p->intf + off, sizeof(v));
    return v;
}

/* Fill tx of one side completely. */
static void fill(struct pvc_data_ring *tx)
{
    static unsigned char junk[PVC_PAGE_SIZE << 1];
    long n;
    while ((n = pvc_ring_tx_copy(tx, junk, sizeof(junk))) > 0)
        ;
    cr_assert_eq(n, 0);
}

Test(ring_waiting, nothing_due_while_nobody_waits)
{
    struct pair p;
    pair_open(&p, 1);
    struct iovec iov[2];
    cr_assert_eq(pvc_ring_tx_iov_waiting(&p.front, iov), (long)p.front.size);
    cr_assert_eq(pvc_ring_tx_copy(&p.front, "abc", 3), 3);
    char buf[3];
    cr_assert_eq(pvc_ring_rx_copy(&p.back, buf, 3, 0), 3);
    cr_assert_not(pvc_ring_rx_wake_due(&p.back),
                  "a producer that never found the ring full needs no bell");
    pair_close(&p);
}

Test(ring_waiting, full_out_ring_makes_the_backend_notify_once)
{
    struct pair p;
    pair_open(&p, 1);
    fill(&p.front);
    struct iovec iov[2];
    cr_assert_eq(pvc_ring_tx_iov_waiting(&p.front, iov), 0);
    /* v1's fields untouched; the flag is pad2's first word (@76). */
    cr_assert_eq(word_at(&p, 76), 1);
    cr_assert_eq(word_at(&p, 12), 0);
    cr_assert_eq(p.intf->out_prod, p.front.size);
    char buf[16];
    cr_assert_eq(pvc_ring_rx_copy(&p.back, buf, sizeof(buf), 0), 16);
    cr_assert(pvc_ring_rx_wake_due(&p.back));
    cr_assert_eq(word_at(&p, 76), 0, "the consumer clears it");
    cr_assert_eq(pvc_ring_rx_copy(&p.back, buf, sizeof(buf), 0), 16);
    cr_assert_not(pvc_ring_rx_wake_due(&p.back), "one bell per wait");
    pair_close(&p);
}

Test(ring_waiting, full_in_ring_makes_the_frontend_notify)
{
    struct pair p;
    pair_open(&p, 1);
    fill(&p.back);
    struct iovec iov[2];
    cr_assert_eq(pvc_ring_tx_iov_waiting(&p.back, iov), 0);
    cr_assert_eq(word_at(&p, 12), 1, "pad1's first word");
    cr_assert_eq(word_at(&p, 76), 0);
    char buf[1];
    cr_assert_eq(pvc_ring_rx_copy(&p.front, buf, 1, 0), 1);
    cr_assert(pvc_ring_rx_wake_due(&p.front));
    pair_close(&p);
}

Test(ring_waiting, room_found_on_the_second_look_is_used)
{
    struct pair p;
    pair_open(&p, 1);
    fill(&p.front);
    char buf[8];
    cr_assert_eq(pvc_ring_rx_copy(&p.back, buf, sizeof(buf), 0), 8);
    struct iovec iov[2];
    /* Room already: no flag needed, none raised. */
    cr_assert_eq(pvc_ring_tx_iov_waiting(&p.front, iov), 8);
    cr_assert_eq(word_at(&p, 76), 0);
    pair_close(&p);
}

Test(ring_waiting, drain_wait_raises_the_flag_while_bytes_are_left)
{
    struct pair p;
    pair_open(&p, 1);
    cr_assert_eq(pvc_ring_tx_unconsumed_waiting(&p.front), 0);
    cr_assert_eq(word_at(&p, 76), 0, "nothing left: nothing to wait for");
    cr_assert_eq(pvc_ring_tx_copy(&p.front, "abcd", 4), 4);
    cr_assert_eq(pvc_ring_tx_unconsumed_waiting(&p.front), 4);
    cr_assert_eq(word_at(&p, 76), 1);
    pair_close(&p);
}

/* A producer that waits only when told and a consumer that tells only
 * when the flag says so, racing: every byte arrives (a lost bell would
 * leave the producer asleep with room in the ring: the test would hang
 * and criterion's timeout fail it). */
struct race {
    struct pair p;
    atomic_int bell; /* the event channel: a counter */
    size_t total;
};

static void *race_consumer(void *arg)
{
    struct race *r = arg;
    unsigned char buf[100];
    size_t got = 0;
    while (got < r->total) {
        long n = pvc_ring_rx_copy(&r->p.back, buf, sizeof(buf), 0);
        cr_assert_geq(n, 0);
        got += (size_t)n;
        if (n > 0 && pvc_ring_rx_wake_due(&r->p.back))
            atomic_fetch_add(&r->bell, 1);
    }
    return NULL;
}

Test(ring_waiting, no_lost_wakeup_under_a_race, .timeout = 60)
{
    struct race r = { .total = 20u << 20 };
    pair_open(&r.p, 1);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, race_consumer, &r), 0);
    static unsigned char chunk[3000];
    size_t sent = 0;
    while (sent < r.total) {
        struct iovec iov[2];
        int seen = atomic_load(&r.bell);
        long room = pvc_ring_tx_iov_waiting(&r.p.front, iov);
        cr_assert_geq(room, 0);
        if (room == 0) {
            while (atomic_load(&r.bell) == seen) /* "asleep" */
                sched_yield();
            continue;
        }
        size_t n = r.total - sent < sizeof(chunk) ? r.total - sent
                                                   : sizeof(chunk);
        sent += (size_t)pvc_ring_tx_copy(&r.p.front, chunk, n);
    }
    pthread_join(t, NULL);
    pair_close(&r.p);
}
