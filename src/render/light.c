/* light: a fill light for hard side light, placed with the face mesh.
 *
 * The skin's mean luminance is measured on each side of the face's midline (the line through
 * the nose bridge, mesh point 168, and the chin, 152). When one side is clearly darker, it is
 * lifted by a smooth gain map in linear light, as a reflector on that side would: a broad ramp
 * across the face (nothing on the lit side, rising through the midline to full on the shadow
 * cheek), times a soft mask of the whole face that reaches a little beyond the mesh (ears, jaw,
 * the hairline), times the person's alpha so the old background is not lit. The gain is solved
 * from the measured sides so that at strength s the log ratio of the sides shrinks by s (1 makes
 * them equal); the onset is soft, so a nearly balanced face is left alone and there is no jump
 * at the threshold. rgb and fg get the same map. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "face/geometry.h"
#include "face/regions.h"
#include "render/render.h"
#include "render/srgb.h"

typedef struct light_params {
    float strength; /* 0 off, 1 sides made equal */
    float balanced; /* dark / bright ratio from which the face counts as evenly lit */
    float max_gain; /* most the shadow side is lifted, in stops */
} light_params;

static const ts_param light_table[] = {
    TS_PARAM_F32(light_params, strength,
                 "fill light on the shadow side: 0 off, 1 makes both sides of the face equal", 0, 1,
                 0.5f),
    TS_PARAM_F32(light_params, balanced,
                 "luminance ratio of the darker to the brighter side above which the face counts "
                 "as evenly lit (0.85 is about 5 L* apart)",
                 0.5f, 1, 0.85f),
    TS_PARAM_F32(light_params, max_gain, "most the shadow side is lifted, in stops", 0, 3, 1.5f),
    TS_PARAM_END};

static float smoothstep(float a, float b, float x) {
    float t = ts_minf(ts_maxf((x - a) / (b - a), 0), 1);
    return t * t * (3 - 2 * t);
}

/* The gain map: 1 + (G - 1) * shape, the shape (ramp * reach * alpha, 0..1) kept over the
 * face's box (bx0, by0, bw x bh on a canvas w wide); 0 outside it. */
typedef struct light_map {
    int w, bx0, by0, bw;
    const float *shape;
    float g; /* G - 1 */
} light_map;

#ifdef TS_SRGB_HAVE_AVX2
/* light_px eight pixels at a time (the same floats) for [first, first + n rounded down to 8);
 * returns how many. */
TS_SRGB_AVX2 static size_t light_px8(float g, const float *in, float *out, size_t first, size_t n,
                                     const float *shape) {
    size_t i = first, end = first + n / 8 * 8;
    for (; i < end; i += 8) {
        const float *p = in + i * 3;
        float *q = out + i * 3;
        __m256 k = _mm256_loadu_ps(shape + (i - first));
        __m256 on = _mm256_cmp_ps(k, _mm256_setzero_ps(), _CMP_GT_OQ);
        if (!_mm256_movemask_ps(on)) {
            if (q != p) memcpy(q, p, 24 * sizeof *q);
            continue;
        }
        __m256 v[3], gain = _mm256_add_ps(_mm256_set1_ps(1), _mm256_mul_ps(_mm256_set1_ps(g), k));
        ts_load3x8(p, v);
        for (int c = 0; c < 3; c++)
            v[c] =
                _mm256_blendv_ps(v[c], ts_srgb_enc8(_mm256_mul_ps(gain, ts_srgb_dec8(v[c]))), on);
        ts_store3x8(q, v);
    }
    return i - first;
}
#endif

