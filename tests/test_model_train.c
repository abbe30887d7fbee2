/* The backward of whole models (models/model_train.c):
 *   - timm's MambaOut under PyTorch autograd in float64 (scripts/make_model_grad_fixtures.py):
 *     the small test configuration with every gradient whole, femto at sampled positions;
 *   - `mixerlab grad` on the same fixture (when the executable is given as argv[2]);
 *   - every other skeleton part (VMamba's patch stem, merging and per-token head; Vim's class
 *     token, position embedding and token head) and every mixer in the slot, by central
 *     differences of the float32 loss along random directions, part by part;
 *   - the training forward's logits against the inference forward's, the same bits from two
 *     backwards, drop path's scales. */
#include "blocks/backend.h"
#include "models/model_train.h"
#include "test_util.h"

#include <omp.h>

#define TOL 1e-4

/* ---- the fixtures' weight generator, restated (scripts/make_model_grad_fixtures.py) ---- */

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static const model *g_sort_model;
static int by_name(const void *a, const void *b)
{
    return strcmp(g_sort_model->params[*(const int *)a].name, g_sort_model->params[*(const int *)b].name);
}

static void gen_weights(model *m)
{
    int *order = malloc((size_t)m->n_params * sizeof *order);
    for (int i = 0; i < m->n_params; i++)
        order[i] = i;
    g_sort_model = m;
    qsort(order, (size_t)m->n_params, sizeof *order, by_name);
    for (int i = 0; i < m->n_params; i++) {
        const model_param *p = &m->params[order[i]];
        float *d = m->pdata[order[i]];
        const size_t len = strlen(p->name);
        const int is_weight = len >= 7 && !strcmp(p->name + len - 7, ".weight");
        for (size_t k = 0; k < p->numel; k++) {
            const uint64_t z = mix64(((uint64_t)(i + 1) << 32) + k);
            const double r = 2.0 * (double)(z >> 40) / (double)(1 << 24) - 1.0;
            double v;
            if (p->ndim >= 2)
                v = r * sqrt(3.0 / (double)(p->numel / (size_t)p->shape[0]));
            else
                v = is_weight ? 1.0 + 0.2 * r : 0.1 * r;
            d[k] = (float)v;
        }
    }
    free(order);
}

typedef struct {
    model m;
    model_trainer t;
    int ok;
} trained;

static int setup(trained *tr, const char *name, int B, int H, int W)
{
    memset(tr, 0, sizeof *tr);
    model_config cfg;
    ml_status s = model_config_from_name(name, &cfg);
    if (s == ML_OK)
        s = model_plan(&tr->m, &cfg, B, H, W);
    if (s == ML_OK)
        s = model_alloc(&tr->m);
    if (s == ML_OK)
        s = model_train_init(&tr->t, &tr->m);
    CHECK(s == ML_OK, "%s: %s", name, ml_last_error());
    tr->ok = s == ML_OK;
    return tr->ok;
}

static void teardown(trained *tr)
{
    if (tr->t.m)
        model_train_free(&tr->t);
    model_free(&tr->m);
}

static float loss_of(trained *tr, const float *x, const int *labels)
{
    float loss = 0.0f;
    model_forward_train(&tr->t, x, NULL);
    tr->m.be->softmax_xent(&loss, NULL, tr->t.logits, labels, (int)model_logit_rows(&tr->m), tr->m.cfg.num_classes,
                           0.0f);
    return loss;
}

/* The fixture's input and labels; NULL when missing. */
static float *fixture_batch(const st_file *f, int **labels, int classes, int *B, int *H, int *W)
{
    const st_tensor *in = st_find(f, "input"), *lt = st_find(f, "labels");
    CHECK(in && lt && in->ndim == 4, "%s: input / labels", f->path);
    if (!in || !lt || in->ndim != 4)
        return NULL;
    *B = (int)in->shape[0], *H = (int)in->shape[2], *W = (int)in->shape[3];
    float *x = malloc(in->numel * sizeof *x);
    *labels = malloc(lt->numel * sizeof **labels);
    CHECK(st_read_f32(f, in, x) == ML_OK && st_read_labels(f, lt, classes, *labels) == ML_OK, "%s: %s", f->path,
          ml_last_error());
    return x;
}

/* max|a-b| / max|ref| over a whole gradient file's tensors ("grad.<name>") */
static void compare_whole(const char *what, const model *m, float *const *grads, const st_file *ref, double *worst)
{
    for (int i = 0; i < m->n_params; i++) {
        char n[PARAM_NAME_MAX + 48];
        snprintf(n, sizeof n, "grad.%s", m->params[i].name);
        float *r = malloc(m->params[i].numel * sizeof *r);
        if (st_load(ref, n, m->params[i].ndim, m->params[i].shape, r) != ML_OK) {
            CHECK(0, "%s: %s", what, ml_last_error());
        } else {
            const double e = rel_err_f(grads[i], r, m->params[i].numel);
            CHECK(e <= TOL, "%s: %s rel err %.3g", what, n, e);
            *worst = e > *worst ? e : *worst;
        }
        free(r);
    }
}

