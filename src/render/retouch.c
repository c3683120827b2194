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
#include <sys/mman.h>

#include "core/internal.h"
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

/* The per-pixel loops below are written plainly so the compiler vectorises them; the hottest are
 * built twice, for the baseline (SSE2) and for AVX2, and the second is taken when the processor
 * has it. Both run the same operations in the same order (no fused multiply-add: AVX2 alone
 * does not enable it), so they give the same floats. */
#if defined(__GNUC__) && defined(__x86_64__)
#define RT_AVX2 1
#include <immintrin.h>
#define RT_TARGET_AVX2 __attribute__((target("avx2")))
#define RT_INLINE static inline __attribute__((always_inline))
#else
#define RT_AVX2 0
#define RT_INLINE static inline
#endif

/* ---- memory ----------------------------------------------------------------------------- */

/* The stage's planes and scratch come from a few regions per run, handed out first-fit and
 * given back in the reverse order (a mark, then a release to it). First the big buffers that
 * wait in the photo's pool (ts_render_big_take_waiting: what the last look's tone, light and
 * backdrop let go), whose pages are already there; then, for what they do not hold, one
 * mapping of the rest in transparent huge pages where the system has them. Fresh 4 KiB pages
 * cost a fault each, and a run touches some 60 MB of planes: in small pages that was a third of
 * the stage's time, in 2 MiB ones it is a few per cent, and in the pool's none. Taking the
 * waiting buffers also keeps them from waiting beside the run's mapping, when the look holds
 * the most memory. The pool's buffers go back to it with the run, the mapping to the system.
 * A region holds what was last there (the pool's buffers the last look's pixels, the mapping
 * what an earlier step of the run left): every step writes what it reads, except touched,
 * cleared where it is taken. What does not fit (a size the estimate missed) comes from the
 * heap, freed at the release. */
typedef struct spill {
    struct spill *next;
} spill;

#define ARENA_REGIONS (TS_RENDER_BIG_POOL_N + 1) /* what the pool holds, then the mapping */

typedef struct arena {
    uint8_t *base[ARENA_REGIONS];
    size_t cap[ARENA_REGIONS], top[ARENA_REGIONS];
    int n, n_pooled; /* regions; the first n_pooled are the pool's */
    void *map;       /* the mapping, or NULL when its region is malloc'd */
    size_t map_len;
    spill *spills; /* newest first */
    size_t n_spills;
} arena;

typedef struct arena_mark {
    size_t top[ARENA_REGIONS], n_spills;
} arena_mark;

static int arena_init(arena *a, size_t bytes) {
    memset(a, 0, sizeof *a);
    /* the pool's buffers, the largest first, while they fall short of what the run needs; the
     * rest is allowed two planes (bytes / 11) a buffer for what first-fit leaves at their ends
     * (pages of the mapping nothing reaches cost nothing) */
    size_t have = 0, rest = bytes;
    while (have < bytes && a->n_pooled < ARENA_REGIONS - 1) {
        size_t len;
        uint8_t *b = ts_render_big_take_waiting(&len);
        if (!b) break;
        a->base[a->n_pooled] = b, a->cap[a->n_pooled++] = len;
        have += len;
    }
    a->n = a->n_pooled;
    if (a->n_pooled) {
        size_t slack = (size_t)a->n_pooled * (bytes / 11);
        rest = have >= bytes + slack ? 0 : bytes + slack - have;
        if (rest > bytes) rest = bytes;
        if (rest == 0) return 0;
    }
#if defined(MADV_HUGEPAGE) && defined(MAP_ANONYMOUS)
    const size_t huge = (size_t)2 << 20;
    if (rest >= 2 * huge) {
        size_t len = rest + 2 * huge;
        uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m != MAP_FAILED) {
            a->base[a->n] = (uint8_t *)(((uintptr_t)m + huge - 1) & ~(uintptr_t)(huge - 1));
            madvise(a->base[a->n], (rest + huge - 1) & ~(huge - 1), MADV_HUGEPAGE);
            a->cap[a->n++] = rest, a->map = m, a->map_len = len;
            return 0;
        }
    }
#endif
    uint8_t *b = malloc(rest);
    if (b) a->base[a->n] = b, a->cap[a->n++] = rest;
    return b || a->n ? 0 : -1;
}

/* bytes (64-byte aligned), or NULL when out of memory */
static void *arena_take(arena *a, size_t bytes) {
    for (int r = 0; r < a->n; r++) {
        size_t t = (a->top[r] + 63) & ~(size_t)63;
        if (t + bytes <= a->cap[r]) {
            a->top[r] = t + bytes;
            return a->base[r] + t;
        }
    }
    spill *s = malloc(sizeof(spill) + 64 + bytes);
    if (!s) return NULL;
    s->next = a->spills, a->spills = s, a->n_spills++;
    return (uint8_t *)s + 64;
}

static arena_mark arena_at(const arena *a) {
    arena_mark m = {{0}, a->n_spills};
    memcpy(m.top, a->top, sizeof m.top);
    return m;
}

static void arena_release(arena *a, arena_mark m) {
    while (a->n_spills > m.n_spills) {
        spill *s = a->spills;
        a->spills = s->next, a->n_spills--;
        free(s);
    }
    memcpy(a->top, m.top, sizeof a->top);
}

static void arena_done(arena *a) {
    arena_release(a, (arena_mark){{0}, 0});
    for (int r = 0; r < a->n_pooled; r++) ts_render_big_free(a->base[r]);
    if (a->map)
        munmap(a->map, a->map_len);
    else if (a->n > a->n_pooled)
        free(a->base[a->n - 1]);
    a->n = a->n_pooled = 0;
}

/* ---- colour ----------------------------------------------------------------------------- */

static float lin_lut[1025]; /* sRGB code value / 255 * 1024 -> linear */
static pthread_once_t lut_once = PTHREAD_ONCE_INIT;

static int use_avx2;

static void lut_init(void) {
#if defined(__GNUC__) && defined(__x86_64__)
    use_avx2 = ts_cpu_avx2();
#endif
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

/* The cube root of t > 0: a first guess from the exponent bits, two Newton steps in float, then
 * a last one in double whose correction (a few parts in 10^6 of the root) needs only a float's
 * precision, so it takes no division in double. It leaves the root within a few parts in 10^12
 * of the exact one, far below a float's step (it rounds differently from three steps in double
 * for about one float in three million), at a fraction of libm's cost: the conversion runs on
 * every pixel of the face's box. */
static inline float cbrt_pos(float t) {
    uint32_t u;
    memcpy(&u, &t, sizeof u);
    u = u / 3 + 709921077u;
    float y;
    memcpy(&y, &u, sizeof y);
    y = (2 * y + t / (y * y)) * (1.f / 3);
    y = (2 * y + t / (y * y)) * (1.f / 3);
    float q = 1.f / (3 * y * y);
    double Y = y;
    return (float)(Y + ((double)t - Y * Y * Y) * (double)q);
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

#if RT_AVX2
/* rgb_to_lab for 8 pixels (24 interleaved floats) with AVX2: the same operations in the same
 * order as the scalar code, so the same floats; both sides of the cube root's branch are computed
 * and one is kept. */
RT_TARGET_AVX2 static inline __m256 lin8(__m256 v) {
    __m256 x = _mm256_mul_ps(v, _mm256_set1_ps(1024.f / 255.f));
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_setzero_ps()), _mm256_set1_ps(1024));
    __m256i i = _mm256_min_epi32(_mm256_cvttps_epi32(xc), _mm256_set1_epi32(1023));
    __m256 t = _mm256_sub_ps(xc, _mm256_cvtepi32_ps(i));
    __m256 lo = _mm256_i32gather_ps(lin_lut, i, 4), hi = _mm256_i32gather_ps(lin_lut + 1, i, 4);
    __m256 r = _mm256_add_ps(lo, _mm256_mul_ps(t, _mm256_sub_ps(hi, lo)));
    r = _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LE_OQ), r);
    return _mm256_blendv_ps(r, _mm256_set1_ps(1),
                            _mm256_cmp_ps(x, _mm256_set1_ps(1024), _CMP_GE_OQ));
}

/* cbrt_pos's last step for four lanes */
RT_TARGET_AVX2 static inline __m128 last_step4(__m128 y, __m128 t, __m128 q) {
    __m256d Y = _mm256_cvtps_pd(y);
    __m256d e = _mm256_sub_pd(_mm256_cvtps_pd(t), _mm256_mul_pd(_mm256_mul_pd(Y, Y), Y));
    return _mm256_cvtpd_ps(_mm256_add_pd(Y, _mm256_mul_pd(e, _mm256_cvtps_pd(q))));
}

RT_TARGET_AVX2 static inline __m256 lab_f8(__m256 t) {
    /* the first guess: the bits divided by 3 (a multiply by 2^33 / 3, exact for 32 bits) */
    __m256i u = _mm256_castps_si256(t), magic = _mm256_set1_epi32((int)0xAAAAAAABu);
    __m256i ev = _mm256_srli_epi64(_mm256_mul_epu32(u, magic), 33);
    __m256i od = _mm256_slli_epi64(
        _mm256_srli_epi64(_mm256_mul_epu32(_mm256_srli_epi64(u, 32), magic), 33), 32);
    __m256i q = _mm256_add_epi32(_mm256_blend_epi32(ev, od, 0xAA), _mm256_set1_epi32(709921077));
    __m256 y = _mm256_castsi256_ps(q), third = _mm256_set1_ps(1.f / 3);
    for (int k = 0; k < 2; k++)
        y = _mm256_mul_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(2), y),
                                        _mm256_div_ps(t, _mm256_mul_ps(y, y))),
                          third);
    __m256 rq =
        _mm256_div_ps(_mm256_set1_ps(1), _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(3), y), y));
    __m256 c = _mm256_set_m128(last_step4(_mm256_extractf128_ps(y, 1), _mm256_extractf128_ps(t, 1),
                                          _mm256_extractf128_ps(rq, 1)),
                               last_step4(_mm256_castps256_ps128(y), _mm256_castps256_ps128(t),
                                          _mm256_castps256_ps128(rq)));
    __m256 l =
        _mm256_add_ps(_mm256_mul_ps(t, _mm256_set1_ps(7.787037f)), _mm256_set1_ps(16.f / 116.f));
    return _mm256_blendv_ps(l, c, _mm256_cmp_ps(t, _mm256_set1_ps(0.008856452f), _CMP_GT_OQ));
}

