/* frame: level the eyes, then crop and scale the photo to a headshot template.
 *
 * Conventions (photographers' and platforms' guidance for headshots): the eyes sit about a third
 * to two fifths from the top; the head (chin to the top of the hair) fills about half of a
 * profile square and less of a portrait; there is always room above the head and the chin is
 * never cut. The head's height is estimated from the mesh: forehead point 10 to chin point 152
 * (the mesh stops below the hairline), times 1.35 for hair. When the photo has too little room
 * above the head the frame is moved and zoomed within limits, and what is still missing is said
 * in the report rather than invented. */
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "matte/matte.h"
#include "render/render.h"

enum { CROP_SQUARE, CROP_4X5, CROP_2X3, CROP_8X10, CROP_TIGHT, CROP_COUNT };
static const char *const crop_names[] = {"square", "4x5", "2x3", "8x10", "tight", NULL};
/* Width / height of each template, and its conventional eye line and head size (fractions of
 * the frame height) used when a style leaves them at 0 ("auto"). */
static const double crop_aspect[CROP_COUNT] = {1.0, 0.8, 2.0 / 3.0, 0.8, 1.0};
static const double crop_eye[CROP_COUNT] = {0.40, 0.36, 0.33, 0.36, 0.42};
static const double crop_head[CROP_COUNT] = {0.52, 0.42, 0.34, 0.42, 0.66};

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
 * [ex, ey, ew, eh]; it reads the matte's own buffer (the matte outlives the job). */
static VipsImage *matte_alpha(const ts_matte *mt, int ex, int ey, int ew, int eh) {
    VipsImage *im = vips_image_new_from_memory(mt->alpha, sizeof *mt->alpha * (size_t)mt->w * mt->h,
                                               mt->w, mt->h, 1, VIPS_FORMAT_USHORT);
    int mx = mt->x, my = mt->y;
    /* Kept 16-bit until it is on the canvas: resampling integers is faster than floats, and
     * 1/65535 is far below what any later stage can see. */
    VipsImage *e = NULL;
    if (im) vips_embed(im, &e, mx - ex, my - ey, ew, eh, "extend", VIPS_EXTEND_BLACK, NULL);
    if (im) g_object_unref(im);
    return e;
}

/* The rotation of to_canvas, done here rather than by vips_affine: libvips' general affine
 * calls its interpolator per pixel and was the larger half of frame's time. This is the same
 * bilinear sampling (checked against vips_affine: identical inside the input, and the same at
 * its edges: taps clamped to the edge (or black), and black where the point lies more than a
 * pixel outside), reading the resized 8- or 16-bit pixels directly and writing float. */
typedef struct rotate_job {
    const void *in;                /* uchar, ushort or float, iw x ih x bands */
    int iw, ih, bands, fmt, black; /* fmt: 0 uchar, 1 ushort, 2 float */
    float *out;                    /* W x H x bands */
    int W, y0, y1;
    double ia, ib, ic, id, ox, oy; /* input = [ia ib; ic id] (output - (ox, oy)) */
    float scale;                   /* applied to the values (1 / 65535 for the alpha) */
} rotate_job;

