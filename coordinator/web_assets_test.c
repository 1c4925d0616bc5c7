/* coordinator/web_assets_test.c: the embedded chat page is byte for byte the files in
 * coordinator/web/ (argv[1]), looked up by URL path with the right content types, and it
 * references nothing outside the server (the page must work offline). */
#include "base/check.h"
#include "coordinator/web_assets.h"

#include <stdlib.h>
#include <string.h>

static char *read_file(const char *dir, const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void check_file(const char *dir, const char *name, const char *type_prefix)
{
    char url[256];
    snprintf(url, sizeof url, "/%s", name);
    size_t len = 0, want_len = 0;
    const char *type = NULL;
    const char *got = web_asset(url, &len, &type);
    char *want = read_file(dir, name, &want_len);
    CHECK(want, "cannot read %s/%s", dir, name);
    CHECK(got, "%s not embedded", url);
    if (got && want) {
        CHECK(len == want_len && memcmp(got, want, len) == 0, "%s differs from the file", url);
        CHECK(got[len] == '\0', "%s not NUL-terminated", url);
        CHECK(type && strncmp(type, type_prefix, strlen(type_prefix)) == 0, "%s type %s", url,
              type ? type : "(null)");
        /* No absolute URL of any scheme: no CDN, no fonts, no analytics. The page's own
         * Content-Security-Policy enforces the same in the browser. */
        CHECK(!strstr(got, "://"), "%s references an external URL", url);
    }
    free(want);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: web_assets_test coordinator/web\n");
        return 2;
    }
    check_file(argv[1], "index.html", "text/html");
    check_file(argv[1], "app.css", "text/css");
    check_file(argv[1], "app.js", "text/javascript");

    size_t root_len = 0, index_len = 0;
    const char *type = NULL;
    const char *root = web_asset("/", &root_len, &type);
    const char *index = web_asset("/index.html", &index_len, NULL);
    CHECK(root && root == index && root_len == index_len, "/ is not /index.html");
    CHECK(type && strcmp(type, "text/html; charset=utf-8") == 0, "/ type %s", type);
    CHECK(root && strstr(root, "Content-Security-Policy"), "index.html lacks its CSP");
    CHECK(web_asset("/?q=1", NULL, NULL) == index, "a query string on / is not ignored");
    CHECK(web_asset("/app.js?v=2", NULL, NULL) == web_asset("/app.js", NULL, NULL),
          "a query string is not ignored");

    const char *missing[] = {"",           "/nope.html",    "/index.htm",   "/index.html/",
                             "index.html", "/../web.cmake", "//index.html", "/embed.cmake"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++)
        CHECK(!web_asset(missing[i], NULL, NULL), "\"%s\" found", missing[i]);
    CHECK(!web_asset(NULL, NULL, NULL), "NULL path found");

    printf("web_assets_test: %s\n", failures ? "FAILED" : "ok");
    return failures != 0;
}
