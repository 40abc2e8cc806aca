/*
 * Idle servers under the shim use no CPU (issue 6; "never busy-poll").
 * nginx (master + 2 workers) and redis-server run under pvcalls-run
 * --isolate, each holding 100 idle client connections (tests/progs/
 * idle_conns, native: it connects and waits, sending nothing), next to
 * the same server run natively with its own 100 idle connections.  Over
 * one 10 s window for both:
 *
 *  - the daemons (pvcalls-backd, pvcalls-frontd and the simulated
 *    platform's pvcalls-simd) use at most 2 clock ticks in all
 *    (utime + stime from /proc/PID/stat);
 *  - the server's processes under the shim use at most 2 ticks' worth
 *    (20 ms) more CPU than the same server natively.
 *
 * Why these bounds.  The daemons have no timers: idle, they do not run
 * at all, and their counters, which only move with real CPU time, stay
 * put; 2 ticks (20 ms in 10 s, 0.2% of a core) leave room for a stray
 * wake-up and nothing more (a spinning thread costs 1000 ticks, a 1 ms
 * timer-driven re-poll 10,000 wake-ups).  A server is not always at zero
 * by itself: redis-server's serverCron runs 10 times a second, about
 * 30 ms per 10 s here (nginx: 0), the program's own work, to which the
 * shim should add only the cost of carrying those ~100 epoll_wait calls
 * (measured: within a few ms of native).  So the server is compared
 * with itself run natively in the same window, by the scheduler's exact
 * run time (/proc/PID/task/TID/schedstat): utime and stime are each
 * truncated to whole ticks, which makes two identical redis-servers
 * differ by up to 2 ticks (seen here) and a tick bound on them flaky.
 *
 * Before and after the window each server counts its clients (nginx's
 * stub_status, redis's INFO clients, asked on a connection that queues
 * behind the 100: so they have all been accepted), and the window starts
 * once the daemons are done with that query's socket (its close record).
 */
#include "../lib/audit.h"
#include "../lib/hostnet.h"
#include "../lib/nginx.h"
#include "../lib/procstat.h"
#include "../lib/redis.h"
#include "../lib/runprog.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#define CONNS 100
#define WINDOW_S 10
#define BOUND_TICKS 2
/* One clock tick (USER_HZ is 100 on Linux). */
#define TICK_NS 10000000ll
#define RUN_MS 20000
#define MAX_PIDS 16
#define AUDIT_MS 10000

/* ---- CPU time of a set of processes ------------------------------- */

struct cpu_set {
    const char *what;
    pid_t pids[MAX_PIDS];
    long long ticks[MAX_PIDS]; /* utime + stime at the window's start */
    long long ns[MAX_PIDS];    /* exact run time at the window's start */
    size_t n;
};

/* What a set used over the window. */
struct cpu_used {
    long long ticks;
    long long ns;
};

static void cpu_add(struct cpu_set *s, pid_t pid)
{
    cr_assert(pid > 0 && s->n < MAX_PIDS, "%s: bad pid %d", s->what,
              (int)pid);
    s->pids[s->n++] = pid;
}

static void cpu_start(struct cpu_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        s->ticks[i] = ps_cpu_ticks(s->pids[i]);
        s->ns[i] = ps_cpu_ns(s->pids[i]);
        cr_assert(s->ticks[i] >= 0 && s->ns[i] >= 0, "%s: pid %d is gone",
                  s->what, (int)s->pids[i]);
    }
}

/* What the set used since cpu_start, summed (each process logged, to
 * say who used it); asserts that all still run. */
static struct cpu_used cpu_end(const struct cpu_set *s)
{
    struct cpu_used sum = { 0, 0 };
    for (size_t i = 0; i < s->n; i++) {
        long long now_ticks = ps_cpu_ticks(s->pids[i]);
        long long now_ns = ps_cpu_ns(s->pids[i]);
        cr_assert(now_ticks >= 0 && now_ns >= 0, "%s: pid %d died in the "
                  "window", s->what, (int)s->pids[i]);
        long long ticks = now_ticks - s->ticks[i], ns = now_ns - s->ns[i];
        char comm[32];
        cr_log_info("%s: %s (pid %d): %lld ticks, %lld us", s->what,
                    ps_comm(s->pids[i], comm, sizeof(comm)),
                    (int)s->pids[i], ticks, ns / 1000);
        sum.ticks += ticks;
        sum.ns += ns;
    }
    return sum;
}

