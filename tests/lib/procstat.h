/*
 * What /proc says about a running process, for end-to-end tests of real
 * programs: its children (nginx's workers), the CPU time it used (the
 * idle checks), its user, and the pid a program wrote into a pid file.
 */
#ifndef TEST_PROCSTAT_H
#define TEST_PROCSTAT_H

#include <stddef.h>
#include <sys/types.h>

/* The live children of pid (every thread's /proc children list), at most
 * max of them; returns how many there are (possibly more than max), 0 if
 * pid is gone. */
size_t ps_children(pid_t pid, pid_t *out, size_t max);
/* utime + stime of the whole process in clock ticks (sysconf(_SC_CLK_TCK)
 * per second), or -1 if it is gone. */
long long ps_cpu_ticks(pid_t pid);
/* CPU time of the whole process in nanoseconds, exact (the scheduler's
 * sum_exec_runtime of each live thread, /proc/PID/task/TID/schedstat),
 * or -1 if it is gone or the kernel keeps no such count. */
long long ps_cpu_ns(pid_t pid);
/* The command name of pid (/proc/PID/comm), or "?" if it is gone. */
const char *ps_comm(pid_t pid, char *buf, size_t len);
/* The real uid of pid, or -1 if it is gone. */
long long ps_uid(pid_t pid);
/* The pid held in a pid file ("1234\n"), or -1 if unreadable/invalid. */
pid_t ps_read_pidfile(const char *path);

/* Make the calling process the reaper of its orphaned descendants
 * (PR_SET_CHILD_SUBREAPER), so that a program started through
 * pvcalls-run stays reachable after pvcalls-run itself died.  Orphans
 * that exit then stay zombies until ps_kill_descendants: do not combine
 * with pvcalls-run --keep, whose daemons outlive the pvcalls-run that
 * started them and would look alive to --stop. */
void ps_adopt_orphans(void);
/* SIGKILL every descendant of the calling process (each stopped before
 * its children are listed, so that it cannot fork more) and reap them:
 * the .fini of a test that failed while real servers were running. */
void ps_kill_descendants(void);
/* The .fini of a test that runs real servers: ps_kill_descendants, then
 * rp_cleanup (runprog.h) for the simulation a failed test left. */
void ps_test_fini(void);

#endif
