/* safetensors: round trip, F16/BF16 conversion against values written by
 * PyTorch (fixture), and every kind of damaged file giving its own error. */
#include "models/model.h"
#include "models/safetensors.h"
#include "test_util.h"

#include <time.h>
#include <unistd.h>

static char tmpdir[256];

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(p, 1, n, fp) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
    fclose(fp);
}

/* A header followed by data_len zero bytes. */
static void write_st(const char *path, const char *json, size_t data_len)
{
    size_t hl = strlen(json);
    unsigned char *buf = calloc(8 + hl + data_len, 1);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, json, hl);
    write_bytes(path, buf, 8 + hl + data_len);
    free(buf);
}

static void expect_open_error(const char *label, const char *path, ml_status code, const char *needle)
{
    st_file f;
    ml_status s = st_open(&f, path);
    CHECK(s == code, "%s: status %d, want %d (%s)", label, s, code, s ? ml_last_error() : "opened");
    if (s != ML_OK)
        CHECK(strstr(ml_last_error(), needle) != NULL, "%s: message '%s' lacks '%s'", label,
              ml_last_error(), needle);
    else
        st_close(&f);
}

static void test_roundtrip(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/rt.safetensors", tmpdir);
    float a[6] = {1.5f, -2.25f, 3e-8f, 1e30f, -0.0f, 7.0f}, b[3] = {0.1f, 0.2f, 0.3f};
    st_entry e[2] = {{.name = "a.weight", .ndim = 2, .shape = {2, 3}, .data = a},
                     {.name = "b", .ndim = 1, .shape = {3}, .data = b}};
    const char *meta[] = {"k", "v", NULL};
    CHECK(st_write(path, e, 2, meta) == ML_OK, "write: %s", ml_last_error());
    st_file f;
    CHECK(st_open(&f, path) == ML_OK, "reopen: %s", ml_last_error());
    if (f.count != 2) {
        CHECK(0, "round trip count %d", f.count);
        return;
    }
    float got[6];
    int64_t s23[2] = {2, 3}, s3[1] = {3}, s32[2] = {3, 2};
    CHECK(st_load(&f, "a.weight", 2, s23, got) == ML_OK && memcmp(got, a, sizeof a) == 0, "a bits");
    CHECK(st_load(&f, "b", 1, s3, got) == ML_OK && memcmp(got, b, sizeof b) == 0, "b bits");
    CHECK(st_load(&f, "a.weight", 2, s32, got) == ML_ERR_FORMAT &&
              strstr(ml_last_error(), "a.weight") && strstr(ml_last_error(), "[2, 3]"),
          "wrong shape must name tensor and shapes: %s", ml_last_error());
    CHECK(st_load(&f, "nope", 1, s3, got) == ML_ERR_FORMAT && strstr(ml_last_error(), "nope"),
          "missing tensor: %s", ml_last_error());
    CHECK((f.data_start % 8) == 0, "header padded to 8");
    st_close(&f);
    /* writing into a missing folder fails cleanly and leaves nothing behind */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.safetensors", tmpdir);
    CHECK(st_write(bad, e, 2, NULL) == ML_ERR_IO, "write into missing folder");
}

static void test_dtypes(const char *fixtures)
{
    char path[512];
    snprintf(path, sizeof path, "%s/dtypes.safetensors", fixtures);
    st_file f;
    if (st_open(&f, path) != ML_OK) {
        CHECK(0, "dtype fixture: %s", ml_last_error());
        return;
    }
    const char *pairs[][2] = {{"f16", "f16_as_f32"}, {"bf16", "bf16_as_f32"}};
    for (int i = 0; i < 2; i++) {
        const st_tensor *t = st_find(&f, pairs[i][0]), *ref = st_find(&f, pairs[i][1]);
        CHECK(t && ref && t->numel == ref->numel, "fixture tensors %s", pairs[i][0]);
        if (!t || !ref || t->numel != ref->numel)
            continue;
        CHECK(t->dtype == (i == 0 ? ST_F16 : ST_BF16), "%s dtype", pairs[i][0]);
        float *a = malloc(t->numel * sizeof *a), *b = malloc(t->numel * sizeof *b);
        CHECK(st_read_f32(&f, t, a) == ML_OK && st_read_f32(&f, ref, b) == ML_OK, "read %s", pairs[i][0]);
        CHECK(memcmp(a, b, t->numel * sizeof *a) == 0, "%s converts bit-exactly to PyTorch's float32",
              pairs[i][0]);
        free(a), free(b);
    }
    st_close(&f);
}

