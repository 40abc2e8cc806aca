/*
 * A minimal epoll event loop shared by the daemons.
 *
 * One watch per fd; the callback gets the epoll event mask.  A watch may be
 * removed (and its owner freed) from inside any callback: removal marks the
 * watch dead and events already fetched for it in the same batch are
 * skipped, so owners free their objects with pvc_loop_defer_free(), which
 * runs after the current batch.
 */
#ifndef PVC_LOOP_H
#define PVC_LOOP_H

#include <stdint.h>

struct pvc_loop;
typedef void (*pvc_loop_fn)(void *ctx, uint32_t events);

struct pvc_watch {
    int fd;
    pvc_loop_fn fn;
    void *ctx;
    int registered;
};

struct pvc_loop *pvc_loop_new(void);
void pvc_loop_free(struct pvc_loop *loop);

/* Register w for fd with EPOLL* events; w must stay valid until removed. */
int pvc_loop_add(struct pvc_loop *loop, struct pvc_watch *w, int fd,
                 uint32_t events, pvc_loop_fn fn, void *ctx);
int pvc_loop_mod(struct pvc_loop *loop, struct pvc_watch *w, uint32_t events);
/* Safe on a watch that is not registered. Does not close the fd. */
void pvc_loop_del(struct pvc_loop *loop, struct pvc_watch *w);

/* Call free_fn(ptr) once the batch being dispatched is done. */
void pvc_loop_defer_free(struct pvc_loop *loop, void *ptr,
                         void (*free_fn)(void *));

/* Wait up to timeout_ms (-1: forever) and dispatch one batch.  Returns the
 * number of events dispatched, or -1 with errno (EINTR is returned as 0). */
int pvc_loop_run_once(struct pvc_loop *loop, int timeout_ms);

#endif
