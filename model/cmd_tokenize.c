/* model/cmd_tokenize.c: `moepool tokenize`: print the token ids of a text.
 *
 * Spec: docs/tokenizer.md §7 and ../shared/conformance/README.md ("Tokenizer cases"). Works on
 * vocabulary-only GGUF files. Exit status: 0 done, 1 runtime failure (memory, output), 2 bad
 * input (usage, unreadable or corrupt file, no or unsupported tokenizer). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "model/gguf.h"
#include "model/tokenizer.h"
#include "model/unicode.h"

struct opts {
    const char *model;
    const char *text;
    bool no_bos, parse_special, from_stdin;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: moepool tokenize -m FILE [--no-bos] [--parse-special] "
                 "(--stdin | [--] TEXT)\n"
                 "  prints the token ids of TEXT on one line, separated by spaces\n"
                 "  -m, --model FILE   GGUF file with a tokenizer (vocabulary-only files will do)\n"
                 "  --no-bos           do not add the BOS/EOS tokens the vocabulary asks for\n"
                 "  --parse-special    turn control tokens written in the text into their ids\n"
                 "  --stdin            read the text from standard input\n"
                 "  --                 end of options (for texts that start with '-')\n");
}

/* Returns 0, or the exit status to stop with. */
static int parse_args(int argc, char **argv, struct opts *o)
{
    bool dashdash = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!dashdash && (!strcmp(a, "-m") || !strcmp(a, "--model")) && i + 1 < argc) {
            o->model = argv[++i];
        } else if (!dashdash && !strcmp(a, "--no-bos")) {
            o->no_bos = true;
        } else if (!dashdash && !strcmp(a, "--parse-special")) {
            o->parse_special = true;
        } else if (!dashdash && !strcmp(a, "--stdin")) {
            o->from_stdin = true;
        } else if (!dashdash && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            usage(stdout);
            return -1;
        } else if (!dashdash && !strcmp(a, "--")) {
            dashdash = true;
        } else if (!dashdash && a[0] == '-' && a[1]) {
            fprintf(stderr, "moepool tokenize: unknown or incomplete option '%s'\n", a);
            return 2;
        } else if (!o->text) {
            o->text = a;
        } else {
            fprintf(stderr, "moepool tokenize: more than one TEXT (quote the text)\n");
            return 2;
        }
    }
    if (!o->model || (!o->text && !o->from_stdin) || (o->text && o->from_stdin)) {
        usage(stderr);
        return 2;
    }
    return 0;
}

/* Reads all of standard input into a malloc'd buffer. */
static char *read_stdin(size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, stdin);
        if (n < cap)
            break;
        char *bigger = realloc(buf, cap *= 2);
        if (!bigger)
            free(buf);
        buf = bigger;
    }
    if (buf && ferror(stdin)) {
        free(buf);
        buf = NULL;
    }
    *len = n;
    return buf;
}

/* Tokenizes and prints; returns the exit status. */
static int run(const struct tok_vocab *v, const struct opts *o, const char *text, size_t len)
{
    struct mp_error err = {0};
    bool add = !o->no_bos;
    int n = tok_encode(v, text, len, add && tok_add_bos(v), o->parse_special, NULL, 0, &err);
    int32_t *ids = n >= 0 ? malloc(((size_t)n + 1) * sizeof(*ids)) : NULL;
    if (n >= 0 && ids)
        n = tok_encode(v, text, len, add && tok_add_bos(v), o->parse_special, ids, n, &err);
    if (n < 0 || !ids) {
        fprintf(stderr, "moepool tokenize: %s\n", n < 0 ? err.msg : "out of memory");
        free(ids);
        return 1;
    }
    if (add && tok_add_eos(v))
        ids[n++] = tok_eos(v); /* llama_tokenize(add_special) appends EOS when asked to */
    for (int i = 0; i < n; i++)
        printf(i ? " %d" : "%d", ids[i]);
    putchar('\n');
    free(ids);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        perror("moepool tokenize: writing the ids");
        return 1;
    }
    return 0;
}

int cmd_tokenize(int argc, char **argv)
{
    struct opts o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    size_t len = o.text ? strlen(o.text) : 0;
    char *input = NULL;
    if (o.from_stdin && !(input = read_stdin(&len))) {
        fprintf(stderr, "moepool tokenize: cannot read standard input\n");
        return 2;
    }
    struct mp_error err = {0};
    struct gguf_file *f = NULL;
    struct tok_vocab *v = NULL;
    if (gguf_open(o.model, &f, &err) < 0 || tok_load(f, &v, &err) < 0) {
        fprintf(stderr, "moepool tokenize: %s\n", err.msg);
        free(input);
        gguf_close(f);
        return 2;
    }
    gguf_close(f); /* the vocabulary keeps its own copies */
    const char *text = input ? input : o.text;
    /* Tokenized anyway, as llama.cpp does (docs/tokenizer.md §3): the ids must stay its ids. */
    if (!uc_is_canonical((const uint8_t *)text, len))
        fprintf(stderr, "moepool tokenize: warning: the text is not valid UTF-8; it is read as "
                        "llama.cpp reads it (a bad byte becomes U+FFFD)\n");
    rc = run(v, &o, text, len);
    tok_free(v);
    free(input);
    return rc;
}