static void test_bad_files(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s/bad.safetensors", tmpdir);
    const char *good = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";

    expect_open_error("missing file", "/nonexistent/dir/w.safetensors", ML_ERR_IO, "cannot open");
    write_bytes(p, "abc", 3);
    expect_open_error("truncated below 8 bytes", p, ML_ERR_FORMAT, "truncated");
    unsigned char big[16] = {0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, '{', '}'};
    write_bytes(p, big, 10);
    expect_open_error("header length past end", p, ML_ERR_FORMAT, "past the end");
    write_st(p, "{\"x\": [1, 2, ", 0);
    expect_open_error("garbage JSON", p, ML_ERR_FORMAT, "not a valid JSON");
    write_st(p, "[1,2]", 0);
    expect_open_error("JSON not an object", p, ML_ERR_FORMAT, "not a valid JSON");
    write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 8);
    expect_open_error("offsets outside the data", p, ML_ERR_FORMAT, "outside");
    write_st(p, "{\"x\":{\"dtype\":\"Q7\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16);
    expect_open_error("unknown dtype", p, ML_ERR_FORMAT, "unknown dtype 'Q7'");
    write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,-2],\"data_offsets\":[0,16]}}", 16);
    expect_open_error("negative dim", p, ML_ERR_FORMAT, "shape[1]");
    write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", 16);
    expect_open_error("size disagrees with shape", p, ML_ERR_FORMAT, "16 data bytes for 6");
    write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 16);
    expect_open_error("overlapping tensors", p, ML_ERR_FORMAT, "overlap");
    write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8);
    expect_open_error("missing offsets", p, ML_ERR_FORMAT, "data_offsets");
    write_st(p, "{\"x\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    expect_open_error("missing dtype", p, ML_ERR_FORMAT, "dtype");
    write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,8]}}", 8);
    expect_open_error("absurd dim", p, ML_ERR_FORMAT, "shape[0]");
    write_st(p, good, 16);
    expect_open_error("a good file opens", p, ML_OK, "");
    /* a known dtype that cannot be converted: opens, fails on read naming it */
    write_st(p, "{\"i\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16);
    st_file f;
    if (st_open(&f, p) == ML_OK) {
        float out[2];
        int64_t s2[1] = {2};
        CHECK(st_load(&f, "i", 1, s2, out) == ML_ERR_FORMAT && strstr(ml_last_error(), "I64"),
              "I64 read: %s", ml_last_error());
        st_close(&f);
    } else {
        CHECK(0, "I64 file should open: %s", ml_last_error());
    }
}

/* A header of hl bytes (json, padded with spaces) followed by data_len zero bytes; hl may differ from the JSON's length. */
static void write_st_len(const char *path, const char *json, size_t hl, size_t data_len)
{
    size_t jl = strlen(json), body = hl > jl ? hl : jl;
    unsigned char *buf = calloc(8 + body + data_len, 1);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memset(buf + 8, ' ', body);
    memcpy(buf + 8, json, jl);
    write_bytes(path, buf, 8 + body + data_len);
    free(buf);
}

/* The format's own rules (issue 11): the tensors tile the data section, nothing
 * but spaces after the JSON, no control bytes or NULs in strings, zero-size
 * tensors overlap nothing, and the duplicate check scales. */
static void test_strict_format(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s/strict.safetensors", tmpdir);
    const char *good = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}   ";
    const size_t gl = strlen(good);
    write_st_len(p, good, gl, 16);
    expect_open_error("padded header", p, ML_OK, "");
    /* the header length one byte short: every tensor would load one byte off */
    write_st_len(p, good, gl - 1, 16);
    expect_open_error("header length one short", p, ML_ERR_FORMAT, "cover 16 of the 17 data bytes");
    write_st(p, good, 20);
    expect_open_error("data past the last tensor", p, ML_ERR_FORMAT, "cover 16 of the 20");
    write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12);
    expect_open_error("a gap between tensors", p, ML_ERR_FORMAT, "data bytes 4..8 belong to no tensor");
    write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}xyz", 16);
    expect_open_error("text after the JSON", p, ML_ERR_FORMAT, "text after the JSON object");
    write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}{}", 16);
    expect_open_error("a second JSON value", p, ML_ERR_FORMAT, "text after the JSON object");
    write_st(p, "{\"a\x01" "b\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16);
    expect_open_error("raw control byte in a name", p, ML_ERR_FORMAT, "raw control character 0x01");
    write_st(p, "{\"x\":{\"dtype\":\"F32\\u0000junk\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16);
    expect_open_error("NUL escape in a dtype", p, ML_ERR_FORMAT, "u0000");
    write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                "\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,16]}}", 16);
    expect_open_error("duplicate name", p, ML_ERR_FORMAT, "tensor 'x' appears twice");
    write_st(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]", 0);
    expect_open_error("header ends mid-object", p, ML_ERR_FORMAT, "not a valid JSON");
    /* zero-size tensors overlap nothing, wherever their offsets point and in either order */
    const char *z1 = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                     "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}";
    const char *z2 = "{\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                     "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    const char *z3 = "{\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
                     "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    write_st(p, z1, 8);
    expect_open_error("zero-size tensor inside another (after it)", p, ML_OK, "");
    write_st(p, z2, 8);
    expect_open_error("zero-size tensor inside another (before it)", p, ML_OK, "");
    write_st(p, z3, 8);
    expect_open_error("zero-size tensor at the start", p, ML_OK, "");

    /* 100,000 tensor names, the last two the same (an every-pair check reaches them last): the old check took 16 s here */
    const int n = 100000;
    size_t cap = (size_t)n * 80 + 64, o = 0;
    char *json = malloc(cap);
    o += (size_t)snprintf(json + o, cap - o, "{");
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(json + o, cap - o, "%s\"t%d\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[%d,%d]}",
                              i ? "," : "", i == n - 1 ? n - 2 : i, 4 * i, 4 * i + 4);
    snprintf(json + o, cap - o, "}");
    write_st(p, json, (size_t)n * 4);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_open_error("100k tensors, one name twice", p, ML_ERR_FORMAT, "tensor 't99998' appears twice");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    CHECK(secs < 4.0, "100k tensor names checked in %.2f s (want well under 4 s: O(n log n))", secs);
    free(json);
}

