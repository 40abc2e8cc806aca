/*
 * Transactions.  A transaction works on a private copy of the tree taken
 * when it starts, and remembers (path, existed, generation) for every node
 * it read or changed, as they were at the start.  Committing checks that
 * none of those nodes changed in the live tree since, then replays the
 * logged changes on the live tree (which fires the watches, as xenstored
 * fires a transaction's watches only when it commits).
 *
 * The txn_* operations mirror tree.h's and return the same errors.
 */
#ifndef SIM_STORE_TXN_H
#define SIM_STORE_TXN_H

#include <stdint.h>

#include "tree.h"

struct txn;

/* A transaction of domid over a snapshot of live. */
struct txn *txn_start(const struct tree *live, uint32_t id, uint16_t domid);
void txn_free(struct txn *txn);
uint32_t txn_id(const struct txn *txn);
/* The transaction's view, for reads (after txn_note_read). */
const struct tree *txn_tree(const struct txn *txn);

/* Record that path is about to be read. */
int txn_note_read(struct txn *txn, const char *path);

int txn_write(struct txn *txn, const char *path, struct tree_value *v);
int txn_mkdir(struct txn *txn, const char *path);
int txn_rm(struct txn *txn, const char *path);
int txn_set_perms(struct txn *txn, const char *path,
                  const struct store_perms *perms);

/* Commit into live: 0, or -EAGAIN (live changed what the transaction
 * used; nothing is applied).  The transaction is not freed. */
int txn_commit(struct txn *txn, struct tree *live);

#endif
