/*
 * Broker connections: the listening socket, one SOCK_SEQPACKET connection
 * per struct pvc_platform, one request per packet, one reply per request
 * (file descriptors as SCM_RIGHTS), and the dispatch table.
 *
 * Every client is hostile until proven otherwise: a packet that is short,
 * truncated, carries fds, names an unknown op or has a variable part of
 * the wrong size gets an error reply, never a crash.  A client that does
 * not read its replies is disconnected rather than allowed to block the
 * broker (replies are sent with MSG_DONTWAIT; a well-behaved client has
 * at most one reply in flight).
 */
#include "broker.h"

#include "pvc/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <utlist.h>

/* What the variable part of a request must hold. */
enum var_kind { VAR_NONE, VAR_COUNT_WORDS };

static const struct op_entry {
    op_handler fn;
    enum var_kind var;
} op_table[] = {
    [SIM_OP_HELLO] = { op_hello, VAR_NONE },
    [SIM_OP_GNT_SHARE] = { op_gnt_share, VAR_NONE },
    [SIM_OP_GNT_UNSHARE] = { op_gnt_unshare, VAR_COUNT_WORDS },
    [SIM_OP_GNT_MAP] = { op_gnt_map, VAR_COUNT_WORDS },
    [SIM_OP_EVT_ALLOC_UNBOUND] = { op_evt_alloc_unbound, VAR_NONE },
    [SIM_OP_EVT_BIND_INTERDOMAIN] = { op_evt_bind_interdomain, VAR_NONE },
    [SIM_OP_EVT_CLOSE] = { op_evt_close, VAR_NONE },
    [SIM_OP_DOMAIN_CREATE] = { op_domain_create, VAR_NONE },
    [SIM_OP_DOMAIN_DESTROY] = { op_domain_destroy, VAR_NONE },
};
#define N_OPS (sizeof(op_table) / sizeof(op_table[0]))

/* Room for the largest valid request plus one word, so that an oversized
 * packet shows up as MSG_TRUNC. */
#define RQ_WORDS (sizeof(struct sim_msg) / 4 + SIM_MAX_REFS + 1)

void reply_add_fd(struct reply *rp, int fd, bool close_after)
{
    /* Handlers add at most SIM_MAX_FDS (grants.c bounds its count). */
    rp->fds[rp->nfds] = fd;
    rp->close_after[rp->nfds] = close_after;
    rp->nfds++;
}

static void reply_close_fds(struct reply *rp)
{
    for (unsigned i = 0; i < rp->nfds; i++)
        if (rp->close_after[i])
            close(rp->fds[i]);
}

static int reply_send(struct conn *c, const struct reply *rp)
{
    struct iovec iov[2] = {
        { .iov_base = (void *)&rp->msg, .iov_len = sizeof(rp->msg) },
        { .iov_base = (void *)rp->var, .iov_len = rp->nvar * 4 },
    };
    union {
        char buf[CMSG_SPACE(sizeof(int) * SIM_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = rp->nvar ? 2 : 1 };
    if (rp->nfds) {
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * rp->nfds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * rp->nfds);
        memcpy(CMSG_DATA(cm), rp->fds, sizeof(int) * rp->nfds);
    }
    ssize_t n = sendmsg(c->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    return n < 0 ? -1 : 0;
}

/* Close any fds a client sent us: requests never carry any. */
static void drop_received_fds(struct msghdr *mh)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm;
         cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            close(fd);
        }
    }
}

/* Validate the packet and run its handler; fills rp->msg.status. */
static int dispatch(struct conn *c, const uint32_t *buf, size_t len,
                    bool truncated, struct reply *rp)
{
    if (len < sizeof(struct sim_msg))
        return -EINVAL;
    struct request rq = {
        .msg = (const struct sim_msg *)buf,
        .var = buf + sizeof(struct sim_msg) / 4,
        .nvar = (len - sizeof(struct sim_msg)) / 4,
    };
    uint32_t op = rq.msg->op;
    if (op >= N_OPS || !op_table[op].fn)
        return -ENOSYS;
    if (!c->hello_done && op != SIM_OP_HELLO)
        return -EPROTO;
    size_t want = op_table[op].var == VAR_COUNT_WORDS ? rq.msg->count : 0;
    if (truncated || len % 4 || rq.nvar != want)
        return -EINVAL;
    return op_table[op].fn(c, &rq, rp);
}

