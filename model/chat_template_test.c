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

struct conv {
    const char *name;
    struct chat_msg msgs[12];
    int n;
    const char *tools;
    bool gen;
};

static const struct conv convs[] = {
    {"system_only", {{"system", "You are helpful.", NULL, NULL}}, 1, NULL, false},
    {"multi_turn",
     {{"user", "Hi! caf\xc3\xa9 \"quoted\"", NULL, NULL},
      {"assistant", "Hello, how can I help?", NULL, NULL},
      {"user", "Tell me a joke.", NULL, NULL}},
     3, NULL, true},
    {"tools",
     {{"system", "You are helpful.", NULL, NULL}, {"user", "Weather in Paris?", NULL, NULL}},
     2, TOOLS, true},
    {"assistant_tool_call",
     {{"user", "Weather in Paris?", NULL, NULL},
      {"assistant", LFM2_CALL, CALL1, NULL}},
     2, TOOLS, false},
    {"tool_result",
     {{"user", "Weather in Paris?", NULL, NULL},
      {"assistant", "", CALL1, NULL},
      {"tool", "{\"temp\": 21}", NULL, "get_weather"}},
     3, TOOLS, true},
    {"mixed",
     {{"system", "Be brief.", NULL, NULL},
      {"user", "Q1", NULL, NULL},
      {"assistant", "<think>\nold reasoning\n</think>\n\nA1", NULL, NULL},
      {"user", "Weather in two cities?", NULL, NULL},
      {"assistant", "<think>\nneed tools\n</think>\n\nChecking.", CALL2, NULL},
      {"tool", "{\"temp\": 21}", NULL, "get_weather"},
      {"tool", "ok", NULL, "noop"},
      {"assistant", "<think>\n\n</think>\n\nIt is 21.", NULL, NULL},
      {"system", "late system", NULL, NULL},
      {"user", "<tool_response>\nx\n</tool_response>", NULL, NULL},
      {"assistant", "\n\nFinal <think>a</think>b</think>\n\nc", NULL, NULL}},
     11, TOOLS, true},
    {"tools_no_system", {{"user", "hi", NULL, NULL}}, 1, TOOLS, true},
    {"empty_tools", {{"system", "S", NULL, NULL}, {"user", "hi", NULL, NULL}}, 2, "[]", true},
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

/* Renders every conversation in both formats; writes them to path unless it is NULL. */
static void render_all(const char *path)
{
    static const enum chat_format fmts[] = {CHAT_LFM2, CHAT_QWEN3};
    static const char *fnames[] = {"lfm2", "qwen3"};
    FILE *f = path ? fopen(path, "w") : NULL;
    CHECK(!path || f, "cannot write %s", path);
    if (f)
        fprintf(f, "[\n");
    int k = 0;
    for (size_t c = 0; c < sizeof(convs) / sizeof(convs[0]); c++) {
        for (int fi = 0; fi < 2; fi++) {
            const struct conv *cv = &convs[c];
            struct mp_error err = {0};
            char *out = NULL;
            int rc = chat_render(fmts[fi], cv->msgs, cv->n, cv->tools, cv->gen, &out, &err);
            CHECK(rc == 0, "%s/%s: %s", cv->name, fnames[fi], err.msg);
            if (rc || !f) {
                free(out);
                continue;
            }
            fprintf(f, "%s{\"name\": \"%s\", \"format\": \"%s\", \"gen\": %s, \"messages\": [",
                    k++ ? ",\n" : "", cv->name, fnames[fi], cv->gen ? "true" : "false");
            for (int i = 0; i < cv->n; i++) {
                fprintf(f, "%s{\"role\": \"%s\"", i ? ", " : "", cv->msgs[i].role);
                put_opt(f, "content", cv->msgs[i].content);
                put_opt(f, "tool_calls", cv->msgs[i].tool_calls_json);
                put_opt(f, "name", cv->msgs[i].name);
                fputc('}', f);
            }
            fprintf(f, "]");
            put_opt(f, "tools", cv->tools);
            put_opt(f, "expected", out);
            fputc('}', f);
            free(out);
        }
    }
    if (f) {
        fprintf(f, "\n]\n");
        fclose(f);
    }
}

static void test_render_details(void)
{
    struct chat_msg m[] = {{"system", "S", NULL, NULL}, {"user", "u", NULL, NULL}};
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
    struct chat_msg bad[] = {{"user", "u", NULL, NULL}, {"assistant", "", "[{\"name\":1", NULL}};
    CHECK(chat_render(CHAT_QWEN3, bad, 2, NULL, false, &out, &err) == MP_EINVAL,
          "malformed tool_calls accepted");
    struct chat_msg norole[] = {{NULL, "u", NULL, NULL}};
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
    CHECK(chat_detect(l, strlen(l), &fb) == CHAT_LFM2 && !fb, "lfm2");
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
    const char *n1[] = {"get_weather", "noop"};
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
