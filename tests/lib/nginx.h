/*
 * Debian's nginx (/usr/sbin/nginx) in an end-to-end test: a minimal
 * nginx.conf in the test's directory (daemon off, master_process on,
 * worker_processes 2, the default event loop, which is epoll; pid file,
 * logs and temp paths in the test's directory; listen 127.0.0.1:PORT;
 * sendfile on, as Debian's own configuration has it), started natively
 * or under pvcalls-run --isolate, waited for without polling.
 *
 * Started as root, nginx runs its workers as its default user (nobody):
 * the test directory is traversable (0711) and everything nginx serves
 * is world-readable, so nothing needs `user root;`.
 */
#ifndef TEST_NGINX_H
#define TEST_NGINX_H

#include "runprog.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define NGX_WORKERS 2

struct ngx_srv {
    struct rp_env *e;
    char dir[128];      /* the prefix: nginx.conf, logs, temp paths */
    char www[160];      /* the document root */
    char conf[192];
    char pid_file[192];
    char error_log[192];
    char port[8];
    bool shim;
    struct rp_child run; /* nginx itself, or pvcalls-run */
    pid_t master;
};

/* Write nginx.conf and create www/ for a free loopback port, in the
 * test directory's subdirectory name (one per nginx). */
void ngx_setup(struct ngx_srv *n, struct rp_env *e, const char *name);
/* Put main-context directives (e.g. "user nobody nogroup;\n") at the
 * top of nginx.conf, after ngx_setup and before ngx_start. */
void ngx_conf_prepend(struct ngx_srv *n, const char *directives);
/* A file's path in www/, and its URL. */
const char *ngx_www_path(const struct ngx_srv *n, const char *name,
                         char *buf, size_t len);
const char *ngx_url(const struct ngx_srv *n, const char *name, char *buf,
                    size_t len);
/* Start nginx (under pvcalls-run --isolate if shim) and wait until it
 * listens (it writes its pid file after opening its listening sockets)
 * and has started both workers (the master logs each fork).  Asserts,
 * and fails at once if nginx exits meanwhile. */
void ngx_start(struct ngx_srv *n, bool shim);
/* The master's current children (its workers): how many there are. */
size_t ngx_workers(const struct ngx_srv *n, pid_t *out, size_t max);
/* The distinct pids that served requests so far (its access log
 * records the worker's $pid with each request), at most max. */
size_t ngx_served_by(const struct ngx_srv *n, pid_t *out, size_t max);
/* SIGTERM (nginx's fast shutdown) and assert a clean exit 0. */
void ngx_stop(struct ngx_srv *n);

#endif
