/* tools/llama/harness.h: what both harness programs (llama_logits, llama_bench) do before and
 * after their own work: quiet llama.cpp's log, load its CPU backends, load the model. */
#ifndef HARNESS_H
#define HARNESS_H

#include <stdbool.h>

#include "llama.h"

/* Loads backends (from backend_dir, or llama.cpp's default places) and the model; prints one
 * line naming prog and returns NULL when llama.cpp cannot load it. */
struct llama_model *harness_open(const char *prog, const char *model, const char *backend_dir,
                                 bool verbose);
void harness_close(struct llama_model *m);

#endif
