/* model/chat_template_test.c: chat_render and chat_parse_tool_calls. The renderings of a set of
 * conversations for LFM2 and Qwen3 are written with the conversations themselves to a JSON file
 * (`chat_template_test OUT.json`); tests/chat_template.py renders the same conversations with
 * python3-jinja2 from the templates stored in the conformance GGUFs and compares byte for byte.
 * Here: tool-call parsing (good and malformed input: an error, never a crash; run under ASan),
 * format detection, and JSON re-serialization details that python's json.dumps fixes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "model/chat_template.h"

#define TOOLS                                                                                   \
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":"           \
    "\"Weather <now> & 'later' in a city, caf\xc3\xa9 \\u65e5\\n\",\"parameters\":{\"type\":"   \
    "\"object\",\"properties\":{\"city\":{\"type\":\"string\"},\"days\":{\"type\":\"integer\"," \
    "\"minimum\":1,\"maximum\":1e1,\"default\":1.0,\"scale\":0.00001,\"big\":1e20}},"            \
    "\"required\":[\"city\"]}}},\n {\"name\": \"noop\", \"parameters\": {}, \"x\": [true, "     \
    "false, null, -0, -0.0, 123.456, \"\\\"q\\\\\\/\\t\\u0001\"]}]"

#define CALL1 "[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3}}]"
#define CALL2                                                                                  \
    "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"K\xc3\xb8" "benhavn\"}},"             \
    "{\"type\":\"function\",\"function\":{\"name\":\"noop\",\"arguments\":\"{\\\"a\\\": 1}\"}}]"
#define LFM2_CALL "<|tool_call_start|>[get_weather(city=\"Paris\", days=3)]<|tool_call_end|>"
/* Every kind of argument value: LFM2.5 prints strings raw in single quotes, objects as JSON and
 * the rest through Python's str() (True, None, 2.5, 100000.0, ['a', "it's"], ...). */
#define CALL3                                                                                  \
    "[{\"name\": \"search\", \"arguments\": {\"q\": \"it's \\\"x\\\"\", \"n\": 3, "          \
    "\"f\": 2.50, \"e\": 1e5, \"tiny\": 1e-7, \"neg\": -0, \"ok\": true, \"no\": false, "      \
    "\"none\": null, \"list\": [\"a\", \"it's\", \"both '\\\"\", \"tab\\t\\\\\", 1.0, [], "      \
    "{}, {\"k\": [true, null]}], \"obj\": {\"z\": 1, \"a\": [\"caf\xc3\xa9\"]}, "               \
    "\"u\": \"\xc3\xa9\\u0001\"}}, "                                                              \
    "{\"type\": \"function\", \"function\": {\"name\": \"noop\", \"arguments\": {}}}]"

struct conv {
    const char *name;
    struct chat_msg msgs[12];
    int n;
    const char *tools;
    bool gen;
};

