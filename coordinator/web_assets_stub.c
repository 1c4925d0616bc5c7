/* coordinator/web_assets_stub.c: a placeholder for the chat page until the web concern's
 * implementation of web_assets.h is built in (server.cmake compiles this file only then). */
#include <string.h>

#include "coordinator/web_assets.h"

static const char page[] =
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>moepool</title></head><body>"
    "<h1>moepool</h1><p>The OpenAI-compatible API is at <code>/v1/chat/completions</code>."
    "</p></body></html>\n";

const char *web_asset(const char *path, size_t *len, const char **content_type)
{
    if (strcmp(path, "/") && strcmp(path, "/index.html"))
        return NULL;
    *len = sizeof(page) - 1;
    *content_type = "text/html; charset=utf-8";
    return page;
}
