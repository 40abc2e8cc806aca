/*
 * The socket table and each socket's end of life.
 *
 * Every socket's app-visible fd is one end of a socketpair whose other
 * end (the token) we keep in the loop, watched for HUP only: it reports
 * HUP exactly when the kernel drops the last reference to the app's end:
 * close, exit, SIGKILL, in whichever process held it last.
 *
 * Token readiness: we write one byte on our end when a listener or a
 * connecting socket has news (sock_notify; the rules are in
 * include/pvc/frontd_proto.h).  The other direction is closed: our end is
 * shut for reading, so the kernel refuses whatever an app writes into its
 * token (EPIPE, fds included) and nothing is ever queued on our side.  We
 * therefore never read our end, and since our shut end is permanently
 * "readable" (RDHUP|IN), the watch must stay HUP-only: asking for IN
 * would wake the loop for ever.
 *
 * After the hang-up: wait for the commands in flight on the socket, let
 * the `out` ring drain (the daemon is now the channel's only user, so it
 * may consume its events; bounded by FRONTD_DRAIN_TIMEOUT_MS), RELEASE
 * what a listener parked, send RELEASE, and free the ring when the
 * backend answers.
 */
#include "frontd.h"

#include "pvc/ext.h"
#include "pvc/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utlist.h>

static void sock_try_release(struct frontd *d, struct fd_sock *s);

/* ---- RELEASE --------------------------------------------------------- */

static void release_done(struct frontd *d, struct fd_cmd *c,
                         const union xen_pvcalls_sring_entry *rsp)
{
    int32_t ret = rsp->rsp.ret;
    pvc_debug("socket %llu released: %d",
              (unsigned long long)c->req.u.release.id, ret);
    if (ret != 0 && ret != -ENETDOWN)
        pvc_warn("RELEASE of socket %llu: %d",
                 (unsigned long long)c->req.u.release.id, ret);
    if (c->sock)
        c->sock->early_release = NULL; /* answered before its CONNECT */
    /* The backend unmapped the ring (or is gone): the pages go back to
     * the platform, never to the pool. */
    ring_free(d, c->ring);
    if (c->state_fd >= 0)
        close(c->state_fd);
}

void sock_release_orphan(struct frontd *d, uint64_t id, struct fd_ring *r,
                         int state_fd)
{
    struct fd_cmd *c = cmd_new(PVCALLS_RELEASE, release_done);
    if (!c) {
        ring_free(d, r);
        if (state_fd >= 0)
            close(state_fd);
        return;
    }
    c->req.u.release.id = id;
    c->ring = r;
    c->state_fd = state_fd;
    cmd_submit(d, c);
}

static void sock_free(struct frontd *d, struct fd_sock *s)
{
    if (s->draining)
        DL_DELETE2(d->draining, s, dprev, dnext);
    if (s->ino)
        HASH_DEL(d->socks, s);
    pvc_loop_del(d->loop, &s->watch);
    if (s->token >= 0)
        close(s->token);
    state_page_unmap(s->shared);
    if (s->owner && s->owner->nsocks > 0)
        s->owner->nsocks--;
    pvc_loop_defer_free(d->loop, s, free);
}

/* Forget s; RELEASE it at the backend unless that backend is gone. */
static void sock_finish(struct frontd *d, struct fd_sock *s)
{
    pvc_debug("socket %llu (ino %llu): releasing", (unsigned long long)s->id,
              (unsigned long long)s->ino);
    if (s->ring)
        pvc_loop_del(d->loop, &s->ring->watch);
    listener_close(d, s);
    if (s->dead) {
        ring_free(d, s->ring);
        if (s->state_fd >= 0)
            close(s->state_fd);
    } else {
        sock_release_orphan(d, s->id, s->ring, s->state_fd);
    }
    s->ring = NULL;
    s->state_fd = -1;
    sock_free(d, s);
}

/* ---- draining ---------------------------------------------------------- */

/* Has the backend consumed everything the app wrote?  An error word or a
 * broken index means it never will: stop waiting. */
static bool out_drained(struct frontd *d, struct fd_ring *r)
{
    struct pvc_data_ring view;
    pvc_data_ring_attach(&view, r->pages, (char *)r->pages + PVC_PAGE_SIZE,
                         r->order, PVC_SIDE_FRONT);
    if (pvc_ring_out_error(&view) || pvc_ring_in_error(&view))
        return true;
    /* "waiting": the backend notifies on draining only when asked to. */
    long left = (d->fe.ext_enabled & PVC_EXT_WAITING)
                    ? pvc_ring_tx_unconsumed_waiting(&view)
                    : pvc_ring_tx_unconsumed(&view);
    return left <= 0;
}

