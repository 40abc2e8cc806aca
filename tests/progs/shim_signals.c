/*
 * Signal semantics of blocking socket calls, for running natively and
 * under the shim against an echo server at ADDR PORT:
 *
 *  1. recv blocked, SIGALRM handler without SA_RESTART: -1/EINTR.
 *  2. recv blocked, handler with SA_RESTART: the call goes on waiting and
 *     returns the byte another thread sends after the signal.
 *  3. sigaction() reports the application's own handler and flags.
 *  4. send after shutdown(SHUT_WR): EPIPE and one SIGPIPE; with
 *     MSG_NOSIGNAL: EPIPE and none.
 *
 * Exit 0 when all hold; otherwise prints the first failure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static sem_t fired;
static volatile sig_atomic_t pipes;

static void on_alarm(int sig)
{
    (void)sig;
    sem_post(&fired);
}

static void on_pipe(int sig)
{
    (void)sig;
    pipes++;
}

static int check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "shim_signals: %s (errno %s)\n", what,
                strerror(errno));
        exit(1);
    }
    return 0;
}

static void arm_alarm_ms(int ms)
{
    struct itimerval it = { .it_value = { 0, ms * 1000 } };
    setitimer(ITIMER_REAL, &it, NULL);
}

static void install(int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sa.sa_flags = flags;
    check(sigaction(SIGALRM, &sa, NULL) == 0, "sigaction");
}

static int sock_fd;

/* After the signal fired, send one byte for the echo to bring back. */
static void *late_sender(void *arg)
{
    (void)arg;
    while (sem_wait(&fired) < 0 && errno == EINTR)
        ;
    check(send(sock_fd, "x", 1, 0) == 1, "late send");
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons((uint16_t)atoi(argv[2])) };
    check(inet_pton(AF_INET, argv[1], &a.sin_addr) == 1, "address");
    sem_init(&fired, 0, 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    check(fd >= 0, "socket");
    check(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect");
    sock_fd = fd;
    char c;

    /* 1: no SA_RESTART. */
    install(0);
    arm_alarm_ms(100);
    errno = 0;
    check(recv(fd, &c, 1, 0) == -1 && errno == EINTR, "recv: not EINTR");
    check(sem_trywait(&fired) == 0, "handler did not run");

    /* 3: the application sees its own handler. */
    struct sigaction old;
    check(sigaction(SIGALRM, NULL, &old) == 0, "sigaction query");
    check(old.sa_handler == on_alarm && !(old.sa_flags & SA_SIGINFO),
          "sigaction shows a foreign handler");

    /* 2: SA_RESTART. */
    install(SA_RESTART);
    pthread_t t;
    check(pthread_create(&t, NULL, late_sender, NULL) == 0, "thread");
    arm_alarm_ms(100);
    ssize_t n = recv(fd, &c, 1, 0);
    check(n == 1 && c == 'x', "recv was not restarted");
    pthread_join(t, NULL);
    check(sigaction(SIGALRM, NULL, &old) == 0 &&
              (old.sa_flags & SA_RESTART),
          "sigaction lost SA_RESTART");

    /* 4: SIGPIPE. */
    struct sigaction sp;
    memset(&sp, 0, sizeof(sp));
    sp.sa_handler = on_pipe;
    check(sigaction(SIGPIPE, &sp, NULL) == 0, "sigaction SIGPIPE");
    check(shutdown(fd, SHUT_WR) == 0, "shutdown");
    errno = 0;
    check(send(fd, "y", 1, 0) == -1 && errno == EPIPE, "send: not EPIPE");
    check(pipes == 1, "no SIGPIPE");
    errno = 0;
    check(send(fd, "y", 1, MSG_NOSIGNAL) == -1 && errno == EPIPE,
          "send NOSIGNAL: not EPIPE");
    check(pipes == 1, "SIGPIPE despite MSG_NOSIGNAL");
    check(recv(fd, &c, 1, 0) == 0, "no EOF after the echo closed");
    check(close(fd) == 0, "close");
    printf("ok\n");
    return 0;
}
