/*
 * Programs that confine themselves with seccomp: sshd's pre-auth child
 * (forked after the connection arrived, so it holds a managed socket)
 * lowers RLIMIT_NOFILE to 1 and installs a filter that allows little more
 * than read, write, ppoll, futex, mmap and clock_gettime, and kills the
 * process for anything else.  The shim's data path normally also makes
 * fcntl (O_NONBLOCK), process_vm_readv/writev (user copies), eventfd (a
 * thread's wake fd) and tgkill (SIGPIPE) calls, and waits on two fds.
 *
 * So prctl(PR_SET_SECCOMP) is interposed: just before the filter goes in,
 * the O_NONBLOCK of every managed socket is noted (nobody can change it
 * afterwards: fcntl is forbidden to the program too), copies switch to
 * memcpy, and from then on waits go without a wake fd (one fd per wait:
 * fine for the single-threaded programs that do this), and EPIPE raises
 * no SIGPIPE.  Calls that need the daemon (connect, accept, options) are
 * beyond such a sandbox anyway.  A filter installed by a raw seccomp(2)
 * syscall is not seen.
 */
#include "shim.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <stdarg.h>
#include <sys/prctl.h>

static void note_nonblock(void)
{
    int high = fdt_high_water();
    for (int fd = 0; fd < high; fd++) {
        struct shim_sock *s = shim_sock_get(fd);
        if (!s)
            continue;
        int fl = REAL(fcntl)(fd, F_GETFL);
        atomic_store(&s->nonblock_snap, fl >= 0 && (fl & O_NONBLOCK));
        shim_sock_put(s);
    }
}

int prctl(int option, ...)
{
    va_list ap;
    va_start(ap, option);
    unsigned long a2 = va_arg(ap, unsigned long);
    unsigned long a3 = va_arg(ap, unsigned long);
    unsigned long a4 = va_arg(ap, unsigned long);
    unsigned long a5 = va_arg(ap, unsigned long);
    va_end(ap);
    if (option == PR_SET_SECCOMP && !shim_in_shim &&
        (a2 == SECCOMP_MODE_FILTER || a2 == SECCOMP_MODE_STRICT) &&
        !atomic_load(&shim_sandboxed)) {
        note_nonblock();
        shim_uaccess_memcpy_only();
        atomic_store(&shim_sandboxed, 1);
        int r = REAL(prctl)(option, a2, a3, a4, a5);
        if (r < 0) {
            int err = errno;
            atomic_store(&shim_sandboxed, 0); /* (copies stay memcpy) */
            errno = err;
            return r;
        }
        /* (No log line here: such programs often forbid writes to
         * files too, RLIMIT_FSIZE 0, and stderr may be one.) */
        return r;
    }
    return REAL(prctl)(option, a2, a3, a4, a5);
}
