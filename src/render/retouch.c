/* retouch: what a careful portrait retoucher does and no more (docs/render-retouch.md).
 *
 * - Small temporary blemishes: red, isolated, round spots in the skin are found as blobs of
 *   redness (CIELAB a*) above a smoothed skin base, sized 0.02..0.1 of the inter-eye distance.
 *   Elongated blobs (wrinkles, creases), dark or brown ones (moles), flat ones with sharp edges
 *   (moles), and dense clusters (freckles, rosacea) are left alone. A spot is healed the way a
 *   healing brush does: its smooth layer is replaced by a plane fitted to the ring around it,
 *   and the fine texture is borrowed from a clean patch of skin nearby, so pores continue.
 * - Under-eye darkness: inside a mask below each eye (mesh contours), luminance is lifted part
 *   of the way toward the cheek's (at most half of the difference at strength 1).
 * - Shine: specular highlights (brighter and less saturated than the local skin tone) are pulled
 *   part of the way back toward that tone.
 *
 * Every change is a low-frequency change or a local heal: skin texture, moles, freckles, scars,
 * wrinkles and the face's geometry stay. The stage works on the face's bounding box in CIELAB
 * and adds the same per-pixel change to rgb and fg; pixels outside the skin mask never change. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "face/geometry.h"
#include "face/regions.h"
#include "render/render.h"
#include "render/srgb.h"

typedef struct retouch_params {
    float strength;  /* overall; 0 = off */
    int blemishes;   /* remove small temporary blemishes */
    float under_eye; /* share of the under-eye darkness lifted at strength 1 */
    float shine;     /* share of the shine removed at strength 1 */
} retouch_params;

static const ts_param retouch_table[] = {
    TS_PARAM_F32(retouch_params, strength, "overall retouch strength (0: off)", 0, 1, 0.35),
    TS_PARAM_BOOL(retouch_params, blemishes, "remove small temporary blemishes (red spots)", 1),
    TS_PARAM_F32(retouch_params, under_eye,
                 "share of the under-eye darkness lifted at strength 1 (toward the cheek)", 0, 0.5,
                 0.5),
    TS_PARAM_F32(retouch_params, shine,
                 "share of the shine (specular highlights) removed at strength 1", 0, 0.8, 0.7),
    TS_PARAM_END};

/* ---- colour ----------------------------------------------------------------------------- */

static float lin_lut[1025]; /* sRGB code value / 255 * 1024 -> linear */
static pthread_once_t lut_once = PTHREAD_ONCE_INIT;

static void lut_init(void) {
    for (int i = 0; i <= 1024; i++) {
        double c = i / 1024.0;
        lin_lut[i] = (float)(c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4));
    }
}

static inline float to_linear(float v) {
    float x = v * (1024.f / 255.f);
    if (x <= 0) return 0;
    if (x >= 1024) return 1;
    int i = (int)x;
    float t = x - i;
    return lin_lut[i] + t * (lin_lut[i + 1] - lin_lut[i]);
}

static inline float to_srgb(float l) {
    if (l <= 0) return 0;
    if (l >= 1) return 255;
    return 255.f * (l <= 0.0031308f ? 12.92f * l : 1.055f * powf(l, 1 / 2.4f) - 0.055f);
}

/* The cube root of t > 0: a first guess from the exponent bits, then Newton steps in double
 * (the last leaves it within a few parts in 10^-8 of cbrtf's, far below a float's step near 1,
 * at a fraction of libm's cost: the conversion runs on every pixel of the face's box). */
static inline float cbrt_pos(float t) {
    uint32_t u;
    memcpy(&u, &t, sizeof u);
    u = u / 3 + 709921077u;
    float g;
    memcpy(&g, &u, sizeof g);
    double y = g, x = t;
    y = (2 * y + x / (y * y)) * (1.0 / 3);
    y = (2 * y + x / (y * y)) * (1.0 / 3);
    y = (2 * y + x / (y * y)) * (1.0 / 3);
    return (float)y;
}

static inline float lab_f(float t) {
    return t > 0.008856452f ? cbrt_pos(t) : t * 7.787037f + 16.f / 116.f;
}
static inline float lab_finv(float t) {
    return t > 0.20689655f ? t * t * t : (t - 16.f / 116.f) / 7.787037f;
}

/* D65 white; sRGB primaries. */
static void rgb_to_lab(const float *rgb, float *lab) {
    float r = to_linear(rgb[0]), g = to_linear(rgb[1]), b = to_linear(rgb[2]);
    float x = (0.4124564f * r + 0.3575761f * g + 0.1804375f * b) / 0.95047f;
    float y = 0.2126729f * r + 0.7151522f * g + 0.0721750f * b;
    float z = (0.0193339f * r + 0.1191920f * g + 0.9503041f * b) / 1.08883f;
    float fx = lab_f(x), fy = lab_f(y), fz = lab_f(z);
    lab[0] = 116.f * fy - 16.f, lab[1] = 500.f * (fx - fy), lab[2] = 200.f * (fy - fz);
}

static void lab_to_rgb(const float *lab, float *rgb) {
    float fy = (lab[0] + 16.f) / 116.f, fx = fy + lab[1] / 500.f, fz = fy - lab[2] / 200.f;
    float x = 0.95047f * lab_finv(fx), y = lab_finv(fy), z = 1.08883f * lab_finv(fz);
    rgb[0] = to_srgb(3.2404542f * x - 1.5371385f * y - 0.4985314f * z);
    rgb[1] = to_srgb(-0.9692660f * x + 1.8760108f * y + 0.0415560f * z);
    rgb[2] = to_srgb(0.0556434f * x - 0.2040259f * y + 1.0572252f * z);
}

/* ---- planes ----------------------------------------------------------------------------- */

/* dst (h x w) = the transpose of src (w x h), in cache-sized blocks. */
static void transpose(float *dst, const float *src, int w, int h) {
    for (int y0 = 0; y0 < h; y0 += 32)
        for (int x0 = 0; x0 < w; x0 += 32)
            for (int y = y0; y < y0 + 32 && y < h; y++)
                for (int x = x0; x < x0 + 32 && x < w; x++)
                    dst[(size_t)x * h + y] = src[(size_t)y * w + x];
}

