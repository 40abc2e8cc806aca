/*
 * What the exec_* test programs share (each is one .c file; this header
 * is included, not linked): failing loudly, connecting to the test's
 * loopback echo server, checking an echoed transfer byte for byte, and
 * waiting for the test's go on a FIFO.
 */
#ifndef EXEC_UTIL_H
#define EXEC_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *eu_name = "exec";

__attribute__((noreturn, format(printf, 1, 2)))
static inline void eu_die(const char *fmt, ...)
{
    va_list ap;
    int err = errno;
    fprintf(stderr, "%s[%d]: ", eu_name, (int)getpid());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, ": %s\n", strerror(err));
    exit(1);
}

#define EU_CHECK(cond, ...)                                                  \
    do {                                                                     \
        if (!(cond))                                                         \
            eu_die(__VA_ARGS__);                                             \
    } while (0)

/* One line on stdout, at once (the test reads it through a pipe). */
__attribute__((format(printf, 1, 2)))
static inline void eu_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static inline int eu_port(const char *s)
{
    char *end;
    long p = strtol(s, &end, 10);
    if (*end || p <= 0 || p > 65535) {
        errno = EINVAL;
        eu_die("bad port %s", s);
    }
    return (int)p;
}

static inline int eu_fd(const char *s)
{
    char *end;
    long fd = strtol(s, &end, 10);
    if (*end || fd < 0 || fd > 65535) {
        errno = EINVAL;
        eu_die("bad fd %s", s);
    }
    return (int)fd;
}

static inline struct sockaddr_in eu_loopback(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    return a;
}

/* A connected TCP socket to 127.0.0.1:port (type flags as socket()). */
static inline int eu_connect(int port, int flags)
{
    int fd = socket(AF_INET, SOCK_STREAM | flags, 0);
    EU_CHECK(fd >= 0, "socket");
    struct sockaddr_in a = eu_loopback(port);
    EU_CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0,
             "connect to port %d", port);
    return fd;
}

/* Byte i of transfer `seed`. */
static inline unsigned char eu_byte(uint64_t i, unsigned seed)
{
    uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull + seed;
    x ^= x >> 29;
    return (unsigned char)(x * 0xbf58476d1ce4e5b9ull >> 56);
}

static inline void eu_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        EU_CHECK(n > 0, "write");
        p += n;
        len -= (size_t)n;
    }
}

static inline void eu_read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len) {
        ssize_t n = read(fd, p, len);
        if (n == 0)
            errno = ECONNRESET;
        EU_CHECK(n > 0, "read");
        p += n;
        len -= (size_t)n;
    }
}

/* Send len bytes of transfer seed through the echo server on fd and
 * check that exactly they come back. */
static inline void eu_echo(int fd, size_t len, unsigned seed)
{
    enum { CHUNK = 16384 };
    static unsigned char out[CHUNK], in[CHUNK];
    for (size_t done = 0; done < len;) {
        size_t n = len - done < CHUNK ? len - done : CHUNK;
        for (size_t i = 0; i < n; i++)
            out[i] = eu_byte(done + i, seed);
        eu_write_all(fd, out, n);
        eu_read_all(fd, in, n);
        if (memcmp(in, out, n)) {
            errno = EILSEQ;
            eu_die("echo of bytes %zu..%zu differs", done, done + n);
        }
        done += n;
    }
}

/* Block until the test writes to (and closes) the FIFO. */
static inline void eu_wait_go(const char *fifo)
{
    int fd = open(fifo, O_RDONLY | O_CLOEXEC);
    EU_CHECK(fd >= 0, "open %s", fifo);
    char buf[16];
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    close(fd);
}

#endif
