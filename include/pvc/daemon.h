/* What every daemon of the project does the same way at start-up. */
#ifndef PVC_DAEMON_H
#define PVC_DAEMON_H

#include "pvc/loop.h"

/* SIGTERM and SIGINT become loop events on a signalfd (*sig_fd, watched by
 * w, calling fn(ctx)); SIGPIPE is ignored (sends to dead peers are errors,
 * never deaths).  0, or -1 with errno. */
int pvc_daemon_signals(struct pvc_loop *loop, struct pvc_watch *w,
                       int *sig_fd, pvc_loop_fn fn, void *ctx);
/* Daemons hold several fds per socket: take all the hard limit allows. */
void pvc_daemon_raise_fd_limit(void);
/* --ready-fd: tell whoever started us that we serve now ("ready\n"), then
 * close the fd.  Nothing for fd < 0. */
void pvc_daemon_ready(int fd);

#endif
