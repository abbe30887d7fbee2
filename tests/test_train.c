/* Training: AdamW against torch.optim.AdamW (fixture from
 * scripts/make_optim_fixtures.py), timm's weight-decay rule on a real
 * parameter table, gradient clipping, the learning-rate schedule, the
 * progressive-resizing schedule. */
#include "models/safetensors.h"
#include "test_util.h"
#include "train/optim.h"
#include "train/trainer.h"

#define TOL 1e-5

static void test_adamw(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/train/adamw.safetensors", dir);
    st_file f;
    if (st_open(&f, path) != ML_OK) {
        CHECK(0, "fixture: %s", ml_last_error());
        return;
    }
    static const char *const names[3] = {"fc.weight", "fc.bias", "mixer.A_log"};
    const int64_t shapes[3][2] = {{7, 5}, {7, 0}, {3, 4}};
    const int ndims[3] = {2, 1, 2};
    model_param params[3];
    size_t offset[3], total = 0;
    for (int i = 0; i < 3; i++) {
        memset(&params[i], 0, sizeof params[i]);
        snprintf(params[i].name, sizeof params[i].name, "%s", names[i]);
        params[i].ndim = ndims[i];
        params[i].shape[0] = shapes[i][0], params[i].shape[1] = shapes[i][1];
        params[i].numel = (size_t)shapes[i][0] * (ndims[i] == 2 ? (size_t)shapes[i][1] : 1);
        offset[i] = total + 3; /* not packed: offsets are honoured */
        total = offset[i] + params[i].numel;
    }
    CHECK(adamw_decays(&params[0]) && !adamw_decays(&params[1]) && !adamw_decays(&params[2]),
          "decay rule on weight / bias / A_log");
    adamw o;
    adamw_config cfg = adamw_config_default();
    CHECK(adamw_init(&o, &cfg, params, 3, offset) == ML_OK, "init");
    float *p = calloc(total, sizeof *p), *g = calloc(total, sizeof *g), lrs[6];
    CHECK(st_load(&f, "lrs", 1, (int64_t[]){6}, lrs) == ML_OK, "lrs");
    float *grads[3];
    for (int i = 0; i < 3; i++) {
        char n[96];
        snprintf(n, sizeof n, "init.%s", names[i]);
        CHECK(st_load(&f, n, ndims[i], shapes[i], p + offset[i]) == ML_OK, "%s", n);
        grads[i] = malloc(6 * params[i].numel * sizeof(float));
        const int64_t gs[3] = {6, shapes[i][0], shapes[i][1]};
        snprintf(n, sizeof n, "grads.%s", names[i]);
        CHECK(st_load(&f, n, ndims[i] + 1, gs, grads[i]) == ML_OK, "%s", n);
    }
    for (int t = 0; t < 6; t++) {
        for (int i = 0; i < 3; i++)
            memcpy(g + offset[i], grads[i] + (size_t)t * params[i].numel, params[i].numel * sizeof *g);
        adamw_step(&o, p, g, lrs[t]);
    }
    for (int i = 0; i < 3; i++) {
        const char *what[3] = {"final", "m", "v"};
        const float *mine[3] = {p + offset[i], o.m + offset[i], o.v + offset[i]};
        for (int k = 0; k < 3; k++) {
            char n[96];
            float *ref = malloc(params[i].numel * sizeof *ref);
            snprintf(n, sizeof n, "%s.%s", what[k], names[i]);
            CHECK(st_load(&f, n, ndims[i], shapes[i], ref) == ML_OK, "%s", n);
            double e = rel_err_f(mine[k], ref, params[i].numel);
            printf("  AdamW %-6s %-12s after 6 steps against torch.optim.AdamW: rel err %.3g\n", what[k], names[i], e);
            CHECK(e <= TOL, "AdamW %s: rel err %.3g", n, e);
            free(ref);
        }
        free(grads[i]);
    }
    /* clipping: the norm is the global L2 norm, and after clipping it is the maximum */
    const double norm = grad_norm(&o, g);
    double direct = 0;
    for (int i = 0; i < 3; i++)
        for (size_t k = 0; k < params[i].numel; k++)
            direct += (double)g[offset[i] + k] * g[offset[i] + k];
    CHECK(fabs(norm - sqrt(direct)) <= 1e-9 * norm, "grad norm %.9g, direct %.9g", norm, sqrt(direct));
    CHECK(grad_clip(&o, g, norm / 2) == norm && fabs(grad_norm(&o, g) - norm / 2) <= 1e-5 * norm, "clip to half");
    free(p), free(g);
    adamw_free(&o);
    st_close(&f);
}

