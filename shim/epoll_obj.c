/*
 * Managed objects as members of poll sets and epoll sets.  poll.c and
 * epoll_inst.c see sockets and epoll instances through these three
 * questions, so that an epoll fd holding managed members works inside
 * poll()/select() and inside another epoll like any socket: its readiness
 * is "an epoll_wait would return events", and it is woken through its own
 * fd (the native members) and its hidden epoll (the managed ones).
 */
#include "shim.h"

uint32_t shim_obj_mask(struct fdt_obj *o, int fd)
{
    if (o->kind == FDT_EPOLL)
        return shim_epoll_mask((struct shim_epoll *)o, fd);
    /* All the bits; callers mask them with what was asked. */
    short m = shim_poll_mask((struct shim_sock *)o, fd, (short)-1);
    return (uint16_t)m;
}

void shim_obj_wait_fds(struct fdt_obj *o, int fd, int out[2])
{
    if (o->kind == FDT_EPOLL) {
        shim_epoll_wait_fds((struct shim_epoll *)o, fd, out);
        return;
    }
    out[0] = shim_sock_wait_fd((struct shim_sock *)o, fd);
    out[1] = -1;
}

bool shim_obj_fired(struct fdt_obj *o, int fd, int wfd, const void *self)
{
    /* An epoll's hidden epoll is drained by its mask; its own fd stays
     * readable while a native member is ready. */
    if (o->kind == FDT_EPOLL)
        return wfd != fd;
    return shim_sock_ack((struct shim_sock *)o, wfd, self);
}
