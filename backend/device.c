/*
 * One connected frontend: its command ring and command event channel,
 * the xenbus connect/disconnect hooks, and the single place responses are
 * written to the ring (research §2.6: one producer, never racing).
 */
#include "backd.h"

#include "audit.h"
#include "pvc/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

static void dev_publish(struct bdev *d)
{
    if (!d->unpublished)
        return;
    d->unpublished = false;
    if (pvc_cmd_back_publish(&d->cmd) > 0)
        pvc_evtchn_notify(d->ch);
}

void dev_respond(struct bdev *d, const void *rsp, size_t len)
{
    /* Every consumed request gets exactly one response, so the slot
     * exists; -EBUSY would be a bug of ours, never the frontend's. */
    int rc = pvc_cmd_back_put(&d->cmd, rsp, len);
    if (rc < 0) {
        pvc_err("dom %u: response dropped (%s)", d->domid, strerror(-rc));
        return;
    }
    d->unpublished = true;
    if (!d->batch)
        dev_publish(d);
}

/* Drain the command ring.  Returns -EPROTO if the frontend broke the ring
 * protocol (the caller resets the device), else 0. */
static int dev_process(struct bdev *d)
{
    struct xen_pvcalls_request req;
    int rc;
    d->batch++;
    while ((rc = pvc_cmd_back_pop(&d->cmd, &req)) > 0) {
        cmd_dispatch(d, &req);
        if (d->dead)
            break;
    }
    d->batch--;
    if (d->dead)
        return 0;
    dev_publish(d);
    return rc < 0 ? rc : 0;
}

static void dev_violation(struct bdev *d, const char *what)
{
    pvc_warn("dom %u dev %u: %s: resetting the device", d->domid, d->devid,
             what);
    audit_violation(d->bd->audit, d->domid, d->devid, false, 0, what);
}

static void dev_channel_event(void *ctx, uint32_t events)
{
    struct bdev *d = ctx;
    (void)events;
    /* Ack first: a request queued after this point rings again. */
    pvc_evtchn_ack(d->ch);
    if (dev_process(d) == -EPROTO) {
        dev_violation(d, "command ring indexes");
        /* Calls our disconnect: d is dead after this (freed later). */
        pvc_xb_back_reset(d->bd->xb, d->xdev);
    }
}

/* Release what connect() acquired, in reverse. */
static void dev_teardown(struct bdev *d)
{
    struct bsock *s, *tmp;
    HASH_ITER(hh, d->socks, s, tmp)
        sock_destroy(s); /* no answers: the ring goes away with the device */
    pvc_loop_del(d->bd->loop, &d->ch_watch);
    if (d->ch)
        pvc_evtchn_close(d->ch);
    if (d->cmd_page)
        pvc_grant_unmap(d->bd->plat, d->cmd_page, 1);
    d->ch = NULL;
    d->cmd_page = NULL;
    d->dead = true;
    pvc_loop_defer_free(d->bd->loop, d, free);
}

static int dev_connect(void *ctx, struct pvc_xb_back_dev *xdev)
{
    struct backd *bd = ctx;
    struct bdev *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->bd = bd;
    d->xdev = xdev;
    d->domid = xdev->fe_domid;
    d->devid = xdev->devid;
    d->ext = xdev->ext_enabled & bd->cfg.ext;
    dev_policy_attach(d);
    pvc_gref_t ref = xdev->ring_ref;
    d->cmd_page = pvc_grant_map(bd->plat, d->domid, 1, &ref, 0);
    int err = 0;
    if (!d->cmd_page) {
        err = -errno;
        pvc_warn("dom %u: cannot map command ring ref %u: %s", d->domid,
                 ref, strerror(errno));
        free(d);
        return err ? err : -EFAULT;
    }
    pvc_cmd_back_attach(&d->cmd, d->cmd_page);
    d->ch = pvc_evtchn_bind_interdomain(bd->plat, d->domid, xdev->port);
    if (!d->ch || pvc_loop_add(bd->loop, &d->ch_watch, pvc_evtchn_fd(d->ch),
                               EPOLLIN, dev_channel_event, d) < 0) {
        err = -errno;
        pvc_warn("dom %u: cannot bind command channel %u: %s", d->domid,
                 xdev->port, strerror(errno));
        dev_teardown(d);
        return err ? err : -EINVAL;
    }
    xdev->priv = d;
    audit_device(bd->audit, d->domid, d->devid, true);
    pvc_info("dom %u dev %u connected (extensions 0x%x)", d->domid,
             d->devid, d->ext);
    /* Requests queued before we were listening rang no bell we heard. */
    if (dev_process(d) == -EPROTO) {
        dev_violation(d, "command ring indexes");
        xdev->priv = NULL;
        audit_device(bd->audit, d->domid, d->devid, false);
        dev_teardown(d);
        return -EPROTO;
    }
    return 0;
}

static void dev_disconnect(void *ctx, struct pvc_xb_back_dev *xdev)
{
    (void)ctx;
    struct bdev *d = xdev->priv;
    if (!d)
        return;
    xdev->priv = NULL;
    pvc_info("dom %u dev %u disconnected", d->domid, d->devid);
    dev_teardown(d);
    audit_device(d->bd->audit, d->domid, d->devid, false);
}

const struct pvc_xb_back_ops backd_xb_ops = {
    .connect = dev_connect,
    .disconnect = dev_disconnect,
};
