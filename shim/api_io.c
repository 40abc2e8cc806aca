/*
 * Interposed data calls on managed sockets.  Each validates its arguments
 * the way the kernel does (EINVAL for bad counts, EFAULT for unreadable
 * iovec arrays and headers), then hands an iovec array to data.c.
 */
#include "shim.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ssize_t fail(ssize_t err)
{
    errno = (int)-err;
    return -1;
}

/* Copy and check an application iovec array (into local[IOV_MAX]). */
static int take_iov(const struct iovec *uiov, int cnt, struct iovec *local)
{
    if (cnt < 0 || cnt > IOV_MAX)
        return -EINVAL;
    size_t bytes = (size_t)cnt * sizeof(*uiov);
    if (bytes && shim_copy_from_user(local, uiov, bytes) != (ssize_t)bytes)
        return -EFAULT;
    size_t total = 0;
    for (int i = 0; i < cnt; i++) {
        if (local[i].iov_len > (size_t)SSIZE_MAX - total)
            return -EINVAL;
        total += local[i].iov_len;
    }
    return 0;
}

static ssize_t managed_send(struct shim_sock *s, int fd,
                            const struct iovec *iov, int cnt, int flags)
{
    if (flags & MSG_OOB)
        return -EOPNOTSUPP;
    return shim_send_iov(s, fd, iov, cnt, flags);
}

static ssize_t managed_recv(struct shim_sock *s, int fd,
                            const struct iovec *iov, int cnt, int flags)
{
    if (flags & MSG_OOB)
        return -EINVAL; /* no urgent data is ever pending */
    if (flags & MSG_ERRQUEUE)
        return -EAGAIN;
    return shim_recv_iov(s, fd, iov, cnt, flags);
}

/* ---- flat-buffer forms --------------------------------------------- */

static ssize_t send_flat(int fd, const void *buf, size_t len, int flags,
                         bool *mine)
{
    struct shim_sock *s = shim_in_shim ? NULL : shim_sock_get(fd);
    *mine = s != NULL;
    if (!s)
        return 0;
    if (len > SSIZE_MAX)
        len = SSIZE_MAX;
    struct iovec iov = { (void *)buf, len };
    ssize_t r = managed_send(s, fd, &iov, 1, flags);
    shim_sock_put(s);
    return r < 0 ? fail(r) : r;
}

static ssize_t recv_flat(int fd, void *buf, size_t len, int flags,
                         bool *mine)
{
    struct shim_sock *s = shim_in_shim ? NULL : shim_sock_get(fd);
    *mine = s != NULL;
    if (!s)
        return 0;
    if (len > SSIZE_MAX)
        len = SSIZE_MAX;
    struct iovec iov = { buf, len };
    ssize_t r = managed_recv(s, fd, &iov, 1, flags);
    shim_sock_put(s);
    return r < 0 ? fail(r) : r;
}

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
    bool mine;
    ssize_t r = send_flat(fd, buf, len, flags, &mine);
    return mine ? r : REAL(send)(fd, buf, len, flags);
}

ssize_t write(int fd, const void *buf, size_t len)
{
    bool mine;
    ssize_t r = send_flat(fd, buf, len, 0, &mine);
    return mine ? r : REAL(write)(fd, buf, len);
}

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    bool mine;
    ssize_t r = recv_flat(fd, buf, len, flags, &mine);
    return mine ? r : REAL(recv)(fd, buf, len, flags);
}

ssize_t read(int fd, void *buf, size_t len)
{
    bool mine;
    ssize_t r = recv_flat(fd, buf, len, 0, &mine);
    return mine ? r : REAL(read)(fd, buf, len);
}

/* TCP ignores a destination address on a connected socket; on an
 * unconnected one MSG_FASTOPEN means connect, then send. */
ssize_t sendto(int fd, const void *buf, size_t len, int flags,
               const struct sockaddr *addr, socklen_t alen)
{
    if (shim_in_shim || !fdt_has(fd))
        return REAL(sendto)(fd, buf, len, flags, addr, alen);
    if ((flags & MSG_FASTOPEN) && addr) {
        struct shim_sock *s = shim_sock_get(fd);
        int st = s ? atomic_load(&s->state) : SHIM_CONNECTED;
        if (s)
            shim_sock_put(s);
        if ((st == SHIM_CREATED || st == SHIM_BOUND) &&
            connect(fd, addr, alen) < 0)
            return -1;
    }
    return send(fd, buf, len, flags & ~MSG_FASTOPEN);
}

ssize_t recvfrom(int fd, void *buf, size_t len, int flags,
                 struct sockaddr *addr, socklen_t *alen)
{
    if (shim_in_shim || !fdt_has(fd))
        return REAL(recvfrom)(fd, buf, len, flags, addr, alen);
    /* A stream socket reports no source address: Linux checks the length,
     * then writes 0 to it. */
    socklen_t l = 0;
    if (addr) {
        if (shim_copy_from_user(&l, alen, sizeof(l)) != sizeof(l))
            return fail(-EFAULT);
        if ((int)l < 0)
            return fail(-EINVAL);
    }
    ssize_t r = recv(fd, buf, len, flags);
    if (r >= 0 && addr) {
        l = 0;
        if (shim_copy_to_user(alen, &l, sizeof(l)) != sizeof(l))
            return fail(-EFAULT);
    }
    return r;
}

