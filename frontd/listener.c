/*
 * Listeners: ACCEPT never blocks (include/pvc/frontd_proto.h).
 *
 * From a successful LISTEN on, the daemon keeps one backend ACCEPT
 * outstanding per listener (a ring and a state page per attempt) and
 * parks each connection it yields in a FIFO, at most PVC_FD_ACCEPT_PARK
 * deep; while the FIFO is full no ACCEPT is sent, so further connections
 * wait in the backend's backlog, as they would in the kernel's.  A
 * client's ACCEPT request takes the oldest parked connection, or gets
 * -EAGAIN.
 *
 * A backend ACCEPT error is parked too, and the next ACCEPT is sent only
 * once a client has been told (the way Linux's accept reports a pending
 * error): a backend that fails every ACCEPT costs one command per client
 * request, never a loop.
 *
 * The byte-writing rule (token readiness): one byte goes to the
 * listener's token when the FIFO is non-empty and no byte was written
 * since the client's last ACCEPT request on this listener (s->notified).
 * A request clears the flag (the shim drained the token before asking),
 * and after taking its entry we apply the rule again, before the answer
 * goes out, so a listener left with parked connections is readable again
 * by the time its caller hears back.  Entries of every kind count:
 * an error or a connection the client may not take yet (-EMFILE) is news
 * too.  Also a listener whose backend went away gets a byte, so that a
 * waiting accept() asks and hears -ECONNRESET.
 */
#include "frontd.h"

#include "pvc/ext.h"
#include "pvc/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utlist.h>

static void accept_issue(struct frontd *d, struct fd_sock *s);

/* ---- the FIFO -------------------------------------------------------- */

static void notify_if_news(struct fd_sock *s)
{
    if (s->parked && !s->notified) {
        sock_notify(s);
        s->notified = true;
    }
}

static void park(struct fd_sock *s, struct fd_parked *p)
{
    DL_APPEND(s->parked, p);
    s->nparked++;
    notify_if_news(s);
}

static void unpark(struct fd_sock *s, struct fd_parked *p)
{
    DL_DELETE(s->parked, p);
    s->nparked--;
}

/* A backend error (or our own failure to send an ACCEPT) for a client. */
static void park_error(struct fd_sock *s, int32_t err)
{
    struct fd_parked *p = calloc(1, sizeof(*p));
    if (!p) {
        /* Nothing to report it with: the listener stops accepting until
         * a client's ACCEPT request tries again (accept_issue). */
        pvc_warn("listener %llu: ACCEPT failed (%d), out of memory",
                 (unsigned long long)s->id, err);
        return;
    }
    p->err = err;
    p->state_fd = -1;
    park(s, p);
}

/* Give up a parked connection: RELEASE it, or just free its ring when
 * the backend that knew it is gone. */
static void parked_drop(struct frontd *d, struct fd_sock *s,
                        struct fd_parked *p)
{
    unpark(s, p);
    if (!p->err && s->dead) {
        ring_free(d, p->ring);
        close(p->state_fd);
    } else if (!p->err) {
        pvc_debug("listener %llu: releasing parked socket %llu",
                  (unsigned long long)s->id, (unsigned long long)p->id);
        sock_release_orphan(d, p->id, p->ring, p->state_fd);
    }
    free(p);
}

/* ---- the backend's ACCEPT ------------------------------------------- */

static bool listener_alive(struct frontd *d, const struct fd_sock *s)
{
    return s && s->listening && !s->gone && !s->dead && !d->stop;
}

/* The peer's address, if the backend sent one that fits. */
static void parked_addr(struct frontd *d, struct fd_parked *p,
                        const union xen_pvcalls_sring_entry *e)
{
    if (!ops_has_ext(d, PVC_EXT_ACCEPT_ADDR))
        return;
    struct pvc_ext_addr_rsp ar;
    memcpy(&ar, e, sizeof(ar));
    if (ar.len <= PVC_FD_ADDR_MAX) {
        p->addrlen = ar.len;
        memcpy(p->addr, ar.addr, ar.len);
    }
}

static void accept_done(struct frontd *d, struct fd_cmd *c,
                        const union xen_pvcalls_sring_entry *e)
{
    struct fd_sock *s = c->sock; /* NULL: the listener was released */
    uint64_t id = c->req.u.accept.id_new;
    int32_t ret = e->rsp.ret;
    if (s)
        s->accept_cmd = NULL;
    bool alive = listener_alive(d, s);
    if (ret != 0) {
        /* The backend may have mapped the ring: never reused. */
        ring_free(d, c->ring);
        close(c->state_fd);
        if (alive)
            park_error(s, ret > 0 ? -EPROTO : ret);
        return;
    }
    struct fd_parked *p = alive ? calloc(1, sizeof(*p)) : NULL;
    if (!p) {
        pvc_debug("accepted socket %llu has no listener to wait in: "
                  "releasing", (unsigned long long)id);
        sock_release_orphan(d, id, c->ring, c->state_fd);
        if (alive)
            park_error(s, -ENOMEM);
        return;
    }
    p->id = id;
    p->ring = c->ring;
    p->state_fd = c->state_fd;
    parked_addr(d, p, e);
    park(s, p);
    accept_issue(d, s);
}

