#include "harness/cli.h"
#include "harness/cuda_measure.h"

#include <build_info.h>

#include <cblas.h>
#include <omp.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: mixerlab <command> [options]\n"
    "\n"
    "Which token mixer does a vision backbone need? Measurements of the MambaOut\n"
    "Gated CNN skeleton with a pluggable token mixer.\n"
    "\n"
    "commands:\n"
    "  info       parameters, MACs, per-stage table and memory of a model\n"
    "  forward    run a model on an image batch (safetensors) or a seeded random batch\n"
    "  mixer      run one token mixer alone on a (B,H,W,E) tensor\n"
    "  table      the MambaOut paper's Table 1 reproduced, or one skeleton with every mixer\n"
    "  bench-cpu  SGEMM rate and whole-forward rate on this machine, in one run\n"
    "  bench-mixers  every token mixer alone over a range of token counts, against the\n"
    "             SGEMM rate and copy bandwidth measured in the same run\n"
    "  bench-runner  the measuring loop's own overhead per sample\n"
    "  bench-cuda    every CUDA kernel's rate against the GPU's copy and SGEMM rates, in one run\n"
    "  list       the model zoo (with parameters and MACs at 224x224) and the mixers\n"
    "  sweep      run a sweep spec and log every configuration to SQLite\n"
    "  export     results of a database as CSV or JSON\n"
    "  merge      combine databases (Slurm shards) into one\n"
    "  plot       draw an experiment's results with gnuplot (PNG and SVG)\n"
    "  version    version, build flags, BLAS, CUDA support\n"
    "\n"
    "Run 'mixerlab <command> --help' for a command's options.\n"
    "\n"
    "exit codes: 0 ok, 1 runtime error, 2 usage error (bad flag, unknown name, value\n"
    "out of range), 3 I/O error (missing, unreadable or unwritable file), 4 bad file\n"
    "contents (truncated, corrupt, wrong shape), 5 out of memory.\n";

static int cmd_version(void)
{
    printf("mixerlab %s (git %s%s)\n", MIXERLAB_VERSION, MIXERLAB_GIT_SHA,
           MIXERLAB_GIT_DIRTY ? ", uncommitted changes" : "");
    printf("compiler: %s\n", MIXERLAB_COMPILER);
    printf("flags:    %s\n", MIXERLAB_CFLAGS);
    printf("blas:     %s\n", cli_blas_info());
    printf("cuda:     %s\n", cuda_build_info());
    if (cuda_compiled()) {
        char desc[256];
        ml_status s = cuda_device_check(desc, sizeof desc);
        printf("device:   %s\n", s == ML_OK ? desc : ml_last_error());
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        fprintf(stderr, "\nmixerlab: error: no command given\n");
        return ML_ERR_USAGE;
    }
    const char *cmd = argv[1];
    int rc;
    if (cli_is_help(cmd) || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0)
        return cmd_version();
    if (strcmp(cmd, "info") == 0)
        rc = cmd_info(argc - 1, argv + 1);
    else if (strcmp(cmd, "forward") == 0)
        rc = cmd_forward(argc - 1, argv + 1);
    else if (strcmp(cmd, "sweep") == 0)
        rc = cmd_sweep(argc - 1, argv + 1);
    else if (strcmp(cmd, "export") == 0)
        rc = cmd_export(argc - 1, argv + 1);
    else if (strcmp(cmd, "merge") == 0)
        rc = cmd_merge(argc - 1, argv + 1);
    else if (strcmp(cmd, "plot") == 0)
        rc = cmd_plot(argc - 1, argv + 1);
    else if (strcmp(cmd, "table") == 0)
        rc = cmd_table(argc - 1, argv + 1);
    else if (strcmp(cmd, "mixer") == 0)
        rc = cmd_mixer(argc - 1, argv + 1);
    else if (strcmp(cmd, "bench-runner") == 0)
        rc = cmd_bench_runner(argc - 1, argv + 1);
    else if (strcmp(cmd, "bench-mixers") == 0)
        rc = cmd_bench_mixers(argc - 1, argv + 1);
    else if (strcmp(cmd, "bench-cpu") == 0)
        rc = cmd_bench_cpu(argc - 1, argv + 1);
    else if (strcmp(cmd, "bench-cuda") == 0)
        rc = cmd_bench_cuda(argc - 1, argv + 1);
    else if (strcmp(cmd, "list") == 0)
        rc = cmd_list(argc - 1, argv + 1);
    else
        rc = ml_fail(ML_ERR_USAGE, "unknown command '%s' (run 'mixerlab --help')", cmd);
    if (rc != 0)
        fprintf(stderr, "mixerlab: error: %s\n", ml_last_error());
    return rc;
}
