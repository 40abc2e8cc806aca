/*
 * The backend's policy (backend/policy.h): the file's format, which
 * section applies to a domain, and what connect/bind rules allow.
 */
#include "../../backend/policy.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static struct sockaddr_storage v4(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss = { 0 };
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    cr_assert_eq(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    return ss;
}

static struct sockaddr_storage v6(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss = { 0 };
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    cr_assert_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    return ss;
}

static socklen_t len_of(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                    : sizeof(struct sockaddr_in6);
}

static struct policy *parse_ok(const char *text)
{
    char err[256] = "";
    struct policy *p = policy_parse(text, "test.ini", err, sizeof(err));
    cr_assert_not_null(p, "parse failed: %s", err);
    return p;
}

static void parse_fails(const char *text, const char *want)
{
    char err[256] = "";
    struct policy *p = policy_parse(text, "test.ini", err, sizeof(err));
    cr_assert_null(p, "accepted: %s", text);
    cr_assert(strstr(err, want), "error '%s' lacks '%s'", err, want);
}

static bool can_connect(const struct policy *p, unsigned dom,
                        const char *name, struct sockaddr_storage ss,
                        struct policy_why *why)
{
    return policy_connect(policy_for(p, dom, name),
                          (struct sockaddr *)&ss, len_of(&ss), why);
}

Test(policy, errors_name_the_line)
{
    parse_fails("[defaults]\nmode = deny\ncolour = blue\n",
                "test.ini:3: unknown key 'colour'");
    parse_fails("[defaults]\nmode = maybe\n", "test.ini:2: mode: 'maybe'");
    parse_fails("[defaults]\nmode = deny\n[guest web]\n",
                "test.ini:3: unknown section [guest web]");
    parse_fails("[defaults]\nmode = deny\n[domain web]\nconnect = 10.0.0.1/8\n",
                "test.ini:4: connect: '10.0.0.1/8' has host bits set");
    parse_fails("[defaults]\nmode = deny\n[domain web]\nconnect = 10.0.0.0/33\n",
                "bad prefix length");
    parse_fails("[defaults]\nmode = deny\n[domain web]\nconnect = 10.0.0.0/8:90-80\n",
                "bad port or range '90-80'");
    parse_fails("[defaults]\nmode = deny\n[domain web]\nconnect = 10.0.0.0/8:70000\n",
                "bad port");
    parse_fails("[defaults]\nmode = deny\n[domain web]\nconnect = [2001:db8::]/32\n",
                "bad address");
    parse_fails("[defaults]\nmode = deny\n[domain web]\npublish = 8080\n",
                "bad publish '8080'");
    parse_fails("[defaults]\nmode = deny\n[domain web]\npublish = 0:80\n",
                "ports are 1-65535");
    parse_fails("[defaults]\nmode = deny\n[domain web]\nmax-sockets = lots\n",
                "max-sockets: 'lots'");
    parse_fails("[defaults]\nmode = deny\n[domain web]\nmode = allow\n",
                "mode belongs in [defaults]");
    parse_fails("[defaults]\nmode = deny\n[domain web]\n[domain web]\n",
                "test.ini:4: section [domain web] appears twice");
    parse_fails("[defaults]\nmax-sockets = 5\n", "needs 'mode = allow'");
    parse_fails("connect = *\n[defaults]\nmode = allow\n",
                "test.ini:1: 'connect' outside a section");
    parse_fails("[defaults]\nmode = deny\nthis is not ini\n", "test.ini:3:");
}

Test(policy, missing_file_is_an_error)
{
    char err[256] = "";
    cr_assert_null(policy_load("/nonexistent/policy.ini", err, sizeof(err)));
    cr_assert_str_eq(err, "/nonexistent/policy.ini: No such file or directory");
}

