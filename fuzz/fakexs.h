/*
 * An in-process xenstore for the fuzz targets: the libxenstore calls the
 * project makes (xs_read, xs_write, xs_watch, ...) are defined here, so a
 * target linking this file talks to a hash table instead of a daemon.
 * Watches fire as xenstored fires them (on registration, and on a write
 * or removal at, under or above the watched path), queued per handle and
 * signalled on the handle's fd.
 *
 * A "script" plays the peer: steps queued with fakexs_script_*() are
 * carried out one at a time whenever the code under test looks for a
 * watch event and none is queued, so a handshake that waits for its peer
 * sees the peer act, in the order the fuzz input chose.
 */
#ifndef FUZZ_FAKEXS_H
#define FUZZ_FAKEXS_H

#include <stdbool.h>
#include <stddef.h>

struct xs_handle;

struct xs_handle *fakexs_open(void);
/* Frees the handle; the store itself lives until fakexs_reset(). */
void fakexs_free(struct xs_handle *h);
/* Drop every node, watch event and script step. */
void fakexs_reset(void);

/* Direct writes, as the toolstack or the peer (fire watches). */
void fakexs_write(const char *path, const char *val, size_t len);
void fakexs_rm(const char *path);
/* Fire @releaseDomain watches (a domain died). */
void fakexs_release_domain(void);
/* Make the next n transaction ends fail with EAGAIN. */
void fakexs_fail_txns(unsigned n);

/* Peer script: a write (val NULL: removal). */
void fakexs_script_write(const char *path, const char *val, size_t len);
/* Carry out the next step; false if none is left. */
bool fakexs_script_step(void);
bool fakexs_script_pending(void);

#endif
