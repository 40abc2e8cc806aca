/*
 * libpvcalls.so internals: the interposition shim that carries AF_INET and
 * AF_INET6 SOCK_STREAM sockets over PV Calls (see include/pvc/frontd_proto.h
 * for how the shim and the guest daemon share the work).
 *
 * Modules:
 *   real.c     the libc functions we wrap (dlsym(RTLD_NEXT), once), the
 *              thread-local recursion guard, process-wide init and fork
 *   fdtable.c  fd -> struct shim_sock, refcounted (pure; unit-tested)
 *   daemon.c   the per-thread connection to pvcalls-frontd, calls on it
 *   sock.c     the socket object: creation, ring hand-off, release
 *   uaccess.c  copies to and from unverified user memory (EFAULT, no crash)
 *   wait.c     blocking on a socket's event channel with Linux's
 *              EINTR/SA_RESTART behaviour
 *   sig.c      sigaction/signal wrappers that record SA_RESTART
 *   data.c     the data path: ring send/receive with MSG_* semantics
 *   poll.c     poll/ppoll/select/pselect over managed and native fds
 *   api_*.c    the interposed entry points
 */
#ifndef PVC_SHIM_H
#define PVC_SHIM_H

#include "pvc/frontd_proto.h"
#include "pvc/platform.h"
#include "pvc/ring.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

/* ---- real.c -------------------------------------------------------- */

#define SHIM_REAL_FUNCS(X)                                                   \
    X(int, socket, (int, int, int))                                         \
    X(int, connect, (int, const struct sockaddr *, socklen_t))              \
    X(int, bind, (int, const struct sockaddr *, socklen_t))                 \
    X(int, listen, (int, int))                                              \
    X(int, accept, (int, struct sockaddr *, socklen_t *))                   \
    X(int, accept4, (int, struct sockaddr *, socklen_t *, int))             \
    X(ssize_t, send, (int, const void *, size_t, int))                      \
    X(ssize_t, sendto, (int, const void *, size_t, int,                     \
                        const struct sockaddr *, socklen_t))                \
    X(ssize_t, sendmsg, (int, const struct msghdr *, int))                  \
    X(int, sendmmsg, (int, struct mmsghdr *, unsigned, int))                \
    X(ssize_t, recv, (int, void *, size_t, int))                            \
    X(ssize_t, recvfrom, (int, void *, size_t, int, struct sockaddr *,      \
                          socklen_t *))                                     \
    X(ssize_t, recvmsg, (int, struct msghdr *, int))                        \
    X(int, recvmmsg, (int, struct mmsghdr *, unsigned, int,                 \
                      struct timespec *))                                   \
    X(ssize_t, read, (int, void *, size_t))                                 \
    X(ssize_t, write, (int, const void *, size_t))                          \
    X(ssize_t, readv, (int, const struct iovec *, int))                     \
    X(ssize_t, writev, (int, const struct iovec *, int))                    \
    X(ssize_t, sendfile, (int, int, off_t *, size_t))                       \
    X(ssize_t, sendfile64, (int, int, off64_t *, size_t))                   \
    X(int, close, (int))                                                    \
    X(int, close_range, (unsigned, unsigned, int))                          \
    X(int, shutdown, (int, int))                                            \
    X(int, getsockname, (int, struct sockaddr *, socklen_t *))              \
    X(int, getpeername, (int, struct sockaddr *, socklen_t *))              \
    X(int, getsockopt, (int, int, int, void *, socklen_t *))                \
    X(int, setsockopt, (int, int, int, const void *, socklen_t))            \
    X(int, fcntl, (int, int, ...))                                          \
    X(int, fcntl64, (int, int, ...))                                        \
    X(int, ioctl, (int, unsigned long, ...))                                \
    X(int, dup, (int))                                                      \
    X(int, dup2, (int, int))                                                \
    X(int, dup3, (int, int, int))                                           \
    X(int, fclose, (FILE *))                                                \
    X(FILE *, fdopen, (int, const char *))                                  \
    X(int, epoll_ctl, (int, int, int, struct epoll_event *))                \
    X(int, sigaction, (int, const struct sigaction *, struct sigaction *))  \
    X(int, poll, (struct pollfd *, nfds_t, int))                            \
    X(int, ppoll, (struct pollfd *, nfds_t, const struct timespec *,        \
                   const sigset_t *))                                       \
    X(int, select, (int, fd_set *, fd_set *, fd_set *, struct timeval *))   \
    X(int, pselect, (int, fd_set *, fd_set *, fd_set *,                     \
                     const struct timespec *, const sigset_t *))

