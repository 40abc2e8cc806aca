/*
 * A fork-per-connection server under the shim (issue 7): socat
 * TCP-LISTEN:PORT,fork EXEC:cat in an isolated namespace.  socat's parent
 * accepts, forks a child per connection that holds the accepted socket,
 * and closes its own copy; the child forks again for cat.  20 native
 * clients at once each send 256 KiB of their own pseudo-random stream,
 * half-close, and must get exactly that stream back (FNV-1a over every
 * byte in order).  The audit log holds the bind/listen, 20 accepts and
 * their close records with every byte.
 */
#include "../lib/audit.h"
#include "../lib/hostnet.h"
#include "../lib/logwait.h"
#include "../lib/procstat.h"
#include "../lib/runprog.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#define CLIENTS 20
#define BYTES (256u << 10)
#define RUN_MS 30000

static void echo_clients(uint16_t port)
{
    struct sockaddr_storage addr;
    socklen_t len = hn_loopback(AF_INET, port, &addr);
    struct hn_client *c[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        c[i] = hn_client_start(&addr, len, BYTES, 500 + (uint64_t)i);
    for (int i = 0; i < CLIENTS; i++) {
        struct hn_client_result r;
        cr_expect(hn_client_wait(c[i], RUN_MS, &r), "client %d hung", i);
        cr_expect_eq(r.connect_err, 0, "client %d connect: %s", i,
                     strerror(r.connect_err));
        cr_expect_eq(r.err, 0, "client %d: %s", i, strerror(r.err));
        cr_expect_eq(r.bytes_in, BYTES, "client %d got %llu bytes", i,
                     (unsigned long long)r.bytes_in);
        cr_expect_eq(r.hash_in, hn_stream_hash(500 + (uint64_t)i, BYTES),
                     "client %d: echo differs", i);
        hn_client_free(c[i]);
    }
}

static void check_audit(struct rp_env *e, unsigned port)
{
    cr_expect(audit_wait_closed(e->audit, 1, RUN_MS),
              "sockets left open in the audit log");
    struct audit a;
    cr_assert_eq(audit_load(&a, e->audit), 0);
    struct audit_q bind = { .cmd = "bind", .dom = 1 };
    struct audit_q listen = { .cmd = "listen", .dom = 1 };
    struct audit_q accept = { .cmd = "accept", .dom = 1 };
    struct audit_q closes = { .event = "close", .dom = 1 };
    cr_expect_eq(audit_count_port(&a, &bind, port, true), 1);
    cr_expect_eq(audit_count(&a, &listen), 1);
    cr_expect_eq(audit_count_min(&a, &accept, "ret", 0), CLIENTS);
    cr_expect_eq(audit_count_min(&a, &closes, "bytes_out", BYTES), CLIENTS);
    cr_expect_eq(audit_count_min(&a, &closes, "bytes_in", BYTES), CLIENTS);
    audit_free(&a);
}

Test(run_socat, fork_per_connection_echo, .fini = ps_test_fini,
     .timeout = 90)
{
    ps_adopt_orphans();
    struct rp_env *e = rp_env_start(true);
    uint16_t port = hn_closed_port(AF_INET);
    char listen[96];
    /* -t: after a client's EOF, time for cat's last echo to come back. */
    snprintf(listen, sizeof(listen),
             "TCP-LISTEN:%u,bind=127.0.0.1,fork,reuseaddr", port);
    const char *prog[] = { "socat", "-d", "-d", "-t", "30", listen,
                           "EXEC:cat", NULL };
    struct rp_child run;
    lw_start(e, NULL, prog, "listening on", &run, RUN_MS);
    echo_clients(port);
    rp_signal(&run, SIGTERM);
    int status = rp_wait(&run, RUN_MS);
    /* socat ends on SIGTERM with 128 + 15 (its own exit), which
     * pvcalls-run passes on. */
    rp_assert_exit(status, 128 + SIGTERM, "socat under pvcalls-run");
    check_audit(e, port);
    rp_env_stop(e);
}
