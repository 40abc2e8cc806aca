/* One connection's watches: see watch.h. */
#include "watch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <utlist.h>

#include "path.h"

static struct watch *find(const struct watch_list *l, const char *path,
                          const char *token)
{
    struct watch *w;
    DL_FOREACH(l->head, w)
        if (!strcmp(w->path, path) && !strcmp(w->token, token))
            return w;
    return NULL;
}

static void watch_free(struct watch *w)
{
    free(w->path);
    free(w->token);
    free(w);
}

struct watch *watch_add(struct watch_list *l, const char *path,
                        const char *token, bool relative, uint16_t domid)
{
    if (strlen(token) > STORE_MAX_TOKEN) {
        errno = EINVAL;
        return NULL;
    }
    if (find(l, path, token)) {
        errno = EEXIST;
        return NULL;
    }
    if (l->count >= STORE_MAX_WATCHES) {
        errno = ENOSPC;
        return NULL;
    }
    struct watch *w = calloc(1, sizeof(*w));
    if (!w || !(w->path = strdup(path)) || !(w->token = strdup(token))) {
        if (w)
            watch_free(w);
        errno = ENOMEM;
        return NULL;
    }
    w->strip = relative ? path_relative_prefix_len(domid) : 0;
    DL_APPEND(l->head, w);
    l->count++;
    return w;
}

int watch_remove(struct watch_list *l, const char *path, const char *token)
{
    struct watch *w = find(l, path, token);
    if (!w)
        return -ENOENT;
    DL_DELETE(l->head, w);
    l->count--;
    watch_free(w);
    return 0;
}

void watch_clear(struct watch_list *l)
{
    struct watch *w, *tmp;
    DL_FOREACH_SAFE(l->head, w, tmp) {
        DL_DELETE(l->head, w);
        watch_free(w);
    }
    l->count = 0;
}

bool watch_matches(const struct watch *w, const char *path,
                   enum tree_match match)
{
    if (match == TREE_MATCH_EXACT)
        return !strcmp(path, w->path);
    return path_is_below(path, w->path);
}
