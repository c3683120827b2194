/* ts_photo_matte: the person matte at the photo's full resolution (docs/matte.md).
 *
 * 1. region: head and shoulders around the subject's face, or the whole photo;
 * 2. person probability from the segmentation network on the region, neighbours cut away,
 *    at the work resolution (the region in the photo's analysis copy); holes filled;
 * 3. trimap: confident person / background, an uncertain band between them;
 * 4. alpha: colour guided filter of the constrained probability, coefficients at the work
 *    resolution, applied to the full-resolution colour in the band;
 * 5. foreground colour: multi-level estimation at the work resolution, then one local solve per
 *    full-resolution band pixel. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "face/pose.h"
#include "face/regions.h"
#include "matte/matte.h"

/* Region around the face, in face-box sizes (docs/matte.md). */
#define REGION_WIDTH 3.5f /* face widths, centred on the face */
#define REGION_ABOVE 0.8f /* face heights above the box top: hair */
#define REGION_BELOW 3.0f /* face heights below the chin: shoulders and chest */
/* Where the person reaches the region's top (in REGION_TOUCH of its columns) or a side (of the
 * rows above the chin), the region grows by REGION_GROW face heights (widths), at most
 * REGION_GROW_ROUNDS times. */
#define REGION_TOUCH 0.02f
#define REGION_GROW 0.5f
#define REGION_GROW_ROUNDS 2
#define HOLE_MAX_FRAC 0.02 /* larger enclosed background is real (between arm and body) */
#define MIN_PERSON_FRAC 0.005
#define BAND_FRAC 0.012f   /* band half-width per side, fraction of the region's longer side */
#define HAIR_BAND_FACTOR 2 /* above the eyes the band is this much wider */
#define GUIDED_EPS 1e-4f
#define ISLAND_ALPHA 0.05f /* alpha joining a band pixel to the person */
/* The subject's face inside its mesh outline, drawn in by this share of the way to the face's
 * centre, is the person whatever the network and the colours say: the jaw and cheek stay
 * within it (the outline runs along them), and what is left outside it keeps the soft edge.
 * Its own edge is soft too (a Gaussian of this share of the eye distance), so where it meets
 * the background (the shadow under an ear) it adds no hard cut. */
#define FACE_CORE_INSET 0.08f
#define FACE_CORE_FEATHER 0.03f
#define BG_COLOUR_NEAR 3 /* colours for the background-colour test: within 3 band of it */
/* After the guided filter, band pixels become sure background where the background-colour
 * weight, scaled by (BG_HARD_P - p) / BG_HARD_P_RAMP, reaches BG_HARD. */
#define BG_HARD 0.7f
#define BG_HARD_P 0.5f
#define BG_HARD_P_RAMP 0.3f
#define SEGMENT_MIRROR 0 /* run the network on the mirror image too */
/* The guided filter fits its linear model over windows of 1.5 band (wide enough to take in the
 * sure person and background beside the edge, which pin the model), then averages the
 * coefficients over band / 2 (narrow, so the edge stays sharp). */
#define GUIDED_FIT_RADIUS(band) ((band)*3 / 2 > 2 ? (band)*3 / 2 : 2)
#define GUIDED_AVG_RADIUS(band) ((band) / 2 > 2 ? (band) / 2 : 2)

void ts_matte_options_init(ts_matte_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->region = TS_MATTE_HEAD_AND_SHOULDERS;
    o->decontaminate = 1;
}

void ts_matte_free(ts_matte *m) {
    if (!m) return;
    free(m->a_index);
    free(m->a_blocks);
    free(m->fg_index);
    free(m->fg_blocks);
    if (m->photo) g_object_unref(m->photo);
    free(m);
}

void ts_matte_alpha_span(const ts_matte *m, int y, int x0, int x1, uint16_t *dst) {
    const int B = TS_MATTE_BLOCK;
    const int32_t *row = m->a_index + (size_t)(y / B) * m->blocks_w;
    for (int bx = x0 / B; x0 < x1 && bx <= (x1 - 1) / B; bx++) {
        int a = bx * B > x0 ? bx * B : x0, b = (bx + 1) * B < x1 ? (bx + 1) * B : x1;
        uint16_t *d = dst + (a - x0);
        if (row[bx] >= 0)
            memcpy(d, m->a_blocks + (size_t)row[bx] * B * B + (size_t)(y % B) * B + (a - bx * B),
                   sizeof *d * (size_t)(b - a));
        else
            for (int i = 0; i < b - a; i++) d[i] = row[bx] == TS_MATTE_ALPHA_ONE ? 65535 : 0;
    }
}

uint16_t ts_matte_alpha_at(const ts_matte *m, int x, int y) {
    if (x < 0 || y < 0 || x >= m->w || y >= m->h) return 0;
    const int B = TS_MATTE_BLOCK;
    int32_t k = m->a_index[(size_t)(y / B) * m->blocks_w + x / B];
    return k >= 0                    ? m->a_blocks[(size_t)k * B * B + (size_t)(y % B) * B + x % B]
           : k == TS_MATTE_ALPHA_ONE ? 65535
                                     : 0;
}

int ts_matte_fg_span(const ts_matte *m, int y, int x0, int x1, uint8_t *dst) {
    const int B = TS_MATTE_BLOCK;
    if (!m || !m->fg_index || y < 0 || y >= m->h) return 0;
    x0 = x0 < 0 ? 0 : x0, x1 = x1 > m->w ? m->w : x1;
    const int32_t *row = m->fg_index + (size_t)(y / B) * m->blocks_w;
    int written = 0;
    for (int bx = x0 / B; x0 < x1 && bx <= (x1 - 1) / B; bx++) {
        if (row[bx] < 0) continue;
        int a = bx * B > x0 ? bx * B : x0, b = (bx + 1) * B < x1 ? (bx + 1) * B : x1;
        const uint8_t *src = m->fg_blocks + ((size_t)row[bx] * B * B + (size_t)(y % B) * B) * 3;
        memcpy(dst + (size_t)(a - x0) * 3, src + (size_t)(a - bx * B) * 3, (size_t)(b - a) * 3);
        written += b - a;
    }
    return written;
}

uint8_t *ts_matte_fg_copy(const ts_matte *m) {
    if (!m || !m->photo) return NULL;
    uint8_t *px = g_try_malloc((size_t)m->w * m->h * 3);
    for (int y = 0; px && y < m->h; y++) {
        uint8_t *row = px + (size_t)y * m->w * 3;
        memcpy(row, VIPS_IMAGE_ADDR(m->photo, m->x, m->y + y), (size_t)m->w * 3);
        ts_matte_fg_span(m, y, 0, m->w, row);
    }
    return px;
}

