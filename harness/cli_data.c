#include "harness/cli_data.h"

#include "harness/cli.h"
#include "train/trainer.h"

#include <string.h>

ml_status cli_open_data(dataset *d, const char *spec, size_t limit, const model_config *cfg, const data_flags *f)
{
    dataset_options o = model_dataset_options(cfg); /* the flags override the model's settings */
    if (f->crop_pct > 0)
        o.crop_pct = f->crop_pct;
    if (f->interp >= 0 && f->interp < 2)
        snprintf(o.interpolation, sizeof o.interpolation, "%s", cli_interp_names[f->interp]);
    o.skip_bad = f->skip_bad;
    if (f->workers > 0)
        o.workers = (int)f->workers;
    return dataset_open_with(d, spec, limit, &o);
}
