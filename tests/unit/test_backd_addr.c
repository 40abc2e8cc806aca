/*
 * pvcalls-backd's validation of SOCKET arguments and of the addresses in
 * CONNECT and BIND (backend/addr.c), and the address formats it writes.
 * The module is pure, so it is compiled straight into this test.
 */
#include "../../backend/addr.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* ---- SOCKET -------------------------------------------------------- */

Test(backd_addr, socket_accepts_tcp_streams)
{
    int family = -1;
    cr_assert_eq(addr_check_socket(AF_INET, SOCK_STREAM, 0, false, &family), 0);
    cr_assert_eq(family, AF_INET);
    /* IPPROTO_TCP, and 2, which Linux's backend accepts (compared with
     * AF_INET), so frontends written for it may send it. */
    cr_assert_eq(addr_check_socket(AF_INET, SOCK_STREAM, IPPROTO_TCP, false,
                                   &family), 0);
    cr_assert_eq(addr_check_socket(AF_INET, SOCK_STREAM, 2, false, &family), 0);
    /* Flags a careless frontend forwards are stripped. */
    cr_assert_eq(addr_check_socket(AF_INET,
                                   SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                                   0, false, &family), 0);
}

Test(backd_addr, socket_rejects_everything_else_with_eafnosupport)
{
    int family = -1;
    cr_assert_eq(addr_check_socket(AF_INET, SOCK_DGRAM, 0, false, &family),
                 -EAFNOSUPPORT);
    cr_assert_eq(addr_check_socket(AF_INET, SOCK_RAW, 0, false, &family),
                 -EAFNOSUPPORT);
    cr_assert_eq(addr_check_socket(AF_INET, SOCK_STREAM | 0x100, 0, false,
                                   &family), -EAFNOSUPPORT);
    cr_assert_eq(addr_check_socket(AF_INET, SOCK_STREAM, IPPROTO_UDP, false,
                                   &family), -EAFNOSUPPORT);
    cr_assert_eq(addr_check_socket(AF_UNIX, SOCK_STREAM, 0, false, &family),
                 -EAFNOSUPPORT);
    cr_assert_eq(addr_check_socket(0xffffffffu, SOCK_STREAM, 0, true, &family),
                 -EAFNOSUPPORT);
    cr_assert_eq(family, -1, "family untouched on failure");
}

Test(backd_addr, socket_ipv6_only_when_negotiated)
{
    int family = -1;
    cr_assert_eq(addr_check_socket(AF_INET6, SOCK_STREAM, 0, false, &family),
                 -EAFNOSUPPORT);
    cr_assert_eq(addr_check_socket(AF_INET6, SOCK_STREAM, 0, true, &family), 0);
    cr_assert_eq(family, AF_INET6);
}

/* ---- CONNECT/BIND addresses --------------------------------------- */

static void wire_in(uint8_t raw[ADDR_WIRE_MAX], const char *ip, uint16_t port)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
    inet_pton(AF_INET, ip, &sin.sin_addr);
    memset(raw, 0xee, ADDR_WIRE_MAX); /* garbage after the address */
    memcpy(raw, &sin, sizeof(sin));
}

static void wire_in6(uint8_t raw[ADDR_WIRE_MAX], const char *ip, uint16_t port,
                     uint32_t scope)
{
    struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6,
                                 .sin6_port = htons(port),
                                 .sin6_scope_id = scope };
    inet_pton(AF_INET6, ip, &sin6.sin6_addr);
    memcpy(raw, &sin6, sizeof(sin6));
}

Test(backd_addr, ipv4_lengths_16_to_28_clamped_to_16)
{
    uint8_t raw[ADDR_WIRE_MAX];
    struct sockaddr_storage ss;
    socklen_t len;
    wire_in(raw, "192.0.2.7", 8080);
    for (uint32_t l = 16; l <= 28; l++) {
        memset(&ss, 0xaa, sizeof(ss));
        cr_assert_eq(addr_from_wire(AF_INET, raw, l, &ss, &len), 0, "len %u", l);
        cr_assert_eq(len, sizeof(struct sockaddr_in));
        const struct sockaddr_in *sin = (const void *)&ss;
        cr_assert_eq(sin->sin_family, AF_INET);
        cr_assert_eq(ntohs(sin->sin_port), 8080);
        cr_assert_eq(sin->sin_addr.s_addr, inet_addr("192.0.2.7"));
        /* Nothing of the garbage beyond 16 bytes is kept. */
        cr_assert_eq(((uint8_t *)&ss)[16], 0);
    }
    for (uint32_t l = 0; l < 16; l++)
        cr_assert_eq(addr_from_wire(AF_INET, raw, l, &ss, &len), -EINVAL);
    cr_assert_eq(addr_from_wire(AF_INET, raw, 29, &ss, &len), -EINVAL);
    cr_assert_eq(addr_from_wire(AF_INET, raw, 128, &ss, &len), -EINVAL);
    cr_assert_eq(addr_from_wire(AF_INET, raw, 0xffffffffu, &ss, &len), -EINVAL);
}

