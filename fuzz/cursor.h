/* Reading a fuzz input: a little-endian cursor that yields zeros once
 * the input is used up, so every target reads without length checks. */
#ifndef FUZZ_CURSOR_H
#define FUZZ_CURSOR_H

#include <stddef.h>
#include <stdint.h>

/* A little-endian cursor over the fuzz input. */
struct cursor {
    const uint8_t *p;
    size_t left;
};
uint8_t cur_u8(struct cursor *c);
uint16_t cur_u16(struct cursor *c);
uint32_t cur_u32(struct cursor *c);
/* Up to n bytes (fewer at the end); returns how many. */
size_t cur_bytes(struct cursor *c, void *out, size_t n);

#endif
