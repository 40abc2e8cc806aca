/*
 * A native echo server for tests with many connections from many
 * processes: one thread, one epoll, non-blocking sockets (a thousand
 * connections cost a thousand fds, not a thousand threads).  It echoes
 * every byte back and closes a connection at the peer's EOF, once
 * everything it read was echoed, or at an error.
 *
 * Connections are known by the peer's port (every peer is on loopback),
 * so that a test can tell exactly which connections closed: those of the
 * processes it killed, and no other.  The guest-side program learns its
 * host-side local port with getsockname() (the backend's address).
 */
#ifndef TEST_ECHOSRV_H
#define TEST_ECHOSRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct es_server;

/* What one connection did (so far, or in all). */
struct es_conn_info {
    bool closed;        /* the server closed it (peer EOF or error) */
    int err;            /* 0, or the errno that ended it */
    uint64_t bytes;     /* read from the peer (and echoed, once closed) */
};

/* Listen on 127.0.0.1, port 0; serve in a thread.  Asserts. */
struct es_server *es_start(void);
uint16_t es_port(const struct es_server *s);
/* Wait until at least n connections were accepted / closed in all,
 * true if that happened within timeout_ms (condition variable). */
bool es_wait_accepted(struct es_server *s, size_t n, int timeout_ms);
bool es_wait_closed(struct es_server *s, size_t n, int timeout_ms);
size_t es_closed_count(struct es_server *s);
/* The connection from peer port `port`: false if none was accepted. */
bool es_conn(struct es_server *s, uint16_t port, struct es_conn_info *out);
/* Stop the thread, close every socket, free. */
void es_stop(struct es_server *s);

#endif
