/* Sweep specs (good and bad, errors with file:line), their expansion, and the
 * timer's statistics and stopping rule on synthetic sample streams. */
#include "harness/spec.h"
#include "harness/timer.h"
#include "test_util.h"

#include <unistd.h>

static char dir[256];

static const char *write_spec(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s.ini", dir, name);
    FILE *fp = fopen(path, "w");
    fputs(text, fp);
    fclose(fp);
    return path;
}

static const char good[] = "[experiment]\n"
                           "name = mixer_latency_vs_tokens      ; comment\n"
                           "description = every mixer alone\n"
                           "[grid]\n"
                           "level = mixer\n"
                           "mixer = dwconv, ssm, attn\n"
                           "tokens = 196, 784, 3136, 1000\n"
                           "width = 384\n"
                           "batch = 1, 8\n"
                           "device = cpu\n"
                           "threads = 2\n"
                           "[measure]\n"
                           "metrics = params, macs, latency, memory\n"
                           "warmup_s = 0.2\nmin_samples = 10\nmin_time_s = 0.5\nmax_time_s = 10\n";

static void expect_bad(const char *name, const char *text, const char *needle);

static void test_good(void)
{
    sweep_spec s;
    const char *p = write_spec("good", good);
    CHECK(spec_parse(p, &s) == ML_OK, "good spec: %s", ml_last_error());
    CHECK(!strcmp(s.name, "mixer_latency_vs_tokens") && s.level == LEVEL_MIXER && s.n_mixers == 3 && s.n_tokens == 4 &&
              s.n_batches == 2 && s.policy.min_samples == 10 && s.policy.max_time_s == 10,
          "good spec fields");
    sweep_config *c;
    int n;
    CHECK(spec_expand(&s, &c, &n) == ML_OK && n == 3 * 4 * 2, "24 configs, got %d", n);
    /* documented order: mixer outermost, then tokens, then batch */
    CHECK(!strcmp(c[0].mixer, "dwconv") && c[0].tokens == 196 && c[0].batch == 1 && c[1].batch == 8 &&
              c[2].tokens == 784 && !strcmp(c[8].mixer, "ssm"),
          "expansion order");
    CHECK(c[0].grid_h == 14 && c[0].grid_w == 14 && c[6].tokens == 1000 && c[6].grid_h == 1 && c[6].grid_w == 1000,
          "square grid when L is a perfect square, else 1 x L");
    int distinct = 1;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            distinct &= strcmp(c[i].hash, c[j].hash) != 0;
    CHECK(distinct, "config hashes are distinct");
    sweep_config *c2;
    int n2;
    spec_expand(&s, &c2, &n2);
    CHECK(n2 == n && !strcmp(c2[5].hash, c[5].hash), "hashes are stable");
    free(c), free(c2);

    /* level model: the mixer becomes an override of the model */
    p = write_spec("model", "[experiment]\nname = m\n[grid]\nmodel = mambaout_femto, mambaout_tiny:kernel=5\n"
                            "mixer = dwconv, identity\nresolution = 64, 96\n");
    CHECK(spec_parse(p, &s) == ML_OK, "model spec: %s", ml_last_error());
    CHECK(spec_expand(&s, &c, &n) == ML_OK && n == 8, "8 model configs");
    CHECK(!strcmp(c[0].model, "mambaout_femto:mixer=dwconv") && !strcmp(c[7].model, "mambaout_tiny:kernel=5,mixer=identity"),
          "mixer as override: '%s' '%s'", c[0].model, c[7].model);
    free(c);
    /* a model with several overrides: key=value items after it are its own */
    p = write_spec("multi", "[experiment]\nname = m\n[grid]\nmodel = mambaout_test:head_size=8,num_classes=10, "
                            "mambaout_femto, vim_test:d_state=4, kernel=3\nresolution = 64\n");
    CHECK(spec_parse(p, &s) == ML_OK && s.n_models == 3, "multi-override spec: %s (%d models)", ml_last_error(),
          s.n_models);
    CHECK(!strcmp(s.models[0], "mambaout_test:head_size=8,num_classes=10") && !strcmp(s.models[1], "mambaout_femto") &&
              !strcmp(s.models[2], "vim_test:d_state=4,kernel=3"),
          "multi-override models: '%s' '%s' '%s'", s.models[0], s.models[1], s.models[2]);
    expect_bad("orphan", "[experiment]\nname = m\n[grid]\nmodel = kernel=3, mambaout_femto\nresolution = 64\n",
               "unknown model 'kernel=3'");

    /* precision: recorded per row; CPU rows stay fp32 whatever the spec says, so their hashes do not change */
    p = write_spec("prec", "[experiment]\nname = m\n[grid]\nmodel = mambaout_test\nresolution = 32\n"
                           "device = cpu, cuda\n");
    CHECK(spec_parse(p, &s) == ML_OK && spec_expand(&s, &c, &n) == ML_OK && n == 2, "precision spec: %s",
          ml_last_error());
    CHECK(!strcmp(c[0].precision, "fp32") && !strcmp(c[1].precision, "fp32"), "fp32 by default");
    p = write_spec("prec2", "[experiment]\nname = m\n[grid]\nmodel = mambaout_test\nresolution = 32\n"
                            "device = cpu, cuda\nprecision = tf32\n");
    CHECK(spec_parse(p, &s) == ML_OK && spec_expand(&s, &c2, &n2) == ML_OK && n2 == 2, "tf32 spec: %s",
          ml_last_error());
    CHECK(!strcmp(c2[0].precision, "fp32") && !strcmp(c2[1].precision, "tf32"), "tf32 on the cuda row only");
    CHECK(!strcmp(c[0].hash, c2[0].hash) && strcmp(c[1].hash, c2[1].hash), "only the cuda row's hash changes");
    free(c2);
    p = write_spec("prec3", "[experiment]\nname = m\n[grid]\nmodel = mambaout_test\nresolution = 32\n"
                            "device = cpu, cuda\nprecision = pedantic\n");
    CHECK(spec_parse(p, &s) == ML_OK && spec_expand(&s, &c2, &n2) == ML_OK && n2 == 2, "pedantic spec: %s",
          ml_last_error());
    CHECK(!strcmp(c2[0].precision, "fp32") && !strcmp(c2[1].precision, "pedantic"), "pedantic on the cuda row only");
    CHECK(!strcmp(c[0].hash, c2[0].hash) && strcmp(c[1].hash, c2[1].hash), "pedantic: only the cuda row's hash changes");
    free(c), free(c2);
}

