/* The image data layer against Pillow, torchvision and timm themselves:
 * fixtures written by scripts/make_image_fixtures.py (tests/fixtures/images,
 * cases.txt says what each tensor is) hold Pillow's decodes, timm's eval
 * transform (uint8 after CenterCrop, and the float tensor after Normalize),
 * PIL resizes, timm's folder order, and files Pillow refuses. Every
 * preprocessed pixel must be within one 8-bit level of torchvision's; the
 * share that is exact is printed per case (and must be at least 99%).
 * Then bad input: truncation sweeps, random damage, limits, unreadable files
 * and bad folder layouts, each a one-line error with the right code. */
#include "data/dataset.h"
#include "data/image.h"
#include "data/imagefolder.h"
#include "data/loader.h"
#include "data/resample.h"
#include "models/safetensors.h"
#include "test_util.h"

#include <errno.h>
#include <sys/stat.h>

#define MIN_EXACT_SHARE 0.99

static void test_truncation(const char *file, size_t n_want, size_t first_ok);

static char g_dir[512];  /* tests/fixtures/images */
static char g_tmp[256];  /* scratch folder */
static st_file g_ref;

typedef struct {
    size_t n, exact, max_diff;
} diff_stats;

static diff_stats diff_u8(const uint8_t *a, const uint8_t *b, size_t n)
{
    diff_stats d = {n, 0, 0};
    for (size_t i = 0; i < n; i++) {
        size_t e = a[i] > b[i] ? (size_t)(a[i] - b[i]) : (size_t)(b[i] - a[i]);
        d.exact += e == 0;
        if (e > d.max_diff)
            d.max_diff = e;
    }
    return d;
}

