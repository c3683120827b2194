/* frame: level the eyes, then crop and scale the photo to a headshot template.
 *
 * Conventions (photographers' and platforms' guidance for headshots): the eyes sit about a third
 * to two fifths from the top; the head (chin to the top of the hair) fills about half of a
 * profile square and less of a portrait; there is always room above the head and the chin is
 * never cut. The head's height is estimated from the mesh: forehead point 10 to chin point 152
 * (the mesh stops below the hairline), times 1.35 for hair; with a matte, the top of the hair (or
 * hat) is measured on it, and a taller head gets more room (up to 1.25 times the estimate). When
 * the photo has too little room above the head the frame is moved and zoomed within limits, and
 * what is still missing is said in the report rather than invented; where the hair ends inside
 * the photo, the frame may reach past the photo's top instead, as the backdrop fills it. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
/* Loops compiled for AVX2 alone, called only where the processor has it (have_avx2). */
#include <immintrin.h>
#define TS_FRAME_AVX2 1
#define FRAME_AVX2 __attribute__((target("avx2")))
#endif

#include "core/internal.h"
#include "face/pose.h"
#include "matte/matte.h"
#include "render/render.h"
#include "verify/verify.h"

enum { CROP_SQUARE, CROP_4X5, CROP_2X3, CROP_8X10, CROP_TIGHT, CROP_COUNT };
static const char *const crop_names[] = {"square", "4x5", "2x3", "8x10", "tight", NULL};
/* Width / height of each template, and its conventional eye line and head size (fractions of
 * the frame height) used when a style leaves them at 0 ("auto"). */
static const double crop_aspect[CROP_COUNT] = {1.0, 0.8, 2.0 / 3.0, 0.8, 1.0};
static const double crop_eye[CROP_COUNT] = {0.40, 0.36, 0.33, 0.36, 0.42};
static const double crop_head[CROP_COUNT] = {0.52, 0.42, 0.34, 0.42, 0.66};
/* The largest roll of the eyes that frame levels (degrees). Beyond it the tilt is a pose: a
 * camera held askew rarely turns a frame by more than a few degrees, while a head tilted on
 * purpose leans 15-30 degrees (faceapi_sample1 reads 29). */
#define LEVEL_MAX_DEG 12.0
/* Enlargement adds no detail. Up to this factor a Lanczos enlargement still looks crisp at full
 * size; beyond it the report says the output is soft, and what size the photo really holds (it
 * still reads well at the sizes platforms show it: LinkedIn's 400 px). */
#define ENLARGE_SOFT 1.5
/* How far frame zooms past the template's head size to keep the frame's bottom and sides on the
 * photo (a 2x3 portrait from a landscape video frame needs ~2.6x): a closer crop than the
 * template's reads as a choice; a frame past the photo's edge needs pixels the photo lacks. */
#define ZOOM_MAX_HARD 3.0
/* How far the eyes may sit off the frame's centre line, as a fraction of its width, to keep its
 * sides on the photo (a person near one side of the photo), and the step frame moves them by:
 * tried once zooming 1.8x has not been enough, before zooming on. A headshot is centred; a tenth
 * of the width off centre still reads as centred, while a side continued past the photo would
 * be streaks of repeated pixels. */
#define SHIFT_MAX 0.1
#define SHIFT_STEP 0.005
/* How far the face (its mesh) may reach past the photo's side or bottom edge, as a fraction of
 * its width, before it counts as cut: the mesh's outline is a prediction, a pixel or two off. */
#define FACE_CUT_TOL 0.02

typedef struct frame_params {
    int crop;       /* template */
    int width;      /* output width in pixels; the height follows from the template */
    float eye_line; /* height of the eyes from the top, as a fraction of the frame height */
    float head;     /* head height (chin to top of hair) as a fraction of the frame height */
    int level;      /* turn the photo so the eyes are level */
} frame_params;

static const ts_param frame_table[] = {
    TS_PARAM_ENUM(frame_params, crop,
                  "template: square (profile pictures), 4x5, 2x3 portrait, "
                  "8x10 actor, tight square",
                  crop_names, CROP_SQUARE),
    TS_PARAM_INT(frame_params, width, "output width in pixels", 400, 8000, 1200),
    TS_PARAM_F32(frame_params, eye_line,
                 "eyes from the top, fraction of the height (0: the template's convention)", 0, 0.5,
                 0),
    TS_PARAM_F32(frame_params, head,
                 "head height, fraction of the frame height (0: the template's convention)", 0, 0.8,
                 0),
    TS_PARAM_BOOL(frame_params, level, "level the eyes", 1),
    TS_PARAM_END};

/* The photo-space box that the canvas covers, for canvas = s R(-t) (p - E) + A. */
static void canvas_bounds(double s, double t, const double E[2], const double A[2], int W, int H,
                          double box[4]) {
    double c = cos(t), sn = sin(t), qx[4] = {0, W, 0, W}, qy[4] = {0, 0, H, H};
    box[0] = box[1] = INFINITY, box[2] = box[3] = -INFINITY;
    for (int k = 0; k < 4; k++) {
        double dx = (qx[k] - A[0]) / s, dy = (qy[k] - A[1]) / s;
        double px = E[0] + c * dx - sn * dy, py = E[1] + sn * dx + c * dy;
        box[0] = fmin(box[0], px), box[1] = fmin(box[1], py);
        box[2] = fmax(box[2], px), box[3] = fmax(box[3], py);
    }
}

/* The matte's alpha as a 1-band 16-bit image (0..65535) in photo coordinates over
 * [ex, ey, ew, eh], 0 outside the matte's region: a memory image of its own (NULL on failure).
 * Kept 16-bit until it is on the canvas: resampling integers is faster than floats, and 1/65535
 * is far below what any later stage can see. */
static VipsImage *matte_alpha(const ts_matte *mt, int ex, int ey, int ew, int eh) {
    size_t bytes = sizeof(uint16_t) * (size_t)ew * eh;
    uint16_t *px = ts_render_big_alloc(bytes);
    if (!px) return NULL;
    int a = ex > mt->x ? ex : mt->x, b = ex + ew < mt->x + mt->w ? ex + ew : mt->x + mt->w;
    for (int r = 0; r < eh; r++) {
        uint16_t *row = px + (size_t)r * ew;
        int y = ey + r - mt->y;
        if (a >= b || y < 0 || y >= mt->h) {
            memset(row, 0, sizeof *row * (size_t)ew);
            continue;
        }
        memset(row, 0, sizeof *row * (size_t)(a - ex));
        ts_matte_alpha_span(mt, y, a - mt->x, b - mt->x, row + (a - ex));
        memset(row + (b - ex), 0, sizeof *row * (size_t)(ex + ew - b));
    }
    return ts_render_wrap_big(px, bytes, ew, eh, 1, VIPS_FORMAT_USHORT);
}

/* ---- the rotation ------------------------------------------------------------------------ */

/* The rotation into the canvas, done here rather than by vips_affine: libvips' general affine
 * calls its interpolator per pixel and was the larger half of frame's time. This is the same
 * bilinear sampling (checked against vips_affine: identical inside the input, and the same at
 * its edges: taps clamped to the edge (or black), and black where the point lies more than a
 * pixel outside), reading the resized 8- or 16-bit (or float) pixels directly and writing
 * float. It works tile by tile on the part of the resized image a tile reaches, which libvips
 * computes on demand (see render_canvas). */
typedef struct rot_geom {
    int iw, ih;                    /* the resized image */
    double ia, ib, ic, id, ox, oy; /* input = [ia ib; ic id] (output - (ox, oy)) */
} rot_geom;

/* A rectangle of a resized image in memory, and how to read it. */
typedef struct src_view {
    const uint8_t *p;      /* the pixel at (left, top) */
    size_t lskip;          /* bytes from a row to the next */
    int left, top, right;  /* right: the last column held */
    int bands, fmt, black; /* fmt: 0 uchar, 1 ushort, 2 float; black: nothing beyond the edge */
    float scale;           /* applied to the values (1 / 65535 for the alpha) */
} src_view;

/* floor() for the canvas' coordinates (far inside the range of long long): the same value,
 * without the library call. */
static inline double floor_fast(double v) {
    double t = (double)(long long)v;
    return t > v ? t - 1 : t;
}

static inline float tap(const src_view *v, int x, int y, int c) {
    const uint8_t *p = v->p + (size_t)(y - v->top) * v->lskip;
    size_t i = (size_t)(x - v->left) * v->bands + c;
    return v->fmt == 2 ? ((const float *)p)[i] : v->fmt == 1 ? ((const uint16_t *)p)[i] : p[i];
}

#if defined(__SSE2__)
/* Three 8-bit samples, or three floats, as the first lanes of a vector (the fourth is 0). */
static inline __m128 load3_u8(const uint8_t *p) {
    __m128i x = _mm_cvtsi32_si128((int)(p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16));
    x = _mm_unpacklo_epi8(x, _mm_setzero_si128());
    return _mm_cvtepi32_ps(_mm_unpacklo_epi16(x, _mm_setzero_si128()));
}
static inline __m128 load3_f(const float *p) {
    return _mm_setr_ps(p[0], p[1], p[2], 0);
}
/* The four taps of a 3-band view (8-bit: fmt 0, or float) at rows p0 and p1, column x0, each
 * tap's bands in one vector. 8-bit rows with a third pixel inside the view take both taps of a
 * row in one 8-byte load. */
static inline void load_taps3(int fmt, int x0, int right, const uint8_t *p0, const uint8_t *p1,
                              __m128 t[4]) {
    if (fmt == 0 && x0 + 2 <= right) {
        __m128i z = _mm_setzero_si128();
        __m128i r0 = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)p0), z);
        __m128i r1 = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)p1), z);
        t[0] = _mm_cvtepi32_ps(_mm_unpacklo_epi16(r0, z));
        t[1] = _mm_cvtepi32_ps(_mm_unpacklo_epi16(_mm_srli_si128(r0, 6), z));
        t[2] = _mm_cvtepi32_ps(_mm_unpacklo_epi16(r1, z));
        t[3] = _mm_cvtepi32_ps(_mm_unpacklo_epi16(_mm_srli_si128(r1, 6), z));
    } else if (fmt == 0) {
        t[0] = load3_u8(p0), t[1] = load3_u8(p0 + 3), t[2] = load3_u8(p1), t[3] = load3_u8(p1 + 3);
    } else {
        const float *f0 = (const float *)p0, *f1 = (const float *)p1;
        t[0] = load3_f(f0), t[1] = load3_f(f0 + 3), t[2] = load3_f(f1), t[3] = load3_f(f1 + 3);
    }
}
#endif

/* One canvas pixel, q (and q2 unless NULL), from v at the input point (ix, iy), fx0 and fy0
 * their floors, which lie in [-1, iw - 1] x [-1, ih - 1]; v holds the taps. */
static inline void sample_px(const rot_geom *g, const src_view *v, double ix, double iy, double fx0,
                             double fy0, float *q, float *q2) {
    int nb = v->bands, iw = g->iw, ih = g->ih;
    int x0 = (int)fx0, y0 = (int)fy0;
    float fx = (float)(ix - fx0), fy = (float)(iy - fy0);
    if (x0 >= 0 && y0 >= 0 && x0 + 1 < iw && y0 + 1 < ih) {
        /* inside: the common case */
        size_t pix = (size_t)nb * (v->fmt == 2 ? 4 : v->fmt == 1 ? 2 : 1);
        const uint8_t *p0 = v->p + (size_t)(y0 - v->top) * v->lskip + (size_t)(x0 - v->left) * pix,
                      *p1 = p0 + v->lskip;
#if defined(__SSE2__)
        if (nb == 3 && v->fmt != 1) {
            /* the four weights as the scalar code makes them, each tap's bands in one vector:
             * the same products and sums in the same order */
            const __m128 one = _mm_set1_ps(1.f);
            __m128 vfx = _mm_set1_ps(fx), vfy = _mm_set1_ps(fy);
            __m128 gx = _mm_sub_ps(one, vfx), gy = _mm_sub_ps(one, vfy);
            __m128 t[4];
            load_taps3(v->fmt, x0, v->right, p0, p1, t);
            __m128 a = t[0], b = t[1], c = t[2], d = t[3];
            __m128 s =
                _mm_add_ps(_mm_mul_ps(_mm_mul_ps(gx, gy), a), _mm_mul_ps(_mm_mul_ps(vfx, gy), b));
            s = _mm_add_ps(s, _mm_mul_ps(_mm_mul_ps(gx, vfy), c));
            s = _mm_add_ps(s, _mm_mul_ps(_mm_mul_ps(vfx, vfy), d));
            s = _mm_mul_ps(s, _mm_set1_ps(v->scale));
            _mm_storel_pi((__m64 *)q, s);
            _mm_store_ss(q + 2, _mm_movehl_ps(s, s));
            if (q2) {
                _mm_storel_pi((__m64 *)q2, s);
                _mm_store_ss(q2 + 2, _mm_movehl_ps(s, s));
            }
            return;
        }
#endif
        float w00 = (1 - fx) * (1 - fy), w01 = fx * (1 - fy), w10 = (1 - fx) * fy, w11 = fx * fy;
        for (int c = 0; c < nb; c++) {
            float s;
            if (v->fmt == 0) {
                s = w00 * p0[c] + w01 * p0[c + nb] + w10 * p1[c] + w11 * p1[c + nb];
            } else if (v->fmt == 1) {
                const uint16_t *a = (const uint16_t *)p0, *b = (const uint16_t *)p1;
                s = w00 * a[c] + w01 * a[c + nb] + w10 * b[c] + w11 * b[c + nb];
            } else {
                const float *a = (const float *)p0, *b = (const float *)p1;
                s = w00 * a[c] + w01 * a[c + nb] + w10 * b[c] + w11 * b[c + nb];
            }
            q[c] = s * v->scale;
            if (q2) q2[c] = q[c];
        }
        return;
    }
    float w00 = (1 - fx) * (1 - fy), w01 = fx * (1 - fy), w10 = (1 - fx) * fy, w11 = fx * fy;
    /* the four taps; outside the input: the edge pixel, or nothing (black) */
    int xa = x0 < 0 ? 0 : x0, xb = x0 + 1 > iw - 1 ? iw - 1 : x0 + 1;
    int ya = y0 < 0 ? 0 : y0, yb = y0 + 1 > ih - 1 ? ih - 1 : y0 + 1;
    if (v->black) {
        if (x0 < 0) w00 = w10 = 0;
        if (x0 + 1 > iw - 1) w01 = w11 = 0;
        if (y0 < 0) w00 = w01 = 0;
        if (y0 + 1 > ih - 1) w10 = w11 = 0;
    }
    for (int c = 0; c < nb; c++) {
        q[c] = (w00 * tap(v, xa, ya, c) + w01 * tap(v, xb, ya, c) + w10 * tap(v, xa, yb, c) +
                w11 * tap(v, xb, yb, c)) *
               v->scale;
        if (q2) q2[c] = q[c];
    }
}