static void *rotate_rows(void *arg) {
    const rotate_job *r = arg;
    const uint8_t *in8 = r->in;
    const uint16_t *in16 = r->in;
    const float *inf = r->in;
    int nb = r->bands, iw = r->iw, ih = r->ih;
    for (int Y = r->y0; Y < r->y1; Y++) {
        float *q = r->out + (size_t)Y * r->W * nb;
        double dy = Y - r->oy;
        for (int X = 0; X < r->W; X++, q += nb) {
            double dx = X - r->ox;
            double ix = r->ia * dx + r->ib * dy, iy = r->ic * dx + r->id * dy;
            double fx0 = floor(ix), fy0 = floor(iy);
            if (fx0 < -1 || fy0 < -1 || fx0 > iw - 1 || fy0 > ih - 1) {
                for (int c = 0; c < nb; c++) q[c] = 0;
                continue;
            }
            int x0 = (int)fx0, y0 = (int)fy0;
            float fx = (float)(ix - fx0), fy = (float)(iy - fy0);
            float w00 = (1 - fx) * (1 - fy), w01 = fx * (1 - fy), w10 = (1 - fx) * fy,
                  w11 = fx * fy;
            if (x0 >= 0 && y0 >= 0 && x0 + 1 < iw && y0 + 1 < ih && r->fmt != 1) {
                /* inside: the common case */
                size_t o0 = ((size_t)y0 * iw + x0) * nb, o1 = o0 + (size_t)iw * nb;
                if (r->fmt == 0) {
                    const uint8_t *p0 = in8 + o0, *p1 = in8 + o1;
                    for (int c = 0; c < nb; c++)
                        q[c] = (w00 * p0[c] + w01 * p0[c + nb] + w10 * p1[c] + w11 * p1[c + nb]) *
                               r->scale;
                } else {
                    const float *p0 = inf + o0, *p1 = inf + o1;
                    for (int c = 0; c < nb; c++)
                        q[c] = (w00 * p0[c] + w01 * p0[c + nb] + w10 * p1[c] + w11 * p1[c + nb]) *
                               r->scale;
                }
                continue;
            }
            /* the four taps; outside the input: the edge pixel, or nothing (black) */
            int xa = x0 < 0 ? 0 : x0, xb = x0 + 1 > iw - 1 ? iw - 1 : x0 + 1;
            int ya = y0 < 0 ? 0 : y0, yb = y0 + 1 > ih - 1 ? ih - 1 : y0 + 1;
            if (r->black) {
                if (x0 < 0) w00 = w10 = 0;
                if (x0 + 1 > iw - 1) w01 = w11 = 0;
                if (y0 < 0) w00 = w01 = 0;
                if (y0 + 1 > ih - 1) w10 = w11 = 0;
            }
            size_t i00 = ((size_t)ya * iw + xa) * nb, i01 = ((size_t)ya * iw + xb) * nb;
            size_t i10 = ((size_t)yb * iw + xa) * nb, i11 = ((size_t)yb * iw + xb) * nb;
            for (int c = 0; c < nb; c++) {
                float v = r->fmt == 2 ? w00 * inf[i00 + c] + w01 * inf[i01 + c] +
                                            w10 * inf[i10 + c] + w11 * inf[i11 + c]
                          : r->fmt == 1 ? w00 * in16[i00 + c] + w01 * in16[i01 + c] +
                                              w10 * in16[i10 + c] + w11 * in16[i11 + c]
                                        : w00 * in8[i00 + c] + w01 * in8[i01 + c] +
                                              w10 * in8[i10 + c] + w11 * in8[i11 + c];
                q[c] = v * r->scale;
            }
        }
    }
    return NULL;
}

static void rotate_range(size_t first, size_t n, void *user) {
    rotate_job r = *(const rotate_job *)user;
    r.y0 = (int)first, r.y1 = (int)(first + n);
    rotate_rows(&r);
}

/* How to_canvas treats src's format. */
enum {
    KEEP_FORMAT, /* resample as it is (the 16-bit alpha) */
    FLOAT_FIRST, /* cast to float, then resample: no rounding at all */
    FLOAT_AFTER  /* resize in 8 bits (libvips' vectorised path, about twice as fast), then
                    float for the rotation: rounded once, by the resize (half a level) */
};

/* Resamples src (uchar or ushort; photo coordinates, origin ex, ey) into the canvas as float:
 * lanczos resize by s, then the rotation, pixel centres aligned. extend: what lies beyond src's
 * edge (VIPS_EXTEND_COPY or VIPS_EXTEND_BLACK); scale multiplies the values. Returns a memory
 * image, or NULL with the libvips error set. */
