/*
 * pvcalls-simxl: `xl` for the simulated platform.
 *
 *   pvcalls-simxl [--sim-dir DIR] create DOMID [--pvcalls-backend BE]
 *                                            [--no-pvcalls]
 *   pvcalls-simxl [--sim-dir DIR] destroy DOMID
 *   pvcalls-simxl [--sim-dir DIR] device-add DOMID [--pvcalls-backend BE]
 *   pvcalls-simxl [--sim-dir DIR] device-remove DOMID DEVID
 *   pvcalls-simxl [--sim-dir DIR] list
 *
 * DIR defaults to $PVC_SIM_DIR, else pvc_sim_default_dir().  Exit status
 * 0 on success, 1 on failure (with a message), 2 on bad usage.
 */
#include "simxl.h"

#include "pvc/platform.h"
#include "pvc/sim_proto.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_DEVICES 256
#define DOMID_LIMIT 0x7FF0u

struct ctx {
    char dir[PATH_MAX / 2];
    struct pvc_platform *plat;
    struct xs_handle *xs;
};

static void usage(FILE *out)
{
    fprintf(out,
        "usage: pvcalls-simxl [--sim-dir DIR] COMMAND\n"
        "  create DOMID [--pvcalls-backend BEDOMID] [--no-pvcalls]\n"
        "  destroy DOMID\n"
        "  device-add DOMID [--pvcalls-backend BEDOMID]\n"
        "  device-remove DOMID DEVID\n"
        "  list\n");
}

static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("pvcalls-simxl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

static int parse_uint(const char *s, unsigned long max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > max)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* A broker call's failure, worded for the user. */
static int broker_fail(const struct ctx *c, const char *what, unsigned domid,
                       int rc)
{
    if (rc == -ENOENT || rc == -ECONNREFUSED)
        return fail("no broker is running in %s (start pvcalls-simd)",
                    c->dir);
    return fail("cannot %s domain %u: %s", what, domid, strerror(-rc));
}

static bool domain_exists(const struct ctx *c, unsigned domid)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s/%u.sock", c->dir, SIM_STORE_DIR,
             domid);
    return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* Domain 0's view of the store, through the platform layer. */
static int store_connect(struct ctx *c)
{
    struct pvc_platform_opts o = {
        .kind = PVC_PLATFORM_SIM, .sim_domid = 0, .sim_dir = c->dir,
    };
    c->plat = pvc_platform_open(&o);
    if (!c->plat)
        return fail("cannot reach the broker in %s: %s", c->dir,
                    strerror(errno));
    c->xs = pvc_store_open(c->plat);
    if (!c->xs)
        return fail("cannot reach the store: %s", strerror(errno));
    return 0;
}

static void store_disconnect(struct ctx *c)
{
    if (c->xs)
        xs_close(c->xs);
    if (c->plat)
        pvc_platform_close(c->plat);
}

/* --pvcalls-backend / --no-pvcalls, after the DOMID. */
static int parse_device_opts(int argc, char **argv, bool allow_none,
                             unsigned *be, bool *none)
{
    static const struct option longopts[] = {
        { "pvcalls-backend", required_argument, NULL, 'b' },
        { "no-pvcalls", no_argument, NULL, 'n' },
        { 0 },
    };
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
        if (ch == 'b' && parse_uint(optarg, DOMID_LIMIT - 1, be) == 0)
            continue;
        if (ch == 'n' && allow_none) {
            *none = true;
            continue;
        }
        return -1;
    }
    return optind == argc ? 0 : -1;
}

static int add_device(struct ctx *c, unsigned fe, unsigned be,
                      bool print_devid)
{
    if (!domain_exists(c, be))
        return fail("backend domain %u does not exist", be);
    unsigned devid;
    if (simxl_device_add(c->xs, fe, be, &devid) < 0)
        return fail("cannot add a pvcalls device to domain %u: %s", fe,
                    strerror(errno));
    if (print_devid)
        printf("%u\n", devid);
    return 0;
}

static int cmd_create(struct ctx *c, unsigned domid, int argc, char **argv)
{
    unsigned be = 0;
    bool no_pvcalls = false;
    if (parse_device_opts(argc, argv, true, &be, &no_pvcalls) < 0) {
        usage(stderr);
        return 2;
    }
    if (!no_pvcalls && !domain_exists(c, be))
        return fail("backend domain %u does not exist", be);
    int rc = simxl_broker_call(c->dir, SIM_OP_DOMAIN_CREATE, domid);
    if (rc)
        return broker_fail(c, "create", domid, rc);
    if (no_pvcalls)
        return 0;
    if (store_connect(c) || add_device(c, domid, be, false)) {
        /* libxl destroys a domain whose creation failed half-way. */
        simxl_broker_call(c->dir, SIM_OP_DOMAIN_DESTROY, domid);
        return 1;
    }
    return 0;
}

/* 0 done, 1 some backend timed out (reported), -1 failed (reported). */
static int remove_devices(struct ctx *c, struct simxl_dev *devs, int n)
{
    int rc = simxl_devices_remove(c->xs, devs, n);
    if (rc < 0) {
        fail("cannot remove devices: %s", strerror(errno));
        return -1;
    }
    return rc;
}

