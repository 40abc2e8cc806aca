/*
 * A managed socket passed to an unrelated process with SCM_RIGHTS.
 *
 *   exec_scm PORT DIR
 *
 * Process A (this one) listens on a Unix socket DIR/pass.sock, then
 * starts B (this program again, "exec_scm recv PATH", through posix_spawn,
 * so B shares nothing with A but that path).  Only then does A connect to
 * the echo server on 127.0.0.1:PORT, send its socket to B over the Unix
 * socket, and close its own copy.  B transfers 1 MiB through it, checks
 * every echoed byte, closes it and exits 0; A exits with B's status.
 * B receives with recvmsg into a control buffer, as any fd-passing
 * program does.
 */
#include "exec_util.h"

#include <spawn.h>
#include <sys/un.h>
#include <sys/wait.h>

#define XFER_LEN (1u << 20)

extern char **environ;

static int unix_socket(const char *path, struct sockaddr_un *a)
{
    *a = (struct sockaddr_un){ .sun_family = AF_UNIX };
    EU_CHECK(strlen(path) < sizeof(a->sun_path), "path too long");
    strcpy(a->sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EU_CHECK(fd >= 0, "socket(AF_UNIX)");
    return fd;
}

static void send_fd(int via, int fd)
{
    char byte = 'S';
    struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    EU_CHECK(sendmsg(via, &m, 0) == 1, "sendmsg SCM_RIGHTS");
}

static int recv_fd(int via)
{
    char byte;
    struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
    EU_CHECK(recvmsg(via, &m, MSG_CMSG_CLOEXEC) == 1, "recvmsg");
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    EU_CHECK(c && c->cmsg_type == SCM_RIGHTS &&
                 c->cmsg_len == CMSG_LEN(sizeof(int)),
             "no fd in the message");
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

/* B: take the socket, use it, give it back by closing. */
static void receiver(const char *path)
{
    struct sockaddr_un a;
    int via = unix_socket(path, &a);
    EU_CHECK(connect(via, (struct sockaddr *)&a, sizeof(a)) == 0,
             "connect %s", path);
    int fd = recv_fd(via);
    eu_echo(fd, XFER_LEN, 11);
    EU_CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown");
    char c;
    EU_CHECK(read(fd, &c, 1) == 0, "EOF from the echo server");
    EU_CHECK(close(fd) == 0 && close(via) == 0, "close");
}

int main(int argc, char **argv)
{
    eu_name = "exec_scm";
    if (argc == 3 && !strcmp(argv[1], "recv")) {
        receiver(argv[2]);
        return 0;
    }
    EU_CHECK(argc == 3, "usage: exec_scm PORT DIR");
    char path[108];
    snprintf(path, sizeof(path), "%s/pass.sock", argv[2]);
    struct sockaddr_un a;
    int l = unix_socket(path, &a);
    unlink(path);
    EU_CHECK(bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 &&
                 listen(l, 1) == 0,
             "listen on %s", path);
    pid_t pid;
    char *bargv[] = { argv[0], "recv", path, NULL };
    int err = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, bargv, environ);
    errno = err;
    EU_CHECK(err == 0, "posix_spawn B");
    int via = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    EU_CHECK(via >= 0, "accept B");
    /* Made after B started: B can only get it through the message. */
    int fd = eu_connect(eu_port(argv[1]), SOCK_CLOEXEC);
    send_fd(via, fd);
    EU_CHECK(close(fd) == 0, "close A's copy");
    eu_say("passed");
    int st;
    EU_CHECK(waitpid(pid, &st, 0) == pid, "waitpid B");
    unlink(path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
