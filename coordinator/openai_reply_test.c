/* coordinator/openai_reply_test.c: model replies -> OpenAI message objects, on known texts:
 * LFM2 and Qwen3 tool calls become `tool_calls` with JSON-string arguments and null content,
 * text around a call stays content, replies without (or with broken) calls stay plain content,
 * tools not offered means no parsing at all, and invalid UTF-8 becomes U+FFFD. */
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "coordinator/openai_internal.h"

/* The message for reply text, printed compactly by cJSON (a stable form to compare). */
static char *message(enum chat_format f, bool tools, const char *text)
{
    struct chat_parsed p;
    api_split_reply(f, tools, text, strlen(text), &p);
    cJSON *m = api_chat_message("chatcmpl-abc", text, strlen(text), &p);
    chat_parsed_free(&p);
    char *s = cJSON_PrintUnformatted(m);
    cJSON_Delete(m);
    return s;
}

static void expect(enum chat_format f, bool tools, const char *text, const char *want)
{
    char *got = message(f, tools, text);
    CHECK(got && !strcmp(got, want), "reply %s\n  got  %s\n  want %s", text, got, want);
    free(got);
}

#define CALL_JSON(args)                                                                            \
    "\"tool_calls\":[{\"id\":\"call_abc_0\",\"type\":\"function\",\"function\":{\"name\":"         \
    "\"get_weather\",\"arguments\":\"" args "\"}}]"

int main(void)
{
    expect(CHAT_LFM2, true,
           "<|tool_call_start|>[get_weather(city=\"Paris\", days=3)]<|tool_call_end|>",
           "{\"role\":\"assistant\",\"content\":null," CALL_JSON(
               "{\\\"city\\\": \\\"Paris\\\", \\\"days\\\": 3}") "}");
    expect(CHAT_QWEN3, true,
           "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
           "\"Oslo\"}}\n</tool_call>",
           "{\"role\":\"assistant\",\"content\":\"Let me check.\\n\"," CALL_JSON(
               "{\\\"city\\\": \\\"Oslo\\\"}") "}");
    expect(CHAT_LFM2, true, "It is sunny.",
           "{\"role\":\"assistant\",\"content\":\"It is sunny.\"}");
    /* a malformed call is left as the text the model wrote */
    expect(CHAT_LFM2, true, "<|tool_call_start|>[get_weather(city=]<|tool_call_end|>",
           "{\"role\":\"assistant\",\"content\":\"<|tool_call_start|>[get_weather(city=]"
           "<|tool_call_end|>\"}");
    /* without tools in the request nothing is parsed */
    expect(CHAT_QWEN3, false, "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
           "{\"role\":\"assistant\",\"content\":\"<tool_call>\\n{\\\"name\\\": \\\"f\\\", "
           "\\\"arguments\\\": {}}\\n</tool_call>\"}");
    /* lone continuation byte, truncated 3-byte sequence, overlong "/", surrogate */
    char out[64];
    const char *in = "a\x80"
                     "b\xe2\x82"
                     "c\xc0\xaf\xed\xa0\x80 \xc3\xa9";
    size_t n = api_utf8_clean(in, strlen(in), out);
    const char *want = "a\xef\xbf\xbd"
                       "b\xef\xbf\xbd\xef\xbf\xbd"
                       "c\xef\xbf\xbd\xef\xbf\xbd"
                       "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd \xc3\xa9";
    CHECK(n == strlen(want) && !memcmp(out, want, n), "utf8_clean: %.*s", (int)n, out);
    if (!failures)
        printf("openai_reply_test: all passed\n");
    return failures != 0;
}
