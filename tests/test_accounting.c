/* Parameter and MAC counts pinned to timm's exact parameter counts and the
 * fvcore / FlopCounter MAC totals (the README's "MAC conventions"; the published figures are
 * those of the MambaOut paper's Table 1, Yu & Wang, arXiv 2405.07992). */
#include "models/model.h"
#include "test_util.h"

#include <math.h>

typedef struct {
    const char *name;
    int res;
    uint64_t params, fvcore, gemm; /* gemm 0: not pinned */
} expect;

static const expect cases[] = {
    {"mambaout_femto", 224, 7304536ull, 1156177152ull, 1147984992ull},
    {"mambaout_kobe", 224, 9141208ull, 1515186432ull, 1505865312ull},
    {"mambaout_tiny", 224, 26545096ull, 4486040064ull, 4469655744ull},
    {"mambaout_small", 224, 48488072ull, 8960334336ull, 8936423616ull},
    {"mambaout_base", 224, 84813092ull, 15826206720ull, 15794325760ull},
    {"mambaout_tiny", 384, 26545096ull, 13176396864ull, 0},
    {"mambaout_femto", 1024, 7304536ull, 24132075552ull, 0},
};

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const expect *e = &cases[i];
        model_config cfg;
        model m;
        CHECK(model_config_from_name(e->name, &cfg) == ML_OK, "zoo lookup %s", e->name);
        CHECK(model_plan(&m, &cfg, 1, e->res, e->res) == ML_OK, "plan %s: %s", e->name, ml_last_error());
        uint64_t p = model_param_count(&m);
        macs_opts fv = {MACS_FVCORE, SCAN_GU}, gm = {MACS_GEMM, SCAN_GU};
        uint64_t f = model_macs(&m, &fv, NULL), g = model_macs(&m, &gm, NULL);
        CHECK(p == e->params, "%s params %llu, want %llu", e->name, (unsigned long long)p,
              (unsigned long long)e->params);
        CHECK(f == e->fvcore, "%s@%d fvcore MACs %llu, want %llu", e->name, e->res,
              (unsigned long long)f, (unsigned long long)e->fvcore);
        CHECK(!e->gemm || g == e->gemm, "%s gemm MACs %llu, want %llu", e->name,
              (unsigned long long)g, (unsigned long long)e->gemm);
        /* per-part numbers add up to the totals */
        model_stage_info parts[MODEL_MAX_STAGES + 2];
        uint64_t total = model_macs(&m, &fv, parts), sum_m = 0, sum_p = 0;
        for (int s = 0; s < cfg.num_stages + 2; s++)
            sum_m += parts[s].macs, sum_p += parts[s].params;
        CHECK(sum_m == total && sum_p == p, "%s parts do not add up", e->name);
        model_free(&m);
    }
    /* VMamba's published parameter counts are backbone only (no final norm, no head): exact */
    static const struct {
        const char *name;
        uint64_t backbone;
    } bb[] = {{"vmamba_tiny", 22122912ull}, {"vmamba_small", 43646880ull}, {"vmamba_base", 75227008ull}};
    for (size_t i = 0; i < sizeof bb / sizeof bb[0]; i++) {
        model_config c;
        model m;
        CHECK(model_config_from_name(bb[i].name, &c) == ML_OK && model_plan(&m, &c, 1, 224, 224) == ML_OK, "%s",
              bb[i].name);
        CHECK(model_backbone_param_count(&m) == bb[i].backbone, "%s backbone params %llu, VMamba's flops.log %llu",
              bb[i].name, (unsigned long long)model_backbone_param_count(&m), (unsigned long long)bb[i].backbone);
        model_free(&m);
    }
    /* visual-Mamba rows of the MambaOut paper's Table 1: published figures at the published rounding */
    static const struct {
        const char *name;
        scan_convention scan;
        double published_g; /* MACs in G, rounded to 2 decimals as compared */
    } vm[] = {
        {"vmamba_tiny", SCAN_GU, 5.63},  {"vmamba_small", SCAN_GU, 11.23}, {"vmamba_base", SCAN_GU, 18.02},
        {"vim_tiny", SCAN_LOCALMAMBA, 1.48}, {"vim_small", SCAN_LOCALMAMBA, 5.14},
    };
    for (size_t i = 0; i < sizeof vm / sizeof vm[0]; i++) {
        model_config c;
        model m;
        CHECK(model_config_from_name(vm[i].name, &c) == ML_OK && model_plan(&m, &c, 1, 224, 224) == ML_OK,
              "plan %s: %s", vm[i].name, ml_last_error());
        macs_opts o = {MACS_FVCORE, vm[i].scan};
        double g = (double)model_macs(&m, &o, NULL) / 1e9;
        CHECK(fabs(g - vm[i].published_g) < 0.005, "%s (%s): %.4f G, want %.2f G", vm[i].name,
              scan_convention_name(vm[i].scan), g, vm[i].published_g);
        if (!strcmp(vm[i].name, "vim_tiny"))
            CHECK(model_param_count(&m) == 7148008ull, "vim_tiny params %llu, want 7,148,008",
                  (unsigned long long)model_param_count(&m));
        model_free(&m);
    }

    /* overrides: the same skeleton with another mixer */
    model_config oc;
    model om;
    CHECK(model_config_from_name("mambaout_femto:mixer=identity", &oc) == ML_OK &&
              model_plan(&om, &oc, 1, 224, 224) == ML_OK,
          "identity override");
    /* femto without its depthwise convs: 7,304,536 - Σ depth·(49·C + C) */
    CHECK(model_param_count(&om) == 7304536ull - (3 * 50 * 48 + 3 * 50 * 96 + 9 * 50 * 192 + 3 * 50 * 288),
          "identity override params %llu", (unsigned long long)model_param_count(&om));
    model_free(&om);
    CHECK(model_config_from_name("mambaout_femto:mixer=dwconv,kernel=11", &oc) == ML_OK &&
              model_plan(&om, &oc, 1, 224, 224) == ML_OK,
          "kernel override");
    CHECK(model_param_count(&om) == 7304536ull + (121 - 49) * (3 * 48 + 3 * 96 + 9 * 192 + 3 * 288),
          "kernel=11 params %llu", (unsigned long long)model_param_count(&om));
    model_free(&om);
    CHECK(model_config_from_name("mambaout_femto:mixer=mamba", &oc) == ML_ERR_USAGE &&
              strstr(ml_last_error(), "known: dwconv"),
          "unknown mixer override: %s", ml_last_error());
    CHECK(model_config_from_name("mambaout_femto:depth=3", &oc) == ML_ERR_USAGE &&
              strstr(ml_last_error(), "allowed: mixer, kernel"),
          "unknown key: %s", ml_last_error());
    CHECK(model_config_from_name("mambaout_femto:mixer=attn", &oc) == ML_OK &&
              model_plan(&om, &oc, 1, 224, 224) == ML_ERR_USAGE &&
              strstr(ml_last_error(), "head_size 32 does not divide the mixer width E = 48"),
          "head size must divide E: %s", ml_last_error());
    model_free(&om);
    CHECK(model_config_from_name("mambaout_femto:mixer=dwconv,kernel=4", &oc) == ML_OK &&
              model_plan(&om, &oc, 1, 224, 224) == ML_ERR_USAGE && strstr(ml_last_error(), "kernel 4"),
          "even kernel: %s", ml_last_error());
    model_free(&om);

    /* batch scales MACs linearly; ceil(H/2) spatial sizes at an odd resolution */
    model_config cfg;
    model m1, m4;
    model_config_from_name("mambaout_femto", &cfg);
    model_plan(&m1, &cfg, 1, 97, 97);
    model_plan(&m4, &cfg, 4, 97, 97);
    macs_opts fv = {MACS_FVCORE, SCAN_GU};
    CHECK(model_macs(&m4, &fv, NULL) == 4 * model_macs(&m1, &fv, NULL), "MACs must scale with batch");
    CHECK(m1.sh[0] == 25 && m1.sh[1] == 13 && m1.sh[2] == 7 && m1.sh[3] == 4,
          "97 -> 49 -> 25 -> 13 -> 7 -> 4, got stage sizes %d %d %d %d", m1.sh[0], m1.sh[1], m1.sh[2],
          m1.sh[3]);
    model_free(&m1);
    model_free(&m4);
    return test_summary("test_accounting");
}
