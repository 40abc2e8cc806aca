/*
 * The xenstore handshake, both sides, on the simulated platform: a
 * pvcalls-simd per test (in its own temporary directory), domain 1
 * created with `pvcalls-simxl create 1`, the backend as domain 0 in a
 * thread driving pvc_xb_back_process() on its own xs handle, the frontend
 * as domain 1 in the test's main thread.
 *
 * The backend's ops map the command ring and bind the channel through the
 * platform, as the real backend does, so a connected handshake is checked
 * by moving a request and an event across.
 */
#include "pvc/ext.h"
#include "pvc/log.h"
#include "pvc/platform.h"
#include "pvc/sim_proto.h"
#include "pvc/xenbus.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xenstore.h>

#define WAIT_MS 5000
#define FE_DIR "/local/domain/1/device/pvcalls/0"
#define BE_DIR "/local/domain/0/backend/pvcalls/1/0"

/* ---- the simulated platform ---------------------------------------- */

static char sim_dir[256];
static pid_t simd_pid = -1;

static const char *build_dir(void)
{
    const char *b = getenv("PVC_BUILD");
    return b ? b : "build";
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sim_start(void)
{
    char bin[512];
    snprintf(sim_dir, sizeof(sim_dir), "/tmp/pvc-test-xenbus-XXXXXX");
    cr_assert_not_null(mkdtemp(sim_dir));
    snprintf(bin, sizeof(bin), "%s/bin/pvcalls-simd", build_dir());
    int ready[2];
    cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);
    simd_pid = fork();
    cr_assert_geq(simd_pid, 0);
    if (simd_pid == 0) {
        /* A test that crashes or times out skips teardown: the broker
         * must not outlive it (it would also hold our stdout open). */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(ready[1], 3); /* dup2 clears O_CLOEXEC on the copy */
        execl(bin, bin, "--dir", sim_dir, "--foreground", "--ready-fd", "3",
              (char *)NULL);
        _exit(127);
    }
    close(ready[1]);
    struct pollfd pfd = { .fd = ready[0], .events = POLLIN };
    cr_assert_eq(poll(&pfd, 1, 10000), 1, "pvcalls-simd (%s) not ready", bin);
    char buf[8] = { 0 };
    cr_assert_gt(read(ready[0], buf, sizeof(buf) - 1), 0, "simd died");
    close(ready[0]);
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void sim_stop(void)
{
    if (simd_pid > 0) {
        kill(simd_pid, SIGTERM);
        int status;
        waitpid(simd_pid, &status, 0);
        simd_pid = -1;
    }
    if (sim_dir[0])
        nftw(sim_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Run pvcalls-simxl with our directory; returns its exit status. */
static int simxl(const char *cmd, const char *domid)
{
    char bin[512];
    snprintf(bin, sizeof(bin), "%s/bin/pvcalls-simxl", build_dir());
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        execl(bin, bin, "--sim-dir", sim_dir, cmd, domid, (char *)NULL);
        _exit(127);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* Kill a domain the way a crash does: the broker destroys it (its nodes
 * go, @releaseDomain fires) but no toolstack removes its devices. */
static void broker_kill_domain(uint32_t domid)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int n = snprintf(addr.sun_path, sizeof(addr.sun_path), "%.80s/%s",
                     sim_dir, SIM_BROKER_SOCK);
    cr_assert_lt((size_t)n, sizeof(addr.sun_path));
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    struct sim_msg rq[2] = {
        { .op = SIM_OP_HELLO, .domid = 0 },
        { .op = SIM_OP_DOMAIN_DESTROY, .domid = domid },
    };
    for (int i = 0; i < 2; i++) {
        struct sim_msg rp;
        cr_assert_eq(send(fd, &rq[i], sizeof(rq[i]), MSG_NOSIGNAL),
                     (ssize_t)sizeof(rq[i]));
        cr_assert_eq(recv(fd, &rp, sizeof(rp), 0), (ssize_t)sizeof(rp));
        cr_assert_eq(rp.status, 0, "broker op %u: %d", rq[i].op, rp.status);
    }
    close(fd);
}

/* One simulated domain: a platform handle and a store connection. */
struct dom {
    struct pvc_platform *plat;
    struct xs_handle *xs;
};

static void dom_open(struct dom *d, int domid)
{
    struct pvc_platform_opts opts = {
        .kind = PVC_PLATFORM_SIM, .sim_domid = domid, .sim_dir = sim_dir,
    };
    d->plat = pvc_platform_open(&opts);
    cr_assert_not_null(d->plat, "platform for domain %d: %s", domid,
                       strerror(errno));
    d->xs = pvc_store_open(d->plat);
    cr_assert_not_null(d->xs, "store for domain %d: %s", domid,
                       strerror(errno));
}

static void dom_close(struct dom *d)
{
    if (d->xs)
        xs_close(d->xs);
    if (d->plat)
        pvc_platform_close(d->plat);
    d->xs = NULL;
    d->plat = NULL;
}

/* ---- reading and waiting on the store ------------------------------ */

static struct dom obs; /* domain 0's view, for the test's own checks */

static char *node(struct xs_handle *xs, const char *path)
{
    unsigned len;
    return xs_read(xs, XBT_NULL, path, &len);
}

static int node_int(const char *path)
{
    char *v = node(obs.xs, path);
    int n = v ? atoi(v) : -1;
    free(v);
    return n;
}

static void put(struct xs_handle *xs, const char *path, const char *val)
{
    cr_assert(xs_write(xs, XBT_NULL, path, val, strlen(val)),
              "write %s: %s", path, strerror(errno));
}

/* Wait (with a watch, never a sleep) until path reads as want. */
static void wait_node(const char *path, const char *want)
{
    static unsigned seq;
    char token[32];
    snprintf(token, sizeof(token), "test-%u", ++seq);
    cr_assert(xs_watch(obs.xs, path, token));
    int64_t deadline = now_ms() + WAIT_MS;
    for (;;) {
        char *v = node(obs.xs, path);
        bool match = v ? !strcmp(v, want) : want == NULL;
        free(v);
        if (match)
            break;
        int64_t left = deadline - now_ms();
        struct pollfd pfd = { .fd = xs_fileno(obs.xs), .events = POLLIN };
        cr_assert(left > 0 && poll(&pfd, 1, (int)left) == 1,
                  "%s never became %s", path, want ? want : "absent");
        char **ev;
        while ((ev = xs_check_watch(obs.xs)))
            free(ev);
    }
    xs_unwatch(obs.xs, path, token);
}

static void wait_state(const char *dir, int state)
{
    char path[160], want[4];
    snprintf(path, sizeof(path), "%s/state", dir);
    snprintf(want, sizeof(want), "%d", state);
    wait_node(path, want);
}

/* ---- a backend in a thread ----------------------------------------- */

enum be_cmd { CMD_NONE, CMD_SYNC, CMD_RESET, CMD_STOP };

struct ring_map { /* what connect() attached, in dev->priv */
    void *page;
    struct pvc_evtchn *ch;
};

struct backend {
    struct dom dom;
    struct pvc_xb_back *xb;
    pthread_t thread;
    int cmd_fd;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    enum be_cmd cmd;
    int cmds_done;
    int fail_connect;           /* connect() returns -EIO */
    int connects, disconnects;
    struct pvc_xb_back_dev seen; /* a copy at the last connect() */
    struct pvc_xb_back_dev *live; /* the device while connected */
};

static int op_connect(void *ctx, struct pvc_xb_back_dev *dev)
{
    struct backend *be = ctx;
    pthread_mutex_lock(&be->lock);
    int fail = be->fail_connect;
    pthread_mutex_unlock(&be->lock);
    if (fail)
        return -EIO;
    struct ring_map *m = calloc(1, sizeof(*m));
    pvc_gref_t ref = dev->ring_ref;
    m->page = pvc_grant_map(be->dom.plat, dev->fe_domid, 1, &ref, 0);
    if (!m->page) {
        int err = errno;
        free(m);
        return -err;
    }
    m->ch = pvc_evtchn_bind_interdomain(be->dom.plat, dev->fe_domid,
                                        dev->port);
    if (!m->ch) {
        int err = errno;
        pvc_grant_unmap(be->dom.plat, m->page, 1);
        free(m);
        return -err;
    }
    dev->priv = m;
    pthread_mutex_lock(&be->lock);
    be->connects++;
    be->seen = *dev;
    be->live = dev;
    pthread_cond_broadcast(&be->cond);
    pthread_mutex_unlock(&be->lock);
    return 0;
}

static void op_disconnect(void *ctx, struct pvc_xb_back_dev *dev)
{
    struct backend *be = ctx;
    struct ring_map *m = dev->priv;
    pvc_evtchn_close(m->ch);
    pvc_grant_unmap(be->dom.plat, m->page, 1);
    free(m);
    dev->priv = NULL;
    pthread_mutex_lock(&be->lock);
    be->disconnects++;
    be->live = NULL;
    pthread_cond_broadcast(&be->cond);
    pthread_mutex_unlock(&be->lock);
}

static const struct pvc_xb_back_ops test_ops = {
    .connect = op_connect,
    .disconnect = op_disconnect,
};

static void run_cmd(struct backend *be, enum be_cmd cmd)
{
    switch (cmd) {
    case CMD_SYNC: {
        /* A reply on our own connection comes after every watch event the
         * store sent us before it: once it is in, process() sees them. */
        free(node(be->dom.xs, "/local"));
        pvc_xb_back_process(be->xb);
        break;
    }
    case CMD_RESET:
        if (be->live)
            pvc_xb_back_reset(be->xb, be->live);
        break;
    default:
        break;
    }
}

static void *backend_main(void *arg)
{
    struct backend *be = arg;
    for (;;) {
        struct pollfd pfd[2] = {
            { .fd = pvc_xb_back_fd(be->xb), .events = POLLIN },
            { .fd = be->cmd_fd, .events = POLLIN },
        };
        if (poll(pfd, 2, -1) < 0)
            continue;
        if (pfd[0].revents)
            pvc_xb_back_process(be->xb);
        if (!pfd[1].revents)
            continue;
        uint64_t n;
        if (read(be->cmd_fd, &n, sizeof(n)) < 0)
            continue;
        pthread_mutex_lock(&be->lock);
        enum be_cmd cmd = be->cmd;
        pthread_mutex_unlock(&be->lock);
        run_cmd(be, cmd);
        pthread_mutex_lock(&be->lock);
        be->cmd = CMD_NONE;
        be->cmds_done++;
        pthread_cond_broadcast(&be->cond);
        pthread_mutex_unlock(&be->lock);
        if (cmd == CMD_STOP)
            return NULL;
    }
}

static void be_command(struct backend *be, enum be_cmd cmd)
{
    pthread_mutex_lock(&be->lock);
    int target = be->cmds_done + 1;
    be->cmd = cmd;
    pthread_mutex_unlock(&be->lock);
    uint64_t one = 1;
    cr_assert_eq(write(be->cmd_fd, &one, sizeof(one)), sizeof(one));
    pthread_mutex_lock(&be->lock);
    while (be->cmds_done < target)
        pthread_cond_wait(&be->cond, &be->lock);
    pthread_mutex_unlock(&be->lock);
}

static void be_start(struct backend *be, unsigned order, unsigned ext)
{
    memset(be, 0, sizeof(*be));
    pthread_mutex_init(&be->lock, NULL);
    pthread_cond_init(&be->cond, NULL);
    be->cmd_fd = eventfd(0, EFD_CLOEXEC);
    cr_assert_geq(be->cmd_fd, 0);
    dom_open(&be->dom, 0);
    struct pvc_xb_back_cfg cfg = { .max_page_order = order,
                                   .ext_offered = ext };
    be->xb = pvc_xb_back_new(be->dom.plat, be->dom.xs, &cfg, &test_ops, be);
    cr_assert_not_null(be->xb);
    cr_assert_eq(pthread_create(&be->thread, NULL, backend_main, be), 0);
}

static void be_stop(struct backend *be)
{
    if (!be->xb)
        return;
    be_command(be, CMD_STOP);
    pthread_join(be->thread, NULL);
    pvc_xb_back_free(be->xb);
    be->xb = NULL;
    dom_close(&be->dom);
    close(be->cmd_fd);
}

/* Wait until *counter reaches n (connect/disconnect calls). */
static void be_wait_count(struct backend *be, const int *counter, int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&be->lock);
    int rc = 0;
    while (*counter < n && rc == 0)
        rc = pthread_cond_timedwait(&be->cond, &be->lock, &until);
    int got = *counter;
    pthread_mutex_unlock(&be->lock);
    cr_assert_geq(got, n, "count stayed at %d, wanted %d", got, n);
}

static int be_get(struct backend *be, const int *counter)
{
    pthread_mutex_lock(&be->lock);
    int v = *counter;
    pthread_mutex_unlock(&be->lock);
    return v;
}

/* ---- fixture ------------------------------------------------------- */

static struct backend be;
static struct dom fedom;

static void setup(void)
{
    /* Reads PVC_LOG now, before threads exist (setenv in store_open and
     * getenv in a thread's first log line must not race). */
    pvc_log(PVC_LOG_DEBUG, "test starts");
    sim_start();
    dom_open(&obs, 0);
}

static void create_domain_1(void)
{
    cr_assert_eq(simxl("create", "1"), 0);
    dom_open(&fedom, 1);
}

static void teardown(void)
{
    be_stop(&be);
    dom_close(&fedom);
    dom_close(&obs);
    sim_stop();
}

TestSuite(xenbus, .init = setup, .fini = teardown, .timeout = 60);

/* A frontend instance that dies without a word: its resources go (the
 * kernel would reclaim them), its xenstore nodes stay as they were. */
static void front_vanish(struct pvc_xb_front *fe)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/state", fe->be_path);
    xs_unwatch(fe->xs, path, "pvc-be-state");
    pvc_evtchn_close(fe->cmd_evtchn);
    pvc_grant_unshare(fe->plat, fe->cmd_page, 1);
    memset(fe, 0, sizeof(*fe));
}

static void front_connect_dev(struct pvc_xb_front *fe, const char *dev,
                              unsigned ext)
{
    int rc = pvc_xb_front_connect(fedom.plat, fedom.xs, dev, ext, WAIT_MS,
                                  fe);
    cr_assert_eq(rc, 0, "frontend connect: %s", strerror(errno));
}

static void front_connect(struct pvc_xb_front *fe, unsigned ext)
{
    front_connect_dev(fe, "device/pvcalls/0", ext);
}

/* The connection really carries requests and events. */
static void assert_ring_works(struct pvc_xb_front *fe, uint32_t req_id)
{
    pthread_mutex_lock(&be.lock);
    struct ring_map *m = be.live ? be.live->priv : NULL;
    pthread_mutex_unlock(&be.lock);
    cr_assert_not_null(m);

    struct xen_pvcalls_request req = { .req_id = req_id, .cmd = PVCALLS_POLL };
    cr_assert_geq(pvc_cmd_front_push(&fe->cmd, &req), 0);
    cr_assert_eq(pvc_evtchn_notify(fe->cmd_evtchn), 0);

    struct pollfd pfd = { .fd = pvc_evtchn_fd(m->ch), .events = POLLIN };
    cr_assert_eq(poll(&pfd, 1, WAIT_MS), 1, "no event reached the backend");
    cr_assert_geq(pvc_evtchn_ack(m->ch), 1);

    /* The backend's own mapping of the page sees the request. */
    struct pvc_cmd_back back;
    pvc_cmd_back_attach(&back, m->page);
    back.ring.req_cons = back.ring.rsp_prod_pvt = fe->cmd.ring.req_prod_pvt - 1;
    struct xen_pvcalls_request got;
    cr_assert_eq(pvc_cmd_back_pop(&back, &got), 1);
    cr_assert_eq(got.req_id, req_id);
    cr_assert_eq(got.cmd, PVCALLS_POLL);
}

/* A ring offered by hand, as a foreign frontend implementation would. */
struct hand_ring {
    void *page;
    pvc_gref_t ref;
    struct pvc_evtchn *ch;
};

static void hand_ring_offer(struct hand_ring *r)
{
    cr_assert_eq(pvc_grant_share(fedom.plat, 0, 1, 0, &r->page, &r->ref), 0);
    struct pvc_cmd_front cmd;
    pvc_cmd_front_init(&cmd, r->page);
    r->ch = pvc_evtchn_alloc_unbound(fedom.plat, 0);
    cr_assert_not_null(r->ch);
    char num[16];
    snprintf(num, sizeof(num), "%u", r->ref);
    put(fedom.xs, FE_DIR "/ring-ref", num);
    snprintf(num, sizeof(num), "%u", pvc_evtchn_port(r->ch));
    put(fedom.xs, FE_DIR "/port", num);
}

static void hand_ring_free(struct hand_ring *r)
{
    pvc_evtchn_close(r->ch);
    pvc_grant_unshare(fedom.plat, r->page, 1);
}

/* ---- tests --------------------------------------------------------- */

Test(xenbus, handshake_connects_and_closes)
{
    create_domain_1();
    be_start(&be, 4, PVC_EXT_ALL);
    wait_state(BE_DIR, XenbusStateInitWait);

    struct pvc_xb_front fe;
    front_connect(&fe, PVC_EXT_IPV6 | PVC_EXT_SHUTDOWN);
    cr_assert_str_eq(fe.fe_path, FE_DIR);
    cr_assert_str_eq(fe.be_path, BE_DIR);
    cr_assert_eq(fe.be_domid, 0);
    cr_assert_eq(fe.max_page_order, 4);
    cr_assert_eq(fe.ext_offered, PVC_EXT_ALL);
    cr_assert_eq(fe.ext_enabled, PVC_EXT_IPV6 | PVC_EXT_SHUTDOWN);
    cr_assert_eq(node_int(FE_DIR "/state"), XenbusStateConnected);
    cr_assert_eq(node_int(BE_DIR "/state"), XenbusStateConnected);
    cr_assert_eq(pvc_xb_front_backend_state(&fe), XenbusStateConnected);

    be_wait_count(&be, &be.connects, 1);
    cr_assert_eq(be.seen.fe_domid, 1);
    cr_assert_eq(be.seen.devid, 0);
    cr_assert_eq(be.seen.ring_ref, fe.cmd_ref);
    cr_assert_eq(be.seen.port, pvc_evtchn_port(fe.cmd_evtchn));
    cr_assert_eq(be.seen.ext_enabled, PVC_EXT_IPV6 | PVC_EXT_SHUTDOWN);
    cr_assert_str_eq(be.seen.fe_path, FE_DIR);
    char *v = node(obs.xs, FE_DIR "/version");
    cr_assert_str_eq(v, "1");
    free(v);
    v = node(obs.xs, FE_DIR "/ext-features");
    cr_assert_str_eq(v, "ipv6,shutdown");
    free(v);
    assert_ring_works(&fe, 11);

    cr_assert_eq(pvc_xb_front_close(&fe, WAIT_MS), 0);
    cr_assert_null(fe.cmd_page);
    be_wait_count(&be, &be.disconnects, 1);
    wait_state(BE_DIR, XenbusStateClosed);
    cr_assert_eq(node_int(FE_DIR "/state"), XenbusStateClosed);
    cr_assert_eq(be_get(&be, &be.connects), 1);

    /* A closed device can be opened again: the frontend resets it. */
    front_connect(&fe, 0);
    be_wait_count(&be, &be.connects, 2);
    assert_ring_works(&fe, 12);
    cr_assert_eq(pvc_xb_front_close(&fe, WAIT_MS), 0);
    be_wait_count(&be, &be.disconnects, 2);
}

Test(xenbus, v1_frontend_writes_no_extensions)
{
    create_domain_1();
    be_start(&be, 6, PVC_EXT_ALL);
    struct pvc_xb_front fe;
    front_connect(&fe, 0);
    be_wait_count(&be, &be.connects, 1);

    char *v = node(obs.xs, BE_DIR "/versions");
    cr_assert_str_eq(v, "1");
    free(v);
    v = node(obs.xs, BE_DIR "/function-calls");
    cr_assert_str_eq(v, "1");
    free(v);
    cr_assert_eq(node_int(BE_DIR "/max-page-order"), 6);
    cr_assert_eq(fe.max_page_order, 6);
    cr_assert_eq(fe.ext_offered, PVC_EXT_ALL);
    cr_assert_eq(fe.ext_enabled, 0);
    v = node(obs.xs, FE_DIR "/ext-features");
    cr_assert_null(v, "a v1 frontend wrote ext-features=%s", v);
    cr_assert_eq(be.seen.ext_enabled, 0);
    cr_assert_eq(pvc_xb_front_close(&fe, WAIT_MS), 0);
}

Test(xenbus, v1_backend_offers_no_extensions)
{
    create_domain_1();
    be_start(&be, 4, 0);
    struct pvc_xb_front fe;
    front_connect(&fe, PVC_EXT_ALL);
    be_wait_count(&be, &be.connects, 1);
    char *v = node(obs.xs, BE_DIR "/ext-features");
    cr_assert_null(v, "a v1 backend advertised %s", v);
    cr_assert_eq(fe.ext_offered, 0);
    cr_assert_eq(fe.ext_enabled, 0);
    v = node(obs.xs, FE_DIR "/ext-features");
    cr_assert_null(v);
    cr_assert_eq(be.seen.ext_enabled, 0);
    cr_assert_eq(pvc_xb_front_close(&fe, WAIT_MS), 0);
}

Test(xenbus, backend_enables_only_what_it_offers)
{
    create_domain_1();
    be_start(&be, 4, PVC_EXT_SHUTDOWN | PVC_EXT_SOCKNAME);
    /* A frontend that asks for more than offered (by hand, as a foreign
     * implementation might) gets the intersection. */
    wait_state(BE_DIR, XenbusStateInitWait);
    struct pvc_xb_front fe;
    front_connect(&fe, PVC_EXT_SHUTDOWN | PVC_EXT_IPV6);
    be_wait_count(&be, &be.connects, 1);
    cr_assert_eq(fe.ext_enabled, PVC_EXT_SHUTDOWN);
    cr_assert_eq(be.seen.ext_enabled, PVC_EXT_SHUTDOWN);
    cr_assert_eq(pvc_xb_front_close(&fe, WAIT_MS), 0);

    /* A foreign frontend asking for more than offered, by hand. */
    struct hand_ring r;
    put(fedom.xs, FE_DIR "/state", "1");
    wait_state(BE_DIR, XenbusStateInitWait);
    hand_ring_offer(&r);
    put(fedom.xs, FE_DIR "/ext-features", "ipv6,sockname,shutdown,bogus");
    put(fedom.xs, FE_DIR "/state", "3");
    be_wait_count(&be, &be.connects, 2);
    wait_state(BE_DIR, XenbusStateConnected);
    cr_assert_eq(be.seen.ext_enabled, PVC_EXT_SHUTDOWN | PVC_EXT_SOCKNAME);
    put(fedom.xs, FE_DIR "/state", "6");
    be_wait_count(&be, &be.disconnects, 2);
    hand_ring_free(&r);
}

Test(xenbus, frontend_claiming_connected_is_not_joined)
{
    create_domain_1();
    be_start(&be, 4, 0);
    wait_state(BE_DIR, XenbusStateInitWait);
    /* A usable ring, but the frontend says Connected without ever having
     * been Initialised towards us: it talks to someone else's ring. */
    struct hand_ring r;
    hand_ring_offer(&r);
    put(fedom.xs, FE_DIR "/state", "4");
    wait_state(BE_DIR, XenbusStateClosing);
    cr_assert_eq(be_get(&be, &be.connects), 0);
    /* The reset the backend asked for, then Initialised: connected. */
    put(fedom.xs, FE_DIR "/state", "5");
    put(fedom.xs, FE_DIR "/state", "1");
    wait_state(BE_DIR, XenbusStateInitWait);
    put(fedom.xs, FE_DIR "/state", "3");
    wait_state(BE_DIR, XenbusStateConnected);
    cr_assert_eq(be_get(&be, &be.connects), 1);
    cr_assert_eq(be.seen.ring_ref, r.ref);
    put(fedom.xs, FE_DIR "/state", "5");
    wait_state(BE_DIR, XenbusStateClosing);
    cr_assert_eq(be_get(&be, &be.disconnects), 1);
    hand_ring_free(&r);
}

struct late_front {
    struct pvc_xb_front fe;
    int rc, err;
};

static void *connect_thread(void *arg)
{
    struct late_front *lf = arg;
    lf->rc = pvc_xb_front_connect(fedom.plat, fedom.xs, "device/pvcalls/0",
                                  0, 3 * WAIT_MS, &lf->fe);
    lf->err = errno;
    return NULL;
}

Test(xenbus, frontend_waits_for_a_backend_started_later)
{
    create_domain_1();
    struct late_front lf;
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, connect_thread, &lf), 0);
    /* The device exists before the backend daemon does. */
    be_start(&be, 4, 0);
    pthread_join(t, NULL);
    cr_assert_eq(lf.rc, 0, "late backend: %s", strerror(lf.err));
    be_wait_count(&be, &be.connects, 1);
    assert_ring_works(&lf.fe, 1);
    cr_assert_eq(pvc_xb_front_close(&lf.fe, WAIT_MS), 0);
}

