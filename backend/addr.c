/* Socket arguments and addresses from a frontend: see addr.h. */
#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* The wire uses Linux's numbers; make sure the host agrees. */
_Static_assert(AF_INET == 2 && AF_INET6 == 10, "Linux address families");
_Static_assert(SOCK_STREAM == 1, "Linux SOCK_STREAM");
_Static_assert(sizeof(struct sockaddr_in) == 16, "sockaddr_in");
_Static_assert(sizeof(struct sockaddr_in6) == 28, "sockaddr_in6");

/* 24: a sockaddr_in6 without sin6_scope_id (RFC 2133's layout), which
 * Linux's own connect and bind accept. */
#define SIN6_LEN_RFC2133 24u

int addr_check_socket(uint32_t domain, uint32_t type, uint32_t protocol,
                      bool ipv6, int *family)
{
    /* The frontend should strip these; a frontend that forwards the
     * caller's flags still means a plain stream socket. */
    type &= ~(uint32_t)(SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (type != SOCK_STREAM)
        return -EAFNOSUPPORT;
    /* 0 and IPPROTO_TCP are TCP; 2 is what Linux's backend accepts
     * (it compares protocol with AF_INET), so its frontends may send it. */
    if (protocol != 0 && protocol != IPPROTO_TCP && protocol != 2)
        return -EAFNOSUPPORT;
    if (domain == AF_INET || (domain == AF_INET6 && ipv6)) {
        *family = (int)domain;
        return 0;
    }
    return -EAFNOSUPPORT;
}

/* The family field of a wire address: 16 bits, host order, at offset 0. */
static uint16_t wire_family(const uint8_t raw[ADDR_WIRE_MAX])
{
    uint16_t fam;
    memcpy(&fam, raw, sizeof(fam));
    return fam;
}

int addr_from_wire(int family, const uint8_t raw[ADDR_WIRE_MAX],
                   uint32_t len, struct sockaddr_storage *out,
                   socklen_t *out_len)
{
    size_t need, use;
    if (family == AF_INET) {
        need = sizeof(struct sockaddr_in);
        use = need; /* Linux's frontend passes the caller's length */
    } else if (family == AF_INET6) {
        need = SIN6_LEN_RFC2133;
        /* sin6_scope_id counts only when it is all there, as in Linux */
        use = len >= sizeof(struct sockaddr_in6) ? sizeof(struct sockaddr_in6)
                                                 : SIN6_LEN_RFC2133;
    } else {
        return -EAFNOSUPPORT;
    }
    /* Length first, then family: the order Linux's inet_bind and
     * tcp_v*_connect check them in. */
    if (len < need || len > ADDR_WIRE_MAX)
        return -EINVAL;
    if (wire_family(raw) != family)
        return -EAFNOSUPPORT;
    memset(out, 0, sizeof(*out));
    memcpy(out, raw, use);
    *out_len = (socklen_t)(family == AF_INET ? use
                                             : sizeof(struct sockaddr_in6));
    return 0;
}

int addr_to_wire(const struct sockaddr *sa, socklen_t len,
                 uint8_t out[ADDR_WIRE_MAX], uint32_t *out_len)
{
    size_t size;
    if (sa->sa_family == AF_INET)
        size = sizeof(struct sockaddr_in);
    else if (sa->sa_family == AF_INET6)
        size = sizeof(struct sockaddr_in6);
    else
        return -EAFNOSUPPORT;
    if ((size_t)len < size)
        return -EAFNOSUPPORT;
    memset(out, 0, ADDR_WIRE_MAX);
    memcpy(out, sa, size);
    *out_len = (uint32_t)size;
    return 0;
}

char *addr_format(const struct sockaddr *sa, socklen_t len, char *buf,
                  size_t buflen)
{
    char host[INET6_ADDRSTRLEN];
    int n;
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *sin = (const void *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        n = snprintf(buf, buflen, "%s:%u", host, ntohs(sin->sin_port));
    } else if (sa->sa_family == AF_INET6 && len >= SIN6_LEN_RFC2133) {
        struct sockaddr_in6 sin6 = { 0 };
        memcpy(&sin6, sa, len < sizeof(sin6) ? len : sizeof(sin6));
        inet_ntop(AF_INET6, &sin6.sin6_addr, host, sizeof(host));
        if (sin6.sin6_scope_id)
            n = snprintf(buf, buflen, "[%s%%%u]:%u", host,
                         sin6.sin6_scope_id, ntohs(sin6.sin6_port));
        else
            n = snprintf(buf, buflen, "[%s]:%u", host,
                         ntohs(sin6.sin6_port));
    } else {
        return NULL;
    }
    return n > 0 && (size_t)n < buflen ? buf : NULL;
}

char *addr_format_wire(const uint8_t raw[ADDR_WIRE_MAX], uint32_t len,
                       char *buf, size_t buflen)
{
    struct sockaddr_storage ss;
    socklen_t ss_len;
    int family = wire_family(raw);
    if (addr_from_wire(family, raw, len, &ss, &ss_len) < 0)
        return NULL;
    return addr_format((struct sockaddr *)&ss, ss_len, buf, buflen);
}
