/*
 * Platform hand-off: a frontend domain shares a ring's pages and an
 * event channel, hands them to another process, which adopts them with
 * nothing but the received fds (pvc_grant_adopt, pvc_evtchn_adopt), while
 * the backend domain maps the same pages and binds the channel.  Bytes
 * and doorbells must cross in both directions.
 */
#include <criterion/criterion.h>

#include "../lib/harness.h"
#include "pvc/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define NPAGES 3
#define PAGE 4096

static struct pvc_platform *open_dom(struct harness *h, int domid)
{
    struct pvc_platform_opts o = { .kind = PVC_PLATFORM_SIM,
                                   .sim_domid = domid, .sim_dir = h->dir };
    struct pvc_platform *p = pvc_platform_open(&o);
    cr_assert(p, "open domain %d: %m", domid);
    return p;
}

static bool readable(int fd, int timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    return poll(&pfd, 1, timeout_ms) == 1 && (pfd.revents & POLLIN);
}

struct setup {
    struct harness *h;
    struct pvc_platform *fe, *be;
    void *fe_pages, *be_pages;
    pvc_gref_t refs[NPAGES];
    struct pvc_evtchn *fe_ch, *be_ch;
};

static void setup_pair(struct setup *s)
{
    s->h = h_start(&(struct h_opts){ .no_backend = true });
    s->fe = open_dom(s->h, 1);
    s->be = open_dom(s->h, 0);
    cr_assert_eq(pvc_grant_share(s->fe, 0, NPAGES, 0, &s->fe_pages,
                                 s->refs), 0);
    s->be_pages = pvc_grant_map(s->be, 1, NPAGES, s->refs, 0);
    cr_assert(s->be_pages);
    s->fe_ch = pvc_evtchn_alloc_unbound(s->fe, 0);
    cr_assert(s->fe_ch);
    s->be_ch = pvc_evtchn_bind_interdomain(s->be, 1,
                                           pvc_evtchn_port(s->fe_ch));
    cr_assert(s->be_ch);
}

static void teardown_pair(struct setup *s)
{
    pvc_evtchn_close(s->be_ch);
    pvc_evtchn_close(s->fe_ch);
    cr_assert_eq(pvc_grant_unmap(s->be, s->be_pages, NPAGES), 0);
    cr_assert_eq(pvc_grant_unshare(s->fe, s->fe_pages, NPAGES), 0);
    pvc_platform_close(s->be);
    pvc_platform_close(s->fe);
    h_stop(s->h);
}

/* What the adopting child does; exit status 0 = every check passed. */
static int child_main(struct pvc_grant_handoff *gh,
                      struct pvc_evtchn_handoff *eh)
{
    unsigned char *pages = pvc_grant_adopt(gh);
    if (!pages)
        return 10;
    close(gh->fd);
    struct pvc_evtchn *ch = pvc_evtchn_adopt(eh);
    if (!ch)
        return 11;
    /* The backend wrote a pattern and notified us. */
    if (!readable(pvc_evtchn_fd(ch), 5000))
        return 12;
    if (pvc_evtchn_ack(ch) < 1)
        return 13;
    if (pvc_evtchn_ack(ch) != 0) /* consumed: EAGAIN reads as 0 */
        return 14;
    for (unsigned i = 0; i < NPAGES; i++)
        if (pages[i * PAGE + 7] != 0xA0 + i)
            return 15;
    /* Answer in the last page and ring the backend's doorbell. */
    memset(pages + (NPAGES - 1) * PAGE, 0x5C, PAGE);
    if (pvc_evtchn_notify(ch) < 0)
        return 16;
    pvc_evtchn_close(ch);
    munmap(pages, NPAGES * PAGE);
    return 0;
}