/* Pixels [first, first + n) of the gain map, shape[0] the first's. */
static void light_px(const light_map *lm, const float *in, float *out, size_t first, size_t n,
                     const float *shape) {
    size_t i = first, end = first + n;
#ifdef TS_SRGB_HAVE_AVX2
    if (ts_srgb_avx2) i += light_px8(lm->g, in, out, first, n, shape);
#endif
#ifdef __SSE2__
    /* four pixels at a time: the same floats as the loop below */
    for (; i + 4 <= end; i += 4) {
        const float *p = in + i * 3;
        float *q = out + i * 3;
        __m128 k = _mm_loadu_ps(shape + (i - first));
        __m128 on = _mm_cmpgt_ps(k, _mm_setzero_ps());
        if (!_mm_movemask_ps(on)) {
            if (q != p) memcpy(q, p, 12 * sizeof *q);
            continue;
        }
        __m128 v[3], gain = _mm_add_ps(_mm_set1_ps(1), _mm_mul_ps(_mm_set1_ps(lm->g), k));
        ts_load3x4(p, v);
        for (int c = 0; c < 3; c++) {
            __m128 o = ts_srgb_enc4(_mm_mul_ps(gain, ts_srgb_dec4(v[c])));
            v[c] = _mm_or_ps(_mm_and_ps(on, o), _mm_andnot_ps(on, v[c]));
        }
        ts_store3x4(q, v);
    }
#endif
    for (; i < end; i++) {
        float k = shape[i - first];
        const float *p = in + i * 3;
        float *q = out + i * 3;
        if (k <= 0) { /* untouched pixels keep their exact values */
            q[0] = p[0], q[1] = p[1], q[2] = p[2];
            continue;
        }
        float gain = 1 + lm->g * k;
        for (int c = 0; c < 3; c++) q[c] = ts_srgb_enc(gain * ts_srgb_dec(p[c]));
    }
}

static void light_op(const float *in, float *out, size_t first, size_t n, void *user) {
    const light_map *lm = user;
    size_t w = (size_t)lm->w, end = first + n;
    /* row by row: outside the box the map is 1, the pixel kept */
    for (size_t i = first; i < end;) {
        size_t y = i / w, x = i % w, row_end = (y + 1) * w < end ? (y + 1) * w : end;
        size_t a = y * w + (size_t)lm->bx0, b = a + (size_t)lm->bw;
        a = a < i ? i : a > row_end ? row_end : a;
        b = b < a ? a : b > row_end ? row_end : b;
        if (out != in) {
            memcpy(out + 3 * i, in + 3 * i, 3 * sizeof *out * (a - i));
            memcpy(out + 3 * b, in + 3 * b, 3 * sizeof *out * (row_end - b));
        }
        if (b > a)
            light_px(lm, in, out, a, b - a,
                     lm->shape + (y - (size_t)lm->by0) * (size_t)lm->bw + (a - y * w) -
                         (size_t)lm->bx0);
        (void)x;
        i = row_end;
    }
}

/* The face mask feathered by feather pixels, over bw x bh: on a grid k = feather / 4 times
 * coarser (so wide a feather leaves nothing finer than a few pixels; the mask's own 4 x 4
 * supersampling and Gaussian, at that scale), read back bilinearly where it is needed
 * (reach_at): the same soft reach, without rasterising and blurring every pixel of the box.
 * k is 1 for a narrow feather: the mask at full resolution. */
typedef struct soft_mask {
    uint8_t *m;
    int k, sw, sh;
} soft_mask;

static int soft_face_mask(ts_render_job *job, const ts_face_mesh *mesh, int bw, int bh,
                          float feather, soft_mask *sm) {
    int k = (int)(feather / 4);
    k = k < 1 ? 1 : k > 8 ? 8 : k;
    sm->k = k, sm->sw = (bw + k - 1) / k, sm->sh = (bh + k - 1) / k;
    sm->m = malloc((size_t)sm->sw * sm->sh);
    if (!sm->m || ts_face_region_mask(mesh, job->ctx->geom, TS_REGION_FACE, sm->sw, sm->sh,
                                      1.0f / k, feather / k, sm->m))
        return -1;
    return 0;
}

/* Where the bilinear read of the soft mask falls along one axis of the box: for each box
 * column (or row) the two grid cells and the weight of the second. */
typedef struct soft_axis {
    int *i0, *i1;
    float *t;
} soft_axis;

