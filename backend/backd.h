/*
 * pvcalls-backd internals: the daemon, its devices (one per connected
 * frontend) and their sockets.
 *
 * Ownership: struct backd owns the loop, the platform and the xenbus
 * watcher; each connected xenbus device owns one struct bdev (dev->priv);
 * each bdev owns its sockets in a uthash table keyed by the frontend's
 * 64-bit id.  Everything runs on one thread, driven by one epoll loop, so
 * nothing here is locked.  Objects that a callback may still reference in
 * the current epoll batch are freed with pvc_loop_defer_free().
 */
#ifndef BACKD_H
#define BACKD_H

#include "pvc/loop.h"
#include "pvc/platform.h"
#include "pvc/ring.h"
#include "pvc/xenbus.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

/* uthash: an allocation failure must not exit() the daemon. */
#define HASH_NONFATAL_OOM 1
#include <uthash.h>

struct audit;
struct policy;
struct policy_domain;

/* ---- configuration (args.c) --------------------------------------- */

#define BACKD_DEFAULT_ORDER 9u
#define BACKD_MIN_ORDER 4u /* Linux's frontend needs at least 4 */
#define BACKD_DEFAULT_MAX_SOCKETS 1024u
#define BACKD_MAX_MAX_SOCKETS 65536u

struct backd_cfg {
    enum pvc_platform_kind platform;
    const char *sim_dir;     /* NULL: the platform's default */
    const char *audit_path;  /* NULL: no audit; "-": stderr */
    const char *policy_path; /* NULL: everything allowed */
    unsigned max_page_order; /* advertised and enforced */
    unsigned max_sockets;    /* per device (= per frontend domain) */
    unsigned ext;            /* PVC_EXT_* offered */
    int ready_fd;            /* -1: none */
};

/* Parse argv into cfg.  Returns 0, 1 if --help was asked (usage printed
 * to stdout), or -1 with a message in err. */
int backd_parse_args(int argc, char **argv, struct backd_cfg *cfg,
                     char *err, size_t errlen);
void backd_usage(const char *prog, FILE *out);

/* ---- the daemon (main.c) ------------------------------------------ */

struct backd {
    struct backd_cfg cfg;
    struct pvc_platform *plat;
    struct pvc_loop *loop;
    struct xs_handle *xs;
    struct pvc_xb_back *xb;
    struct audit *audit; /* NULL: auditing off */
    struct policy *policy; /* never NULL once running */
    struct pvc_watch xb_watch;
    struct pvc_watch sig_watch;
    int sig_fd;
    bool stop;
};

/* ---- devices (device.c) ------------------------------------------- */

struct bsock;

struct bdev {
    struct backd *bd;
    struct pvc_xb_back_dev *xdev; /* valid while connected */
    pvc_domid_t domid;
    unsigned devid;
    unsigned ext;        /* PVC_EXT_* enabled on this device */
    const struct policy_domain *pol; /* its rules (policy_apply.c) */
    void *cmd_page;
    struct pvc_cmd_back cmd;
    struct pvc_evtchn *ch;
    struct pvc_watch ch_watch;
    struct bsock *socks; /* uthash by id */
    unsigned reserved;   /* pending ACCEPTs: their id_new counts too */
    int batch;           /* >0 while processing requests: publish later */
    bool unpublished;    /* responses put but not published */
    bool dead;           /* torn down; memory freed after the batch */
};

extern const struct pvc_xb_back_ops backd_xb_ops;

/* Queue one response of len bytes (24..64) and publish it, unless a
 * batch of requests is being processed (published at its end). */
void dev_respond(struct bdev *d, const void *rsp, size_t len);

/* ---- sockets (sockets.c) ------------------------------------------ */

enum bsock_state {
    BS_FRESH,      /* SOCKET done: the host socket exists, unbound */
    BS_BOUND,      /* BIND done */
    BS_CONNECTING, /* non-blocking connect in flight, CONNECT pending */
    BS_ACTIVE,     /* connected (CONNECT or ACCEPT): the pump runs */
    BS_LISTENING,  /* LISTEN done: ACCEPT and POLL allowed */
    BS_RELEASING,  /* RELEASE pending until the out ring is drained */
};

