/*
 * libpvcalls.so internals: the interposition shim that carries AF_INET and
 * AF_INET6 SOCK_STREAM sockets over PV Calls (see include/pvc/frontd_proto.h
 * for how the shim and the guest daemon share the work).
 *
 * Modules:
 *   real.c     the libc functions we wrap (dlsym(RTLD_NEXT), once), the
 *              thread-local recursion guard, process-wide init and fork
 *   env.c      settings from the environment, captured at load time
 *   fdtable.c  fd -> managed object (socket, epoll), refcounted (pure;
 *              unit-tested)
 *   daemon.c   the per-thread connection to pvcalls-frontd, calls on it
 *   sock.c     the socket object: creation, ring hand-off, release
 *   conn.c     connect: the daemon's asynchronous answer, settling it
 *   uaccess.c  copies to and from unverified user memory (EFAULT, no crash)
 *   waitq.c    per-object wait queues: wake-ups that no waiter loses
 *   wait.c     blocking on a socket's wait fd with Linux's
 *              EINTR/SA_RESTART behaviour
 *   sig.c      sigaction/signal wrappers that record SA_RESTART
 *   data.c     the data path: ring send/receive with MSG_* semantics
 *   poll.c     poll/ppoll/select/pselect over managed and native fds
 *   epoll_obj.c    managed objects (sockets, epolls) as set members
 *   epoll_ready.c  the ready list: LT, EPOLLET, EPOLLONESHOT (pure)
 *   epoll_inst.c   an epoll instance's managed members, its waits
 *   epoll.c    the interposed epoll_* calls and their argument checks
 *   adopt.c    a token that travelled (exec, SCM_RIGHTS) made a socket
 *              again (the daemon's ADOPT)
 *   inherit.c  finding such tokens: at load (pending fds), in received
 *              SCM_RIGHTS
 *   exec.c     exec and posix_spawn: the shim and its settings put back
 *              into the new program's environment; static targets named
 *   sandbox.c  prctl(PR_SET_SECCOMP): the data path within a sandbox
 *   api_*.c    the interposed entry points
 */
#ifndef PVC_SHIM_H
#define PVC_SHIM_H

#include "pvc/frontd_proto.h"
#include "pvc/platform.h"
#include "pvc/ring.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/resource.h>
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
    X(int, epoll_create, (int))                                             \
    X(int, epoll_create1, (int))                                            \
    X(int, epoll_ctl, (int, int, int, struct epoll_event *))                \
    X(int, epoll_wait, (int, struct epoll_event *, int, int))               \
    X(int, epoll_pwait, (int, struct epoll_event *, int, int,               \
                         const sigset_t *))                                 \
    X(int, epoll_pwait2, (int, struct epoll_event *, int,                   \
                          const struct timespec *, const sigset_t *))       \
    X(int, sigaction, (int, const struct sigaction *, struct sigaction *))  \
    X(int, poll, (struct pollfd *, nfds_t, int))                            \
    X(int, ppoll, (struct pollfd *, nfds_t, const struct timespec *,        \
                   const sigset_t *))                                       \
    X(int, select, (int, fd_set *, fd_set *, fd_set *, struct timeval *))   \
    X(int, pselect, (int, fd_set *, fd_set *, fd_set *,                     \
                     const struct timespec *, const sigset_t *))            \
    X(int, execve, (const char *, char *const *, char *const *))            \
    X(int, execveat, (int, const char *, char *const *, char *const *,      \
                      int))                                                 \
    X(int, fexecve, (int, char *const *, char *const *))                    \
    X(int, execvpe, (const char *, char *const *, char *const *))           \
    X(int, posix_spawn, (pid_t *, const char *,                             \
                         const posix_spawn_file_actions_t *,                \
                         const posix_spawnattr_t *, char *const *,          \
                         char *const *))                                    \
    X(int, posix_spawnp, (pid_t *, const char *,                            \
                          const posix_spawn_file_actions_t *,               \
                          const posix_spawnattr_t *, char *const *,         \
                          char *const *))                                   \
    X(int, prctl, (int, ...))

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