static int soft_axis_make(soft_axis *a, int n, int k, int sn) {
    a->i0 = malloc(sizeof *a->i0 * (size_t)n), a->i1 = malloc(sizeof *a->i1 * (size_t)n);
    a->t = malloc(sizeof *a->t * (size_t)n);
    if (!a->i0 || !a->i1 || !a->t) return -1;
    for (int x = 0; x < n; x++) {
        float f = (x + 0.5f) / k - 0.5f;
        f = f < 0 ? 0 : f > sn - 1 ? sn - 1 : f;
        int x0 = (int)f;
        a->i0[x] = x0, a->i1[x] = x0 + 1 < sn ? x0 + 1 : x0, a->t[x] = f - x0;
    }
    return 0;
}

static void soft_axis_free(soft_axis *a) {
    free(a->i0), free(a->i1), free(a->t);
}

/* The soft face mask at box pixel (x, y) (0..255, rounded as a mask is). */
static inline float reach_at(const soft_mask *sm, const soft_axis *ax, const soft_axis *ay, int x,
                             int y) {
    if (sm->k == 1) return sm->m[(size_t)y * sm->sw + x];
    int sw = sm->sw, x0 = ax->i0[x], x1 = ax->i1[x];
    float tx = ax->t[x], ty = ay->t[y];
    const uint8_t *r0 = sm->m + (size_t)ay->i0[y] * sw, *r1 = sm->m + (size_t)ay->i1[y] * sw;
    float top = r0[x0] + tx * (r0[x1] - r0[x0]), bot = r1[x0] + tx * (r1[x1] - r1[x0]);
    return (uint8_t)(top + ty * (bot - top) + 0.5f);
}

/* The lit skin's luminance (lum, over the box; speculars, > 0.9, left out as -1) and its sum
 * and count on each side of the midline, for rows [first, first + n) of the face's box (into
 * the first or second half's sums: two threads take a half each). */
typedef struct sum_job {
    float *lum, *dec[2]; /* dec: a row of decoded pixels for each half */
    const uint8_t *skin;
    const float *px;
    int w, bw, bx0, by0;
    double ax, ay, nx, ny;
    double sum[2][2], cnt[2][2];
} sum_job;

#ifdef TS_SRGB_HAVE_AVX2
/* ts_srgb_dec of the n interleaved pixels at p into d, eight at a time; returns how many. */
TS_SRGB_AVX2 static int dec_px8(const float *p, float *d, int n) {
    int x = 0;
    for (; x + 8 <= n; x += 8) {
        __m256 v[3];
        ts_load3x8(p + 3 * x, v);
        for (int c = 0; c < 3; c++) v[c] = ts_srgb_dec8(v[c]);
        ts_store3x8(d + 3 * x, v);
    }
    return x;
}
#endif

static void sum_rows(size_t first, size_t n, void *user) {
    sum_job *j = user;
    int half = first > 0, w = j->w, bw = j->bw, bx0 = j->bx0, by0 = j->by0;
    double *sum = j->sum[half], *cnt = j->cnt[half];
    float *dec = j->dec[half];
    for (int y = by0 + (int)first; y < by0 + (int)(first + n); y++) {
        /* the row's skin, decoded (eight at a time where that is faster) */
        const uint8_t *sk = j->skin + (size_t)(y - by0) * bw;
        int xa = 0, xb = bw;
        while (xa < xb && sk[xa] < 250) xa++;
        while (xb > xa && sk[xb - 1] < 250) xb--;
        const float *row = j->px + ((size_t)y * w + bx0) * 3;
        int x = xa;
#ifdef TS_SRGB_HAVE_AVX2
        if (ts_srgb_avx2) x += dec_px8(row + 3 * xa, dec + 3 * xa, xb - xa);
#endif
        for (; x < xb; x++)
            for (int c = 0; c < 3; c++) dec[3 * x + c] = ts_srgb_dec(row[3 * x + c]);
        for (int x = bx0 + xa; x < bx0 + xb; x++) {
            size_t bi = (size_t)(y - by0) * bw + (x - bx0);
            if (j->skin[bi] < 250) continue;
            double u = (x + 0.5 - j->ax) * j->nx + (y + 0.5 - j->ay) * j->ny;
            const float *q = dec + 3 * (x - bx0);
            double lum = 0.2126 * q[0] + 0.7152 * q[1] + 0.0722 * q[2];
            j->lum[bi] = lum > 0.9 ? -1 : (float)lum;
            if (lum > 0.9) continue;
            int s = u > 0;
            sum[s] += lum, cnt[s]++;
        }
    }
}