static VipsImage *to_canvas(VipsImage *src, double s, double t, const double E[2],
                            const double A[2], int ex, int ey, int W, int H, VipsExtend extend,
                            int format, float scale) {
    VipsImage *res = NULL, *mem = NULL, *f = NULL;
    if (format == FLOAT_FIRST) {
        if (vips_cast_float(src, &f, NULL)) return NULL;
        src = f;
    }
    int bad = vips_resize(src, &res, s, NULL);
    if (f) g_object_unref(f);
    if (bad) return NULL;
    mem = vips_image_copy_memory(res);
    g_object_unref(res);
    if (!mem) return NULL;
    if (mem->BandFmt != VIPS_FORMAT_UCHAR && mem->BandFmt != VIPS_FORMAT_USHORT &&
        mem->BandFmt != VIPS_FORMAT_FLOAT) {
        g_object_unref(mem);
        vips_error("frame", "%s", "to_canvas: 8-bit, 16-bit or float input only");
        return NULL;
    }
    /* canvas = R(-t) (resized - Er) + A, with the resized photo's pixel centres where the
     * photo's land (the offsets as vips_affine takes them: it maps pixel corners) */
    double Er[2] = {s * (E[0] - ex) + 0.5 * s - 0.5, s * (E[1] - ey) + 0.5 * s - 0.5};
    double c = cos(t), sn = sin(t), a = c, b = sn, cc = -sn, d = c;
    double det = a * d - b * cc;
    rotate_job r = {VIPS_IMAGE_ADDR(mem, 0, 0),
                    mem->Xsize,
                    mem->Ysize,
                    mem->Bands,
                    mem->BandFmt == VIPS_FORMAT_FLOAT    ? 2
                    : mem->BandFmt == VIPS_FORMAT_USHORT ? 1
                                                         : 0,
                    extend == VIPS_EXTEND_BLACK,
                    NULL,
                    W,
                    0,
                    H,
                    d / det,
                    -b / det,
                    -cc / det,
                    a / det,
                    A[0] - (a * Er[0] + b * Er[1]) + 0.5 * (a + b) - 0.5,
                    A[1] - (cc * Er[0] + d * Er[1]) + 0.5 * (cc + d) - 0.5,
                    scale};
    size_t bytes = sizeof(float) * (size_t)W * H * mem->Bands;
    r.out = g_try_malloc(bytes);
    VipsImage *out = NULL;
    if (r.out) {
        ts_render_split2(rotate_range, &r, (size_t)H, 2);
        out = ts_render_wrap(r.out, bytes, W, H, mem->Bands, VIPS_FORMAT_FLOAT);
        if (out) out->Type = mem->Bands == 1 ? VIPS_INTERPRETATION_B_W : mem->Type;
        if (out) out->Xres = mem->Xres, out->Yres = mem->Yres;
    } else {
        vips_error("frame", "%s", "out of memory");
    }
    g_object_unref(mem);
    return out;
}

/* ---- the per-photo cache ---------------------------------------------------------------- */

/* Half-resolution copies of what frame resamples, made once per photo: the photo, the
 * foreground colour (the matte's estimate inside its region, the photo outside) and the alpha,
 * each averaged 2 x 2 (an exact box filter). A canvas that shrinks the photo by 2 or more is
 * resampled from them: a quarter of the pixels through a kernel half as long, which is what
 * libvips' own thumbnailing does after a JPEG shrink-on-load. */
struct ts_render_cache {
    const ts_photo *photo;
    const ts_matte *matte;
    VipsImage *rgb2, *fg2, *alpha2; /* uchar 3-band, uchar 3-band, ushort 1-band */
    /* The last canvas frame made, for its parameters: looks that frame alike (a style's square
     * and another's, the same size) share it. Images are immutable, so sharing is a reference;
     * what frame adds to the job (transform, landmarks, edits, notes) is kept alongside. */
    struct {
        const ts_photo *photo;
        const ts_matte *matte;
        const ts_face_analysis *face;
        frame_params p;
        VipsImage *rgb, *alpha; /* the foreground colour is made again (frame_run) */
        double m[6];
        float lm[TS_LANDMARKS][2];
        float inter_eye;
        char edits[TS_RENDER_MAX_EDITS][96];
        int n_edits;
        char notes[TS_RENDER_MAX_NOTES][200];
        int n_notes;
        /* a stage's measurements of this canvas (ts_render_memo_put) */
        char memo_key[16];
        void *memo;
        size_t memo_size;
    } last;
};

