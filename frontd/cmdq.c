/*
 * The command ring, shared by every client: unique req_ids from a counter,
 * at most 32 requests in flight (the ring's size), the rest waiting in a
 * FIFO; responses matched by req_id, in whatever order they come.
 *
 * An ACCEPT stays in flight until a connection arrives, possibly for
 * ever, so ACCEPTs wait in a FIFO of their own and hold at most
 * FRONTD_ACCEPT_SLOTS slots: blocked accept() calls can never starve the
 * short commands (SOCKET, CONNECT, RELEASE, ...) of ring slots.  A
 * response whose req_id we do not have in flight is a backend bug: it is
 * logged and dropped.
 */
#include "frontd.h"

#include "pvc/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fd_cmd *cmd_new(uint32_t cmd, fd_cmd_done done)
{
    struct fd_cmd *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->req.cmd = cmd;
    c->done = done;
    c->state_fd = -1;
    return c;
}

static void complete(struct frontd *d, struct fd_cmd *c,
                     const union xen_pvcalls_sring_entry *rsp)
{
    c->done(d, c, rsp);
    free(c);
}

static void complete_err(struct frontd *d, struct fd_cmd *c, int32_t err)
{
    union xen_pvcalls_sring_entry e;
    memset(&e, 0, sizeof(e));
    e.rsp.req_id = c->req_id;
    e.rsp.cmd = c->req.cmd;
    e.rsp.ret = err;
    complete(d, c, &e);
}

/* Push c onto the ring; 0, or -1 if the ring has no slot. */
static int push(struct frontd *d, struct fd_cmd *c)
{
    if (d->ninflight >= FRONTD_CMD_SLOTS ||
        pvc_cmd_front_free_slots(&d->fe.cmd) == 0)
        return -1;
    /* Never 0: some peers treat req_id 0 specially in logs. */
    if (++d->next_req_id == 0)
        d->next_req_id = 1;
    c->req_id = d->next_req_id;
    c->req.req_id = c->req_id;
    int notify = pvc_cmd_front_push(&d->fe.cmd, &c->req);
    if (notify < 0)
        return -1;
    HASH_ADD(hh, d->inflight, req_id, sizeof(uint32_t), c);
    d->ninflight++;
    if (c->req.cmd == PVCALLS_ACCEPT)
        d->naccepts++;
    if (notify)
        pvc_evtchn_notify(d->fe.cmd_evtchn);
    return 0;
}

static void enqueue(struct fd_cmd **head, struct fd_cmd **tail,
                    struct fd_cmd *c)
{
    c->next = NULL;
    if (*tail)
        (*tail)->next = c;
    else
        *head = c;
    *tail = c;
}

static struct fd_cmd *dequeue(struct fd_cmd **head, struct fd_cmd **tail)
{
    struct fd_cmd *c = *head;
    if (c) {
        *head = c->next;
        if (!*head)
            *tail = NULL;
        c->next = NULL;
    }
    return c;
}

/* Every listener keeps one ACCEPT outstanding, and a command ring has
 * room for FRONTD_ACCEPT_SLOTS of them: a listener beyond that takes no
 * connection until another's ACCEPT is answered.  Say so, once per
 * episode, rather than leave a server silently deaf. */
static void warn_accepts_waiting(struct frontd *d)
{
    if (d->accepts_head && !d->accepts_warned)
        pvc_warn("more than %u listening sockets: the others accept only "
                 "when one of the first %u takes a connection (one command "
                 "ring holds %u pending ACCEPTs)", FRONTD_ACCEPT_SLOTS,
                 FRONTD_ACCEPT_SLOTS, FRONTD_ACCEPT_SLOTS);
    d->accepts_warned = d->accepts_head != NULL;
}

/* Send what the ring has room for, short commands first. */
static void flush_queue(struct frontd *d)
{
    while (d->queue_head && d->connected) {
        if (push(d, d->queue_head) < 0)
            return;
        dequeue(&d->queue_head, &d->queue_tail);
    }
    while (d->accepts_head && d->connected &&
           d->naccepts < FRONTD_ACCEPT_SLOTS) {
        if (push(d, d->accepts_head) < 0)
            return;
        dequeue(&d->accepts_head, &d->accepts_tail);
    }
    warn_accepts_waiting(d);
}

void cmd_submit(struct frontd *d, struct fd_cmd *c)
{
    if (!d->connected) {
        complete_err(d, c, -ENETDOWN);
        return;
    }
    if (c->req.cmd == PVCALLS_ACCEPT)
        enqueue(&d->accepts_head, &d->accepts_tail, c);
    else
        enqueue(&d->queue_head, &d->queue_tail, c);
    flush_queue(d);
}

void cmd_process(struct frontd *d)
{
    if (!d->connected)
        return;
    /* Doorbell first, then the ring: a response published after our look
     * rings again. */
    pvc_evtchn_ack(d->fe.cmd_evtchn);
    union xen_pvcalls_sring_entry e;
    int r;
    while (d->connected && (r = pvc_cmd_front_pop(&d->fe.cmd, &e)) == 1) {
        struct fd_cmd *c;
        uint32_t req_id = e.rsp.req_id;
        HASH_FIND(hh, d->inflight, &req_id, sizeof(req_id), c);
        if (!c || e.rsp.cmd != c->req.cmd) {
            pvc_warn("backend answered unknown req_id %u (cmd %u)",
                     req_id, e.rsp.cmd);
            continue;
        }
        HASH_DEL(d->inflight, c);
        d->ninflight--;
        if (c->req.cmd == PVCALLS_ACCEPT)
            d->naccepts--;
        complete(d, c, &e);
        flush_queue(d);
    }
    if (d->connected && r < 0) {
        pvc_err("backend broke the command ring: %s", strerror(-r));
        frontd_backend_lost(d);
    }
}

void cmd_fail_all(struct frontd *d, int32_t err)
{
    struct fd_cmd *c, *tmp;
    HASH_ITER(hh, d->inflight, c, tmp) {
        HASH_DEL(d->inflight, c);
        d->ninflight--;
        complete_err(d, c, err);
    }
    d->naccepts = 0;
    while ((c = dequeue(&d->queue_head, &d->queue_tail)))
        complete_err(d, c, err);
    while ((c = dequeue(&d->accepts_head, &d->accepts_tail)))
        complete_err(d, c, err);
}

/* Unlink c from the FIFO at *head; true if it was there. */
static bool unlink_queued(struct fd_cmd **head, struct fd_cmd **tail,
                          struct fd_cmd *c)
{
    struct fd_cmd *prev = NULL;
    for (struct fd_cmd *q = *head; q; prev = q, q = q->next) {
        if (q != c)
            continue;
        if (prev)
            prev->next = q->next;
        else
            *head = q->next;
        if (*tail == q)
            *tail = prev;
        q->next = NULL;
        return true;
    }
    return false;
}

void cmd_cancel(struct frontd *d, struct fd_cmd *c, int32_t err)
{
    if (unlink_queued(&d->accepts_head, &d->accepts_tail, c) ||
        unlink_queued(&d->queue_head, &d->queue_tail, c))
        complete_err(d, c, err);
}

void cmd_forget_client(struct frontd *d, struct fd_client *cl)
{
    (void)d;
    if (cl->call)
        cl->call->client = NULL;
    cl->call = NULL;
}