static void test_checkpoint_strict(void)
{
    /* a model checkpoint round trip, then a missing, a reshaped and an extra tensor */
    model_config cfg;
    model m;
    char path[512], path2[512];
    snprintf(path, sizeof path, "%s/ckpt.safetensors", tmpdir);
    snprintf(path2, sizeof path2, "%s/ckpt2.safetensors", tmpdir);
    CHECK(model_config_from_name("mambaout_test", &cfg) == ML_OK, "zoo");
    CHECK(model_plan(&m, &cfg, 1, 32, 32) == ML_OK && model_alloc(&m) == ML_OK, "alloc");
    model_init_random(&m, 7);
    CHECK(model_save(&m, path) == ML_OK, "save: %s", ml_last_error());
    model m2;
    model_plan(&m2, &cfg, 1, 32, 32);
    model_alloc(&m2);
    st_file f;
    CHECK(st_open(&f, path) == ML_OK, "open ckpt");
    CHECK(model_load(&m2, &f, 0) == ML_OK, "load: %s", ml_last_error());
    st_close(&f);
    /* parameter by parameter: the arena's alignment gaps are not written */
    int same = m.n_params == m2.n_params;
    for (int i = 0; same && i < m.n_params; i++)
        same = memcmp(m.pdata[i], m2.pdata[i], m.params[i].numel * sizeof(float)) == 0;
    CHECK(same, "weights round trip");

    /* rewrite with one tensor dropped, one reshaped, one added */
    st_entry *e = calloc((size_t)m.n_params + 1, sizeof *e);
    for (int i = 0; i < m.n_params; i++) {
        e[i].name = m.params[i].name;
        e[i].ndim = m.params[i].ndim;
        memcpy(e[i].shape, m.params[i].shape, sizeof m.params[i].shape);
        e[i].data = m.pdata[i];
    }
    e[m.n_params] = (st_entry){.name = "extra.weight", .ndim = 1, .shape = {4}, .data = m.pdata[0]};
    st_write(path2, e, m.n_params + 1, NULL);
    st_open(&f, path2);
    CHECK(model_load(&m2, &f, 0) == ML_ERR_FORMAT && strstr(ml_last_error(), "unexpected tensor 'extra.weight'"),
          "extra tensor: %s", ml_last_error());
    CHECK(model_load(&m2, &f, 1) == ML_OK, "extra tensor ignored on request");
    st_close(&f);
    st_write(path2, e + 1, m.n_params - 1, NULL);
    st_open(&f, path2);
    CHECK(model_load(&m2, &f, 0) == ML_ERR_FORMAT && strstr(ml_last_error(), "missing tensor 'stem.conv1.weight'"),
          "missing tensor: %s", ml_last_error());
    st_close(&f);
    e[0].ndim = 2; /* same 216 floats as [8, 3, 3, 3], the wrong shape */
    e[0].shape[1] = 27;
    st_write(path2, e, m.n_params, NULL);
    st_open(&f, path2);
    CHECK(model_load(&m2, &f, 0) == ML_ERR_FORMAT && strstr(ml_last_error(), "stem.conv1.weight") &&
              strstr(ml_last_error(), "expected [8, 3, 3, 3]"),
          "wrong shape: %s", ml_last_error());
    st_close(&f);
    free(e);
    model_free(&m);
    model_free(&m2);
}

int main(int argc, char **argv)
{
    const char *fixtures = argc > 1 ? argv[1] : "tests/fixtures";
    test_tmpdir(tmpdir, sizeof tmpdir, "st");
    test_roundtrip();
    test_dtypes(fixtures);
    test_bad_files();
    test_strict_format();
    test_checkpoint_strict();
    test_tmpdir_remove(tmpdir);
    return test_summary("test_safetensors");
}