struct shim_real {
#define SHIM_REAL_FIELD(ret, name, args) ret(*name) args;
    SHIM_REAL_FUNCS(SHIM_REAL_FIELD)
#undef SHIM_REAL_FIELD
};

extern struct shim_real shim_real;

/* Resolve the real functions (once; safe from any thread). */
void shim_init(void);
/* REAL(fn): the libc function, resolved on first use. */
#define REAL(fn) (shim_init(), shim_real.fn)

/* Thread-local recursion guard: while set, wrappers go straight to libc
 * (the shim's own calls into libc that might come back into a wrapper). */
extern __thread int shim_in_shim;

/* Logging of what the shim carried (PVC_SHIM_LOG=1 or PVC_LOG=debug). */
bool shim_log_enabled(void);
void shim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- fdtable.c ----------------------------------------------------- */

/* The head of every object the table holds. */
struct fdt_obj {
    atomic_int refs;
};

/* Called when the last reference goes (set once, before any insert). */
void fdt_set_release(void (*release)(struct fdt_obj *));
/* The object at fd with a new reference, or NULL (lock-free when fd is
 * not managed, which is every call on an ordinary fd). */
struct fdt_obj *fdt_get(int fd);
/* Is fd managed?  (No reference taken: a hint for fast paths.) */
bool fdt_has(int fd);
/* Put obj at fd (taking a reference); whatever was there is released.
 * -1 with errno EMFILE if fd is beyond the table. */
int fdt_set(int fd, struct fdt_obj *obj);
/* Remove fd's entry and drop its reference; returns whether there was
 * one. */
bool fdt_remove(int fd);
void fdt_ref(struct fdt_obj *obj);
void fdt_put(struct fdt_obj *obj);
/* Lock the table around fork (atfork prepare/parent/child). */
void fdt_fork_prepare(void);
void fdt_fork_parent(void);
void fdt_fork_child(void);
/* Highest fd the table can hold + 1 (0 before first use). */
int fdt_capacity(void);

/* ---- daemon.c ------------------------------------------------------ */

#define SHIM_MAX_RX_FDS 8

/* One synchronous call: req (with the token fd attached when token >= 0)
 * out, rsp in.  Received fds land in fds (nfds set; CLOEXEC).  Returns 0
 * (rsp->ret holds the call's own result) or -errno when the daemon could
 * not be reached or the call was interrupted. */
int shim_daemon_call(struct pvc_fd_req *req, int token,
                     struct pvc_fd_rsp *rsp, int fds[SHIM_MAX_RX_FDS],
                     int *nfds);
/* The daemon's HELLO answer (connecting if needed).  0 or -errno. */
int shim_daemon_hello(uint32_t *ext, uint32_t *max_order);
/* Is fd one of our daemon connections?  (close/close_range/dup2 from the
 * application then make us forget it.) */
void shim_daemon_fd_closed(int fd);
void shim_daemon_fork_child(void);

/* ---- sock.c -------------------------------------------------------- */

enum shim_state {
    SHIM_CREATED,
    SHIM_BOUND,
    SHIM_LISTENING,
    SHIM_CONNECTING,
    SHIM_CONNECTED,
};

struct shim_sock {
    struct fdt_obj head;  /* first: the table's handle */
    uint64_t ino;         /* the token's inode: the socket's name */
    int domain;
    atomic_int state;     /* enum shim_state */
    /* Once connected (set before state becomes CONNECTED, then fixed). */
    struct pvc_data_ring ring;
    void *ring_map;
    size_t ring_len;
    struct pvc_sock_shared *shared;
    struct pvc_evtchn *evt;
    int evt_fd;
    atomic_int waiters;   /* threads of this process blocked on evt_fd */
    atomic_int rx_err_done; /* the in ring's error was reported once */
    atomic_int so_error;  /* pending error before a state page exists */
};

