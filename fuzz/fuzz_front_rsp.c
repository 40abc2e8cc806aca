/*
 * Fuzz target 4: the guest daemon's handling of the backend's responses.
 * frontd runs in process on the fake platform (fakeplat.h) and fake
 * xenstore (fakexs.h), connected to a command ring whose backend end is
 * this harness; a client talks to it over its real unix socket (the
 * shim's protocol, frontd_proto.h).  The input interleaves client calls
 * (SOCKET, CONNECT, BIND, LISTEN, ACCEPT, ... on the tokens it got) with
 * hostile backend behaviour: answers with the right or a wrong req_id,
 * cmd or id, any ret, extension payloads, answers to nothing (rsp_prod
 * beyond the requests), data-ring indexes out of range, and the backend
 * leaving.  frontd must neither crash nor leak, whatever it is told.
 */
#include "cursor.h"
#include "fakeplat.h"
#include "fakexs.h"

#include "../frontd/frontd.h"
#include "pvc/ext.h"
#include "pvc/frontd_proto.h"
#include "pvc/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_OPS 160
#define MAX_TOKENS 8
#define FE_PATH "/local/domain/1/device/pvcalls/0"
#define BE_PATH "/local/domain/0/backend/pvcalls/1/0"

int64_t frontd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct pvc_platform *plat;
static struct xs_handle *xs;
static char sock_path[108];

struct run {
    struct frontd d;
    struct pvc_cmd_back back; /* the backend's end of the command ring */
    bool back_trusted;        /* rsp_prod never written behind its back */
    int client;
    int tokens[MAX_TOKENS];
    uint64_t inos[MAX_TOKENS];
};

static void on_cmd(void *ctx, uint32_t events)
{
    (void)events;
    cmd_process(ctx);
}

static void setup_once(void)
{
    if (plat)
        return;
    pvc_log_set_level(PVC_LOG_ERR);
    plat = fakeplat_open(1);
    xs = fakexs_open();
    fakeplat_set_store(plat, xs);
    snprintf(sock_path, sizeof(sock_path), "/tmp/pvc-fuzz-frontd-%d.sock",
             (int)getpid());
}

/* What frontd's handshake would have left: see frontd/backend.c. */
static void frontd_connect(struct run *r, unsigned ext, unsigned pool)
{
    struct frontd *d = &r->d;
    d->sig_fd = d->listen_fd = -1;
    d->plat = plat;
    d->xs = xs;
    d->loop = pvc_loop_new();
    d->cfg.order = 1 + ext % 4;
    d->cfg.pool = pool;
    d->grant_budget = FRONTD_SIM_GRANT_BUDGET;
    snprintf(d->cfg.sock_path, sizeof(d->cfg.sock_path), "%s", sock_path);
    struct pvc_xb_front *fe = &d->fe;
    fe->plat = plat;
    fe->xs = xs;
    strcpy(fe->fe_path, FE_PATH);
    strcpy(fe->be_path, BE_PATH);
    fe->max_page_order = 4;
    fe->ext_offered = PVC_EXT_ALL;
    fe->ext_enabled = ext & PVC_EXT_ALL;
    /* The backend is already gone as far as xenstore knows, so that a
     * close never waits for it. */
    fakexs_write(FE_PATH "/state", "4", 1);
    fakexs_write(BE_PATH "/state", "6", 1);
    if (pvc_grant_share(plat, 0, 1, 0, &fe->cmd_page, &fe->cmd_ref) < 0)
        abort();
    pvc_cmd_front_init(&fe->cmd, fe->cmd_page);
    pvc_cmd_back_attach(&r->back, fe->cmd_page);
    fe->cmd_evtchn = pvc_evtchn_alloc_unbound(plat, 0);
    if (!fe->cmd_evtchn ||
        pvc_loop_add(d->loop, &d->cmd_watch, pvc_evtchn_fd(fe->cmd_evtchn),
                     EPOLLIN, on_cmd, d) < 0)
        abort();
    snprintf(d->fe_path, sizeof(d->fe_path), "%s", FE_PATH);
    snprintf(d->be_path, sizeof(d->be_path), "%s", BE_PATH);
    d->connected = d->ever_connected = true;
    d->order = d->cfg.order;
    pool_refill(d);
    if (clients_listen(d) < 0)
        abort();
}

