/*
 * pvcalls-frontd, the guest daemon: sole owner of the domain's PV Calls
 * command ring, allocator of the data rings, server of the shims
 * (include/pvc/frontd_proto.h).  One thread, one pvc_loop; the daemon
 * never blocks on a client or on the backend: every call that needs the
 * backend is a pending command answered when the backend answers.
 *
 *   main.c     the program: arguments, signals, the loop
 *   args.c     the command line
 *   backend.c  the xenbus connection, backend loss and reconnection
 *   cmdq.c     the command ring: req_id table, FIFO beyond 32 in flight
 *   pool.c     data rings (pre-allocated pool) and state pages
 *   clients.c  shim connections: messages with SCM_RIGHTS, one call each
 *   sockets.c  the socket table (by token inode), last-holder-gone,
 *              drain and RELEASE, token readiness bytes
 *   ops.c      the request handlers (and what they share)
 *   connect.c  CONNECT: answered at once, finished in the state page
 *   listener.c ACCEPT: one backend ACCEPT ahead per listener, parked
 *              connections, the client's ACCEPT takes one
 *   adopt.c    ADOPT: a token that travelled (exec, SCM_RIGHTS) described
 *              to its new holder
 */
#ifndef PVC_FRONTD_H
#define PVC_FRONTD_H

#include "pvc/frontd_proto.h"
#include "pvc/loop.h"
#include "pvc/platform.h"
#include "pvc/ring.h"
#include "pvc/xenbus.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uthash.h>

/* The order new sockets ask for: 1 MiB each way (order 6's 128 KiB caps
 * one stream near half of native loopback; bench/README.md).  Smaller
 * when the grant budget runs low (ring_budget.c). */
#define FRONTD_DEFAULT_ORDER 9u
#define FRONTD_DEFAULT_POOL 4u
#define FRONTD_MAX_POOL 256u
#define FRONTD_MAX_SOCKS_PER_CLIENT 4096u
#define FRONTD_DRAIN_TIMEOUT_MS 30000
#define FRONTD_CONNECT_TIMEOUT_MS 10000
#define FRONTD_CMD_SLOTS 32u
/* An ACCEPT may wait for ever (every listener keeps one outstanding):
 * ACCEPTs get at most this many slots, so that short commands always
 * find one. */
#define FRONTD_ACCEPT_SLOTS 24u
/* fds in one reply: token, ring, state page, channel. */
#define FRONTD_MAX_REPLY_FDS (3 + PVC_HANDOFF_MAX_FDS)

struct frontd_cfg {
    enum pvc_platform_kind platform;
    const char *sim_dir;
    int domid;              /* sim: -1 = PVC_SIM_DOMID or 1 */
    const char *device;
    char sock_path[PATH_MAX];
    unsigned order;         /* default ring order for new sockets */
    unsigned pool;          /* rings kept ready */
    unsigned grant_limit;   /* Xen: gntalloc limit to raise to (0: leave) */
    int ready_fd;
};

/* Xen: the guest's gntalloc limit wanted at start (grant_limit.c); the
 * default leaves room in Xen 4.17's default grant table (32768 entries)
 * for the guest's other drivers. */
#define FRONTD_DEFAULT_GRANT_LIMIT 16384u
/* The grant budget of rings on the simulated platform: its broker's
 * per-domain limit (SIM_MAX_GRANTS_PER_DOMAIN in sim/broker/broker.h). */
#define FRONTD_SIM_GRANT_BUDGET (1ul << 20)
/* A new ring takes at most this fraction of the free budget. */
#define FRONTD_BUDGET_SHARE 256ul
#define FRONTD_MAX_GRANT_LIMIT (1u << 20)
void frontd_raise_grant_limit(unsigned long want);

/* Parse argv into cfg; 0, 1 (--help printed), or -1 with a message. */
int frontd_parse_args(int argc, char **argv, struct frontd_cfg *cfg,
                      char *err, size_t errlen);
void frontd_usage(const char *prog, FILE *out);

/* A data ring: indexes page + 2^order data pages in one share, and the
 * socket's event channel. */
struct fd_ring {
    void *pages;
    unsigned order;
    unsigned npages;
    struct pvc_evtchn *evtchn;
    struct pvc_watch watch;  /* on evtchn while draining */
    pvc_gref_t refs[];       /* [0] the indexes page */
};

struct fd_client;
struct fd_sock;
struct fd_cmd;
struct frontd;

/* A connection the backend accepted for a listener, waiting for a client's
 * ACCEPT; or (err != 0) a backend ACCEPT error, reported once. */
struct fd_parked {
    int32_t err;
    uint64_t id;              /* the new socket's PV Calls id */
    struct fd_ring *ring;
    int state_fd;
    uint32_t addrlen;         /* the peer (accept-addr extension) */
    uint8_t addr[PVC_FD_ADDR_MAX];
    struct fd_parked *prev, *next;
};

typedef void (*fd_cmd_done)(struct frontd *d, struct fd_cmd *c,
                            const union xen_pvcalls_sring_entry *rsp);