/* ---- iovec forms ---------------------------------------------------- */

static ssize_t iov_call(int fd, const struct iovec *uiov, int cnt, int flags,
                        bool tx, bool *mine)
{
    struct shim_sock *s = shim_in_shim ? NULL : shim_sock_get(fd);
    *mine = s != NULL;
    if (!s)
        return 0;
    struct iovec local[IOV_MAX];
    ssize_t r = take_iov(uiov, cnt, local);
    if (!r)
        r = tx ? managed_send(s, fd, local, cnt, flags)
               : managed_recv(s, fd, local, cnt, flags);
    shim_sock_put(s);
    return r < 0 ? fail(r) : r;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    bool mine;
    ssize_t r = iov_call(fd, iov, cnt, 0, true, &mine);
    return mine ? r : REAL(writev)(fd, iov, cnt);
}

ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
    bool mine;
    ssize_t r = iov_call(fd, iov, cnt, 0, false, &mine);
    return mine ? r : REAL(readv)(fd, iov, cnt);
}

/* msghdr: the name is ignored (TCP), control data is neither sent nor
 * received. */
static ssize_t msg_call(int fd, struct msghdr *umsg, int flags, bool tx,
                        bool *mine)
{
    *mine = !shim_in_shim && fdt_has(fd);
    if (!*mine)
        return 0;
    struct msghdr m;
    if (shim_copy_from_user(&m, umsg, sizeof(m)) != sizeof(m))
        return fail(-EFAULT);
    if (m.msg_iovlen > IOV_MAX)
        return fail(-EMSGSIZE);
    if (tx && (flags & MSG_FASTOPEN) && m.msg_name) {
        struct shim_sock *s = shim_sock_get(fd);
        int st = s ? atomic_load(&s->state) : SHIM_CONNECTED;
        if (s)
            shim_sock_put(s);
        if ((st == SHIM_CREATED || st == SHIM_BOUND) &&
            connect(fd, m.msg_name, m.msg_namelen) < 0)
            return -1;
    }
    flags &= ~MSG_FASTOPEN;
    bool ignored;
    ssize_t r = iov_call(fd, m.msg_iov, (int)m.msg_iovlen, flags, tx,
                         &ignored);
    if (r >= 0 && !tx) {
        m.msg_namelen = 0;
        m.msg_controllen = 0;
        m.msg_flags = 0;
        if (shim_copy_to_user(umsg, &m, sizeof(m)) != sizeof(m))
            return fail(-EFAULT);
    }
    return r;
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    bool mine;
    ssize_t r = msg_call(fd, (struct msghdr *)msg, flags, true, &mine);
    return mine ? r : REAL(sendmsg)(fd, msg, flags);
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    bool mine;
    ssize_t r = msg_call(fd, msg, flags, false, &mine);
    if (mine)
        return r;
    r = REAL(recvmsg)(fd, msg, flags);
    /* Fds passed with SCM_RIGHTS may be managed sockets: adopted before
     * the program sees them.  (The kernel read msg, and left
     * msg_controllen 0 when nothing came: that is the whole cost.) */
    if (r >= 0 && !shim_in_shim && msg->msg_controllen)
        shim_inherit_cmsg(msg);
    return r;
}

#define UIO_MAXIOV_MMSG 1024u

/* recvmmsg's timeout, as Linux keeps it: checked after each message
 * (so a call can still block waiting for the first), and the time left
 * written back at the end. */
struct mmsg_timeout {
    struct timespec *user; /* NULL: none */
    int64_t end_ns;
};

static int mmsg_timeout_start(struct mmsg_timeout *t, struct timespec *user)
{
    t->user = user;
    if (!user)
        return 0;
    struct timespec ts;
    if (shim_copy_from_user(&ts, user, sizeof(ts)) != sizeof(ts))
        return -EFAULT;
    if (ts.tv_sec < 0 || ts.tv_nsec < 0 || ts.tv_nsec >= 1000000000)
        return -EINVAL;
    t->end_ns = shim_now_ns() + ts.tv_sec * 1000000000 + ts.tv_nsec;
    return 0;
}

/* After a message: has the time run out?  (The time left goes back to
 * the caller.) */
static bool mmsg_timeout_expired(struct mmsg_timeout *t)
{
    if (!t->user)
        return false;
    int64_t left = t->end_ns - shim_now_ns();
    if (left < 0)
        left = 0;
    struct timespec ts = { left / 1000000000, left % 1000000000 };
    shim_copy_to_user(t->user, &ts, sizeof(ts));
    return left == 0;
}

/* sendmmsg/recvmmsg: one message after another; an error after the first
 * ends the batch (the error stays pending on a real socket; here the next
 * call reports it again from the ring). */
