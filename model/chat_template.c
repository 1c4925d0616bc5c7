/* model/chat_template.c: native renderings of the LFM2, LFM2.5, Qwen3 and plain ChatML chat
 * templates (API and spec pointers in chat_template.h; docs/chat.md). Each render_* function
 * mirrors its Jinja template statement by statement; the Jinja text is in the conformance GGUFs
 * (LFM2.5's in tests/data) and tests/chat_template.py renders it for comparison. JSON goes through
 * chat_template_json.c; parsing the model's calls is chat_template_parse.c. */
#include "model/chat_template.h"

#include <stdio.h>
#include <time.h>

#include "model/chat_template_impl.h"

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
    return cj_dump(s, e, o);
}

static int add_qwen3_tool(const char *s, const char *e, void *ctx)
{
    sb_ch(ctx, '\n');
    return cj_dump(s, e, ctx);
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
        if (cj_each(tools, add_lfm2_tool, &t) < 0) {
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
    if (cj_str_raw(ks, ke, a->o) < 0)
        return -1;
    sb_ch(a->o, '=');
    if (*vs == '"') {
        sb_ch(a->o, '\'');
        int rc = cj_str_raw(vs, ve, a->o);
        sb_ch(a->o, '\'');
        return rc;
    }
    if (*vs == '{')
        return cj_dump(vs, ve, a->o);
    struct jp j = {vs, ve};
    return cj_py_repr(&j, a->o, 1);
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
    if (cj_get(s, e, "function", &fs, &fe) == 0)
        s = fs, e = fe;
    if (cj_get(s, e, "name", &ns, &ne) < 0 || *ns != '"' ||
        cj_get(s, e, "arguments", &as, &ae) < 0)
        return -1;
    if (c->n++)
        sb_str(c->o, ", ");
    if (cj_str_raw(ns, ne, c->o) < 0)
        return -1;
    sb_ch(c->o, '(');
    struct sb text = {0};
    if (*as == '"') {
        if (cj_str_raw(as, ae, &text) < 0 || !text.p) {
            free(text.p);
            return -1;
        }
        as = text.p, ae = text.p + text.n;
    }
    struct lfm25_args a = {c->o, 0};
    int rc = cj_members(as, ae, add_lfm25_arg, &a);
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
        if (cj_dump(tools, tools + strlen(tools), &t) < 0 || !t.p || t.p[0] != '[') {
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
        if (cj_each(m->tool_calls_json, add_lfm25_call, &c) < 0)
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
    if (cj_get(s, e, "function", &fs, &fe) == 0)
        s = fs, e = fe;
    if (cj_get(s, e, "name", &ns, &ne) < 0 || cj_get(s, e, "arguments", &as, &ae) < 0)
        return -1;
    if (q->i++ > 0 || q->first_nl)
        sb_ch(q->o, '\n');
    sb_str(q->o, "<tool_call>\n{\"name\": \"");
    if (*ns == '"' ? cj_str_raw(ns, ne, q->o) : cj_dump(ns, ne, q->o))
        return -1;
    sb_str(q->o, "\", \"arguments\": ");
    if (*as == '"' ? cj_str_raw(as, ae, q->o) : cj_dump(as, ae, q->o))
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
        if (cj_each(tools, add_qwen3_tool, &t) < 0) {
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
            if (tc && cj_each(tc, add_qwen3_call, &q) < 0)
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
