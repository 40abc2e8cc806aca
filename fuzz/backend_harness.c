/* The backend's device in process: see backend_harness.h. */
#include "backend_harness.h"

#include "../backend/audit.h"
#include "../backend/backd.h"
#include "../xenbus/back_priv.h"
#include "fakeplat.h"
#include "fakexs.h"
#include "pvc/ext.h"
#include "pvc/log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BE_PATH "/local/domain/0/backend/pvcalls/1/0"
#define FE_PATH "/local/domain/1/device/pvcalls/0"
#define MAX_ORDER 4u

/* Set up once per process, reused by every input. */
static struct backd bd;
static struct pvc_xb_back *xb;
static struct back_dev *xdev;
static int listener = -1;      /* where CONNECTs go */
static uint16_t listen_port;
static int closed4 = -1, closed6 = -1; /* bound, never listening */
static uint16_t closed_port4, closed_port6;

static uint16_t bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        abort();
    return ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                   : ((struct sockaddr_in6 *)&ss)->sin6_port;
}

static int loopback_socket(int family)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in6 a6 = { .sin6_family = AF_INET6,
                               .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    struct sockaddr_in a4 = { .sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int rc = family == AF_INET
                 ? bind(fd, (struct sockaddr *)&a4, sizeof(a4))
                 : bind(fd, (struct sockaddr *)&a6, sizeof(a6));
    if (rc < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void setup_once(void)
{
    if (bd.plat)
        return;
    pvc_log_set_level(PVC_LOG_ERR);
    bd.cfg.max_page_order = MAX_ORDER;
    bd.cfg.max_sockets = 16;
    bd.cfg.ext = PVC_EXT_ALL;
    bd.cfg.ready_fd = -1;
    bd.plat = fakeplat_open(0);
    bd.xs = fakexs_open();
    bd.audit = audit_open("/dev/null");
    /* No --policy: everything allowed, as the daemon runs by default. */
    if (backd_policy_load(&bd) < 0)
        abort();
    listener = loopback_socket(AF_INET);
    closed4 = loopback_socket(AF_INET);
    closed6 = loopback_socket(AF_INET6); /* -1 without IPv6: fine */
    if (listener < 0 || closed4 < 0 || listen(listener, 64) < 0)
        abort();
    listen_port = bound_port(listener);
    closed_port4 = bound_port(closed4);
    closed_port6 = closed6 >= 0 ? bound_port(closed6) : htons(1);
}

/* Connections the backend made to our listener and nobody took. */
static void drain_listener(void)
{
    int fd;
    while ((fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC)) >= 0)
        close(fd);
}

void bh_begin(struct bh *h, unsigned ext)
{
    setup_once();
    memset(h, 0, sizeof(*h));
    for (unsigned i = 0; i < BH_PEERS; i++)
        h->peers[i] = -1;
    h->front_trusted = true;
    fakeplat_zero(bd.plat);
    fakexs_reset();
    bd.loop = pvc_loop_new();
    if (!bd.loop)
        abort();
    pvc_cmd_front_init(&h->front, fakeplat_mem(bd.plat));

    /* The xenbus side, just enough for pvc_xb_back_reset(). */
    xb = calloc(1, sizeof(*xb));
    xdev = calloc(1, sizeof(*xdev));
    if (!xb || !xdev)
        abort();
    xb->plat = bd.plat;
    xb->xs = bd.xs;
    xb->ops = &backd_xb_ops;
    xb->ctx = &bd;
    bd.xb = xb;
    xdev->pub.fe_domid = 1;
    xdev->pub.devid = 0;
    strcpy(xdev->pub.be_path, BE_PATH);
    strcpy(xdev->pub.fe_path, FE_PATH);
    xdev->pub.state = XenbusStateConnected;
    xdev->pub.ring_ref = BH_CMD_REF;
    xdev->pub.port = BH_CMD_PORT;
    xdev->pub.ext_enabled = ext & PVC_EXT_ALL;
    xdev->key = back_dev_key(1, 0);
    HASH_ADD(hh, xb->devs, key, sizeof(xdev->key), xdev);
    fakexs_write(BE_PATH "/state", "4", 1);
    xdev->connected = backd_xb_ops.connect(&bd, &xdev->pub) == 0;
}

struct bdev *bh_dev(void)
{
    return xdev && xdev->connected ? xdev->pub.priv : NULL;
}

void bh_end(struct bh *h)
{
    for (unsigned i = 0; i < BH_PEERS; i++)
        bh_peer_close(h, i);
    back_dev_forget(xb, xdev, false, "fuzz input done");
    xdev = NULL;
    pvc_xb_back_free(xb);
    xb = bd.xb = NULL;
    pvc_loop_free(bd.loop);
    bd.loop = NULL;
    /* Every mapping and channel the device took must be given back. */
    if (fakeplat_live_maps(bd.plat) || fakeplat_open_channels(bd.plat))
        abort();
    drain_listener();
}

/* ---- requests ------------------------------------------------------ */

/* Only loopback, and only our own listener or a closed port. */
static void make_addr_safe(uint8_t *raw, bool to_listener)
{
    uint16_t family;
    memcpy(&family, raw, sizeof(family));
    if (family == AF_INET) {
        struct sockaddr_in a = { .sin_family = AF_INET,
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        a.sin_port = to_listener ? listen_port : closed_port4;
        memcpy(raw, &a, sizeof(a));
    } else if (family == AF_INET6) {
        struct sockaddr_in6 a = { .sin6_family = AF_INET6,
                                  .sin6_addr = IN6ADDR_LOOPBACK_INIT };
        a.sin6_port = closed_port6;
        /* Keep the input's length semantics; scope id 0. */
        memcpy(raw, &a, sizeof(a));
    }
}

static void safe_request(struct xen_pvcalls_request *req)
{
    if (req->cmd == PVCALLS_CONNECT)
        make_addr_safe(req->u.connect.addr, req->u.connect.flags & 1);
    else if (req->cmd == PVCALLS_BIND) {
        make_addr_safe(req->u.bind.addr, false);
        /* Any port is ours to take: let the host choose. */
        memset(req->u.bind.addr + 2, 0, 2);
    }
}

void bh_request(struct bh *h, struct xen_pvcalls_request *req, bool kick)
{
    safe_request(req);
    if (pvc_cmd_front_push(&h->front, req) == -EBUSY) {
        bh_take_responses(h);
        if (pvc_cmd_front_push(&h->front, req) == -EBUSY)
            return;
    }
    if (kick) {
        bh_kick(BH_CMD_PORT);
        bh_run();
    }
}

void bh_run(void)
{
    if (pvc_loop_run_once(bd.loop, 0) < 0)
        abort();
}

void bh_take_responses(struct bh *h)
{
    union xen_pvcalls_sring_entry slot;
    int rc;
    while ((rc = pvc_cmd_front_pop(&h->front, &slot)) > 0)
        ;
    /* More responses than requests: a backend bug, unless the ring's
     * indexes were overwritten. */
    if (rc < 0 && h->front_trusted)
        abort();
}

void bh_poke_cmd_index(struct bh *h, unsigned which, uint32_t val)
{
    struct xen_pvcalls_sring *s = (void *)fakeplat_mem(bd.plat);
    RING_IDX *idx[] = { &s->req_prod, &s->req_event, &s->rsp_prod,
                        &s->rsp_event };
    *idx[which % 4] = val;
    h->front_trusted = false;
}

void bh_write_mem(struct bh *h, unsigned page, unsigned offset,
                  const uint8_t *data, size_t len)
{
    if (page % FAKE_PAGES == BH_CMD_REF - 1)
        h->front_trusted = false; /* the command ring's indexes, maybe */
    size_t start = (size_t)(page % FAKE_PAGES) * FAKE_PAGE +
                   offset % FAKE_PAGE;
    size_t room = (size_t)FAKE_PAGES * FAKE_PAGE - start;
    memcpy(fakeplat_mem(bd.plat) + start, data, len < room ? len : room);
}

struct pvcalls_data_intf *bh_make_ring(uint32_t ref, unsigned order)
{
    order = 1 + order % MAX_ORDER;
    unsigned span = 1 + (1u << order);
    ref = 2 + ref % (FAKE_PAGES - 1 - span);
    struct pvcalls_data_intf *intf =
        (void *)(fakeplat_mem(bd.plat) + (size_t)(ref - 1) * FAKE_PAGE);
    memset(intf, 0, FAKE_PAGE);
    intf->ring_order = order;
    for (unsigned i = 0; i < (1u << order); i++)
        intf->ref[i] = ref + 1 + i;
    return intf;
}

void bh_kick(uint32_t port)
{
    fakeplat_kick(bd.plat, port);
}

void bh_fail_grants(unsigned n)
{
    fakeplat_fail_grants(bd.plat, n);
}

/* ---- the host side of connections ---------------------------------- */

static int free_peer(struct bh *h)
{
    for (unsigned i = 0; i < BH_PEERS; i++)
        if (h->peers[i] < 0)
            return (int)i;
    return -1;
}

void bh_peer_accept(struct bh *h)
{
    int slot = free_peer(h);
    if (slot < 0)
        return;
    h->peers[slot] = accept4(listener, NULL, NULL,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
}

void bh_peer_connect(struct bh *h, uint64_t listener_id)
{
    struct bdev *d = bh_dev();
    int slot = free_peer(h);
    struct bsock *s = d ? sock_find(d, listener_id) : NULL;
    if (slot < 0 || !s || s->state != BS_LISTENING || s->fd < 0)
        return;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(s->fd, (struct sockaddr *)&ss, &len) < 0)
        return;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    0);
    if (fd < 0)
        return;
    connect(fd, (struct sockaddr *)&ss, len); /* EINPROGRESS is fine */
    h->peers[slot] = fd;
}

void bh_peer_send(struct bh *h, unsigned which, const uint8_t *data,
                  size_t len)
{
    int fd = h->peers[which % BH_PEERS];
    if (fd >= 0)
        send(fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
}

void bh_peer_drain(struct bh *h, unsigned which)
{
    int fd = h->peers[which % BH_PEERS];
    char buf[4096];
    for (int i = 0; fd >= 0 && i < 64; i++)
        if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
            break;
}

void bh_peer_close(struct bh *h, unsigned which)
{
    int *fd = &h->peers[which % BH_PEERS];
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}
