/*
 * An in-process platform for the fuzz targets: the "guest" is a memfd of
 * FAKE_PAGES pages that the harness writes directly (it plays the peer
 * domain), grant refs 1..FAKE_PAGES name its pages, and event channels are
 * eventfds.  Mapping a grant maps the memfd's page, so the code under test
 * sees the harness's writes as it would see a real peer's.
 */
#ifndef FUZZ_FAKEPLAT_H
#define FUZZ_FAKEPLAT_H

#include "pvc/platform.h"

#include <stdbool.h>
#include <stdint.h>

#define FAKE_PAGES 48u
#define FAKE_PAGE 4096u
#define FAKE_PORTS 16u /* valid peer ports: 1..FAKE_PORTS-1 */

struct xs_handle;

struct pvc_platform *fakeplat_open(pvc_domid_t own_domid);
/* Also checks that every grant and channel was given back. */
void fakeplat_close(struct pvc_platform *plat);
/* The harness's view of guest memory: page ref-1 at offset (ref-1)*4096. */
unsigned char *fakeplat_mem(struct pvc_platform *plat);
void fakeplat_zero(struct pvc_platform *plat);
/* Ring the doorbell of the channel bound to peer port `port` (no-op if
 * none is bound).  Returns whether one was bound. */
bool fakeplat_kick(struct pvc_platform *plat, pvc_port_t port);
/* Notifications the code under test sent on port's channel, and reset. */
unsigned fakeplat_take_notifies(struct pvc_platform *plat, pvc_port_t port);
/* Channels and mappings currently held by the code under test. */
unsigned fakeplat_open_channels(struct pvc_platform *plat);
unsigned fakeplat_live_maps(struct pvc_platform *plat);
/* Make the next n grant operations fail (EFAULT-like ENOENT). */
void fakeplat_fail_grants(struct pvc_platform *plat, unsigned n);
/* What pvc_store_open() returns (a fake xenstore handle, fakexs.h).
 * Frontend side: pvc_grant_share hands out guest pages in ascending ref
 * order and pvc_evtchn_alloc_unbound ports from 1, both reset by
 * fakeplat_zero(). */
void fakeplat_set_store(struct pvc_platform *plat, struct xs_handle *xs);

#endif
