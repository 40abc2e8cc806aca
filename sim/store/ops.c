/*
 * What each xenstored request does, as xenstored does it (tools/xenstored/
 * core.c, watch.c, transaction.c): argument checks, the tree operation,
 * and the reply (same type, req_id and tx_id) or an XS_ERROR.
 */
#include <errno.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "path.h"

struct request {
    struct store_conn *c;
    const struct xsd_sockmsg *hdr;
    const char *body;   /* nul-terminated past len */
    size_t len;
    struct txn *txn;    /* the request's transaction, or NULL */
};

/* A handler replies and returns 0, or returns the errno to report. */
typedef int (*op_fn)(struct request *r);

/* ---- arguments and replies ---------------------------------------------- */

static void reply(struct request *r, const void *body, size_t len)
{
    conn_send(r->c, r->hdr->type, r->hdr->req_id, r->hdr->tx_id, body, len);
}

static int ack(struct request *r)
{
    reply(r, "OK", 3);
    return 0;
}

static size_t count_nuls(const struct request *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->len; i++)
        n += r->body[i] == '\0';
    return n;
}

/* The body is exactly one nul-terminated string. */
static const char *one_arg(const struct request *r)
{
    if (r->len == 0 || count_nuls(r) != 1 || r->body[r->len - 1] != '\0')
        return NULL;
    return r->body;
}

/* The body is exactly two nul-terminated strings. */
static bool two_args(const struct request *r, const char **a, const char **b)
{
    if (r->len == 0 || count_nuls(r) != 2 || r->body[r->len - 1] != '\0')
        return false;
    *a = r->body;
    *b = r->body + strlen(r->body) + 1;
    return true;
}