/* timm's rule on MambaOut's, Vim's and VMamba's tables: what does not decay. */
static void test_decay_rule(void)
{
    static const char *const models[3] = {"mambaout_test:mixer=ssm", "vim_test", "vmamba_test"};
    for (int k = 0; k < 3; k++) {
        model_config cfg;
        model m;
        CHECK(model_config_from_name(models[k], &cfg) == ML_OK && model_plan(&m, &cfg, 1, 64, 64) == ML_OK, "%s",
              models[k]);
        int bad = 0, decayed = 0;
        for (int i = 0; i < m.n_params; i++) {
            const model_param *p = &m.params[i];
            const char *n = p->name;
            const int excluded = p->ndim <= 1 || strstr(n, "A_log") || strstr(n, "A_b_log") || strstr(n, "A_logs") ||
                                 !strcmp(n, "cls_token") || !strcmp(n, "pos_embed");
            bad += adamw_decays(p) == excluded;
            decayed += adamw_decays(p);
        }
        CHECK(bad == 0 && decayed > 0, "%s: %d tensors with the wrong decay (%d decay)", models[k], bad, decayed);
        model_free(&m);
    }
}

static void test_schedule(void)
{
    const lr_schedule s = {.lr = 4e-3, .min_lr = 1e-5, .warmup_lr = 1e-6, .warmup = 10, .total = 110};
    CHECK(fabs(lr_at(&s, 0) - 1e-6) < 1e-15 && fabs(lr_at(&s, 5) - (1e-6 + 0.5 * (4e-3 - 1e-6))) < 1e-12,
          "linear warm-up");
    CHECK(fabs(lr_at(&s, 10) - 4e-3) < 1e-12 && fabs(lr_at(&s, 60) - (1e-5 + 0.5 * (4e-3 - 1e-5))) < 1e-12 &&
              fabs(lr_at(&s, 110) - 1e-5) < 1e-15,
          "cosine: peak, half way, end");
    int mono = 1;
    for (long t = 10; t < 110; t++)
        mono &= lr_at(&s, t + 1) <= lr_at(&s, t);
    CHECK(mono, "cosine decreases after the warm-up");
}

/* Progressive resizing, written out by hand from its rule: epochs 1..A at R0, after B at R, the
 * (e - A)-th of B - A + 1 steps between, down to a multiple of 8. */
static void test_res_schedule(void)
{
    train_config c = train_config_default();
    c.res = 48, c.epochs = 10;
    CHECK(train_res_at(&c, 0) == 48 && train_res_at(&c, 9) == 48, "no --res-start: every epoch at --res");
    c.res_start = 32, c.res_ramp[0] = 2, c.res_ramp[1] = 5;
    /* epochs 3, 4, 5: 32 + 16 * {1, 2, 3} / 4 = 36, 40, 44 -> 32, 40, 40 */
    const int want[10] = {32, 32, 32, 40, 40, 48, 48, 48, 48, 48};
    int ok = 1;
    for (int e = 0; e < 10; e++)
        ok &= train_res_at(&c, e) == want[e];
    CHECK(ok, "ramp 2-5 from 32 to 48: 32 32 32 40 40 48 ...");
    c.res_ramp[0] = c.res_ramp[1] = 4; /* one switch after epoch 4 */
    CHECK(train_res_at(&c, 3) == 32 && train_res_at(&c, 4) == 48, "ramp 4-4: the switch after epoch 4");
    c.res_start = 64, c.res = 32, c.res_ramp[0] = 0, c.res_ramp[1] = 3; /* downwards: 56, 48, 40 -> multiples of 8 */
    CHECK(train_res_at(&c, 0) == 56 && train_res_at(&c, 1) == 48 && train_res_at(&c, 2) == 40 &&
              train_res_at(&c, 3) == 32,
          "a ramp down from 64 to 32 over epochs 1-3");
    c.res_start = 37, c.res = 45, c.res_ramp[0] = 1, c.res_ramp[1] = 2; /* 37 + 8/2 = 41 -> 40 */
    CHECK(train_res_at(&c, 0) == 37 && train_res_at(&c, 1) == 40 && train_res_at(&c, 2) == 45,
          "ends that are not multiples of 8 are kept; steps between are");
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/fixtures";
    test_adamw(dir);
    test_decay_rule();
    test_schedule();
    test_res_schedule();
    return test_summary("test_train");
}
