/*
 * The guest daemon (pvcalls-frontd) in an end-to-end test environment:
 * one daemon per guest domain, started after h_start() with --ready-fd,
 * its socket in the harness directory (<dir>/frontd-<domid>.sock, the
 * daemon's own default in sim mode).
 *
 *     struct harness *h = h_start(NULL);
 *     struct h_frontd fd;
 *     h_frontd_start(h, 1, NULL, &fd);   // asserts that it became ready
 *     ... talk to fd.sock (or set PVC_FRONTD_SOCK=fd.sock for the shim)
 *     h_frontd_stop(&fd);                // asserts exit 0 on SIGTERM
 *     h_stop(h);
 *
 * The daemon is spawned with PR_SET_PDEATHSIG (tests/lib/proc.h), so a
 * failed test never leaves it running.
 */
#ifndef TEST_HARNESS_FRONTD_H
#define TEST_HARNESS_FRONTD_H

#include "harness.h"
#include "proc.h"

struct h_frontd {
    struct proc proc;
    unsigned domid;
    char sock[192]; /* the daemon's listening socket */
};

/* Start pvcalls-frontd for domain domid in h's directory; extra_args
 * (NULL-terminated, may be NULL) are appended to its command line. */
void h_frontd_start(struct harness *h, unsigned domid,
                    const char *const *extra_args, struct h_frontd *fd);
/* SIGTERM, assert a clean exit (ASan leak reports fail the test). */
void h_frontd_stop(struct h_frontd *fd);
/* SIGKILL (a crash of the daemon, for tests of its clients). */
void h_frontd_kill(struct h_frontd *fd);
/* Is it still running? */
bool h_frontd_alive(struct h_frontd *fd);
/* CPU time (user + system) the daemon has used so far, in ms, from
 * /proc/PID/stat (asserts that it can be read). */
long h_frontd_cpu_ms(struct h_frontd *fd);

#endif