#if defined(__SSE2__)
/* The bilinear sum of a 3-band view (8-bit or float) at taps (x0, y0) .. (x0 + 1, y0 + 1), all
 * inside it, with the weights broadcast: the scalar code's products and sums, in its order. */
static inline __m128 taps3(const src_view *v, int x0, int y0, __m128 w00, __m128 w01, __m128 w10,
                           __m128 w11) {
    const uint8_t *p0 = v->p + (size_t)(y0 - v->top) * v->lskip +
                        (size_t)(x0 - v->left) * (v->fmt == 2 ? 12 : 3),
                  *p1 = p0 + v->lskip;
    __m128 t[4];
    load_taps3(v->fmt, x0, v->right, p0, p1, t);
    __m128 a = t[0], b = t[1], c = t[2], d = t[3];
    __m128 s = _mm_add_ps(_mm_mul_ps(w00, a), _mm_mul_ps(w01, b));
    s = _mm_add_ps(s, _mm_mul_ps(w10, c));
    return _mm_add_ps(s, _mm_mul_ps(w11, d));
}

static inline void store3(float *q, __m128 s) {
    _mm_storel_pi((__m64 *)q, s);
    _mm_store_ss(q + 2, _mm_movehl_ps(s, s));
}
#endif

static int have_avx2(void) {
#if defined(TS_FRAME_AVX2)
    return ts_cpu_avx2();
#else
    return 0;
#endif
}

/* ---- the per-photo cache ---------------------------------------------------------------- */

/* Where the matte changes what frame resamples, in blocks of MAP_B x MAP_B photo pixels, as
 * summed-area tables ((bw + 1) x (bh + 1)): blocks where the foreground colour differs from the
 * photo (the matte's edge band; elsewhere fg's canvas is rgb's, pixel for pixel), and blocks
 * where alpha is not 0 (elsewhere its canvas is 0). Made by comparing the pixels themselves. */
#define MAP_B 8
typedef struct block_maps {
    int bw, bh;
    int *fgd, *anz;
} block_maps;

/* The canvas frame made last, kept for looks that frame alike (a style's square and another's,
 * the same size): rgb and alpha by reference (images are immutable), the foreground colour as
 * only its tiles that differ from rgb (the rest is rgb's), so that keeping it costs little
 * memory. */
typedef struct frame_geom {
    int W, H, PW, PH;
    double s, t, E[2], A[2], box[4];
    int ex, ey, ex1, ey1;
    int half;         /* resampled from the half-resolution copies */
    double kept_tilt; /* the eyes' roll (radians) left as a pose, not levelled; 0 when levelled */
    double upright;   /* the quarter turns (radians) that stood a sideways photo upright */
} frame_geom;

#define TILE_W 128
#define TILE_H 64

/* From which shrink a canvas is made from the half copies (TS_FRAME_HALF_FROM, 2.1). Their 2 x 2
 * box costs some fine detail at any resize left after it: on faceapi_sample6, the mean absolute
 * Laplacian of the box-then-lanczos shrink is 7.6-8.8% below lanczos' own at 0.42 to 0.495 of the
 * photo, with no trend in between. So 2.1 loses no more than the 2.2 it was before, and the looks
 * between (a LinkedIn square's 0.457 of the 12-MP benchmark photo) resample a quarter of the
 * pixels. */
#define HALF_FROM TS_FRAME_HALF_FROM

/* Half-resolution copies of what frame resamples, made once per photo: the photo, the
 * foreground colour (the matte's estimate inside its region, the photo outside) and the alpha,
 * each averaged 2 x 2 (an exact box filter). A canvas that shrinks the photo by HALF_FROM or
 * more is resampled from them: a quarter of the pixels through a kernel half as long, which is
 * what libvips' own thumbnailing does after a JPEG shrink-on-load. */
struct ts_render_cache {
    const ts_photo *photo;
    const ts_matte *matte;
    VipsImage *rgb2, *fg2, *alpha2; /* uchar 3-band, uchar 3-band, ushort 1-band */
    const ts_photo *map_photo;
    const ts_matte *map_matte;
    block_maps maps;
    /* measured_head's answer for this photo, matte and face (the same for every look) */
    struct {
        const ts_photo *photo;
        const ts_matte *matte;
        const ts_face_analysis *face;
        double px;
    } head;
    struct {
        const ts_photo *photo;
        const ts_matte *matte;
        const ts_face_analysis *face;
        frame_geom g;
        VipsImage *rgb, *alpha;
        /* fg: the tiles (TILE_W x TILE_H, clipped at the canvas' edges) that differ from rgb */
        int n_fg_tiles;
        int *fg_tile;
        float *fg_px;
        /* a stage's measurements of this canvas (ts_render_memo_put) */
        char memo_key[16];
        void *memo;
        size_t memo_size;
    } last;
    /* the last look's file, read on a thread of its own (ts_render_cache_defer) */
    struct ts_verify_written *pending;
    double *pending_out;
};

ts_render_cache *ts_render_cache_new(void) {
    ts_render_cache *c = calloc(1, sizeof(ts_render_cache));
    if (c) ts_render_big_pool_arm(); /* the photo's looks share big buffers too */
    return c;
}

static void last_clear(ts_render_cache *c) {
    ts_render_replace(&c->last.rgb, NULL);
    ts_render_replace(&c->last.alpha, NULL);
    c->last.photo = NULL, c->last.matte = NULL, c->last.face = NULL;
    free(c->last.fg_tile), free(c->last.fg_px);
    c->last.fg_tile = NULL, c->last.fg_px = NULL, c->last.n_fg_tiles = 0;
    free(c->last.memo);
    c->last.memo = NULL, c->last.memo_size = 0, c->last.memo_key[0] = 0;
}

int ts_render_memo_get(const ts_render_job *job, const char *key, void *out, size_t size) {
    const ts_render_cache *c = job->cache;
    if (!c || !job->rgb || c->last.rgb != job->rgb || !c->last.memo || c->last.memo_size != size ||
        strcmp(c->last.memo_key, key))
        return 0;
    memcpy(out, c->last.memo, size);
    return 1;
}

void ts_render_memo_put(ts_render_job *job, const char *key, const void *data, size_t size) {
    ts_render_cache *c = job->cache;
    if (!c || !job->rgb || c->last.rgb != job->rgb || strlen(key) >= sizeof c->last.memo_key)
        return;
    void *m = malloc(size);
    if (!m) return;
    memcpy(m, data, size);
    free(c->last.memo);
    c->last.memo = m, c->last.memo_size = size;
    snprintf(c->last.memo_key, sizeof c->last.memo_key, "%s", key);
}

static void maps_clear(ts_render_cache *c) {
    free(c->maps.fgd), free(c->maps.anz);
    memset(&c->maps, 0, sizeof c->maps);
    c->map_photo = NULL, c->map_matte = NULL;
}