/* Copies block (bx, by) of a region-sized plane of px_bytes per pixel into dst (rows of
 * TS_MATTE_BLOCK pixels). */
static void block_copy(const ts_matte *m, const void *plane, size_t px_bytes, int bx, int by,
                       void *dst) {
    const int B = TS_MATTE_BLOCK;
    int x0 = bx * B, n = m->w - x0 < B ? m->w - x0 : B;
    for (int y = by * B; y < (by + 1) * B && y < m->h; y++)
        memcpy((uint8_t *)dst + (size_t)(y - by * B) * B * px_bytes,
               (const uint8_t *)plane + ((size_t)y * m->w + x0) * px_bytes, (size_t)n * px_bytes);
}

/* keep_blocks' passes over rows of blocks (on all cores): each alpha block's state (pass 0),
 * then the copies of the kept blocks of both planes (pass 1). */
typedef struct keep_job {
    ts_matte *m;
    const uint8_t *fg;
    const uint16_t *alpha;
    int pass;
} keep_job;

static void keep_rows(void *arg, int begin, int end) {
    const keep_job *j = arg;
    ts_matte *m = j->m;
    const int B = TS_MATTE_BLOCK;
    for (int by = begin; by < end; by++)
        for (int bx = 0; bx < m->blocks_w; bx++) {
            size_t b = (size_t)by * m->blocks_w + bx;
            if (j->pass == 1) {
                if (m->a_index[b] >= 0)
                    block_copy(m, j->alpha, 2, bx, by, m->a_blocks + (size_t)m->a_index[b] * B * B);
                if (m->fg_index[b] >= 0)
                    block_copy(m, j->fg, 3, bx, by,
                               m->fg_blocks + (size_t)m->fg_index[b] * B * B * 3);
                continue;
            }
            int x0 = bx * B, n = m->w - x0 < B ? m->w - x0 : B;
            uint16_t first = j->alpha[(size_t)by * B * m->w + x0];
            int same = first == 0 || first == 65535;
            for (int y = by * B; y < (by + 1) * B && y < m->h && same; y++) {
                const uint16_t *r = j->alpha + (size_t)y * m->w + x0;
                for (int x = 0; x < n && same; x++) same = r[x] == first;
            }
            m->a_index[b] = !same ? 0 : first ? TS_MATTE_ALPHA_ONE : TS_MATTE_ALPHA_ZERO;
        }
}

/* Keeps the region's alpha (w * h) and foreground colour (w * h * 3: the photo's pixels but in
 * the blocks flagged in changed, where the solve changed one) in blocks: an alpha block all 0
 * or all 65535 is only marked so, a foreground block the solve did not change is the photo's.
 * Sets m's a_index, a_blocks, fg_index and fg_blocks. Returns 0, or -1 when out of memory. */
static int keep_blocks(ts_matte *m, const uint16_t *alpha, const uint8_t *fg,
                       const uint8_t *changed) {
    const int B = TS_MATTE_BLOCK;
    size_t nb = (size_t)m->blocks_w * m->blocks_h, a_kept = 0, fg_kept = 0;
    m->a_index = malloc(sizeof *m->a_index * nb);
    m->fg_index = malloc(sizeof *m->fg_index * nb);
    if (!m->a_index || !m->fg_index) return -1;
    keep_job j = {m, fg, alpha, 0};
    ts_matte_parallel(m->blocks_h, keep_rows, &j);
    for (size_t b = 0; b < nb; b++) {
        if (m->a_index[b] >= 0) m->a_index[b] = (int32_t)a_kept++;
        m->fg_index[b] = changed[b] ? (int32_t)fg_kept++ : -1;
    }
    m->a_blocks = malloc(sizeof *m->a_blocks * (a_kept ? a_kept * B * B : 1));
    m->fg_blocks = malloc(fg_kept ? fg_kept * B * B * 3 : 1);
    if (!m->a_blocks || !m->fg_blocks) return -1;
    j.pass = 1;
    ts_matte_parallel(m->blocks_h, keep_rows, &j);
    return 0;
}

void ts_matte_region(const ts_matte *m, int *x, int *y, int *w, int *h) {
    if (x) *x = m ? m->x : 0;
    if (y) *y = m ? m->y : 0;
    if (w) *w = m ? m->w : 0;
    if (h) *h = m ? m->h : 0;
}

ts_status ts_matte_alpha8(const ts_matte *m, uint8_t *dst) {
    if (!m || !dst) return TS_ERR_ARGUMENT;
    uint16_t *row = malloc(sizeof *row * (size_t)m->w);
    if (!row) return TS_ERR_NOMEM;
    for (int y = 0; y < m->h; y++) {
        ts_matte_alpha_span(m, y, 0, m->w, row);
        for (int x = 0; x < m->w; x++)
            dst[(size_t)y * m->w + x] = (uint8_t)((row[x] * 255u + 32767u) / 65535u);
    }
    free(row);
    return TS_OK;
}

ts_status ts_matte_alpha16(const ts_matte *m, uint16_t *dst) {
    if (!m || !dst) return TS_ERR_ARGUMENT;
    for (int y = 0; y < m->h; y++) ts_matte_alpha_span(m, y, 0, m->w, dst + (size_t)y * m->w);
    return TS_OK;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* TRUESHOT_MATTE_TIMING=1 prints the time of each step to stderr. */
static void lap(const char *what, double *t) {
    static int on = -1;
    static double cpu0;
    if (on < 0) on = getenv("TRUESHOT_MATTE_TIMING") != NULL;
    struct timespec c;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c);
    double n = now_ms(), cpu = c.tv_sec * 1e3 + c.tv_nsec / 1e6;
    if (on) fprintf(stderr, "matte: %-22s %7.1f ms (cpu %7.1f ms)\n", what, n - *t, cpu - cpu0);
    *t = n;
    cpu0 = cpu;
}

/* The region rule (docs/matte.md): 3.5 face widths centred on the face; from 0.8 face heights
 * above the box top to 3 face heights below its bottom; clamped to the photo. */
/* A photo lying on its side or upside down: q quarter turns clockwise (1, 2, 3) bring the
 * person upright. The region's "above" and "below" are then along the person, not the photo. */