Test(xenbus, frontend_times_out_without_backend)
{
    create_domain_1();
    struct pvc_xb_front fe;
    int64_t t0 = now_ms();
    cr_assert_eq(pvc_xb_front_connect(fedom.plat, fedom.xs,
                                      "device/pvcalls/0", 0, 300, &fe), -1);
    cr_assert_eq(errno, ETIMEDOUT);
    cr_assert_lt(now_ms() - t0, 2000);
    cr_assert_eq(pvc_xb_front_connect(fedom.plat, fedom.xs,
                                      "device/pvcalls/7", 0, 300, &fe), -1);
    cr_assert_eq(errno, ENODEV);
}

Test(xenbus, backend_restart_picks_up_the_device)
{
    create_domain_1();
    be_start(&be, 4, 0);
    struct pvc_xb_front fe;
    front_connect(&fe, 0);
    be_wait_count(&be, &be.connects, 1);

    /* The daemon stops: disconnect, Closed, keys stay. */
    be_stop(&be);
    cr_assert_eq(be.disconnects, 1);
    cr_assert_eq(node_int(BE_DIR "/state"), XenbusStateClosed);
    cr_assert_eq(pvc_xb_front_backend_state(&fe), XenbusStateClosed);

    /* A new daemon finds the device; the frontend still claims its old
     * ring, which the new daemon cannot join: it asks for a reset. */
    be_start(&be, 4, PVC_EXT_SOCKOPT);
    wait_state(BE_DIR, XenbusStateClosing);
    char *v = node(obs.xs, BE_DIR "/ext-features");
    cr_assert_str_eq(v, "sockopt", "keys rewritten by the new daemon");
    free(v);
    cr_assert_eq(be_get(&be, &be.connects), 0);

    front_vanish(&fe);
    front_connect(&fe, PVC_EXT_SOCKOPT);
    be_wait_count(&be, &be.connects, 1);
    cr_assert_eq(fe.ext_enabled, PVC_EXT_SOCKOPT);
    assert_ring_works(&fe, 3);
    cr_assert_eq(pvc_xb_front_close(&fe, WAIT_MS), 0);
}

