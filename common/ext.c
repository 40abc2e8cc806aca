/* Extension names <-> bits: see include/pvc/ext.h. */
#include "pvc/ext.h"

#include <stddef.h>

static const struct {
    const char *name;
    unsigned bit;
} ext_names[] = {
    { PVC_EXT_NAME_IPV6, PVC_EXT_IPV6 },
    { PVC_EXT_NAME_SHUTDOWN, PVC_EXT_SHUTDOWN },
    { PVC_EXT_NAME_SOCKNAME, PVC_EXT_SOCKNAME },
    { PVC_EXT_NAME_SOCKOPT, PVC_EXT_SOCKOPT },
    { PVC_EXT_NAME_ACCEPT_ADDR, PVC_EXT_ACCEPT_ADDR },
    { PVC_EXT_NAME_BIND_CONNECT, PVC_EXT_BIND_CONNECT },
    { PVC_EXT_NAME_WAITING, PVC_EXT_WAITING },
};
#define N_EXT (sizeof(ext_names) / sizeof(ext_names[0]))

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n';
}

/* The bit named by the token [tok, tok+len), or 0 if unknown. */
static unsigned ext_bit(const char *tok, size_t len)
{
    while (len && is_blank(*tok))
        tok++, len--;
    while (len && is_blank(tok[len - 1]))
        len--;
    for (size_t i = 0; i < N_EXT; i++)
        if (strlen(ext_names[i].name) == len &&
            !memcmp(ext_names[i].name, tok, len))
            return ext_names[i].bit;
    return 0;
}

unsigned pvc_ext_parse(const char *list)
{
    unsigned bits = 0;
    if (!list)
        return 0;
    /* The value comes from another domain: unknown or empty tokens are
     * skipped, so a newer peer's features never make the list unusable. */
    for (const char *p = list;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        bits |= ext_bit(p, len);
        if (!comma)
            break;
        p = comma + 1;
    }
    return bits;
}

char *pvc_ext_format(unsigned bits, char *buf, size_t len)
{
    size_t used = 0;
    if (len == 0)
        return buf;
    buf[0] = '\0';
    for (size_t i = 0; i < N_EXT; i++) {
        if (!(bits & ext_names[i].bit))
            continue;
        size_t name_len = strlen(ext_names[i].name);
        size_t need = (used ? 1 : 0) + name_len;
        /* Whole names only: a truncated name would name nothing. */
        if (used + need + 1 > len)
            break;
        if (used)
            buf[used++] = ',';
        memcpy(buf + used, ext_names[i].name, name_len);
        used += name_len;
        buf[used] = '\0';
    }
    return buf;
}
