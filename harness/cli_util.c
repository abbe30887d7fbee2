/* Small helpers shared by the commands (threads, devices, formatting). */
#include "harness/cli.h"
#include "harness/cuda_measure.h"

#include <cJSON.h>
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_is_help(const char *arg) { return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0; }

int cli_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void cli_set_threads(int n)
{
    if (n <= 0)
        n = cli_default_threads();
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

const char *cli_commas(uint64_t v, char *buf, size_t n)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
    size_t o = 0;
    for (int i = 0; i < len && o + 1 < n; i++) {
        if (i && (len - i) % 3 == 0 && o + 2 < n)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

void cli_token_grid(long L, int *H, int *W)
{
    long q = 1;
    while ((q + 1) * (q + 1) <= L)
        q++;
    *H = q * q == L ? (int)q : 1;
    *W = q * q == L ? (int)q : (int)L;
}

ml_status cli_check_device(const char *device, const char *cuda_path)
{
    if (strcmp(device, "cpu") == 0)
        return ML_OK;
    if (strcmp(device, "cuda") != 0)
        return ml_fail(ML_ERR_USAGE, "--device: unknown device '%s' (allowed: cpu, cuda)", device);
    char desc[256];
    if (!cuda_compiled())
        return ml_fail(ML_ERR_USAGE, "--device cuda: this build has no CUDA backend (mixerlab --version "
                                     "says 'cuda: not compiled in'); use --device cpu");
    if (cuda_device_check(desc, sizeof desc) != ML_OK) {
        char why[300];
        snprintf(why, sizeof why, "%s", ml_last_error());
        return ml_fail(ML_ERR_USAGE, "--device cuda: %s; use --device cpu", why);
    }
    if (!cuda_path)
        return ml_fail(ML_ERR_USAGE, "--device cuda (%s): this command has no CUDA path yet; use --device cpu", desc);
    return ML_OK;
}

const char *cli_blas_info(void)
{
    static char buf[160];
    snprintf(buf, sizeof buf, "%s (%s, %d threads)", openblas_get_config(), openblas_get_corename(),
             openblas_get_num_threads());
    return buf;
}


void cli_print_json(struct cJSON *value)
{
    if (!value)
        return;
    char *txt = cJSON_Print(value);
    if (txt)
        puts(txt);
    free(txt);
    cJSON_Delete(value);
}
