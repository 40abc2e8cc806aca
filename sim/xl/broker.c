/*
 * The toolstack's side of the broker protocol: DOMAIN_CREATE and
 * DOMAIN_DESTROY are not part of the platform API (no program but the
 * toolstack creates domains), so simxl speaks them on a connection of
 * its own.
 */
#include "simxl.h"

#include "pvc/sim_proto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int broker_connect(const char *dir)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int n = snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s", dir,
                     SIM_BROKER_SOCK);
    if (n < 0 || (size_t)n >= sizeof(addr.sun_path))
        return -ENAMETOOLONG;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

/* One request, one reply; any fds in the reply are closed (toolstack
 * operations carry none). */
static int roundtrip(int fd, const struct sim_msg *rq)
{
    if (send(fd, rq, sizeof(*rq), MSG_NOSIGNAL) < 0)
        return -errno;
    struct sim_msg rp;
    union {
        char buf[CMSG_SPACE(sizeof(int) * SIM_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = &rp, .iov_len = sizeof(rp) };
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
    };
    ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    if (n < 0)
        return -errno;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm;
         cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
             i++) {
            int rfd;
            memcpy(&rfd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            close(rfd);
        }
    }
    if (n == 0)
        return -ECONNRESET;
    if ((size_t)n < sizeof(rp) || rp.op != rq->op)
        return -EPROTO;
    return rp.status;
}

int simxl_broker_call(const char *sim_dir, uint32_t op, uint32_t domid)
{
    int fd = broker_connect(sim_dir);
    if (fd < 0)
        return fd;
    struct sim_msg hello = { .op = SIM_OP_HELLO, .domid = 0 };
    struct sim_msg rq = { .op = op, .domid = domid };
    int rc = roundtrip(fd, &hello);
    if (rc == 0)
        rc = roundtrip(fd, &rq);
    close(fd);
    return rc;
}
