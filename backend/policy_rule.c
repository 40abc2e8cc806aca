/*
 * Parsing and matching of one policy rule (policy_rule.h).
 */
#include "policy_rule.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* A decimal number in [0, max], the whole of text. */
static bool parse_uint(const char *text, unsigned long max,
                       unsigned long *out)
{
    if (*text < '0' || *text > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno || *end || v > max)
        return false;
    *out = v;
    return true;
}

/* N, N-M or *. */
static int parse_ports(const char *text, struct policy_net *net, char *err,
                       size_t errlen)
{
    if (strcmp(text, "*") == 0) {
        net->port_lo = 0;
        net->port_hi = 65535;
        return 0;
    }
    char lo_text[8];
    const char *dash = strchr(text, '-');
    size_t lo_len = dash ? (size_t)(dash - text) : strlen(text);
    unsigned long lo, hi;
    if (lo_len >= sizeof(lo_text))
        return fail(err, errlen, "bad port '%s'", text);
    memcpy(lo_text, text, lo_len);
    lo_text[lo_len] = '\0';
    if (!parse_uint(lo_text, 65535, &lo) ||
        !parse_uint(dash ? dash + 1 : lo_text, 65535, &hi) || lo > hi)
        return fail(err, errlen, "bad port or range '%s' (N, N-M or *)",
                    text);
    net->port_lo = (uint16_t)lo;
    net->port_hi = (uint16_t)hi;
    return 0;
}

/* ADDR[/LEN] of the given family into net; host bits must be clear. */
static int parse_prefix(char *text, int family, struct policy_net *net,
                        char *err, size_t errlen)
{
    unsigned bits = family == AF_INET ? 32 : 128;
    char *slash = strchr(text, '/');
    unsigned long len = bits;
    if (slash) {
        *slash = '\0';
        if (!parse_uint(slash + 1, bits, &len))
            return fail(err, errlen, "bad prefix length '/%s'", slash + 1);
    }
    if (inet_pton(family, text, net->addr) != 1)
        return fail(err, errlen, "bad %s address '%s'",
                    family == AF_INET ? "IPv4" : "IPv6", text);
    net->family = family;
    net->prefix = (unsigned)len;
    for (unsigned b = net->prefix; b < bits; b++)
        if (net->addr[b / 8] & (0x80u >> (b % 8)))
            return fail(err, errlen, "'%s/%lu' has host bits set", text,
                        len);
    return 0;
}

int policy_net_parse(const char *text, struct policy_net *out, char *err,
                     size_t errlen)
{
    char buf[128];
    if (strlen(text) >= sizeof(buf) || !*text)
        return fail(err, errlen, "bad address '%s'", text);
    memset(out, 0, sizeof(*out));
    out->port_hi = 65535;
    strcpy(buf, text);
    char *ports = NULL;
    if (buf[0] == '*') {
        out->family = AF_UNSPEC;
        if (buf[1] == ':')
            ports = buf + 2;
        else if (buf[1])
            return fail(err, errlen, "bad address '%s'", text);
    } else if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (!close || (close[1] && close[1] != ':'))
            return fail(err, errlen, "bad address '%s' ([IPv6]:PORTS)", text);
        if (close[1] == ':')
            ports = close + 2;
        *close = '\0';
        if (parse_prefix(buf + 1, AF_INET6, out, err, errlen) < 0)
            return -1;
    } else {
        char *colon = strchr(buf, ':');
        if (colon) {
            *colon = '\0';
            ports = colon + 1;
        }
        if (parse_prefix(buf, AF_INET, out, err, errlen) < 0)
            return -1;
    }
    return ports ? parse_ports(ports, out, err, errlen) : 0;
}

/* The host part of a publish rule: IPv4 or [IPv6]. */
static int parse_host(char *text, struct policy_publish *out, char *err,
                      size_t errlen)
{
    memset(&out->host, 0, sizeof(out->host));
    size_t len = strlen(text);
    if (text[0] == '[' && len > 2 && text[len - 1] == ']') {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->host;
        text[len - 1] = '\0';
        if (inet_pton(AF_INET6, text + 1, &s6->sin6_addr) != 1)
            return fail(err, errlen, "bad IPv6 address '%s'", text + 1);
        s6->sin6_family = AF_INET6;
        out->host_len = sizeof(*s6);
        return 0;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)&out->host;
    if (inet_pton(AF_INET, text, &s4->sin_addr) != 1)
        return fail(err, errlen, "bad IPv4 address '%s'", text);
    s4->sin_family = AF_INET;
    out->host_len = sizeof(*s4);
    return 0;
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

int policy_publish_parse(const char *text, struct policy_publish *out,
                         char *err, size_t errlen)
{
    char buf[128];
    if (strlen(text) >= sizeof(buf))
        return fail(err, errlen, "bad publish '%s'", text);
    strcpy(buf, text);
    char *gport = strrchr(buf, ':');
    if (!gport)
        return fail(err, errlen, "bad publish '%s' ([HOST:]HPORT:GPORT)", text);
    *gport++ = '\0';
    char *hport = strrchr(buf, ':');
    char *host = buf;
    if (hport && hport[-1] != ']' && buf[0] == '[')
        hport = NULL; /* a colon inside [IPv6] */
    if (hport)
        *hport++ = '\0';
    else {
        hport = buf;
        host = "0.0.0.0";
    }
    unsigned long hp, gp;
    if (!parse_uint(hport, 65535, &hp) || hp == 0 ||
        !parse_uint(gport, 65535, &gp) || gp == 0)
        return fail(err, errlen,
                    "bad publish '%s': ports are 1-65535 ([HOST:]HPORT:GPORT)",
                    text);
    char host_buf[64];
    snprintf(host_buf, sizeof(host_buf), "%s", host);
    if (parse_host(host_buf, out, err, errlen) < 0)
        return -1;
    set_port(&out->host, (uint16_t)hp);
    out->guest_port = (uint16_t)gp;
    return 0;
}

/* The address and port of sa as the rules see them: an IPv4-mapped IPv6
 * address is IPv4.  False for anything but a full IPv4/IPv6 address. */
static bool view(const struct sockaddr *sa, socklen_t len, int *family,
                 const uint8_t **addr, uint16_t *port)
{
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        *family = AF_INET;
        *addr = (const uint8_t *)&s4->sin_addr;
        *port = ntohs(s4->sin_port);
        return true;
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        *port = ntohs(s6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            *family = AF_INET;
            *addr = s6->sin6_addr.s6_addr + 12;
        } else {
            *family = AF_INET6;
            *addr = s6->sin6_addr.s6_addr;
        }
        return true;
    }
    return false;
}

bool policy_net_match(const struct policy_net *net, const struct sockaddr *sa,
                      socklen_t len)
{
    int family;
    const uint8_t *addr;
    uint16_t port;
    if (!view(sa, len, &family, &addr, &port))
        return false;
    if (port < net->port_lo || port > net->port_hi)
        return false;
    if (net->family == AF_UNSPEC)
        return true;
    if (net->family != family)
        return false;
    unsigned full = net->prefix / 8, rest = net->prefix % 8;
    if (memcmp(addr, net->addr, full) != 0)
        return false;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return rest == 0 || (addr[full] & mask) == net->addr[full];
}

bool policy_publish_match(const struct policy_publish *pub,
                          const struct sockaddr *sa, socklen_t len)
{
    int family;
    const uint8_t *addr;
    uint16_t port;
    /* The socket's own family must match: dom0 binds the host address on
     * the socket the guest made. */
    return view(sa, len, &family, &addr, &port) &&
           sa->sa_family == pub->host.ss_family && port == pub->guest_port;
}
