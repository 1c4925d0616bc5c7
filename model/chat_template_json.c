/* model/chat_template_json.c: JSON as the chat templates print it (chat_template_impl.h). Text is
 * re-emitted as Python's json.dumps(ensure_ascii=False) would write what json.loads read: no tree
 * is built, so 1 and 1.0 keep their distinction as they do in Python; and as Python's repr(), for
 * templates that print values through `| string`. */
#include <math.h>
#include <stdio.h>

#include "model/chat_template_impl.h"

void cj_skip_ws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

/* One code point as json.dumps(ensure_ascii=False) writes it inside a string. */
static void emit_cp(struct sb *o, uint32_t cp)
{
    char u[8];
    switch (cp) {
    case '"': sb_str(o, "\\\""); return;
    case '\\': sb_str(o, "\\\\"); return;
    case '\n': sb_str(o, "\\n"); return;
    case '\r': sb_str(o, "\\r"); return;
    case '\t': sb_str(o, "\\t"); return;
    case '\b': sb_str(o, "\\b"); return;
    case '\f': sb_str(o, "\\f"); return;
    }
    if (cp < 0x20) {
        snprintf(u, sizeof(u), "\\u%04x", (unsigned)cp);
        sb_str(o, u);
    } else if (cp < 0x80) {
        sb_ch(o, (char)cp);
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3f));
        sb_add(o, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        sb_add(o, u, 3);
    } else {
        u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | (cp >> 12 & 0x3f));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f));
        sb_add(o, u, 4);
    }
}

