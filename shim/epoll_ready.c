/*
 * An epoll instance's ready list, following Linux's fs/eventpoll.c: an
 * item is queued when its file reports a wake-up it is interested in (or
 * when ADD/MOD finds it ready), and an epoll_wait takes the queued items
 * in order, polls each again and reports those that are ready:
 *
 *   level-triggered  back to the end of the list, so it is polled (and
 *                    reported) again until it is no longer ready;
 *   EPOLLET          off the list until the next wake-up;
 *   EPOLLONESHOT     disabled (no event bit left) until EPOLL_CTL_MOD.
 *
 * Pure: readiness comes from the caller's poll function, the caller
 * holds whatever lock protects the list.
 */
#include "shim.h"

void epr_set(struct epr_item *item, uint32_t events, epoll_data_t data)
{
    item->events = events | EPOLLERR | EPOLLHUP;
    item->data = data;
}

bool epr_enabled(const struct epr_item *item)
{
    return (item->events & ~EPR_FLAG_BITS) != 0;
}

bool epr_empty(const struct epr_list *l)
{
    return l->head == NULL;
}

static void push_back(struct epr_list *l, struct epr_item *item)
{
    item->next = NULL;
    item->prev = l->tail;
    if (l->tail)
        l->tail->next = item;
    else
        l->head = item;
    l->tail = item;
    item->queued = true;
}

static void push_front(struct epr_list *l, struct epr_item *item)
{
    item->prev = NULL;
    item->next = l->head;
    if (l->head)
        l->head->prev = item;
    else
        l->tail = item;
    l->head = item;
    item->queued = true;
}

void epr_unqueue(struct epr_list *l, struct epr_item *item)
{
    if (!item->queued)
        return;
    if (item->prev)
        item->prev->next = item->next;
    else
        l->head = item->next;
    if (item->next)
        item->next->prev = item->prev;
    else
        l->tail = item->prev;
    item->prev = item->next = NULL;
    item->queued = false;
}

bool epr_queue(struct epr_list *l, struct epr_item *item)
{
    if (item->queued || !epr_enabled(item))
        return false;
    push_back(l, item);
    return true;
}

bool epr_wake(struct epr_list *l, struct epr_item *item, uint32_t key)
{
    if (!(key & item->events))
        return false;
    return epr_queue(l, item);
}

/* Put the not-visited rest of a detached list back in front of l. */
static void splice_front(struct epr_list *l, struct epr_list *rest)
{
    if (!rest->head)
        return;
    rest->tail->next = l->head;
    if (l->head)
        l->head->prev = rest->tail;
    else
        l->tail = rest->tail;
    l->head = rest->head;
}

int epr_harvest(struct epr_list *l, struct epoll_event *out,
                struct epr_undo *undo, int max, epr_poll_fn poll, void *ctx)
{
    /* Taken off first: level-triggered items put back at the end are
     * for the next epoll_wait, not polled twice in this one. */
    struct epr_list tx = *l;
    *l = (struct epr_list){ NULL, NULL };
    int n = 0;
    while (tx.head && n < max) {
        struct epr_item *item = tx.head;
        epr_unqueue(&tx, item);
        uint32_t revents = poll(item, ctx) & item->events & ~EPR_FLAG_BITS;
        if (!revents)
            continue;
        out[n] = (struct epoll_event){ .events = revents, .data = item->data };
        undo[n] = (struct epr_undo){ item, item->events };
        n++;
        if (item->events & EPOLLONESHOT)
            item->events &= EPR_FLAG_BITS;
        else if (!(item->events & EPOLLET))
            push_back(l, item);
    }
    splice_front(l, &tx);
    return n;
}

void epr_unharvest(struct epr_list *l, const struct epr_undo *undo, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        struct epr_item *item = undo[i].item;
        epr_unqueue(l, item);
        item->events = undo[i].events;
        push_front(l, item);
    }
}

bool epr_peek(struct epr_list *l, epr_poll_fn poll, void *ctx)
{
    struct epr_item *item = l->head;
    while (item) {
        struct epr_item *next = item->next;
        if (poll(item, ctx) & item->events & ~EPR_FLAG_BITS)
            return true;
        epr_unqueue(l, item);
        item = next;
    }
    return false;
}
