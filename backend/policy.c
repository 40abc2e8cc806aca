/*
 * The backend's policy (policy.h): an INI file read with libinih into
 * sections of allowlist rules, then lookups.
 */
#include "policy.h"

#include "policy_rule.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RULE_TEXT_MAX 96u

struct rule {
    char text[RULE_TEXT_MAX];  /* "connect = 10.0.0.0/8:443", for why */
    union {
        struct policy_net net;
        struct policy_publish pub;
    } u;
};

struct rules {
    struct rule *v;
    size_t n;
};

struct policy_domain {
    char header[96];           /* "[domain web]", "[defaults]" */
    bool by_id;
    unsigned domid;
    char *name;                /* by name; NULL for [defaults] */
    bool allow_all;            /* [defaults] mode = allow, or no policy */
    struct rules connect, bind, publish;
    uint32_t max_sockets, max_pending;  /* POLICY_UNLIMITED: none */
    bool max_sockets_set, max_pending_set;
};

struct policy {
    struct policy_domain defaults;
    struct policy_domain *domains;
    size_t n_domains;
    bool defaults_seen, mode_set;
};

/* ---- building ------------------------------------------------------- */

struct loader {
    struct policy *p;
    const char *name;        /* the file's name, for messages */
    unsigned line;           /* counted by the reader */
    struct policy_domain *cur;  /* the section being read */
    char *err;
    size_t errlen;
    bool failed;
    /* The reader's source: a FILE or a string. */
    FILE *file;
    const char *text;
};

static int load_fail(struct loader *l, const char *fmt, ...)
{
    if (l->failed)
        return 0;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(l->err, l->errlen, "%s:%u: %s", l->name, l->line, msg);
    l->failed = true;
    return 0; /* tells inih to report the line */
}

static void domain_init(struct policy_domain *d, const char *header)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->header, sizeof(d->header), "[%s]", header);
    d->max_sockets = d->max_pending = POLICY_UNLIMITED;
}

static void rules_free(struct rules *r)
{
    free(r->v);
    r->v = NULL;
    r->n = 0;
}

static void domain_free(struct policy_domain *d)
{
    rules_free(&d->connect);
    rules_free(&d->bind);
    rules_free(&d->publish);
    free(d->name);
}

static struct policy_domain *find_domain(struct policy *p,
                                         const char *header)
{
    for (size_t i = 0; i < p->n_domains; i++)
        if (strcmp(p->domains[i].header, header) == 0)
            return &p->domains[i];
    return NULL;
}

/* "domain 7" (by id) or "domain NAME". */
static struct policy_domain *new_domain(struct loader *l,
                                        const char *section)
{
    struct policy *p = l->p;
    if (strncmp(section, "domain ", 7) != 0 || !section[7]) {
        load_fail(l, "unknown section [%s] ([defaults] or [domain ID|NAME])",
                  section);
        return NULL;
    }
    const char *who = section + 7;
    struct policy_domain *grown =
        realloc(p->domains, (p->n_domains + 1) * sizeof(*grown));
    if (!grown) {
        load_fail(l, "out of memory");
        return NULL;
    }
    p->domains = grown;
    struct policy_domain *d = &p->domains[p->n_domains];
    domain_init(d, section);
    size_t digits = strspn(who, "0123456789");
    if (digits == strlen(who) && digits < 6) {
        d->by_id = true;
        d->domid = (unsigned)strtoul(who, NULL, 10);
    } else if (!(d->name = strdup(who))) {
        load_fail(l, "out of memory");
        return NULL;
    }
    p->n_domains++;
    return d;
}

/* A section header seen by the reader: sections count even when empty (a
 * [domain web] with no rules denies that domain everything). */
static void saw_section(struct loader *l, const char *line)
{
    const char *open = line + strspn(line, " \t");
    const char *close = strchr(open, ']');
    if (*open != '[' || !close)
        return; /* inih reports it */
    char section[80];
    size_t len = (size_t)(close - open - 1);
    if (len >= sizeof(section)) {
        load_fail(l, "section name too long");
        return;
    }
    memcpy(section, open + 1, len);
    section[len] = '\0';
    char header[84];
    snprintf(header, sizeof(header), "[%s]", section);
    bool defaults = strcmp(section, "defaults") == 0;
    if (defaults ? l->p->defaults_seen : find_domain(l->p, header) != NULL) {
        load_fail(l, "section %s appears twice", header);
        return;
    }
    l->p->defaults_seen |= defaults;
    l->cur = defaults ? &l->p->defaults : new_domain(l, section);
}

