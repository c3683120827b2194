/* ts_photo_matte: the person matte at the photo's full resolution (docs/matte.md).
 *
 * 1. region: head and shoulders around the subject's face, or the whole photo;
 * 2. person probability from the segmentation network on the region (and its mirror image),
 *    at the work resolution (the region in the photo's analysis copy); holes filled;
 * 3. trimap: confident person / background, an uncertain band between them;
 * 4. alpha: colour guided filter of the constrained probability, coefficients at the work
 *    resolution, applied to the full-resolution colour in the band;
 * 5. foreground colour: multi-level estimation at the work resolution, then one local solve per
 *    full-resolution band pixel. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "matte/matte.h"

/* Region around the face, in face-box sizes (docs/matte.md). */
#define REGION_WIDTH 3.5f  /* face widths, centred on the face */
#define REGION_ABOVE 0.8f  /* face heights above the box top: hair */
#define REGION_BELOW 3.0f  /* face heights below the chin: shoulders and chest */
#define HOLE_MAX_FRAC 0.02 /* larger enclosed background is real (between arm and body) */
#define MIN_PERSON_FRAC 0.005
#define BAND_FRAC 0.012f   /* band half-width per side, fraction of the region's longer side */
#define HAIR_BAND_FACTOR 2 /* above the eyes the band is this much wider */
#define GUIDED_EPS 1e-4f
#define GUIDED_RADIUS(band) ((band) / 2 > 2 ? (band) / 2 : 2)

void ts_matte_options_init(ts_matte_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->region = TS_MATTE_HEAD_AND_SHOULDERS;
    o->decontaminate = 1;
}

void ts_matte_free(ts_matte *m) {
    if (!m) return;
    free(m->alpha);
    free(m->fg);
    free(m);
}

void ts_matte_region(const ts_matte *m, int *x, int *y, int *w, int *h) {
    if (x) *x = m ? m->x : 0;
    if (y) *y = m ? m->y : 0;
    if (w) *w = m ? m->w : 0;
    if (h) *h = m ? m->h : 0;
}

ts_status ts_matte_alpha8(const ts_matte *m, uint8_t *dst) {
    if (!m || !dst) return TS_ERR_ARGUMENT;
    for (size_t i = 0; i < (size_t)m->w * m->h; i++) dst[i] = (uint8_t)lrintf(m->alpha[i] * 255.f);
    return TS_OK;
}

ts_status ts_matte_alpha16(const ts_matte *m, uint16_t *dst) {
    if (!m || !dst) return TS_ERR_ARGUMENT;
    for (size_t i = 0; i < (size_t)m->w * m->h; i++)
        dst[i] = (uint16_t)lrintf(m->alpha[i] * 65535.f);
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
static void head_region(const ts_face *f, int W, int H, int r[4]) {
    float cx = f->x + f->w / 2, half = REGION_WIDTH * f->w / 2;
    float x0 = fmaxf(0, floorf(cx - half)), x1 = fminf((float)W, ceilf(cx + half));
    float y0 = fmaxf(0, floorf(f->y - REGION_ABOVE * f->h));
    float y1 = fminf((float)H, ceilf(f->y + f->h + REGION_BELOW * f->h));
    r[0] = (int)x0, r[1] = (int)y0, r[2] = (int)(x1 - x0), r[3] = (int)(y1 - y0);
    if (r[2] < 1 || r[3] < 1) r[0] = 0, r[1] = 0, r[2] = W, r[3] = H;
}

/* The region of the photo at full resolution: EXIF-rotated, sRGB, 3-band uchar, in memory.
 * Sequential decoding when no rotation is needed: rows below the region are never decoded. */
static unsigned char *decode_region(ts_ctx *ctx, ts_photo *p, const int r[4]) {
    int orient = vips_image_get_orientation(p->header);
    bool plain = orient <= 1;
    VipsImage *im = plain
                        ? vips_image_new_from_file(p->path, "access", VIPS_ACCESS_SEQUENTIAL, NULL)
                        : vips_image_new_from_file(p->path, NULL);
    VipsImage *rot = NULL, *rgb = NULL, *flat = NULL, *u8 = NULL, *crop = NULL;
    int ok = im != NULL && vips_autorot(im, &rot, NULL) == 0;
    /* Embedded profiles are imported as the analysis copy's thumbnail does. */
    if (ok)
        ok = vips_image_get_typeof(rot, VIPS_META_ICC_NAME)
                 ? vips_icc_transform(rot, &rgb, "srgb", "embedded", TRUE, "intent",
                                      VIPS_INTENT_RELATIVE, NULL) == 0
                 : vips_colourspace(rot, &rgb, VIPS_INTERPRETATION_sRGB, NULL) == 0;
    if (ok)
        ok = vips_image_hasalpha(rgb) ? vips_flatten(rgb, &flat, NULL) == 0
                                      : (flat = g_object_ref(rgb)) != NULL;
    if (ok) ok = vips_cast_uchar(flat, &u8, NULL) == 0;
    if (ok) ok = u8->Bands == 3 && u8->Xsize >= r[0] + r[2] && u8->Ysize >= r[1] + r[3];
    if (ok) ok = vips_extract_area(u8, &crop, r[0], r[1], r[2], r[3], NULL) == 0;
    size_t len = 0;
    unsigned char *px = ok ? vips_image_write_to_memory(crop, &len) : NULL;
    VipsImage *all[] = {im, rot, rgb, flat, u8, crop};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]) g_object_unref(all[i]);
    if (!px || len != (size_t)r[2] * r[3] * 3) {
        g_free(px);
        char why[300];
        snprintf(why, sizeof why, "%s", vips_error_buffer());
        vips_error_clear();
        for (char *c = why; *c; c++)
            if (*c == '\n') *c = c[1] ? ' ' : 0;
        ts_fail(ctx, TS_ERR_FORMAT, "%s: cannot decode: %s", p->path, why);
        return NULL;
    }
    return px;
}

