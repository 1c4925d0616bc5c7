/* tools/llama/harness.c: start-up and shut-down shared by the harness programs. */
#include "harness.h"

#include <stdio.h>

/* Only errors: llama.cpp's load chatter would bury the harness's own lines. */
static void quiet_log(enum ggml_log_level level, const char *text, void *user)
{
    (void)user;
    if (level == GGML_LOG_LEVEL_ERROR)
        fputs(text, stderr);
}

struct llama_model *harness_open(const char *prog, const char *model, const char *backend_dir,
                                 bool verbose)
{
    if (!verbose)
        llama_log_set(quiet_log, NULL);
    if (backend_dir)
        ggml_backend_load_all_from_path(backend_dir);
    else
        ggml_backend_load_all();
    llama_backend_init();
    struct llama_model *m = llama_model_load_from_file(model, llama_model_default_params());
    if (!m)
        fprintf(stderr, "%s: llama.cpp could not load %s (run with -v)\n", prog, model);
    return m;
}

void harness_close(struct llama_model *m)
{
    llama_model_free(m);
    llama_backend_free();
}
