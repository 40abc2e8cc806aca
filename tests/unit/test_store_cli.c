/*
 * The simulated xenstore driven by Xen's own command-line tools
 * (xenstore-utils), as a user or a script would use them.
 */
#include <sys/wait.h>

#include "test_store_harness.h"

TestSuite(store_cli, .init = harness_start, .fini = harness_stop,
          .timeout = 60);

/* Run a shell command as domain domid; returns its exit status and its
 * output (stdout and stderr) in out. */
static int cli(pvc_domid_t domid, char *out, size_t cap, const char *fmt,
               ...) __attribute__((format(printf, 4, 5)));

static int cli(pvc_domid_t domid, char *out, size_t cap, const char *fmt,
               ...)
{
    char sock[128], cmd[1024], user[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(user, sizeof(user), fmt, ap);
    va_end(ap);
    harness_sock_path(domid, sock, sizeof(sock));
    snprintf(cmd, sizeof(cmd), "XENSTORED_PATH='%s' %s 2>&1", sock, user);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t len = fread(out, 1, cap - 1, p);
    out[len] = '\0';
    int status = pclose(p);
    cr_assert(WIFEXITED(status), "%s: killed", user);
    return WEXITSTATUS(status);
}

Test(store_cli, write_read_ls_rm)
{
    char out[4096];
    cr_assert_eq(cli(0, out, sizeof(out),
                     "xenstore-write /cli/a 1 /cli/b/c 'two words'"), 0,
                 "%s", out);
    cr_assert_eq(cli(0, out, sizeof(out), "xenstore-read /cli/a"), 0);
    cr_assert_str_eq(out, "1\n");
    cr_assert_eq(cli(0, out, sizeof(out), "xenstore-read /cli/b/c"), 0);
    cr_assert_str_eq(out, "two words\n");
    cr_assert_eq(cli(0, out, sizeof(out), "xenstore-ls /cli"), 0, "%s", out);
    cr_assert_str_eq(out, "a = \"1\"\nb = \"\"\n c = \"two words\"\n");
    cr_assert_eq(cli(0, out, sizeof(out), "xenstore-list /cli"), 0);
    cr_assert_str_eq(out, "a\nb\n");
    cr_assert_eq(cli(0, out, sizeof(out), "xenstore-exists /cli/b"), 0);
    cr_assert_eq(cli(0, out, sizeof(out), "xenstore-rm /cli/b"), 0, "%s",
                 out);
    cr_assert_neq(cli(0, out, sizeof(out), "xenstore-exists /cli/b"), 0);
    cr_assert_neq(cli(0, out, sizeof(out), "xenstore-read /cli/b/c"), 0);
    /* The whole tree from the root, as dom0 sees it. */
    cr_assert_eq(cli(0, out, sizeof(out), "xenstore-ls -f"), 0, "%s", out);
    cr_assert_not_null(strstr(out, "/local/domain/2 = \"\"\n"), "%s", out);
    cr_assert_not_null(strstr(out, "/cli/a = \"1\"\n"), "%s", out);
}

Test(store_cli, relative_paths_and_perms)
{
    char out[4096];
    cr_assert_eq(cli(2, out, sizeof(out), "xenstore-write shared v"), 0,
                 "%s", out);
    cr_assert_eq(cli(0, out, sizeof(out),
                     "xenstore-ls -p /local/domain/2"), 0);
    cr_assert_not_null(strstr(out, "shared = \"v\""), "%s", out);
    cr_assert_not_null(strstr(out, "(n2)"), "%s", out);

    cr_assert_neq(cli(1, out, sizeof(out),
                      "xenstore-read /local/domain/2/shared"), 0);
    cr_assert_not_null(strstr(out, "couldn't read"), "%s", out);
    cr_assert_eq(cli(2, out, sizeof(out), "xenstore-chmod shared n2 r1"), 0,
                 "%s", out);
    cr_assert_eq(cli(1, out, sizeof(out),
                     "xenstore-read /local/domain/2/shared"), 0, "%s", out);
    cr_assert_str_eq(out, "v\n");
    cr_assert_neq(cli(1, out, sizeof(out),
                      "xenstore-write /local/domain/2/shared w"), 0);
    cr_assert_neq(cli(1, out, sizeof(out),
                      "xenstore-chmod /local/domain/2/shared b1"), 0);
    cr_assert_neq(cli(1, out, sizeof(out), "xenstore-ls /local/domain"), 0);
}

/* Read one line from a running command, within 5 s. */
static bool read_line(FILE *f, char *buf, size_t cap)
{
    struct pollfd pfd = { .fd = fileno(f), .events = POLLIN };
    if (poll(&pfd, 1, 5000) <= 0)
        return false;
    return fgets(buf, (int)cap, f) != NULL;
}

Test(store_cli, watch)
{
    char sock[128], cmd[512], line[256], out[256];
    harness_sock_path(1, sock, sizeof(sock));
    snprintf(cmd, sizeof(cmd),
             "XENSTORED_PATH='%s' exec xenstore-watch -n 3 dev", sock);
    FILE *w = popen(cmd, "r");
    cr_assert_not_null(w);
    setvbuf(w, NULL, _IONBF, 0);
    /* The initial event tells that the watch is in place. */
    cr_assert(read_line(w, line, sizeof(line)));
    cr_assert_str_eq(line, "dev\n");
    cr_assert_eq(cli(0, out, sizeof(out),
                     "xenstore-write /local/domain/1/dev/state 3"), 0);
    cr_assert(read_line(w, line, sizeof(line)));
    cr_assert_str_eq(line, "dev/state\n");
    cr_assert_eq(cli(1, out, sizeof(out), "xenstore-rm dev"), 0);
    cr_assert(read_line(w, line, sizeof(line)));
    cr_assert_str_eq(line, "dev\n");
    int status = pclose(w);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