/* The gain map's shape over rows [first, first + n) of the face's box, and the lit skin's
 * luminance weighted by it on each side of the midline (into sk[0] for the first half of the
 * rows, sk[1] for the second: two threads take a half each). */
typedef struct shape_job {
    float *shape;
    const uint8_t *skin;
    const float *lum, *alpha;
    const soft_mask *face;
    const soft_axis *fx, *fy;
    /* for the eight-at-a-time path: each row of the soft mask read bilinearly along the box's
     * columns (the first half of reach_at's arithmetic, once per grid row instead of once per
     * box row: k box rows share a grid row); NULL without it */
    const float *across;
    int w, bw, bx0, bx1, by0;
    double ax, ay, nx, ny, sign, half;
    double sk[2][2];
} shape_job;

#ifdef TS_SRGB_HAVE_AVX2
/* shape_rows on row y for the box's first columns, eight at a time (the same floats and sums,
 * in the same order), for a soft mask on a coarser grid; returns how many columns. */
TS_SRGB_AVX2 static int shape_row8(const shape_job *j, int y, double vy, double *sk) {
    int bw = j->bw, bx0 = j->bx0, by = y - j->by0, n = bw / 8 * 8;
    const float *top_row = j->across + (size_t)j->fy->i0[by] * bw;
    const float *bot_row = j->across + (size_t)j->fy->i1[by] * bw;
    const float *arow = j->alpha ? j->alpha + (size_t)y * j->w + bx0 : NULL;
    float *shape = j->shape + (size_t)by * bw;
    const uint8_t *skin = j->skin + (size_t)by * bw;
    const float *lum = j->lum + (size_t)by * bw;
    const __m256 ty = _mm256_set1_ps(j->fy->t[by]), one = _mm256_set1_ps(1);
    const __m256d ax = _mm256_set1_pd(j->ax), nx = _mm256_set1_pd(j->nx), vyd = _mm256_set1_pd(vy),
                  sign = _mm256_set1_pd(j->sign), half = _mm256_set1_pd(j->half),
                  h05 = _mm256_set1_pd(0.5);
    double uy = (y + 0.5 - j->ay) * j->ny;
    for (int x = 0; x < n; x += 8) {
        __m256 a = arow ? _mm256_loadu_ps(arow + x) : one;
        __m256d u[2];
        for (int h = 0; h < 2; h++) {
            __m256d xs = _mm256_add_pd(_mm256_set1_pd(bx0 + x + 4 * h), _mm256_setr_pd(0, 1, 2, 3));
            u[h] = _mm256_div_pd(
                _mm256_mul_pd(
                    sign, _mm256_add_pd(
                              _mm256_mul_pd(_mm256_sub_pd(_mm256_add_pd(xs, h05), ax), nx), vyd)),
                half);
        }
        __m256 uf = _mm256_set_m128(_mm256_cvtpd_ps(u[1]), _mm256_cvtpd_ps(u[0]));
        /* smoothstep(-0.35, 0.6, u) */
        __m256 t =
            _mm256_div_ps(_mm256_sub_ps(uf, _mm256_set1_ps(-0.35f)), _mm256_set1_ps(0.6f - -0.35f));
        t = _mm256_min_ps(_mm256_max_ps(t, _mm256_setzero_ps()), one);
        __m256 r =
            _mm256_mul_ps(_mm256_mul_ps(t, t),
                          _mm256_sub_ps(_mm256_set1_ps(3), _mm256_mul_ps(_mm256_set1_ps(2), t)));
        /* the soft mask, bilinearly (reach_at) */
        __m256 top = _mm256_loadu_ps(top_row + x), bot = _mm256_loadu_ps(bot_row + x);
        __m256 m = _mm256_cvtepi32_ps(_mm256_cvttps_epi32(_mm256_add_ps(
            _mm256_add_ps(top, _mm256_mul_ps(ty, _mm256_sub_ps(bot, top))), _mm256_set1_ps(0.5f))));
        __m256 reach = _mm256_min_ps(
            _mm256_mul_ps(_mm256_div_ps(m, _mm256_set1_ps(255.f)), _mm256_set1_ps(1.6f)), one);
        /* where alpha or the ramp is 0, so is k (both factors are finite) */
        _mm256_storeu_ps(shape + x, _mm256_mul_ps(_mm256_mul_ps(r, reach), a));
        /* the lit skin's sums, in column order, over the lanes that are skin */
        __m256i sv = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(skin + x)));
        int on = _mm256_movemask_ps(_mm256_castsi256_ps(
            _mm256_cmpeq_epi32(sv, _mm256_max_epu32(sv, _mm256_set1_epi32(250)))));
        for (; on; on &= on - 1) {
            int l = x + __builtin_ctz((unsigned)on);
            if (shape[l] > 0 && lum[l] >= 0) {
                double uu = (bx0 + l + 0.5 - j->ax) * j->nx + uy;
                sk[uu > 0] += shape[l] * (double)lum[l];
            }
        }
    }
    return n;
}
#endif

