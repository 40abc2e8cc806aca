/*
 * The store itself: the live tree, one listening socket per simulated
 * domain, and delivery of watch events to the connections.
 */
#include <errno.h>

#include "store_int.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <utlist.h>

#include "conn.h"
#include "path.h"
#include "pvc/log.h"

#define ACCEPTS_PER_WAKEUP 16
#define LISTEN_BACKLOG 64

static const char *const special_names[SPECIAL_COUNT] = {
    [SPECIAL_INTRODUCE] = "@introduceDomain",
    [SPECIAL_RELEASE] = "@releaseDomain",
};

int store_special_index(const char *path)
{
    for (int i = 0; i < SPECIAL_COUNT; i++)
        if (!strcmp(path, special_names[i]))
            return i;
    return -1;
}

/* ---- watch delivery ----------------------------------------------------- */

/* xenstored's watch_permitted(): the watcher sees the event if it can read
 * the node or its parent, or could read the node before a perms change. */
static bool may_see(uint16_t domid, const struct tree_node *node,
                    const struct store_perms *old_perms)
{
    if (old_perms && (perms_access(old_perms, domid) & PERM_READ))
        return true;
    if (perms_access(&node->perms, domid) & PERM_READ)
        return true;
    return node->parent &&
           (perms_access(&node->parent->perms, domid) & PERM_READ);
}

static void send_matching(struct store_conn *c, const char *path,
                          enum tree_match match)
{
    /* A send can kill c (backlog too long); its watches stay allocated
     * until the loop's batch ends, so the walk may stop safely. */
    for (struct watch *w = c->watches.head; w && !c->dead; w = w->next)
        if (watch_matches(w, path, match))
            conn_send_event(c, watch_event_path(w, path), w->token);
}

void store_fire(struct sim_store *st, const char *path,
                const struct tree_node *node, enum tree_match match,
                const struct store_perms *old_perms)
{
    struct store_conn *c, *tmp;
    DL_FOREACH_SAFE(st->conns, c, tmp)
        if (may_see(c->domid, node, old_perms))
            send_matching(c, path, match);
}

static void notify_from_tree(void *ctx, const char *path,
                             const struct tree_node *node,
                             enum tree_match match,
                             const struct store_perms *old_perms)
{
    store_fire(ctx, path, node, match, old_perms);
}

static void fire_special(struct sim_store *st, enum store_special which)
{
    const struct store_perms *perms = &st->special_perms[which];
    struct store_conn *c, *tmp;
    DL_FOREACH_SAFE(st->conns, c, tmp)
        if (perms_access(perms, c->domid) & PERM_READ)
            send_matching(c, special_names[which], TREE_MATCH_EXACT);
}

/* ---- the store ---------------------------------------------------------- */

struct sim_store *sim_store_new(struct pvc_loop *loop)
{
    struct sim_store *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->loop = loop;
    st->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    st->tree = tree_new();
    /* xenstored's special nodes, and the tree the toolstack creates:
     * everything owned by domain 0, no access for guests (which can still
     * use their own /local/domain/<domid>: perms are per node). */
    for (int i = 0; i < SPECIAL_COUNT; i++)
        st->special_perms[i] = perms_single(0, 0);
    if (!st->tree || tree_mkdir(st->tree, 0, "/local/domain", 0) < 0) {
        sim_store_free(st);
        errno = ENOMEM;
        return NULL;
    }
    tree_set_notify(st->tree, notify_from_tree, st);
    return st;
}

static void domain_close(struct sim_store *st, struct store_domain *dom)
{
    struct store_conn *c, *tmp;
    DL_FOREACH_SAFE(st->conns, c, tmp)
        if (c->dom == dom)
            conn_kill(c);
    pvc_loop_del(st->loop, &dom->w);
    close(dom->fd);
    unlink(dom->sock_path);
    HASH_DEL(st->domains, dom);
    free(dom->sock_path);
    free(dom);
}