/* Set once the program confined itself with a seccomp filter (sandbox.c):
 * the data path then makes only the syscalls such sandboxes allow (read,
 * write, ppoll, futex, ...; sshd's pre-auth child kills on anything else,
 * and lowers RLIMIT_NOFILE to 1, which bounds ppoll's nfds). */
extern atomic_int shim_sandboxed;
/* Forks this process took part in (as parent or child): a socket made
 * before the last one may have waiters in other processes too. */
extern atomic_int shim_fork_epoch;

/* ---- env.c --------------------------------------------------------- */

/* The guest daemon's socket (PVC_FRONTD_SOCK or the default). */
const char *shim_env_frontd_sock(void);
/* PVC_FALLBACK=native: the daemon unreachable means host sockets. */
bool shim_env_fallback_native(void);
/* PVC_SHIM_LOG set (not 0) or PVC_LOG=debug. */
bool shim_env_log(void);
/* PVC_NO_INHERIT set (not 0): exec'd programs get the shim only if the
 * environment they are given still names it. */
bool shim_env_no_inherit(void);
/* LD_PRELOAD as it was at load (NULL: unset). */
const char *shim_env_preload(void);
/* The PVC_* settings at load ("NAME=value", NULL-terminated; in a
 * sanitizer build also the sanitizers' options). */
const char *const *shim_env_settings(void);

/* Logging of what the shim carried (PVC_SHIM_LOG=1 or PVC_LOG=debug). */
bool shim_log_enabled(void);
void shim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- fdtable.c ----------------------------------------------------- */

/* What a managed fd names.  The kind is fixed at creation and is also
 * kept in the table's slot, so that "is fd a managed socket?" stays one
 * lock-free load. */
enum fdt_kind {
    FDT_SOCK = 0,  /* struct shim_sock (sock.c) */
    FDT_EPOLL = 1, /* struct shim_epoll (epoll_inst.c) */
};
#define FDT_ANY (-1)

/* A waiter on a managed object (waitq.c).  Registered before the waiter
 * checks readiness, so that nothing that happens after the check can be
 * missed. */
struct shim_wnode {
    struct shim_wnode *prev, *next;
    const void *owner; /* wakes issued on behalf of the same owner skip it */
    int wake_fd;       /* an eventfd written by a wake (when wake is NULL) */
    void (*wake)(struct shim_wnode *); /* else called, under the queue lock */
};

/* The waiters of one managed object (waitq.c). */
struct shim_waitq {
    pthread_mutex_t lock;
    struct shim_wnode *head;
    atomic_uint gen;       /* the fork generation the lock belongs to */
    _Atomic uint64_t seq;  /* changes at every wake, unique process-wide */
    atomic_int count;      /* registered nodes (a hint, read unlocked) */
};

/* The head of every object the table holds. */
struct fdt_obj {
    atomic_int refs;
    int kind;           /* enum fdt_kind, fixed */
    atomic_int nfds;    /* table slots naming it (0 again: last close) */
    atomic_int active;  /* see fdt_mark_active */
    struct shim_waitq wq;
};

/* refs = 1 (the creator's), kind; nothing else (see shim_obj_init). */
void fdt_obj_init(struct fdt_obj *obj, int kind);
/* Called when an object's last reference goes (set once, before any
 * insert): fdt_set_release for sockets, fdt_set_kind_release for any. */
void fdt_set_release(void (*release)(struct fdt_obj *));
void fdt_set_kind_release(int kind, void (*release)(struct fdt_obj *));
/* Called when the last table slot naming an object goes (close, dup2
 * over it), with a reference still held: Linux's "last close of the
 * file", which removes it from every epoll set. */
void fdt_set_closed(void (*closed)(struct fdt_obj *));
/* The managed socket at fd with a new reference, or NULL (lock-free when
 * fd is not managed, which is every call on an ordinary fd). */
