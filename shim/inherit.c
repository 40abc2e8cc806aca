/*
 * Finding the tokens a process did not get from the daemon (adopt.c makes
 * sockets of them):
 *
 *  - inherited across exec: at load, the fds listed in /proc/self/fd (or,
 *    without /proc, every number below a bound) that are shaped like a
 *    token (an AF_UNIX stream socket whose peer is another process) are
 *    marked pending in the fd table.  That costs a few syscalls per fd
 *    and no daemon connection, so an ordinary program pays nothing worth
 *    counting.  The first time the program uses such an fd, the table
 *    asks us (inherit_resolve): we compare its peer with the daemon's
 *    pid and adopt it, or clear the mark.
 *  - received with SCM_RIGHTS: recvmsg/recvmmsg on an unmanaged socket
 *    with ancillary data pass it here before they return (api_io.c).
 *
 * The load-time scan runs in a constructor, so it uses raw syscalls and
 * no malloc; the adoption itself runs later, in the program's own calls.
 */
#include "shim.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Without /proc: the numbers looked at. */
#define SCAN_BOUND 4096

static pthread_mutex_t resolve_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint resolve_gen;
/* This thread is adopting: lookups it makes meanwhile see no pending. */
static __thread int resolving;

static void mark_if_token_shaped(int fd, pid_t self)
{
    pid_t peer;
    if (shim_token_shaped(fd, &peer) && peer != self)
        fdt_mark_pending(fd);
}

/* The numbers in /proc/self/fd: -1 if it cannot be read. */
static int scan_proc(pid_t self)
{
    int dir = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/fd",
                           O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return -1;
    char buf[4096];
    long n;
    while ((n = syscall(SYS_getdents64, dir, buf, sizeof(buf))) > 0) {
        for (long off = 0; off < n;) {
            struct dirent64 *de = (struct dirent64 *)(buf + off);
            off += de->d_reclen;
            char *end;
            long fd = strtol(de->d_name, &end, 10);
            if (!*end && end != de->d_name && fd != dir && fd >= 0 &&
                fd <= INT32_MAX)
                mark_if_token_shaped((int)fd, self);
        }
    }
    syscall(SYS_close, dir);
    return 0;
}

static void scan_bounded(pid_t self)
{
    struct rlimit rl;
    int bound = SCAN_BOUND;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < SCAN_BOUND)
        bound = (int)rl.rlim_cur;
    for (int fd = 0; fd < bound; fd++)
        if (syscall(SYS_fcntl, fd, F_GETFD) >= 0)
            mark_if_token_shaped(fd, self);
}

static void reset_lock(void *unused)
{
    (void)unused;
    pthread_mutex_init(&resolve_lock, NULL);
}

/* Adopt fd into the table if it is a token of our daemon: one at a time
 * (two threads may touch one inherited fd at once), with signals blocked
 * (a handler using the same fd must not find the lock held, and the
 * daemon's answer must not be lost to EINTR).  pending: only if the slot
 * is still marked (else someone settled it meanwhile); a slot that is no
 * token is cleared (pending mark, or what a number closed behind our
 * back left).  Returns whether fd is now a managed socket. */
static bool adopt_into_table(int fd, bool pending)
{
    if (resolving)
        return false;
    int saved_errno = errno;
    resolving = 1;
    sigset_t saved;
    shim_sigblock_hard(&saved); /* a daemon round trip: no EINTR in it */
    shim_refork(&resolve_gen, reset_lock, NULL);
    pthread_mutex_lock(&resolve_lock);
    bool adopted = false;
    if (!pending || fdt_is_pending(fd)) {
        pid_t daemon, peer;
        struct shim_sock *s = NULL;
        if (shim_token_shaped(fd, &peer) &&
            shim_daemon_pid(&daemon, true) == 0 && peer == daemon)
            s = shim_adopt(fd, daemon);
        if (s) {
            adopted = fdt_set(fd, &s->head) == 0;
            shim_sock_put(s);
        } else if (pending) {
            fdt_clear_pending(fd);
        } else {
            fdt_remove(fd);
        }
    }
    pthread_mutex_unlock(&resolve_lock);
    shim_sigrestore(&saved);
    resolving = 0;
    errno = saved_errno;
    return adopted;
}

/* The table found a pending slot. */
static void inherit_resolve(int fd)
{
    adopt_into_table(fd, true);
}

__attribute__((constructor)) static void inherit_scan_at_load(void)
{
    int saved = errno;
    fdt_set_pending_resolver(inherit_resolve);
    pid_t self = getpid();
    if (scan_proc(self) < 0)
        scan_bounded(self);
    errno = saved;
}

/* Every fd a message brought is a new file to this process: a token is
 * adopted now, and an entry left under the number by an fd closed behind
 * our back (a raw syscall) goes. */
void shim_inherit_cmsg(struct msghdr *m)
{
    int saved = errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
            c->cmsg_len < CMSG_LEN(0))
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            adopt_into_table(fd, false);
        }
    }
    errno = saved;
}