RT_TARGET_AVX2 static void rgb_to_lab_avx2(const float *rgb, float *L, float *A, float *B, int n) {
    const __m256i pr = _mm256_setr_epi32(0, 3, 6, 1, 4, 7, 2, 5),
                  pg = _mm256_setr_epi32(1, 4, 7, 2, 5, 0, 3, 6),
                  pb = _mm256_setr_epi32(2, 5, 0, 3, 6, 1, 4, 7);
#define RT_M(a, b) _mm256_mul_ps(_mm256_set1_ps(a), b)
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        /* three vectors of interleaved r g b to one per band: blends, then one permute each */
        const float *p = rgb + 3 * i;
        __m256 va = _mm256_loadu_ps(p), vb = _mm256_loadu_ps(p + 8), vc = _mm256_loadu_ps(p + 16);
        __m256 tr = _mm256_blend_ps(_mm256_blend_ps(va, vb, 0x92), vc, 0x24);
        __m256 tg = _mm256_blend_ps(_mm256_blend_ps(va, vb, 0x24), vc, 0x49);
        __m256 tb = _mm256_blend_ps(_mm256_blend_ps(va, vb, 0x49), vc, 0x92);
        __m256 r = lin8(_mm256_permutevar8x32_ps(tr, pr)),
               g = lin8(_mm256_permutevar8x32_ps(tg, pg)),
               b = lin8(_mm256_permutevar8x32_ps(tb, pb));
        __m256 x =
            _mm256_div_ps(_mm256_add_ps(_mm256_add_ps(RT_M(0.4124564f, r), RT_M(0.3575761f, g)),
                                        RT_M(0.1804375f, b)),
                          _mm256_set1_ps(0.95047f));
        __m256 y = _mm256_add_ps(_mm256_add_ps(RT_M(0.2126729f, r), RT_M(0.7151522f, g)),
                                 RT_M(0.0721750f, b));
        __m256 z =
            _mm256_div_ps(_mm256_add_ps(_mm256_add_ps(RT_M(0.0193339f, r), RT_M(0.1191920f, g)),
                                        RT_M(0.9503041f, b)),
                          _mm256_set1_ps(1.08883f));
        __m256 fx = lab_f8(x), fy = lab_f8(y), fz = lab_f8(z);
        _mm256_storeu_ps(L + i, _mm256_sub_ps(RT_M(116.f, fy), _mm256_set1_ps(16.f)));
        _mm256_storeu_ps(A + i, RT_M(500.f, _mm256_sub_ps(fx, fy)));
        _mm256_storeu_ps(B + i, RT_M(200.f, _mm256_sub_ps(fy, fz)));
    }
#undef RT_M
    for (; i < n; i++) {
        float lab[3];
        rgb_to_lab(rgb + 3 * i, lab);
        L[i] = lab[0], A[i] = lab[1], B[i] = lab[2];
    }
}
#endif

/* A row of n pixels to CIELAB planes. */
static void rgb_to_lab_row(const float *rgb, float *L, float *A, float *B, int n) {
#if RT_AVX2
    if (use_avx2) {
        rgb_to_lab_avx2(rgb, L, A, B, n);
        return;
    }
#endif
    for (int i = 0; i < n; i++) {
        float lab[3];
        rgb_to_lab(rgb + 3 * i, lab);
        L[i] = lab[0], A[i] = lab[1], B[i] = lab[2];
    }
}

/* ---- planes ----------------------------------------------------------------------------- */

/* A 1-D blur along the lines of a plane: small sigmas by a sampled Gaussian, larger ones by three
 * box passes with running sums, whose cost does not grow with sigma. */
typedef struct line_blur {
    int gauss;
    int kr; /* Gaussian: radius, taps k[0 .. 2 kr], their sum ks */
    float k[32], ks;
    int r; /* box: radius of each of the three passes, 1 / (2 r + 1) */
    double inv;
} line_blur;

static void line_blur_init(line_blur *lb, float sigma) {
    memset(lb, 0, sizeof *lb);
    lb->gauss = sigma < 3;
    if (lb->gauss) {
        lb->kr = (int)ceilf(3 * sigma);
        for (int t = -lb->kr; t <= lb->kr; t++)
            lb->ks += lb->k[t + lb->kr] = expf(-0.5f * t * t / (sigma * sigma));
    } else {
        lb->r = (int)lroundf((sqrtf(4 * sigma * sigma + 1) - 1) / 2);
        /* a product instead of a division by 2 r + 1: the double result may differ in its last
         * bit, which reaches the float only once in hundreds of millions of pixels */
        lb->inv = 1.0 / (2 * lb->r + 1);
    }
}

RT_INLINE void acc_zero(double *restrict a, int nc) {
    for (int x = 0; x < nc; x++) a[x] = 0;
}
RT_INLINE void acc_add(double *restrict a, const float *restrict row, int nc) {
    for (int x = 0; x < nc; x++) a[x] += row[x];
}
RT_INLINE void acc_slide(double *restrict a, const float *restrict in, const float *restrict out,
                         int nc) {
    for (int x = 0; x < nc; x++) a[x] += in[x] - out[x];
}
RT_INLINE void acc_out(float *restrict o, const double *restrict a, double inv, int nc) {
    for (int x = 0; x < nc; x++) o[x] = (float)(a[x] * inv);
}

/* The three box passes down the columns of in (nc columns of nr rows, rows stride is floats
 * apart) into out (stride os), edges extended. The passes run together, each a fixed number of
 * rows behind the one before, whose last 2 r + 2 rows it keeps in a ring (ring1, ring2: that
 * many rows of nc floats each), so all three stream through memory once. Each column gets the
 * arithmetic a line of its own would: a sum of rows in double, slid by one row at a time. acc:
 * 3 nc doubles. */
RT_INLINE void box_cols_body(const line_blur *lb, const float *in, size_t is, float *out, size_t os,
                             int nc, int nr, float *ring1, float *ring2, double *acc,
                             const int *mr) {
    int r = lb->r, lag = r + 1;
    double inv = lb->inv, *a1 = acc, *a2 = acc + nc, *a3 = acc + 2 * nc;
#define RT_ROW(base, stride, y) ((base) + (size_t)(y) * (stride))
#define RT_CLAMP(y) ((y) < 0 ? 0 : (y) >= nr ? nr - 1 : (y))
    acc_zero(a1, nc);
    for (int t = 0; t <= 2 * r; t++) acc_add(a1, RT_ROW(in, is, RT_CLAMP(t - r)), nc);
    for (int s = 0; s < nr + 2 * lag; s++) {
        if (s < nr) {
            acc_out(RT_ROW(ring1, nc, mr[s]), a1, inv, nc);
            if (s + 1 < nr)
                acc_slide(a1, RT_ROW(in, is, RT_CLAMP(s + r + 1)), RT_ROW(in, is, RT_CLAMP(s - r)),
                          nc);
        }
        int j = s - lag;
        if (j >= 0 && j < nr) {
            if (j == 0) {
                acc_zero(a2, nc);
                for (int t = 0; t <= 2 * r; t++)
                    acc_add(a2, RT_ROW(ring1, nc, mr[RT_CLAMP(t - r)]), nc);
            }
            acc_out(RT_ROW(ring2, nc, mr[j]), a2, inv, nc);
            if (j + 1 < nr)
                acc_slide(a2, RT_ROW(ring1, nc, mr[RT_CLAMP(j + r + 1)]),
                          RT_ROW(ring1, nc, mr[RT_CLAMP(j - r)]), nc);
        }
        int k = j - lag;
        if (k >= 0 && k < nr) {
            if (k == 0) {
                acc_zero(a3, nc);
                for (int t = 0; t <= 2 * r; t++)
                    acc_add(a3, RT_ROW(ring2, nc, mr[RT_CLAMP(t - r)]), nc);
            }
            acc_out(RT_ROW(out, os, k), a3, inv, nc);
            if (k + 1 < nr)
                acc_slide(a3, RT_ROW(ring2, nc, mr[RT_CLAMP(k + r + 1)]),
                          RT_ROW(ring2, nc, mr[RT_CLAMP(k - r)]), nc);
        }
    }
#undef RT_ROW
#undef RT_CLAMP
}

static void box_cols_base(const line_blur *lb, const float *in, size_t is, float *out, size_t os,
                          int nc, int nr, float *ring1, float *ring2, double *acc, const int *mr) {
    box_cols_body(lb, in, is, out, os, nc, nr, ring1, ring2, acc, mr);
}
#if RT_AVX2
RT_TARGET_AVX2 static void box_cols_avx2(const line_blur *lb, const float *in, size_t is,
                                         float *out, size_t os, int nc, int nr, float *ring1,
                                         float *ring2, double *acc, const int *mr) {
    /* the usual widths as constants: the rows' loops unrolled, without their set-up per row */
    if (nc == 32)
        box_cols_body(lb, in, is, out, os, 32, nr, ring1, ring2, acc, mr);
    else if (nc == 128)
        box_cols_body(lb, in, is, out, os, 128, nr, ring1, ring2, acc, mr);
    else
        box_cols_body(lb, in, is, out, os, nc, nr, ring1, ring2, acc, mr);
}
#endif

static void box_cols(const line_blur *lb, const float *in, size_t is, float *out, size_t os, int nc,
                     int nr, float *ring1, float *ring2, double *acc, const int *mr) {
#if RT_AVX2
    if (use_avx2) {
        box_cols_avx2(lb, in, is, out, os, nc, nr, ring1, ring2, acc, mr);
        return;
    }
#endif
    box_cols_base(lb, in, is, out, os, nc, nr, ring1, ring2, acc, mr);
}

/* The sampled Gaussian along a row (n samples, edges extended): s accumulates the taps in order
 * (n floats of scratch), as a line of its own would. */
RT_INLINE void gauss_row_body(const line_blur *lb, const float *restrict in, float *restrict out,
                              int n, float *restrict s) {
    int kr = lb->kr;
    for (int x = 0; x < n; x++) s[x] = 0;
    int lo = kr < n ? kr : n, hi = n - kr > lo ? n - kr : lo;
    for (int t = 0; t <= 2 * kr; t++) {
        float kt = lb->k[t];
        for (int x = 0; x < lo; x++) {
            int y = x + t - kr;
            s[x] += kt * in[y < 0 ? 0 : y >= n ? n - 1 : y];
        }
        const float *src = in + t - kr;
        for (int x = lo; x < hi; x++) s[x] += kt * src[x];
        for (int x = hi; x < n; x++) {
            int y = x + t - kr;
            s[x] += kt * in[y < 0 ? 0 : y >= n ? n - 1 : y];
        }
    }
    float ks = lb->ks;
    for (int x = 0; x < n; x++) out[x] = s[x] / ks;
}

/* The sampled Gaussian down the columns: output row i of in (w columns, h rows) into out. */
RT_INLINE void gauss_col_body(const line_blur *lb, const float *in, float *restrict out, int w,
                              int h, int i, float *restrict s) {
    int kr = lb->kr;
    for (int x = 0; x < w; x++) s[x] = 0;
    for (int t = 0; t <= 2 * kr; t++) {
        int y = i + t - kr;
        const float *restrict row = in + (size_t)(y < 0 ? 0 : y >= h ? h - 1 : y) * w;
        float kt = lb->k[t];
        for (int x = 0; x < w; x++) s[x] += kt * row[x];
    }
    float ks = lb->ks;
    for (int x = 0; x < w; x++) out[x] = s[x] / ks;
}