/* inih's reader: one line, counting them and noting sections. */
static char *read_line(char *buf, int size, void *stream)
{
    struct loader *l = stream;
    char *got;
    if (l->file) {
        got = fgets(buf, size, l->file);
    } else {
        if (!*l->text)
            return NULL;
        size_t len = strcspn(l->text, "\n");
        if (l->text[len] == '\n')
            len++;
        if (len > (size_t)size - 1)
            len = (size_t)size - 1;
        memcpy(buf, l->text, len);
        buf[len] = '\0';
        l->text += len;
        got = buf;
    }
    if (got) {
        l->line++;
        saw_section(l, buf);
    }
    return got;
}

static bool add_rule(struct rules *r, const char *key, const char *text)
{
    struct rule *grown = realloc(r->v, (r->n + 1) * sizeof(*grown));
    if (!grown)
        return false;
    r->v = grown;
    memset(&r->v[r->n], 0, sizeof(r->v[r->n]));
    snprintf(r->v[r->n].text, RULE_TEXT_MAX, "%s = %s", key, text);
    r->n++;
    return true;
}

/* connect/bind/publish: whitespace-separated rules on one line. */
static int add_rules(struct loader *l, const char *key, const char *value)
{
    struct policy_domain *d = l->cur;
    bool is_pub = strcmp(key, "publish") == 0;
    struct rules *r = is_pub ? &d->publish
                      : strcmp(key, "bind") == 0 ? &d->bind : &d->connect;
    char buf[INI_MAX_LINE + 1];
    snprintf(buf, sizeof(buf), "%s", value);
    char *save = NULL;
    for (char *tok = strtok_r(buf, " \t,", &save); tok;
         tok = strtok_r(NULL, " \t,", &save)) {
        if (!add_rule(r, key, tok))
            return load_fail(l, "out of memory");
        struct rule *rule = &r->v[r->n - 1];
        char err[120];
        int rc = is_pub
            ? policy_publish_parse(tok, &rule->u.pub, err, sizeof(err))
            : policy_net_parse(tok, &rule->u.net, err, sizeof(err));
        if (rc < 0)
            return load_fail(l, "%s: %s", key, err);
    }
    return 1;
}

static int set_limit(struct loader *l, const char *key, const char *value,
                     uint32_t *limit, bool *set)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(value, &end, 10);
    if (strcmp(value, "unlimited") == 0)
        v = POLICY_UNLIMITED;
    else if (!isdigit((unsigned char)*value) || *end || errno ||
             v >= POLICY_UNLIMITED)
        return load_fail(l, "%s: '%s' is not a count or 'unlimited'", key,
                         value);
    *limit = (uint32_t)v;
    *set = true;
    return 1;
}

static int set_mode(struct loader *l, const char *value)
{
    if (l->cur != &l->p->defaults)
        return load_fail(l, "mode belongs in [defaults]");
    if (strcmp(value, "allow") != 0 && strcmp(value, "deny") != 0)
        return load_fail(l, "mode: '%s' (allow or deny)", value);
    l->p->defaults.allow_all = strcmp(value, "allow") == 0;
    l->p->mode_set = true;
    return 1;
}

static int on_key(void *user, const char *section, const char *key,
                  const char *value)
{
    struct loader *l = user;
    (void)section; /* the reader tracked it, empty sections included */
    if (l->failed)
        return 0;
    if (!l->cur)
        return load_fail(l, "'%s' outside a section", key);
    struct policy_domain *d = l->cur;
    if (strcmp(key, "mode") == 0)
        return set_mode(l, value);
    if (strcmp(key, "connect") == 0 || strcmp(key, "bind") == 0 ||
        strcmp(key, "publish") == 0)
        return add_rules(l, key, value);
    if (strcmp(key, "max-sockets") == 0)
        return set_limit(l, key, value, &d->max_sockets, &d->max_sockets_set);
    if (strcmp(key, "max-pending-connects") == 0)
        return set_limit(l, key, value, &d->max_pending, &d->max_pending_set);
    return load_fail(l, "unknown key '%s'", key);
}

/* Domains inherit [defaults]' limits; [defaults] needs a mode. */
static bool finish(struct loader *l)
{
    struct policy *p = l->p;
    if (!p->mode_set) {
        l->line = 0;
        load_fail(l, "[defaults] needs 'mode = allow' or 'mode = deny'");
        return false;
    }
    for (size_t i = 0; i < p->n_domains; i++) {
        struct policy_domain *d = &p->domains[i];
        if (!d->max_sockets_set)
            d->max_sockets = p->defaults.max_sockets;
        if (!d->max_pending_set)
            d->max_pending = p->defaults.max_pending;
    }
    return true;
}

