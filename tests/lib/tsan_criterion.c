/*
 * Criterion under ThreadSanitizer (make SAN=thread): the Makefile links
 * this object into every test of a TSan build; elsewhere it is empty.
 *
 * Why: criterion (Debian's 2.4.1, BoxFort inside) maps its inheritable
 * arena with MAP_FIXED at 0x200000000000 + ((rand_r(&seed) & 0x3fffff)
 * << 24), trying 10 random addresses.  TSan reserves every part of that
 * range except its "mid" application range 0x550000000000-0x568000000000
 * (shadow, meta-shadow and gaps are PROT_NONE or refused by its mmap
 * interceptor), so about 2.3% of the addresses are usable and most runs
 * die with "Could not initialize inheritable arena".  Criterion's only
 * caller of rand_r is that address picker; this definition, which the
 * executable exports in place of libc's, keeps its pseudo-random values
 * inside the mid range.
 */
#ifdef __SANITIZE_THREAD__

#include <stdlib.h>

/* 0x550000000000 >> 24, and the width of the mid range in 16 MiB steps,
 * less 256 steps (4 GiB) so that a grown arena still fits. */
#define MID_FIRST 0x350000u
#define MID_STEPS (0x18000u - 0x100u)

int rand_r(unsigned int *seed)
{
    /* glibc's own rand_r recurrence, then folded into the mid range. */
    *seed = *seed * 1103515245u + 12345u;
    unsigned int r = (*seed >> 16) & 0x7fffu;
    *seed = *seed * 1103515245u + 12345u;
    r = (r << 15) | ((*seed >> 16) & 0x7fffu);
    return (int)(MID_FIRST + r % MID_STEPS);
}

#else
/* ISO C wants at least one declaration in a translation unit. */
typedef int tsan_criterion_unused;
#endif
