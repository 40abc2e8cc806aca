/*
 * The guest daemon's protocol: libpvcalls.so (the shim, in every opted-in
 * process) <-> pvcalls-frontd (one per guest, sole owner of the command
 * ring).
 *
 * Transport: a filesystem Unix SOCK_SEQPACKET socket (default
 * PVC_FRONTD_DEFAULT_SOCK; the PVC_FRONTD_SOCK environment variable
 * overrides it).  The shim opens one connection per thread (lazily; a
 * forked child opens its own), and makes synchronous calls on it: one
 * struct pvc_fd_req in, one struct pvc_fd_rsp out, in order.  Only the
 * data plane bypasses the daemon: bytes move through each socket's data
 * ring, which the shim maps itself.
 *
 * Sockets.  Every managed socket has an app-visible fd that is a real
 * kernel object: one end of a socketpair(AF_UNIX, SOCK_STREAM) whose other
 * end the daemon keeps.  close/dup/fork/exec/SCM_RIGHTS and process death
 * then keep the kernel's reference count, and the daemon learns that the
 * last holder is gone when its end reports HUP; it then lets the `out`
 * ring drain and sends RELEASE.  The token's inode number (fstat st_ino)
 * names the socket in requests, and the token fd itself travels with
 * every request on a socket (SCM_RIGHTS) as proof that the caller holds it:
 * the daemon checks that the received fd's inode is that socket's token
 * and closes its copy.
 *
 * Tokens travel (exec, SCM_RIGHTS): a process holding a token it did
 * not get in an answer asks PVC_FD_ADOPT for everything it needs to use
 * the socket.  The daemon makes both ends of every token pair itself, so
 * SO_PEERCRED on a token names the daemon's pid (the same pid as on a
 * connection to the daemon's socket): the shim uses that to pick the
 * fds worth asking about, and the daemon's answer is the proof.
 *
 * Token readiness.  The daemon writes one byte on its end of a token
 * (non-blocking; a full buffer is readable anyway) when (a) a listener
 * has a parked connection, and no byte was written since the last ACCEPT
 * request on it, (b) a CONNECT finished (state page
 * connect_done set first).  So the app's token is readable (POLLIN for
 * the kernel, for poll, epoll and a bypassing program alike) exactly when
 * the daemon has news for a listening or connecting socket.  The shim
 * drains the token (recv MSG_DONTWAIT on it) before it sends ACCEPT and
 * when it settles a finished connect; the daemon writes again after any
 * ACCEPT request that leaves parked connections behind, so a drain can
 * never swallow the only notice of a parked connection.  The daemon
 * watches its own end only for hang-up (last holder gone) and has shut
 * it for reading, so a program that writes into its token (bypassing the
 * shim) gets EPIPE and nothing queues at the daemon.
 *
 * Each connected socket also has a shared state page (a memfd page from
 * the daemon, the same for every holder) with the cross-process locks
 * and flags of struct pvc_sock_shared, so that forked holders of one
 * socket do not corrupt its ring.
 */
#ifndef PVC_FRONTD_PROTO_H
#define PVC_FRONTD_PROTO_H

#include "pvc/platform.h"

#include <pthread.h>
#include <stdint.h>

#define PVC_FRONTD_DEFAULT_SOCK "/run/pvcalls/frontd.sock"
#define PVC_FD_PROTO_VERSION 4

enum pvc_fd_op {
    /* in: version.  out: ret, ext (the PVC_EXT_* bits enabled with the
     * backend), max_order. */
    PVC_FD_HELLO = 1,
    /* in: domain, type (SOCK_* flags stripped by the shim), protocol.
     * out: ret, ino, fds: [0] the app-visible token fd. */
    PVC_FD_SOCKET,
    /* in: token fd, addr/addrlen, order (0: the daemon's default).
     * Never blocks: the daemon sends the backend's CONNECT and answers at
     * once.  out: ret -EINPROGRESS and the socket's ring: fds [0] ring
     * pages (indexes page then 2^order data pages, one hand-off), [1]
     * state page, then the event channel's fds; ring_offset, order,
     * evt_kind, evt_port, evt_nfds.  (Or a negative errno and no fds:
     * -EISCONN, -EALREADY, -EINVAL, -EAFNOSUPPORT, -ENOBUFS (no grants or
     * event channels left), -ENOMEM, ...)  When the
     * backend answers, the daemon stores the result in the state page
     * (connect_ret, then connect_done = 1 with release order) and makes
     * the token readable (see "Token readiness").  The ring is live only
     * once connect_done is set with connect_ret == 0.  A blocking
     * connect(2) waits for that in the shim, so a signal or SO_SNDTIMEO
     * leaves the connect going on, as in Linux. */
    PVC_FD_CONNECT,
    /* in: token fd, addr/addrlen.  out: ret. */
    PVC_FD_BIND,
    /* in: token fd, backlog.  out: ret. */
    PVC_FD_LISTEN,
    /* in: token fd of a listener, flags (SOCK_NONBLOCK|SOCK_CLOEXEC are
     * the shim's business, ignored here).  Never blocks: from LISTEN on,
     * the daemon keeps one backend ACCEPT outstanding per listener and
     * parks the connections it yields (at most PVC_FD_ACCEPT_PARK per
     * listener; beyond that they wait in the backend's backlog).  out:
     * a parked connection: ret 0, ino of the new socket, addr/addrlen of
     * the peer (when the backend has accept-addr), fds: [0] the new
     * token, then the ring fds as for CONNECT; or -EAGAIN when none is
     * parked; or a parked backend error (reported once, as Linux's
     * accept reports a pending error).  A blocking accept(2) waits for
     * the listener's token to become readable in the shim, then asks
     * again. */
    PVC_FD_ACCEPT,
    /* in: token fd, how.  out: ret.  (The daemon first lets the out ring
     * drain for SHUT_WR, like the backend does.) */
    PVC_FD_SHUTDOWN,
    /* in: token fd.  out: ret, addr/addrlen. */
    PVC_FD_GETSOCKNAME,
    PVC_FD_GETPEERNAME,
    /* in: token fd, level, optname, optlen, optval.  out: ret
     * (GETSOCKOPT: optlen, optval). */
    PVC_FD_SETSOCKOPT,
    PVC_FD_GETSOCKOPT,
    /* in: a token fd (the proof, as for every per-socket op), ino (its
     * fstat inode).  Asked by a process that holds a token it did not get
     * from this daemon's answers: inherited across exec, or received
     * with SCM_RIGHTS.  Never blocks, changes nothing.  out: -ENOTSOCK
     * when the fd is no token of this daemon (or names a socket being
     * released); else ret 0, ino, domain, type (SOCK_STREAM), protocol
     * (IPPROTO_TCP), sock_state (enum pvc_fd_sock_state), sock_flags
     * (PVC_FD_SOCK_F_*), so_error (FAILED: the failed connect's error)
     * and, when the socket has a ring (CONNECTING, CONNECTED), the ring
     * fds exactly as CONNECT's answer: [0] ring pages, [1] state page,
     * then the channel's fds; ring_offset, order, evt_*.  A CONNECTING
     * socket settles as after CONNECT: the backend's answer lands in
     * that state page and the token turns readable.  (A failed connect's
     * error may already have been reported to the holder that saw it
     * first: the daemon cannot tell, and reports it again.) */
    PVC_FD_ADOPT,
};

