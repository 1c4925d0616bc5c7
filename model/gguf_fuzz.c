/* model/gguf_fuzz.c: libFuzzer entry for everything a GGUF file reaches before the forward pass:
 * the container reader and the model binding (shape and type checks of every tensor). Built only
 * with clang (-DMOEPOOL_FUZZ=ON); tests/CMakeLists.txt gives it a bounded run. */
#include <stddef.h>
#include <stdint.h>

#include "kernels/kq.h"
#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gguf_file *f;
    struct model *m;
    struct mp_error err;
    kq_init();
    if (gguf_parse(data, size, "fuzz", &f, &err))
        return 0;
    if (model_from_gguf(f, &m, &err)) {
        gguf_close(f);
        return 0;
    }
    model_close(m);
    return 0;
}
