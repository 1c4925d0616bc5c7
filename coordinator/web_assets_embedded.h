/* coordinator/web_assets_embedded.h: the table that web/embed.cmake generates at build time
 * (web_embed.c in the build tree). Private to web_assets.c. */
#ifndef MP_WEB_ASSETS_EMBEDDED_H
#define MP_WEB_ASSETS_EMBEDDED_H

#include <stddef.h>

struct web_embedded {
    const char *path; /* "/index.html" */
    const unsigned char *bytes;
    size_t len;
};

extern const struct web_embedded web_embedded[];
extern const size_t web_embedded_count;

#endif
