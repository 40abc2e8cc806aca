/*
 * pvcalls-simd's internals: the simulated hypervisor's state (domains,
 * grant tables, event channel ports) and the connections that use it.
 * The wire protocol is include/pvc/sim_proto.h.
 *
 * Everything runs on one thread, in one pvc_loop: a request is handled
 * to completion (reply sent) before the next one is read.
 */
#ifndef SIM_BROKER_H
#define SIM_BROKER_H

#include "pvc/loop.h"
#include "pvc/platform.h"
#include "pvc/sim_proto.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

#define SIM_PAGE_SIZE 4096u
/* Pages one domain may have granted at once.  Xen's default grant table
 * holds 64 frames of 512 v1 entries = 32768, but a guest may be given
 * more (gnttab_max_frames), and the simulated platform stands for a host
 * where PV Calls carries every connection: 2^20 pages lets 10,000
 * sockets have rings of order 6, or about 2,000 of order 9 (frontd's
 * ring_budget.c shrinks rings as this runs low).  Pages are memfd pages,
 * allocated when first touched: an idle ring costs its indexes page. */
#define SIM_MAX_GRANTS_PER_DOMAIN (1u << 20)
/* Event channel ports per domain: the FIFO ABI's limit (2^17; the
 * 2-level ABI's 4096 held only 4,000 sockets). */
#define SIM_MAX_PORTS_PER_DOMAIN (1u << 17)
/* Xen's first reserved domid (DOMID_FIRST_RESERVED): valid ids are below. */
#define SIM_DOMID_LIMIT 0x7FF0u

struct broker;
struct conn;

/* One memfd shared by all the pages of one GNT_SHARE; freed when the last
 * grant naming it goes.  Mappers hold their own mmap, so the memory
 * outlives this object for them. */
struct memobj {
    int fd_rw;
    int fd_ro;        /* read-only reopening, for read-only grants; -1 */
    unsigned users;   /* grants naming a page of it */
};

struct grant {
    uint32_t ref;
    UT_hash_handle hh;
    struct memobj *mem;
    uint32_t page;    /* page offset in mem */
    pvc_domid_t peer; /* the only domain allowed to map it */
    bool readonly;
};

/* The two eventfds of one channel, shared by its two ports: fd[s] is
 * what side s reads (its rx), fd[1 - s] what it writes (its tx).  The
 * allocator is side 0, the binder side 1.  Kept until both ports are
 * gone, so that a port whose peer closed can be bound again, as on Xen. */
struct efd_pair {
    int fd[2];
    unsigned refs;  /* ports using it */
};

enum port_state {
    PORT_UNBOUND,     /* waiting for domain peer to bind it */
    PORT_BOUND,       /* connected to remote_port of peer */
};

struct port {
    uint32_t port;
    UT_hash_handle hh;
    struct conn *owner;  /* freed when this connection closes */
    pvc_domid_t peer;
    uint32_t remote_port;
    enum port_state state;
    struct efd_pair *pair;
    unsigned side;
};

struct domain {
    pvc_domid_t domid;
    UT_hash_handle hh;
    struct grant *grants;  /* by ref */
    unsigned ngrants;
    uint32_t next_ref;
    struct port *ports;    /* by port number */
    unsigned nports;
};

struct conn {
    int fd;
    struct pvc_watch watch;
    struct broker *broker;
    bool hello_done;
    pvc_domid_t domid;
    bool dead;
    struct conn *prev, *next;  /* utlist */
};

struct broker {
    struct pvc_loop *loop;
    struct sim_store *store;
    char dir[PATH_MAX / 2];
    struct domain *domains;  /* by domid */
    struct conn *conns;
    int listen_fd;
    struct pvc_watch listen_watch;
    int signal_fd;
    struct pvc_watch signal_watch;
    bool quit;
};

/* A request as received: the header and its variable part. */
struct request {
    const struct sim_msg *msg;
    const uint32_t *var;
    size_t nvar;          /* words in var */
};

/* A reply under construction.  fds are sent with SCM_RIGHTS; the ones
 * flagged in close_after are the broker's to close once sent (or if the
 * send fails). */
struct reply {
    struct sim_msg msg;
    uint32_t var[2 * SIM_MAX_REFS];
    size_t nvar;
    int fds[SIM_MAX_FDS];
    bool close_after[SIM_MAX_FDS];
    unsigned nfds;
};

/* A handler returns 0 or a negative errno (then the reply carries only
 * the status; any fds already added with close_after are still closed). */
typedef int (*op_handler)(struct conn *c, const struct request *rq,
                          struct reply *rp);

/* ---- conn.c -------------------------------------------------------- */
/* Listen on sock_path; refuses (EADDRINUSE) if a live broker answers
 * there, replaces a stale socket file. */
int conn_listen_start(struct broker *b, const char *sock_path);
void conn_listen_stop(struct broker *b);
void conn_close(struct conn *c);
void conn_close_all(struct broker *b);
/* Close every connection of domain domid. */
void conn_close_domain(struct broker *b, pvc_domid_t domid);
void reply_add_fd(struct reply *rp, int fd, bool close_after);

/* ---- domains.c ----------------------------------------------------- */
struct domain *domain_find(struct broker *b, pvc_domid_t domid);
struct domain *domain_new(struct broker *b, pvc_domid_t domid);
void domain_free(struct broker *b, struct domain *d);
void domains_free_all(struct broker *b);
/* Record domain domid and open its store socket. */
int domain_add_with_store(struct broker *b, pvc_domid_t domid);
int op_hello(struct conn *c, const struct request *rq, struct reply *rp);
int op_domain_create(struct conn *c, const struct request *rq,
                     struct reply *rp);
int op_domain_destroy(struct conn *c, const struct request *rq,
                      struct reply *rp);

/* ---- grants.c ------------------------------------------------------ */
void grants_free_all(struct domain *d);
int op_gnt_share(struct conn *c, const struct request *rq, struct reply *rp);
int op_gnt_unshare(struct conn *c, const struct request *rq,
                   struct reply *rp);
int op_gnt_map(struct conn *c, const struct request *rq, struct reply *rp);

/* ---- evtchn.c ------------------------------------------------------ */
void ports_free_all(struct domain *d);
/* Free the ports that connection c allocated or bound. */
void ports_free_conn(struct domain *d, struct conn *c);
int op_evt_alloc_unbound(struct conn *c, const struct request *rq,
                         struct reply *rp);
int op_evt_bind_interdomain(struct conn *c, const struct request *rq,
                            struct reply *rp);
int op_evt_close(struct conn *c, const struct request *rq, struct reply *rp);

#endif