/* A command for the backend, queued or in flight. */
struct fd_cmd {
    uint32_t req_id;
    struct xen_pvcalls_request req;
    fd_cmd_done done;
    uint32_t op;              /* the client's PVC_FD_* call */
    struct fd_client *client; /* the call it answers; NULL once gone */
    /* Holds sock->pending while in flight, except a listener's ACCEPT:
     * a listener is released with its ACCEPT outstanding (the backend
     * answers it first), so that one is detached (NULL) instead. */
    struct fd_sock *sock;
    struct fd_ring *ring;     /* CONNECT/ACCEPT/RELEASE: the ring */
    int state_fd;             /* ACCEPT/RELEASE: the state page */
    int domain;               /* SOCKET/ACCEPT: the new socket's family */
    struct fd_cmd *next;      /* FIFO */
    UT_hash_handle hh;        /* by req_id, while in flight */
};

struct fd_client {
    struct frontd *d;
    int fd;
    struct pvc_watch watch;
    struct fd_cmd *call;      /* the call in progress, if any */
    unsigned nsocks;          /* sockets it created that are still open */
    struct fd_client *prev, *next;
};

struct fd_sock {
    struct frontd *d;
    uint64_t ino;             /* the app-visible token's inode (key) */
    uint64_t id;              /* PV Calls socket id */
    int domain;
    int token;                /* our end of the token socketpair */
    struct pvc_watch watch;   /* HUP on token: last holder gone */
    struct fd_ring *ring;     /* connected / accepted sockets */
    struct fd_ring *connect_ring; /* the ring of the CONNECT in flight
                                   * (owned by that command; for ADOPT) */
    int state_fd;             /* the state page (also of a failed connect) */
    struct pvc_sock_shared *shared; /* our mapping of it (CONNECT only) */
    struct fd_client *owner;  /* for the per-client limit */
    unsigned pending;         /* commands in flight on it (not ACCEPT) */
    bool connecting, connected, bound, listening;
    bool gone;                /* last holder gone */
    bool draining;
    bool dead;                /* the backend that knew it went away */
    /* Listeners (listener.c): the backend ACCEPT outstanding (queued or
     * in flight), the FIFO of parked connections, and whether a byte went
     * to the token since the client's last ACCEPT request. */
    struct fd_cmd *accept_cmd;
    struct fd_parked *parked;
    unsigned nparked;
    bool notified;
    int64_t drain_deadline;
    struct fd_sock *dprev, *dnext; /* draining list */
    /* Last holder gone while a CONNECT was in flight: RELEASE went at
     * once (a connect can take minutes; Linux's close aborts it), and
     * the socket waits for the CONNECT's answer.  early_release is that
     * RELEASE while unanswered. */
    bool released_early;
    struct fd_cmd *early_release;
    UT_hash_handle hh;
};

struct frontd {
    struct frontd_cfg cfg;
    struct pvc_loop *loop;
    struct pvc_platform *plat;
    struct xs_handle *xs;
    struct pvc_xb_front fe;
    bool connected;           /* command ring up */
    bool ever_connected;
    char fe_path[PVC_XB_PATH_MAX];
    char be_path[PVC_XB_PATH_MAX];
    bool be_watch;            /* our own watch while disconnected */
    unsigned order;           /* default order, clamped to the backend's */
    bool stop;
    int sig_fd, listen_fd;
    struct pvc_watch sig_watch, xs_watch, cmd_watch, listen_watch;

    /* cmdq.c */
    struct fd_cmd *inflight;  /* by req_id */
    unsigned ninflight;
    unsigned naccepts;        /* ACCEPTs among them */
    struct fd_cmd *queue_head, *queue_tail;      /* short commands */
    struct fd_cmd *accepts_head, *accepts_tail;  /* waiting ACCEPTs */
    bool accepts_warned;      /* listeners beyond the ACCEPT slots, said */
    uint32_t next_req_id;

    /* pool.c */
    struct fd_ring *pool[FRONTD_MAX_POOL];
    unsigned pool_n;
    unsigned long grants_used;  /* pages of every ring we hold */
    unsigned long grant_budget; /* what they may add up to (ring_budget.c) */

    /* sockets.c */
    struct fd_sock *socks;    /* by ino */
    struct fd_sock *draining;
    uint64_t next_sock_id;

    struct fd_client *clients;
};

/* backend.c */
int frontd_backend_start(struct frontd *d);
void frontd_backend_stop(struct frontd *d);
/* The backend left Connected (or cannot be reached): reset every ring,
 * fail every command, then wait for the backend to come back. */
void frontd_backend_lost(struct frontd *d);

/* cmdq.c */
struct fd_cmd *cmd_new(uint32_t cmd, fd_cmd_done done);
/* Queue or send c; its done() runs exactly once (a synthesized error if
 * the backend is lost). */
void cmd_submit(struct frontd *d, struct fd_cmd *c);
/* The command channel fired: take every response. */
void cmd_process(struct frontd *d);
/* Answer every queued and in-flight command with err. */
void cmd_fail_all(struct frontd *d, int32_t err);
/* c is still queued (not sent): take it out and complete it with err
 * now.  A command in flight is left alone (the backend answers it). */