static void run_loop(struct run *r)
{
    if (pvc_loop_run_once(r->d.loop, 0) < 0)
        abort();
}

static void client_connect(struct run *r)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    strcpy(a.sun_path, sock_path);
    r->client = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (r->client < 0 ||
        connect(r->client, (struct sockaddr *)&a, sizeof(a)) < 0)
        abort();
    run_loop(r); /* frontd accepts */
}

static void keep_token(struct run *r, int fd, uint64_t ino)
{
    for (unsigned i = 0; i < MAX_TOKENS; i++) {
        if (r->tokens[i] < 0) {
            r->tokens[i] = fd;
            r->inos[i] = ino;
            return;
        }
    }
    close(fd);
}

/* Take frontd's replies: the first fd of a SOCKET/ACCEPT answer is a
 * token; the rest (ring pages, state page, channel) are closed. */
static void client_read(struct run *r)
{
    for (int i = 0; i < 16; i++) {
        struct pvc_fd_rsp rsp;
        union {
            char buf[CMSG_SPACE(sizeof(int) * FRONTD_MAX_REPLY_FDS)];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = { .iov_base = &rsp, .iov_len = sizeof(rsp) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = ctl.buf,
                             .msg_controllen = sizeof(ctl.buf) };
        if (recvmsg(r->client, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) <= 0)
            return;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm;
             cm = CMSG_NXTHDR(&mh, cm)) {
            size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t j = 0; j < k; j++) {
                int fd;
                memcpy(&fd, CMSG_DATA(cm) + j * sizeof(int), sizeof(fd));
                bool token = j == 0 && rsp.ret == 0 &&
                             (rsp.op == PVC_FD_SOCKET ||
                              rsp.op == PVC_FD_ACCEPT);
                if (token)
                    keep_token(r, fd, rsp.ino);
                else
                    close(fd);
            }
        }
    }
}

static void client_call(struct run *r, struct cursor *c)
{
    struct pvc_fd_req req;
    cur_bytes(c, &req, sizeof(req) < 24 ? sizeof(req) : 24);
    uint8_t sel = cur_u8(c);
    req.op = PVC_FD_HELLO + sel % PVC_FD_ADOPT;
    if (req.op == PVC_FD_SOCKET) {
        req.domain = sel & 0x80 ? AF_INET6 : AF_INET;
        req.type = SOCK_STREAM;
        req.protocol = 0;
    }
    if (req.op == PVC_FD_HELLO)
        req.version = PVC_FD_PROTO_VERSION;
    if (req.op == PVC_FD_CONNECT || req.op == PVC_FD_BIND) {
        req.addrlen = sel & 0x80 ? 28 : 16;
        req.addr[0] = sel & 0x80 ? AF_INET6 : AF_INET;
    }
    unsigned k = (sel >> 4) % MAX_TOKENS;
    req.ino = r->inos[k];
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = &req, .iov_len = sizeof(req) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (r->tokens[k] >= 0 && req.op != PVC_FD_SOCKET &&
        req.op != PVC_FD_HELLO) {
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = sizeof(ctl.buf);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &r->tokens[k], sizeof(int));
    }
    sendmsg(r->client, &mh, MSG_NOSIGNAL);
    run_loop(r);
}

/* The backend answers the next request it has, with what the input
 * says: usually the right req_id and cmd, sometimes not. */
