/* mixerlab table: the MambaOut paper's Table 1 rows for every model in our
 * zoo (ours next to the paper's), and the same skeleton with every mixer. */
#include "harness/args.h"
#include "harness/cli.h"
#include "harness/store.h"
#include "models/model.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char table_usage[] =
    "usage: mixerlab table [--db FILE] [--markdown | --csv | --json]\n"
    "       mixerlab table --ablation MODEL [--res 224,1024] [--markdown | --csv | --json]\n"
    "       mixerlab table --ablation seq [--seq-len 1024,4096] (the sequence model, default L = 1024)\n"
    "\n"
    "Without --ablation: the MambaOut paper's Table 1 (ImageNet-1k, 224x224) for every\n"
    "model of the zoo. For each: token mixing, parameters (ours | paper), MACs (ours |\n"
    "paper, with the convention that reproduces the paper's figure) and the paper's\n"
    "top-1, which is reported, not measured here, with its source.\n"
    "\n"
    "With --ablation MODEL: the same skeleton with every registered mixer in its slot:\n"
    "parameters, MACs at each resolution, the token mixer's share of the MACs, and\n"
    "which stages are long-sequence (L > 6·C, the paper's Eq. 6-7). Attention uses the\n"
    "largest head size of 32, 16 or 8 that divides every stage's width.\n"
    "\n"
    "  --db FILE    also our measured top-1 for each row whose model the database has an\n"
    "               accuracy for (a sweep with metrics = accuracy: [eval] of the published\n"
    "               weights, or [train]); the latest such row, with its resolution\n"
    "  --markdown   (default) a Markdown table with notes\n"
    "  --csv        comma-separated, one header line\n"
    "  --json       a JSON array of objects\n";

typedef enum { FMT_MD, FMT_CSV, FMT_JSON } out_fmt;

/* Table 1 of Yu & Wang (arXiv 2405.07992), the rows our zoo can build. */
static const struct {
    const char *model, *paper_name, *mixing;
    double params_m, macs_g, top1;
    scan_convention scan;
    const char *source;
    int backbone; /* the paper's parameter count leaves out the final norm and the head */
} rows[] = {
    {"vim_tiny", "Vim-Ti", "Conv+SSM", 7, 1.5, 76.1, SCAN_LOCALMAMBA, "MambaOut paper, Table 1", 0},
    {"mambaout_femto", "MambaOut-Femto", "Conv", 7, 1.2, 78.9, SCAN_GU, "MambaOut paper, Table 1", 0},
    {"mambaout_kobe", "MambaOut-Kobe", "Conv", 9, 1.5, 80.0, SCAN_GU, "MambaOut README (not in the paper)", 0},
    {"vim_small", "Vim-S", "Conv+SSM", 26, 5.1, 80.5, SCAN_LOCALMAMBA, "MambaOut paper, Table 1", 0},
    {"vmamba_tiny", "VMamba-T", "Conv+SSM", 22, 5.6, 82.2, SCAN_GU, "MambaOut paper, Table 1", 1},
    {"mambaout_tiny", "MambaOut-Tiny", "Conv", 27, 4.5, 82.7, SCAN_GU, "MambaOut paper, Table 1", 0},
    {"vmamba_small", "VMamba-S", "Conv+SSM", 44, 11.2, 83.5, SCAN_GU, "MambaOut paper, Table 1", 1},
    {"mambaout_small", "MambaOut-Small", "Conv", 48, 9.0, 84.1, SCAN_GU, "MambaOut paper, Table 1", 0},
    {"vmamba_base", "VMamba-B", "Conv+SSM", 75, 18.0, 83.7, SCAN_GU, "MambaOut paper, Table 1", 1},
    {"mambaout_base", "MambaOut-Base", "Conv", 85, 15.8, 84.2, SCAN_GU, "MambaOut paper, Table 1", 0},
};

