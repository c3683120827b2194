/* MediaPipe's custom TFLite operators in plain C. Semantics (derived from the public MediaPipe
 * sources under mediapipe/util/tflite/operations/ and TensorFlow's GPU-delegate option parsers
 * under tensorflow/lite/delegates/gpu/common/mediapipe/) are written down in
 * docs/nn-custom-ops.md. Arithmetic mirrors the reference kernels' float/double mix so results
 * match them to the last bit or nearly so. */
#include "nn/ops_mediapipe.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/flexbuf.h"

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int
fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---------------------------------------------------------------- shared helpers */

static bool dims_positive(const ts_tview *t) {
    if (t->rank < 0 || t->rank > TS_NN_MAX_RANK) return false;
    for (int i = 0; i < t->rank; i++)
        if (t->dims[i] <= 0) return false;
    return true;
}

/* Element count, or 0 when a dimension is non-positive or the product overflows int32
 * (tensors here are indexed with int, like the reference kernels). */
static int64_t count_of(const ts_tview *t) {
    if (!dims_positive(t)) return 0;
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) {
        n *= t->dims[i];
        if (n > INT32_MAX) return 0;
    }
    return n;
}

static void set_shape(ts_tview *o, int rank, const int32_t *dims) {
    o->rank = rank;
    for (int i = 0; i < rank; i++) o->dims[i] = dims[i];
}

static bool same_shape(const ts_tview *a, int rank, const int32_t *dims) {
    if (a->rank != rank) return false;
    for (int i = 0; i < rank; i++)
        if (a->dims[i] != dims[i]) return false;
    return true;
}

/* In run(): outputs must already carry the shape that shape() computes. */
typedef int (*shape_fn)(const void *, const ts_tview *, int, ts_tview *, int, char *, size_t);

static int check_run(shape_fn shape, const char *op, const void *params, const ts_tview *in,
                     int n_in, ts_tview *out, int n_out, char *err, size_t errlen) {
    ts_tview want[2];
    if (n_out < 1 || n_out > 2)
        return fail(err, errlen, "%s: expected 1 output, got %d", op, n_out);
    if (shape(params, in, n_in, want, n_out, err, errlen)) return -1;
    for (int i = 0; i < n_in; i++)
        if (!in[i].data) return fail(err, errlen, "%s: input %d has no data", op, i);
    for (int i = 0; i < n_out; i++) {
        if (!out[i].data) return fail(err, errlen, "%s: output %d has no data", op, i);
        if (!same_shape(&out[i], want[i].rank, want[i].dims))
            return fail(err, errlen, "%s: output %d has the wrong shape", op, i);
    }
    return 0;
}

/* Opens the flexbuffers root map of custom_options; an absent buffer is an empty map. */
static int open_map(const char *op, const uint8_t *opts, size_t len, ts_flex_ref *m, bool *empty,
                    char *err, size_t errlen) {
    *empty = (opts == NULL || len == 0);
    if (*empty) return 0;
    int rc = ts_flex_root(opts, len, m);
    if (!rc && m->type != TS_FLEX_MAP) rc = TS_FLEX_ETYPE;
    if (rc) return fail(err, errlen, "%s: custom options: %s", op, ts_flex_strerror(rc));
    return 0;
}

static bool has_key(const ts_flex_ref *m, bool empty, const char *key) {
    ts_flex_ref v;
    return !empty && ts_flex_map_get(m, key, &v) == 0;
}

static int opt_i32(const char *op, const ts_flex_ref *m, bool empty, const char *key, int32_t *out,
                   char *err, size_t errlen) {
    *out = 0;
    if (empty) return 0;
    int rc = ts_flex_map_int32(m, key, 0, out);
    if (rc) return fail(err, errlen, "%s: option %s: %s", op, key, ts_flex_strerror(rc));
    return 0;
}

static int opt_f32(const char *op, const ts_flex_ref *m, bool empty, const char *key, float *out,
                   char *err, size_t errlen) {
    double d = 0.0;
    *out = 0.0f;
    if (empty) return 0;
    int rc = ts_flex_map_double(m, key, 0.0, &d);
    if (rc) return fail(err, errlen, "%s: option %s: %s", op, key, ts_flex_strerror(rc));
    *out = (float)d;
    return 0;
}

/* A vector of ints option, heap-allocated (*out may be NULL when *n == 0). */
static int opt_i32_vec(const char *op, const ts_flex_ref *m, bool empty, const char *key,
                       int32_t **out, size_t *n, char *err, size_t errlen) {
    *out = NULL;
    *n = 0;
    if (empty) return 0;
    ts_flex_ref v;
    size_t len;
    int rc = ts_flex_map_get(m, key, &v);
    if (rc == TS_FLEX_ENOTFOUND) return 0;
    if (!rc) rc = ts_flex_vec_len(&v, &len);
    if (rc) return fail(err, errlen, "%s: option %s: %s", op, key, ts_flex_strerror(rc));
    if (len == 0) return 0;
    int32_t *a = malloc(len * sizeof *a);
    if (!a) return fail(err, errlen, "%s: out of memory", op);
    rc = ts_flex_map_int32_vec(m, key, a, len, n);
    if (rc) {
        free(a);
        return fail(err, errlen, "%s: option %s: %s", op, key, ts_flex_strerror(rc));
    }
    *out = a;
    return 0;
}

