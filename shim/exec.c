/*
 * exec: the new program keeps the sockets (tokens without close-on-exec
 * survive exec as any fd does; its shim adopts them, inherit.c), so it
 * must get the shim too.  Programs and entrypoints rebuild or scrub the
 * environment they pass on (sshd, su, env -i, daemons), so every exec
 * entry point puts back LD_PRELOAD with this library, and the PVC_*
 * settings captured at load, when the environment given lacks them;
 * PVC_NO_INHERIT=1 (at load, or in the environment given) opts out.
 *
 * A target the loader cannot preload into (statically linked: no
 * PT_INTERP) gets our sockets as useless fds: one line on stderr names
 * them, and the exec goes on, as it would natively.
 *
 * These wrappers may run in a vfork child (sharing its parent's memory),
 * so nothing here allocates from the heap: a rebuilt environment lives on
 * the stack (or, if huge, in a mapping that is unmapped if the exec
 * fails), and the checks use syscalls and stack buffers only.
 */
#include "shim.h"

#include <alloca.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

#define ENV_STACK_MAX 16384
#define DIAG_FDS_MAX 16
#define PHDRS_MAX 256

/* ---- this library ---------------------------------------------------- */

static char self_path[PATH_MAX];
static const char *self_base;
static dev_t self_dev;
static ino_t self_ino;

__attribute__((constructor)) static void exec_find_self(void)
{
    Dl_info info;
    struct stat st;
    if (!dladdr((void *)exec_find_self, &info) || !info.dli_fname ||
        strlen(info.dli_fname) >= sizeof(self_path))
        return;
    strcpy(self_path, info.dli_fname);
    const char *slash = strrchr(self_path, '/');
    self_base = slash ? slash + 1 : self_path;
    if (stat(self_path, &st) == 0) {
        self_dev = st.st_dev;
        self_ino = st.st_ino;
    }
}

/* Does one LD_PRELOAD entry (len bytes at p) name this library? */
static bool entry_is_self(const char *p, size_t len)
{
    char path[PATH_MAX];
    if (!self_base || !len || len >= sizeof(path))
        return false;
    memcpy(path, p, len);
    path[len] = '\0';
    if (!strcmp(path, self_path))
        return true;
    /* A bare name is looked up by the loader: compare names. */
    if (!strchr(path, '/'))
        return !strcmp(path, self_base);
    struct stat st;
    return self_ino && stat(path, &st) == 0 && st.st_dev == self_dev &&
           st.st_ino == self_ino;
}

/* LD_PRELOAD's entries are separated by colons or spaces. */
static bool list_has_self(const char *list)
{
    while (list && *list) {
        size_t len = strcspn(list, ": ");
        if (entry_is_self(list, len))
            return true;
        list += len;
        list += strspn(list, ": ");
    }
    return false;
}

/* ---- the environment passed on --------------------------------------- */

/* The value of NAME in env (name_len includes the '='), or NULL. */
static const char *env_get(char *const env[], const char *name,
                           size_t name_len)
{
    for (size_t i = 0; env && env[i]; i++)
        if (!strncmp(env[i], name, name_len))
            return env[i] + name_len;
    return NULL;
}

struct env_plan {
    size_t count;            /* entries of the caller's env */
    long preload_at;         /* its LD_PRELOAD entry, -1: none */
    bool preload_fix;        /* LD_PRELOAD must be rebuilt */
    const char *missing[40]; /* captured settings it lacks */
    size_t nmissing;
    size_t bytes;            /* what the new env needs (0: keep env) */
    void *map;               /* the new env, if mmap'ed */
};

/* What env lacks; sets plan->bytes (0 when nothing). */
static void env_plan(char *const env[], struct env_plan *p)
{
    memset(p, 0, sizeof(*p));
    p->preload_at = -1;
    const char *ni = env_get(env, "PVC_NO_INHERIT=", 15);
    if (shim_env_no_inherit() || (ni && *ni && strcmp(ni, "0")))
        return;
    /* Not preloaded (linked in, or /etc/ld.so.preload): the loader
     * gives the new program what it gave us. */
    const char *ours = shim_env_preload();
    if (!ours || !list_has_self(ours))
        return;
    for (; env && env[p->count]; p->count++)
        if (!strncmp(env[p->count], "LD_PRELOAD=", 11))
            p->preload_at = (long)p->count;
    const char *cur = p->preload_at >= 0 ? env[p->preload_at] + 11 : NULL;
    p->preload_fix = !list_has_self(cur);
    const char *const *set = shim_env_settings();
    for (size_t i = 0; set[i] && p->nmissing < 40; i++) {
        size_t name_len = strcspn(set[i], "=") + 1;
        if (!env_get(env, set[i], name_len))
            p->missing[p->nmissing++] = set[i];
    }
    if (!p->preload_fix && !p->nmissing)
        return;
    p->bytes = (p->count + p->nmissing + 2) * sizeof(char *);
    if (p->preload_fix)
        p->bytes += 11 + strlen(ours) + 1 + (cur ? strlen(cur) : 0) + 1;
}