static const char table_notes[] =
    "\nNotes:\n"
    "- Top-1 is the paper's reported figure (ImageNet-1k, 224x224), not measured by mixerlab.\n"
    "- MACs: fvcore convention (conv + linear + LayerNorm at 5 per element). The scan is counted as Gu\n"
    "  (9·L·E·N + L·E per direction, all projections), as VMamba did, except for Vim: its 1.5G / 5.1G\n"
    "  come from LocalMamba's count (5·L·E·N + 2·L·E per direction, conv1d / x_proj / dt_proj once per\n"
    "  layer, RMSNorm not counted). Under Gu's count Vim-Ti / Vim-S are 1.82G / 5.91G.\n"
    "- VMamba rows (marked *): the published 22M / 44M / 75M count the backbone only. VMamba's FLOP\n"
    "  script (analyze/get_flops.py, show/flops/flops.log of January 2024) deletes the final norm and\n"
    "  the classifier head before counting: 22,122,912 / 43,646,880 / 75,227,008 parameters, which is\n"
    "  exactly our count without them (params_backbone). With them, 22.89M / 44.42M / 76.25M; VMamba's\n"
    "  README later counts the head too and lists 23M / 44M / 76M.\n"
    "- MambaOut rows match timm's exact parameter counts; MambaOut-Kobe is from the MambaOut README.\n";

static ml_status plan_model(const char *spec, int res, model *m)
{
    model_config cfg;
    ML_TRY(model_config_from_name(spec, &cfg));
    /* the sequence model: res is its length L (a 1 x L line) */
    ml_status s = cfg.skeleton == SKEL_SEQUENCE ? model_plan(m, &cfg, 1, 1, res) : model_plan(m, &cfg, 1, res, res);
    if (s != ML_OK)
        model_free(m);
    return s;
}

/* Our measured top-1 for a row, from the database (NAN when it has none). */
static ml_status ours(store *st, const char *name, double *top1, long *res)
{
    *top1 = NAN;
    if (!st)
        return ML_OK;
    int found = 0;
    char exp[64];
    ML_TRY(store_latest_top1(st, name, &found, top1, res, exp, sizeof exp));
    if (!found)
        *top1 = NAN;
    return ML_OK;
}

static int cmd_table_paper(out_fmt fmt, store *st)
{
    cJSON *arr = fmt == FMT_JSON ? cJSON_CreateArray() : NULL;
    if (fmt == FMT_MD) {
        printf("MambaOut paper, Table 1 (ImageNet-1k, 224x224): ours | paper\n\n");
        printf("| model | token mixing | params (M) ours | paper | MACs (G) ours | paper | MAC convention | "
               "top-1 %% (reported) |%s source |\n|---|---|---|---|---|---|---|---|---|%s\n",
               st ? " top-1 % (ours) |" : "", st ? "---|" : "");
    } else if (fmt == FMT_CSV) {
        printf("model,paper_name,token_mixing,params,params_backbone,params_paper_m,paper_counts,macs,macs_paper_g,"
               "convention,scan,top1_reported,source%s\n", st ? ",top1_ours,top1_ours_resolution" : "");
    }
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        model m;
        ML_TRY(plan_model(rows[i].model, 224, &m));
        macs_opts o = {MACS_FVCORE, rows[i].scan};
        const uint64_t total = model_param_count(&m), backbone = model_backbone_param_count(&m),
                       p = rows[i].backbone ? backbone : total, macs = model_macs(&m, &o, NULL);
        const char *sc = scan_convention_name(rows[i].scan);
        double mine;
        long mres = 0;
        ml_status s = ours(st, rows[i].model, &mine, &mres);
        if (s != ML_OK) {
            model_free(&m);
            cJSON_Delete(arr);
            return s;
        }
        char col[64] = "";
        if (st && fmt == FMT_MD)
            snprintf(col, sizeof col, isnan(mine) ? " |" : " %.2f (%ldx%ld) |", mine, mres, mres);
        else if (st && fmt == FMT_CSV)
            snprintf(col, sizeof col, isnan(mine) ? ",," : ",%.4f,%ld", mine, mres);
        if (fmt == FMT_MD)
            printf("| %s (`%s`) | %s | %.2f%s | %.0f | %.2f | %.1f | fvcore, scan %s | %.1f |%s %s |\n",
                   rows[i].paper_name, rows[i].model, rows[i].mixing, p / 1e6, rows[i].backbone ? "*" : "",
                   rows[i].params_m, macs / 1e9, rows[i].macs_g, sc, rows[i].top1, col, rows[i].source);
        else if (fmt == FMT_CSV)
            printf("%s,%s,%s,%llu,%llu,%.0f,%s,%llu,%.1f,fvcore,%s,%.1f,%s%s\n", rows[i].model, rows[i].paper_name,
                   rows[i].mixing, (unsigned long long)total, (unsigned long long)backbone, rows[i].params_m,
                   rows[i].backbone ? "backbone" : "all", (unsigned long long)macs, rows[i].macs_g, sc, rows[i].top1,
                   rows[i].source, col);
        else {
            cJSON *o2 = cJSON_CreateObject();
            cJSON_AddStringToObject(o2, "model", rows[i].model);
            cJSON_AddStringToObject(o2, "paper_name", rows[i].paper_name);
            cJSON_AddStringToObject(o2, "token_mixing", rows[i].mixing);
            cJSON_AddNumberToObject(o2, "params", (double)total);
            cJSON_AddNumberToObject(o2, "params_backbone", (double)backbone);
            cJSON_AddNumberToObject(o2, "params_paper_m", rows[i].params_m);
            cJSON_AddStringToObject(o2, "paper_counts", rows[i].backbone ? "backbone" : "all");
            cJSON_AddNumberToObject(o2, "macs", (double)macs);
            cJSON_AddNumberToObject(o2, "macs_paper_g", rows[i].macs_g);
            cJSON_AddStringToObject(o2, "convention", "fvcore");
            cJSON_AddStringToObject(o2, "scan_convention", sc);
            cJSON_AddNumberToObject(o2, "top1_reported", rows[i].top1);
            cJSON_AddStringToObject(o2, "source", rows[i].source);
            if (!isnan(mine)) {
                cJSON_AddNumberToObject(o2, "top1_ours", mine);
                cJSON_AddNumberToObject(o2, "top1_ours_resolution", (double)mres);
            }
            cJSON_AddItemToArray(arr, o2);
        }
        model_free(&m);
    }
    if (fmt == FMT_MD)
        fputs(table_notes, stdout);
    if (fmt == FMT_MD && st)
        printf("- top-1 (ours): measured by mixerlab, from the database's latest row with that model and an "
               "accuracy (its resolution in brackets).\n");
    cli_print_json(arr);
    return 0;
}