static int blur_full(float *a, int w, int h, float sigma);

/* Sigma from which a blur is computed on a plane averaged down by k (sigma / 4, 2 to 4)
 * and brought back bilinearly: what is left after such a blur is smooth at the scale of k
 * pixels, so the result differs from the full-resolution blur by a small fraction of a level,
 * at a fraction of the cost (the wide blurs are most of the stage's time). */
#define BLUR_REDUCE_SIGMA 6.0f

/* In-place Gaussian blur of a w x h plane; columns are blurred as rows of the transpose, which
 * reads memory in order. Wide blurs run at reduced resolution (BLUR_REDUCE_SIGMA). Returns -1
 * when out of memory. */
static int blur(float *a, int w, int h, float sigma) {
    if (sigma < BLUR_REDUCE_SIGMA || w < 64 || h < 64) return blur_full(a, w, h, sigma);
    int k = (int)(sigma / 4);
    k = k < 2 ? 2 : k > 4 ? 4 : k;
    int sw = (w + k - 1) / k, sh = (h + k - 1) / k;
    float *sm = malloc(sizeof *sm * (size_t)sw * sh);
    if (!sm) return -1;
    /* box average (partial cells at the right and bottom edges average what they hold): row
     * sums of k rows, then k columns of them */
    float *acc = malloc(sizeof *acc * (size_t)w);
    int *ix0 = malloc(sizeof *ix0 * (size_t)w), *ix1 = malloc(sizeof *ix1 * (size_t)w);
    float *tx = malloc(sizeof *tx * (size_t)w);
    if (!acc || !ix0 || !ix1 || !tx) {
        free(sm), free(acc), free(ix0), free(ix1), free(tx);
        return -1;
    }
    for (int y = 0; y < sh; y++) {
        int ya = y * k, yb = ya + k < h ? ya + k : h;
        memcpy(acc, a + (size_t)ya * w, sizeof *acc * (size_t)w);
        for (int yy = ya + 1; yy < yb; yy++) {
            const float *row = a + (size_t)yy * w;
            for (int x = 0; x < w; x++) acc[x] += row[x];
        }
        float *dst = sm + (size_t)y * sw;
        for (int x = 0; x < sw; x++) {
            int xa = x * k, xb = xa + k < w ? xa + k : w;
            float v = 0;
            for (int xx = xa; xx < xb; xx++) v += acc[xx];
            dst[x] = v / (float)((yb - ya) * (xb - xa));
        }
    }
    free(acc);
    /* the box average is itself a blur of variance (k^2 - 1) / 12 pixels^2 */
    float s2 = sigma * sigma - (k * k - 1) / 12.f;
    if (blur_full(sm, sw, sh, sqrtf(s2 > 0 ? s2 : 0) / k)) {
        free(sm), free(ix0), free(ix1), free(tx);
        return -1;
    }
    /* bilinear, cell centres at (x + 0.5) k - 0.5; the columns' taps are the same on every row */
    for (int x = 0; x < w; x++) {
        float fx = (x + 0.5f) / k - 0.5f;
        fx = fx < 0 ? 0 : fx > sw - 1 ? sw - 1 : fx;
        ix0[x] = (int)fx, ix1[x] = ix0[x] + 1 < sw ? ix0[x] + 1 : ix0[x], tx[x] = fx - ix0[x];
    }
    for (int y = 0; y < h; y++) {
        float fy = (y + 0.5f) / k - 0.5f;
        fy = fy < 0 ? 0 : fy > sh - 1 ? sh - 1 : fy;
        int y0 = (int)fy, y1 = y0 + 1 < sh ? y0 + 1 : y0;
        float ty = fy - y0;
        const float *r0 = sm + (size_t)y0 * sw, *r1 = sm + (size_t)y1 * sw;
        float *dst = a + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            float top = r0[ix0[x]] + tx[x] * (r0[ix1[x]] - r0[ix0[x]]);
            float bot = r1[ix0[x]] + tx[x] * (r1[ix1[x]] - r1[ix0[x]]);
            dst[x] = top + ty * (bot - top);
        }
    }
    free(sm), free(ix0), free(ix1), free(tx);
    return 0;
}

/* The columns [x0, x1) of src (w x h), blurred along y into dst (edges extended): small sigmas
 * by a sampled Gaussian, larger ones by three box passes with running sums, whose cost does not
 * grow with sigma. Each column gets exactly the arithmetic a line of its own would (the same
 * sums in the same order), but the loops run along rows, so they stream through memory and
 * vectorise across the columns. The box passes go src -> tmp -> tmp2 -> dst; the Gaussian
 * src -> dst (then distinct from src). acc and facc are per-column accumulators. */
typedef struct vblur_job {
    const float *src;
    float *dst, *tmp, *tmp2;
    double *acc;
    float *facc;
    int w, h;
    float sigma;
} vblur_job;

static void vblur_cols(const vblur_job *j, int x0, int x1) {
    int w = j->w, h = j->h;
    float sigma = j->sigma;
    if (sigma < 3) {
        int kr = (int)ceilf(3 * sigma);
        float k[32], ks = 0;
        for (int t = -kr; t <= kr; t++) ks += k[t + kr] = expf(-0.5f * t * t / (sigma * sigma));
        float *s = j->facc;
        for (int i = 0; i < h; i++) {
            for (int x = x0; x < x1; x++) s[x] = 0;
            for (int t = 0; t <= 2 * kr; t++) {
                int y = i + t - kr;
                y = y < 0 ? 0 : y >= h ? h - 1 : y;
                const float *row = j->src + (size_t)y * w;
                float kt = k[t];
                for (int x = x0; x < x1; x++) s[x] += kt * row[x];
            }
            float *o = j->dst + (size_t)i * w;
            for (int x = x0; x < x1; x++) o[x] = s[x] / ks;
        }
        return;
    }
    int r = (int)lroundf((sqrtf(4 * sigma * sigma + 1) - 1) / 2);
    double *acc = j->acc, norm = 2 * r + 1;
    const float *in = j->src;
    for (int pass = 0; pass < 3; pass++) {
        float *out = pass == 2 ? j->dst : pass == 0 ? j->tmp : j->tmp2;
        for (int x = x0; x < x1; x++) acc[x] = 0;
        for (int t = 0; t <= 2 * r; t++) {
            int y = t - r < 0 ? 0 : t - r >= h ? h - 1 : t - r;
            const float *row = in + (size_t)y * w;
            for (int x = x0; x < x1; x++) acc[x] += row[x];
        }
        for (int i = 0; i < h; i++) {
            float *o = out + (size_t)i * w;
            for (int x = x0; x < x1; x++) o[x] = (float)(acc[x] / norm);
            if (i + 1 < h) {
                int ya = i + r + 1 >= h ? h - 1 : i + r + 1, yb = i - r < 0 ? 0 : i - r;
                const float *ra = in + (size_t)ya * w, *rb = in + (size_t)yb * w;
                for (int x = x0; x < x1; x++) acc[x] += ra[x] - rb[x];
            }
        }
        in = out;
    }
}