static void head_region(const ts_face *f, int W, int H, int q, int r[4]) {
    float cx = f->x + f->w / 2, cy = f->y + f->h / 2, half = REGION_WIDTH * f->w / 2;
    /* the rule in the person's own frame: across, up (above the box top), down (below its
     * bottom), measured from the box centre */
    float across = half, up = f->h / 2 + REGION_ABOVE * f->h, down = f->h / 2 + REGION_BELOW * f->h;
    float left = across, right = across, top = up, bottom = down;
    /* q = 1: the person lies turned a quarter anticlockwise, head to the left; q = 3: head to
     * the right; q = 2: upside down */
    if (q == 1) left = up, right = down, top = across, bottom = across;
    if (q == 2) top = down, bottom = up;
    if (q == 3) left = down, right = up, top = across, bottom = across;
    float x0 = fmaxf(0, floorf(cx - left)), x1 = fminf((float)W, ceilf(cx + right));
    float y0 = fmaxf(0, floorf(cy - top)), y1 = fminf((float)H, ceilf(cy + bottom));
    r[0] = (int)x0, r[1] = (int)y0, r[2] = (int)(x1 - x0), r[3] = (int)(y1 - y0);
    if (r[2] < 1 || r[3] < 1) r[0] = 0, r[1] = 0, r[2] = W, r[3] = H;
}

/* Quarter turns clockwise (0..3) that bring the subject upright (ts_pose_quarters). */
static int upright_turns(const ts_face_analysis *a) {
    /* eyes leaning a quarter turn clockwise (q = 1): the head lies to the right, and three
     * clockwise quarter turns (one anticlockwise) stand it up */
    return (-ts_pose_quarters(a, NULL) % 4 + 4) % 4;
}

/* The network's probability of the work image turned upright by q quarter turns clockwise, put
 * back into the work image's own orientation (libvips' rot: exact, no resampling). */
static ts_status segment_upright(ts_ctx *ctx, VipsImage *wimg, int q, float *prob) {
    if (q == 0) return ts_matte_segment(ctx, wimg, SEGMENT_MIRROR, prob);
    static const VipsAngle turn[4] = {VIPS_ANGLE_D0, VIPS_ANGLE_D90, VIPS_ANGLE_D180,
                                      VIPS_ANGLE_D270};
    VipsImage *up = NULL;
    if (vips_rot(wimg, &up, turn[q], NULL)) {
        vips_error_clear();
        return ts_fail(ctx, TS_ERR_INTERNAL, "matte: cannot turn the region upright");
    }
    int w = wimg->Xsize, h = wimg->Ysize, uw = up->Xsize;
    float *tmp = malloc(sizeof *tmp * (size_t)w * h);
    ts_status s = tmp ? ts_matte_segment(ctx, up, SEGMENT_MIRROR, tmp)
                      : ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
    g_object_unref(up);
    /* (x, y) of the work image sits at (u, v) of the upright one: libvips' d90 takes
     * (x, y) to (h - 1 - y, x), d180 to (w - 1 - x, h - 1 - y), d270 to (y, w - 1 - x) */
    for (int y = 0; !s && y < h; y++)
        for (int x = 0; x < w; x++) {
            int u = q == 1 ? h - 1 - y : q == 2 ? w - 1 - x : y;
            int v = q == 1 ? x : q == 2 ? h - 1 - y : w - 1 - x;
            prob[(size_t)y * w + x] = tmp[(size_t)v * uw + u];
        }
    free(tmp);
    return s;
}

/* The region of the photo at full resolution (EXIF-rotated, sRGB, 3-band uchar), copied from
 * the photo's full decode (ts_photo_full_try), made now if no one has made it yet: the render
 * stages read that same decode, so the person's colour and the canvas agree to the bit, and a
 * photo is decoded at full size once. */
static unsigned char *decode_region(ts_photo *p, const int r[4], VipsImage **keep, char *err,
                                    size_t errlen) {
    VipsImage *full = ts_photo_full_try(p, err, errlen);
    if (!full) return NULL;
    if (full->Bands != 3 || full->BandFmt != VIPS_FORMAT_UCHAR || full->Xsize < r[0] + r[2] ||
        full->Ysize < r[1] + r[3]) {
        snprintf(err, errlen, "the decoded photo does not hold the region");
        return NULL;
    }
    unsigned char *px = g_try_malloc((size_t)r[2] * r[3] * 3);
    if (!px) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (int y = 0; y < r[3]; y++)
        memcpy(px + (size_t)y * r[2] * 3, VIPS_IMAGE_ADDR(full, r[0], r[1] + y), (size_t)r[2] * 3);
    *keep = g_object_ref(full);
    return px;
}

/* The subject's face core (the mesh's face outline drawn in by FACE_CORE_INSET) as a w x h
 * mask of the work image, whose pixel (x, y) is photo point ((x + ax) / sx, (y + ay) / sy): 255
 * inside. Next to another person (faceapi_sample3: a neighbour's shoulder by her chin) the
 * network and the neighbour cut left the jaw half transparent, and the new backdrop showed
 * through the face. */
static ts_status face_core(const ts_face_analysis *a, double sx, double sy, int ax, int ay, int w,
                           int h, uint8_t *out) {
    float feather = (float)(FACE_CORE_FEATHER * a->inter_eye_px * sqrt(sx * sy));
    ts_face_mesh *m = calloc(1, sizeof *m);
    if (!m) return TS_ERR_NOMEM;
    double cx = 0, cy = 0;
    for (int i = 0; i < 468; i++) cx += a->landmarks[i][0] / 468, cy += a->landmarks[i][1] / 468;
    for (int i = 0; i < TS_MESH_POINTS; i++) {
        double x = cx + (a->landmarks[i][0] - cx) * (1 - FACE_CORE_INSET);
        double y = cy + (a->landmarks[i][1] - cy) * (1 - FACE_CORE_INSET);
        m->pts[i][0] = (float)(x * sx - ax), m->pts[i][1] = (float)(y * sy - ay);
    }
    ts_status s = ts_face_region_mask(m, NULL, TS_REGION_FACE, w, h, 1.f,
                                      feather > 0.5f ? feather : 0.5f, out);
    free(m);
    return s;
}

/* The face core at full resolution: alpha raised to it (bilinear from the work resolution),
 * on the rows and columns its box covers. Before the full-resolution foreground solve, which
 * then unmixes by the raised alpha. */
typedef struct core_job {
    const uint8_t *core; /* work resolution */
    int kw, kh;
    ts_matte *m;
    uint16_t *alpha; /* the region's full-resolution alpha, raised in place */
    const int *ux, *uy;
    const float *fx, *fy;
    int x0, x1; /* full-resolution columns to visit */
} core_job;

