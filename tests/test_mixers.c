/* Every token mixer against its published math: fixtures written by
 * scripts/make_mixer_fixtures.py (a float64 PyTorch restatement), plus
 * direct double-precision restatements here for longer sequences, plus the
 * properties the math gives (causality, identity, ssm_bidir flip symmetry). */
#include "blocks/attn.h"
#include "blocks/ssm.h"
#include "blocks/ssm_chunk.h"
#include "models/mixer_io.h"
#include "test_util.h"

#include <omp.h>

#define TOL 1e-4

typedef struct {
    const char *file, *mixer;
    int head_size;
} golden_case;

static const golden_case cases[] = {
    {"ssm_a", "ssm", 32},          {"ssm_b", "ssm", 32},         {"ssm_bidir_a", "ssm_bidir", 32},
    {"ssm_2d_a", "ssm_2d", 32},    {"ssm_2d_b", "ssm_2d", 32},   {"attn_a", "attn", 10},
    {"attn_b", "attn", 4},         {"attn_causal_a", "attn_causal", 10},
};

static void test_golden(const char *dir)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/mixers/%s.safetensors", dir, cases[i].file);
        st_file f;
        if (st_open(&f, path) != ML_OK) {
            CHECK(0, "fixture: %s", ml_last_error());
            continue;
        }
        const st_tensor *in = st_find(&f, "input");
        CHECK(in && in->ndim == 4, "%s: input", cases[i].file);
        if (!in || in->ndim != 4) {
            st_close(&f);
            continue;
        }
        int B = (int)in->shape[0], H = (int)in->shape[1], W = (int)in->shape[2], E = (int)in->shape[3];
        mixer_instance mi;
        static const char *const allowed[] = {"input", "output", NULL};
        ml_status s = mixer_instance_load(&mi, cases[i].mixer, &f, E, cases[i].head_size, allowed);
        CHECK(s == ML_OK, "%s: load: %s", cases[i].file, ml_last_error());
        if (s == ML_OK) {
            size_t n = in->numel;
            float *x = malloc(n * sizeof *x), *ref = malloc(n * sizeof *ref), *y = alloc_guarded(n);
            float *ws = alloc_guarded(mixer_instance_workspace(&mi, B, H, W));
            st_read_f32(&f, in, x);
            CHECK(st_load(&f, "output", 4, in->shape, ref) == ML_OK, "%s: output", cases[i].file);
            mixer_instance_run(&mi, y, x, B, H, W, ws);
            double e = rel_err_f(y, ref, n);
            printf("  %-14s %-12s B%d %dx%d E%d: rel err %.3g\n", cases[i].file, cases[i].mixer, B, H, W, E, e);
            CHECK(e <= TOL, "%s: rel err %.3g against the float64 restatement", cases[i].file, e);
            CHECK(guard_intact(y, n) && guard_intact(ws, mixer_instance_workspace(&mi, B, H, W)),
                  "%s wrote past its output or workspace", cases[i].file);
            free(x), free(ref), free(y), free(ws);
        }
        mixer_instance_free(&mi);
        st_close(&f);
    }
}

