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

/* The matte's alpha as a 1-band float image (0..1) in photo coordinates over [ex, ey, ew, eh]. */
static VipsImage *matte_alpha(const ts_matte *mt, int ex, int ey, int ew, int eh) {
    int mx, my, mw, mh;
    ts_matte_region(mt, &mx, &my, &mw, &mh);
    uint16_t *a = malloc(sizeof *a * (size_t)mw * mh);
    if (!a || ts_matte_alpha16(mt, a) != TS_OK) {
        free(a);
        return NULL;
    }
    VipsImage *im = vips_image_new_from_memory_copy(a, sizeof *a * (size_t)mw * mh, mw, mh, 1,
                                                    VIPS_FORMAT_USHORT);
    free(a);
    VipsImage *f = NULL, *e = NULL;
    if (im && vips_linear1(im, &f, 1.0 / 65535, 0, NULL) == 0)
        vips_embed(f, &e, mx - ex, my - ey, ew, eh, "extend", VIPS_EXTEND_BLACK, NULL);
    if (im) g_object_unref(im);
    if (f) g_object_unref(f);
    return e;
}

/* Resamples src (photo coordinates, origin ex, ey) into the canvas: lanczos resize by s, then a
 * rotation-only affine, pixel centres aligned (libvips maps pixel corners). */
static VipsImage *to_canvas(VipsImage *src, double s, double t, const double E[2],
                            const double A[2], int ex, int ey, int W, int H, VipsExtend extend) {
    VipsImage *res = NULL, *out = NULL;
    if (vips_resize(src, &res, s, NULL)) return NULL;
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
    VipsImage *region = NULL, *fl = NULL;
    if (vips_extract_area(full, &region, ex, ey, ex1 - ex, ey1 - ey, NULL) ||
        vips_cast_float(region, &fl, NULL)) {
        if (region) g_object_unref(region);
        return ts_fail(ctx, TS_ERR_INTERNAL, "frame: %s", vips_error_buffer());
    }
    g_object_unref(region);
    VipsImage *rgb = to_canvas(fl, s, t, E, A, ex, ey, W, H, VIPS_EXTEND_COPY);
    g_object_unref(fl);
    VipsImage *alpha = NULL;
    if (job->matte) {
        VipsImage *a = matte_alpha(job->matte, ex, ey, ex1 - ex, ey1 - ey);
        alpha = a ? to_canvas(a, s, t, E, A, ex, ey, W, H, VIPS_EXTEND_BLACK) : NULL;
        if (a) g_object_unref(a);
    }
    /* The decontaminated foreground colour: the matte's estimate inside its region, the
     * photo's own pixels outside it (where alpha is 0 and it is never shown). */
    VipsImage *fgc = NULL;
    if (job->matte) {
        const ts_matte *mt = job->matte;
        VipsImage *m8 = vips_image_new_from_memory((void *)mt->fg, (size_t)mt->w * mt->h * 3, mt->w,
                                                   mt->h, 3, VIPS_FORMAT_UCHAR);
        VipsImage *mf = NULL, *base = NULL, *ins = NULL, *reg = NULL;
        int ok = m8 && vips_cast_float(m8, &mf, NULL) == 0 &&
                 vips_extract_area(full, &reg, ex, ey, ex1 - ex, ey1 - ey, NULL) == 0 &&
                 vips_cast_float(reg, &base, NULL) == 0 &&
                 vips_insert(base, mf, &ins, mt->x - ex, mt->y - ey, NULL) == 0;
        if (ok) fgc = to_canvas(ins, s, t, E, A, ex, ey, W, H, VIPS_EXTEND_COPY);
        VipsImage *all[] = {m8, mf, base, ins, reg};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            if (all[i]) g_object_unref(all[i]);
    }
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

const ts_stage ts_stage_frame = {"frame", 1, frame_table, sizeof(frame_params), frame_run};