static void free_plain(void *p) {
    free(p);
}

/* 4x4 row-major float matrix product r = a * b (r may alias a), summed in k order in float. */
static void mat4_mul(float *r, const float *a, const float *b) {
    float t[16];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            float s = 0.0f;
            for (int k = 0; k < 4; k++) s += a[i * 4 + k] * b[k * 4 + j];
            t[i * 4 + j] = s;
        }
    memcpy(r, t, sizeof t);
}

static void mat3_mul(float *r, const float *a, const float *b) {
    float t[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            float s = 0.0f;
            for (int k = 0; k < 3; k++) s += a[i * 3 + k] * b[k * 3 + j];
            t[i * 3 + j] = s;
        }
    memcpy(r, t, sizeof t);
}

/* (x, y, 1) through a 3x3 matrix, summed in k order in float. */
static void mat3_apply(const float *m, float x, float y, float *ox, float *oy) {
    float v[3] = {x, y, 1.0f}, o[2];
    for (int r = 0; r < 2; r++) {
        float s = 0.0f;
        for (int k = 0; k < 3; k++) s += m[r * 3 + k] * v[k];
        o[r] = s;
    }
    *ox = o[0];
    *oy = o[1];
}

/* ---------------------------------------------------------------- Landmarks2TransformMatrix */

#define L2TM "Landmarks2TransformMatrix"

typedef struct l2tm_params {
    int version;
    int32_t left_idx, right_idx;
    /* v2 */
    float target_rotation;
    int32_t out_w, out_h;
    float scale_x, scale_y;
    /* v1 */
    int32_t in_hw[2], out_hw[2]; /* [h, w] */
    int32_t dimensions, landmarks_range;
    float bbox_mult;
    /* both: index pairs; an odd-length option list pairs its last element with itself */
    size_t n_pairs;
    int32_t max_idx; /* largest landmark index referenced */
    int32_t pairs[];
} l2tm_params;

static int l2tm_parse_ver(int version, const uint8_t *opts, size_t len, void **out, char *err,
                          size_t errlen) {
    ts_flex_ref m;
    bool empty;
    int32_t *sub = NULL;
    size_t n_sub = 0;
    *out = NULL;
    if (open_map(L2TM, opts, len, &m, &empty, err, errlen)) return -1;
    if (version == 0)
        version = (has_key(&m, empty, "input_hw") || has_key(&m, empty, "output_hw")) ? 1 : 2;
    if (opt_i32_vec(L2TM, &m, empty, version == 1 ? "subset" : "subset_idxs", &sub, &n_sub, err,
                    errlen))
        return -1;
    size_t n_pairs = (n_sub + 1) / 2;
    l2tm_params *p = calloc(1, sizeof *p + 2 * n_pairs * sizeof(int32_t));
    if (!p) {
        free(sub);
        return fail(err, errlen, L2TM ": out of memory");
    }
    p->version = version;
    p->n_pairs = n_pairs;
    for (size_t i = 0; i < n_pairs; i++) {
        p->pairs[2 * i] = sub[2 * i];
        p->pairs[2 * i + 1] = (2 * i + 1 < n_sub) ? sub[2 * i + 1] : sub[2 * i];
    }
    free(sub);
    int rc = opt_i32(L2TM, &m, empty, "left_rotation_idx", &p->left_idx, err, errlen) ||
             opt_i32(L2TM, &m, empty, "right_rotation_idx", &p->right_idx, err, errlen);
    if (!rc && version == 2) {
        rc =
            opt_f32(L2TM, &m, empty, "target_rotation_radians", &p->target_rotation, err, errlen) ||
            opt_i32(L2TM, &m, empty, "output_height", &p->out_h, err, errlen) ||
            opt_i32(L2TM, &m, empty, "output_width", &p->out_w, err, errlen) ||
            opt_f32(L2TM, &m, empty, "scale_x", &p->scale_x, err, errlen) ||
            opt_f32(L2TM, &m, empty, "scale_y", &p->scale_y, err, errlen);
        if (!rc) {
            if (p->out_h <= 0)
                rc = fail(err, errlen, L2TM ": output_height must be > 0, got %d", (int)p->out_h);
            else if (p->out_w <= 0)
                rc = fail(err, errlen, L2TM ": output_width must be > 0, got %d", (int)p->out_w);
            else if (!(p->scale_x > 0))
                rc = fail(err, errlen, L2TM ": scale_x must be > 0");
            else if (!(p->scale_y > 0))
                rc = fail(err, errlen, L2TM ": scale_y must be > 0");
        }
    } else if (!rc) {
        int32_t *v = NULL;
        size_t n = 0;
        for (int k = 0; k < 2 && !rc; k++) {
            const char *key = k ? "output_hw" : "input_hw";
            int32_t *dst = k ? p->out_hw : p->in_hw;
            if (opt_i32_vec(L2TM, &m, empty, key, &v, &n, err, errlen))
                rc = -1;
            else if (n != 2)
                rc = fail(err, errlen, L2TM ": option %s must hold 2 ints, has %zu", key, n);
            else
                dst[0] = v[0], dst[1] = v[1];
            free(v);
            v = NULL;
        }
        if (!rc)
            rc = opt_i32(L2TM, &m, empty, "dimensions", &p->dimensions, err, errlen) ||
                 opt_i32(L2TM, &m, empty, "landmarks_range", &p->landmarks_range, err, errlen) ||
                 opt_f32(L2TM, &m, empty, "bbox_size_multiplier", &p->bbox_mult, err, errlen);
        if (!rc) {
            if (p->bbox_mult == 0)
                rc = fail(err, errlen, L2TM ": bbox_size_multiplier must not be 0");
            else if (p->dimensions != 3)
                rc = fail(err, errlen, L2TM ": dimensions must be 3, got %d", (int)p->dimensions);
            else if (p->in_hw[0] <= 0 || p->in_hw[1] <= 0)
                rc = fail(err, errlen, L2TM ": input_hw must be positive");
            /* MediaPipe accepts 1 here and then divides by zero (output_hw - 1). */
            else if (p->out_hw[0] <= 1 || p->out_hw[1] <= 1)
                rc = fail(err, errlen, L2TM ": output_hw must be > 1");
            else if (p->landmarks_range <= 0)
                rc = fail(err, errlen, L2TM ": landmarks_range must be > 0");
        }
    }
    if (!rc) {
        if (p->left_idx < 0)
            rc = fail(err, errlen, L2TM ": left_rotation_idx must be >= 0, got %d",
                      (int)p->left_idx);
        else if (p->right_idx < 0)
            rc = fail(err, errlen, L2TM ": right_rotation_idx must be >= 0, got %d",
                      (int)p->right_idx);
        else if (p->n_pairs == 0)
            rc = fail(err, errlen, L2TM ": landmark subset is empty");
    }
    p->max_idx = p->left_idx > p->right_idx ? p->left_idx : p->right_idx;
    for (size_t i = 0; !rc && i < 2 * p->n_pairs; i++) {
        if (p->pairs[i] < 0)
            rc = fail(err, errlen, L2TM ": subset value %zu is negative", i);
        else if (p->pairs[i] > p->max_idx)
            p->max_idx = p->pairs[i];
    }
    if (rc) {
        free(p);
        return -1;
    }
    *out = p;
    return 0;
}

