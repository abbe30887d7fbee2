/* libFuzzer harness: the INI sweep-spec parser (harness/spec.c, inih under
 * it) on any text, and the expansion of the specs it accepts (small ones:
 * the expansion's cost is the product of the list lengths). */
#include "harness/spec.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sweep_spec s;
    if (spec_parse_text("fuzz.ini", (const char *)data, size, &s) != ML_OK)
        return 0;
    const double n = (double)(s.n_models ? s.n_models : 1) * (s.n_mixers ? s.n_mixers : 1) *
                     (s.n_resolutions + s.n_tokens) * (s.n_widths ? s.n_widths : 1) * s.n_batches * s.n_devices *
                     (s.n_threads ? s.n_threads : 1);
    if (n > 4096)
        return 0;
    sweep_config *c = NULL;
    int count = 0;
    if (spec_expand(&s, &c, &count) == ML_OK)
        free(c);
    return 0;
}