/* Mamba's reference recurrence in double, straight from the published math (Mamba, Algorithm 2). */
static void naive_ssm(double *y, const float *x, const float *const *p, int L, int E, int N, int R)
{
    const float *cw = p[0], *cb = p[1], *xp = p[2], *dw = p[3], *db = p[4], *al = p[5], *D = p[6];
    double *u = calloc((size_t)L * E, sizeof *u), *h = calloc((size_t)E * N, sizeof *h);
    for (int t = 0; t < L; t++)
        for (int e = 0; e < E; e++) {
            double s = cb[e];
            for (int k = 0; k < 4; k++)
                if (t - 3 + k >= 0)
                    s += (double)cw[e * 4 + k] * x[(size_t)(t - 3 + k) * E + e];
            u[(size_t)t * E + e] = s / (1.0 + exp(-s));
        }
    for (int t = 0; t < L; t++) {
        double xd[64];
        for (int j = 0; j < R + 2 * N; j++) {
            double s = 0;
            for (int e = 0; e < E; e++)
                s += u[(size_t)t * E + e] * xp[(size_t)j * E + e];
            xd[j] = s;
        }
        for (int e = 0; e < E; e++) {
            double z = db[e];
            for (int r = 0; r < R; r++)
                z += xd[r] * dw[e * R + r];
            double dt = z > 20 ? z : log1p(exp(z)), ut = u[(size_t)t * E + e], acc = D[e] * ut;
            for (int n = 0; n < N; n++) {
                double A = -exp((double)al[e * N + n]);
                h[e * N + n] = exp(dt * A) * h[e * N + n] + dt * ut * xd[R + n];
                acc += h[e * N + n] * xd[R + N + n];
            }
            y[(size_t)t * E + e] = acc;
        }
    }
    free(u), free(h);
}

static void test_ssm_long(void)
{
    const int L = 301, E = 19, N = 6, R = 2;
    mixer_config cfg = mixer_config_default(E, E);
    cfg.d_state = N, cfg.dt_rank = R;
    mixer_instance mi;
    CHECK(mixer_instance_random(&mi, "ssm", &cfg, 11) == ML_OK, "ssm random: %s", ml_last_error());
    rng_state r;
    rng_seed(&r, 12);
    float *x = rand_floats(&r, (size_t)L * E, -2, 2), *y = alloc_guarded((size_t)L * E);
    float *ws = malloc(mixer_instance_workspace(&mi, 1, 1, L) * sizeof *ws);
    double *ref = malloc((size_t)L * E * sizeof *ref);
    mixer_instance_run(&mi, y, x, 1, 1, L, ws);
    naive_ssm(ref, x, (const float *const *)mi.params, L, E, N, R);
    double e = rel_err(y, ref, (size_t)L * E);
    printf("  ssm L=%d E=%d N=%d against the double recurrence: rel err %.3g\n", L, E, N, e);
    CHECK(e <= TOL, "ssm long sequence rel err %.3g", e);
    free(x), free(y), free(ws), free(ref);
    mixer_instance_free(&mi);
}

/* The GPU's chunked scan (ssm_chunk.h), run here in plain loops exactly as
 * the kernels split it, against the sequential CPU scan on the same u, Δ, B,
 * C: several chunks and a partial one, more chunks than one carry group,
 * both orders, both directions,
 * accumulate on and off, d_state fixed and odd. */