/* The data ring of an active socket, mapped from the frontend. */
struct bring {
    void *intf;     /* indexes page */
    void *data;     /* 2^order data pages */
    unsigned order; /* copied once from the indexes page, validated */
    struct pvc_data_ring ring;
    struct pvc_evtchn *ch;
    struct pvc_watch ch_watch;
};

struct bsock {
    uint64_t id;
    UT_hash_handle hh;
    struct bdev *dev;
    enum bsock_state state;
    enum bsock_state pre_connect; /* state to go back to if connect fails */
    int family;                   /* AF_INET or AF_INET6 */
    int fd;                       /* host socket, -1 once closed */
    struct pvc_watch fd_watch;
    uint32_t fd_events;           /* current interest; 0: not registered */
    bool linger_set;              /* the frontend set SO_LINGER */
    /* A published port (policy): dom0 bound another address; the guest
     * is told the one it asked for, as a container is. */
    bool published;
    struct sockaddr_storage guest_name;
    socklen_t guest_name_len;

    /* One deferred request besides RELEASE: CONNECT while connecting,
     * ACCEPT or POLL on a listener, SHUTDOWN while draining. */
    bool op_pending;
    struct xen_pvcalls_request op_req;
    bool release_pending;
    struct xen_pvcalls_request release_req;

    /* Active sockets. */
    bool mapped;
    struct bring r;
    bool in_done;     /* in_error set: no more reading from the host */
    bool in_full;     /* stopped reading: the in ring was full */
    bool out_done;    /* out_error set or host socket gone */
    bool out_blocked; /* host send buffer full: waiting for EPOLLOUT */
    bool broken;      /* protocol violation: shut down until RELEASE */
    bool draining;    /* a SHUTDOWN or RELEASE waits for drain_target */
    RING_IDX drain_target;
    bool notify;      /* ring state changed: notify the frontend */
    uint64_t bytes_in, bytes_out; /* host->guest, guest->host */
};

struct bsock *sock_find(struct bdev *d, uint64_t id);
/* Sockets the device holds or has promised (pending ACCEPTs). */
unsigned dev_sock_count(const struct bdev *d);
/* A new table entry owning host socket fd (closed on failure).  Returns
 * NULL on allocation failure. */
struct bsock *sock_new(struct bdev *d, uint64_t id, int family, int fd,
                       enum bsock_state state);
/* Release everything s holds, audit its end, and free it after the
 * batch.  Pending requests must have been answered (or the device is
 * going away). */
void sock_destroy(struct bsock *s);
/* Close the host socket (and stop watching it). */
void sock_close_fd(struct bsock *s);
/* Set the host socket's epoll interest (0: not watched). */
void sock_watch_fd(struct bsock *s, uint32_t events);

/* Map the data ring whose indexes page is `ref` and bind `evtchn`:
 * 0, -EFAULT (a page cannot be mapped), -EINVAL (bad ring_order or
 * event channel). */
int bring_map(struct bdev *d, struct bring *r, uint32_t ref, uint32_t evtchn);
void bring_unmap(struct bdev *d, struct bring *r);
/* Attach a mapped ring to s and watch its event channel (on failure the
 * ring is unmapped).  Returns 0 or -errno. */
int sock_attach_ring(struct bsock *s, struct bring *r);
/* Unmap the ring and unbind the channel, if s has them. */
void sock_detach_ring(struct bsock *s);
/* The pending op (CONNECT/ACCEPT/POLL/SHUTDOWN) is answered: forget it,
 * and give back the slot a pending ACCEPT reserved for its id_new. */
void sock_op_done(struct bsock *s);

/* ---- the data pump (pump.c) --------------------------------------- */

/* A connection became active: start moving bytes both ways. */
void pump_start(struct bsock *s);
/* Events on the host socket of an active socket. */
void pump_fd_event(struct bsock *s, uint32_t events);
/* The frontend rang the socket's doorbell. */
void pump_doorbell(struct bsock *s);
/* Send what the out ring holds now, then call cmd_drained(s).  Stops
 * reading from the host (RELEASE) if stop_in. */
