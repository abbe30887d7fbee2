#include "harness/cli_data.h"

#include "harness/cli.h"

#include <string.h>

ml_status cli_open_data(dataset *d, const char *spec, size_t limit, const model_config *cfg, const data_flags *f)
{
    dataset_options o = dataset_options_default();
    o.crop_pct = f->crop_pct > 0 ? f->crop_pct : cfg->data.crop_pct;
    snprintf(o.interpolation, sizeof o.interpolation, "%s",
             f->interp >= 0 && f->interp < 2 ? cli_interp_names[f->interp] : cfg->data.interpolation);
    memcpy(o.mean, cfg->data.mean, sizeof o.mean);
    memcpy(o.std, cfg->data.std, sizeof o.std);
    o.skip_bad = f->skip_bad;
    const int half = cli_default_threads() / 2;
    o.workers = f->workers > 0 ? (int)f->workers : half > 1 ? half : 1;
    return dataset_open_with(d, spec, limit, &o);
}
