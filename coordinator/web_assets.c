/* coordinator/web_assets.c: looks a URL path up in the embedded page files (web_assets.h). */
#include "coordinator/web_assets.h"
#include "coordinator/web_assets_embedded.h"

#include <string.h>

/* Content types by file extension; only the kinds the page is made of. */
static const char *content_type_of(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".svg", "image/svg+xml"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

const char *web_asset(const char *path, size_t *len, const char **content_type)
{
    if (!path)
        return NULL;
    /* Compare only the path part: browsers may add "?v=..." and that names the same file. */
    size_t n = strcspn(path, "?#");
    if (n == 1 && path[0] == '/') {
        path = "/index.html";
        n = strlen(path);
    }
    for (size_t i = 0; i < web_embedded_count; i++) {
        const struct web_embedded *a = &web_embedded[i];
        if (strlen(a->path) == n && memcmp(a->path, path, n) == 0) {
            if (len)
                *len = a->len;
            if (content_type)
                *content_type = content_type_of(a->path);
            return (const char *)a->bytes;
        }
    }
    return NULL;
}