/* Rows [y0, y1) of in (times wt, when not NULL) blurred along x into out; s: 2 w floats. */
RT_INLINE void gauss_x_body(const line_blur *lb, const float *in, const float *wt, float *out,
                            int w, int y0, int y1, float *s) {
    for (int y = y0; y < y1; y++) {
        const float *row = in + (size_t)y * w;
        if (wt) {
            float *restrict q = s + w;
            const float *restrict wr = wt + (size_t)y * w;
            for (int x = 0; x < w; x++) q[x] = row[x] * wr[x];
            row = q;
        }
        gauss_row_body(lb, row, out + (size_t)y * w, w, s);
    }
}

/* Rows [y0, y1) of the blur of in along y, into out. */
RT_INLINE void gauss_y_body(const line_blur *lb, const float *in, float *out, int w, int h, int y0,
                            int y1, float *s) {
    for (int y = y0; y < y1; y++) gauss_col_body(lb, in, out + (size_t)y * w, w, h, y, s);
}

static void gauss_x_base(const line_blur *lb, const float *in, const float *wt, float *out, int w,
                         int y0, int y1, float *s) {
    gauss_x_body(lb, in, wt, out, w, y0, y1, s);
}
static void gauss_y_base(const line_blur *lb, const float *in, float *out, int w, int h, int y0,
                         int y1, float *s) {
    gauss_y_body(lb, in, out, w, h, y0, y1, s);
}
#if RT_AVX2
RT_TARGET_AVX2 static void gauss_x_avx2(const line_blur *lb, const float *in, const float *wt,
                                        float *out, int w, int y0, int y1, float *s) {
    gauss_x_body(lb, in, wt, out, w, y0, y1, s);
}
RT_TARGET_AVX2 static void gauss_y_avx2(const line_blur *lb, const float *in, float *out, int w,
                                        int h, int y0, int y1, float *s) {
    gauss_y_body(lb, in, out, w, h, y0, y1, s);
}
#endif

/* Rows [y0, y1) of in blurred along x (times wt; cols: along y, wt NULL) into out. */
static void gauss_rows(const line_blur *lb, int cols, const float *in, const float *wt, float *out,
                       int w, int h, int y0, int y1, float *s) {
#if RT_AVX2
    if (use_avx2) {
        if (cols)
            gauss_y_avx2(lb, in, out, w, h, y0, y1, s);
        else
            gauss_x_avx2(lb, in, wt, out, w, y0, y1, s);
        return;
    }
#endif
    if (cols)
        gauss_y_base(lb, in, out, w, h, y0, y1, s);
    else
        gauss_x_base(lb, in, wt, out, w, y0, y1, s);
}

/* The nb rows from src (stride w), times wt's (when not NULL), transposed into dst (w rows of
 * nb), and back. */
static void rows_to_cols(float *restrict dst, const float *restrict src, const float *restrict wt,
                         int w, int nb) {
    int x = 0;
#ifdef __SSE2__
    /* a band of four rows at a time, read from left to right: the loads stream */
    if (nb % 4 == 0) {
        int xe = w / 4 * 4;
        for (int k = 0; k < nb; k += 4)
            for (x = 0; x < xe; x += 4) {
                __m128 r0 = _mm_loadu_ps(src + (size_t)k * w + x),
                       r1 = _mm_loadu_ps(src + (size_t)(k + 1) * w + x),
                       r2 = _mm_loadu_ps(src + (size_t)(k + 2) * w + x),
                       r3 = _mm_loadu_ps(src + (size_t)(k + 3) * w + x);
                if (wt) {
                    r0 = _mm_mul_ps(r0, _mm_loadu_ps(wt + (size_t)k * w + x));
                    r1 = _mm_mul_ps(r1, _mm_loadu_ps(wt + (size_t)(k + 1) * w + x));
                    r2 = _mm_mul_ps(r2, _mm_loadu_ps(wt + (size_t)(k + 2) * w + x));
                    r3 = _mm_mul_ps(r3, _mm_loadu_ps(wt + (size_t)(k + 3) * w + x));
                }
                _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
                _mm_storeu_ps(dst + (size_t)x * nb + k, r0);
                _mm_storeu_ps(dst + (size_t)(x + 1) * nb + k, r1);
                _mm_storeu_ps(dst + (size_t)(x + 2) * nb + k, r2);
                _mm_storeu_ps(dst + (size_t)(x + 3) * nb + k, r3);
            }
        x = xe;
    }
#endif
    for (; x < w; x++)
        for (int k = 0; k < nb; k++)
            dst[(size_t)x * nb + k] =
                wt ? src[(size_t)k * w + x] * wt[(size_t)k * w + x] : src[(size_t)k * w + x];
}

static void cols_to_rows(float *restrict dst, const float *restrict src, int w, int nb) {
    int x = 0;
#ifdef __SSE2__
    /* a band of four rows at a time, written from left to right: the stores stream */
    if (nb % 4 == 0) {
        int xe = w / 4 * 4;
        for (int k = 0; k < nb; k += 4)
            for (x = 0; x < xe; x += 4) {
                __m128 r0 = _mm_loadu_ps(src + (size_t)x * nb + k),
                       r1 = _mm_loadu_ps(src + (size_t)(x + 1) * nb + k),
                       r2 = _mm_loadu_ps(src + (size_t)(x + 2) * nb + k),
                       r3 = _mm_loadu_ps(src + (size_t)(x + 3) * nb + k);
                _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
                _mm_storeu_ps(dst + (size_t)k * w + x, r0);
                _mm_storeu_ps(dst + (size_t)(k + 1) * w + x, r1);
                _mm_storeu_ps(dst + (size_t)(k + 2) * w + x, r2);
                _mm_storeu_ps(dst + (size_t)(k + 3) * w + x, r3);
            }
        x = xe;
    }
#endif
    for (; x < w; x++)
        for (int k = 0; k < nb; k++) dst[(size_t)k * w + x] = src[(size_t)x * nb + k];
}

/* Rows per block of the box pass along x (run down the columns of the block's transpose) and
 * columns per block of the box pass along y: blocks whose rings stay in the first-level cache. */
#define BOX_XB 32
#define BOX_YB 128

/* Full-resolution separable blurs of np planes of w x h at one sigma: dst[p] = the blur of src[p]
 * (times wt[p] where that is not NULL; dst[p] may be src[p]), the work of each pass split between
 * two threads: along x (src -> t), then along y (t -> dst). t: np planes of scratch. */
typedef struct blur_job {
    const float *const *src, *const *wt;
    float *const *dst;
    float **t;
    int np, w, h, pass, blocks; /* pass 0: along x, 1: along y; blocks per plane */
    line_blur lb;
    int fail;
} blur_job;

static void blur_range(size_t first, size_t n, void *user) {
    blur_job *j = user;
    int w = j->w, h = j->h, r = j->lb.r, R = 2 * r + 2;
    const line_blur *lb = &j->lb;
    float *scr = NULL;
    double *acc = NULL;
    if (lb->gauss)
        scr = malloc(sizeof(float) * ((size_t)(w > h ? w : h) + (size_t)w));
    else if (j->pass == 0)
        scr = malloc(sizeof(float) * ((size_t)w * BOX_XB * 2 + (size_t)R * BOX_XB * 2)),
        acc = malloc(sizeof(double) * 3 * BOX_XB);
    else
        scr = malloc(sizeof(float) * (size_t)R * BOX_YB * 2),
        acc = malloc(sizeof(double) * 3 * BOX_YB);
    /* each line's position in the rings, y % R (a division per row and pass would cost more
     * than the row's sums) */
    int nr = j->pass == 0 ? w : h, *mr = lb->gauss ? NULL : malloc(sizeof *mr * (size_t)nr);
    if (!scr || (!lb->gauss && (!acc || !mr))) {
        j->fail = 1;
        free(scr), free(acc), free(mr);
        return;
    }
    for (int y = 0, m = 0; mr && y < nr; y++, m = m + 1 == R ? 0 : m + 1) mr[y] = m;
    for (size_t it = first; it < first + n; it++) {
        int p = (int)(it / (size_t)j->blocks), b = (int)(it % (size_t)j->blocks);
        const float *src = j->src[p], *wt = j->wt[p];
        float *dst = j->dst[p], *t = j->t[p];
        if (lb->gauss) {
            /* blocks are bands of rows */
            int y0 = (int)((int64_t)h * b / j->blocks),
                y1 = (int)((int64_t)h * (b + 1) / j->blocks);
            if (j->pass == 0)
                gauss_rows(lb, 0, src, wt, t, w, h, y0, y1, scr);
            else
                gauss_rows(lb, 1, t, NULL, dst, w, h, y0, y1, scr);
        } else if (j->pass == 0) {
            int y0 = b * BOX_XB, nb = h - y0 < BOX_XB ? h - y0 : BOX_XB;
            float *T = scr, *T2 = scr + (size_t)w * BOX_XB, *ring = T2 + (size_t)w * BOX_XB;
            rows_to_cols(T, src + (size_t)y0 * w, wt ? wt + (size_t)y0 * w : NULL, w, nb);
            box_cols(lb, T, (size_t)nb, T2, (size_t)nb, nb, w, ring, ring + (size_t)R * nb, acc,
                     mr);
            cols_to_rows(t + (size_t)y0 * w, T2, w, nb);
        } else {
            int x0 = b * BOX_YB, nc = w - x0 < BOX_YB ? w - x0 : BOX_YB;
            box_cols(lb, t + x0, (size_t)w, dst + x0, (size_t)w, nc, h, scr, scr + (size_t)R * nc,
                     acc, mr);
        }
    }
    free(scr), free(acc), free(mr);
}

/* src[p] (times wt[p]) into dst[p], for a blur too narrow to do anything. */
static void copy_weighted(float *dst, const float *src, const float *wt, size_t n) {
    if (wt)
        for (size_t i = 0; i < n; i++) dst[i] = src[i] * wt[i];
    else if (dst != src)
        memcpy(dst, src, sizeof(float) * n);
}