struct fdt_obj *fdt_get(int fd);
/* The same for an object of the given kind (FDT_ANY: any). */
struct fdt_obj *fdt_get_kind(int fd, int kind);
/* Is fd a managed socket?  (No reference taken: a hint for fast paths;
 * every socket call asks exactly this.) */
bool fdt_has(int fd);
/* Is fd managed at all, of any kind? */
bool fdt_has_any(int fd);
/* Must poll/select/epoll_wait treat fd themselves?  A socket always; an
 * epoll fd once it has held a managed member (fdt_mark_active). */
bool fdt_waitable(int fd);
/* Mark obj (an epoll instance that now holds a managed member) so that
 * fdt_waitable() says yes for every fd naming it, now and after dups. */
void fdt_mark_active(struct fdt_obj *obj);
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
/* Highest fd ever set (or marked pending) + 1. */
int fdt_high_water(void);
/* Does fd's slot name a socket, or an inherited fd still to be looked
 * at?  (Raw: looks nothing up.) */
bool fdt_maybe_sock(int fd);

/* Inherited fds that may be tokens (inherit.c) are marked pending at
 * load; the first lookup of such a slot (fdt_get*, fdt_has*,
 * fdt_waitable) calls the resolver, which adopts the token (fdt_set) or
 * clears the mark.  fdt_remove and fdt_set never look. */
void fdt_set_pending_resolver(void (*resolve)(int fd));
/* Mark an empty slot pending: 0, or -1 when fd is beyond the table. */
int fdt_mark_pending(int fd);
bool fdt_is_pending(int fd);
void fdt_clear_pending(int fd);

/* The shim's own fds (daemon connections, wake eventfds, event-channel
 * fds, hidden epolls), kept out of the program's way: shim_priv_fd moves
 * a new CLOEXEC fd of ours to the high private range (or leaves it where
 * it is if it cannot) and marks it; returns the number to use.  close,
 * close_range and closefrom from the program skip marked fds (api_fd.c).
 * shim_priv_close unmarks and closes; shim_priv_forget only unmarks (the
 * number was closed or reused behind our back). */
int shim_priv_fd(int fd);
/* Room for nfds more fds than the program's soft limit allows, for the
 * fds of a daemon answer (only when the hard limit leaves room and the
 * soft one is small): returns the soft limit to put back with
 * shim_fd_room_end(), or 0 when nothing was changed. */
rlim_t shim_fd_room_begin(unsigned nfds);
void shim_fd_room_end(rlim_t soft);
/* Whether fd is at or above the program's soft limit: an fd the program
 * could not have had (it then gets EMFILE instead). */
bool shim_fd_beyond_limit(int fd);
bool shim_priv_is(int fd);
void shim_priv_forget(int fd);
void shim_priv_close(int fd);
/* close_range(2) over [first, last] except the marked fds: 0 or -errno. */
int shim_priv_close_range(unsigned first, unsigned last, unsigned flags);

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
/* The same for every number in [first, last] (close_range). */
void shim_daemon_range_closed(unsigned first, unsigned last);
void shim_daemon_fork_child(void);
/* The daemon's pid as SO_PEERCRED reports it (on our connection, and on
 * every token: the daemon makes both ends).  Connects first if needed and
 * connect is set; -ENOTCONN if not known and !connect.  0 or -errno. */
int shim_daemon_pid(pid_t *pid, bool connect);

/* ---- sock.c -------------------------------------------------------- */