static struct policy *policy_new(void)
{
    struct policy *p = calloc(1, sizeof(*p));
    if (p)
        domain_init(&p->defaults, "defaults");
    return p;
}

static struct policy *load(struct loader *l)
{
    l->p = policy_new();
    if (!l->p) {
        snprintf(l->err, l->errlen, "%s: out of memory", l->name);
        return NULL;
    }
    int rc = ini_parse_stream(read_line, l, on_key, l);
    if (rc > 0 && !l->failed) {
        l->line = (unsigned)rc;
        load_fail(l, "not KEY = VALUE or [SECTION]");
    }
    if (l->failed || rc < 0 || !finish(l)) {
        if (rc < 0 && !l->failed)
            snprintf(l->err, l->errlen, "%s: cannot read", l->name);
        policy_free(l->p);
        return NULL;
    }
    return l->p;
}

struct policy *policy_load(const char *path, char *err, size_t errlen)
{
    struct loader l = { .name = path, .err = err, .errlen = errlen };
    l.file = fopen(path, "re");
    if (!l.file) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct policy *p = load(&l);
    fclose(l.file);
    return p;
}

struct policy *policy_parse(const char *text, const char *name, char *err,
                            size_t errlen)
{
    struct loader l = { .name = name, .err = err, .errlen = errlen,
                        .text = text };
    return load(&l);
}

struct policy *policy_permissive(void)
{
    struct policy *p = policy_new();
    if (p) {
        snprintf(p->defaults.header, sizeof(p->defaults.header),
                 "no policy");
        p->defaults.allow_all = true;
        p->mode_set = true;
    }
    return p;
}

void policy_free(struct policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_domains; i++)
        domain_free(&p->domains[i]);
    free(p->domains);
    domain_free(&p->defaults);
    free(p);
}

/* ---- lookups -------------------------------------------------------- */

const struct policy_domain *policy_for(const struct policy *p,
                                       unsigned domid, const char *name)
{
    for (size_t i = 0; i < p->n_domains; i++)
        if (p->domains[i].by_id && p->domains[i].domid == domid)
            return &p->domains[i];
    for (size_t i = 0; name && i < p->n_domains; i++)
        if (p->domains[i].name && strcmp(p->domains[i].name, name) == 0)
            return &p->domains[i];
    return &p->defaults;
}

const char *policy_section(const struct policy_domain *d)
{
    return d->header;
}

static void why_set(struct policy_why *why, const struct policy_domain *d,
                    const char *what)
{
    snprintf(why->text, sizeof(why->text), "%s%s%s", d->header,
             *what ? " " : "", what);
}

/* [defaults] mode = allow, or no policy at all. */
static const char *allow_reason(const struct policy_domain *d)
{
    return d->header[0] == '[' ? "mode = allow" : "";
}

bool policy_connect(const struct policy_domain *d, const struct sockaddr *sa,
                    socklen_t len, struct policy_why *why)
{
    if (d->allow_all) {
        why_set(why, d, allow_reason(d));
        return true;
    }
    for (size_t i = 0; i < d->connect.n; i++)
        if (policy_net_match(&d->connect.v[i].u.net, sa, len)) {
            why_set(why, d, d->connect.v[i].text);
            return true;
        }
    why_set(why, d, "no connect rule matches");
    return false;
}

bool policy_bind(const struct policy_domain *d, const struct sockaddr *sa,
                 socklen_t len, struct sockaddr_storage *host,
                 socklen_t *host_len, struct policy_why *why)
{
    for (size_t i = 0; i < d->publish.n; i++) {
        const struct policy_publish *pub = &d->publish.v[i].u.pub;
        if (policy_publish_match(pub, sa, len)) {
            memcpy(host, &pub->host, pub->host_len);
            *host_len = pub->host_len;
            why_set(why, d, d->publish.v[i].text);
            return true;
        }
    }
    bool ok = d->allow_all;
    if (ok)
        why_set(why, d, allow_reason(d));
    for (size_t i = 0; !ok && i < d->bind.n; i++)
        if (policy_net_match(&d->bind.v[i].u.net, sa, len)) {
            why_set(why, d, d->bind.v[i].text);
            ok = true;
        }
    if (!ok) {
        why_set(why, d, "no bind or publish rule matches");
        return false;
    }
    if (len > sizeof(*host))
        return false;
    memcpy(host, sa, len);
    *host_len = len;
    return true;
}

uint32_t policy_max_sockets(const struct policy_domain *d)
{
    return d->max_sockets;
}

uint32_t policy_max_pending_connects(const struct policy_domain *d)
{
    return d->max_pending;
}