static int blur_full_n(float *const *dst, const float *const *src, const float *const *wt, int np,
                       int w, int h, float sigma, arena *ar) {
    size_t n = (size_t)w * h;
    if (np <= 0) return 0;
    if (np > 8) return -1;
    if (sigma <= 0.3f) {
        for (int p = 0; p < np; p++) copy_weighted(dst[p], src[p], wt[p], n);
        return 0;
    }
    float *t[8];
    arena_mark mark = arena_at(ar);
    float *tt = arena_take(ar, sizeof(float) * n * np);
    if (!tt) return -1;
    for (int p = 0; p < np; p++) t[p] = tt + n * p;
    blur_job j = {src, wt, dst, t, np, w, h, 0, 0, {0}, 0};
    line_blur_init(&j.lb, sigma);
    for (j.pass = 0; j.pass < 2; j.pass++) {
        if (j.lb.gauss)
            j.blocks = h < 64 ? 1 : 16;
        else
            j.blocks = j.pass == 0 ? (h + BOX_XB - 1) / BOX_XB : (w + BOX_YB - 1) / BOX_YB;
        size_t items = (size_t)j.blocks * np;
        ts_render_split2(blur_range, &j, items, n * np >= 32768 ? 2 : items + 1);
    }
    arena_release(ar, mark);
    return j.fail ? -1 : 0;
}

/* Sigma from which a blur is computed on a plane averaged down by k (sigma / 4, 2 to 4)
 * and brought back bilinearly: what is left after such a blur is smooth at the scale of k
 * pixels, so the result differs from the full-resolution blur by a small fraction of a level,
 * at a fraction of the cost (the wide blurs are most of the stage's time). */
#define BLUR_REDUCE_SIGMA 6.0f

/* The last step of nblur3_with, for a range of pixels. */
typedef struct nblur_div_job {
    float *const *dst;
    const float *const *src;
    const float *tmp;
} nblur_div_job;

RT_INLINE void nblur_div_body(const nblur_div_job *j, size_t first, size_t n) {
    const float *tmp = j->tmp;
    for (int c = 0; c < 3; c++) {
        float *restrict dst = j->dst[c];
        const float *restrict src = j->src[c];
        for (size_t i = first; i < first + n; i++)
            dst[i] = tmp[i] > 1e-3f ? dst[i] / tmp[i] : src[i];
    }
}

static void nblur_div_base(const nblur_div_job *j, size_t first, size_t n) {
    nblur_div_body(j, first, n);
}
#if RT_AVX2
RT_TARGET_AVX2 static void nblur_div_avx2(const nblur_div_job *j, size_t first, size_t n) {
    nblur_div_body(j, first, n);
}
#endif

static void nblur_div_range(size_t first, size_t n, void *user) {
#if RT_AVX2
    if (use_avx2) {
        nblur_div_avx2(user, first, n);
        return;
    }
#endif
    nblur_div_base(user, first, n);
}

/* The reduced planes' work: box averages down (pass 0) and bilinear back up (along x, pass 1,
 * then along y, pass 2), rows split between two threads. */
typedef struct reduce_job {
    const float *const *src, *const *wt;
    float *const *dst;
    float **sm, **hs;
    int np, w, h, k, sw, sh, pass;
    const int *ix0, *ix1;
    const float *tx;
    const float *const *div; /* NULL, or nblur3's sources: dst[1..3] /= dst[0] (see there) */
    int fail;
} reduce_job;

/* Row y of a reduced blur at full resolution: the blend top + ty (bot - top) of rows y0 and y1
 * of the reduced rows brought to full width (k: the reduction, sh: the reduced rows). */
static inline void coarse_row(int k, int sh, int y, int *y0, int *y1, float *ty) {
    float fy = (y + 0.5f) / k - 0.5f;
    fy = fy < 0 ? 0 : fy > sh - 1 ? sh - 1 : fy;
    *y0 = (int)fy, *y1 = *y0 + 1 < sh ? *y0 + 1 : *y0;
    *ty = fy - *y0;
}

static void reduce_range(size_t first, size_t n, void *user) {
    reduce_job *j = user;
    int w = j->w, h = j->h, k = j->k, sw = j->sw, sh = j->sh;
    float *acc = NULL;
    if (j->pass == 0 && !(acc = malloc(sizeof *acc * (size_t)w))) {
        j->fail = 1;
        return;
    }
    for (size_t it = first; it < first + n; it++) {
        if (j->pass == 0) {
            /* box average (partial cells at the right and bottom edges average what they
             * hold): row sums of k rows, then k columns of them */
            int p = (int)(it / (size_t)sh), y = (int)(it % (size_t)sh);
            const float *a = j->src[p], *wt = j->wt[p];
            int ya = y * k, yb = ya + k < h ? ya + k : h;
            if (wt) {
                const float *row = a + (size_t)ya * w, *wr = wt + (size_t)ya * w;
                for (int x = 0; x < w; x++) acc[x] = row[x] * wr[x];
                for (int yy = ya + 1; yy < yb; yy++) {
                    row = a + (size_t)yy * w, wr = wt + (size_t)yy * w;
                    for (int x = 0; x < w; x++) acc[x] += row[x] * wr[x];
                }
            } else {
                memcpy(acc, a + (size_t)ya * w, sizeof *acc * (size_t)w);
                for (int yy = ya + 1; yy < yb; yy++) {
                    const float *row = a + (size_t)yy * w;
                    for (int x = 0; x < w; x++) acc[x] += row[x];
                }
            }
            float *dst = j->sm[p] + (size_t)y * sw;
            for (int x = 0; x < sw; x++) {
                int xa = x * k, xb = xa + k < w ? xa + k : w;
                float v = 0;
                for (int xx = xa; xx < xb; xx++) v += acc[xx];
                dst[x] = v / (float)((yb - ya) * (xb - xa));
            }
        } else if (j->pass == 1) {
            /* each reduced row brought to full width once, for the two or more rows that
             * interpolate between it and the next */
            int p = (int)(it / (size_t)sh), y = (int)(it % (size_t)sh);
            const float *r0 = j->sm[p] + (size_t)y * sw;
            float *dst = j->hs[p] + (size_t)y * w;
            const int *ix0 = j->ix0, *ix1 = j->ix1;
            const float *tx = j->tx;
            for (int x = 0; x < w; x++) dst[x] = r0[ix0[x]] + tx[x] * (r0[ix1[x]] - r0[ix0[x]]);
        } else {
            /* with div, a row of every plane, then the weighted means' division on it while it
             * is in the cache */
            int p0 = j->div ? 0 : (int)(it / (size_t)h), p1 = j->div ? j->np : p0 + 1;
            int y = j->div ? (int)it : (int)(it % (size_t)h);
            int y0, y1;
            float ty;
            coarse_row(k, sh, y, &y0, &y1, &ty);
            for (int p = p0; p < p1; p++) {
                const float *top = j->hs[p] + (size_t)y0 * w, *bot = j->hs[p] + (size_t)y1 * w;
                float *dst = j->dst[p] + (size_t)y * w;
                for (int x = 0; x < w; x++) dst[x] = top[x] + ty * (bot[x] - top[x]);
            }
            if (j->div) {
                nblur_div_job d = {j->dst + 1, j->div, j->dst[0]};
                nblur_div_range((size_t)y * w, (size_t)w, &d);
            }
        }
    }
    free(acc);
}

/* Whether blur_n works at reduced resolution (unless exact). */
static int blur_reduced(float sigma, int w, int h) {
    return sigma >= BLUR_REDUCE_SIGMA && w >= 64 && h >= 64;
}

/* A wide blur (sigma from BLUR_REDUCE_SIGMA, planes of 64 pixels each way and more) up to its
 * last step: the planes averaged down by k, blurred there, and each reduced row brought to full
 * width (hs: sh rows of w per plane, from the arena; the caller releases them). Row y of the
 * blur is the blend of two of those rows that coarse_row names. Returns -1 when out of memory. */
typedef struct coarse {
    int w, h, k, sh, np;
    float *hs[8];
} coarse;

static int blur_coarse(coarse *c, const float *const *src, const float *const *wt, int np, int w,
                       int h, float sigma, arena *ar) {
    const float *const none[8] = {NULL};
    if (!wt) wt = none;
    if (np > 8) return -1;
    int k = (int)(sigma / 4);
    k = k < 2 ? 2 : k > 4 ? 4 : k;
    int sw = (w + k - 1) / k, sh = (h + k - 1) / k;
    size_t sn = (size_t)sw * sh;
    float *sm[8], *hsb = arena_take(ar, sizeof(float) * (size_t)sh * w * np);
    arena_mark mark = arena_at(ar);
    float *smb = arena_take(ar, sizeof(float) * sn * np);
    int *ix0 = arena_take(ar, sizeof *ix0 * (size_t)w),
        *ix1 = arena_take(ar, sizeof *ix1 * (size_t)w);
    float *tx = arena_take(ar, sizeof *tx * (size_t)w);
    int fail = !hsb || !smb || !ix0 || !ix1 || !tx;
    c->w = w, c->h = h, c->k = k, c->sh = sh, c->np = np;
    reduce_job j = {src, wt, NULL, sm, c->hs, np, w, h, k, sw, sh, 0, ix0, ix1, tx, NULL, 0};
    if (!fail) {
        for (int p = 0; p < np; p++) sm[p] = smb + sn * p, c->hs[p] = hsb + (size_t)sh * w * p;
        ts_render_split2(reduce_range, &j, (size_t)sh * np, 64);
        /* the box average is itself a blur of variance (k^2 - 1) / 12 pixels^2 */
        float s2 = sigma * sigma - (k * k - 1) / 12.f;
        fail = j.fail || blur_full_n(sm, (const float *const *)sm, none, np, sw, sh,
                                     sqrtf(s2 > 0 ? s2 : 0) / k, ar);
    }
    if (!fail) {
        /* bilinear, cell centres at (x + 0.5) k - 0.5; the columns' taps are the same on every
         * row */
        for (int x = 0; x < w; x++) {
            float fx = (x + 0.5f) / k - 0.5f;
            fx = fx < 0 ? 0 : fx > sw - 1 ? sw - 1 : fx;
            ix0[x] = (int)fx, ix1[x] = ix0[x] + 1 < sw ? ix0[x] + 1 : ix0[x], tx[x] = fx - ix0[x];
        }
        j.pass = 1;
        ts_render_split2(reduce_range, &j, (size_t)sh * np, 64);
    }
    arena_release(ar, mark); /* keeps hs */
    return fail ? -1 : 0;
}

/* Gaussian blurs of np w x h planes at one sigma: dst[p] = the blur of src[p] (times wt[p] where
 * wt and it are not NULL; dst[p] may be src[p]). Wide blurs run at reduced resolution
 * (BLUR_REDUCE_SIGMA), unless exact. Returns -1 when out of memory. */