/* ADOPT: where a socket is, as the daemon knows it. */
enum pvc_fd_sock_state {
    PVC_FD_SOCK_CREATED = 0,
    PVC_FD_SOCK_BOUND,
    PVC_FD_SOCK_LISTENING,
    PVC_FD_SOCK_CONNECTING,   /* CONNECT sent, the backend has not answered */
    PVC_FD_SOCK_CONNECTED,    /* connected or accepted */
    PVC_FD_SOCK_FAILED,       /* its last connect failed (so_error) */
};
/* ADOPT's sock_flags. */
#define PVC_FD_SOCK_F_BOUND 1u /* bound (FAILED: a new connect starts bound) */
#define PVC_FD_SOCK_F_DEAD 2u  /* the backend that knew it went away: every
                                * call on it fails (-ECONNRESET) */

/* Connections a listener's daemon side accepts ahead of the program. */
#define PVC_FD_ACCEPT_PARK 64u

#define PVC_FD_ADDR_MAX 28u
#define PVC_FD_OPT_MAX 28u

struct pvc_fd_req {
    uint32_t op;
    uint32_t version;       /* HELLO */
    int32_t domain, type, protocol; /* SOCKET */
    int32_t backlog;        /* LISTEN */
    int32_t how;            /* SHUTDOWN */
    int32_t flags;          /* ACCEPT */
    uint32_t order;         /* CONNECT */
    int32_t level, optname; /* SOCKOPT */
    uint32_t optlen;
    uint8_t optval[PVC_FD_OPT_MAX];
    uint32_t addrlen;       /* CONNECT, BIND */
    uint8_t addr[PVC_FD_ADDR_MAX];
    uint64_t ino;           /* the token's inode, for a request on a socket */
};

struct pvc_fd_rsp {
    uint32_t op;
    int32_t ret;            /* 0 or a negative errno, as the call returns */
    uint32_t ext;           /* HELLO */
    uint32_t max_order;     /* HELLO */
    uint64_t ino;           /* SOCKET, ACCEPT: the new token's inode */
    uint32_t order;         /* ring order (CONNECT, ACCEPT) */
    uint64_t ring_offset;   /* mmap offset of the ring pages in fds[0] */
    uint32_t evt_kind;      /* enum pvc_platform_kind */
    uint32_t evt_port;
    uint32_t evt_kick_port; /* pvc_evtchn_handoff.kick_port (Xen) */
    uint32_t evt_nfds;
    uint32_t optlen;
    uint8_t optval[PVC_FD_OPT_MAX];
    uint32_t addrlen;
    uint8_t addr[PVC_FD_ADDR_MAX];
    int32_t domain, type, protocol; /* ADOPT */
    uint32_t sock_state;    /* ADOPT: enum pvc_fd_sock_state */
    uint32_t sock_flags;    /* ADOPT: PVC_FD_SOCK_F_* */
    int32_t so_error;       /* ADOPT (FAILED) */
};

/*
 * The shared state page of a connected socket (one page, zeroed by the
 * daemon).  Process-shared, robust mutexes: a holder killed inside a
 * critical section leaves the lock recoverable (EOWNERDEAD).
 */
struct pvc_sock_shared {
    pthread_mutex_t rx_lock; /* serialises consumers of `in` */
    pthread_mutex_t tx_lock; /* serialises producers of `out` */
    uint32_t shut_rd;        /* shutdown(SHUT_RD) was called */
    uint32_t shut_wr;        /* shutdown(SHUT_WR) was called */
    int32_t so_error;        /* pending SO_ERROR, cleared when read */
    /* Written by the daemon only (CONNECT): the backend's answer, then
     * connect_done = 1 (release).  Readers load connect_done (acquire)
     * before connect_ret. */
    int32_t connect_ret;
    uint32_t connect_done;
};

#endif
