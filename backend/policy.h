/*
 * The backend's policy: which calls each guest domain may make, read from
 * an INI file (libinih; docs/policy.md has the format).  Pure: loading
 * reads the file once, the rest is lookups on an immutable value, so a
 * reload builds a new policy and swaps it in whole (the old one stays
 * valid until freed).  Unit-tested in tests/unit/test_backd_policy.c.
 *
 * The model, in short: a domain's rules are its [domain ID] section, else
 * its [domain NAME] section, else [defaults].  Rules are allowlists:
 * "connect" (destination prefixes and ports), "bind" (dom0 addresses and
 * ports a guest may bind and listen on as asked), "publish" (Docker's -p:
 * a guest binding its port P gets dom0's HOST:HPORT instead).  [defaults]
 * "mode = allow" lets a domain without a section do anything (the
 * permissive default, as with no policy file at all); "mode = deny" gives
 * it [defaults]' own rules, none by default.  Limits ("max-sockets",
 * "max-pending-connects") are per domain, inherited from [defaults].
 */
#ifndef BACKD_POLICY_H
#define BACKD_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct policy;
struct policy_domain;

/* The rule that decided, for the audit log: "[domain web] connect =
 * 10.0.0.0/8:443", or "[domain web] no connect rule matches". */
#define POLICY_WHY_MAX 200u
struct policy_why {
    char text[POLICY_WHY_MAX];
};

/* No limit (max-sockets, max-pending-connects not set anywhere). */
#define POLICY_UNLIMITED UINT32_MAX

/* Reads path.  NULL and a message in err ("policy.ini:12: ...") if the
 * file cannot be read or says anything this module does not understand:
 * a policy is applied whole or not at all. */
struct policy *policy_load(const char *path, char *err, size_t errlen);
/* The same from a string (tests); name is used in messages. */
struct policy *policy_parse(const char *text, const char *name, char *err,
                            size_t errlen);
/* Everything allowed, no limits: the backend without --policy. */
struct policy *policy_permissive(void);
void policy_free(struct policy *p);

/* The rules that apply to domain domid, whose xenstore name is name
 * (NULL: unknown).  Never NULL; valid as long as p. */
const struct policy_domain *policy_for(const struct policy *p,
                                       unsigned domid, const char *name);
/* "[domain web]", "[defaults]", "no policy". */
const char *policy_section(const struct policy_domain *d);

/* May the domain connect to sa?  Fills why either way. */
bool policy_connect(const struct policy_domain *d, const struct sockaddr *sa,
                    socklen_t len, struct policy_why *why);

/* May the domain bind sa (as a later listen)?  If so, *host is what dom0
 * binds: sa itself, or a published port's dom0 address.  Fills why. */
bool policy_bind(const struct policy_domain *d, const struct sockaddr *sa,
                 socklen_t len, struct sockaddr_storage *host,
                 socklen_t *host_len, struct policy_why *why);

uint32_t policy_max_sockets(const struct policy_domain *d);
uint32_t policy_max_pending_connects(const struct policy_domain *d);

#endif