Test(xenbus, frontend_restart_resets_and_reconnects)
{
    create_domain_1();
    be_start(&be, 4, 0);
    struct pvc_xb_front fe;
    front_connect(&fe, 0);
    be_wait_count(&be, &be.connects, 1);
    assert_ring_works(&fe, 1);
    pvc_gref_t old_ref = fe.cmd_ref;

    front_vanish(&fe); /* dies: nodes still say Connected */
    front_connect(&fe, 0);
    be_wait_count(&be, &be.connects, 2);
    cr_assert_eq(be_get(&be, &be.disconnects), 1);
    cr_assert_eq(be.seen.ring_ref, fe.cmd_ref);
    cr_assert_neq(fe.cmd_ref, old_ref);
    assert_ring_works(&fe, 2);
    cr_assert_eq(pvc_xb_front_close(&fe, WAIT_MS), 0);
    be_wait_count(&be, &be.disconnects, 2);
    wait_state(BE_DIR, XenbusStateClosed);
}

Test(xenbus, toolstack_removal_is_quick)
{
    create_domain_1();
    be_start(&be, 4, 0);
    struct pvc_xb_front fe;
    front_connect(&fe, 0);
    be_wait_count(&be, &be.connects, 1);

    int64_t t0 = now_ms();
    cr_assert_eq(simxl("destroy", "1"), 0, "backend did not reach Closed");
    cr_assert_lt(now_ms() - t0, 3000, "removal waited for a timeout");
    be_wait_count(&be, &be.disconnects, 1);
    wait_node(BE_DIR "/state", NULL);

    /* Domain 1 is gone with its store connection: drop our leftovers. */
    front_vanish(&fe);
    dom_close(&fedom);

    /* The backend forgot the device: a new domain 1 gets a fresh one. */
    create_domain_1();
    wait_state(BE_DIR, XenbusStateInitWait);
    front_connect(&fe, 0);
    be_wait_count(&be, &be.connects, 2);
    assert_ring_works(&fe, 4);
    cr_assert_eq(pvc_xb_front_close(&fe, WAIT_MS), 0);
}