static uint64_t fnv1a64(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static const uint8_t *ref_u8(const char *name, size_t want)
{
    const st_tensor *t = st_find(&g_ref, name);
    if (!t || strcmp(t->dtype_name, "U8") != 0 || t->numel != want) {
        CHECK(0, "expected.safetensors: no U8 tensor '%s' of %zu values", name, want);
        return NULL;
    }
    return g_ref.bytes + g_ref.data_start + t->begin;
}

static void path_of(char *buf, size_t n, const char *file) { snprintf(buf, n, "%s/%s", g_dir, file); }

static int load(image_rgb8 *img, const char *file)
{
    char p[768];
    path_of(p, sizeof p, file);
    ml_status s = image_load_rgb8(img, p, 0);
    CHECK(s == ML_OK, "load %s: %s", file, ml_last_error());
    return s == ML_OK;
}

static int is_jpeg(const char *file) { return strstr(file, ".jpg") != NULL; }

/* fields[0] = kind, fields[1] = file, ... , fields[n-1] = tensor */
static void case_decode(char **f, int n)
{
    if (n != 7) {
        CHECK(0, "decode line with %d fields", n);
        return;
    }
    image_rgb8 img;
    if (!load(&img, f[1]))
        return;
    size_t w = strtoull(f[2], NULL, 10), h = strtoull(f[3], NULL, 10);
    uint64_t hash = strtoull(f[4], NULL, 16);
    CHECK(img.width == w && img.height == h, "%s: %zu x %zu, Pillow %zu x %zu", f[1], img.width, img.height, w, h);
    if (img.width != w || img.height != h) {
        image_free_rgb8(&img);
        return;
    }
    int hash_ok = fnv1a64(img.data, w * h * 3) == hash;
    diff_stats d = {0, 0, 0};
    if (strcmp(f[5], "all") == 0) {
        const uint8_t *ref = ref_u8(f[6], w * h * 3);
        if (ref)
            d = diff_u8(img.data, ref, w * h * 3);
    } else {
        char rows[64];
        snprintf(rows, sizeof rows, "%s", f[5]);
        size_t nr = 0, idx[8];
        for (char *tok = strtok(rows, ","); tok && nr < 8; tok = strtok(NULL, ","))
            idx[nr++] = strtoull(tok, NULL, 10);
        const uint8_t *ref = ref_u8(f[6], nr * w * 3);
        for (size_t r = 0; ref && r < nr; r++) {
            diff_stats dr = diff_u8(img.data + idx[r] * w * 3, ref + r * w * 3, w * 3);
            d.n += dr.n;
            d.exact += dr.exact;
            if (dr.max_diff > d.max_diff)
                d.max_diff = dr.max_diff;
        }
    }
    printf("  decode %-22s %4zu x %-4zu %s, %zu/%zu sampled values exact, max diff %zu\n", f[1], w, h,
           hash_ok ? "hash equal" : "HASH DIFFERS", d.exact, d.n, d.max_diff);
    /* PNG decoding is exact by definition; JPEG within one level (the IDCT of
     * another libjpeg-turbo build), exact with the one Pillow used here */
    if (is_jpeg(f[1]))
        CHECK(d.max_diff <= 1 && d.n > 0, "%s: decode differs from Pillow by %zu", f[1], d.max_diff);
    else
        CHECK(hash_ok && d.exact == d.n && d.n > 0, "%s: PNG decode differs from Pillow", f[1]);
    image_free_rgb8(&img);
}

static void report(const char *what, diff_stats d)
{
    double share = d.n ? (double)d.exact / (double)d.n : 0;
    printf("  %-48s %7zu/%-7zu exact (%.3f%%), max diff %zu\n", what, d.exact, d.n, 100 * share, d.max_diff);
    CHECK(d.n > 0 && d.max_diff <= 1, "%s: max diff %zu levels (at most 1)", what, d.max_diff);
    CHECK(share >= MIN_EXACT_SHARE, "%s: only %.3f%% exact", what, 100 * share);
}

static int parse_transform(eval_transform *t, char **f)
{
    eval_transform_init(t, strtoull(f[2], NULL, 10));
    t->crop_pct = strtod(f[3], NULL);
    ml_status s = resample_parse_filter(&t->interp, f[4]);
    CHECK(s == ML_OK, "%s", ml_last_error());
    return s == ML_OK;
}

static void case_eval(char **f, int n)
{
    eval_transform t;
    if (n != 6 || !parse_transform(&t, f)) {
        CHECK(n == 6, "eval line with %d fields", n);
        return;
    }
    image_rgb8 img, out;
    if (!load(&img, f[1]))
        return;
    ml_status s = eval_transform_rgb8(&out, &t, &img);
    CHECK(s == ML_OK, "eval %s: %s", f[1], ml_last_error());
    const uint8_t *ref = ref_u8(f[5], t.size * t.size * 3);
    if (s == ML_OK && ref) {
        char what[160];
        snprintf(what, sizeof what, "eval %s R=%zu crop_pct %s %s", f[1], t.size, f[3], f[4]);
        CHECK(out.width == t.size && out.height == t.size, "%s: %zu x %zu", what, out.width, out.height);
        report(what, diff_u8(out.data, ref, t.size * t.size * 3));
    }
    image_free_rgb8(&out);
    image_free_rgb8(&img);
}

static void case_norm(char **f, int n)
{
    eval_transform t;
    if (n != 12 || !parse_transform(&t, f)) {
        CHECK(n == 12, "norm line with %d fields", n);
        return;
    }
    for (int c = 0; c < 3; c++) {
        t.mean[c] = (float)strtod(f[5 + c], NULL);
        t.std[c] = (float)strtod(f[8 + c], NULL);
    }
    image_rgb8 img;
    if (!load(&img, f[1]))
        return;
    size_t m = 3 * t.size * t.size;
    float *out = alloc_guarded(m), *ref = malloc(m * sizeof *ref);
    int64_t shape[3] = {3, (int64_t)t.size, (int64_t)t.size};
    ml_status s = st_load(&g_ref, f[11], 3, shape, ref);
    CHECK(s == ML_OK, "%s", ml_last_error());
    ml_status s2 = eval_transform_chw(out, &t, &img);
    CHECK(s2 == ML_OK, "norm %s: %s", f[1], ml_last_error());
    if (s == ML_OK && s2 == ML_OK) {
        size_t exact = 0;
        double md = 0, level = 0; /* level: one 8-bit step after Normalize, the smallest std's */
        for (int c = 0; c < 3; c++)
            level = fmax(level, 1.0 / 255.0 / t.std[c]);
        for (size_t i = 0; i < m; i++) {
            exact += out[i] == ref[i];
            md = fmax(md, fabs((double)out[i] - ref[i]));
        }
        printf("  norm %-20s R=%-3zu %s %-8s float32 %zu/%zu bit-exact, max |diff| %.3g\n", f[1], t.size, f[3],
               f[4], exact, m, md);
        CHECK(md <= level * 1.0001, "norm %s: max |diff| %.3g over one level (%.3g)", f[1], md, level);
        CHECK((double)exact >= MIN_EXACT_SHARE * (double)m, "norm %s: %zu/%zu exact", f[1], exact, m);
        CHECK(guard_intact(out, m), "norm %s: wrote past the output", f[1]);
    }
    free(out);
    free(ref);
    image_free_rgb8(&img);
}

static void case_resize(char **f, int n)
{
    resample_filter flt;
    if (n != 6 || resample_parse_filter(&flt, f[4]) != ML_OK) {
        CHECK(0, "resize line: %d fields", n);
        return;
    }
    size_t w = strtoull(f[2], NULL, 10), h = strtoull(f[3], NULL, 10);
    image_rgb8 img, out;
    if (!load(&img, f[1]))
        return;
    ml_status s = resample_resize_rgb8(&out, &img, w, h, flt);
    CHECK(s == ML_OK, "resize %s: %s", f[1], ml_last_error());
    const uint8_t *ref = ref_u8(f[5], w * h * 3);
    if (s == ML_OK && ref) {
        char what[160];
        snprintf(what, sizeof what, "resize %s %zux%zu -> %zux%zu %s", f[1], img.width, img.height, w, h, f[4]);
        report(what, diff_u8(out.data, ref, w * h * 3));
        /* every window of the resize is that part of it */
        image_rgb8 win;
        size_t x0 = w / 3, y0 = h / 4, ww = w - x0 > 7 ? 7 : w - x0, wh = h - y0;
        s = resample_resize_window_rgb8(&win, &img, w, h, x0, y0, ww, wh, flt);
        CHECK(s == ML_OK, "window: %s", ml_last_error());
        for (size_t y = 0; s == ML_OK && y < wh; y++)
            CHECK(memcmp(win.data + y * ww * 3, out.data + ((y0 + y) * w + x0) * 3, ww * 3) == 0,
                  "%s: window row %zu differs from the full resize", what, y);
        image_free_rgb8(&win);
    }
    image_free_rgb8(&out);
    image_free_rgb8(&img);
}

/* Files Pillow refuses (bad) or that we refuse on purpose (stricter). */
static void case_bad(char **f, int n)
{
    char p[768];
    path_of(p, sizeof p, f[1]);
    image_rgb8 img;
    ml_status s = image_load_rgb8(&img, p, 0);
    printf("  %-8s %-20s -> %d: %s\n", f[0], f[1], s, s ? ml_last_error() : "decoded");
    CHECK(s == ML_ERR_FORMAT, "%s (%s): status %d, want %d (Pillow: %s)", f[1], f[2], s, ML_ERR_FORMAT,
          n > 3 ? f[3] : "");
    CHECK(s == ML_OK || strstr(ml_last_error(), p) != NULL, "%s: message '%s' does not name the file", f[1],
          ml_last_error());
    CHECK(s == ML_OK || strchr(ml_last_error(), '\n') == NULL, "%s: message spans lines", f[1]);
    CHECK(img.data == NULL && img.width == 0, "%s: failure left an image behind", f[1]);
    if (s == ML_OK)
        image_free_rgb8(&img);
}

static void run_cases(void)
{
    char p[768];
    path_of(p, sizeof p, "cases.txt");
    FILE *fp = fopen(p, "r");
    if (!fp) {
        CHECK(0, "cannot open %s: %s", p, strerror(errno));
        return;
    }
    char line[1024];
    int counts[6] = {0};
    while (fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char *f[16];
        int n = 0;
        for (char *save = NULL, *tok = strtok_r(line, "\t", &save); tok && n < 16; tok = strtok_r(NULL, "\t", &save))
            f[n++] = tok;
        if (n < 3) {
            CHECK(0, "cases.txt: short line");
            continue;
        }
        if (strcmp(f[0], "decode") == 0)
            case_decode(f, n), counts[0]++;
        else if (strcmp(f[0], "eval") == 0)
            case_eval(f, n), counts[1]++;
        else if (strcmp(f[0], "norm") == 0)
            case_norm(f, n), counts[2]++;
        else if (strcmp(f[0], "resize") == 0)
            case_resize(f, n), counts[3]++;
        else if (strcmp(f[0], "bad") == 0 || strcmp(f[0], "stricter") == 0)
            case_bad(f, n), counts[4]++;
        else if (strcmp(f[0], "cut") == 0 && n == 4)
            test_truncation(f[1], strtoull(f[2], NULL, 10), strtoull(f[3], NULL, 10)), counts[5]++;
        else
            CHECK(0, "cases.txt: unknown kind '%s'", f[0]);
    }
    fclose(fp);
    printf("  %d decodes, %d evals, %d normalised, %d resizes, %d bad files, %d truncation sweeps\n", counts[0],
           counts[1], counts[2], counts[3], counts[4], counts[5]);
    CHECK(counts[0] >= 25 && counts[1] >= 20 && counts[2] >= 3 && counts[3] >= 8 && counts[4] >= 12 && counts[5] >= 8,
          "cases.txt holds fewer cases than it should");
}

/* ------------------------------------------------------------ bad bytes --- */

static uint8_t *read_fixture(const char *file, size_t *n)
{
    char p[768];
    path_of(p, sizeof p, file);
    FILE *fp = fopen(p, "rb");
    if (!fp) {
        CHECK(0, "cannot open %s", p);
        return NULL;
    }
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *b = malloc(len > 0 ? (size_t)len : 1);
    *n = fread(b, 1, (size_t)len, fp);
    fclose(fp);
    return b;
}

/* Every cut of a file against Pillow's verdict (a "cut" line: Pillow decodes
 * the file cut to first_ok bytes or more, and refuses every shorter cut):
 * refused as ML_ERR_FORMAT, or decoded to the full image's pixels. */
static void test_truncation(const char *file, size_t n_want, size_t first_ok)
{
    size_t n = 0;
    uint8_t *b = read_fixture(file, &n);
    if (!b)
        return;
    CHECK(n == n_want, "%s: %zu bytes, the fixture said %zu", file, n, n_want);
    image_rgb8 full, img;
    ML_ASSERT(image_decode_rgb8(&full, b, n, file, 0) == ML_OK);
    size_t tried = 0, refused = 0, wrong = 0;
    /* every length near both ends, a stride through the middle */
    for (size_t cut = 0; cut < n; cut += (cut < 100 || cut + 100 >= n) ? 1 : (n / 97 + 1)) {
        uint8_t *copy = malloc(cut ? cut : 1); /* a fresh copy: ASan sees any read past the end */
        memcpy(copy, b, cut);
        ml_status s = image_decode_rgb8(&img, copy, cut, file, 0);
        tried++;
        if (cut >= first_ok) {
            int same = s == ML_OK && img.width == full.width && img.height == full.height &&
                       memcmp(img.data, full.data, full.width * full.height * 3) == 0;
            wrong += !same;
            CHECK(same, "%s cut to %zu of %zu bytes: Pillow decodes it, we gave %d (%s)", file, cut, n, s,
                  s ? ml_last_error() : "other pixels");
        } else {
            refused += s == ML_ERR_FORMAT;
            wrong += s != ML_ERR_FORMAT;
            CHECK(s == ML_ERR_FORMAT, "%s cut to %zu of %zu bytes: Pillow refuses it, we gave %d (%s)", file, cut, n,
                  s, s ? ml_last_error() : "decoded");
        }
        if (s == ML_OK)
            image_free_rgb8(&img);
        free(copy);
    }
    printf("  cuts %-24s %4zu lengths: %zu refused, %zu decoded whole (Pillow's verdict on all: %s)\n", file,
           tried, refused, tried - refused - wrong, wrong ? "NO" : "yes");
    image_free_rgb8(&full);
    free(b);
}

/* Random damage: decoding may succeed (libjpeg shrugs off corrupt entropy
 * data, as Pillow does) or fail as ML_ERR_FORMAT, never anything else. */
static void test_damage(const char *file, int rounds)
{
    size_t n = 0;
    uint8_t *b = read_fixture(file, &n);
    if (!b)
        return;
    rng_state r;
    rng_seed(&r, 1234 + n);
    size_t ok = 0, refused = 0;
    for (int i = 0; i < rounds; i++) {
        uint8_t *copy = malloc(n);
        memcpy(copy, b, n);
        int flips = 1 + (int)((uint32_t)rng_next_u64(&r) % 4);
        for (int k = 0; k < flips; k++) {
            /* half the time in the first 200 bytes: headers and tables */
            size_t at = ((uint32_t)rng_next_u64(&r) & 1) ? (uint32_t)rng_next_u64(&r) % (n < 200 ? n : 200) : (uint32_t)rng_next_u64(&r) % n;
            copy[at] ^= (uint8_t)(1 + (uint32_t)rng_next_u64(&r) % 255);
        }
        image_rgb8 img;
        ml_status s = image_decode_rgb8(&img, copy, n, file, 1 << 22);
        CHECK(s == ML_OK || s == ML_ERR_FORMAT, "%s damaged (round %d): status %d (%s)", file, i, s, ml_last_error());
        if (s == ML_OK) {
            ok++;
            image_free_rgb8(&img);
        } else {
            refused++;
            CHECK(strstr(ml_last_error(), file) != NULL, "message '%s' does not name %s", ml_last_error(), file);
        }
        free(copy);
    }
    printf("  damage %-24s %d rounds: %zu decoded, %zu refused\n", file, rounds, ok, refused);
    free(b);
}

static void test_limits(void)
{
    image_rgb8 img;
    char p[768];
    path_of(p, sizeof p, "g_odd_420.jpg");
    ml_status s = image_load_rgb8(&img, p, 101 * 67 - 1);
    CHECK(s == ML_ERR_FORMAT && strstr(ml_last_error(), "limit") && strstr(ml_last_error(), p),
          "JPEG over a pixel limit: %d %s", s, ml_last_error());
    s = image_load_rgb8(&img, p, 101 * 67);
    CHECK(s == ML_OK, "JPEG at the pixel limit: %s", ml_last_error());
    image_free_rgb8(&img);
    path_of(p, sizeof p, "g_tall.png");
    s = image_load_rgb8(&img, p, 23 * 151 - 1);
    CHECK(s == ML_ERR_FORMAT && strstr(ml_last_error(), "limit"), "PNG over a pixel limit: %d %s", s,
          ml_last_error());
    /* allocation size overflow is refused, not wrapped */
    s = image_alloc_rgb8(&img, SIZE_MAX / 2, 3);
    CHECK(s == ML_ERR_USAGE && img.data == NULL, "overflowing image size: %d", s);
}

static void test_unreadable(void)
{
    image_rgb8 img;
    char p[600];
    snprintf(p, sizeof p, "%s/missing.jpg", g_tmp);
    ml_status s = image_load_rgb8(&img, p, 0);
    CHECK(s == ML_ERR_IO && strstr(ml_last_error(), p), "missing file: %d %s", s, ml_last_error());
    snprintf(p, sizeof p, "%s/dir.jpg", g_tmp);
    mkdir(p, 0755);
    s = image_load_rgb8(&img, p, 0);
    CHECK(s == ML_ERR_IO && strstr(ml_last_error(), p), "a folder named .jpg: %d %s", s, ml_last_error());
    snprintf(p, sizeof p, "%s/dangling.png", g_tmp);
    if (symlink("/nonexistent/mixerlab", p) == 0) {
        s = image_load_rgb8(&img, p, 0);
        CHECK(s == ML_ERR_IO, "dangling link: %d %s", s, ml_last_error());
    }
    snprintf(p, sizeof p, "%s/noperm.png", g_tmp);
    FILE *fp = fopen(p, "wb");
    fputs("x", fp);
    fclose(fp);
    chmod(p, 0);
    if (geteuid() != 0) {
        s = image_load_rgb8(&img, p, 0);
        CHECK(s == ML_ERR_IO && strstr(ml_last_error(), p), "unreadable file: %d %s", s, ml_last_error());
    } else {
        printf("  (running as root: permissions do not stop reads, the mode-000 check is skipped)\n");
    }
}

/* -------------------------------------------------------------- resample --- */

static void test_crop_and_plan(void)
{
    /* torchvision's offsets int(round((size - crop) / 2)): halves to even */
    const size_t widths[] = {257, 259, 224, 225, 226, 300};
    const size_t want[] = {16, 18, 0, 0, 1, 38};
    for (int i = 0; i < 6; i++) {
        image_rgb8 in, out;
        ML_ASSERT(image_alloc_rgb8(&in, widths[i], 1) == ML_OK);
        for (size_t x = 0; x < widths[i]; x++)
            in.data[3 * x] = in.data[3 * x + 1] = in.data[3 * x + 2] = (uint8_t)x;
        ML_ASSERT(resample_center_crop_rgb8(&out, &in, 224, 1) == ML_OK);
        CHECK(out.data[0] == (uint8_t)want[i], "crop of %zu: offset %d, want %zu", widths[i], out.data[0], want[i]);
        image_free_rgb8(&out);
        image_free_rgb8(&in);
    }
    /* smaller than the crop: zero padding, (crop - size) // 2 before */
    image_rgb8 in, out;
    ML_ASSERT(image_alloc_rgb8(&in, 3, 2) == ML_OK);
    memset(in.data, 200, 18);
    ML_ASSERT(resample_center_crop_rgb8(&out, &in, 6, 5) == ML_OK);
    size_t inside = 0;
    for (size_t y = 0; y < 5; y++)
        for (size_t x = 0; x < 6; x++) {
            int want_in = x >= 1 && x < 4 && y >= 1 && y < 3;
            inside += want_in;
            CHECK(out.data[(y * 6 + x) * 3] == (want_in ? 200 : 0), "padded crop at (%zu, %zu)", x, y);
        }
    image_free_rgb8(&out);
    image_free_rgb8(&in);

    eval_transform t;
    eval_transform_init(&t, 224);
    size_t w, h;
    CHECK(eval_transform_plan(&w, &h, &t, 640, 427) == ML_OK && w == 335 && h == 224, "plan 640x427: %zu x %zu", w, h);
    t.crop_pct = 0.875;
    CHECK(eval_transform_plan(&w, &h, &t, 427, 640) == ML_OK && w == 256 && h == 383, "plan 427x640: %zu x %zu", w, h);
    t.crop_pct = 0.95; /* floor(235.79) */
    CHECK(eval_transform_plan(&w, &h, &t, 500, 500) == ML_OK && w == 235 && h == 235, "plan square: %zu", w);
    const struct {
        double crop_pct;
        size_t size;
        float std0;
    } bad[] = {{0, 224, 1}, {-1, 224, 1}, {NAN, 224, 1}, {INFINITY, 224, 1}, {1, 0, 1}, {1, 224, 0},
               {1e-9, 224, 1}, {300, 224, 1}};
    for (int i = 0; i < 8; i++) {
        eval_transform_init(&t, bad[i].size);
        t.crop_pct = bad[i].crop_pct;
        t.std[0] = bad[i].std0;
        CHECK(eval_transform_check(&t) == ML_ERR_USAGE, "bad transform %d accepted", i);
    }
    resample_filter f;
    CHECK(resample_parse_filter(&f, "lanczos") == ML_ERR_USAGE, "lanczos accepted");
    CHECK(resample_parse_filter(&f, "BICUBIC") == ML_OK && f == RESAMPLE_BICUBIC, "BICUBIC refused");
    eval_transform_init(&t, 224);
    CHECK(t.mean[0] == (float)0.485 && t.std[2] == (float)0.225 && t.crop_pct == 1.0 && t.interp == RESAMPLE_BICUBIC,
          "MambaOut's cfg");
}

/* ----------------------------------------------------------- imagefolder --- */

static void touch(const char *root, const char *rel)
{
    char p[1024];
    mkdir(root, 0755);
    snprintf(p, sizeof p, "%s/%s", root, rel);
    for (char *s = p + strlen(root) + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0755);
            *s = '/';
        }
    FILE *fp = fopen(p, "wb");
    if (!fp) {
        fprintf(stderr, "cannot create %s\n", p);
        exit(2);
    }
    fclose(fp);
}