static void cache_clear(ts_render_cache *c) {
    last_clear(c);
    VipsImage **all[] = {&c->rgb2, &c->fg2, &c->alpha2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ts_render_replace(all[i], NULL);
    c->photo = NULL, c->matte = NULL;
    maps_clear(c);
}

void ts_render_cache_settle(ts_render_cache *c) {
    if (!c || !c->pending) return;
    double mean = ts_verify_written_finish(c->pending);
    if (c->pending_out) *c->pending_out = mean;
    c->pending = NULL, c->pending_out = NULL;
}

void ts_render_cache_defer(ts_render_cache *c, struct ts_verify_written *w, double *out) {
    if (!c) return;
    ts_render_cache_settle(c);
    c->pending = w, c->pending_out = out;
}

void ts_render_cache_free(ts_render_cache *c) {
    if (!c) return;
    ts_render_cache_settle(c);
    cache_clear(c);
    free(c);
    ts_render_big_pool_flush();
}

typedef struct maps_job {
    const uint8_t *px; /* the photo, 3-band uchar, pw wide */
    int pw;
    const ts_matte *mt;
    uint8_t *fgd, *anz; /* bw x bh flags */
    int bw, bh;
} maps_job;

static void maps_range(size_t first, size_t n, void *user) {
    const maps_job *j = user;
    const ts_matte *mt = j->mt;
    uint8_t seg[MAP_B * 3];
    uint16_t aseg[MAP_B];
    for (size_t by = first; by < first + n; by++)
        for (int y = (int)by * MAP_B; y < ((int)by + 1) * MAP_B && y < mt->h; y++) {
            const uint8_t *p = j->px + ((size_t)(y + mt->y) * j->pw + mt->x) * 3;
            for (int bx = 0; bx < j->bw; bx++) {
                int x0 = bx * MAP_B, n = mt->w - x0 < MAP_B ? mt->w - x0 : MAP_B;
                size_t o = by * j->bw + bx;
                /* the foreground colour differs from the photo only in the matte's kept blocks */
                if (!j->fgd[o]) {
                    memcpy(seg, p + x0 * 3, (size_t)n * 3);
                    if (ts_matte_fg_span(mt, y, x0, x0 + n, seg) &&
                        memcmp(seg, p + x0 * 3, (size_t)n * 3))
                        j->fgd[o] = 1;
                }
                if (!j->anz[o]) {
                    ts_matte_alpha_span(mt, y, x0, x0 + n, aseg);
                    for (int x = 0; x < n && !j->anz[o]; x++) j->anz[o] = aseg[x] != 0;
                }
            }
        }
}

static int *sat_of(const uint8_t *flag, int bw, int bh) {
    int *s = calloc((size_t)(bw + 1) * (bh + 1), sizeof *s);
    if (!s) return NULL;
    for (int y = 0; y < bh; y++)
        for (int x = 0; x < bw; x++)
            s[(size_t)(y + 1) * (bw + 1) + x + 1] =
                flag[(size_t)y * bw + x] + s[(size_t)y * (bw + 1) + x + 1] +
                s[(size_t)(y + 1) * (bw + 1) + x] - s[(size_t)y * (bw + 1) + x];
    return s;
}

/* Makes c's block maps for the job's photo and matte (once); in the matte's region coordinates.
 * Returns 0, or -1 (frame then resamples everything). */
static int maps_fill(ts_render_cache *c, ts_render_job *job, VipsImage *full) {
    const ts_matte *mt = job->matte;
    if (c->maps.fgd && c->map_photo == job->photo && c->map_matte == mt) return 0;
    maps_clear(c);
    if (!mt || full->Bands != 3 || full->BandFmt != VIPS_FORMAT_UCHAR || mt->x < 0 || mt->y < 0 ||
        mt->x + mt->w > full->Xsize || mt->y + mt->h > full->Ysize)
        return -1;
    VipsImage *mem = vips_image_copy_memory(full); /* a reference: the photo is in memory */
    if (!mem) {
        vips_error_clear();
        return -1;
    }
    int bw = (mt->w + MAP_B - 1) / MAP_B, bh = (mt->h + MAP_B - 1) / MAP_B;
    uint8_t *fl = calloc((size_t)bw * bh, 2);
    if (fl) {
        maps_job j = {VIPS_IMAGE_ADDR(mem, 0, 0), mem->Xsize, mt, fl, fl + (size_t)bw * bh, bw, bh};
        ts_render_split2(maps_range, &j, (size_t)bh, 2);
        c->maps.fgd = sat_of(j.fgd, bw, bh);
        c->maps.anz = sat_of(j.anz, bw, bh);
        c->maps.bw = bw, c->maps.bh = bh;
    }
    free(fl);
    g_object_unref(mem);
    if (!c->maps.fgd || !c->maps.anz) {
        maps_clear(c);
        return -1;
    }
    c->map_photo = job->photo, c->map_matte = mt;
    return 0;
}

/* Whether the map has a block in photo pixels [x0, x1] x [y0, y1] (inclusive). */
static int maps_any(const block_maps *m, const ts_matte *mt, const int *sat, int x0, int y0, int x1,
                    int y1) {
    x0 -= mt->x, x1 -= mt->x, y0 -= mt->y, y1 -= mt->y;
    x0 = x0 < 0 ? 0 : x0, y0 = y0 < 0 ? 0 : y0;
    x1 = x1 > mt->w - 1 ? mt->w - 1 : x1, y1 = y1 > mt->h - 1 ? mt->h - 1 : y1;
    if (x0 > x1 || y0 > y1) return 0;
    int bx0 = x0 / MAP_B, by0 = y0 / MAP_B, bx1 = x1 / MAP_B + 1, by1 = y1 / MAP_B + 1;
    size_t r = (size_t)m->bw + 1;
    return sat[by1 * r + bx1] - sat[by0 * r + bx1] - sat[by1 * r + bx0] + sat[by0 * r + bx0] > 0;
}
/* A 2 x 2 shrink of a w x h image made of base (NULL: zeros) with over (ow x oh, same
 * bands and format) laid on it at (ox, oy), as vips_insert would: averaged the way vips_shrink
 * does it, bit for bit (each column pair rounded, then the row pair), without building the
 * inserted image. is16: 16-bit samples, else 8-bit. */
typedef struct half_job {
    const void *base, *over;
    const ts_matte *fg; /* instead of over: the matte's foreground colour laid on base */
    const ts_matte *al; /* instead of over: the matte's alpha (no base: 0 outside it) */
    int w, h, bands, is16, ox, oy, ow, oh;
    void *out;
    int hw, y0, y1;
    uint8_t *rows; /* two rows of scratch per half of the image */
} half_job;

/* Row y of base with over laid on it, into row (w x bands samples of the job's format). */
static const void *half_row(const half_job *j, int y, void *row) {
    size_t es = j->is16 ? 2 : 1, rb = (size_t)j->w * j->bands * es;
    int in_over = y >= j->oy && y < j->oy + j->oh && j->ow > 0;
    const uint8_t *b = j->base ? (const uint8_t *)j->base + (size_t)y * rb : NULL;
    if (b && !in_over) return b; /* read in place */
    if (!b && j->al) {
        memset(row, 0, rb);
        if (in_over) ts_matte_alpha_span(j->al, y - j->oy, 0, j->ow, (uint16_t *)row + j->ox);
        return row;
    }
    if (b && j->fg) { /* (the region lies inside the photo) */
        memcpy(row, b, rb);
        return ts_matte_fg_span(j->fg, y - j->oy, 0, j->ow, (uint8_t *)row + (size_t)j->ox * 3)
                   ? row
                   : b;
    }
    if (b)
        memcpy(row, b, rb);
    else
        memset(row, 0, rb);
    int x0 = j->ox < 0 ? 0 : j->ox, x1 = j->ox + j->ow > j->w ? j->w : j->ox + j->ow;
    if (in_over && x0 < x1)
        memcpy((uint8_t *)row + (size_t)x0 * j->bands * es,
               (const uint8_t *)j->over +
                   ((size_t)(y - j->oy) * j->ow + (x0 - j->ox)) * j->bands * es,
               (size_t)(x1 - x0) * j->bands * es);
    return row;
}

/* The 2 x 2 average of rows r0 and r1 into out (hw pixels of nb samples), rounded as
 * vips_shrink does. */
#define HALF_LOOP(T, r0, r1, out, hw)                                                              \
    do {                                                                                           \
        const T *a = (const T *)(r0), *b = (const T *)(r1);                                        \
        T *q = (T *)(out);                                                                         \
        for (int x = 0; x < (hw); x++, a += 2 * nb, b += 2 * nb, q += nb)                          \
            for (int c = 0; c < nb; c++)                                                           \
                q[c] = (T)((((unsigned)a[c] + b[c] + 1) / 2 +                                      \
                            ((unsigned)a[c + nb] + b[c + nb] + 1) / 2 + 1) /                       \
                           2);                                                                     \
    } while (0)

#if defined(TS_FRAME_AVX2)
/* The same averages as HALF_LOOP (each rounded up: _mm_avg_epu8 / 16 is (a + b + 1) >> 1),
 * several pixels a step, for 3-band 8-bit and 1-band 16-bit rows; returns how many output
 * pixels it made (the rest are HALF_LOOP's: these loads read past what they use). */
FRAME_AVX2 static int half_row8x3(const uint8_t *a, const uint8_t *b, uint8_t *q, int hw) {
    /* two output pixels a step from the 12 bytes of four input pixels */
    const __m128i pick = _mm_setr_epi8(0, 1, 2, 6, 7, 8, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    int x = 0;
    for (; 6 * x + 16 <= 6 * hw && x + 2 <= hw - 1; x += 2) {
        __m128i v = _mm_avg_epu8(_mm_loadu_si128((const __m128i *)(a + 6 * x)),
                                 _mm_loadu_si128((const __m128i *)(b + 6 * x)));
        __m128i h = _mm_shuffle_epi8(_mm_avg_epu8(v, _mm_srli_si128(v, 3)), pick);
        _mm_storel_epi64((__m128i *)(q + 3 * x), h); /* 2 bytes more, written again next */
    }
    return x;
}

FRAME_AVX2 static int half_row16x1(const uint16_t *a, const uint16_t *b, uint16_t *q, int hw) {
    const __m128i lo = _mm_set1_epi32(0xffff);
    int x = 0;
    for (; x + 8 <= hw; x += 8) {
        __m128i v0 = _mm_avg_epu16(_mm_loadu_si128((const __m128i *)(a + 2 * x)),
                                   _mm_loadu_si128((const __m128i *)(b + 2 * x)));
        __m128i v1 = _mm_avg_epu16(_mm_loadu_si128((const __m128i *)(a + 2 * x + 8)),
                                   _mm_loadu_si128((const __m128i *)(b + 2 * x + 8)));
        __m128i h0 = _mm_and_si128(_mm_avg_epu16(v0, _mm_srli_epi32(v0, 16)), lo);
        __m128i h1 = _mm_and_si128(_mm_avg_epu16(v1, _mm_srli_epi32(v1, 16)), lo);
        _mm_storeu_si128((__m128i *)(q + x), _mm_packus_epi32(h0, h1));
    }
    return x;
}
#endif

static void *half_rows(void *arg) {
    const half_job *j = arg;
    int nb = j->bands, hw = j->hw;
    size_t es = j->is16 ? 2 : 1;
    uint8_t *buf = j->rows + (j->y0 ? (size_t)j->w * nb * es * 2 : 0);
    /* an odd last column or row: its pixels count twice (the edge extended, as libvips'
     * resamplers extend it) */
    int pairs = j->w / 2;
    for (int y = j->y0; y < j->y1; y++) {
        const void *r0 = half_row(j, 2 * y, buf);
        const void *r1 =
            2 * y + 1 < j->h ? half_row(j, 2 * y + 1, (uint8_t *)buf + (size_t)j->w * nb * es) : r0;
        void *out = (uint8_t *)j->out + (size_t)y * hw * nb * es;
        int done = 0;
#if defined(TS_FRAME_AVX2)
        if (have_avx2() && nb == 3 && !j->is16)
            done = half_row8x3(r0, r1, out, pairs);
        else if (have_avx2() && nb == 1 && j->is16)
            done = half_row16x1(r0, r1, out, pairs);
#endif
        /* the rest (all without AVX2) */
        size_t skip = (size_t)done * nb * es;
        const uint8_t *a0 = (const uint8_t *)r0 + 2 * skip, *a1 = (const uint8_t *)r1 + 2 * skip;
        void *o = (uint8_t *)out + skip;
        int rest = pairs - done;
        if (j->is16)
            HALF_LOOP(uint16_t, a0, a1, o, rest);
        else
            HALF_LOOP(uint8_t, a0, a1, o, rest);
        if (hw > pairs) {
            size_t at = (size_t)pairs * nb;
            for (int c = 0; c < nb; c++)
                if (j->is16) {
                    unsigned v = ((unsigned)((const uint16_t *)r0)[2 * at + c] +
                                  ((const uint16_t *)r1)[2 * at + c] + 1) /
                                 2;
                    ((uint16_t *)out)[at + c] = (uint16_t)v;
                } else {
                    unsigned v = ((unsigned)((const uint8_t *)r0)[2 * at + c] +
                                  ((const uint8_t *)r1)[2 * at + c] + 1) /
                                 2;
                    ((uint8_t *)out)[at + c] = (uint8_t)v;
                }
        }
    }
    return NULL;
}

static void half_range(size_t first, size_t n, void *user) {
    half_job j = *(const half_job *)user;
    j.y0 = (int)first, j.y1 = (int)(first + n);
    half_rows(&j);
}

/* The foreground colour over the photo's area x, y, w, h (the photo's own pixels outside the
 * matte's region, where alpha is 0 and it is never shown): a memory image of its own (NULL on
 * failure). full: the photo, 3-band uchar in memory. */
static VipsImage *fg_area(const ts_matte *mt, VipsImage *full, int x, int y, int w, int h) {
    if (full->Bands != 3 || full->BandFmt != VIPS_FORMAT_UCHAR) return NULL;
    VipsImage *mem = vips_image_copy_memory(full); /* (a reference when it is in memory) */
    size_t bytes = (size_t)w * h * 3;
    uint8_t *px = mem ? ts_render_big_alloc(bytes) : NULL;
    for (int r = 0; px && r < h; r++) {
        uint8_t *row = px + (size_t)r * w * 3;
        memcpy(row, VIPS_IMAGE_ADDR(mem, x, y + r), (size_t)w * 3);
        int a = x > mt->x ? x : mt->x, b = x + w < mt->x + mt->w ? x + w : mt->x + mt->w;
        if (a < b)
            ts_matte_fg_span(mt, y + r - mt->y, a - mt->x, b - mt->x, row + (size_t)(a - x) * 3);
    }
    if (mem) g_object_unref(mem);
    if (!px) return NULL;
    return ts_render_wrap_big(px, bytes, w, h, 3, VIPS_FORMAT_UCHAR);
}

/* The half-size image (memory, owning its pixels) of base with over inserted; NULL on failure.
 * An odd size is rounded up, its last column or row averaged with itself. */
static VipsImage *half_of(const void *base, const void *over, const ts_matte *fg,
                          const ts_matte *al, int w, int h, int bands, int is16, int ox, int oy,
                          int ow, int oh) {
    int hw = (w + 1) / 2, hh = (h + 1) / 2;
    size_t bytes = (size_t)hw * hh * bands * (is16 ? 2 : 1);
    void *out = g_try_malloc(bytes);
    uint8_t *rows = malloc((size_t)w * bands * (is16 ? 2 : 1) * 4);
    if (!out || !rows) {
        g_free(out), free(rows);
        return NULL;
    }
    int on = over || fg || al;
    half_job j = {.base = base,
                  .over = over,
                  .fg = fg,
                  .al = al,
                  .w = w,
                  .h = h,
                  .bands = bands,
                  .is16 = is16,
                  .ox = ox,
                  .oy = oy,
                  .ow = on ? ow : 0,
                  .oh = on ? oh : 0,
                  .out = out,
                  .hw = hw,
                  .y0 = 0,
                  .y1 = hh,
                  .rows = rows};
    ts_render_split2(half_range, &j, (size_t)hh, 2);
    free(rows);
    return ts_render_wrap(out, bytes, hw, hh, bands, is16 ? VIPS_FORMAT_USHORT : VIPS_FORMAT_UCHAR);
}

/* Fills c for the job's photo and matte (once). Returns 0, or -1 when it cannot (frame then
 * works from the full-resolution images). */
static int cache_fill(ts_render_cache *c, ts_render_job *job, VipsImage *full) {
    if (c->rgb2 && c->photo == job->photo && c->matte == job->matte) return 0;
    int w = full->Xsize, h = full->Ysize;
    /* (checked first: when there can be no copies, the canvas kept from the last look stays for
     * the next) */
    if (full->Bands != 3 || full->BandFmt != VIPS_FORMAT_UCHAR) return -1;
    last_clear(c);
    VipsImage **all[] = {&c->rgb2, &c->fg2, &c->alpha2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ts_render_replace(all[i], NULL);
    c->photo = NULL, c->matte = NULL;
    VipsImage *mem = vips_image_copy_memory(full); /* a reference: the photo is in memory */
    if (!mem) {
        vips_error_clear();
        return -1;
    }
    const void *px = VIPS_IMAGE_ADDR(mem, 0, 0);
    c->rgb2 = half_of(px, NULL, NULL, NULL, w, h, 3, 0, 0, 0, 0, 0);
    if (job->matte) {
        const ts_matte *mt = job->matte;
        c->fg2 = half_of(px, NULL, mt, NULL, w, h, 3, 0, mt->x, mt->y, mt->w, mt->h);
        c->alpha2 = half_of(NULL, NULL, NULL, mt, w, h, 1, 1, mt->x, mt->y, mt->w, mt->h);
    }
    g_object_unref(mem);
    if (!c->rgb2 || (job->matte && (!c->fg2 || !c->alpha2))) {
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ts_render_replace(all[i], NULL);
        vips_error_clear();
        return -1;
    }
    c->photo = job->photo, c->matte = job->matte;
    return 0;
}

/* ---- the canvas ------------------------------------------------------------------------- */

/* A canvas buffer. Large ones are mapped on their own, in transparent huge pages where the
 * system has them: a fresh canvas in 4 KiB pages costs a page fault each (20 ms and more for a
 * 1200 x 1200 canvas on a busy machine, about a tenth of frame's time), and a mapping of its own
 * goes back to the system when the canvas is freed rather than staying in the heap. Freed with
 * canvas_release. */
typedef struct canvas_head {
    void *map; /* NULL: malloc'd at the head */
    size_t len;
} canvas_head;

#define CANVAS_HEAD 64 /* bytes before the pixels; keeps them 64-byte aligned */

/* Canvas mappings let go while a canvas is made (the one kept from the last look, freed just
 * before the new one is made) wait here for the new canvas to take them: their pages are
 * already there, where a fresh page costs the kernel a zeroing (17 MB for a 1200 x 1200 canvas).
 * Only while frame makes a canvas (canvas_pool_arm .. canvas_pool_flush), so no memory is held
 * longer than before. A canvas taken this way holds old pixels until render_canvas writes
 * every one of them. */
#define POOL_N 4
static struct {
    pthread_mutex_t lock;
    int armed;
    int n;
    struct {
        uint8_t *map;
        size_t len;
    } m[POOL_N];
} canvas_pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void canvas_pool_arm(void) {
    pthread_mutex_lock(&canvas_pool.lock);
    canvas_pool.armed++;
    pthread_mutex_unlock(&canvas_pool.lock);
}

static void canvas_pool_flush(void) {
    pthread_mutex_lock(&canvas_pool.lock);
    if (--canvas_pool.armed == 0) {
        for (int i = 0; i < canvas_pool.n; i++) munmap(canvas_pool.m[i].map, canvas_pool.m[i].len);
        canvas_pool.n = 0;
    }
    pthread_mutex_unlock(&canvas_pool.lock);
}

/* A pooled mapping of len bytes at m that holds bytes from its first 2 MiB boundary with room
 * for the head, taking the smallest; NULL when none. */
static uint8_t *canvas_pool_take(size_t bytes, size_t huge, size_t *len) {
    uint8_t *m = NULL;
    pthread_mutex_lock(&canvas_pool.lock);
    int best = -1;
    for (int i = 0; i < canvas_pool.n; i++) {
        uint8_t *b = canvas_pool.m[i].map;
        uint8_t *px = (uint8_t *)(((uintptr_t)b + CANVAS_HEAD + huge - 1) & ~(huge - 1));
        if (px + bytes <= b + canvas_pool.m[i].len &&
            (best < 0 || canvas_pool.m[i].len < canvas_pool.m[best].len))
            best = i;
    }
    if (best >= 0) {
        m = canvas_pool.m[best].map, *len = canvas_pool.m[best].len;
        canvas_pool.m[best] = canvas_pool.m[--canvas_pool.n];
    }
    pthread_mutex_unlock(&canvas_pool.lock);
    return m;
}

static void *canvas_alloc(size_t bytes) {
#if defined(MADV_HUGEPAGE) && defined(MAP_ANONYMOUS)
    const size_t huge = (size_t)2 << 20;
    if (bytes >= 2 * huge) {
        size_t len = bytes + 2 * huge;
        uint8_t *m = canvas_pool_take(bytes, huge, &len);
        if (m) {
            /* what this canvas does not reach goes back to the system */
            uint8_t *px = (uint8_t *)(((uintptr_t)m + CANVAS_HEAD + huge - 1) & ~(huge - 1));
            uint8_t *end = px + ((bytes + huge - 1) & ~(huge - 1));
            if (end < m + len) madvise(end, (size_t)(m + len - end), MADV_DONTNEED);
            *(canvas_head *)(px - CANVAS_HEAD) = (canvas_head){m, len};
            return px;
        }
        m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m != MAP_FAILED) {
            /* the pixels from a 2 MiB boundary, the head just before it */
            uint8_t *px = (uint8_t *)(((uintptr_t)m + CANVAS_HEAD + huge - 1) & ~(huge - 1));
            madvise(px, (bytes + huge - 1) & ~(huge - 1), MADV_HUGEPAGE);
            *(canvas_head *)(px - CANVAS_HEAD) = (canvas_head){m, len};
            return px;
        }
    }
#endif
    uint8_t *h = malloc(bytes + CANVAS_HEAD);
    if (!h) return NULL;
    *(canvas_head *)h = (canvas_head){NULL, 0};
    return h + CANVAS_HEAD;
}

static void canvas_release(void *buf) {
    if (!buf) return;
    canvas_head *h = (canvas_head *)((uint8_t *)buf - CANVAS_HEAD);
    if (h->map) {
        canvas_head head = *h;
        pthread_mutex_lock(&canvas_pool.lock);
        int kept = canvas_pool.armed && canvas_pool.n < POOL_N;
        if (kept)
            canvas_pool.m[canvas_pool.n].map = head.map,
            canvas_pool.m[canvas_pool.n++].len = head.len;
        pthread_mutex_unlock(&canvas_pool.lock);
        if (!kept) munmap(head.map, head.len);
    } else {
        free(h);
    }
}

static void canvas_free(VipsImage *im, void *buf) {
    (void)im;
    canvas_release(buf);
}

/* A float memory image around buf (canvas_alloc'd; owned from here on, freed at once on
 * failure), with like's interpretation and resolution. */
static VipsImage *canvas_wrap(float *buf, int W, int H, int bands, const VipsImage *like) {
    VipsImage *im = vips_image_new_from_memory(buf, sizeof(float) * (size_t)W * H * bands, W, H,
                                               bands, VIPS_FORMAT_FLOAT);
    if (!im) {
        canvas_release(buf);
        return NULL;
    }
    g_signal_connect(im, "postclose", G_CALLBACK(canvas_free), buf);
    im->Type = bands == 1 ? VIPS_INTERPRETATION_B_W : like->Type;
    im->Xres = like->Xres, im->Yres = like->Yres;
    return im;
}

enum { K_RGB, K_FG, K_ALPHA, K_N };

/* Tiles of the resized images (SRC_TILE square) that the canvas is made from. */
#define SRC_TILE 128
#define SUB_TILE 32

/* The canvas from lazy resized images, a tile of the resized image at a time: libvips computes
 * (vips_region_prepare) that tile alone, on this thread, and every canvas pixel whose first tap
 * lies in it is made while it is in cache, so each resized pixel is computed once and only where
 * the canvas reads it (the rotated canvas covers about four fifths of its bounding box). With
 * the block maps, a tile whose source holds none of the matte's edge band gives the foreground
 * colour rgb's pixels (the same inputs give the same pixels), and one whose source holds no
 * alpha gives alpha 0: the edge is a small part of the canvas. */
typedef struct canvas_job {
    VipsImage *res[K_N]; /* NULL: not made */
    src_view fmt[K_N];   /* the format parts of each view */
    rot_geom g;
    float *out[K_N];
    int W, H, nsx, nsy;     /* canvas size; source tiles across and down */
    double eye_row;         /* the canvas row of the eyes: above it, past the photo, no person */
    const block_maps *maps; /* NULL: every tile is resampled */
    const ts_matte *mt;
    /* resized pixel -> photo pixel: origin (lx, ly) and size (lw, lh) of the resized region in
     * the level it came from, the level's factor L (2: the half copies) and the resize scale sc */
    int lx, ly, lw, lh, L;
    double sc;
    uint8_t *fg_own[2]; /* per canvas tile (TILE_W x TILE_H) and thread: fg resampled there */
    int ctx_;           /* canvas tiles across */
    atomic_int next, failed;
} canvas_job;

/* The photo pixels (inclusive) the resized pixels r depend on, with room for the lanczos
 * kernel (3 / sc each side), libvips' offsets and its integer pre-shrink. */
static void tile_support(const canvas_job *j, const int r[4], int p[4]) {
    double m = ceil(4 / j->sc) + 5;
    int o[2] = {j->lx, j->ly}, n[2] = {j->lw, j->lh};
    for (int a = 0; a < 2; a++) {
        double lo = floor((r[a] + 0.5) / j->sc - 0.5 - m);
        double hi = ceil((r[a + 2] + 0.5) / j->sc - 0.5 + m);
        lo = lo < 0 ? 0 : lo > n[a] - 1 ? n[a] - 1 : lo;
        hi = hi < 0 ? 0 : hi > n[a] - 1 ? n[a] - 1 : hi;
        p[a] = (o[a] + (int)lo) * j->L, p[a + 2] = (o[a] + (int)hi) * j->L + j->L - 1;
    }
}

/* The canvas columns [*x0, *x1) of row Y that may hold points with u = a dx + b in [lo, hi)
 * (dx = X - ox): a superset (the pixels are tested one by one). */
static void row_span(double a, double b, double ox, double lo, double hi, int W, double *x0,
                     double *x1) {
    if (fabs(a) < 1e-9) {
        int in = b >= lo - 1 && b < hi + 1;
        *x0 = fmax(*x0, in ? 0 : W), *x1 = fmin(*x1, in ? W : 0);
        return;
    }
    double p = (lo - b) / a + ox, q = (hi - b) / a + ox;
    if (p > q) {
        double t = p;
        p = q, q = t;
    }
    *x0 = fmax(*x0, floor(p) - 2), *x1 = fmin(*x1, ceil(q) + 3);
}

#if defined(TS_FRAME_AVX2)
/* Eight canvas pixels of a row at once with AVX2, where all eight are inside the resized image,
 * owned by the tile and alike in what they resample (else the caller does them one by one): the
 * scalar fast path's operations, lane by lane, in its order (floor as floor_fast, which never
 * gives -0; the weights in float; the taps' sum as taps3 makes it), so the same floats. The
 * 8-bit taps are gathered as 32-bit words that stay inside the tile's pixels (the right tap's
 * word starts a byte early). */
typedef struct c8_job {
    const rot_geom *g;
    const src_view *v; /* [K_N] */
    float *out[K_N];
    int W, sx0, sx1, sy0, sy1, nbx;
    const uint8_t *need_fg, *need_al; /* per sub-block; NULL: the same in all, fg_all (al_all) */
    int fg_all, al_all;
    uint8_t *fg_own; /* per canvas tile: this thread's */
    int ctx_;
} c8_job;

/* Three planes of eight into 24 interleaved floats at q and, unless NULL, q2. */
FRAME_AVX2 static inline void store3x8(float *q, float *q2, __m256 r, __m256 g, __m256 b) {
    const __m256i r0 = _mm256_setr_epi32(0, 0, 0, 1, 0, 0, 2, 0),
                  g0 = _mm256_setr_epi32(0, 0, 0, 0, 1, 0, 0, 2),
                  b0 = _mm256_setr_epi32(0, 0, 0, 0, 0, 1, 0, 0),
                  r1 = _mm256_setr_epi32(0, 3, 0, 0, 4, 0, 0, 5),
                  g1 = _mm256_setr_epi32(0, 0, 3, 0, 0, 4, 0, 0),
                  b1 = _mm256_setr_epi32(2, 0, 0, 3, 0, 0, 4, 0),
                  r2 = _mm256_setr_epi32(0, 0, 6, 0, 0, 7, 0, 0),
                  g2 = _mm256_setr_epi32(5, 0, 0, 6, 0, 0, 7, 0),
                  b2 = _mm256_setr_epi32(0, 5, 0, 0, 6, 0, 0, 7);
    __m256 o0 = _mm256_blend_ps(
        _mm256_blend_ps(_mm256_permutevar8x32_ps(r, r0), _mm256_permutevar8x32_ps(g, g0), 0x92),
        _mm256_permutevar8x32_ps(b, b0), 0x24);
    __m256 o1 = _mm256_blend_ps(
        _mm256_blend_ps(_mm256_permutevar8x32_ps(r, r1), _mm256_permutevar8x32_ps(g, g1), 0x24),
        _mm256_permutevar8x32_ps(b, b1), 0x49);
    __m256 o2 = _mm256_blend_ps(
        _mm256_blend_ps(_mm256_permutevar8x32_ps(r, r2), _mm256_permutevar8x32_ps(g, g2), 0x49),
        _mm256_permutevar8x32_ps(b, b2), 0x92);
    _mm256_storeu_ps(q, o0);
    _mm256_storeu_ps(q + 8, o1);
    _mm256_storeu_ps(q + 16, o2);
    if (q2) {
        _mm256_storeu_ps(q2, o0);
        _mm256_storeu_ps(q2 + 8, o1);
        _mm256_storeu_ps(q2 + 16, o2);
    }
}

/* The bilinear sums of the three bands of view v (8-bit or float) at byte offsets off (the tap
 * (x0, y0) from v->p) with the weights. */
FRAME_AVX2 static inline void taps3x8(const src_view *v, __m256i off, __m256 w00, __m256 w01,
                                      __m256 w10, __m256 w11, __m256 s[3]) {
    const __m256i lsk = _mm256_set1_epi32((int)v->lskip);
    __m256i off1 = _mm256_add_epi32(off, lsk);
    if (v->fmt == 0) {
        const int *base = (const int *)v->p;
        const __m256i m = _mm256_set1_epi32(0xff), two = _mm256_set1_epi32(2);
        __m256i a = _mm256_i32gather_epi32(base, off, 1);
        __m256i b = _mm256_i32gather_epi32(base, _mm256_add_epi32(off, two), 1);
        __m256i c = _mm256_i32gather_epi32(base, off1, 1);
        __m256i d = _mm256_i32gather_epi32(base, _mm256_add_epi32(off1, two), 1);
        for (int k = 0; k < 3; k++) {
            __m256 ta = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(a, 8 * k), m));
            __m256 tb = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(b, 8 * k + 8), m));
            __m256 tc = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(c, 8 * k), m));
            __m256 td = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(d, 8 * k + 8), m));
            __m256 t = _mm256_add_ps(_mm256_mul_ps(w00, ta), _mm256_mul_ps(w01, tb));
            t = _mm256_add_ps(t, _mm256_mul_ps(w10, tc));
            s[k] = _mm256_add_ps(t, _mm256_mul_ps(w11, td));
        }
    } else {
        const float *base = (const float *)v->p;
        const __m256i twelve = _mm256_set1_epi32(12);
        for (int k = 0; k < 3; k++) {
            __m256i ok = _mm256_add_epi32(off, _mm256_set1_epi32(4 * k));
            __m256i ok1 = _mm256_add_epi32(off1, _mm256_set1_epi32(4 * k));
            __m256 ta = _mm256_i32gather_ps(base, ok, 1);
            __m256 tb = _mm256_i32gather_ps(base, _mm256_add_epi32(ok, twelve), 1);
            __m256 tc = _mm256_i32gather_ps(base, ok1, 1);
            __m256 td = _mm256_i32gather_ps(base, _mm256_add_epi32(ok1, twelve), 1);
            __m256 t = _mm256_add_ps(_mm256_mul_ps(w00, ta), _mm256_mul_ps(w01, tb));
            t = _mm256_add_ps(t, _mm256_mul_ps(w10, tc));
            s[k] = _mm256_add_ps(t, _mm256_mul_ps(w11, td));
        }
    }
}