static int blur_n(float *const *dst, const float *const *src, const float *const *wt, int np, int w,
                  int h, float sigma, int exact, const float *const *div, arena *ar) {
    const float *const none[8] = {NULL};
    if (!wt) wt = none;
    if (exact || !blur_reduced(sigma, w, h)) {
        if (blur_full_n(dst, src, wt, np, w, h, sigma, ar)) return -1;
        if (div) {
            nblur_div_job d = {dst + 1, div, dst[0]};
            ts_render_split2(nblur_div_range, &d, (size_t)w * h, 65536);
        }
        return 0;
    }
    if (np > 8 || (div && np != 4)) return -1;
    arena_mark mark = arena_at(ar);
    coarse c;
    int fail = blur_coarse(&c, src, wt, np, w, h, sigma, ar);
    if (!fail) {
        reduce_job j = {src, wt,   dst, NULL, c.hs, np,   w,   h, c.k,
                        0,   c.sh, 2,   NULL, NULL, NULL, div, 0};
        ts_render_split2(reduce_range, &j, (size_t)h * (div ? 1 : np), 64);
    }
    arena_release(ar, mark);
    return fail ? -1 : 0;
}

/* In place, one plane. */
static int blur(float *a, int w, int h, float sigma, arena *ar) {
    return blur_n(&a, (const float *const *)&a, NULL, 1, w, h, sigma, 0, NULL, ar);
}

/* Normalised convolution of three planes: dst[c] = blur(src[c] * wt) / blur(wt), the weighted
 * local mean of src over the pixels wt trusts. Where no trusted pixel is near, dst keeps src.
 * tmp holds n floats. exact: always at full resolution. */
static int nblur3_with(float *const dst[3], float *const src[3], const float *wt, int w, int h,
                       float sigma, float *tmp, int exact, arena *ar) {
    float *all[4] = {tmp, dst[0], dst[1], dst[2]};
    const float *in[4] = {wt, src[0], src[1], src[2]}, *by[4] = {NULL, wt, wt, wt};
    return blur_n(all, in, by, 4, w, h, sigma, exact, (const float *const *)src, ar);
}

static int nblur3(float *const dst[3], float *const src[3], const float *wt, int w, int h,
                  float sigma, float *tmp, arena *ar) {
    return nblur3_with(dst, src, wt, w, h, sigma, tmp, 0, ar);
}

/* The same, always at full resolution: for the blemish finder's skin base, whose small
 * differences near the edges of the skin core (where the weights fall off) decide what counts
 * as a spot. */
static int nblur3_exact(float *const dst[3], float *const src[3], const float *wt, int w, int h,
                        float sigma, float *tmp, arena *ar) {
    return nblur3_with(dst, src, wt, w, h, sigma, tmp, 1, ar);
}

/* ---- windows ---------------------------------------------------------------------------- */

/* How far (pixels) the blur of a w x h plane at sigma reaches: an output pixel depends only on
 * the input within this distance. */
static int blur_reach(float sigma, int w, int h) {
    if (sigma <= 0.3f) return 0;
    line_blur lb;
    if (!blur_reduced(sigma, w, h)) {
        line_blur_init(&lb, sigma);
        return lb.gauss ? lb.kr : 3 * lb.r;
    }
    int k = (int)(sigma / 4);
    k = k < 2 ? 2 : k > 4 ? 4 : k;
    float s2 = sigma * sigma - (k * k - 1) / 12.f, ss = sqrtf(s2 > 0 ? s2 : 0) / k;
    /* the cells averaged down, the blur between them, the bilinear step back */
    return k * (blur_reach(ss, 1, 1) + 2) + k;
}

/* A part of the box: columns [x0, x0 + w), rows [y0, y0 + h). */
typedef struct win {
    int x0, y0, w, h;
} win;

/* The part of a bw x bh plane that holds [x0, x1) x [y0, y1) with margin around it, to blur on
 * its own instead of the whole plane: its origin on a multiple of 12 (so the cells of a reduced
 * blur, 2 to 4 pixels, fall where they do on the whole plane) and, where the plane allows, at
 * least 64 pixels each way (so blur takes the same path as on the whole plane). Inside, more than
 * a blur's reach from the part's edges, the blur gives what it gives on the whole plane (up to
 * the rounding of sums started elsewhere). */
static win window_around(int bw, int bh, int x0, int y0, int x1, int y1, int margin) {
    win r;
    int ax0 = x0 - margin, ay0 = y0 - margin, ax1 = x1 + margin, ay1 = y1 + margin;
    ax0 = ax0 < 0 ? 0 : ax0 / 12 * 12, ay0 = ay0 < 0 ? 0 : ay0 / 12 * 12;
    ax1 = ax1 > bw ? bw : ax1, ay1 = ay1 > bh ? bh : ay1;
    if (ax1 - ax0 < 64) {
        ax1 = ax0 + 64 < bw ? ax0 + 64 : bw;
        if (ax1 - ax0 < 64) ax0 = (ax1 - 64 < 0 ? 0 : ax1 - 64) / 12 * 12;
    }
    if (ay1 - ay0 < 64) {
        ay1 = ay0 + 64 < bh ? ay0 + 64 : bh;
        if (ay1 - ay0 < 64) ay0 = (ay1 - 64 < 0 ? 0 : ay1 - 64) / 12 * 12;
    }
    if (ax1 < ax0) ax1 = ax0;
    if (ay1 < ay0) ay1 = ay0;
    r.x0 = ax0, r.y0 = ay0, r.w = ax1 - ax0, r.h = ay1 - ay0;
    return r;
}

/* The window's part of a bw-wide plane, copied out (dst: r.w x r.h). */
static void window_copy(float *dst, const float *src, int bw, win r) {
    for (int y = 0; y < r.h; y++)
        memcpy(dst + (size_t)y * r.w, src + (size_t)(r.y0 + y) * bw + r.x0, sizeof(float) * r.w);
}

/* Fills a polygon (even-odd rule, pixel centres) with value 1 into mask, the window r of a
 * bw x bh plane (the polygon in the plane's pixels). */
static void fill_polygon(float *mask, int bw, int bh, win r, const float (*pt)[2], int n) {
    float y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n; i++) y0 = ts_minf(y0, pt[i][1]), y1 = ts_maxf(y1, pt[i][1]);
    int ya = (int)ts_maxf(0, floorf(y0)), yb = (int)ts_minf(bh - 1, ceilf(y1));
    ya = ya < r.y0 ? r.y0 : ya, yb = yb > r.y0 + r.h - 1 ? r.y0 + r.h - 1 : yb;
    int xe = bw < r.x0 + r.w ? bw : r.x0 + r.w;
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
        for (int a = 0; a + 1 < k; a += 2) {
            int x = (int)ts_maxf(0, ceilf(xs[a] - 0.5f));
            for (x = x < r.x0 ? r.x0 : x; x < xe && x + 0.5f < xs[a + 1]; x++)
                mask[(size_t)(y - r.y0) * r.w + (x - r.x0)] = 1;
        }
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

/* The upper lid and brow zone of each eye, where no blemish is healed: the lid's margin (the
 * eye's corners and MediaPipe's rightEyeUpper0 / leftEyeUpper0) and back along the brow's upper
 * line (rightEyebrowUpper / leftEyebrowUpper). The lid's skin is pink and veined by nature, the
 * zone is crossed by the crease and the brow's edge, and a heal there (a fill fitted to a ring
 * of lid, crease and brow) shows as a flat disc: on the 12-MP benchmark photo three pink patches
 * of the lid were healed into grey-brown discs. A retoucher leaves the lids to the eye's own
 * edits. Spots within LID_MARGIN inter-eye distances of the zone are left too. */
#define UPPER_LID_N 16
/* The share of a spot's ring that must be plain skin (the skin core, no feature) to heal it. */
#define RING_SKIN_MIN 0.75
#define LID_MARGIN 0.03f
static const int upper_lid[2][UPPER_LID_N] = {
    {33, 246, 161, 160, 159, 158, 157, 173, 133, 55, 107, 66, 105, 63, 70, 156},
    {263, 466, 388, 387, 386, 385, 384, 398, 362, 285, 336, 296, 334, 293, 300, 383}};

/* Whether (x, y) lies inside polygon q (n points) or within margin of its outline. */
static int near_polygon(const float (*q)[2], int n, float x, float y, float margin) {
    int inside = 0;
    float best = INFINITY;
    for (int i = 0, j = n - 1; i < n; j = i++) {
        float xi = q[i][0], yi = q[i][1], xj = q[j][0], yj = q[j][1];
        if ((yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) inside = !inside;
        float ex = xj - xi, ey = yj - yi, l2 = ex * ex + ey * ey;
        float t = l2 > 0 ? ts_maxf(0, ts_minf(1, ((x - xi) * ex + (y - yi) * ey) / l2)) : 0;
        best = ts_minf(best, hypotf(x - xi - t * ex, y - yi - t * ey));
    }
    return inside || best <= margin;
}

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
    arena *ar;
    float lid[2][UPPER_LID_N][2]; /* the upper-lid zones (upper_lid), box pixels */
} work;

/* The edited planes start as the Lab ones where a pixel is first changed (until then only
 * touched, one byte a pixel, says which of them hold anything). */
static inline void touch(const work *W, float *const *out, uint8_t *touched, size_t i) {
    if (touched[i]) return;
    for (int c = 0; c < 3; c++) out[c][i] = W->lab[c][i];
    touched[i] = 1;
}

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

/* The blemish finder's per-pixel marks, for a range of pixels: without avoid, the candidates
 * (label -1: in the skin core, redness above the base by more than 2.5); with it, what neither a
 * ring nor a donor may use. */
typedef struct marks_job {
    const work *W;
    float *const *sm;
    const float *base_L, *base_a;
    int *label;
    uint8_t *avoid;
    const blob *bl;
} marks_job;

static void marks_range(size_t first, size_t n, void *user) {
    const marks_job *j = user;
    const float *core = j->W->core, *sm0 = j->sm[0], *sm1 = j->sm[1], *bL = j->base_L,
                *ba = j->base_a;
    int *label = j->label;
    if (!j->avoid) {
        for (size_t i = first; i < first + n; i++)
            label[i] = (core[i] >= 0.5f && sm1[i] - ba[i] > 2.5f) ? -1 : 0;
        return;
    }
    for (size_t i = first; i < first + n; i++)
        j->avoid[i] = (label[i] > 0 && j->bl[label[i] - 1].ok == 1) || sm1[i] - ba[i] > 5.f ||
                      fabsf(sm0[i] - bL[i]) > 8.f;
}

/* Finds and heals blemishes in lab_out (a copy of the Lab planes), weighting each heal by
 * amount * skin. Returns the number healed, or -1 when out of memory. */
