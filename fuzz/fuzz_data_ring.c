/*
 * Fuzz target 2: data-ring consumption.  A socket of the in-process
 * backend (backend_harness.h) is connected to a host peer; then the input
 * plays a hostile frontend on its data ring: any value in the indexes
 * page (in/out prod and cons, the error words, ring_order, the
 * "waiting" flags), ring data, doorbells, RELEASE and SHUTDOWN while
 * bytes are queued, and the host peer sending, draining and closing.
 * The backend's pump (backend/pump.c) and ring/data_ring.c must stay
 * inside the ring whatever it reads.  The frontend's side of the same
 * ring (the API frontd and the shim use) is driven too, so the backend's
 * values, and the input's, reach ring/data_ring.c's front half.
 */
#include "backend_harness.h"

#include "pvc/ext.h"

#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_OPS 200
#define RING_REF 2u   /* bh_make_ring() puts the indexes page here */
#define RING_PORT 2u
#define SOCK_ID 1u

static struct pvcalls_data_intf *intf;
static struct pvc_data_ring front; /* the frontend's view */

static void request(struct bh *h, uint32_t cmd, uint8_t req_id,
                    const void *body, size_t len)
{
    struct xen_pvcalls_request req = { .req_id = req_id, .cmd = cmd };
    memcpy(&req.u, body, len);
    bh_request(h, &req, true);
}

/* SOCKET and CONNECT with a well-formed ring of the given order. */
static void connect_socket(struct bh *h, unsigned order)
{
    struct xen_pvcalls_socket s = { .id = SOCK_ID, .domain = AF_INET,
                                    .type = SOCK_STREAM };
    request(h, PVCALLS_SOCKET, 0, &s, sizeof(s));
    /* ref 0 puts the ring at page RING_REF (see bh_make_ring). */
    intf = bh_make_ring(0, order);
    struct xen_pvcalls_connect c = { .id = SOCK_ID, .len = 16, .flags = 1,
                                     .ref = RING_REF, .evtchn = RING_PORT };
    c.addr[0] = AF_INET;
    request(h, PVCALLS_CONNECT, 1, &c, sizeof(c));
    unsigned real_order = intf->ring_order;
    pvc_data_ring_attach(&front, intf, (unsigned char *)intf + 4096,
                         real_order, PVC_SIDE_FRONT);
    bh_run();
    bh_peer_accept(h);
    bh_run();
    bh_take_responses(h);
}

static void poke_index(struct cursor *c)
{
    uint8_t which = cur_u8(c);
    uint32_t val = cur_u32(c);
    uint32_t *words[] = {
        &intf->in_cons, &intf->in_prod, &intf->out_cons, &intf->out_prod,
        (uint32_t *)&intf->in_error, (uint32_t *)&intf->out_error,
        &intf->ring_order, (uint32_t *)(void *)intf->pad1,
        (uint32_t *)(void *)intf->pad2,
    };
    unsigned n = sizeof(words) / sizeof(words[0]);
    /* Small deltas reach the edges (full, one past full) more often. */
    if (which & 0x80)
        val = *words[which % n] + (int8_t)val;
    *words[which % n] = val;
}

static void front_send(struct cursor *c)
{
    uint8_t buf[512];
    size_t len = cur_bytes(c, buf, cur_u16(c) % sizeof(buf));
    struct iovec iov[2];
    if (len & 1)
        pvc_ring_tx_copy(&front, buf, len);
    else if (pvc_ring_tx_iov_waiting(&front, iov) > 0)
        pvc_ring_tx_produce(&front, 1);
}

static void front_receive(struct cursor *c)
{
    uint8_t buf[512];
    uint8_t how = cur_u8(c);
    struct iovec iov[2];
    long n;
    switch (how % 5) {
    case 0: pvc_ring_rx_copy(&front, buf, how, 0); break;
    case 1: pvc_ring_rx_copy(&front, buf, sizeof(buf), 1); break;
    case 2:
        n = pvc_ring_rx_iov(&front, iov);
        if (n > 0) {
            pvc_ring_rx_consume(&front, (RING_IDX)(how % (n + 1)));
            pvc_ring_rx_wake_due(&front);
        }
        break;
    case 3:
        pvc_ring_tx_unconsumed(&front);
        pvc_ring_tx_unconsumed_waiting(&front);
        pvc_ring_in_error(&front);
        pvc_ring_out_error(&front);
        break;
    case 4:
        pvc_data_ring_resync_rx(&front);
        pvc_data_ring_resync_tx(&front);
        break;
    }
}

static void peer_send(struct bh *h, struct cursor *c)
{
    uint8_t buf[2048];
    memset(buf, 'x', sizeof(buf));
    size_t len = cur_u16(c) % sizeof(buf);
    bh_peer_send(h, 0, buf, len);
}

static void shutdown_or_release(struct bh *h, struct cursor *c)
{
    uint8_t how = cur_u8(c);
    if (how & 4) {
        struct xen_pvcalls_release r = { .id = SOCK_ID };
        request(h, PVCALLS_RELEASE, 2, &r, sizeof(r));
    } else {
        uint8_t body[56] = { 0 };
        memcpy(body, &(uint64_t){ SOCK_ID }, 8);
        memcpy(body + 8, &(uint32_t){ how % 3 }, 4);
        request(h, PVCALLS_EXT_SHUTDOWN, 3, body, sizeof(body));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cursor c = { data, size };
    struct bh h;
    uint8_t setup = cur_u8(&c);
    bh_begin(&h, PVC_EXT_ALL & (setup | PVC_EXT_SHUTDOWN));
    connect_socket(&h, setup >> 5);
    for (int n = 0; c.left && n < MAX_OPS; n++) {
        switch (cur_u8(&c) % 12) {
        case 0: poke_index(&c); break;
        case 1: front_send(&c); break;
        case 2: bh_kick(RING_PORT); bh_run(); break;
        case 3: peer_send(&h, &c); break;
        case 4: bh_peer_drain(&h, 0); break;
        case 5: bh_run(); break;
        case 6: front_receive(&c); break;
        case 7: shutdown_or_release(&h, &c); break;
        case 8: bh_peer_close(&h, 0); break;
        case 9: bh_take_responses(&h); break;
        case 10: {
            uint8_t buf[64];
            unsigned off = cur_u16(&c);
            size_t len = cur_bytes(&c, buf, cur_u8(&c) % sizeof(buf));
            bh_write_mem(&h, RING_REF - 1, off, buf, len);
            break;
        }
        case 11: bh_kick(BH_CMD_PORT); bh_run(); break;
        }
    }
    bh_end(&h);
    return 0;
}