static void vblur_range(size_t first, size_t n, void *user) {
    vblur_job *j = user;
    vblur_cols(j, (int)first, (int)(first + n));
}

/* src (w x h) blurred along y into dst (may be src); tmp, tmp2: w x h floats of scratch, acc
 * w doubles, facc w floats. The columns are split between two threads. */
static void vblur(const float *src, float *dst, float *tmp, float *tmp2, double *acc, float *facc,
                  int w, int h, float sigma) {
    float *out = sigma < 3 && dst == src ? tmp : dst;
    vblur_job j = {src, out, tmp, tmp2, acc, facc, w, h, sigma};
    ts_render_split2(vblur_range, &j, (size_t)w, (size_t)w * h >= 32768 ? 2 : (size_t)w + 1);
    if (out != dst) memcpy(dst, out, sizeof *dst * (size_t)w * h);
}

static int blur_full(float *a, int w, int h, float sigma) {
    if (sigma <= 0.3f) return 0;
    size_t n = (size_t)w * h;
    int m = w > h ? w : h;
    float *t = malloc(sizeof *t * n * 2), *facc = malloc(sizeof *facc * (size_t)m);
    double *acc = malloc(sizeof *acc * (size_t)m);
    if (!t || !facc || !acc) {
        free(t), free(facc), free(acc);
        return -1;
    }
    /* along x: on the transpose, where x runs down the columns (a is scratch meanwhile) */
    transpose(t, a, w, h);
    vblur(t, t, a, t + n, acc, facc, h, w, sigma);
    transpose(a, t, h, w);
    vblur(a, a, t, t + n, acc, facc, w, h, sigma);
    free(t), free(facc), free(acc);
    return 0;
}

/* Normalised convolution of three planes: dst[c] = blur(src[c] * wt) / blur(wt), the weighted
 * local mean of src over the pixels wt trusts. Where no trusted pixel is near, dst keeps src.
 * tmp holds n floats. */
static int nblur3_with(float *const dst[3], float *const src[3], const float *wt, int w, int h,
                       float sigma, float *tmp, int (*blur_fn)(float *, int, int, float)) {
    size_t n = (size_t)w * h;
    memcpy(tmp, wt, sizeof(float) * n);
    if (blur_fn(tmp, w, h, sigma)) return -1;
    for (int c = 0; c < 3; c++) {
        for (size_t i = 0; i < n; i++) dst[c][i] = src[c][i] * wt[i];
        if (blur_fn(dst[c], w, h, sigma)) return -1;
        for (size_t i = 0; i < n; i++) dst[c][i] = tmp[i] > 1e-3f ? dst[c][i] / tmp[i] : src[c][i];
    }
    return 0;
}

static int nblur3(float *const dst[3], float *const src[3], const float *wt, int w, int h,
                  float sigma, float *tmp) {
    return nblur3_with(dst, src, wt, w, h, sigma, tmp, blur);
}

/* The same, always at full resolution: for the blemish finder's skin base, whose small
 * differences near the edges of the skin core (where the weights fall off) decide what counts
 * as a spot. */
static int nblur3_exact(float *const dst[3], float *const src[3], const float *wt, int w, int h,
                        float sigma, float *tmp) {
    return nblur3_with(dst, src, wt, w, h, sigma, tmp, blur_full);
}

/* Fills a polygon (even-odd rule, pixel centres) into mask with value 1. */
static void fill_polygon(float *mask, int w, int h, const float (*pt)[2], int n) {
    float y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n; i++) y0 = ts_minf(y0, pt[i][1]), y1 = ts_maxf(y1, pt[i][1]);
    int ya = (int)ts_maxf(0, floorf(y0)), yb = (int)ts_minf(h - 1, ceilf(y1));
    for (int y = ya; y <= yb; y++) {
        float yc = y + 0.5f, xs[64];
        int k = 0;
        for (int i = 0, j = n - 1; i < n && k < 64; j = i++)
            if ((pt[i][1] > yc) != (pt[j][1] > yc))
                xs[k++] =
                    pt[j][0] + (yc - pt[j][1]) * (pt[i][0] - pt[j][0]) / (pt[i][1] - pt[j][1]);
        for (int a = 1; a < k; a++)
            for (int b = a; b > 0 && xs[b - 1] > xs[b]; b--) {
                float t = xs[b];
                xs[b] = xs[b - 1], xs[b - 1] = t;
            }
        for (int a = 0; a + 1 < k; a += 2)
            for (int x = (int)ts_maxf(0, ceilf(xs[a] - 0.5f)); x < w && x + 0.5f < xs[a + 1]; x++)
                mask[(size_t)y * w + x] = 1;
    }
}

/* ---- the stage -------------------------------------------------------------------------- */

/* Mesh contours below each eye (MediaPipe's rightEyeLower1 / rightEyeLower3 and the left
 * counterparts): the under-eye mask is the band between them. Then a cheek point below. */
static const int under_eye_upper[2][9] = {{130, 25, 110, 24, 23, 22, 26, 112, 243},
                                          {359, 255, 339, 254, 253, 252, 256, 341, 463}};
