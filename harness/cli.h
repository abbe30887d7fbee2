/* The mixerlab command-line tool: a table of commands (main.c), each with
 * its one-line summary, its usage text and the function that runs it. A
 * command returns an exit code (ml_status); main prints the recorded error
 * line, and prints the usage itself for -h / --help. */
#ifndef MIXERLAB_CLI_H
#define MIXERLAB_CLI_H

#include "base/common.h"

typedef struct {
    const char *name;
    const char *summary; /* one line for `mixerlab --help` */
    const char *usage;   /* `mixerlab NAME --help` */
    int (*run)(int argc, char **argv);
} cli_command;

extern const cli_command cli_info, cli_list, cli_forward, cli_mixer, cli_table, cli_bench_cpu, cli_bench_mixers,
    cli_bench_runner, cli_bench_cuda, cli_sweep, cli_export, cli_merge, cli_plot, cli_eval, cli_preprocess, cli_grad, cli_train, cli_bench_train;

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
/* A folder of data files installed with mixerlab or in its source tree
 * ("plots"): beside the executable (../share/mixerlab/NAME once installed,
 * ../NAME in a build folder of the tree), then the install prefix, then the
 * source tree it was built from. NULL (with a recorded I/O error) when none has it. */
const char *cli_data_dir(const char *name);

/* Reads tensor 'input' [B,3,H,W] (F32, F16 or BF16) of a safetensors file and checks it is a size
 * the models accept; with labels non-NULL also 'labels' [B] (I64 or I32, each in 0..num_classes-1).
 * *out and *labels are malloc'd (NULL on failure). */
ml_status cli_load_input(const char *path, float **out, int *B, int *H, int *W, int **labels, int num_classes);
/* The sequence model's batch: 'input' [B, L] token ids (I64 or I32, 0..vocab-1) into floats, and
 * 'labels' [B, L] (I64 or I32, -1 where nothing is asked, else 0..classes-1). */
ml_status cli_load_tokens(const char *path, float **out, int *B, int *L, int **labels, int vocab, int classes);

#endif