static void conn_handle_packet(struct conn *c)
{
    uint32_t buf[RQ_WORDS];
    union {
        char buf[CMSG_SPACE(sizeof(int) * 16)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
    };
    ssize_t n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        pvc_debug("connection fd %d closed", c->fd);
        conn_close(c);
        return;
    }
    drop_received_fds(&mh);

    /* The reply is large (a map of SIM_MAX_REFS pages); keep it off the
     * stack, the broker handles one request at a time. */
    static struct reply rp;
    memset(&rp.msg, 0, sizeof(rp.msg));
    rp.nvar = 0;
    rp.nfds = 0;
    rp.msg.op = (size_t)n >= sizeof(uint32_t) ? buf[0] : 0;
    rp.msg.status = dispatch(c, buf, (size_t)n,
                             mh.msg_flags & MSG_TRUNC, &rp);
    if (rp.msg.status) {
        /* An error carries no payload. */
        rp.nvar = 0;
        reply_close_fds(&rp);
        rp.nfds = 0;
    }
    int sent = c->dead ? -1 : reply_send(c, &rp);
    if (rp.msg.status == 0)
        reply_close_fds(&rp);
    if (sent < 0 && !c->dead) {
        pvc_debug("connection fd %d: reply not sent (%s), closing", c->fd,
                  strerror(errno));
        conn_close(c);
    }
}

static void conn_on_event(void *ctx, uint32_t events)
{
    struct conn *c = ctx;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        conn_handle_packet(c);
}

static void conn_free(void *ptr)
{
    free(ptr);
}

void conn_close(struct conn *c)
{
    struct broker *b = c->broker;
    if (c->dead)
        return;
    c->dead = true;
    pvc_loop_del(b->loop, &c->watch);
    close(c->fd);
    c->fd = -1;
    if (c->hello_done) {
        struct domain *d = domain_find(b, c->domid);
        if (d)
            ports_free_conn(d, c);
    }
    DL_DELETE(b->conns, c);
    pvc_loop_defer_free(b->loop, c, conn_free);
}

void conn_close_all(struct broker *b)
{
    struct conn *c, *tmp;
    DL_FOREACH_SAFE(b->conns, c, tmp)
        conn_close(c);
}

void conn_close_domain(struct broker *b, pvc_domid_t domid)
{
    struct conn *c, *tmp;
    DL_FOREACH_SAFE(b->conns, c, tmp)
        if (c->hello_done && c->domid == domid)
            conn_close(c);
}

static void conn_accept(struct broker *b, int fd)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    c->fd = fd;
    c->broker = b;
    if (pvc_loop_add(b->loop, &c->watch, fd, EPOLLIN, conn_on_event, c) < 0) {
        pvc_warn("cannot watch connection: %s", strerror(errno));
        close(fd);
        free(c);
        return;
    }
    DL_APPEND(b->conns, c);
    pvc_debug("connection fd %d accepted", fd);
}

/* Out of fds: accept and drop the connection so that the level-triggered
 * listening socket does not wake us again and again.  A spare fd kept
 * open for this purpose makes room for the accept. */
static int spare_fd = -1;

static void on_listen(void *ctx, uint32_t events)
{
    (void)events;
    struct broker *b = ctx;
    int fd = accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
        conn_accept(b, fd);
        return;
    }
    if ((errno == EMFILE || errno == ENFILE) && spare_fd >= 0) {
        pvc_warn("out of file descriptors: refusing a connection");
        close(spare_fd);
        fd = accept(b->listen_fd, NULL, NULL);
        if (fd >= 0)
            close(fd);
        spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
}

/* 1 if a live broker answers at path, 0 if not (stale or absent). */
static int broker_alive(const struct sockaddr_un *addr)
{
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    0);
    if (fd < 0)
        return 0;
    int rc = connect(fd, (const struct sockaddr *)addr, sizeof(*addr));
    int alive = rc == 0 || errno == EAGAIN || errno == EINPROGRESS;
    close(fd);
    return alive;
}

int conn_listen_start(struct broker *b, const char *sock_path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (strlen(sock_path) >= sizeof(addr.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(addr.sun_path, sock_path);
    struct stat st;
    if (lstat(sock_path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            errno = EEXIST;
            return -1;
        }
        if (broker_alive(&addr)) {
            errno = EADDRINUSE;
            return -1;
        }
        unlink(sock_path);
    }
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        chmod(sock_path, 0666) < 0 || listen(fd, 128) < 0 ||
        pvc_loop_add(b->loop, &b->listen_watch, fd, EPOLLIN, on_listen, b) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    b->listen_fd = fd;
    if (spare_fd < 0)
        spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return 0;
}

void conn_listen_stop(struct broker *b)
{
    if (b->listen_fd < 0)
        return;
    pvc_loop_del(b->loop, &b->listen_watch);
    close(b->listen_fd);
    b->listen_fd = -1;
    if (spare_fd >= 0) {
        close(spare_fd);
        spare_fd = -1;
    }
}