enum shim_state {
    SHIM_CREATED,
    SHIM_BOUND,
    SHIM_LISTENING,
    SHIM_CONNECTING,      /* ring mapped, the backend has not answered */
    SHIM_CONNECTED,
    SHIM_REFUSED,         /* connect failed; connect() not yet told */
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
    /* The "waiting" extension is on (docs/pvcalls-ext.md §4.7): notify the
     * backend after consuming only when it said it waits for room. */
    bool waiting;
    /* shim_fork_epoch when this process made the socket; -1 when it came
     * from elsewhere (exec, SCM_RIGHTS): see shim_sock_maybe_shared(). */
    int born_epoch;
    /* The address connect() was given (set when the CONNECT is sent):
     * getpeername's answer when the backend cannot tell (no sockname
     * extension, as Linux's pvcalls-back). */
    uint8_t peer_addr[PVC_FD_ADDR_MAX];
    uint32_t peer_len;
    atomic_int rx_err_done; /* the in ring's error was reported once */
    atomic_int so_error;  /* pending SO_ERROR (a failed connect's) */
    /* Set when a connect finished while nobody waited in connect(): the
     * next connect() reports 0 once, then EISCONN (as Linux). */
    atomic_int connect_unreported;
    int pre_connect_state;  /* CREATED or BOUND: where REFUSED goes back */
    /* SO_RCVTIMEO / SO_SNDTIMEO in ns (0: none); the token keeps the
     * option itself, these are this process's cached copies. */
    _Atomic int64_t rcvtimeo_ns, sndtimeo_ns;
    /* The token's O_NONBLOCK as it was when the program sandboxed itself
     * (fcntl is then out of reach; see shim_sandboxed). */
    atomic_int nonblock_snap;
    /* The ring of an earlier failed connect: unmapped only on release,
     * since a thread may still be looking at its state page. */
    void *stale_ring_map, *stale_shared;
    size_t stale_ring_len;
    struct pvc_evtchn *stale_evt;
};

struct shim_sock *shim_sock_new(uint64_t ino, int domain);
/* Map a connected socket's ring, state page and channel from a CONNECT or
 * ACCEPT answer (fds[first..] as frontd_proto.h lists them; consumed).
 * 0 or -errno. */
int shim_sock_attach(struct shim_sock *s, const struct pvc_fd_rsp *rsp,
                     int *fds, int nfds, int first);
/* Set a failed connect's ring aside before a new CONNECT attaches one. */
void shim_sock_detach(struct shim_sock *s);
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

/* ---- conn.c -------------------------------------------------------- */

/* A connecting socket whose result the daemon has posted moves to
 * CONNECTED or REFUSED (draining the token's notice, waking waiters).
 * Returns the state after. */
int shim_conn_settle(struct shim_sock *s, int fd);
/* Wait until s is no longer CONNECTING: 0, -EINTR, -ETIMEDOUT. */
int shim_conn_wait(struct shim_sock *s, int fd, int64_t deadline_ns);
/* connect(2) on a managed socket: 0 or -errno. */
int shim_connect(struct shim_sock *s, int fd, const struct pvc_fd_req *req);
/* Drain the daemon's notice bytes from a token. */
void shim_token_drain(int fd);
/* A deadline from a SO_RCVTIMEO/SO_SNDTIMEO value (0: none -> -1). */
int64_t shim_deadline(int64_t timeo_ns);

/* ---- adopt.c / inherit.c ------------------------------------------- */

/* Is fd an AF_UNIX stream socket (what a token is)?  Its peer's pid
 * (SO_PEERCRED) in *peer. */
bool shim_token_shaped(int fd, pid_t *peer);
/* fd as a managed socket, if it is a token of the daemon (whose pid is
 * daemon_pid): the daemon's ADOPT answer rebuilt (a new reference, not
 * yet in the table), or NULL. */
struct shim_sock *shim_adopt(int fd, pid_t daemon_pid);
/* recvmsg returned ancillary data m: tokens among the fds it carried are
 * adopted (inherit.c). */
void shim_inherit_cmsg(struct msghdr *m);

/* ---- uaccess.c ----------------------------------------------------- */

/* Copy between our memory and application memory that may be invalid.
 * Return the bytes copied (may be short at a bad page) or -EFAULT when
 * not even the first byte could be copied. */