static void expect_scan_error(const char *label, const char *root, ml_status code, const char *needle)
{
    imagefolder f;
    ml_status s = imagefolder_scan(&f, root, 0);
    CHECK(s == code, "%s: status %d, want %d (%s)", label, s, code, s ? ml_last_error() : "scanned");
    if (s != ML_OK) {
        CHECK(strstr(ml_last_error(), needle) != NULL, "%s: message '%s' lacks '%s'", label, ml_last_error(), needle);
        CHECK(f.items == NULL && f.classes == NULL, "%s: failure left a listing behind", label);
        printf("  %-28s -> %d: %s\n", label, s, ml_last_error());
    } else {
        imagefolder_free(&f);
    }
}

static void test_folder(void)
{
    char root[400], p[768];
    snprintf(root, sizeof root, "%s/val", g_tmp);
    mkdir(root, 0755);
    path_of(p, sizeof p, "folder_order.txt");
    FILE *fp = fopen(p, "r");
    if (!fp) {
        CHECK(0, "cannot open %s", p);
        return;
    }
    char line[512];
    char *classes[64], *images[128];
    size_t labels[128], nc = 0, ni = 0;
    while (fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *a = strtok(line, "\t"), *b = strtok(NULL, "\t"), *c = strtok(NULL, "\t");
        if (!a || a[0] == '#')
            continue;
        if (strcmp(a, "file") == 0 && b)
            touch(root, b);
        else if (strcmp(a, "class") == 0 && c && nc < 64)
            classes[nc++] = strdup(c);
        else if (strcmp(a, "image") == 0 && c && ni < 128) {
            labels[ni] = strtoull(b, NULL, 10);
            images[ni++] = strdup(c);
        }
    }
    fclose(fp);
    imagefolder f;
    ml_status s = imagefolder_scan(&f, root, 0);
    CHECK(s == ML_OK, "scan: %s", ml_last_error());
    if (s == ML_OK) {
        CHECK(f.n_classes == nc && f.n_items == ni && f.n_found == ni, "scan: %zu classes, %zu images; timm %zu, %zu",
              f.n_classes, f.n_items, nc, ni);
        for (size_t i = 0; i < nc && i < f.n_classes; i++)
            CHECK(strcmp(f.classes[i], classes[i]) == 0, "class %zu: '%s', timm '%s'", i, f.classes[i], classes[i]);
        size_t same = 0;
        for (size_t i = 0; i < ni && i < f.n_items; i++) {
            char want[768];
            snprintf(want, sizeof want, "%s/%s", root, images[i]);
            int eq = strcmp(f.items[i].path, want) == 0 && f.items[i].label == labels[i];
            same += eq;
            CHECK(eq, "image %zu: '%s' (%zu), timm '%s' (%zu)", i, f.items[i].path, f.items[i].label, want, labels[i]);
        }
        printf("  folder: %zu classes, %zu/%zu images in timm's order with timm's labels\n", f.n_classes, same, ni);
        imagefolder_free(&f);
    }
    /* a limit keeps the first images and every class */
    char slash[420];
    snprintf(slash, sizeof slash, "%s//", root);
    s = imagefolder_scan(&f, slash, 5);
    CHECK(s == ML_OK && f.n_items == 5 && f.n_found == ni && f.n_classes == nc, "limit 5: %zu of %zu", f.n_items,
          f.n_found);
    for (size_t i = 0; s == ML_OK && i < 5 && i < ni; i++) {
        char want[768];
        snprintf(want, sizeof want, "%s/%s", root, images[i]);
        CHECK(strcmp(f.items[i].path, want) == 0, "limit: image %zu is '%s'", i, f.items[i].path);
    }
    if (s == ML_OK)
        imagefolder_free(&f);
    for (size_t i = 0; i < nc; i++)
        free(classes[i]);
    for (size_t i = 0; i < ni; i++)
        free(images[i]);

    /* bad layouts */
    char d[600];
    snprintf(d, sizeof d, "%s/nonexistent", g_tmp);
    expect_scan_error("missing folder", d, ML_ERR_IO, "nonexistent");
    snprintf(d, sizeof d, "%s/val/cat/a.png", g_tmp);
    expect_scan_error("a file as the folder", d, ML_ERR_USAGE, "not a folder");
    snprintf(d, sizeof d, "%s/empty", g_tmp);
    mkdir(d, 0755);
    expect_scan_error("empty folder", d, ML_ERR_USAGE, "no class sub-folders");
    snprintf(d, sizeof d, "%s/flat", g_tmp);
    touch(d, "a.jpg");
    expect_scan_error("images without classes", d, ML_ERR_USAGE, "flat/a.jpg");
    snprintf(d, sizeof d, "%s/notes_only", g_tmp);
    touch(d, "README.txt");
    expect_scan_error("no class folders, a text file", d, ML_ERR_USAGE, "no class sub-folders");
    snprintf(d, sizeof d, "%s/mixed", g_tmp);
    touch(d, "cls/a.jpg");
    touch(d, "stray.PNG");
    expect_scan_error("image beside class folders", d, ML_ERR_USAGE, "stray.PNG");
    snprintf(d, sizeof d, "%s/emptyclass", g_tmp);
    touch(d, "a/x.jpg");
    touch(d, "b/notes.txt");
    expect_scan_error("empty class", d, ML_ERR_USAGE, "emptyclass/b");
    snprintf(d, sizeof d, "%s/nested", g_tmp);
    touch(d, "a/x.jpg");
    touch(d, "a/deeper/y.jpg");
    expect_scan_error("folder inside a class", d, ML_ERR_USAGE, "a/deeper");
    if (geteuid() != 0) {
        snprintf(d, sizeof d, "%s/locked", g_tmp);
        touch(d, "a/x.jpg");
        snprintf(p, sizeof p, "%s/a", d);
        chmod(p, 0);
        expect_scan_error("unreadable class folder", d, ML_ERR_IO, "locked/a");
        chmod(p, 0755);
    }

    /* the name rules on their own */
    CHECK(imagefolder_is_image_name("a.JPG") && imagefolder_is_image_name("a.b.jpeg") &&
              imagefolder_is_image_name(".x.png") && !imagefolder_is_image_name(".jpg") &&
              !imagefolder_is_image_name("..png") && !imagefolder_is_image_name("a.gif") &&
              !imagefolder_is_image_name("jpg") && !imagefolder_is_image_name("a.jpg.txt"),
          "image name rules");
    CHECK(imagefolder_natural_cmp("img9", "img10") < 0 && imagefolder_natural_cmp("Img10", "img9") > 0 &&
              imagefolder_natural_cmp("a01", "a1") == 0 && imagefolder_natural_cmp("a", "a1") < 0 &&
              imagefolder_natural_cmp("a1", "a1b") < 0 && imagefolder_natural_cmp("B", "a") > 0 &&
              imagefolder_natural_cmp("x99999999999999999999999", "x100000000000000000000000") < 0 &&
              imagefolder_natural_cmp("cat2/a", "cat/a") < 0,
          "natural order");
}

