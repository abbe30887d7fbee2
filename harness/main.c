#include "harness/cli.h"
#include "harness/cuda_measure.h"

#include <build_info.h>

#include <string.h>

static int cmd_version(int argc, char **argv);

static const cli_command cli_version = {
    .name = "version",
    .summary = "version, build flags, BLAS, CUDA support",
    .usage = "usage: mixerlab version   (or mixerlab --version)\n"
             "\n"
             "The git commit (and whether the tree had uncommitted changes), compiler and\n"
             "flags, the BLAS library, whether CUDA is compiled in and which device is there.\n",
    .run = cmd_version,
};

/* The commands, in the order the usage lists them. */
static const cli_command *const commands[] = {
    &cli_info,      &cli_forward,      &cli_mixer,        &cli_train, &cli_eval,       &cli_grad, &cli_preprocess, &cli_table, &cli_bench_cpu, &cli_bench_train,
    &cli_bench_mixers, &cli_bench_runner, &cli_bench_cuda, &cli_list,      &cli_sweep, &cli_export,
    &cli_merge,     &cli_plot,         &cli_version,
};
#define NCOMMANDS ((int)(sizeof commands / sizeof commands[0]))

static void print_usage(FILE *f)
{
    fputs("usage: mixerlab <command> [options]\n"
          "\n"
          "Which token mixer does a vision backbone need? Measurements of the MambaOut\n"
          "Gated CNN skeleton with a pluggable token mixer.\n"
          "\n"
          "commands:\n",
          f);
    for (int i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-13s %s\n", commands[i]->name, commands[i]->summary);
    fputs("\n"
          "Run 'mixerlab <command> --help' for a command's options.\n"
          "\n"
          "exit codes: 0 ok, 1 runtime error, 2 usage error (bad flag, unknown name, value\n"
          "out of range), 3 I/O error (missing, unreadable or unwritable file), 4 bad file\n"
          "contents (truncated, corrupt, wrong shape), 5 out of memory.\n",
          f);
}

static int cmd_version(int argc, char **argv)
{
    if (argc > 1)
        return ml_fail(ML_ERR_USAGE, "version: unexpected argument '%s'", argv[1]);
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
        print_usage(stderr);
        fprintf(stderr, "\nmixerlab: error: no command given\n");
        return ML_ERR_USAGE;
    }
    const char *name = argv[1];
    if (cli_is_help(name) || strcmp(name, "help") == 0) {
        print_usage(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0)
        name = "version";
    const cli_command *c = NULL;
    for (int i = 0; i < NCOMMANDS && !c; i++)
        if (strcmp(commands[i]->name, name) == 0)
            c = commands[i];
    int rc;
    if (!c) {
        rc = ml_fail(ML_ERR_USAGE, "unknown command '%s' (run 'mixerlab --help')", name);
    } else {
        for (int i = 2; i < argc; i++)
            if (cli_is_help(argv[i])) {
                fputs(c->usage, stdout);
                return 0;
            }
        rc = c->run(argc - 1, argv + 1);
    }
    if (rc != 0)
        fprintf(stderr, "mixerlab: error: %s\n", ml_last_error());
    return rc;
}
