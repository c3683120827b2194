/* Tests for the MediaPipe custom ops (src/nn/ops_mediapipe.c) against tests/ref_ops.c, and for
 * the bounds-checked FlexBuffers reader (src/nn/flexbuf.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/flexbuf.h"
#include "nn/ops_mediapipe.h"
#include "ref_ops.h"

/* ------------------------------------------------------------------ helpers */

static uint32_t rng_state;
static void rng_seed(uint32_t s) {
    rng_state = s ? s : 1;
}
static uint32_t rng_u32(void) { /* xorshift32 */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}
static float rng_f(float lo, float hi) {
    return lo + (hi - lo) * (float)(rng_u32() >> 8) / 16777216.0f;
}
static int rng_i(int lo, int hi) {
    return lo + (int)(rng_u32() % (uint32_t)(hi - lo + 1));
}

static ts_tview tv(float *data, int rank, int d0, int d1, int d2, int d3) {
    ts_tview t = {.data = data, .rank = rank, .dims = {d0, d1, d2, d3}};
    return t;
}

static float *frand(size_t n, float lo, float hi) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = rng_f(lo, hi);
    return p;
}

static void assert_close(const float *a, const float *b, size_t n, double atol, double rtol) {
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= atol + rtol * fabs((double)b[i]))) {
            fail_msg("element %zu: got %.9g, want %.9g", i, (double)a[i], (double)b[i]);
        }
    }
}

/* parse + shape + run one op; returns 0 or -1 with err filled. */
static int run_op(const ts_custom_op_def *def, const uint8_t *opts, size_t len, ts_tview *in,
                  int n_in, ts_tview *out, float **out_data, char *err) {
    void *p = NULL;
    *out_data = NULL;
    if (def->parse(opts, len, &p, err, 256)) return -1;
    out->data = NULL;
    if (def->shape(p, in, n_in, out, 1, err, 256)) {
        def->free_params(p);
        return -1;
    }
    *out_data = calloc(ts_tview_count(out), sizeof(float));
    out->data = *out_data;
    int rc = def->run(p, in, n_in, out, 1, err, 256);
    def->free_params(p);
    return rc;
}

/* ------------------------------------------------------------------ flexbuffers */

/* {"a": 7, "b": [1, 2, 3] (typed int vector)}, all widths 1, assembled by hand. */
static const uint8_t fx_map[] = {
    'a', 0,    'b',  0,    /* keys */
    2,   5,    4,          /* keys vector: size 2, offsets to "a" and "b" */
    3,   1,    2,    3,    /* typed int vector */
    6,   1,    2,          /* map prefix: keys offset, keys width, size */
    7,   7,    0x04, 0x2C, /* values: 7 (INT), -> vector (VECTOR_INT); type bytes */
    4,   0x24, 1,          /* root: offset to map data, MAP/w1, width 1 */
};

