/*
 * ADOPT (include/pvc/frontd_proto.h): a token reached a process that did
 * not get it from us: a program exec'd with it open, or a process that
 * received it with SCM_RIGHTS.  Its shim asks what the socket is, and we
 * describe it exactly as far as we know it, with the ring a CONNECT or an
 * ACCEPT answer would have handed over.  Nothing changes here: the token's
 * kernel reference count already counts the new holder.
 */
#include "frontd.h"

#include "pvc/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* The socket whose app-visible token tokfd is, or NULL; closes tokfd.
 * The caller's ino must be the fd's own (as for every request). */
static struct fd_sock *token_of(struct frontd *d, uint64_t ino, int tokfd)
{
    struct stat st;
    struct fd_sock *s = NULL;
    if (tokfd >= 0 && fstat(tokfd, &st) == 0 && S_ISSOCK(st.st_mode) &&
        (uint64_t)st.st_ino == ino)
        s = sock_find(d, ino);
    if (tokfd >= 0)
        close(tokfd);
    /* Gone: its last holder left and it is being released, whatever a
     * late request says. */
    return s && !s->gone ? s : NULL;
}

/* Where s is, and the ring that goes with that (NULL: none). */
static struct fd_ring *describe(const struct fd_sock *s,
                                struct pvc_fd_rsp *rsp)
{
    rsp->sock_flags = (s->bound ? PVC_FD_SOCK_F_BOUND : 0) |
                      (s->dead ? PVC_FD_SOCK_F_DEAD : 0);
    if (s->listening) {
        rsp->sock_state = PVC_FD_SOCK_LISTENING;
        return NULL;
    }
    if (s->connecting) {
        rsp->sock_state = PVC_FD_SOCK_CONNECTING;
        return s->connect_ring;
    }
    if (s->connected) {
        rsp->sock_state = PVC_FD_SOCK_CONNECTED;
        return s->ring;
    }
    /* A failed connect leaves its state page and result behind. */
    if (s->shared &&
        __atomic_load_n(&s->shared->connect_done, __ATOMIC_ACQUIRE)) {
        int32_t ret = __atomic_load_n(&s->shared->connect_ret,
                                      __ATOMIC_RELAXED);
        if (ret < 0) {
            rsp->sock_state = PVC_FD_SOCK_FAILED;
            rsp->so_error = ret;
            return NULL;
        }
    }
    rsp->sock_state = s->bound ? PVC_FD_SOCK_BOUND : PVC_FD_SOCK_CREATED;
    return NULL;
}

int32_t adopt_answer(struct frontd *d, struct fd_client *cl,
                     const struct pvc_fd_req *req, int tokfd)
{
    struct fd_sock *s = token_of(d, req->ino, tokfd);
    if (!s)
        return -ENOTSOCK;
    struct pvc_fd_rsp rsp;
    memset(&rsp, 0, sizeof(rsp));
    rsp.op = PVC_FD_ADOPT;
    rsp.ino = s->ino;
    rsp.domain = s->domain;
    rsp.type = SOCK_STREAM;
    rsp.protocol = IPPROTO_TCP;
    struct fd_ring *r = describe(s, &rsp);
    pvc_debug("socket %llu (ino %llu): adopted (state %u)",
              (unsigned long long)s->id, (unsigned long long)s->ino,
              rsp.sock_state);
    if (!r) {
        client_reply(d, cl, &rsp, NULL, 0);
        return 0;
    }
    return ops_reply_ring(d, cl, &rsp, -1, r, s->state_fd);
}