/* The byte offsets from v->p of taps (x0, y0), pix bytes a pixel. */
FRAME_AVX2 static inline __m256i view_off(const src_view *v, __m256i x0, __m256i y0, int pix) {
    return _mm256_add_epi32(_mm256_mullo_epi32(_mm256_sub_epi32(y0, _mm256_set1_epi32(v->top)),
                                               _mm256_set1_epi32((int)v->lskip)),
                            _mm256_mullo_epi32(_mm256_sub_epi32(x0, _mm256_set1_epi32(v->left)),
                                               _mm256_set1_epi32(pix)));
}

/* Canvas pixels of row Y from X on, eight at a time, while a group of eight before X1 can be done
 * this way (dy = Y - oy, by = ib dy, dyy = id dy); returns the first pixel not done. */
FRAME_AVX2 static int canvas8_run(const c8_job *j, int Y, int X, int X1, double by, double dyy) {
    const rot_geom *g = j->g;
    const __m256d zero = _mm256_setzero_pd(), ox = _mm256_set1_pd(g->ox);
    const __m256d ia = _mm256_set1_pd(g->ia), ic = _mm256_set1_pd(g->ic);
    const __m256d vby = _mm256_set1_pd(by), vdyy = _mm256_set1_pd(dyy);
    const __m256d lox = _mm256_set1_pd(j->sx0), hix = _mm256_set1_pd(fmin(j->sx1, g->iw - 1));
    const __m256d loy = _mm256_set1_pd(j->sy0), hiy = _mm256_set1_pd(fmin(j->sy1, g->ih - 1));
    const __m256d k03 = _mm256_setr_pd(0, 1, 2, 3), k47 = _mm256_setr_pd(4, 5, 6, 7);
    const __m256 one = _mm256_set1_ps(1.f);
    const src_view *v = &j->v[K_RGB];
    int pix = v->fmt == 0 ? 3 : 12;
    float *row = j->out[K_RGB] + (size_t)Y * j->W * 3;
    float *frow = j->out[K_FG] ? j->out[K_FG] + (size_t)Y * j->W * 3 : NULL;
    float *arow = j->out[K_ALPHA] ? j->out[K_ALPHA] + (size_t)Y * j->W : NULL;
    uint8_t *own = j->fg_own + (size_t)(Y / TILE_H) * j->ctx_;
    _Static_assert(SUB_TILE == 32, "sub-blocks by a shift of 5");
    for (; X + 8 <= X1; X += 8) {
        __m256d xd = _mm256_set1_pd(X);
        __m256d dx0 = _mm256_sub_pd(_mm256_add_pd(xd, k03), ox);
        __m256d dx1 = _mm256_sub_pd(_mm256_add_pd(xd, k47), ox);
        __m256d ix0 = _mm256_add_pd(_mm256_mul_pd(ia, dx0), vby);
        __m256d ix1 = _mm256_add_pd(_mm256_mul_pd(ia, dx1), vby);
        __m256d iy0 = _mm256_add_pd(_mm256_mul_pd(ic, dx0), vdyy);
        __m256d iy1 = _mm256_add_pd(_mm256_mul_pd(ic, dx1), vdyy);
        __m256d fx0a = _mm256_add_pd(_mm256_floor_pd(ix0), zero);
        __m256d fx0b = _mm256_add_pd(_mm256_floor_pd(ix1), zero);
        __m256d fy0a = _mm256_add_pd(_mm256_floor_pd(iy0), zero);
        __m256d fy0b = _mm256_add_pd(_mm256_floor_pd(iy1), zero);
        /* all inside (0 <= x0, x0 + 1 < iw, the same for y) and owned by the tile (then the
         * clamped tap is the tap itself) */
        __m256d ok = _mm256_and_pd(_mm256_cmp_pd(fx0a, lox, _CMP_GE_OQ),
                                   _mm256_cmp_pd(fx0a, hix, _CMP_LT_OQ));
        ok = _mm256_and_pd(ok, _mm256_and_pd(_mm256_cmp_pd(fx0b, lox, _CMP_GE_OQ),
                                             _mm256_cmp_pd(fx0b, hix, _CMP_LT_OQ)));
        ok = _mm256_and_pd(ok, _mm256_and_pd(_mm256_cmp_pd(fy0a, loy, _CMP_GE_OQ),
                                             _mm256_cmp_pd(fy0a, hiy, _CMP_LT_OQ)));
        ok = _mm256_and_pd(ok, _mm256_and_pd(_mm256_cmp_pd(fy0b, loy, _CMP_GE_OQ),
                                             _mm256_cmp_pd(fy0b, hiy, _CMP_LT_OQ)));
        if (_mm256_movemask_pd(ok) != 15) break;
        __m256i x0 = _mm256_setr_m128i(_mm256_cvttpd_epi32(fx0a), _mm256_cvttpd_epi32(fx0b));
        __m256i y0 = _mm256_setr_m128i(_mm256_cvttpd_epi32(fy0a), _mm256_cvttpd_epi32(fy0b));
        /* the sub-blocks: fg and alpha resampled in all eight, or in none */
        int need_fg = j->fg_all, need_al = j->al_all;
        if (j->need_fg || j->need_al) {
            int bx[8], byy[8];
            _mm256_storeu_si256(
                (__m256i *)bx,
                _mm256_srai_epi32(_mm256_sub_epi32(x0, _mm256_set1_epi32(j->sx0)), 5));
            _mm256_storeu_si256(
                (__m256i *)byy,
                _mm256_srai_epi32(_mm256_sub_epi32(y0, _mm256_set1_epi32(j->sy0)), 5));
            int b = byy[0] * j->nbx + bx[0], mixed = 0;
            need_fg = j->need_fg ? j->need_fg[b] : need_fg;
            need_al = j->need_al ? j->need_al[b] : need_al;
            for (int k = 1; k < 8 && !mixed; k++) {
                int bk = byy[k] * j->nbx + bx[k];
                mixed = bk != b && ((j->need_fg && j->need_fg[bk] != need_fg) ||
                                    (j->need_al && j->need_al[bk] != need_al));
            }
            if (mixed) break;
        }
        __m256 fx = _mm256_setr_m128(_mm256_cvtpd_ps(_mm256_sub_pd(ix0, fx0a)),
                                     _mm256_cvtpd_ps(_mm256_sub_pd(ix1, fx0b)));
        __m256 fy = _mm256_setr_m128(_mm256_cvtpd_ps(_mm256_sub_pd(iy0, fy0a)),
                                     _mm256_cvtpd_ps(_mm256_sub_pd(iy1, fy0b)));
        __m256 gx = _mm256_sub_ps(one, fx), gy = _mm256_sub_ps(one, fy);
        __m256 w00 = _mm256_mul_ps(gx, gy), w01 = _mm256_mul_ps(fx, gy);
        __m256 w10 = _mm256_mul_ps(gx, fy), w11 = _mm256_mul_ps(fx, fy);
        __m256 s[3];
        taps3x8(v, view_off(v, x0, y0, pix), w00, w01, w10, w11, s);
        /* fg: rgb's pixels where the sub-blocks do not resample it */
        store3x8(row + (size_t)X * 3, frow && !need_fg ? frow + (size_t)X * 3 : NULL, s[0], s[1],
                 s[2]);
        if (frow && need_fg) {
            const src_view *vf = &j->v[K_FG];
            taps3x8(vf, view_off(vf, x0, y0, pix), w00, w01, w10, w11, s);
            own[X / TILE_W] = 1, own[(X + 7) / TILE_W] = 1;
            store3x8(frow + (size_t)X * 3, NULL, s[0], s[1], s[2]);
        }
        if (arow) {
            __m256 a = _mm256_setzero_ps();
            if (need_al) {
                const src_view *va = &j->v[K_ALPHA];
                __m256i offa = view_off(va, x0, y0, 2);
                const int *base = (const int *)va->p;
                __m256i r0 = _mm256_i32gather_epi32(base, offa, 1);
                __m256i r1 = _mm256_i32gather_epi32(
                    base, _mm256_add_epi32(offa, _mm256_set1_epi32((int)va->lskip)), 1);
                const __m256i m = _mm256_set1_epi32(0xffff);
                __m256 t = _mm256_add_ps(
                    _mm256_mul_ps(w00, _mm256_cvtepi32_ps(_mm256_and_si256(r0, m))),
                    _mm256_mul_ps(w01, _mm256_cvtepi32_ps(_mm256_srli_epi32(r0, 16))));
                t = _mm256_add_ps(t,
                                  _mm256_mul_ps(w10, _mm256_cvtepi32_ps(_mm256_and_si256(r1, m))));
                t = _mm256_add_ps(
                    t, _mm256_mul_ps(w11, _mm256_cvtepi32_ps(_mm256_srli_epi32(r1, 16))));
                a = _mm256_mul_ps(t, _mm256_set1_ps(va->scale));
            }
            _mm256_storeu_ps(arow + X, a);
        }
    }
    return X;
}
#endif