static void expect_bad(const char *name, const char *text, const char *needle)
{
    sweep_spec s;
    const char *p = write_spec(name, text);
    ml_status st = spec_parse(p, &s);
    CHECK(st == ML_ERR_USAGE && strstr(ml_last_error(), needle), "%s: status %d, message '%s' lacks '%s'", name, st,
          ml_last_error(), needle);
}

static void test_bad(void)
{
    expect_bad("section", "[experiment]\nname = a\n[gird]\nlevel = model\n", "section.ini:4: key 'level' is in an unknown section [gird]");
    expect_bad("key", "[experiment]\nname = a\n[grid]\nlevels = model\n", "key.ini:4: unknown key 'levels' in [grid]");
    expect_bad("empty", "[experiment]\nname = a\n[grid]\nmixer =\n", "empty.ini:4: mixer: empty list");
    expect_bad("emptyitem", "[experiment]\nname = a\n[grid]\nmixer = dwconv, , ssm\n", "emptyitem.ini:4: mixer: empty");
    expect_bad("number", "[experiment]\nname = a\n[grid]\nbatch = 1, two\n", "number.ini:4: batch: 'two' is not an integer");
    expect_bad("range", "[experiment]\nname = a\n[grid]\nresolution = 0\n", "range.ini:4: resolution: 0 is out of range");
    expect_bad("mixer", "[experiment]\nname = a\n[grid]\nmixer = mamba\n", "mixer.ini:4: mixer: unknown mixer 'mamba'");
    expect_bad("model", "[experiment]\nname = a\n[grid]\nmodel = resnet\n", "model.ini:4: model: unknown model 'resnet'");
    expect_bad("name", "[experiment]\nname = My Exp\n", "name.ini:2: name: 'My Exp' must be [a-z0-9_]+");
    expect_bad("dup", "[experiment]\nname = a\nname = b\n", "dup.ini:3: key 'name' given twice");
    expect_bad("outside", "name = a\n", "outside.ini:1: key 'name' outside a section");
    expect_bad("metric", "[experiment]\nname = a\n[measure]\nmetrics = latency, flops\n", "metric.ini:4: metrics: unknown metric 'flops'");
    expect_bad("maxtime", "[experiment]\nname = a\n[measure]\nmax_time_s = -1\n", "maxtime.ini:4: max_time_s: '-1' is not a number");
    expect_bad("noline", "[experiment]\nname = a\njust words\n", "noline.ini:3:");
    expect_bad("noname", "[grid]\nlevel = model\n", "[experiment] name is required");
    expect_bad("combo", "[experiment]\nname = a\n[grid]\nmodel = mambaout_femto\nresolution = 64\ntokens = 196\n",
               "sweeps resolution (image models) or tokens (the sequence model seq), not both");
    expect_bad("combo_w", "[experiment]\nname = a\n[grid]\nmodel = seq\ntokens = 196\nwidth = 64\n",
               "width belongs to level = block or mixer");
    expect_bad("combo2", "[experiment]\nname = a\n[grid]\nlevel = mixer\nmixer = ssm\ntokens = 196\n",
               "needs [grid] tokens and width");
    expect_bad("times", "[experiment]\nname = a\n[grid]\nmodel = mambaout_test\nresolution = 32\n[measure]\nmin_time_s = 5\nmax_time_s = 1\n",
               "max_time_s (1) is below min_time_s (5)");
    expect_bad("precision", "[experiment]\nname = a\n[grid]\nprecision = bf16\n", "precision.ini:4: precision: 'bf16' is not fp32, tf32 or pedantic");
    sweep_spec s;
    CHECK(spec_parse("/nonexistent/spec.ini", &s) == ML_ERR_IO && strstr(ml_last_error(), "cannot open spec"),
          "missing spec: %s", ml_last_error());
}

