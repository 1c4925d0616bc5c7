/* model/chat_template.c: native renderings of the LFM2, LFM2.5, Qwen3 and plain ChatML chat
 * templates and
 * the parsers of the tool calls the models write (API and spec pointers in chat_template.h).
 * Each render_* function mirrors its Jinja template statement by statement; the Jinja text is in
 * the conformance GGUFs and tests/chat_template.py renders it for comparison. JSON is handled by a
 * small recursive transcoder that re-emits text as Python's json.dumps(ensure_ascii=False) would:
 * no tree is built, so 1 and 1.0 keep their distinction as they do in Python. */
#include "model/chat_template.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Nesting limit for JSON and Python literals: deep enough for any tool schema, shallow enough
 * that hostile model output cannot exhaust the stack. */
#define MAX_DEPTH 64

/* ---- growable string ---- */

struct sb {
    char *p;
    size_t n, cap;
    bool oom;
};

static void sb_add(struct sb *b, const char *s, size_t n)
{
    if (!b || b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(struct sb *b, const char *s) { sb_add(b, s, strlen(s)); }
static void sb_ch(struct sb *b, char c) { sb_add(b, &c, 1); }

static char *sb_take(struct sb *b)
{
    char *p = b->p;
    if (!p && !b->oom) {
        p = malloc(1);
        if (p)
            p[0] = 0;
    }
    b->p = NULL;
    b->n = b->cap = 0;
    return p;
}

/* ---- JSON -> Python json.dumps text ---- */

struct jp {
    const char *p, *end;
};

static void skip_ws(struct jp *j)
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
static int str_lit(struct jp *j, struct sb *o, char quote, bool py)
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
static int num_lit(struct jp *j, struct sb *o)
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

static bool word(struct jp *j, const char *w)
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
    skip_ws(j);
    if (j->p < j->end && *j->p == close) {
        sb_ch(o, *j->p++);
        return 0;
    }
    for (;;) {
        skip_ws(j);
        if (obj) {
            if (j->p >= j->end || *j->p != '"' || str_lit(j, o, '"', false) < 0)
                return -1;
            skip_ws(j);
            if (j->p >= j->end || *j->p++ != ':')
                return -1;
            sb_str(o, ": ");
        }
        if (json_value(j, o, depth + 1) < 0)
            return -1;
        skip_ws(j);
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
    skip_ws(j);
    if (j->p >= j->end || depth > MAX_DEPTH)
        return -1;
    switch (*j->p) {
    case '{':
    case '[': return json_container(j, o, depth);
    case '"': return str_lit(j, o, '"', false);
    }
    if (word(j, "true"))
        return sb_str(o, "true"), 0;
    if (word(j, "false"))
        return sb_str(o, "false"), 0;
    if (word(j, "null"))
        return sb_str(o, "null"), 0;
    return num_lit(j, o);
}

/* Re-serializes the whole JSON text [s, end) into o; -1 if it is not exactly one JSON value. */
static int json_dump(const char *s, const char *end, struct sb *o)
{
    struct jp j = {s, end};
    if (json_value(&j, o, 0) < 0)
        return -1;
    skip_ws(&j);
    return j.p == j.end ? 0 : -1;
}

/* Calls fn on each element [s, e) of the JSON array text; -1 if it is not an array. */
static int json_each(const char *text, int (*fn)(const char *s, const char *e, void *ctx),
                     void *ctx)
{
    struct jp j = {text, text + strlen(text)};
    skip_ws(&j);
    if (j.p >= j.end || *j.p++ != '[')
        return -1;
    skip_ws(&j);
    for (int k = 0;; k++) {
        if (k == 0 && j.p < j.end && *j.p == ']')
            break;
        skip_ws(&j);
        const char *s = j.p;
        if (json_value(&j, NULL, 1) < 0 || fn(s, j.p, ctx) < 0)
            return -1;
        skip_ws(&j);
        if (j.p >= j.end)
            return -1;
        if (*j.p == ']')
            break;
        if (*j.p++ != ',')
            return -1;
    }
    j.p++;
    skip_ws(&j);
    return j.p == j.end ? 0 : -1;
}

/* The value of key in the JSON object [s, e): its span in *vs, *ve; -1 if absent or malformed. */
static int json_get(const char *s, const char *e, const char *key, const char **vs,
                    const char **ve)
{
    struct jp j = {s, e};
    struct sb k = {0};
    int rc = -1;
    skip_ws(&j);
    if (j.p >= j.end || *j.p++ != '{')
        return -1;
    for (;;) {
        skip_ws(&j);
        k.n = 0;
        if (j.p >= j.end || *j.p != '"' || str_lit(&j, &k, '"', false) < 0 || k.oom)
            break;
        skip_ws(&j);
        if (j.p >= j.end || *j.p++ != ':')
            break;
        skip_ws(&j);
        const char *v = j.p;
        if (json_value(&j, NULL, 1) < 0)
            break;
        if (k.n == strlen(key) + 2 && memcmp(k.p + 1, key, k.n - 2) == 0) {
            *vs = v, *ve = j.p, rc = 0;
            break;
        }
        skip_ws(&j);
        if (j.p >= j.end || *j.p++ != ',')
            break;
    }
    free(k.p);
    return rc;
}

/* The decoded text of a JSON string value [s, e) appended raw to o (as Jinja prints a string). */
static int json_str_raw(const char *s, const char *e, struct sb *o)
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
static int json_members(const char *s, const char *e,
                        int (*fn)(const char *ks, const char *ke, const char *vs, const char *ve,
                                  void *ctx),
                        void *ctx)
{
    struct jp j = {s, e};
    skip_ws(&j);
    if (j.p >= j.end || *j.p++ != '{')
        return -1;
    skip_ws(&j);
    if (j.p < j.end && *j.p == '}')
        j.p++;
    else
        for (;;) {
            skip_ws(&j);
            const char *ks = j.p;
            if (j.p >= j.end || *j.p != '"' || str_lit(&j, NULL, '"', false) < 0)
                return -1;
            const char *ke = j.p;
            skip_ws(&j);
            if (j.p >= j.end || *j.p++ != ':')
                return -1;
            skip_ws(&j);
            const char *vs = j.p;
            if (json_value(&j, NULL, 1) < 0 || fn(ks, ke, vs, j.p, ctx) < 0)
                return -1;
            skip_ws(&j);
            if (j.p < j.end && *j.p == '}') {
                j.p++;
                break;
            }
            if (j.p >= j.end || *j.p++ != ',')
                return -1;
        }
    skip_ws(&j);
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

static int py_repr(struct jp *j, struct sb *o, int depth);

/* Python's repr() of the JSON array or object at j->p, as json.loads would build it. */
static int py_repr_container(struct jp *j, struct sb *o, int depth)
{
    bool obj = *j->p == '{';
    char close = obj ? '}' : ']';
    sb_ch(o, *j->p++);
    for (int k = 0;; k++) {
        skip_ws(j);
        if (k == 0 && j->p < j->end && *j->p == close)
            break;
        if (k > 0)
            sb_str(o, ", ");
        if (obj) {
            if (j->p >= j->end || *j->p != '"' || py_repr(j, o, depth + 1) < 0)
                return -1;
            skip_ws(j);
            if (j->p >= j->end || *j->p++ != ':')
                return -1;
            sb_str(o, ": ");
        }
        if (py_repr(j, o, depth + 1) < 0)
            return -1;
        skip_ws(j);
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
static int py_repr(struct jp *j, struct sb *o, int depth)
{
    skip_ws(j);
    if (j->p >= j->end || depth > MAX_DEPTH)
        return -1;
    char c = *j->p;
    if (c == '[' || c == '{')
        return py_repr_container(j, o, depth);
    if (c == '"') {
        const char *s = j->p;
        struct sb raw = {0};
        int rc = str_lit(j, NULL, '"', false) < 0 || json_str_raw(s, j->p, &raw) < 0 ? -1 : 0;
        if (!rc)
            py_str_repr(raw.p ? raw.p : "", raw.n, o);
        free(raw.p);
        return rc;
    }
    if (word(j, "true"))
        return sb_str(o, "True"), 0;
    if (word(j, "false"))
        return sb_str(o, "False"), 0;
    if (word(j, "null"))
        return sb_str(o, "None"), 0;
    return num_lit(j, o);
}

/* ---- rendering ---- */

enum chat_format chat_detect(const char *t, size_t len, bool *fallback)
{
    enum chat_format f = CHAT_CHATML;
    if (memmem(t, len, "<|tool_list_start|>", 19))
        f = CHAT_LFM2;
    else if (memmem(t, len, "<|tool_call_start|>", 19) && memmem(t, len, "List of tools: ", 15))
        f = CHAT_LFM25;
    else if (memmem(t, len, "<tool_call>", 11) && memmem(t, len, "<|im_start|>", 12))
        f = CHAT_QWEN3;
    if (fallback)
        *fallback = f == CHAT_CHATML;
    return f;
}

static const char *str_or_empty(const char *s) { return s ? s : ""; }

static int add_lfm2_tool(const char *s, const char *e, void *ctx)
{
    struct sb *o = ctx;
    if (o->n)
        sb_str(o, ", ");
    return json_dump(s, e, o);
}

static int add_qwen3_tool(const char *s, const char *e, void *ctx)
{
    sb_ch(ctx, '\n');
    return json_dump(s, e, ctx);
}

static void turn(struct sb *o, const char *role, const char *content)
{
    sb_str(o, "<|im_start|>");
    sb_str(o, role);
    sb_ch(o, '\n');
    sb_str(o, content);
    sb_str(o, "<|im_end|>\n");
}

/* LFM2-8B-A1B's template; the leading bos_token is left to the tokenizer (see the header). */
static int render_lfm2(const struct chat_msg *m, int n, const char *tools, struct sb *o,
                       struct mp_error *err)
{
    struct sb sys = {0};
    int i = 0;
    if (n > 0 && strcmp(m[0].role, "system") == 0)
        sb_str(&sys, str_or_empty(m[i++].content));
    if (tools && *tools) {
        struct sb t = {0};
        if (json_each(tools, add_lfm2_tool, &t) < 0) {
            free(t.p);
            free(sys.p);
            return mp_error_set(err, MP_EINVAL, "chat: tools is not a JSON array");
        }
        /* Jinja's `if tools` is false for an empty list: no tool line at all then. */
        if (t.n) {
            sb_str(&sys, sys.n ? "\n" : "");
            sb_str(&sys, "List of tools: <|tool_list_start|>[");
            sb_add(&sys, t.p, t.n);
            sb_str(&sys, "]<|tool_list_end|>");
        }
        free(t.p);
    }
    if (sys.n)
        turn(o, "system", sys.p);
    free(sys.p);
    for (; i < n; i++) {
        sb_str(o, "<|im_start|>");
        sb_str(o, m[i].role);
        sb_ch(o, '\n');
        bool tool = strcmp(m[i].role, "tool") == 0;
        sb_str(o, tool ? "<|tool_response_start|>" : "");
        sb_str(o, str_or_empty(m[i].content));
        sb_str(o, tool ? "<|tool_response_end|>" : "");
        sb_str(o, "<|im_end|>\n");
    }
    return 0;
}

/* ---- LFM2.5 ---- */

/* Length of the Python whitespace character (str.isspace) at [s, e), or 0. */
static size_t py_space_at(const char *s, const char *e)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = (size_t)(e - s);
    if (n >= 1 && (u[0] == ' ' || (u[0] >= 0x09 && u[0] <= 0x0d) || (u[0] >= 0x1c && u[0] <= 0x1f)))
        return 1;
    if (n >= 2 && u[0] == 0xc2 && (u[1] == 0x85 || u[1] == 0xa0))
        return 2;
    if (n < 3)
        return 0;
    uint32_t cp = (uint32_t)(u[0] & 0x0f) << 12 | (uint32_t)(u[1] & 0x3f) << 6 | (u[2] & 0x3f);
    if ((u[0] & 0xf0) != 0xe0 || (u[1] & 0xc0) != 0x80 || (u[2] & 0xc0) != 0x80)
        return 0;
    bool space = cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 ||
                 cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
    return space ? 3 : 0;
}

/* Jinja's `| trim` (Python's str.strip()) on [*s, *e). */
static void py_strip(const char **s, const char **e)
{
    size_t k;
    while (*s < *e && (k = py_space_at(*s, *e)))
        *s += k;
    const char *last = *s; /* end of the last non-space character */
    for (const char *p = *s; p < *e;) {
        k = py_space_at(p, *e);
        p += k ? k : 1;
        if (!k)
            last = p;
    }
    *e = last;
}

struct lfm25_args {
    struct sb *o;
    int n;
};

/* `name=value` as the template's format_arg_value writes it: strings in single quotes as they
 * are (no escaping), objects as JSON, anything else through Python's str(). */
static int add_lfm25_arg(const char *ks, const char *ke, const char *vs, const char *ve, void *ctx)
{
    struct lfm25_args *a = ctx;
    if (a->n++)
        sb_str(a->o, ", ");
    if (json_str_raw(ks, ke, a->o) < 0)
        return -1;
    sb_ch(a->o, '=');
    if (*vs == '"') {
        sb_ch(a->o, '\'');
        int rc = json_str_raw(vs, ve, a->o);
        sb_ch(a->o, '\'');
        return rc;
    }
    if (*vs == '{')
        return json_dump(vs, ve, a->o);
    struct jp j = {vs, ve};
    return py_repr(&j, a->o, 1);
}

struct lfm25_calls {
    struct sb *o;
    int n;
};

/* One call `name(k=v, ...)`; arguments may be an object or a JSON string holding one. */
static int add_lfm25_call(const char *s, const char *e, void *ctx)
{
    struct lfm25_calls *c = ctx;
    const char *fs, *fe, *ns, *ne, *as, *ae;
    if (json_get(s, e, "function", &fs, &fe) == 0)
        s = fs, e = fe;
    if (json_get(s, e, "name", &ns, &ne) < 0 || *ns != '"' ||
        json_get(s, e, "arguments", &as, &ae) < 0)
        return -1;
    if (c->n++)
        sb_str(c->o, ", ");
    if (json_str_raw(ns, ne, c->o) < 0)
        return -1;
    sb_ch(c->o, '(');
    struct sb text = {0};
    if (*as == '"') {
        if (json_str_raw(as, ae, &text) < 0 || !text.p) {
            free(text.p);
            return -1;
        }
        as = text.p, ae = text.p + text.n;
    }
    struct lfm25_args a = {c->o, 0};
    int rc = json_members(as, ae, add_lfm25_arg, &a);
    free(text.p);
    sb_ch(c->o, ')');
    return rc;
}

/* The system turn: the system message, then (with tools) the date and the tool list. */
static int lfm25_system(const struct chat_msg *m, int n, const char *tools, const char *date,
                        struct sb *o, struct mp_error *err)
{
    struct sb sys = {0};
    if (n > 0 && strcmp(m[0].role, "system") == 0)
        sb_str(&sys, str_or_empty(m[0].content));
    if (tools && *tools) {
        struct sb t = {0};
        if (json_dump(tools, tools + strlen(tools), &t) < 0 || !t.p || t.p[0] != '[') {
            free(t.p);
            free(sys.p);
            return mp_error_set(err, MP_EINVAL, "chat: tools is not a JSON array");
        }
        if (strcmp(t.p, "[]") != 0) { /* an empty list is false to Jinja's `if tools` */
            sb_str(&sys, sys.n ? "\n\n" : "");
            sb_str(&sys, "Today's date: ");
            sb_str(&sys, date);
            sb_str(&sys, "\n\nList of tools: ");
            sb_add(&sys, t.p, t.n);
        }
        free(t.p);
    }
    if (sys.n)
        turn(o, "system", sys.p);
    free(sys.p);
    return 0;
}

#define CFM_TAG "CONTINUE_FINAL_MESSAGE_TAG "

/* An assistant turn's body: thinking (kept for turns after the last user turn, or always with
 * preserve_thinking), content (older turns lose what precedes their last </think>), calls. */
static int lfm25_assistant(const struct chat_msg *m, bool keep_thinking, struct sb *o)
{
    if (m->reasoning && keep_thinking) {
        sb_str(o, "<think>");
        sb_str(o, m->reasoning);
        sb_str(o, "</think>");
    }
    bool cfm = false;
    if (m->content) {
        const char *cs = m->content, *ce = cs + strlen(cs), *t;
        if (!keep_thinking && strstr(cs, "</think>")) {
            while ((t = strstr(cs, "</think>")))
                cs = t + 8;
            py_strip(&cs, &ce);
        }
        size_t tag = strlen(CFM_TAG);
        cfm = m->tool_calls_json && (size_t)(ce - cs) >= tag && !memcmp(ce - tag, CFM_TAG, tag);
        sb_add(o, cs, (size_t)(ce - cs) - (cfm ? tag : 0));
    }
    if (m->tool_calls_json) {
        struct lfm25_calls c = {o, 0};
        sb_str(o, "<|tool_call_start|>[");
        if (json_each(m->tool_calls_json, add_lfm25_call, &c) < 0)
            return -1;
        sb_str(o, "]<|tool_call_end|>");
    }
    sb_str(o, cfm ? CFM_TAG : "");
    sb_str(o, "<|im_end|>\n");
    return 0;
}

/* LFM2.5-8B-A1B's template; the leading bos_token is left to the tokenizer, as for LFM2. */
static int render_lfm25(const struct chat_msg *m, int n, const char *tools,
                        const struct chat_opts *opts, struct sb *o, struct mp_error *err)
{
    char today[16];
    const char *date = opts->date;
    if (!date) { /* strftime_now: the local date, as llama.cpp's template engine gives it */
        time_t now = time(NULL);
        struct tm tm;
        strftime(today, sizeof(today), "%Y-%m-%d", localtime_r(&now, &tm));
        date = today;
    }
    int rc = lfm25_system(m, n, tools, date, o, err);
    if (rc)
        return rc;
    int first = n > 0 && strcmp(m[0].role, "system") == 0, last_user = -1;
    for (int i = first; i < n; i++)
        if (strcmp(m[i].role, "user") == 0)
            last_user = i;
    for (int i = first; i < n; i++) {
        sb_str(o, "<|im_start|>");
        sb_str(o, m[i].role);
        sb_ch(o, '\n');
        if (strcmp(m[i].role, "assistant") != 0) {
            sb_str(o, str_or_empty(m[i].content));
            sb_str(o, "<|im_end|>\n");
        } else if (lfm25_assistant(&m[i], opts->preserve_thinking || i > last_user, o) < 0) {
            return mp_error_set(err, MP_EINVAL, "chat: message %d: malformed tool_calls", i);
        }
    }
    return 0;
}

/* ---- Qwen3 ---- */

static bool starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }
static bool ends(const char *s, const char *p)
{
    size_t a = strlen(s), b = strlen(p);
    return a >= b && memcmp(s + a - b, p, b) == 0;
}

/* Python's s.strip/lstrip/rstrip('\n') on [*s, *e). */
static void strip_nl(const char **s, const char **e, bool left, bool right)
{
    while (left && *s < *e && **s == '\n')
        (*s)++;
    while (right && *e > *s && (*e)[-1] == '\n')
        (*e)--;
}

/* The assistant turn's opening and content, with Qwen3's <think> rules: reasoning is the
 * message's reasoning_content when given, else split off the content at the last </think>; it is
 * shown only for turns after the last real user query that are the final message or have
 * non-empty reasoning. Returns whether content is non-empty. */
static bool qwen3_assistant_text(const char *c, const char *reasoning, bool after_query, bool last,
                                 struct sb *o)
{
    const char *cs = c, *ce = c + strlen(c), *rs = c, *re = c;
    const char *close = strstr(c, "</think>");
    if (reasoning) {
        rs = reasoning;
        re = rs + strlen(rs);
    } else if (close) {
        const char *lastc = close, *q;
        while ((q = strstr(lastc + 1, "</think>")))
            lastc = q;
        cs = lastc + 8;
        strip_nl(&cs, &ce, true, false);
        re = close; /* split('</think>')[0] */
        strip_nl(&rs, &re, false, true);
        for (const char *t = rs; (t = memmem(t, (size_t)(re - t), "<think>", 7)); t += 7)
            rs = t + 7; /* .split('<think>')[-1] */
        strip_nl(&rs, &re, true, false);
    }
    /* The template tests `content` before its lstrip, i.e. the split-off content. */
    bool has = cs < ce;
    sb_str(o, "<|im_start|>assistant\n");
    if (after_query && (last || re > rs)) {
        strip_nl(&rs, &re, true, true);
        strip_nl(&cs, &ce, true, false);
        sb_str(o, "<think>\n");
        sb_add(o, rs, (size_t)(re - rs));
        sb_str(o, "\n</think>\n\n");
    }
    sb_add(o, cs, (size_t)(ce - cs));
    return has;
}

struct qcall {
    struct sb *o;
    bool first_nl; /* the first call is preceded by "\n" only when there is content */
    int i;
};

static int add_qwen3_call(const char *s, const char *e, void *ctx)
{
    struct qcall *q = ctx;
    const char *ns, *ne, *as, *ae;
    const char *fs, *fe;
    if (json_get(s, e, "function", &fs, &fe) == 0)
        s = fs, e = fe;
    if (json_get(s, e, "name", &ns, &ne) < 0 || json_get(s, e, "arguments", &as, &ae) < 0)
        return -1;
    if (q->i++ > 0 || q->first_nl)
        sb_ch(q->o, '\n');
    sb_str(q->o, "<tool_call>\n{\"name\": \"");
    if (*ns == '"' ? json_str_raw(ns, ne, q->o) : json_dump(ns, ne, q->o))
        return -1;
    sb_str(q->o, "\", \"arguments\": ");
    if (*as == '"' ? json_str_raw(as, ae, q->o) : json_dump(as, ae, q->o))
        return -1;
    sb_str(q->o, "}\n</tool_call>");
    return 0;
}

static int render_qwen3(const struct chat_msg *m, int n, const char *tools, struct sb *o,
                        struct mp_error *err)
{
    bool sys0 = n > 0 && strcmp(m[0].role, "system") == 0;
    bool has_tools = false;
    if (tools && *tools) {
        struct sb t = {0};
        if (json_each(tools, add_qwen3_tool, &t) < 0) {
            free(t.p);
            return mp_error_set(err, MP_EINVAL, "chat: tools is not a JSON array");
        }
        has_tools = t.n > 0;
        if (has_tools) {
            sb_str(o, "<|im_start|>system\n");
            if (sys0) {
                sb_str(o, str_or_empty(m[0].content));
                sb_str(o, "\n\n");
            }
            sb_str(o, "# Tools\n\nYou may call one or more functions to assist with the user "
                      "query.\n\nYou are provided with function signatures within <tools></tools>"
                      " XML tags:\n<tools>");
            sb_add(o, t.p, t.n);
            sb_str(o, "\n</tools>\n\nFor each function call, return a json object with function "
                      "name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
                      "{\"name\": <function-name>, \"arguments\": <args-json-object>}\n"
                      "</tool_call><|im_end|>\n");
        }
        free(t.p);
    }
    if (!has_tools && sys0)
        turn(o, "system", str_or_empty(m[0].content));
    int last_query = n - 1;
    for (int i = n - 1; i >= 0; i--) {
        const char *c = str_or_empty(m[i].content);
        if (strcmp(m[i].role, "user") == 0
            && !(starts(c, "<tool_response>") && ends(c, "</tool_response>"))) {
            last_query = i;
            break;
        }
    }
    for (int i = 0; i < n; i++) {
        const char *r = m[i].role, *c = str_or_empty(m[i].content);
        if (strcmp(r, "user") == 0 || (strcmp(r, "system") == 0 && i > 0)) {
            turn(o, r, c);
        } else if (strcmp(r, "assistant") == 0) {
            bool has = qwen3_assistant_text(c, m[i].reasoning, i > last_query, i == n - 1, o);
            struct qcall q = {o, has, 0};
            const char *tc = m[i].tool_calls_json;
            if (tc && json_each(tc, add_qwen3_call, &q) < 0)
                return mp_error_set(err, MP_EINVAL, "chat: message %d: malformed tool_calls", i);
            sb_str(o, "<|im_end|>\n");
        } else if (strcmp(r, "tool") == 0) {
            if (i == 0 || strcmp(m[i - 1].role, "tool") != 0)
                sb_str(o, "<|im_start|>user");
            sb_str(o, "\n<tool_response>\n");
            sb_str(o, c);
            sb_str(o, "\n</tool_response>");
            if (i == n - 1 || strcmp(m[i + 1].role, "tool") != 0)
                sb_str(o, "<|im_end|>\n");
        }
    }
    return 0;
}

int chat_render(enum chat_format f, const struct chat_msg *msgs, int n, const char *tools_json,
                bool add_generation_prompt, char **out, struct mp_error *err)
{
    return chat_render_opts(f, msgs, n, tools_json, add_generation_prompt, NULL, out, err);
}

int chat_render_opts(enum chat_format f, const struct chat_msg *msgs, int n,
                     const char *tools_json, bool add_generation_prompt,
                     const struct chat_opts *opts, char **out, struct mp_error *err)
{
    static const struct chat_opts defaults = {0};
    struct sb o = {0};
    int rc = 0;
    opts = opts ? opts : &defaults;
    *out = NULL;
    for (int i = 0; i < n; i++)
        if (!msgs[i].role || !*msgs[i].role)
            return mp_error_set(err, MP_EINVAL, "chat: message %d has no role", i);
    if (f == CHAT_LFM2) {
        rc = render_lfm2(msgs, n, tools_json, &o, err);
    } else if (f == CHAT_QWEN3) {
        rc = render_qwen3(msgs, n, tools_json, &o, err);
    } else if (f == CHAT_LFM25) {
        rc = render_lfm25(msgs, n, tools_json, opts, &o, err);
    } else {
        for (int i = 0; i < n; i++)
            turn(&o, msgs[i].role, str_or_empty(msgs[i].content));
    }
    if (rc == 0 && add_generation_prompt)
        sb_str(&o, "<|im_start|>assistant\n");
    /* Qwen3's enable_thinking = false: an empty reasoning block, so the answer starts at once */
    if (rc == 0 && add_generation_prompt && f == CHAT_QWEN3 && opts->no_thinking)
        sb_str(&o, "<think>\n\n</think>\n\n");
    if (rc == 0 && o.oom)
        rc = mp_error_set(err, MP_ENOMEM, "chat: out of memory rendering %d messages", n);
    if (rc < 0) {
        free(o.p);
        return rc;
    }
    *out = sb_take(&o);
    return *out ? 0 : mp_error_set(err, MP_ENOMEM, "chat: out of memory");
}

/* ---- parsing the model's calls ---- */

static int add_call(struct chat_parsed *p, struct sb *name, struct sb *args)
{
    struct chat_call *c = realloc(p->calls, sizeof(*c) * (size_t)(p->n_calls + 1));
    if (!c)
        return -1;
    p->calls = c;
    c[p->n_calls].name = sb_take(name);
    c[p->n_calls].args_json = sb_take(args);
    p->n_calls++;
    return c[p->n_calls - 1].name && c[p->n_calls - 1].args_json ? 0 : -1;
}

static int py_value(struct jp *j, struct sb *o, int depth);

/* Python list/dict literal (a JSON array/object with Python's quoting and constants). */
static int py_container(struct jp *j, struct sb *o, int depth)
{
    bool obj = *j->p == '{';
    char close = obj ? '}' : ']';
    sb_ch(o, *j->p++);
    for (int k = 0;; k++) {
        skip_ws(j);
        if (j->p < j->end && *j->p == close) { /* also allows a trailing comma, as Python */
            sb_ch(o, *j->p++);
            return 0;
        }
        if (k > 0)
            sb_str(o, ", ");
        if (obj) {
            if (j->p >= j->end || (*j->p != '"' && *j->p != '\'')
                || str_lit(j, o, *j->p, true) < 0)
                return -1;
            skip_ws(j);
            if (j->p >= j->end || *j->p++ != ':')
                return -1;
            sb_str(o, ": ");
        }
        if (py_value(j, o, depth + 1) < 0)
            return -1;
        skip_ws(j);
        if (j->p < j->end && *j->p == ',')
            j->p++;
        else if (j->p >= j->end || *j->p != close)
            return -1;
    }
}

static int py_value(struct jp *j, struct sb *o, int depth)
{
    skip_ws(j);
    if (j->p >= j->end || depth > MAX_DEPTH)
        return -1;
    char c = *j->p;
    if (c == '[' || c == '{')
        return py_container(j, o, depth);
    if (c == '"' || c == '\'')
        return str_lit(j, o, c, true);
    if (word(j, "true") || word(j, "True"))
        return sb_str(o, "true"), 0;
    if (word(j, "false") || word(j, "False"))
        return sb_str(o, "false"), 0;
    if (word(j, "null") || word(j, "None"))
        return sb_str(o, "null"), 0;
    if (c == '+')
        j->p++;
    return num_lit(j, o);
}

static bool ident_ch(char c, bool first)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (!first && ((c >= '0' && c <= '9') || c == '.' || c == '-'));
}

/* `name(k=v, ...)` at j->p. */
static int lfm2_call(struct jp *j, struct chat_parsed *p)
{
    struct sb name = {0}, args = {0};
    skip_ws(j);
    const char *s = j->p;
    while (j->p < j->end && ident_ch(*j->p, j->p == s))
        j->p++;
    sb_add(&name, s, (size_t)(j->p - s));
    skip_ws(j);
    if (j->p == s || j->p >= j->end || *j->p++ != '(')
        goto fail;
    sb_ch(&args, '{');
    for (int k = 0;; k++) {
        skip_ws(j);
        if (j->p < j->end && *j->p == ')')
            break;
        if (k > 0)
            sb_str(&args, ", ");
        const char *ks = j->p;
        while (j->p < j->end && ident_ch(*j->p, j->p == ks))
            j->p++;
        if (j->p == ks)
            goto fail;
        sb_ch(&args, '"');
        sb_add(&args, ks, (size_t)(j->p - ks));
        sb_str(&args, "\": ");
        skip_ws(j);
        if (j->p >= j->end || *j->p++ != '=' || py_value(j, &args, 1) < 0)
            goto fail;
        skip_ws(j);
        if (j->p < j->end && *j->p == ',')
            j->p++;
        else if (j->p >= j->end || *j->p != ')')
            goto fail;
    }
    j->p++;
    sb_ch(&args, '}');
    if (name.oom || args.oom || add_call(p, &name, &args) < 0)
        goto fail;
    return 0;
fail:
    free(name.p);
    free(args.p);
    return -1;
}

static int parse_lfm2(const char *text, struct chat_parsed *p, struct sb *content)
{
    const char *open = strstr(text, "<|tool_call_start|>");
    sb_add(content, text, open ? (size_t)(open - text) : strlen(text));
    if (!open)
        return 0;
    const char *close = strstr(open, "<|tool_call_end|>");
    if (!close)
        return (int)(open - text) + 1;
    struct jp j = {open + strlen("<|tool_call_start|>"), close};
    skip_ws(&j);
    if (j.p >= j.end || *j.p++ != '[')
        return (int)(j.p - text) + 1;
    for (;;) {
        skip_ws(&j);
        if (j.p < j.end && *j.p == ']')
            break;
        if (lfm2_call(&j, p) < 0)
            return (int)(j.p - text) + 1;
        skip_ws(&j);
        if (j.p < j.end && *j.p == ',')
            j.p++;
        else if (j.p >= j.end || *j.p != ']')
            return (int)(j.p - text) + 1;
    }
    j.p++;
    skip_ws(&j);
    if (j.p != j.end)
        return (int)(j.p - text) + 1;
    /* Text after the call block is kept as content, as llama.cpp's LFM2 parser does. */
    sb_str(content, close + strlen("<|tool_call_end|>"));
    return 0;
}

static int qwen3_call(const char *s, const char *e, struct chat_parsed *p)
{
    const char *ns, *ne, *as, *ae;
    struct sb name = {0}, args = {0};
    while (s < e && (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\t' || e[-1] == '\r'))
        e--;
    if (json_dump(s, e, NULL) < 0 || json_get(s, e, "name", &ns, &ne) < 0 || *ns != '"'
        || json_str_raw(ns, ne, &name) < 0)
        goto fail;
    if (json_get(s, e, "arguments", &as, &ae) < 0)
        sb_str(&args, "{}");
    else if (*as != '{' || json_dump(as, ae, &args) < 0)
        goto fail;
    if (name.oom || args.oom || add_call(p, &name, &args) < 0)
        goto fail;
    return 0;
fail:
    free(name.p);
    free(args.p);
    return -1;
}

static int parse_qwen3(const char *text, struct chat_parsed *p, struct sb *content)
{
    const char *s = text, *open;
    while ((open = strstr(s, "<tool_call>"))) {
        sb_add(content, s, (size_t)(open - s));
        const char *body = open + strlen("<tool_call>");
        const char *close = strstr(body, "</tool_call>");
        if (!close || qwen3_call(body, close, p) < 0)
            return (int)(open - text) + 1;
        s = close + strlen("</tool_call>");
    }
    sb_str(content, s);
    return 0;
}

int chat_parse_tool_calls(enum chat_format f, const char *text, struct chat_parsed *out,
                          struct mp_error *err)
{
    struct sb content = {0};
    int bad = 0;
    memset(out, 0, sizeof(*out));
    if (f == CHAT_LFM2 || f == CHAT_LFM25)
        bad = parse_lfm2(text, out, &content);
    else if (f == CHAT_QWEN3)
        bad = parse_qwen3(text, out, &content);
    else
        sb_str(&content, text);
    if (bad || content.oom) {
        free(content.p);
        chat_parsed_free(out);
        if (bad)
            return mp_error_set(err, MP_ECORRUPT, "chat: malformed tool call at byte %d",
                                bad - 1);
        return mp_error_set(err, MP_ENOMEM, "chat: out of memory parsing a reply");
    }
    out->content = sb_take(&content);
    if (!out->content)
        return mp_error_set(err, MP_ENOMEM, "chat: out of memory parsing a reply");
    return 0;
}

void chat_parsed_free(struct chat_parsed *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_calls; i++) {
        free(p->calls[i].name);
        free(p->calls[i].args_json);
    }
    free(p->calls);
    free(p->content);
    memset(p, 0, sizeof(*p));
}