/* The largest of 32, 16, 8 dividing every stage width (attention heads must divide E). */
static int ablation_head_size(const model_config *c)
{
    static const int hs[] = {32, 16, 8, 4, 2, 1};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
        int ok = 1;
        for (int s = 0; s < c->num_stages; s++)
            ok &= (int)(c->conv_ratio * c->dims[s]) % hs[i] == 0;
        if (ok)
            return hs[i];
    }
    return 1;
}

static int cmd_table_ablation(const char *base, const long *res, int nres, out_fmt fmt)
{
    model_config bc;
    ML_TRY(model_config_from_name(base, &bc));
    const int seq = bc.skeleton == SKEL_SEQUENCE;
    const char *size_key = seq ? "seq_len" : "resolution";
    if (strchr(base, ':'))
        return ml_fail(ML_ERR_USAGE, "--ablation takes a zoo name without overrides (it varies the mixer itself)");
    const int hs = ablation_head_size(&bc);
    cJSON *arr = fmt == FMT_JSON ? cJSON_CreateArray() : NULL;
    if (fmt == FMT_MD) {
        printf("%s with every token mixer (MACs fvcore, scan gu; attention head size %d)\n\n| mixer | params |",
               base, hs);
        for (int r = 0; r < nres; r++)
            if (seq)
                printf(" MACs L=%ld | mixer share L=%ld | long-seq stages L=%ld |", res[r], res[r], res[r]);
            else
                printf(" MACs %ld² | mixer share %ld² | long-seq stages %ld² |", res[r], res[r], res[r]);
        printf("\n|---|---|");
        for (int r = 0; r < nres; r++)
            printf("---|---|---|");
        printf("\n");
    } else if (fmt == FMT_CSV) {
        printf("model,mixer,%s,params,macs,mixer_macs,mixer_share,long_sequence_stages\n", size_key);
    }
    for (int i = 0; i < mixer_count(); i++) {
        const mixer_ops *mx = mixer_at(i);
        char spec[160];
        if (mx->uses & MIXER_USES_HEAD_SIZE)
            snprintf(spec, sizeof spec, "%s:mixer=%s,head_size=%d", base, mx->name, hs);
        else
            snprintf(spec, sizeof spec, "%s:mixer=%s", base, mx->name);
        if (fmt == FMT_MD)
            printf("| %s |", mx->name);
        for (int r = 0; r < nres; r++) {
            model m;
            ML_TRY(plan_model(spec, (int)res[r], &m));
            macs_opts o = {MACS_FVCORE, SCAN_GU};
            model_stage_info parts[MODEL_MAX_STAGES + 2];
            uint64_t macs = model_macs(&m, &o, parts), mixm = 0;
            char longs[32] = "";
            for (int s = 0; s < m.cfg.num_stages; s++) {
                mixm += parts[1 + s].mixer_macs;
                long L = (long)parts[1 + s].h * parts[1 + s].w;
                if (m.cfg.depths[s] > 0 && L > 6L * parts[1 + s].width) {
                    char one[16];
                    snprintf(one, sizeof one, "%s%d", longs[0] ? " " : "", s);
                    strncat(longs, one, sizeof longs - strlen(longs) - 1);
                }
            }
            double share = 100.0 * (double)mixm / (double)macs;
            uint64_t p = model_param_count(&m);
            if (fmt == FMT_MD) {
                if (r == 0)
                    printf(" %.2fM |", p / 1e6);
                printf(" %.2fG | %.1f%% | %s |", macs / 1e9, share, longs[0] ? longs : "none");
            } else if (fmt == FMT_CSV) {
                printf("%s,%s,%ld,%llu,%llu,%llu,%.4f,%s\n", base, mx->name, res[r], (unsigned long long)p,
                       (unsigned long long)macs, (unsigned long long)mixm, share / 100, longs);
            } else {
                cJSON *o2 = cJSON_CreateObject();
                cJSON_AddStringToObject(o2, "model", base);
                cJSON_AddStringToObject(o2, "mixer", mx->name);
                cJSON_AddNumberToObject(o2, size_key, (double)res[r]);
                cJSON_AddNumberToObject(o2, "params", (double)p);
                cJSON_AddNumberToObject(o2, "macs", (double)macs);
                cJSON_AddNumberToObject(o2, "mixer_macs", (double)mixm);
                cJSON_AddStringToObject(o2, "convention", "fvcore");
                cJSON_AddStringToObject(o2, "scan_convention", "gu");
                cJSON_AddStringToObject(o2, "long_sequence_stages", longs);
                cJSON_AddItemToArray(arr, o2);
            }
            model_free(&m);
        }
        if (fmt == FMT_MD)
            printf("\n");
    }
    if (fmt == FMT_MD)
        printf("\nLong-sequence stages: L = h·w tokens > 6·C (the paper's threshold, Eq. 6-7).\n");
    cli_print_json(arr);
    return 0;
}

