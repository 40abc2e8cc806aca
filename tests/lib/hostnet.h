/*
 * Real host-side network peers for end-to-end tests: servers and clients
 * on the loopback interface, each running in its own threads, plus the
 * byte stream and checksum that tests use to prove that every byte
 * crossed the rings intact and in order.
 *
 * Servers always bind port 0 and report the port the kernel chose, so
 * tests running in parallel never collide.  Every wait takes a timeout
 * and blocks on a condition variable or a socket, never sleeps.
 */
#ifndef TEST_HOSTNET_H
#define TEST_HOSTNET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* ---- byte streams and checksums ------------------------------------ */

/* FNV-1a, 64 bits: continue hash h (start with HN_FNV_INIT) over buf. */
#define HN_FNV_INIT 0xcbf29ce484222325ull
uint64_t hn_fnv1a(uint64_t h, const void *buf, size_t len);

/* A reproducible pseudo-random byte stream (splitmix64): the same seed
 * gives the same bytes however the stream is cut into chunks. */
struct hn_stream {
    uint64_t state;
    uint64_t word;     /* current 8 bytes */
    unsigned word_off; /* bytes of word already used (8: none left) */
};
void hn_stream_init(struct hn_stream *s, uint64_t seed);
void hn_stream_fill(struct hn_stream *s, void *buf, size_t len);
/* FNV-1a of the first len bytes of stream seed. */
uint64_t hn_stream_hash(uint64_t seed, uint64_t len);

/* ---- addresses ------------------------------------------------------ */

/* 127.0.0.1:port or [::1]:port (family AF_INET or AF_INET6). */
socklen_t hn_loopback(int family, uint16_t port, struct sockaddr_storage *ss);
/* An IPv4 address a.b.c.d:port (no resolver). */
socklen_t hn_addr4(const char *dotted, uint16_t port,
                   struct sockaddr_storage *ss);
uint16_t hn_port_of(const struct sockaddr_storage *ss);
/* Does this host have a usable ::1? */
bool hn_have_ipv6_loopback(void);
/* A loopback port on which nothing listens right now (bound then closed:
 * a connect to it is refused). */
uint16_t hn_closed_port(int family);

/* ---- servers --------------------------------------------------------- */

enum hn_mode {
    HN_ECHO,   /* send back everything, until the peer's EOF */
    HN_SINK,   /* read until EOF, counting and hashing */
    HN_SOURCE, /* send `total` bytes of stream `seed`, then close */
};

struct hn_server_cfg {
    enum hn_mode mode;
    int family;       /* AF_INET (default when 0) or AF_INET6 */
    uint64_t total;   /* HN_SOURCE: bytes per connection */
    uint64_t seed;    /* HN_SOURCE: stream seed (+ connection index) */
    bool gated;       /* HN_SINK: read nothing before hn_server_open_gate */
    size_t rcvbuf;    /* nonzero: SO_RCVBUF of accepted sockets */
    unsigned slow_us; /* HN_SINK/HN_ECHO: pause before each read after
                       * the first: a rate limit, never a way to wait
                       * for an event */
    size_t read_max;  /* HN_SINK/HN_ECHO: bytes per read (0: 64 KiB) */
};

/* What one accepted connection did, once it has finished. */
struct hn_conn_result {
    uint64_t bytes_in;  /* read from the peer */
    uint64_t hash_in;   /* FNV-1a of them */
    uint64_t bytes_out; /* written to the peer */
    int err;            /* 0, or the errno that ended it abnormally */
};

struct hn_server;

/* Listen on loopback port 0 and serve every connection in its own
 * thread.  Aborts the test on failure. */
struct hn_server *hn_server_start(const struct hn_server_cfg *cfg);
uint16_t hn_server_port(const struct hn_server *s);
socklen_t hn_server_addr(const struct hn_server *s,
                         struct sockaddr_storage *ss);
void hn_server_open_gate(struct hn_server *s);
/* Wait until n connections were accepted / have finished (EOF or error).
 * Returns true if that happened within timeout_ms. */
bool hn_server_wait_accepted(struct hn_server *s, unsigned n, int timeout_ms);
bool hn_server_wait_done(struct hn_server *s, unsigned n, int timeout_ms);
/* Bytes read so far over all connections (finished or not). */
uint64_t hn_server_bytes_in(struct hn_server *s);
/* Result of the i-th connection to finish (0-based); false if fewer. */
bool hn_server_result(struct hn_server *s, unsigned i,
                      struct hn_conn_result *out);
/* Close the listener and every connection, join every thread, free. */
void hn_server_stop(struct hn_server *s);

/* ---- clients --------------------------------------------------------- */

/* A thread that connects to addr, sends `send_total` bytes of stream
 * `seed`, half-closes (SHUT_WR), and reads until EOF. */
struct hn_client_result {
    int connect_err;    /* 0 or errno of connect() */
    uint64_t bytes_out; /* sent */
    uint64_t bytes_in;  /* received before EOF */
    uint64_t hash_in;
    int err;            /* errno that ended the exchange abnormally */
};

struct hn_client;
struct hn_client *hn_client_start(const struct sockaddr_storage *addr,
                                  socklen_t len, uint64_t send_total,
                                  uint64_t seed);
/* Wait for the client to finish (true) or time out (false: the thread
 * is then cancelled by hn_client_free). */
bool hn_client_wait(struct hn_client *c, int timeout_ms,
                    struct hn_client_result *out);
void hn_client_free(struct hn_client *c);

/* ---- time ------------------------------------------------------------ */

/* Monotonic milliseconds. */
int64_t hn_now_ms(void);

#endif
