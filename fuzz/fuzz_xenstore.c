/*
 * Fuzz target 3: the xenstore handshake, both sides, on the fake
 * xenstore (fakexs.h).  The first byte picks the side under test:
 *
 *   backend (xenbus/back.c, back_dev.c): the input writes and removes
 *   the keys a frontend and a toolstack own (frontend, frontend-id,
 *   online, the toolstack's state; the frontend's state, version,
 *   ring-ref, port, ext-features), in any order and with any value,
 *   fires @releaseDomain, removes the frontend's domain or the device,
 *   and fails transactions; the backend processes its watches after
 *   each step.  Its connect() maps the ring and binds the port the
 *   frontend named, through the fake platform.
 *
 *   frontend (xenbus/front.c): the input is a script of the backend's
 *   writes (state in any order, versions, max-page-order,
 *   function-calls, ext-features, and the toolstack's backend path),
 *   played while pvc_xb_front_connect() waits for it; then the
 *   connection, if made, is closed.
 *
 * Nothing may be left mapped, bound or allocated afterwards.
 */
#include "cursor.h"
#include "fakeplat.h"
#include "fakexs.h"

#include "pvc/ext.h"
#include "pvc/log.h"
#include "pvc/xenbus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPS 64
#define WAIT_MS 20 /* the frontend's handshake: the script plays at once */
#define BE_BASE "/local/domain/0/backend/pvcalls"
#define FE_DOM "/local/domain/1"
#define FE_DEV FE_DOM "/device/pvcalls/0"
#define BE_DEV BE_BASE "/1/0"

static struct pvc_platform *be_plat, *fe_plat;
static struct xs_handle *xs;

/* ---- values -------------------------------------------------------- */

/* A value as a hostile peer would write it: mostly numbers near the
 * edges, sometimes anything. */
static size_t make_value(struct cursor *c, char *buf, size_t cap)
{
    uint8_t kind = cur_u8(c);
    switch (kind % 4) {
    case 0: return (size_t)snprintf(buf, cap, "%u", kind >> 2);
    case 1: return (size_t)snprintf(buf, cap, "%u", cur_u32(c));
    case 2: return (size_t)snprintf(buf, cap, "%d", -(int)cur_u8(c));
    default: return cur_bytes(c, buf, cur_u8(c) % cap);
    }
}

/* ---- the backend side ---------------------------------------------- */

struct conn {
    void *page;
    struct pvc_evtchn *ch;
};

static int test_connect(void *ctx, struct pvc_xb_back_dev *dev)
{
    (void)ctx;
    struct conn *cn = calloc(1, sizeof(*cn));
    pvc_gref_t ref = dev->ring_ref;
    if (!cn)
        return -ENOMEM;
    cn->page = pvc_grant_map(be_plat, dev->fe_domid, 1, &ref, 0);
    cn->ch = cn->page ? pvc_evtchn_bind_interdomain(be_plat, dev->fe_domid,
                                                    dev->port)
                      : NULL;
    if (!cn->ch) {
        if (cn->page)
            pvc_grant_unmap(be_plat, cn->page, 1);
        free(cn);
        return -EINVAL;
    }
    dev->priv = cn;
    return 0;
}

static void test_disconnect(void *ctx, struct pvc_xb_back_dev *dev)
{
    (void)ctx;
    struct conn *cn = dev->priv;
    dev->priv = NULL;
    if (!cn)
        abort(); /* disconnect without a successful connect */
    pvc_evtchn_close(cn->ch);
    pvc_grant_unmap(be_plat, cn->page, 1);
    free(cn);
}

static const struct pvc_xb_back_ops test_ops = {
    .connect = test_connect,
    .disconnect = test_disconnect,
};

static const char *const back_keys[] = {
    BE_DEV "/frontend", BE_DEV "/frontend-id", BE_DEV "/online",
    BE_DEV "/state",    FE_DEV "/state",       FE_DEV "/version",
    FE_DEV "/ring-ref", FE_DEV "/port",        FE_DEV "/ext-features",
    BE_BASE "/1/1/frontend-id", BE_BASE "/2/0/frontend-id",
    FE_DOM "/name",
};
#define N_BACK_KEYS (sizeof(back_keys) / sizeof(back_keys[0]))