static void backend_answer(struct run *r, struct cursor *c)
{
    struct xen_pvcalls_request req;
    union xen_pvcalls_sring_entry e;
    uint8_t how = cur_u8(c);
    if (!r->d.connected)
        return; /* the ring page went with the connection */
    if (pvc_cmd_back_pop(&r->back, &req) <= 0)
        return;
    memset(&e, 0, sizeof(e));
    cur_bytes(c, (uint8_t *)&e + 8, how & 0x40 ? 56 : 16);
    e.rsp.req_id = how & 1 ? req.req_id + cur_u8(c) : req.req_id;
    e.rsp.cmd = how & 2 ? cur_u32(c) : req.cmd;
    if (!(how & 4))
        e.rsp.ret = how & 8 ? -(int32_t)(cur_u8(c) % 135) : 0;
    if (!(how & 0x10))
        e.rsp.u.socket.id = req.u.socket.id; /* the id echoed back */
    if (!(how & 0x20) && req.cmd == PVCALLS_ACCEPT)
        e.rsp.u.accept.id = req.u.accept.id;
    pvc_cmd_back_put(&r->back, &e, how & 0x40 ? sizeof(e) : 24);
    pvc_cmd_back_publish(&r->back);
    fakeplat_kick(plat, pvc_evtchn_port(r->d.fe.cmd_evtchn));
    run_loop(r);
}

/* Raw writes to the shared ring: responses nobody asked for. */
static void backend_raw(struct run *r, struct cursor *c)
{
    struct xen_pvcalls_sring *s = r->d.fe.cmd_page;
    uint8_t which = cur_u8(c);
    if (!r->d.connected)
        return;
    if (which & 1) {
        union xen_pvcalls_sring_entry *e =
            &s->ring[(s->rsp_prod) % RING_SIZE(&r->d.fe.cmd.ring)];
        cur_bytes(c, e, sizeof(*e));
        s->rsp_prod += 1 + (which >> 6);
    } else {
        s->rsp_prod += (int8_t)cur_u8(c);
    }
    r->back_trusted = false;
    fakeplat_kick(plat, pvc_evtchn_port(r->d.fe.cmd_evtchn));
    run_loop(r);
}

/* Write into the fake guest memory (the data rings frontd shares). */
static void backend_mem(struct cursor *c)
{
    uint8_t buf[16];
    unsigned page = cur_u8(c) % FAKE_PAGES, off = cur_u16(c) % FAKE_PAGE;
    size_t len = cur_bytes(c, buf, cur_u8(c) % sizeof(buf));
    if (page == 0)
        return; /* the command ring: backend_raw's business */
    size_t room = FAKE_PAGE - off;
    memcpy(fakeplat_mem(plat) + (size_t)page * FAKE_PAGE + off, buf,
           len < room ? len : room);
}

static void close_token(struct run *r, unsigned k)
{
    k %= MAX_TOKENS;
    if (r->tokens[k] >= 0)
        close(r->tokens[k]);
    r->tokens[k] = -1;
    run_loop(r);
}

static void teardown(struct run *r)
{
    struct frontd *d = &r->d;
    for (unsigned k = 0; k < MAX_TOKENS; k++)
        close_token(r, k);
    close(r->client);
    clients_close_all(d);
    socks_close_all(d);
    frontd_backend_lost(d); /* no RELEASE answers will come */
    frontd_backend_stop(d);
    socks_close_all(d);
    pool_flush(d);
    pvc_loop_free(d->loop);
    if (fakeplat_live_maps(plat) || fakeplat_open_channels(plat))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cursor c = { data, size };
    static struct run r;
    setup_once();
    fakeplat_zero(plat);
    fakexs_reset();
    memset(&r, 0, sizeof(r));
    for (unsigned k = 0; k < MAX_TOKENS; k++)
        r.tokens[k] = -1;
    r.back_trusted = true;
    uint8_t setup = cur_u8(&c);
    frontd_connect(&r, setup, setup >> 6);
    client_connect(&r);
    for (int n = 0; c.left && n < MAX_OPS; n++) {
        switch (cur_u8(&c) % 9) {
        case 0: client_call(&r, &c); break;
        case 1: backend_answer(&r, &c); break;
        case 2: client_read(&r); break;
        case 3: run_loop(&r); break;
        case 4: backend_raw(&r, &c); break;
        case 5: backend_mem(&c); break;
        case 6: close_token(&r, cur_u8(&c)); break;
        case 7:
            fakeplat_kick(plat, 1 + cur_u8(&c) % (FAKE_PORTS - 1));
            run_loop(&r);
            break;
        case 8: frontd_backend_lost(&r.d); break;
        }
    }
    teardown(&r);
    return 0;
}
