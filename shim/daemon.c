/*
 * The shim's side of frontd_proto.h: one SEQPACKET connection per thread
 * (so that a thread blocked in accept() does not hold up the others),
 * opened lazily and greeted with HELLO; calls are synchronous.
 *
 * A call interrupted by a signal leaves its answer in flight, so the
 * connection is dropped then (the daemon cancels what it was doing for a
 * client that went away) and the next call opens a new one.
 */
#include "shim.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_CONNS 1024

static __thread int tls_conn = -1;
/* Every thread's connection, so that a forked child can close the ones it
 * inherited from threads that do not exist in it. */
static atomic_int conns[MAX_CONNS];
static atomic_int conns_init;
static pthread_key_t conn_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

/* The daemon's pid as SO_PEERCRED shows it on our connection (tokens
 * show the same: the daemon makes both ends); 0 until known. */
static atomic_int daemon_pid;
static atomic_int daemon_pid_known;

static atomic_uint hello_ext;
static atomic_uint hello_max_order;
static atomic_int hello_done;

static void init_conns(void)
{
    if (atomic_exchange(&conns_init, 1))
        return;
    for (int i = 0; i < MAX_CONNS; i++)
        atomic_store(&conns[i], -1);
}

static void forget_conn(int fd)
{
    for (int i = 0; i < MAX_CONNS; i++) {
        int expect = fd;
        if (atomic_compare_exchange_strong(&conns[i], &expect, -1))
            return;
    }
}

static void remember_conn(int fd)
{
    for (int i = 0; i < MAX_CONNS; i++) {
        int expect = -1;
        if (atomic_compare_exchange_strong(&conns[i], &expect, fd))
            return;
    }
}

static void drop_conn(void)
{
    if (tls_conn < 0)
        return;
    forget_conn(tls_conn);
    shim_priv_close(tls_conn);
    tls_conn = -1;
}

/* Thread exit: close this thread's connection. */
static void conn_destructor(void *unused)
{
    (void)unused;
    drop_conn();
}

static void make_key(void)
{
    pthread_key_create(&conn_key, conn_destructor);
}

void shim_daemon_fd_closed(int fd)
{
    if (!atomic_load(&conns_init) || fd < 0)
        return;
    forget_conn(fd);
    if (fd == tls_conn)
        tls_conn = -1;
}

void shim_daemon_range_closed(unsigned first, unsigned last)
{
    if (!atomic_load(&conns_init))
        return;
    for (int i = 0; i < MAX_CONNS; i++) {
        int fd = atomic_load(&conns[i]);
        /* Ours are private (skipped by close_range) unless marking them
         * failed: then the number is gone, and must be forgotten. */
        if (fd >= 0 && (unsigned)fd >= first && (unsigned)fd <= last &&
            !shim_priv_is(fd))
            shim_daemon_fd_closed(fd);
    }
}

void shim_daemon_fork_child(void)
{
    if (!atomic_load(&conns_init))
        return;
    for (int i = 0; i < MAX_CONNS; i++) {
        int fd = atomic_exchange(&conns[i], -1);
        if (fd >= 0)
            shim_priv_close(fd);
    }
    tls_conn = -1;
}

static const char *daemon_path(void)
{
    return shim_env_frontd_sock();
}

static int xfer(int conn, struct pvc_fd_req *req, int token,
                struct pvc_fd_rsp *rsp, int fds[SHIM_MAX_RX_FDS], int *nfds);