/* ------------------------------------------ an image folder as a dataset --- */

/* The folder of tests/fixtures/eval/layout.txt through the folder dataset
 * (decode, timm's transform, timm's order and labels, two decoding workers,
 * the loader's batches of 3) against timm's ImageDataset + create_transform
 * tensors (scripts/make_eval_fixtures.py). */
static void test_folder_dataset(const char *fixtures)
{
    char p[1024], root[400];
    snprintf(root, sizeof root, "%s/evalset", g_tmp);
    snprintf(p, sizeof p, "%s/eval/layout.txt", fixtures);
    FILE *lay = fopen(p, "r");
    CHECK(lay != NULL, "cannot open %s", p);
    if (!lay)
        return;
    char cls[64], file[128];
    while (fscanf(lay, "%63s %127s", cls, file) == 2) {
        size_t n;
        uint8_t *b = read_fixture(file, &n);
        snprintf(p, sizeof p, "%s/%s", cls, file);
        touch(root, p);
        snprintf(p, sizeof p, "%s/%s/%s", root, cls, file);
        FILE *o = fopen(p, "wb");
        if (b && o)
            fwrite(b, 1, n, o);
        if (o)
            fclose(o);
        free(b);
    }
    fclose(lay);
    st_file ref;
    snprintf(p, sizeof p, "%s/eval/inputs.safetensors", fixtures);
    if (st_open(&ref, p) != ML_OK) {
        CHECK(0, "%s", ml_last_error());
        return;
    }
    const st_tensor *ti = st_find(&ref, "input");
    const int n = ti ? (int)ti->shape[0] : 0, R = ti ? (int)ti->shape[2] : 0;
    const size_t per = (size_t)3 * R * R;
    float *want = malloc((size_t)n * per * sizeof *want + 1), *wl = malloc((size_t)n * sizeof *wl + 1);
    CHECK(ti && st_read_f32(&ref, ti, want) == ML_OK && st_read_f32(&ref, st_find(&ref, "labels"), wl) == ML_OK,
          "inputs.safetensors: %s", ml_last_error());
    dataset_options o = dataset_options_default(); /* MambaOut's: 1.0, bicubic, ImageNet mean/std */
    o.workers = 2;
    dataset d;
    snprintf(p, sizeof p, "folder:dir=%s", root);
    ml_status s = dataset_open_with(&d, p, 0, &o);
    CHECK(s == ML_OK, "open %s: %s", p, ml_last_error());
    if (s == ML_OK) {
        CHECK(d.n[DATA_TEST] == (size_t)n && d.classes == 3, "%zu images, %d classes (want %d, 3)", d.n[DATA_TEST],
              d.classes, n);
        size_t *order = malloc((size_t)n * sizeof *order);
        for (int i = 0; i < n; i++)
            order[i] = (size_t)i;
        loader *l = NULL;
        s = loader_start(&l, &d, DATA_TEST, order, (size_t)n, 3, R, 0, 0, 0);
        int at = 0, labels_ok = 1;
        size_t exact = 0;
        double md = 0;
        while (s == ML_OK) {
            const float *x;
            const int32_t *lb;
            int count;
            if ((s = loader_next(l, &x, &lb, &count)) != ML_OK || count == 0)
                break;
            for (int i = 0; i < count && at + i < n; i++) {
                labels_ok &= lb[i] == (int32_t)wl[at + i];
                for (size_t k = 0; k < per; k++) {
                    const float a = x[(size_t)i * per + k], b = want[(size_t)(at + i) * per + k];
                    exact += a == b;
                    md = fmax(md, fabs((double)a - b));
                }
            }
            at += count;
        }
        loader_stop(l);
        CHECK(s == ML_OK, "loader: %s", ml_last_error());
        CHECK(at == n && labels_ok, "%d images, labels %s timm's", at, labels_ok ? "equal" : "differ from");
        const double level = 1.0 / 255.0 / 0.224999994f;
        printf("  folder dataset (%d images, 3 classes) vs timm ImageDataset + create_transform: labels %s, %zu/%zu "
               "values bit-exact, max |diff| %.3g\n", at, labels_ok ? "equal" : "DIFFER", exact, (size_t)n * per, md);
        CHECK(md <= level * 1.0001, "folder dataset: max |diff| %.3g over one level", md);
        CHECK((double)exact >= MIN_EXACT_SHARE * (double)n * (double)per, "folder dataset: %zu exact", exact);
        CHECK(strcmp(dataset_class_name(&d, 0), "Ant") == 0 && strcmp(dataset_class_name(&d, 2), "c10") == 0,
              "class order %s, ..., %s", dataset_class_name(&d, 0), dataset_class_name(&d, 2));
        free(order);
        dataset_close(&d);
    }
    /* the training split with random erasing on: each image is the unerased augmented one except in one
     * box, the same box in the three planes, filled with a value per pixel per plane */
    snprintf(p, sizeof p, "folder:dir=%s,train=%s", root, root);
    float *plain = malloc((size_t)n * per * sizeof *plain + 1), *er = malloc((size_t)n * per * sizeof *er + 1);
    size_t *idx = malloc((size_t)n * sizeof *idx + 1);
    int32_t *lb = malloc((size_t)n * sizeof *lb + 1);
    for (int i = 0; i < n; i++)
        idx[i] = (size_t)i;
    int opened = 0;
    for (int pass = 0; pass < 2 && n > 0; pass++) {
        o.erase = pass;
        s = dataset_open_with(&d, p, 0, &o);
        CHECK(s == ML_OK, "open %s: %s", p, ml_last_error());
        if (s != ML_OK)
            break;
        opened++;
        CHECK(d.batch(&d, DATA_TRAIN, idx, n, R, 1, 11, pass ? er : plain, lb) == ML_OK, "train batch: %s",
              ml_last_error());
        dataset_close(&d);
    }
    if (opened == 2) {
        int bad = 0, erased = 0;
        const size_t plane = (size_t)R * R;
        for (int i = 0; i < n; i++) {
            const float *e = er + (size_t)i * per, *q = plain + (size_t)i * per;
            int y0 = R, y1 = -1, x0 = R, x1 = -1;
            for (size_t k = 0; k < plane; k++)
                if (e[k] != q[k]) {
                    const int y = (int)(k / (size_t)R), xx = (int)(k % (size_t)R);
                    y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1, x0 = xx < x0 ? xx : x0, x1 = xx > x1 ? xx : x1;
                }
            if (y1 < 0)
                continue;
            erased++;
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < R; y++)
                    for (int xx = 0; xx < R; xx++) {
                        const size_t k = (size_t)c * plane + (size_t)y * R + xx;
                        const int in = y >= y0 && y <= y1 && xx >= x0 && xx <= x1;
                        bad += in ? (c > 0 && e[k] == e[(size_t)y * R + xx]) : e[k] != q[k];
                    }
        }
        printf("  folder training split with random erasing p=1: %d of %d images erased in one box\n", erased, n);
        CHECK(erased >= n - 1 && bad == 0, "folder random erasing: %d of %d erased, %d pixels off the rules", erased,
              n, bad);
    }
    free(plain), free(er), free(idx), free(lb);
    free(want), free(wl);
    st_close(&ref);
}