static void core_rows(void *arg, int begin, int end) {
    const core_job *j = arg;
    int kx1 = j->kw > 1 ? 1 : 0, kr = j->kh > 1 ? j->kw : 0;
    for (int y = begin; y < end; y++) {
        const uint8_t *c0 = j->core + (size_t)j->uy[y] * j->kw, *c1 = c0 + kr;
        float wy = j->fy[y];
        uint16_t *arow = j->alpha + (size_t)y * j->m->w;
        for (int x = j->x0; x < j->x1; x++) {
            int u = j->ux[x];
            float top = c0[u] + j->fx[x] * (c0[u + kx1] - c0[u]);
            float bot = c1[u] + j->fx[x] * (c1[u + kx1] - c1[u]);
            float a = (top + wy * (bot - top)) * (65535.f / 255.f);
            if (a > arow[x]) arow[x] = (uint16_t)(a + 0.5f);
        }
    }
}

/* core_rows over the full-resolution rows and columns the core (kw x kh, work resolution)
 * reaches; ux, uy, fx, fy: axis_map's tables. */
static void raise_to_core(const uint8_t *core, int kw, int kh, ts_matte *m, uint16_t *alpha,
                          const int *ux, const int *uy, const float *fx, const float *fy) {
    int cx0 = kw, cx1 = -1, cy0 = kh, cy1 = -1;
    for (int y = 0; y < kh; y++)
        for (int x = 0; x < kw; x++)
            if (core[(size_t)y * kw + x])
                cx0 = x < cx0 ? x : cx0, cx1 = x > cx1 ? x : cx1, cy0 = y < cy0 ? y : cy0,
                cy1 = y > cy1 ? y : cy1;
    if (cx1 < 0) return;
    core_job cj = {core, kw, kh, m, alpha, ux, uy, fx, fy, 0, m->w};
    while (cj.x0 < m->w && ux[cj.x0] + 1 < cx0) cj.x0++;
    while (cj.x1 > cj.x0 && ux[cj.x1 - 1] > cx1) cj.x1--;
    int y0 = 0, y1 = m->h;
    while (y0 < m->h && uy[y0] + 1 < cy0) y0++;
    while (y1 > y0 && uy[y1 - 1] > cy1) y1--;
    core_rows(&cj, y0, y1);
}

/* Bilinear lookup tables from full-resolution columns (or rows) of the region to the work
 * image: centre convention, clamped. i0 is non-decreasing. */
static void axis_map(int n, int origin, double scale, int work_origin, int work_n, int *i0,
                     float *f) {
    for (int k = 0; k < n; k++) {
        double u = (origin + k + 0.5) * scale - work_origin - 0.5;
        u = u < 0 ? 0 : u > work_n - 1 ? work_n - 1 : u;
        int a = (int)u;
        if (a > work_n - 2) a = work_n - 2 < 0 ? 0 : work_n - 2;
        i0[k] = a;
        f[k] = work_n > 1 ? (float)(u - a) : 0.f;
    }
}

typedef struct work {
    int w, h;
    ts_fimg rgb;  /* work image, [0,1] */
    float *prob;  /* network probability, holes filled */
    uint8_t *tri; /* trimap */
    float *coef;  /* guided filter coefficients, 4 bands */
    float *alpha; /* work-resolution alpha */
    float *F, *B; /* foreground / background colour, 3 bands */
    float *Bc;    /* local mean of the sure background in the band (NaN elsewhere), 3 bands */
} work;

static void work_free(work *k) {
    free(k->rgb.px), free(k->prob), free(k->tri), free(k->coef), free(k->alpha), free(k->F),
        free(k->B), free(k->Bc);
}

/* The full-resolution decode runs on its own thread while the work resolution is solved. */
typedef struct decode_job {
    ts_photo *p;
    int r[4];
    unsigned char *px;
    VipsImage *full; /* the photo's full-resolution decode px was copied from (a reference) */
    char err[300];
} decode_job;

static void *decode_run(void *arg) {
    decode_job *d = arg;
    d->px = decode_region(d->p, d->r, &d->full, d->err, sizeof d->err);
    return NULL;
}

/* The work-resolution foreground solve, run on its own thread. */
typedef struct fg_job {
    work *k;
    int rc;
} fg_job;

static void *fg_run(void *arg) {
    fg_job *j = arg;
    j->rc = ts_matte_foreground_ml(&j->k->rgb, j->k->alpha, j->k->tri, j->k->F, j->k->B);
    return NULL;
}

/* The full-resolution passes, over rows, on all cores. Full-resolution columns xs[j] ..
 * xs[j + 1] - 1 lie between work columns j and j + 1 (and rows likewise, through uy): a cell.
 * Only cells with a band corner are computed per pixel; the others are filled. */
typedef struct full_job {
    const work *k;
    ts_matte *m;
    uint16_t *alpha;  /* the region's full-resolution alpha */
    uint8_t *fg;      /* the region's colours, made the foreground colour in place */
    uint8_t *changed; /* per TS_MATTE_BLOCK block of the region: a pixel of fg changed */
    const int *uy, *xs;
    const float *fx, *fy;
} full_job;

/* Cell classes from its four trimap corners. */
enum { CELL_BG, CELL_FG, CELL_MIXED };

static inline int cell_class(const uint8_t *t0, const uint8_t *t1, int j, int kx1) {
    uint8_t a = t0[j], b = t0[j + kx1], c = t1[j], d = t1[j + kx1];
    if ((a & b & c & d) == TS_TRI_FG) return CELL_FG;
    if ((a | b | c | d) == TS_TRI_BG) return CELL_BG;
    return CELL_MIXED;
}

/* Alpha: where all four surrounding work pixels are confident, their value; elsewhere the
 * upsampled guided-filter model a.I + b on the full-resolution colour, blended with the
 * confident share of the neighbours so the band's edge has no seam. */