/* Strict decimal below 2^32 (a guest's "12abc" is no number). */
static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;
    if (!*s || strlen(s) > 10)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (unsigned long)(*s - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

/* The tree a read sees: the transaction's snapshot, or the live one. */
static int read_view(struct request *r, const char *path,
                     const struct tree **t)
{
    if (!r->txn) {
        *t = r->c->st->tree;
        return 0;
    }
    *t = txn_tree(r->txn);
    return -txn_note_read(r->txn, path);
}

/* Resolve the single path argument of a plain node request. */
static int node_arg(struct request *r, char *path)
{
    const char *arg = one_arg(r);
    if (!arg || path_canonical(r->c->domid, arg, false, path, NULL) < 0)
        return EINVAL;
    return 0;
}

/* ---- reads -------------------------------------------------------------- */

static int get_readable(struct request *r, const char *path,
                        const struct tree_node **n)
{
    const struct tree *t;
    int err = read_view(r, path, &t);
    return err ? err : -tree_get(t, r->c->domid, path, PERM_READ, n);
}

static int op_read(struct request *r)
{
    char path[PATH_BUF];
    const struct tree_node *n;
    int err = node_arg(r, path);
    if (!err)
        err = get_readable(r, path, &n);
    if (err)
        return err;
    reply(r, n->value ? n->value->data : "", n->value ? n->value->len : 0);
    return 0;
}

static int op_directory(struct request *r)
{
    char path[PATH_BUF];
    const struct tree_node *n;
    int err = node_arg(r, path);
    if (!err)
        err = get_readable(r, path, &n);
    if (err)
        return err;
    char names[XENSTORE_PAYLOAD_MAX];
    size_t len = tree_child_names(n, names, sizeof(names));
    if (len > sizeof(names))
        return E2BIG;   /* libxenstore then pages with XS_DIRECTORY_PART */
    reply(r, names, len);
    return 0;
}

/* Reply: "<generation>\0" then whole child names from byte `off` of the
 * list, and one more "\0" once the list is done (xenstored's
 * send_directory_part()). */
static void reply_directory_part(struct request *r, const char *gen,
                                 const char *names, size_t total,
                                 size_t off)
{
    char data[XENSTORE_PAYLOAD_MAX];
    size_t genlen = strlen(gen) + 1;
    memcpy(data, gen, genlen);
    if (off >= total) {
        data[genlen] = '\0';
        reply(r, data, genlen + 1);
        return;
    }
    size_t maxlen = XENSTORE_PAYLOAD_MAX - genlen - 1, len = 0;
    const char *child = names + off;
    while (len + strlen(child) < maxlen) {
        len += strlen(child) + 1;
        child += strlen(child) + 1;
        if (off + len >= total)
            break;
    }
    memcpy(data + genlen, names + off, len);
    if (off + len >= total)
        data[genlen + len++] = '\0';
    reply(r, data, genlen + len);
}

static int op_directory_part(struct request *r)
{
    const char *arg, *offstr;
    char path[PATH_BUF];
    unsigned long off;
    const struct tree_node *n;
    if (!two_args(r, &arg, &offstr) ||
        path_canonical(r->c->domid, arg, false, path, NULL) < 0 ||
        !parse_uint(offstr, UINT32_MAX, &off))
        return EINVAL;
    int err = get_readable(r, path, &n);
    if (err)
        return err;
    size_t total = tree_child_names(n, NULL, 0);
    /* One extra nul so that a bogus offset inside a name still stops. */
    char *names = malloc(total + 1);
    if (!names)
        return ENOMEM;
    tree_child_names(n, names, total);
    names[total] = '\0';
    char gen[24];
    snprintf(gen, sizeof(gen), "%llu", (unsigned long long)n->gen);
    reply_directory_part(r, gen, names, total, off);
    free(names);
    return 0;
}

static int op_get_perms(struct request *r)
{
    const char *arg = one_arg(r);
    char path[PATH_BUF];
    const struct store_perms *perms;
    if (!arg || path_canonical(r->c->domid, arg, true, path, NULL) < 0)
        return EINVAL;
    if (path[0] == '@') {
        int idx = store_special_index(path);
        if (idx < 0)
            return ENOENT;
        perms = &r->c->st->special_perms[idx];
        if (!(perms_access(perms, r->c->domid) & PERM_READ))
            return EACCES;
    } else {
        const struct tree_node *n;
        int err = get_readable(r, path, &n);
        if (err)
            return err;
        perms = &n->perms;
    }
    char buf[STORE_MAX_PERMS * 8];
    reply(r, buf, perms_format(perms, buf, sizeof(buf)));
    return 0;
}

/* ---- changes ------------------------------------------------------------ */

static int op_write(struct request *r)
{
    char path[PATH_BUF];
    const char *nul = memchr(r->body, '\0', r->len);
    if (!nul || path_canonical(r->c->domid, r->body, false, path, NULL) < 0)
        return EINVAL;
    size_t off = (size_t)(nul - r->body) + 1;
    struct tree_value *v = tree_value_new(r->body + off, r->len - off);
    if (!v)
        return ENOMEM;
    int e = r->txn ? txn_write(r->txn, path, v)
                   : tree_write(r->c->st->tree, r->c->domid, path, v, 0);
    tree_value_unref(v);
    return e ? -e : ack(r);
}

static int op_mkdir(struct request *r)
{
    char path[PATH_BUF];
    int err = node_arg(r, path);
    if (err)
        return err;
    int e = r->txn ? txn_mkdir(r->txn, path)
                   : tree_mkdir(r->c->st->tree, r->c->domid, path, 0);
    return e ? -e : ack(r);
}

static int op_rm(struct request *r)
{
    char path[PATH_BUF];
    int err = node_arg(r, path);
    if (err)
        return err;
    int e = r->txn ? txn_rm(r->txn, path)
                   : tree_rm(r->c->st->tree, r->c->domid, path);
    return e ? -e : ack(r);
}

static int set_special_perms(struct request *r, const char *path,
                             const struct store_perms *perms)
{
    int idx = store_special_index(path);
    if (idx < 0)
        return ENOENT;
    struct store_perms *cur = &r->c->st->special_perms[idx];
    if (!(perms_access(cur, r->c->domid) & PERM_OWNER))
        return EACCES;
    if (r->c->domid != 0 && perms_owner(perms) != perms_owner(cur))
        return EPERM;
    *cur = *perms;
    return ack(r);
}

static int op_set_perms(struct request *r)
{
    const char *nul = memchr(r->body, '\0', r->len);
    char path[PATH_BUF];
    struct store_perms perms;
    if (!nul || path_canonical(r->c->domid, r->body, true, path, NULL) < 0)
        return EINVAL;
    size_t off = (size_t)(nul - r->body) + 1;
    int e = perms_parse(r->body + off, r->len - off, &perms);
    if (e)
        return -e;
    if (path[0] == '@')
        return set_special_perms(r, path, &perms);
    e = r->txn ? txn_set_perms(r->txn, path, &perms)
               : tree_set_perms(r->c->st->tree, r->c->domid, path, &perms);
    return e ? -e : ack(r);
}

/* ---- watches ------------------------------------------------------------ */

static int op_watch(struct request *r)
{
    const char *arg, *token;
    char path[PATH_BUF];
    bool relative;
    if (!two_args(r, &arg, &token) ||
        path_canonical(r->c->domid, arg, true, path, &relative) < 0)
        return EINVAL;
    struct watch *w = watch_add(&r->c->watches, path, token, relative,
                                r->c->domid);
    if (!w)
        return errno;
    ack(r);
    /* xenstored fires every new watch once, right after the ack. */
    conn_send_event(r->c, watch_event_path(w, w->path), w->token);
    return 0;
}

static int op_unwatch(struct request *r)
{
    const char *arg, *token;
    char path[PATH_BUF];
    if (!two_args(r, &arg, &token) ||
        path_canonical(r->c->domid, arg, true, path, NULL) < 0)
        return EINVAL;
    int e = watch_remove(&r->c->watches, path, token);
    return e ? -e : ack(r);
}

/* ---- transactions ------------------------------------------------------- */

static bool txn_id_in_use(const struct store_conn *c, uint32_t id)
{
    for (unsigned i = 0; i < STORE_MAX_TXNS; i++)
        if (c->txns[i] && txn_id(c->txns[i]) == id)
            return true;
    return false;
}

static int op_transaction_start(struct request *r)
{
    struct store_conn *c = r->c;
    if (r->txn)
        return EBUSY;   /* no nesting */
    unsigned slot = 0;
    while (slot < STORE_MAX_TXNS && c->txns[slot])
        slot++;
    if (slot == STORE_MAX_TXNS || c->dom->n_txns >= STORE_MAX_DOMAIN_TXNS)
        return ENOSPC;
    do
        c->last_txn_id++;
    while (c->last_txn_id == 0 || txn_id_in_use(c, c->last_txn_id));
    c->txns[slot] = txn_start(c->st->tree, c->last_txn_id, c->domid);
    if (!c->txns[slot])
        return ENOMEM;
    c->dom->n_txns++;
    char id[16];
    int n = snprintf(id, sizeof(id), "%u", c->last_txn_id);
    reply(r, id, (size_t)n + 1);
    return 0;
}

static int op_transaction_end(struct request *r)
{
    const char *arg = one_arg(r);
    if (!r->txn)
        return ENOENT;
    if (!arg || (strcmp(arg, "T") && strcmp(arg, "F")))
        return EINVAL;
    for (unsigned i = 0; i < STORE_MAX_TXNS; i++)
        if (r->c->txns[i] == r->txn)
            r->c->txns[i] = NULL;
    r->c->dom->n_txns--;
    int e = !strcmp(arg, "T") ? txn_commit(r->txn, r->c->st->tree) : 0;
    txn_free(r->txn);
    return e ? -e : ack(r);
}

/* ---- misc --------------------------------------------------------------- */

static int op_get_domain_path(struct request *r)
{
    const char *arg = one_arg(r);
    unsigned long domid;
    if (!arg || !parse_uint(arg, 0xffff, &domid))
        return EINVAL;
    char path[PATH_BUF];
    path_domain((uint16_t)domid, path);
    reply(r, path, strlen(path) + 1);
    return 0;
}

static const op_fn handlers[XS_TYPE_COUNT] = {
    [XS_DIRECTORY] = op_directory,
    [XS_READ] = op_read,
    [XS_GET_PERMS] = op_get_perms,
    [XS_WATCH] = op_watch,
    [XS_UNWATCH] = op_unwatch,
    [XS_TRANSACTION_START] = op_transaction_start,
    [XS_TRANSACTION_END] = op_transaction_end,
    [XS_GET_DOMAIN_PATH] = op_get_domain_path,
    [XS_WRITE] = op_write,
    [XS_MKDIR] = op_mkdir,
    [XS_RM] = op_rm,
    [XS_SET_PERMS] = op_set_perms,
    [XS_DIRECTORY_PART] = op_directory_part,
};

static struct txn *find_txn(const struct store_conn *c, uint32_t id)
{
    for (unsigned i = 0; i < STORE_MAX_TXNS; i++)
        if (c->txns[i] && txn_id(c->txns[i]) == id)
            return c->txns[i];
    return NULL;
}

void ops_dispatch(struct store_conn *c, const struct xsd_sockmsg *req,
                  const char *body)
{
    struct request r = { .c = c, .hdr = req, .body = body, .len = req->len };
    int err;
    if (req->type >= XS_TYPE_COUNT || !handlers[req->type])
        err = ENOSYS;
    else if (req->tx_id && !(r.txn = find_txn(c, req->tx_id)))
        err = ENOENT;
    else
        err = handlers[req->type](&r);
    if (err)
        conn_send_error(c, req, err);
}
