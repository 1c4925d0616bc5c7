/* moepool.c: the multi-call binary: `moepool COMMAND ...`. Only the subcommand table lives here. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"inspect", cmd_inspect, "show a GGUF model: metadata, tensors, layers, parameters"},
    {"logits", cmd_logits, "write the logits of every position of a token sequence"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"synth", cmd_synth, "write a synthetic model of a real architecture's shape"},
    {"run", cmd_run, "generate text from a prompt, streaming it to stdout"},
    {"bench", cmd_bench, "measure prompt, decode and batched-decode speed, peak RSS, roofline"},
    {"worker", cmd_worker, "join a coordinator and compute its experts"},
    {"keygen", cmd_keygen, "write a CURVE key for an encrypted cluster"},
    {"serve", cmd_serve, "serve the OpenAI API with continuous batching"},
    {"placement", cmd_placement, "plan expert placement over workers; record routing statistics"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: moepool COMMAND [options]   (moepool COMMAND --help for its options)\n\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("moepool %s\n", MOEPOOL_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "moepool: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
