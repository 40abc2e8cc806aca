/*
 * A PV Calls test frontend: it plays one guest domain on the simulated
 * platform and drives the command ring and the data rings itself, with
 * no shim or guest daemon in between, so that end-to-end tests see
 * exactly what the backend does with each request.
 *
 * The core is asynchronous, because the backend answers out of order and
 * CONNECT, ACCEPT and POLL may stay pending while other commands run:
 * tf_send() queues a request under a fresh req_id, tf_wait() collects
 * the response for one req_id, filing any other response it pops on the
 * way.  The synchronous wrappers (tf_socket, tf_connect, ...) are built
 * on those two.  They return the response's `ret` (0 or a negative
 * Linux errno) and fail the test if no response comes in time.
 *
 * Threads: one struct tf (and its sockets) belongs to one thread at a
 * time; two domains in two threads use two struct tf.  (An event
 * channel's pending events are consumed by whoever waits on it, so two
 * threads waiting on the same channel could lose each other's wake-up.)
 *
 * Raw access for hostile tests: every request can be built by hand and
 * sent with tf_send(), the command ring and every data ring's indexes
 * page are reachable through tf->fe and sock->ring.
 */
#ifndef TEST_TESTFRONT_H
#define TEST_TESTFRONT_H

#include "pvc/ext.h"
#include "pvc/platform.h"
#include "pvc/ring.h"
#include "pvc/xenbus.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uthash.h>

struct harness;
struct hn_stream;

#define TF_TIMEOUT_MS 5000        /* default wait for a response */
#define TF_DEFAULT_ORDER 4u       /* data rings: 16 pages, 32 KiB a way */
#define TF_MAX_OUTSTANDING 32u    /* RING_SIZE of the command ring */

/* A data ring we own: indexes page + 2^order data pages granted to the
 * backend in one share, and the socket's event channel. */
struct tf_ring {
    void *pages;    /* the indexes page, then the data pages */
    unsigned order;
    pvc_gref_t refs[1 + (1u << PVC_MAX_RING_ORDER)]; /* [0]: indexes */
    struct pvc_evtchn *evtchn;
    struct pvc_data_ring ring;
};

struct tf_sock {
    uint64_t id;
    unsigned order;       /* for the ring CONNECT/ACCEPT will allocate */
    struct tf_ring *ring; /* active sockets only */
    struct tf_sock *prev, *next;
};

/* A response that arrived, waiting for its tf_wait(). */
struct tf_rsp {
    uint32_t req_id;
    union xen_pvcalls_sring_entry entry;
    UT_hash_handle hh;
};

/* Every response the frontend received, in arrival order: what the
 * audit log must account for. */
struct tf_journal {
    uint32_t req_id;
    uint32_t cmd;
    int32_t ret;
};

struct tf {
    struct pvc_platform *plat;
    struct xs_handle *xs;
    struct pvc_xb_front fe;
    bool connected;
    pvc_domid_t domid;
    uint32_t next_req_id;
    uint64_t next_sock_id;
    struct tf_rsp *rsps; /* by req_id */
    struct tf_sock *socks;
    struct tf_journal *journal;
    size_t njournal, journal_cap;
};

struct tf_opts {
    int domid;
    const char *sim_dir;
    unsigned ext;      /* PVC_EXT_* to ask for (0: plain v1) */
    int timeout_ms;    /* for the handshake (0: TF_TIMEOUT_MS) */
    const char *dev;   /* NULL: "device/pvcalls/0" */
};

/* Open the platform as domain opts->domid and run the xenbus handshake.
 * Returns 0 or -errno (no assertion: usable in forked children). */
int tf_open(const struct tf_opts *opts, struct tf **out);
/* The same, asserting success, in harness h's directory. */
struct tf *tf_open_h(struct harness *h, int domid, unsigned ext);
/* Orderly close (Closing, wait for the backend, Closed); frees every
 * socket and ring without RELEASEing them. */
void tf_close(struct tf *tf);
/* The domain is gone (destroyed by the toolstack): free what we hold
 * without talking to xenstore or the backend any more. */
void tf_abandon(struct tf *tf);
/* After the backend went away (restart, reset): forget every socket,
 * close our end and redo the handshake.  Returns 0 or -errno. */
int tf_reconnect(struct tf *tf, unsigned ext, int timeout_ms);

/* ---- the command ring ---------------------------------------------- */

/* Queue req with a fresh req_id (written into req->req_id, returned).
 * Waits (up to TF_TIMEOUT_MS) for a free slot if 32 are outstanding;
 * returns 0 if none came free. */
uint32_t tf_send(struct tf *tf, struct xen_pvcalls_request *req);
/* Wait up to timeout_ms for the response to req_id.  Returns 0 with the
 * whole ring entry in *rsp (may be NULL), -ETIMEDOUT, -EPROTO (the
 * backend's rsp_prod is impossible) or -EIO (the platform failed). */
int tf_wait(struct tf *tf, uint32_t req_id, int timeout_ms,
            union xen_pvcalls_sring_entry *rsp);
/* Has the response to req_id arrived?  Never blocks. */
bool tf_answered(struct tf *tf, uint32_t req_id);
/* Send and wait; asserts that the response came within timeout_ms,
 * echoes req_id and cmd; returns ret.  rsp may be NULL. */
int32_t tf_call(struct tf *tf, struct xen_pvcalls_request *req,
                int timeout_ms, union xen_pvcalls_sring_entry *rsp);
