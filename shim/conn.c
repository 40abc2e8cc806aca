/*
 * connect(2) on a managed socket.  The daemon never blocks a CONNECT: it
 * hands over the socket's ring at once (-EINPROGRESS) and, when the backend
 * answers, posts the result in the state page and writes a notice byte on
 * the token (frontd_proto.h).  Everything else is Linux's state machine,
 * played here:
 *
 *   CREATED/BOUND --connect--> CONNECTING --result 0--> CONNECTED
 *                                        \--error----> REFUSED --connect(),
 *                                                      which reports the
 *                                                      error--> CREATED/BOUND
 *
 * A blocking connect waits for the result (SO_SNDTIMEO expiring gives
 * EINPROGRESS, a signal without SA_RESTART EINTR, and the connect goes on
 * either way); a non-blocking one returns EINPROGRESS and the result
 * reaches the program through POLLOUT/POLLERR and SO_ERROR.  Whoever looks
 * first (poll, getsockopt, send, recv, connect) settles it.
 */
#include "shim.h"

#include <errno.h>
#include <string.h>

int64_t shim_deadline(int64_t timeo_ns)
{
    return timeo_ns > 0 ? shim_now_ns() + timeo_ns : -1;
}

void shim_token_drain(int fd)
{
    char junk[64];
    int saved = errno;
    while (REAL(recv)(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
        ;
    errno = saved;
}

/* The backend's answer, if the daemon has posted it: 1 (*ret set) or 0. */
static int posted_result(struct shim_sock *s, int32_t *ret)
{
    struct pvc_sock_shared *sh = __atomic_load_n(&s->shared,
                                                 __ATOMIC_ACQUIRE);
    if (!sh || !__atomic_load_n(&sh->connect_done, __ATOMIC_ACQUIRE))
        return 0;
    int32_t r = __atomic_load_n(&sh->connect_ret, __ATOMIC_RELAXED);
    /* The daemon is another process: a value that is no errno is a
     * protocol error, not something to hand the program. */
    *ret = r > 0 || r < -4095 ? -EPROTO : r;
    return 1;
}

int shim_conn_settle(struct shim_sock *s, int fd)
{
    int st = atomic_load(&s->state);
    int32_t ret;
    if (st != SHIM_CONNECTING || !posted_result(s, &ret))
        return st;
    if (ret)
        atomic_store(&s->so_error, ret);
    int expect = SHIM_CONNECTING;
    if (atomic_compare_exchange_strong(&s->state, &expect,
                                       ret ? SHIM_REFUSED : SHIM_CONNECTED)) {
        if (!ret)
            atomic_store(&s->connect_unreported, 1);
        shim_token_drain(fd);
        /* Threads waiting on the token may have lost the byte we just
         * drained, and the wait fd changes: wake them all to re-check. */
        shim_sock_kick(s);
        shim_log("connect(%d) finished: %s", fd,
                 ret ? strerror(-ret) : "connected");
    }
    return atomic_load(&s->state);
}

int shim_conn_wait(struct shim_sock *s, int fd, int64_t deadline_ns)
{
    for (;;) {
        if (shim_conn_settle(s, fd) != SHIM_CONNECTING)
            return 0;
        int err = shim_wait(s, fd, deadline_ns);
        if (err)
            return err;
    }
}

/* connect() on a socket whose connect failed: the error once (or
 * ECONNABORTED if SO_ERROR took it), and the socket may connect again. */
static int report_refused(struct shim_sock *s)
{
    int err = atomic_exchange(&s->so_error, 0);
    int expect = SHIM_REFUSED;
    if (atomic_compare_exchange_strong(&s->state, &expect,
                                       s->pre_connect_state))
        shim_sock_detach(s);
    return err ? err : -ECONNABORTED;
}

/* A blocking connect's wait for the result. */
static int finish(struct shim_sock *s, int fd)
{
    int err = shim_conn_wait(s, fd,
                             shim_deadline(atomic_load(&s->sndtimeo_ns)));
    if (err == -ETIMEDOUT)
        return -EINPROGRESS;
    if (err)
        return err;
    switch (atomic_load(&s->state)) {
    case SHIM_CONNECTED:
        atomic_store(&s->connect_unreported, 0);
        return 0;
    case SHIM_REFUSED:
        return report_refused(s);
    default:
        /* Another thread's connect() collected the failure first. */
        return -ECONNABORTED;
    }
}

/* Send the CONNECT; the ring arrives at once. */
static int start(struct shim_sock *s, int fd, const struct pvc_fd_req *req,
                 int prev)
{
    struct pvc_fd_req r = *req;
    struct pvc_fd_rsp rsp;
    int fds[SHIM_MAX_RX_FDS], nfds;
    s->pre_connect_state = prev;
    int err = shim_daemon_call(&r, fd, &rsp, fds, &nfds);
    if (!err && rsp.ret != -EINPROGRESS)
        err = rsp.ret < 0 ? rsp.ret : -EPROTO;
    if (!err) {
        /* Only this thread is connecting (the state's CAS): no race. */
        s->peer_len = req->addrlen <= sizeof(s->peer_addr) ? req->addrlen : 0;
        memcpy(s->peer_addr, req->addr, s->peer_len);
        err = shim_sock_attach(s, &rsp, fds, nfds, 0);
        if (err)
            shim_sock_detach(s);
        return err;
    }
    for (int i = 0; i < nfds; i++)
        REAL(close)(fds[i]);
    return err;
}

int shim_connect(struct shim_sock *s, int fd, const struct pvc_fd_req *req)
{
    int st = shim_conn_settle(s, fd);
    switch (st) {
    case SHIM_CONNECTED:
        return atomic_exchange(&s->connect_unreported, 0) ? 0 : -EISCONN;
    case SHIM_LISTENING:
        return -EISCONN;
    case SHIM_REFUSED:
        return report_refused(s);
    case SHIM_CONNECTING:
        return shim_fd_nonblock(fd) ? -EALREADY : finish(s, fd);
    }
    if (!atomic_compare_exchange_strong(&s->state, &st, SHIM_CONNECTING))
        return -EALREADY; /* another thread started one just now */
    int err = start(s, fd, req, st);
    if (err) {
        atomic_store(&s->state, st);
        return err;
    }
    return shim_fd_nonblock(fd) ? -EINPROGRESS : finish(s, fd);
}
