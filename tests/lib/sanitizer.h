/* The e2e tests under AddressSanitizer (SAN=1): see sanitizer.c. */
#ifndef TEST_SANITIZER_H
#define TEST_SANITIZER_H

#include <stdbool.h>

/* In a sanitizer build, run LeakSanitizer now and return false if it
 * found unreachable memory (it prints the report); elsewhere true. */
bool sanitizer_no_leaks(void);

#endif