static void test_golden_test_config(const char *dir, const char *exe)
{
    char path[600];
    snprintf(path, sizeof path, "%s/grads/model_mambaout_test.safetensors", dir);
    st_file f;
    if (st_open(&f, path) != ML_OK) {
        CHECK(0, "fixture: %s", ml_last_error());
        return;
    }
    int *labels = NULL, B, H, W;
    float *x = fixture_batch(&f, &labels, 10, &B, &H, &W);
    trained tr;
    if (x && setup(&tr, "mambaout_test:num_classes=10", B, H, W)) {
        gen_weights(&tr.m);
        /* the restated generator makes the fixture's weights, bit for bit */
        int same = 1;
        for (int i = 0; i < tr.m.n_params; i++) {
            float *w = malloc(tr.m.params[i].numel * sizeof *w);
            same &= st_load(&f, tr.m.params[i].name, tr.m.params[i].ndim, tr.m.params[i].shape, w) == ML_OK &&
                    memcmp(w, tr.m.pdata[i], tr.m.params[i].numel * sizeof *w) == 0;
            free(w);
        }
        CHECK(same, "mambaout_test: generated weights differ from the fixture's");
        model_forward_train(&tr.t, x, NULL);
        const float loss = model_backward(&tr.t, labels, 0.0f, NULL);
        float ref_loss = 0;
        CHECK(st_load(&f, "loss", 1, (int64_t[]){1}, &ref_loss) == ML_OK, "loss");
        CHECK(fabs(loss - ref_loss) <= 1e-5 * fabs(ref_loss), "mambaout_test: loss %.8f, timm %.8f", loss, ref_loss);
        double worst = 0;
        compare_whole("mambaout_test", &tr.m, tr.t.gdata, &f, &worst);
        printf("mambaout_test B%d %dx%d against timm (autograd, float64): loss %.8f vs %.8f, worst grad rel err %.3g\n",
               B, H, W, loss, ref_loss, worst);
        if (exe) { /* the command-line view of the same */
            char cmd[2048], out[600];
            snprintf(out, sizeof out, "%s/test_model_train_grads.safetensors", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
            snprintf(cmd, sizeof cmd,
                     "'%s' grad --model mambaout_test:num_classes=10 --weights '%s' --input '%s' --ignore-unexpected "
                     "--output '%s' >/dev/null",
                     exe, path, path, out);
            CHECK(system(cmd) == 0, "mixerlab grad failed: %s", cmd);
            st_file g;
            if (st_open(&g, out) == ML_OK) {
                float cl = 0;
                CHECK(st_load(&g, "loss", 1, (int64_t[]){1}, &cl) == ML_OK && fabs(cl - ref_loss) <= 1e-5 * ref_loss,
                      "mixerlab grad: loss %.8f vs %.8f", cl, ref_loss);
                CHECK(g.count == tr.m.n_params + 1, "mixerlab grad wrote %d tensors, not %d", g.count, tr.m.n_params + 1);
                float **cg = malloc((size_t)tr.m.n_params * sizeof *cg);
                for (int i = 0; i < tr.m.n_params; i++) {
                    cg[i] = calloc(tr.m.params[i].numel, sizeof **cg);
                    CHECK(st_load(&g, tr.m.params[i].name, tr.m.params[i].ndim, tr.m.params[i].shape, cg[i]) == ML_OK,
                          "mixerlab grad: %s", ml_last_error());
                }
                double w2 = 0;
                compare_whole("mixerlab grad", &tr.m, cg, &f, &w2);
                for (int i = 0; i < tr.m.n_params; i++)
                    free(cg[i]);
                free(cg);
                st_close(&g);
                printf("mixerlab grad on the same: worst rel err %.3g\n", w2);
            } else {
                CHECK(0, "mixerlab grad output: %s", ml_last_error());
            }
            remove(out);
        }
    }
    if (x)
        teardown(&tr);
    free(x), free(labels);
    st_close(&f);
}

static void test_golden_femto(const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, "%s/grads/model_mambaout_femto.safetensors", dir);
    st_file f;
    if (st_open(&f, path) != ML_OK) {
        CHECK(0, "fixture: %s", ml_last_error());
        return;
    }
    int *labels = NULL, B, H, W;
    float *x = fixture_batch(&f, &labels, 1000, &B, &H, &W);
    trained tr;
    if (x && setup(&tr, "mambaout_femto", B, H, W)) {
        gen_weights(&tr.m);
        model_forward_train(&tr.t, x, NULL);
        const float loss = model_backward(&tr.t, labels, 0.0f, NULL);
        float ref_loss = 0;
        CHECK(st_load(&f, "loss", 1, (int64_t[]){1}, &ref_loss) == ML_OK, "loss");
        CHECK(fabs(loss - ref_loss) <= 1e-5 * fabs(ref_loss), "femto: loss %.8f, timm %.8f", loss, ref_loss);
        double worst = 0;
        size_t positions = 0;
        for (int i = 0; i < tr.m.n_params; i++) {
            char n[3][PARAM_NAME_MAX + 48];
            snprintf(n[0], sizeof n[0], "idx.%s", tr.m.params[i].name);
            snprintf(n[1], sizeof n[1], "grad.%s", tr.m.params[i].name);
            snprintf(n[2], sizeof n[2], "maxabs.%s", tr.m.params[i].name);
            const st_tensor *ti = st_find(&f, n[0]), *tg = st_find(&f, n[1]);
            float maxabs = 0;
            if (!ti || !tg || ti->numel != tg->numel || st_load(&f, n[2], 1, (int64_t[]){1}, &maxabs) != ML_OK) {
                CHECK(0, "femto fixture: no samples of %s", tr.m.params[i].name);
                continue;
            }
            int *idx = malloc(ti->numel * sizeof *idx);
            float *ref = malloc(tg->numel * sizeof *ref);
            const int numel = tr.m.params[i].numel > 0x7fffffff ? 0x7fffffff : (int)tr.m.params[i].numel;
            if (st_read_labels(&f, ti, numel, idx) == ML_OK && st_read_f32(&f, tg, ref) == ML_OK) {
                double md = 0, mr = 0;
                for (size_t k = 0; k < ti->numel; k++) {
                    const double d = fabs((double)tr.t.gdata[i][idx[k]] - ref[k]);
                    md = d > md || isnan(d) ? d : md;
                    mr = fabs(ref[k]) > mr ? fabs(ref[k]) : mr;
                }
                const double e = maxabs > 0 ? md / maxabs : INFINITY;
                CHECK(e <= TOL && fabs(mr - maxabs) <= 1e-6 * maxabs, "femto: %s rel err %.3g (max|ref| %g)",
                      tr.m.params[i].name, e, maxabs);
                worst = e > worst ? e : worst;
                positions += ti->numel;
            } else {
                CHECK(0, "femto fixture: %s", ml_last_error());
            }
            free(idx), free(ref);
        }
        printf("mambaout_femto B%d %dx%d against timm: loss %.8f vs %.8f, worst rel err %.3g over %zu sampled "
               "positions of %d tensors\n",
               B, H, W, loss, ref_loss, worst, positions, tr.m.n_params);
    }
    if (x)
        teardown(&tr);
    free(x), free(labels);
    st_close(&f);
}