/* Bilinear lookup tables from full-resolution columns (or rows) of the region to the work
 * image: centre convention, clamped. */
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
} work;

static void work_free(work *k) {
    free(k->rgb.px), free(k->prob), free(k->tri), free(k->coef), free(k->alpha), free(k->F),
        free(k->B);
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
    const ts_face_analysis *subj = NULL;
    ts_status s = ts_photo_subject(ctx, p, &subj);
    if (s == TS_OK) {
        const ts_face *faces;
        int nf = 0;
        s = ts_photo_faces(ctx, p, &faces, &nf);
        if (s) return s;
        if (subj->face < 0 || subj->face >= nf)
            return ts_fail(ctx, TS_ERR_INTERNAL, "matte: subject index out of range");
        if (opts.region == TS_MATTE_HEAD_AND_SHOULDERS) head_region(&faces[subj->face], W, H, reg);
        eye_y = (subj->irises[0].y + subj->irises[1].y) / 2;
    } else if (s != TS_ERR_NO_FACE || opts.region == TS_MATTE_HEAD_AND_SHOULDERS) {
        return s;
    }
    lap("faces", &t);

    /* 2. The work image: the region in the analysis copy. */
    double scale;
    VipsImage *an = ts_photo_analysis(ctx, p, &scale);
    if (!an) return TS_ERR_FORMAT;
    double sx = (double)an->Xsize / W, sy = (double)an->Ysize / H;
    int ax = (int)floor(reg[0] * sx), ay = (int)floor(reg[1] * sy);
    int ax1 = (int)ceil((reg[0] + reg[2]) * sx), ay1 = (int)ceil((reg[1] + reg[3]) * sy);
    ax1 = ax1 > an->Xsize ? an->Xsize : ax1 <= ax ? ax + 1 : ax1;
    ay1 = ay1 > an->Ysize ? an->Ysize : ay1 <= ay ? ay + 1 : ay1;
    work k = {.w = ax1 - ax, .h = ay1 - ay};
    size_t wn = (size_t)k.w * k.h;
    VipsImage *wimg = NULL;
    if (vips_extract_area(an, &wimg, ax, ay, k.w, k.h, NULL) != 0) {
        vips_error_clear();
        return ts_fail(ctx, TS_ERR_INTERNAL, "matte: cannot cut the region");
    }
    size_t len = 0;
    unsigned char *wpx = vips_image_write_to_memory(wimg, &len);
    int wb = wimg->Bands;
    k.rgb = (ts_fimg){k.w, k.h, 3, malloc(sizeof(float) * wn * 3)};
    k.prob = malloc(sizeof(float) * wn);
    k.tri = malloc(wn);
    k.coef = malloc(sizeof(float) * wn * 4);
    k.alpha = malloc(sizeof(float) * wn);
    k.F = malloc(sizeof(float) * wn * 3);
    k.B = malloc(sizeof(float) * wn * 3);
    ts_matte *m = calloc(1, sizeof *m);
    unsigned char *full = NULL;
    if (!wpx || wb < 3 || !k.rgb.px || !k.prob || !k.tri || !k.coef || !k.alpha || !k.F || !k.B ||
        !m) {
        s = ts_fail(ctx, wpx ? TS_ERR_NOMEM : TS_ERR_INTERNAL, "matte: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < wn; i++)
        for (int c = 0; c < 3; c++) k.rgb.px[i * 3 + c] = wpx[i * wb + c] * (1.f / 255.f);
    g_free(wpx);
    wpx = NULL;

    s = ts_matte_segment(ctx, wimg, 1, k.prob);
    if (s) goto fail;
    lap("segmentation", &t);
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
    lap("holes + trimap", &t);

    /* 4. Alpha: in the band, the colour model's estimate where person and background colours
     * differ, the network's elsewhere; then the guided filter, pinned to the trimap. */
    for (size_t i = 0; i < wn; i++)
        k.alpha[i] = k.tri[i] == TS_TRI_FG ? 1.f : k.tri[i] == TS_TRI_BG ? 0.f : k.prob[i];
    if (ts_matte_colour_alpha(&k.rgb, k.tri, HAIR_BAND_FACTOR * band * 2, k.alpha) != 0 ||
        ts_matte_guided_coef(&k.rgb, k.alpha, GUIDED_RADIUS(band), GUIDED_EPS, k.coef) != 0) {
        s = ts_fail(ctx, TS_ERR_NOMEM, "matte: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < wn; i++) {
        if (k.tri[i] != TS_TRI_UNKNOWN) continue;
        const float *c = k.coef + i * 4, *I = k.rgb.px + i * 3;
        float a = c[0] * I[0] + c[1] * I[1] + c[2] * I[2] + c[3];
        k.alpha[i] = a < 0 ? 0 : a > 1 ? 1 : a;
    }
    lap("guided filter", &t);

    /* 5a. Foreground colour at the work resolution. */
    if (opts.decontaminate && ts_matte_foreground_ml(&k.rgb, k.alpha, k.F, k.B) != 0) {
        s = ts_fail(ctx, TS_ERR_NOMEM, "matte: out of memory");
        goto fail;
    }
    lap("foreground (work)", &t);

    /* Full resolution. */
    m->x = reg[0], m->y = reg[1], m->w = reg[2], m->h = reg[3];
    size_t n = (size_t)m->w * m->h;
    full = decode_region(ctx, p, reg);
    if (!full) {
        s = TS_ERR_FORMAT;
        goto fail;
    }
    lap("decode region", &t);
    m->alpha = malloc(sizeof *m->alpha * n);
    m->fg = malloc(sizeof *m->fg * n * 3);
    int *ux = malloc(sizeof *ux * m->w), *uy = malloc(sizeof *uy * m->h);
    float *fx = malloc(sizeof *fx * m->w), *fy = malloc(sizeof *fy * m->h);
    if (!m->alpha || !m->fg || !ux || !uy || !fx || !fy) {
        free(ux), free(uy), free(fx), free(fy);
        s = ts_fail(ctx, TS_ERR_NOMEM, "matte: out of memory");
        goto fail;
    }
    axis_map(m->w, m->x, sx, ax, k.w, ux, fx);
    axis_map(m->h, m->y, sy, ay, k.h, uy, fy);

    /* 4b. Full-resolution alpha: where all four surrounding work pixels are confident, their
     * value; elsewhere the upsampled guided-filter model on the full-resolution colour, blended
     * with the confident share of the neighbours so the band's edge has no seam. */
    int kx1 = k.w > 1 ? 1 : 0;
    size_t kr = k.h > 1 ? (size_t)k.w : 0;
    for (int y = 0; y < m->h; y++) {
        float wy = fy[y];
        size_t r0 = (size_t)uy[y] * k.w;
        for (int x = 0; x < m->w; x++) {
            size_t i00 = r0 + ux[x], i01 = i00 + kx1, i10 = i00 + kr, i11 = i10 + kx1;
            uint8_t t00 = k.tri[i00], t01 = k.tri[i01], t10 = k.tri[i10], t11 = k.tri[i11];
            size_t o = (size_t)y * m->w + x;
            if ((t00 & t01 & t10 & t11) == TS_TRI_FG) {
                m->alpha[o] = 1.f;
                continue;
            }
            if ((t00 | t01 | t10 | t11) == TS_TRI_BG) {
                m->alpha[o] = 0.f;
                continue;
            }
            float wx = fx[x];
            float w00 = (1 - wx) * (1 - wy), w01 = wx * (1 - wy), w10 = (1 - wx) * wy,
                  w11 = wx * wy;
            const unsigned char *I8 = full + o * 3;
            float I[3] = {I8[0] * (1.f / 255.f), I8[1] * (1.f / 255.f), I8[2] * (1.f / 255.f)};
            float a = 0, conf_fg = 0, conf_bg = 0;
            const float *c00 = k.coef + i00 * 4, *c01 = k.coef + i01 * 4, *c10 = k.coef + i10 * 4,
                        *c11 = k.coef + i11 * 4;
            for (int c = 0; c < 4; c++) {
                float v = w00 * c00[c] + w01 * c01[c] + w10 * c10[c] + w11 * c11[c];
                a += c < 3 ? v * I[c] : v;
            }
            conf_fg = w00 * (t00 == TS_TRI_FG) + w01 * (t01 == TS_TRI_FG) +
                      w10 * (t10 == TS_TRI_FG) + w11 * (t11 == TS_TRI_FG);
            conf_bg = w00 * (t00 == TS_TRI_BG) + w01 * (t01 == TS_TRI_BG) +
                      w10 * (t10 == TS_TRI_BG) + w11 * (t11 == TS_TRI_BG);
            a = a < 0 ? 0 : a > 1 ? 1 : a;
            a = conf_fg + (1.f - conf_fg - conf_bg) * a;
            m->alpha[o] = a < 0 ? 0 : a > 1 ? 1 : a;
        }
    }
    lap("alpha (full)", &t);

    /* 5b. Foreground colour at full resolution: the photo where opaque; in the band, the local
     * solve against the upsampled work solution. */
    for (int y = 0; y < m->h; y++) {
        float wy = fy[y];
        size_t r0 = (size_t)uy[y] * k.w;
        for (int x = 0; x < m->w; x++) {
            size_t o = (size_t)y * m->w + x;
            float a = m->alpha[o];
            uint16_t *d = m->fg + o * 3;
            const unsigned char *I8 = full + o * 3;
            if (a <= 0.f) {
                d[0] = d[1] = d[2] = 0;
                continue;
            }
            if (a >= 1.f || !opts.decontaminate) {
                for (int c = 0; c < 3; c++) d[c] = (uint16_t)(I8[c] * 257);
                continue;
            }
            float wx = fx[x];
            float w00 = (1 - wx) * (1 - wy), w01 = wx * (1 - wy), w10 = (1 - wx) * wy,
                  w11 = wx * wy;
            size_t i00 = r0 + ux[x], i01 = i00 + kx1, i10 = i00 + kr, i11 = i10 + kx1;
            float fu[3], bu[3], I[3], F[3];
            for (int c = 0; c < 3; c++) {
                fu[c] = w00 * k.F[i00 * 3 + c] + w01 * k.F[i01 * 3 + c] + w10 * k.F[i10 * 3 + c] +
                        w11 * k.F[i11 * 3 + c];
                bu[c] = w00 * k.B[i00 * 3 + c] + w01 * k.B[i01 * 3 + c] + w10 * k.B[i10 * 3 + c] +
                        w11 * k.B[i11 * 3 + c];
                I[c] = I8[c] * (1.f / 255.f);
            }
            float wsum = 0;
            const float *al = m->alpha;
            size_t nb[4] = {x > 0 ? o - 1 : o, x < m->w - 1 ? o + 1 : o, y > 0 ? o - m->w : o,
                            y < m->h - 1 ? o + m->w : o};
            for (int j = 0; j < 4; j++)
                wsum += TS_MATTE_FG_EPS + TS_MATTE_FG_GRAD * fabsf(a - al[nb[j]]);
            ts_matte_foreground_pixel(I, a, wsum, fu, bu, F);
            for (int c = 0; c < 3; c++) d[c] = (uint16_t)lrintf(F[c] * 65535.f);
        }
    }
    free(ux), free(uy), free(fx), free(fy);
    lap("foreground (full)", &t);
    if (getenv("TRUESHOT_MATTE_TIMING"))
        fprintf(stderr, "matte: region %dx%d at %d,%d, work %dx%d, band %d px: %.1f ms\n", m->w,
                m->h, m->x, m->y, k.w, k.h, band, now_ms() - t0);
    g_free(full);
    g_object_unref(wimg);
    work_free(&k);
    *out = m;
    return TS_OK;
fail:
    g_free(wpx);
    g_free(full);
    if (wimg) g_object_unref(wimg);
    work_free(&k);
    ts_matte_free(m);
    return s;
}
