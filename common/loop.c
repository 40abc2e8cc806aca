/* The daemons' epoll loop: see include/pvc/loop.h. */
#include "pvc/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#define LOOP_BATCH 64

struct deferred {
    void *ptr;
    void (*free_fn)(void *);
};

struct pvc_loop {
    int epfd;
    /* Events fetched by the current batch; a removed watch is blanked here
     * so that no callback runs for it after its removal. */
    struct epoll_event batch[LOOP_BATCH];
    int batch_len;
    struct deferred *deferred;
    size_t n_deferred, cap_deferred;
};

struct pvc_loop *pvc_loop_new(void)
{
    struct pvc_loop *loop = calloc(1, sizeof(*loop));
    if (!loop)
        return NULL;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        free(loop);
        return NULL;
    }
    return loop;
}

static void run_deferred(struct pvc_loop *loop)
{
    /* A free_fn may defer more frees; index, do not cache the count. */
    for (size_t i = 0; i < loop->n_deferred; i++)
        loop->deferred[i].free_fn(loop->deferred[i].ptr);
    loop->n_deferred = 0;
}

void pvc_loop_free(struct pvc_loop *loop)
{
    if (!loop)
        return;
    run_deferred(loop);
    free(loop->deferred);
    close(loop->epfd);
    free(loop);
}

int pvc_loop_add(struct pvc_loop *loop, struct pvc_watch *w, int fd,
                 uint32_t events, pvc_loop_fn fn, void *ctx)
{
    struct epoll_event ev = { .events = events, .data.ptr = w };
    w->fd = fd;
    w->fn = fn;
    w->ctx = ctx;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -1;
    w->registered = 1;
    return 0;
}

int pvc_loop_mod(struct pvc_loop *loop, struct pvc_watch *w, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = w };
    return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, w->fd, &ev);
}

void pvc_loop_del(struct pvc_loop *loop, struct pvc_watch *w)
{
    if (!w->registered)
        return;
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    w->registered = 0;
    for (int i = 0; i < loop->batch_len; i++)
        if (loop->batch[i].data.ptr == w)
            loop->batch[i].data.ptr = NULL;
}

void pvc_loop_defer_free(struct pvc_loop *loop, void *ptr,
                         void (*free_fn)(void *))
{
    if (loop->n_deferred == loop->cap_deferred) {
        size_t cap = loop->cap_deferred ? 2 * loop->cap_deferred : 16;
        struct deferred *d = realloc(loop->deferred, cap * sizeof(*d));
        if (!d) {
            /* Out of memory: freeing now is the lesser evil than leaking
             * only if nothing in the batch still points at ptr, which we
             * cannot know; leak instead. */
            return;
        }
        loop->deferred = d;
        loop->cap_deferred = cap;
    }
    loop->deferred[loop->n_deferred++] = (struct deferred){ ptr, free_fn };
}

int pvc_loop_run_once(struct pvc_loop *loop, int timeout_ms)
{
    int n = epoll_wait(loop->epfd, loop->batch, LOOP_BATCH, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    loop->batch_len = n;
    for (int i = 0; i < n; i++) {
        struct pvc_watch *w = loop->batch[i].data.ptr;
        if (w)
            w->fn(w->ctx, loop->batch[i].events);
    }
    loop->batch_len = 0;
    run_deferred(loop);
    return n;
}