static int l2tm_parse_auto(const uint8_t *o, size_t l, void **p, char *e, size_t n) {
    return l2tm_parse_ver(0, o, l, p, e, n);
}
static int l2tm_parse_v1(const uint8_t *o, size_t l, void **p, char *e, size_t n) {
    return l2tm_parse_ver(1, o, l, p, e, n);
}
static int l2tm_parse_v2(const uint8_t *o, size_t l, void **p, char *e, size_t n) {
    return l2tm_parse_ver(2, o, l, p, e, n);
}

static int l2tm_shape(const void *params, const ts_tview *in, int n_in, ts_tview *out, int n_out,
                      char *err, size_t errlen) {
    const l2tm_params *p = params;
    if (n_in != 1 || n_out != 1)
        return fail(err, errlen, L2TM ": expected 1 input and 1 output, got %d and %d", n_in,
                    n_out);
    int64_t n = count_of(&in[0]);
    if (n == 0) return fail(err, errlen, L2TM ": input has an empty or invalid shape");
    if (p->version == 2 && in[0].rank != 3)
        return fail(err, errlen, L2TM ": v2 input must have rank 3, has %d", in[0].rank);
    if (p->version == 1 &&
        (in[0].rank != 4 || in[0].dims[0] != 1 || in[0].dims[1] != 1 || in[0].dims[2] != 1))
        return fail(err, errlen, L2TM ": v1 input must be [1,1,1,3*N]");
    if ((int64_t)p->max_idx >= n / 3)
        return fail(err, errlen, L2TM ": landmark index %d out of range for %lld landmarks",
                    (int)p->max_idx, (long long)(n / 3));
    static const int32_t od[3] = {1, 4, 4};
    set_shape(&out[0], 3, od);
    return 0;
}