static int heal_blemishes(work *W, float *out[3], float amount, uint8_t *touched) {
    int w = W->w, h = W->h;
    size_t n = W->n;
    float ied = W->ied;
    arena *ar = W->ar;
    arena_mark mark = arena_at(ar);
    float *base_a = arena_take(ar, sizeof(float) * n), *base_b = arena_take(ar, sizeof(float) * n);
    float *base_L = arena_take(ar, sizeof(float) * n), *sm[3] = {NULL, NULL, NULL}, *lo[3] = {0};
    /* label: every pixel written by the first marks pass */
    int *label = arena_take(ar, sizeof(int) * n), *stack = arena_take(ar, sizeof(int) * n);
    int nb = 0, cap = 64, healed = 0;
    blob *bl = malloc(sizeof(blob) * cap);
    int fail = !base_a || !base_b || !base_L || !label || !stack || !bl;
    for (int c = 0; c < 3 && !fail; c++) {
        sm[c] = arena_take(ar, sizeof(float) * n);
        fail = !sm[c];
    }
    /* The skin base (wider than any blemish) and a lightly smoothed copy for measuring. */
    float sig_base = 0.08f * ied, sig_s = ts_maxf(0.7f, 0.006f * ied),
          sig_t = ts_maxf(1.f, 0.01f * ied);
    if (!fail)
        fail = nblur3_exact((float *const[3]){base_L, base_a, base_b}, W->lab, W->core, w, h,
                            sig_base, W->tmp, ar);
    if (!fail) fail = blur_n(sm, (const float *const *)W->lab, NULL, 3, w, h, sig_s, 0, NULL, ar);
    if (fail) goto done;
    /* Candidates: connected areas of the skin core where redness exceeds the base. */
    marks_job mj = {W, sm, base_L, base_a, label, NULL, NULL};
    ts_render_split2(marks_range, &mj, n, 65536);
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
            for (int e = 0; e < 2 && b->ok; e++)
                if (near_polygon((const float(*)[2])W->lid[e], UPPER_LID_N, b->cx, b->cy,
                                 LID_MARGIN * ied + 0.5f * b->d))
                    b->ok = 0;
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
    uint8_t *avoid = arena_take(ar, n);
    if (!avoid) {
        fail = 1;
        goto done;
    }
    mj.avoid = avoid, mj.bl = bl;
    ts_render_split2(marks_range, &mj, n, 65536);
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
        double ring_e = 0, ring_n = 0, ring_all = 0;
        for (int y = (int)floorf(b->cy - r2); y <= (int)ceilf(b->cy + r2); y++)
            for (int x = (int)floorf(b->cx - r2); x <= (int)ceilf(b->cx + r2); x++) {
                float dx = x - b->cx, dy = y - b->cy, r = sqrtf(dx * dx + dy * dy);
                if (r < r1 || r > r2) continue;
                ring_all++;
                if (x < 0 || y < 0 || x >= w || y >= h) continue;
                size_t i = (size_t)y * w + x;
                if (W->core[i] < 0.5f || avoid[i]) continue;
                float d = W->lab[0][i] - (float)(plane[0][0] + plane[0][1] * dx + plane[0][2] * dy);
                ring_e += d * d, ring_n++;
            }
        /* A spot whose ring is not mostly plain skin (at the face's edge, an ear, the hairline,
         * beside a feature) has no surroundings a fill could match: on the 12-MP benchmark
         * photo a spot on the jaw by the ear was healed into a grey disc half over the ear. */
        if (ring_n < RING_SKIN_MIN * ring_all) continue;
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
        /* The finest texture, needed by a heal without a donor (or where the donor's patch
         * leaves the box), on the heal's part of the box alone. */
        win lw = {0, 0, 0, 0};
        if (!found || xa + ox < 0 || ya + oy < 0 || xb + ox >= w || yb + oy >= h) {
            lw = window_around(w, h, xa, ya, xb + 1, yb + 1, blur_reach(sig_t, w, h) + 2);
            size_t m = (size_t)lw.w * lw.h;
            free(lo[0]);
            lo[0] = malloc(sizeof(float) * m * 3); /* small: a heal's part of the box */
            if (!lo[0]) {
                fail = 1;
                break;
            }
            lo[1] = lo[0] + m, lo[2] = lo[0] + 2 * m;
            for (int c = 0; c < 3; c++) window_copy(lo[c], W->lab[c], w, lw);
            if (blur_n(lo, (const float *const *)lo, NULL, 3, lw.w, lw.h, sig_t, 0, NULL, ar)) {
                fail = 1;
                break;
            }
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
                touch(W, out, touched, i);
                for (int c = 0; c < 3; c++) {
                    float fill = (float)(plane[c][0] + plane[c][1] * dx + plane[c][2] * dy);
                    /* The donor's texture over the ring's plane; without a donor, the spot's
                     * own finest texture (little of a spot lives there). */
                    float tex =
                        donor ? W->lab[c][j] -
                                    (float)(dplane[c][0] + dplane[c][1] * dx + dplane[c][2] * dy)
                              : W->lab[c][i] - lo[c][(size_t)(y - lw.y0) * lw.w + (x - lw.x0)];
                    out[c][i] += m * (fill + tex - W->lab[c][i]);
                }
            }
        healed++;
    }
done:
    free(bl), free(lo[0]);
    arena_release(ar, mark);
    return fail ? -1 : healed;
}

/* The box to CIELAB (and the skin mask to 0..1), read in place from the canvas, for a range of
 * the box's rows. */
typedef struct to_lab_job {
    const float *canvas; /* the box's first pixel */
    size_t stride;       /* floats from one canvas row to the next */
    const uint8_t *skin8;
    work *W;
} to_lab_job;

static void to_lab_range(size_t first, size_t n, void *user) {
    const to_lab_job *j = user;
    work *W = j->W;
    int w = W->w;
    for (size_t y = first; y < first + n; y++) {
        size_t i = y * (size_t)w;
        rgb_to_lab_row(j->canvas + y * j->stride, W->lab[0] + i, W->lab[1] + i, W->lab[2] + i, w);
        for (int x = 0; x < w; x++) W->skin[i + x] = j->skin8[i + x] / 255.f;
    }
}

/* The edited pixels of the box back in sRGB, for a range of its rows: out holds the new colour
 * from here on, and d (the Lab planes, no longer needed) the change from the canvas's old one,
 * which the foreground colour gets too. */
typedef struct back_job {
    float *const *out, *const *d;
    const uint8_t *touched;
    const float *canvas; /* the box's first pixel */
    size_t stride;       /* floats from one canvas row to the next */
    int w;
} back_job;

static void back_range(size_t first, size_t n, void *user) {
    const back_job *j = user;
    for (size_t y = first; y < first + n; y++)
        for (int x = 0; x < j->w; x++) {
            size_t i = y * (size_t)j->w + x;
            if (!j->touched[i]) continue;
            const float *o = j->canvas + y * j->stride + (size_t)x * 3;
            float lab[3] = {j->out[0][i], j->out[1][i], j->out[2][i]}, v[3];
            lab_to_rgb(lab, v);
            for (int c = 0; c < 3; c++) j->d[c][i] = v[c] - o[c], j->out[c][i] = v[c];
        }
}

/* The canvases' pixels [first, first + n) with the edits (ts_render_px_op, on the box's rows):
 * rgb takes the new colour, fg its own plus the change (rgb is told apart by its address). Where
 * the canvases are the job's alone this runs in place, and the pixels left alone are not
 * written at all. */
typedef struct put_job {
    const float *rgb; /* the canvas as the map reads it */
    float *const *v, *const *d;
    const uint8_t *touched;
    int cw, x0, y0, w, h;
} put_job;

static void put_px(const float *in, float *o, size_t first, size_t n, void *user) {
    const put_job *j = user;
    int is_rgb = in == j->rgb;
    if (o != in) memcpy(o + 3 * first, in + 3 * first, sizeof(float) * 3 * n);
    size_t cw = (size_t)j->cw, end = first + n;
    for (size_t p = first; p < end;) {
        size_t y = p / cw, row_end = (y + 1) * cw < end ? (y + 1) * cw : end;
        int by = (int)y - j->y0;
        if (by >= 0 && by < j->h) {
            size_t xa = p - y * cw, xb = row_end - y * cw;
            xa = xa < (size_t)j->x0 ? (size_t)j->x0 : xa;
            xb = xb > (size_t)(j->x0 + j->w) ? (size_t)(j->x0 + j->w) : xb;
            for (size_t x = xa; x < xb; x++) {
                size_t i = (size_t)by * j->w + (x - j->x0), q = 3 * (y * cw + x);
                if (!j->touched[i]) continue;
                for (int c = 0; c < 3; c++)
                    o[q + c] =
                        is_rgb ? j->v[c][i] : ts_minf(255, ts_maxf(0, in[q + c] + j->d[c][i]));
            }
        }
        p = row_end;
    }
}

/* Shine's pull toward the local tone, for a range of the box's rows (the skin's and the shine's
 * areas summed per half: [0] from the first row, [1] from any other). */
typedef struct shine_job {
    const work *W;
    float *const *out;
    uint8_t *touched;
    /* the local tone: the planes Lw aw bw, or (wide != NULL) the normalised convolution's
     * reduced blurs (weight, then L a b times it), finished here on the skin alone */
    const float *Lw, *aw, *bw, *Lm, *am, *bm;
    const coarse *wide;
    float f;
    double skin_area[2], shine_area[2];
} shine_job;

static void shine_range(size_t first, size_t nrows, void *user) {
    shine_job *j = user;
    const work *W = j->W;
    const float *Lm = j->Lm, *am = j->am, *bm = j->bm;
    const coarse *c = j->wide;
    float *const *out = j->out;
    double skin_area = 0, shine_area = 0;
    for (size_t y = first; y < first + nrows; y++) {
        const float *top[4] = {NULL}, *bot[4] = {NULL};
        float ty = 0;
        if (c) {
            int ya, yb;
            coarse_row(c->k, c->sh, (int)y, &ya, &yb, &ty);
            for (int p = 0; p < 4; p++)
                top[p] = c->hs[p] + (size_t)ya * W->w, bot[p] = c->hs[p] + (size_t)yb * W->w;
        }
        for (size_t i = y * W->w, x = 0; x < (size_t)W->w; i++, x++) {
            if (W->skin[i] <= 0) continue;
            skin_area += W->skin[i];
            float lw, aw, bw;
            if (c) {
                /* as blur_n's last step and nblur_div_range would have made them */
                float v[4];
                for (int p = 0; p < 4; p++) v[p] = top[p][x] + ty * (bot[p][x] - top[p][x]);
                lw = v[0] > 1e-3f ? v[1] / v[0] : W->lab[0][i];
                aw = v[0] > 1e-3f ? v[2] / v[0] : W->lab[1][i];
                bw = v[0] > 1e-3f ? v[3] / v[0] : W->lab[2][i];
            } else {
                lw = j->Lw[i], aw = j->aw[i], bw = j->bw[i];
            }
            float cw = sqrtf(aw * aw + bw * bw);
            /* Only where the local tone is skin (not hair falling over the forehead): a hue
             * of 10 to 90 degrees, b >= a tan 10 with a >= 0 (no arc tangent per pixel). */
            if (cw < 8 || aw < 0 || bw < 0.17632698f * aw) continue;
            float cm = sqrtf(am[i] * am[i] + bm[i] * bm[i]);
            float ex = Lm[i] - lw;
            float wl = ts_minf(1, ts_maxf(0, (ex - 2) / 6));
            float wc = ts_minf(1, ts_maxf(0, (cw - cm) / (0.25f * cw)));
            float k = j->f * wl * wc * W->skin[i];
            if (k <= 0) continue;
            touch(W, out, j->touched, i);
            out[0][i] -= k * ex;
            out[1][i] += k * (aw - am[i]);
            out[2][i] += k * (bw - bm[i]);
            if (wl * wc > 0.5f) shine_area += W->skin[i];
        }
    }
    j->skin_area[first > 0] = skin_area, j->shine_area[first > 0] = shine_area;
}