ssize_t shim_copy_from_user(void *dst, const void *usrc, size_t len);
ssize_t shim_copy_to_user(void *udst, const void *src, size_t len);
/* From now on copy with memcpy (the process_vm_* syscalls are about to be
 * forbidden: a seccomp sandbox). */
void shim_uaccess_memcpy_only(void);
/* atfork child: the pid the copies name is now ours (uaccess.c). */
void shim_uaccess_fork_child(void);
/* The buffers of a read or write, checked as Linux's import_iovec does
 * before anything moves (lengths capped at MAX_RW_COUNT, then every
 * segment inside user space): 0 or -EFAULT. */
int shim_check_user_iov(const struct iovec *iov, int cnt);

/* ---- waitq.c ------------------------------------------------------- */

/* Wake-ups without lost events.  Every managed object has a queue of
 * waiters (struct fdt_obj's wq).  A waiter registers a node before it
 * checks readiness and then sleeps in one kernel wait that includes its
 * node's wake fd; whoever acknowledges the object's event channel (which
 * may consume an event another waiter needed) or changes the object
 * wakes every other node. */

/* fdt_obj_init plus the wait queue; shim_obj_fini before freeing. */
void shim_obj_init(struct fdt_obj *obj, int kind);
void shim_obj_fini(struct fdt_obj *obj);
/* Register / unregister n (fields set by the caller).  Both return the
 * queue's wake sequence at that moment: equal values mean no wake in
 * between. */
uint64_t shim_waitq_add(struct shim_waitq *q, struct shim_wnode *n);
uint64_t shim_waitq_del(struct shim_waitq *q, struct shim_wnode *n);
/* Wake every node of obj's queue whose owner is not self (NULL: all). */
void shim_obj_wake(struct fdt_obj *obj, const void *self);
/* Between these, this thread's shim_obj_wake calls are queued and done at
 * the outermost end: a wake runs epoll callbacks that take instance
 * locks, which the code inside the scope may hold.  Nests. */
void shim_defer_begin(void);
void shim_defer_end(void);
/* fn(node, arg) for each node of q whose wake function is `wake`, under
 * the queue lock (fn must not sleep or take queue locks). */
void shim_waitq_each(struct shim_waitq *q, void (*wake)(struct shim_wnode *),
                     void (*fn)(struct shim_wnode *, void *), void *arg);
/* This thread's wake eventfd (created on first use, closed at thread
 * exit; -1 if it cannot be created), a node that writes it, and the
 * owner identity of this thread's nodes. */
int shim_thread_wake_fd(void);
void shim_thread_node(struct shim_wnode *n);
const void *shim_thread_owner(void);
/* Empty this thread's wake fd (stale wakes of earlier waits). */
void shim_thread_wake_drain(void);
/* Every shim lock is taken inside a section where no signal handler runs
 * (a handler that calls into the shim on the same thread must not find it
 * held): shim_sigblock defers the application's handlers to the end of the
 * outermost section (sigdefer.c; no syscall), shim_sigblock_hard blocks
 * every signal (for sections that wait in the kernel); shim_sigrestore
 * ends either ... */
void shim_sigblock(sigset_t *saved);
void shim_sigblock_hard(sigset_t *saved);
void shim_sigrestore(const sigset_t *saved);
/* The trampoline's question: is this thread in a section?  Then sig is
 * recorded (and sent again when the section ends, or for a one-shot
 * SA_RESETHAND handler run through shim_sig_run): true, do not run the
 * handler now. */
bool shim_sig_defer(int sig, const siginfo_t *si, bool one_shot);
/* Run the application's handler of sig as the trampoline does (sig.c). */
void shim_sig_run(int sig, siginfo_t *si);
/* atfork child, first: forget the parent's deferred signals. */
void shim_sigdefer_fork_child(void);
/* ... and is re-initialised in a forked child, where a thread that does
 * not exist there may have held it: call before locking; reset(arg) runs
 * once per object and fork. */
