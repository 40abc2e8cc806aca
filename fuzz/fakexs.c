/* The in-process xenstore: see fakexs.h. */
#include "fakexs.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <uthash.h>
#include <xenstore.h>

struct node {
    char *path;
    char *val;
    unsigned len;
    UT_hash_handle hh;
};

struct watch {
    char *path, *token;
    struct watch *next;
};

struct event {
    char **vec; /* as xs_check_watch returns it: one malloc */
    struct event *next;
};

struct xs_handle {
    int efd; /* readable while events are queued or the script can act */
    struct watch *watches;
    struct event *head, **tail;
    struct xs_handle *next;
};

struct step {
    char *path, *val; /* val NULL: rm */
    size_t len;
    struct step *next;
};

static struct node *nodes;
static struct xs_handle *handles;
static struct step *script, **script_tail = &script;
static unsigned txn_failures;

/* ---- events -------------------------------------------------------- */

static void signal_fd(struct xs_handle *h, bool readable)
{
    uint64_t n = 1;
    if (readable) {
        if (write(h->efd, &n, sizeof(n)) < 0)
            abort();
    } else if (read(h->efd, &n, sizeof(n)) < 0 && errno != EAGAIN) {
        abort();
    }
}

static void queue_event(struct xs_handle *h, const char *path,
                        const char *token)
{
    size_t pl = strlen(path) + 1, tl = strlen(token) + 1;
    char **vec = malloc(2 * sizeof(char *) + pl + tl);
    struct event *e = malloc(sizeof(*e));
    if (!vec || !e)
        abort();
    vec[XS_WATCH_PATH] = (char *)(vec + 2);
    vec[XS_WATCH_TOKEN] = vec[XS_WATCH_PATH] + pl;
    memcpy(vec[XS_WATCH_PATH], path, pl);
    memcpy(vec[XS_WATCH_TOKEN], token, tl);
    e->vec = vec;
    e->next = NULL;
    *h->tail = e;
    h->tail = &e->next;
    signal_fd(h, true);
}

/* a is b, or lies under b. */
static bool at_or_under(const char *a, const char *b)
{
    size_t n = strlen(b);
    return !strncmp(a, b, n) && (a[n] == '\0' || a[n] == '/');
}

static void fire(const char *path)
{
    for (struct xs_handle *h = handles; h; h = h->next)
        for (struct watch *w = h->watches; w; w = w->next)
            if (w->path[0] != '@' &&
                (at_or_under(path, w->path) || at_or_under(w->path, path)))
                queue_event(h, path, w->token);
}

/* ---- nodes --------------------------------------------------------- */

static struct node *find(const char *path)
{
    struct node *n;
    HASH_FIND_STR(nodes, path, n);
    return n;
}

static void set(const char *path, const char *val, size_t len)
{
    struct node *n = find(path);
    if (!n) {
        n = calloc(1, sizeof(*n));
        if (!n || !(n->path = strdup(path)))
            abort();
        HASH_ADD_KEYPTR(hh, nodes, n->path, strlen(n->path), n);
    }
    free(n->val);
    n->val = malloc(len + 1);
    if (!n->val)
        abort();
    memcpy(n->val, val, len);
    n->val[len] = '\0';
    n->len = (unsigned)len;
}

/* xenstored creates the parents of a node it writes. */
static void set_with_parents(const char *path, const char *val, size_t len)
{
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        if (!find(buf))
            set(buf, "", 0);
        *p = '/';
    }
    set(path, val, len);
}

static void node_free(struct node *n)
{
    HASH_DEL(nodes, n);
    free(n->path);
    free(n->val);
    free(n);
}

static bool remove_tree(const char *path)
{
    struct node *n, *tmp;
    bool found = false;
    HASH_ITER(hh, nodes, n, tmp) {
        if (at_or_under(n->path, path)) {
            node_free(n);
            found = true;
        }
    }
    return found;
}

/* ---- the harness's side -------------------------------------------- */

void fakexs_write(const char *path, const char *val, size_t len)
{
    if (path[0] != '/')
        return;
    set_with_parents(path, val, len);
    fire(path);
}

void fakexs_rm(const char *path)
{
    if (remove_tree(path))
        fire(path);
}

void fakexs_release_domain(void)
{
    for (struct xs_handle *h = handles; h; h = h->next)
        for (struct watch *w = h->watches; w; w = w->next)
            if (!strcmp(w->path, "@releaseDomain"))
                queue_event(h, w->path, w->token);
}

void fakexs_fail_txns(unsigned n)
{
    txn_failures = n;
}

static void signal_script(void)
{
    for (struct xs_handle *h = handles; h; h = h->next)
        signal_fd(h, true);
}

void fakexs_script_write(const char *path, const char *val, size_t len)
{
    struct step *s = calloc(1, sizeof(*s));
    if (!s || !(s->path = strdup(path)))
        abort();
    if (val) {
        s->val = malloc(len + 1);
        if (!s->val)
            abort();
        memcpy(s->val, val, len);
        s->len = len;
    }
    *script_tail = s;
    script_tail = &s->next;
    signal_script();
}

bool fakexs_script_pending(void)
{
    return script != NULL;
}

bool fakexs_script_step(void)
{
    struct step *s = script;
    if (!s)
        return false;
    script = s->next;
    if (!script)
        script_tail = &script;
    if (s->val)
        fakexs_write(s->path, s->val, s->len);
    else
        fakexs_rm(s->path);
    free(s->path);
    free(s->val);
    free(s);
    return true;
}

static void events_free(struct xs_handle *h)
{
    while (h->head) {
        struct event *e = h->head;
        h->head = e->next;
        free(e->vec);
        free(e);
    }
    h->tail = &h->head;
}