/* Like tf_wait, asserting an answer; returns ret. */
int32_t tf_result(struct tf *tf, uint32_t req_id, int timeout_ms,
                  union xen_pvcalls_sring_entry *rsp);
/* Ring the command channel's doorbell (after raw ring edits). */
void tf_notify_cmd(struct tf *tf);

/* ---- sockets ---------------------------------------------------------- */

/* A new socket object with a fresh id (nothing sent yet). */
struct tf_sock *tf_sock_new(struct tf *tf);
/* Forget a socket locally (free its ring) without telling the backend. */
void tf_sock_free(struct tf *tf, struct tf_sock *s);

/* A ring for s (order s->order), or NULL with errno. */
struct tf_ring *tf_ring_new(struct tf *tf, unsigned order);
void tf_ring_free(struct tf *tf, struct tf_ring *r);

int32_t tf_socket(struct tf *tf, struct tf_sock *s);
int32_t tf_socket_af(struct tf *tf, struct tf_sock *s, int family);
/* CONNECT, allocating s->ring first (freed again if ret != 0). */
int32_t tf_connect(struct tf *tf, struct tf_sock *s,
                   const struct sockaddr_storage *addr, socklen_t len);
uint32_t tf_connect_send(struct tf *tf, struct tf_sock *s,
                         const struct sockaddr_storage *addr, socklen_t len);
int32_t tf_connect_finish(struct tf *tf, struct tf_sock *s, uint32_t req_id,
                          int timeout_ms);
int32_t tf_bind(struct tf *tf, struct tf_sock *s,
                const struct sockaddr_storage *addr, socklen_t len);
int32_t tf_listen(struct tf *tf, struct tf_sock *s, uint32_t backlog);
/* ACCEPT on listener: *out is a new socket whose ring was allocated up
 * front; on failure it is freed and *out is NULL. */
int32_t tf_accept(struct tf *tf, struct tf_sock *listener,
                  struct tf_sock **out, int timeout_ms);
uint32_t tf_accept_send(struct tf *tf, struct tf_sock *listener,
                        struct tf_sock *new_sock);
int32_t tf_accept_finish(struct tf *tf, struct tf_sock *new_sock,
                         uint32_t req_id, int timeout_ms,
                         union xen_pvcalls_sring_entry *rsp);
int32_t tf_poll(struct tf *tf, struct tf_sock *s, int timeout_ms);
uint32_t tf_poll_send(struct tf *tf, struct tf_sock *s);
/* RELEASE; frees s and its ring once the response arrived. */
int32_t tf_release(struct tf *tf, struct tf_sock *s);
uint32_t tf_release_send(struct tf *tf, struct tf_sock *s);
int32_t tf_release_finish(struct tf *tf, struct tf_sock *s, uint32_t req_id,
                          int timeout_ms);

/* ---- data ------------------------------------------------------------- */

/* Write all of buf, notifying after each index update and blocking on
 * the socket's channel while the ring is full.  Returns len, the
 * backend's out_error (negative), -ETIMEDOUT or -EPROTO. */
long tf_write(struct tf_sock *s, const void *buf, size_t len,
              int timeout_ms);
/* Read what is there (at least 1 byte), blocking while the ring is
 * empty.  Returns the count, 0 at EOF (in_error -ENOTCONN once the ring
 * is drained), another negative in_error, -ETIMEDOUT or -EPROTO. */
long tf_read(struct tf_sock *s, void *buf, size_t len, int timeout_ms);
/* Read exactly len bytes (fails early at EOF or error: returns what
 * tf_read returned). */
long tf_read_full(struct tf_sock *s, void *buf, size_t len, int timeout_ms);
/* Write `total` bytes of stream st (hashing them into *hash if not
 * NULL).  timeout_ms bounds each wait for ring space.  Returns 0 or what
 * tf_write returned. */
long tf_write_stream(struct tf_sock *s, struct hn_stream *st, uint64_t total,
                     uint64_t *hash, int timeout_ms);
/* Read until EOF, counting and hashing.  Returns 0 at EOF, else the
 * error tf_read returned. */
long tf_read_to_eof(struct tf_sock *s, uint64_t *bytes, uint64_t *hash,
                    int timeout_ms);
/* Block until an event arrives on the socket's channel or timeout_ms
 * passes (true: an event).  Consumes pending events. */
bool tf_wait_event(struct tf_sock *s, int timeout_ms);
void tf_notify(struct tf_sock *s);

/* ---- extensions ------------------------------------------------------- */

int32_t tf_shutdown(struct tf *tf, struct tf_sock *s, uint32_t how);
/* ret; on success *addr / *len hold the address the backend returned. */
int32_t tf_getsockname(struct tf *tf, struct tf_sock *s,
                       struct sockaddr_storage *addr, socklen_t *len);
int32_t tf_getpeername(struct tf *tf, struct tf_sock *s,
                       struct sockaddr_storage *addr, socklen_t *len);
int32_t tf_setsockopt(struct tf *tf, struct tf_sock *s, uint32_t level,
                      uint32_t name, const void *val, uint32_t len);
/* *len: in, the buffer size; out, the length returned. */
int32_t tf_getsockopt(struct tf *tf, struct tf_sock *s, uint32_t level,
                      uint32_t name, void *val, uint32_t *len);

#endif
