/*
 * sshd under the shim (issue 7): Debian's openssh-server, with its own
 * configuration in the test's directory (a high port on 127.0.0.1, a
 * host key generated for the test, public-key authentication only for
 * root with a temporary key as its authorized_keys, UsePAM no,
 * StrictModes no), run as /usr/sbin/sshd -D -e -f CONFIG in an isolated
 * namespace.  For every connection sshd forks and re-execs itself with
 * the accepted socket as the new program's stdin/stdout, which then
 * forks a privilege-separated child: the socket must survive exec.
 * Native ssh (BatchMode, the temporary key, no known_hosts) pipes 10 MB
 * through a remote sha256sum: the sum matches.  The audit log has the
 * listener and the connection's bytes.
 */
#include "../lib/audit.h"
#include "../lib/hostnet.h"
#include "../lib/logwait.h"
#include "../lib/procstat.h"
#include "../lib/runprog.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SSHD "/usr/sbin/sshd"
#define DATA_BYTES (10u << 20)
#define RUN_MS 45000

struct sshd_env {
    struct rp_env *e;
    char port[8], conf[192], host_key[192], user_key[192], auth_keys[192];
};

static void keygen(const char *path)
{
    const char *argv[] = { "ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                           "-f", path, NULL };
    rp_assert_exit(rp_run(argv, NULL, NULL, RUN_MS), 0, "ssh-keygen");
}

static void write_conf(struct sshd_env *s)
{
    char pid_file[192];
    rp_path(s->e, "sshd.pid", pid_file, sizeof(pid_file));
    FILE *f = fopen(s->conf, "w");
    cr_assert(f, "%s: %m", s->conf);
    fprintf(f,
            "Port %s\n"
            "ListenAddress 127.0.0.1\n"
            "HostKey %s\n"
            "PidFile %s\n"
            "AuthorizedKeysFile %s\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "UseDNS no\n",
            s->port, s->host_key, pid_file, s->auth_keys);
    cr_assert_eq(fclose(f), 0);
}

static void setup(struct sshd_env *s)
{
    if (geteuid() != 0)
        cr_skip_test("sshd needs root: skipped");
    if (access(SSHD, X_OK) != 0)
        cr_skip_test(SSHD " missing (openssh-server): skipped");
    ps_adopt_orphans();
    s->e = rp_env_start(true);
    /* sshd's privilege separation directory. */
    mkdir("/run/sshd", 0755);
    snprintf(s->port, sizeof(s->port), "%u", hn_closed_port(AF_INET));
    rp_path(s->e, "sshd_config", s->conf, sizeof(s->conf));
    rp_path(s->e, "host_key", s->host_key, sizeof(s->host_key));
    rp_path(s->e, "user_key", s->user_key, sizeof(s->user_key));
    rp_path(s->e, "user_key.pub", s->auth_keys, sizeof(s->auth_keys));
    keygen(s->host_key);
    keygen(s->user_key);
    write_conf(s);
}

/* ssh root@127.0.0.1 sha256sum < data: ssh's wait status; the output
 * in remote.sum. */
static int run_ssh(struct sshd_env *s, const char *data)
{
    char sum_path[192];
    rp_path(s->e, "remote.sum", sum_path, sizeof(sum_path));
    const char *ssh[] = { "ssh", "-F", "/dev/null", "-i", s->user_key,
                          "-p", s->port, "-o", "BatchMode=yes",
                          "-o", "IdentitiesOnly=yes",
                          "-o", "StrictHostKeyChecking=no",
                          "-o", "UserKnownHostsFile=/dev/null",
                          "-o", "LogLevel=ERROR",
                          "root@127.0.0.1", "sha256sum", NULL };
    return rp_run(ssh, data, sum_path, RUN_MS);
}

/* The sum that remote sha256sum printed. */
static void remote_sum(struct sshd_env *s, int status, char out[65])
{
    char sum_path[192];
    rp_path(s->e, "remote.sum", sum_path, sizeof(sum_path));
    rp_assert_exit_output(status, 0, "ssh", sum_path);
    char *sum = rp_slurp(sum_path);
    cr_assert(strlen(sum) > 64 && sum[64] == ' ', "sha256sum said \"%s\"",
              sum);
    memcpy(out, sum, 64);
    out[64] = '\0';
    free(sum);
}

static void check_audit(struct sshd_env *s)
{
    cr_expect(audit_wait_closed(s->e->audit, 1, RUN_MS),
              "sockets left open in the audit log");
    struct audit a;
    cr_assert_eq(audit_load(&a, s->e->audit), 0);
    struct audit_q bind = { .cmd = "bind", .dom = 1 };
    struct audit_q listen = { .cmd = "listen", .dom = 1 };
    struct audit_q accept = { .cmd = "accept", .dom = 1 };
    struct audit_q closes = { .event = "close", .dom = 1 };
    cr_expect_eq(audit_count_port(&a, &bind, (unsigned)atoi(s->port), true),
                 1);
    cr_expect_eq(audit_count(&a, &listen), 1);
    cr_expect_eq(audit_count_min(&a, &accept, "ret", 0), 1);
    cr_expect_eq(audit_count_min(&a, &closes, "bytes_in", DATA_BYTES), 1);
    audit_free(&a);
}

Test(run_sshd, ssh_pipes_10mb_through_sha256sum, .fini = ps_test_fini,
     .timeout = 120)
{
    struct sshd_env s;
    setup(&s);
    const char *prog[] = { SSHD, "-D", "-e", "-f", s.conf, NULL };
    struct rp_child run;
    lw_start(s.e, NULL, prog, "Server listening on 127.0.0.1", &run, RUN_MS);
    char data[192], want[65], got[65];
    rp_path(s.e, "data", data, sizeof(data));
    rp_make_file(data, DATA_BYTES, 9);
    rp_sha256(data, want);
    int status = run_ssh(&s, data);
    /* sshd's log (until it exits on SIGTERM), for a failure's sake. */
    rp_signal(&run, SIGTERM);
    char line[512];
    while (rp_read_line(&run, line, sizeof(line), RUN_MS))
        cr_log_info("sshd: %s", line);
    cr_expect(rp_wait(&run, RUN_MS) >= 0, "sshd did not stop on SIGTERM");
    remote_sum(&s, status, got);
    cr_expect_str_eq(got, want, "sha256 of the data, as sshd's side saw it");
    check_audit(&s);
    rp_env_stop(s.e);
}
