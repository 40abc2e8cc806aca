/*
 * One rule of the policy (policy.h): parsing its text and matching an
 * address against it.  Pure functions.
 *
 *   net:      ADDR[/LEN][:PORTS] | *[:PORTS]
 *             ADDR is IPv4 or [IPv6]; PORTS is N, N-M or * (0-65535);
 *             without :PORTS, every port.
 *   publish:  [HOST:]HPORT:GPORT, HOST IPv4 or [IPv6] (default 0.0.0.0),
 *             as Docker's -p.
 */
#ifndef BACKD_POLICY_RULE_H
#define BACKD_POLICY_RULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct policy_net {
    int family;          /* AF_INET, AF_INET6; AF_UNSPEC: any address */
    uint8_t addr[16];    /* network byte order, masked to prefix bits */
    unsigned prefix;     /* bits that must match */
    uint16_t port_lo, port_hi;
};

struct policy_publish {
    struct sockaddr_storage host;  /* what dom0 binds */
    socklen_t host_len;
    uint16_t guest_port;           /* what the guest asks for */
};

/* 0, or -1 with a message in err. */
int policy_net_parse(const char *text, struct policy_net *out, char *err,
                     size_t errlen);
int policy_publish_parse(const char *text, struct policy_publish *out,
                         char *err, size_t errlen);

/* Does sa (IPv4, or IPv6: an IPv4-mapped one counts as its IPv4 address,
 * so that a v6 socket cannot slip past v4 rules) fall in net? */
bool policy_net_match(const struct policy_net *net, const struct sockaddr *sa,
                      socklen_t len);
/* Does a bind of sa ask for this published port (same family, same
 * port; any address, as a container's port is published whatever
 * address it binds)? */
bool policy_publish_match(const struct policy_publish *pub,
                          const struct sockaddr *sa, socklen_t len);

#endif
