/* The sRGB transfer by table, shared by the colour stages (tone, light): encoded 0..255 to
 * linear 0..1 and back, each a 4096-step table with linear interpolation (the inverse in the
 * square root of linear light, where the curve is nearly straight), and the same four pixels
 * at a time with SSE2, which give the same floats (the same operations in the same order; only
 * the table reads are scalar, SSE2 having no gather). */
#ifndef TS_RENDER_SRGB_H
#define TS_RENDER_SRGB_H

#include <stdint.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define TS_SRGB_LUT_N 4096
extern float ts_srgb_dec_lut[TS_SRGB_LUT_N + 2]; /* encoded in LUT_N steps -> linear */
extern float ts_srgb_enc_lut[TS_SRGB_LUT_N + 2]; /* sqrt(linear) in LUT_N steps -> encoded */

/* Fills the tables (once; thread-safe). Call before the functions below. */
void ts_srgb_init(void);

/* Set by ts_srgb_init where the processor has AVX2: the eight-pixel functions below may be
 * called (from functions compiled with TS_SRGB_AVX2). */
extern int ts_srgb_avx2;

/* fminf, fmaxf and a clamp that inline (the libm ones are calls without -ffast-math, costly in
 * per-pixel loops); the same as those for numbers (they differ only for NaN). */
static inline float ts_minf(float a, float b) {
    return b < a ? b : a;
}
static inline float ts_maxf(float a, float b) {
    return b > a ? b : a;
}
static inline float ts_clampf(float v, float lo, float hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

/* Encoded 0..255 (clamped) to linear 0..1. */
static inline float ts_srgb_dec(float v) {
    float t = ts_clampf(v, 0, 255) * (TS_SRGB_LUT_N / 255.f);
    int i = (int)t;
    return ts_srgb_dec_lut[i] + (t - i) * (ts_srgb_dec_lut[i + 1] - ts_srgb_dec_lut[i]);
}

/* Linear 0..1 (clamped) to encoded 0..255. */
static inline float ts_srgb_enc(float x) {
    float t = sqrtf(ts_clampf(x, 0, 1)) * TS_SRGB_LUT_N;
    int i = (int)t;
    return ts_srgb_enc_lut[i] + (t - i) * (ts_srgb_enc_lut[i + 1] - ts_srgb_enc_lut[i]);
}

#ifdef __SSE2__
/* lut at t (0 <= t <= its last index - 1), interpolated, for four values. */
static inline __m128 ts_lut4(const float *lut, __m128 t) {
    __m128i i = _mm_cvttps_epi32(t);
    __m128 f = _mm_sub_ps(t, _mm_cvtepi32_ps(i));
    int k[4];
    _mm_storeu_si128((__m128i *)k, i);
    __m128 lo = _mm_setr_ps(lut[k[0]], lut[k[1]], lut[k[2]], lut[k[3]]);
    __m128 hi = _mm_setr_ps(lut[k[0] + 1], lut[k[1] + 1], lut[k[2] + 1], lut[k[3] + 1]);
    return _mm_add_ps(lo, _mm_mul_ps(f, _mm_sub_ps(hi, lo)));
}

static inline __m128 ts_srgb_dec4(__m128 v) {
    v = _mm_min_ps(_mm_max_ps(v, _mm_setzero_ps()), _mm_set1_ps(255));
    return ts_lut4(ts_srgb_dec_lut, _mm_mul_ps(v, _mm_set1_ps(TS_SRGB_LUT_N / 255.f)));
}

static inline __m128 ts_srgb_enc4(__m128 x) {
    x = _mm_min_ps(_mm_max_ps(x, _mm_setzero_ps()), _mm_set1_ps(1));
    return ts_lut4(ts_srgb_enc_lut, _mm_mul_ps(_mm_sqrt_ps(x), _mm_set1_ps(TS_SRGB_LUT_N)));
}

/* Four interleaved 3-band pixels (12 floats) to one vector per band, and back. */
static inline void ts_load3x4(const float *p, __m128 v[3]) {
    for (int c = 0; c < 3; c++) v[c] = _mm_setr_ps(p[c], p[3 + c], p[6 + c], p[9 + c]);
}

static inline void ts_store3x4(float *d, const __m128 v[3]) {
    float q[3][4];
    for (int c = 0; c < 3; c++) _mm_storeu_ps(q[c], v[c]);
    for (int k = 0; k < 4; k++) d[3 * k] = q[0][k], d[3 * k + 1] = q[1][k], d[3 * k + 2] = q[2][k];
}
#endif

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
/* The same eight pixels at a time with AVX2, whose gathers read the tables (the build stays
 * portable: the functions that use these are compiled for AVX2 alone and called only where
 * ts_srgb_avx2 says it is there). The same floats again: the same operations in the same
 * order, no fused multiply-add. */
#include <immintrin.h>
#define TS_SRGB_HAVE_AVX2 1
#define TS_SRGB_AVX2 __attribute__((target("avx2")))

TS_SRGB_AVX2 static inline __m256 ts_lut8(const float *lut, __m256 t) {
    __m256i i = _mm256_cvttps_epi32(t);
    __m256 f = _mm256_sub_ps(t, _mm256_cvtepi32_ps(i));
    __m256 lo = _mm256_i32gather_ps(lut, i, 4), hi = _mm256_i32gather_ps(lut + 1, i, 4);
    return _mm256_add_ps(lo, _mm256_mul_ps(f, _mm256_sub_ps(hi, lo)));
}

TS_SRGB_AVX2 static inline __m256 ts_srgb_dec8(__m256 v) {
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(255));
    return ts_lut8(ts_srgb_dec_lut, _mm256_mul_ps(v, _mm256_set1_ps(TS_SRGB_LUT_N / 255.f)));
}

