/* base/log.h: leveled logging to stderr. Level from MOEPOOL_LOG (error|warn|info|debug), default
 * info. Only messages for people; machine-readable output goes to stdout from cmd_*.c. */
#ifndef MP_LOG_H
#define MP_LOG_H

enum mp_log_level { MP_LOG_ERROR, MP_LOG_WARN, MP_LOG_INFO, MP_LOG_DEBUG };

void mp_log(enum mp_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mp_log_set_level(enum mp_log_level level);

#define mp_error_log(...) mp_log(MP_LOG_ERROR, __VA_ARGS__)
#define mp_warn(...) mp_log(MP_LOG_WARN, __VA_ARGS__)
#define mp_info(...) mp_log(MP_LOG_INFO, __VA_ARGS__)
#define mp_debug(...) mp_log(MP_LOG_DEBUG, __VA_ARGS__)

#endif