void cmd_cancel(struct frontd *d, struct fd_cmd *c, int32_t err);
/* A client went away: its pending call's result goes nowhere. */
void cmd_forget_client(struct frontd *d, struct fd_client *cl);

/* ring_budget.c: the order of a new ring that asked for `want`, given
 * the grants in use and the budget. */
unsigned ring_budget_order(unsigned want, unsigned long used,
                           unsigned long budget);

/* pool.c */
struct fd_ring *pool_take(struct frontd *d, unsigned order);
void pool_refill(struct frontd *d);
void pool_flush(struct frontd *d);
void ring_free(struct frontd *d, struct fd_ring *r);
/* A fresh state page (struct pvc_sock_shared) as a memfd, or -1. */
int state_page_new(void);
/* Map a state page read-write (NULL on failure); munmap with
 * state_page_unmap. */
struct pvc_sock_shared *state_page_map(int fd);
void state_page_unmap(struct pvc_sock_shared *st);

/* clients.c */
int clients_listen(struct frontd *d);
void clients_close_all(struct frontd *d);
/* Answer the client's call (rsp->op set by the caller); fds are sent,
 * not closed.  A client that cannot take the answer is dropped. */
void client_reply(struct frontd *d, struct fd_client *cl,
                  struct pvc_fd_rsp *rsp, const int *fds, unsigned nfds);
void client_reply_err(struct frontd *d, struct fd_client *cl, uint32_t op,
                      int32_t err);

/* sockets.c */
/* A new socket with a fresh token pair; *client_end is the app's end. */
struct fd_sock *sock_new(struct frontd *d, uint64_t id, int domain,
                         int *client_end);
struct fd_sock *sock_find(struct frontd *d, uint64_t ino);
/* The command on s finished (pending--): go on releasing if due. */
void sock_cmd_done(struct frontd *d, struct fd_sock *s);
/* RELEASE a backend socket that no token names (a result nobody took). */
void sock_release_orphan(struct frontd *d, uint64_t id, struct fd_ring *r,
                         int state_fd);
/* Backend lost: every ring gets -ECONNRESET and a wake-up, every
 * listener drops what it parked and its token gets a byte. */
void socks_backend_lost(struct frontd *d);
/* News for the socket's holders: one byte on our end of the token
 * (include/pvc/frontd_proto.h, "Token readiness"), never blocking. */
void sock_notify(struct fd_sock *s);
/* Drain deadlines: ms until the next one (-1: none); release expired. */
int socks_next_timeout(struct frontd *d);
void socks_expire(struct frontd *d);
void socks_close_all(struct frontd *d);
void sock_client_gone(struct frontd *d, struct fd_client *cl);

/* ops.c */
/* Handle one well-formed request; tokfd is the received token fd or -1
 * (owned by the handler). */
void ops_dispatch(struct frontd *d, struct fd_client *cl,
                  const struct pvc_fd_req *req, int tokfd);
bool ops_has_ext(struct frontd *d, unsigned bit);
/* The length to send for the request's address on socket s, or a
 * negative errno. */
int32_t ops_check_addr(struct frontd *d, const struct fd_sock *s,
                       const struct pvc_fd_req *req);
/* The ring order to use for a client's wish (0: the default). */
unsigned ops_ring_order(struct frontd *d, uint32_t want);
/* Answer cl with rsp and a ring's fds ([token if >= 0], ring pages, state
 * page, channel).  0 once answered (or the client dropped), or a negative
 * errno with nothing sent (the platform could not hand the ring over). */
int ops_reply_ring(struct frontd *d, struct fd_client *cl,
                   struct pvc_fd_rsp *rsp, int token, struct fd_ring *r,
                   int state_fd);

/* adopt.c */
/* ADOPT (tokfd owned): 0 once answered, or a negative errno to answer. */
int32_t adopt_answer(struct frontd *d, struct fd_client *cl,
                     const struct pvc_fd_req *req, int tokfd);

/* connect.c */
/* CONNECT on s: 0 once answered -EINPROGRESS, or a negative errno. */
int32_t connect_start(struct frontd *d, struct fd_client *cl,
                      struct fd_sock *s, const struct pvc_fd_req *req);

/* listener.c */
/* LISTEN succeeded on s: keep a backend ACCEPT outstanding from now on. */
void listener_start(struct frontd *d, struct fd_sock *s);
/* The client's ACCEPT on listener s: 0 once answered, or a negative
 * errno to answer. */
int32_t listener_take(struct frontd *d, struct fd_client *cl,
                      struct fd_sock *s);
/* s is being released: RELEASE what it parked, forget its ACCEPT. */
void listener_close(struct frontd *d, struct fd_sock *s);
/* The backend went away: drop what s parked (nothing to RELEASE). */
void listener_backend_lost(struct frontd *d, struct fd_sock *s);

int64_t frontd_now_ms(void);

#endif
