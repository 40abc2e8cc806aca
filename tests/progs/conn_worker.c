/*
 * conn_worker: one of many programs sharing a guest.  Opens N connections
 * to an echo server at 127.0.0.1:PORT, moves verified data through each,
 * and stops mid-transfer until told to go on, so that a test can kill it
 * while its connections hold data in flight.
 *
 *   conn_worker PORT N CHUNK SEED
 *
 * 1. connect N sockets; print "ports P1 ... PN" (each one's local port
 *    as getsockname says: on the host side, the echo server's peer port);
 * 2. on each: send CHUNK bytes, read the echo back and compare;
 * 3. on each: send another CHUNK bytes and leave the echo unread;
 * 4. print "ready PID" and wait for SIGUSR1 (SIGKILL, if it is a victim);
 * 5. read and compare the pending echoes, one more full round, then
 *    half-close each, expect EOF, close; print "ok", exit 0.
 * Any failure: "error ..." on stderr, exit 1.
 *
 * Data: connection i carries the splitmix64 stream of seed SEED * 1000 + i.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 256
#define MAX_CHUNK (1u << 20)

struct stream {
    uint64_t state;
};

static uint8_t stream_byte(struct stream *s, uint64_t *word, unsigned *left)
{
    if (*left == 0) {
        uint64_t z = (s->state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        *word = z ^ (z >> 31);
        *left = 8;
    }
    uint8_t b = (uint8_t)*word;
    *word >>= 8;
    (*left)--;
    return b;
}

/* Per connection: what we send and what the echo must be (the same
 * stream, generated twice so that nothing is kept). */
struct conn {
    int fd;
    struct stream tx, rx;
    uint64_t tx_word, rx_word;
    unsigned tx_left, rx_left;
};

static char buf[MAX_CHUNK], got[MAX_CHUNK];

static void die(int i, const char *what)
{
    fprintf(stderr, "error: connection %d: %s: %s\n", i, what,
            strerror(errno));
    exit(1);
}

static void send_chunk(struct conn *c, int i, size_t len)
{
    for (size_t k = 0; k < len; k++)
        buf[k] = (char)stream_byte(&c->tx, &c->tx_word, &c->tx_left);
    for (size_t off = 0; off < len;) {
        ssize_t n = send(c->fd, buf + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die(i, "send");
        off += (size_t)n;
    }
}

static void check_echo(struct conn *c, int i, size_t len)
{
    for (size_t off = 0; off < len;) {
        ssize_t n = recv(c->fd, got + off, len - off, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            errno = EPIPE;
        if (n <= 0)
            die(i, "recv");
        off += (size_t)n;
    }
    for (size_t k = 0; k < len; k++)
        if ((uint8_t)got[k] != stream_byte(&c->rx, &c->rx_word,
                                            &c->rx_left)) {
            errno = EILSEQ;
            die(i, "echo differs");
        }
}

static void finish(struct conn *c, int i)
{
    if (shutdown(c->fd, SHUT_WR) < 0)
        die(i, "shutdown");
    char b;
    ssize_t n;
    while ((n = recv(c->fd, &b, 1, 0)) < 0 && errno == EINTR)
        ;
    if (n != 0) {
        errno = n < 0 ? errno : EPROTO;
        die(i, "expected EOF");
    }
    close(c->fd);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: conn_worker PORT N CHUNK SEED\n");
        return 2;
    }
    int n = atoi(argv[2]);
    size_t chunk = (size_t)atol(argv[3]);
    uint64_t seed = strtoull(argv[4], NULL, 10);
    if (n < 1 || n > MAX_CONNS || chunk < 1 || chunk > MAX_CHUNK) {
        fprintf(stderr, "conn_worker: bad N or CHUNK\n");
        return 2;
    }
    /* SIGUSR1 is waited for, never delivered as a signal. */
    sigset_t go;
    sigemptyset(&go);
    sigaddset(&go, SIGUSR1);
    sigprocmask(SIG_BLOCK, &go, NULL);

    static struct conn conns[MAX_CONNS];
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons((uint16_t)atoi(argv[1])),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    printf("ports");
    for (int i = 0; i < n; i++) {
        struct conn *c = &conns[i];
        c->tx.state = c->rx.state = seed * 1000 + (uint64_t)i;
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (c->fd < 0)
            die(i, "socket");
        if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0)
            die(i, "connect");
        struct sockaddr_in local;
        socklen_t len = sizeof(local);
        if (getsockname(c->fd, (struct sockaddr *)&local, &len) < 0)
            die(i, "getsockname");
        printf(" %u", ntohs(local.sin_port));
    }
    printf("\n");
    fflush(stdout);
    for (int i = 0; i < n; i++) {
        send_chunk(&conns[i], i, chunk);
        check_echo(&conns[i], i, chunk);
    }
    for (int i = 0; i < n; i++)
        send_chunk(&conns[i], i, chunk); /* echo left in flight */
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    int sig;
    if (sigwait(&go, &sig) != 0)
        return 1;
    for (int i = 0; i < n; i++)
        check_echo(&conns[i], i, chunk);
    for (int i = 0; i < n; i++) {
        send_chunk(&conns[i], i, chunk);
        check_echo(&conns[i], i, chunk);
        finish(&conns[i], i);
    }
    printf("ok\n");
    return 0;
}
