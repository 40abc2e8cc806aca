/* Small xenstore helpers shaped like libxl's (libxl_xshelp.c). */
#include "simxl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool simxl_write(struct xs_handle *xs, xs_transaction_t t, const char *path,
                 const char *val)
{
    return xs_write(xs, t, path, val, strlen(val));
}

/* A node is removable as a parent once it holds no value and no child. */
static bool empty_node(struct xs_handle *xs, xs_transaction_t t,
                       const char *path)
{
    unsigned len = 0, n = 0;
    char *val = xs_read(xs, t, path, &len);
    if (!val)
        return false;
    free(val);
    if (len != 0)
        return false;
    char **dir = xs_directory(xs, t, path, &n);
    if (!dir)
        return false;
    free(dir);
    return n == 0;
}

void simxl_path_cleanup(struct xs_handle *xs, xs_transaction_t t,
                        const char *path)
{
    char buf[256];
    if (strlen(path) >= sizeof(buf))
        return;
    strcpy(buf, path);
    if (!xs_rm(xs, t, buf))
        return;
    for (char *last = strrchr(buf, '/'); last; last = strrchr(buf, '/')) {
        *last = '\0';
        if (!buf[0] || !empty_node(xs, t, buf) || !xs_rm(xs, t, buf))
            break;
    }
}
