/*
 * pvcalls-backd: a userspace PV Calls backend (docs/backend.md).
 *
 * One thread, one epoll loop: the xenbus watch, SIGTERM/SIGINT through a
 * signalfd, each device's command channel, and each socket's event
 * channel and host socket.  Idle, it sleeps in epoll_wait.
 */
#include "backd.h"

#include "audit.h"
#include "policy.h"
#include "pvc/ext.h"
#include "pvc/daemon.h"
#include "pvc/log.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <xenstore.h>

static void on_signal(void *ctx, uint32_t events)
{
    struct backd *bd = ctx;
    struct signalfd_siginfo si;
    (void)events;
    while (read(bd->sig_fd, &si, sizeof(si)) == sizeof(si)) {
        pvc_info("signal %u: shutting down", si.ssi_signo);
        bd->stop = true;
    }
}

static void on_xenbus(void *ctx, uint32_t events)
{
    struct backd *bd = ctx;
    (void)events;
    pvc_xb_back_process(bd->xb);
}

static int backd_start(struct backd *bd)
{
    struct pvc_platform_opts popts = {
        .kind = bd->cfg.platform,
        .sim_domid = 0, /* the backend is domain 0 in simulation */
        .sim_dir = bd->cfg.sim_dir,
    };
    if (backd_policy_load(bd) < 0)
        return -1;
    if (bd->cfg.audit_path) {
        bd->audit = audit_open(bd->cfg.audit_path);
        if (!bd->audit) {
            pvc_err("--audit %s: %s", bd->cfg.audit_path, strerror(errno));
            return -1;
        }
    }
    bd->loop = pvc_loop_new();
    if (!bd->loop || pvc_daemon_signals(bd->loop, &bd->sig_watch, &bd->sig_fd, on_signal, bd) < 0) {
        pvc_err("event loop: %s", strerror(errno));
        return -1;
    }
    bd->plat = pvc_platform_open(&popts);
    if (!bd->plat) {
        pvc_err("platform: %s", strerror(errno));
        return -1;
    }
    pvc_info("platform: %s, because %s", pvc_platform_name(bd->plat),
             pvc_platform_why(bd->plat));
    bd->xs = pvc_store_open(bd->plat);
    if (!bd->xs) {
        pvc_err("xenstore: %s", strerror(errno));
        return -1;
    }
    struct pvc_xb_back_cfg xcfg = {
        .max_page_order = bd->cfg.max_page_order,
        .ext_offered = bd->cfg.ext,
    };
    bd->xb = pvc_xb_back_new(bd->plat, bd->xs, &xcfg, &backd_xb_ops, bd);
    if (!bd->xb) {
        pvc_err("xenbus: %s", strerror(errno));
        return -1;
    }
    if (pvc_loop_add(bd->loop, &bd->xb_watch, pvc_xb_back_fd(bd->xb),
                     EPOLLIN, on_xenbus, bd) < 0) {
        pvc_err("xenbus watch: %s", strerror(errno));
        return -1;
    }
    char ext[128];
    pvc_info("serving on the %s platform as domain %u (max-page-order %u, "
             "max-sockets %u, extensions \"%s\")",
             pvc_platform_name(bd->plat), pvc_platform_domid(bd->plat),
             bd->cfg.max_page_order, bd->cfg.max_sockets,
             pvc_ext_format(bd->cfg.ext, ext, sizeof(ext)));
    return 0;
}

/* Everything back to Closed, every socket closed, everything freed. */
static void backd_stop(struct backd *bd)
{
    if (bd->xb) {
        pvc_loop_del(bd->loop, &bd->xb_watch);
        pvc_xb_back_free(bd->xb); /* disconnects every device */
    }
    if (bd->xs)
        xs_close(bd->xs);
    pvc_loop_free(bd->loop); /* runs the deferred frees */
    if (bd->sig_fd >= 0)
        close(bd->sig_fd);
    if (bd->plat)
        pvc_platform_close(bd->plat);
    audit_close(bd->audit);
    policy_free(bd->policy);
}

int main(int argc, char **argv)
{
    struct backd bd = { .sig_fd = -1 };
    char err[160];
    int rc = backd_parse_args(argc, argv, &bd.cfg, err, sizeof(err));
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "%s: %s\n", argv[0], err);
        return rc < 0 ? 2 : 0;
    }
    pvc_daemon_raise_fd_limit();
    int status = 0;
    if (backd_start(&bd) < 0) {
        status = 1;
    } else {
        pvc_daemon_ready(bd.cfg.ready_fd);
        while (!bd.stop) {
            if (pvc_loop_run_once(bd.loop, -1) < 0) {
                pvc_err("epoll: %s", strerror(errno));
                status = 1;
                break;
            }
        }
    }
    backd_stop(&bd);
    return status;
}
