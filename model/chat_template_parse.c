/* model/chat_template_parse.c: the model's reply -> content and tool calls (chat_template.h):
 * LFM2/LFM2.5 Python-call syntax and Qwen3 <tool_call> JSON, with arguments re-serialized as
 * json.dumps would. Malformed calls are an error naming the byte offset, never a crash. */
#include "model/chat_template.h"
#include "model/chat_template_impl.h"

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
        cj_skip_ws(j);
        if (j->p < j->end && *j->p == close) { /* also allows a trailing comma, as Python */
            sb_ch(o, *j->p++);
            return 0;
        }
        if (k > 0)
            sb_str(o, ", ");
        if (obj) {
            if (j->p >= j->end || (*j->p != '"' && *j->p != '\'')
                || cj_str_lit(j, o, *j->p, true) < 0)
                return -1;
            cj_skip_ws(j);
            if (j->p >= j->end || *j->p++ != ':')
                return -1;
            sb_str(o, ": ");
        }
        if (py_value(j, o, depth + 1) < 0)
            return -1;
        cj_skip_ws(j);
        if (j->p < j->end && *j->p == ',')
            j->p++;
        else if (j->p >= j->end || *j->p != close)
            return -1;
    }
}

static int py_value(struct jp *j, struct sb *o, int depth)
{
    cj_skip_ws(j);
    if (j->p >= j->end || depth > MAX_DEPTH)
        return -1;
    char c = *j->p;
    if (c == '[' || c == '{')
        return py_container(j, o, depth);
    if (c == '"' || c == '\'')
        return cj_str_lit(j, o, c, true);
    if (cj_word(j, "true") || cj_word(j, "True"))
        return sb_str(o, "true"), 0;
    if (cj_word(j, "false") || cj_word(j, "False"))
        return sb_str(o, "false"), 0;
    if (cj_word(j, "null") || cj_word(j, "None"))
        return sb_str(o, "null"), 0;
    if (c == '+')
        j->p++;
    return cj_num_lit(j, o);
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
    cj_skip_ws(j);
    const char *s = j->p;
    while (j->p < j->end && ident_ch(*j->p, j->p == s))
        j->p++;
    sb_add(&name, s, (size_t)(j->p - s));
    cj_skip_ws(j);
    if (j->p == s || j->p >= j->end || *j->p++ != '(')
        goto fail;
    sb_ch(&args, '{');
    for (int k = 0;; k++) {
        cj_skip_ws(j);
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
        cj_skip_ws(j);
        if (j->p >= j->end || *j->p++ != '=' || py_value(j, &args, 1) < 0)
            goto fail;
        cj_skip_ws(j);
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
    cj_skip_ws(&j);
    if (j.p >= j.end || *j.p++ != '[')
        return (int)(j.p - text) + 1;
    for (;;) {
        cj_skip_ws(&j);
        if (j.p < j.end && *j.p == ']')
            break;
        if (lfm2_call(&j, p) < 0)
            return (int)(j.p - text) + 1;
        cj_skip_ws(&j);
        if (j.p < j.end && *j.p == ',')
            j.p++;
        else if (j.p >= j.end || *j.p != ']')
            return (int)(j.p - text) + 1;
    }
    j.p++;
    cj_skip_ws(&j);
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
    if (cj_dump(s, e, NULL) < 0 || cj_get(s, e, "name", &ns, &ne) < 0 || *ns != '"'
        || cj_str_raw(ns, ne, &name) < 0)
        goto fail;
    if (cj_get(s, e, "arguments", &as, &ae) < 0)
        sb_str(&args, "{}");
    else if (*as != '{' || cj_dump(as, ae, &args) < 0)
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