TS_SRGB_AVX2 static inline __m256 ts_srgb_enc8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_setzero_ps()), _mm256_set1_ps(1));
    return ts_lut8(ts_srgb_enc_lut,
                   _mm256_mul_ps(_mm256_sqrt_ps(x), _mm256_set1_ps(TS_SRGB_LUT_N)));
}

/* Eight interleaved 3-band pixels (24 floats) to one vector per band, and back: a transpose in
 * registers (six 4-float loads or stores and six shuffles; gathers cost more). */
TS_SRGB_AVX2 static inline void ts_load3x8(const float *p, __m256 v[3]) {
    __m256 m03 =
        _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(p)), _mm_loadu_ps(p + 12), 1);
    __m256 m14 =
        _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(p + 4)), _mm_loadu_ps(p + 16), 1);
    __m256 m25 =
        _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(p + 8)), _mm_loadu_ps(p + 20), 1);
    __m256 xy = _mm256_shuffle_ps(m14, m25, _MM_SHUFFLE(2, 1, 3, 2));
    __m256 yz = _mm256_shuffle_ps(m03, m14, _MM_SHUFFLE(1, 0, 2, 1));
    v[0] = _mm256_shuffle_ps(m03, xy, _MM_SHUFFLE(2, 0, 3, 0));
    v[1] = _mm256_shuffle_ps(yz, xy, _MM_SHUFFLE(3, 1, 2, 0));
    v[2] = _mm256_shuffle_ps(yz, m25, _MM_SHUFFLE(3, 0, 3, 1));
}

TS_SRGB_AVX2 static inline void ts_store3x8(float *d, const __m256 v[3]) {
    __m256 rxy = _mm256_shuffle_ps(v[0], v[1], _MM_SHUFFLE(2, 0, 2, 0));
    __m256 ryz = _mm256_shuffle_ps(v[1], v[2], _MM_SHUFFLE(3, 1, 3, 1));
    __m256 rzx = _mm256_shuffle_ps(v[2], v[0], _MM_SHUFFLE(3, 1, 2, 0));
    __m256 r03 = _mm256_shuffle_ps(rxy, rzx, _MM_SHUFFLE(2, 0, 2, 0));
    __m256 r14 = _mm256_shuffle_ps(ryz, rxy, _MM_SHUFFLE(3, 1, 2, 0));
    __m256 r25 = _mm256_shuffle_ps(rzx, ryz, _MM_SHUFFLE(3, 1, 3, 1));
    _mm_storeu_ps(d, _mm256_castps256_ps128(r03));
    _mm_storeu_ps(d + 4, _mm256_castps256_ps128(r14));
    _mm_storeu_ps(d + 8, _mm256_castps256_ps128(r25));
    _mm_storeu_ps(d + 12, _mm256_extractf128_ps(r03, 1));
    _mm_storeu_ps(d + 16, _mm256_extractf128_ps(r14, 1));
    _mm_storeu_ps(d + 20, _mm256_extractf128_ps(r25, 1));
}
#endif

#endif
