/* libFuzzer harness for the image decoders and the resize behind them:
 * any bytes go through image_decode_rgb8 (JPEG, PNG, or neither); what
 * decodes is pushed through a PIL resize and timm's eval transform at sizes
 * taken from the input. Built with clang -fsanitize=fuzzer,address,undefined
 * when MIXERLAB_FUZZ=ON (tests/CMakeLists.txt); see tests/fuzz/README.md. */
#include "data/image.h"
#include "data/resample.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The decoders refuse larger images before allocating (the refusal is one of the paths under
 * test): 256 x 256 bounds a run's memory and the time of one input -- with 2^20 pixels, inputs
 * that decode to a large flat image brought a long run down from ~3,000 to ~400 executions/s --
 * and no decoding path depends on the size beyond the limit check. */
#define FUZZ_MAX_PIXELS ((size_t)1 << 16)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    image_rgb8 img;
    ml_status s = image_decode_rgb8(&img, data, size, "fuzz input", FUZZ_MAX_PIXELS);
    if (s != ML_OK) {
        /* a failure names the input on one line and leaves nothing behind */
        if (img.data || !strstr(ml_last_error(), "fuzz input") || strchr(ml_last_error(), '\n'))
            __builtin_trap();
        return 0;
    }
    if (!img.data || img.width == 0 || img.height == 0)
        __builtin_trap();
    uint8_t k = size ? data[size - 1] : 0;
    resample_filter f = (k & 1) ? RESAMPLE_BICUBIC : RESAMPLE_BILINEAR;
    image_rgb8 out;
    if (resample_resize_rgb8(&out, &img, 1 + (size_t)(k % 37), 1 + (size_t)((k >> 2) % 29), f) == ML_OK)
        image_free_rgb8(&out);
    eval_transform t;
    eval_transform_init(&t, 4 + (size_t)(k % 13));
    t.crop_pct = (k & 2) ? 0.875 : 1.25; /* also the zero-padded crop */
    t.interp = f;
    float chw[3 * 16 * 16];
    if (eval_transform_chw(chw, &t, &img) != ML_OK)
        __builtin_trap();
    image_free_rgb8(&img);
    return 0;
}
