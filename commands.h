/* commands.h: the subcommands of the moepool binary. Each lives with its concern (cmd_*.c in the
 * folder that owns it); moepool.c only dispatches. A command returns the process exit status:
 * 0 success, 1 runtime failure, 2 bad input (usage, corrupt file). */
#ifndef COMMANDS_H
#define COMMANDS_H

int cmd_inspect(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_placement(int argc, char **argv);

#endif
