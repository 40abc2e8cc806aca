/*
 * The test frontend's data path: moving bytes through an active socket's
 * rings as v1 prescribes (notify after every index update), sleeping on
 * the socket's event channel whenever the ring is full or empty.
 * See testfront.h.
 */
#include "testfront.h"

#include "hostnet.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#define CHUNK 65536

void tf_notify(struct tf_sock *s)
{
    pvc_evtchn_notify(s->ring->evtchn);
}

/* Sleep until the channel is readable or the deadline passes. */
static bool sleep_on_channel(struct tf_sock *s, int64_t deadline)
{
    int64_t left = deadline - hn_now_ms();
    if (left <= 0)
        return false;
    struct pollfd p = { .fd = pvc_evtchn_fd(s->ring->evtchn),
                        .events = POLLIN };
    int r = poll(&p, 1, (int)left);
    return r > 0 || (r < 0 && errno == EINTR);
}

bool tf_wait_event(struct tf_sock *s, int timeout_ms)
{
    if (!sleep_on_channel(s, hn_now_ms() + timeout_ms))
        return false;
    pvc_evtchn_ack(s->ring->evtchn);
    return true;
}

/*
 * The waiting pattern of both directions: try; if nothing can be done,
 * consume the doorbell and try once more (an index update that happened
 * before the consume is seen by the retry, one after it rings again);
 * only then sleep.
 */
long tf_write(struct tf_sock *s, const void *buf, size_t len, int timeout_ms)
{
    struct pvc_data_ring *r = &s->ring->ring;
    const unsigned char *p = buf;
    int64_t deadline = hn_now_ms() + timeout_ms;
    size_t done = 0;
    bool acked = false;
    while (done < len) {
        int32_t err = pvc_ring_out_error(r);
        if (err)
            return err;
        long n = pvc_ring_tx_copy(r, p + done, len - done);
        if (n < 0)
            return n;
        if (n > 0) {
            done += (size_t)n;
            tf_notify(s);
            acked = false;
            continue;
        }
        if (!acked) {
            pvc_evtchn_ack(s->ring->evtchn);
            acked = true;
            continue;
        }
        if (!sleep_on_channel(s, deadline))
            return -ETIMEDOUT;
        acked = false;
    }
    return (long)len;
}

/* Take what the ring holds now: > 0 bytes, 0 if empty, or < 0. */
static long take(struct tf_sock *s, void *buf, size_t len)
{
    long n = pvc_ring_rx_copy(&s->ring->ring, buf, len, 0);
    if (n > 0)
        tf_notify(s); /* the backend refills only after a notify */
    return n;
}

long tf_read(struct tf_sock *s, void *buf, size_t len, int timeout_ms)
{
    int64_t deadline = hn_now_ms() + timeout_ms;
    bool acked = false;
    for (;;) {
        long n = take(s, buf, len);
        if (n != 0)
            return n;
        int32_t err = pvc_ring_in_error(&s->ring->ring);
        if (err) {
            /* Data published before the error is still ours to read. */
            n = take(s, buf, len);
            if (n != 0)
                return n;
            return err == -ENOTCONN ? 0 : err;
        }
        if (!acked) {
            pvc_evtchn_ack(s->ring->evtchn);
            acked = true;
            continue;
        }
        if (!sleep_on_channel(s, deadline))
            return -ETIMEDOUT;
        acked = false;
    }
}

long tf_read_full(struct tf_sock *s, void *buf, size_t len, int timeout_ms)
{
    unsigned char *p = buf;
    size_t done = 0;
    while (done < len) {
        long n = tf_read(s, p + done, len - done, timeout_ms);
        if (n <= 0)
            return n;
        done += (size_t)n;
    }
    return (long)len;
}

long tf_write_stream(struct tf_sock *s, struct hn_stream *st, uint64_t total,
                     uint64_t *hash, int timeout_ms)
{
    unsigned char *buf = malloc(CHUNK);
    if (!buf)
        return -ENOMEM;
    long ret = 0;
    while (total) {
        size_t n = total < CHUNK ? (size_t)total : CHUNK;
        hn_stream_fill(st, buf, n);
        if (hash)
            *hash = hn_fnv1a(*hash, buf, n);
        long w = tf_write(s, buf, n, timeout_ms);
        if (w < 0) {
            ret = w;
            break;
        }
        total -= n;
    }
    free(buf);
    return ret;
}

long tf_read_to_eof(struct tf_sock *s, uint64_t *bytes, uint64_t *hash,
                    int timeout_ms)
{
    unsigned char *buf = malloc(CHUNK);
    if (!buf)
        return -ENOMEM;
    long n;
    while ((n = tf_read(s, buf, CHUNK, timeout_ms)) > 0) {
        *bytes += (uint64_t)n;
        if (hash)
            *hash = hn_fnv1a(*hash, buf, (size_t)n);
    }
    free(buf);
    return n;
}
