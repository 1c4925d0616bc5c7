/* base/err.h: moepool's error codes and the error record every fallible call fills.
 *
 * One X-macro list gives both the negative enum values and their names, so a code and its text
 * never drift apart. A fallible function returns 0 or a negative MP_E* code and, when the caller
 * passed a struct mp_error, a one-line message that names the object at fault (file, tensor,
 * peer, request). Inner code never prints; only cmd_*.c files show errors to the user. */
#ifndef MP_ERR_H
#define MP_ERR_H

#include <stdarg.h>

#define MP_ERROR_LIST(X)                                                   \
    X(MP_OK, 0, "success")                                                 \
    X(MP_EINVAL, -1, "invalid argument")                                   \
    X(MP_ENOMEM, -2, "out of memory")                                      \
    X(MP_EIO, -3, "input/output error")                                    \
    X(MP_ECORRUPT, -4, "corrupt or malformed data")                        \
    X(MP_EUNSUPPORTED, -5, "unsupported feature")                          \
    X(MP_ENOTFOUND, -6, "not found")                                       \
    X(MP_ERANGE, -7, "value out of range")                                 \
    X(MP_EPEER, -8, "peer failed")                                         \
    X(MP_ETIMEOUT, -9, "timed out")                                        \
    X(MP_EBUSY, -10, "busy")                                               \
    X(MP_ECANCELED, -11, "canceled")

enum mp_err {
#define MP_ERR_ENUM(name, value, text) name = value,
    MP_ERROR_LIST(MP_ERR_ENUM)
#undef MP_ERR_ENUM
};

#define MP_ERROR_MSG_MAX 256

/* Filled by the function that failed; code is 0 until then. */
struct mp_error {
    int code;
    char msg[MP_ERROR_MSG_MAX];
};

/* Text of a code ("corrupt or malformed data"); never NULL. */
const char *mp_strerror(int code);

/* Records code and a printf-style message in err (which may be NULL); returns code, so a caller
 * can write `return mp_error_set(err, MP_ECORRUPT, "%s: ...", path);`. */
int mp_error_set(struct mp_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes an existing message with more context ("loading shard: " + old message). */
int mp_error_wrap(struct mp_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Invariant checks for our own bugs, never for input: input errors are returned as codes. */
#define MP_ASSERT(cond)                                                               \
    do {                                                                              \
        if (!(cond))                                                                  \
            mp_assert_fail(#cond, __FILE__, __LINE__);                                \
    } while (0)

_Noreturn void mp_assert_fail(const char *cond, const char *file, int line);

#endif