static void test_ssm_chunked(void)
{
    /* B H W E N; 3 x 367 makes 18 chunks: the carry walk's groups of SSM_CARRY_GROUP and a partial one */
    const int shapes[][5] = {{2, 7, 43, 13, 6}, {1, 5, 9, 8, 16}, {1, 16, 9, 5, 1}, {1, 3, 367, 5, 4}};
    rng_state r;
    rng_seed(&r, 13);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int B = shapes[s][0], H = shapes[s][1], W = shapes[s][2], E = shapes[s][3], N = shapes[s][4], R = 3;
        const size_t L = (size_t)H * W, n = (size_t)B * L * E, ldx = (size_t)R + 2 * N, chunks = ssm_chunk_count(L);
        float *xp = rand_floats(&r, ldx * E, -0.5, 0.5), *dtp = rand_floats(&r, (size_t)E * R, -0.5, 0.5);
        float *dtb = rand_floats(&r, E, -4, -1), *alog = rand_floats(&r, (size_t)E * N, -1, 1.5);
        float *D = rand_floats(&r, E, -1, 1), *u = rand_floats(&r, n, -2, 2), *y0 = rand_floats(&r, n, -1, 1);
        ssm_params p = {xp, dtp, dtb, alog, D};
        float *ws = malloc(ssm_direction_workspace(&backend_cpu, B, L, E, N, R) * sizeof *ws);
        float *carry = malloc(ssm_carry_floats(B, L, E, N) * sizeof *carry);
        float *bc = malloc((size_t)SSM_CHUNK * 2 * N * sizeof *bc);
        float *ref = alloc_guarded(n), *y = alloc_guarded(n);
        for (int v = 0; v < 8; v++) {
            const int col_major = v & 1, reverse = v >> 1 & 1, acc = v >> 2 & 1;
            memcpy(ref, y0, n * sizeof *ref);
            memcpy(y, y0, n * sizeof *y);
            ssm_direction_forward(&backend_cpu, ref, acc, u, &p, B, H, W, E, N, R, col_major ? SSM_COL_MAJOR : SSM_ROW_MAJOR,
                                  reverse, ws, NULL);
            const float *xdbl = ws, *delta = ws + (size_t)B * L * ldx; /* as the CPU scan left them */
            for (int pass = 0; pass < 2; pass++) {
                for (int b = 0; b < B; b++)
                    for (size_t c = 0; c < chunks; c++) {
                        const size_t i0 = c * SSM_CHUNK, len = L - i0 < SSM_CHUNK ? L - i0 : SSM_CHUNK;
                        for (size_t j = 0; j < len; j++) {
                            const size_t t = ssm_step_token(i0 + j, L, H, W, col_major, reverse);
                            memcpy(bc + j * 2 * N, xdbl + ((size_t)b * L + t) * ldx + R, 2 * N * sizeof *bc);
                        }
                        for (int e = 0; e < E; e++) {
                            const size_t off = (size_t)b * L * E + e;
                            ssm_chunk_scan(pass, N, i0, len, L, H, W, col_major, reverse, E, u + off, delta + off, bc,
                                           alog + (size_t)e * N, D[e],
                                           carry + ((size_t)b * chunks + c) * (N + 1) * E + e, y + off, acc);
                        }
                    }
                if (pass == 0)
                    for (int b = 0; b < B; b++)
                        for (int k = 0; k < N; k++)
                            for (int e = 0; e < E; e++)
                                ssm_chunk_carry(k, N, chunks, E, alog[(size_t)e * N + k],
                                                carry + (size_t)b * chunks * (N + 1) * E + e);
            }
            double err = rel_err_f(y, ref, n);
            CHECK(err <= 1e-5 && guard_intact(y, n), "chunked scan B%d H%d W%d E%d N%d order %d reverse %d acc %d: %.3g",
                  B, H, W, E, N, col_major, reverse, acc, err);
            if (v == 0 || err > 1e-6)
                printf("  chunked scan B=%d L=%zu (%zu chunks) E=%d N=%d variant %d: rel err %.3g\n", B, L, chunks, E,
                       N, v, err);
        }
        free(xp), free(dtp), free(dtb), free(alog), free(D), free(u), free(y0), free(ws), free(carry), free(bc);
        free(ref), free(y);
    }
}