/* The new env in mem (p->bytes long): ours first in LD_PRELOAD, then
 * what the caller had; missing settings appended. */
static char *const *env_build(char *const env[], struct env_plan *p,
                              void *mem)
{
    char **out = mem;
    char *str = (char *)mem + (p->count + p->nmissing + 2) * sizeof(char *);
    size_t n = 0;
    for (size_t i = 0; i < p->count; i++)
        if ((long)i != p->preload_at || !p->preload_fix)
            out[n++] = env[i];
    if (p->preload_fix) {
        const char *cur = p->preload_at >= 0 ? env[p->preload_at] + 11
                                             : NULL;
        strcpy(str, "LD_PRELOAD=");
        strcat(str, shim_env_preload());
        if (cur && *cur) {
            strcat(str, ":");
            strcat(str, cur);
        }
        out[n++] = str;
    }
    for (size_t i = 0; i < p->nmissing; i++)
        out[n++] = (char *)p->missing[i];
    out[n] = NULL;
    return out;
}

/* ---- statically linked targets --------------------------------------- */

static bool elf_static64(int fd, const unsigned char *h)
{
    Elf64_Ehdr e;
    memcpy(&e, h, sizeof(e));
    if ((e.e_type != ET_EXEC && e.e_type != ET_DYN) ||
        e.e_phentsize < sizeof(Elf64_Phdr) || e.e_phnum > PHDRS_MAX)
        return false;
    for (unsigned i = 0; i < e.e_phnum; i++) {
        Elf64_Phdr ph;
        if (pread(fd, &ph, sizeof(ph), (off_t)(e.e_phoff +
                  (uint64_t)i * e.e_phentsize)) != sizeof(ph))
            return false;
        if (ph.p_type == PT_INTERP)
            return false;
    }
    return true;
}

static bool elf_static32(int fd, const unsigned char *h)
{
    Elf32_Ehdr e;
    memcpy(&e, h, sizeof(e));
    if ((e.e_type != ET_EXEC && e.e_type != ET_DYN) ||
        e.e_phentsize < sizeof(Elf32_Phdr) || e.e_phnum > PHDRS_MAX)
        return false;
    for (unsigned i = 0; i < e.e_phnum; i++) {
        Elf32_Phdr ph;
        if (pread(fd, &ph, sizeof(ph), (off_t)e.e_phoff +
                  (off_t)i * e.e_phentsize) != sizeof(ph))
            return false;
        if (ph.p_type == PT_INTERP)
            return false;
    }
    return true;
}

static bool file_static(int fd, int depth);

/* "#!interpreter ...": the interpreter is what runs. */
static bool script_static(const unsigned char *h, ssize_t n, int depth)
{
    char interp[256];
    ssize_t i = 2, k = 0;
    while (i < n && (h[i] == ' ' || h[i] == '\t'))
        i++;
    while (i < n && k < (ssize_t)sizeof(interp) - 1 && h[i] != ' ' &&
           h[i] != '\t' && h[i] != '\n')
        interp[k++] = (char)h[i++];
    interp[k] = '\0';
    if (!k || depth > 0)
        return false;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, interp,
                          O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool st = file_static(fd, depth + 1);
    syscall(SYS_close, fd);
    return st;
}

/* Is the program in fd an ELF file without an interpreter? */
static bool file_static(int fd, int depth)
{
    unsigned char h[256];
    ssize_t n = pread(fd, h, sizeof(h), 0);
    if (n >= 2 && h[0] == '#' && h[1] == '!')
        return script_static(h, n, depth);
    if (n < (ssize_t)sizeof(Elf64_Ehdr) || memcmp(h, ELFMAG, SELFMAG))
        return false;
    if (h[EI_CLASS] == ELFCLASS64)
        return elf_static64(fd, h);
    if (h[EI_CLASS] == ELFCLASS32)
        return elf_static32(fd, h);
    return false;
}

/* The managed sockets the new program would inherit (not close-on-exec),
 * as ", 3, 7" into buf; how many.  An inherited fd not looked at yet
 * counts if its peer is the daemon (no daemon call from here). */
