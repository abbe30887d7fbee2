/* The mixerlab command-line tool: one function per subcommand. Each returns
 * an exit code (ml_status); main prints the recorded error line. */
#ifndef MIXERLAB_CLI_H
#define MIXERLAB_CLI_H

#include "base/common.h"

int cmd_info(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_bench_cpu(int argc, char **argv);
int cmd_bench_cuda(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_mixer(int argc, char **argv);
int cmd_table(int argc, char **argv);
int cmd_bench_mixers(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_bench_runner(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_plot(int argc, char **argv);

/* Sets OpenMP and OpenBLAS thread counts (n <= 0: all online cores). */
void cli_set_threads(int n);
int cli_default_threads(void);
/* True when argv[i] is -h or --help. */
int cli_is_help(const char *arg);
/* Where L tokens sit for the block and mixer levels: a square grid when L is
 * a perfect square, else 1 x L. */
void cli_token_grid(long L, int *H, int *W);
/* "1,156,177,152" */
const char *cli_commas(uint64_t v, char *buf, size_t n);
/* Checks a --device value: "cpu" is fine; "cuda" needs a CUDA build, a device,
 * and a command with a CUDA path (cuda_path non-NULL, e.g. "forward"). */
ml_status cli_check_device(const char *device, const char *cuda_path);
/* Prints a cJSON value (indented) to stdout and deletes it; NULL prints nothing. */
struct cJSON;
void cli_print_json(struct cJSON *value);
/* Short description of the BLAS library in use. */
const char *cli_blas_info(void);

#endif
