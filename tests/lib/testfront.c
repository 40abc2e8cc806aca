/*
 * The test frontend's connection and command ring: opening the platform
 * as a guest, the xenbus handshake, and the asynchronous request /
 * response core.  See testfront.h.
 */
#include "testfront.h"

#include "harness.h"
#include "hostnet.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utlist.h>
#include <xenstore.h>

int tf_open(const struct tf_opts *opts, struct tf **out)
{
    struct tf *tf = calloc(1, sizeof(*tf));
    if (!tf)
        return -ENOMEM;
    int err;
    struct pvc_platform_opts po = {
        .kind = PVC_PLATFORM_SIM,
        .sim_domid = opts->domid,
        .sim_dir = opts->sim_dir,
    };
    tf->domid = (pvc_domid_t)opts->domid;
    tf->next_req_id = 1;
    tf->next_sock_id = 1;
    tf->plat = pvc_platform_open(&po);
    if (!tf->plat)
        goto fail;
    tf->xs = pvc_store_open(tf->plat);
    if (!tf->xs)
        goto fail;
    if (pvc_xb_front_connect(tf->plat, tf->xs,
                             opts->dev ? opts->dev : "device/pvcalls/0",
                             opts->ext,
                             opts->timeout_ms ? opts->timeout_ms
                                              : TF_TIMEOUT_MS,
                             &tf->fe) < 0)
        goto fail;
    tf->connected = true;
    *out = tf;
    return 0;
fail:
    err = errno ? -errno : -EIO;
    if (tf->xs)
        xs_close(tf->xs);
    if (tf->plat)
        pvc_platform_close(tf->plat);
    free(tf);
    return err;
}

struct tf *tf_open_h(struct harness *h, int domid, unsigned ext)
{
    struct tf_opts o = { .domid = domid, .sim_dir = h->dir, .ext = ext };
    struct tf *tf = NULL;
    int err = tf_open(&o, &tf);
    cr_assert_eq(err, 0, "frontend of domain %d: %s", domid, strerror(-err));
    return tf;
}

static void forget_all(struct tf *tf)
{
    struct tf_sock *s, *tmp;
    DL_FOREACH_SAFE(tf->socks, s, tmp)
        tf_sock_free(tf, s);
    struct tf_rsp *r, *rtmp;
    HASH_ITER(hh, tf->rsps, r, rtmp) {
        HASH_DEL(tf->rsps, r);
        free(r);
    }
}

void tf_close(struct tf *tf)
{
    if (!tf)
        return;
    forget_all(tf);
    if (tf->connected)
        pvc_xb_front_close(&tf->fe, TF_TIMEOUT_MS);
    xs_close(tf->xs);
    pvc_platform_close(tf->plat);
    free(tf->journal);
    free(tf);
}

void tf_abandon(struct tf *tf)
{
    forget_all(tf);
    /* pvc_xb_front_close would wait for a backend that no longer looks
     * at this device; release its resources directly. */
    if (tf->connected) {
        pvc_evtchn_close(tf->fe.cmd_evtchn);
        pvc_grant_unshare(tf->plat, tf->fe.cmd_page, 1);
    }
    xs_close(tf->xs);
    pvc_platform_close(tf->plat);
    free(tf->journal);
    free(tf);
}

int tf_reconnect(struct tf *tf, unsigned ext, int timeout_ms)
{
    /* fe is rewritten by the handshake: keep the device path aside. */
    char dev[PVC_XB_PATH_MAX];
    snprintf(dev, sizeof(dev), "%s", tf->fe.fe_path);
    forget_all(tf);
    tf->njournal = 0; /* the journal covers one session */
    if (tf->connected)
        pvc_xb_front_close(&tf->fe, timeout_ms);
    tf->connected = false;
    if (pvc_xb_front_connect(tf->plat, tf->xs, dev, ext,
                             timeout_ms, &tf->fe) < 0)
        return errno ? -errno : -EIO;
    tf->connected = true;
    return 0;
}

/* ---- the command ring ---------------------------------------------- */

static void journal_add(struct tf *tf, const struct xen_pvcalls_response *r)
{
    if (tf->njournal == tf->journal_cap) {
        tf->journal_cap = tf->journal_cap ? 2 * tf->journal_cap : 64;
        tf->journal = realloc(tf->journal,
                              tf->journal_cap * sizeof(*tf->journal));
        cr_assert(tf->journal);
    }
    tf->journal[tf->njournal++] = (struct tf_journal){
        .req_id = r->req_id, .cmd = r->cmd, .ret = r->ret };
}