static const struct conv convs[] = {
    {"system_only", {{"system", "You are helpful.", NULL, NULL, NULL}}, 1, NULL, false},
    {"multi_turn",
     {{"user", "Hi! caf\xc3\xa9 \"quoted\"", NULL, NULL, NULL},
      {"assistant", "Hello, how can I help?", NULL, NULL, NULL},
      {"user", "Tell me a joke.", NULL, NULL, NULL}},
     3, NULL, true},
    {"tools",
     {{"system", "You are helpful.", NULL, NULL, NULL},
      {"user", "Weather in Paris?", NULL, NULL, NULL}},
     2, TOOLS, true},
    {"assistant_tool_call",
     {{"user", "Weather in Paris?", NULL, NULL, NULL},
      {"assistant", LFM2_CALL, CALL1, NULL, NULL}},
     2, TOOLS, false},
    {"tool_result",
     {{"user", "Weather in Paris?", NULL, NULL, NULL},
      {"assistant", "", CALL1, NULL, NULL},
      {"tool", "{\"temp\": 21}", NULL, "get_weather", NULL}},
     3, TOOLS, true},
    {"mixed",
     {{"system", "Be brief.", NULL, NULL, NULL},
      {"user", "Q1", NULL, NULL, NULL},
      {"assistant", "<think>\nold reasoning\n</think>\n\nA1", NULL, NULL, NULL},
      {"user", "Weather in two cities?", NULL, NULL, NULL},
      {"assistant", "<think>\nneed tools\n</think>\n\nChecking.", CALL2, NULL, NULL},
      {"tool", "{\"temp\": 21}", NULL, "get_weather", NULL},
      {"tool", "ok", NULL, "noop", NULL},
      {"assistant", "<think>\n\n</think>\n\nIt is 21.", NULL, NULL, NULL},
      {"system", "late system", NULL, NULL, NULL},
      {"user", "<tool_response>\nx\n</tool_response>", NULL, NULL, NULL},
      {"assistant", "\n\nFinal <think>a</think>b</think>\n\nc", NULL, NULL, NULL}},
     11, TOOLS, true},
    {"tools_no_system", {{"user", "hi", NULL, NULL, NULL}}, 1, TOOLS, true},
    {"empty_tools", {{"system", "S", NULL, NULL, NULL}, {"user", "hi", NULL, NULL, NULL}}, 2, "[]",
     true},
    /* reasoning given apart (Qwen3's reasoning_content, LFM2.5's thinking), before and after the
     * last user turn, with and without content and calls */
    {"reasoning",
     {{"user", "Q1", NULL, NULL, NULL},
      {"assistant", "A1", NULL, NULL, "\nold thought\n"},
      {"user", "Q2", NULL, NULL, NULL},
      {"assistant", "\nLooking.", CALL1, NULL, "need the weather"},
      {"tool", "{\"temp\": 21}", NULL, "get_weather", NULL},
      {"assistant", "It is 21.", NULL, NULL, ""}},
     6, TOOLS, true},
    /* </think> in older turns' content: split off and trimmed (Python's strip, so U+00A0 and
     * U+3000 go too); kept as is after the last user turn */
    {"think_in_content",
     {{"system", "", NULL, NULL, NULL},
      {"user", "Q1", NULL, NULL, NULL},
      {"assistant", "<think>a</think>\xc2\xa0 answer one\n\xe3\x80\x80", NULL, NULL, NULL},
      {"assistant", "x</think>y</think>\n\nz", NULL, NULL, NULL},
      {"user", "Q2", NULL, NULL, NULL},
      {"assistant", "<think>b</think>\n answer two ", NULL, NULL, NULL}},
     6, NULL, false},
    {"call_arguments",
     {{"user", "Find it.", NULL, NULL, NULL},
      {"assistant", "Searching. CONTINUE_FINAL_MESSAGE_TAG ", CALL3, NULL, NULL},
      {"tool", "[]", NULL, "search", NULL},
      {"assistant", NULL, CALL2, NULL, NULL}},
     4, "[{\"name\": \"search\"}]", true},
    {"no_user",
     {{"system", "Sys", NULL, NULL, NULL}, {"assistant", "Hello.", NULL, NULL, "thinking"}},
     2, NULL, true},
};

/* Template variables a case renders with; LFM2.5's date is fixed so renderings are stable. */
struct opt_set {
    const char *name, *json;
    struct chat_opts opts;
};

static const struct opt_set opt_sets[] = {
    {"", "{}", {.date = "2025-06-30"}},
    {"+no_thinking", "{\"enable_thinking\": false}", {.no_thinking = true, .date = "2025-06-30"}},
    {"+preserve_thinking", "{\"preserve_thinking\": true}",
     {.preserve_thinking = true, .date = "2025-06-30"}},
};

static void put_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void put_opt(FILE *f, const char *key, const char *v)
{
    if (!v)
        return;
    fprintf(f, ", \"%s\": ", key);
    put_json_str(f, v);
}

static void put_case(FILE *f, const struct conv *cv, const char *fname, const struct opt_set *os,
                     const char *out)
{
    fprintf(f, "{\"name\": \"%s%s\", \"format\": \"%s\", \"gen\": %s, \"opts\": %s, "
               "\"date\": \"%s\", \"messages\": [",
            cv->name, os->name, fname, cv->gen ? "true" : "false", os->json, os->opts.date);
    for (int i = 0; i < cv->n; i++) {
        fprintf(f, "%s{\"role\": \"%s\"", i ? ", " : "", cv->msgs[i].role);
        put_opt(f, "content", cv->msgs[i].content);
        put_opt(f, "tool_calls", cv->msgs[i].tool_calls_json);
        put_opt(f, "name", cv->msgs[i].name);
        put_opt(f, "reasoning", cv->msgs[i].reasoning);
        fputc('}', f);
    }
    fprintf(f, "]");
    put_opt(f, "tools", cv->tools);
    put_opt(f, "expected", out);
    fputc('}', f);
}

/* Renders every conversation in each format, with the options the format's template reads;
 * writes them to path unless it is NULL. */
