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

/* How to_canvas treats src's format. */
enum {
    KEEP_FORMAT, /* resample as it is (the 16-bit alpha) */
    FLOAT_FIRST, /* cast to float, then resample: no rounding at all */
    FLOAT_AFTER  /* resize in 8 bits (libvips' vectorised path, about twice as fast), then
                    float for the rotation: rounded once, by the resize (half a level) */
};

/* Resamples src (photo coordinates, origin ex, ey) into the canvas: lanczos resize by s, then a
 * rotation-only affine, pixel centres aligned (libvips maps pixel corners). */
static VipsImage *to_canvas(VipsImage *src, double s, double t, const double E[2],
                            const double A[2], int ex, int ey, int W, int H, VipsExtend extend,
                            int format) {
    VipsImage *res = NULL, *out = NULL, *f = NULL;
    if (format == FLOAT_FIRST) {
        if (vips_cast_float(src, &f, NULL)) return NULL;
        src = f;
    }
    int bad = vips_resize(src, &res, s, NULL);
    if (f) g_object_unref(f), f = NULL;
    if (bad) return NULL;
    if (format == FLOAT_AFTER) {
        bad = vips_cast_float(res, &f, NULL);
        g_object_unref(res);
        if (bad) return NULL;
        res = f;
    }
    double Er[2] = {s * (E[0] - ex) + 0.5 * s - 0.5, s * (E[1] - ey) + 0.5 * s - 0.5};
    double c = cos(t), sn = sin(t), a = c, b = sn, cc = -sn, d = c;
    double odx = A[0] - (a * Er[0] + b * Er[1]), ody = A[1] - (cc * Er[0] + d * Er[1]);
    VipsArrayInt *area = vips_array_int_newv(4, 0, 0, W, H);
    vips_affine(res, &out, a, b, cc, d, "interpolate", vips_interpolate_bilinear_static(), "oarea",
                area, "odx", odx + 0.5 * (a + b) - 0.5, "ody", ody + 0.5 * (cc + d) - 0.5, "extend",
                extend, NULL);
    vips_area_unref(VIPS_AREA(area));
    g_object_unref(res);
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
};

ts_render_cache *ts_render_cache_new(void) {
    return calloc(1, sizeof(ts_render_cache));
}

static void cache_clear(ts_render_cache *c) {
    VipsImage **all[] = {&c->rgb2, &c->fg2, &c->alpha2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ts_render_replace(all[i], NULL);
    c->photo = NULL, c->matte = NULL;
}

void ts_render_cache_free(ts_render_cache *c) {
    if (!c) return;
    cache_clear(c);
    free(c);
}

/* im shrunk 2 x 2 by averaging, in memory; NULL on failure. */
static VipsImage *half_of(VipsImage *im) {
    VipsImage *h = NULL, *m = NULL;
    if (vips_shrink(im, &h, 2, 2, NULL)) return NULL;
    m = vips_image_copy_memory(h);
    g_object_unref(h);
    return m;
}

/* Fills c for the job's photo and matte (once). Returns 0, or -1 when it cannot (frame then
 * works from the full-resolution images). */
static int cache_fill(ts_render_cache *c, ts_render_job *job, VipsImage *full) {
    if (c->rgb2 && c->photo == job->photo && c->matte == job->matte) return 0;
    cache_clear(c);
    c->rgb2 = half_of(full);
    if (job->matte) {
        const ts_matte *mt = job->matte;
        VipsImage *m8 = vips_image_new_from_memory((void *)mt->fg, (size_t)mt->w * mt->h * 3, mt->w,
                                                   mt->h, 3, VIPS_FORMAT_UCHAR);
        VipsImage *ins = NULL, *a = matte_alpha(mt, 0, 0, full->Xsize, full->Ysize);
        if (m8 && vips_insert(full, m8, &ins, mt->x, mt->y, NULL) == 0) c->fg2 = half_of(ins);
        if (a) c->alpha2 = half_of(a);
        VipsImage *all[] = {m8, ins, a};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            if (all[i]) g_object_unref(all[i]);
    }
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

static ts_status frame_run(ts_render_job *job, const void *params) {
    const frame_params *p = params;
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
    if (box[1] < -0.5) {
        if (head_top < 0)
            ts_render_note(job, "the top of the head is cut off in the photo; leave room above "
                                "the head next time");
        else
            ts_render_note(job,
                           "not enough room above the head for the %s framing: the head "
                           "sits higher than usual",
                           crop_names[p->crop]);
    }
    if (box[3] > PH + 0.5)
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
            if (!src[k] || vips_extract_area(src[k], &reg, hx, hy, hx1 - hx, hy1 - hy, NULL))
                continue;
            got[k] = to_canvas(reg, 2 * s, t, E2, A, hx, hy, W, H,
                               k == 2 ? VIPS_EXTEND_BLACK : VIPS_EXTEND_COPY,
                               k == 2 ? KEEP_FORMAT : FLOAT_AFTER);
            g_object_unref(reg);
        }
        VipsImage *alpha = NULL;
        if (got[2] && vips_linear1(got[2], &alpha, 1.0 / 65535, 0, NULL)) alpha = NULL;
        if (got[2]) g_object_unref(got[2]);
        return finish(job, got[0], job->matte ? alpha : NULL, job->matte ? got[1] : NULL, s, t, E,
                      A, W, H, p);
    }
    VipsImage *region = NULL;
    if (vips_extract_area(full, &region, ex, ey, ex1 - ex, ey1 - ey, NULL))
        return ts_fail(ctx, TS_ERR_INTERNAL, "frame: %s", vips_error_buffer());
    VipsImage *rgb = to_canvas(region, s, t, E, A, ex, ey, W, H, VIPS_EXTEND_COPY, FLOAT_FIRST);
    g_object_unref(region);
    VipsImage *alpha = NULL;
    if (job->matte) {
        VipsImage *a = matte_alpha(job->matte, ex, ey, ex1 - ex, ey1 - ey);
        VipsImage *a16 =
            a ? to_canvas(a, s, t, E, A, ex, ey, W, H, VIPS_EXTEND_BLACK, KEEP_FORMAT) : NULL;
        if (a16 && vips_linear1(a16, &alpha, 1.0 / 65535, 0, NULL)) alpha = NULL;
        if (a) g_object_unref(a);
        if (a16) g_object_unref(a16);
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
        if (ok) fgc = to_canvas(ins, s, t, E, A, ex, ey, W, H, VIPS_EXTEND_COPY, FLOAT_FIRST);
        VipsImage *all[] = {m8, ins, reg};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            if (all[i]) g_object_unref(all[i]);
    }
    return finish(job, rgb, alpha, fgc, s, t, E, A, W, H, p);
}

const ts_stage ts_stage_frame = {"frame", 1, frame_table, sizeof(frame_params), frame_run};
