/*
 * Many programs in one guest (issue 7): 50 programs (tests/progs/
 * conn_worker), started at once, each by its own pvcalls-run --isolate
 * --attach on one environment that a first pvcalls-run --keep brought up
 * (one broker, backend and guest daemon for all, as in a container whose
 * entrypoint attaches every program to the guest daemon), each making 20 connections to a native echo server and moving
 * verified data.  With every connection open and echo data in flight,
 * 10 of them are SIGKILLed: exactly their 200 sockets are released at the
 * backend within 1 s (audit log: the count of release records; echo
 * server: the connections that closed are exactly the victims', by the
 * host-side ports the programs reported), and the other 40 then finish
 * with verified data.
 */
#include "../lib/audit.h"
#include "../lib/echosrv.h"
#include "../lib/hostnet.h"
#include "../lib/runprog.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROGS 50
#define VICTIMS 10
#define CONNS 20
#define CHUNK "16384"
#define RUN_MS 40000
#define RELEASE_MS 1000

struct worker {
    struct rp_child run; /* pvcalls-run, which becomes the worker */
    pid_t pid;           /* conn_worker itself, as it says */
    uint16_t ports[CONNS];
};

static void start_env(struct rp_env *e)
{
    const char *opts[] = { "--keep", NULL };
    const char *prog[] = { "true", NULL };
    rp_assert_exit(rp_shim_run(e, opts, prog, NULL, NULL, RUN_MS), 0,
                   "pvcalls-run --keep true");
}

static void spawn_all(struct rp_env *e, struct worker *w, uint16_t port)
{
    char path[PATH_MAX + 32], port_s[8], conns[8], seed[PROGS][8];
    snprintf(path, sizeof(path), "%s/conn_worker", e->progs);
    snprintf(port_s, sizeof(port_s), "%u", port);
    snprintf(conns, sizeof(conns), "%d", CONNS);
    for (int i = 0; i < PROGS; i++) {
        snprintf(seed[i], sizeof(seed[i]), "%d", i + 1);
        const char *prog[] = { path, port_s, conns, CHUNK, seed[i], NULL };
        /* --attach: no lock, nothing started; pvcalls-run execs the
         * program, so our child (dying with the test) is the worker. */
        const char *opts[] = { "--attach", NULL };
        const char *argv[RP_MAX_ARGS];
        rp_shim_argv(e, true, opts, prog, argv);
        rp_spawn(&w[i].run, argv, NULL, NULL, NULL);
    }
}

/* "ports P1 .. P20" then "ready PID" from each. */
static void read_ready(struct worker *w)
{
    for (int i = 0; i < PROGS; i++) {
        char line[256];
        cr_assert(rp_read_line(&w[i].run, line, sizeof(line), RUN_MS) &&
                      !strncmp(line, "ports ", 6),
                  "worker %d: \"%s\"", i, line);
        char *p = line + 5;
        for (int k = 0; k < CONNS; k++)
            w[i].ports[k] = (uint16_t)strtoul(p, &p, 10);
        cr_assert(w[i].ports[CONNS - 1] != 0, "worker %d ports: %s", i,
                  line);
        cr_assert(rp_read_line(&w[i].run, line, sizeof(line), RUN_MS) &&
                      !strncmp(line, "ready ", 6),
                  "worker %d did not get ready: \"%s\"", i, line);
        w[i].pid = (pid_t)atoi(line + 6);
        cr_assert_eq(w[i].pid, w[i].run.pid, "pvcalls-run --attach execs");
    }
}

static size_t count_releases(struct rp_env *e)
{
    struct audit a;
    cr_assert_eq(audit_load(&a, e->audit), 0);
    size_t n = audit_count(&a, &(struct audit_q){ .cmd = "release",
                                                  .dom = 1 });
    audit_free(&a);
    return n;
}

/* The connections the echo server closed are exactly the victims'. */
static void check_closed_exactly_victims(struct es_server *srv,
                                         struct worker *w)
{
    for (int i = 0; i < PROGS; i++)
        for (int k = 0; k < CONNS; k++) {
            struct es_conn_info info;
            cr_assert(es_conn(srv, w[i].ports[k], &info),
                      "worker %d port %u unknown to the server", i,
                      w[i].ports[k]);
            cr_expect_eq(info.closed, i < VICTIMS,
                         "worker %d (%s) connection %d closed=%d", i,
                         i < VICTIMS ? "killed" : "alive", k, info.closed);
        }
}

