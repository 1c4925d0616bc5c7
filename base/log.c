/* base/log.c: see log.h. The level is read once from the environment, lazily. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int current_level = -1;

static int level_from_env(void)
{
    const char *s = getenv("MOEPOOL_LOG");
    if (!s)
        return MP_LOG_INFO;
    if (!strcmp(s, "error"))
        return MP_LOG_ERROR;
    if (!strcmp(s, "warn"))
        return MP_LOG_WARN;
    if (!strcmp(s, "debug"))
        return MP_LOG_DEBUG;
    return MP_LOG_INFO;
}

void mp_log_set_level(enum mp_log_level level)
{
    current_level = (int)level;
}

void mp_log(enum mp_log_level level, const char *fmt, ...)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    if (current_level < 0)
        current_level = level_from_env();
    if ((int)level > current_level)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "moepool %s: %s\n", names[level], line);
}