static void canvas_range(size_t first, size_t n, void *user) {
    (void)n;
    canvas_job *j = user;
    const rot_geom *g = &j->g;
    int me = (int)first, iw = g->iw, ih = g->ih, W = j->W, H = j->H;
    int nb[K_N] = {j->fmt[0].bands, j->fmt[1].bands, j->fmt[2].bands};
    VipsRegion *reg[K_N] = {NULL, NULL, NULL}, *dst[K_N] = {NULL, NULL, NULL};
    int *span = malloc(sizeof *span * 2 * (size_t)H);
    if (!span) atomic_store(&j->failed, 1);
    for (int k = 0; k < K_N; k++)
        if (j->res[k] &&
            (!(reg[k] = vips_region_new(j->res[k])) || !(dst[k] = vips_region_new(j->res[k]))))
            atomic_store(&j->failed, 1);
    int nt = j->nsx * j->nsy;
    for (int t; !atomic_load(&j->failed) && (t = atomic_fetch_add(&j->next, 1)) < nt;) {
        int sx0 = t % j->nsx * SRC_TILE, sy0 = t / j->nsx * SRC_TILE;
        int sx1 = sx0 + SRC_TILE < iw ? sx0 + SRC_TILE : iw;
        int sy1 = sy0 + SRC_TILE < ih ? sy0 + SRC_TILE : ih;
        /* the canvas pixels this tile owns: those whose first tap, clamped to the image, lies
         * in it (points beyond the image belong to the tiles at its edge) */
        double lx = sx0 == 0 ? -INFINITY : sx0, hx = sx1 == iw ? INFINITY : sx1;
        double ly = sy0 == 0 ? -INFINITY : sy0, hy = sy1 == ih ? INFINITY : sy1;
        /* the rows that can hold them: for a tile inside the image, those its corners reach on
         * the canvas (canvas = A^-1 input + o), with a margin */
        int Ya = 0, Yb = H;
        if (isfinite(lx) && isfinite(hx) && isfinite(ly) && isfinite(hy)) {
            double det = g->ia * g->id - g->ib * g->ic, lo = INFINITY, hi = -INFINITY;
            for (int k = 0; k < 4; k++) {
                double ux = k & 1 ? hx : lx, uy = k & 2 ? hy : ly;
                double Yc = g->oy + (-g->ic * ux + g->ia * uy) / det;
                lo = fmin(lo, Yc), hi = fmax(hi, Yc);
            }
            Ya = lo - 3 > 0 ? (int)(lo - 3) : 0, Yb = hi + 4 < H ? (int)(hi + 4) : H;
        }
        int any = 0;
        /* the box the spans reach in the resized image (a line's points lie between its ends) */
        double bb[4] = {INFINITY, INFINITY, -INFINITY, -INFINITY};
        for (int Y = Ya; Y < Yb; Y++) {
            double dy = Y - g->oy, x0 = 0, x1 = W;
            row_span(g->ia, g->ib * dy, g->ox, lx, hx, W, &x0, &x1);
            row_span(g->ic, g->id * dy, g->ox, ly, hy, W, &x0, &x1);
            span[2 * Y] = (int)x0, span[2 * Y + 1] = (int)x1;
            if (x0 < x1) {
                any = 1;
                for (int e = 0; e < 2; e++) {
                    double dx = (e ? (int)x1 - 1 : (int)x0) - g->ox;
                    double ix = g->ia * dx + g->ib * dy, iy = g->ic * dx + g->id * dy;
                    bb[0] = fmin(bb[0], ix), bb[1] = fmin(bb[1], iy);
                    bb[2] = fmax(bb[2], ix), bb[3] = fmax(bb[3], iy);
                }
            }
        }
        if (!any) continue;
        /* the taps: the tile and a pixel more right and down */
        int r[4] = {sx0, sy0, sx1 < iw ? sx1 : iw - 1, sy1 < ih ? sy1 : ih - 1}, sp[4];
        /* what the tile's pixels read of it: the box of their taps, a pixel more each side (a
         * tile at the canvas' edge computes only its part) */
        int q[4] = {r[0], r[1], r[2], r[3]};
        for (int a = 0; a < 2; a++) {
            double lo = floor(bb[a]) - 1, hi = floor(bb[a + 2]) + 2;
            if (lo > q[a] && lo <= q[a + 2]) q[a] = (int)lo;
            if (hi < q[a + 2] && hi >= q[a]) q[a + 2] = (int)hi;
        }
        /* fg and alpha by blocks of SUB_TILE: a block whose source holds none of the edge band
         * (no alpha) gives rgb's pixels (0); the rest are computed into one buffer */
        enum { NS = SRC_TILE / SUB_TILE };
        int nbx = (sx1 - sx0 + SUB_TILE - 1) / SUB_TILE,
            nby = (sy1 - sy0 + SUB_TILE - 1) / SUB_TILE;
        uint8_t need[K_N][NS * NS];
        int n_need[K_N] = {nbx * nby, 0, 0};
        for (int k = 1; k < K_N; k++) {
            for (int b = 0; b < nbx * nby; b++) {
                int bx0 = sx0 + b % nbx * SUB_TILE, by0 = sy0 + b / nbx * SUB_TILE;
                int br[4] = {bx0, by0, bx0 + SUB_TILE < r[2] ? bx0 + SUB_TILE : r[2],
                             by0 + SUB_TILE < r[3] ? by0 + SUB_TILE : r[3]};
                /* none outside what the tile's pixels read */
                need[k][b] = reg[k] != NULL && br[0] <= q[2] && br[2] >= q[0] && br[1] <= q[3] &&
                             br[3] >= q[1];
                if (need[k][b] && j->maps) {
                    tile_support(j, br, sp);
                    need[k][b] = maps_any(j->maps, j->mt, k == K_FG ? j->maps->fgd : j->maps->anz,
                                          sp[0], sp[1], sp[2], sp[3]);
                }
                n_need[k] += need[k][b];
            }
        }
        src_view v[K_N];
        VipsRect rr = {r[0], r[1], r[2] - r[0] + 1, r[3] - r[1] + 1};
        VipsRect rq = {q[0], q[1], q[2] - q[0] + 1, q[3] - q[1] + 1};
        for (int k = 0; k < K_N; k++) {
            if (!n_need[k]) continue;
            VipsRegion *at = reg[k];
            const VipsRect *vr = &rr;
            if (n_need[k] == nbx * nby) {
                vr = &rq;
                if (vips_region_prepare(reg[k], &rq)) atomic_store(&j->failed, 1);
            } else if (vips_region_buffer(dst[k], &rr)) {
                atomic_store(&j->failed, 1);
            } else {
                at = dst[k];
                for (int b = 0; b < nbx * nby && !atomic_load(&j->failed); b++) {
                    if (!need[k][b]) continue;
                    int bx0 = sx0 + b % nbx * SUB_TILE, by0 = sy0 + b / nbx * SUB_TILE;
                    int bx1 = bx0 + SUB_TILE < r[2] ? bx0 + SUB_TILE : r[2],
                        by1 = by0 + SUB_TILE < r[3] ? by0 + SUB_TILE : r[3];
                    bx0 = bx0 > q[0] ? bx0 : q[0], by0 = by0 > q[1] ? by0 : q[1];
                    bx1 = bx1 < q[2] ? bx1 : q[2], by1 = by1 < q[3] ? by1 : q[3];
                    VipsRect br = {bx0, by0, bx1 - bx0 + 1, by1 - by0 + 1};
                    if (vips_region_prepare_to(reg[k], dst[k], &br, bx0, by0))
                        atomic_store(&j->failed, 1);
                }
            }
            if (atomic_load(&j->failed)) break;
            v[k] = j->fmt[k];
            v[k].p = VIPS_REGION_ADDR(at, vr->left, vr->top);
            v[k].lskip = VIPS_REGION_LSKIP(at);
            v[k].left = vr->left, v[k].top = vr->top, v[k].right = vr->left + vr->width - 1;
        }
        if (atomic_load(&j->failed)) break;
        float *rgb = j->out[K_RGB], *fg = j->out[K_FG], *al = j->out[K_ALPHA];
        /* the photo's formats (3-band 8-bit or float colour, 16-bit alpha) take the fast path */
        int fast = nb[K_RGB] == 3 && j->fmt[K_RGB].fmt != 1 &&
                   (!fg || (nb[K_FG] == 3 && j->fmt[K_FG].fmt == j->fmt[K_RGB].fmt)) &&
                   (!al || (nb[K_ALPHA] == 1 && j->fmt[K_ALPHA].fmt == 1));
#if defined(TS_FRAME_AVX2)
        int c8 = fast && have_avx2();
        c8_job cj = {g,
                     v,
                     {rgb, fg, al},
                     W,
                     sx0,
                     sx1,
                     sy0,
                     sy1,
                     nbx,
                     fg ? need[K_FG] : NULL,
                     al ? need[K_ALPHA] : NULL,
                     0,
                     0,
                     j->fg_own[me],
                     j->ctx_};
        /* a tile whose sub-blocks all resample fg (alpha), or none, needs no look at them */
        for (int k = K_FG; k < K_N; k++) {
            const uint8_t **nk = k == K_FG ? &cj.need_fg : &cj.need_al;
            int *all = k == K_FG ? &cj.fg_all : &cj.al_all;
            if (!*nk) continue;
            int first = (*nk)[0], same = 1;
            for (int b = 1; b < nbx * nby && same; b++) same = (*nk)[b] == first;
            if (same) *all = first, *nk = NULL;
        }
#endif
        for (int Y = Ya; Y < Yb; Y++) {
            int X0 = span[2 * Y], X1 = span[2 * Y + 1];
            if (X0 >= X1) continue;
            double dy = Y - g->oy, by = g->ib * dy, dyy = g->id * dy;
#if defined(TS_FRAME_AVX2)
            int c8_from = X0;
#endif
            for (int X = X0; X < X1; X++) {
#if defined(TS_FRAME_AVX2)
                if (c8 && X >= c8_from && X + 8 <= X1) {
                    int Xn = canvas8_run(&cj, Y, X, X1, by, dyy);
                    c8_from = Xn + 4; /* then one by one for a while */
                    if (Xn > X) {
                        X = Xn - 1;
                        continue;
                    }
                }
#endif
                double dx = X - g->ox;
                double ix = g->ia * dx + by, iy = g->ic * dx + dyy;
                double fx0 = floor_fast(ix), fy0 = floor_fast(iy);
                double cx = fx0 < 0 ? 0 : fx0 > iw - 1 ? iw - 1 : fx0;
                double cy = fy0 < 0 ? 0 : fy0 > ih - 1 ? ih - 1 : fy0;
                if (cx < sx0 || cx >= sx1 || cy < sy0 || cy >= sy1) continue;
                size_t o = (size_t)Y * W + X;
                int above = 0;
                if (fx0 < -1 || fy0 < -1 || fx0 > iw - 1 || fy0 > ih - 1) {
                    /* More than a pixel past the photo's edge (frame keeps this to the least it
                     * can, and the edits say so): the edge continued, as libvips' "extend copy"
                     * does, the colours from the nearest edge pixel, the person too below and
                     * beside (a body cut by the photo's edge goes on to the frame's), but
                     * nothing added above the head: there alpha is 0. The canvas is upright
                     * whichever way the photo lies, so "above" is above the eyes' row. */
                    above = Y < j->eye_row;
                    ix = ix < 0 ? 0 : ix > iw - 1 ? iw - 1 : ix;
                    iy = iy < 0 ? 0 : iy > ih - 1 ? ih - 1 : iy;
                    fx0 = floor_fast(ix), fy0 = floor_fast(iy);
                }
                int b = ((int)cy - sy0) / SUB_TILE * nbx + ((int)cx - sx0) / SUB_TILE;
                int own_fg = fg && need[K_FG][b];
#if defined(__SSE2__)
                int x0 = (int)fx0, y0 = (int)fy0;
                if (fast && x0 >= 0 && y0 >= 0 && x0 + 1 < iw && y0 + 1 < ih) {
                    /* inside, the photo's formats: the weights once for the three images */
                    float fx = (float)(ix - fx0), fy = (float)(iy - fy0);
                    float w00 = (1 - fx) * (1 - fy), w01 = fx * (1 - fy), w10 = (1 - fx) * fy,
                          w11 = fx * fy;
                    __m128 W00 = _mm_set1_ps(w00), W01 = _mm_set1_ps(w01);
                    __m128 W10 = _mm_set1_ps(w10), W11 = _mm_set1_ps(w11);
                    __m128 sum = taps3(&v[K_RGB], x0, y0, W00, W01, W10, W11);
                    store3(rgb + o * 3, sum);
                    if (fg && !own_fg) store3(fg + o * 3, sum);
                    if (own_fg) {
                        store3(fg + o * 3, taps3(&v[K_FG], x0, y0, W00, W01, W10, W11));
                        j->fg_own[me][Y / TILE_H * j->ctx_ + X / TILE_W] = 1;
                    }
                    if (al && need[K_ALPHA][b] && !above) {
                        const src_view *va = &v[K_ALPHA];
                        const uint16_t *a0 =
                            (const uint16_t *)(va->p + (size_t)(y0 - va->top) * va->lskip) +
                            (x0 - va->left);
                        const uint16_t *a1 = (const uint16_t *)((const uint8_t *)a0 + va->lskip);
                        al[o] = (w00 * a0[0] + w01 * a0[1] + w10 * a1[0] + w11 * a1[1]) * va->scale;
                    } else if (al) {
                        al[o] = 0;
                    }
                    continue;
                }
#endif
                sample_px(g, &v[K_RGB], ix, iy, fx0, fy0, rgb + o * nb[K_RGB],
                          fg && !own_fg ? fg + o * nb[K_FG] : NULL);
                if (own_fg) {
                    sample_px(g, &v[K_FG], ix, iy, fx0, fy0, fg + o * nb[K_FG], NULL);
                    j->fg_own[me][Y / TILE_H * j->ctx_ + X / TILE_W] = 1;
                }
                if (al && need[K_ALPHA][b] && !above)
                    sample_px(g, &v[K_ALPHA], ix, iy, fx0, fy0, al + o * nb[K_ALPHA], NULL);
                else if (al)
                    for (int c = 0; c < nb[K_ALPHA]; c++) al[o * nb[K_ALPHA] + c] = 0;
            }
        }
    }
    free(span);
    for (int k = 0; k < K_N; k++) {
        if (reg[k]) g_object_unref(reg[k]);
        if (dst[k]) g_object_unref(dst[k]);
    }
}

