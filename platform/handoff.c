/*
 * Hand-off of a ring's pages and event channel to another process, and
 * everything a process that adopted them needs: mapping the pages and
 * driving the channel (notify, ack, fd, port, close).
 *
 * The shim links this file alone of platform/ (no libxenstore, no broker
 * connection, no libxen*): so every channel call dispatches through the
 * channel's own ops, and the adopted channels' ops live here.
 *
 *   sim: the pages are one memfd (from offset 0); the channel is its two
 *        eventfds (rx: readable when the peer notified; tx: write 1 to
 *        notify).  Both are shared with the daemon and every other holder.
 *   xen: the pages are the share's own gntalloc file, mapped at its
 *        index; the channel is an evtchn device fd with the port (and a
 *        loopback pair, for kick_local) bound on it; notify is
 *        IOCTL_EVTCHN_NOTIFY, pending ports are read from the fd and
 *        unmasked by writing them back (the protocol of
 *        <xen/sys/evtchn.h>, what libxenevtchn does).
 */
#include "platform_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xen/xen.h> /* domid_t, which the ioctl header uses */
#include <xen/sys/evtchn.h>

/* ---- every channel: dispatch --------------------------------------- */

pvc_port_t pvc_evtchn_port(const struct pvc_evtchn *ch)
{
    return ch->port;
}

int pvc_evtchn_fd(const struct pvc_evtchn *ch)
{
    return ch->fd;
}

int pvc_evtchn_notify(struct pvc_evtchn *ch)
{
    return ch->ops->notify(ch);
}

int pvc_evtchn_ack(struct pvc_evtchn *ch)
{
    return ch->ops->ack(ch);
}

int pvc_evtchn_kick_local(struct pvc_evtchn *ch)
{
    return ch->ops->kick_local(ch);
}

int pvc_evtchn_handoff(struct pvc_evtchn *ch, struct pvc_evtchn_handoff *out)
{
    if (!ch || !out) {
        errno = EINVAL;
        return -1;
    }
    return ch->ops->handoff(ch, out);
}

void pvc_evtchn_close(struct pvc_evtchn *ch)
{
    if (ch)
        ch->ops->close(ch);
}