/* /libxl/<domid> goes with the domain, as in libxl's devices_destroy_cb. */
static void remove_libxl_dir(struct ctx *c, unsigned domid)
{
    char path[64];
    snprintf(path, sizeof(path), "/libxl/%u", domid);
    for (;;) {
        xs_transaction_t t = xs_transaction_start(c->xs);
        if (t == XBT_NULL)
            return;
        simxl_path_cleanup(c->xs, t, path);
        if (xs_transaction_end(c->xs, t, false) || errno != EAGAIN)
            return;
    }
}

static int cmd_destroy(struct ctx *c, unsigned domid)
{
    if (!domain_exists(c, domid))
        return fail("domain %u does not exist", domid);
    if (store_connect(c))
        return 1;
    struct simxl_dev devs[MAX_DEVICES];
    int n = simxl_devices_list(c->xs, domid, devs, MAX_DEVICES);
    if (n < 0)
        return fail("cannot list the devices of domain %u: %s", domid,
                    strerror(errno));
    /* A backend that did not close is reported, not fatal: the domain
     * goes anyway, as with xl destroy. */
    if (remove_devices(c, devs, n) < 0)
        return 1;
    remove_libxl_dir(c, domid);
    int rc = simxl_broker_call(c->dir, SIM_OP_DOMAIN_DESTROY, domid);
    if (rc)
        return broker_fail(c, "destroy", domid, rc);
    return 0;
}

static int cmd_device_remove(struct ctx *c, unsigned domid, unsigned devid)
{
    if (store_connect(c))
        return 1;
    struct simxl_dev dev;
    if (simxl_device_find(c->xs, domid, devid, &dev) < 0)
        return fail("domain %u has no pvcalls device %u", domid, devid);
    /* libxl fails a detach whose backend timed out (after removing the
     * entries all the same). */
    return remove_devices(c, &dev, 1) == 0 ? 0 : 1;
}

static int cmd_device_add(struct ctx *c, unsigned domid, int argc,
                          char **argv)
{
    unsigned be = 0;
    bool none = false;
    if (parse_device_opts(argc, argv, false, &be, &none) < 0) {
        usage(stderr);
        return 2;
    }
    if (!domain_exists(c, domid))
        return fail("domain %u does not exist", domid);
    if (store_connect(c))
        return 1;
    return add_device(c, domid, be, true);
}

static int compare_uint(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return x < y ? -1 : x > y;
}

static int cmd_list(struct ctx *c)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", c->dir, SIM_STORE_DIR);
    DIR *d = opendir(path);
    if (!d)
        return fail("cannot read %s: %s", path, strerror(errno));
    unsigned ids[1024];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < sizeof(ids) / sizeof(ids[0])) {
        char num[16];
        unsigned id;
        if (sscanf(e->d_name, "%15[0-9].sock", num) != 1 ||
            strcmp(e->d_name + strlen(num), ".sock") ||
            parse_uint(num, DOMID_LIMIT - 1, &id) < 0 ||
            !domain_exists(c, id))
            continue;
        ids[n++] = id;
    }
    closedir(d);
    qsort(ids, n, sizeof(ids[0]), compare_uint);
    for (size_t i = 0; i < n; i++)
        printf("%u\n", ids[i]);
    return 0;
}

static int parse_global(int argc, char **argv, struct ctx *c)
{
    static const struct option longopts[] = {
        { "sim-dir", required_argument, NULL, 'd' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    const char *dir = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "+d:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd': dir = optarg; break;
        case 'h': usage(stdout); exit(0);
        default: return -1;
        }
    }
    if (!dir || !*dir)
        dir = getenv("PVC_SIM_DIR");
    if (!dir || !*dir)
        pvc_sim_default_dir(c->dir, sizeof(c->dir));
    else
        snprintf(c->dir, sizeof(c->dir), "%s", dir);
    return optind < argc ? optind : -1;
}

static int run(struct ctx *c, int argc, char **argv)
{
    const char *cmd = argv[0];
    unsigned domid, devid;
    if (!strcmp(cmd, "list") && argc == 1)
        return cmd_list(c);
    if (argc < 2 || parse_uint(argv[1], DOMID_LIMIT - 1, &domid) < 0) {
        usage(stderr);
        return 2;
    }
    /* Domain 0's store socket exists exactly while a broker runs. */
    if (!domain_exists(c, 0))
        return fail("no broker is running in %s (start pvcalls-simd)",
                    c->dir);
    bool toolstack_op = strcmp(cmd, "device-add") &&
                        strcmp(cmd, "device-remove");
    if (toolstack_op && domid == 0)
        return fail("domain 0 cannot be created or destroyed");
    /* Sub-command options start after the DOMID. */
    if (!strcmp(cmd, "create"))
        return cmd_create(c, domid, argc - 1, argv + 1);
    if (!strcmp(cmd, "destroy") && argc == 2)
        return cmd_destroy(c, domid);
    if (!strcmp(cmd, "device-add"))
        return cmd_device_add(c, domid, argc - 1, argv + 1);
    if (!strcmp(cmd, "device-remove") && argc == 3 &&
        parse_uint(argv[2], 1000000, &devid) == 0)
        return cmd_device_remove(c, domid, devid);
    usage(stderr);
    return 2;
}

int main(int argc, char **argv)
{
    struct ctx c = { 0 };
    int first = parse_global(argc, argv, &c);
    if (first < 0) {
        usage(stderr);
        return 2;
    }
    int rc = run(&c, argc - first, argv + first);
    store_disconnect(&c);
    return rc;
}
