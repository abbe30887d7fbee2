/* Decoding JPEG and PNG files to 8-bit RGB exactly as timm's loader sees them:
 * Pillow's Image.open(path).convert("RGB").
 *
 * JPEG goes through libjpeg-turbo with libjpeg's defaults (ISLOW IDCT, fancy
 * upsampling), which is what Pillow uses. PNG goes through libpng. The
 * conversions to RGB are Pillow's (Pillow 9.4 was checked, see
 * tests/fixtures/images/README.md):
 *
 *   JPEG grayscale      gray replicated to R = G = B
 *   JPEG CMYK / YCCK    libjpeg returns CMYK (YCCK converted by libjpeg); Pillow
 *                       assumes Adobe's inverted polarity, so each channel is
 *                       inverted, then R = 255 - K' - C'·K'/255 with Pillow's
 *                       rounded MULDIV255 (K' = 255 - K)
 *   PNG palette         looked up; tRNS (transparency) ignored
 *   PNG gray 1/2/4 bit  scaled to 0..255 (0x55, 0x11 steps; 1 bit is 0 / 255)
 *   PNG gray 16 bit     Pillow's "I" mode: the 16-bit value clipped to 255
 *                       (not scaled: 40000 becomes 255, 200 stays 200)
 *   PNG other 16 bit    the high byte (RGB, RGBA, gray + alpha)
 *   alpha               dropped, never composited (convert("RGB") drops it)
 *
 * EXIF orientation is ignored (Pillow's open does not apply it, nor does timm).
 * gAMA, sRGB and ICC profiles are ignored, as Pillow ignores them.
 *
 * Bad input never crashes: libjpeg's and libpng's errors come back through
 * setjmp/longjmp as one-line messages naming the file. Codes: ML_ERR_IO when the
 * file cannot be read, ML_ERR_FORMAT when its contents are not a decodable
 * JPEG or PNG (truncated, corrupt, neither format, over the size limits),
 * ML_ERR_NOMEM when memory runs out.
 *
 * Where we are stricter than Pillow: a PNG whose IDAT chunk fails its CRC is an
 * error here (libpng's default); Pillow skips IDAT CRCs. Where we match it: a
 * JPEG truncated before its last scanline is an error ("image file is
 * truncated" in Pillow), and so is a JPEG without its EOI marker whenever
 * libjpeg needs to look past the last scan's data (libjpeg's own memory source
 * would fake the marker and return grey); a PNG cut after its last row's data
 * (in the zlib trailer, a CRC or IEND) decodes, as Pillow stops once it has
 * every pixel. libjpeg's corrupt-data warnings are ignored, as Pillow
 * ignores them. */
#ifndef MIXERLAB_DATA_IMAGE_H
#define MIXERLAB_DATA_IMAGE_H

#include "base/common.h"

/* Pillow refuses images over 2 × Image.MAX_IMAGE_PIXELS (DecompressionBombError,
 * 178,956,970 pixels); so do we, before allocating anything. */
#define IMAGE_MAX_PIXELS ((size_t)178956970)
/* Files are read whole; anything larger is refused as ML_ERR_FORMAT. */
#define IMAGE_MAX_FILE_BYTES ((size_t)1 << 30)

typedef struct {
    size_t width, height;
    uint8_t *data; /* [height][width][3], R G B, rows packed */
} image_rgb8;

typedef enum {
    IMAGE_FORMAT_UNKNOWN = 0,
    IMAGE_FORMAT_JPEG,
    IMAGE_FORMAT_PNG,
} image_format;

/* The format by its signature (never by the file's extension, as Pillow). */
image_format image_sniff_format(const uint8_t *bytes, size_t size);

/* Allocates a width × height image (uninitialised pixels); ML_ERR_NOMEM, or
 * ML_ERR_USAGE when width × height × 3 overflows size_t. */
ml_status image_alloc_rgb8(image_rgb8 *out, size_t width, size_t height);
void image_free_rgb8(image_rgb8 *img);

/* Decodes an in-memory JPEG or PNG. name is used in messages only (the path,
 * or anything identifying the bytes). max_pixels: refuse width × height above
 * it; 0 means IMAGE_MAX_PIXELS. On failure *out is left empty (all zero). */
ml_status image_decode_rgb8(image_rgb8 *out, const uint8_t *bytes, size_t size, const char *name,
                            size_t max_pixels);

/* Reads path whole and decodes it (above). */
ml_status image_load_rgb8(image_rgb8 *out, const char *path, size_t max_pixels);

#endif