Test(xenbus, dead_frontend_domain_is_let_go)
{
    create_domain_1();
    be_start(&be, 4, 0);
    struct pvc_xb_front fe;
    front_connect(&fe, 0);
    be_wait_count(&be, &be.connects, 1);

    broker_kill_domain(1);
    be_wait_count(&be, &be.disconnects, 1);
    wait_state(BE_DIR, XenbusStateClosed);
    front_vanish(&fe);
    dom_close(&fedom);

    /* The domain comes back (a reboot after the crash); the toolstack
     * gives it the next devid, as the old backend directory is still
     * there, and the backend serves it. */
    create_domain_1();
    front_connect_dev(&fe, "device/pvcalls/1", 0);
    be_wait_count(&be, &be.connects, 2);
    assert_ring_works(&fe, 9);
    cr_assert_eq(pvc_xb_front_close(&fe, WAIT_MS), 0);
}

Test(xenbus, reset_waits_for_the_frontend)
{
    create_domain_1();
    be_start(&be, 4, 0);
    struct pvc_xb_front fe;
    front_connect(&fe, 0);
    be_wait_count(&be, &be.connects, 1);

    be_command(&be, CMD_RESET);
    cr_assert_eq(be_get(&be, &be.disconnects), 1);
    wait_state(BE_DIR, XenbusStateClosing);
    cr_assert_eq(pvc_xb_front_backend_state(&fe), XenbusStateClosing);

    /* The frontend insisting on its connection does not reconnect it. */
    put(fedom.xs, FE_DIR "/state", "4");
    put(fedom.xs, FE_DIR "/state", "3");
    be_command(&be, CMD_SYNC);
    cr_assert_eq(node_int(BE_DIR "/state"), XenbusStateClosing);
    cr_assert_eq(be_get(&be, &be.connects), 1);

    /* Going back to Initialising does. */
    front_vanish(&fe);
    front_connect(&fe, 0);
    be_wait_count(&be, &be.connects, 2);
    assert_ring_works(&fe, 5);
    cr_assert_eq(pvc_xb_front_close(&fe, WAIT_MS), 0);
}