Test(handoff, adopt_in_a_forked_child, .fini = h_cleanup, .timeout = 60)
{
    struct setup s;
    setup_pair(&s);
    struct pvc_grant_handoff gh;
    struct pvc_evtchn_handoff eh;
    cr_assert_eq(pvc_grant_handoff(s.fe, s.fe_pages, &gh), 0, "%m");
    cr_assert_eq(gh.npages, NPAGES);
    cr_assert_eq(gh.kind, PVC_PLATFORM_SIM);
    cr_assert_eq(pvc_evtchn_handoff(s.fe_ch, &eh), 0, "%m");
    cr_assert_eq(eh.port, pvc_evtchn_port(s.fe_ch));
    cr_assert_eq(eh.nfds, 2);

    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0)
        _exit(child_main(&gh, &eh));
    close(gh.fd);
    close(eh.fds[0]);
    close(eh.fds[1]);

    unsigned char *be = s.be_pages;
    for (unsigned i = 0; i < NPAGES; i++)
        be[i * PAGE + 7] = 0xA0 + i;
    cr_assert_eq(pvc_evtchn_notify(s.be_ch), 0);
    cr_assert(readable(pvc_evtchn_fd(s.be_ch), 5000),
              "the adopted channel's notify did not reach the backend");
    cr_assert_geq(pvc_evtchn_ack(s.be_ch), 1);

    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child failed check %d", WEXITSTATUS(status));
    for (unsigned i = 0; i < PAGE; i++)
        cr_assert_eq(be[(NPAGES - 1) * PAGE + i], 0x5C);
    /* The child's writes are the frontend's pages too. */
    cr_assert_eq(((unsigned char *)s.fe_pages)[(NPAGES - 1) * PAGE], 0x5C);
    teardown_pair(&s);
}

Test(handoff, kick_local_wakes_every_holder, .fini = h_cleanup,
     .timeout = 60)
{
    struct setup s;
    setup_pair(&s);
    struct pvc_evtchn_handoff eh;
    cr_assert_eq(pvc_evtchn_handoff(s.fe_ch, &eh), 0);
    struct pvc_evtchn *adopted = pvc_evtchn_adopt(&eh);
    cr_assert(adopted);
    cr_assert_not(readable(pvc_evtchn_fd(adopted), 0));
    cr_assert_eq(pvc_evtchn_kick_local(s.fe_ch), 0);
    cr_assert(readable(pvc_evtchn_fd(adopted), 0));
    /* Not the peer's doorbell. */
    cr_assert_not(readable(pvc_evtchn_fd(s.be_ch), 0));
    cr_assert_geq(pvc_evtchn_ack(adopted), 1);
    /* Closing an adopted copy leaves the channel bound. */
    pvc_evtchn_close(adopted);
    cr_assert_eq(pvc_evtchn_notify(s.be_ch), 0);
    cr_assert(readable(pvc_evtchn_fd(s.fe_ch), 5000));
    teardown_pair(&s);
}

Test(handoff, bad_handoffs_are_refused, .fini = h_cleanup, .timeout = 60)
{
    struct setup s;
    setup_pair(&s);
    struct pvc_grant_handoff gh;
    int x;
    errno = 0;
    cr_assert_eq(pvc_grant_handoff(s.fe, &x, &gh), -1);
    cr_assert_eq(errno, EINVAL);
    struct pvc_grant_handoff bad = { .kind = PVC_PLATFORM_SIM, .fd = -1,
                                     .npages = 1 };
    cr_assert_null(pvc_grant_adopt(&bad));
    /* A failed adoption still takes (closes) the fds it was given. */
    int p[2];
    cr_assert_eq(pipe(p), 0);
    struct pvc_evtchn_handoff beh = { .kind = PVC_PLATFORM_SIM, .nfds = 1,
                                      .fds = { p[0], -1 } };
    cr_assert_null(pvc_evtchn_adopt(&beh));
    cr_assert_eq(fcntl(p[0], F_GETFD), -1, "fd closed");
    cr_assert_eq(pipe(p), 0);
    beh = (struct pvc_evtchn_handoff){ .kind = 77, .nfds = 2,
                                       .fds = { p[0], p[1] } };
    cr_assert_null(pvc_evtchn_adopt(&beh));
    cr_assert_eq(fcntl(p[1], F_GETFD), -1, "fd closed");
    teardown_pair(&s);
}