Test(policy, connect_rules_are_an_allowlist)
{
    struct policy *p = parse_ok(
        "[defaults]\n"
        "mode = deny   ; nothing for unlisted domains\n"
        "[domain web]\n"
        "connect = 10.0.0.0/8:80-443 192.0.2.7:5432\n"
        "connect = [2001:db8::/32]:22\n");
    struct policy_why why;
    cr_assert(can_connect(p, 3, "web", v4("10.9.8.7", 443), &why));
    cr_assert_str_eq(why.text, "[domain web] connect = 10.0.0.0/8:80-443");
    cr_assert(can_connect(p, 3, "web", v4("10.0.0.1", 80), &why));
    cr_assert(!can_connect(p, 3, "web", v4("10.0.0.1", 444), &why));
    cr_assert_str_eq(why.text, "[domain web] no connect rule matches");
    cr_assert(!can_connect(p, 3, "web", v4("11.0.0.1", 80), &why));
    cr_assert(can_connect(p, 3, "web", v4("192.0.2.7", 5432), &why));
    cr_assert(!can_connect(p, 3, "web", v4("192.0.2.8", 5432), &why));
    cr_assert(can_connect(p, 3, "web", v6("2001:db8:1::5", 22), &why));
    cr_assert_str_eq(why.text, "[domain web] connect = [2001:db8::/32]:22");
    cr_assert(!can_connect(p, 3, "web", v6("2001:db9::5", 22), &why));
    /* An IPv4-mapped address is its IPv4 address, both ways. */
    cr_assert(can_connect(p, 3, "web", v6("::ffff:10.1.1.1", 80), &why));
    cr_assert(!can_connect(p, 3, "web", v6("::ffff:11.1.1.1", 80), &why));
    /* Another domain: [defaults], deny, no rules. */
    cr_assert(!can_connect(p, 4, "db", v4("10.0.0.1", 80), &why));
    cr_assert_str_eq(why.text, "[defaults] no connect rule matches");
    cr_assert(!can_connect(p, 4, NULL, v4("10.0.0.1", 80), &why));
    policy_free(p);
}

Test(policy, wildcard_and_ports)
{
    struct policy *p = parse_ok("[defaults]\nmode = deny\nconnect = *:53\n"
                                "[domain any]\nconnect = *\n");
    struct policy_why why;
    cr_assert(can_connect(p, 9, NULL, v4("198.51.100.1", 53), &why));
    cr_assert(can_connect(p, 9, NULL, v6("2001:db8::1", 53), &why));
    cr_assert(!can_connect(p, 9, NULL, v4("198.51.100.1", 54), &why));
    cr_assert(can_connect(p, 9, "any", v6("2001:db8::1", 1), &why));
    cr_assert_str_eq(why.text, "[domain any] connect = *");
    policy_free(p);
}

Test(policy, section_by_id_then_name_then_defaults)
{
    struct policy *p = parse_ok("[defaults]\nmode = allow\n"
                                "[domain web]\nconnect = 10.0.0.0/8\n"
                                "[domain 7]\nconnect = 192.0.2.0/24\n");
    cr_assert_str_eq(policy_section(policy_for(p, 7, "web")), "[domain 7]");
    cr_assert_str_eq(policy_section(policy_for(p, 8, "web")), "[domain web]");
    cr_assert_str_eq(policy_section(policy_for(p, 8, "db")), "[defaults]");
    struct policy_why why;
    /* mode = allow: an unlisted domain may do anything... */
    cr_assert(can_connect(p, 8, "db", v4("203.0.113.1", 25), &why));
    cr_assert_str_eq(why.text, "[defaults] mode = allow");
    /* ...a listed one only what its section allows. */
    cr_assert(!can_connect(p, 8, "web", v4("203.0.113.1", 25), &why));
    cr_assert(!can_connect(p, 7, "web", v4("10.0.0.1", 25), &why));
    cr_assert(can_connect(p, 7, "web", v4("192.0.2.1", 25), &why));
    policy_free(p);
}

Test(policy, empty_section_denies_everything)
{
    struct policy *p = parse_ok("[defaults]\nmode = allow\n[domain jail]\n");
    struct policy_why why;
    cr_assert(!can_connect(p, 2, "jail", v4("127.0.0.1", 80), &why));
    cr_assert_str_eq(why.text, "[domain jail] no connect rule matches");
    policy_free(p);
}

