/* Daemon start-up shared by pvcalls-simd, -backd and -frontd. */
#include "pvc/daemon.h"
#include "pvc/log.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

int pvc_daemon_signals(struct pvc_loop *loop, struct pvc_watch *w,
                       int *sig_fd, pvc_loop_fn fn, void *ctx)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    *sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (*sig_fd < 0)
        return -1;
    return pvc_loop_add(loop, w, *sig_fd, EPOLLIN, fn, ctx);
}

void pvc_daemon_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

void pvc_daemon_ready(int fd)
{
    if (fd < 0)
        return;
    static const char msg[] = "ready\n";
    if (write(fd, msg, sizeof(msg) - 1) != (ssize_t)sizeof(msg) - 1)
        pvc_warn("--ready-fd %d: %s", fd, strerror(errno));
    close(fd);
}
