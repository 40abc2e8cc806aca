/*
 * The command ring: one page of 32 64-byte entries shared by the
 * frontend's requests and the backend's responses (research §2), driven
 * with Xen's own ring.h macros.  See include/pvc/ring.h.
 *
 * The macros trust the peer's producer index; we read it once, validate it
 * against our private indexes, and only then touch entries, so a hostile
 * peer gets -EPROTO instead of making us read stale or foreign slots.
 */
#include "pvc/ring.h"

#include "shared.h"

/* ---- frontend ------------------------------------------------------ */

void pvc_cmd_front_init(struct pvc_cmd_front *c, void *page)
{
    struct xen_pvcalls_sring *sring = page;
    memset(page, 0, PVC_PAGE_SIZE);
    SHARED_RING_INIT(sring);
    FRONT_RING_INIT(&c->ring, sring, PVC_PAGE_SIZE);
}

unsigned pvc_cmd_front_free_slots(const struct pvc_cmd_front *c)
{
    /* Only private indexes: the count cannot be skewed by the backend. */
    return RING_SIZE(&c->ring) - (c->ring.req_prod_pvt - c->ring.rsp_cons);
}

int pvc_cmd_front_push(struct pvc_cmd_front *c,
                       const struct xen_pvcalls_request *req)
{
    if (pvc_cmd_front_free_slots(c) == 0)
        return -EBUSY;
    memcpy(RING_GET_REQUEST(&c->ring, c->ring.req_prod_pvt), req,
           sizeof(*req));
    c->ring.req_prod_pvt++;
    int notify;
    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&c->ring, notify);
    return notify ? 1 : 0;
}

/* Responses ready to take: rsp_prod read once and bounded by the requests
 * we have outstanding, or -EPROTO. */
static long front_responses_ready(struct pvc_cmd_front *c)
{
    RING_IDX rsp_prod = shared_load(&c->ring.sring->rsp_prod);
    xen_rmb(); /* entries are read after the index that published them */
    RING_IDX ready = rsp_prod - c->ring.rsp_cons;
    RING_IDX outstanding = c->ring.req_prod_pvt - c->ring.rsp_cons;
    return ready > outstanding ? -EPROTO : (long)ready;
}

int pvc_cmd_front_pop(struct pvc_cmd_front *c,
                      union xen_pvcalls_sring_entry *slot)
{
    long ready = front_responses_ready(c);
    if (ready == 0) {
        int more;
        /* Arms rsp_event, so that the next response notifies us. */
        RING_FINAL_CHECK_FOR_RESPONSES(&c->ring, more);
        if (!more)
            return 0;
        ready = front_responses_ready(c);
    }
    if (ready <= 0)
        return (int)ready;
    /* The whole entry, once: extension responses fill all 64 bytes, and
     * the backend must not be able to change what we validate later. */
    RING_IDX idx = c->ring.rsp_cons & (RING_SIZE(&c->ring) - 1);
    *slot = *(volatile union xen_pvcalls_sring_entry *)&c->ring.sring->ring[idx];
    c->ring.rsp_cons++;
    return 1;
}

/* ---- backend ------------------------------------------------------- */

void pvc_cmd_back_attach(struct pvc_cmd_back *c, void *page)
{
    BACK_RING_INIT(&c->ring, (struct xen_pvcalls_sring *)page, PVC_PAGE_SIZE);
}

/* Requests ready to take: req_prod read once; the frontend may have at
 * most RING_SIZE requests without a response, and may not take back
 * requests we already consumed.  Returns the count or -EPROTO. */
static long back_requests_ready(struct pvc_cmd_back *c)
{
    RING_IDX req_prod = shared_load(&c->ring.sring->req_prod);
    xen_rmb(); /* entries are read after the index that published them */
    if (RING_REQUEST_PROD_OVERFLOW(&c->ring, req_prod))
        return -EPROTO;
    RING_IDX ready = req_prod - c->ring.req_cons;
    if (ready > req_prod - c->ring.rsp_prod_pvt)
        return -EPROTO; /* req_prod moved back behind req_cons */
    return (long)ready;
}

int pvc_cmd_back_pop(struct pvc_cmd_back *c, struct xen_pvcalls_request *req)
{
    long ready = back_requests_ready(c);
    if (ready == 0) {
        int more;
        /* Arms req_event, so that the next request notifies us. */
        RING_FINAL_CHECK_FOR_REQUESTS(&c->ring, more);
        if (!more)
            return 0;
        ready = back_requests_ready(c);
    }
    if (ready <= 0)
        return (int)ready;
    RING_COPY_REQUEST(&c->ring, c->ring.req_cons, req);
    c->ring.req_cons++;
    return 1;
}

int pvc_cmd_back_put(struct pvc_cmd_back *c, const void *rsp, size_t len)
{
    if (len < sizeof(struct xen_pvcalls_response) ||
        len > sizeof(union xen_pvcalls_sring_entry))
        return -EINVAL;
    /* A response may only overwrite the slot of a request we consumed. */
    if (c->ring.rsp_prod_pvt == c->ring.req_cons)
        return -EBUSY;
    RING_IDX idx = c->ring.rsp_prod_pvt & (RING_SIZE(&c->ring) - 1);
    memcpy(&c->ring.sring->ring[idx], rsp, len);
    c->ring.rsp_prod_pvt++;
    return 0;
}

int pvc_cmd_back_publish(struct pvc_cmd_back *c)
{
    int notify;
    RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&c->ring, notify);
    return notify ? 1 : 0;
}
