/* Debian's redis-server in end-to-end tests: see redis.h. */
#include "redis.h"

#include "hostnet.h"
#include "procstat.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define START_MS 20000
#define RUN_MS 30000

void redis_start(struct redis_srv *r, struct rp_env *e, bool shim)
{
    memset(r, 0, sizeof(*r));
    r->e = e;
    r->shim = shim;
    snprintf(r->port, sizeof(r->port), "%u", hn_closed_port(AF_INET));
    char name[32];
    snprintf(name, sizeof(name), "redis-%s.pid", r->port);
    rp_path(e, name, r->pid_file, sizeof(r->pid_file));
    const char *prog[] = { "/usr/bin/redis-server", "--port", r->port,
                           "--bind", "127.0.0.1", "--save", "",
                           "--appendonly", "no", "--dir", e->dir,
                           "--pidfile", r->pid_file, NULL };
    const char *argv[RP_MAX_ARGS];
    if (shim)
        rp_shim_argv(e, true, NULL, prog, argv);
    rp_spawn(&r->run, shim ? argv : prog, NULL, NULL, NULL);
    /* Its log goes to stdout; the line comes after listen().  Keep the
     * first error it logs, to say why it did not start. */
    char line[512], why[512] = "";
    bool ok;
    while ((ok = rp_read_line(&r->run, line, sizeof(line), START_MS)) &&
           !strstr(line, "Ready to accept connections"))
        if (!why[0] && strcasestr(line, "error"))
            snprintf(why, sizeof(why), "%s", line);
    cr_assert(ok, "redis-server did not become ready: %s",
              why[0] ? why : "no error logged");
}

pid_t redis_pid(const struct redis_srv *r)
{
    pid_t pid = ps_read_pidfile(r->pid_file);
    cr_assert(pid > 0, "no pid in %s", r->pid_file);
    return pid;
}

void redis_stop(struct redis_srv *r)
{
    rp_signal(&r->run, SIGTERM);
    rp_assert_exit(rp_wait(&r->run, RUN_MS), 0,
                   r->shim ? "redis-server under pvcalls-run, on SIGTERM"
                           : "redis-server on SIGTERM");
}

void redis_cli(struct redis_srv *r, bool shim, const char *const args[],
               const char *in_path, const char *out_path)
{
    const char *prog[RP_MAX_ARGS] = { "/usr/bin/redis-cli", "-h",
                                      "127.0.0.1", "-p", r->port };
    size_t n = 5;
    for (size_t i = 0; args[i]; i++) {
        /* Room left for pvcalls-run's own arguments in front. */
        cr_assert(n < RP_MAX_ARGS / 2, "too many redis-cli arguments");
        prog[n++] = args[i];
    }
    prog[n] = NULL;
    int status = shim ? rp_shim_run(r->e, NULL, prog, in_path, out_path,
                                    RUN_MS)
                      : rp_run(prog, in_path, out_path, RUN_MS);
    rp_assert_exit(status, 0, shim ? "redis-cli under the shim"
                                   : "redis-cli");
}
