/* Small helpers shared by the commands (threads, devices, formatting). */
#include "harness/cli.h"
#include "harness/cli_data.h"
#include "harness/cuda_measure.h"
#include "models/model.h"

#include <cJSON.h>
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* eval's and preprocess's --interpolation names, and [eval] interpolation's (declared in cli_data.h;
 * defined here, with the helpers every command links, so that the spec parser needs no datasets) */
const char *const cli_interp_names[] = {"bicubic", "bilinear", NULL};

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

/* An existing folder, or NULL. */
static int is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

const char *cli_data_dir(const char *name)
{
    static char found[4][1200];
    static const char *names[4];
    for (int i = 0; i < 4 && names[i]; i++)
        if (strcmp(names[i], name) == 0)
            return found[i];
    char exe[1024], cand[1200];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    const char *tried[4];
    char tried_buf[3][1200];
    int nt = 0;
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        /* installed: PREFIX/bin/mixerlab -> PREFIX/share/mixerlab/NAME; a build folder of the tree: BUILD/../NAME */
        snprintf(tried_buf[0], sizeof tried_buf[0], "%s/../share/mixerlab/%s", exe, name);
        snprintf(tried_buf[1], sizeof tried_buf[1], "%s/../%s", exe, name);
        tried[nt++] = tried_buf[0], tried[nt++] = tried_buf[1];
    }
    snprintf(tried_buf[2], sizeof tried_buf[2], "%s/%s", MIXERLAB_DATADIR, name);
    tried[nt++] = tried_buf[2];
    snprintf(cand, sizeof cand, "%s/%s", MIXERLAB_SOURCE_DIR, name);
    tried[nt++] = cand;
    for (int i = 0; i < nt; i++) {
        if (!is_dir(tried[i]))
            continue;
        for (int k = 0; k < 4; k++)
            if (!names[k]) {
                names[k] = name;
                snprintf(found[k], sizeof found[k], "%s", tried[i]);
                return found[k];
            }
        return tried[i]; /* more than four names: not cached */
    }
    char list[2400] = "";
    for (int i = 0; i < nt; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, tried[i], sizeof list - strlen(list) - 1);
    }
    ml_fail(ML_ERR_IO, "cannot find mixerlab's '%s' folder (looked in %s)", name, list);
    return NULL;
}

ml_status cli_load_tokens(const char *path, float **out, int *B, int *L, int **labels, int vocab, int classes)
{
    st_file f;
    ML_TRY(st_open(&f, path));
    const st_tensor *t = st_find(&f, "input"), *lt = st_find(&f, "labels");
    char shape[96] = "";
    ml_status s = ML_OK;
    if (!t || !lt)
        s = ml_fail(ML_ERR_FORMAT, "'%s': missing tensor '%s'", path, t ? "labels" : "input");
    else if (st_shape_str(shape, sizeof shape, t->ndim, t->shape), t->ndim != 2 || t->shape[0] < 1 ||
             t->shape[0] > MODEL_MAX_BATCH || t->shape[1] < 1 || t->shape[1] > MODEL_MAX_SEQ)
        s = ml_fail(ML_ERR_FORMAT, "'%s': tensor 'input' has shape %s, expected [B, L] token ids (B 1..%d, L 1..%d)",
                    path, shape, MODEL_MAX_BATCH, MODEL_MAX_SEQ);
    else if (lt->ndim != 2 || lt->shape[0] != t->shape[0] || lt->shape[1] != t->shape[1])
        s = ml_fail(ML_ERR_FORMAT, "'%s': tensor 'labels' must have the shape of 'input' %s (a label per token)", path,
                    shape);
    int *tok = NULL;
    *out = NULL, *labels = NULL;
    if (s == ML_OK) {
        *B = (int)t->shape[0], *L = (int)t->shape[1];
        tok = ml_malloc(t->numel * sizeof *tok, "tokens");
        *out = ml_malloc(t->numel * sizeof **out, "input batch");
        *labels = ml_malloc(lt->numel * sizeof **labels, "labels");
        s = tok && *out && *labels ? ML_OK : ML_ERR_NOMEM;
    }
    if (s == ML_OK)
        s = st_read_ints(&f, t, 0, vocab - 1, "a token", tok);
    if (s == ML_OK)
        s = st_read_ints(&f, lt, -1, classes - 1, "a class (or -1)", *labels);
    for (size_t i = 0; s == ML_OK && i < t->numel; i++)
        (*out)[i] = (float)tok[i];
    free(tok);
    if (s != ML_OK) {
        free(*out), free(*labels);
        *out = NULL, *labels = NULL;
    }
    st_close(&f);
    return s;
}

ml_status cli_load_input(const char *path, float **out, int *B, int *H, int *W, int **labels, int num_classes)
{
    st_file f;
    ML_TRY(st_open(&f, path));
    const st_tensor *t = st_find(&f, "input");
    ml_status s = ML_OK;
    char shape[96];
    if (!t) {
        s = ml_fail(ML_ERR_FORMAT, "'%s': missing tensor 'input'", path);
    } else {
        st_shape_str(shape, sizeof shape, t->ndim, t->shape);
        if (t->ndim != 4 || t->shape[1] != 3)
            s = ml_fail(ML_ERR_FORMAT, "'%s': tensor 'input' has shape %s, expected [B, 3, H, W]", path,
                        shape);
        else if (t->shape[0] < 1 || t->shape[0] > MODEL_MAX_BATCH)
            s = ml_fail(ML_ERR_FORMAT, "'%s': tensor 'input' %s: batch must be 1..%d", path, shape,
                        MODEL_MAX_BATCH);
        else if (t->shape[2] < MODEL_MIN_RES || t->shape[2] > MODEL_MAX_RES ||
                 t->shape[3] < MODEL_MIN_RES || t->shape[3] > MODEL_MAX_RES)
            s = ml_fail(ML_ERR_FORMAT, "'%s': tensor 'input' %s: H and W must be %d..%d", path, shape,
                        MODEL_MIN_RES, MODEL_MAX_RES);
    }
    const st_tensor *lt = labels && s == ML_OK ? st_find(&f, "labels") : NULL;
    if (labels && s == ML_OK) {
        if (!lt)
            s = ml_fail(ML_ERR_FORMAT, "'%s': missing tensor 'labels'", path);
        else if (lt->ndim != 1 || lt->shape[0] != t->shape[0]) {
            st_shape_str(shape, sizeof shape, lt->ndim, lt->shape);
            s = ml_fail(ML_ERR_FORMAT, "'%s': tensor 'labels' has shape %s, expected [%lld] (one per image)", path,
                        shape, (long long)t->shape[0]);
        }
    }
    *out = NULL;
    if (labels)
        *labels = NULL;
    if (s == ML_OK) {
        *B = (int)t->shape[0], *H = (int)t->shape[2], *W = (int)t->shape[3];
        *out = ml_malloc(t->numel * sizeof(float), "input batch");
        s = *out ? st_read_f32(&f, t, *out) : ML_ERR_NOMEM;
    }
    if (s == ML_OK && labels) {
        *labels = ml_malloc(lt->numel * sizeof **labels, "labels");
        s = *labels ? st_read_labels(&f, lt, num_classes, *labels) : ML_ERR_NOMEM;
    }
    if (s != ML_OK) {
        free(*out);
        *out = NULL;
        if (labels) {
            free(*labels);
            *labels = NULL;
        }
    }
    st_close(&f);
    return s;
}