static void shape_rows(size_t first, size_t n, void *user) {
    shape_job *j = user;
    double *sk = j->sk[first > 0];
    int w = j->w, bw = j->bw, bx0 = j->bx0, bx1 = j->bx1, by0 = j->by0;
    double ax = j->ax, ay = j->ay, nx = j->nx, ny = j->ny, sign = j->sign, half = j->half;
    for (int y = by0 + (int)first; y < by0 + (int)(first + n); y++) {
        double vy = (y + 0.5 - ay) * ny;
        int x = bx0;
#ifdef TS_SRGB_HAVE_AVX2
        if (j->across) x += shape_row8(j, y, vy, sk);
#endif
        for (; x < bx1; x++) {
            size_t i = (size_t)y * w + x, bi = (size_t)(y - by0) * bw + (x - bx0);
            float a = j->alpha ? j->alpha[i] : 1, k = 0;
            /* the ramp and the reach only where alpha leaves anything to scale */
            if (a != 0) {
                double u = sign * ((x + 0.5 - ax) * nx + vy) / half;
                float r = smoothstep(-0.35f, 0.6f, (float)u);
                if (r != 0) {
                    float reach = ts_minf(1, reach_at(j->face, j->fx, j->fy, x - bx0, y - by0) /
                                                 255.f * 1.6f);
                    k = r * reach * a;
                }
            }
            j->shape[bi] = k;
            if (j->skin[bi] >= 250 && k > 0 && j->lum[bi] >= 0) {
                double uu = (x + 0.5 - ax) * nx + (y + 0.5 - ay) * ny;
                sk[uu > 0] += k * (double)j->lum[bi];
            }
        }
    }
}