void shim_refork(atomic_uint *gen, void (*reset)(void *), void *arg);
unsigned shim_fork_gen(void);
/* atfork child: new generation, this thread's wake fd is the parent's. */
void shim_waitq_fork_child(void);

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
 * acknowledged here.  The first call after a change may return 0 at once:
 * the caller's check may have come before the change, and re-checking is
 * how no wake-up is lost (wait.c).  deadline_ns: CLOCK_MONOTONIC
 * (shim_now_ns), < 0 for none.  -ETIMEDOUT once the deadline has passed;
 * -EINTR when a signal whose handler lacks SA_RESTART interrupted the
 * wait (with SA_RESTART the caller just re-checks and waits again, which
 * is the restart); -ECONNABORTED when the wait fd (the token) hung up:
 * the daemon let go of the socket, nothing will ever change. */
int shim_wait(struct shim_sock *s, int fd, int64_t deadline_ns);
/* A change this process made to s (shutdown, a connect seen finished):
 * wake every waiter of s in this process (and, through the event
 * channel, in others). */
void shim_sock_kick(struct shim_sock *s);
/* wfd, one of s's wait fds, reported readable: if it is the event
 * channel, acknowledge it, and if that consumed an event, wake s's other
 * waiters (all nodes but self's).  Returns whether wfd was the channel
 * (which then no longer reports readable). */
bool shim_sock_ack(struct shim_sock *s, int wfd, const void *self);
/* CLOCK_MONOTONIC in ns. */
int64_t shim_now_ns(void);
/* Set by the signal trampoline: a handler without SA_RESTART ran. */
extern __thread volatile sig_atomic_t shim_sig_norestart;

/* ---- epoll_obj.c --------------------------------------------------- */

/* Managed objects as members of poll sets and epoll sets, whatever their
 * kind.  Readiness in epoll's bits (EPOLLIN.. EPOLLRDHUP, the same values
 * as poll's), all of them (callers mask); an epoll instance is readable
 * when an epoll_wait on it would return events. */
uint32_t shim_obj_mask(struct fdt_obj *o, int fd);
/* The kernel fds whose POLLIN means "look at o again" (out[0..1], -1 for
 * none): a socket's wait fd; an epoll's own fd and its hidden epoll. */
void shim_obj_wait_fds(struct fdt_obj *o, int fd, int out[2]);
/* Wait fd wfd of o (at fd) reported: acknowledge what must be (see
 * shim_sock_ack).  Returns whether wfd was consumed, by this or by the
 * next shim_obj_mask (false: it stays readable while its cause lasts). */
bool shim_obj_fired(struct fdt_obj *o, int fd, int wfd, const void *self);

/* ---- epoll_ready.c ------------------------------------------------- */

/* The kernel's ready-list rules, pure (unit-tested with a fake readiness
 * source): which members an epoll_wait reports, and what level-triggered,
 * EPOLLET and EPOLLONESHOT do to them afterwards. */
#define EPR_FLAG_BITS (EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE | EPOLLWAKEUP)
#define EPR_KEY_IN (EPOLLIN | EPOLLRDNORM | EPOLLRDBAND)
#define EPR_KEY_OUT (EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND)
#define EPR_KEY_ALL UINT32_MAX

struct epr_item {
    struct epr_item *prev, *next;
    uint32_t events;   /* asked | EPOLLERR | EPOLLHUP, plus flag bits; a
                        * fired EPOLLONESHOT keeps only the flag bits */
    epoll_data_t data;
    bool queued;
};

struct epr_list {
    struct epr_item *head, *tail;
};

/* Current readiness of an item (all bits; the list masks them). */
typedef uint32_t (*epr_poll_fn)(struct epr_item *item, void *ctx);

/* What an item reported, to put it back if the copy to the caller
 * failed. */
struct epr_undo {
    struct epr_item *item;
    uint32_t events;
};

