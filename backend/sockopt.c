/* The socket-option whitelist: see sockopt.h. */
#include "sockopt.h"

#include "pvc/ext.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <sys/socket.h>

/* Linux's numbering, which the wire uses.  Written out as numbers so the
 * table is the specification; the host's headers must agree. */
#define L_SOL_SOCKET 1u
#define L_IPPROTO_IP 0u
#define L_IPPROTO_TCP 6u
#define L_IPPROTO_IPV6 41u
_Static_assert(SOL_SOCKET == L_SOL_SOCKET && IPPROTO_IP == L_IPPROTO_IP &&
                   IPPROTO_TCP == L_IPPROTO_TCP &&
                   IPPROTO_IPV6 == L_IPPROTO_IPV6,
               "Linux option levels");
_Static_assert(SO_REUSEADDR == 2 && SO_TYPE == 3 && SO_ERROR == 4 &&
                   SO_SNDBUF == 7 && SO_RCVBUF == 8 && SO_KEEPALIVE == 9 &&
                   SO_LINGER == 13 && SO_REUSEPORT == 15 &&
                   SO_RCVLOWAT == 18 && SO_ACCEPTCONN == 30,
               "Linux SOL_SOCKET options");
_Static_assert(TCP_NODELAY == 1 && TCP_MAXSEG == 2 && TCP_CORK == 3 &&
                   TCP_KEEPIDLE == 4 && TCP_KEEPINTVL == 5 &&
                   TCP_KEEPCNT == 6 && TCP_QUICKACK == 12 &&
                   TCP_USER_TIMEOUT == 18 && TCP_CONGESTION == 13,
               "Linux TCP options");
_Static_assert(IP_TOS == 1 && IP_TTL == 2 && IPV6_V6ONLY == 26,
               "Linux IP options");

struct sockopt_rule {
    uint32_t level, name;
    const char *label;
    uint8_t set_min; /* smallest value length for set; 0: read-only */
};

#define INT_OPT 4 /* sizeof(int) on Linux */

static const struct sockopt_rule rules[] = {
    { L_SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR", INT_OPT },
    { L_SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT", INT_OPT },
    { L_SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE", INT_OPT },
    { L_SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF", INT_OPT },
    { L_SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF", INT_OPT },
    { L_SOL_SOCKET, SO_LINGER, "SO_LINGER", 8 /* struct linger */ },
    { L_SOL_SOCKET, SO_RCVLOWAT, "SO_RCVLOWAT", INT_OPT },
    { L_SOL_SOCKET, SO_ERROR, "SO_ERROR", 0 },
    { L_SOL_SOCKET, SO_TYPE, "SO_TYPE", 0 },
    { L_SOL_SOCKET, SO_ACCEPTCONN, "SO_ACCEPTCONN", 0 },
    { L_IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY", INT_OPT },
    { L_IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE", INT_OPT },
    { L_IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL", INT_OPT },
    { L_IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT", INT_OPT },
    { L_IPPROTO_TCP, TCP_MAXSEG, "TCP_MAXSEG", INT_OPT },
    { L_IPPROTO_TCP, TCP_CORK, "TCP_CORK", INT_OPT },
    { L_IPPROTO_TCP, TCP_QUICKACK, "TCP_QUICKACK", INT_OPT },
    { L_IPPROTO_TCP, TCP_USER_TIMEOUT, "TCP_USER_TIMEOUT", INT_OPT },
    /* The algorithm's name.  Read-only: a privileged backend that set it
     * for a guest could be made to load any congestion-control module. */
    { L_IPPROTO_TCP, TCP_CONGESTION, "TCP_CONGESTION", 0 },
    { L_IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY", INT_OPT },
    /* Linux takes IP_TOS and IP_TTL as an int or a single byte. */
    { L_IPPROTO_IP, IP_TOS, "IP_TOS", 1 },
    { L_IPPROTO_IP, IP_TTL, "IP_TTL", 1 },
};
#define N_RULES (sizeof(rules) / sizeof(rules[0]))

static const struct sockopt_rule *find_rule(uint32_t level, uint32_t name)
{
    for (size_t i = 0; i < N_RULES; i++)
        if (rules[i].level == level && rules[i].name == name)
            return &rules[i];
    return NULL;
}

int sockopt_check(uint32_t level, uint32_t name, uint32_t len, bool set)
{
    const struct sockopt_rule *rule = find_rule(level, name);
    if (!rule)
        return -ENOPROTOOPT;
    if (len > PVC_EXT_OPTVAL_MAX)
        return -EINVAL;
    if (!set)
        return len >= 1 ? 0 : -EINVAL;
    /* Linux's setsockopt answers ENOPROTOOPT for read-only options. */
    if (rule->set_min == 0)
        return -ENOPROTOOPT;
    return len >= rule->set_min ? 0 : -EINVAL;
}

const char *sockopt_name(uint32_t level, uint32_t name)
{
    const struct sockopt_rule *rule = find_rule(level, name);
    return rule ? rule->label : NULL;
}