static int hex4(const char *s, const char *end, uint32_t *v)
{
    *v = 0;
    if (end - s < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

/* A `\` escape at s (after the backslash) -> code point; JSON's set plus, if py, Python's \'.
 * Returns the bytes consumed or -1. */
static int unescape(const char *s, const char *end, bool py, uint32_t *cp)
{
    if (s >= end)
        return -1;
    switch (*s) {
    case '"': *cp = '"'; return 1;
    case '\\': *cp = '\\'; return 1;
    case '/': *cp = '/'; return 1;
    case 'b': *cp = '\b'; return 1;
    case 'f': *cp = '\f'; return 1;
    case 'n': *cp = '\n'; return 1;
    case 'r': *cp = '\r'; return 1;
    case 't': *cp = '\t'; return 1;
    case '\'': *cp = '\''; return py ? 1 : -1;
    case 'u': break;
    default: return -1;
    }
    uint32_t hi, lo;
    if (hex4(s + 1, end, &hi) < 0)
        return -1;
    if (hi < 0xd800 || hi > 0xdfff) {
        *cp = hi;
        return 5;
    }
    /* A surrogate must be a high one followed by \uDC00..DFFF: lone ones have no UTF-8. */
    if (hi > 0xdbff || end - s < 11 || s[5] != '\\' || s[6] != 'u' || hex4(s + 7, end, &lo) < 0
        || lo < 0xdc00 || lo > 0xdfff)
        return -1;
    *cp = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
    return 11;
}

/* A string literal opened by quote at j->p, re-emitted with double quotes into o (may be NULL). */
int cj_str_lit(struct jp *j, struct sb *o, char quote, bool py)
{
    j->p++;
    sb_ch(o, '"');
    while (j->p < j->end && *j->p != quote) {
        unsigned char c = (unsigned char)*j->p;
        uint32_t cp;
        if (c == '\\') {
            int k = unescape(j->p + 1, j->end, py, &cp);
            if (k < 0)
                return -1;
            emit_cp(o, cp);
            j->p += 1 + k;
        } else if (c < 0x20) {
            return -1;
        } else {
            /* Raw bytes (UTF-8 included) pass through; only '"' needs escaping here. */
            if (c == '"')
                sb_str(o, "\\\"");
            else
                sb_ch(o, (char)c);
            j->p++;
        }
    }
    if (j->p >= j->end)
        return -1;
    j->p++;
    sb_ch(o, '"');
    return 0;
}

/* Python's repr() of a double: shortest round-trip digits, exponent form outside [1e-4, 1e16). */
static void emit_float(struct sb *o, double v)
{
    char buf[40], digits[24], out[48];
    int exp10 = 0, nd = 0, k = 0;
    if (isinf(v)) {
        sb_str(o, v < 0 ? "-Infinity" : "Infinity");
        return;
    }
    if (v == 0) {
        sb_str(o, signbit(v) ? "-0.0" : "0.0");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    for (const char *s = buf; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9')
            digits[nd++] = *s;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    exp10 = atoi(strchr(buf, 'e') + 1) + 1; /* value = 0.DIGITS * 10^exp10 */
    if (v < 0)
        out[k++] = '-';
    if (exp10 <= -4 || exp10 > 16) {
        out[k++] = digits[0];
        if (nd > 1) {
            out[k++] = '.';
            for (int i = 1; i < nd; i++)
                out[k++] = digits[i];
        }
        k += snprintf(out + k, sizeof(out) - (size_t)k, "e%c%02d", exp10 - 1 < 0 ? '-' : '+',
                      abs(exp10 - 1));
    } else if (exp10 <= 0) {
        out[k++] = '0', out[k++] = '.';
        for (int i = 0; i < -exp10; i++)
            out[k++] = '0';
        for (int i = 0; i < nd; i++)
            out[k++] = digits[i];
    } else {
        for (int i = 0; i < exp10; i++)
            out[k++] = i < nd ? digits[i] : '0';
        out[k++] = '.';
        if (nd <= exp10)
            out[k++] = '0';
        for (int i = exp10; i < nd; i++)
            out[k++] = digits[i];
    }
    sb_add(o, out, (size_t)k);
}

/* A JSON number at j->p: integers keep their text (Python ints are exact), others go through
 * a double as json.loads does. */
int cj_num_lit(struct jp *j, struct sb *o)
{
    const char *s = j->p;
    bool is_float = false;
    if (s < j->end && *s == '-')
        s++;
    if (s >= j->end || *s < '0' || *s > '9' || (*s == '0' && s + 1 < j->end && s[1] >= '0'
                                                 && s[1] <= '9'))
        return -1;
    while (s < j->end && *s >= '0' && *s <= '9')
        s++;
    if (s < j->end && *s == '.') {
        is_float = true;
        if (++s >= j->end || *s < '0' || *s > '9')
            return -1;
        while (s < j->end && *s >= '0' && *s <= '9')
            s++;
    }
    if (s < j->end && (*s == 'e' || *s == 'E')) {
        is_float = true;
        if (++s < j->end && (*s == '+' || *s == '-'))
            s++;
        if (s >= j->end || *s < '0' || *s > '9')
            return -1;
        while (s < j->end && *s >= '0' && *s <= '9')
            s++;
    }
    size_t n = (size_t)(s - j->p);
    if (is_float) {
        char tmp[64];
        if (n >= sizeof(tmp))
            return -1;
        memcpy(tmp, j->p, n);
        tmp[n] = 0;
        emit_float(o, strtod(tmp, NULL));
    } else if (n == 2 && j->p[0] == '-' && j->p[1] == '0') {
        sb_ch(o, '0');
    } else {
        sb_add(o, j->p, n);
    }
    j->p = s;
    return 0;
}

bool cj_word(struct jp *j, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
        return false;
    j->p += n;
    return true;
}

static int json_value(struct jp *j, struct sb *o, int depth);

/* Array or object: elements separated by ", ", members by ": ". */
static int json_container(struct jp *j, struct sb *o, int depth)
{
    bool obj = *j->p == '{';
    char close = obj ? '}' : ']';
    sb_ch(o, *j->p++);
    cj_skip_ws(j);
    if (j->p < j->end && *j->p == close) {
        sb_ch(o, *j->p++);
        return 0;
    }
    for (;;) {
        cj_skip_ws(j);
        if (obj) {
            if (j->p >= j->end || *j->p != '"' || cj_str_lit(j, o, '"', false) < 0)
                return -1;
            cj_skip_ws(j);
            if (j->p >= j->end || *j->p++ != ':')
                return -1;
            sb_str(o, ": ");
        }
        if (json_value(j, o, depth + 1) < 0)
            return -1;
        cj_skip_ws(j);
        if (j->p >= j->end)
            return -1;
        if (*j->p == close) {
            sb_ch(o, *j->p++);
            return 0;
        }
        if (*j->p++ != ',')
            return -1;
        sb_str(o, ", ");
    }
}

static int json_value(struct jp *j, struct sb *o, int depth)
{
    cj_skip_ws(j);
    if (j->p >= j->end || depth > MAX_DEPTH)
        return -1;
    switch (*j->p) {
    case '{':
    case '[': return json_container(j, o, depth);
    case '"': return cj_str_lit(j, o, '"', false);
    }
    if (cj_word(j, "true"))
        return sb_str(o, "true"), 0;
    if (cj_word(j, "false"))
        return sb_str(o, "false"), 0;
    if (cj_word(j, "null"))
        return sb_str(o, "null"), 0;
    return cj_num_lit(j, o);
}

/* Re-serializes the whole JSON text [s, end) into o; -1 if it is not exactly one JSON value. */
int cj_dump(const char *s, const char *end, struct sb *o)
{
    struct jp j = {s, end};
    if (json_value(&j, o, 0) < 0)
        return -1;
    cj_skip_ws(&j);
    return j.p == j.end ? 0 : -1;
}

/* Calls fn on each element [s, e) of the JSON array text; -1 if it is not an array. */
int cj_each(const char *text, int (*fn)(const char *s, const char *e, void *ctx),
                     void *ctx)
{
    struct jp j = {text, text + strlen(text)};
    cj_skip_ws(&j);
    if (j.p >= j.end || *j.p++ != '[')
        return -1;
    cj_skip_ws(&j);
    for (int k = 0;; k++) {
        if (k == 0 && j.p < j.end && *j.p == ']')
            break;
        cj_skip_ws(&j);
        const char *s = j.p;
        if (json_value(&j, NULL, 1) < 0 || fn(s, j.p, ctx) < 0)
            return -1;
        cj_skip_ws(&j);
        if (j.p >= j.end)
            return -1;
        if (*j.p == ']')
            break;
        if (*j.p++ != ',')
            return -1;
    }
    j.p++;
    cj_skip_ws(&j);
    return j.p == j.end ? 0 : -1;
}

/* The value of key in the JSON object [s, e): its span in *vs, *ve; -1 if absent or malformed. */
int cj_get(const char *s, const char *e, const char *key, const char **vs,
                    const char **ve)
{
    struct jp j = {s, e};
    struct sb k = {0};
    int rc = -1;
    cj_skip_ws(&j);
    if (j.p >= j.end || *j.p++ != '{')
        return -1;
    for (;;) {
        cj_skip_ws(&j);
        k.n = 0;
        if (j.p >= j.end || *j.p != '"' || cj_str_lit(&j, &k, '"', false) < 0 || k.oom)
            break;
        cj_skip_ws(&j);
        if (j.p >= j.end || *j.p++ != ':')
            break;
        cj_skip_ws(&j);
        const char *v = j.p;
        if (json_value(&j, NULL, 1) < 0)
            break;
        if (k.n == strlen(key) + 2 && memcmp(k.p + 1, key, k.n - 2) == 0) {
            *vs = v, *ve = j.p, rc = 0;
            break;
        }
        cj_skip_ws(&j);
        if (j.p >= j.end || *j.p++ != ',')
            break;
    }
    free(k.p);
    return rc;
}

/* The decoded text of a JSON string value [s, e) appended raw to o (as Jinja prints a string). */
int cj_str_raw(const char *s, const char *e, struct sb *o)
{
    struct jp j = {s, e};
    if (s >= e || *s != '"')
        return -1;
    j.p++;
    while (j.p < j.end && *j.p != '"') {
        uint32_t cp;
        if (*j.p == '\\') {
            int k = unescape(j.p + 1, j.end, false, &cp);
            if (k < 0)
                return -1;
            if (cp < 0x80)
                sb_ch(o, (char)cp);
            else
                emit_cp(o, cp);
            j.p += 1 + k;
        } else {
            sb_ch(o, *j.p++);
        }
    }
    return j.p < j.end ? 0 : -1;
}

/* Calls fn on each member of the JSON object [s, e): key [ks, ke) (a JSON string literal) and
 * value [vs, ve). -1 if it is not one object or fn fails. */
int cj_members(const char *s, const char *e,
                        int (*fn)(const char *ks, const char *ke, const char *vs, const char *ve,
                                  void *ctx),
                        void *ctx)
{
    struct jp j = {s, e};
    cj_skip_ws(&j);
    if (j.p >= j.end || *j.p++ != '{')
        return -1;
    cj_skip_ws(&j);
    if (j.p < j.end && *j.p == '}')
        j.p++;
    else
        for (;;) {
            cj_skip_ws(&j);
            const char *ks = j.p;
            if (j.p >= j.end || *j.p != '"' || cj_str_lit(&j, NULL, '"', false) < 0)
                return -1;
            const char *ke = j.p;
            cj_skip_ws(&j);
            if (j.p >= j.end || *j.p++ != ':')
                return -1;
            cj_skip_ws(&j);
            const char *vs = j.p;
            if (json_value(&j, NULL, 1) < 0 || fn(ks, ke, vs, j.p, ctx) < 0)
                return -1;
            cj_skip_ws(&j);
            if (j.p < j.end && *j.p == '}') {
                j.p++;
                break;
            }
            if (j.p >= j.end || *j.p++ != ',')
                return -1;
        }
    cj_skip_ws(&j);
    return j.p == j.end ? 0 : -1;
}

/* Python's repr() of the string raw[0..n) (UTF-8): single quotes unless the text has a single
 * quote and no double one; backslash escapes for the quote, \\, \n, \r, \t and other control
 * characters (C0, DEL, C1 as \xNN). Other characters Python deems unprintable (U+00AD, line
 * separators, ...) would be escaped by Python too; they are passed through here. */
static void py_str_repr(const char *raw, size_t n, struct sb *o)
{
    char q = memchr(raw, '\'', n) && !memchr(raw, '"', n) ? '"' : '\'';
    char hex[8];
    sb_ch(o, q);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c == '\\' || c == (unsigned char)q) {
            sb_ch(o, '\\');
            sb_ch(o, (char)c);
        } else if (c == '\n' || c == '\r' || c == '\t') {
            sb_str(o, c == '\n' ? "\\n" : c == '\r' ? "\\r" : "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(hex, sizeof(hex), "\\x%02x", c);
            sb_str(o, hex);
        } else if (c == 0xc2 && i + 1 < n && (unsigned char)raw[i + 1] < 0xa0) {
            snprintf(hex, sizeof(hex), "\\x%02x", (unsigned char)raw[++i]); /* U+0080..009F */
            sb_str(o, hex);
        } else {
            sb_ch(o, (char)c);
        }
    }
    sb_ch(o, q);
}

int cj_py_repr(struct jp *j, struct sb *o, int depth);

/* Python's repr() of the JSON array or object at j->p, as json.loads would build it. */
static int py_repr_container(struct jp *j, struct sb *o, int depth)
{
    bool obj = *j->p == '{';
    char close = obj ? '}' : ']';
    sb_ch(o, *j->p++);
    for (int k = 0;; k++) {
        cj_skip_ws(j);
        if (k == 0 && j->p < j->end && *j->p == close)
            break;
        if (k > 0)
            sb_str(o, ", ");
        if (obj) {
            if (j->p >= j->end || *j->p != '"' || cj_py_repr(j, o, depth + 1) < 0)
                return -1;
            cj_skip_ws(j);
            if (j->p >= j->end || *j->p++ != ':')
                return -1;
            sb_str(o, ": ");
        }
        if (cj_py_repr(j, o, depth + 1) < 0)
            return -1;
        cj_skip_ws(j);
        if (j->p < j->end && *j->p == close)
            break;
        if (j->p >= j->end || *j->p++ != ',')
            return -1;
    }
    sb_ch(o, *j->p++);
    return 0;
}

/* Python's repr() (and str(), for all but strings) of the JSON value at j->p: True/False/None,
 * Python's quoting, ints exact and floats by repr. Templates print it through `| string`. */
int cj_py_repr(struct jp *j, struct sb *o, int depth)
{
    cj_skip_ws(j);
    if (j->p >= j->end || depth > MAX_DEPTH)
        return -1;
    char c = *j->p;
    if (c == '[' || c == '{')
        return py_repr_container(j, o, depth);
    if (c == '"') {
        const char *s = j->p;
        struct sb raw = {0};
        int rc = cj_str_lit(j, NULL, '"', false) < 0 || cj_str_raw(s, j->p, &raw) < 0 ? -1 : 0;
        if (!rc)
            py_str_repr(raw.p ? raw.p : "", raw.n, o);
        free(raw.p);
        return rc;
    }
    if (cj_word(j, "true"))
        return sb_str(o, "True"), 0;
    if (cj_word(j, "false"))
        return sb_str(o, "False"), 0;
    if (cj_word(j, "null"))
        return sb_str(o, "None"), 0;
    return cj_num_lit(j, o);
}