/* ---- every skeleton part and every mixer: central differences of the float32 loss ---- */

static double g_worst_fd = 0;

/* Along a random direction d over the parameters of one part (part < 0: all), with
 * d_k = ±(|θ_k| + 0.02): (L(θ + εd) − L(θ − εd)) / 2ε against <grad, d>. */
static void fd_part(trained *tr, const float *x, const int *labels, int part, rng_state *r, const char *what)
{
    model *m = &tr->m;
    const float eps = 2e-3f;
    double dot = 0;
    float **save = calloc((size_t)m->n_params, sizeof *save);
    float **dir = calloc((size_t)m->n_params, sizeof *dir);
    int any = 0;
    for (int i = 0; i < m->n_params; i++) {
        if (part >= 0 && m->params[i].part != part)
            continue;
        any = 1;
        const size_t n = m->params[i].numel;
        save[i] = malloc(n * sizeof **save);
        dir[i] = malloc(n * sizeof **dir);
        memcpy(save[i], m->pdata[i], n * sizeof **save);
        for (size_t k = 0; k < n; k++) {
            dir[i][k] = (rng_uniform(r) < 0.5 ? -1.0f : 1.0f) * (fabsf(save[i][k]) + 0.02f);
            dot += (double)tr->t.gdata[i][k] * dir[i][k];
        }
    }
    double lp = 0, lm = 0;
    for (int sgn = 0; any && sgn < 2; sgn++) {
        for (int i = 0; i < m->n_params; i++)
            if (dir[i])
                for (size_t k = 0; k < m->params[i].numel; k++)
                    m->pdata[i][k] = save[i][k] + (sgn ? -eps : eps) * dir[i][k];
        *(sgn ? &lm : &lp) = loss_of(tr, x, labels);
    }
    for (int i = 0; i < m->n_params; i++) {
        if (save[i])
            memcpy(m->pdata[i], save[i], m->params[i].numel * sizeof **save);
        free(save[i]), free(dir[i]);
    }
    free(save), free(dir);
    if (!any)
        return;
    const double fd = (lp - lm) / (2.0 * eps), e = fabs(fd - dot) / fmax(fabs(dot), 1e-3);
    /* 2e-2: the loss is float32 (steps of ~2e-7 near 2) and a step moves it by 1e-3..1e-2, so its
     * rounding alone is up to ~1e-3 relative, plus the O(eps^2) curvature of a deep net; the worst
     * measured is 3.9e-3, and a dropped gradient term (d_pos, the merge backward) gives 0.1 to 1e3 */
    CHECK(e <= 2e-2, "%s part %d: directional derivative %.6g, central difference %.6g (rel %.3g)", what, part, dot,
          fd, e);
    g_worst_fd = e > g_worst_fd ? e : g_worst_fd;
}