static const int under_eye_lower[2][9] = {{143, 111, 117, 118, 119, 120, 121, 128, 245},
                                          {372, 340, 346, 347, 348, 349, 350, 357, 465}};
static const int cheek_point[2] = {205, 425};

/* A candidate blob of redness. */
typedef struct blob {
    float cx, cy, d, d_all; /* centroid, equivalent diameter (px) of the visible part, of all */
    float elong, plateau;   /* major/minor axis ratio; share of the area near the peak */
    float red, dark, yel;   /* at the peak: a* excess, L* deficit, b* excess */
    int x0, y0, x1, y1, id; /* bounding box, label */
    int ok;
} blob;

typedef struct work {
    int w, h;
    size_t n;
    float ied;
    float *lab[3], *skin, *core, *tmp, *tmp2;
} work;

/* Least-squares plane v = c0 + c1 dx + c2 dy through the skin core pixels of the ring
 * r1 <= r <= r2 around (cx, cy) that are not to be avoided; returns 0, or -1 when the ring holds
 * too few of them. */
static int fit_plane(const float *v, const work *W, const uint8_t *avoid, float cx, float cy,
                     float r1, float r2, double coef[3]) {
    double S[3][3] = {{0}}, T[3] = {0};
    int cnt = 0;
    int xa = (int)ts_maxf(0, cx - r2), xb = (int)ts_minf(W->w - 1, cx + r2);
    int ya = (int)ts_maxf(0, cy - r2), yb = (int)ts_minf(W->h - 1, cy + r2);
    for (int y = ya; y <= yb; y++)
        for (int x = xa; x <= xb; x++) {
            size_t i = (size_t)y * W->w + x;
            float dx = x - cx, dy = y - cy, r = sqrtf(dx * dx + dy * dy);
            if (r < r1 || r > r2 || W->core[i] < 0.5f || avoid[i]) continue;
            double f[3] = {1, dx, dy};
            for (int a = 0; a < 3; a++) {
                T[a] += f[a] * v[i];
                for (int c = 0; c < 3; c++) S[a][c] += f[a] * f[c];
            }
            cnt++;
        }
    if (cnt < 12) return -1;
    /* 3x3 solve by Cramer's rule, with a small ridge for stability. */
    for (int a = 0; a < 3; a++) S[a][a] += 1e-6 * (S[0][0] + 1);
    double det = S[0][0] * (S[1][1] * S[2][2] - S[1][2] * S[2][1]) -
                 S[0][1] * (S[1][0] * S[2][2] - S[1][2] * S[2][0]) +
                 S[0][2] * (S[1][0] * S[2][1] - S[1][1] * S[2][0]);
    if (fabs(det) < 1e-12) return -1;
    for (int c = 0; c < 3; c++) {
        double M[3][3];
        memcpy(M, S, sizeof M);
        for (int a = 0; a < 3; a++) M[a][c] = T[a];
        coef[c] = (M[0][0] * (M[1][1] * M[2][2] - M[1][2] * M[2][1]) -
                   M[0][1] * (M[1][0] * M[2][2] - M[1][2] * M[2][0]) +
                   M[0][2] * (M[1][0] * M[2][1] - M[1][1] * M[2][0])) /
                  det;
    }
    return 0;
}

/* Finds and heals blemishes in lab_out (a copy of the Lab planes), weighting each heal by
 * amount * skin. Returns the number healed, or -1 when out of memory. */