/* The daemons pvcalls-run started, from their pid files. */
static void add_daemons(struct cpu_set *s, const struct rp_env *e)
{
    static const char *const names[] = { "backd", "frontd-1", "simd" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[160];
        snprintf(path, sizeof(path), "%s/run/%s.pid", e->sim_dir, names[i]);
        cpu_add(s, ps_read_pidfile(path));
    }
}

/* ---- idle clients ------------------------------------------------------ */

/* idle_conns PORT 100, native; returns once all are connected. */
static void hold(struct rp_env *e, const char *port, struct rp_child *c)
{
    char prog_path[PATH_MAX + 32], n[8];
    snprintf(prog_path, sizeof(prog_path), "%s/idle_conns", e->progs);
    snprintf(n, sizeof(n), "%d", CONNS);
    const char *prog[] = { prog_path, port, n, NULL };
    rp_spawn(c, prog, NULL, NULL, NULL);
    char line[64];
    cr_assert(rp_read_line(c, line, sizeof(line), RUN_MS) &&
                  !strcmp(line, "ready"),
              "idle_conns to port %s: \"%s\"", port, line);
}

static void release(struct rp_child *c)
{
    rp_signal(c, SIGKILL);
    rp_wait(c, RUN_MS);
}

/* The backend accepted the shim server's CONNS connections. */
static void check_accepts(const struct rp_env *e)
{
    struct audit_q accept = { .cmd = "accept", .dom = 1 };
    struct audit a;
    cr_assert_eq(audit_load(&a, e->audit), 0);
    size_t n = audit_count_min(&a, &accept, "ret", 0);
    cr_expect_geq(n, CONNS, "%zu accepts in the audit log", n);
    audit_free(&a);
}

/* ---- the window ------------------------------------------------------ */

/* Measure the three sets over one window; assert the bounds. */
static void measure(struct cpu_set *native, struct cpu_set *shim,
                    struct cpu_set *daemons)
{
    cpu_start(native);
    cpu_start(shim);
    cpu_start(daemons);
    /* A measuring window, not a wait for an event. */
    struct timespec window = { .tv_sec = WINDOW_S };
    while (nanosleep(&window, &window) < 0)
        ;
    struct cpu_used base = cpu_end(native), used = cpu_end(shim);
    struct cpu_used idle = cpu_end(daemons);
    cr_expect_leq(idle.ticks, BOUND_TICKS,
                  "the daemons used %lld ticks in %d s (bound: %d)",
                  idle.ticks, WINDOW_S, BOUND_TICKS);
    cr_expect_leq(used.ns, base.ns + BOUND_TICKS * TICK_NS,
                  "%s used %lld us under the shim, %lld us natively, in "
                  "%d s (bound: +%lld us)", shim->what, used.ns / 1000,
                  base.ns / 1000, WINDOW_S, BOUND_TICKS * TICK_NS / 1000);
    cr_log_info("%s: %lld ticks; natively %lld; daemons %lld", shim->what,
                used.ticks, base.ticks, idle.ticks);
}

/* The master and its workers. */
static void add_nginx(struct cpu_set *s, const struct ngx_srv *n)
{
    pid_t workers[NGX_WORKERS + 1];
    size_t count = ngx_workers(n, workers, NGX_WORKERS + 1);
    cr_assert_eq(count, NGX_WORKERS, "%s: %zu workers", s->what, count);
    cpu_add(s, n->master);
    for (size_t i = 0; i < count; i++)
        cpu_add(s, workers[i]);
}

/* nginx's stub_status: "Active connections: N" (N counts this request
 * too), fetched natively. */
static long long nginx_active(void *server)
{
    struct ngx_srv *n = server;
    char url[96], out[160];
    ngx_url(n, "status", url, sizeof(url));
    rp_path(n->e, n->shim ? "status.shim" : "status.native", out,
            sizeof(out));
    const char *curl[] = { "curl", "-sS", "--fail", "-o", out, url, NULL };
    rp_assert_exit(rp_run(curl, NULL, NULL, RUN_MS), 0, "curl /status");
    char *text = rp_slurp(out);
    long long active = -1;
    sscanf(text, "Active connections: %lld", &active);
    free(text);
    return active;
}

/* How many clients a server counts, asked natively on a connection of
 * its own (counted too). */
typedef long long (*clients_fn)(void *server);