static void l2tm_v2(const l2tm_params *p, const float *lm, float *o) {
    /* rotation that brings the left->right landmark direction onto the target angle */
    float lx = lm[p->left_idx * 3], ly = lm[p->left_idx * 3 + 1];
    float rx = lm[p->right_idx * 3], ry = lm[p->right_idx * 3 + 1];
    float rot = p->target_rotation - atan2f(ry - ly, rx - lx);
    const float fwd[9] = {cosf(rot), -sinf(rot), 0, sinf(rot), cosf(rot), 0, 0, 0, 1};
    const float back[9] = {cosf(-rot), -sinf(-rot), 0, sinf(-rot), cosf(-rot), 0, 0, 0, 1};
    /* axis-aligned bounds of the rotated subset */
    float minx = 0, miny = 0, maxx = 0, maxy = 0;
    for (size_t i = 0; i < 2 * p->n_pairs; i++) {
        int32_t k = p->pairs[i];
        float x, y;
        mat3_apply(fwd, lm[k * 3], lm[k * 3 + 1], &x, &y);
        if (i == 0 || x > maxx) maxx = x;
        if (i == 0 || y > maxy) maxy = y;
        if (i == 0 || x < minx) minx = x;
        if (i == 0 || y < miny) miny = y;
    }
    float cw = maxx - minx, ch = maxy - miny, cx, cy;
    mat3_apply(back, (minx + maxx) / 2, (miny + maxy) / 2, &cx, &cy);
    /* t = shift(center) * rotate(-rot) * scale * shift(-output/2) */
    float r = -rot;
    float sx = p->scale_x * cw / (float)p->out_w, sy = p->scale_y * ch / (float)p->out_h;
    float hx = (float)(-1.0 * (p->out_w / 2.0)), hy = (float)(-1.0 * (p->out_h / 2.0));
    float t[16] = {1, 0, 0, cx, 0, 1, 0, cy, 0, 0, 1, 0, 0, 0, 0, 1};
    const float mr[16] = {cosf(r), -sinf(r), 0, 0, sinf(r), cosf(r), 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    const float ms[16] = {sx, 0, 0, 0, 0, sy, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    const float mh[16] = {1, 0, 0, hx, 0, 1, 0, hy, 0, 0, 1, 0, 0, 0, 0, 1};
    mat4_mul(t, t, mr);
    mat4_mul(t, t, ms);
    mat4_mul(t, t, mh);
    memcpy(o, t, sizeof t);
}

static void l2tm_v1(const l2tm_params *p, const float *lm, float *o) {
    float lx = lm[p->left_idx * 3], ly = lm[p->left_idx * 3 + 1];
    float rx = lm[p->right_idx * 3], ry = lm[p->right_idx * 3 + 1];
    float a = -atanf((ry - ly) / (rx - lx));
    float ca = cosf(a), sa = sinf(a);
    float maxx = -100000, maxy = -100000, minx = 100000, miny = 100000;
    for (size_t i = 0; i < 2 * p->n_pairs; i++) {
        int32_t k = p->pairs[i];
        float x = lm[k * 3], y = lm[k * 3 + 1];
        float qx = x * ca - y * sa, qy = x * sa + y * ca;
        maxx = fmaxf(maxx, qx), maxy = fmaxf(maxy, qy);
        minx = fminf(minx, qx), miny = fminf(miny, qy);
    }
    float range = (float)p->landmarks_range;
    float bx = (maxx - minx) * p->bbox_mult, by = (maxy - miny) * p->bbox_mult;
    float mx = (float)((maxx + minx) / 2.0), my = (float)((maxy + miny) / 2.0);
    float cn = cosf(-a), sn = sinf(-a);
    float rmx = mx * cn - my * sn, rmy = mx * sn + my * cn;
    const float scale[9] = {bx / range, 0, 0, 0, by / range, 0, 0, 0, 1};
    const float rotm[9] = {cn, -sn, (float)((rmx / range) * 2.0 - 1.0),
                           sn, cn,  (float)((rmy / range) * 2.0 - 1.0),
                           0,  0,   1};
    int32_t oh = p->out_hw[0], ow = p->out_hw[1], ih = p->in_hw[0], iw = p->in_hw[1];
    const float to_rel[9] = {
        (float)(2.0 / (ow - 1.0)), 0, -1, 0, (float)(2.0 / (oh - 1.0)), -1, 0, 0, 1};
    const float to_abs[9] = {(float)((iw - 1.0) / 2.0),
                             0,
                             (float)((iw - 1.0) / 2.0),
                             0,
                             (float)((ih - 1.0) / 2.0),
                             (float)((ih - 1.0) / 2.0),
                             0,
                             0,
                             1};
    float m[9];
    mat3_mul(m, to_abs, rotm);
    mat3_mul(m, m, scale);
    mat3_mul(m, m, to_rel);
    const float res[16] = {m[0], m[1], 0,    m[2], m[3], m[4], 0, m[5],
                           m[6], m[7], m[8], 0,    0,    0,    0, 1};
    memcpy(o, res, sizeof res);
}

static int l2tm_run(const void *params, const ts_tview *in, int n_in, ts_tview *out, int n_out,
                    char *err, size_t errlen) {
    const l2tm_params *p = params;
    if (check_run(l2tm_shape, L2TM, params, in, n_in, out, n_out, err, errlen)) return -1;
    if (p->version == 2)
        l2tm_v2(p, in[0].data, out[0].data);
    else
        l2tm_v1(p, in[0].data, out[0].data);
    return 0;
}

/* ---------------------------------------------------------------- TransformTensorBilinear */

#define TTB "TransformTensorBilinear"

typedef struct ttb_params {
    int version; /* 1: no pixel-centre correction; 2: align-corners/half-pixel correction */
    int32_t out_h, out_w;
} ttb_params;

static int ttb_parse_ver(int version, const uint8_t *opts, size_t len, void **out, char *err,
                         size_t errlen) {
    ts_flex_ref m;
    bool empty;
    *out = NULL;
    if (open_map(TTB, opts, len, &m, &empty, err, errlen)) return -1;
    if (version == 0)
        version = (has_key(&m, empty, "output_size") || has_key(&m, empty, "mode")) ? 1 : 2;
    ttb_params p = {.version = version};
    if (version == 2) {
        if (opt_i32(TTB, &m, empty, "output_height", &p.out_h, err, errlen) ||
            opt_i32(TTB, &m, empty, "output_width", &p.out_w, err, errlen))
            return -1;
    } else {
        ts_flex_ref v;
        const char *s;
        size_t n;
        if (!empty && ts_flex_map_get(&m, "mode", &v) == 0 &&
            (ts_flex_as_string(&v, &s, &n) != 0 || n != 8 || memcmp(s, "bilinear", 8) != 0))
            return fail(err, errlen, TTB ": only mode \"bilinear\" is supported");
        int32_t *hw = NULL;
        if (opt_i32_vec(TTB, &m, empty, "output_size", &hw, &n, err, errlen)) return -1;
        if (n == 2) p.out_h = hw[0], p.out_w = hw[1];
        free(hw);
        if (n != 2)
            return fail(err, errlen, TTB ": option output_size must hold 2 ints, has %zu", n);
    }
    if (p.out_h <= 0 || p.out_w <= 0)
        return fail(err, errlen, TTB ": output size must be positive, got %dx%d", (int)p.out_h,
                    (int)p.out_w);
    ttb_params *h = malloc(sizeof *h);
    if (!h) return fail(err, errlen, TTB ": out of memory");
    *h = p;
    *out = h;
    return 0;
}

static int ttb_parse_auto(const uint8_t *o, size_t l, void **p, char *e, size_t n) {
    return ttb_parse_ver(0, o, l, p, e, n);
}
static int ttb_parse_v1(const uint8_t *o, size_t l, void **p, char *e, size_t n) {
    return ttb_parse_ver(1, o, l, p, e, n);
}
static int ttb_parse_v2(const uint8_t *o, size_t l, void **p, char *e, size_t n) {
    return ttb_parse_ver(2, o, l, p, e, n);
}

static int ttb_shape(const void *params, const ts_tview *in, int n_in, ts_tview *out, int n_out,
                     char *err, size_t errlen) {
    const ttb_params *p = params;
    if (n_in != 2 || n_out != 1)
        return fail(err, errlen, TTB ": expected 2 inputs and 1 output, got %d and %d", n_in,
                    n_out);
    if (in[0].rank != 4 || count_of(&in[0]) == 0)
        return fail(err, errlen, TTB ": input 0 must be a non-empty rank-4 NHWC tensor");
    if (in[0].dims[0] != 1)
        return fail(err, errlen, TTB ": batch must be 1, got %d", (int)in[0].dims[0]);
    if (count_of(&in[1]) != 16)
        return fail(err, errlen, TTB ": input 1 must be a 4x4 matrix (16 floats)");
    int64_t n = (int64_t)p->out_h * p->out_w * in[0].dims[3];
    if (n > INT32_MAX) return fail(err, errlen, TTB ": output too large");
    const int32_t od[4] = {1, p->out_h, p->out_w, in[0].dims[3]};
    set_shape(&out[0], 4, od);
    return 0;
}

static int ttb_run(const void *params, const ts_tview *in, int n_in, ts_tview *out, int n_out,
                   char *err, size_t errlen) {
    const ttb_params *p = params;
    if (check_run(ttb_shape, TTB, params, in, n_in, out, n_out, err, errlen)) return -1;
    const int ih = in[0].dims[1], iw = in[0].dims[2], c = in[0].dims[3];
    const float *src = in[0].data, *m = in[1].data;
    float *dst = out[0].data;
    float mx[4] = {m[0], m[1], m[2], m[3]}, my[4] = {m[4], m[5], m[6], m[7]};
    if (p->version == 2) {
        /* sample at M*(x+0.5, y+0.5) - 0.5: folded into the translation column */
        mx[3] = (float)(mx[3] + (mx[0] * 0.5 + mx[1] * 0.5 - 0.5));
        my[3] = (float)(my[3] + (my[0] * 0.5 + my[1] * 0.5 - 0.5));
    }
    for (int y = 0; y < p->out_h; y++) {
        for (int x = 0; x < p->out_w; x++) {
            float fx = (float)x, fy = (float)y;
            float tx = mx[0] * fx + mx[1] * fy + mx[2] * 0.0f + mx[3] * 1.0f;
            float ty = my[0] * fx + my[1] * fy + my[2] * 0.0f + my[3] * 1.0f;
            float *o = dst + ((size_t)y * p->out_w + x) * c;
            /* NaN coordinates also count as outside (MediaPipe's behaviour there is undefined) */
            if (!(tx >= 0.0f && tx <= (float)(iw - 1) && ty >= 0.0f && ty <= (float)(ih - 1))) {
                for (int k = 0; k < c; k++) o[k] = 0.0f;
                continue;
            }
            float x0f = floorf(tx), y0f = floorf(ty);
            int x0 = (int)x0f, y0 = (int)y0f;
            float fr = tx - x0f, fl = ty - y0f; /* right and lower weights */
            /* the +1 neighbours can fall one past the edge exactly when the weight is 0; they
             * read as 0 there, like MediaPipe */
            const float *r0 = src + (size_t)y0 * iw * c, *r1 = r0 + (size_t)iw * c;
            bool has_x1 = x0 + 1 < iw, has_y1 = y0 + 1 < ih;
            for (int k = 0; k < c; k++) {
                float q11 = r0[(size_t)x0 * c + k];
                float q21 = has_x1 ? r0[(size_t)(x0 + 1) * c + k] : 0.0f;
                float q12 = has_y1 ? r1[(size_t)x0 * c + k] : 0.0f;
                float q22 = has_x1 && has_y1 ? r1[(size_t)(x0 + 1) * c + k] : 0.0f;
                float upper = (float)((1.0 - fr) * q11 + (double)(fr * q21));
                float lower = (float)((1.0 - fr) * q12 + (double)(fr * q22));
                o[k] = (float)((double)(fl * lower) + (1.0 - fl) * upper);
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- TransformLandmarks */

#define TL "TransformLandmarks"

typedef struct tl_params {
    int version;
    int32_t dimensions; /* v1 only; v2 takes it from the input's last dimension */
    float scale;        /* v1 only; multiplies the translation column */
} tl_params;

static int tl_parse_ver(int version, const uint8_t *opts, size_t len, void **out, char *err,
                        size_t errlen) {
    ts_flex_ref m;
    bool empty;
    *out = NULL;
    if (version == 2) opts = NULL, len = 0; /* v2 ignores its options entirely */
    if (open_map(TL, opts, len, &m, &empty, err, errlen)) return -1;
    if (version == 0)
        version = (has_key(&m, empty, "dimensions") || has_key(&m, empty, "scale")) ? 1 : 2;
    tl_params p = {.version = version, .scale = 1.0f};
    if (version == 1) {
        if (opt_i32(TL, &m, empty, "dimensions", &p.dimensions, err, errlen) ||
            opt_f32(TL, &m, empty, "scale", &p.scale, err, errlen))
            return -1;
        if (p.dimensions != 2 && p.dimensions != 3)
            return fail(err, errlen, TL ": dimensions must be 2 or 3, got %d", (int)p.dimensions);
        if (p.scale == 0) return fail(err, errlen, TL ": scale must not be 0");
    }
    tl_params *h = malloc(sizeof *h);
    if (!h) return fail(err, errlen, TL ": out of memory");
    *h = p;
    *out = h;
    return 0;
}

static int tl_parse_auto(const uint8_t *o, size_t l, void **p, char *e, size_t n) {
    return tl_parse_ver(0, o, l, p, e, n);
}
static int tl_parse_v1(const uint8_t *o, size_t l, void **p, char *e, size_t n) {
    return tl_parse_ver(1, o, l, p, e, n);
}
static int tl_parse_v2(const uint8_t *o, size_t l, void **p, char *e, size_t n) {
    return tl_parse_ver(2, o, l, p, e, n);
}

static int tl_shape(const void *params, const ts_tview *in, int n_in, ts_tview *out, int n_out,
                    char *err, size_t errlen) {
    const tl_params *p = params;
    if (n_in != 2 || n_out != 1)
        return fail(err, errlen, TL ": expected 2 inputs and 1 output, got %d and %d", n_in, n_out);
    if (count_of(&in[0]) == 0)
        return fail(err, errlen, TL ": input 0 has an empty or invalid shape");
    if (count_of(&in[1]) != 16)
        return fail(err, errlen, TL ": input 1 must be a 4x4 matrix (16 floats)");
    if (p->version == 2) {
        if (in[0].rank != 3)
            return fail(err, errlen, TL ": v2 input must have rank 3, has %d", in[0].rank);
        if (in[0].dims[0] != 1)
            return fail(err, errlen, TL ": batch must be 1, got %d", (int)in[0].dims[0]);
        if (in[0].dims[2] != 2 && in[0].dims[2] != 3)
            return fail(err, errlen, TL ": last dimension must be 2 or 3, got %d",
                        (int)in[0].dims[2]);
    } else {
        if (in[0].rank != 4)
            return fail(err, errlen, TL ": v1 input must have rank 4, has %d", in[0].rank);
        if (in[0].dims[0] != 1)
            return fail(err, errlen, TL ": batch must be 1, got %d", (int)in[0].dims[0]);
        if (in[0].dims[3] % p->dimensions != 0)
            return fail(err, errlen, TL ": channels (%d) not a multiple of dimensions (%d)",
                        (int)in[0].dims[3], (int)p->dimensions);
    }
    set_shape(&out[0], in[0].rank, in[0].dims);
    return 0;
}

static int tl_run(const void *params, const ts_tview *in, int n_in, ts_tview *out, int n_out,
                  char *err, size_t errlen) {
    const tl_params *p = params;
    if (check_run(tl_shape, TL, params, in, n_in, out, n_out, err, errlen)) return -1;
    const float *m = in[1].data, *src = in[0].data;
    float *dst = out[0].data;
    int dim;
    size_t n;
    float tx = m[3], ty = m[7];
    if (p->version == 2) {
        dim = in[0].dims[2];
        n = (size_t)in[0].dims[1];
    } else {
        dim = p->dimensions;
        n = (size_t)in[0].dims[1] * in[0].dims[2] * (in[0].dims[3] / dim);
        /* v1 leaves channels beyond the last whole landmark alone; there are none since
         * channels % dimensions == 0 */
        tx = m[3] * p->scale;
        ty = m[7] * p->scale;
    }
    for (size_t i = 0; i < n; i++) {
        const float *s = src + i * dim;
        float *d = dst + i * dim;
        /* (x, y, 0, 1) through the first two rows: z never influences x, y */
        d[0] = m[0] * s[0] + m[1] * s[1] + m[2] * 0.0f + tx * 1.0f;
        d[1] = m[4] * s[0] + m[5] * s[1] + m[6] * 0.0f + ty * 1.0f;
        if (dim == 3) d[2] = s[2];
    }
    return 0;
}

/* ---------------------------------------------------------------- Convolution2DTransposeBias */

#define TCB "Convolution2DTransposeBias"

static int32_t rd_le32(const uint8_t *b) {
    uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    int32_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}

int ts_mp_parse_tconv(const uint8_t *opts, size_t len, ts_tconv_params *p, char *err,
                      size_t errlen) {
    if (!opts || len < 12)
        return fail(err, errlen, TCB ": options must be at least 12 bytes, got %zu",
                    opts ? len : 0);
    int32_t pad = rd_le32(opts), sw = rd_le32(opts + 4), sh = rd_le32(opts + 8);
    if (pad < 0 || pad > 2) return fail(err, errlen, TCB ": unknown padding %d", (int)pad);
    if (sw < 1 || sh < 1)
        return fail(err, errlen, TCB ": strides must be >= 1, got %dx%d", (int)sw, (int)sh);
    p->padding_same = pad == 1;
    p->stride_w = sw;
    p->stride_h = sh;
    return 0;
}

int ts_mp_tconv_geometry(const ts_tconv_params *p, int32_t in_h, int32_t in_w, int32_t k_h,
                         int32_t k_w, ts_tconv_geom *g, char *err, size_t errlen) {
    if (in_h <= 0 || in_w <= 0 || k_h <= 0 || k_w <= 0)
        return fail(err, errlen, TCB ": input and kernel sizes must be positive");
    if (p->stride_h < 1 || p->stride_w < 1) return fail(err, errlen, TCB ": strides must be >= 1");
    int64_t th = 0, tw = 0;
    if (p->padding_same) {
        th = k_h - (in_h - 1) % p->stride_h - 1;
        tw = k_w - (in_w - 1) % p->stride_w - 1;
        if (th < 0) th = 0;
        if (tw < 0) tw = 0;
    }
    int64_t oh = (int64_t)p->stride_h * (in_h - 1) + k_h - th;
    int64_t ow = (int64_t)p->stride_w * (in_w - 1) + k_w - tw;
    if (oh > INT32_MAX || ow > INT32_MAX) return fail(err, errlen, TCB ": output too large");
    g->out_h = (int32_t)oh;
    g->out_w = (int32_t)ow;
    g->pad_top = (int32_t)(th / 2);
    g->pad_bottom = (int32_t)(th - th / 2);
    g->pad_left = (int32_t)(tw / 2);
    g->pad_right = (int32_t)(tw - tw / 2);
    return 0;
}

static int tcb_parse(const uint8_t *opts, size_t len, void **out, char *err, size_t errlen) {
    ts_tconv_params p;
    *out = NULL;
    if (ts_mp_parse_tconv(opts, len, &p, err, errlen)) return -1;
    ts_tconv_params *h = malloc(sizeof *h);
    if (!h) return fail(err, errlen, TCB ": out of memory");
    *h = p;
    *out = h;
    return 0;
}

static int tcb_geom(const ts_tconv_params *p, const ts_tview *in, int n_in, int n_out,
                    ts_tconv_geom *g, char *err, size_t errlen) {
    if (n_in != 3 || n_out != 1)
        return fail(err, errlen, TCB ": expected 3 inputs and 1 output, got %d and %d", n_in,
                    n_out);
    if (in[0].rank != 4 || count_of(&in[0]) == 0)
        return fail(err, errlen, TCB ": input must be a non-empty rank-4 NHWC tensor");
    if (in[1].rank != 4 || count_of(&in[1]) == 0)
        return fail(err, errlen, TCB ": weights must be a non-empty rank-4 OHWI tensor");
    if (in[2].rank != 1 || count_of(&in[2]) == 0)
        return fail(err, errlen, TCB ": bias must be a non-empty rank-1 tensor");
    if (in[0].dims[3] != in[1].dims[3])
        return fail(err, errlen, TCB ": input channels (%d) differ from weight input channels (%d)",
                    (int)in[0].dims[3], (int)in[1].dims[3]);
    if (in[1].dims[0] != in[2].dims[0])
        return fail(err, errlen, TCB ": weight output channels (%d) differ from bias size (%d)",
                    (int)in[1].dims[0], (int)in[2].dims[0]);
    if (ts_mp_tconv_geometry(p, in[0].dims[1], in[0].dims[2], in[1].dims[1], in[1].dims[2], g, err,
                             errlen))
        return -1;
    int64_t n = (int64_t)in[0].dims[0] * g->out_h;
    n *= g->out_w;
    n *= in[1].dims[0];
    if (n > INT32_MAX) return fail(err, errlen, TCB ": output too large");
    return 0;
}

static int tcb_shape(const void *params, const ts_tview *in, int n_in, ts_tview *out, int n_out,
                     char *err, size_t errlen) {
    ts_tconv_geom g;
    if (tcb_geom(params, in, n_in, n_out, &g, err, errlen)) return -1;
    const int32_t od[4] = {in[0].dims[0], g.out_h, g.out_w, in[1].dims[0]};
    set_shape(&out[0], 4, od);
    return 0;
}

static int tcb_run(const void *params, const ts_tview *in, int n_in, ts_tview *out, int n_out,
                   char *err, size_t errlen) {
    const ts_tconv_params *p = params;
    if (check_run(tcb_shape, TCB, params, in, n_in, out, n_out, err, errlen)) return -1;
    ts_tconv_geom g;
    tcb_geom(p, in, n_in, n_out, &g, err, errlen);
    const int nb = in[0].dims[0], ih = in[0].dims[1], iw = in[0].dims[2], ic = in[0].dims[3];
    const int oc = in[1].dims[0], kh = in[1].dims[1], kw = in[1].dims[2];
    const int oh = g.out_h, ow = g.out_w, sh = p->stride_h, sw = p->stride_w;
    const float *x = in[0].data, *w = in[1].data, *bias = in[2].data;
    float *y = out[0].data;
    /* Gather form: each output pixel sums the input pixels whose footprint covers it, i.e. the
     * (iy, ky) with iy*sh - pad_top + ky == oy. Accumulation order per output element is
     * bias first, then iy, ix ascending, then input channel, like MediaPipe's scatter loop. */
    for (int b = 0; b < nb; b++) {
        for (int oy = 0; oy < oh; oy++) {
            for (int ox = 0; ox < ow; ox++) {
                float *o = y + (((size_t)b * oh + oy) * ow + ox) * oc;
                for (int co = 0; co < oc; co++) o[co] = bias[co];
                int ty = oy + g.pad_top, tx = ox + g.pad_left;
                /* iy ranges over ceil((ty - kh + 1)/sh) .. floor(ty/sh), clipped to the input */
                int iy_hi = ty / sh, ix_hi = tx / sw;
                int iy_lo = ty - kh + 1 <= 0 ? 0 : (ty - kh + sh) / sh;
                int ix_lo = tx - kw + 1 <= 0 ? 0 : (tx - kw + sw) / sw;
                if (iy_hi > ih - 1) iy_hi = ih - 1;
                if (ix_hi > iw - 1) ix_hi = iw - 1;
                for (int iy = iy_lo; iy <= iy_hi; iy++) {
                    int ky = ty - iy * sh;
                    for (int ix = ix_lo; ix <= ix_hi; ix++) {
                        int kx = tx - ix * sw;
                        const float *xi = x + (((size_t)b * ih + iy) * iw + ix) * ic;
                        for (int ci = 0; ci < ic; ci++) {
                            float v = xi[ci];
                            const float *wk = w + ((size_t)ky * kw + kx) * ic + ci;
                            size_t ostride = (size_t)kh * kw * ic;
                            for (int co = 0; co < oc; co++) o[co] += v * wk[co * ostride];
                        }
                    }
                }
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- registry */

#define DEF(nm, pf, op)                                                                            \
    { nm, pf, op##_shape, op##_run, free_plain }

static const ts_custom_op_def l2tm_defs[3] = {DEF(L2TM, l2tm_parse_auto, l2tm),
                                              DEF(L2TM, l2tm_parse_v1, l2tm),
                                              DEF(L2TM, l2tm_parse_v2, l2tm)};
static const ts_custom_op_def ttb_defs[3] = {
    DEF(TTB, ttb_parse_auto, ttb), DEF(TTB, ttb_parse_v1, ttb), DEF(TTB, ttb_parse_v2, ttb)};
static const ts_custom_op_def tt_v1_def = DEF("TransformTensor", ttb_parse_v1, ttb);
static const ts_custom_op_def tl_defs[3] = {DEF(TL, tl_parse_auto, tl), DEF(TL, tl_parse_v1, tl),
                                            DEF(TL, tl_parse_v2, tl)};
static const ts_custom_op_def tcb_def = DEF(TCB, tcb_parse, tcb);

const ts_custom_op_def *ts_mp_custom_op_versioned(const char *name, int version) {
    if (!name || version < 0 || version > 2) return NULL;
    if (!strcmp(name, L2TM)) return &l2tm_defs[version];
    if (!strcmp(name, TTB)) return &ttb_defs[version];
    if (!strcmp(name, TL)) return &tl_defs[version];
    if (!strcmp(name, "TransformTensor")) return version == 2 ? NULL : &tt_v1_def;
    if (!strcmp(name, TCB)) return version == 2 ? NULL : &tcb_def;
    return NULL;
}

const ts_custom_op_def *ts_mp_custom_op(const char *name) {
    return ts_mp_custom_op_versioned(name, 0);
}