/* How a source is resampled. */
enum {
    KEEP_FORMAT, /* resample as it is (the 16-bit alpha) */
    FLOAT_FIRST, /* cast to float, then resample: no rounding at all */
    FLOAT_AFTER  /* resize in 8 bits (libvips' vectorised path, about twice as fast), then
                    float for the rotation: rounded once, by the resize (half a level) */
};

/* The lazy lanczos resize by sc of src (which it unrefs), as the format asks; NULL on failure. */
static VipsImage *resized(VipsImage *src, double sc, int format) {
    if (!src) return NULL;
    VipsImage *f = NULL, *res = NULL;
    if (format == FLOAT_FIRST && vips_cast_float(src, &f, NULL) == 0) {
        g_object_unref(src);
        src = f;
    } else if (format == FLOAT_FIRST) {
        g_object_unref(src);
        return NULL;
    }
    if (vips_resize(src, &res, sc, NULL)) res = NULL;
    g_object_unref(src);
    if (res && res->BandFmt != VIPS_FORMAT_UCHAR && res->BandFmt != VIPS_FORMAT_USHORT &&
        res->BandFmt != VIPS_FORMAT_FLOAT) {
        g_object_unref(res);
        vips_error("frame", "%s", "8-bit, 16-bit or float input only");
        return NULL;
    }
    return res;
}

/* The canvas for g into canvas[K_N] (NULL where there is no matte); fg_own (per canvas tile,
 * TILE_W x TILE_H, malloc'd) says where fg was resampled itself. Returns 0, or -1 with the
 * libvips error set. */
static int render_canvas(ts_render_job *job, VipsImage *full, const frame_geom *g,
                         VipsImage *canvas[K_N], uint8_t **fg_own) {
    ts_render_cache *c = job->cache;
    const ts_matte *mt = job->matte;
    canvas_job j = {.W = g->W, .H = g->H, .mt = mt, .eye_row = g->A[1]};
    int ctx_ = (g->W + TILE_W - 1) / TILE_W, nct = ctx_ * ((g->H + TILE_H - 1) / TILE_H);
    j.ctx_ = ctx_;
    atomic_init(&j.next, 0), atomic_init(&j.failed, 0);
    double E[2] = {g->E[0], g->E[1]}, sc = g->s;
    int ox, oy;
    if (g->half) {
        /* Shrinking by HALF_FROM or more: from the half-resolution copies (the resize left is
         * still a reduction, by 1.05 or more). Coordinates there: x / 2 for pixel corners, so a
         * centre x lands at (x + 0.5) / 2 - 0.5. */
        int hx = g->ex / 2, hy = g->ey / 2, hx1 = (g->ex1 + 1) / 2, hy1 = (g->ey1 + 1) / 2;
        hx1 = hx1 > c->rgb2->Xsize ? c->rgb2->Xsize : hx1;
        hy1 = hy1 > c->rgb2->Ysize ? c->rgb2->Ysize : hy1;
        E[0] = (E[0] + 0.5) / 2 - 0.5, E[1] = (E[1] + 0.5) / 2 - 0.5, sc = 2 * g->s;
        VipsImage *src[K_N] = {c->rgb2, mt ? c->fg2 : NULL, mt ? c->alpha2 : NULL};
        for (int k = 0; k < K_N; k++) {
            VipsImage *reg = NULL;
            if (src[k] && vips_extract_area(src[k], &reg, hx, hy, hx1 - hx, hy1 - hy, NULL) == 0)
                j.res[k] = resized(reg, sc, k == K_ALPHA ? KEEP_FORMAT : FLOAT_AFTER);
        }
        ox = hx, oy = hy, j.lw = hx1 - hx, j.lh = hy1 - hy, j.L = 2;
    } else {
        int ew = g->ex1 - g->ex, eh = g->ey1 - g->ey;
        /* A reduction is resized in 8 bits, as from the half copies (libvips' vectorised
         * vertical pass; its float passes sum in scalar double chains, three times the cost):
         * rounded once, by half a level at most. An enlargement stays float. */
        int colour = sc < 1 ? FLOAT_AFTER : FLOAT_FIRST;
        VipsImage *reg = NULL;
        if (vips_extract_area(full, &reg, g->ex, g->ey, ew, eh, NULL) == 0) {
            if (mt) {
                /* The decontaminated foreground colour: the matte's estimate inside its
                 * region, the photo's own pixels outside it (where alpha is 0 and it is never
                 * shown). */
                VipsImage *fg = fg_area(mt, full, g->ex, g->ey, ew, eh);
                if (fg) j.res[K_FG] = resized(fg, sc, colour);
                j.res[K_ALPHA] = resized(matte_alpha(mt, g->ex, g->ey, ew, eh), sc, KEEP_FORMAT);
            }
            j.res[K_RGB] = resized(reg, sc, colour);
        }
        ox = g->ex, oy = g->ey, j.lw = ew, j.lh = eh, j.L = 1;
    }
    j.lx = ox, j.ly = oy, j.sc = sc;
    int ok = j.res[K_RGB] && (!mt || (j.res[K_FG] && j.res[K_ALPHA]));
    for (int k = 1; ok && k < K_N; k++)
        ok =
            !j.res[k] || (j.res[k]->Xsize == j.res[0]->Xsize && j.res[k]->Ysize == j.res[0]->Ysize);
    if (ok) {
        /* canvas = R(-t) (resized - Er) + A, with the resized photo's pixel centres where the
         * photo's land (the offsets as vips_affine takes them: it maps pixel corners) */
        double Er[2] = {sc * (E[0] - ox) + 0.5 * sc - 0.5, sc * (E[1] - oy) + 0.5 * sc - 0.5};
        double cs = cos(g->t), sn = sin(g->t), a = cs, b = sn, cc = -sn, d = cs;
        double det = a * d - b * cc;
        j.g = (rot_geom){j.res[0]->Xsize,
                         j.res[0]->Ysize,
                         d / det,
                         -b / det,
                         -cc / det,
                         a / det,
                         g->A[0] - (a * Er[0] + b * Er[1]) + 0.5 * (a + b) - 0.5,
                         g->A[1] - (cc * Er[0] + d * Er[1]) + 0.5 * (cc + d) - 0.5};
        for (int k = 0; k < K_N; k++) {
            if (!j.res[k]) continue;
            VipsImage *r = j.res[k];
            j.fmt[k] = (src_view){.bands = r->Bands,
                                  .fmt = r->BandFmt == VIPS_FORMAT_FLOAT    ? 2
                                         : r->BandFmt == VIPS_FORMAT_USHORT ? 1
                                                                            : 0,
                                  .black = k == K_ALPHA,
                                  .scale = k == K_ALPHA ? 1.f / 65535 : 1.f};
            j.out[k] = canvas_alloc(sizeof(float) * (size_t)g->W * g->H * r->Bands);
            ok = ok && j.out[k];
        }
        if (!ok) vips_error("frame", "%s", "out of memory");
    }
    /* the shortcuts need fg in rgb's format */
    if (ok && mt && c && j.fmt[K_FG].bands == j.fmt[K_RGB].bands &&
        j.fmt[K_FG].fmt == j.fmt[K_RGB].fmt && maps_fill(c, job, full) == 0)
        j.maps = &c->maps;
    uint8_t *own = ok ? calloc((size_t)nct, 2) : NULL;
    if (ok && !own) ok = 0, vips_error("frame", "%s", "out of memory");
    if (ok) {
        j.fg_own[0] = own, j.fg_own[1] = own + nct;
        j.nsx = (j.g.iw + SRC_TILE - 1) / SRC_TILE, j.nsy = (j.g.ih + SRC_TILE - 1) / SRC_TILE;
        ts_render_split2(canvas_range, &j, 2, 2);
        ok = !atomic_load(&j.failed);
        for (int t = 0; t < nct; t++) own[t] |= own[nct + t];
    }
    for (int k = 0; k < K_N; k++) {
        canvas[k] = NULL;
        if (ok && j.out[k]) {
            canvas[k] = canvas_wrap(j.out[k], g->W, g->H, j.fmt[k].bands, j.res[k]);
            ok = ok && canvas[k];
            /* the kept canvas holds rgb and alpha, and copies of fg's tiles: fg is the job's
             * alone, and tone may write it in place */
            if (ok && k == K_FG) ts_render_own(canvas[k]);
        } else {
            canvas_release(j.out[k]);
        }
        if (j.res[k]) g_object_unref(j.res[k]);
    }
    if (!ok) {
        for (int k = 0; k < K_N; k++) ts_render_replace(&canvas[k], NULL);
        free(own);
        return -1;
    }
    *fg_own = own;
    return 0;
}