static void full_alpha_rows(void *arg, int begin, int end) {
    const full_job *j = arg;
    const work *k = j->k;
    ts_matte *m = j->m;
    int kx1 = k->w > 1 ? 1 : 0, kr = k->h > 1 ? k->w : 0;
    for (int y = begin; y < end; y++) {
        float wy = j->fy[y];
        size_t r0 = (size_t)j->uy[y] * k->w;
        const uint8_t *t0 = k->tri + r0, *t1 = t0 + kr;
        const float *c0 = k->coef + r0 * 4, *c1 = c0 + (size_t)kr * 4;
        uint16_t *arow = j->alpha + (size_t)y * m->w;
        const uint8_t *irow = j->fg + (size_t)y * m->w * 3;
        for (int cx = 0; cx < k->w; cx++) {
            int xa = j->xs[cx], xb = j->xs[cx + 1];
            if (xa == xb) continue;
            int cls = cell_class(t0, t1, cx, kx1);
            if (cls != CELL_MIXED) {
                memset(arow + xa, cls == CELL_FG ? 0xff : 0, sizeof *arow * (size_t)(xb - xa));
                continue;
            }
            int cx1 = cx + kx1;
            /* The cell's left and right edges, interpolated vertically. */
            float l[4], r[4];
            for (int c = 0; c < 4; c++) {
                l[c] = c0[cx * 4 + c] + wy * (c1[cx * 4 + c] - c0[cx * 4 + c]);
                r[c] = c0[cx1 * 4 + c] + wy * (c1[cx1 * 4 + c] - c0[cx1 * 4 + c]);
            }
            float fl = (1 - wy) * (t0[cx] == TS_TRI_FG) + wy * (t1[cx] == TS_TRI_FG);
            float fr = (1 - wy) * (t0[cx1] == TS_TRI_FG) + wy * (t1[cx1] == TS_TRI_FG);
            float bl = (1 - wy) * (t0[cx] == TS_TRI_BG) + wy * (t1[cx] == TS_TRI_BG);
            float br = (1 - wy) * (t0[cx1] == TS_TRI_BG) + wy * (t1[cx1] == TS_TRI_BG);
            for (int x = xa; x < xb; x++) {
                float wx = j->fx[x];
                const uint8_t *I = irow + (size_t)x * 3;
                float a = 0;
                for (int c = 0; c < 3; c++)
                    a += (l[c] + wx * (r[c] - l[c])) * (I[c] * (1.f / 255.f));
                a += l[3] + wx * (r[3] - l[3]);
                a = a < 0 ? 0 : a > 1 ? 1 : a;
                float conf_fg = fl + wx * (fr - fl), conf_bg = bl + wx * (br - bl);
                a = conf_fg + (1.f - conf_fg - conf_bg) * a;
                a = a < 0 ? 0 : a > 1 ? 1 : a;
                arow[x] = (uint16_t)(a * 65535.f + 0.5f);
            }
        }
    }
}

/* The background colour for the last foreground solve at work pixel i: the multi-level solve's
 * B, or where the sure background nearby is flat, its local mean (the colour model's B, weight
 * in band 3 of Bc): on a plain backdrop the mean is exact, while the multi-level B, pulled by
 * its smoothness terms, carries some of the person's colour into the edge. */
static inline float bg_at(const float *B, const float *Bc, const uint8_t *t, int i, int c) {
    if (t[i] != TS_TRI_UNKNOWN) return B[i * 3 + c]; /* Bc was not written there */
    float w = Bc[i * 4 + 3];
    return w * Bc[i * 4 + c] + (1.f - w) * B[i * 3 + c];
}

/* Foreground colour where 0 < alpha < 1: the finest level of the multi-level solve, against the
 * upsampled work solution; elsewhere the photo's colour stays. */
static void full_fg_rows(void *arg, int begin, int end) {
    const full_job *j = arg;
    const work *k = j->k;
    ts_matte *m = j->m;
    int kx1 = k->w > 1 ? 1 : 0, kr = k->h > 1 ? k->w : 0;
    const uint16_t *al = j->alpha;
    for (int y = begin; y < end; y++) {
        float wy = j->fy[y];
        size_t r0 = (size_t)j->uy[y] * k->w;
        const uint8_t *t0 = k->tri + r0, *t1 = t0 + kr;
        const float *F0 = k->F + r0 * 3, *F1 = F0 + (size_t)kr * 3;
        const float *B0 = k->B + r0 * 3, *B1 = B0 + (size_t)kr * 3;
        const float *C0 = k->Bc + r0 * 4, *C1 = C0 + (size_t)kr * 4;
        size_t row = (size_t)y * m->w;
        for (int cx = 0; cx < k->w; cx++) {
            int xa = j->xs[cx], xb = j->xs[cx + 1];
            if (xa == xb || cell_class(t0, t1, cx, kx1) != CELL_MIXED) continue;
            int cx1 = cx + kx1;
            float fl[3], fr[3], bl[3], br[3];
            for (int c = 0; c < 3; c++) {
                fl[c] = F0[cx * 3 + c] + wy * (F1[cx * 3 + c] - F0[cx * 3 + c]);
                fr[c] = F0[cx1 * 3 + c] + wy * (F1[cx1 * 3 + c] - F0[cx1 * 3 + c]);
                float b00 = bg_at(B0, C0, t0, cx, c), b01 = bg_at(B0, C0, t0, cx1, c);
                float b10 = bg_at(B1, C1, t1, cx, c), b11 = bg_at(B1, C1, t1, cx1, c);
                bl[c] = b00 + wy * (b10 - b00);
                br[c] = b01 + wy * (b11 - b01);
            }
            for (int x = xa; x < xb; x++) {
                size_t o = row + x;
                uint16_t A = al[o];
                if (A == 0 || A == 65535) continue;
                float a = A * (1.f / 65535.f), wx = j->fx[x];
                uint8_t *d = j->fg + o * 3;
                float fu[3], bu[3], I[3], F[3];
                for (int c = 0; c < 3; c++) {
                    fu[c] = fl[c] + wx * (fr[c] - fl[c]);
                    bu[c] = bl[c] + wx * (br[c] - bl[c]);
                    I[c] = d[c] * (1.f / 255.f);
                }
                size_t nb[4] = {x > 0 ? o - 1 : o, x < m->w - 1 ? o + 1 : o, y > 0 ? o - m->w : o,
                                y < m->h - 1 ? o + m->w : o};
                float wsum = 0;
                for (int n = 0; n < 4; n++)
                    wsum +=
                        TS_MATTE_FG_EPS + TS_MATTE_FG_GRAD * fabsf(a - al[nb[n]] * (1.f / 65535.f));
                ts_matte_foreground_pixel(I, a, wsum, fu, bu, F);
                uint8_t q[3];
                for (int c = 0; c < 3; c++) q[c] = (uint8_t)(F[c] * 255.f + 0.5f);
                if (q[0] != d[0] || q[1] != d[1] || q[2] != d[2]) {
                    memcpy(d, q, 3);
                    /* (rows of one block may be on two threads: both only ever store 1) */
                    __atomic_store_n(&j->changed[(size_t)(y / TS_MATTE_BLOCK) * m->blocks_w +
                                                 x / TS_MATTE_BLOCK],
                                     1, __ATOMIC_RELAXED);
                }
            }
        }
    }
}

