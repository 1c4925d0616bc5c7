/* base/err.c: error texts and the error record (see err.h). */
#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *mp_strerror(int code)
{
    switch (code) {
#define MP_ERR_CASE(name, value, text) \
    case value:                        \
        return text;
        MP_ERROR_LIST(MP_ERR_CASE)
#undef MP_ERR_CASE
    }
    return "unknown error";
}

int mp_error_set(struct mp_error *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

int mp_error_wrap(struct mp_error *err, const char *fmt, ...)
{
    if (!err)
        return MP_EINVAL;
    char prefix[MP_ERROR_MSG_MAX], old[MP_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    /* Truncation is acceptable: messages are one line for people, and the prefix comes first. */
    size_t n = strlen(prefix);
    memcpy(err->msg, prefix, n + 1);
    strncat(err->msg, old, sizeof(err->msg) - n - 1);
    return err->code;
}

void mp_assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "moepool: internal error: assertion '%s' failed at %s:%d\n", cond, file, line);
    abort();
}