static ts_status retouch_full(ts_render_job *job, const retouch_params *p) {
    ts_ctx *ctx = job->ctx;
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
    float *planes = NULL;
    /* The run's memory: the planes below and what the steps after them need at most at once
     * (the blemish finder's: its fields, labels and a blur's scratch). */
    arena ar;
    int ar_fail = arena_init(&ar, sizeof(float) * n * 22 + 3 * n + 4096);
    uint8_t *skin8 = ar_fail ? NULL : arena_take(&ar, n),
            *touched = ar_fail ? NULL : arena_take(&ar, n);
    /* The canvases in memory (references, no copy where they are already), read in place. */
    VipsImage *mrgb = vips_image_copy_memory(job->rgb);
    VipsImage *mfg = job->fg ? vips_image_copy_memory(job->fg) : NULL;
    if (!mrgb || (job->fg && !mfg)) {
        st = ts_fail(ctx, TS_ERR_INTERNAL, "retouch: %s", vips_error_buffer());
        goto out;
    }
    if (mrgb->Bands != 3 || mrgb->BandFmt != VIPS_FORMAT_FLOAT ||
        (mfg && (mfg->Bands != 3 || mfg->BandFmt != VIPS_FORMAT_FLOAT || mfg->Xsize != CW ||
                 mfg->Ysize != CH))) {
        st = ts_fail(ctx, TS_ERR_ARGUMENT, "retouch: the canvas must be 3-band float");
        goto out;
    }
    const float *crgb = (const float *)VIPS_IMAGE_ADDR(mrgb, 0, 0);
    /* Planes: L a b, L' a' b' (edited), skin, core, two scratch planes; which pixels changed. */
    planes = ar_fail ? NULL : arena_take(&ar, sizeof(float) * n * 10);
    if (!planes || !skin8 || !touched) {
        st = ts_fail(ctx, TS_ERR_NOMEM, "retouch: out of memory");
        goto out;
    }
    memset(touched, 0, n);
    work W = {w,
              h,
              n,
              ied,
              {planes, planes + n, planes + 2 * n},
              planes + 6 * n,
              planes + 7 * n,
              planes + 8 * n,
              planes + 9 * n,
              &ar,
              {{{0}}}};
    float *out[3] = {planes + 3 * n, planes + 4 * n, planes + 5 * n};
    ts_face_mesh mesh;
    memset(&mesh, 0, sizeof mesh);
    for (int i = 0; i < TS_MESH_POINTS; i++)
        mesh.pts[i][0] = job->lm[i][0] - x0, mesh.pts[i][1] = job->lm[i][1] - y0;
    for (int e = 0; e < 2; e++)
        for (int k = 0; k < UPPER_LID_N; k++)
            W.lid[e][k][0] = mesh.pts[upper_lid[e][k]][0],
            W.lid[e][k][1] = mesh.pts[upper_lid[e][k]][1];
    /* the skin mask as tone and light measured it (kept on the job: not made again) */
    st = ts_render_region_mask(job, TS_REGION_SKIN, x0, y0, w, h, skin8);
    if (st) goto out;
    to_lab_job tl = {crgb + ((size_t)y0 * CW + x0) * 3, (size_t)CW * 3, skin8, &W};
    ts_render_split2(to_lab_range, &tl, (size_t)h, 64);
    /* The skin core: well inside the skin, away from eyes, brows, lips, nostrils and the face's
     * edge, where statistics are not polluted by them. */
    if (blur_n(&W.core, (const float *const *)&W.skin, NULL, 1, w, h, ts_maxf(1, 0.02f * ied), 0,
               NULL, &ar))
        goto nomem;
    for (size_t i = 0; i < n; i++) W.core[i] = W.core[i] > 0.97f ? 1.f : 0.f;

    int healed = 0;
    if (p->blemishes) {
        healed = heal_blemishes(&W, out, ts_minf(1, 3 * p->strength), touched);
        if (healed < 0) goto nomem;
    }

    /* Under-eye darkness: lift L* (and move a*, b*) toward the cheek's, a low-frequency change.
     * All of it happens within a blur's reach of the two masks, so it is worked out on that part
     * of the box alone. */
    float f_eye = p->strength * p->under_eye, lift_max = 0;
    if (f_eye > 0) {
        float poly[2][18][2], px0 = INFINITY, py0 = INFINITY, px1 = -INFINITY, py1 = -INFINITY;
        for (int e = 0; e < 2; e++)
            for (int k = 0; k < 9; k++) {
                poly[e][k][0] = mesh.pts[under_eye_upper[e][k]][0];
                poly[e][k][1] = mesh.pts[under_eye_upper[e][k]][1];
                poly[e][17 - k][0] = mesh.pts[under_eye_lower[e][k]][0];
                poly[e][17 - k][1] = mesh.pts[under_eye_lower[e][k]][1];
            }
        for (int e = 0; e < 2; e++)
            for (int k = 0; k < 18; k++) {
                px0 = ts_minf(px0, poly[e][k][0]), px1 = ts_maxf(px1, poly[e][k][0]);
                py0 = ts_minf(py0, poly[e][k][1]), py1 = ts_maxf(py1, poly[e][k][1]);
            }
        float sig_u = ts_maxf(1, 0.03f * ied);
        int reach = blur_reach(sig_u, w, h);
        /* the masks' pixels, clipped to the box; the blurred masks reach one blur further, and
         * what is blurred there reads one more */
        int qx0 = (int)ts_maxf(0, ts_minf(w, floorf(px0))),
            qx1 = (int)ts_maxf(0, ts_minf(w, ceilf(px1) + 1));
        int qy0 = (int)ts_maxf(0, ts_minf(h, floorf(py0))),
            qy1 = (int)ts_maxf(0, ts_minf(h, ceilf(py1) + 1));
        win r = window_around(w, h, qx0, qy0, qx1, qy1, 2 * reach + 2);
        size_t m = (size_t)r.w * r.h;
        arena_mark mark = arena_at(&ar);
        float *buf = arena_take(&ar, sizeof(float) * m * 9);
        if (!buf) goto nomem;
        float *mask = buf, *Lu = buf + m, *au = buf + 2 * m, *bu = buf + 3 * m, *wt = buf + 4 * m;
        float *lab_r[3] = {buf + 5 * m, buf + 6 * m, buf + 7 * m}, *tmp_r = buf + 8 * m;
        memset(mask, 0, sizeof(float) * m);
        for (int e = 0; e < 2; e++) fill_polygon(mask, w, h, r, (const float(*)[2])poly[e], 18);
        for (int c = 0; c < 3; c++) window_copy(lab_r[c], W.lab[c], w, r);
        window_copy(wt, W.skin, w, r);
        if (blur(mask, r.w, r.h, sig_u, &ar) ||
            nblur3((float *const[3]){Lu, au, bu}, lab_r, wt, r.w, r.h, sig_u, tmp_r, &ar))
            goto nomem;
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
            for (int y = 0; y < r.h; y++)
                for (int x = 0; x < r.w; x++) {
                    size_t j = (size_t)y * r.w + x, i = (size_t)(r.y0 + y) * w + r.x0 + x;
                    if (((float)(r.x0 + x) < mx) != (eye_x < mx) || mask[j] <= 0) continue;
                    float m = ts_minf(1, 1.5f * mask[j]) * W.skin[i], def = ref[0] - Lu[j];
                    if (m <= 0 || def <= 0) continue;
                    float k = f_eye * m, dL = k * def, wc = ts_minf(1, def / 3);
                    touch(&W, out, touched, i);
                    out[0][i] += dL;
                    out[1][i] += k * wc * (ref[1] - au[j]);
                    out[2][i] += k * wc * (ref[2] - bu[j]);
                    if (dL > lift_max) lift_max = dL;
                }
        }
        arena_release(&ar, mark);
    }

    /* Shine: brighter and less saturated than the local skin tone. */
    float f_shine = p->strength * p->shine;
    double shine_area = 0, skin_area = 0;
    if (f_shine > 0) {
        arena_mark mark = arena_at(&ar);
        float sig_w = 0.12f * ied, sig_m = ts_maxf(1.5f, 0.015f * ied);
        /* The local tone, a wide normalised convolution: reduced, it is finished on the skin
         * pixels alone (shine_range) instead of as three full planes. */
        int wide = blur_reduced(sig_w, w, h);
        float *sh = arena_take(&ar, sizeof(float) * n * (wide ? 2 : 5));
        if (!sh) goto nomem;
        float *am = sh, *bm = sh + n, *Lm = W.tmp2, *Lw = NULL, *aw = NULL, *bw = NULL;
        if (blur_n((float *const[3]){Lm, am, bm}, (const float *const *)W.lab, NULL, 3, w, h, sig_m,
                   0, NULL, &ar))
            goto nomem;
        coarse cw;
        if (wide) {
            const float *in[4] = {W.core, W.lab[0], W.lab[1], W.lab[2]},
                        *by[4] = {NULL, W.core, W.core, W.core};
            if (blur_coarse(&cw, in, by, 4, w, h, sig_w, &ar)) goto nomem;
        } else {
            Lw = sh + 2 * n, aw = sh + 3 * n, bw = sh + 4 * n;
            if (nblur3((float *const[3]){Lw, aw, bw}, W.lab, W.core, w, h, sig_w, W.tmp, &ar))
                goto nomem;
        }
        shine_job sj = {&W, out, touched,           Lw,      aw,     bw,    Lm,
                        am, bm,  wide ? &cw : NULL, f_shine, {0, 0}, {0, 0}};
        ts_render_split2(shine_range, &sj, (size_t)h, 64);
        skin_area = sj.skin_area[0] + sj.skin_area[1];
        shine_area = sj.shine_area[0] + sj.shine_area[1];
        arena_release(&ar, mark);
    }
    /* Back to sRGB where something changed; add the same change to the foreground
                        colour. */
    size_t n_touched = 0;
    while (n_touched < n && !touched[n_touched]) n_touched++;
    if (n_touched < n) {
        back_job bj = {out, W.lab, touched, crgb + ((size_t)y0 * CW + x0) * 3, (size_t)CW * 3, w};
        ts_render_split2(back_range, &bj, (size_t)h, 64);
        /* The job holds the canvases in memory from here (the references read above), so the
         * map reads the pixels read above and, where nothing else holds them, writes in place
         * instead of filling two new canvases. */
        ts_render_replace(&job->rgb, mrgb), mrgb = NULL;
        if (mfg) ts_render_replace(&job->fg, mfg), mfg = NULL;
        put_job pj = {crgb, out, W.lab, touched, CW, x0, y0, w, h};
        /* the rows from the first changed pixel's to the last's */
        size_t last = n - 1;
        while (!touched[last]) last--;
        st = ts_render_map_px_rows(job, put_px, &pj, y0 + (int)(n_touched / w),
                                   y0 + (int)(last / w) + 1, "retouch");
        if (st) goto out;
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
    if (mrgb) g_object_unref(mrgb);
    if (mfg) g_object_unref(mfg);
    if (!ar_fail) arena_done(&ar);
    return st;
}