ts_render_cache *ts_render_cache_new(void) {
    return calloc(1, sizeof(ts_render_cache));
}

static void last_clear(ts_render_cache *c) {
    ts_render_replace(&c->last.rgb, NULL);
    ts_render_replace(&c->last.alpha, NULL);
    c->last.photo = NULL, c->last.matte = NULL, c->last.face = NULL;
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

static void cache_clear(ts_render_cache *c) {
    last_clear(c);
    VipsImage **all[] = {&c->rgb2, &c->fg2, &c->alpha2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ts_render_replace(all[i], NULL);
    c->photo = NULL, c->matte = NULL;
}

void ts_render_cache_free(ts_render_cache *c) {
    if (!c) return;
    cache_clear(c);
    free(c);
}

/* A 2 x 2 shrink of a w x h image made of base (NULL: zeros) with over (ow x oh, same
 * bands and format) laid on it at (ox, oy), as vips_insert would: averaged the way vips_shrink
 * does it, bit for bit (each column pair rounded, then the row pair), without building the
 * inserted image. is16: 16-bit samples, else 8-bit. */
typedef struct half_job {
    const void *base, *over;
    int w, bands, is16, ox, oy, ow, oh;
    void *out;
    int hw, y0, y1;
} half_job;

static inline unsigned half_sample(const half_job *j, int x, int y, int c) {
    if (x >= j->ox && x < j->ox + j->ow && y >= j->oy && y < j->oy + j->oh) {
        size_t i = ((size_t)(y - j->oy) * j->ow + (x - j->ox)) * j->bands + c;
        return j->is16 ? ((const uint16_t *)j->over)[i] : ((const uint8_t *)j->over)[i];
    }
    if (!j->base) return 0;
    size_t i = ((size_t)y * j->w + x) * j->bands + c;
    return j->is16 ? ((const uint16_t *)j->base)[i] : ((const uint8_t *)j->base)[i];
}

static void *half_rows(void *arg) {
    const half_job *j = arg;
    int nb = j->bands;
    for (int y = j->y0; y < j->y1; y++) {
        int ya = 2 * y, yb = 2 * y + 1;
        /* rows wholly outside the overlay read base directly */
        int plain = (yb < j->oy || ya >= j->oy + j->oh) && j->base && !j->is16;
        const uint8_t *r0 = plain ? (const uint8_t *)j->base + (size_t)ya * j->w * nb : NULL;
        const uint8_t *r1 = plain ? r0 + (size_t)j->w * nb : NULL;
        for (int x = 0; x < j->hw; x++)
            for (int c = 0; c < nb; c++) {
                unsigned p00, p01, p10, p11;
                if (plain) {
                    size_t i = (size_t)2 * x * nb + c;
                    p00 = r0[i], p01 = r0[i + nb], p10 = r1[i], p11 = r1[i + nb];
                } else {
                    p00 = half_sample(j, 2 * x, ya, c), p01 = half_sample(j, 2 * x + 1, ya, c);
                    p10 = half_sample(j, 2 * x, yb, c), p11 = half_sample(j, 2 * x + 1, yb, c);
                }
                unsigned v = (((p00 + p10 + 1) / 2) + ((p01 + p11 + 1) / 2) + 1) / 2;
                size_t o = ((size_t)y * j->hw + x) * nb + c;
                if (j->is16)
                    ((uint16_t *)j->out)[o] = (uint16_t)v;
                else
                    ((uint8_t *)j->out)[o] = (uint8_t)v;
            }
    }
    return NULL;
}

static void half_range(size_t first, size_t n, void *user) {
    half_job j = *(const half_job *)user;
    j.y0 = (int)first, j.y1 = (int)(first + n);
    half_rows(&j);
}

/* The half-size image (memory, owning its pixels) of base with over inserted; NULL on failure.
 * w and h must be even. */
static VipsImage *half_of(const void *base, const void *over, int w, int h, int bands, int is16,
                          int ox, int oy, int ow, int oh) {
    int hw = w / 2, hh = h / 2;
    size_t bytes = (size_t)hw * hh * bands * (is16 ? 2 : 1);
    void *out = g_try_malloc(bytes);
    if (!out) return NULL;
    half_job j = {base, over, w, bands, is16, ox, oy, over ? ow : 0, over ? oh : 0, out, hw, 0, hh};
    ts_render_split2(half_range, &j, (size_t)hh, 2);
    return ts_render_wrap(out, bytes, hw, hh, bands, is16 ? VIPS_FORMAT_USHORT : VIPS_FORMAT_UCHAR);
}

/* Fills c for the job's photo and matte (once). Returns 0, or -1 when it cannot (frame then
 * works from the full-resolution images). */
static int cache_fill(ts_render_cache *c, ts_render_job *job, VipsImage *full) {
    if (c->rgb2 && c->photo == job->photo && c->matte == job->matte) return 0;
    cache_clear(c);
    int w = full->Xsize, h = full->Ysize;
    if (w % 2 || h % 2 || full->Bands != 3 || full->BandFmt != VIPS_FORMAT_UCHAR) return -1;
    VipsImage *mem = vips_image_copy_memory(full); /* a reference: the photo is in memory */
    if (!mem) {
        vips_error_clear();
        return -1;
    }
    const void *px = VIPS_IMAGE_ADDR(mem, 0, 0);
    c->rgb2 = half_of(px, NULL, w, h, 3, 0, 0, 0, 0, 0);
    if (job->matte) {
        const ts_matte *mt = job->matte;
        c->fg2 = half_of(px, mt->fg, w, h, 3, 0, mt->x, mt->y, mt->w, mt->h);
        c->alpha2 = half_of(NULL, mt->alpha, w, h, 1, 1, mt->x, mt->y, mt->w, mt->h);
    }
    g_object_unref(mem);
    if (!c->rgb2 || (job->matte && (!c->fg2 || !c->alpha2))) {
        cache_clear(c);
        vips_error_clear();
        return -1;
    }
    c->photo = job->photo, c->matte = job->matte;
    return 0;
}

/* Materialises the canvas images (reference taken over; NULL when missing) into the job and
 * sets its transform, landmarks and edits. */
static ts_status finish(ts_render_job *job, VipsImage *rgb, VipsImage *alpha, VipsImage *fgc,
                        double s, double t, const double E[2], const double A[2], int W, int H,
                        const frame_params *p) {
    ts_ctx *ctx = job->ctx;
    const ts_face_analysis *f = job->face;
    const float(*L)[3] = f->landmarks;
    /* Materialise: later stages read these many times. */
    VipsImage *rgb_mem = rgb ? vips_image_copy_memory(rgb) : NULL;
    VipsImage *alpha_mem = alpha ? vips_image_copy_memory(alpha) : NULL;
    VipsImage *fg_mem = fgc ? vips_image_copy_memory(fgc) : NULL;
    if (rgb) g_object_unref(rgb);
    if (alpha) g_object_unref(alpha);
    if (fgc) g_object_unref(fgc);
    if (!rgb_mem || (job->matte && (!alpha_mem || !fg_mem))) {
        if (rgb_mem) g_object_unref(rgb_mem);
        if (alpha_mem) g_object_unref(alpha_mem);
        if (fg_mem) g_object_unref(fg_mem);
        return ts_fail(ctx, TS_ERR_INTERNAL, "frame: %s", vips_error_buffer());
    }
    ts_render_replace(&job->rgb, rgb_mem);
    ts_render_replace(&job->alpha, alpha_mem);
    ts_render_replace(&job->fg, fg_mem);
    double c = cos(t), sn = sin(t);
    job->m[0] = s * c, job->m[1] = s * sn, job->m[3] = -s * sn, job->m[4] = s * c;
    job->m[2] = A[0] - (job->m[0] * E[0] + job->m[1] * E[1]);
    job->m[5] = A[1] - (job->m[3] * E[0] + job->m[4] * E[1]);
    for (int i = 0; i < TS_LANDMARKS; i++) {
        job->lm[i][0] = (float)(job->m[0] * L[i][0] + job->m[1] * L[i][1] + job->m[2]);
        job->lm[i][1] = (float)(job->m[3] * L[i][0] + job->m[4] * L[i][1] + job->m[5]);
    }
    job->inter_eye = (float)(f->inter_eye_px * s);
    if (p->level && fabs(t) > 0.2 * M_PI / 180)
        ts_render_edit(job, "levelled the eyes (turned %.1f degrees)", -t * 180 / M_PI);
    ts_render_edit(job, "cropped to %s %dx%d", crop_names[p->crop], W, H);
    return TS_OK;
}

/* Whether a and b make the same canvas (0 for the eye line or head is the template's value). */
static int same_params(const frame_params *a, const frame_params *b) {
    /* as frame_make reads them (a style's 0.52 is the float nearest, not the template's) */
    double ea = a->eye_line > 0 ? a->eye_line : crop_eye[a->crop];
    double eb = b->eye_line > 0 ? b->eye_line : crop_eye[b->crop];
    double ha = a->head > 0 ? a->head : crop_head[a->crop];
    double hb = b->head > 0 ? b->head : crop_head[b->crop];
    return a->crop == b->crop && a->width == b->width && ea == eb && ha == hb &&
           !a->level == !b->level;
}

/* Gives the job the cached canvas when the last one was made for the same photo, matte, face
 * and parameters; returns 1 then, else 0. */
static int last_take(ts_render_job *job, const frame_params *p) {
    ts_render_cache *c = job->cache;
    if (!c || !c->last.rgb || c->last.photo != job->photo || c->last.matte != job->matte ||
        c->last.face != job->face || !same_params(&c->last.p, p))
        return 0;
    VipsImage *im[2] = {c->last.rgb, c->last.alpha};
    for (int k = 0; k < 2; k++)
        if (im[k]) g_object_ref(im[k]);
    ts_render_replace(&job->rgb, im[0]);
    ts_render_replace(&job->alpha, im[1]);
    memcpy(job->m, c->last.m, sizeof job->m);
    memcpy(job->lm, c->last.lm, sizeof job->lm);
    job->inter_eye = c->last.inter_eye;
    for (int k = 0; k < c->last.n_notes; k++) ts_render_note(job, "%s", c->last.notes[k]);
    for (int k = 0; k < c->last.n_edits; k++) ts_render_edit(job, "%s", c->last.edits[k]);
    return 1;
}

/* Keeps the canvas frame just made (with the edits and notes from index e0 and n0 on). */
static void last_keep(ts_render_job *job, const frame_params *p, int e0, int n0) {
    ts_render_cache *c = job->cache;
    if (!c) return;
    last_clear(c);
    VipsImage *im[2] = {job->rgb, job->alpha};
    for (int k = 0; k < 2; k++)
        if (im[k]) g_object_ref(im[k]);
    c->last.rgb = im[0], c->last.alpha = im[1];
    c->last.photo = job->photo, c->last.matte = job->matte, c->last.face = job->face;
    c->last.p = *p;
    memcpy(c->last.m, job->m, sizeof job->m);
    memcpy(c->last.lm, job->lm, sizeof job->lm);
    c->last.inter_eye = job->inter_eye;
    c->last.n_edits = c->last.n_notes = 0;
    for (int k = e0; k < job->n_edits; k++)
        memcpy(c->last.edits[c->last.n_edits++], job->edits[k], sizeof job->edits[k]);
    for (int k = n0; k < job->n_notes; k++)
        memcpy(c->last.notes[c->last.n_notes++], job->notes[k], sizeof job->notes[k]);
}

/* Gives the job fg, the foreground colour made again for a cached canvas (reference taken). */
static ts_status fg_done(ts_render_job *job, VipsImage *fg) {
    if (!fg) return ts_fail(job->ctx, TS_ERR_INTERNAL, "frame: %s", vips_error_buffer());
    ts_render_replace(&job->fg, fg);
    return TS_OK;
}

/* The frame's transform for p, its canvas (rgb, alpha, fg) into the job, and its edits and notes;
 * fg_only: the foreground colour alone (for a canvas taken from the cache, which keeps the rest).
 */
static ts_status frame_make(ts_render_job *job, const frame_params *p, int fg_only) {
    const ts_face_analysis *f = job->face;
    ts_ctx *ctx = job->ctx;
    VipsImage *full = ts_photo_full(ctx, job->photo);
    if (!full) return TS_ERR_FORMAT;
    int PW = full->Xsize, PH = full->Ysize;
    int W = p->width, H = (int)lround(p->width / crop_aspect[p->crop]);
    const float(*L)[3] = f->landmarks;
    double t = p->level ? atan2(L[263][1] - L[33][1], L[263][0] - L[33][0]) : 0;
    double E[2] = {(L[468][0] + L[473][0]) / 2, (L[468][1] + L[473][1]) / 2};
    /* Head height in the levelled frame: forehead to chin, plus hair. */
    double fh = hypot(L[152][0] - L[10][0], L[152][1] - L[10][1]);
    double head_px = 1.35 * fh;
    double head_frac = p->head > 0 ? p->head : crop_head[p->crop];
    double eye = p->eye_line > 0 ? p->eye_line : crop_eye[p->crop];
    double s = head_frac * H / head_px;
    double A[2] = {W / 2.0, eye * H};
    double box[4];
    /* Keep the canvas on the photo. The bottom and the sides are hard limits (a body cut by the
     * photo's edge must not float above the frame's edge): zoom in, up to 1.8x, and if the
     * bottom still shows past the photo, lower the eyes in the frame, up to halfway. The top is
     * softer: raise the eyes to 0.30, zoom, and otherwise say so. */
    double s0 = s;
    for (int it = 0; it < 200; it++) {
        canvas_bounds(s, t, E, A, W, H, box);
        bool over_bottom = box[3] > PH + 0.5, over_sides = box[0] < -0.5 || box[2] > PW + 0.5;
        bool over_top = box[1] < -0.5;
        if (!over_bottom && !over_sides && !over_top) break;
        if (over_bottom || over_sides) {
            if (s < s0 * 1.8)
                s *= 1.01;
            else if (over_bottom && eye < 0.5)
                eye += 0.005, A[1] = eye * H;
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
    double head_top = E[1] - (E[1] - L[10][1]) - 0.35 * fh; /* approx. top of hair, photo y */
    if (box[1] < -0.5 && !fg_only) {
        if (head_top < 0)
            ts_render_note(job, "the top of the head is cut off in the photo; leave room above "
                                "the head next time");
        else
            ts_render_note(job,
                           "not enough room above the head for the %s framing: the head "
                           "sits higher than usual",
                           crop_names[p->crop]);
    }
    if (box[3] > PH + 0.5 && !fg_only)
        ts_render_note(job, "the photo ends above the shoulders; the frame shows less body than "
                            "usual");
    /* The part of the photo needed, with a margin for the resampling kernel. */
    int ex = (int)floor(fmax(0, box[0] - 4)), ey = (int)floor(fmax(0, box[1] - 4));
    int ex1 = (int)ceil(fmin(PW, box[2] + 4)), ey1 = (int)ceil(fmin(PH, box[3] + 4));
    if (ex1 - ex < 2 || ey1 - ey < 2) return ts_fail(ctx, TS_ERR_INTERNAL, "frame: empty crop");
    /* Shrinking by 2.2 or more: from the half-resolution copies (the resize left is still a
     * reduction, by 1.1 or more). Coordinates there: x / 2 for pixel corners, so a centre x
     * lands at (x + 0.5) / 2 - 0.5. */
    if (job->cache && s <= 1 / 2.2 && cache_fill(job->cache, job, full) == 0) {
        const ts_render_cache *c = job->cache;
        int hx = ex / 2, hy = ey / 2;
        int hx1 = (ex1 + 1) / 2, hy1 = (ey1 + 1) / 2;
        hx1 = hx1 > c->rgb2->Xsize ? c->rgb2->Xsize : hx1;
        hy1 = hy1 > c->rgb2->Ysize ? c->rgb2->Ysize : hy1;
        double E2[2] = {(E[0] + 0.5) / 2 - 0.5, (E[1] + 0.5) / 2 - 0.5};
        VipsImage *src[3] = {c->rgb2, c->fg2, c->alpha2}, *got[3] = {NULL, NULL, NULL};
        for (int k = 0; k < 3; k++) {
            VipsImage *reg = NULL;
            if ((fg_only && k != 1) || !src[k] ||
                vips_extract_area(src[k], &reg, hx, hy, hx1 - hx, hy1 - hy, NULL))
                continue;
            got[k] = to_canvas(reg, 2 * s, t, E2, A, hx, hy, W, H,
                               k == 2 ? VIPS_EXTEND_BLACK : VIPS_EXTEND_COPY,
                               k == 2 ? KEEP_FORMAT : FLOAT_AFTER, k == 2 ? 1.f / 65535 : 1.f);
            g_object_unref(reg);
        }
        if (fg_only) return fg_done(job, got[1]);
        if (!job->matte)
            for (int k = 1; k < 3; k++)
                if (got[k]) g_object_unref(got[k]), got[k] = NULL;
        return finish(job, got[0], got[2], got[1], s, t, E, A, W, H, p);
    }
    VipsImage *region = NULL, *rgb = NULL, *alpha = NULL;
    if (!fg_only) {
        if (vips_extract_area(full, &region, ex, ey, ex1 - ex, ey1 - ey, NULL))
            return ts_fail(ctx, TS_ERR_INTERNAL, "frame: %s", vips_error_buffer());
        rgb = to_canvas(region, s, t, E, A, ex, ey, W, H, VIPS_EXTEND_COPY, FLOAT_FIRST, 1.f);
        g_object_unref(region);
    }
    if (job->matte && !fg_only) {
        VipsImage *a = matte_alpha(job->matte, ex, ey, ex1 - ex, ey1 - ey);
        alpha =
            a ? to_canvas(a, s, t, E, A, ex, ey, W, H, VIPS_EXTEND_BLACK, KEEP_FORMAT, 1.f / 65535)
              : NULL;
        if (a) g_object_unref(a);
    }
    /* The decontaminated foreground colour: the matte's estimate inside its region, the
     * photo's own pixels outside it (where alpha is 0 and it is never shown). */
    VipsImage *fgc = NULL;
    if (job->matte) {
        const ts_matte *mt = job->matte;
        VipsImage *m8 = vips_image_new_from_memory((void *)mt->fg, (size_t)mt->w * mt->h * 3, mt->w,
                                                   mt->h, 3, VIPS_FORMAT_UCHAR);
        VipsImage *ins = NULL, *reg = NULL;
        int ok = m8 && vips_extract_area(full, &reg, ex, ey, ex1 - ex, ey1 - ey, NULL) == 0 &&
                 vips_insert(reg, m8, &ins, mt->x - ex, mt->y - ey, NULL) == 0;
        if (ok) fgc = to_canvas(ins, s, t, E, A, ex, ey, W, H, VIPS_EXTEND_COPY, FLOAT_FIRST, 1.f);
        VipsImage *all[] = {m8, ins, reg};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            if (all[i]) g_object_unref(all[i]);
    }
    if (fg_only) return fg_done(job, fgc);
    return finish(job, rgb, alpha, fgc, s, t, E, A, W, H, p);
}

static ts_status frame_run(ts_render_job *job, const void *params) {
    const frame_params *p = params;
    /* a canvas taken from the cache gets its foreground colour made again: kept, it would add
     * a canvas to each look's peak memory */
    if (last_take(job, p)) return job->matte ? frame_make(job, p, 1) : TS_OK;
    /* the canvas kept is not this one: let it go before the new one is made */
    if (job->cache) last_clear(job->cache);
    int e0 = job->n_edits, n0 = job->n_notes;
    ts_status st = frame_make(job, p, 0);
    if (st == TS_OK) last_keep(job, p, e0, n0);
    return st;
}

const ts_stage ts_stage_frame = {"frame", 1, frame_table, sizeof(frame_params), frame_run};
