/* model/chat_template_impl.h: what the chat template files share (private; the interface is
 * chat_template.h): a growable string and the JSON transcoder.
 *   chat_template.c        detection and the native renderings (LFM2, LFM2.5, Qwen3, ChatML)
 *   chat_template_json.c   JSON text -> json.dumps text, Python repr, walking arrays and objects
 *   chat_template_parse.c  the model's tool calls -> name + JSON arguments */
#ifndef MP_CHAT_TEMPLATE_IMPL_H
#define MP_CHAT_TEMPLATE_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Nesting limit for JSON and Python literals: deep enough for any tool schema, shallow enough
 * that hostile model output cannot exhaust the stack. */
#define MAX_DEPTH 64

/* A growable NUL-terminated string; on allocation failure it sets oom and ignores further
 * writes, so callers check once at the end. A NULL *b ignores writes (a dry run). */
struct sb {
    char *p;
    size_t n, cap;
    bool oom;
};

static inline void sb_add(struct sb *b, const char *s, size_t n)
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

static inline void sb_str(struct sb *b, const char *s) { sb_add(b, s, strlen(s)); }
static inline void sb_ch(struct sb *b, char c) { sb_add(b, &c, 1); }

static inline char *sb_take(struct sb *b)
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

/* A cursor over JSON (or Python literal) text [p, end). */
struct jp {
    const char *p, *end;
};

void cj_skip_ws(struct jp *j);
/* A string literal opened by quote at j->p, re-emitted with double quotes into o (may be NULL);
 * py: Python's \' escape is allowed too. -1 if malformed. */
int cj_str_lit(struct jp *j, struct sb *o, char quote, bool py);
/* A JSON number at j->p as json.dumps writes what json.loads read: ints exact, floats by repr. */
int cj_num_lit(struct jp *j, struct sb *o);
/* Consumes w if the text at j->p starts with it. */
bool cj_word(struct jp *j, const char *w);
/* Re-serializes the whole JSON text [s, end) into o; -1 if it is not exactly one JSON value. */
int cj_dump(const char *s, const char *end, struct sb *o);
/* Calls fn on each element [s, e) of the JSON array text; -1 if it is not an array. */
int cj_each(const char *text, int (*fn)(const char *s, const char *e, void *ctx), void *ctx);
/* The value of key in the JSON object [s, e): its span in *vs, *ve; -1 if absent or malformed. */
int cj_get(const char *s, const char *e, const char *key, const char **vs, const char **ve);
/* The decoded text of a JSON string value [s, e) appended raw to o (as Jinja prints a string). */
int cj_str_raw(const char *s, const char *e, struct sb *o);
/* Calls fn on each member (key literal [ks, ke), value [vs, ve)) of the JSON object [s, e). */
int cj_members(const char *s, const char *e,
               int (*fn)(const char *ks, const char *ke, const char *vs, const char *ve,
                         void *ctx),
               void *ctx);
/* Python's repr() (str() for all but strings) of the JSON value at j->p. */
int cj_py_repr(struct jp *j, struct sb *o, int depth);

#endif