static int dup_cloexec(int fd)
{
    return fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

/* ---- simulated channels: eventfds ---------------------------------- */

static int eventfd_add_one(int fd)
{
    uint64_t one = 1;
    if (write(fd, &one, sizeof(one)) == sizeof(one))
        return 0;
    /* A saturated counter means an event is pending already. */
    return errno == EAGAIN ? 0 : -1;
}

int pvc_sim_evtchn_notify(struct pvc_evtchn *head)
{
    return eventfd_add_one(((struct pvc_sim_evtchn *)head)->tx);
}

int pvc_sim_evtchn_kick_local(struct pvc_evtchn *head)
{
    return eventfd_add_one(head->fd);
}

/* Returns how many notifications were coalesced since the last ack
 * (capped at INT_MAX); callers only rely on 0 versus more.  The rx
 * eventfd is non-blocking and may be shared with other processes: one of
 * them may have taken the event first, so EAGAIN is simply 0. */
int pvc_sim_evtchn_ack(struct pvc_evtchn *head)
{
    uint64_t count;
    ssize_t n = read(head->fd, &count, sizeof(count));
    if (n == sizeof(count))
        return count > INT_MAX ? INT_MAX : (int)count;
    if (n < 0 && errno == EAGAIN)
        return 0;
    if (n >= 0)
        errno = EIO;
    return -1;
}

int pvc_sim_evtchn_handoff(struct pvc_evtchn *head,
                           struct pvc_evtchn_handoff *out)
{
    struct pvc_sim_evtchn *ch = (struct pvc_sim_evtchn *)head;
    int rx = dup_cloexec(head->fd);
    int tx = rx < 0 ? -1 : dup_cloexec(ch->tx);
    if (tx < 0) {
        int saved = errno;
        if (rx >= 0)
            close(rx);
        errno = saved;
        return -1;
    }
    *out = (struct pvc_evtchn_handoff){
        .kind = PVC_PLATFORM_SIM, .port = head->port, .nfds = 2,
        .fds = { rx, tx },
    };
    return 0;
}

/* An adopted simulated channel: closing it closes our fds only; the
 * daemon that allocated it unbinds it. */
static void sim_adopted_close(struct pvc_evtchn *head)
{
    struct pvc_sim_evtchn *ch = (struct pvc_sim_evtchn *)head;
    close(head->fd);
    close(ch->tx);
    free(ch);
}

static const struct pvc_evtchn_ops sim_adopted_ops = {
    .notify = pvc_sim_evtchn_notify,
    .ack = pvc_sim_evtchn_ack,
    .kick_local = pvc_sim_evtchn_kick_local,
    .handoff = pvc_sim_evtchn_handoff,
    .close = sim_adopted_close,
};

static struct pvc_evtchn *sim_adopt(const struct pvc_evtchn_handoff *h)
{
    if (h->nfds != 2 || h->fds[0] < 0 || h->fds[1] < 0) {
        errno = EINVAL;
        return NULL;
    }
    struct pvc_sim_evtchn *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return NULL;
    /* The shim waits on the rx fd and must never block in ack. */
    int fl = fcntl(h->fds[0], F_GETFL);
    if (fl < 0 || fcntl(h->fds[0], F_SETFL, fl | O_NONBLOCK) < 0) {
        int saved = errno;
        free(ch);
        errno = saved;
        return NULL;
    }
    ch->head = (struct pvc_evtchn){ .ops = &sim_adopted_ops,
                                    .port = h->port, .fd = h->fds[0] };
    ch->tx = h->fds[1];
    return &ch->head;
}

/* ---- Xen channels: the evtchn device fd ---------------------------- */

/* An adopted Xen channel. */
struct xen_adopted_evtchn {
    struct pvc_evtchn head;
    pvc_port_t kick_port; /* the loopback port, 0 if none */
};

int pvc_xen_evtchn_handoff(struct pvc_evtchn *head,
                           struct pvc_evtchn_handoff *out)
{
    int fd = dup_cloexec(head->fd);
    if (fd < 0)
        return -1;
    *out = (struct pvc_evtchn_handoff){
        .kind = PVC_PLATFORM_XEN, .port = head->port, .nfds = 1,
        .fds = { fd, -1 },
    };
    return 0;
}

static int evtchn_dev_notify(int fd, pvc_port_t port)
{
    struct ioctl_evtchn_notify notify = { .port = port };
    return ioctl(fd, IOCTL_EVTCHN_NOTIFY, &notify) < 0 ? -1 : 0;
}

static int xen_adopted_notify(struct pvc_evtchn *head)
{
    return evtchn_dev_notify(head->fd, head->port);
}

/* The device delivers a pending port as a 32-bit word and masks it;
 * writing the word back unmasks it.  The fd may hold only this channel's
 * port, but it is shared with other holders: EAGAIN is 0. */
static int xen_adopted_ack(struct pvc_evtchn *head)
{
    uint32_t ports[16];
    ssize_t n = read(head->fd, ports, sizeof(ports));
    if (n < 0)
        return errno == EAGAIN ? 0 : -1;
    if (n % sizeof(uint32_t)) {
        errno = EIO;
        return -1;
    }
    if (n > 0 && write(head->fd, ports, (size_t)n) != n)
        return -1;
    return (int)(n / sizeof(uint32_t));
}

static int xen_adopted_kick_local(struct pvc_evtchn *head)
{
    pvc_port_t kick = ((struct xen_adopted_evtchn *)head)->kick_port;
    if (!kick) {
        errno = ENOSYS;
        return -1;
    }
    return evtchn_dev_notify(head->fd, kick);
}

static int xen_adopted_handoff(struct pvc_evtchn *head,
                               struct pvc_evtchn_handoff *out)
{
    if (pvc_xen_evtchn_handoff(head, out) < 0)
        return -1;
    out->kick_port = ((struct xen_adopted_evtchn *)head)->kick_port;
    return 0;
}

static void xen_adopted_close(struct pvc_evtchn *head)
{
    close(head->fd);
    free(head);
}

static const struct pvc_evtchn_ops xen_adopted_ops = {
    .notify = xen_adopted_notify,
    .ack = xen_adopted_ack,
    .kick_local = xen_adopted_kick_local,
    .handoff = xen_adopted_handoff,
    .close = xen_adopted_close,
};

static struct pvc_evtchn *xen_adopt(const struct pvc_evtchn_handoff *h)
{
    if (h->nfds != 1 || h->fds[0] < 0) {
        errno = EINVAL;
        return NULL;
    }
    struct xen_adopted_evtchn *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return NULL;
    int fl = fcntl(h->fds[0], F_GETFL);
    if (fl < 0 || fcntl(h->fds[0], F_SETFL, fl | O_NONBLOCK) < 0) {
        int saved = errno;
        free(ch);
        errno = saved;
        return NULL;
    }
    ch->head = (struct pvc_evtchn){ .ops = &xen_adopted_ops,
                                    .port = h->port, .fd = h->fds[0] };
    ch->kick_port = h->kick_port;
    return &ch->head;
}

/* The fds are ours from the call on, even when adopting fails: the
 * caller never has to know which ones were consumed. */
struct pvc_evtchn *pvc_evtchn_adopt(const struct pvc_evtchn_handoff *h)
{
    if (!h) {
        errno = EINVAL;
        return NULL;
    }
    struct pvc_evtchn *ch;
    switch (h->kind) {
    case PVC_PLATFORM_SIM:
        ch = sim_adopt(h);
        break;
    case PVC_PLATFORM_XEN:
        ch = xen_adopt(h);
        break;
    default:
        errno = EINVAL;
        ch = NULL;
        break;
    }
    if (!ch) {
        int err = errno;
        for (int i = 0; i < h->nfds && i < PVC_HANDOFF_MAX_FDS; i++)
            if (h->fds[i] >= 0)
                close(h->fds[i]);
        errno = err;
    }
    return ch;
}

/* ---- pages --------------------------------------------------------- */

void *pvc_grant_adopt(const struct pvc_grant_handoff *h)
{
    if (!h || h->fd < 0 || h->npages == 0 || h->npages > (1u << 20) ||
        h->offset % PVC_PAGE_SIZE || h->offset > (uint64_t)INT64_MAX) {
        errno = EINVAL;
        return NULL;
    }
    /* MAP_SHARED: gntalloc refuses MAP_PRIVATE, and a private copy would
     * not be the ring anyway. */
    void *p = mmap(NULL, (size_t)h->npages * PVC_PAGE_SIZE,
                   PROT_READ | PROT_WRITE, MAP_SHARED, h->fd,
                   (off_t)h->offset);
    return p == MAP_FAILED ? NULL : p;
}
