/*
 * The test frontend's sockets: data ring allocation and the v1 socket
 * commands (SOCKET, CONNECT, BIND, LISTEN, ACCEPT, POLL, RELEASE) built
 * on the asynchronous core in testfront.c.  See testfront.h.
 */
#include "testfront.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <utlist.h>

/* ---- rings ------------------------------------------------------------ */

struct tf_ring *tf_ring_new(struct tf *tf, unsigned order)
{
    if (order < 1 || order > PVC_MAX_RING_ORDER) {
        errno = EINVAL;
        return NULL;
    }
    struct tf_ring *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    unsigned npages = 1 + (1u << order);
    r->order = order;
    if (pvc_grant_share(tf->plat, tf->fe.be_domid, npages, 0, &r->pages,
                        r->refs) < 0) {
        free(r);
        return NULL;
    }
    r->evtchn = pvc_evtchn_alloc_unbound(tf->plat, tf->fe.be_domid);
    if (!r->evtchn) {
        int err = errno;
        pvc_grant_unshare(tf->plat, r->pages, npages);
        free(r);
        errno = err;
        return NULL;
    }
    unsigned char *data = (unsigned char *)r->pages + PVC_PAGE_SIZE;
    pvc_data_ring_init_intf(r->pages, order, r->refs + 1);
    pvc_data_ring_attach(&r->ring, r->pages, data, order, PVC_SIDE_FRONT);
    return r;
}

void tf_ring_free(struct tf *tf, struct tf_ring *r)
{
    if (!r)
        return;
    pvc_evtchn_close(r->evtchn);
    pvc_grant_unshare(tf->plat, r->pages, 1 + (1u << r->order));
    free(r);
}

/* ---- socket objects ----------------------------------------------------- */

struct tf_sock *tf_sock_new(struct tf *tf)
{
    struct tf_sock *s = calloc(1, sizeof(*s));
    cr_assert(s);
    s->id = tf->next_sock_id++;
    s->order = TF_DEFAULT_ORDER;
    DL_APPEND(tf->socks, s);
    return s;
}

void tf_sock_free(struct tf *tf, struct tf_sock *s)
{
    DL_DELETE(tf->socks, s);
    tf_ring_free(tf, s->ring);
    free(s);
}

static void give_ring(struct tf *tf, struct tf_sock *s)
{
    if (s->ring)
        return;
    s->ring = tf_ring_new(tf, s->order);
    cr_assert_not_null(s->ring, "ring of order %u: %m", s->order);
}

static void drop_ring(struct tf *tf, struct tf_sock *s)
{
    tf_ring_free(tf, s->ring);
    s->ring = NULL;
}

static struct xen_pvcalls_request request(uint32_t cmd)
{
    struct xen_pvcalls_request req;
    memset(&req, 0, sizeof(req));
    req.cmd = cmd;
    return req;
}

static uint32_t sent(struct tf *tf, struct xen_pvcalls_request *req)
{
    uint32_t req_id = tf_send(tf, req);
    cr_assert_neq(req_id, 0, "domain %u: command ring stayed full",
                  tf->domid);
    return req_id;
}

/* addr is copied whole, up to the 28 bytes the request holds; len is
 * sent as given, so hostile tests can send any length. */
static void put_addr(uint8_t dst[28], const struct sockaddr_storage *addr,
                     socklen_t len)
{
    memcpy(dst, addr, len < 28 ? len : 28);
}

/* ---- commands ------------------------------------------------------------ */

int32_t tf_socket_af(struct tf *tf, struct tf_sock *s, int family)
{
    struct xen_pvcalls_request req = request(PVCALLS_SOCKET);
    req.u.socket.id = s->id;
    req.u.socket.domain = (uint32_t)family;
    req.u.socket.type = SOCK_STREAM;
    req.u.socket.protocol = 0;
    return tf_call(tf, &req, TF_TIMEOUT_MS, NULL);
}

int32_t tf_socket(struct tf *tf, struct tf_sock *s)
{
    return tf_socket_af(tf, s, AF_INET);
}