void fakexs_reset(void)
{
    struct node *n, *tmp;
    HASH_ITER(hh, nodes, n, tmp)
        node_free(n);
    while (fakexs_script_pending()) {
        struct step *s = script;
        script = s->next;
        free(s->path);
        free(s->val);
        free(s);
    }
    script_tail = &script;
    txn_failures = 0;
    for (struct xs_handle *h = handles; h; h = h->next)
        events_free(h);
}

struct xs_handle *fakexs_open(void)
{
    struct xs_handle *h = calloc(1, sizeof(*h));
    if (!h)
        abort();
    h->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (h->efd < 0)
        abort();
    h->tail = &h->head;
    h->next = handles;
    handles = h;
    return h;
}

void fakexs_free(struct xs_handle *h)
{
    for (struct xs_handle **p = &handles; *p; p = &(*p)->next) {
        if (*p == h) {
            *p = h->next;
            break;
        }
    }
    while (h->watches) {
        struct watch *w = h->watches;
        h->watches = w->next;
        free(w->path);
        free(w->token);
        free(w);
    }
    events_free(h);
    close(h->efd);
    free(h);
}

/* ---- libxenstore, as the code under test calls it ------------------ */

void xs_close(struct xs_handle *h)
{
    /* Handles belong to the harness (fakexs_free). */
    (void)h;
}

void *xs_read(struct xs_handle *h, xs_transaction_t t, const char *path,
              unsigned int *len)
{
    (void)h;
    (void)t;
    struct node *n = find(path);
    if (!n) {
        errno = ENOENT;
        return NULL;
    }
    char *v = malloc(n->len + 1);
    if (!v)
        abort();
    memcpy(v, n->val, n->len + 1);
    if (len)
        *len = n->len;
    return v;
}

bool xs_write(struct xs_handle *h, xs_transaction_t t, const char *path,
              const void *data, unsigned int len)
{
    (void)h;
    (void)t;
    if (path[0] != '/') {
        errno = EINVAL;
        return false;
    }
    fakexs_write(path, data, len);
    return true;
}

bool xs_rm(struct xs_handle *h, xs_transaction_t t, const char *path)
{
    (void)h;
    (void)t;
    if (!find(path)) {
        errno = ENOENT;
        return false;
    }
    fakexs_rm(path);
    return true;
}

char **xs_directory(struct xs_handle *h, xs_transaction_t t,
                    const char *path, unsigned int *num)
{
    (void)h;
    (void)t;
    if (!find(path)) {
        errno = ENOENT;
        return NULL;
    }
    size_t plen = strlen(path), count = 0, bytes = 0;
    struct node *n, *tmp;
    /* Direct children only: one more component, no further '/'. */
    HASH_ITER(hh, nodes, n, tmp) {
        const char *rest = n->path + plen;
        if (!strncmp(n->path, path, plen) && rest[0] == '/' &&
            !strchr(rest + 1, '/')) {
            count++;
            bytes += strlen(rest);
        }
    }
    char **vec = malloc((count + 1) * sizeof(char *) + bytes + 1);
    if (!vec)
        abort();
    char *out = (char *)(vec + count + 1);
    size_t i = 0;
    HASH_ITER(hh, nodes, n, tmp) {
        const char *rest = n->path + plen;
        if (!strncmp(n->path, path, plen) && rest[0] == '/' &&
            !strchr(rest + 1, '/')) {
            vec[i++] = out;
            strcpy(out, rest + 1);
            out += strlen(rest);
        }
    }
    vec[i] = NULL;
    *num = (unsigned)count;
    return vec;
}

bool xs_watch(struct xs_handle *h, const char *path, const char *token)
{
    struct watch *w = calloc(1, sizeof(*w));
    if (!w || !(w->path = strdup(path)) || !(w->token = strdup(token)))
        abort();
    w->next = h->watches;
    h->watches = w;
    queue_event(h, path, token); /* xenstored fires a new watch once */
    return true;
}

bool xs_unwatch(struct xs_handle *h, const char *path, const char *token)
{
    for (struct watch **p = &h->watches; *p; p = &(*p)->next) {
        struct watch *w = *p;
        if (!strcmp(w->path, path) && !strcmp(w->token, token)) {
            *p = w->next;
            free(w->path);
            free(w->token);
            free(w);
            return true;
        }
    }
    errno = ENOENT;
    return false;
}

int xs_fileno(struct xs_handle *h)
{
    return h->efd;
}

char **xs_check_watch(struct xs_handle *h)
{
    /* The peer acts when we would otherwise have nothing to report. */
    while (!h->head && fakexs_script_step())
        ;
    struct event *e = h->head;
    if (!e) {
        signal_fd(h, false);
        errno = EAGAIN;
        return NULL;
    }
    h->head = e->next;
    if (!h->head)
        h->tail = &h->head;
    char **vec = e->vec;
    free(e);
    if (!h->head && !fakexs_script_pending())
        signal_fd(h, false);
    return vec;
}

xs_transaction_t xs_transaction_start(struct xs_handle *h)
{
    (void)h;
    return 1;
}

bool xs_transaction_end(struct xs_handle *h, xs_transaction_t t, bool abort_)
{
    (void)h;
    (void)t;
    if (!abort_ && txn_failures) {
        txn_failures--;
        errno = EAGAIN;
        return false;
    }
    return true;
}

char *xs_get_domain_path(struct xs_handle *h, unsigned int domid)
{
    (void)h;
    char *p;
    if (asprintf(&p, "/local/domain/%u", domid) < 0)
        abort();
    return p;
}
