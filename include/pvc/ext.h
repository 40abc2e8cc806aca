/*
 * The project's negotiated extensions to PV Calls v1 (docs/pvcalls-ext.md
 * is the normative text; this header is its C rendering).
 *
 * Negotiation: the backend lists the extensions it implements in the
 * backend key "ext-features" (comma-separated names, written with the
 * other feature keys before InitWait).  A frontend that wants some writes
 * the subset it will use into its own key "ext-features" before it
 * switches to Initialised.  The backend enables exactly the named ones
 * that it also offers; a frontend that writes nothing gets v1, byte for
 * byte.  Extension commands that are not enabled are answered -524
 * (ENOTSUPP) like any unknown command.
 *
 * Extension commands use numbers from 0x1000 up, far from v1's 0-6.
 * Their requests fit the 56-byte request union; their responses occupy the
 * whole 64-byte ring entry: the v1 response header (req_id, cmd, ret, pad)
 * then up to 48 bytes of payload.
 */
#ifndef PVC_EXT_H
#define PVC_EXT_H

#include "pvc/wire.h"

/* Feature names (the tokens of "ext-features"). */
#define PVC_EXT_NAME_IPV6 "ipv6"
#define PVC_EXT_NAME_SHUTDOWN "shutdown"
#define PVC_EXT_NAME_SOCKNAME "sockname"
#define PVC_EXT_NAME_SOCKOPT "sockopt"
#define PVC_EXT_NAME_ACCEPT_ADDR "accept-addr"
#define PVC_EXT_NAME_BIND_CONNECT "bind-connect"
#define PVC_EXT_NAME_WAITING "waiting"

/* The same features as a bit set, for code. */
enum pvc_ext_bit {
    PVC_EXT_IPV6 = 1u << 0,         /* AF_INET6 in SOCKET/CONNECT/BIND */
    PVC_EXT_SHUTDOWN = 1u << 1,     /* PVCALLS_EXT_SHUTDOWN */
    PVC_EXT_SOCKNAME = 1u << 2,     /* GETSOCKNAME, GETPEERNAME */
    PVC_EXT_SOCKOPT = 1u << 3,      /* SETSOCKOPT, GETSOCKOPT */
    PVC_EXT_ACCEPT_ADDR = 1u << 4,  /* peer address in ACCEPT responses */
    PVC_EXT_BIND_CONNECT = 1u << 5, /* CONNECT honours an earlier BIND */
    PVC_EXT_WAITING = 1u << 6,      /* data rings' "producer waiting" flags */
};
#define PVC_EXT_ALL 0x7fu

/* Parse a comma-separated list (unknown names are ignored); format one. */
unsigned pvc_ext_parse(const char *list);
/* Writes at most len bytes (NUL included); returns buf. */
char *pvc_ext_format(unsigned bits, char *buf, size_t len);

#define PVC_EXT_KEY "ext-features"

/* Extension command numbers. */
#define PVCALLS_EXT_SHUTDOWN 0x1000
#define PVCALLS_EXT_GETSOCKNAME 0x1001
#define PVCALLS_EXT_GETPEERNAME 0x1002
#define PVCALLS_EXT_SETSOCKOPT 0x1003
#define PVCALLS_EXT_GETSOCKOPT 0x1004

/* Request bodies: they overlay xen_pvcalls_request.u (56 bytes). */
struct pvc_ext_shutdown_req {
    uint64_t id;  /* @8: an active socket */
    uint32_t how; /* @16: SHUT_RD 0, SHUT_WR 1, SHUT_RDWR 2 */
    uint8_t pad[4];
};

struct pvc_ext_sockname_req { /* GETSOCKNAME and GETPEERNAME */
    uint64_t id;
};

#define PVC_EXT_OPTVAL_MAX 28u
struct pvc_ext_sockopt_req { /* SETSOCKOPT and GETSOCKOPT */
    uint64_t id;    /* @8 */
    uint32_t level; /* @16: SOL_SOCKET 1, IPPROTO_TCP 6, IPPROTO_IP 0,
                     * IPPROTO_IPV6 41 (Linux numbering) */
    uint32_t name;  /* @20: Linux option number */
    uint32_t len;   /* @24: value length, at most 28 */
    uint8_t val[PVC_EXT_OPTVAL_MAX]; /* @28: value (SET only) */
};

/* Whole-entry responses: header as in xen_pvcalls_response. */
struct pvc_ext_rsp_hdr {
    uint32_t req_id;
    uint32_t cmd;
    int32_t ret;
    uint32_t pad;
};

/* GETSOCKNAME, GETPEERNAME, and ACCEPT when accept-addr is enabled. */
struct pvc_ext_addr_rsp {
    struct pvc_ext_rsp_hdr hdr;
    uint64_t id;      /* @16: the socket (ACCEPT: id, as in v1) */
    uint32_t len;     /* @24: address length: 16 (IPv4) or 28 (IPv6) */
    uint8_t addr[28]; /* @28: Linux sockaddr_in / sockaddr_in6 */
    uint8_t pad[8];
};

/* GETSOCKOPT (SETSOCKOPT answers with a plain v1-sized response). */
struct pvc_ext_sockopt_rsp {
    struct pvc_ext_rsp_hdr hdr;
    uint64_t id;     /* @16 */
    uint32_t len;    /* @24: bytes of val that are valid */
    uint8_t val[PVC_EXT_OPTVAL_MAX]; /* @28 */
    uint8_t pad[8];
};

_Static_assert(sizeof(struct pvc_ext_shutdown_req) <= 56, "fits request");
_Static_assert(sizeof(struct pvc_ext_sockopt_req) <= 56, "fits request");
_Static_assert(sizeof(struct pvc_ext_addr_rsp) == 64, "one entry");
_Static_assert(sizeof(struct pvc_ext_sockopt_rsp) == 64, "one entry");
_Static_assert(__builtin_offsetof(struct pvc_ext_addr_rsp, addr) == 28, "addr");

#endif