void sim_store_free(struct sim_store *st)
{
    if (!st)
        return;
    while (st->conns)
        conn_destroy(st->conns);
    struct store_domain *dom, *tmp;
    HASH_ITER(hh, st->domains, dom, tmp)
        domain_close(st, dom);
    tree_free(st->tree);
    if (st->reserve_fd >= 0)
        close(st->reserve_fd);
    free(st);
}

/* ---- domains ------------------------------------------------------------ */

/* Out of descriptors: accept one pending client with the reserve fd and
 * close it, so that the listener does not stay readable forever. */
static void shed_one(struct store_domain *dom)
{
    struct sim_store *st = dom->st;
    if (st->reserve_fd < 0)
        return;
    close(st->reserve_fd);
    int fd = accept(dom->fd, NULL, NULL);
    if (fd >= 0)
        close(fd);
    st->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pvc_warn("store: out of file descriptors, refused a client of "
             "domain %u", dom->domid);
}

static void on_accept(void *ctx, uint32_t events)
{
    struct store_domain *dom = ctx;
    (void)events;
    for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
        int fd = accept4(dom->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EMFILE || errno == ENFILE)
                shed_one(dom);
            return;
        }
        if (dom->n_conns >= STORE_MAX_CONNS) {
            pvc_warn("store: domain %u has too many connections", dom->domid);
            close(fd);
            continue;
        }
        conn_new(dom, fd);
    }
}

static int listen_on(const char *sock_path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(sock_path) >= sizeof(sa.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sa.sun_path, sock_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (unlink(sock_path) < 0 && errno != ENOENT)
        goto fail;
    /* Simulated guests may run as any user. */
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        chmod(sock_path, 0666) < 0 || listen(fd, LISTEN_BACKLOG) < 0)
        goto fail;
    return fd;
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

/* /local/domain/<domid>, owned by the domain, private to it. */
static int make_home(struct sim_store *st, uint16_t domid)
{
    char home[PATH_BUF];
    path_domain(domid, home);
    if (tree_lookup(st->tree, home))
        return 0;
    struct store_perms perms = perms_single(domid, 0);
    int e = tree_mkdir(st->tree, 0, home, 0);
    if (e == 0)
        e = tree_set_perms(st->tree, 0, home, &perms);
    return e;
}

int sim_store_domain_add(struct sim_store *st, pvc_domid_t domid,
                         const char *sock_path)
{
    struct store_domain *dom;
    HASH_FIND(hh, st->domains, &domid, sizeof(domid), dom);
    if (dom) {
        errno = EEXIST;
        return -1;
    }
    dom = calloc(1, sizeof(*dom));
    if (!dom || !(dom->sock_path = strdup(sock_path)))
        goto nomem;
    dom->st = st;
    dom->domid = domid;
    dom->fd = listen_on(sock_path);
    if (dom->fd < 0)
        goto fail;
    if (pvc_loop_add(st->loop, &dom->w, dom->fd, EPOLLIN, on_accept,
                     dom) < 0) {
        close(dom->fd);
        unlink(sock_path);
        goto fail;
    }
    HASH_ADD(hh, st->domains, domid, sizeof(dom->domid), dom);
    int e = make_home(st, domid);
    if (e < 0) {
        domain_close(st, dom);
        errno = -e;
        return -1;
    }
    /* Domain 0 is never "introduced": it is there from the start. */
    if (domid != 0)
        fire_special(st, SPECIAL_INTRODUCE);
    return 0;
nomem:
    errno = ENOMEM;
fail:;
    int saved = errno;
    if (dom)
        free(dom->sock_path);
    free(dom);
    errno = saved;
    return -1;
}

void sim_store_domain_remove(struct sim_store *st, pvc_domid_t domid)
{
    struct store_domain *dom;
    HASH_FIND(hh, st->domains, &domid, sizeof(domid), dom);
    if (!dom)
        return;
    domain_close(st, dom);
    char home[PATH_BUF];
    path_domain(domid, home);
    tree_rm(st->tree, 0, home);
    if (domid != 0)
        fire_special(st, SPECIAL_RELEASE);
}