static int heal_blemishes(work *W, float *out[3], float amount, float *touched) {
    int w = W->w, h = W->h;
    size_t n = W->n;
    float ied = W->ied;
    float *base_a = malloc(sizeof(float) * n), *base_b = malloc(sizeof(float) * n);
    float *base_L = malloc(sizeof(float) * n), *sm[3] = {NULL, NULL, NULL}, *lo[3] = {0};
    int *label = calloc(n, sizeof(int)), *stack = malloc(sizeof(int) * n);
    int nb = 0, cap = 64, healed = 0, lo_done = 0;
    blob *bl = malloc(sizeof(blob) * cap);
    int fail = !base_a || !base_b || !base_L || !label || !stack || !bl;
    for (int c = 0; c < 3 && !fail; c++) {
        sm[c] = malloc(sizeof(float) * n);
        fail = !sm[c];
    }
    /* The skin base (wider than any blemish) and a lightly smoothed copy for measuring. */
    float sig_base = 0.08f * ied, sig_s = ts_maxf(0.7f, 0.006f * ied),
          sig_t = ts_maxf(1.f, 0.01f * ied);
    if (!fail)
        fail = nblur3_exact((float *const[3]){base_L, base_a, base_b}, W->lab, W->core, w, h,
                            sig_base, W->tmp);
    for (int c = 0; c < 3 && !fail; c++) {
        memcpy(sm[c], W->lab[c], sizeof(float) * n);
        fail = blur(sm[c], w, h, sig_s);
    }
    if (fail) goto done;
    /* Candidates: connected areas of the skin core where redness exceeds the base. */
    const float t_low = 2.5f;
    for (size_t i = 0; i < n; i++)
        label[i] = (W->core[i] >= 0.5f && sm[1][i] - base_a[i] > t_low) ? -1 : 0;
    for (int y0 = 0; y0 < h; y0++)
        for (int x0 = 0; x0 < w; x0++) {
            size_t i0 = (size_t)y0 * w + x0;
            if (label[i0] != -1) continue;
            if (nb == cap) {
                blob *nbl = realloc(bl, sizeof(blob) * (cap *= 2));
                if (!nbl) goto done;
                bl = nbl;
            }
            blob *b = &bl[nb++];
            memset(b, 0, sizeof *b);
            b->id = nb, b->x0 = b->x1 = x0, b->y0 = b->y1 = y0;
            int sp = 0;
            stack[sp++] = (int)i0, label[i0] = nb;
            double m0 = 0, mx = 0, my = 0, mxx = 0, myy = 0, mxy = 0;
            float peak = -1;
            while (sp) {
                int i = stack[--sp], x = i % w, y = i / w;
                m0++, mx += x, my += y, mxx += (double)x * x, myy += (double)y * y;
                mxy += (double)x * y;
                float r = sm[1][i] - base_a[i];
                if (r > peak)
                    peak = r, b->red = r, b->dark = base_L[i] - sm[0][i],
                    b->yel = sm[2][i] - base_b[i];
                if (x < b->x0) b->x0 = x;
                if (x > b->x1) b->x1 = x;
                if (y < b->y0) b->y0 = y;
                if (y > b->y1) b->y1 = y;
                const int nx[4] = {x - 1, x + 1, x, x}, ny[4] = {y, y, y - 1, y + 1};
                for (int k = 0; k < 4; k++) {
                    if (nx[k] < 0 || ny[k] < 0 || nx[k] >= w || ny[k] >= h) continue;
                    int j = ny[k] * w + nx[k];
                    if (label[j] == -1) label[j] = nb, stack[sp++] = j;
                }
            }
            b->d_all = 2 * sqrtf((float)m0 / (float)M_PI);
            /* Shape, size and profile of the visible part (above 35% of the peak), which a
             * faint red neighbourhood merged in at the low threshold does not distort. */
            m0 = mx = my = mxx = myy = mxy = 0;
            int near_peak = 0;
            for (int y = b->y0; y <= b->y1; y++)
                for (int x = b->x0; x <= b->x1; x++) {
                    size_t i = (size_t)y * w + x;
                    float r = sm[1][i] - base_a[i];
                    if (label[i] != nb || r < 0.35f * peak) continue;
                    m0++, mx += x, my += y, mxx += (double)x * x, myy += (double)y * y;
                    mxy += (double)x * y;
                    /* Domed (a pimple) or flat-topped (a mole, a birthmark)? */
                    near_peak += r >= 0.7f * peak;
                }
            b->cx = (float)(mx / m0), b->cy = (float)(my / m0);
            b->d = 2 * sqrtf((float)m0 / (float)M_PI);
            double vxx = mxx / m0 - b->cx * b->cx, vyy = myy / m0 - b->cy * b->cy,
                   vxy = mxy / m0 - (double)b->cx * b->cy;
            double tr = vxx + vyy, dt = sqrt(fmax(0, (vxx - vyy) * (vxx - vyy) / 4 + vxy * vxy));
            double l1 = tr / 2 + dt, l2 = fmax(1e-6, tr / 2 - dt);
            b->elong = (float)sqrt(l1 / l2);
            b->plateau = near_peak / (float)m0;
            /* Red and round, small, not dark or brown, not flat. */
            b->ok = b->d >= 0.02f * ied && b->d <= 0.1f * ied && b->elong <= 2.2f &&
                    b->red >= 5.f && b->red >= 0.9f * b->dark && b->red >= b->yel &&
                    b->dark <= 18.f && b->plateau <= 0.6f;
        }
    /* Freckles, acne fields and rosacea come in clusters: leave dense groups alone. */
    for (int a = 0; a < nb; a++) {
        if (!bl[a].ok) continue;
        int near = 0;
        for (int c = 0; c < nb; c++)
            if (c != a && bl[c].ok && hypotf(bl[c].cx - bl[a].cx, bl[c].cy - bl[a].cy) < 0.3f * ied)
                near++;
        if (near >= 4) bl[a].ok = -1;
    }
    /* What neither a ring nor a donor may use: the spots to heal and any strong local feature
     * (a mole, a crease, a nostril's shadow). */
    uint8_t *avoid = malloc(n);
    if (!avoid) {
        fail = 1;
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        avoid[i] = (label[i] > 0 && bl[label[i] - 1].ok == 1) || sm[1][i] - base_a[i] > 5.f ||
                   fabsf(sm[0][i] - base_L[i]) > 8.f;
    for (int a = 0; a < nb; a++) {
        blob *b = &bl[a];
        if (b->ok != 1) continue;
        /* The heal area: the blob grown by a margin, with soft edges. */
        float rad = 0.7f * b->d + ts_maxf(1.5f, 0.3f * b->d);
        float r1 = rad + 1.f, r2 = rad * 1.8f + 3.f;
        double plane[3][3], dplane[3][3] = {{0}};
        int bad = 0;
        for (int c = 0; c < 3 && !bad; c++)
            bad = fit_plane(W->lab[c], W, avoid, b->cx, b->cy, r1, r2, plane[c]);
        if (bad) continue;
        /* A plane stands for the surroundings only on plain skin: where the ring crosses an
         * edge (an eyelid crease, the side of the nose, a shadow) a fill would show. */
        float grad_L = (float)hypot(plane[0][1], plane[0][2]) * r2,
              grad_a = (float)hypot(plane[1][1], plane[1][2]) * r2;
        if (grad_a > 7.f || (grad_L > 12.f && grad_a > 4.f)) continue;
        /* The texture of the ring, to find a donor patch of the same character. */
        double ring_e = 0, ring_n = 0;
        for (int y = (int)ts_maxf(0, b->cy - r2); y <= (int)ts_minf(h - 1, b->cy + r2); y++)
            for (int x = (int)ts_maxf(0, b->cx - r2); x <= (int)ts_minf(w - 1, b->cx + r2); x++) {
                size_t i = (size_t)y * w + x;
                float dx = x - b->cx, dy = y - b->cy, r = sqrtf(dx * dx + dy * dy);
                if (r < r1 || r > r2 || W->core[i] < 0.5f || avoid[i]) continue;
                float d = W->lab[0][i] - (float)(plane[0][0] + plane[0][1] * dx + plane[0][2] * dy);
                ring_e += d * d, ring_n++;
            }
        ring_e /= fmax(1, ring_n);
        /* Texture donor, as a healing brush takes it: a nearby patch of plain skin whose
         * deviation from its own plane (all scales below the spot's) matches the ring's
         * texture best; tried in 8 directions at two distances. */
        int R = (int)ceilf(rad + 1), found = 0, ox = 0, oy = 0;
        double best_cost = INFINITY;
        for (int k = 0; k < 16; k++) {
            float dist = (k < 8 ? 2.2f : 3.2f) * rad + 2.f, ang = (k % 8) * (float)M_PI / 4;
            int qx = (int)lroundf(dist * cosf(ang)), qy = (int)lroundf(dist * sinf(ang));
            float dcx = b->cx + qx, dcy = b->cy + qy;
            int clean = 1;
            for (int y = -R; y <= R && clean; y++)
                for (int x = -R; x <= R; x++) {
                    int sx = (int)lroundf(dcx) + x, sy = (int)lroundf(dcy) + y;
                    if (sx < 0 || sy < 0 || sx >= w || sy >= h ||
                        W->core[(size_t)sy * w + sx] < 0.5f || avoid[(size_t)sy * w + sx]) {
                        clean = 0;
                        break;
                    }
                }
            if (!clean) continue;
            double pl[3][3];
            int pb = 0;
            for (int c = 0; c < 3 && !pb; c++)
                pb = fit_plane(W->lab[c], W, avoid, dcx, dcy, 0, rad + 1, pl[c]);
            if (pb) continue;
            double e = 0, ne = 0, red = 0, nr = 0;
            for (int y = -R; y <= R; y++)
                for (int x = -R; x <= R; x++) {
                    size_t j = (size_t)((int)lroundf(dcy) + y) * w + (int)lroundf(dcx) + x;
                    float dx = (int)lroundf(dcx) + x - dcx, dy = (int)lroundf(dcy) + y - dcy;
                    float d = W->lab[0][j] - (float)(pl[0][0] + pl[0][1] * dx + pl[0][2] * dy);
                    e += d * d, ne++;
                    if (dx * dx + dy * dy < 0.5f * rad * rad)
                        red += W->lab[1][j] - (pl[1][0] + pl[1][1] * dx + pl[1][2] * dy), nr++;
                }
            /* Texture of the ring's character, and no redness of its own in the middle. */
            double cost = fabs(log((e / ne + 0.05) / (ring_e + 0.05))) + fmax(0, red / fmax(1, nr));
            if (cost < best_cost) {
                best_cost = cost, found = 1, ox = qx, oy = qy;
                memcpy(dplane, pl, sizeof pl);
            }
        }
        int xa = (int)ts_maxf(0, floorf(b->cx - rad - 2)),
            xb = (int)ts_minf(w - 1, ceilf(b->cx + rad + 2));
        int ya = (int)ts_maxf(0, floorf(b->cy - rad - 2)),
            yb = (int)ts_minf(h - 1, ceilf(b->cy + rad + 2));
        if (!lo_done && !found) {
            /* the finest texture, needed only by a heal without a donor: made on first use */
            for (int c = 0; c < 3 && !fail; c++) {
                lo[c] = malloc(sizeof(float) * n);
                fail = !lo[c] ||
                       (memcpy(lo[c], W->lab[c], sizeof(float) * n), blur(lo[c], w, h, sig_t));
            }
            if (fail) break;
            lo_done = 1;
        }
        for (int y = ya; y <= yb; y++)
            for (int x = xa; x <= xb; x++) {
                size_t i = (size_t)y * w + x;
                float dx = x - b->cx, dy = y - b->cy, r = sqrtf(dx * dx + dy * dy);
                /* Full inside rad - 1, fading to 0 at rad + 1. */
                float m = ts_minf(1, ts_maxf(0, (rad + 1 - r) / 2));
                m *= amount * W->skin[i];
                if (m <= 0) continue;
                int sx = x + ox, sy = y + oy;
                int donor = found && sx >= 0 && sy >= 0 && sx < w && sy < h;
                size_t j = donor ? (size_t)sy * w + sx : i;
                for (int c = 0; c < 3; c++) {
                    float fill = (float)(plane[c][0] + plane[c][1] * dx + plane[c][2] * dy);
                    /* The donor's texture over the ring's plane; without a donor, the spot's
                     * own finest texture (little of a spot lives there). */
                    float tex = donor ? W->lab[c][j] - (float)(dplane[c][0] + dplane[c][1] * dx +
                                                               dplane[c][2] * dy)
                                      : W->lab[c][i] - lo[c][i];
                    out[c][i] += m * (fill + tex - W->lab[c][i]);
                }
                touched[i] = 1;
            }
        healed++;
    }
    free(avoid);
done:
    free(base_a), free(base_b), free(base_L), free(label), free(stack), free(bl);
    for (int c = 0; c < 3; c++) free(sm[c]), free(lo[c]);
    return fail ? -1 : healed;
}

/* The box to CIELAB (and the skin mask to 0..1), for a range of pixels. */
typedef struct to_lab_job {
    const float *rgb;
    const uint8_t *skin8;
    work *W;
    float *const *out;
    float *touched;
} to_lab_job;

static void to_lab_range(size_t first, size_t n, void *user) {
    const to_lab_job *j = user;
    work *W = j->W;
    for (size_t i = first; i < first + n; i++) {
        float lab[3];
        rgb_to_lab(j->rgb + 3 * i, lab);
        for (int c = 0; c < 3; c++) W->lab[c][i] = j->out[c][i] = lab[c];
        W->skin[i] = j->skin8[i] / 255.f, j->touched[i] = 0;
    }
}

/* The edited pixels back to sRGB, the same change added to the foreground colour. */
typedef struct from_lab_job {
    float *const *out;
    const float *touched;
    float *rgb, *fg;
} from_lab_job;

static void from_lab_range(size_t first, size_t n, void *user) {
    const from_lab_job *j = user;
    float *rgb = j->rgb, *fg = j->fg;
    for (size_t i = first; i < first + n; i++) {
        if (!j->touched[i]) continue;
        float lab[3] = {j->out[0][i], j->out[1][i], j->out[2][i]}, v[3];
        lab_to_rgb(lab, v);
        for (int c = 0; c < 3; c++) {
            float d = v[c] - rgb[3 * i + c];
            rgb[3 * i + c] = v[c];
            if (fg) fg[3 * i + c] = ts_minf(255, ts_maxf(0, fg[3 * i + c] + d));
        }
    }
}

static ts_status retouch_run(ts_render_job *job, const void *params) {
    const retouch_params *p = params;
    ts_ctx *ctx = job->ctx;
    if (p->strength <= 0 || !job->rgb || job->inter_eye <= 0) return TS_OK;
    pthread_once(&lut_once, lut_init);
    int CW = job->rgb->Xsize, CH = job->rgb->Ysize;
    float ied = job->inter_eye;
    /* The face's box on the canvas, with room for the blur kernels. */
    float bx0 = INFINITY, by0 = INFINITY, bx1 = -INFINITY, by1 = -INFINITY;
    for (int i = 0; i < 468; i++) {
        bx0 = ts_minf(bx0, job->lm[i][0]), bx1 = ts_maxf(bx1, job->lm[i][0]);
        by0 = ts_minf(by0, job->lm[i][1]), by1 = ts_maxf(by1, job->lm[i][1]);
    }
    float margin = 0.15f * ied + 4;
    int x0 = (int)ts_maxf(0, floorf(bx0 - margin)), y0 = (int)ts_maxf(0, floorf(by0 - margin));
    int x1 = (int)ts_minf(CW, ceilf(bx1 + margin)), y1 = (int)ts_minf(CH, ceilf(by1 + margin));
    if (x1 - x0 < 8 || y1 - y0 < 8) return TS_OK; /* the face is off the canvas */
    int w = x1 - x0, h = y1 - y0;
    size_t n = (size_t)w * h;

    ts_status st = TS_OK;
    float *rgb = NULL, *fg = NULL, *planes = NULL;
    uint8_t *skin8 = malloc(n);
    VipsImage *crop = NULL, *fcrop = NULL;
    if (vips_extract_area(job->rgb, &crop, x0, y0, w, h, NULL) ||
        (job->fg && vips_extract_area(job->fg, &fcrop, x0, y0, w, h, NULL))) {
        st = ts_fail(ctx, TS_ERR_INTERNAL, "retouch: %s", vips_error_buffer());
        goto out;
    }
    size_t bytes;
    rgb = vips_image_write_to_memory(crop, &bytes);
    if (fcrop) fg = vips_image_write_to_memory(fcrop, &bytes);
    /* Planes: L a b, L' a' b' (edited), skin, core, touched, two scratch planes. */
    planes = malloc(sizeof(float) * n * 11);
    if (!rgb || (fcrop && !fg) || !planes || !skin8) {
        st = ts_fail(ctx, TS_ERR_NOMEM, "retouch: out of memory");
        goto out;
    }
    work W = {w,
              h,
              n,
              ied,
              {planes, planes + n, planes + 2 * n},
              planes + 6 * n,
              planes + 7 * n,
              planes + 9 * n,
              planes + 10 * n};
    float *out[3] = {planes + 3 * n, planes + 4 * n, planes + 5 * n}, *touched = planes + 8 * n;
    ts_face_mesh mesh;
    memset(&mesh, 0, sizeof mesh);
    for (int i = 0; i < TS_MESH_POINTS; i++)
        mesh.pts[i][0] = job->lm[i][0] - x0, mesh.pts[i][1] = job->lm[i][1] - y0;
    st = ts_face_region_mask(&mesh, ctx->geom, TS_REGION_SKIN, w, h, 1, 0, skin8);
    if (st) goto out;
    to_lab_job tl = {rgb, skin8, &W, out, touched};
    ts_render_split2(to_lab_range, &tl, n, 65536);
    /* The skin core: well inside the skin, away from eyes, brows, lips, nostrils and the face's
     * edge, where statistics are not polluted by them. */
    memcpy(W.core, W.skin, sizeof(float) * n);
    if (blur(W.core, w, h, ts_maxf(1, 0.02f * ied))) goto nomem;
    for (size_t i = 0; i < n; i++) W.core[i] = W.core[i] > 0.97f ? 1.f : 0.f;

    int healed = 0;
    if (p->blemishes) {
        healed = heal_blemishes(&W, out, ts_minf(1, 3 * p->strength), touched);
        if (healed < 0) goto nomem;
    }

    /* Under-eye darkness: lift L* (and move a*, b*) toward the cheek's, a low-frequency change. */
    float f_eye = p->strength * p->under_eye, lift_max = 0;
    float *Lu = W.tmp2, *scratch = malloc(sizeof(float) * n * 3);
    if (!scratch) goto nomem;
    if (f_eye > 0) {
        float *mask = scratch, *au = scratch + n, *bu = scratch + 2 * n;
        memset(mask, 0, sizeof(float) * n);
        for (int e = 0; e < 2; e++) {
            float poly[18][2];
            for (int k = 0; k < 9; k++) {
                poly[k][0] = mesh.pts[under_eye_upper[e][k]][0];
                poly[k][1] = mesh.pts[under_eye_upper[e][k]][1];
                poly[17 - k][0] = mesh.pts[under_eye_lower[e][k]][0];
                poly[17 - k][1] = mesh.pts[under_eye_lower[e][k]][1];
            }
            fill_polygon(mask, w, h, (const float(*)[2])poly, 18);
        }
        float sig_u = ts_maxf(1, 0.03f * ied);
        if (blur(mask, w, h, sig_u) ||
            nblur3((float *const[3]){Lu, au, bu}, W.lab, W.skin, w, h, sig_u, W.tmp)) {
            free(scratch);
            goto nomem;
        }
        for (int e = 0; e < 2; e++) {
            /* The cheek below: mean of the skin core in a disc. */
            float cx = mesh.pts[cheek_point[e]][0], cy = mesh.pts[cheek_point[e]][1],
                  rr = 0.12f * ied;
            double s[3] = {0}, cnt = 0;
            for (int y = (int)ts_maxf(0, cy - rr); y <= (int)ts_minf(h - 1, cy + rr); y++)
                for (int x = (int)ts_maxf(0, cx - rr); x <= (int)ts_minf(w - 1, cx + rr); x++) {
                    size_t i = (size_t)y * w + x;
                    if (W.core[i] < 0.5f || hypotf(x - cx, y - cy) > rr) continue;
                    for (int c = 0; c < 3; c++) s[c] += W.lab[c][i];
                    cnt++;
                }
            if (cnt < 10) continue;
            float ref[3] = {(float)(s[0] / cnt), (float)(s[1] / cnt), (float)(s[2] / cnt)};
            /* This eye's half of the mask: the side of the face's midline it is on. */
            float mx = 0.5f * (mesh.pts[168][0] + mesh.pts[6][0]);
            float eye_x = mesh.pts[under_eye_upper[e][4]][0];
            for (size_t i = 0, x = 0; i < n; i++, x = x + 1 == (size_t)w ? 0 : x + 1) {
                if (((float)x < mx) != (eye_x < mx) || mask[i] <= 0) continue;
                float m = ts_minf(1, 1.5f * mask[i]) * W.skin[i], def = ref[0] - Lu[i];
                if (m <= 0 || def <= 0) continue;
                float k = f_eye * m, dL = k * def, wc = ts_minf(1, def / 3);
                out[0][i] += dL;
                out[1][i] += k * wc * (ref[1] - au[i]);
                out[2][i] += k * wc * (ref[2] - bu[i]);
                touched[i] = 1;
                if (dL > lift_max) lift_max = dL;
            }
        }
    }

    /* Shine: brighter and less saturated than the local skin tone. */
    float f_shine = p->strength * p->shine;
    double shine_area = 0, skin_area = 0;
    if (f_shine > 0) {
        float *Lw = scratch, *aw = scratch + n, *bw = scratch + 2 * n;
        float *Lm = W.tmp2, *am = malloc(sizeof(float) * n * 2);
        if (!am) {
            free(scratch);
            goto nomem;
        }
        float *bm = am + n, sig_w = 0.12f * ied, sig_m = ts_maxf(1.5f, 0.015f * ied);
        memcpy(Lm, W.lab[0], sizeof(float) * n);
        memcpy(am, W.lab[1], sizeof(float) * n);
        memcpy(bm, W.lab[2], sizeof(float) * n);
        if (blur(Lm, w, h, sig_m) || blur(am, w, h, sig_m) || blur(bm, w, h, sig_m) ||
            nblur3((float *const[3]){Lw, aw, bw}, W.lab, W.core, w, h, sig_w, W.tmp)) {
            free(am), free(scratch);
            goto nomem;
        }
        for (size_t i = 0; i < n; i++) {
            if (W.skin[i] <= 0) continue;
            skin_area += W.skin[i];
            float cw = sqrtf(aw[i] * aw[i] + bw[i] * bw[i]);
            /* Only where the local tone is skin (not hair falling over the forehead): a hue
             * of 10 to 90 degrees, b >= a tan 10 with a >= 0 (no arc tangent per pixel). */
            if (cw < 8 || aw[i] < 0 || bw[i] < 0.17632698f * aw[i]) continue;
            float cm = sqrtf(am[i] * am[i] + bm[i] * bm[i]);
            float ex = Lm[i] - Lw[i];
            float wl = ts_minf(1, ts_maxf(0, (ex - 2) / 6));
            float wc = ts_minf(1, ts_maxf(0, (cw - cm) / (0.25f * cw)));
            float k = f_shine * wl * wc * W.skin[i];
            if (k <= 0) continue;
            out[0][i] -= k * ex;
            out[1][i] += k * (aw[i] - am[i]);
            out[2][i] += k * (bw[i] - bm[i]);
            touched[i] = 1;
            if (wl * wc > 0.5f) shine_area += W.skin[i];
        }
        free(am);
    }
    free(scratch);
    /* Back to sRGB where something changed; add the same change to the foreground
                        colour. */
    size_t n_touched = 0;
    for (size_t i = 0; i < n; i++) n_touched += touched[i] != 0;
    from_lab_job fl = {out, touched, rgb, fg};
    ts_render_split2(from_lab_range, &fl, n, 65536);
    if (n_touched) {
        VipsImage *pr =
            vips_image_new_from_memory(rgb, n * 3 * sizeof(float), w, h, 3, VIPS_FORMAT_FLOAT);
        VipsImage *pf =
            fg ? vips_image_new_from_memory(fg, n * 3 * sizeof(float), w, h, 3, VIPS_FORMAT_FLOAT)
               : NULL;
        VipsImage *ir = NULL, *iff = NULL, *mr = NULL, *mf = NULL;
        int ok = pr && (!fg || pf) && vips_insert(job->rgb, pr, &ir, x0, y0, NULL) == 0 &&
                 (!fg || vips_insert(job->fg, pf, &iff, x0, y0, NULL) == 0);
        if (ok) mr = vips_image_copy_memory(ir), mf = iff ? vips_image_copy_memory(iff) : NULL;
        VipsImage *all[] = {pr, pf, ir, iff};
        for (size_t k = 0; k < 4; k++)
            if (all[k]) g_object_unref(all[k]);
        if (!mr || (fg && !mf)) {
            if (mr) g_object_unref(mr);
            if (mf) g_object_unref(mf);
            st = ts_fail(ctx, TS_ERR_INTERNAL, "retouch: %s", vips_error_buffer());
            goto out;
        }
        ts_render_replace(&job->rgb, mr);
        if (mf) ts_render_replace(&job->fg, mf);
    }
    if (healed) ts_render_edit(job, "removed %d small blemish%s", healed, healed == 1 ? "" : "es");
    if (lift_max >= 0.5f)
        ts_render_edit(job, "softened under-eye darkness (%.0f%% of the way to the cheek)",
                       100 * f_eye);
    if (skin_area > 0 && shine_area / skin_area >= 0.001)
        ts_render_edit(job, "reduced shine by %.0f%% on %.1f%% of the skin", 100 * f_shine,
                       100 * shine_area / skin_area);
    goto out;
nomem:
    st = ts_fail(ctx, TS_ERR_NOMEM, "retouch: out of memory");
out:
    if (crop) g_object_unref(crop);
    if (fcrop) g_object_unref(fcrop);
    g_free(rgb), g_free(fg);
    free(planes), free(skin8);
    return st;
}

const ts_stage ts_stage_retouch = {"retouch", 1, retouch_table, sizeof(retouch_params),
                                   retouch_run};