/* Is the FIFO's newest entry an error?  (Nothing is parked after one.) */
static bool error_parked(const struct fd_sock *s)
{
    return s->parked && s->parked->prev->err; /* prev of head: the tail */
}

/* Send the next ACCEPT, unless one is out, the FIFO is full, or an error
 * waits to be reported. */
static void accept_issue(struct frontd *d, struct fd_sock *s)
{
    if (!listener_alive(d, s) || s->accept_cmd ||
        s->nparked >= PVC_FD_ACCEPT_PARK || error_parked(s))
        return;
    struct fd_ring *r = pool_take(d, d->order);
    int state_fd = r ? state_page_new() : -1;
    struct fd_cmd *c = state_fd >= 0 ? cmd_new(PVCALLS_ACCEPT, accept_done)
                                     : NULL;
    if (!c) {
        ring_free(d, r);
        if (state_fd >= 0)
            close(state_fd);
        park_error(s, -ENOMEM);
        return;
    }
    c->sock = s;
    c->ring = r;
    c->state_fd = state_fd;
    c->domain = s->domain;
    c->req.u.accept.id = s->id;
    c->req.u.accept.id_new = ++d->next_sock_id;
    c->req.u.accept.ref = r->refs[0];
    c->req.u.accept.evtchn = pvc_evtchn_port(r->evtchn);
    s->accept_cmd = c;
    cmd_submit(d, c);
}

void listener_start(struct frontd *d, struct fd_sock *s)
{
    s->listening = true;
    accept_issue(d, s);
}

/* ---- the client's ACCEPT --------------------------------------------- */

/* Make parked connection p (the FIFO's head) a socket of cl's: the new
 * socket, p taken out of the FIFO (not freed), and the app's end of its
 * token in *app_end; or NULL with *err, p left parked. */
static struct fd_sock *adopt_parked(struct frontd *d, struct fd_client *cl,
                                    struct fd_sock *ls, struct fd_parked *p,
                                    int *app_end, int32_t *err)
{
    if (cl->nsocks >= FRONTD_MAX_SOCKS_PER_CLIENT) {
        *err = -EMFILE;
        return NULL;
    }
    struct fd_sock *s = sock_new(d, p->id, ls->domain, app_end);
    if (!s) {
        *err = -errno;
        return NULL;
    }
    unpark(ls, p);
    s->ring = p->ring;
    s->state_fd = p->state_fd;
    s->connected = true;
    s->owner = cl;
    cl->nsocks++;
    return s;
}

/* Answer cl's ACCEPT with socket s (made of p, which goes). */
static void answer_accept(struct frontd *d, struct fd_client *cl,
                          struct fd_sock *s, int app_end,
                          struct fd_parked *p)
{
    struct pvc_fd_rsp rsp;
    memset(&rsp, 0, sizeof(rsp));
    rsp.op = PVC_FD_ACCEPT;
    rsp.ino = s->ino;
    rsp.addrlen = p->addrlen;
    memcpy(rsp.addr, p->addr, sizeof(rsp.addr));
    free(p);
    int err = ops_reply_ring(d, cl, &rsp, app_end, s->ring, s->state_fd);
    if (err < 0)
        client_reply_err(d, cl, PVC_FD_ACCEPT, err);
    /* Our copy goes; if the answer was lost, so is the last reference,
     * and the token's hang-up releases the socket. */
    close(app_end);
}

int32_t listener_take(struct frontd *d, struct fd_client *cl,
                      struct fd_sock *s)
{
    if (!s->listening)
        return -EINVAL;
    s->notified = false; /* the shim drained the token before asking */
    struct fd_parked *p = s->parked;
    struct fd_sock *ns = NULL;
    int app_end = -1;
    int32_t ret = -EAGAIN;
    if (p && p->err) {
        ret = p->err;
        unpark(s, p);
        free(p);
    } else if (p) {
        ns = adopt_parked(d, cl, s, p, &app_end, &ret);
    }
    /* There may be room for the next ACCEPT now.  News left behind goes
     * to the token before the answer goes out: a caller that gets the
     * answer finds the token as the daemon leaves it, and no byte can
     * arrive after its next drain for news it already had. */
    accept_issue(d, s);
    notify_if_news(s);
    if (!ns)
        return ret;
    answer_accept(d, cl, ns, app_end, p);
    return 0;
}

/* ---- the end --------------------------------------------------------- */

void listener_close(struct frontd *d, struct fd_sock *s)
{
    struct fd_cmd *c = s->accept_cmd;
    if (c) {
        /* In flight, the backend answers it before the listener's
         * RELEASE (-EBADF), to a detached command that frees its ring;
         * still queued, it never goes out. */
        c->sock = NULL;
        s->accept_cmd = NULL;
        cmd_cancel(d, c, -EBADF);
    }
    while (s->parked)
        parked_drop(d, s, s->parked);
}

void listener_backend_lost(struct frontd *d, struct fd_sock *s)
{
    /* The outstanding ACCEPT fails with every other command. */
    while (s->parked)
        parked_drop(d, s, s->parked);
}
