/* coordinator/web_assets.h: the chat page's files (coordinator/web/), compiled into the binary so
 * `moepool serve` needs nothing on disk and works offline. Library mp_web (web.cmake). */
#ifndef MP_WEB_ASSETS_H
#define MP_WEB_ASSETS_H

#include <stddef.h>

/* The bytes of the asset at URL path `path` ("/" is "/index.html"; a query string "?..." is
 * ignored), its length in *len and its Content-Type in *content_type (e.g. "text/html;
 * charset=utf-8"). NULL when there is no such asset. The bytes are static, NUL-terminated (the
 * NUL not counted in *len) and must not be freed. */
const char *web_asset(const char *path, size_t *len, const char **content_type);

#endif
