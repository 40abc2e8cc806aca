/* Diagnostics to stderr, prefixed with the program's name. */
#ifndef PVC_LOG_H
#define PVC_LOG_H

enum pvc_log_level { PVC_LOG_ERR, PVC_LOG_WARN, PVC_LOG_INFO, PVC_LOG_DEBUG };

/* Messages above this level are dropped; PVC_LOG=debug|info|warn|err
 * in the environment sets it at the first message (default: info). */
void pvc_log_set_level(enum pvc_log_level level);
void pvc_log(enum pvc_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define pvc_err(...) pvc_log(PVC_LOG_ERR, __VA_ARGS__)
#define pvc_warn(...) pvc_log(PVC_LOG_WARN, __VA_ARGS__)
#define pvc_info(...) pvc_log(PVC_LOG_INFO, __VA_ARGS__)
#define pvc_debug(...) pvc_log(PVC_LOG_DEBUG, __VA_ARGS__)

#endif