static void note_daemon_pid(int conn)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (REAL(getsockopt)(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return;
    atomic_store(&daemon_pid, (int)cred.pid);
    atomic_store(&daemon_pid_known, 1);
}

static int open_conn(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    const char *path = daemon_path();
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int fd = REAL(socket)(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    fd = shim_priv_fd(fd);
    if (REAL(connect)(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int err = errno;
        shim_priv_close(fd);
        return -err;
    }
    note_daemon_pid(fd);
    struct pvc_fd_req req = { .op = PVC_FD_HELLO,
                              .version = PVC_FD_PROTO_VERSION };
    struct pvc_fd_rsp rsp;
    int fds[SHIM_MAX_RX_FDS], nfds;
    int err = xfer(fd, &req, -1, &rsp, fds, &nfds);
    for (int i = 0; i < nfds; i++)
        REAL(close)(fds[i]);
    if (!err && rsp.ret < 0)
        err = rsp.ret;
    if (err) {
        shim_priv_close(fd);
        return err;
    }
    atomic_store(&hello_ext, rsp.ext);
    atomic_store(&hello_max_order, rsp.max_order);
    atomic_store(&hello_done, 1);
    return fd;
}

static int get_conn(void)
{
    if (tls_conn >= 0)
        return tls_conn;
    init_conns();
    pthread_once(&key_once, make_key);
    int fd = open_conn();
    if (fd < 0)
        return fd;
    tls_conn = fd;
    remember_conn(fd);
    pthread_setspecific(conn_key, (void *)1); /* arms the destructor */
    return fd;
}

static int send_req(int conn, struct pvc_fd_req *req, int token)
{
    struct iovec iov = { .iov_base = req, .iov_len = sizeof(*req) };
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (token >= 0) {
        memset(&u, 0, sizeof(u));
        mh.msg_control = u.buf;
        mh.msg_controllen = sizeof(u.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &token, sizeof(int));
    }
    ssize_t n;
    do
        n = REAL(sendmsg)(conn, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    return n == (ssize_t)sizeof(*req) ? 0 : -EPROTO;
}

static int recv_rsp(int conn, struct pvc_fd_rsp *rsp,
                    int fds[SHIM_MAX_RX_FDS], int *nfds)
{
    struct iovec iov = { .iov_base = rsp, .iov_len = sizeof(*rsp) };
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * SHIM_MAX_RX_FDS)];
    } u;
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = u.buf,
                         .msg_controllen = sizeof(u.buf) };
    *nfds = 0;
    /* The kernel restarts this itself after an SA_RESTART handler, and
     * returns EINTR otherwise: exactly the blocking call's semantics. */
    /* The answer's fds must not fail for want of numbers below a low
     * soft limit that the program set for its own fds: the shim's own
     * ones go above it (and an app-visible token that lands there is
     * refused by the caller with EMFILE, as Linux would). */
    rlim_t soft = shim_fd_room_begin(SHIM_MAX_RX_FDS);
    ssize_t n = REAL(recvmsg)(conn, &mh, MSG_CMSG_CLOEXEC);
    int err = errno;
    shim_fd_room_end(soft);
    if (n < 0)
        return -err;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (*nfds < SHIM_MAX_RX_FDS)
                fds[(*nfds)++] = fd;
            else
                REAL(close)(fd);
        }
    }
    if (n == 0)
        return -ECONNRESET;
    if (n != (ssize_t)sizeof(*rsp) || (mh.msg_flags & MSG_TRUNC))
        return -EPROTO;
    /* A whole answer whose fds the kernel could not all install (no
     * answer carries more than we take): this process has no free fd.
     * The connection is still in step. */
    if (mh.msg_flags & MSG_CTRUNC)
        return -EMFILE;
    return 0;
}

static int xfer(int conn, struct pvc_fd_req *req, int token,
                struct pvc_fd_rsp *rsp, int fds[SHIM_MAX_RX_FDS], int *nfds)
{
    *nfds = 0;
    int err = send_req(conn, req, token);
    if (!err)
        err = recv_rsp(conn, rsp, fds, nfds);
    if (!err && rsp->op != req->op)
        err = -EPROTO;
    if (err)
        for (int i = 0; i < *nfds; i++)
            REAL(close)(fds[i]);
    if (err)
        *nfds = 0;
    return err;
}

int shim_daemon_call(struct pvc_fd_req *req, int token,
                     struct pvc_fd_rsp *rsp, int fds[SHIM_MAX_RX_FDS],
                     int *nfds)
{
    *nfds = 0;
    int saved = errno;
    shim_in_shim++;
    int conn = get_conn();
    int err = conn < 0 ? conn : xfer(conn, req, token, rsp, fds, nfds);
    /* A dead or desynchronised connection is never reused (one whose
     * answer only lacked room for its fds is fine). */
    if (err && err != -EMFILE && conn >= 0)
        drop_conn();
    /* The daemon restarted or the application closed our fd: retry once
     * on a fresh connection, unless the call itself was interrupted. */
    if ((err == -EPIPE || err == -ECONNRESET || err == -EBADF ||
         err == -ENOTSOCK) && conn >= 0) {
        conn = get_conn();
        err = conn < 0 ? conn : xfer(conn, req, token, rsp, fds, nfds);
        if (err && conn >= 0)
            drop_conn();
    }
    shim_in_shim--;
    errno = saved;
    return err;
}

int shim_daemon_hello(uint32_t *ext, uint32_t *max_order)
{
    if (!atomic_load(&hello_done)) {
        shim_in_shim++;
        int conn = get_conn();
        shim_in_shim--;
        if (conn < 0)
            return conn;
    }
    *ext = atomic_load(&hello_ext);
    *max_order = atomic_load(&hello_max_order);
    return 0;
}

int shim_daemon_pid(pid_t *pid, bool connect)
{
    if (!atomic_load(&daemon_pid_known)) {
        if (!connect)
            return -ENOTCONN;
        shim_in_shim++;
        int conn = get_conn();
        shim_in_shim--;
        if (conn < 0)
            return conn;
    }
    *pid = (pid_t)atomic_load(&daemon_pid);
    return 0;
}
