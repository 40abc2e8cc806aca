/*
 * pvcalls-frontd: the PV Calls guest daemon (see frontd/frontd.h and
 * include/pvc/frontd_proto.h).
 *
 * One thread, one epoll loop: SIGTERM/SIGINT through a signalfd, the
 * xenstore watch, the command channel, the listening socket, each client
 * connection, each socket's token (and, while it drains, its channel).
 * Idle, it sleeps in epoll_wait; the only timeout is the nearest drain
 * deadline.
 */
#include "frontd.h"

#include "pvc/daemon.h"
#include "pvc/log.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

int64_t frontd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_signal(void *ctx, uint32_t events)
{
    struct frontd *d = ctx;
    struct signalfd_siginfo si;
    (void)events;
    while (read(d->sig_fd, &si, sizeof(si)) == sizeof(si)) {
        pvc_info("signal %u: shutting down", si.ssi_signo);
        d->stop = true;
    }
}

static int frontd_start(struct frontd *d)
{
    struct pvc_platform_opts popts = {
        .kind = d->cfg.platform,
        .sim_domid = d->cfg.domid,
        .sim_dir = d->cfg.sim_dir,
    };
    d->loop = pvc_loop_new();
    if (!d->loop || pvc_daemon_signals(d->loop, &d->sig_watch, &d->sig_fd, on_signal, d) < 0) {
        pvc_err("event loop: %s", strerror(errno));
        return -1;
    }
    d->plat = pvc_platform_open(&popts);
    if (!d->plat) {
        pvc_err("platform: %s", strerror(errno));
        return -1;
    }
    pvc_info("platform: %s, because %s", pvc_platform_name(d->plat),
             pvc_platform_why(d->plat));
    if (pvc_platform_kind(d->plat) == PVC_PLATFORM_XEN) {
        frontd_raise_grant_limit(d->cfg.grant_limit);
        d->grant_budget = d->cfg.grant_limit ? d->cfg.grant_limit
                                             : FRONTD_DEFAULT_GRANT_LIMIT;
    } else {
        d->grant_budget = FRONTD_SIM_GRANT_BUDGET;
    }
    if (frontd_backend_start(d) < 0) {
        pvc_err("connecting %s: %s", d->cfg.device, strerror(errno));
        return -1;
    }
    if (clients_listen(d) < 0) {
        pvc_err("listening on %s: %s", d->cfg.sock_path, strerror(errno));
        return -1;
    }
    pvc_info("serving on %s (%s platform, domain %u)", d->cfg.sock_path,
             pvc_platform_name(d->plat), pvc_platform_domid(d->plat));
    return 0;
}

static void frontd_stop(struct frontd *d)
{
    d->stop = true;
    if (d->loop) {
        clients_close_all(d);
        socks_close_all(d);
    }
    frontd_backend_stop(d);
    /* Sockets whose commands were in flight: finished by now. */
    socks_close_all(d);
    pool_flush(d);
    pvc_loop_free(d->loop); /* runs the deferred frees */
    if (d->sig_fd >= 0)
        close(d->sig_fd);
    if (d->plat)
        pvc_platform_close(d->plat);
}

int main(int argc, char **argv)
{
    struct frontd d = { .sig_fd = -1, .listen_fd = -1 };
    char err[200];
    int rc = frontd_parse_args(argc, argv, &d.cfg, err, sizeof(err));
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "%s: %s\n", argv[0], err);
        return rc < 0 ? 2 : 0;
    }
    pvc_daemon_raise_fd_limit();
    int status = 0;
    if (frontd_start(&d) < 0) {
        status = 1;
    } else {
        pvc_daemon_ready(d.cfg.ready_fd);
        while (!d.stop) {
            if (pvc_loop_run_once(d.loop, socks_next_timeout(&d)) < 0) {
                pvc_err("epoll: %s", strerror(errno));
                status = 1;
                break;
            }
            socks_expire(&d);
            pool_refill(&d);
        }
    }
    frontd_stop(&d);
    return status;
}
