/*
 * Child processes for end-to-end tests: spawn a daemon that can never
 * outlive the test (PR_SET_PDEATHSIG), wait for its "ready" line on a
 * pipe, and wait for it to exit, all with timeouts and without polling
 * loops (pipes and pidfds are waited on with poll()).
 */
#ifndef TEST_PROC_H
#define TEST_PROC_H

#include <stdbool.h>
#include <sys/types.h>

/* The fd number a spawned child finds its ready pipe on. */
#define PROC_READY_FD 3

struct proc {
    pid_t pid;    /* 0: none */
    int pidfd;    /* readable once the child has exited */
    int ready_rd; /* our end of the ready pipe, -1 if none */
};

/* Spawn argv[0] (a path) with argv, the test's environment plus
 * extra_env ("NAME=value", NULL-terminated, overriding).  With
 * with_ready the child gets a pipe's write end as PROC_READY_FD; every
 * other fd above 2 is closed in the child.  Returns 0 or -errno. */
int proc_spawn(struct proc *p, char *const argv[], char *const extra_env[],
               bool with_ready);
/* Wait for the child to write a line starting with "ready".  Returns 0,
 * -ETIMEDOUT, or -EPIPE if the pipe closed first (the child died). */
int proc_wait_ready(struct proc *p, int timeout_ms);
/* Wait for the child to exit and reap it.  Returns its wait status
 * (>= 0), or -ETIMEDOUT (the child is still running). */
int proc_wait_exit(struct proc *p, int timeout_ms);
/* SIGKILL and reap, if still running; close our fds. */
void proc_kill(struct proc *p);
/* "exit 3", "signal 11 (Segmentation fault)" */
const char *proc_status_str(int status, char *buf, size_t len);

#endif
