/*
 * Fuzz target 1: the backend's command handling.  The input is a program
 * for a hostile frontend: requests (raw, with any cmd, id, req_id, ref
 * or port, and helpers that build well-formed ones so the fuzzer reaches
 * deep states), doorbells, overwritten ring indexes, grant failures, and
 * host peers connecting, sending and closing.  One device per input,
 * everything torn down at the end (LeakSanitizer and the fake platform
 * check nothing is left).
 */
#include "backend_harness.h"

#include "pvc/ext.h"

#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_OPS 200

static void req_init(struct xen_pvcalls_request *req, struct cursor *c,
                     uint32_t cmd)
{
    memset(req, 0, sizeof(*req));
    req->req_id = cur_u8(c);
    req->cmd = cmd;
}

static void op_socket(struct bh *h, struct cursor *c)
{
    struct xen_pvcalls_request req;
    req_init(&req, c, PVCALLS_SOCKET);
    uint8_t flags = cur_u8(c);
    req.u.socket.id = flags >> 4;
    req.u.socket.domain = flags & 1 ? AF_INET6 : AF_INET;
    req.u.socket.type = SOCK_STREAM;
    bh_request(h, &req, flags & 2);
}

/* CONNECT with a well-formed ring, to the harness's listener. */
static void op_connect(struct bh *h, struct cursor *c)
{
    struct xen_pvcalls_request req;
    req_init(&req, c, PVCALLS_CONNECT);
    uint8_t flags = cur_u8(c);
    uint32_t ref = cur_u8(c);
    struct pvcalls_data_intf *intf = bh_make_ring(ref, flags >> 4);
    req.u.connect.id = flags & 0xf;
    req.u.connect.addr[0] = flags & 1 ? AF_INET6 : AF_INET;
    req.u.connect.len = flags & 1 ? 28 : 16;
    req.u.connect.flags = 1; /* to the listener */
    /* The ring's ref is the page it was laid out at. */
    req.u.connect.ref = intf->ref[0] - 1;
    req.u.connect.evtchn = 2 + cur_u8(c) % 14;
    bh_request(h, &req, true);
}

static void op_listen(struct bh *h, struct cursor *c)
{
    struct xen_pvcalls_request req;
    req_init(&req, c, PVCALLS_BIND);
    uint8_t flags = cur_u8(c);
    req.u.bind.id = flags & 0xf;
    req.u.bind.addr[0] = flags & 0x10 ? AF_INET6 : AF_INET;
    req.u.bind.len = flags & 0x10 ? 28 : 16;
    bh_request(h, &req, false);
    req_init(&req, c, PVCALLS_LISTEN);
    req.u.listen.id = flags & 0xf;
    req.u.listen.backlog = flags >> 5;
    bh_request(h, &req, true);
}

static void op_accept(struct bh *h, struct cursor *c, uint32_t cmd)
{
    struct xen_pvcalls_request req;
    req_init(&req, c, cmd);
    uint8_t flags = cur_u8(c);
    req.u.accept.id = flags & 0xf;
    req.u.accept.id_new = flags >> 4;
    if (cmd == PVCALLS_ACCEPT) {
        struct pvcalls_data_intf *intf = bh_make_ring(cur_u8(c), cur_u8(c));
        req.u.accept.ref = intf->ref[0] - 1;
        req.u.accept.evtchn = 2 + cur_u8(c) % 14;
    }
    bh_request(h, &req, true);
}

static void op_release(struct bh *h, struct cursor *c)
{
    struct xen_pvcalls_request req;
    req_init(&req, c, PVCALLS_RELEASE);
    req.u.release.id = cur_u8(c) & 0xf;
    bh_request(h, &req, true);
}

/* An extension command on a small id, the rest of the body raw. */
static void op_ext(struct bh *h, struct cursor *c)
{
    struct xen_pvcalls_request req;
    req_init(&req, c, 0);
    req.cmd = PVCALLS_EXT_SHUTDOWN + cur_u8(c) % 5;
    cur_bytes(c, &req.u, sizeof(req.u));
    req.u.socket.id &= 0xf;
    bh_request(h, &req, true);
}

static void op_raw(struct bh *h, struct cursor *c)
{
    struct xen_pvcalls_request req;
    cur_bytes(c, &req, sizeof(req));
    bh_request(h, &req, req.req_id & 1);
}

static void op_mem(struct bh *h, struct cursor *c)
{
    uint8_t buf[64];
    unsigned page = cur_u8(c), offset = cur_u16(c);
    size_t len = cur_bytes(c, buf, cur_u8(c) % sizeof(buf));
    bh_write_mem(h, page, offset, buf, len);
}

static void op_peer_send(struct bh *h, struct cursor *c)
{
    uint8_t buf[256];
    unsigned which = cur_u8(c);
    size_t len = cur_bytes(c, buf, cur_u8(c));
    bh_peer_send(h, which, buf, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cursor c = { data, size };
    struct bh h;
    bh_begin(&h, cur_u8(&c));
    for (int n = 0; c.left && n < MAX_OPS; n++) {
        switch (cur_u8(&c) % 20) {
        case 0: op_raw(&h, &c); break;
        case 1: op_socket(&h, &c); break;
        case 2: op_connect(&h, &c); break;
        case 3: op_listen(&h, &c); break;
        case 4: op_accept(&h, &c, PVCALLS_ACCEPT); break;
        case 5: op_accept(&h, &c, PVCALLS_POLL); break;
        case 6: op_release(&h, &c); break;
        case 7: op_ext(&h, &c); break;
        case 8: bh_kick(BH_CMD_PORT); bh_run(); break;
        case 9: bh_run(); break;
        case 10: bh_take_responses(&h); break;
        case 11: bh_poke_cmd_index(&h, cur_u8(&c), cur_u32(&c)); break;
        case 12: op_mem(&h, &c); break;
        case 13: bh_kick(cur_u8(&c) % 16); bh_run(); break;
        case 14: bh_peer_accept(&h); break;
        case 15: bh_peer_connect(&h, cur_u8(&c) & 0xf); break;
        case 16: op_peer_send(&h, &c); break;
        case 17: bh_peer_drain(&h, cur_u8(&c)); break;
        case 18: bh_peer_close(&h, cur_u8(&c)); break;
        case 19: bh_fail_grants(cur_u8(&c) % 4); break;
        }
    }
    bh_end(&h);
    return 0;
}
