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
 */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdarg.h>
#include <unistd.h>

static void forget(int fd)
{
    shim_daemon_fd_closed(fd);
    fdt_remove(fd);
}

int close(int fd)
{
    if (!shim_in_shim)
        forget(fd);
    return REAL(close)(fd);
}

int close_range(unsigned first, unsigned last, int flags)
{
    if (!REAL(close_range)) {
        errno = ENOSYS;
        return -1;
    }
    if (shim_in_shim || (flags & CLOSE_RANGE_CLOEXEC) || first > last)
        return REAL(close_range)(first, last, flags);
    unsigned cap = (unsigned)fdt_capacity();
    unsigned end = last < cap ? last : (cap ? cap - 1 : 0);
    for (unsigned fd = first; cap && fd <= end && fd <= INT32_MAX; fd++)
        forget((int)fd);
    /* Our daemon connections live outside the table. */
    for (unsigned fd = first; !cap && fd <= last && fd < 65536; fd++)
        shim_daemon_fd_closed((int)fd);
    return REAL(close_range)(first, last, flags);
}

/* newfd now names what oldfd names (or nothing of ours): a socket, or an
 * epoll instance (a dup of an epoll fd shares its managed members). */
static void mirror(int oldfd, int newfd)
{
    shim_daemon_fd_closed(newfd);
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
