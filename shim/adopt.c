/*
 * Adopting a token that reached this process without a daemon answer:
 * inherited across exec, or received with SCM_RIGHTS (inherit.c finds
 * them).  The daemon's ADOPT answer (include/pvc/frontd_proto.h) says
 * where the socket is, with the ring when it has one, and the socket
 * object is rebuilt as the process that made it holds it.
 *
 * Cheap checks first, since most fds a process inherits are no tokens:
 * a token is an AF_UNIX stream socket whose peer is the daemon (it makes
 * both ends, so SO_PEERCRED names its pid); only those are asked about,
 * and the daemon's answer decides.
 */
#include "shim.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* getsockopt without our wrapper (this runs before and inside it). */
static int raw_sockopt(int fd, int name, void *val, socklen_t len)
{
    socklen_t l = len;
    return syscall(SYS_getsockopt, fd, SOL_SOCKET, name, val, &l) == 0 &&
                   l == len
               ? 0 : -1;
}

bool shim_token_shaped(int fd, pid_t *peer)
{
    struct stat st;
    int domain, type;
    struct ucred cred;
    if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode) ||
        raw_sockopt(fd, SO_DOMAIN, &domain, sizeof(domain)) < 0 ||
        domain != AF_UNIX ||
        raw_sockopt(fd, SO_TYPE, &type, sizeof(type)) < 0 ||
        type != SOCK_STREAM ||
        raw_sockopt(fd, SO_PEERCRED, &cred, sizeof(cred)) < 0)
        return false;
    *peer = cred.pid;
    return true;
}

/* The token's SO_RCVTIMEO/SO_SNDTIMEO (the kernel keeps them on the open
 * file, shared with the process that set them): our cached copies. */
static void read_timeouts(struct shim_sock *s, int fd)
{
    struct timeval tv;
    if (raw_sockopt(fd, SO_RCVTIMEO_OLD, &tv, sizeof(tv)) == 0)
        atomic_store(&s->rcvtimeo_ns, (int64_t)tv.tv_sec * 1000000000 +
                                          tv.tv_usec * 1000);
    if (raw_sockopt(fd, SO_SNDTIMEO_OLD, &tv, sizeof(tv)) == 0)
        atomic_store(&s->sndtimeo_ns, (int64_t)tv.tv_sec * 1000000000 +
                                          tv.tv_usec * 1000);
}

/* The socket the answer describes (fds consumed), or NULL. */
static struct shim_sock *rebuild(const struct pvc_fd_rsp *rsp, int *fds,
                                 int nfds)
{
    bool ring = rsp->sock_state == PVC_FD_SOCK_CONNECTING ||
                rsp->sock_state == PVC_FD_SOCK_CONNECTED;
    struct shim_sock *s = NULL;
    /* The daemon is another process: nothing it says is taken on trust. */
    if ((rsp->domain == AF_INET || rsp->domain == AF_INET6) &&
        rsp->sock_state <= PVC_FD_SOCK_FAILED && (ring || nfds == 0) &&
        (rsp->sock_state != PVC_FD_SOCK_FAILED ||
         (rsp->so_error < 0 && rsp->so_error >= -4095)))
        s = shim_sock_new(rsp->ino, rsp->domain);
    if (s)
        s->born_epoch = -1; /* other processes hold it too */
    if (!s || (ring && shim_sock_attach(s, rsp, fds, nfds, 0) < 0)) {
        for (int i = 0; i < nfds; i++)
            if (fds[i] >= 0)
                REAL(close)(fds[i]);
        if (s)
            shim_sock_put(s);
        return NULL;
    }
    s->pre_connect_state = rsp->sock_flags & PVC_FD_SOCK_F_BOUND
                               ? SHIM_BOUND : SHIM_CREATED;
    static const int states[] = {
        [PVC_FD_SOCK_CREATED] = SHIM_CREATED,
        [PVC_FD_SOCK_BOUND] = SHIM_BOUND,
        [PVC_FD_SOCK_LISTENING] = SHIM_LISTENING,
        [PVC_FD_SOCK_CONNECTING] = SHIM_CONNECTING,
        [PVC_FD_SOCK_CONNECTED] = SHIM_CONNECTED,
        [PVC_FD_SOCK_FAILED] = SHIM_REFUSED,
    };
    atomic_store(&s->state, states[rsp->sock_state]);
    if (rsp->sock_state == PVC_FD_SOCK_FAILED)
        atomic_store(&s->so_error, rsp->so_error);
    return s;
}

struct shim_sock *shim_adopt(int fd, pid_t daemon_pid)
{
    pid_t peer;
    struct stat st;
    if (!shim_token_shaped(fd, &peer) || peer != daemon_pid ||
        fstat(fd, &st) < 0)
        return NULL;
    struct pvc_fd_req req = { .op = PVC_FD_ADOPT, .ino = st.st_ino };
    struct pvc_fd_rsp rsp;
    int fds[SHIM_MAX_RX_FDS], nfds;
    int err = shim_daemon_call(&req, fd, &rsp, fds, &nfds);
    if (!err && (rsp.ret < 0 || rsp.ino != (uint64_t)st.st_ino))
        err = rsp.ret < 0 ? rsp.ret : -EPROTO;
    if (err) {
        for (int i = 0; i < nfds; i++)
            REAL(close)(fds[i]);
        if (err != -ENOTSOCK)
            shim_log("fd %d looks like a PV Calls socket, but adopting it "
                     "failed: %s", fd, strerror(-err));
        return NULL;
    }
    struct shim_sock *s = rebuild(&rsp, fds, nfds);
    if (s)
        read_timeouts(s, fd);
    shim_log("fd %d: PV Calls socket adopted (ino %llu, state %u)%s", fd,
             (unsigned long long)st.st_ino, rsp.sock_state,
             s ? "" : ": the daemon's answer is unusable");
    return s;
}