Test(backd_addr, family_must_match_the_socket)
{
    uint8_t raw[ADDR_WIRE_MAX];
    struct sockaddr_storage ss;
    socklen_t len;
    wire_in6(raw, "::1", 80, 0);
    cr_assert_eq(addr_from_wire(AF_INET, raw, 16, &ss, &len), -EAFNOSUPPORT);
    wire_in(raw, "127.0.0.1", 80);
    cr_assert_eq(addr_from_wire(AF_INET6, raw, 28, &ss, &len), -EAFNOSUPPORT);
    raw[0] = AF_UNSPEC;
    raw[1] = 0;
    cr_assert_eq(addr_from_wire(AF_INET, raw, 16, &ss, &len), -EAFNOSUPPORT);
    /* Length is judged before family, as Linux's bind/connect do. */
    cr_assert_eq(addr_from_wire(AF_INET, raw, 8, &ss, &len), -EINVAL);
    /* A socket family we never create. */
    cr_assert_eq(addr_from_wire(AF_UNIX, raw, 16, &ss, &len), -EAFNOSUPPORT);
}

Test(backd_addr, ipv6_lengths_and_scope)
{
    uint8_t raw[ADDR_WIRE_MAX];
    struct sockaddr_storage ss;
    socklen_t len;
    wire_in6(raw, "fe80::1", 443, 3);
    cr_assert_eq(addr_from_wire(AF_INET6, raw, 28, &ss, &len), 0);
    cr_assert_eq(len, sizeof(struct sockaddr_in6));
    cr_assert_eq(((struct sockaddr_in6 *)&ss)->sin6_scope_id, 3);
    /* 24..27: RFC 2133 layout, no (or a partial) scope id: none used. */
    for (uint32_t l = 24; l < 28; l++) {
        cr_assert_eq(addr_from_wire(AF_INET6, raw, l, &ss, &len), 0);
        cr_assert_eq(((struct sockaddr_in6 *)&ss)->sin6_scope_id, 0);
        cr_assert_eq(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 443);
    }
    cr_assert_eq(addr_from_wire(AF_INET6, raw, 23, &ss, &len), -EINVAL);
    cr_assert_eq(addr_from_wire(AF_INET6, raw, 16, &ss, &len), -EINVAL);
    cr_assert_eq(addr_from_wire(AF_INET6, raw, 29, &ss, &len), -EINVAL);
}

Test(backd_addr, to_wire_round_trips)
{
    uint8_t raw[ADDR_WIRE_MAX], out[ADDR_WIRE_MAX];
    struct sockaddr_storage ss;
    socklen_t len;
    uint32_t wlen = 0;
    wire_in(raw, "10.1.2.3", 1);
    cr_assert_eq(addr_from_wire(AF_INET, raw, 16, &ss, &len), 0);
    cr_assert_eq(addr_to_wire((struct sockaddr *)&ss, len, out, &wlen), 0);
    cr_assert_eq(wlen, 16);
    cr_assert_arr_eq(out, raw, 16);
    for (int i = 16; i < 28; i++)
        cr_assert_eq(out[i], 0, "padding zeroed at %d", i);
    wire_in6(raw, "2001:db8::5", 65535, 7);
    cr_assert_eq(addr_from_wire(AF_INET6, raw, 28, &ss, &len), 0);
    cr_assert_eq(addr_to_wire((struct sockaddr *)&ss, len, out, &wlen), 0);
    cr_assert_eq(wlen, 28);
    cr_assert_arr_eq(out, raw, 28);
    struct sockaddr un = { .sa_family = AF_UNIX };
    cr_assert_eq(addr_to_wire(&un, sizeof(un), out, &wlen), -EAFNOSUPPORT);
    /* A length too short for its family is refused, not over-read. */
    cr_assert_eq(addr_to_wire((struct sockaddr *)&ss, 16, out, &wlen),
                 -EAFNOSUPPORT);
}

/* ---- formats for the audit log ------------------------------------- */

Test(backd_addr, format)
{
    uint8_t raw[ADDR_WIRE_MAX];
    char buf[ADDR_STR_MAX];
    wire_in(raw, "127.0.0.1", 8080);
    cr_assert_str_eq(addr_format_wire(raw, 16, buf, sizeof(buf)),
                     "127.0.0.1:8080");
    wire_in6(raw, "::1", 80, 0);
    cr_assert_str_eq(addr_format_wire(raw, 28, buf, sizeof(buf)), "[::1]:80");
    wire_in6(raw, "fe80::1", 22, 2);
    cr_assert_str_eq(addr_format_wire(raw, 28, buf, sizeof(buf)),
                     "[fe80::1%2]:22");
    wire_in6(raw, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535,
             0xffffffffu);
    cr_assert_str_eq(addr_format_wire(raw, 28, buf, sizeof(buf)),
                     "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]"
                     ":65535");
    /* Not an address: no string (the record then has no "addr"). */
    cr_assert_null(addr_format_wire(raw, 12, buf, sizeof(buf)));
    memset(raw, 0, sizeof(raw));
    cr_assert_null(addr_format_wire(raw, 16, buf, sizeof(buf)));
    /* Too small a buffer: no truncated string. */
    wire_in(raw, "127.0.0.1", 8080);
    cr_assert_null(addr_format_wire(raw, 16, buf, 8));
}