/* timm's training transform (random-resized crop, flip): a constant image stays that constant,
 * normalised; the same seed gives the same tensor and another seed another; the flip happens for
 * about half the seeds; every box fits (no read outside the image: ASan). */
static void test_train_transform(void)
{
    eval_transform t;
    eval_transform_init(&t, 16);
    image_rgb8 flat, ramp;
    CHECK(image_alloc_rgb8(&flat, 50, 37) == ML_OK && image_alloc_rgb8(&ramp, 61, 23) == ML_OK, "alloc");
    for (size_t i = 0; i < 50 * 37; i++)
        flat.data[3 * i] = 10, flat.data[3 * i + 1] = 200, flat.data[3 * i + 2] = 77;
    for (size_t y = 0; y < 23; y++)
        for (size_t x = 0; x < 61; x++)
            for (int c = 0; c < 3; c++)
                ramp.data[(y * 61 + x) * 3 + c] = (uint8_t)(4 * x + c);
    float a[3 * 256], b[3 * 256];
    const uint8_t v[3] = {10, 200, 77};
    int flat_ok = 1, increasing = 0, decreasing = 0, differ = 0;
    for (uint64_t seed = 0; seed < 200; seed++) {
        rng_state r;
        rng_seed(&r, seed);
        CHECK(train_transform_chw(a, &t, &flat, &r) == ML_OK, "flat: %s", ml_last_error());
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 256; i++)
                flat_ok &= a[c * 256 + i] == ((float)v[c] / 255.0f - t.mean[c]) / t.std[c];
        rng_seed(&r, seed);
        CHECK(train_transform_chw(a, &t, &ramp, &r) == ML_OK, "ramp: %s", ml_last_error());
        rng_seed(&r, seed);
        train_transform_chw(b, &t, &ramp, &r);
        CHECK(memcmp(a, b, sizeof a) == 0, "seed %llu: two calls differ", (unsigned long long)seed);
        rng_seed(&r, seed + 1000);
        train_transform_chw(b, &t, &ramp, &r);
        differ += memcmp(a, b, sizeof a) != 0;
        increasing += a[15] > a[0], decreasing += a[15] < a[0];
    }
    CHECK(flat_ok, "a constant image does not stay constant through the training transform");
    CHECK(differ >= 195, "other seeds gave the same crop %d times of 200", 200 - differ);
    CHECK(increasing > 60 && decreasing > 60, "flips: %d increasing, %d decreasing rows of 200", increasing,
          decreasing);
    printf("  training transform: 200 seeds, %d flipped, %d unflipped, %d of 200 differ from another seed\n",
           decreasing, increasing, differ);
    image_free_rgb8(&flat);
    image_free_rgb8(&ramp);
}

int main(int argc, char **argv)
{
    const char *fixtures = argc > 1 ? argv[1] : "tests/fixtures";
    snprintf(g_dir, sizeof g_dir, "%s/images", fixtures);
    test_tmpdir(g_tmp, sizeof g_tmp, "image");
    char p[768];
    path_of(p, sizeof p, "expected.safetensors");
    if (st_open(&g_ref, p) != ML_OK) {
        fprintf(stderr, "test_image: %s\n", ml_last_error());
        return 1;
    }
    printf("golden cases (tests/fixtures/images/cases.txt):\n");
    run_cases();
    printf("bad input:\n");
    const char *dmg[] = {"g_odd_420.jpg", "g_progressive.jpg", "g_cmyk.jpg", "g_tiny.png", "g_interlaced.png",
                         "g_palette2.png"};
    for (int i = 0; i < 6; i++)
        test_damage(dmg[i], 300);
    test_limits();
    test_unreadable();
    printf("crop, plan and parameters:\n");
    test_crop_and_plan();
    test_train_transform();
    printf("image folder:\n");
    test_folder();
    test_folder_dataset(fixtures);
    st_close(&g_ref);
    test_tmpdir_remove(g_tmp);
    return test_summary("test_image");
}