Test(policy, bind_and_publish)
{
    struct policy *p = parse_ok(
        "[defaults]\nmode = deny\n"
        "[domain web]\n"
        "publish = 127.0.0.1:8080:80 [::1]:8443:443 9090:90\n"
        "bind = 127.0.0.1:7000-7009 127.0.0.1:0\n");
    const struct policy_domain *d = policy_for(p, 1, "web");
    struct sockaddr_storage host;
    socklen_t host_len;
    struct policy_why why;
    char text[64];

    /* The guest's port 80, whatever address it binds, is dom0's
     * 127.0.0.1:8080. */
    struct sockaddr_storage want = v4("0.0.0.0", 80);
    cr_assert(policy_bind(d, (struct sockaddr *)&want, len_of(&want), &host,
                          &host_len, &why));
    cr_assert_str_eq(why.text, "[domain web] publish = 127.0.0.1:8080:80");
    cr_assert_eq(host_len, sizeof(struct sockaddr_in));
    struct sockaddr_in *h4 = (struct sockaddr_in *)&host;
    cr_assert_str_eq(inet_ntop(AF_INET, &h4->sin_addr, text, sizeof(text)),
                     "127.0.0.1");
    cr_assert_eq(ntohs(h4->sin_port), 8080);

    /* Without a host address: 0.0.0.0, as docker -p 9090:90. */
    want = v4("10.0.0.5", 90);
    cr_assert(policy_bind(d, (struct sockaddr *)&want, len_of(&want), &host,
                          &host_len, &why));
    cr_assert_str_eq(inet_ntop(AF_INET, &h4->sin_addr, text, sizeof(text)),
                     "0.0.0.0");
    cr_assert_eq(ntohs(h4->sin_port), 9090);

    /* IPv6 publishes only for IPv6 sockets. */
    want = v6("::", 443);
    cr_assert(policy_bind(d, (struct sockaddr *)&want, len_of(&want), &host,
                          &host_len, &why));
    cr_assert_eq(host.ss_family, AF_INET6);
    cr_assert_eq(ntohs(((struct sockaddr_in6 *)&host)->sin6_port), 8443);
    want = v4("0.0.0.0", 443);
    cr_assert(!policy_bind(d, (struct sockaddr *)&want, len_of(&want), &host,
                           &host_len, &why));
    cr_assert_str_eq(why.text, "[domain web] no bind or publish rule matches");

    /* bind rules: as asked. */
    want = v4("127.0.0.1", 7005);
    cr_assert(policy_bind(d, (struct sockaddr *)&want, len_of(&want), &host,
                          &host_len, &why));
    cr_assert_eq(ntohs(h4->sin_port), 7005);
    cr_assert_str_eq(why.text, "[domain web] bind = 127.0.0.1:7000-7009");
    want = v4("127.0.0.1", 0);
    cr_assert(policy_bind(d, (struct sockaddr *)&want, len_of(&want), &host,
                          &host_len, &why));
    want = v4("127.0.0.1", 7010);
    cr_assert(!policy_bind(d, (struct sockaddr *)&want, len_of(&want), &host,
                           &host_len, &why));
    want = v4("0.0.0.0", 7005);
    cr_assert(!policy_bind(d, (struct sockaddr *)&want, len_of(&want), &host,
                           &host_len, &why));
    policy_free(p);
}

Test(policy, limits_inherit_from_defaults)
{
    struct policy *p = parse_ok("[defaults]\nmode = allow\nmax-sockets = 64\n"
                                "max-pending-connects = 8\n"
                                "[domain big]\nmax-sockets = unlimited\n"
                                "[domain small]\nmax-pending-connects = 1\n");
    cr_assert_eq(policy_max_sockets(policy_for(p, 1, "x")), 64);
    cr_assert_eq(policy_max_pending_connects(policy_for(p, 1, "x")), 8);
    cr_assert_eq(policy_max_sockets(policy_for(p, 1, "big")), POLICY_UNLIMITED);
    cr_assert_eq(policy_max_pending_connects(policy_for(p, 1, "big")), 8);
    cr_assert_eq(policy_max_sockets(policy_for(p, 1, "small")), 64);
    cr_assert_eq(policy_max_pending_connects(policy_for(p, 1, "small")), 1);
    policy_free(p);
}

Test(policy, permissive_allows_everything_without_limits)
{
    struct policy *p = policy_permissive();
    cr_assert_not_null(p);
    const struct policy_domain *d = policy_for(p, 5, "anything");
    struct policy_why why;
    cr_assert(can_connect(p, 5, "anything", v6("2001:db8::1", 22), &why));
    cr_assert_str_eq(why.text, "no policy");
    struct sockaddr_storage want = v4("0.0.0.0", 80), host;
    socklen_t host_len;
    cr_assert(policy_bind(d, (struct sockaddr *)&want, len_of(&want), &host,
                          &host_len, &why));
    cr_assert_eq(memcmp(&host, &want, sizeof(struct sockaddr_in)), 0);
    cr_assert_eq(policy_max_sockets(d), POLICY_UNLIMITED);
    policy_free(p);
}

Test(policy, loads_a_file_with_comments)
{
    char path[] = "/tmp/pvc-policy-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs("# pvcalls-backd policy\n[defaults]\nmode = deny ; default-deny\n"
          "\n[domain web]\n; the web tier\nconnect = 10.0.0.0/8:443\n", f);
    fclose(f);
    char err[256] = "";
    struct policy *p = policy_load(path, err, sizeof(err));
    unlink(path);
    cr_assert_not_null(p, "%s", err);
    struct policy_why why;
    cr_assert(can_connect(p, 1, "web", v4("10.0.0.1", 443), &why));
    cr_assert(!can_connect(p, 1, "web", v4("10.0.0.1", 80), &why));
    policy_free(p);
}