static void kill_victims(struct rp_env *e, struct es_server *srv,
                         struct worker *w)
{
    cr_assert_eq(count_releases(e), 0, "releases before any kill");
    int64_t t0 = hn_now_ms();
    for (int i = 0; i < VICTIMS; i++)
        cr_assert_eq(kill(w[i].pid, SIGKILL), 0, "kill %d: %m",
                     (int)w[i].pid);
    struct audit_q releases = { .cmd = "release", .dom = 1 };
    size_t released = audit_wait(e->audit, &releases, VICTIMS * CONNS,
                                 RELEASE_MS);
    int64_t took = hn_now_ms() - t0;
    cr_expect_eq(released, VICTIMS * CONNS,
                 "%zu of %d sockets released within %d ms", released,
                 VICTIMS * CONNS, RELEASE_MS);
    cr_expect(took <= RELEASE_MS, "releases took %lld ms", (long long)took);
    cr_assert(es_wait_closed(srv, VICTIMS * CONNS, RUN_MS),
              "the host saw %zu closes", es_closed_count(srv));
    check_closed_exactly_victims(srv, w);
    /* Nothing else was released meanwhile. */
    cr_expect_eq(count_releases(e), VICTIMS * CONNS);
    for (int i = 0; i < VICTIMS; i++) {
        int status = rp_wait(&w[i].run, RUN_MS);
        cr_expect(status >= 0 && WIFSIGNALED(status) &&
                      WTERMSIG(status) == SIGKILL,
                  "worker %d: wait status %d", i, status);
    }
}

static void finish_survivors(struct worker *w)
{
    for (int i = VICTIMS; i < PROGS; i++)
        cr_assert_eq(kill(w[i].pid, SIGUSR1), 0, "kill %d: %m",
                     (int)w[i].pid);
    for (int i = VICTIMS; i < PROGS; i++) {
        char line[64];
        bool ok = rp_read_line(&w[i].run, line, sizeof(line), RUN_MS);
        cr_expect(ok && !strcmp(line, "ok"), "worker %d: \"%s\"", i, line);
        rp_assert_exit(rp_wait(&w[i].run, RUN_MS), 0, "a surviving worker");
    }
}

static struct worker w[PROGS];

/* A failed test leaves workers waiting for SIGUSR1: kill them, then
 * stop the kept environment.  (No subreaper: the kept daemons would
 * become our unreaped children and look alive to pvcalls-run --stop,
 * see procstat.h.) */
static void fini(void)
{
    for (int i = 0; i < PROGS; i++)
        if (w[i].run.pid > 0)
            kill(w[i].run.pid, SIGKILL);
    rp_cleanup();
}

Test(run_many, fifty_programs_ten_killed, .fini = fini, .timeout = 120)
{
    struct rp_env *e = rp_env_start(true);
    struct es_server *srv = es_start();
    start_env(e);
    spawn_all(e, w, es_port(srv));
    read_ready(w);
    cr_assert(es_wait_accepted(srv, PROGS * CONNS, RUN_MS));
    kill_victims(e, srv, w);
    finish_survivors(w);
    cr_expect(es_wait_closed(srv, PROGS * CONNS, RUN_MS),
              "%zu of %d connections closed", es_closed_count(srv),
              PROGS * CONNS);
    cr_expect(audit_wait_closed(e->audit, 1, RUN_MS),
              "sockets left open in the audit log");
    struct audit a;
    cr_assert_eq(audit_load(&a, e->audit), 0);
    struct audit_q connects = { .cmd = "connect", .dom = 1 };
    cr_expect_eq(audit_count_port(&a, &connects, es_port(srv), true),
                 PROGS * CONNS);
    /* Survivors moved 3 chunks each way per connection. */
    struct audit_q closes = { .event = "close", .dom = 1 };
    cr_expect_geq(audit_count_min(&a, &closes, "bytes_out", 3 * 16384),
                  (PROGS - VICTIMS) * CONNS);
    audit_free(&a);
    es_stop(srv);
    rp_env_stop(e);
}