static void on_drain_event(void *ctx, uint32_t events)
{
    struct fd_sock *s = ctx;
    (void)events;
    pvc_evtchn_ack(s->ring->evtchn);
    sock_try_release(s->d, s);
}

/* The last holder left a socket whose CONNECT is still in flight:
 * RELEASE now (the backend answers the CONNECT first). */
static void release_early(struct frontd *d, struct fd_sock *s)
{
    struct fd_cmd *c = cmd_new(PVCALLS_RELEASE, release_done);
    if (!c)
        return; /* then the CONNECT's answer releases it */
    pvc_debug("socket %llu: last holder gone while connecting: releasing",
              (unsigned long long)s->id);
    c->req.u.release.id = s->id;
    c->ring = NULL;
    c->state_fd = -1;
    c->sock = s;
    s->released_early = true;
    s->early_release = c;
    cmd_submit(d, c);
}

/* The CONNECT of an early-released socket answered: its ring goes with
 * the RELEASE (freed when that is answered) or now if it already was. */
static void finish_released_early(struct frontd *d, struct fd_sock *s)
{
    listener_close(d, s);
    if (s->early_release) {
        s->early_release->ring = s->ring;
        s->early_release->state_fd = s->state_fd;
        s->early_release->sock = NULL;
    } else {
        ring_free(d, s->ring);
        if (s->state_fd >= 0)
            close(s->state_fd);
    }
    s->ring = NULL;
    s->state_fd = -1;
    sock_free(d, s);
}

static void sock_try_release(struct frontd *d, struct fd_sock *s)
{
    if (!s->gone)
        return;
    if (s->connecting && !s->released_early && !s->dead && !d->stop)
        release_early(d, s);
    if (s->pending > 0)
        return;
    if (s->released_early) {
        finish_released_early(d, s);
        return;
    }
    if (s->ring && !s->dead && !d->stop && !out_drained(d, s->ring) &&
        (!s->draining || frontd_now_ms() < s->drain_deadline)) {
        if (!s->draining) {
            s->draining = true;
            s->drain_deadline = frontd_now_ms() + FRONTD_DRAIN_TIMEOUT_MS;
            DL_APPEND2(d->draining, s, dprev, dnext);
            pvc_loop_add(d->loop, &s->ring->watch,
                         pvc_evtchn_fd(s->ring->evtchn), EPOLLIN,
                         on_drain_event, s);
            pvc_debug("socket %llu: waiting for the out ring to drain",
                      (unsigned long long)s->id);
        }
        return;
    }
    if (s->draining && !d->stop && !out_drained(d, s->ring))
        pvc_warn("socket %llu: out ring not drained after %d ms, "
                 "releasing anyway", (unsigned long long)s->id,
                 FRONTD_DRAIN_TIMEOUT_MS);
    sock_finish(d, s);
}

/* ---- the table ------------------------------------------------------- */

static void on_token(void *ctx, uint32_t events)
{
    struct fd_sock *s = ctx;
    struct frontd *d = s->d;
    /* EPOLLHUP only: the app's end is gone from every process.  (Our end
     * is shut for reading, so RDHUP/IN are always up and never asked
     * for; a shutdown(SHUT_WR) that bypassed the shim changes nothing.) */
    if (!(events & (EPOLLHUP | EPOLLERR)))
        return;
    pvc_loop_del(d->loop, &s->watch);
    close(s->token);
    s->token = -1;
    s->gone = true;
    pvc_debug("socket %llu (ino %llu): last holder gone",
              (unsigned long long)s->id, (unsigned long long)s->ino);
    sock_try_release(d, s);
}

