/* The fuzz input cursor: see cursor.h. */
#include "cursor.h"

#include <string.h>

size_t cur_bytes(struct cursor *c, void *out, size_t n)
{
    size_t take = n < c->left ? n : c->left;
    memcpy(out, c->p, take);
    memset((uint8_t *)out + take, 0, n - take);
    c->p += take;
    c->left -= take;
    return take;
}

uint8_t cur_u8(struct cursor *c)
{
    uint8_t v;
    cur_bytes(c, &v, 1);
    return v;
}

uint16_t cur_u16(struct cursor *c)
{
    uint16_t v;
    cur_bytes(c, &v, 2);
    return v;
}

uint32_t cur_u32(struct cursor *c)
{
    uint32_t v;
    cur_bytes(c, &v, 4);
    return v;
}