/* The work image of region reg (photo pixels) cut from the analysis copy an (sx, sy: its scale
 * to the photo) into k (planes allocated, the colour filled), and the network's person
 * probability in it (turned upright by q quarter turns); *ax, *ay: its origin in an. */
static ts_status work_segment(ts_ctx *ctx, VipsImage *an, const int reg[4], double sx, double sy,
                              int q, work *k, VipsImage **wimg, int *ax, int *ay) {
    int x0 = (int)floor(reg[0] * sx), y0 = (int)floor(reg[1] * sy);
    int x1 = (int)ceil((reg[0] + reg[2]) * sx), y1 = (int)ceil((reg[1] + reg[3]) * sy);
    x1 = x1 > an->Xsize ? an->Xsize : x1 <= x0 ? x0 + 1 : x1;
    y1 = y1 > an->Ysize ? an->Ysize : y1 <= y0 ? y0 + 1 : y1;
    *ax = x0, *ay = y0;
    k->w = x1 - x0, k->h = y1 - y0;
    size_t wn = (size_t)k->w * k->h;
    if (vips_extract_area(an, wimg, x0, y0, k->w, k->h, NULL) != 0) {
        vips_error_clear();
        return ts_fail(ctx, TS_ERR_INTERNAL, "matte: cannot cut the region");
    }
    size_t len = 0;
    unsigned char *wpx = vips_image_write_to_memory(*wimg, &len);
    int wb = (*wimg)->Bands;
    k->rgb = (ts_fimg){k->w, k->h, 3, malloc(sizeof(float) * wn * 3)};
    k->prob = malloc(sizeof(float) * wn);
    k->tri = malloc(wn);
    k->coef = malloc(sizeof(float) * wn * 4);
    k->alpha = malloc(sizeof(float) * wn);
    k->F = malloc(sizeof(float) * wn * 3);
    k->B = malloc(sizeof(float) * wn * 3);
    k->Bc = malloc(sizeof(float) * wn * 4);
    if (!wpx || wb < 3 || !k->rgb.px || !k->prob || !k->tri || !k->coef || !k->alpha || !k->F ||
        !k->B || !k->Bc) {
        ts_status st = wpx ? TS_ERR_NOMEM : TS_ERR_INTERNAL;
        g_free(wpx);
        return ts_fail(ctx, st, "matte: out of memory");
    }
    for (size_t i = 0; i < wn; i++)
        for (int c = 0; c < 3; c++) k->rgb.px[i * 3 + c] = wpx[i * wb + c] * (1.f / 255.f);
    g_free(wpx);
    return segment_upright(ctx, *wimg, q, k->prob);
}

/* Which edges of the work region the person (p >= 0.5) reaches, as bits: 1 the top (in at
 * least REGION_TOUCH of its columns), 2 the left side and 4 the right (in REGION_TOUCH of the rows
 * above the chin, row chin: hair, not shoulders, which may well be wider than the region). */
static unsigned touched_edges(const float *prob, int w, int h, int chin) {
    unsigned e = 0;
    int n = 0;
    for (int x = 0; x < w; x++) n += prob[x] >= 0.5f;
    if (n >= 2 && n >= REGION_TOUCH * w) e |= 1;
    int rows = chin < h ? chin : h, nl = 0, nr = 0;
    for (int y = 0; y < rows; y++) {
        nl += prob[(size_t)y * w] >= 0.5f;
        nr += prob[(size_t)y * w + w - 1] >= 0.5f;
    }
    if (rows > 0 && nl >= 2 && nl >= REGION_TOUCH * rows) e |= 2;
    if (rows > 0 && nr >= 2 && nr >= REGION_TOUCH * rows) e |= 4;
    return e;
}

