/* One client connection: see conn.h. */
#include <errno.h>

#include "conn.h"

#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <utlist.h>

#include "pvc/log.h"

#define HDR_LEN sizeof(struct xsd_sockmsg)
/* Requests handled per wake-up, so that one chatty client cannot starve
 * the others (epoll is level-triggered: the rest come next round). */
#define MSGS_PER_WAKEUP 16

static void on_event(void *ctx, uint32_t events);

struct store_conn *conn_new(struct store_domain *dom, int fd)
{
    struct sim_store *st = dom->st;
    struct store_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return NULL;
    }
    c->st = st;
    c->dom = dom;
    c->domid = dom->domid;
    c->fd = fd;
    if (pvc_loop_add(st->loop, &c->w, fd, EPOLLIN, on_event, c) < 0) {
        close(fd);
        free(c);
        return NULL;
    }
    DL_APPEND(st->conns, c);
    dom->n_conns++;
    return c;
}

/* ---- teardown ----------------------------------------------------------- */

static void close_now(struct store_conn *c)
{
    c->dead = true;
    pvc_loop_del(c->st->loop, &c->w);
    close(c->fd);
    c->fd = -1;
    DL_DELETE(c->st->conns, c);
    c->dom->n_conns--;
    for (unsigned i = 0; i < STORE_MAX_TXNS; i++)
        if (c->txns[i])
            c->dom->n_txns--;
}

/* Self-contained (no reference to the store): it may run after the store
 * is gone, from the loop's deferred frees. */
static void conn_release(void *ptr)
{
    struct store_conn *c = ptr;
    watch_clear(&c->watches);
    for (unsigned i = 0; i < STORE_MAX_TXNS; i++)
        txn_free(c->txns[i]);
    free(c->out);
    free(c);
}

void conn_kill(struct store_conn *c)
{
    if (c->dead)
        return;
    close_now(c);
    /* Our caller may be iterating this connection's watches, or be this
     * connection's own callback: release after the batch. */
    pvc_loop_defer_free(c->st->loop, c, conn_release);
}

void conn_destroy(struct store_conn *c)
{
    if (!c->dead)
        close_now(c);
    conn_release(c);
}

/* ---- output ------------------------------------------------------------- */

static void want_output(struct store_conn *c, bool want)
{
    if (c->want_out == want)
        return;
    c->want_out = want;
    if (pvc_loop_mod(c->st->loop, &c->w,
                     EPOLLIN | (want ? EPOLLOUT : 0u)) < 0)
        conn_kill(c);
}

static void flush(struct store_conn *c)
{
    while (c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_head, c->out_len,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            conn_kill(c);
            return;
        }
        c->out_head += (size_t)n;
        c->out_len -= (size_t)n;
    }
    if (!c->out_len)
        c->out_head = 0;
    want_output(c, c->out_len > 0);
}

static bool reserve_output(struct store_conn *c, size_t need)
{
    if (c->out_len + need > STORE_MAX_OUTPUT) {
        pvc_warn("store: domain %u client reads too slowly, dropping it",
                 c->domid);
        conn_kill(c);
        return false;
    }
    if (c->out_head + c->out_len + need <= c->out_cap)
        return true;
    if (c->out_head) {
        memmove(c->out, c->out + c->out_head, c->out_len);
        c->out_head = 0;
    }
    if (c->out_len + need <= c->out_cap)
        return true;
    size_t cap = c->out_cap ? 2 * c->out_cap : 8192;
    while (cap < c->out_len + need)
        cap *= 2;
    char *out = realloc(c->out, cap);
    if (!out) {
        conn_kill(c);
        return false;
    }
    c->out = out;
    c->out_cap = cap;
    return true;
}

void conn_send(struct store_conn *c, uint32_t type, uint32_t req_id,
               uint32_t tx_id, const void *body, size_t len)
{
    struct xsd_sockmsg hdr = {
        .type = type, .req_id = req_id, .tx_id = tx_id, .len = (uint32_t)len,
    };
    if (c->dead || !reserve_output(c, HDR_LEN + len))
        return;
    char *tail = c->out + c->out_head + c->out_len;
    memcpy(tail, &hdr, HDR_LEN);
    if (len)
        memcpy(tail + HDR_LEN, body, len);
    c->out_len += HDR_LEN + len;
    flush(c);
}

static const char *errno_name(int err)
{
    for (size_t i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]); i++)
        if (xsd_errors[i].errnum == err)
            return xsd_errors[i].errstring;
    return "EIO";
}

void conn_send_error(struct store_conn *c, const struct xsd_sockmsg *req,
                     int err)
{
    const char *name = errno_name(err);
    conn_send(c, XS_ERROR, req->req_id, req->tx_id, name, strlen(name) + 1);
}

void conn_send_event(struct store_conn *c, const char *path,
                     const char *token)
{
    /* Fits: path <= XENSTORE_ABS_PATH_MAX, token <= STORE_MAX_TOKEN. */
    char body[XENSTORE_PAYLOAD_MAX];
    size_t plen = strlen(path) + 1, tlen = strlen(token) + 1;
    if (plen + tlen > sizeof(body))
        return;
    memcpy(body, path, plen);
    memcpy(body + plen, token, tlen);
    conn_send(c, XS_WATCH_EVENT, 0, 0, body, plen + tlen);
}

/* ---- input -------------------------------------------------------------- */

/* Bytes still missing from the message being received. */
static size_t input_missing(const struct store_conn *c)
{
    if (c->in_have < HDR_LEN)
        return HDR_LEN - c->in_have;
    return HDR_LEN + c->in.hdr.len - c->in_have;
}

/* Read what is there of the current message; true once it is whole. */
static bool receive_part(struct store_conn *c)
{
    size_t missing = input_missing(c);
    if (missing) {
        ssize_t n = recv(c->fd, c->in.bytes + c->in_have, missing,
                         MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN &&
                       errno != EWOULDBLOCK)) {
            conn_kill(c);
            return false;
        }
        if (n < 0)
            return false;
        c->in_have += (size_t)n;
    }
    if (c->in_have == HDR_LEN && c->in.hdr.len > XENSTORE_PAYLOAD_MAX) {
        /* xenstored kills such a connection too: its framing is lost. */
        pvc_warn("store: domain %u sent a %u-byte payload, dropping it",
                 c->domid, c->in.hdr.len);
        conn_kill(c);
        return false;
    }
    return c->in_have >= HDR_LEN && input_missing(c) == 0;
}

static void receive(struct store_conn *c)
{
    for (int handled = 0; handled < MSGS_PER_WAKEUP && !c->dead;) {
        size_t before = c->in_have;
        if (receive_part(c)) {
            struct xsd_sockmsg req = c->in.hdr;
            char *body = (char *)c->in.bytes + HDR_LEN;
            body[req.len] = '\0';
            c->in_have = 0;
            ops_dispatch(c, &req, body);
            handled++;
        } else if (c->in_have == before) {
            return;     /* nothing more to read now, or dead */
        }
    }
}

static void on_event(void *ctx, uint32_t events)
{
    struct store_conn *c = ctx;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        receive(c);
    if (!c->dead && (events & EPOLLOUT))
        flush(c);
}