static int mmsg_call(int fd, struct mmsghdr *vec, unsigned vlen, int flags,
                     bool tx, struct timespec *timeout)
{
    struct mmsg_timeout t;
    int err = mmsg_timeout_start(&t, tx ? NULL : timeout);
    if (err)
        return (int)fail(-err);
    if (vlen > UIO_MAXIOV_MMSG)
        vlen = UIO_MAXIOV_MMSG;
    unsigned done = 0;
    for (; done < vlen; done++) {
        bool mine;
        int f = flags & ~MSG_WAITFORONE;
        if (!tx && (flags & MSG_WAITFORONE) && done)
            f |= MSG_DONTWAIT;
        ssize_t r = msg_call(fd, &vec[done].msg_hdr, f, tx, &mine);
        if (r < 0)
            return done ? (int)done : -1;
        unsigned len = (unsigned)r;
        if (shim_copy_to_user(&vec[done].msg_len, &len, sizeof(len)) !=
            sizeof(len))
            return done ? (int)done : (int)fail(-EFAULT);
        if (!tx && r == 0)
            return (int)done + 1; /* EOF */
        if (mmsg_timeout_expired(&t))
            return (int)done + 1;
    }
    return (int)done;
}

int sendmmsg(int fd, struct mmsghdr *vec, unsigned vlen, int flags)
{
    if (shim_in_shim || !fdt_has(fd))
        return REAL(sendmmsg)(fd, vec, vlen, flags);
    return mmsg_call(fd, vec, vlen, flags, true, NULL);
}

int recvmmsg(int fd, struct mmsghdr *vec, unsigned vlen, int flags,
             struct timespec *timeout)
{
    if (shim_in_shim)
        return REAL(recvmmsg)(fd, vec, vlen, flags, timeout);
    if (fdt_has(fd))
        return mmsg_call(fd, vec, vlen, flags, false, timeout);
    int r = REAL(recvmmsg)(fd, vec, vlen, flags, timeout);
    for (int i = 0; i < r; i++) /* as recvmsg: passed fds */
        if (vec[i].msg_hdr.msg_controllen)
            shim_inherit_cmsg(&vec[i].msg_hdr);
    return r;
}

/* ---- sendfile (file -> managed socket) ----------------------------- */

#define SENDFILE_CHUNK 65536

/* Read from the file (at *off when given, else at its position), send,
 * and leave the offset or position just after the bytes that were sent. */
static ssize_t sendfile_managed(int out, int in, off64_t *uoff, size_t count)
{
    off64_t off = 0;
    if (uoff && shim_copy_from_user(&off, uoff, sizeof(off)) != sizeof(off))
        return fail(-EFAULT);
    if (uoff && off < 0)
        return fail(-EINVAL);
    if (fdt_has(in))
        return fail(-EINVAL); /* a socket cannot be sendfile's source */
    char *buf = malloc(SENDFILE_CHUNK);
    if (!buf)
        return fail(-ENOMEM);
    size_t sent = 0;
    ssize_t err = 0;
    while (sent < count) {
        size_t want = count - sent < SENDFILE_CHUNK ? count - sent
                                                    : SENDFILE_CHUNK;
        ssize_t n = uoff ? pread64(in, buf, want, off + (off64_t)sent)
                         : REAL(read)(in, buf, want);
        if (n <= 0) {
            err = n < 0 ? -errno : 0;
            break;
        }
        ssize_t w = send(out, buf, (size_t)n, 0);
        if (w < 0)
            err = -errno;
        else
            sent += (size_t)w;
        if (!uoff && w < n)
            lseek64(in, w < 0 ? -n : -(n - w), SEEK_CUR);
        if (w < n)
            break;
    }
    free(buf);
    if (uoff) {
        off += (off64_t)sent;
        if (shim_copy_to_user(uoff, &off, sizeof(off)) != sizeof(off))
            return fail(-EFAULT);
    }
    if (sent)
        return (ssize_t)sent;
    return err ? fail(err) : 0;
}

ssize_t sendfile64(int out, int in, off64_t *off, size_t count)
{
    if (shim_in_shim || !fdt_has(out))
        return REAL(sendfile64)(out, in, off, count);
    return sendfile_managed(out, in, off, count);
}

ssize_t sendfile(int out, int in, off_t *off, size_t count)
{
    if (shim_in_shim || !fdt_has(out))
        return REAL(sendfile)(out, in, off, count);
    _Static_assert(sizeof(off_t) == sizeof(off64_t), "64-bit off_t");
    return sendfile_managed(out, in, (off64_t *)off, count);
}

/* ---- _FORTIFY_SOURCE variants -------------------------------------- */

extern void __chk_fail(void) __attribute__((noreturn));

ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen)
{
    if (len > buflen)
        __chk_fail();
    return read(fd, buf, len);
}

ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags)
{
    if (len > buflen)
        __chk_fail();
    return recv(fd, buf, len, flags);
}

ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen,
                       int flags, struct sockaddr *addr, socklen_t *alen)
{
    if (len > buflen)
        __chk_fail();
    return recvfrom(fd, buf, len, flags, addr, alen);
}