/* The toolstack's device, as xl creates it. */
static void toolstack_device(void)
{
    fakexs_write(FE_DOM "/name", "guest", 5);
    fakexs_write(FE_DEV "/backend", BE_DEV, strlen(BE_DEV));
    fakexs_write(FE_DEV "/backend-id", "0", 1);
    fakexs_write(FE_DEV "/state", "1", 1);
    fakexs_write(BE_DEV "/frontend", FE_DEV, strlen(FE_DEV));
    fakexs_write(BE_DEV "/frontend-id", "1", 1);
    fakexs_write(BE_DEV "/online", "1", 1);
    fakexs_write(BE_DEV "/state", "1", 1);
}

static void fuzz_backend(struct cursor *c)
{
    char val[64];
    if (cur_u8(c) & 1)
        toolstack_device();
    struct pvc_xb_back_cfg cfg = { .max_page_order = 4,
                                   .ext_offered = PVC_EXT_ALL };
    struct pvc_xb_back *b = pvc_xb_back_new(be_plat, xs, &cfg, &test_ops,
                                            NULL);
    if (!b)
        return;
    for (int n = 0; c->left && n < MAX_OPS; n++) {
        uint8_t op = cur_u8(c);
        const char *key = back_keys[(op >> 3) % N_BACK_KEYS];
        switch (op % 8) {
        case 0: case 1: case 2: case 3:
            fakexs_write(key, val, make_value(c, val, sizeof(val)));
            break;
        case 4: fakexs_rm(key); break;
        case 5:
            fakexs_rm(op & 0x80 ? FE_DOM : BE_DEV);
            fakexs_release_domain();
            break;
        case 6: fakexs_fail_txns(cur_u8(c) % 80); break;
        case 7: toolstack_device(); break;
        }
        pvc_xb_back_process(b);
    }
    pvc_xb_back_free(b);
}

/* ---- the frontend side --------------------------------------------- */

static const char *const front_keys[] = {
    BE_DEV "/state",          BE_DEV "/versions",
    BE_DEV "/max-page-order", BE_DEV "/function-calls",
    BE_DEV "/ext-features",   FE_DEV "/backend",
    FE_DEV "/backend-id",     FE_DEV "/state",
};
#define N_FRONT_KEYS (sizeof(front_keys) / sizeof(front_keys[0]))

static void fuzz_frontend(struct cursor *c)
{
    char val[64];
    toolstack_device();
    unsigned ext_wanted = cur_u8(c);
    for (int n = 0; c->left && n < MAX_OPS; n++) {
        uint8_t op = cur_u8(c);
        const char *key = front_keys[(op >> 1) % N_FRONT_KEYS];
        if (op & 1)
            fakexs_script_write(key, NULL, 0);
        else
            fakexs_script_write(key, val, make_value(c, val, sizeof(val)));
    }
    struct pvc_xb_front fe;
    memset(&fe, 0, sizeof(fe));
    if (pvc_xb_front_connect(fe_plat, xs, "device/pvcalls/0", ext_wanted,
                             WAIT_MS, &fe) == 0) {
        pvc_xb_front_backend_state(&fe);
        fakexs_script_write(BE_DEV "/state", "6", 1);
        pvc_xb_front_close(&fe, WAIT_MS);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cursor c = { data, size };
    if (!xs) {
        pvc_log_set_level(PVC_LOG_ERR);
        be_plat = fakeplat_open(0);
        fe_plat = fakeplat_open(1);
        xs = fakexs_open();
        fakeplat_set_store(fe_plat, xs);
    }
    fakeplat_zero(be_plat);
    fakeplat_zero(fe_plat);
    fakexs_reset();
    if (cur_u8(&c) & 1)
        fuzz_frontend(&c);
    else
        fuzz_backend(&c);
    /* Every watch the code under test set must be gone with it. */
    fakexs_reset();
    for (struct pvc_platform *p = be_plat; p; p = p == be_plat ? fe_plat : NULL)
        if (fakeplat_live_maps(p) || fakeplat_open_channels(p))
            abort();
    return 0;
}