/* Issue 11: nothing cut silently, lines inih would split, NUL bytes, empty items. */
static void test_hardening(void)
{
    /* a 149-character model value: with ",mixer=ssm" it is 159 characters and fits exactly; with ssm_bidir it
     * does not, and must be refused (it used to be cut to ",mixer=ssm" and run plain ssm under ssm_bidir's name) */
    char model[200], text[600];
    snprintf(model, sizeof model, "mambaout_test:kernel=");
    while (strlen(model) < 148)
        strcat(model, "0");
    strcat(model, "7");
    CHECK(strlen(model) == 149, "model value length %zu", strlen(model));
    snprintf(text, sizeof text, "[experiment]\nname = m\n[grid]\nmodel = %s\nmixer = ssm\nresolution = 32\n", model);
    sweep_spec s;
    sweep_config *c = NULL;
    int n = 0;
    const char *p = write_spec("fits", text);
    CHECK(spec_parse(p, &s) == ML_OK && spec_expand(&s, &c, &n) == ML_OK && n == 1, "159 characters fit: %s",
          ml_last_error());
    char want[256];
    snprintf(want, sizeof want, "%s,mixer=ssm", model);
    CHECK(n == 1 && !strcmp(c[0].model, want), "the recorded model is exactly what runs: '%s'", n ? c[0].model : "");
    free(c);
    snprintf(text, sizeof text, "[experiment]\nname = m\n[grid]\nmodel = %s\nmixer = ssm, ssm_bidir, ssm_2d\nresolution = 32\n",
             model);
    p = write_spec("toolong", text);
    CHECK(spec_parse(p, &s) == ML_ERR_USAGE && strstr(ml_last_error(), "with mixer ssm_bidir") &&
              strstr(ml_last_error(), "at most 159"),
          "a model value that the grid mixer makes too long is refused, naming it: %s", ml_last_error());

    /* a line longer than inih's buffer: named by its own line, not parsed in pieces */
    char longline[400] = "[experiment]\nname = a\n[grid]\nmixer = dwconv";
    while (strlen(longline) < 300)
        strcat(longline, ", ssm");
    strcat(longline, "\nlevel = mixer\n");
    expect_bad("longline", longline, "longline.ini:4: line too long (");
    /* a NUL byte in a list line: refused, not the rest of the line dropped */
    {
        static const char nul[] = "[experiment]\nname = a\n[grid]\nmixer = dwconv, ssm\0, attn, identity\n";
        char path[512];
        snprintf(path, sizeof path, "%s/nul.ini", dir);
        FILE *fp = fopen(path, "wb");
        fwrite(nul, 1, sizeof nul - 1, fp);
        fclose(fp);
        CHECK(spec_parse(path, &s) == ML_ERR_USAGE && strstr(ml_last_error(), "nul.ini:4: NUL byte at column 20"),
              "NUL byte: %s", ml_last_error());
    }
    /* empty items, in lists and in a model's overrides */
    expect_bad("emptyres", "[experiment]\nname = a\n[grid]\nmodel = mambaout_test\nresolution = 224,,384\n",
               "emptyres.ini:5: resolution: empty");
    expect_bad("emptyovr", "[experiment]\nname = a\n[grid]\nmodel = mambaout_tiny:,,,\nresolution = 224\n",
               "emptyovr.ini:4: model: empty list or empty item");
    /* a raw control byte in a key is escaped in the one-line error */
    expect_bad("ctrlkey", "[experiment]\nname = a\n[grid]\nlev\x1b[2Jel = model\n", "unknown key 'lev\\x1b[2Jel'");
    CHECK(!strchr(ml_last_error(), '\x1b') && !strchr(ml_last_error(), '\n'), "error line holds no raw control byte");
}