static void render_all(const char *path)
{
    static const struct {
        enum chat_format f;
        const char *name;
        int opt_set; /* besides the defaults */
    } fmts[] = {{CHAT_LFM2, "lfm2", 0}, {CHAT_QWEN3, "qwen3", 1}, {CHAT_LFM25, "lfm2.5", 2}};
    FILE *f = path ? fopen(path, "w") : NULL;
    CHECK(!path || f, "cannot write %s", path);
    if (f)
        fprintf(f, "[\n");
    int k = 0;
    for (size_t c = 0; c < sizeof(convs) / sizeof(convs[0]); c++) {
        for (size_t fi = 0; fi < sizeof(fmts) / sizeof(fmts[0]); fi++) {
            for (int pass = 0; pass < 2; pass++) {
                const struct conv *cv = &convs[c];
                const struct opt_set *os = &opt_sets[pass ? fmts[fi].opt_set : 0];
                if (pass && !fmts[fi].opt_set)
                    continue;
                struct mp_error err = {0};
                char *out = NULL;
                int rc = chat_render_opts(fmts[fi].f, cv->msgs, cv->n, cv->tools, cv->gen,
                                          &os->opts, &out, &err);
                CHECK(rc == 0, "%s%s/%s: %s", cv->name, os->name, fmts[fi].name, err.msg);
                if (!rc && f) {
                    fputs(k++ ? ",\n" : "", f);
                    put_case(f, cv, fmts[fi].name, os, out);
                }
                free(out);
            }
        }
    }
    if (f) {
        fprintf(f, "\n]\n");
        fclose(f);
    }
}

static void test_render_details(void)
{
    struct chat_msg m[] = {{"system", "S", NULL, NULL, NULL}, {"user", "u", NULL, NULL, NULL}};
    struct mp_error err = {0};
    char *out = NULL;
    CHECK(chat_render(CHAT_CHATML, m, 2, "[1]", true, &out, &err) == 0, "%s", err.msg);
    CHECK(out && strcmp(out, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nu<|im_end|>\n"
                             "<|im_start|>assistant\n") == 0, "chatml: %s", out);
    free(out);
    CHECK(chat_render(CHAT_LFM2, m, 2, "[{\"a\":1,}]", false, &out, &err) == MP_EINVAL,
          "trailing comma in tools accepted");
    CHECK(out == NULL, "out set on error");
    CHECK(chat_render(CHAT_QWEN3, m, 2, "{\"a\": 1}", false, &out, &err) == MP_EINVAL,
          "non-array tools accepted");
    struct chat_msg bad[] = {{"user", "u", NULL, NULL, NULL},
                             {"assistant", "", "[{\"name\":1", NULL, NULL}};
    CHECK(chat_render(CHAT_QWEN3, bad, 2, NULL, false, &out, &err) == MP_EINVAL,
          "malformed tool_calls accepted");
    struct chat_msg norole[] = {{NULL, "u", NULL, NULL, NULL}};
    CHECK(chat_render(CHAT_QWEN3, norole, 1, NULL, false, &out, &err) == MP_EINVAL, "no role");
    CHECK(chat_render(CHAT_QWEN3, NULL, 0, NULL, true, &out, &err) == 0, "empty");
    CHECK(out && strcmp(out, "<|im_start|>assistant\n") == 0, "empty: %s", out);
    free(out);
}

static void test_detect(void)
{
    bool fb = false;
    const char *l = "{{ bos_token }}List of tools: <|tool_list_start|>[";
    const char *q = "<|im_start|>system\n<tool_call>\n";
    const char *o = "{% for m in messages %}<|im_start|>";
    const char *l25 = "\"List of tools: \" + (tools | tojson) ... \"<|tool_call_start|>[\"";
    CHECK(chat_detect(l, strlen(l), &fb) == CHAT_LFM2 && !fb, "lfm2");
    CHECK(chat_detect(l25, strlen(l25), &fb) == CHAT_LFM25 && !fb, "lfm2.5");
    CHECK(chat_detect(q, strlen(q), &fb) == CHAT_QWEN3 && !fb, "qwen3");
    CHECK(chat_detect(o, strlen(o), &fb) == CHAT_CHATML && fb, "fallback");
    CHECK(chat_detect(q, 5, NULL) == CHAT_CHATML, "len respected");
}

/* Parses text and checks content and calls (names[i], args[i]); want_rc 0 or MP_ECORRUPT. */
static void parse_case(enum chat_format f, const char *text, int want_rc, const char *content,
                       int n, const char *const *names, const char *const *args)
{
    struct chat_parsed p;
    struct mp_error err = {0};
    int rc = chat_parse_tool_calls(f, text, &p, &err);
    CHECK(rc == want_rc, "%s: rc %d (%s)", text, rc, err.msg);
    if (rc) {
        CHECK(p.n_calls == 0 && !p.content && !p.calls, "%s: out not empty on error", text);
        CHECK(err.msg[0], "%s: no message", text);
        return;
    }
    CHECK(p.content && strcmp(p.content, content) == 0, "%s: content '%s'", text, p.content);
    CHECK(p.n_calls == n, "%s: %d calls", text, p.n_calls);
    for (int i = 0; i < n && i < p.n_calls; i++) {
        CHECK(strcmp(p.calls[i].name, names[i]) == 0, "%s: name '%s'", text, p.calls[i].name);
        CHECK(strcmp(p.calls[i].args_json, args[i]) == 0, "%s: args '%s'", text,
              p.calls[i].args_json);
    }
    chat_parsed_free(&p);
    chat_parsed_free(&p);
}

