/* Assertions shared by the end-to-end tests: see checks.h. */
#include "checks.h"

#include "audit.h"
#include "harness.h"
#include "hostnet.h"
#include "testfront.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

const char *check_cmd_name(uint32_t cmd)
{
    switch (cmd) {
    case PVCALLS_SOCKET: return "socket";
    case PVCALLS_CONNECT: return "connect";
    case PVCALLS_RELEASE: return "release";
    case PVCALLS_BIND: return "bind";
    case PVCALLS_LISTEN: return "listen";
    case PVCALLS_ACCEPT: return "accept";
    case PVCALLS_POLL: return "poll";
    case PVCALLS_EXT_SHUTDOWN: return "shutdown";
    case PVCALLS_EXT_GETSOCKNAME: return "getsockname";
    case PVCALLS_EXT_GETPEERNAME: return "getpeername";
    case PVCALLS_EXT_SETSOCKOPT: return "setsockopt";
    case PVCALLS_EXT_GETSOCKOPT: return "getsockopt";
    default: return "unknown";
    }
}

void check_tf_serves(struct harness *h, struct tf *tf)
{
    enum { TOTAL = 65536, CHUNK = 8192 };
    int domid = tf->domid;
    struct hn_server *echo =
        hn_server_start(&(struct hn_server_cfg){ .mode = HN_ECHO });
    struct tf_sock *s = tf_sock_new(tf);
    uint64_t id = s->id;
    CHECK_RET(tf_socket(tf, s), 0);
    struct sockaddr_storage ss;
    socklen_t len = hn_server_addr(echo, &ss);
    CHECK_RET(tf_connect(tf, s, &ss, len), 0);
    struct hn_stream st;
    hn_stream_init(&st, (uint64_t)domid);
    static unsigned char out[CHUNK], in[CHUNK];
    for (unsigned done = 0; done < TOTAL; done += CHUNK) {
        hn_stream_fill(&st, out, CHUNK);
        cr_assert_eq(tf_write(s, out, CHUNK, TF_TIMEOUT_MS), CHUNK,
                     "domain %d: write", domid);
        cr_assert_eq(tf_read_full(s, in, CHUNK, TF_TIMEOUT_MS), CHUNK,
                     "domain %d: echo", domid);
        cr_assert_arr_eq(in, out, CHUNK, "domain %d: echo differs", domid);
    }
    CHECK_RET(tf_release(tf, s), 0);
    check_close_record(h, domid, id, TOTAL, TOTAL);
    check_audit_journal(h, tf);
    cr_assert(hn_server_wait_done(echo, 1, TF_TIMEOUT_MS));
    hn_server_stop(echo);
}

void check_domain_serves(struct harness *h, int domid)
{
    static unsigned calls;
    struct tf *tf = tf_open_h(h, domid, 0);
    /* Ids no earlier frontend of this domain used in this audit log. */
    tf->next_sock_id = (uint64_t)++calls << 20;
    tf->next_req_id = calls << 20;
    check_tf_serves(h, tf);
    tf_close(tf);
}

void check_close_record(struct harness *h, int dom, uint64_t id,
                        uint64_t bytes_in, uint64_t bytes_out)
{
    struct audit_q q = { .event = "close", .dom = dom, .id = (long long)id };
    cr_assert_eq(h_audit_wait(h, &q, 1, CHECK_AUDIT_WAIT_MS), 1,
                 "one close record for dom %d id %llu", dom,
                 (unsigned long long)id);
    struct audit a;
    h_audit(h, &a);
    const char *line = audit_first(&a, &q);
    cr_assert_not_null(line);
    long long in = -1, out = -1;
    cr_assert(json_int(line, "bytes_in", &in), "%s", line);
    cr_assert(json_int(line, "bytes_out", &out), "%s", line);
    cr_expect_eq(in, (long long)bytes_in, "bytes_in %lld, moved %llu: %s",
                 in, (unsigned long long)bytes_in, line);
    cr_expect_eq(out, (long long)bytes_out, "bytes_out %lld, moved %llu: %s",
                 out, (unsigned long long)bytes_out, line);
    audit_free(&a);
}

static const char *errno_name(int err, char *buf, size_t len)
{
    if (err == PVC_ENOTSUPP)
        return "ENOTSUPP";
    const char *name = strerrorname_np(err);
    if (name)
        return name;
    snprintf(buf, len, "E%d", err);
    return buf;
}

/* The record answering one journal entry matches it. */
static void check_record(const char *line, const struct tf_journal *j)
{
    char cmd[32], err[32], want_err[32];
    cr_assert(json_str(line, "cmd", cmd, sizeof(cmd)), "%s", line);
    cr_expect_str_eq(cmd, check_cmd_name(j->cmd), "%s", line);
    long long ret;
    cr_assert(json_int(line, "ret", &ret), "%s", line);
    cr_expect_eq(ret, j->ret, "ret %lld, frontend got %d: %s", ret, j->ret,
                 line);
    if (j->ret < 0) {
        cr_assert(json_str(line, "err", err, sizeof(err)), "%s", line);
        cr_expect_str_eq(err, errno_name(-j->ret, want_err,
                                         sizeof(want_err)), "%s", line);
    }
}

void check_audit_journal(struct harness *h, const struct tf *tf)
{
    for (size_t i = 0; i < tf->njournal; i++) {
        const struct tf_journal *j = &tf->journal[i];
        struct audit_q q = { .dom = tf->domid, .req_id = j->req_id };
        /* The response may be published before its record is written. */
        cr_assert_eq(h_audit_wait(h, &q, 1, CHECK_AUDIT_WAIT_MS), 1,
                     "dom %u req_id %u (%s, ret %d): one audit record",
                     tf->domid, j->req_id, check_cmd_name(j->cmd), j->ret);
        struct audit a;
        h_audit(h, &a);
        check_record(audit_first(&a, &q), j);
        audit_free(&a);
    }
}