/* A stream with known order statistics. */
static void test_stats(void)
{
    double raw[11] = {5, 1, 9, 3, 7, 2, 10, 4, 8, 6, 100};
    timer_stats st = {.raw_ms = raw, .samples = 11};
    timer_stats_summarise(&st);
    /* sorted 1..10, 100: median 6, p10 = 2 (pos 1.0), p90 = 10 (pos 9.0), min 1 */
    CHECK(st.median_ms == 6 && st.min_ms == 1 && fabs(st.p10_ms - 2) < 1e-12 && fabs(st.p90_ms - 10) < 1e-12,
          "median %g p10 %g p90 %g min %g", st.median_ms, st.p10_ms, st.p90_ms, st.min_ms);
    CHECK(fabs(st.mean_ms - 155.0 / 11) < 1e-12, "mean %g", st.mean_ms);
    double even[4] = {4, 1, 3, 2};
    timer_stats e = {.raw_ms = even, .samples = 4};
    timer_stats_summarise(&e);
    CHECK(e.median_ms == 2.5 && fabs(e.p10_ms - 1.3) < 1e-12 && fabs(e.stdev_ms - sqrt(5.0 / 3)) < 1e-12,
          "even: median %g p10 %g stdev %g", e.median_ms, e.p10_ms, e.stdev_ms);
}

static void spin_1ms(void *p)
{
    (void)p;
    double t = timer_now_s();
    while (timer_now_s() - t < 1e-3) {
    }
}

static int calls;
static void alternating(void *p)
{
    (void)p;
    /* a stream whose median never settles: every call slower than the one before */
    double d = 0.2e-3 * ++calls;
    double t = timer_now_s();
    while (timer_now_s() - t < d) {
    }
}

static void test_stopping(void)
{
    timer_policy p = {.warmup_s = 0, .warmup_min = 1, .min_samples = 10, .min_time_s = 0.005, .max_time_s = 2,
                      .settle_rel = 0.5};
    timer_stats st;
    CHECK(timer_measure(&p, spin_1ms, NULL, &st) == ML_OK, "measure");
    CHECK(st.samples == 10 && !st.capped, "a steady stream stops at min_samples: %d samples, capped %d", st.samples,
          st.capped);
    CHECK(st.median_ms >= 1.0 && st.median_ms < 5.0, "median of a 1 ms spin: %g", st.median_ms);
    timer_stats_free(&st);
    timer_policy q = {.warmup_s = 0, .warmup_min = 0, .min_samples = 10, .min_time_s = 0, .max_time_s = 0.12,
                      .settle_rel = 0.01};
    calls = 0;
    CHECK(timer_measure(&q, alternating, NULL, &st) == ML_OK, "measure");
    CHECK(st.capped == 1, "a stream that keeps drifting hits the cap and says so (samples %d)", st.samples);
    timer_stats_free(&st);
}

