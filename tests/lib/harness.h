/*
 * A complete simulated environment for one end-to-end test: a private
 * directory, the broker (pvcalls-simd), the backend daemon
 * (pvcalls-backd) writing an audit log, and guest domains created by the
 * simulated toolstack (pvcalls-simxl create), each with a pvcalls device.
 *
 * Usage, one environment per test (criterion runs each test in its own
 * process, so environments of parallel tests never share anything):
 *
 *     Test(suite, name, .fini = h_cleanup, .timeout = 30) {
 *         struct harness *h = h_start(NULL);
 *         ...
 *         h_stop(h);  // asserts that both daemons exit 0 on SIGTERM
 *     }
 *
 * h_stop() runs in the test body because criterion ignores assertions
 * made in .fini; h_cleanup() only kills what a failed test left behind.
 * Daemons are started with PR_SET_PDEATHSIG, so even a test that crashes
 * or times out never leaves one running.  Binaries come from
 * $PVC_BUILD/bin (scripts/run-tests sets it), else from the build
 * directory the test binary lives in.
 */
#ifndef TEST_HARNESS_H
#define TEST_HARNESS_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "audit.h"
#include "proc.h"

#define H_MAX_GUESTS 8
#define H_MAX_ARGS 16

struct h_opts {
    /* Guest domains 1..guests get a pvcalls device (0: one). */
    unsigned guests;
    /* Extra pvcalls-backd arguments, NULL-terminated. */
    const char *backd_args[H_MAX_ARGS];
    /* Do not start the backend (the test starts it later). */
    bool no_backend;
};

struct harness {
    struct h_opts opts;
    char dir[128];        /* the simulated platform's directory */
    char bindir[PATH_MAX];
    char audit_path[192]; /* the current backend's audit log */
    unsigned backend_gen; /* how many backends were started */
    struct proc simd, backd;
};

struct harness *h_start(const struct h_opts *opts);
/* SIGTERM both daemons, assert that they exit 0 (so ASan leak reports
 * fail the test), remove the directory, free h. */
void h_stop(struct harness *h);
/* .fini of every e2e test: kill whatever h_start() left running. */
void h_cleanup(void);
/* Skip the running test (cleaning up first: criterion runs no .fini
 * for skipped tests). */
void h_skip(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* The backend: start one (a new audit file audit-<gen>.jsonl each time),
 * stop it (SIGTERM, assert exit 0), or check that it is still running. */
void h_backend_start(struct harness *h);
void h_backend_stop(struct harness *h);
bool h_backend_alive(struct harness *h);

/* Run pvcalls-simxl create|destroy DOMID; returns its exit status (-1 if
 * it did not finish within timeout_ms, or died of a signal). */
int h_simxl(struct harness *h, const char *verb, unsigned domid,
            int timeout_ms);

/* Load the current audit log (assert on I/O error). */
void h_audit(struct harness *h, struct audit *a);
/* Wait until the current audit log holds `count` records matching q. */
size_t h_audit_wait(struct harness *h, const struct audit_q *q, size_t count,
                    int timeout_ms);
/* Every line of the current audit log is one well-formed JSON object. */
void h_audit_assert_wellformed(struct harness *h);

#endif