Test(xenbus, failed_connect_closes_then_retries)
{
    create_domain_1();
    be_start(&be, 4, 0);
    pthread_mutex_lock(&be.lock);
    be.fail_connect = 1;
    pthread_mutex_unlock(&be.lock);
    struct pvc_xb_front fe;
    cr_assert_eq(pvc_xb_front_connect(fedom.plat, fedom.xs,
                                      "device/pvcalls/0", 0, WAIT_MS, &fe),
                 -1);
    cr_assert_eq(errno, EPROTO);
    cr_assert_null(fe.cmd_page);
    cr_assert_eq(node_int(BE_DIR "/state"), XenbusStateClosing);

    pthread_mutex_lock(&be.lock);
    be.fail_connect = 0;
    pthread_mutex_unlock(&be.lock);
    front_connect(&fe, 0);
    be_wait_count(&be, &be.connects, 1);
    assert_ring_works(&fe, 6);
    cr_assert_eq(pvc_xb_front_close(&fe, WAIT_MS), 0);
}

Test(xenbus, garbage_does_not_crash_the_backend)
{
    create_domain_1();
    be_start(&be, 4, PVC_EXT_ALL);
    wait_state(BE_DIR, XenbusStateInitWait);

    static const char *const bad_refs[][2] = {
        { "abc", "5" },
        { "99999999999999999999999", "5" },
        { "4294967296", "5" },
        { "-1", "5" },
        { "12", "4294967296" },
        { "12", "" },
        { " 12", "5" },
        { "12", "0x10" },
    };
    for (size_t i = 0; i < sizeof(bad_refs) / sizeof(bad_refs[0]); i++) {
        put(fedom.xs, FE_DIR "/ring-ref", bad_refs[i][0]);
        put(fedom.xs, FE_DIR "/port", bad_refs[i][1]);
        put(fedom.xs, FE_DIR "/state", "3");
        wait_state(BE_DIR, XenbusStateClosing);
        put(fedom.xs, FE_DIR "/state", "1");
        wait_state(BE_DIR, XenbusStateInitWait);
    }
    /* A ref that parses but names no grant: connect() fails cleanly. */
    put(fedom.xs, FE_DIR "/ring-ref", "123456");
    put(fedom.xs, FE_DIR "/port", "77");
    put(fedom.xs, FE_DIR "/state", "3");
    wait_state(BE_DIR, XenbusStateClosing);
    put(fedom.xs, FE_DIR "/state", "1");
    wait_state(BE_DIR, XenbusStateInitWait);

    static const char *const bad_states[] = {
        "garbage", "-1", "4294967299", "3x", "", "9", "99999999999999999999",
        "2",
    };
    for (size_t i = 0; i < sizeof(bad_states) / sizeof(bad_states[0]); i++)
        put(fedom.xs, FE_DIR "/state", bad_states[i]);
    char big[3000];
    memset(big, ',', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    put(fedom.xs, FE_DIR "/ext-features", big);
    /* Junk under the backend tree, as a confused toolstack might leave. */
    put(obs.xs, "/local/domain/0/backend/pvcalls/abc/0/state", "1");
    put(obs.xs, "/local/domain/0/backend/pvcalls/1/99999999/state", "1");
    put(obs.xs, "/local/domain/0/backend/pvcalls/2/0/state", "1");
    put(obs.xs, "/local/domain/0/backend/pvcalls/1/1/state", "1");
    be_command(&be, CMD_SYNC);
    cr_assert_eq(node_int(BE_DIR "/state"), XenbusStateInitWait);
    cr_assert_eq(be_get(&be, &be.connects), 0);

    /* After all that, a real frontend still connects. */
    put(fedom.xs, FE_DIR "/state", "1");
    struct pvc_xb_front fe;
    front_connect(&fe, PVC_EXT_IPV6);
    be_wait_count(&be, &be.connects, 1);
    cr_assert_eq(be.seen.ext_enabled, PVC_EXT_IPV6);
    assert_ring_works(&fe, 7);
    cr_assert_eq(pvc_xb_front_close(&fe, WAIT_MS), 0);
}