/* [eval]: weights per model in order, the transform's overrides parsed and in the hash only when given. */
static void test_eval_section(void)
{
    static const char base[] = "[experiment]\nname = e\n[grid]\nmodel = mambaout_test, vim_test\nresolution = 64\n"
                               "[measure]\nmetrics = accuracy\n[eval]\ndata = /d\nweights = a.st, b.st\n";
    char text[512];
    sweep_spec s;
    sweep_config *c = NULL, *c2 = NULL;
    int n = 0, n2 = 0;
    CHECK(spec_parse(write_spec("eval", base), &s) == ML_OK && spec_expand(&s, &c, &n) == ML_OK && n == 2,
          "eval spec: %s", ml_last_error());
    if (n != 2)
        return;
    CHECK(s.eval.crop_pct == 0 && s.eval.interp == -1 && s.eval.batch == 100, "eval defaults: the model's transform");
    char key[2048];
    sweep_config_key(&s, &c[1], key, sizeof key);
    CHECK(strstr(key, ";eval=/d;weights=b.st;") && !strstr(key, "crop_pct"), "second model, second weights: %s", key);
    snprintf(text, sizeof text, "%scrop_pct = 0.875\ninterpolation = bilinear\n", base);
    CHECK(spec_parse(write_spec("eval2", text), &s) == ML_OK && spec_expand(&s, &c2, &n2) == ML_OK && n2 == 2,
          "eval spec with a transform: %s", ml_last_error());
    if (n2 == 2) {
        CHECK(s.eval.crop_pct == 0.875 && s.eval.interp == 1, "crop_pct 0.875, bilinear");
        sweep_config_key(&s, &c2[0], key, sizeof key);
        CHECK(strstr(key, ";crop_pct=0.875;interpolation=bilinear") && strcmp(c[0].hash, c2[0].hash),
              "the transform is in the key and the hash: %s", key);
    }
    free(c), free(c2);
    snprintf(text, sizeof text, "%sinterpolation = nearest\n", base);
    expect_bad("interp", text, "interp.ini:11: interpolation: 'nearest' is not bicubic or bilinear");
    snprintf(text, sizeof text, "%scrop_pct = 101\n", base);
    expect_bad("crop", text, "crop.ini:11: crop_pct: '101' is not a number in 0.01..100");
}