/* ---- large faces ---------------------------------------------------------------------- */

/* From this eye distance on the canvas (pixels), retouch works on a half-size copy of the face
 * and adds its change, enlarged, to the canvas. Its planes take ~90 bytes per pixel of the face's
 * box: 263 MB for an 8x10 print at 2400 x 3000 (eye distance ~600 px), which alone took
 * `trueshot make`'s peak from ~550 to ~780 MB. At half size the face is as large as on the
 * 1080-1350 px portraits (eye distances 230-300 px) the stage is tuned and tested on, and the
 * change it makes is low in frequency (a blemish's colour, under-eye darkness, shine): added back
 * enlarged, the canvas keeps its own fine texture under it, as the full-size heal does. */
#define RETOUCH_HALF_FROM 480.f

/* The half-size copy: each pixel the mean of a 2 x 2 block of src (3-band float, sw wide) from
 * (x0, y0), the block clamped at the canvas's sw x sh edges. */
typedef struct half_job {
    const float *src;
    float *dst;
    int sw, sh, x0, y0, w;
} half_job;

static void half_range(size_t first, size_t n, void *user) {
    const half_job *j = user;
    for (size_t y = first; y < first + n; y++) {
        int ya = j->y0 + 2 * (int)y, yb = ya + 1 < j->sh ? ya + 1 : ya;
        const float *ra = j->src + (size_t)ya * j->sw * 3, *rb = j->src + (size_t)yb * j->sw * 3;
        float *o = j->dst + y * (size_t)j->w * 3;
        for (int x = 0; x < j->w; x++) {
            int xa = j->x0 + 2 * x, xb = xa + 1 < j->sw ? xa + 1 : xa;
            for (int c = 0; c < 3; c++)
                o[3 * x + c] =
                    0.25f * (ra[3 * xa + c] + ra[3 * xb + c] + rb[3 * xa + c] + rb[3 * xb + c]);
        }
    }
}

/* The change made at half size (edited - copy, w x h), enlarged bilinearly, added to the
 * canvas's pixels (rgb and fg alike) over the box it covers, within the skin as the full-size
 * stage sees it (skin: the box's mask, bw wide; the enlargement would reach a pixel past it). */
typedef struct add_job {
    const float *d; /* w x h x 3 */
    int w, h, x0, y0, cw;
    const uint8_t *skin;
    int bw;
} add_job;

static void add_px(const float *in, float *o, size_t first, size_t n, void *user) {
    const add_job *j = user;
    for (size_t i = first; i < first + n; i++) {
        int x = (int)(i % (size_t)j->cw), y = (int)(i / (size_t)j->cw);
        float sk = j->skin[(size_t)(y - j->y0) * j->bw + (x - j->x0)] * (1 / 255.f);
        if (sk <= 0) {
            if (o != in) memcpy(o + 3 * i, in + 3 * i, sizeof(float) * 3);
            continue;
        }
        /* the canvas pixel's centre in the half-size copy's pixels */
        float u = (x - j->x0 + 0.5f) * 0.5f - 0.5f, v = (y - j->y0 + 0.5f) * 0.5f - 0.5f;
        u = ts_maxf(0, ts_minf((float)(j->w - 1), u)),
        v = ts_maxf(0, ts_minf((float)(j->h - 1), v));
        int u0 = (int)u, v0 = (int)v, u1 = u0 + 1 < j->w ? u0 + 1 : u0,
            v1 = v0 + 1 < j->h ? v0 + 1 : v0;
        float fu = u - u0, fv = v - v0;
        const float *p00 = j->d + ((size_t)v0 * j->w + u0) * 3,
                    *p01 = j->d + ((size_t)v0 * j->w + u1) * 3,
                    *p10 = j->d + ((size_t)v1 * j->w + u0) * 3,
                    *p11 = j->d + ((size_t)v1 * j->w + u1) * 3;
        for (int c = 0; c < 3; c++) {
            float top = p00[c] + fu * (p01[c] - p00[c]), bot = p10[c] + fu * (p11[c] - p10[c]);
            float d = sk * (top + fv * (bot - top));
            o[3 * i + c] = d == 0 ? in[3 * i + c] : ts_minf(255, ts_maxf(0, in[3 * i + c] + d));
        }
    }
}

/* Retouch of a large face: on a half-size copy of the canvas around it (what the stage reads,
 * with room for its blurs), its change enlarged and added (RETOUCH_HALF_FROM). */
static ts_status retouch_half(ts_render_job *job, const retouch_params *p) {
    ts_ctx *ctx = job->ctx;
    int CW = job->rgb->Xsize, CH = job->rgb->Ysize;
    float bx0 = INFINITY, by0 = INFINITY, bx1 = -INFINITY, by1 = -INFINITY;
    for (int i = 0; i < 468; i++) {
        bx0 = ts_minf(bx0, job->lm[i][0]), bx1 = ts_maxf(bx1, job->lm[i][0]);
        by0 = ts_minf(by0, job->lm[i][1]), by1 = ts_maxf(by1, job->lm[i][1]);
    }
    /* more room than the stage's own box takes (0.15 eye distances), on even pixels */
    float margin = 0.25f * job->inter_eye + 8;
    int x0 = 2 * (int)(ts_maxf(0, floorf(bx0 - margin)) / 2),
        y0 = 2 * (int)(ts_maxf(0, floorf(by0 - margin)) / 2);
    int x1 = (int)ts_minf(CW, ceilf(bx1 + margin)), y1 = (int)ts_minf(CH, ceilf(by1 + margin));
    if (x1 - x0 < 16 || y1 - y0 < 16) return TS_OK; /* the face is off the canvas */
    int w = (x1 - x0 + 1) / 2, h = (y1 - y0 + 1) / 2;
    size_t bytes = sizeof(float) * (size_t)w * h * 3;
    ts_render_job hj = {.ctx = ctx, .photo = job->photo, .face = job->face, .matte = job->matte};
    hj.inter_eye = 0.5f * job->inter_eye;
    for (int i = 0; i < TS_LANDMARKS; i++)
        for (int c = 0; c < 2; c++)
            hj.lm[i][c] = (job->lm[i][c] - (c ? y0 : x0) + 0.5f) * 0.5f - 0.5f;
    /* the frame transform, for what reads it: photo -> the half-size copy */
    for (int r = 0; r < 2; r++) {
        double o = r ? y0 : x0;
        hj.m[3 * r + 0] = 0.5 * job->m[3 * r + 0], hj.m[3 * r + 1] = 0.5 * job->m[3 * r + 1];
        hj.m[3 * r + 2] = 0.5 * (job->m[3 * r + 2] - o + 0.5) - 0.5;
    }
    ts_status st = TS_OK;
    float *orig = ts_render_big_alloc(bytes), *d = NULL;
    VipsImage *src[2] = {job->rgb, job->fg}, *dst[2] = {NULL, NULL};
    for (int k = 0; k < 2 && orig; k++) {
        if (!src[k]) continue;
        VipsImage *mem = vips_image_copy_memory(src[k]); /* a reference: canvases are in memory */
        float *buf = mem ? ts_render_big_alloc(bytes) : NULL;
        if (buf) {
            half_job hs = {(const float *)VIPS_IMAGE_ADDR(mem, 0, 0), buf, CW, CH, x0, y0, w};
            ts_render_split2(half_range, &hs, (size_t)h, 64);
            dst[k] = ts_render_wrap_big(buf, bytes, w, h, 3, VIPS_FORMAT_FLOAT);
            if (k == 0 && dst[k]) memcpy(orig, buf, bytes);
        }
        if (mem) g_object_unref(mem);
        if (!dst[k]) {
            st = ts_fail(ctx, TS_ERR_NOMEM, "retouch: out of memory");
            break;
        }
    }
    if (!orig) st = ts_fail(ctx, TS_ERR_NOMEM, "retouch: out of memory");
    hj.rgb = dst[0], hj.fg = dst[1];
    if (!st) st = retouch_full(&hj, p);
    if (!st) {
        VipsImage *mem = vips_image_copy_memory(hj.rgb);
        if (!mem) st = ts_fail(ctx, TS_ERR_INTERNAL, "retouch: %s", vips_error_buffer());
        if (mem) {
            /* the change, in place of the copy it was made on */
            const float *e = (const float *)VIPS_IMAGE_ADDR(mem, 0, 0);
            size_t any = 0;
            for (size_t i = 0; i < (size_t)w * h * 3; i++)
                orig[i] = e[i] - orig[i], any += orig[i] != 0;
            g_object_unref(mem);
            d = orig;
            uint8_t *skin = any ? malloc((size_t)(x1 - x0) * (y1 - y0)) : NULL;
            if (any && !skin) st = ts_fail(ctx, TS_ERR_NOMEM, "retouch: out of memory");
            if (skin)
                st = ts_render_region_mask(job, TS_REGION_SKIN, x0, y0, x1 - x0, y1 - y0, skin);
            add_job aj = {d, w, h, x0, y0, CW, skin, x1 - x0};
            if (skin && !st) st = ts_render_map_px_box(job, add_px, &aj, x0, y0, x1, y1, "retouch");
            free(skin);
        }
    }
    if (!st) {
        for (int i = 0; i < hj.n_edits; i++) ts_render_edit(job, "%s", hj.edits[i]);
        for (int i = 0; i < hj.n_notes; i++) ts_render_note(job, "%s", hj.notes[i]);
    }
    ts_render_job_clear(&hj);
    ts_render_big_free(orig);
    return st;
}

static ts_status retouch_run(ts_render_job *job, const void *params) {
    const retouch_params *p = params;
    if (p->strength <= 0 || !job->rgb || job->inter_eye <= 0) return TS_OK;
    return job->inter_eye >= RETOUCH_HALF_FROM ? retouch_half(job, p) : retouch_full(job, p);
}

const ts_stage ts_stage_retouch = {"retouch", 1, retouch_table, sizeof(retouch_params),
                                   retouch_run};
