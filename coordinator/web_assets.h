/* coordinator/web_assets.h: the chat page's files, embedded in the binary so the page works
 * offline. Implemented by the web concern (coordinator/web/); until it is built in, a minimal
 * page (coordinator/web_assets_stub.c) stands in. */
#ifndef MP_WEB_ASSETS_H
#define MP_WEB_ASSETS_H

#include <stddef.h>

/* The bytes served at path ("/" is the page itself), their length and MIME type, or NULL if
 * there is no such asset. The bytes are static. */
const char *web_asset(const char *path, size_t *len, const char **content_type);

#endif
