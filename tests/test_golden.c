/* The whole model against timm's own MambaOut: fixtures written by
 * scripts/make_fixtures.py (timm's modules, reference run in float64) hold the
 * weights with randomised biases and norm affines, an input batch, and the
 * intermediate activations. Every intermediate must match at relative error
 * max|a-b| / max|ref| <= 1e-4. */
#include "models/model.h"
#include "test_util.h"

#define TOL 1e-4

typedef struct {
    st_file *ref;
    int compared;
    /* the fixture's name for a tap, or NULL to skip it */
    const char *(*ref_name)(const st_file *ref, const char *tap);
} golden_ctx;

/* timm fixtures: stem, stage0..3, logits, and one block as block_out. */
static const char *timm_ref_name(const st_file *ref, const char *tap)
{
    (void)ref;
    if (strcmp(tap, "stages.2.blocks.1") == 0)
        return "block_out";
    if (strncmp(tap, "stages.", 7) == 0)
        return NULL; /* other blocks have no reference */
    return tap;      /* stem, stage0..3, logits */
}

static void compare_tap(void *p, const char *name, const float *data, int ndim, const int64_t *shape)
{
    golden_ctx *g = p;
    const char *rn = g->ref_name(g->ref, name);
    if (!rn)
        return;
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    float *ref = malloc(n * sizeof *ref);
    ml_status s = st_load(g->ref, rn, ndim, shape, ref);
    CHECK(s == ML_OK, "%s: %s", name, ml_last_error());
    if (s == ML_OK) {
        double e = rel_err_f(data, ref, n);
        printf("  %-18s rel err %.3g\n", name, e);
        CHECK(e <= TOL, "%s: rel err %.3g > %.0e against the reference", name, e, TOL);
        g->compared++;
    }
    free(ref);
}

static void run_resolution(const char *dir, int res)
{
    char wpath[512], rpath[512];
    snprintf(wpath, sizeof wpath, "%s/mambaout_test_weights.safetensors", dir);
    snprintf(rpath, sizeof rpath, "%s/mambaout_test_r%d.safetensors", dir, res);
    st_file wf, rf;
    if (st_open(&wf, wpath) != ML_OK || st_open(&rf, rpath) != ML_OK) {
        CHECK(0, "fixtures: %s", ml_last_error());
        return;
    }
    const st_tensor *in = st_find(&rf, "input");
    CHECK(in && in->ndim == 4 && in->shape[2] == res, "fixture input");
    if (!in)
        return;
    int B = (int)in->shape[0], H = (int)in->shape[2], W = (int)in->shape[3];
    model_config cfg;
    model m;
    model_config_from_name("mambaout_test", &cfg);
    CHECK(model_plan(&m, &cfg, B, H, W) == ML_OK && model_alloc(&m) == ML_OK, "alloc");
    CHECK(model_load(&m, &wf, 0) == ML_OK, "strict load of timm's state_dict: %s", ml_last_error());
    float *x = malloc(in->numel * sizeof *x);
    st_read_f32(&rf, in, x);
    printf("resolution %d (batch %d):\n", res, B);
    golden_ctx g = {&rf, 0, timm_ref_name};
    model_forward(&m, x, compare_tap, &g);
    CHECK(g.compared == 7, "compared %d intermediates, want 7 (stem, 4 stages, one block, logits)",
          g.compared);

    /* One Gated CNN block alone, from timm's own block input. */
    const st_tensor *bi = st_find(&rf, "block_in");
    CHECK(bi != NULL, "block_in");
    if (bi) {
        float *bx = malloc(bi->numel * sizeof *bx), *by = malloc(bi->numel * sizeof *by);
        st_read_f32(&rf, bi, bx);
        CHECK(st_load(&rf, "block_out", bi->ndim, bi->shape, by) == ML_OK, "block_out");
        const int s = 2, j = 1;
        block_buffers buf = {m.t, m.u, m.m, m.u, 2 * (size_t)m.blocks[s].hidden, m.ws, m.threads};
        block_forward(m.be, &m.blocks[s], &m.P.blocks[m.block_base[s] + j], bx, (int)bi->shape[0], (int)bi->shape[1],
                      (int)bi->shape[2], &buf);
        double e = rel_err_f(bx, by, bi->numel);
        printf("  %-18s rel err %.3g\n", "block alone", e);
        CHECK(e <= TOL, "block alone rel err %.3g", e);
        free(bx), free(by);
    }
    free(x);
    model_free(&m);
    st_close(&wf);
    st_close(&rf);
}

/* Skeleton fixtures: taps with a tensor of the same name are compared. */
static const char *same_name(const st_file *ref, const char *tap) { return st_find(ref, tap) ? tap : NULL; }

/* vmamba_test / vim_test against scripts/make_skeleton_fixtures.py (float64
 * restatements of vanilla VMamba and Vim v2 with our parameter names). */
static void run_skeleton(const char *dir, const char *model_name, int want)
{
    char path[512];
    snprintf(path, sizeof path, "%s/skeletons/%s.safetensors", dir, model_name);
    st_file f;
    if (st_open(&f, path) != ML_OK) {
        CHECK(0, "fixture: %s", ml_last_error());
        return;
    }
    const st_tensor *in = st_find(&f, "input");
    CHECK(in && in->ndim == 4, "%s: input", model_name);
    if (in && in->ndim == 4) {
        model_config cfg;
        model m;
        model_config_from_name(model_name, &cfg);
        ml_status s = model_plan(&m, &cfg, (int)in->shape[0], (int)in->shape[2], (int)in->shape[3]);
        if (s == ML_OK)
            s = model_alloc(&m);
        CHECK(s == ML_OK, "%s: %s", model_name, ml_last_error());
        if (s == ML_OK) {
            /* the file also holds the input and the references: those are the only extras allowed */
            CHECK(model_load(&m, &f, 1) == ML_OK, "%s: load: %s", model_name, ml_last_error());
            for (int i = 0; i < f.count; i++) {
                const char *n = f.tensors[i].name;
                CHECK(model_find_param(&m, n) || !strcmp(n, "input") || !strcmp(n, "stem") ||
                          !strcmp(n, "logits") || !strncmp(n, "stage", 5),
                      "%s: unexpected tensor %s", model_name, n);
            }
            float *x = malloc(in->numel * sizeof *x);
            st_read_f32(&f, in, x);
            printf("%s (batch %lld, %lldx%lld):\n", model_name, (long long)in->shape[0], (long long)in->shape[2],
                   (long long)in->shape[3]);
            golden_ctx g = {&f, 0, same_name};
            model_forward(&m, x, compare_tap, &g);
            CHECK(g.compared == want, "%s: compared %d tensors, want %d", model_name, g.compared, want);
            free(x);
        }
        model_free(&m);
    }
    st_close(&f);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/fixtures";
    run_resolution(dir, 64);
    run_resolution(dir, 97);
    run_skeleton(dir, "vmamba_test", 6); /* stem, stage0..3, logits */
    run_skeleton(dir, "vim_test", 3);    /* stem, stage0, logits */
    return test_summary("test_golden");
}