struct shim_sock *shim_sock_new(uint64_t ino, int domain);
/* Map a connected socket's ring, state page and channel from a CONNECT or
 * ACCEPT answer (fds[first..] as frontd_proto.h lists them; consumed).
 * 0 or -errno. */
int shim_sock_attach(struct shim_sock *s, const struct pvc_fd_rsp *rsp,
                     int *fds, int nfds, int first);
/* The managed socket at fd with a reference (NULL: not ours). */
static inline struct shim_sock *shim_sock_get(int fd)
{
    return (struct shim_sock *)fdt_get(fd);
}
static inline void shim_sock_put(struct shim_sock *s)
{
    fdt_put(&s->head);
}
/* Register the release function with the table (from shim_init). */
void shim_sock_setup(void);
/* Does the daemon's HELLO allow this family?  (-errno to fail socket().) */
int shim_family_check(int domain);

/* Lock the state page's rx or tx mutex (robust: recovers a holder's
 * death) and re-sync the ring's private index from shared memory. */
void shim_lock_rx(struct shim_sock *s);
void shim_unlock_rx(struct shim_sock *s);
void shim_lock_tx(struct shim_sock *s);
void shim_unlock_tx(struct shim_sock *s);

/* ---- uaccess.c ----------------------------------------------------- */

/* Copy between our memory and application memory that may be invalid.
 * Return the bytes copied (may be short at a bad page) or -EFAULT when
 * not even the first byte could be copied. */
ssize_t shim_copy_from_user(void *dst, const void *usrc, size_t len);
ssize_t shim_copy_to_user(void *udst, const void *src, size_t len);

/* ---- wait.c / sig.c ------------------------------------------------ */

/* The kernel fd whose POLLIN means "look at this socket again": the event
 * channel once connected; the token itself (fd, the caller's descriptor)
 * while listening or connecting, because the daemon writes a byte on it
 * for news (frontd_proto.h, "Token readiness"); -1 while nothing can
 * change (created, bound). */
int shim_sock_wait_fd(struct shim_sock *s, int fd);
/* Block until s may have changed (its wait fd fired, or another thread of
 * this process acknowledged an event of s, or shim_sock_kick), then
 * return 0 for the caller to re-check; an event-channel event is
 * acknowledged here.  deadline_ns: CLOCK_MONOTONIC (shim_now_ns), < 0 for
 * none.  -ETIMEDOUT once the deadline has passed; -EINTR when a signal
 * whose handler lacks SA_RESTART interrupted the wait (with SA_RESTART
 * the caller just re-checks and waits again, which is the restart). */
int shim_wait(struct shim_sock *s, int fd, int64_t deadline_ns);
/* A change this process made to s (shutdown, a connect seen finished):
 * wake every thread of this process waiting on s. */
void shim_sock_kick(struct shim_sock *s);
/* CLOCK_MONOTONIC in ns. */
int64_t shim_now_ns(void);
/* Set by the signal trampoline: a handler without SA_RESTART ran. */
extern __thread volatile sig_atomic_t shim_sig_norestart;

/* ---- data.c -------------------------------------------------------- */

/* Send the bytes of iov into s's out ring with send(2)'s semantics (flags
 * MSG_DONTWAIT, MSG_NOSIGNAL; nonblock from O_NONBLOCK).  Returns bytes
 * or -errno (SIGPIPE raised as Linux does). */
ssize_t shim_send_iov(struct shim_sock *s, int fd, const struct iovec *iov,
                      int iovcnt, int flags);
/* Receive with recv(2)'s semantics (MSG_PEEK, MSG_WAITALL, MSG_DONTWAIT,
 * MSG_TRUNC ignored for TCP as Linux does not). */
ssize_t shim_recv_iov(struct shim_sock *s, int fd, const struct iovec *iov,
                      int iovcnt, int flags);
/* Bytes ready to read (FIONREAD). */
long shim_rx_ready(struct shim_sock *s);
/* poll(2) revents of a managed socket for the given events (always
 * including POLLERR/POLLHUP as the kernel does). */
short shim_poll_mask(struct shim_sock *s, int fd, short events);
/* Is fd's open file O_NONBLOCK?  (The token's own flags are the truth.) */
bool shim_fd_nonblock(int fd);

#endif