static void test_parse_lfm2(void)
{
    const char *n1[] = {"get_weather"}, *a1[] = {"{\"city\": \"Paris\", \"n\": 3}"};
    parse_case(CHAT_LFM2, "<|tool_call_start|>[get_weather(city=\"Paris\", n=3)]<|tool_call_end|>",
               0, "", 1, n1, a1);
    parse_case(CHAT_LFM2, "Sure. <|tool_call_start|>[get_weather(city='Paris', n=3,)]"
               "<|tool_call_end|>", 0, "Sure. ", 1, n1, a1);
    const char *n2[] = {"f", "g", "h"};
    const char *a2[] = {"{\"a\": true, \"b\": false, \"c\": null, \"d\": null, \"e\": true}",
                        "{\"x\": [1, 2.5, {\"k\": \"it's \\\"q\\\"\"}], \"y\": -1e-07}", "{}"};
    parse_case(CHAT_LFM2, "<|tool_call_start|>[f(a=True, b=False, c=None, d=null, e=true), "
               "g(x=[1, 2.50, {'k': 'it\\'s \"q\"'}], y=-1e-7), h()]<|tool_call_end|> after", 0,
               " after", 3, n2, a2);
    parse_case(CHAT_LFM2, "no calls here", 0, "no calls here", 0, NULL, NULL);
    /* LFM2.5 writes the same call syntax, after its reasoning */
    parse_case(CHAT_LFM25, "<think>hm</think><|tool_call_start|>[get_weather(city='Paris', n=3)]"
               "<|tool_call_end|>", 0, "<think>hm</think>", 1, n1, a1);
    const char *bad[] = {
        "<|tool_call_start|>[f(a=\"x)]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=1]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=1)",
        "<|tool_call_start|>f(a=1)<|tool_call_end|>",
        "<|tool_call_start|>[(a=1)]<|tool_call_end|>",
        "<|tool_call_start|>[f(1)]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=bogus)]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=[1,2)]<|tool_call_end|>",
        "<|tool_call_start|>[f(a={1: 2})]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=1) g()]<|tool_call_end|>",
        "<|tool_call_start|>[f(a='\\ud800')]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=01)]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=1)] junk<|tool_call_end|>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_case(CHAT_LFM2, bad[i], MP_ECORRUPT, NULL, 0, NULL, NULL);
    /* Nesting deeper than any tool needs is refused, not recursed into. */
    char deep[600] = "<|tool_call_start|>[f(a=";
    for (int i = 0; i < 200; i++)
        strcat(deep, "[");
    strcat(deep, ")]<|tool_call_end|>");
    parse_case(CHAT_LFM2, deep, MP_ECORRUPT, NULL, 0, NULL, NULL);
}

static void test_parse_qwen3(void)
{
    const char *n1[] = {"get_weather", "noop", NULL};
    const char *a1[] = {"{\"city\": \"Paris\", \"days\": [1, 2.0]}", "{}"};
    parse_case(CHAT_QWEN3, "<think>\nhm\n</think>\n\nLet me see.\n<tool_call>\n{\"name\": "
               "\"get_weather\", \"arguments\": {\"city\":\"Paris\",\"days\":[1,2.0]}}\n"
               "</tool_call>\n<tool_call>\n{\"name\": \"noop\"}\n</tool_call>", 0,
               "<think>\nhm\n</think>\n\nLet me see.\n\n", 2, n1, a1);
    parse_case(CHAT_QWEN3, "plain", 0, "plain", 0, NULL, NULL);
    const char *bad[] = {
        "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n",
        "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": }}\n</tool_call>",
        "<tool_call>\n{\"arguments\": {}}\n</tool_call>",
        "<tool_call>\n{\"name\": 3, \"arguments\": {}}\n</tool_call>",
        "<tool_call>\n{\"name\": \"f\", \"arguments\": [1]}\n</tool_call>",
        "<tool_call>\n{\"name\": \"f\"} trailing\n</tool_call>",
        "<tool_call>\n\"\\u00\"\n</tool_call>",
        "<tool_call></tool_call>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_case(CHAT_QWEN3, bad[i], MP_ECORRUPT, NULL, 0, NULL, NULL);
    parse_case(CHAT_CHATML, "<tool_call>x", 0, "<tool_call>x", 0, NULL, NULL);
}

int main(int argc, char **argv)
{
    render_all(argc > 1 ? argv[1] : NULL);
    test_render_details();
    test_detect();
    test_parse_lfm2();
    test_parse_qwen3();
    if (failures)
        fprintf(stderr, "%d failures\n", failures);
    return failures != 0;
}
