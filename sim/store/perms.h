/*
 * Node permissions as xenstored keeps them: a list of (domain, access);
 * the first entry names the owner and gives the access of every domain not
 * listed.  Pure functions, no I/O.
 */
#ifndef SIM_STORE_PERMS_H
#define SIM_STORE_PERMS_H

#include <stddef.h>
#include <stdint.h>

#include "store_limits.h"

#define PERM_READ 1u
#define PERM_WRITE 2u
#define PERM_OWNER 4u   /* may change the perms; only ever computed */

struct store_perm {
    uint16_t domid;
    uint8_t access;     /* PERM_READ | PERM_WRITE */
};

struct store_perms {
    unsigned n;         /* 1..STORE_MAX_PERMS */
    struct store_perm v[STORE_MAX_PERMS];
};

/* A one-entry list: owner with `access` for everybody else. */
struct store_perms perms_single(uint16_t owner, unsigned access);

static inline uint16_t perms_owner(const struct store_perms *p)
{
    return p->v[0].domid;
}

/* What domid may do with a node carrying p: domain 0 and the owner get
 * PERM_READ|PERM_WRITE|PERM_OWNER, others their entry or the default. */
unsigned perms_access(const struct store_perms *p, uint16_t domid);

/* Parse `count` consecutive nul-terminated "<n|r|w|b><domid>" strings
 * (total size len).  Returns 0, -EINVAL (malformed) or -ENOSPC (too many
 * entries). */
int perms_parse(const char *strings, size_t len, struct store_perms *out);

/* Writes the list as nul-terminated strings into buf (cap bytes); returns
 * the length needed (the list is complete only if that is <= cap). */
size_t perms_format(const struct store_perms *p, char *buf, size_t cap);

#endif