/* ---- the frame ---------------------------------------------------------------------------- */

enum { OVER_TOP = 1, OVER_BOTTOM = 2, OVER_SIDES = 4 };

/* The head's height: forehead to chin (mesh points 10 to 152) times HAIR_FACTOR for the hair
 * above the mesh, or as measured on the matte (measured_head: a strip HAIR_STRIP face heights
 * wide, person in HAIR_SOLID of it), up to HEAD_MEASURED_MAX times that estimate. */
#define HAIR_FACTOR 1.35
#define HAIR_STRIP 0.5
#define HAIR_SOLID 0.25
#define HEAD_MEASURED_MAX 1.25

/* Fits a W x H canvas turned by t about the eyes E on a PW x PH photo, from the scale s0 and
 * the eye line *eye (fraction of H) of the template: *s, *eye, A (the eyes' canvas position)
 * and box (the photo-space box the canvas covers) as fitted; returns where it still shows past
 * the photo (OVER_*). The bottom and the sides are hard limits (a body cut by the photo's edge
 * must not float above the frame's edge): zoom in, up to 1.8x, and if the bottom still shows
 * past the photo, lower the eyes in the frame, up to halfway; if a side still shows past it, move
 * the eyes off the centre line toward it, up to SHIFT_MAX; then zoom on up to ZOOM_MAX_HARD.
 * The top is softer: raise the eyes to 0.30, then zoom up to 1.8x. */
static int fit_frame(double s0, double t, const double E[2], int W, int H, int PW, int PH,
                     bool top_free, double *s_out, double *eye_out, double A[2], double box[4]) {
    double s = s0, eye = *eye_out;
    A[0] = W / 2.0, A[1] = eye * H;
    for (int it = 0; it < 200; it++) {
        canvas_bounds(s, t, E, A, W, H, box);
        bool over_bottom = box[3] > PH + 0.5, over_sides = box[0] < -0.5 || box[2] > PW + 0.5;
        bool over_top = !top_free && box[1] < -0.5;
        if (!over_bottom && !over_sides && !over_top) break;
        /* one side only: moving the frame toward the other can help (the canvas's left reaches
         * past the photo's left: the eyes move left in the canvas) */
        int toward = (box[0] < -0.5) == (box[2] > PW + 0.5) ? 0 : box[0] < -0.5 ? -1 : 1;
        double shifted = A[0] + toward * SHIFT_STEP * W;
        if (over_bottom || over_sides) {
            if (s < s0 * 1.8)
                s *= 1.01;
            else if (over_bottom && eye < 0.5)
                eye += 0.005, A[1] = eye * H;
            else if (toward && fabs(shifted - W / 2.0) <= SHIFT_MAX * W + 1e-9)
                A[0] = shifted;
            else if (s < s0 * ZOOM_MAX_HARD)
                s *= 1.01; /* a closer crop than the template's, rather than a made-up edge */
            else
                break;
        } else if (eye > 0.30) {
            eye -= 0.005, A[1] = eye * H;
        } else if (s < s0 * 1.8) {
            s *= 1.01;
        } else {
            break;
        }
    }
    canvas_bounds(s, t, E, A, W, H, box);
    *s_out = s, *eye_out = eye;
    return (!top_free && box[1] < -0.5 ? OVER_TOP : 0) | (box[3] > PH + 0.5 ? OVER_BOTTOM : 0) |
           (box[0] < -0.5 || box[2] > PW + 0.5 ? OVER_SIDES : 0);
}

/* The head's height measured on the matte, chin (mesh point 152) to the top of the hair or hat,
 * along the face's own up (chin to forehead, point 10): the cross-section of the person, a strip
 * HAIR_STRIP face heights wide on the axis, walked up from the forehead a pixel at a time to the
 * last step where at least HAIR_SOLID of it is person (alpha >= 0.5). 0 when there is no matte,
 * or the walk reaches its region's edge (what lies beyond is not known). */
static double measured_head(const ts_render_job *job, const float (*L)[3], double fh) {
    const ts_matte *mt = job->matte;
    if (!mt || fh < 4) return 0;
    /* (measured once per photo, matte and face: every look asks the same) */
    ts_render_cache *c = job->cache;
    if (c && c->head.photo == job->photo && c->head.matte == mt && c->head.face == job->face)
        return c->head.px;
    double ux = (L[10][0] - L[152][0]) / fh, uy = (L[10][1] - L[152][1]) / fh; /* up */
    double vx = -uy, vy = ux;                                                  /* across */
    int half = (int)ceil(HAIR_STRIP / 2 * fh), last = 0, left = 0;
    for (int step = 0; step < (int)(2 * fh) && !left; step++) {
        double cx = L[10][0] + ux * step, cy = L[10][1] + uy * step;
        int on = 0, n = 0;
        for (int k = -half; k <= half && !left; k++) {
            int x = (int)lround(cx + vx * k) - mt->x, y = (int)lround(cy + vy * k) - mt->y;
            if (x < 0 || y < 0 || x >= mt->w || y >= mt->h) {
                left = k == 0; /* the axis leaves the matte's region */
                continue;
            }
            n++;
            on += ts_matte_alpha_at(mt, x, y) >= 32768;
        }
        if (left || n == 0 || on < HAIR_SOLID * n) break;
        last = step;
    }
    double px = left ? 0 : fh + last;
    if (c)
        c->head.photo = job->photo, c->head.matte = mt, c->head.face = job->face, c->head.px = px;
    return px;
}

int ts_frame_height(const void *params) {
    const frame_params *p = params;
    return (int)lround(p->width / crop_aspect[p->crop]);
}

int ts_frame_face_cut(const ts_face_analysis *f, int PW, int PH) {
    const float(*L)[3] = f->landmarks;
    double fh = hypot(L[152][0] - L[10][0], L[152][1] - L[10][1]);
    double fw = hypot(L[454][0] - L[234][0], L[454][1] - L[234][1]);
    if (fh < 1) return 0;
    double ux = (L[10][0] - L[152][0]) / fh, uy = (L[10][1] - L[152][1]) / fh; /* the face's up */
    double tol = FACE_CUT_TOL * fw;
    /* the photo's edges: outward normal, and how far past each the face reaches */
    static const double nx[4] = {-1, 1, 0, 0}, ny[4] = {0, 0, -1, 1};
    double past[4] = {0};
    for (int i = 0; i < TS_LANDMARKS; i++) {
        past[0] = fmax(past[0], -L[i][0]), past[1] = fmax(past[1], L[i][0] - PW);
        past[2] = fmax(past[2], -L[i][1]), past[3] = fmax(past[3], L[i][1] - PH);
    }
    int cut = 0;
    for (int e = 0; e < 4; e++) {
        if (past[e] <= tol) continue;
        double up = nx[e] * ux + ny[e] * uy;
        if (up > 0.7) continue; /* above the head: framed, with a note (frame_geometry) */
        cut |= up < -0.7 ? TS_FACE_CUT_BELOW : TS_FACE_CUT_SIDE;
    }
    return cut;
}

/* The sentence for a face ts_frame_face_cut found cut. */
static const char *cut_reason(int cut) {
    return cut & TS_FACE_CUT_SIDE && cut & TS_FACE_CUT_BELOW
               ? "the face runs off the photo beside it and below the chin, so no headshot can "
                 "be framed without making part of it up; use a photo with room around the "
                 "head and shoulders (trueshot check grades photos for this)"
           : cut & TS_FACE_CUT_SIDE
               ? "the face runs off the photo's edge beside it, so no headshot can be framed "
                 "without making part of it up; use a photo with room on both sides of the "
                 "head (trueshot check grades photos for this)"
               : "the chin runs off the photo's edge, so no headshot can be framed without "
                 "making part of the face up; use a photo that shows the neck and shoulders "
                 "(trueshot check grades photos for this)";
}

ts_status ts_frame_refusal(ts_ctx *ctx, ts_photo *p, const ts_face_analysis *f) {
    /* (the photo the landmarks are in: its decode, as frame takes it) */
    int cut = ts_frame_face_cut(f, ts_photo_width(p), ts_photo_height(p));
    if (cut) return ts_fail(ctx, TS_ERR_FRAMING, "%s", cut_reason(cut));
    const ts_face *faces;
    int n;
    ts_status st = ts_photo_faces(ctx, p, &faces, &n);
    if (st) return st;
    if (f->face < 0 || f->face >= n || faces[f->face].w >= TS_FACE_MIN_PX) return TS_OK;
    /* (a sharp 1200 px headshot wants ~245 px between the eyes, check.c: a face ~575 wide) */
    return ts_fail(ctx, TS_ERR_FACE_SMALL,
                   "the face is too small to make a headshot of: %.0f px wide in this photo, "
                   "where a headshot needs at least %d (a sharp 1200 px one about 575); use a "
                   "photo taken closer, or the camera's full-size file",
                   faces[f->face].w, TS_FACE_MIN_PX);
}

/* The frame's geometry for p (the transform and the part of the photo it needs), and the notes
 * on what the photo lacks. */