struct fd_sock *sock_new(struct frontd *d, uint64_t id, int domain,
                         int *client_end)
{
    struct fd_sock *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        free(s);
        return NULL;
    }
    /* Our end refuses data: an app that writes to its socket without the
     * shim (a static binary, a raw syscall) gets EPIPE, never a silent
     * success.  Only the receive side: our send side carries the
     * readiness bytes, and shutting it too would make our end report HUP
     * at once. */
    struct stat st;
    if (shutdown(sv[0], SHUT_RD) < 0 || fstat(sv[1], &st) < 0 ||
        pvc_loop_add(d->loop, &s->watch, sv[0], EPOLLHUP, on_token, s) < 0) {
        int err = errno;
        close(sv[0]);
        close(sv[1]);
        free(s);
        errno = err;
        return NULL;
    }
    s->d = d;
    s->id = id;
    s->domain = domain;
    s->token = sv[0];
    s->state_fd = -1;
    s->ino = (uint64_t)st.st_ino;
    HASH_ADD(hh, d->socks, ino, sizeof(uint64_t), s);
    *client_end = sv[1];
    return s;
}

void sock_notify(struct fd_sock *s)
{
    if (s->token < 0)
        return;
    /* EAGAIN: the app's end holds unread bytes, so it is readable
     * already; any other failure means the app's end is going away. */
    if (send(s->token, "!", 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
        errno != EAGAIN)
        pvc_debug("socket %llu: token byte: %s", (unsigned long long)s->id,
                  strerror(errno));
}

struct fd_sock *sock_find(struct frontd *d, uint64_t ino)
{
    struct fd_sock *s;
    HASH_FIND(hh, d->socks, &ino, sizeof(ino), s);
    return s;
}

void sock_cmd_done(struct frontd *d, struct fd_sock *s)
{
    if (s->pending > 0)
        s->pending--;
    sock_try_release(d, s);
}

void sock_client_gone(struct frontd *d, struct fd_client *cl)
{
    struct fd_sock *s, *tmp;
    HASH_ITER(hh, d->socks, s, tmp)
        if (s->owner == cl)
            s->owner = NULL;
}

/* ---- the backend went away ------------------------------------------- */

static void reset_ring(struct fd_ring *r)
{
    struct pvc_data_ring view;
    pvc_data_ring_attach(&view, r->pages, (char *)r->pages + PVC_PAGE_SIZE,
                         r->order, PVC_SIDE_BACK);
    pvc_ring_set_in_error(&view, -ECONNRESET);
    pvc_ring_set_out_error(&view, -ECONNRESET);
    /* Wake the shims blocked on this socket: they re-check the ring. */
    if (pvc_evtchn_kick_local(r->evtchn) < 0)
        pvc_debug("waking the holders of a ring: %s", strerror(errno));
}

void socks_backend_lost(struct frontd *d)
{
    struct fd_sock *s, *tmp;
    HASH_ITER(hh, d->socks, s, tmp) {
        s->dead = true;
        if (s->ring)
            reset_ring(s->ring);
        /* A connecting socket hears from its failed CONNECT (the
         * command's completion); a listener has no command to speak for
         * it: its token tells a waiting accept() to ask (-ECONNRESET). */
        if (s->listening) {
            listener_backend_lost(d, s);
            sock_notify(s);
        }
    }
    /* Sockets whose last holder is gone need no RELEASE any more. */
    struct fd_sock *dtmp;
    DL_FOREACH_SAFE2(d->draining, s, dtmp, dnext)
        sock_try_release(d, s);
}

/* ---- drain deadlines --------------------------------------------------- */

int socks_next_timeout(struct frontd *d)
{
    if (!d->draining)
        return -1;
    int64_t now = frontd_now_ms(), first = INT64_MAX;
    struct fd_sock *s;
    DL_FOREACH2(d->draining, s, dnext)
        if (s->drain_deadline < first)
            first = s->drain_deadline;
    int64_t left = first - now;
    return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

void socks_expire(struct frontd *d)
{
    int64_t now = frontd_now_ms();
    struct fd_sock *s, *tmp;
    DL_FOREACH_SAFE2(d->draining, s, tmp, dnext)
        if (s->drain_deadline <= now)
            sock_try_release(d, s);
}

/* Daemon shutdown (d->stop is set): RELEASE what is open, without
 * waiting for rings to drain.  A socket with a command in flight is
 * finished by that command's completion (an answer, or the -ENETDOWN
 * the shutdown gives every command left), never freed under it. */
void socks_close_all(struct frontd *d)
{
    struct fd_sock *s, *tmp;
    HASH_ITER(hh, d->socks, s, tmp) {
        if (s->token >= 0) {
            pvc_loop_del(d->loop, &s->watch);
            close(s->token);
            s->token = -1;
        }
        s->gone = true;
        sock_try_release(d, s);
    }
}