static void test_flex_scalars(void **state) {
    (void)state;
    ts_flex_ref r;
    int64_t i;
    double d;
    bool b;
    const char *s;
    size_t n;
    const uint8_t int_root[] = {0xD6, 0x04, 1}; /* -42 */
    assert_int_equal(ts_flex_root(int_root, sizeof int_root, &r), 0);
    assert_int_equal(ts_flex_as_int64(&r, &i), 0);
    assert_int_equal(i, -42);
    const uint8_t u16_root[] = {0x34, 0x12, 0x08, 2}; /* UINT 0x1234 in a 2-byte slot */
    uint64_t u;
    assert_int_equal(ts_flex_root(u16_root, sizeof u16_root, &r), 0);
    assert_int_equal(ts_flex_as_uint64(&r, &u), 0);
    assert_int_equal(u, 0x1234);
    const uint8_t f32_root[] = {0x00, 0x00, 0xC0, 0x3F, 0x0E, 4}; /* FLOAT 1.5 */
    assert_int_equal(ts_flex_root(f32_root, sizeof f32_root, &r), 0);
    assert_int_equal(ts_flex_as_double(&r, &d), 0);
    assert_true(d == 1.5);
    assert_int_equal(ts_flex_as_int64(&r, &i), 0);
    assert_int_equal(i, 1);
    const uint8_t f64_root[] = {0, 0, 0, 0, 0, 0, 0xF8, 0x7F, 0x0F, 8}; /* FLOAT NaN (w8) */
    assert_int_equal(ts_flex_root(f64_root, sizeof f64_root, &r), 0);
    assert_int_equal(ts_flex_as_double(&r, &d), 0);
    assert_true(isnan(d));
    assert_int_equal(ts_flex_as_int64(&r, &i), TS_FLEX_ERANGE);
    const uint8_t bool_root[] = {1, 26 << 2, 1};
    assert_int_equal(ts_flex_root(bool_root, sizeof bool_root, &r), 0);
    assert_int_equal(ts_flex_as_bool(&r, &b), 0);
    assert_true(b);
    const uint8_t str_root[] = {3, 'h', 'e', 'y', 0, 4, 5 << 2, 1};
    assert_int_equal(ts_flex_root(str_root, sizeof str_root, &r), 0);
    assert_int_equal(ts_flex_as_string(&r, &s, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(s, "hey", 4);
    assert_int_equal(ts_flex_as_int64(&r, &i), TS_FLEX_ETYPE);
    const uint8_t ind_root[] = {0x2A, 0, 0, 0, 4, (6 << 2) | 2, 1}; /* INDIRECT_INT w4 -> 42 */
    assert_int_equal(ts_flex_root(ind_root, sizeof ind_root, &r), 0);
    assert_int_equal(ts_flex_as_int64(&r, &i), 0);
    assert_int_equal(i, 42);
    const uint8_t i2_root[] = {5, 0xFB, 2, 16 << 2, 1}; /* VECTOR_INT2 [5, -5] */
    ts_flex_ref e;
    assert_int_equal(ts_flex_root(i2_root, sizeof i2_root, &r), 0);
    assert_int_equal(ts_flex_vec_len(&r, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ts_flex_vec_at(&r, 1, &e), 0);
    assert_int_equal(ts_flex_as_int64(&e, &i), 0);
    assert_int_equal(i, -5);
    assert_int_equal(ts_flex_vec_at(&r, 2, &e), TS_FLEX_ERANGE);
}

static void test_flex_map(void **state) {
    (void)state;
    ts_flex_ref r, v;
    int32_t x;
    int32_t a[4];
    size_t n;
    const char *k;
    assert_int_equal(ts_flex_root(fx_map, sizeof fx_map, &r), 0);
    assert_int_equal(r.type, TS_FLEX_MAP);
    assert_int_equal(ts_flex_vec_len(&r, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ts_flex_map_key_at(&r, 1, &k, &n), 0);
    assert_string_equal(k, "b");
    assert_int_equal(ts_flex_map_int32(&r, "a", -1, &x), 0);
    assert_int_equal(x, 7);
    assert_int_equal(ts_flex_map_int32(&r, "zz", -1, &x), 0);
    assert_int_equal(x, -1);
    assert_int_equal(ts_flex_map_get(&r, "c", &v), TS_FLEX_ENOTFOUND);
    assert_int_equal(ts_flex_map_int32_vec(&r, "b", a, 4, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(a[0], 1);
    assert_int_equal(a[2], 3);
    assert_int_equal(ts_flex_map_int32_vec(&r, "b", a, 2, &n), TS_FLEX_ERANGE);
    assert_int_equal(ts_flex_map_int32(&r, "b", 0, &x), TS_FLEX_ETYPE);
}

/* Walks everything reachable (bounded), reading every scalar/string: must never crash. */
static int walk(const ts_flex_ref *r, int depth, int *budget) {
    if (depth > 16 || --*budget < 0) return 0;
    int64_t i;
    double d;
    bool b;
    const char *s;
    const uint8_t *bl;
    size_t n;
    (void)ts_flex_as_int64(r, &i);
    (void)ts_flex_as_double(r, &d);
    (void)ts_flex_as_bool(r, &b);
    (void)ts_flex_as_string(r, &s, &n);
    (void)ts_flex_as_blob(r, &bl, &n);
    if (ts_flex_vec_len(r, &n) == 0) {
        for (size_t k = 0; k < n && k < 64; k++) {
            ts_flex_ref e;
            if (ts_flex_vec_at(r, k, &e) == 0) walk(&e, depth + 1, budget);
            if (r->type == TS_FLEX_MAP && ts_flex_map_key_at(r, k, &s, &n) == 0) {
                ts_flex_ref v;
                (void)ts_flex_map_get(r, s, &v);
            }
        }
    }
    return 0;
}

static void walk_buf(const uint8_t *buf, size_t len) {
    /* copy to an exact-size heap block so ASan catches any overread */
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, buf, len);
    ts_flex_ref r;
    if (ts_flex_root(copy, len, &r) == 0) {
        int budget = 4096;
        walk(&r, 0, &budget);
        int32_t x;
        (void)ts_flex_map_int32(&r, "a", 0, &x);
    }
    free(copy);
}

static void test_flex_hostile(void **state) {
    (void)state;
    ts_flex_ref r, v;
    int64_t i;
    assert_int_equal(ts_flex_root(NULL, 0, &r), TS_FLEX_EBOUNDS);
    assert_int_equal(ts_flex_root(fx_map, 2, &r), TS_FLEX_EBOUNDS);
    const uint8_t bad_width[] = {0, 0, 0, 0x04, 3};
    assert_int_equal(ts_flex_root(bad_width, sizeof bad_width, &r), TS_FLEX_EFORMAT);
    const uint8_t wide_root[] = {0x04, 8}; /* root width 8 in a 2-byte buffer */
    assert_int_equal(ts_flex_root(wide_root, sizeof wide_root, &r), TS_FLEX_EBOUNDS);
    const uint8_t bad_type[] = {0, 30 << 2, 1};
    assert_int_equal(ts_flex_root(bad_type, sizeof bad_type, &r), TS_FLEX_EFORMAT);
    const uint8_t far_off[] = {0x20, 6 << 2, 1}; /* indirect int pointing before the buffer */
    assert_int_equal(ts_flex_root(far_off, sizeof far_off, &r), 0);
    assert_int_equal(ts_flex_as_int64(&r, &i), TS_FLEX_EBOUNDS);
    const uint8_t huge_vec[] = {0xFF, 1, 0x02, 11 << 2, 1}; /* size 255, 1 byte of data */
    size_t n;
    assert_int_equal(ts_flex_root(huge_vec, sizeof huge_vec, &r), 0);
    assert_int_equal(ts_flex_vec_len(&r, &n), TS_FLEX_EBOUNDS);
    const uint8_t no_nul_key[] = {'a', 'b', 2, 4 << 2, 1}; /* key string runs into the root */
    const char *s;
    assert_int_equal(ts_flex_root(no_nul_key, sizeof no_nul_key, &r), 0);
    /* no NUL before the buffer end: the terminator search must stop there */
    assert_int_equal(ts_flex_as_string(&r, &s, &n), TS_FLEX_EBOUNDS);
    const uint8_t no_nul_key2[] = {'a', 'b', 2, 4 << 2, 1};
    uint8_t *h = malloc(3);
    memcpy(h, no_nul_key2, 3); /* only 'a','b',2: root parse sees width 2 -> out of bounds */
    assert_int_not_equal(ts_flex_root(h, 3, &r), 0);
    free(h);
    /* a map whose keys width is 16 */
    uint8_t m[sizeof fx_map];
    memcpy(m, fx_map, sizeof m);
    m[12] = 16;
    assert_int_equal(ts_flex_root(m, sizeof m, &r), 0);
    assert_int_equal(ts_flex_map_get(&r, "a", &v), TS_FLEX_EFORMAT);
    /* keys count != values count */
    memcpy(m, fx_map, sizeof m);
    m[4] = 1;
    assert_int_equal(ts_flex_root(m, sizeof m, &r), 0);
    assert_int_equal(ts_flex_map_get(&r, "a", &v), TS_FLEX_EFORMAT);
    /* every truncation (suffix kept, since the root is at the end) and every prefix */
    for (size_t k = 0; k <= sizeof fx_map; k++) {
        walk_buf(fx_map + k, sizeof fx_map - k);
        walk_buf(fx_map, k);
    }
    /* every single-byte mutation */
    for (size_t pos = 0; pos < sizeof fx_map; pos++)
        for (int val = 0; val < 256; val++) {
            memcpy(m, fx_map, sizeof m);
            m[pos] = (uint8_t)val;
            walk_buf(m, sizeof m);
        }
    /* random garbage */
    rng_seed(1234);
    uint8_t g[64];
    for (int t = 0; t < 20000; t++) {
        size_t len = (size_t)rng_i(0, 64);
        for (size_t k = 0; k < len; k++) g[k] = (uint8_t)rng_u32();
        if (len >= 2) g[len - 1] = (uint8_t)(1u << rng_i(0, 3));
        walk_buf(g, len);
    }
}

/* Real custom_options of face_landmark_with_attention.tflite (one eye's
 * Landmarks2TransformMatrix, and the TransformTensorBilinear ops). */
static const char l2tm_hex[] = "6c6566745f726f746174696f6e5f696478006f75747075745f686569676874006f7"
                               "5747075745f776964746800726967"
                               "68745f726f746174696f6e5f696478007363616c655f78007363616c655f7900737"
                               "5627365745f696478730047000701"
                               "f9008601750176017c017d017e016a01d201840183018201810180018e016701ff0"
                               "05301fe00fd00fc0000015501cf01"
                               "d30104010301010102011e019e01be010501c001c101c201c301c401c501d001560"
                               "1bd01bc01bb01ba01b9019d010901"
                               "610114011b011a012701740154015a015b015c015d015e016501d1017f012c01250"
                               "14e01280150011d01a10174617267"
                               "65745f726f746174696f6e5f72616469616e730008000601f600ea00df00ce00c80"
                               "0c200280000001200000002000000"
                               "080000006a0100001000000010000000070100000000c03f0000c03fde000000000"
                               "00000060606060e0e2d0e282601";
static const char ttb_hex[] =
    "6f75747075745f686569676874006f75747075745f776964746800021c0f02010210100404042401";

static size_t unhex(const char *h, uint8_t *out) {
    size_t n = strlen(h) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    return n;
}

static void test_flex_model_options(void **state) {
    (void)state;
    uint8_t b[512];
    size_t len = unhex(l2tm_hex, b);
    ts_flex_ref r;
    int32_t x, sub[128];
    double d;
    size_t n;
    assert_int_equal(ts_flex_root(b, len, &r), 0);
    assert_int_equal(ts_flex_map_int32(&r, "left_rotation_idx", -1, &x), 0);
    assert_int_equal(x, 362);
    assert_int_equal(ts_flex_map_int32(&r, "right_rotation_idx", -1, &x), 0);
    assert_int_equal(x, 263);
    assert_int_equal(ts_flex_map_int32(&r, "output_width", -1, &x), 0);
    assert_int_equal(x, 16);
    assert_int_equal(ts_flex_map_double(&r, "scale_x", 0, &d), 0);
    assert_true(d == 1.5);
    assert_int_equal(ts_flex_map_double(&r, "target_rotation_radians", 9, &d), 0);
    assert_true(d == 0.0);
    assert_int_equal(ts_flex_map_int32_vec(&r, "subset_idxs", sub, 128, &n), 0);
    assert_int_equal(n, 71);
    assert_int_equal(sub[0], 263);
    for (size_t k = 0; k < n; k++) assert_in_range(sub[k], 0, 467);
    /* and the op accepts it */
    const ts_custom_op_def *def = ts_mp_custom_op("Landmarks2TransformMatrix");
    void *p = NULL;
    char err[256];
    assert_non_null(def);
    assert_int_equal(def->parse(b, len, &p, err, sizeof err), 0);
    ts_tview in = tv(NULL, 3, 1, 468, 3, 0), out;
    assert_int_equal(def->shape(p, &in, 1, &out, 1, err, sizeof err), 0);
    assert_int_equal(out.rank, 3);
    assert_int_equal(out.dims[1], 4);
    in.dims[1] = 300; /* index 362 no longer exists */
    assert_int_equal(def->shape(p, &in, 1, &out, 1, err, sizeof err), -1);
    def->free_params(p);
    /* every truncation of real options must fail cleanly or parse; never crash */
    for (size_t k = 0; k < len; k++) {
        uint8_t *t = malloc(len - k);
        memcpy(t, b + k, len - k);
        if (def->parse(t, len - k, &p, err, sizeof err) == 0) def->free_params(p);
        free(t);
    }
    len = unhex(ttb_hex, b);
    def = ts_mp_custom_op("TransformTensorBilinear");
    assert_int_equal(def->parse(b, len, &p, err, sizeof err), 0);
    ts_tview tin[2] = {tv(NULL, 4, 1, 48, 48, 32), tv(NULL, 3, 1, 4, 4, 0)};
    assert_int_equal(def->shape(p, tin, 2, &out, 1, err, sizeof err), 0);
    assert_int_equal(out.rank, 4);
    assert_int_equal(out.dims[1], 16);
    assert_int_equal(out.dims[2], 16);
    assert_int_equal(out.dims[3], 32);
    def->free_params(p);
}

/* ------------------------------------------------------------------ TransformTensorBilinear */

static void ttb_case(int version, const float *in, int h, int w, int c, const float *m, int oh,
                     int ow, const float *expect, double tol) {
    uint8_t opts[64];
    char err[256];
    /* build {"output_height": oh, "output_width": ow} (v2) / {"output_size": [oh, ow]} (v1) */
    size_t len;
    if (version == 2) {
        len = unhex(ttb_hex, opts);
        opts[len - 7] = (uint8_t)oh; /* the two inline values precede the type bytes */
        opts[len - 6] = (uint8_t)ow;
    } else {
        static const uint8_t v1[] = {
            'o', 'u',     't', 'p', 'u', 't', '_',
            's', 'i',     'z', 'e', 0,   1,   13, /* keys vector @12: size, offset */
            2,   0,       0,                      /* typed int vector @14 [oh, ow] */
            4,   1,       1,                      /* map prefix @17 */
            5,   11 << 2,                         /* value @20 -> vector; type byte */
            2,   0x24,    1};
        memcpy(opts, v1, sizeof v1);
        opts[15] = (uint8_t)oh;
        opts[16] = (uint8_t)ow;
        len = sizeof v1;
    }
    const ts_custom_op_def *def = ts_mp_custom_op_versioned("TransformTensorBilinear", version);
    ts_tview ins[2] = {tv((float *)in, 4, 1, h, w, c), tv((float *)m, 3, 1, 4, 4, 0)}, out;
    float *got, *want = malloc((size_t)oh * ow * c * sizeof *want);
    if (run_op(def, opts, len, ins, 2, &out, &got, err)) fail_msg("%s", err);
    assert_int_equal(out.dims[1], oh);
    assert_int_equal(out.dims[2], ow);
    ref_transform_bilinear(version, in, h, w, c, m, oh, ow, want);
    assert_close(got, want, (size_t)oh * ow * c, 1e-5, 1e-5);
    if (expect) assert_close(got, expect, (size_t)oh * ow * c, tol, 0);
    /* auto-detection picks the same version from the options */
    float *got2;
    if (run_op(ts_mp_custom_op("TransformTensorBilinear"), opts, len, ins, 2, &out, &got2, err))
        fail_msg("%s", err);
    assert_memory_equal(got, got2, (size_t)oh * ow * c * sizeof(float));
    free(got2);
    free(got);
    free(want);
}

static void test_ttb_known(void **state) {
    (void)state;
    enum { H = 5, W = 7, C = 3 };
    rng_seed(7);
    float *in = frand(H * W * C, -2, 2);
    float id[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    ttb_case(1, in, H, W, C, id, H, W, in, 0); /* identity, exact */
    ttb_case(2, in, H, W, C, id, H, W, in, 0);
    /* translate by one pixel in x: out(x, y) = in(x + 1, y), last column outside -> 0 */
    float tr[16] = {1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    float *sh = calloc(H * W * C, sizeof *sh);
    for (int y = 0; y < H; y++)
        for (int x = 0; x + 1 < W; x++)
            for (int k = 0; k < C; k++) sh[(y * W + x) * C + k] = in[(y * W + x + 1) * C + k];
    ttb_case(1, in, H, W, C, tr, H, W, sh, 0);
    ttb_case(2, in, H, W, C, tr, H, W, sh, 0);
    /* 90 degree rotation: out (W x H... as oh=W, ow=H): out(x, y) = in(col y, row H-1-x).
     * v1 (corner-aligned): ty = -x + (H-1); v2 (pixel centres): ty = -x + H. */
    float *rot = malloc(H * W * C * sizeof *rot);
    for (int y = 0; y < W; y++)
        for (int x = 0; x < H; x++)
            for (int k = 0; k < C; k++)
                rot[(y * H + x) * C + k] = in[((H - 1 - x) * W + y) * C + k];
    float r1[16] = {0, 1, 0, 0, -1, 0, 0, H - 1, 0, 0, 1, 0, 0, 0, 0, 1};
    float r2[16] = {0, 1, 0, 0, -1, 0, 0, H, 0, 0, 1, 0, 0, 0, 0, 1};
    ttb_case(1, in, H, W, C, r1, W, H, rot, 0);
    ttb_case(2, in, H, W, C, r2, W, H, rot, 0);
    /* v2 2x downscale samples at 2x + 0.5: the mean of each 2x2 block */
    float s2[16] = {2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    float *avg = malloc(2 * 3 * C * sizeof *avg);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 3; x++)
            for (int k = 0; k < C; k++)
                avg[(y * 3 + x) * C + k] =
                    (in[((2 * y) * W + 2 * x) * C + k] + in[((2 * y) * W + 2 * x + 1) * C + k] +
                     in[((2 * y + 1) * W + 2 * x) * C + k] +
                     in[((2 * y + 1) * W + 2 * x + 1) * C + k]) /
                    4;
    ttb_case(2, in, H, W, C, s2, 2, 3, avg, 1e-6);
    free(avg);
    free(rot);
    free(sh);
    free(in);
}

static void test_ttb_random(void **state) {
    (void)state;
    rng_seed(99);
    for (int t = 0; t < 60; t++) {
        int h = rng_i(1, 9), w = rng_i(1, 9), c = rng_i(1, 4), oh = rng_i(1, 9), ow = rng_i(1, 9);
        float *in = frand((size_t)h * w * c, -1, 1);
        float a = rng_f(-3.2f, 3.2f), s = rng_f(0.3f, 2.0f);
        float m[16] = {s * cosf(a),
                       -s * sinf(a),
                       rng_f(-1, 1),
                       rng_f(-2, (float)w + 1),
                       s * sinf(a),
                       s * cosf(a),
                       rng_f(-1, 1),
                       rng_f(-2, (float)h + 1),
                       0,
                       0,
                       1,
                       0,
                       0,
                       0,
                       0,
                       1};
        ttb_case(1 + (t & 1), in, h, w, c, m, oh, ow, NULL, 0);
        free(in);
    }
}

/* ------------------------------------------------------------------ TransformLandmarks */

static void test_tl(void **state) {
    (void)state;
    rng_seed(5);
    char err[256];
    for (int dim = 2; dim <= 3; dim++) {
        int n = 17;
        float *pts = frand((size_t)n * dim, -10, 10);
        float m[16] = {0.5f, -0.25f, 3.0f, 7.0f, 0.125f, 2.0f, -4.0f, -1.5f,
                       9,    9,      9,    9,    9,      9,    9,     9};
        float *want = malloc((size_t)n * dim * sizeof *want), *got;
        ts_tview ins[2] = {tv(pts, 3, 1, n, dim, 0), tv(m, 3, 1, 4, 4, 0)}, out;
        if (run_op(ts_mp_custom_op("TransformLandmarks"), NULL, 0, ins, 2, &out, &got, err))
            fail_msg("%s", err);
        assert_int_equal(out.rank, 3);
        assert_int_equal(out.dims[2], dim);
        ref_transform_landmarks(pts, n, dim, m, 1.0, want);
        assert_close(got, want, (size_t)n * dim, 1e-5, 1e-6);
        /* z is copied verbatim */
        if (dim == 3) assert_true(got[5] == pts[5]);
        free(got);
        /* v1: [1,1,1,n*dim] with "dimensions" and "scale" options */
        const uint8_t v1b[] = {'d',
                               'i',
                               'm',
                               'e',
                               'n',
                               's',
                               'i',
                               'o',
                               'n',
                               's',
                               0, /* 0..10 */
                               's',
                               'c',
                               'a',
                               'l',
                               'e',
                               0, /* 11..16 */
                               2,
                               18,
                               8, /* keys vector: size@17, data@18 */
                               6,
                               1,
                               2, /* map prefix @20: keys at 20-6=14? */
                               (uint8_t)dim,
                               2, /* values @23: dimensions, scale (int 2) */
                               0x04,
                               0x04, /* types */
                               4,
                               0x24,
                               1};
        uint8_t o1[sizeof v1b];
        memcpy(o1, v1b, sizeof o1);
        o1[20] = 20 - 18; /* keys offset: slot @20 -> keys data @18 */
        ts_tview in1[2] = {tv(pts, 4, 1, 1, 1, n * dim), tv(m, 3, 1, 4, 4, 0)};
        if (run_op(ts_mp_custom_op("TransformLandmarks"), o1, sizeof o1, in1, 2, &out, &got, err))
            fail_msg("%s", err);
        assert_int_equal(out.rank, 4);
        ref_transform_landmarks(pts, n, dim, m, 2.0, want);
        assert_close(got, want, (size_t)n * dim, 1e-5, 1e-6);
        free(got);
        free(want);
        free(pts);
    }
    /* bad shapes */
    float m[16] = {0};
    ts_tview ins[2] = {tv(NULL, 3, 1, 5, 4, 0), tv(m, 3, 1, 4, 4, 0)}, out;
    void *p;
    const ts_custom_op_def *def = ts_mp_custom_op("TransformLandmarks");
    assert_int_equal(def->parse(NULL, 0, &p, err, sizeof err), 0);
    assert_int_equal(def->shape(p, ins, 2, &out, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "last dimension"));
    ins[0].dims[2] = 3;
    ins[1] = tv(m, 2, 3, 3, 0, 0);
    assert_int_equal(def->shape(p, ins, 2, &out, 1, err, sizeof err), -1);
    def->free_params(p);
}

/* ------------------------------------------------------------------ Convolution2DTransposeBias */

static void tconv_opts(uint8_t *o, int pad, int sw, int sh) {
    int32_t v[3] = {pad, sw, sh};
    for (int i = 0; i < 3; i++)
        for (int b = 0; b < 4; b++) o[i * 4 + b] = (uint8_t)((uint32_t)v[i] >> (8 * b));
}

static void test_tconv_shapes(void **state) {
    (void)state;
    struct {
        int pad, s, in, k, out, top, bottom;
    } cases[] = {
        {1, 2, 128, 2, 256, 0, 0}, /* selfie_segmentation's last layer */
        {2, 2, 128, 2, 256, 0, 0}, {1, 2, 5, 3, 9, 1, 1}, {2, 2, 5, 3, 11, 0, 0},
        {1, 2, 4, 4, 8, 1, 1},     {1, 2, 4, 3, 8, 0, 1}, {1, 3, 4, 2, 10, 0, 1},
        {1, 1, 6, 5, 6, 2, 2},     {0, 2, 3, 3, 7, 0, 0}, /* "unknown" padding behaves as VALID */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t o[12];
        ts_tconv_params p;
        ts_tconv_geom g;
        char err[128];
        tconv_opts(o, cases[i].pad, cases[i].s, cases[i].s);
        assert_int_equal(ts_mp_parse_tconv(o, 12, &p, err, sizeof err), 0);
        assert_int_equal(ts_mp_tconv_geometry(&p, cases[i].in, cases[i].in, cases[i].k, cases[i].k,
                                              &g, err, sizeof err),
                         0);
        assert_int_equal(g.out_h, cases[i].out);
        assert_int_equal(g.out_w, cases[i].out);
        assert_int_equal(g.pad_top, cases[i].top);
        assert_int_equal(g.pad_bottom, cases[i].bottom);
        int rh, rw;
        ref_tconv(NULL, 1, cases[i].in, cases[i].in, 1, NULL, 1, cases[i].k, cases[i].k, NULL,
                  cases[i].s, cases[i].s, cases[i].pad == 1, NULL, &rh, &rw);
        assert_int_equal(rh, cases[i].out);
    }
    uint8_t o[12];
    ts_tconv_params p;
    char err[128];
    tconv_opts(o, 1, 0, 2);
    assert_int_equal(ts_mp_parse_tconv(o, 12, &p, err, sizeof err), -1);
    tconv_opts(o, 7, 1, 1);
    assert_int_equal(ts_mp_parse_tconv(o, 12, &p, err, sizeof err), -1);
    assert_int_equal(ts_mp_parse_tconv(o, 11, &p, err, sizeof err), -1);
    /* real options bytes of selfie_segmentation.tflite */
    const uint8_t real[12] = {1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0};
    assert_int_equal(ts_mp_parse_tconv(real, 12, &p, err, sizeof err), 0);
    assert_int_equal(p.padding_same, 1);
    assert_int_equal(p.stride_w, 2);
}

static void tconv_case(int n, int h, int w, int ic, int oc, int kh, int kw, int sh, int sw,
                       int same, const float *in, const float *wt, const float *bias,
                       const float *expect) {
    uint8_t o[12];
    char err[256];
    tconv_opts(o, same ? 1 : 2, sw, sh);
    ts_tview ins[3] = {tv((float *)in, 4, n, h, w, ic), tv((float *)wt, 4, oc, kh, kw, ic),
                       tv((float *)bias, 1, oc, 0, 0, 0)},
             out;
    float *got;
    if (run_op(ts_mp_custom_op("Convolution2DTransposeBias"), o, 12, ins, 3, &out, &got, err))
        fail_msg("%s", err);
    int rh, rw;
    ref_tconv(in, n, h, w, ic, wt, oc, kh, kw, bias, sh, sw, same, NULL, &rh, &rw);
    assert_int_equal(out.dims[0], n);
    assert_int_equal(out.dims[1], rh);
    assert_int_equal(out.dims[2], rw);
    assert_int_equal(out.dims[3], oc);
    size_t cnt = (size_t)n * rh * rw * oc;
    float *want = malloc(cnt * sizeof *want);
    ref_tconv(in, n, h, w, ic, wt, oc, kh, kw, bias, sh, sw, same, want, &rh, &rw);
    assert_close(got, want, cnt, 1e-5, 1e-5);
    if (expect) assert_close(got, expect, cnt, 0, 0);
    free(want);
    free(got);
}

static void test_tconv_known(void **state) {
    (void)state;
    rng_seed(11);
    /* 1x1 delta kernel, stride 1: output = input + bias */
    float *in = frand(1 * 4 * 5 * 2, -1, 1);
    float wt[2 * 1 * 1 * 2] = {1, 0, 0, 1};
    float bias[2] = {0.5f, -0.25f};
    float *exp1 = malloc(40 * sizeof *exp1);
    for (int i = 0; i < 40; i++) exp1[i] = in[i] + bias[i % 2];
    tconv_case(1, 4, 5, 2, 2, 1, 1, 1, 1, 1, in, wt, bias, exp1);
    tconv_case(1, 4, 5, 2, 2, 1, 1, 1, 1, 0, in, wt, bias, exp1);
    /* 2x2 kernel of ones, stride 2, one channel: each pixel becomes a 2x2 block */
    float ones[4] = {1, 1, 1, 1}, zero = 0;
    float *exp2 = malloc(8 * 10 * sizeof *exp2);
    float *in1 = frand(4 * 5, -1, 1);
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 10; x++) exp2[y * 10 + x] = in1[(y / 2) * 5 + x / 2];
    tconv_case(1, 4, 5, 1, 1, 2, 2, 2, 2, 0, in1, ones, &zero, exp2); /* VALID: 8x10 */
    /* SAME: (5-1) % 2 == 0 so one column of padding, on the right: the first 9 columns */
    float *exp3 = malloc(8 * 9 * sizeof *exp3);
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 9; x++) exp3[y * 9 + x] = exp2[y * 10 + x];
    tconv_case(1, 4, 5, 1, 1, 2, 2, 2, 2, 1, in1, ones, &zero, exp3);
    free(exp3);
    free(exp1);
    free(exp2);
    free(in1);
    free(in);
}

static void test_tconv_random(void **state) {
    (void)state;
    rng_seed(2024);
    for (int t = 0; t < 80; t++) {
        int n = rng_i(1, 2), h = rng_i(1, 6), w = rng_i(1, 6), ic = rng_i(1, 4), oc = rng_i(1, 4);
        int kh = rng_i(1, 5), kw = rng_i(1, 5), sh = rng_i(1, 3), sw = rng_i(1, 3), same = t & 1;
        float *in = frand((size_t)n * h * w * ic, -1, 1);
        float *wt = frand((size_t)oc * kh * kw * ic, -1, 1);
        float *bias = frand((size_t)oc, -1, 1);
        tconv_case(n, h, w, ic, oc, kh, kw, sh, sw, same, in, wt, bias, NULL);
        free(in);
        free(wt);
        free(bias);
    }
}

static void test_tconv_errors(void **state) {
    (void)state;
    uint8_t o[12];
    char err[256];
    void *p;
    tconv_opts(o, 1, 2, 2);
    const ts_custom_op_def *def = ts_mp_custom_op("Convolution2DTransposeBias");
    assert_int_equal(def->parse(o, 12, &p, err, sizeof err), 0);
    ts_tview ins[3] = {tv(NULL, 4, 1, 4, 4, 3), tv(NULL, 4, 2, 2, 2, 4), tv(NULL, 1, 2, 0, 0, 0)},
             out;
    assert_int_equal(def->shape(p, ins, 3, &out, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "channels"));
    ins[1].dims[3] = 3;
    ins[2].dims[0] = 5;
    assert_int_equal(def->shape(p, ins, 3, &out, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "bias"));
    ins[2].dims[0] = 2;
    assert_int_equal(def->shape(p, ins, 3, &out, 1, err, sizeof err), 0);
    assert_int_equal(def->shape(p, ins, 2, &out, 1, err, sizeof err), -1);
    def->free_params(p);
    assert_int_equal(def->parse(NULL, 0, &p, err, sizeof err), -1);
    assert_null(ts_mp_custom_op("NoSuchOp"));
    assert_null(ts_mp_custom_op_versioned("Convolution2DTransposeBias", 2));
}

/* ------------------------------------------------------------------ Landmarks2TransformMatrix */

/* Builds v2 options with 1-byte-width ints except scale as int (exercises int->float). */
static size_t l2tm_v2_opts(uint8_t *b, int left, int right, int ow, int oh, int scale,
                           const int *sub, int nsub) {
    /* keys, sorted: left_rotation_idx, output_height, output_width, right_rotation_idx,
     * scale_x, scale_y, subset_idxs (target_rotation_radians absent -> 0) */
    static const char *keys[7] = {"left_rotation_idx",  "output_height", "output_width",
                                  "right_rotation_idx", "scale_x",       "scale_y",
                                  "subset_idxs"};
    size_t p = 0, kpos[7];
    for (int i = 0; i < 7; i++) {
        kpos[i] = p;
        size_t l = strlen(keys[i]) + 1;
        memcpy(b + p, keys[i], l);
        p += l;
    }
    /* keys vector, width 2 (offsets can exceed 255) */
    b[p++] = 7, b[p++] = 0;
    size_t kdata = p;
    for (int i = 0; i < 7; i++) {
        size_t off = kdata + 2 * i - kpos[i];
        b[p++] = (uint8_t)off, b[p++] = (uint8_t)(off >> 8);
    }
    /* subset typed vector of 2-byte ints */
    b[p++] = (uint8_t)nsub, b[p++] = 0;
    size_t sdata = p;
    for (int i = 0; i < nsub; i++) b[p++] = (uint8_t)sub[i], b[p++] = (uint8_t)(sub[i] >> 8);
    /* map, width 2 */
    size_t pre = p;
    size_t koff = pre - kdata;
    b[p++] = (uint8_t)koff, b[p++] = (uint8_t)(koff >> 8); /* keys offset */
    b[p++] = 2, b[p++] = 0;                                /* keys width */
    b[p++] = 7, b[p++] = 0;                                /* size */
    size_t vdata = p;
    int vals[6] = {left, oh, ow, right, scale, scale};
    for (int i = 0; i < 6; i++) b[p++] = (uint8_t)vals[i], b[p++] = (uint8_t)(vals[i] >> 8);
    size_t soff = p - sdata;
    b[p++] = (uint8_t)soff, b[p++] = (uint8_t)(soff >> 8);
    for (int i = 0; i < 6; i++) b[p++] = 0x04 | 1; /* INT, width 2 */
    b[p++] = (11 << 2) | 1;                        /* VECTOR_INT of 2-byte elements */
    size_t roff = p - vdata;
    b[p++] = (uint8_t)roff, b[p++] = (uint8_t)(roff >> 8);
    b[p++] = (9 << 2) | 1; /* MAP, width 2 */
    b[p++] = 2;
    return p;
}

static void test_l2tm_v2(void **state) {
    (void)state;
    char err[256];
    uint8_t o[1024];
    float m[16], want[16], *got;
    /* known answer: axis-aligned box x in [10, 30], y in [20, 60], eyes level, target 0 */
    float lm[5 * 3] = {10, 20, 0, 30, 20, 0, 10, 60, 0, 30, 60, 0, 20, 40, 0};
    int sub[4] = {0, 1, 2, 3};
    size_t len = l2tm_v2_opts(o, 0, 1, 16, 8, 2, sub, 4);
    ts_tview in = tv(lm, 3, 1, 5, 3, 0), out;
    if (run_op(ts_mp_custom_op("Landmarks2TransformMatrix"), o, len, &in, 1, &out, &got, err))
        fail_msg("%s", err);
    /* scale = 2 * 20 / 16 = 2.5 in x, 2 * 40 / 8 = 10 in y; centre (20, 40) */
    const float known[16] = {2.5f, 0, 0, 20 - 2.5f * 8, 0, 10, 0, 40 - 10 * 4, 0, 0, 1, 0, 0,
                             0,    0, 1};
    assert_close(got, known, 16, 1e-5, 1e-6);
    free(got);
    /* odd subset length: last index paired with itself */
    int sub3[3] = {0, 3, 4};
    len = l2tm_v2_opts(o, 0, 1, 16, 8, 2, sub3, 3);
    if (run_op(ts_mp_custom_op("Landmarks2TransformMatrix"), o, len, &in, 1, &out, &got, err))
        fail_msg("%s", err);
    assert_close(got, known, 16, 1e-5, 1e-6);
    free(got);
    /* random */
    rng_seed(31);
    for (int t = 0; t < 50; t++) {
        int n = rng_i(3, 40), nsub = rng_i(1, 12), left = rng_i(0, n - 1), right = rng_i(0, n - 1);
        int ow = rng_i(1, 64), oh = rng_i(1, 64), sc = rng_i(1, 3);
        int s[12], s2[12];
        for (int i = 0; i < nsub; i++) s[i] = rng_i(0, n - 1);
        if (left == right) continue;
        float *pts = frand((size_t)n * 3, -50, 50);
        len = l2tm_v2_opts(o, left, right, ow, oh, sc, s, nsub);
        in = tv(pts, 3, 1, n, 3, 0);
        if (run_op(ts_mp_custom_op_versioned("Landmarks2TransformMatrix", 2), o, len, &in, 1, &out,
                   &got, err))
            fail_msg("%s", err);
        int ns2 = 0;
        for (int i = 0; i < nsub; i++) s2[ns2++] = s[i];
        if (nsub % 2) s2[ns2++] = s[nsub - 1];
        ref_l2tm_v2(pts, left, right, 0.0, s2, ns2, ow, oh, sc, sc, want);
        assert_close(got, want, 16, 2e-3, 1e-4);
        free(got);
        free(pts);
    }
    (void)m;
    /* errors: missing output size, index out of range */
    void *p;
    const ts_custom_op_def *def = ts_mp_custom_op("Landmarks2TransformMatrix");
    len = l2tm_v2_opts(o, 0, 1, 0, 8, 2, sub, 4);
    assert_int_equal(def->parse(o, len, &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "output_width"));
    len = l2tm_v2_opts(o, 0, 9, 16, 8, 2, sub, 4);
    assert_int_equal(def->parse(o, len, &p, err, sizeof err), 0);
    in = tv(NULL, 3, 1, 5, 3, 0);
    assert_int_equal(def->shape(p, &in, 1, &out, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "out of range"));
    def->free_params(p);
    assert_int_equal(def->parse(NULL, 0, &p, err, sizeof err), -1);
}

/* v1 options: input_hw, output_hw (typed int vectors), dimensions, landmarks_range,
 * bbox_size_multiplier (float), left/right_rotation_idx, subset; 1-byte widths except the float. */
static size_t l2tm_v1_opts(uint8_t *b, const int ihw[2], const int ohw[2], int range, float mult,
                           int left, int right, const int *sub, int nsub) {
    static const char *keys[8] = {
        "bbox_size_multiplier", "dimensions", "input_hw",           "landmarks_range",
        "left_rotation_idx",    "output_hw",  "right_rotation_idx", "subset"};
    size_t p = 0, kpos[8];
    for (int i = 0; i < 8; i++) {
        kpos[i] = p;
        size_t l = strlen(keys[i]) + 1;
        memcpy(b + p, keys[i], l);
        p += l;
    }
    while (p % 4) b[p++] = 0;
    /* keys vector with 4-byte offsets */
    b[p++] = 8, b[p++] = 0, b[p++] = 0, b[p++] = 0;
    size_t kdata = p;
    for (int i = 0; i < 8; i++) {
        uint32_t off = (uint32_t)(kdata + 4 * i - kpos[i]);
        for (int k = 0; k < 4; k++) b[p++] = (uint8_t)(off >> (8 * k));
    }
    size_t vec[3];
    const int *vs[3] = {ihw, ohw, sub};
    int vn[3] = {2, 2, nsub};
    for (int v = 0; v < 3; v++) { /* typed int vectors, 4-byte elements */
        for (int k = 0; k < 4; k++) b[p++] = (uint8_t)((uint32_t)vn[v] >> (8 * k));
        vec[v] = p;
        for (int i = 0; i < vn[v]; i++)
            for (int k = 0; k < 4; k++) b[p++] = (uint8_t)((uint32_t)vs[v][i] >> (8 * k));
    }
    size_t pre = p;
    uint32_t hdr[3] = {(uint32_t)(pre - kdata), 4, 8};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++) b[p++] = (uint8_t)(hdr[i] >> (8 * k));
    size_t vdata = p;
    uint32_t fm;
    memcpy(&fm, &mult, 4);
    uint32_t vals[8] = {fm, 3, 0, (uint32_t)range, (uint32_t)left, 0, (uint32_t)right, 0};
    for (int i = 0; i < 8; i++) {
        if (i == 2) vals[i] = (uint32_t)(p - vec[0]);
        if (i == 5) vals[i] = (uint32_t)(p - vec[1]);
        if (i == 7) vals[i] = (uint32_t)(p - vec[2]);
        for (int k = 0; k < 4; k++) b[p++] = (uint8_t)(vals[i] >> (8 * k));
    }
    const uint8_t types[8] = {(3 << 2) | 2, (1 << 2) | 2,  (11 << 2) | 2, (1 << 2) | 2,
                              (1 << 2) | 2, (11 << 2) | 2, (1 << 2) | 2,  (11 << 2) | 2};
    memcpy(b + p, types, 8);
    p += 8;
    uint32_t roff = (uint32_t)(p - vdata);
    for (int k = 0; k < 4; k++) b[p++] = (uint8_t)(roff >> (8 * k));
    b[p++] = (9 << 2) | 2;
    b[p++] = 4;
    return p;
}

static void test_l2tm_v1(void **state) {
    (void)state;
    char err[256];
    uint8_t o[2048];
    float want[16], *got;
    rng_seed(77);
    for (int t = 0; t < 40; t++) {
        int n = rng_i(3, 30), nsub = rng_i(1, 10), left = rng_i(0, n - 1), right = rng_i(0, n - 1);
        if (left == right) continue;
        int ihw[2] = {rng_i(1, 300), rng_i(1, 300)}, ohw[2] = {rng_i(2, 64), rng_i(2, 64)};
        int range = rng_i(1, 300), s[10], s2[12], ns2 = 0;
        float mult = rng_f(0.5f, 3.0f);
        for (int i = 0; i < nsub; i++) s2[ns2++] = s[i] = rng_i(0, n - 1);
        if (nsub % 2) s2[ns2++] = s[nsub - 1];
        float *pts = frand((size_t)n * 3, 0, 200);
        size_t len = l2tm_v1_opts(o, ihw, ohw, range, mult, left, right, s, nsub);
        ts_tview in = tv(pts, 4, 1, 1, 1, n * 3), out;
        if (run_op(ts_mp_custom_op("Landmarks2TransformMatrix"), o, len, &in, 1, &out, &got, err))
            fail_msg("%s", err);
        ref_l2tm_v1(pts, left, right, s2, ns2, ihw, ohw, range, mult, want);
        assert_close(got, want, 16, 5e-3, 1e-3);
        free(got);
        free(pts);
    }
    /* v2 shapes are refused by a v1 kernel and vice versa */
    int ihw[2] = {10, 10}, ohw[2] = {4, 4}, s[2] = {0, 1};
    size_t len = l2tm_v1_opts(o, ihw, ohw, 10, 1.0f, 0, 1, s, 2);
    void *p;
    const ts_custom_op_def *def = ts_mp_custom_op("Landmarks2TransformMatrix");
    assert_int_equal(def->parse(o, len, &p, err, sizeof err), 0);
    ts_tview in = tv(NULL, 3, 1, 5, 3, 0), out;
    assert_int_equal(def->shape(p, &in, 1, &out, 1, err, sizeof err), -1);
    def->free_params(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flex_scalars), cmocka_unit_test(test_flex_map),
        cmocka_unit_test(test_flex_hostile), cmocka_unit_test(test_flex_model_options),
        cmocka_unit_test(test_ttb_known),    cmocka_unit_test(test_ttb_random),
        cmocka_unit_test(test_tl),           cmocka_unit_test(test_tconv_shapes),
        cmocka_unit_test(test_tconv_known),  cmocka_unit_test(test_tconv_random),
        cmocka_unit_test(test_tconv_errors), cmocka_unit_test(test_l2tm_v2),
        cmocka_unit_test(test_l2tm_v1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