/* [train] random_erase: parsed, in the key and the hash only when on (the other specs' hashes stay). */
static void test_train_erase(void)
{
    static const char base[] = "[experiment]\nname = t\n[grid]\nmodel = mambaout_test\nresolution = 32\n"
                               "[measure]\nmetrics = accuracy\n[train]\nepochs = 1\n";
    char text[512];
    sweep_spec s;
    sweep_config *c = NULL, *c2 = NULL, *c3 = NULL;
    int n = 0, n2 = 0, n3 = 0;
    char key[2048];
    CHECK(spec_parse(write_spec("tr0", base), &s) == ML_OK && spec_expand(&s, &c, &n) == ML_OK && n == 1,
          "train spec: %s", ml_last_error());
    CHECK(s.train.random_erase == 0, "random_erase defaults to off");
    if (n == 1) {
        sweep_config_key(&s, &c[0], key, sizeof key);
        CHECK(!strstr(key, "random_erase"), "off: not in the key: %s", key);
    }
    snprintf(text, sizeof text, "%srandom_erase = 0\n", base);
    CHECK(spec_parse(write_spec("tr1", text), &s) == ML_OK && spec_expand(&s, &c3, &n3) == ML_OK && n3 == 1 &&
              n == 1 && !strcmp(c[0].hash, c3[0].hash),
          "random_erase = 0 keeps the hash: %s", ml_last_error());
    snprintf(text, sizeof text, "%srandom_erase = 0.25\n", base);
    CHECK(spec_parse(write_spec("tr2", text), &s) == ML_OK && spec_expand(&s, &c2, &n2) == ML_OK && n2 == 1,
          "train spec with random_erase: %s", ml_last_error());
    if (n == 1 && n2 == 1) {
        CHECK(s.train.random_erase == 0.25, "random_erase 0.25 parsed: %g", s.train.random_erase);
        sweep_config_key(&s, &c2[0], key, sizeof key);
        CHECK(strstr(key, ";random_erase=0.25") && strcmp(c[0].hash, c2[0].hash), "on: in the key and the hash: %s",
              key);
    }
    free(c), free(c2), free(c3);
    snprintf(text, sizeof text, "%srandom_erase = 1.5\n", base);
    expect_bad("tr3", text, "tr3.ini:10: random_erase: '1.5' is not a number in 0..1");
    /* data_parallel: 0 or 1, in the key only when on */
    c = NULL, c2 = NULL, n = n2 = 0;
    snprintf(text, sizeof text, "%sdata_parallel = 0\n", base);
    CHECK(spec_parse(write_spec("trd0", text), &s) == ML_OK && spec_expand(&s, &c, &n) == ML_OK && n == 1,
          "train spec with data_parallel 0: %s", ml_last_error());
    snprintf(text, sizeof text, "%sdata_parallel = 1\n", base);
    CHECK(spec_parse(write_spec("trd1", text), &s) == ML_OK && spec_expand(&s, &c2, &n2) == ML_OK && n2 == 1 &&
              s.train.data_parallel == 1,
          "train spec with data_parallel 1: %s", ml_last_error());
    if (n == 1 && n2 == 1) {
        sweep_config_key(&s, &c2[0], key, sizeof key);
        CHECK(strstr(key, ";data_parallel=1") && strcmp(c[0].hash, c2[0].hash), "data_parallel in the key: %s", key);
        sweep_config *c0 = NULL;
        int n0 = 0;
        CHECK(spec_parse(write_spec("trd3", base), &s) == ML_OK && spec_expand(&s, &c0, &n0) == ML_OK && n0 == 1 &&
                  !strcmp(c[0].hash, c0[0].hash),
              "data_parallel = 0 changed the hash");
        free(c0);
    }
    free(c), free(c2);
    snprintf(text, sizeof text, "%sdata_parallel = 0.5\n", base);
    expect_bad("trd2", text, "trd2.ini:10: data_parallel: '0.5' is not 0 or 1");
    /* progressive resizing: res_start with res_ramp (A or A, B), in the key only when given */
    snprintf(text, sizeof text, "%sres_start = 32\nres_ramp = 1, 2\n", base);
    c = NULL, n = 0;
    CHECK(spec_parse(write_spec("tr4", text), &s) == ML_OK && spec_expand(&s, &c, &n) == ML_OK && n == 1,
          "train spec with res_start: %s", ml_last_error());
    if (n == 1) {
        CHECK(s.train.res_start == 32 && s.train.res_ramp[0] == 1 && s.train.res_ramp[1] == 2, "res_start 32, ramp 1,2");
        sweep_config_key(&s, &c[0], key, sizeof key);
        CHECK(strstr(key, ";res_start=32;res_ramp=1,2") != NULL, "res_start in the key: %s", key);
    }
    free(c);
    snprintf(text, sizeof text, "%sres_start = 32\n", base);
    expect_bad("tr5", text, "tr5.ini: [train] res_start and res_ramp go together");
    snprintf(text, sizeof text, "%sres_start = 32\nres_ramp = 1, 2, 3\n", base);
    expect_bad("tr6", text, "tr6.ini:11: res_ramp: '1, 2, 3' is too many values");
    snprintf(text, sizeof text, "%sres_start = 8\nres_ramp = 1\n", base);
    expect_bad("tr7", text, "tr7.ini:10: res_start: 8 is out of range");
}

int main(void)
{
    test_tmpdir(dir, sizeof dir, "spec");
    test_good();
    test_bad();
    test_eval_section();
    test_train_erase();
    test_hardening();
    test_stats();
    test_stopping();
    test_tmpdir_remove(dir);
    return test_summary("test_spec");
}
