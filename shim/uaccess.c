/*
 * Copies between the shim's memory (ring pages, our stack) and memory the
 * application named.  A native socket call given a bad pointer returns
 * EFAULT (or a short count), and the shim must too instead of crashing
 * inside memcpy.  We let the kernel do the copy: process_vm_readv/writev
 * on our own pid copies with the kernel's fault handling, stops at the
 * first bad page and reports what it copied, at memcpy speed for the big
 * copies of the data path (one syscall per ring segment pair, next to the
 * notify syscall each call makes anyway).  Where a seccomp policy forbids
 * those syscalls (EPERM/ENOSYS) we fall back to a plain memcpy: then a bad
 * pointer crashes as it would in any library call.
 */
#include "shim.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static atomic_int vm_broken; /* process_vm_* refused: use memcpy */

/* Our pid for process_vm_*: getpid() is a syscall, and one per copy was
 * a seventh of the syscalls of a round trip.  Written only at load (a
 * constructor: the loading process itself, before main, so never a vfork
 * child) and by the atfork child handler.  A vfork child (sharing our
 * memory) therefore names its parent, whose memory it is.  Processes made
 * without fork's handlers (raw clone, _Fork) are not supported by the shim
 * anyway (they would share the parent's daemon connections); should the
 * cached pid not name a process, the copy asks getpid(). */
static atomic_int self_pid;

__attribute__((constructor)) static void self_pid_init(void)
{
    atomic_store(&self_pid, (int)getpid());
}

void shim_uaccess_fork_child(void)
{
    atomic_store(&self_pid, (int)getpid());
}

static ssize_t vm_rw(pid_t pid, struct iovec *local, struct iovec *remote,
                     bool to_user)
{
    return to_user ? process_vm_writev(pid, local, 1, remote, 1, 0)
                   : process_vm_readv(pid, local, 1, remote, 1, 0);
}

static ssize_t vm_rw_self(struct iovec *local, struct iovec *remote,
                          bool to_user)
{
    pid_t pid = (pid_t)atomic_load_explicit(&self_pid, memory_order_relaxed);
    if (pid <= 0)
        return vm_rw(getpid(), local, remote, to_user);
    ssize_t n = vm_rw(pid, local, remote, to_user);
    if (n < 0 && errno == ESRCH)
        n = vm_rw(getpid(), local, remote, to_user);
    return n;
}

static ssize_t vm_copy(void *dst, const void *src, size_t len, bool to_user)
{
    if (len == 0)
        return 0;
    if (!atomic_load_explicit(&vm_broken, memory_order_relaxed)) {
        struct iovec local, remote;
        ssize_t n;
        if (to_user) {
            local = (struct iovec){ (void *)src, len };
            remote = (struct iovec){ dst, len };
        } else {
            local = (struct iovec){ dst, len };
            remote = (struct iovec){ (void *)src, len };
        }
        n = vm_rw_self(&local, &remote, to_user);
        if (n > 0)
            return n;
        if (n == 0 || errno == EFAULT)
            return -EFAULT;
        if (errno != EPERM && errno != ENOSYS)
            return -errno;
        atomic_store(&vm_broken, 1);
    }
    memcpy(dst, src, len);
    return (ssize_t)len;
}

void shim_uaccess_memcpy_only(void)
{
    atomic_store(&vm_broken, 1);
}

ssize_t shim_copy_from_user(void *dst, const void *usrc, size_t len)
{
    return vm_copy(dst, usrc, len, false);
}

ssize_t shim_copy_to_user(void *udst, const void *src, size_t len)
{
    return vm_copy(udst, src, len, true);
}

/* Linux's MAX_RW_COUNT: no read or write moves more in one call. */
#define MAX_RW_COUNT ((size_t)INT_MAX & ~(size_t)4095)

/* The top of user space as the kernel's access_ok() sees it: x86-64
 * with 4-level paging (TASK_SIZE_MAX).  Elsewhere we do not know it, and
 * check nothing (the copies still fail cleanly on a bad page). */
#if defined(__x86_64__)
#define USER_LIMIT ((uintptr_t)0x7ffffffff000ull)
#endif

int shim_check_user_iov(const struct iovec *iov, int cnt)
{
#ifdef USER_LIMIT
    size_t total = 0;
    for (int i = 0; i < cnt; i++) {
        size_t len = iov[i].iov_len;
        if (len > MAX_RW_COUNT - total)
            len = MAX_RW_COUNT - total;
        uintptr_t base = (uintptr_t)iov[i].iov_base;
        if (len > USER_LIMIT || base > USER_LIMIT - len)
            return -EFAULT;
        total += len;
    }
#else
    (void)iov;
    (void)cnt;
#endif
    return 0;
}