void pump_drain(struct bsock *s, bool stop_in);

/* ---- commands (commands.c, connect.c, listener.c, ext_commands.c) - */

/* Handle one request from the command ring. */
void cmd_dispatch(struct bdev *d, const struct xen_pvcalls_request *req);
/* CONNECT, ACCEPT, POLL: 1 if answered already (or later), else the
 * answer to give. */
int32_t cmd_connect(struct bdev *d, const struct xen_pvcalls_request *req);
int32_t cmd_accept(struct bdev *d, const struct xen_pvcalls_request *req);
int32_t cmd_poll(struct bdev *d, const struct xen_pvcalls_request *req);

/* ---- answers (answer.c) -------------------------------------------- */

/* v1-sized answer carrying req's id. */
void cmd_answer(struct bdev *d, const struct xen_pvcalls_request *req,
                int32_t ret);
/* An answer with more: rsp (if not NULL) is a whole-entry response of len
 * bytes starting with struct pvc_ext_rsp_hdr, which is filled in here;
 * addr and detail (may be NULL) go into the audit record. */
struct answer_extra {
    void *rsp;
    size_t len;
    const char *addr;
    const char *detail;
    const char *rule;   /* the policy rule that decided */
};
void cmd_answer_ex(struct bdev *d, const struct xen_pvcalls_request *req,
                   int32_t ret, const struct answer_extra *x);
/* -524 with u.*.id left 0: unknown or not negotiated. */
void cmd_answer_unsupported(struct bdev *d,
                            const struct xen_pvcalls_request *req);
/* Answer an ACCEPT, in the whole-entry form with the peer's address
 * (peer may be NULL) when accept-addr is enabled. */
void cmd_accept_answer(struct bdev *d, const struct xen_pvcalls_request *req,
                       int32_t ret, const struct sockaddr_storage *peer,
                       socklen_t peer_len);
/* Answer a socket's pending CONNECT/ACCEPT/POLL/SHUTDOWN with ret. */
void cmd_abort_pending(struct bsock *s, int32_t ret);

/* The drain started by pump_drain() is complete (or the host socket
 * failed): answer the pending SHUTDOWN and/or RELEASE. */
void cmd_drained(struct bsock *s);
/* The host socket of a connecting or listening socket has events. */
void cmd_connect_event(struct bsock *s, uint32_t events);
void cmd_listener_event(struct bsock *s, uint32_t events);

/* ---- the policy applied (policy_apply.c) --------------------------- */

/* Load --policy (or allow everything).  0, or -1 with a message logged. */
int backd_policy_load(struct backd *bd);
/* Choose the device's rules: by domid, else by its xenstore name. */
void dev_policy_attach(struct bdev *d);
/* Sockets the device may hold: --max-sockets and the policy's. */
uint32_t dev_max_sockets(const struct bdev *d);
/* CONNECT to sa: 0 if allowed, else the answer was given (-EACCES with
 * the rule, or -EAGAIN past max-pending-connects) and 1 is returned. */
int32_t dev_policy_connect(struct bdev *d,
                           const struct xen_pvcalls_request *req,
                           const struct sockaddr *sa, socklen_t len);
/* BIND of sa: 0 with what dom0 binds in *host (sa, or a published
 * port's address) and the deciding rule in rule (POLICY_WHY_MAX bytes;
 * "" without a policy file), else answered -EACCES and 1 is returned. */
int32_t dev_policy_bind(struct bdev *d, const struct xen_pvcalls_request *req,
                        const struct sockaddr *sa, socklen_t len,
                        struct sockaddr_storage *host, socklen_t *host_len,
                        char *rule);

/* Extension commands: returns true if req->cmd was one of them. */
bool ext_dispatch(struct bdev *d, const struct xen_pvcalls_request *req);
/* The drain for a pending SHUTDOWN is done: shut the host socket down
 * and answer. */
void ext_shutdown_drained(struct bsock *s);

#endif
