/* Node permissions: see perms.h. */
#include "perms.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct store_perms perms_single(uint16_t owner, unsigned access)
{
    struct store_perms p = { .n = 1 };
    p.v[0].domid = owner;
    p.v[0].access = (uint8_t)access;
    return p;
}

unsigned perms_access(const struct store_perms *p, uint16_t domid)
{
    const unsigned all = PERM_READ | PERM_WRITE | PERM_OWNER;
    if (domid == 0 || perms_owner(p) == domid)
        return all;
    for (unsigned i = 1; i < p->n; i++)
        if (p->v[i].domid == domid)
            return p->v[i].access;
    return p->v[0].access;
}

static int access_from_letter(char c)
{
    switch (c) {
    case 'n': return 0;
    case 'r': return PERM_READ;
    case 'w': return PERM_WRITE;
    case 'b': return PERM_READ | PERM_WRITE;
    default: return -1;
    }
}

/* Strict decimal 0..65535: a guest's "r1x" or "r99999" is refused rather
 * than silently read as something else. */
static int parse_domid(const char *s, uint16_t *out)
{
    unsigned long v = 0;
    if (!*s || strlen(s) > 5)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (unsigned long)(*s - '0');
    }
    if (v > 0xffff)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

int perms_parse(const char *strings, size_t len, struct store_perms *out)
{
    struct store_perms p = { .n = 0 };
    if (len == 0 || strings[len - 1] != '\0')
        return -EINVAL;
    for (size_t off = 0; off < len; off += strlen(strings + off) + 1) {
        const char *s = strings + off;
        int access = access_from_letter(s[0]);
        if (access < 0)
            return -EINVAL;
        if (p.n == STORE_MAX_PERMS)
            return -ENOSPC;
        if (parse_domid(s + 1, &p.v[p.n].domid) < 0)
            return -EINVAL;
        p.v[p.n].access = (uint8_t)access;
        p.n++;
    }
    *out = p;
    return 0;
}

static char letter_from_access(unsigned access)
{
    static const char letters[] = { 'n', 'r', 'w', 'b' };
    return letters[access & (PERM_READ | PERM_WRITE)];
}

size_t perms_format(const struct store_perms *p, char *buf, size_t cap)
{
    size_t used = 0;
    for (unsigned i = 0; i < p->n; i++) {
        char one[8];
        int n = snprintf(one, sizeof(one), "%c%u",
                         letter_from_access(p->v[i].access), p->v[i].domid);
        if (used + (size_t)n + 1 <= cap)
            memcpy(buf + used, one, (size_t)n + 1);
        used += (size_t)n + 1;
    }
    return used;
}