/* Attention in double, every score held: the reference for the tiled kernel. */
static void test_attn_tiled(void)
{
    const int B = 2, L = 150, E = 24, HS = 8, NH = E / HS; /* 3 query blocks, the last partial */
    rng_state r;
    rng_seed(&r, 13);
    float *qkv = rand_floats(&r, (size_t)B * L * 3 * E, -1.5, 1.5);
    const int threads = omp_get_max_threads();
    float *ws = alloc_guarded((size_t)threads * ATTN_QUERY_BLOCK * L), *o = alloc_guarded((size_t)B * L * E);
    double *ref = malloc((size_t)B * L * E * sizeof *ref), *sc = malloc((size_t)L * sizeof *sc);
    float *lse = alloc_guarded((size_t)B * NH * L);
    double *lref = malloc((size_t)B * NH * L * sizeof *lref);
    for (int causal = 0; causal < 2; causal++) {
        attn_core(o, lse, qkv, B, L, E, HS, causal, ws, threads);
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                for (int i = 0; i < L; i++) {
                    const float *q = qkv + ((size_t)b * L + i) * 3 * E + h * HS;
                    int nk = causal ? i + 1 : L;
                    double mx = -1e300, sum = 0;
                    for (int j = 0; j < nk; j++) {
                        const float *k = qkv + ((size_t)b * L + j) * 3 * E + E + h * HS;
                        double s = 0;
                        for (int d = 0; d < HS; d++)
                            s += (double)q[d] * k[d];
                        sc[j] = s / sqrt((double)HS);
                        mx = sc[j] > mx ? sc[j] : mx;
                    }
                    for (int j = 0; j < nk; j++)
                        sum += (sc[j] = exp(sc[j] - mx));
                    lref[((size_t)b * NH + h) * L + i] = mx + log(sum);
                    for (int d = 0; d < HS; d++) {
                        double acc = 0;
                        for (int j = 0; j < nk; j++)
                            acc += sc[j] / sum * qkv[((size_t)b * L + j) * 3 * E + 2 * E + h * HS + d];
                        ref[((size_t)b * L + i) * E + h * HS + d] = acc;
                    }
                }
        double e = rel_err(o, ref, (size_t)B * L * E);
        printf("  attention core L=%d (%s, query blocks of %d): rel err %.3g\n", L, causal ? "causal" : "full",
               ATTN_QUERY_BLOCK, e);
        CHECK(e <= TOL, "attention core %s rel err %.3g", causal ? "causal" : "full", e);
        double el = rel_err(lse, lref, (size_t)B * NH * L);
        CHECK(el <= 1e-6 && guard_intact(lse, (size_t)B * NH * L), "attention log-sum-exp %s rel err %.3g",
              causal ? "causal" : "full", el);
        CHECK(guard_intact(o, (size_t)B * L * E) && guard_intact(ws, (size_t)threads * ATTN_QUERY_BLOCK * L),
              "attention core wrote past its buffers");
    }
    free(qkv), free(ws), free(o), free(ref), free(sc), free(lse), free(lref);
}

/* The states the scan keeps for a backward pass: the state entering each
 * chunk of SSM_CHUNK steps, against the recurrence in double, both orders
 * and directions. */
static void test_scan_states(void)
{
    const int B = 2, H = 11, W = 13, E = 10, N = 5, R = 2; /* 143 steps: chunks of 64, 64 and 15 */
    const size_t L = (size_t)H * W, n = (size_t)B * L * E, ldx = (size_t)R + 2 * N, chunks = ssm_chunk_count(L);
    rng_state r;
    rng_seed(&r, 31);
    float *u = rand_floats(&r, n, -2, 2), *delta = rand_floats(&r, n, 0.001f, 0.2f);
    float *xdbl = rand_floats(&r, (size_t)B * L * ldx, -1, 1), *alog = rand_floats(&r, (size_t)E * N, -1, 1.5);
    float *D = rand_floats(&r, E, -1, 1), *y = alloc_guarded(n), *ws = malloc((size_t)E * N * sizeof *ws);
    const size_t ns = ssm_states_floats(B, L, E, N);
    float *st = alloc_guarded(ns);
    double *ref = malloc(ns * sizeof *ref);
    for (int v = 0; v < 4; v++) {
        const int col = v & 1, rev = v >> 1;
        ssm_scan_core(y, st, 0, u, delta, xdbl, ldx, R, alog, D, B, H, W, E, N, col ? SSM_COL_MAJOR : SSM_ROW_MAJOR,
                      rev, ws);
        for (int b = 0; b < B; b++)
            for (int e = 0; e < E; e++)
                for (int k = 0; k < N; k++) {
                    double h = 0, A = -exp((double)alog[e * N + k]);
                    for (size_t i = 0; i < L; i++) {
                        if (i % SSM_CHUNK == 0)
                            ref[(((size_t)b * chunks + i / SSM_CHUNK) * N + k) * E + e] = h;
                        const size_t t = ssm_step_token(i, L, H, W, col, rev), q = ((size_t)b * L + t) * E + e;
                        h = exp(delta[q] * A) * h + (double)delta[q] * u[q] * xdbl[((size_t)b * L + t) * ldx + R + k];
                    }
                }
        double e = rel_err(st, ref, ns);
        printf("  scan states (order %d, reverse %d, %zu chunks): rel err %.3g\n", col, rev, chunks, e);
        CHECK(e <= 1e-5 && guard_intact(st, ns), "scan states order %d reverse %d: rel err %.3g", col, rev, e);
    }
    free(u), free(delta), free(xdbl), free(alog), free(D), free(y), free(ws), free(st), free(ref);
}

