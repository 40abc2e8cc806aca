/*
 * stdio on managed sockets.
 *
 * fdopen(): glibc's FILE reads and writes through its internal
 * __read/__write, which no preload can see, so a FILE made by libc's
 * fdopen() on a managed socket would read the token (which never carries
 * data) and hang.  For a managed fd we build the FILE with fopencookie()
 * instead, whose callbacks go through this library's read/write/close,
 * and set its file number so that fileno() answers as for any fdopen()ed
 * stream.
 *
 * (epoll on managed sockets is epoll*.c's.)
 */
#include "shim.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static ssize_t cookie_read(void *cookie, char *buf, size_t size)
{
    return read((int)(intptr_t)cookie, buf, size);
}

static ssize_t cookie_write(void *cookie, const char *buf, size_t size)
{
    /* A short count makes stdio flag an error; a blocking socket write
     * returns short only with an error pending, which the retry reports. */
    size_t done = 0;
    while (done < size) {
        ssize_t n = write((int)(intptr_t)cookie, buf + done, size - done);
        if (n < 0)
            return done ? (ssize_t)done : -1;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

static int cookie_close(void *cookie)
{
    return close((int)(intptr_t)cookie);
}

/* The access modes fdopen() accepts, as glibc parses them. */
static int mode_valid(const char *mode)
{
    return mode && (mode[0] == 'r' || mode[0] == 'w' || mode[0] == 'a');
}

FILE *fdopen(int fd, const char *mode)
{
    if (shim_in_shim || !fdt_has(fd))
        return REAL(fdopen)(fd, mode);
    if (!mode_valid(mode)) {
        errno = EINVAL;
        return NULL;
    }
    cookie_io_functions_t io = {
        .read = cookie_read,
        .write = cookie_write,
        .seek = NULL, /* a socket does not seek: ESPIPE, as natively */
        .close = cookie_close,
    };
    FILE *fp = fopencookie((void *)(intptr_t)fd, mode, io);
    if (fp) {
        fp->_fileno = fd;
        shim_log("fdopen(%d): stdio carried over PV Calls", fd);
    }
    return fp;
}
