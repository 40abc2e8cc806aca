/*
 * The e2e tests under AddressSanitizer (SAN=1).
 *
 * LeakSanitizer's report at a criterion worker's exit does not fail the
 * test, so the harness asks for a leak check itself (h_stop).
 *
 * Criterion 2.4.1's runner process (not a test) leaks a few small blocks
 * when two workers finish close together (--jobs 2), which would fail
 * every e2e binary's exit status.  The suppression below applies to the
 * runner only (workers are started with BXFI_MAP in their environment),
 * so leaks in test processes are still found.
 *
 * The LSan hooks are looked up by the sanitizer runtime; in a plain build
 * they are unused functions and the weak check is absent.  They live in
 * the same object as sanitizer_no_leaks() so that every test that uses
 * the harness links them.
 */
#include "sanitizer.h"

#include <stdlib.h>

const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return getenv("BXFI_MAP") ? "" : "leak:libcriterion.so\n";
}

const char *__lsan_default_options(void);
const char *__lsan_default_options(void)
{
    return "print_suppressions=0";
}

extern int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

bool sanitizer_no_leaks(void)
{
    return !__lsan_do_recoverable_leak_check ||
           __lsan_do_recoverable_leak_check() == 0;
}