/* File every response the backend has published.  0 or -EPROTO. */
static int drain_responses(struct tf *tf)
{
    union xen_pvcalls_sring_entry e;
    int r;
    while ((r = pvc_cmd_front_pop(&tf->fe.cmd, &e)) == 1) {
        struct tf_rsp *x;
        HASH_FIND(hh, tf->rsps, &e.rsp.req_id, sizeof(uint32_t), x);
        if (!x) {
            x = calloc(1, sizeof(*x));
            cr_assert(x);
            x->req_id = e.rsp.req_id;
            HASH_ADD(hh, tf->rsps, req_id, sizeof(uint32_t), x);
        }
        /* A duplicate req_id (only a broken backend sends one) keeps the
         * latest entry; tests on req_ids see it as a wrong answer. */
        x->entry = e;
        journal_add(tf, &e.rsp);
    }
    return r;
}

static struct tf_rsp *take_response(struct tf *tf, uint32_t req_id)
{
    struct tf_rsp *x;
    HASH_FIND(hh, tf->rsps, &req_id, sizeof(req_id), x);
    if (x)
        HASH_DEL(tf->rsps, x);
    return x;
}

/* Block on the command channel until an event or the deadline.  Returns
 * false at the deadline. */
static bool wait_cmd_event(struct tf *tf, int64_t deadline)
{
    int64_t left = deadline - hn_now_ms();
    if (left <= 0)
        return false;
    struct pollfd p = { .fd = pvc_evtchn_fd(tf->fe.cmd_evtchn),
                        .events = POLLIN };
    int r = poll(&p, 1, (int)left);
    return r > 0 || (r < 0 && errno == EINTR);
}

/* One round of: consume the doorbell, then look at the ring (in that
 * order, so a response published after the look rings again). */
static int collect(struct tf *tf)
{
    if (pvc_evtchn_ack(tf->fe.cmd_evtchn) < 0)
        return -EIO;
    return drain_responses(tf);
}

uint32_t tf_send(struct tf *tf, struct xen_pvcalls_request *req)
{
    int64_t deadline = hn_now_ms() + TF_TIMEOUT_MS;
    while (pvc_cmd_front_free_slots(&tf->fe.cmd) == 0) {
        if (collect(tf) < 0)
            return 0;
        if (pvc_cmd_front_free_slots(&tf->fe.cmd) > 0)
            break;
        if (!wait_cmd_event(tf, deadline))
            return 0;
    }
    req->req_id = tf->next_req_id++;
    int notify = pvc_cmd_front_push(&tf->fe.cmd, req);
    if (notify < 0)
        return 0;
    if (notify)
        pvc_evtchn_notify(tf->fe.cmd_evtchn);
    return req->req_id;
}

int tf_wait(struct tf *tf, uint32_t req_id, int timeout_ms,
            union xen_pvcalls_sring_entry *rsp)
{
    int64_t deadline = hn_now_ms() + timeout_ms;
    for (;;) {
        struct tf_rsp *x = take_response(tf, req_id);
        if (x) {
            if (rsp)
                *rsp = x->entry;
            free(x);
            return 0;
        }
        int r = collect(tf);
        if (r < 0)
            return r;
        x = take_response(tf, req_id);
        if (x) {
            if (rsp)
                *rsp = x->entry;
            free(x);
            return 0;
        }
        if (!wait_cmd_event(tf, deadline))
            return -ETIMEDOUT;
    }
}

bool tf_answered(struct tf *tf, uint32_t req_id)
{
    collect(tf);
    struct tf_rsp *x;
    HASH_FIND(hh, tf->rsps, &req_id, sizeof(req_id), x);
    return x != NULL;
}

int32_t tf_result(struct tf *tf, uint32_t req_id, int timeout_ms,
                  union xen_pvcalls_sring_entry *rsp)
{
    union xen_pvcalls_sring_entry e;
    int err = tf_wait(tf, req_id, timeout_ms, &e);
    cr_assert_eq(err, 0, "domain %u: no response to req_id %u within %d ms: %s",
                 tf->domid, req_id, timeout_ms, strerror(-err));
    cr_assert_eq(e.rsp.req_id, req_id);
    if (rsp)
        *rsp = e;
    return e.rsp.ret;
}

int32_t tf_call(struct tf *tf, struct xen_pvcalls_request *req,
                int timeout_ms, union xen_pvcalls_sring_entry *rsp)
{
    uint32_t cmd = req->cmd;
    uint32_t req_id = tf_send(tf, req);
    cr_assert_neq(req_id, 0, "domain %u: command ring stayed full",
                  tf->domid);
    union xen_pvcalls_sring_entry e;
    int32_t ret = tf_result(tf, req_id, timeout_ms, &e);
    cr_assert_eq(e.rsp.cmd, cmd, "response to req_id %u: cmd %u, sent %u",
                 req_id, e.rsp.cmd, cmd);
    if (rsp)
        *rsp = e;
    return ret;
}

void tf_notify_cmd(struct tf *tf)
{
    pvc_evtchn_notify(tf->fe.cmd_evtchn);
}