/* A server's count once it has accepted everything queued: nginx's two
 * workers accept independently, so the query may be counted before the
 * last idle connections are.  Asked again for up to 5 s (each query is a
 * fresh connection, released at once), then whatever it says. */
static long long count_settled(clients_fn count, void *server)
{
    long long n = count(server);
    for (int i = 0; i < 50 && n < CONNS + 1; i++) {
        usleep(100 * 1000);
        n = count(server);
    }
    return n;
}

/* Both servers hold all CONNS idle connections: each answers a query on
 * a new connection, which queues behind them (servers accept in order),
 * with a count that includes them.  Before the window (`before`), wait
 * until the shim's query socket is released as well, so that the window
 * starts with the daemons idle; fail at once if a count is short. */
static void check_held(struct rp_env *e, clients_fn count, void *native,
                       void *shim, const char *what, bool before)
{
    struct audit_q closes = { .event = "close", .dom = 1 };
    struct audit a;
    cr_assert_eq(audit_load(&a, e->audit), 0);
    size_t closed = audit_count(&a, &closes);
    audit_free(&a);
    long long held_shim = count_settled(count, shim),
              held_native = count_settled(count, native);
    cr_expect_geq(held_shim, CONNS + 1, "%s under the shim has %lld clients "
                  "%s the window", what, held_shim, before ? "before" : "after");
    cr_expect_geq(held_native, CONNS + 1, "%s has %lld clients %s the window",
                  what, held_native, before ? "before" : "after");
    cr_assert(!before || (held_shim > CONNS && held_native > CONNS));
    if (before)
        cr_assert_geq(audit_wait(e->audit, &closes, closed + 1, AUDIT_MS),
                      closed + 1, "the query's socket was not released");
}

Test(run_idle, nginx, .fini = ps_test_fini, .timeout = 90)
{
    ps_adopt_orphans();
    struct rp_env *e = rp_env_start(true);
    struct ngx_srv native, shim;
    ngx_setup(&native, e, "nginx-native");
    ngx_setup(&shim, e, "nginx-shim");
    ngx_start(&native, false);
    ngx_start(&shim, true);
    struct rp_child hold_native, hold_shim;
    hold(e, native.port, &hold_native);
    hold(e, shim.port, &hold_shim);
    struct cpu_set base = { .what = "nginx natively" },
                   used = { .what = "nginx under the shim" },
                   daemons = { .what = "daemons" };
    add_nginx(&base, &native);
    add_nginx(&used, &shim);
    add_daemons(&daemons, e);
    check_held(e, nginx_active, &native, &shim, "nginx", true);
    measure(&base, &used, &daemons);
    check_held(e, nginx_active, &native, &shim, "nginx", false);
    check_accepts(e);
    release(&hold_native);
    release(&hold_shim);
    ngx_stop(&shim);
    ngx_stop(&native);
    rp_env_stop(e);
}

/* redis's INFO clients: connected_clients (this redis-cli included). */
static long long redis_clients(void *server)
{
    struct redis_srv *r = server;
    char out[160];
    rp_path(r->e, r->shim ? "info.shim" : "info.native", out, sizeof(out));
    const char *args[] = { "INFO", "clients", NULL };
    redis_cli(r, false, args, NULL, out);
    char *text = rp_slurp(out);
    const char *p = strstr(text, "connected_clients:");
    long long n = p ? strtoll(p + strlen("connected_clients:"), NULL, 10)
                    : -1;
    free(text);
    return n;
}

Test(run_idle, redis, .fini = ps_test_fini, .timeout = 90)
{
    ps_adopt_orphans();
    struct rp_env *e = rp_env_start(true);
    struct redis_srv native, shim;
    redis_start(&native, e, false);
    redis_start(&shim, e, true);
    struct rp_child hold_native, hold_shim;
    hold(e, native.port, &hold_native);
    hold(e, shim.port, &hold_shim);
    struct cpu_set base = { .what = "redis-server natively" },
                   used = { .what = "redis-server under the shim" },
                   daemons = { .what = "daemons" };
    cpu_add(&base, redis_pid(&native));
    cpu_add(&used, redis_pid(&shim));
    add_daemons(&daemons, e);
    check_held(e, redis_clients, &native, &shim, "redis-server", true);
    measure(&base, &used, &daemons);
    check_held(e, redis_clients, &native, &shim, "redis-server", false);
    check_accepts(e);
    release(&hold_native);
    release(&hold_shim);
    redis_stop(&shim);
    redis_stop(&native);
    rp_env_stop(e);
}