uint32_t tf_connect_send(struct tf *tf, struct tf_sock *s,
                         const struct sockaddr_storage *addr, socklen_t len)
{
    give_ring(tf, s);
    struct xen_pvcalls_request req = request(PVCALLS_CONNECT);
    req.u.connect.id = s->id;
    put_addr(req.u.connect.addr, addr, len);
    req.u.connect.len = len;
    req.u.connect.flags = 0;
    req.u.connect.ref = s->ring->refs[0];
    req.u.connect.evtchn = pvc_evtchn_port(s->ring->evtchn);
    return sent(tf, &req);
}

int32_t tf_connect_finish(struct tf *tf, struct tf_sock *s, uint32_t req_id,
                          int timeout_ms)
{
    int32_t ret = tf_result(tf, req_id, timeout_ms, NULL);
    if (ret != 0)
        drop_ring(tf, s);
    return ret;
}

int32_t tf_connect(struct tf *tf, struct tf_sock *s,
                   const struct sockaddr_storage *addr, socklen_t len)
{
    uint32_t req_id = tf_connect_send(tf, s, addr, len);
    return tf_connect_finish(tf, s, req_id, TF_TIMEOUT_MS);
}

int32_t tf_bind(struct tf *tf, struct tf_sock *s,
                const struct sockaddr_storage *addr, socklen_t len)
{
    struct xen_pvcalls_request req = request(PVCALLS_BIND);
    req.u.bind.id = s->id;
    put_addr(req.u.bind.addr, addr, len);
    req.u.bind.len = len;
    return tf_call(tf, &req, TF_TIMEOUT_MS, NULL);
}

int32_t tf_listen(struct tf *tf, struct tf_sock *s, uint32_t backlog)
{
    struct xen_pvcalls_request req = request(PVCALLS_LISTEN);
    req.u.listen.id = s->id;
    req.u.listen.backlog = backlog;
    return tf_call(tf, &req, TF_TIMEOUT_MS, NULL);
}

uint32_t tf_accept_send(struct tf *tf, struct tf_sock *listener,
                        struct tf_sock *new_sock)
{
    give_ring(tf, new_sock);
    struct xen_pvcalls_request req = request(PVCALLS_ACCEPT);
    req.u.accept.id = listener->id;
    req.u.accept.id_new = new_sock->id;
    req.u.accept.ref = new_sock->ring->refs[0];
    req.u.accept.evtchn = pvc_evtchn_port(new_sock->ring->evtchn);
    return sent(tf, &req);
}

int32_t tf_accept_finish(struct tf *tf, struct tf_sock *new_sock,
                         uint32_t req_id, int timeout_ms,
                         union xen_pvcalls_sring_entry *rsp)
{
    int32_t ret = tf_result(tf, req_id, timeout_ms, rsp);
    if (ret != 0)
        drop_ring(tf, new_sock);
    return ret;
}

int32_t tf_accept(struct tf *tf, struct tf_sock *listener,
                  struct tf_sock **out, int timeout_ms)
{
    struct tf_sock *s = tf_sock_new(tf);
    uint32_t req_id = tf_accept_send(tf, listener, s);
    int32_t ret = tf_accept_finish(tf, s, req_id, timeout_ms, NULL);
    if (ret != 0) {
        tf_sock_free(tf, s);
        s = NULL;
    }
    *out = s;
    return ret;
}

uint32_t tf_poll_send(struct tf *tf, struct tf_sock *s)
{
    struct xen_pvcalls_request req = request(PVCALLS_POLL);
    req.u.poll.id = s->id;
    return sent(tf, &req);
}

int32_t tf_poll(struct tf *tf, struct tf_sock *s, int timeout_ms)
{
    return tf_result(tf, tf_poll_send(tf, s), timeout_ms, NULL);
}

uint32_t tf_release_send(struct tf *tf, struct tf_sock *s)
{
    struct xen_pvcalls_request req = request(PVCALLS_RELEASE);
    req.u.release.id = s->id;
    req.u.release.reuse = 0;
    return sent(tf, &req);
}

int32_t tf_release_finish(struct tf *tf, struct tf_sock *s, uint32_t req_id,
                          int timeout_ms)
{
    int32_t ret = tf_result(tf, req_id, timeout_ms, NULL);
    /* Only now may the ring's pages be ended (spec: RELEASE). */
    tf_sock_free(tf, s);
    return ret;
}

int32_t tf_release(struct tf *tf, struct tf_sock *s)
{
    return tf_release_finish(tf, s, tf_release_send(tf, s), TF_TIMEOUT_MS);
}
