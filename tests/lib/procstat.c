/* What /proc says about a process: see procstat.h. */
#include "procstat.h"

#include "runprog.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* Append the children listed in one task's file to out (counting all). */
static void task_children(const char *path, pid_t *out, size_t max,
                          size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    int child;
    while (fscanf(f, "%d", &child) == 1) {
        if (*n < max)
            out[*n] = (pid_t)child;
        (*n)++;
    }
    fclose(f);
}

size_t ps_children(pid_t pid, pid_t *out, size_t max)
{
    /* Each thread has its own list: a child belongs to the thread that
     * forked it (or adopted it). */
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        if (ent->d_name[0] == '.')
            continue;
        char path[64 + sizeof(ent->d_name) + 16];
        snprintf(path, sizeof(path), "%s/%s/children", dir, ent->d_name);
        task_children(path, out, max, &n);
    }
    closedir(d);
    return n;
}

long long ps_cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields count
     * from the last ')'.  After it: state (3), ppid (4), ... utime (14),
     * stime (15). */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long utime, stime;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
               &utime, &stime) != 2)
        return -1;
    return (long long)(utime + stime);
}

long long ps_cpu_ns(pid_t pid)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    long long sum = 0;
    size_t threads = 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        if (ent->d_name[0] == '.')
            continue;
        char path[64 + sizeof(ent->d_name) + 16];
        snprintf(path, sizeof(path), "%s/%s/schedstat", dir, ent->d_name);
        /* A thread that exits meanwhile is simply not counted. */
        FILE *f = fopen(path, "r");
        unsigned long long ns;
        if (f && fscanf(f, "%llu", &ns) == 1) {
            sum += (long long)ns;
            threads++;
        }
        if (f)
            fclose(f);
    }
    closedir(d);
    return threads ? sum : -1;
}

const char *ps_comm(pid_t pid, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(buf, (int)len, f))
        snprintf(buf, len, "?");
    if (f)
        fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
}

long long ps_uid(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long long uid = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Uid: %lld", &uid) == 1)
            break;
    fclose(f);
    return uid;
}

pid_t ps_read_pidfile(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int pid = -1;
    if (fscanf(f, "%d", &pid) != 1 || pid <= 0)
        pid = -1;
    fclose(f);
    return (pid_t)pid;
}

void ps_adopt_orphans(void)
{
    prctl(PR_SET_CHILD_SUBREAPER, 1);
}

#define PS_MAX_CHILDREN 256

static void kill_tree(pid_t pid, int depth)
{
    kill(pid, SIGSTOP);
    pid_t kids[PS_MAX_CHILDREN];
    size_t n = ps_children(pid, kids, PS_MAX_CHILDREN);
    for (size_t i = 0; i < n && i < PS_MAX_CHILDREN && depth < 16; i++)
        kill_tree(kids[i], depth + 1);
    kill(pid, SIGKILL);
}

void ps_kill_descendants(void)
{
    pid_t kids[PS_MAX_CHILDREN];
    size_t n = ps_children(getpid(), kids, PS_MAX_CHILDREN);
    for (size_t i = 0; i < n && i < PS_MAX_CHILDREN; i++)
        kill_tree(kids[i], 0);
    /* Reap them all, and the orphans handed to us as they die: a zombie
     * still looks alive to pvcalls-run --stop. */
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
        ;
}

void ps_test_fini(void)
{
    ps_kill_descendants();
    rp_cleanup();
}
