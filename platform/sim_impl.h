/*
 * The simulated platform's client internals, shared by platform/sim.c
 * (the platform operations) and platform/sim_call.c (the broker
 * connection).  Private to platform/.
 */
#ifndef PVC_SIM_IMPL_H
#define PVC_SIM_IMPL_H

#include "platform_impl.h"

#include "pvc/sim_proto.h"

#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

/* What pvc_grant_share() mapped, so that unshare can name its refs. */
struct share {
    void *addr;
    unsigned npages;
    int memfd;              /* kept for pvc_grant_handoff() */
    UT_hash_handle hh;
    pvc_gref_t refs[];
};

/* The platform handle's private part. */
struct sim_platform {
    int fd;                 /* broker connection */
    pthread_mutex_t lock;   /* one request/reply at a time; shares */
    char dir[PATH_MAX / 2];
    struct share *shares;   /* by addr */
};


/* One request and where its reply goes. */
struct call {
    struct sim_msg rq;
    const uint32_t *rq_var;
    size_t rq_nvar;
    struct sim_msg rp;
    uint32_t *rp_var;       /* capacity rp_var_cap words */
    size_t rp_var_cap;
    size_t rp_nvar;
    int *fds;               /* capacity fds_cap */
    unsigned fds_cap;
    unsigned nfds;
};

/* Connect to <dir>/broker.sock; the fd, or -1 with errno. */
int sim_broker_connect(const char *dir);
/* Send c->rq and wait for its reply (the caller holds sp->lock for
 * sim_call_locked).  On a non-zero status: -1 with errno = the broker's
 * errno and no fds kept; a malformed reply is EPROTO. */
int sim_call_locked(struct sim_platform *sp, struct call *c);
int sim_call(struct sim_platform *sp, struct call *c);
void sim_close_fds(int *fds, unsigned n);

#endif