/* Changing the last token: causal mixers keep every earlier output bit for
 * bit; the others change some. identity is exact. */
static void test_causality(void)
{
    const int B = 2, H = 5, W = 7, E = 16;
    const size_t L = (size_t)H * W, n = (size_t)B * L * E;
    for (int i = 0; i < mixer_count(); i++) {
        const mixer_ops *ops = mixer_at(i);
        mixer_config cfg = mixer_config_default(E, E);
        cfg.kernel = 3, cfg.d_state = 4, cfg.head_size = 8;
        mixer_instance mi;
        CHECK(mixer_instance_random(&mi, ops->name, &cfg, 5) == ML_OK, "%s random", ops->name);
        rng_state r;
        rng_seed(&r, 6);
        float *x = rand_floats(&r, n, -1, 1), *y1 = alloc_guarded(n), *y2 = alloc_guarded(n);
        float *ws = malloc(mixer_instance_workspace(&mi, B, H, W) * sizeof *ws);
        mixer_instance_run(&mi, y1, x, B, H, W, ws);
        for (int b = 0; b < B; b++)
            for (int e = 0; e < E; e++)
                x[((size_t)b * L + L - 1) * E + e] += 0.5f;
        mixer_instance_run(&mi, y2, x, B, H, W, ws);
        int earlier_same = 1;
        for (int b = 0; b < B; b++)
            earlier_same &= memcmp(y1 + (size_t)b * L * E, y2 + (size_t)b * L * E, (L - 1) * E * sizeof(float)) == 0;
        CHECK(earlier_same == ops->causal, "%s: declared causal = %d but earlier outputs %s", ops->name, ops->causal,
              earlier_same ? "did not change" : "changed");
        if (strcmp(ops->name, "identity") == 0)
            CHECK(memcmp(y2, x, n * sizeof(float)) == 0, "identity must be exact");
        free(x), free(y1), free(y2), free(ws);
        mixer_instance_free(&mi);
    }
}

/* ssm_bidir with its two branches swapped, on the flipped sequence, gives the
 * flipped output: y = (f(x) + flip(b(flip x))) / 2 is symmetric in that swap. */
