/*
 * fd bookkeeping: every way a program creates or drops an fd number for a
 * managed socket or a tracked epoll fd keeps the table in step.  The
 * kernel keeps the token's own reference count (the daemon sees HUP when
 * the last copy anywhere is gone), so here we only map numbers to objects;
 * the table notices an object's last number going (its epoll sets then
 * drop it, fdt_set_closed).
 *
 * An entry is removed before the kernel closes the number: afterwards
 * another thread may already have been given the same number.
 *
 * fdopen() on a managed socket is api_stdio.c's; fclose() removes the
 * entry of any stream's fd.
 *
 * Programs that close every fd (close_range(3, ~0U, 0), closefrom(3), a
 * loop over /proc/self/fd) must not take the shim's own fds with them
 * (fdtable.c, "the shim's own fds"): those are skipped, and a close()
 * of one answers EBADF, as Linux does for an fd the program never had.
 * Managed sockets in the range are closed for real.
 */
#include "shim.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static void forget(int fd)
{
    shim_daemon_fd_closed(fd);
    fdt_remove(fd);
}

int close(int fd)
{
    if (shim_in_shim) {
        /* The shim itself (the platform closing a channel's fds). */
        shim_priv_forget(fd);
        return REAL(close)(fd);
    }
    if (shim_priv_is(fd)) {
        errno = EBADF;
        return -1;
    }
    forget(fd);
    return REAL(close)(fd);
}

/* The table's entries in [first, last] go (the kernel then closes the
 * numbers; the daemon releases a socket whose last holder this was).
 * Private fds have none. */
static void forget_range(unsigned first, unsigned last)
{
    unsigned high = (unsigned)fdt_high_water();
    for (unsigned fd = first; fd < high && fd <= last; fd++)
        fdt_remove((int)fd);
}

static int close_range_common(unsigned first, unsigned last, int flags)
{
    if (shim_in_shim || (flags & CLOSE_RANGE_CLOEXEC) || first > last ||
        (flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC)))
        return (int)syscall(SYS_close_range, first, last, flags);
    forget_range(first, last);
    shim_daemon_range_closed(first, last);
    int err = shim_priv_close_range(first, last, (unsigned)flags);
    if (err) {
        errno = -err;
        return -1;
    }
    return 0;
}

int close_range(unsigned first, unsigned last, int flags)
{
    return close_range_common(first, last, flags);
}

/* Without close_range (kernels before 5.9), what glibc's own fallback
 * does, through our close(): every fd listed in /proc/self/fd, or every
 * number below the fd limit if /proc is not there. */
static void closefrom_slow(int lowfd)
{
    int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) {
        long max = sysconf(_SC_OPEN_MAX);
        for (long fd = lowfd; fd < max && fd <= INT32_MAX; fd++)
            close((int)fd);
        return;
    }
    char buf[4096];
    long n;
    /* As glibc's fallback: closing changes the listing, so a batch that
     * closed anything is followed by a fresh read from the start (our own
     * fds stay, and are not counted). */
    while ((n = syscall(SYS_getdents64, dir, buf, sizeof(buf))) > 0) {
        bool closed = false;
        for (long off = 0; off < n;) {
            struct dirent64 *de = (struct dirent64 *)(buf + off);
            off += de->d_reclen;
            char *end;
            long fd = strtol(de->d_name, &end, 10);
            if (*end || end == de->d_name || fd < lowfd || fd == dir)
                continue;
            closed |= close((int)fd) == 0;
        }
        if (closed)
            lseek(dir, 0, SEEK_SET);
    }
    REAL(close)(dir);
}

void closefrom(int lowfd)
{
    if (lowfd < 0)
        lowfd = 0;
    if (close_range_common((unsigned)lowfd, ~0U, 0) == 0)
        return;
    closefrom_slow(lowfd);
}

/* newfd now names what oldfd names (or nothing of ours): a socket, or an
 * epoll instance (a dup of an epoll fd shares its managed members). */
static void mirror(int oldfd, int newfd)
{
    /* newfd was one of ours: the program asked for that number, and got
     * it (the kernel closed ours); the daemon connection re-opens, other
     * private fds lose their object (shim/README.md). */
    shim_daemon_fd_closed(newfd);
    shim_priv_forget(newfd);
    struct fdt_obj *obj = fdt_get_kind(oldfd, FDT_ANY);
    if (obj) {
        fdt_set(newfd, obj);
        fdt_put(obj);
    } else {
        fdt_remove(newfd);
    }
}

int dup(int fd)
{
    int r = REAL(dup)(fd);
    if (r >= 0 && !shim_in_shim)
        mirror(fd, r);
    return r;
}

int dup2(int oldfd, int newfd)
{
    int r = REAL(dup2)(oldfd, newfd);
    if (r >= 0 && oldfd != newfd && !shim_in_shim)
        mirror(oldfd, newfd);
    return r;
}

int dup3(int oldfd, int newfd, int flags)
{
    int r = REAL(dup3)(oldfd, newfd, flags);
    if (r >= 0 && !shim_in_shim)
        mirror(oldfd, newfd);
    return r;
}

/* Every fcntl argument fits a pointer-sized word; passing it on as one is
 * how glibc's own fcntl reads it. */
static int fcntl_common(int (*real)(int, int, ...), int fd, int cmd,
                        void *arg)
{
    int r = real(fd, cmd, arg);
    if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) &&
        !shim_in_shim)
        mirror(fd, r);
    return r;
}

int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(REAL(fcntl), fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(REAL(fcntl64) ? shim_real.fcntl64 : shim_real.fcntl,
                        fd, cmd, arg);
}

int fclose(FILE *fp)
{
    if (fp && !shim_in_shim) {
        int fd = fileno(fp);
        if (fd >= 0)
            forget(fd);
    }
    return REAL(fclose)(fp);
}
