/*
 * pvcalls-backd's socket-option whitelist (backend/sockopt.c): which
 * options a frontend may set or read, with which value lengths.
 */
#include "../../backend/sockopt.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

Test(backd_sockopt, whitelisted_int_options)
{
    const struct { uint32_t level, name; } ok[] = {
        { 1, 2 },  /* SO_REUSEADDR */   { 1, 15 }, /* SO_REUSEPORT */
        { 1, 9 },  /* SO_KEEPALIVE */   { 1, 8 },  /* SO_RCVBUF */
        { 1, 7 },  /* SO_SNDBUF */      { 1, 18 }, /* SO_RCVLOWAT */
        { 6, 1 },  /* TCP_NODELAY */    { 6, 4 },  /* TCP_KEEPIDLE */
        { 6, 5 },  /* TCP_KEEPINTVL */  { 6, 6 },  /* TCP_KEEPCNT */
        { 6, 2 },  /* TCP_MAXSEG */     { 6, 3 },  /* TCP_CORK */
        { 6, 12 }, /* TCP_QUICKACK */   { 6, 18 }, /* TCP_USER_TIMEOUT */
        { 41, 26 }, /* IPV6_V6ONLY */
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint32_t lv = ok[i].level, nm = ok[i].name;
        cr_assert_eq(sockopt_check(lv, nm, 4, true), 0, "%u/%u", lv, nm);
        cr_assert_eq(sockopt_check(lv, nm, 28, true), 0, "%u/%u", lv, nm);
        cr_assert_eq(sockopt_check(lv, nm, 3, true), -EINVAL, "%u/%u", lv, nm);
        cr_assert_eq(sockopt_check(lv, nm, 0, true), -EINVAL, "%u/%u", lv, nm);
        cr_assert_eq(sockopt_check(lv, nm, 29, true), -EINVAL, "%u/%u", lv, nm);
        cr_assert_eq(sockopt_check(lv, nm, 4, false), 0, "%u/%u", lv, nm);
        cr_assert_not_null(sockopt_name(lv, nm));
    }
}

Test(backd_sockopt, linger_needs_a_whole_struct)
{
    cr_assert_eq(sockopt_check(1, 13, 8, true), 0);
    cr_assert_eq(sockopt_check(1, 13, 4, true), -EINVAL);
    cr_assert_str_eq(sockopt_name(1, 13), "SO_LINGER");
}

Test(backd_sockopt, ip_byte_options)
{
    /* Linux takes IP_TOS and IP_TTL as a byte or an int. */
    cr_assert_eq(sockopt_check(0, 1, 1, true), 0);
    cr_assert_eq(sockopt_check(0, 2, 4, true), 0);
    cr_assert_eq(sockopt_check(0, 2, 0, true), -EINVAL);
}

Test(backd_sockopt, read_only_options)
{
    const uint32_t ro[] = { 4 /* SO_ERROR */, 3 /* SO_TYPE */,
                            30 /* SO_ACCEPTCONN */ };
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(sockopt_check(1, ro[i], 4, false), 0);
        cr_assert_eq(sockopt_check(1, ro[i], 4, true), -ENOPROTOOPT);
    }
}

Test(backd_sockopt, get_lengths)
{
    cr_assert_eq(sockopt_check(6, 1, 1, false), 0, "the kernel truncates");
    cr_assert_eq(sockopt_check(6, 1, 28, false), 0);
    cr_assert_eq(sockopt_check(6, 1, 0, false), -EINVAL);
    cr_assert_eq(sockopt_check(6, 1, 29, false), -EINVAL);
    cr_assert_eq(sockopt_check(6, 1, 0xffffffffu, false), -EINVAL);
}

Test(backd_sockopt, everything_else_is_enoprotoopt)
{
    cr_assert_eq(sockopt_check(1, 25 /* SO_BINDTODEVICE */, 4, true),
                 -ENOPROTOOPT);
    cr_assert_eq(sockopt_check(1, 10 /* SO_OOBINLINE */, 4, true),
                 -ENOPROTOOPT);
    cr_assert_eq(sockopt_check(1, 36 /* SO_MARK */, 4, true), -ENOPROTOOPT);
    cr_assert_eq(sockopt_check(6, 13 /* TCP_CONGESTION */, 4, true),
                 -ENOPROTOOPT);
    cr_assert_eq(sockopt_check(0, 4 /* IP_OPTIONS */, 4, true), -ENOPROTOOPT);
    /* A known name at the wrong level is a different option. */
    cr_assert_eq(sockopt_check(6, 26, 4, true), -ENOPROTOOPT);
    cr_assert_eq(sockopt_check(41, 2, 4, true), -ENOPROTOOPT);
    cr_assert_eq(sockopt_check(0xffffffffu, 2, 4, false), -ENOPROTOOPT);
    /* Whitelist first: an unknown option is ENOPROTOOPT whatever its length. */
    cr_assert_eq(sockopt_check(1, 25, 0xffffffffu, true), -ENOPROTOOPT);
    cr_assert_null(sockopt_name(1, 25));
}

Test(backd_sockopt, congestion_control_is_read_only)
{
    /* TCP_CONGESTION 13: readable (a name of up to 16 bytes), never set
     * for a guest. */
    cr_assert_eq(sockopt_check(6, 13, 16, false), 0);
    cr_assert_eq(sockopt_check(6, 13, 5, true), -ENOPROTOOPT);
    cr_assert_str_eq(sockopt_name(6, 13), "TCP_CONGESTION");
    /* TCP_INFO 11 is the shim's own answer, never the backend's. */
    cr_assert_eq(sockopt_check(6, 11, 16, false), -ENOPROTOOPT);
}
