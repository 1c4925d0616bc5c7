/* model/fingerprint_test.c MODEL.gguf...: fingerprints tell the conformance models apart, are the
 * same from the file and from the header bytes a worker is sent, change with the file size or a
 * single header byte, and round-trip through their hex form; bad hex is refused. */
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "model/fingerprint.h"

int main(int argc, char **argv)
{
    struct mp_error err = {0};
    struct model_fingerprint fps[16];
    int n = argc - 1 < 16 ? argc - 1 : 16;
    for (int i = 0; i < n; i++) {
        struct gguf_file *f = NULL;
        CHECK(fingerprint_file(argv[i + 1], &fps[i], &err) == 0, "%s: %s", argv[i + 1], err.msg);
        if (gguf_open(argv[i + 1], &f, &err)) {
            CHECK(0, "%s", err.msg);
            continue;
        }
        struct model_fingerprint b = fingerprint_bytes(f->base, f->data_offset, f->size);
        CHECK(fingerprint_eq(b, fps[i]), "%s: header bytes and file disagree", argv[i + 1]);
        CHECK(!fingerprint_eq(fingerprint_bytes(f->base, f->data_offset, f->size + 1), b),
              "%s: size not hashed", argv[i + 1]);
        uint8_t *copy = malloc(f->data_offset);
        memcpy(copy, f->base, f->data_offset);
        copy[f->data_offset / 2] ^= 1;
        CHECK(!fingerprint_eq(fingerprint_bytes(copy, f->data_offset, f->size), b),
              "%s: a flipped header bit not noticed", argv[i + 1]);
        free(copy);
        char hex[FINGERPRINT_HEX_LEN + 1];
        struct model_fingerprint back;
        fingerprint_hex(b, hex);
        CHECK(strlen(hex) == FINGERPRINT_HEX_LEN && fingerprint_parse(hex, &back, &err) == 0 &&
                  fingerprint_eq(back, b),
              "%s: hex round trip %s", argv[i + 1], hex);
        printf("%s %s\n", hex, argv[i + 1]);
        for (int j = 0; j < i; j++)
            CHECK(!fingerprint_eq(fps[i], fps[j]), "%s and %s collide", argv[i + 1], argv[j + 1]);
        gguf_close(f);
    }
    struct model_fingerprint x;
    const char *bad[] = {"", "0123", "0123456789abcdef0123456789abcdeg",
                         "0123456789abcdef0123456789abcdef0", "0123456789abcdef 123456789abcdef"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        CHECK(fingerprint_parse(bad[i], &x, &err) == MP_EINVAL, "accepted '%s'", bad[i]);
    CHECK(fingerprint_file("/nonexistent.gguf", &x, &err) != 0, "missing file fingerprinted");
    return failures != 0;
}
