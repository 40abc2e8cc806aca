/*
 * One connection's watches: (path, token) pairs, matched against changed
 * paths the way xenstored matches them.  No I/O.
 */
#ifndef SIM_STORE_WATCH_H
#define SIM_STORE_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tree.h"

struct watch {
    char *path;         /* canonical */
    char *token;
    /* Bytes to strip from an event path: a watch set with a relative path
     * gets relative event paths, as from xenstored. */
    size_t strip;
    struct watch *next, *prev;
};

struct watch_list {
    struct watch *head;
    unsigned count;
};

/* Add (canonical path, token); relative: the watcher (domid) used a
 * relative path.  Returns the watch, or NULL with errno EEXIST (same
 * path and token), ENOSPC (too many), EINVAL (token too long), ENOMEM. */
struct watch *watch_add(struct watch_list *l, const char *path,
                        const char *token, bool relative, uint16_t domid);
/* 0 or -ENOENT. */
int watch_remove(struct watch_list *l, const char *path, const char *token);
void watch_clear(struct watch_list *l);

/* Does a change at path, reported with match, concern w? */
bool watch_matches(const struct watch *w, const char *path,
                   enum tree_match match);
/* The path to report to w's owner for a change at path. */
static inline const char *watch_event_path(const struct watch *w,
                                           const char *path)
{
    return path + w->strip;
}

#endif