static ts_status frame_geometry(ts_render_job *job, const frame_params *p, int PW, int PH,
                                frame_geom *g) {
    const ts_face_analysis *f = job->face;
    int W = p->width, H = ts_frame_height(p);
    const float(*L)[3] = f->landmarks;
    /* A face cut by the photo's side or bottom cannot be framed: the frame would repeat the
     * edge's pixels across it (cut at the top it is framed, and the note says so); nor can a
     * thumbnail's. */
    ts_status refused = ts_frame_refusal(job->ctx, job->photo, f);
    if (refused) return refused;
    /* A photo lying on its side or upside down (saved without its EXIF orientation) is turned
     * upright whatever the style says; what roll is left is levelled as any other. */
    double roll;
    double upright = ts_pose_quarters(f, &roll) * (M_PI / 2);
    double r = p->level ? roll - upright : 0;
    /* A small roll is a camera held askew or a head not quite straight, and levelling the eyes
     * is what a retoucher does; a large one is a pose (the head tilted on purpose), and turning
     * the photo to level it would tip the shoulders and the room behind by as much, and push a
     * corner of the frame off the photo. */
    g->kept_tilt = fabs(r) > LEVEL_MAX_DEG * M_PI / 180 ? r : 0;
    if (g->kept_tilt) r = 0;
    g->upright = upright;
    double t = upright + r;
    double E[2] = {(L[468][0] + L[473][0]) / 2, (L[468][1] + L[473][1]) / 2};
    /* Head height in the levelled frame: chin to the top of the hair. Estimated from the mesh
     * (forehead to chin, plus hair), and measured on the matte where there is one: hair fuller
     * than the estimate's, a head tilted down (its forehead-to-chin foreshortened, its crown
     * showing more), a hat. The measure only adds room, and at most HEAD_MEASURED_MAX times the
     * estimate (a big hairdo is cropped into, as a photographer would, rather than shrinking
     * the face). */
    double fh = hypot(L[152][0] - L[10][0], L[152][1] - L[10][1]);
    double est = HAIR_FACTOR * fh, meas = measured_head(job, L, fh);
    double head_px = meas > est ? fmin(meas, HEAD_MEASURED_MAX * est) : est;
    /* Above the head, past the photo's top, a replaced backdrop shows (the matte's alpha is 0
     * there): where the hair ends inside the photo, the frame may reach past its top rather
     * than be pushed down onto the head. */
    double crown_y = L[10][1] + (L[10][1] - L[152][1]) / fh * (meas - fh);
    bool top_free = meas > 0 && upright == 0 && crown_y > 2;
    double head_frac = p->head > 0 ? p->head : crop_head[p->crop];
    double eye = p->eye_line > 0 ? p->eye_line : crop_eye[p->crop];
    double s = head_frac * H / head_px;
    double A[2] = {W / 2.0, eye * H};
    double box[4];
    /* Level the eyes fully where the frame then stays on the photo. Where it does not (a turned
     * frame's corners reach past the photo's edge: a wedge of nothing, or of the backdrop under
     * a body cut by the photo's bottom edge), turn it less, in quarters, down to not at all,
     * and take the first that stays on the photo; failing that, the first that stays on it at
     * the bottom and the sides; failing that, full levelling, as the notes below say. */
    static const double share[] = {1, 0.75, 0.5, 0.25, 0};
    int pick = 0, n_share = r != 0 ? 5 : 1;
    for (int pass = 0; pass < 2 && n_share > 1; pass++) {
        int found = -1;
        for (int k = 0; k < n_share && found < 0; k++) {
            double sk = s, ek = eye, Ak[2] = {A[0], A[1]}, bk[4];
            int over =
                fit_frame(s, upright + r * share[k], E, W, H, PW, PH, top_free, &sk, &ek, Ak, bk);
            if (pass == 0 ? !over : !(over & (OVER_BOTTOM | OVER_SIDES))) found = k;
        }
        if (found >= 0) {
            pick = found;
            break;
        }
    }
    t = upright + r * share[pick];
    fit_frame(s, t, E, W, H, PW, PH, top_free, &s, &eye, A, box);
    if (pick > 0)
        ts_render_note(job,
                       "levelled the eyes only partly (%.1f of %.1f degrees): turning the photo "
                       "further would show past its edge",
                       fabs(r * share[pick]) * 180 / M_PI, fabs(r) * 180 / M_PI);
    canvas_bounds(s, t, E, A, W, H, box);
    double head_top = L[10][1] - (head_px - fh); /* approx. top of the hair, photo y */
    if (box[1] < -0.5 && !top_free) {
        if (head_top < 0)
            ts_render_note(job, "the top of the head is cut off in the photo; leave room above "
                                "the head next time");
        else
            /* (the eyes may have been raised or lowered to fit: say what the photo lacks, not
             * where the head ended up) */
            ts_render_note(job,
                           "the photo has little room above the head for the %s framing; "
                           "leave more room above the head next time",
                           crop_names[p->crop]);
    }
    if (box[3] > PH + 0.5)
        ts_render_note(job, "the photo ends above the shoulders; the frame shows less body than "
                            "usual");
    /* The part of the photo needed, with a margin for the resampling kernel. */
    *g = (frame_geom){.W = W,
                      .H = H,
                      .PW = PW,
                      .PH = PH,
                      .s = s,
                      .t = t,
                      .kept_tilt = g->kept_tilt,
                      .upright = upright};
    memcpy(g->E, E, sizeof E), memcpy(g->A, A, sizeof A), memcpy(g->box, box, sizeof box);
    g->ex = (int)floor(fmax(0, box[0] - 4)), g->ey = (int)floor(fmax(0, box[1] - 4));
    g->ex1 = (int)ceil(fmin(PW, box[2] + 4)), g->ey1 = (int)ceil(fmin(PH, box[3] + 4));
    if (g->ex1 - g->ex < 2 || g->ey1 - g->ey < 2)
        return ts_fail(job->ctx, TS_ERR_INTERNAL, "frame: empty crop");
    return TS_OK;
}

/* Sets the job's transform, landmarks and edits for g. */
static void finish(ts_render_job *job, const frame_geom *g, const frame_params *p) {
    const ts_face_analysis *f = job->face;
    const float(*L)[3] = f->landmarks;
    double c = cos(g->t), sn = sin(g->t), s = g->s, t = g->t;
    job->m[0] = s * c, job->m[1] = s * sn, job->m[3] = -s * sn, job->m[4] = s * c;
    job->m[2] = g->A[0] - (job->m[0] * g->E[0] + job->m[1] * g->E[1]);
    job->m[5] = g->A[1] - (job->m[3] * g->E[0] + job->m[4] * g->E[1]);
    for (int i = 0; i < TS_LANDMARKS; i++) {
        job->lm[i][0] = (float)(job->m[0] * L[i][0] + job->m[1] * L[i][1] + job->m[2]);
        job->lm[i][1] = (float)(job->m[3] * L[i][0] + job->m[4] * L[i][1] + job->m[5]);
    }
    job->inter_eye = (float)(f->inter_eye_px * s);
    if (g->upright != 0) /* (image y points down: an angle > 0 leans clockwise) */
        ts_render_edit(job, "turned the photo upright (%s)",
                       fabs(g->upright) > 3 * M_PI / 4 ? "a half turn"
                       : g->upright > 0                ? "a quarter turn anticlockwise"
                                                       : "a quarter turn clockwise");
    if (p->level && fabs(t - g->upright) > 0.2 * M_PI / 180)
        ts_render_edit(job, "levelled the eyes (turned %.1f degrees)",
                       -(t - g->upright) * 180 / M_PI);
    if (g->kept_tilt)
        ts_render_note(job,
                       "the head is tilted %.0f degrees, more than a crooked camera would give: "
                       "kept as a pose rather than levelled, which would tip the shoulders too",
                       fabs(g->kept_tilt) * 180 / M_PI);
    ts_render_edit(job, "cropped to %s %dx%d", crop_names[p->crop], g->W, g->H);
    /* How far the frame reaches past the photo, in canvas pixels: there the edge is continued
     * (render_canvas), which is said as an edit, as anything made up is. */
    double past = fmax(fmax(-g->box[0], -g->box[1]), fmax(g->box[2] - g->PW, g->box[3] - g->PH));
    if (past * s >= 2)
        ts_render_edit(job,
                       "continued the photo past its edge by up to %.0f px (edge pixels repeated)",
                       past * s);
    if (s > ENLARGE_SOFT)
        ts_render_note(job,
                       "enlarged %.1fx from the photo, so soft at full size: the photo holds "
                       "detail for about %dx%d; shoot closer or at full resolution for a sharp "
                       "%dx%d",
                       s, (int)lround(g->W / s), (int)lround(g->H / s), g->W, g->H);
}

/* Whether a canvas made for a serves for b. Styles that mean the template's eye line or head
 * size but write it out (a style's 0.52 is the float nearest, not the template's 0.52) land a
 * few millionths of a pixel apart: such canvases differ by less than a thousandth of a level,
 * and are the same picture. Everything that decides which pixels are read must be equal. */
static int same_canvas(const frame_geom *a, const frame_geom *b) {
    return a->W == b->W && a->H == b->H && a->PW == b->PW && a->PH == b->PH && a->t == b->t &&
           a->E[0] == b->E[0] && a->E[1] == b->E[1] && a->ex == b->ex && a->ey == b->ey &&
           a->ex1 == b->ex1 && a->ey1 == b->ey1 && a->half == b->half &&
           fabs(a->s - b->s) <= 1e-7 * a->s && fabs(a->A[0] - b->A[0]) <= 1e-5 &&
           fabs(a->A[1] - b->A[1]) <= 1e-5;
}

typedef struct copy_job {
    const float *from;
    float *to;
} copy_job;

static void copy_range(size_t first, size_t n, void *user) {
    const copy_job *j = user;
    memcpy(j->to + first, j->from + first, sizeof(float) * n);
}

/* Gives the job the kept canvas when it was made for the same photo, matte, face and geometry:
 * rgb and alpha by reference, fg as rgb's copy with its own tiles laid on it. Returns 1 then,
 * else 0. */
static int last_take(ts_render_job *job, const frame_geom *g) {
    ts_render_cache *c = job->cache;
    if (!c || !c->last.rgb || c->last.photo != job->photo || c->last.matte != job->matte ||
        c->last.face != job->face || !same_canvas(&c->last.g, g))
        return 0;
    VipsImage *fg = NULL;
    if (job->matte) {
        if ((!c->last.fg_tile && c->last.n_fg_tiles) || c->last.rgb->Bands != 3) return 0;
        VipsImage *rgb = c->last.rgb;
        int W = rgb->Xsize, H = rgb->Ysize, ntx = (W + TILE_W - 1) / TILE_W;
        float *px = canvas_alloc(sizeof(float) * (size_t)W * H * 3);
        if (!px) return 0;
        copy_job cj = {(const float *)VIPS_IMAGE_ADDR(rgb, 0, 0), px};
        ts_render_split2(copy_range, &cj, (size_t)W * H * 3, 1 << 16);
        const float *from = c->last.fg_px;
        for (int k = 0; k < c->last.n_fg_tiles; k++) {
            int t = c->last.fg_tile[k], X0 = t % ntx * TILE_W, Y0 = t / ntx * TILE_H;
            int X1 = X0 + TILE_W < W ? X0 + TILE_W : W, Y1 = Y0 + TILE_H < H ? Y0 + TILE_H : H;
            for (int Y = Y0; Y < Y1; Y++, from += (X1 - X0) * 3)
                memcpy(px + ((size_t)Y * W + X0) * 3, from, sizeof(float) * (X1 - X0) * 3);
        }
        if (!(fg = canvas_wrap(px, W, H, 3, rgb))) return 0;
        ts_render_own(fg); /* the job's alone: tone may write it in place */
    }
    ts_render_replace(&job->rgb, g_object_ref(c->last.rgb));
    ts_render_replace(&job->alpha, c->last.alpha ? g_object_ref(c->last.alpha) : NULL);
    ts_render_replace(&job->fg, fg);
    return 1;
}

/* Keeps the canvas just made (fg_own: which fg tiles differ from rgb; taken over). */
static void last_keep(ts_render_job *job, const frame_geom *g, uint8_t *fg_own) {
    ts_render_cache *c = job->cache;
    if (!c) {
        free(fg_own);
        return;
    }
    last_clear(c);
    if (job->fg && (job->fg->Bands != 3 || job->rgb->Bands != 3)) {
        free(fg_own);
        return; /* nothing kept: the kept foreground is rgb's 3 bands with its own tiles */
    }
    if (job->fg) {
        int W = g->W, H = g->H, ntx = (W + TILE_W - 1) / TILE_W,
            nt = ntx * ((H + TILE_H - 1) / TILE_H);
        size_t n = 0, npx = 0;
        for (int t = 0; t < nt; t++)
            if (fg_own[t]) {
                int X0 = t % ntx * TILE_W, Y0 = t / ntx * TILE_H;
                n++, npx += (size_t)((X0 + TILE_W < W ? X0 + TILE_W : W) - X0) *
                            ((Y0 + TILE_H < H ? Y0 + TILE_H : H) - Y0);
            }
        int *tile = malloc(sizeof *tile * (n ? n : 1));
        float *px = malloc(sizeof *px * 3 * (npx ? npx : 1));
        if (!tile || !px) {
            free(tile), free(px), free(fg_own);
            return; /* nothing kept */
        }
        const float *fg = (const float *)VIPS_IMAGE_ADDR(job->fg, 0, 0);
        float *to = px;
        n = 0;
        for (int t = 0; t < nt; t++) {
            if (!fg_own[t]) continue;
            int X0 = t % ntx * TILE_W, Y0 = t / ntx * TILE_H;
            int X1 = X0 + TILE_W < W ? X0 + TILE_W : W, Y1 = Y0 + TILE_H < H ? Y0 + TILE_H : H;
            for (int Y = Y0; Y < Y1; Y++, to += (X1 - X0) * 3)
                memcpy(to, fg + ((size_t)Y * W + X0) * 3, sizeof(float) * (X1 - X0) * 3);
            tile[n++] = t;
        }
        c->last.fg_tile = tile, c->last.fg_px = px, c->last.n_fg_tiles = (int)n;
    }
    free(fg_own);
    c->last.rgb = g_object_ref(job->rgb);
    c->last.alpha = job->alpha ? g_object_ref(job->alpha) : NULL;
    c->last.photo = job->photo, c->last.matte = job->matte, c->last.face = job->face;
    c->last.g = *g;
}

static ts_status frame_run(ts_render_job *job, const void *params) {
    const frame_params *p = params;
    ts_ctx *ctx = job->ctx;
    VipsImage *full = ts_photo_full(ctx, job->photo);
    if (!full) return TS_ERR_FORMAT;
    frame_geom g;
    ts_status st = frame_geometry(job, p, full->Xsize, full->Ysize, &g);
    if (st) return st;
    g.half = job->cache && g.s <= 1 / 2.1 && cache_fill(job->cache, job, full) == 0;
    if (last_take(job, &g)) {
        finish(job, &g, p);
        return TS_OK;
    }
    /* the canvas kept is not this one: let it go before the new one is made */
    canvas_pool_arm();
    if (job->cache) last_clear(job->cache);
    VipsImage *canvas[K_N];
    uint8_t *fg_own = NULL;
    int failed = render_canvas(job, full, &g, canvas, &fg_own);
    canvas_pool_flush();
    if (failed) return ts_fail(ctx, TS_ERR_INTERNAL, "frame: %s", vips_error_buffer());
    ts_render_replace(&job->rgb, canvas[K_RGB]);
    ts_render_replace(&job->alpha, canvas[K_ALPHA]);
    ts_render_replace(&job->fg, canvas[K_FG]);
    finish(job, &g, p);
    last_keep(job, &g, fg_own);
    return TS_OK;
}

double ts_frame_scale(ts_ctx *ctx, ts_photo *photo, const ts_face_analysis *face,
                      const void *params) {
    ts_render_job job = {0};
    job.ctx = ctx, job.photo = photo, job.face = face;
    frame_geom g;
    double s =
        frame_geometry(&job, params, ts_photo_width(photo), ts_photo_height(photo), &g) ? 0 : g.s;
    ts_render_job_clear(&job);
    return s;
}

const ts_stage ts_stage_frame = {"frame", 1, frame_table, sizeof(frame_params), frame_run};
