/* Extension names: parsing what a peer wrote and formatting our own list. */
#include "pvc/ext.h"

#include <criterion/criterion.h>

Test(ext, parse_known_names)
{
    cr_assert_eq(pvc_ext_parse("ipv6"), PVC_EXT_IPV6);
    cr_assert_eq(pvc_ext_parse("ipv6,shutdown"), PVC_EXT_IPV6 | PVC_EXT_SHUTDOWN);
    cr_assert_eq(pvc_ext_parse("bind-connect,accept-addr,sockopt,sockname"),
                 PVC_EXT_BIND_CONNECT | PVC_EXT_ACCEPT_ADDR |
                     PVC_EXT_SOCKOPT | PVC_EXT_SOCKNAME);
}

Test(ext, parse_tolerates_what_a_peer_may_write)
{
    cr_assert_eq(pvc_ext_parse(NULL), 0);
    cr_assert_eq(pvc_ext_parse(""), 0);
    cr_assert_eq(pvc_ext_parse(","), 0);
    cr_assert_eq(pvc_ext_parse("future-thing,ipv6,,"), PVC_EXT_IPV6);
    cr_assert_eq(pvc_ext_parse(" ipv6 , shutdown\n"),
                 PVC_EXT_IPV6 | PVC_EXT_SHUTDOWN);
    /* Prefixes and case variants name nothing. */
    cr_assert_eq(pvc_ext_parse("ipv"), 0);
    cr_assert_eq(pvc_ext_parse("ipv6x"), 0);
    cr_assert_eq(pvc_ext_parse("IPV6"), 0);
    cr_assert_eq(pvc_ext_parse("sock"), 0);
    cr_assert_eq(pvc_ext_parse("ipv6,ipv6"), PVC_EXT_IPV6);
}

Test(ext, format_in_bit_order)
{
    char buf[128];
    cr_assert_str_eq(pvc_ext_format(0, buf, sizeof(buf)), "");
    cr_assert_str_eq(pvc_ext_format(PVC_EXT_ALL, buf, sizeof(buf)),
                     "ipv6,shutdown,sockname,sockopt,accept-addr,bind-connect,"
                     "waiting");
    cr_assert_str_eq(pvc_ext_format(PVC_EXT_SOCKOPT | PVC_EXT_IPV6, buf,
                                    sizeof(buf)),
                     "ipv6,sockopt");
    /* Bits we do not know are not invented into names. */
    cr_assert_str_eq(pvc_ext_format(1u << 20 | PVC_EXT_SHUTDOWN, buf,
                                    sizeof(buf)),
                     "shutdown");
}

Test(ext, every_subset_round_trips)
{
    char buf[128];
    for (unsigned bits = 0; bits <= PVC_EXT_ALL; bits++)
        cr_assert_eq(pvc_ext_parse(pvc_ext_format(bits, buf, sizeof(buf))),
                     bits, "bits %#x", bits);
}

Test(ext, format_truncates_to_whole_names)
{
    char buf[16];
    memset(buf, 'z', sizeof(buf));
    /* "ipv6,shutdown" is 13 bytes + NUL = 14; sockname does not fit. */
    pvc_ext_format(PVC_EXT_ALL, buf, sizeof(buf));
    cr_assert_str_eq(buf, "ipv6,shutdown");
    pvc_ext_format(PVC_EXT_ALL, buf, 5);
    cr_assert_str_eq(buf, "ipv6");
    pvc_ext_format(PVC_EXT_ALL, buf, 4);
    cr_assert_str_eq(buf, "");
    buf[0] = 'q';
    pvc_ext_format(PVC_EXT_ALL, buf, 0);
    cr_assert_eq(buf[0], 'q', "len 0 writes nothing");
}