static int inherited_socks(char *buf, size_t len)
{
    int n = 0, high = fdt_high_water();
    size_t used = 0;
    buf[0] = '\0';
    pid_t daemon = -1, peer;
    bool known = shim_daemon_pid(&daemon, false) == 0;
    for (int fd = 0; fd < high; fd++) {
        if (!fdt_maybe_sock(fd))
            continue;
        if (fdt_is_pending(fd) &&
            !(known && shim_token_shaped(fd, &peer) && peer == daemon))
            continue;
        long fl = syscall(SYS_fcntl, fd, F_GETFD);
        if (fl < 0 || (fl & FD_CLOEXEC))
            continue;
        if (n++ < DIAG_FDS_MAX && used < len) {
            int w = snprintf(buf + used, len - used, "%s%d",
                             n > 1 ? ", " : "", fd);
            used += w > 0 ? (size_t)w : 0;
        }
    }
    return n;
}

/* The file PATH search would run (execvp's rules), into buf. */
static const char *path_search(const char *file, char *buf, size_t len)
{
    if (!file || strchr(file, '/'))
        return file;
    const char *path = getenv("PATH");
    if (!path)
        path = "/bin:/usr/bin";
    while (*path) {
        size_t dl = strcspn(path, ":");
        if (snprintf(buf, len, "%.*s%s%s", (int)dl, path, dl ? "/" : "",
                     file) < (int)len &&
            access(buf, X_OK) == 0)
            return buf;
        path += dl;
        if (*path == ':')
            path++;
    }
    return file;
}

/* Warn (once per exec) when a static program is about to inherit our
 * sockets.  fd >= 0: the program itself (fexecve, AT_EMPTY_PATH). */
static void warn_if_static(int dirfd, const char *path, int fd)
{
    char fds[128];
    int n = inherited_socks(fds, sizeof(fds));
    if (!n)
        return;
    int own = -1;
    if (fd < 0 && path)
        fd = own = (int)syscall(SYS_openat, dirfd, path,
                                O_RDONLY | O_CLOEXEC);
    bool st = fd >= 0 && file_static(fd, 0);
    if (own >= 0)
        syscall(SYS_close, own);
    if (!st)
        return;
    char line[PATH_MAX + 400];
    int len = snprintf(line, sizeof(line),
                       "libpvcalls: %s is statically linked, so libpvcalls "
                       "cannot follow it: the PV Calls socket%s on fd%s %s%s "
                       "will not work in it (running it anyway)\n",
                       path && *path ? path : "the program",
                       n > 1 ? "s" : "", n > 1 ? "s" : "", fds,
                       n > DIAG_FDS_MAX ? ", ..." : "");
    if (len > (int)sizeof(line) - 1)
        len = (int)sizeof(line) - 1;
    int saved = errno;
    ssize_t w = REAL(write)(2, line, (size_t)len);
    (void)w;
    errno = saved;
}

/* ---- the calls --------------------------------------------------------- */

enum exec_kind { EX_EXECVE, EX_EXECVEAT, EX_FEXECVE, EX_EXECVPE, EX_SPAWN,
                 EX_SPAWNP };

struct exec_call {
    enum exec_kind kind;
    int dirfd, fd, flags;
    const char *path;
    char *const *argv;
    char *const *envp;
    pid_t *pid;
    const posix_spawn_file_actions_t *actions;
    const posix_spawnattr_t *attr;
};

static int call_real(const struct exec_call *c, char *const *env)
{
    switch (c->kind) {
    case EX_EXECVE:
        return REAL(execve)(c->path, c->argv, env);
    case EX_EXECVEAT:
        if (!REAL(execveat))
            return (int)syscall(SYS_execveat, c->dirfd, c->path, c->argv,
                                env, c->flags);
        return shim_real.execveat(c->dirfd, c->path, c->argv, env,
                                  c->flags);
    case EX_FEXECVE:
        return REAL(fexecve)(c->fd, c->argv, env);
    case EX_EXECVPE:
        return REAL(execvpe)(c->path, c->argv, env);
    case EX_SPAWN:
        return REAL(posix_spawn)(c->pid, c->path, c->actions, c->attr,
                                 c->argv, env);
    case EX_SPAWNP:
        return REAL(posix_spawnp)(c->pid, c->path, c->actions, c->attr,
                                  c->argv, env);
    }
    return -1;
}

static void check_target(const struct exec_call *c)
{
    char buf[PATH_MAX];
    switch (c->kind) {
    case EX_FEXECVE:
        warn_if_static(AT_FDCWD, NULL, c->fd);
        break;
    case EX_EXECVEAT:
        if ((c->flags & AT_EMPTY_PATH) && c->path && !*c->path)
            warn_if_static(AT_FDCWD, NULL, c->dirfd);
        else
            warn_if_static(c->dirfd, c->path, -1);
        break;
    case EX_EXECVPE:
    case EX_SPAWNP:
        warn_if_static(AT_FDCWD, path_search(c->path, buf, sizeof(buf)),
                       -1);
        break;
    default:
        warn_if_static(AT_FDCWD, c->path, -1);
        break;
    }
}

