/*
 * One client connection: xenstored's framing (a struct xsd_sockmsg header,
 * then len <= XENSTORE_PAYLOAD_MAX bytes) over a non-blocking Unix stream
 * socket, with bounded buffered output so that a client that does not read
 * never blocks the store.
 */
#ifndef SIM_STORE_CONN_H
#define SIM_STORE_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <xen/io/xs_wire.h>

#include "store_int.h"
#include "txn.h"
#include "watch.h"

struct store_conn {
    struct sim_store *st;
    struct store_domain *dom;   /* valid while the connection lives */
    uint16_t domid;
    int fd;
    struct pvc_watch w;
    bool dead;
    bool want_out;              /* EPOLLOUT registered */

    /* The message being received: header, then body. */
    union {
        struct xsd_sockmsg hdr;
        unsigned char bytes[sizeof(struct xsd_sockmsg) +
                            XENSTORE_PAYLOAD_MAX + 1];
    } in;
    size_t in_have;

    /* Unsent output: out[out_head .. out_head + out_len). */
    char *out;
    size_t out_head, out_len, out_cap;

    struct watch_list watches;
    struct txn *txns[STORE_MAX_TXNS];
    uint32_t last_txn_id;

    struct store_conn *next, *prev;
};

/* Take over fd (non-blocking) as a connection of dom; NULL on failure
 * (fd is then closed). */
struct store_conn *conn_new(struct store_domain *dom, int fd);
/* Close the connection now (watches and transactions die with it); its
 * memory is released after the current loop batch. */
void conn_kill(struct store_conn *c);
/* Kill and release at once; only outside the connection's callbacks. */
void conn_destroy(struct store_conn *c);

/* Queue one message; a connection whose backlog passes STORE_MAX_OUTPUT
 * is killed.  No-op on a dead connection. */
void conn_send(struct store_conn *c, uint32_t type, uint32_t req_id,
               uint32_t tx_id, const void *body, size_t len);
void conn_send_error(struct store_conn *c, const struct xsd_sockmsg *req,
                     int err);
void conn_send_event(struct store_conn *c, const char *path,
                     const char *token);

/* ops.c: handle one complete request (body has a nul appended past len). */
void ops_dispatch(struct store_conn *c, const struct xsd_sockmsg *req,
                  const char *body);

#endif
