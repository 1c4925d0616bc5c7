/* coordinator/openai_reply.c: the parts of OpenAI replies that depend only on the generated text:
 * valid UTF-8 for JSON strings, and a chat reply split into content and OpenAI `tool_calls`.
 * Separate from openai.c so coordinator/openai_reply_test.c can check them on known texts (a
 * random-weight test model never calls a tool by itself). */
#include <stdlib.h>
#include <string.h>

#include "coordinator/openai_internal.h"

/* Replaces bytes that are not valid UTF-8 with U+FFFD so every JSON string is valid UTF-8
 * (a model may emit a lone byte token). out needs 3 * n + 1 bytes; returns the length. */
size_t api_utf8_clean(const char *in, size_t n, char *out)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = len > 0 && i + len <= n && !(len == 2 && c < 0xc2);
        for (size_t k = 1; ok && k < len; k++)
            ok = (s[i + k] & 0xc0) == 0x80;
        if (ok && len == 3)
            ok = !(c == 0xe0 && s[i + 1] < 0xa0) && !(c == 0xed && s[i + 1] >= 0xa0);
        if (ok && len == 4)
            ok = c <= 0xf4 && !(c == 0xf0 && s[i + 1] < 0x90) && !(c == 0xf4 && s[i + 1] >= 0x90);
        if (ok) {
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    out[o] = 0;
    return o;
}

cJSON *api_add_text(cJSON *o, const char *key, const char *text, size_t n)
{
    char *clean = malloc(3 * n + 1);
    if (!clean)
        return NULL;
    api_utf8_clean(text, n, clean);
    cJSON *x = cJSON_AddStringToObject(o, key, clean);
    free(clean);
    return x;
}

/* OpenAI's tool_calls array from parsed calls: ids, "function" type, arguments as a string. */
cJSON *api_tool_calls(const char *reply_id, const struct chat_parsed *p, bool indexed)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < p->n_calls; i++) {
        cJSON *c = cJSON_CreateObject(), *f;
        char id[64];
        snprintf(id, sizeof(id), "call_%s_%d",
                 reply_id + (strncmp(reply_id, "chatcmpl-", 9) ? 0 : 9), i);
        if (indexed)
            cJSON_AddNumberToObject(c, "index", i);
        cJSON_AddStringToObject(c, "id", id);
        cJSON_AddStringToObject(c, "type", "function");
        f = cJSON_AddObjectToObject(c, "function");
        api_add_text(f, "name", p->calls[i].name, strlen(p->calls[i].name));
        api_add_text(f, "arguments", p->calls[i].args_json, strlen(p->calls[i].args_json));
        cJSON_AddItemToArray(a, c);
    }
    return a;
}

/* The reply split into content and tool calls (when tools were offered and the model called
 * one); a reply that does not parse as calls stays plain content. */
void api_split_reply(enum chat_format f, bool tools, const char *reply, size_t n,
                     struct chat_parsed *p)
{
    memset(p, 0, sizeof(*p));
    if (!tools)
        return;
    char *text = strndup(reply, n);
    struct mp_error err = {0};
    if (text && chat_parse_tool_calls(f, text, p, &err))
        memset(p, 0, sizeof(*p));
    free(text);
}

cJSON *api_chat_message(const char *reply_id, const char *text, size_t n,
                        const struct chat_parsed *p)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "assistant");
    if (p->n_calls > 0) {
        if (p->content && *p->content)
            api_add_text(m, "content", p->content, strlen(p->content));
        else
            cJSON_AddNullToObject(m, "content");
        cJSON_AddItemToObject(m, "tool_calls", api_tool_calls(reply_id, p, false));
    } else {
        api_add_text(m, "content", text, n);
    }
    return m;
}