/* Every exec and spawn: check, fix the environment, call.  (The stack
 * memory lives in this frame, until the real call is over.) */
static int do_exec(const struct exec_call *c)
{
    check_target(c);
    struct env_plan plan;
    env_plan(c->envp, &plan);
    char *const *env = c->envp;
    if (plan.bytes) {
        void *mem = NULL;
        if (plan.bytes <= ENV_STACK_MAX)
            mem = alloca(plan.bytes);
        if (!mem) {
            mem = mmap(NULL, plan.bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            plan.map = mem == MAP_FAILED ? NULL : mem;
            mem = plan.map;
        }
        if (mem)
            env = env_build(c->envp, &plan, mem);
    }
    int r = call_real(c, env);
    if (plan.map) {
        int saved = errno;
        munmap(plan.map, plan.bytes);
        errno = saved;
    }
    return r;
}

int execve(const char *path, char *const argv[], char *const envp[])
{
    struct exec_call c = { .kind = EX_EXECVE, .path = path, .argv = argv,
                           .envp = envp };
    return do_exec(&c);
}

int execveat(int dirfd, const char *path, char *const argv[],
             char *const envp[], int flags)
{
    struct exec_call c = { .kind = EX_EXECVEAT, .dirfd = dirfd,
                           .path = path, .argv = argv, .envp = envp,
                           .flags = flags };
    return do_exec(&c);
}

int fexecve(int fd, char *const argv[], char *const envp[])
{
    struct exec_call c = { .kind = EX_FEXECVE, .fd = fd, .argv = argv,
                           .envp = envp };
    return do_exec(&c);
}

int execvpe(const char *file, char *const argv[], char *const envp[])
{
    struct exec_call c = { .kind = EX_EXECVPE, .path = file, .argv = argv,
                           .envp = envp };
    return do_exec(&c);
}

int execv(const char *path, char *const argv[])
{
    return execve(path, argv, environ);
}

int execvp(const char *file, char *const argv[])
{
    return execvpe(file, argv, environ);
}

/* execl*: glibc's own build argv and call its internal execve, which no
 * preload sees; so they are rebuilt here the same way (counting as glibc
 * does).  The array is alloca'ed by the caller, between these two. */
static size_t va_argc(va_list *ap)
{
    va_list c;
    va_copy(c, *ap);
    size_t n = 1;
    while (va_arg(c, const char *))
        n++;
    va_end(c);
    return n;
}

static void va_argv(char **argv, const char *arg, size_t n, va_list *ap)
{
    argv[0] = (char *)arg;
    for (size_t i = 1; i < n; i++)
        argv[i] = va_arg(*ap, char *);
    argv[n] = va_arg(*ap, char *); /* the terminating NULL */
}

int execl(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    size_t n = va_argc(&ap);
    char **argv = alloca((n + 1) * sizeof(char *));
    va_argv(argv, arg, n, &ap);
    va_end(ap);
    return execve(path, argv, environ);
}

int execlp(const char *file, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    size_t n = va_argc(&ap);
    char **argv = alloca((n + 1) * sizeof(char *));
    va_argv(argv, arg, n, &ap);
    va_end(ap);
    return execvpe(file, argv, environ);
}

int execle(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    size_t n = va_argc(&ap);
    char **argv = alloca((n + 1) * sizeof(char *));
    va_argv(argv, arg, n, &ap);
    char *const *envp = va_arg(ap, char *const *);
    va_end(ap);
    return execve(path, argv, envp);
}

int posix_spawn(pid_t *pid, const char *path,
                const posix_spawn_file_actions_t *actions,
                const posix_spawnattr_t *attr, char *const argv[],
                char *const envp[])
{
    struct exec_call c = { .kind = EX_SPAWN, .pid = pid, .path = path,
                           .actions = actions, .attr = attr, .argv = argv,
                           .envp = envp };
    return do_exec(&c);
}

int posix_spawnp(pid_t *pid, const char *file,
                 const posix_spawn_file_actions_t *actions,
                 const posix_spawnattr_t *attr, char *const argv[],
                 char *const envp[])
{
    struct exec_call c = { .kind = EX_SPAWNP, .pid = pid, .path = file,
                           .actions = actions, .attr = attr, .argv = argv,
                           .envp = envp };
    return do_exec(&c);
}
