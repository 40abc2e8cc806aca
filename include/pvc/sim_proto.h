/*
 * The simulated platform's broker protocol.
 *
 * The broker (pvcalls-simd) plays the hypervisor: it owns the grant tables
 * and event channels of every simulated domain.  A process connects to
 * <sim_dir>/broker.sock (SOCK_SEQPACKET, one connection per
 * struct pvc_platform), says which domain it is with SIM_OP_HELLO, then
 * makes synchronous requests: one message in, one reply out, in order.
 *
 * Every message starts with struct sim_msg; a variable part of uint32_t
 * follows in the same packet, as long as each op says below (`count`
 * words for GNT_UNSHARE and GNT_MAP requests, none for the other
 * requests; an error reply has none).  File descriptors travel as
 * SCM_RIGHTS on the reply.  A reply carries the request's op and
 * status = 0 or a negative errno.
 *
 * Xenstore is not spoken here: each domain has its own store socket
 * <sim_dir>/store/<domid>.sock that speaks xenstored's wire protocol
 * (<xen/io/xs_wire.h>), created when the domain is created.
 */
#ifndef PVC_SIM_PROTO_H
#define PVC_SIM_PROTO_H

#include <stdint.h>

#define SIM_BROKER_SOCK "broker.sock"
#define SIM_STORE_DIR "store"
#define SIM_MAX_REFS 1024u  /* pages per share/map request */
#define SIM_MAX_FDS 64u     /* fds per reply */

enum sim_op {
    /* request: domid = the caller's domain.  Domain 0 always exists;
     * others must have been created with SIM_OP_DOMAIN_CREATE.
     * reply: status. */
    SIM_OP_HELLO = 1,

    /* request: peer, count = npages, flags = SIM_F_READONLY?
     * reply: count = npages, var = refs[npages], one fd: a memfd of
     * npages pages holding them in order (map it MAP_SHARED). */
    SIM_OP_GNT_SHARE,
    /* request: count = npages, var = refs[npages] (from one share).
     * reply: status. */
    SIM_OP_GNT_UNSHARE,
    /* request: peer = the granting domain, count = npages,
     * flags = SIM_F_READONLY?, var = refs[npages].
     * reply: count = npages, var = pairs {fd index, page offset} per ref
     * (2 * npages words), fds: the distinct memfds, in fd-index order.
     * Errors: -ENOENT unknown ref, -EPERM ref not granted to the caller,
     * -EACCES writable map of a read-only grant. */
    SIM_OP_GNT_MAP,

    /* request: peer.  reply: port, two fds: [0] rx eventfd (readable
     * when the peer notified us), [1] tx eventfd (write 1 to notify). */
    SIM_OP_EVT_ALLOC_UNBOUND,
    /* request: peer, port = the peer's unbound port.
     * reply: port (ours), fds as above.  -EINVAL if that port is not an
     * unbound port of peer's allocated for us, -EBUSY if already bound. */
    SIM_OP_EVT_BIND_INTERDOMAIN,
    /* request: port.  reply: status.  As on Xen, the other end of a
     * bound channel becomes unbound again: the closer's domain may bind
     * it anew, and notifications sent meanwhile are dropped. */
    SIM_OP_EVT_CLOSE,

    /* Toolstack operations, domain 0 only (-EPERM otherwise).
     * DOMAIN_CREATE: domid = new domain; creates /local/domain/<domid>
     * (owned by it), its store socket, fires @introduceDomain.
     * DOMAIN_DESTROY: domid; revokes its grants and event channels,
     * closes its broker and store connections, removes its store socket
     * and /local/domain/<domid>, fires @releaseDomain. */
    SIM_OP_DOMAIN_CREATE,
    SIM_OP_DOMAIN_DESTROY,
};

#define SIM_F_READONLY 1u

struct sim_msg {
    uint32_t op;
    int32_t status;
    uint32_t domid;
    uint32_t peer;
    uint32_t port;
    uint32_t flags;
    uint32_t count;
    uint32_t pad;
    /* uint32_t var[] follows */
};

#endif