static void fd_model(const char *name, int B, int H, int W, uint64_t seed)
{
    trained tr;
    if (!setup(&tr, name, B, H, W)) {
        teardown(&tr);
        return;
    }
    /* variance-preserving weights (timm's .02 init would leave the stem's gradient near the float32 noise) */
    gen_weights(&tr.m);
    rng_state r;
    rng_seed(&r, seed);
    const size_t n = (size_t)B * 3 * H * W;
    float *x = malloc(n * sizeof *x);
    int *labels = malloc((size_t)B * sizeof *labels);
    rng_fill_normal(&r, x, n, 1.0);
    for (int b = 0; b < B; b++)
        labels[b] = (int)(rng_uniform(&r) * tr.m.cfg.num_classes);
    model_train_zero_grads(&tr.t);
    model_forward_train(&tr.t, x, NULL);
    model_backward(&tr.t, labels, 0.0f, NULL);
    for (int part = 0; part <= tr.m.cfg.num_stages + 1; part++)
        fd_part(&tr, x, labels, part, &r, name);
    free(x), free(labels);
    teardown(&tr);
}

static void test_parts_and_mixers(void)
{
    fd_model("vmamba_test:num_classes=7", 2, 35, 33, 11);  /* PATCH stem with norm, MERGE (odd grid), NORM_LINEAR */
    fd_model("vim_test:num_classes=5", 2, 48, 40, 12);     /* class token, position embedding, RMSNorm TOKEN head */
    fd_model("vim_test:num_classes=5,mixer=attn", 1, 32, 48, 13);
    static const char *const mixers[] = {"dwconv", "identity", "ssm", "ssm_bidir", "ssm_2d", "attn", "attn_causal"};
    for (size_t i = 0; i < sizeof mixers / sizeof mixers[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "mambaout_test:num_classes=6,mixer=%s%s", mixers[i],
                 !strncmp(mixers[i], "attn", 4) ? ",head_size=8" : "");
        fd_model(name, 2, 37, 41, 20 + i);
    }
    printf("every part of vmamba_test, vim_test and mambaout_test with each mixer: worst rel err of the directional "
           "derivative against central differences %.3g (tolerance 0.02)\n",
           g_worst_fd);
}

/* The sequence skeleton with each mixer: random tokens, a label at 40% of the positions (-1 elsewhere). */
static void fd_seq(const char *name, int B, int L, uint64_t seed)
{
    trained tr;
    if (!setup(&tr, name, B, 1, L)) {
        teardown(&tr);
        return;
    }
    gen_weights(&tr.m);
    rng_state r;
    rng_seed(&r, seed);
    const size_t n = (size_t)B * L;
    float *x = malloc(n * sizeof *x);
    int *labels = malloc(n * sizeof *labels);
    for (size_t i = 0; i < n; i++) {
        x[i] = (float)(rng_next_u64(&r) % (uint64_t)tr.m.cfg.vocab);
        labels[i] = rng_uniform(&r) < 0.4 ? (int)(rng_next_u64(&r) % (uint64_t)tr.m.cfg.num_classes) : -1;
    }
    labels[n - 1] = 0;
    model_train_zero_grads(&tr.t);
    model_forward_train(&tr.t, x, NULL);
    model_backward(&tr.t, labels, 0.0f, NULL);
    for (int part = 0; part <= tr.m.cfg.num_stages + 1; part++)
        fd_part(&tr, x, labels, part, &r, name);
    free(x), free(labels);
    teardown(&tr);
}

static void test_seq_mixers(void)
{
    const double before = g_worst_fd;
    g_worst_fd = 0;
    static const char *const mixers[] = {"dwconv", "identity", "ssm", "ssm_bidir", "attn", "attn_causal"};
    for (size_t i = 0; i < sizeof mixers / sizeof mixers[0]; i++) {
        char name[128];
        snprintf(name, sizeof name, "seq:dim=12,depth=2,vocab=6,num_classes=5,mixer=%s%s%s", mixers[i],
                 !strncmp(mixers[i], "attn", 4) ? ",head_size=4,pos_embed=1" : "", i == 1 ? ",norm=rmsnorm" : "");
        fd_seq(name, 2, 29, 40 + i);
    }
    fd_seq("seq:dim=10,depth=1,vocab=7,tie=1,mixer=ssm,pos_embed=1,max_len=40", 3, 21, 50);
    printf("seq with each mixer (tied, position embedding, RMSNorm): worst rel err of the directional derivative "
           "against central differences %.3g (tolerance 0.02)\n",
           g_worst_fd);
    g_worst_fd = fmax(before, g_worst_fd);
}