static int cmd_table(int argc, char **argv)
{
    int fmt = FMT_MD, nres = 1, res_set = 0, nlen = 1, len_set = 0;
    const char *ablation = NULL, *db = NULL;
    long res[8] = {224}, lens[8] = {1024};
    const arg_spec specs[] = {
        OPT_SET("--markdown", &fmt, FMT_MD),
        OPT_SET("--csv", &fmt, FMT_CSV),
        OPT_SET("--json", &fmt, FMT_JSON),
        OPT_STRING("--ablation", &ablation),
        OPT_STRING("--db", &db),
        OPT_LIST("--res", res, MODEL_MIN_RES, MODEL_MAX_RES, 8, &nres, &res_set),
        OPT_LIST("--seq-len", lens, 1, MODEL_MAX_SEQ, 8, &nlen, &len_set),
        OPT_END,
    };
    ML_TRY(args_parse("table", argc, argv, specs, NULL, 0, NULL));
    if (!ablation) {
        if (res_set || len_set)
            return ml_fail(ML_ERR_USAGE, "table: --res and --seq-len need --ablation (Table 1 is at 224x224)");
        if (!db)
            return cmd_table_paper((out_fmt)fmt, NULL);
        if (access(db, R_OK) != 0) /* a mistyped path is an error, not a new empty database */
            return ml_fail(ML_ERR_IO, "database '%s': %s", db, strerror(errno));
        store st;
        ML_TRY(store_open(&st, db));
        const int rc = cmd_table_paper((out_fmt)fmt, &st);
        store_close(&st);
        return rc;
    }
    if (db)
        return ml_fail(ML_ERR_USAGE, "table: --db goes with Table 1, not --ablation");
    model_config bc;
    ML_TRY(model_config_from_name(ablation, &bc));
    const int seq = bc.skeleton == SKEL_SEQUENCE;
    if (seq ? res_set : len_set)
        return ml_fail(ML_ERR_USAGE, "table --ablation %s: %s", ablation,
                       seq ? "the sequence model takes --seq-len, not --res" : "--seq-len is for the sequence model seq");
    return cmd_table_ablation(ablation, seq ? lens : res, seq ? nlen : nres, (out_fmt)fmt);
}

const cli_command cli_table = {"table", "the MambaOut paper's Table 1 reproduced, or one skeleton with every mixer",
                               table_usage, cmd_table};
