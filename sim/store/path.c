/* Xenstore paths: see path.h. */
#include "path.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static bool valid_chars(const char *s)
{
    static const char ok[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                             "abcdefghijklmnopqrstuvwxyz"
                             "0123456789-/_@";
    return s[strspn(s, ok)] == '\0';
}

void path_domain(uint16_t domid, char *out)
{
    snprintf(out, PATH_BUF, "/local/domain/%u", domid);
}

size_t path_relative_prefix_len(uint16_t domid)
{
    char dom[PATH_BUF];
    path_domain(domid, dom);
    return strlen(dom) + 1;
}

int path_canonical(uint16_t domid, const char *in, bool allow_special,
                   char *out, bool *relative)
{
    if (!*in || !valid_chars(in) || (in[0] == '@' && !allow_special))
        return -EINVAL;
    bool rel = in[0] != '/' && in[0] != '@';
    int n;
    if (rel)
        n = snprintf(out, PATH_BUF, "/local/domain/%u/%s", domid, in);
    else
        n = snprintf(out, PATH_BUF, "%s", in);
    if (n < 0 || n > XENSTORE_ABS_PATH_MAX)
        return -EINVAL;
    if (strstr(out, "//") || (n > 1 && out[n - 1] == '/'))
        return -EINVAL;
    if (relative)
        *relative = rel;
    return 0;
}

bool path_is_below(const char *child, const char *parent)
{
    size_t len = strlen(parent);
    if (strncmp(child, parent, len) != 0)
        return false;
    /* "/" is the parent of everything; otherwise "/a" is not above "/ab". */
    return len == 1 || child[len] == '\0' || child[len] == '/';
}

void path_parent(const char *path, char *out)
{
    const char *slash = strrchr(path, '/');
    size_t len = slash && slash != path ? (size_t)(slash - path) : 1;
    memcpy(out, path, len);
    out[len] = '\0';
}
