/* What eval and preprocess share: the preprocessing flags of an image folder
 * and opening --data with the model's cfg under them. */
#ifndef MIXERLAB_CLI_DATA_H
#define MIXERLAB_CLI_DATA_H

#include "data/dataset.h"
#include "models/model.h"

typedef struct {
    double crop_pct; /* 0: the model's */
    int interp;      /* -1: the model's; else an index into {"bicubic", "bilinear"} */
    int skip_bad;
    long workers;    /* 0: half the cores, at least 1 */
} data_flags;

/* The interpolation names data_flags.interp indexes, NULL-terminated. */
extern const char *const cli_interp_names[];

/* The four flags' entries of an arg_spec table (harness/args.h), for df a data_flags. */
#define DATA_FLAG_SPECS(df)                                                                        \
    OPT_DOUBLE("--crop-pct", &(df).crop_pct, 0.01, 100),                                           \
        OPT_CHOICE("--interpolation", &(df).interp, cli_interp_names, "interpolation"),            \
        OPT_FLAG("--skip-bad", &(df).skip_bad), OPT_LONG("--workers", &(df).workers, 1, 256)

/* Opens spec (an image folder's path, folder:dir=PATH or fashion-mnist) with
 * the model's published preprocessing (cfg->data) where a flag does not say
 * otherwise; limit > 0 keeps a folder's first limit images. */
ml_status cli_open_data(dataset *d, const char *spec, size_t limit, const model_config *cfg, const data_flags *f);

#endif