ts_status ts_photo_matte(ts_ctx *ctx, ts_photo *p, const ts_matte_options *opt, ts_matte **out) {
    if (!ctx || !p || !out) return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_photo_matte: NULL argument");
    ts_matte_options opts;
    ts_matte_options_init(&opts);
    if (opt) {
        if (opt->size < offsetof(ts_matte_options, decontaminate) + sizeof(int))
            return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_photo_matte: options not initialised");
        opts.region = opt->region;
        opts.decontaminate = opt->decontaminate;
    }
    if (opts.region != TS_MATTE_HEAD_AND_SHOULDERS && opts.region != TS_MATTE_FULL_PHOTO)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_photo_matte: unknown region mode %d", opts.region);
    double t = now_ms(), t0 = t;
    lap("start", &t);

    /* 1. The region, and the eye line above which the band widens for hair. */
    int W = p->width, H = p->height, reg[4] = {0, 0, W, H};
    float eye_y = -1;
    int q_up = 0; /* quarter turns clockwise that stand the subject upright */
    const ts_face_analysis *subj = NULL;
    const ts_face *faces = NULL;
    int nf = 0, subject = -1;
    ts_status s = ts_photo_subject(ctx, p, &subj);
    if (s == TS_OK) {
        s = ts_photo_faces(ctx, p, &faces, &nf);
        if (s) return s;
        if (subj->face < 0 || subj->face >= nf)
            return ts_fail(ctx, TS_ERR_INTERNAL, "matte: subject index out of range");
        q_up = upright_turns(subj);
        if (opts.region == TS_MATTE_HEAD_AND_SHOULDERS)
            head_region(&faces[subj->face], W, H, q_up, reg);
        /* (the hair band widens above the eye line, rows of an upright person; a person lying
         * otherwise gets the narrow band everywhere) */
        eye_y = q_up ? 0.f : (subj->irises[0].y + subj->irises[1].y) / 2;
        subject = subj->face;
    } else if (s != TS_ERR_NO_FACE || opts.region == TS_MATTE_HEAD_AND_SHOULDERS) {
        return s;
    }
    lap("faces", &t);

    bool fg_started = false, grown = false;
    /* The full-resolution region decodes on a second thread meanwhile. */
    decode_job dec = {.p = p, .r = {reg[0], reg[1], reg[2], reg[3]}};
    pthread_t dec_th;
    bool dec_started = pthread_create(&dec_th, NULL, decode_run, &dec) == 0;

    /* 2. The work image: the region in the analysis copy, and the network's person in it. */
    double scale;
    work k = {0};
    VipsImage *wimg = NULL;
    ts_matte *m = NULL;
    int *xs = NULL, *uy = NULL, *ux = NULL;
    float *fx = NULL, *fy = NULL, *bgw = NULL;
    uint8_t *bgs = NULL, *core = NULL, *changed = NULL;
    uint16_t *alpha = NULL; /* the full-resolution alpha, kept in blocks at the end */
    VipsImage *an = ts_photo_analysis(ctx, p, &scale);
    if (!an) {
        s = TS_ERR_FORMAT;
        goto fail;
    }
    double sx = (double)an->Xsize / W, sy = (double)an->Ysize / H;
    int ax, ay;
    const ts_face *sf = subject >= 0 ? &faces[subject] : NULL;
    for (int round = 0;; round++) {
        s = work_segment(ctx, an, reg, sx, sy, q_up, &k, &wimg, &ax, &ay);
        if (s) goto fail;
        lap("segmentation", &t);
        /* Head and shoulders is a portrait of the subject alone: neighbours are cut away. (Its
         * body model runs down the photo: for a person lying otherwise it would fade their own
         * body, so there it is left out.) */
        if (opts.region == TS_MATTE_HEAD_AND_SHOULDERS && subject >= 0 && q_up == 0) {
            ts_matte_face *mf = malloc(sizeof *mf * nf);
            if (!mf) {
                s = ts_fail(ctx, TS_ERR_NOMEM, "matte: out of memory");
                goto fail;
            }
            for (int i = 0; i < nf; i++)
                mf[i] = (ts_matte_face){
                    (float)((faces[i].x + faces[i].w / 2) * sx - ax), (float)(faces[i].y * sy - ay),
                    (float)((faces[i].y + faces[i].h) * sy - ay), (float)(faces[i].w * sx)};
            ts_matte_isolate(k.prob, k.w, k.h, mf, nf, subject);
            free(mf);
        }
        /* Hair that reaches past the region's top or sides (a big hairdo, a head tilted down or
         * to the side) would be cut off along a straight line: the region grows there, within
         * the photo, and the network runs again. */
        if (opts.region != TS_MATTE_HEAD_AND_SHOULDERS || !sf || q_up != 0 ||
            round == REGION_GROW_ROUNDS)
            break;
        int chin = (int)lrint((sf->y + sf->h) * sy) - ay;
        unsigned edges = touched_edges(k.prob, k.w, k.h, chin);
        int grow[3] = {0}; /* top, left, right, in photo pixels */
        if ((edges & 1) && reg[1] > 0) grow[0] = (int)ceilf(REGION_GROW * sf->h);
        if ((edges & 2) && reg[0] > 0) grow[1] = (int)ceilf(REGION_GROW * sf->w);
        if ((edges & 4) && reg[0] + reg[2] < W) grow[2] = (int)ceilf(REGION_GROW * sf->w);
        if (!grow[0] && !grow[1] && !grow[2]) break;
        int x0 = reg[0] - grow[1] < 0 ? 0 : reg[0] - grow[1];
        int y0 = reg[1] - grow[0] < 0 ? 0 : reg[1] - grow[0];
        int x1 = reg[0] + reg[2] + grow[2] > W ? W : reg[0] + reg[2] + grow[2];
        reg[3] += reg[1] - y0, reg[0] = x0, reg[1] = y0, reg[2] = x1 - x0;
        work_free(&k);
        memset(&k, 0, sizeof k);
        g_object_unref(wimg), wimg = NULL;
        grown = true;
    }
    /* The full-resolution region: decoded again when the region grew. */
    if (grown && dec_started) {
        pthread_join(dec_th, NULL), dec_started = false;
        g_free(dec.px), dec.px = NULL;
        if (dec.full) g_object_unref(dec.full), dec.full = NULL;
        memcpy(dec.r, reg, sizeof dec.r);
        dec_started = pthread_create(&dec_th, NULL, decode_run, &dec) == 0;
    } else if (grown) {
        memcpy(dec.r, reg, sizeof dec.r);
    }
    size_t wn = (size_t)k.w * k.h;
    m = calloc(1, sizeof *m);
    if (!m) {
        s = ts_fail(ctx, TS_ERR_NOMEM, "matte: out of memory");
        goto fail;
    }
    /* The subject's face is the person (face_core): sure of it from here, and after the
     * filter. */
    if (subj) {
        core = malloc(wn);
        if (!core || face_core(subj, sx, sy, ax, ay, k.w, k.h, core) != TS_OK) {
            s = ts_fail(ctx, TS_ERR_NOMEM, "matte: cannot draw the face");
            goto fail;
        }
        for (size_t i = 0; i < wn; i++)
            if (core[i] == 255) k.prob[i] = 1.f;
    }
    double person = ts_matte_fill_holes(k.prob, k.w, k.h, HOLE_MAX_FRAC);
    if (person < MIN_PERSON_FRAC) {
        s = ts_fail(ctx, TS_ERR_NO_PERSON, "%s: no person found to cut out", p->path);
        goto fail;
    }

    /* 3. Trimap; the band scales with the region, wider above the eyes for hair. */
    int longer = k.w > k.h ? k.w : k.h;
    int band = (int)lrintf(BAND_FRAC * longer);
    band = band < 2 ? 2 : band;
    int y_top = eye_y >= 0 ? (int)lrint(eye_y * sy) - ay : k.h / 3;
    ts_matte_trimap(k.prob, k.w, k.h, band, HAIR_BAND_FACTOR * band, y_top, k.tri);
    lap("isolate, holes, trimap", &t);

    /* 4. Alpha: in the band, the colour model's estimate where person and background colours
     * differ, the network's elsewhere; then the guided filter, pinned to the trimap. */
    for (size_t i = 0; i < wn; i++)
        k.alpha[i] = k.tri[i] == TS_TRI_FG ? 1.f : k.tri[i] == TS_TRI_BG ? 0.f : k.prob[i];
    if (ts_matte_colour_alpha(&k.rgb, k.tri, HAIR_BAND_FACTOR * band * 2, k.alpha, k.Bc) != 0) {
        s = ts_fail(ctx, TS_ERR_NOMEM, "matte: out of memory");
        goto fail;
    }
    lap("colour model", &t);
    /* Band pixels of the background's own colours (a flag's stripes beside the hair) are
     * background, whatever the colour line says. */
    bgw = malloc(sizeof *bgw * wn);
    bgs = malloc(wn);
    if (!bgw || !bgs ||
        ts_matte_bg_colour(&k.rgb, k.tri, k.prob, BG_COLOUR_NEAR * band, bgw, bgs) != 0) {
        s = ts_fail(ctx, TS_ERR_NOMEM, "matte: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < wn; i++) k.alpha[i] *= 1.f - bgw[i];
    lap("background colours", &t);
    if (ts_matte_guided_coef(&k.rgb, k.alpha, GUIDED_FIT_RADIUS(band), GUIDED_AVG_RADIUS(band),
                             GUIDED_EPS, k.coef) != 0) {
        s = ts_fail(ctx, TS_ERR_NOMEM, "matte: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < wn; i++) {
        if (k.tri[i] != TS_TRI_UNKNOWN) continue;
        const float *c = k.coef + i * 4, *I = k.rgb.px + i * 3;
        float a = c[0] * I[0] + c[1] * I[1] + c[2] * I[2] + c[3];
        k.alpha[i] = a < 0 ? 0 : a > 1 ? 1 : a;
    }
    /* Behind the hair on a busy background the filter spreads alpha wide (a flag's stripes):
     * soft alpha far from the solid person, where the network is unsure, is capped. */
    /* (the body: from a band below the chin; a person lying otherwise has no such rows) */
    int body_row = sf && q_up == 0 ? (int)lrint((sf->y + sf->h) * sy) - ay + band : k.h;
    if (ts_matte_limit_reach(k.alpha, k.coef, k.tri, k.prob, k.Bc, k.w, k.h, band, body_row) != 0) {
        s = ts_fail(ctx, TS_ERR_NOMEM, "matte: out of memory");
        goto fail;
    }
    /* Holes the filter opened inside the person (a pocket at a hat's edge) are closed: they
     * become sure person. */
    if (ts_matte_close_alpha_holes(k.alpha, k.tri, k.w, k.h, HOLE_MAX_FRAC) != 0) {
        s = ts_fail(ctx, TS_ERR_NOMEM, "matte: out of memory");
        goto fail;
    }
    /* Strong background colours, and clear ones where the network, too, leans to background,
     * stay background after the filter (which spreads the hair's alpha over a cord beside it):
     * sure background. Only those: elsewhere single pixels of a crowd behind the hair would be
     * cut out of it (holes, a ragged edge). */
    for (size_t i = 0; i < wn; i++) {
        if (k.tri[i] != TS_TRI_UNKNOWN || bgw[i] <= 0) continue;
        float q = (BG_HARD_P - k.prob[i]) / BG_HARD_P_RAMP;
        if (bgs[i] || bgw[i] * (q < 0 ? 0 : q > 1 ? 1 : q) >= BG_HARD)
            k.tri[i] = TS_TRI_BG, k.alpha[i] = 0;
    }
    free(bgw), free(bgs);
    bgw = NULL, bgs = NULL;
    lap("guided filter", &t);
    /* Specks of alpha that no path of some alpha joins to the person are background. */
    if (ts_matte_drop_islands(k.alpha, k.tri, k.w, k.h, ISLAND_ALPHA) != 0) {
        s = ts_fail(ctx, TS_ERR_NOMEM, "matte: out of memory");
        goto fail;
    }
    lap("islands", &t);

    /* 5a. Foreground colour at the work resolution, on a second thread while the full-resolution
     * alpha is computed. */
    fg_job fgj = {&k, 0};
    pthread_t fg_th;
    if (opts.decontaminate) fg_started = pthread_create(&fg_th, NULL, fg_run, &fgj) == 0;
    if (opts.decontaminate && !fg_started) fg_run(&fgj);

    /* Full resolution. */
    if (dec_started)
        pthread_join(dec_th, NULL), dec_started = false;
    else
        decode_run(&dec);
    lap("wait for decode", &t);
    if (!dec.px) {
        s = ts_photo_decode_failed(ctx, p->path, dec.err);
        goto fail;
    }
    m->x = reg[0], m->y = reg[1], m->w = reg[2], m->h = reg[3];
    m->blocks_w = (m->w + TS_MATTE_BLOCK - 1) / TS_MATTE_BLOCK;
    m->blocks_h = (m->h + TS_MATTE_BLOCK - 1) / TS_MATTE_BLOCK;
    changed = calloc((size_t)m->blocks_w * m->blocks_h, 1);
    m->photo = dec.full, dec.full = NULL;
    size_t n = (size_t)m->w * m->h;
    alpha = malloc(sizeof *alpha * n);
    ux = malloc(sizeof *ux * m->w), uy = malloc(sizeof *uy * m->h);
    fx = malloc(sizeof *fx * m->w), fy = malloc(sizeof *fy * m->h);
    xs = malloc(sizeof *xs * (k.w + 1));
    if (!alpha || !ux || !uy || !fx || !fy || !xs || !changed) {
        s = ts_fail(ctx, TS_ERR_NOMEM, "matte: out of memory");
        goto fail;
    }
    axis_map(m->w, m->x, sx, ax, k.w, ux, fx);
    axis_map(m->h, m->y, sy, ay, k.h, uy, fy);
    for (int c = 0, x = 0; c <= k.w; c++) {
        while (x < m->w && ux[x] < c) x++;
        xs[c] = x;
    }
    full_job job = {&k, m, alpha, dec.px, changed, uy, xs, fx, fy};
    ts_matte_parallel(m->h, full_alpha_rows, &job);
    if (core) raise_to_core(core, k.w, k.h, m, alpha, ux, uy, fx, fy);
    lap("alpha (full)", &t);
    if (fg_started) pthread_join(fg_th, NULL), fg_started = false;
    lap("foreground (work)", &t);
    if (fgj.rc != 0) {
        s = ts_fail(ctx, TS_ERR_NOMEM, "matte: out of memory");
        goto fail;
    }
    if (opts.decontaminate) ts_matte_parallel(m->h, full_fg_rows, &job);
    if (keep_blocks(m, alpha, dec.px, changed) != 0) {
        s = ts_fail(ctx, TS_ERR_NOMEM, "matte: out of memory");
        goto fail;
    }
    g_free(dec.px), dec.px = NULL;
    free(alpha), alpha = NULL;
    lap("foreground (full)", &t);
    if (getenv("TRUESHOT_MATTE_TIMING"))
        fprintf(stderr, "matte: region %dx%d at %d,%d, work %dx%d, band %d px: %.1f ms\n", m->w,
                m->h, m->x, m->y, k.w, k.h, band, now_ms() - t0);
    free(ux), free(uy), free(fx), free(fy), free(xs), free(core), free(changed);
    g_object_unref(wimg);
    work_free(&k);
    *out = m;
    return TS_OK;
fail:
    if (dec_started) pthread_join(dec_th, NULL);
    if (fg_started) pthread_join(fg_th, NULL);
    g_free(dec.px);
    if (dec.full) g_object_unref(dec.full);
    free(ux), free(uy), free(fx), free(fy), free(xs), free(bgw), free(bgs), free(core),
        free(changed), free(alpha);
    if (wimg) g_object_unref(wimg);
    work_free(&k);
    ts_matte_free(m);
    return s;
}