/* ADD or MOD: the item's new mask (EPOLLERR and EPOLLHUP always). */
void epr_set(struct epr_item *item, uint32_t events, epoll_data_t data);
/* Does it report anything (not a fired EPOLLONESHOT)? */
bool epr_enabled(const struct epr_item *item);
/* A wake-up of the item's file: key, the classes of events that changed
 * (EPR_KEY_IN/OUT, EPR_KEY_ALL), queues it if enabled and interested.
 * Returns whether it was newly queued. */
bool epr_wake(struct epr_list *l, struct epr_item *item, uint32_t key);
/* ADD/MOD found it ready: queue it (if enabled). */
bool epr_queue(struct epr_list *l, struct epr_item *item);
void epr_unqueue(struct epr_list *l, struct epr_item *item);
bool epr_empty(const struct epr_list *l);
/* Linux's ep_send_events: take up to max ready items, in order, into
 * out (and undo); not-ready ones leave the list; level-triggered ones go
 * back to its end; EPOLLET ones leave it; EPOLLONESHOT ones are disabled.
 * Returns the count. */
int epr_harvest(struct epr_list *l, struct epoll_event *out,
                struct epr_undo *undo, int max, epr_poll_fn poll, void *ctx);
/* Items undo[0..n) could not be delivered: as if never taken. */
void epr_unharvest(struct epr_list *l, const struct epr_undo *undo, int n);
/* Would a harvest report anything?  (Polling the epoll fd itself; like
 * Linux, not-ready items leave the list.) */
bool epr_peek(struct epr_list *l, epr_poll_fn poll, void *ctx);

/* ---- epoll_inst.c -------------------------------------------------- */

/* An epoll instance as the shim sees it: the application's epoll fd stays
 * the kernel epoll holding the native members; managed members live here,
 * with a hidden kernel epoll holding their wait fds.  Kind FDT_EPOLL in
 * the fd table (every epoll fd the program creates is tracked, so that
 * dup and fork share it). */
struct shim_epoll;

/* Track a new epoll fd (epoll_create*).  0 or -errno. */
int shim_epoll_track(int epfd);
/* The instance at epfd with a reference; an epoll fd the shim did not see
 * created (inherited, or from a raw syscall) is adopted.  NULL with errno
 * EBADF (no such fd) or EINVAL (not an epoll fd). */
struct shim_epoll *shim_epoll_get(int epfd);
static inline void shim_epoll_put(struct shim_epoll *ep)
{
    fdt_put((struct fdt_obj *)ep);
}
/* Does it hold no managed member (the real calls will do)? */
bool shim_epoll_unmanaged(struct shim_epoll *ep);
/* epoll_ctl(epfd, op, fd) of managed member obj, after the argument
 * checks that do not need the instance.  0 or -errno. */
int shim_epoll_ctl(struct shim_epoll *ep, int epfd, int op, int fd,
                   struct fdt_obj *obj, const struct epoll_event *ev);
/* Remove the shim's marker events from events the real epoll_wait
 * returned (a thread blocked there when the instance gained its first
 * managed member was woken by one: it must go on as the shim's).
 * Returns how many are left. */
int shim_epoll_drop_markers(struct epoll_event *ev, int n);
/* Around a real epoll_wait on a tracked epoll fd (enter before looking
 * whether the instance is managed). */
void shim_epoll_fast_enter(void);
void shim_epoll_fast_leave(void);
/* epoll_wait on epfd (naming ep): events ready now, else one kernel wait
 * over the user's epoll fd and the hidden epoll, until the deadline
 * (CLOCK_MONOTONIC ns, < 0: none) or a signal (sigmask applied while
 * blocked).  Count or -errno. */
int shim_epoll_wait(struct shim_epoll *ep, int epfd,
                    struct epoll_event *uevents, int maxevents,
                    int64_t deadline_ns, const sigset_t *sigmask);
/* For shim_obj_*: readiness as a member, and the fds to wait on. */
uint32_t shim_epoll_mask(struct shim_epoll *ep, int fd);
void shim_epoll_wait_fds(struct shim_epoll *ep, int fd, int out[2]);

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
