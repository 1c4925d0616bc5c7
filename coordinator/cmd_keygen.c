/* coordinator/cmd_keygen.c: `moepool keygen -o FILE`: a new cluster key (proto/keyfile.h). Give
 * the same file to the coordinator and every worker with --key FILE. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "proto/keyfile.h"

int cmd_keygen(int argc, char **argv)
{
    const char *out = NULL;
    int c;
    if (argc == 2 && !strcmp(argv[1], "--help")) {
        printf("usage: moepool keygen -o FILE\n");
        return 0;
    }
    optind = 1;
    while ((c = getopt(argc, argv, "o:h")) != -1) {
        if (c == 'o') {
            out = optarg;
        } else {
            fprintf(c == 'h' ? stdout : stderr, "usage: moepool keygen -o FILE\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (!out || optind != argc) {
        fprintf(stderr, "usage: moepool keygen -o FILE\n");
        return 2;
    }
    struct mp_error err = {0};
    if (keyfile_generate(out, &err)) {
        fprintf(stderr, "moepool keygen: %s\n", err.msg);
        return 1;
    }
    printf("wrote %s: give it to the coordinator and every worker with --key %s\n", out, out);
    return 0;
}