/* The sequence skeleton against its float64 PyTorch restatement (scripts/make_seq_grad_fixtures.py):
 * the loss over the labelled positions and every gradient; `mixerlab grad` on the first. */
static void test_golden_seq(const char *dir, const char *exe)
{
    static const char *const cases[] = {"dwconv_pos", "ssm_tied", "attn_causal_pos"};
    double worst = 0;
    for (size_t q = 0; q < 3; q++) {
        char path[600];
        snprintf(path, sizeof path, "%s/grads/seq_%s.safetensors", dir, cases[q]);
        st_file f;
        if (st_open(&f, path) != ML_OK) {
            CHECK(0, "fixture: %s", ml_last_error());
            continue;
        }
        const char *spec = st_meta(&f, "model");
        const st_tensor *in = st_find(&f, "input"), *lt = st_find(&f, "labels");
        CHECK(spec && in && lt && in->ndim == 2, "%s: model, input, labels", path);
        if (!spec || !in || !lt || in->ndim != 2) {
            st_close(&f);
            continue;
        }
        const int B = (int)in->shape[0], L = (int)in->shape[1];
        int *tok = malloc(in->numel * sizeof *tok), *labels = malloc(lt->numel * sizeof *labels);
        float *x = malloc(in->numel * sizeof *x), ref_loss = 0;
        const int64_t one[1] = {1};
        CHECK(st_read_ints(&f, in, 0, 1 << 20, "a token", tok) == ML_OK &&
                  st_read_ints(&f, lt, -1, 1 << 20, "a class", labels) == ML_OK &&
                  st_load(&f, "loss", 1, one, &ref_loss) == ML_OK,
              "%s: %s", path, ml_last_error());
        for (size_t i = 0; i < in->numel; i++)
            x[i] = (float)tok[i];
        trained tr;
        if (setup(&tr, spec, B, 1, L)) {
            CHECK(model_load(&tr.m, &f, 1) == ML_OK, "%s: %s", path, ml_last_error());
            model_train_zero_grads(&tr.t);
            model_forward_train(&tr.t, x, NULL);
            const float loss = model_backward(&tr.t, labels, 0.0f, NULL);
            CHECK(fabsf(loss - ref_loss) <= 1e-5f * fabsf(ref_loss), "%s: loss %.8f, PyTorch %.8f", cases[q], loss,
                  ref_loss);
            compare_whole(cases[q], &tr.m, tr.t.gdata, &f, &worst);
            /* the inference forward gives the training forward's logits */
            model_forward(&tr.m, x, NULL, NULL);
            double *ref = malloc(tr.m.n_logits * sizeof *ref);
            for (size_t i = 0; i < tr.m.n_logits; i++)
                ref[i] = tr.m.logits[i];
            const double e = rel_err(tr.t.logits, ref, tr.m.n_logits);
            CHECK(e <= 1e-5, "%s: training forward logits differ from the forward's (rel %.3g)", cases[q], e);
            free(ref);
            if (exe && q == 0) {
                char out[700], cmd[2400];
                snprintf(out, sizeof out, "%s/test_model_train_seq.safetensors",
                         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
                snprintf(cmd, sizeof cmd, "'%s' grad --model '%s' --weights '%s' --input '%s' --output '%s' "
                                          "--ignore-unexpected >/dev/null", exe, spec, path, path, out);
                CHECK(system(cmd) == 0, "mixerlab grad failed: %s", cmd);
                st_file g;
                float cl = 0;
                if (st_open(&g, out) == ML_OK) {
                    CHECK(st_load(&g, "loss", 1, one, &cl) == ML_OK && fabsf(cl - ref_loss) <= 1e-5f * ref_loss,
                          "mixerlab grad (seq): loss %.8f vs %.8f", cl, ref_loss);
                    float **cg = calloc((size_t)tr.m.n_params, sizeof *cg);
                    for (int i = 0; i < tr.m.n_params; i++) {
                        cg[i] = malloc(tr.m.params[i].numel * sizeof **cg);
                        CHECK(st_load(&g, tr.m.params[i].name, tr.m.params[i].ndim, tr.m.params[i].shape, cg[i]) ==
                                  ML_OK,
                              "mixerlab grad (seq): %s", ml_last_error());
                    }
                    compare_whole("mixerlab grad (seq)", &tr.m, cg, &f, &worst);
                    for (int i = 0; i < tr.m.n_params; i++)
                        free(cg[i]);
                    free(cg);
                    st_close(&g);
                } else
                    CHECK(0, "mixerlab grad output: %s", ml_last_error());
                remove(out);
            }
        }
        teardown(&tr);
        free(tok), free(labels), free(x);
        st_close(&f);
    }
    printf("seq (dwconv + positions, tied ssm, causal attention) against PyTorch float64: worst rel err %.3g "
           "(tolerance %.0e)\n",
           worst, TOL);
}

/* ---- the training forward, determinism, drop path ---- */

static void test_forward_and_bits(void)
{
    static const char *const names[] = {"mambaout_test", "vmamba_test", "vim_test"};
    for (size_t q = 0; q < 3; q++) {
        trained tr;
        if (!setup(&tr, names[q], 2, 40, 40)) {
            teardown(&tr);
            continue;
        }
        model *m = &tr.m;
        model_init_random(m, 5);
        rng_state r;
        rng_seed(&r, 6);
        const size_t n = (size_t)2 * 3 * 40 * 40, nl = m->n_logits;
        float *x = malloc(n * sizeof *x), *g1 = malloc(m->weights.used);
        rng_fill_normal(&r, x, n, 1.0);
        int labels[2] = {3, 998};
        model_forward(m, x, NULL, NULL);
        model_forward_train(&tr.t, x, NULL);
        double *ref = malloc(nl * sizeof *ref);
        for (size_t i = 0; i < nl; i++)
            ref[i] = m->logits[i];
        const double e = rel_err(tr.t.logits, ref, nl);
        CHECK(e <= 1e-5, "%s: training forward logits differ from the forward's (rel %.3g)", names[q], e);
        model_backward(&tr.t, labels, 0.1f, NULL);
        memcpy(g1, tr.t.grad_arena.base, m->weights.used);
        model_train_zero_grads(&tr.t);
        model_forward_train(&tr.t, x, NULL);
        model_backward(&tr.t, labels, 0.1f, NULL);
        CHECK(memcmp(g1, tr.t.grad_arena.base, m->weights.used) == 0, "%s: two backwards differ", names[q]);
        /* accumulation: a second backward without zeroing doubles every gradient */
        model_forward_train(&tr.t, x, NULL);
        model_backward(&tr.t, labels, 0.1f, NULL);
        /* (to rounding: a reduction over rows adds each row to the running gradient) */
        const float *g2 = (const float *)tr.t.grad_arena.base;
        double md = 0, mg = 0;
        for (size_t i = 0; i < m->weights.used / sizeof(float); i++) {
            md = fmax(md, fabs((double)g2[i] - 2.0 * g1[i]));
            mg = fmax(mg, fabs((double)g1[i]));
        }
        CHECK(md <= 1e-6 * mg, "%s: gradients do not accumulate (max|g2 - 2 g1| %.3g, max|g1| %.3g)", names[q], md, mg);
        printf("%s: training forward vs forward rel %.3g; backward bit-identical run to run; accumulates\n", names[q],
               e);
        free(x), free(g1), free(ref);
        teardown(&tr);
    }
}

static void test_drop_path_scales(void)
{
    trained tr;
    if (!setup(&tr, "mambaout_test", 64, 32, 32)) {
        teardown(&tr);
        return;
    }
    const int nb = model_block_count(&tr.m);
    CHECK(nb == 5, "mambaout_test has %d blocks, not 5", nb);
    float *s = malloc((size_t)nb * 64 * sizeof *s);
    rng_state r;
    rng_seed(&r, 9);
    model_drop_path_scales(&tr.m, 0.4, &r, s);
    for (int k = 0; k < nb; k++) {
        const double rate = 0.4 * k / (nb - 1), keep = 1.0 - rate;
        int dropped = 0, bad = 0;
        for (int b = 0; b < 64; b++) {
            const float v = s[k * 64 + b];
            dropped += v == 0.0f;
            bad += v != 0.0f && v != (float)(1.0 / keep);
        }
        CHECK(!bad, "block %d: a scale other than 0 or 1/keep", k);
        CHECK(k > 0 || dropped == 0, "block 0 (rate 0) dropped a sample");
        CHECK(k < nb - 1 || (dropped > 10 && dropped < 42), "last block (rate 0.4): %d of 64 dropped", dropped);
    }
    free(s);
    teardown(&tr);
}

/* Data parallel (model_shards): the batch split into 2 and 3 parts (3 uneven: 5 = 2 + 2 + 1) gives the
 * plain trainer's loss and gradients to float rounding, with drop path on the image skeleton and
 * unlabelled rows (-1) spread unevenly over the parts of the sequence one; the same split twice gives
 * the same bits; and a weight changed in the model is what every part reads. */
static void shards_case(const char *name, int B, int H, int W, int seq)
{
    trained tr;
    if (!setup(&tr, name, B, H, W)) {
        teardown(&tr);
        return;
    }
    model *m = &tr.m;
    model_init_random(m, 11);
    rng_state r;
    rng_seed(&r, 12);
    const size_t nin = (size_t)B * model_input_floats(m), rows = model_logit_rows(m);
    const size_t nf = m->weights.used / sizeof(float);
    float *x = malloc(nin * sizeof *x), *g_ref = malloc(m->weights.used), *g_a = malloc(m->weights.used);
    int *labels = malloc(rows * sizeof *labels);
    if (seq)
        for (size_t i = 0; i < nin; i++)
            x[i] = (float)(rng_next_u64(&r) % (uint64_t)m->cfg.vocab);
    else
        rng_fill_normal(&r, x, nin, 1.0);
    for (size_t i = 0; i < rows; i++) /* the sequence's first sample mostly unasked: parts differ in counts */
        labels[i] = seq && (i < rows / (size_t)B ? i % 5 : rng_uniform(&r) < 0.3)
                        ? -1
                        : (int)(rng_next_u64(&r) % (uint64_t)m->cfg.num_classes);
    labels[rows - 1] = 1;
    const int nb = model_block_count(m);
    float *drop = NULL;
    if (!seq) {
        drop = malloc((size_t)nb * (size_t)B * sizeof *drop);
        model_drop_path_scales(m, 0.5, &r, drop);
    }
    model_train_zero_grads(&tr.t);
    model_forward_train(&tr.t, x, drop);
    const float l_ref = model_backward(&tr.t, labels, 0.1f, drop);
    memcpy(g_ref, tr.t.grad_arena.base, m->weights.used);
    for (int n = 2; n <= 3; n++) {
        model_shards sh;
        ml_status st = model_shards_init(&sh, m, n);
        CHECK(st == ML_OK, "%s: %d shards: %s", name, n, ml_last_error());
        if (st != ML_OK)
            continue;
        const float l1 = model_shards_step(&sh, x, labels, 0.1f, drop);
        memcpy(g_a, model_shards_grads(&sh), m->weights.used);
        double md = 0, mg = 0;
        for (size_t i = 0; i < nf; i++) {
            md = fmax(md, fabs((double)g_a[i] - (double)g_ref[i]));
            mg = fmax(mg, fabs((double)g_ref[i]));
        }
        CHECK(md <= 2e-5 * mg, "%s, %d shards: gradients differ from one batch's (max|d| %.3g, max|g| %.3g)", name, n,
              md, mg);
        CHECK(fabs((double)l1 - l_ref) <= 1e-5 * fabs((double)l_ref), "%s, %d shards: loss %.9g, one batch's %.9g",
              name, n, l1, l_ref);
        const float l2 = model_shards_step(&sh, x, labels, 0.1f, drop);
        CHECK(l2 == l1 && memcmp(g_a, model_shards_grads(&sh), m->weights.used) == 0,
              "%s, %d shards: two steps on the same batch differ", name, n);
        /* the parts read the model's weights, not copies */
        float *w = (float *)m->weights.base;
        const float w0 = w[nf / 2];
        w[nf / 2] = w0 + 0.25f;
        const float l3 = model_shards_step(&sh, x, labels, 0.1f, drop);
        w[nf / 2] = w0;
        CHECK(l3 != l1 || memcmp(g_a, model_shards_grads(&sh), m->weights.used) != 0,
              "%s, %d shards: a changed weight changed nothing", name, n);
        printf("%s, %d shards: gradients within %.2g of one batch's (max|g| %.3g), loss %.9g vs %.9g; repeatable\n",
               name, n, mg > 0 ? md / mg : 0.0, mg, l1, l_ref);
        model_shards_free(&sh);
    }
    model_shards sh;
    CHECK(model_shards_init(&sh, m, B + 1) != ML_OK, "%s: %d shards of a batch of %d accepted", name, B + 1, B);
    free(x), free(g_ref), free(g_a), free(labels), free(drop);
    teardown(&tr);
}

static void test_shards(void)
{
    shards_case("mambaout_test", 5, 32, 32, 0);
    shards_case("seq:mixer=ssm,dim=16,depth=2", 3, 1, 40, 1);
}

/* init=torch (the sequence skeleton, model_init_random): PyTorch's default for every nn.Linear and nn.Conv
 * weight and bias, U(±1/√fan_in); nn.Embedding's N(0, 1); the rest as timm's rule and the mixers' own. The
 * draws are checked by their range and spread, the default (init=timm) by its trunc_normal(.02) and zeros. */
static void moments(const float *d, size_t n, double *mean, double *sd, double *amax)
{
    double s = 0, q = 0, a = 0;
    for (size_t i = 0; i < n; i++)
        s += d[i], a = fmax(a, fabs(d[i]));
    for (size_t i = 0; i < n; i++)
        q += (d[i] - s / n) * (d[i] - s / n);
    *mean = s / n, *sd = sqrt(q / n), *amax = a;
}

static void test_seq_init(void)
{
    static const char *const names[] = {"seq:mixer=attn,head_size=16,pos_embed=1,init=torch",
                                        "seq:mixer=dwconv,init=torch", "seq:mixer=ssm,pos_embed=1"};
    for (int q = 0; q < 3; q++) {
        trained tr;
        if (!setup(&tr, names[q], 2, 1, 40)) {
            teardown(&tr);
            continue;
        }
        model *m = &tr.m;
        const int torch = q < 2;
        model_init_random(m, 9);
        int linears = 0;
        for (int i = 0; i < m->n_params; i++) {
            const model_param *p = &m->params[i];
            const float *d = m->pdata[i];
            double mean, sd, amax;
            moments(d, p->numel, &mean, &sd, &amax);
            const char *leaf = strrchr(p->name, '.') ? strrchr(p->name, '.') + 1 : p->name;
            const int fc = strstr(p->name, "fc1.") || strstr(p->name, "fc2.") || strstr(p->name, "qkv.") ||
                           strstr(p->name, "proj.") || strstr(p->name, "conv.") || !strncmp(p->name, "head.", 5);
            if (!strcmp(p->name, "embed.weight")) {
                CHECK(torch ? fabs(sd - 1.0) < 0.1 : fabs(sd - 0.02) < 0.003, "%s: embed.weight sd %.4f", names[q], sd);
            } else if (!strcmp(p->name, "pos_embed")) {
                CHECK(fabs(sd - 0.02) < 0.002, "%s: pos_embed sd %.4f (trunc_normal .02 under both)", names[q], sd);
            } else if (fc && !strstr(p->name, "mixer.dt_") && !strstr(p->name, "x_proj")) {
                const model_param *w = !strcmp(leaf, "bias") ? p - 1 : p;
                const double bound = 1.0 / sqrt((double)(w->numel / (size_t)w->shape[0]));
                if (torch) { /* U(±b): |x| ≤ b, sd = b/√3 */
                    CHECK(amax <= bound && amax > 0.8 * bound && fabs(sd - bound / sqrt(3.0)) < 0.25 * bound,
                          "%s: %s max %.4f sd %.4f, want U(±%.4f)", names[q], p->name, amax, sd, bound);
                    linears++;
                } else {
                    CHECK(!strcmp(leaf, "bias") ? amax == 0 : fabs(sd - 0.02) < 0.004, "%s: %s sd %.4f max %.4f",
                          names[q], p->name, sd, amax);
                }
            } else if (strstr(p->name, "norm.")) {
                CHECK(sd == 0 && fabs(mean - (!strcmp(leaf, "weight") ? 1.0 : 0.0)) == 0, "%s: %s is not %s",
                      names[q], p->name, !strcmp(leaf, "weight") ? "ones" : "zeros");
            } else if (!strcmp(leaf, "A_log")) { /* Mamba's init under both */
                double e = 0;
                for (size_t k = 0; k < p->numel; k++)
                    e = fmax(e, fabs(d[k] - log((double)(k % (size_t)p->shape[1] + 1))));
                CHECK(e < 1e-6, "%s: A_log is not log(n+1) (%.3g)", names[q], e);
            }
        }
        CHECK(!torch || linears >= 10, "%s: only %d linear or conv tensors checked", names[q], linears);
        teardown(&tr);
    }
    model_config cfg;
    CHECK(model_config_from_name("seq:init=jax", &cfg) != ML_OK && strstr(ml_last_error(), "want timm or torch"),
          "init=jax accepted or unclear: %s", ml_last_error());
    CHECK(model_config_from_name("mambaout_femto:init=torch", &cfg) != ML_OK &&
              strstr(ml_last_error(), "unknown override key 'init'"),
          "init on an image model accepted or unclear: %s", ml_last_error());
    printf("seq init=torch: PyTorch's defaults (U(±1/sqrt(fan_in)), embedding N(0,1)); init=timm unchanged\n");
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/fixtures";
    const char *exe = argc > 2 ? argv[2] : NULL;
    printf("threads: %d\n", omp_get_max_threads());
    test_golden_test_config(dir, exe);
    test_golden_femto(dir);
    test_forward_and_bits();
    test_drop_path_scales();
    test_shards();
    test_parts_and_mixers();
    test_golden_seq(dir, exe);
    test_seq_mixers();
    test_seq_init();
    if (g_failures) {
        fprintf(stderr, "test_model_train: %d check(s) failed\n", g_failures);
        return 1;
    }
    printf("test_model_train: all checks passed\n");
    return 0;
}