static void test_bidir_flip(void)
{
    const int B = 1, H = 3, W = 9, E = 11;
    const size_t L = (size_t)H * W, n = (size_t)B * L * E;
    mixer_config cfg = mixer_config_default(E, E);
    cfg.d_state = 5, cfg.dt_rank = 2;
    mixer_instance a, sw;
    mixer_instance_random(&a, "ssm_bidir", &cfg, 21);
    mixer_instance_random(&sw, "ssm_bidir", &cfg, 22);
    for (int k = 0; k < 7; k++) {
        memcpy(sw.params[k], a.params[k + 7], param_spec_numel(&a.specs[k]) * sizeof(float));
        memcpy(sw.params[k + 7], a.params[k], param_spec_numel(&a.specs[k]) * sizeof(float));
    }
    rng_state r;
    rng_seed(&r, 23);
    float *x = rand_floats(&r, n, -1, 1), *xf = alloc_guarded(n), *y = alloc_guarded(n), *yf = alloc_guarded(n);
    for (size_t t = 0; t < L; t++)
        memcpy(xf + t * E, x + (L - 1 - t) * E, E * sizeof(float));
    float *ws = malloc(mixer_instance_workspace(&a, B, H, W) * sizeof *ws);
    mixer_instance_run(&a, y, x, B, H, W, ws);
    mixer_instance_run(&sw, yf, xf, B, H, W, ws);
    float *back = alloc_guarded(n);
    for (size_t t = 0; t < L; t++)
        memcpy(back + t * E, yf + (L - 1 - t) * E, E * sizeof(float));
    double e = rel_err_f(back, y, n);
    printf("  ssm_bidir flip symmetry: rel err %.3g\n", e);
    /* not bit-exact: the projections go through BLAS, whose summation order may
     * depend on where a row sits in the matrix, and the rows are flipped here */
    CHECK(e <= 1e-6, "ssm_bidir flip symmetry rel err %.3g", e);
    free(x), free(xf), free(y), free(yf), free(ws), free(back);
    mixer_instance_free(&a);
    mixer_instance_free(&sw);
}

static void test_bad_config(void)
{
    mixer_instance mi;
    mixer_config c = mixer_config_default(12, 12);
    const mixer_ops *ops;
    CHECK(mixer_lookup("mamba3", &ops) == ML_ERR_USAGE && strstr(ml_last_error(), "known: dwconv"),
          "unknown mixer: %s", ml_last_error());
    c.kernel = 4;
    CHECK(mixer_instance_random(&mi, "dwconv", &c, 1) == ML_ERR_USAGE && strstr(ml_last_error(), "kernel 4"),
          "even kernel: %s", ml_last_error());
    mixer_instance_free(&mi);
    c.kernel = 0;
    CHECK(mixer_instance_random(&mi, "dwconv", &c, 1) == ML_ERR_USAGE, "zero kernel");
    mixer_instance_free(&mi);
    c = mixer_config_default(12, 12);
    c.d_state = 0;
    CHECK(mixer_instance_random(&mi, "ssm", &c, 1) == ML_ERR_USAGE && strstr(ml_last_error(), "d_state 0"),
          "d_state 0: %s", ml_last_error());
    mixer_instance_free(&mi);
    c = mixer_config_default(12, 12);
    c.head_size = 5;
    CHECK(mixer_instance_random(&mi, "attn", &c, 1) == ML_ERR_USAGE &&
              strstr(ml_last_error(), "head_size 5 does not divide"),
          "head size: %s", ml_last_error());
    mixer_instance_free(&mi);
    /* every mixer runs on the CPU; on CUDA the scan keeps at most SSM_CUDA_MAX_STATE states and says so */
    for (int i = 0; i < mixer_count(); i++) {
        const mixer_ops *o = mixer_at(i);
        mixer_config d = mixer_config_default(12, 12);
        CHECK(mixer_supports(o, &backend_cpu, &d) == ML_OK, "%s on cpu: %s", o->name, ml_last_error());
        const backend *cu = backend_cuda();
        d.d_state = SSM_CUDA_MAX_STATE + 1;
        if (cu && (o->uses & MIXER_USES_D_STATE))
            CHECK(mixer_supports(o, cu, &d) == ML_ERR_USAGE && strstr(ml_last_error(), "on cuda") &&
                      strstr(ml_last_error(), "at most 64 states"),
                  "%s, d_state %d on cuda: %s", o->name, d.d_state, ml_last_error());
        else if (cu)
            CHECK(mixer_supports(o, cu, &d) == ML_OK, "%s on cuda: %s", o->name, ml_last_error());
    }
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/fixtures";
    test_golden(dir);
    test_ssm_long();
    test_ssm_chunked();
    test_attn_tiled();
    test_scan_states();
    test_causality();
    test_bidir_flip();
    test_bad_config();
    return test_summary("test_mixers");
}