static ts_status light_run(ts_render_job *job, const void *params) {
    const light_params *p = params;
    ts_status st = ts_render_colour_canvas(job, "light");
    if (st) return st;
    VipsImage *im = job->rgb;
    if (p->strength <= 0) return TS_OK;
    int w = im->Xsize, h = im->Ysize;
    const float(*L)[2] = job->lm;
    /* The midline, and the unit normal pointing to the image's right. */
    double ax = L[168][0], ay = L[168][1], dx = L[152][0] - ax, dy = L[152][1] - ay;
    double len = hypot(dx, dy);
    if (!(len > 1)) return TS_OK;
    dx /= len, dy /= len;
    double nx = -dy, ny = dx;
    if (nx < 0) nx = -nx, ny = -ny;
    /* half widths of the face on each side: the cheek contour points 234 (image left for an
     * unmirrored photo) and 454 */
    double u234 = (L[234][0] - ax) * nx + (L[234][1] - ay) * ny;
    double u454 = (L[454][0] - ax) * nx + (L[454][1] - ay) * ny;
    double half_l = fmax(fabs(fmin(u234, u454)), 0.2 * job->inter_eye);
    double half_r = fmax(fabs(fmax(u234, u454)), 0.2 * job->inter_eye);

    /* The masks are made over a box around the face, wide enough for the feather (they cost
     * by the pixel); the map is 0 outside it. */
    float feather = ts_maxf(1, 0.33f * job->inter_eye);
    float fx0 = INFINITY, fy0 = INFINITY, fx1 = -INFINITY, fy1 = -INFINITY;
    for (int i = 0; i < TS_LANDMARKS; i++) {
        fx0 = ts_minf(fx0, L[i][0]), fx1 = ts_maxf(fx1, L[i][0]);
        fy0 = ts_minf(fy0, L[i][1]), fy1 = ts_maxf(fy1, L[i][1]);
    }
    int bx0 = (int)ts_maxf(0, floorf(fx0 - 3.5f * feather));
    int by0 = (int)ts_maxf(0, floorf(fy0 - 3.5f * feather));
    int bx1 = (int)ts_minf(w, ceilf(fx1 + 3.5f * feather));
    int by1 = (int)ts_minf(h, ceilf(fy1 + 3.5f * feather));
    if (bx1 - bx0 < 8 || by1 - by0 < 8) return TS_OK;
    int bw = bx1 - bx0, bh = by1 - by0;
    size_t bn = (size_t)bw * bh;
    ts_face_mesh mesh;
    memset(&mesh, 0, sizeof mesh);
    for (int i = 0; i < TS_LANDMARKS; i++)
        mesh.pts[i][0] = L[i][0] - bx0, mesh.pts[i][1] = L[i][1] - by0;
    uint8_t *skin = ts_render_big_alloc(bn);
    soft_mask face = {NULL, 1, 0, 0};
    soft_axis fax = {NULL, NULL, NULL}, fay = {NULL, NULL, NULL};
    /* read in place: frame leaves the canvas in memory */
    VipsImage *mem = vips_image_copy_memory(im);
    VipsImage *amem = job->alpha ? vips_image_copy_memory(job->alpha) : NULL;
    const float *px = mem ? (const float *)VIPS_IMAGE_ADDR(mem, 0, 0) : NULL;
    const float *alpha = amem && amem->BandFmt == VIPS_FORMAT_FLOAT && amem->Bands == 1
                             ? (const float *)VIPS_IMAGE_ADDR(amem, 0, 0)
                             : NULL;
    float *shape = ts_render_big_alloc(bn * sizeof *shape),
          *lum = ts_render_big_alloc(bn * sizeof *lum);
    float *dec = malloc(sizeof *dec * 6 * (size_t)bw);
    st = TS_OK;
    if (!skin || !px || !shape || !lum || !dec || (job->alpha && !alpha)) {
        st = ts_fail(job->ctx, TS_ERR_NOMEM, "light: out of memory");
        goto done;
    }
    st = ts_render_region_mask(job, TS_REGION_SKIN, bx0, by0, bw, bh, skin);
    if (st) goto done;
    /* Skin luminance by side, speculars left out (they are bright on the lit side only). */
    sum_job uj = {
        lum, {dec, dec + 3 * (size_t)bw}, skin, px, w, bw, bx0, by0, ax, ay, nx, ny, {{0}}, {{0}}};
    ts_render_split2(sum_rows, &uj, (size_t)bh, 64);
    double sum[2] = {uj.sum[0][0] + uj.sum[1][0], uj.sum[0][1] + uj.sum[1][1]};
    double cnt[2] = {uj.cnt[0][0] + uj.cnt[1][0], uj.cnt[0][1] + uj.cnt[1][1]};
    if (cnt[0] < 50 || cnt[1] < 50) goto done; /* profile: one side is not seen */
    double m[2] = {sum[0] / cnt[0], sum[1] / cnt[1]};
    int dark = m[0] < m[1] ? 0 : 1;
    double ratio = m[dark] / fmax(m[1 - dark], 1e-6);
    /* A soft onset: full strength from 0.1 below the balance threshold. */
    double s = p->strength * smoothstep(p->balanced, p->balanced - 0.1f, (float)ratio);
    if (s <= 0.001) goto done;
    double half = dark ? half_r : half_l, sign = dark ? 1 : -1;
    /* The reach: the whole face mesh, softened by a third of the inter-eye distance and
     * stretched so it is full inside and fades out beyond the edge. */
    if (soft_face_mask(job, &mesh, bw, bh, feather, &face)) {
        st = TS_ERR_INTERNAL;
        goto done;
    }
    /* The shape, and the sums that give the new side means for a gain G:
     * mean'[k] = m[k] + (G - 1) * sk[k]. */
    if (face.k > 1 &&
        (soft_axis_make(&fax, bw, face.k, face.sw) || soft_axis_make(&fay, bh, face.k, face.sh))) {
        st = ts_fail(job->ctx, TS_ERR_NOMEM, "light: out of memory");
        goto done;
    }
    float *across = NULL;
#ifdef TS_SRGB_HAVE_AVX2
    if (ts_srgb_avx2 && face.k > 1 && (across = malloc(sizeof *across * face.sh * (size_t)bw)))
        for (int r = 0; r < face.sh; r++) {
            const uint8_t *m = face.m + (size_t)r * face.sw;
            for (int x = 0; x < bw; x++) {
                float a0 = m[fax.i0[x]], a1 = m[fax.i1[x]];
                across[(size_t)r * bw + x] = a0 + fax.t[x] * (a1 - a0);
            }
        }
#endif
    shape_job sj = {shape, skin, lum, alpha, &face, &fax, &fay, across, w,    bw,
                    bx0,   bx1,  by0, ax,    ay,    nx,   ny,   sign,   half, {{0, 0}, {0, 0}}};
    ts_render_split2(shape_rows, &sj, (size_t)bh, 64);
    free(across);
    double sk[2] = {sj.sk[0][0] + sj.sk[1][0], sj.sk[0][1] + sj.sk[1][1]};
    sk[0] /= cnt[0], sk[1] /= cnt[1];
    /* Target ratio t = ratio^(1 - s): (m_d + g sk_d) = t (m_b + g sk_b). */
    double t = pow(ratio, 1 - s), b = 1 - dark;
    double den = sk[dark] - t * sk[(int)b];
    if (!(den > 1e-9)) goto done;
    double g = (t * m[(int)b] - m[dark]) / den;
    g = fmin(g, pow(2, p->max_gain) - 1);
    if (g <= 0.005) goto done;
    /* the pixels are let go of first, so the map can write them in place */
    g_object_unref(mem), mem = NULL;
    light_map map = {w, bx0, by0, bw, shape, (float)g};
    st = ts_render_map_px_box(job, light_op, &map, bx0, by0, bx1, by1, "light");
    if (st == TS_OK)
        ts_render_edit(job,
                       "fill light on the %s side of the face (+%.1f stops; sides %.2f -> "
                       "%.2f)",
                       dark ? "image-right" : "image-left", log2(1 + g), ratio,
                       (m[dark] + g * sk[dark]) / (m[(int)b] + g * sk[(int)b]));
done:
    ts_render_big_free(skin), ts_render_big_free(shape), ts_render_big_free(lum);
    free(face.m), free(dec);
    soft_axis_free(&fax), soft_axis_free(&fay);
    if (mem) g_object_unref(mem);
    if (amem) g_object_unref(amem);
    return st;
}

const ts_stage ts_stage_light = {"light", 1, light_table, sizeof(light_params), light_run};
