/* Authenticity checks: the identity promise measured on the written file, and the edit map. */
#include "verify/verify.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"
#include "render/export.h"

/* libvips' last message on one line, then cleared. */
static const char *vips_why(char *buf, size_t cap) {
    snprintf(buf, cap, "%s", vips_error_buffer());
    vips_error_clear();
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) buf[--n] = 0;
    for (char *p = buf; *p; p++)
        if (*p == '\n') *p = ' ';
    return buf;
}

/* ---- Identity ------------------------------------------------------------------------------ */

typedef struct displacement {
    double mean_px, max_px;
    int worst;
} displacement;

/* Landmarks of b mapped through inv (output -> photo) against those of a, in photo pixels. */
static displacement compare(const ts_face_analysis *a, const ts_face_analysis *b,
                            const double inv[6]) {
    displacement d = {0, 0, 0};
    for (int i = 0; i < TS_LANDMARKS; i++) {
        double x = b->landmarks[i][0], y = b->landmarks[i][1];
        double px = inv[0] * x + inv[1] * y + inv[2], py = inv[3] * x + inv[4] * y + inv[5];
        double e = hypot(px - a->landmarks[i][0], py - a->landmarks[i][1]);
        d.mean_px += e;
        if (e > d.max_px) d.max_px = e, d.worst = i;
    }
    d.mean_px /= TS_LANDMARKS;
    return d;
}

/* The subject of the file at path; the photo (returned in *ph) owns *f. A missing face is
 * reported as being missing from that file. */
static ts_status subject_of(ts_ctx *ctx, const char *path, const char *what, ts_photo **ph,
                            const ts_face_analysis **f) {
    ts_status s = ts_photo_open(ctx, path, ph);
    if (s) return s;
    s = ts_photo_subject(ctx, *ph, f);
    if (s == TS_ERR_NO_FACE)
        ts_fail(ctx, s, "%s: no face found on the %s, so its identity cannot be checked", path,
                what);
    if (s) ts_photo_unref(*ph), *ph = NULL;
    return s;
}

ts_status ts_verify_noise_floor(ts_ctx *ctx, ts_photo *input, ts_verify_floor *out) {
    if (!ctx || !input || !out) return ts_fail(ctx, TS_ERR_ARGUMENT, "noise floor: NULL argument");
    const ts_face_analysis *fin;
    ts_status s = ts_photo_subject(ctx, input, &fin);
    if (s) return s;
    VipsImage *full = ts_photo_full(ctx, input);
    if (!full) return TS_ERR_FORMAT;
    /* The copy holds the person's photo, so it lives in a private folder for milliseconds. */
    GError *gerr = NULL;
    char *dir = g_dir_make_tmp("trueshot-verify-XXXXXX", &gerr);
    if (!dir) {
        s = ts_fail(ctx, TS_ERR_WRITE, "noise floor: cannot make a temporary folder: %s",
                    gerr ? gerr->message : "?");
        g_clear_error(&gerr);
        return s;
    }
    char *path = g_build_filename(dir, "reencoded.jpg", NULL), why[300];
    ts_photo *copy = NULL;
    const ts_face_analysis *fc = NULL;
    if (vips_jpegsave(full, path, "Q", 95, "strip", TRUE, NULL)) {
        s = ts_fail(ctx, TS_ERR_WRITE, "noise floor: cannot write %s: %s", path,
                    vips_why(why, sizeof why));
    } else {
        s = subject_of(ctx, path, "re-encoded copy of the photo", &copy, &fc);
    }
    if (!s) {
        static const double id[6] = {1, 0, 0, 0, 1, 0};
        displacement d = compare(fin, fc, id);
        out->mean = d.mean_px / fin->inter_eye_px;
        out->max = d.max_px / fin->inter_eye_px;
    }
    ts_photo_unref(copy);
    unlink(path);
    rmdir(dir);
    g_free(path);
    g_free(dir);
    return s;
}

/* Writes im (uchar) to a private temporary folder as a libvips native file (no encoding: it
 * is read straight back) and analyses it; the copy is removed at once. lm (may be NULL)
 * receives the subject's landmarks divided by a. what names the image in messages. */
static ts_status analyse_image(ts_ctx *ctx, VipsImage *im, const char *what, double a,
                               float (*lm)[2]) {
    char why[300];
    GError *gerr = NULL;
    char *dir = g_dir_make_tmp("trueshot-verify-XXXXXX", &gerr);
    if (!dir) {
        ts_status s = ts_fail(ctx, TS_ERR_WRITE, "identity: cannot make a temporary folder: %s",
                              gerr ? gerr->message : "?");
        g_clear_error(&gerr);
        return s;
    }
    char *path = g_build_filename(dir, "aligned.v", NULL);
    ts_status s = TS_OK;
    if (vips_image_write_to_file(im, path, NULL))
        s = ts_fail(ctx, TS_ERR_WRITE, "identity: cannot write %s: %s", path,
                    vips_why(why, sizeof why));
    ts_photo *ph = NULL;
    const ts_face_analysis *f = NULL;
    if (!s) s = subject_of(ctx, path, what, &ph, &f);
    if (!s)
        for (int i = 0; i < TS_LANDMARKS; i++)
            lm[i][0] = (float)(f->landmarks[i][0] / a), lm[i][1] = (float)(f->landmarks[i][1] / a);
    ts_photo_unref(ph);
    unlink(path);
    rmdir(dir);
    g_free(path);
    g_free(dir);
    return s;
}

/* The output as 3-band sRGB (alpha flattened), a new reference; NULL with the vips error set.
 * A float canvas (3-band, 0..255) is cast to 8 bits, as the PNG the pipeline used to write of
 * it held it; a decoded file goes through libvips' colour conversion, and keeps its format
 * until it has been resampled. */
static VipsImage *srgb_of(VipsImage *o) {
    VipsImage *rgb = NULL;
    if ((o->BandFmt == VIPS_FORMAT_FLOAT || o->BandFmt == VIPS_FORMAT_DOUBLE) && o->Bands == 3) {
        if (vips_cast_uchar(o, &rgb, NULL)) return NULL;
        rgb->Type = VIPS_INTERPRETATION_sRGB;
        return rgb;
    }
    int ok = vips_colourspace(o, &rgb, VIPS_INTERPRETATION_sRGB, NULL) == 0;
    if (ok && vips_image_hasalpha(rgb)) {
        VipsImage *flat = NULL;
        ok = vips_flatten(rgb, &flat, NULL) == 0;
        g_object_unref(rgb), rgb = flat;
    }
    if (!ok && rgb) g_object_unref(rgb), rgb = NULL;
    return rgb;
}

/* The subject's landmarks on the output after resampling it back into the photo's geometry
 * (the inverse of m), at the photo's analysis scale a, written to lm in photo pixels.
 * The analysis then sees the face where, and as large as, it saw it on the photo: its own
 * re-framing noise (0.6-1.1% of the eye distance on unedited frames, docs/export-and-verify.md)
 * drops out, and what remains is what the output changed. Outside the output: black. rgb is
 * the output as 3-band sRGB (srgb_of; borrowed). */
static ts_status aligned_landmarks(ts_ctx *ctx, ts_photo *input, VipsImage *rgb, const char *name,
                                   const double inv[6], float (*lm)[2]) {
    char why[300];
    double a = 1;
    if (!ts_photo_analysis(ctx, input, &a)) return TS_ERR_FORMAT;
    int W = (int)lround(ts_photo_width(input) * a), H = (int)lround(ts_photo_height(input) * a);
    /* output -> aligned, pixel centres: q = a (inv o) */
    double A[4] = {a * inv[0], a * inv[1], a * inv[3], a * inv[4]};
    double t[2] = {a * inv[2], a * inv[5]};
    VipsImage *pre = NULL, *back = NULL;
    int ok = 1;
    /* Shrinking by more than 1.5x: antialias first with a real resize, then the rest. */
    double sigma = sqrt(fabs(A[0] * A[3] - A[1] * A[2]));
    if (sigma < 1 / 1.5) {
        ok = vips_resize(rgb, &pre, sigma, "kernel", VIPS_KERNEL_LANCZOS3, NULL) == 0;
        if (ok) {
            /* resized = sigma (o + 0.5) - 0.5, so o = (resized + 0.5) / sigma - 0.5. */
            double off = 0.5 / sigma - 0.5;
            t[0] += (A[0] + A[1]) * off, t[1] += (A[2] + A[3]) * off;
            for (int i = 0; i < 4; i++) A[i] /= sigma;
        }
    } else {
        pre = g_object_ref(rgb);
    }
    if (ok) {
        VipsInterpolate *bic = vips_interpolate_new("bicubic");
        VipsArrayInt *area = vips_array_int_newv(4, 0, 0, W, H);
        VipsArrayDouble *black = vips_array_double_newv(1, 0.0);
        /* Pixel centres: libvips maps corners, so shift half a pixel in and out. */
        ok = vips_affine(pre, &back, A[0], A[1], A[2], A[3], "interpolate", bic, "oarea", area,
                         "odx", t[0] + 0.5 * (A[0] + A[1]) - 0.5, "ody",
                         t[1] + 0.5 * (A[2] + A[3]) - 0.5, "extend", VIPS_EXTEND_BLACK,
                         "background", black, NULL) == 0;
        vips_area_unref(VIPS_AREA(area));
        vips_area_unref(VIPS_AREA(black));
        g_object_unref(bic);
    }
    if (pre) g_object_unref(pre);
    VipsImage *u8 = NULL;
    if (ok) ok = vips_cast_uchar(back, &u8, NULL) == 0;
    if (back) g_object_unref(back);
    if (!ok) {
        if (u8) g_object_unref(u8);
        return ts_fail(ctx, TS_ERR_INTERNAL, "%s: cannot resample the output: %s", name,
                       vips_why(why, sizeof why));
    }
    ts_status s = analyse_image(ctx, u8, "output (resampled into the photo's geometry)", a, lm);
    g_object_unref(u8);
    if (s == TS_ERR_NO_FACE)
        ts_fail(ctx, s,
                "%s: no face found on the output (resampled into the photo's geometry), so its "
                "identity cannot be checked",
                name);
    return s;
}

/* The identity measure of rgb (3-band sRGB uchar, borrowed) against input; see
 * ts_verify_identity_image. */
static ts_status identity_of(ts_ctx *ctx, ts_photo *input, VipsImage *rgb, const char *name,
                             const char *direct_path, const double m[6],
                             const ts_verify_floor *floor, unsigned flags, ts_identity_result *r) {
    double det = m[0] * m[4] - m[1] * m[3];
    if (!isfinite(det) || fabs(det) < 1e-12)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_verify_identity: the transform is not invertible");
    /* output -> photo: p = A^-1 (q - t). */
    double inv[6] = {m[4] / det, -m[1] / det, 0, -m[3] / det, m[0] / det, 0};
    inv[2] = -(inv[0] * m[2] + inv[1] * m[5]);
    inv[5] = -(inv[3] * m[2] + inv[4] * m[5]);
    const ts_face_analysis *fin;
    ts_status s = ts_photo_subject(ctx, input, &fin);
    if (s) return s;
    ts_verify_floor fl;
    if (floor)
        fl = *floor;
    else if ((s = ts_verify_noise_floor(ctx, input, &fl)))
        return s;
    ts_face_analysis *al = malloc(sizeof *al);
    float(*lm)[2] = malloc(sizeof(float) * 2 * TS_LANDMARKS);
    if (!al || !lm) {
        free(al), free(lm);
        return ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
    }
    /* As it is: the output analysed at its own framing, its landmarks mapped back. */
    displacement direct = {-1, -1, 0};
    if (direct_path) {
        /* the file itself, decoded as any photo is */
        ts_photo *out = NULL;
        const ts_face_analysis *fo = NULL;
        if ((s = subject_of(ctx, direct_path, "output", &out, &fo))) {
            free(al), free(lm);
            return s;
        }
        direct = compare(fin, fo, inv);
        ts_photo_unref(out);
    } else if (flags & TS_VERIFY_DIRECT) {
        VipsImage *u8 = NULL;
        if (vips_cast_uchar(rgb, &u8, NULL)) {
            char why[300];
            free(al), free(lm);
            return ts_fail(ctx, TS_ERR_INTERNAL, "%s: %s", name, vips_why(why, sizeof why));
        }
        s = analyse_image(ctx, u8, "output", 1, lm);
        g_object_unref(u8);
        if (s == TS_ERR_NO_FACE)
            ts_fail(ctx, s, "%s: no face found on the output, so its identity cannot be checked",
                    name);
        if (s) {
            free(al), free(lm);
            return s;
        }
        for (int i = 0; i < TS_LANDMARKS; i++)
            al->landmarks[i][0] = lm[i][0], al->landmarks[i][1] = lm[i][1];
        direct = compare(fin, al, inv);
    }
    /* Aligned: the output mapped back first, then analysed. */
    if ((s = aligned_landmarks(ctx, input, rgb, name, inv, lm))) {
        free(al), free(lm);
        return s;
    }
    for (int i = 0; i < TS_LANDMARKS; i++)
        al->landmarks[i][0] = lm[i][0], al->landmarks[i][1] = lm[i][1], al->landmarks[i][2] = 0;
    static const double id[6] = {1, 0, 0, 0, 1, 0};
    displacement d = compare(fin, al, id);
    free(al), free(lm);

    ts_identity_result res;
    memset(&res, 0, sizeof res);
    double ie = fin->inter_eye_px;
    res.inter_eye_px = ie;
    res.mean_px = d.mean_px, res.max_px = d.max_px, res.worst = d.worst;
    res.mean = d.mean_px / ie, res.max = d.max_px / ie;
    res.direct_mean = direct.mean_px < 0 ? -1 : direct.mean_px / ie;
    res.direct_max = direct.max_px < 0 ? -1 : direct.max_px / ie;
    res.floor = fl;
    res.pass = res.mean <= TS_VERIFY_IDENTITY_LIMIT;
    if (res.pass)
        snprintf(res.message, sizeof res.message,
                 "face geometry kept: landmarks within %.2f%% of the eye distance on average "
                 "(max %.2f%%; the analysis's own noise %.2f%%)",
                 100 * res.mean, 100 * res.max, 100 * fl.mean);
    else
        snprintf(res.message, sizeof res.message,
                 "face geometry changed: landmarks moved %.2f%% of the eye distance on average "
                 "(limit %.0f%%; max %.2f%% at landmark %d; the analysis's own noise %.2f%%)",
                 100 * res.mean, 100 * TS_VERIFY_IDENTITY_LIMIT, 100 * res.max, res.worst,
                 100 * fl.mean);
    *r = res;
    return TS_OK;
}

ts_status ts_verify_identity_image(ts_ctx *ctx, ts_photo *input, VipsImage *output,
                                   const char *name, const double m[6],
                                   const ts_verify_floor *floor, unsigned flags,
                                   ts_identity_result *r) {
    if (!ctx || !input || !output || !m || !r)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_verify_identity_image: NULL argument");
    if (!name) name = "output";
    char why[300];
    VipsImage *rgb = srgb_of(output);
    if (!rgb)
        return ts_fail(ctx, TS_ERR_INTERNAL, "%s: cannot read the output: %s", name,
                       vips_why(why, sizeof why));
    ts_status s = identity_of(ctx, input, rgb, name, NULL, m, floor, flags, r);
    g_object_unref(rgb);
    return s;
}

ts_status ts_verify_identity(ts_ctx *ctx, ts_photo *input, const char *output_path,
                             const double m[6], const ts_verify_floor *floor,
                             ts_identity_result *r) {
    if (!ctx || !input || !output_path || !m || !r)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_verify_identity: NULL argument");
    char why[300];
    VipsImage *o = vips_image_new_from_file(output_path, NULL);
    if (!o) {
        /* the reason as opening it as a photo gives it (missing, not an image, ...) */
        vips_error_clear();
        ts_photo *ph = NULL;
        ts_status s = ts_photo_open(ctx, output_path, &ph);
        ts_photo_unref(ph);
        return s ? s
                 : ts_fail(ctx, TS_ERR_READ, "%s: cannot read the output: %s", output_path,
                           vips_why(why, sizeof why));
    }
    VipsImage *rgb = srgb_of(o);
    g_object_unref(o);
    if (!rgb)
        return ts_fail(ctx, TS_ERR_READ, "%s: cannot read the output: %s", output_path,
                       vips_why(why, sizeof why));
    ts_status s =
        identity_of(ctx, input, rgb, output_path, output_path, m, floor, TS_VERIFY_DIRECT, r);
    g_object_unref(rgb);
    return s;
}

/* ---- Edit map ------------------------------------------------------------------------------ */

VipsImage *ts_verify_snapshot(const ts_render_job *job) {
    if (!job || !job->rgb) return NULL;
    g_object_ref(job->rgb);
    return job->rgb;
}

/* im as w x h x bands floats in a new buffer (g_free), or NULL. */
static float *floats_of(VipsImage *im, int bands, VipsImage **hold) {
    *hold = NULL;
    if (im->Bands != bands) return NULL;
    if (im->BandFmt == VIPS_FORMAT_FLOAT) {
        /* a canvas: read where it is (a reference when it is in memory already) */
        *hold = vips_image_copy_memory(im);
        return *hold ? (float *)VIPS_IMAGE_ADDR(*hold, 0, 0) : NULL;
    }
    VipsImage *f = NULL;
    if (vips_cast_float(im, &f, NULL)) return NULL;
    size_t n = 0;
    float *px = vips_image_write_to_memory(f, &n);
    g_object_unref(f);
    if (px && n != sizeof(float) * (size_t)im->Xsize * im->Ysize * bands) g_free(px), px = NULL;
    return px;
}

/* Frees what floats_of returned. */
static void floats_free(float *px, VipsImage *hold) {
    if (hold)
        g_object_unref(hold);
    else
        g_free(px);
}

/* A magma-like colour scale (after matplotlib's magma): perceptually ordered, dark to bright,
 * readable by the colour-blind. Nine stops, interpolated linearly. */
static void magma(double t, unsigned char rgb[3]) {
    static const unsigned char stops[9][3] = {{0, 0, 4},      {28, 16, 68},    {79, 18, 123},
                                              {129, 37, 129}, {181, 54, 122},  {229, 80, 100},
                                              {251, 135, 97}, {254, 194, 135}, {252, 253, 191}};
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double u = t * 8;
    int i = (int)u < 8 ? (int)u : 7;
    double f = u - i;
    for (int c = 0; c < 3; c++)
        rgb[c] = (unsigned char)lround(stops[i][c] + f * (stops[i + 1][c] - stops[i][c]));
}

static const char *extension_of(const char *path) {
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    return dot && (!slash || dot > slash) ? dot : NULL;
}

ts_status ts_verify_edit_map(ts_ctx *ctx, VipsImage *before, VipsImage *after, VipsImage *alpha,
                             const char *path, ts_edit_stats *stats) {
    if (!ctx || !before || !after || !path)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_verify_edit_map: NULL argument");
    int w = before->Xsize, h = before->Ysize;
    if (after->Xsize != w || after->Ysize != h ||
        (alpha && (alpha->Xsize != w || alpha->Ysize != h)))
        return ts_fail(ctx, TS_ERR_ARGUMENT, "edit map: the images differ in size");
    const char *ext = extension_of(path);
    if (!ext || !vips_foreign_find_save_buffer(ext)) {
        vips_error_clear();
        return ts_fail(ctx, TS_ERR_ARGUMENT, "%s: unknown image format (use .png or .jpg)", path);
    }
    VipsImage *hb = NULL, *ha = NULL, *hm = NULL;
    float *b = floats_of(before, 3, &hb), *a = floats_of(after, 3, &ha),
          *m = alpha ? floats_of(alpha, 1, &hm) : NULL;
    size_t n = (size_t)w * h;
    unsigned char *out = g_try_malloc(n * 3);
    char why[300];
    if (!b || !a || (alpha && !m) || !out) {
        floats_free(b, hb), floats_free(a, ha), floats_free(m, hm), g_free(out);
        return ts_fail(ctx, TS_ERR_INTERNAL,
                       "edit map: cannot read the canvases (3-band and "
                       "1-band images expected): %s",
                       vips_why(why, sizeof why));
    }
    /* Change histogram in quarter levels, for the percentile. */
    enum { BINS = 1024 };
    long hist[BINS] = {0}, pixels = 0, changed = 0;
    double sum = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        const float *p = b + 3 * i, *q = a + 3 * i;
        /* (inline comparisons: fmax, fmin and lround are calls without -ffast-math; every
         * value rounded here is >= 0, so + 0.5 and truncation round as lround does) */
        double d = 0;
        for (int c = 0; c < 3; c++) {
            double e = (double)q[c] - p[c];
            e = e < 0 ? -e : e;
            d = e > d ? e : d;
        }
        double grey = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
        grey = 24 + 0.45 * (grey < 0 ? 0 : grey > 255 ? 255 : grey);
        unsigned char *o = out + 3 * i;
        if (m && m[i] < 0.5f) {
            /* Outside the person: darker still, so the face stands out. */
            o[0] = o[1] = o[2] = (unsigned char)(grey * 0.6 + 0.5);
            continue;
        }
        pixels++, sum += d, mx = d > mx ? d : mx, changed += d > 4;
        hist[d * 4 < BINS - 1 ? (int)(d * 4) : BINS - 1]++;
        if (d == 0) {
            o[0] = o[1] = o[2] = (unsigned char)(grey + 0.5); /* untouched: the grey alone */
            continue;
        }
        /* The heat colour covers the grey as the change grows; untouched pixels stay grey. */
        double t = d / TS_EDIT_MAP_FULL_SCALE, cover = d / 6 < 0.85 ? d / 6 : 0.85;
        unsigned char heat[3];
        magma(0.15 + 0.85 * (t < 1 ? t : 1), heat);
        for (int c = 0; c < 3; c++) o[c] = (unsigned char)(grey + cover * (heat[c] - grey) + 0.5);
    }
    floats_free(b, hb), floats_free(a, ha), floats_free(m, hm);
    if (stats) {
        memset(stats, 0, sizeof *stats);
        stats->pixels = pixels;
        stats->mean = pixels ? sum / pixels : 0;
        stats->max = mx;
        stats->changed = pixels ? (double)changed / pixels : 0;
        long want = (long)ceil(0.99 * pixels), acc = 0;
        for (int i = 0; i < BINS && pixels; i++)
            if ((acc += hist[i]) >= want) {
                stats->p99 = i / 4.0;
                break;
            }
    }
    VipsImage *im = vips_image_new_from_memory(out, n * 3, w, h, 3, VIPS_FORMAT_UCHAR);
    void *buf = NULL;
    size_t len = 0;
    int bad = !im;
    if (im) {
        im->Type = VIPS_INTERPRETATION_sRGB;
        /* PNG at zlib level 1 with no row filter: a heat map over a flat grey compresses well
         * anyway, and the default level costs more than the whole map. */
        if (!g_ascii_strcasecmp(ext, ".png"))
            bad = vips_pngsave_buffer(im, &buf, &len, "strip", TRUE, "compression", 1, "filter",
                                      VIPS_FOREIGN_PNG_FILTER_NONE, NULL);
        else
            bad = vips_image_write_to_buffer(im, ext, &buf, &len, "strip", TRUE, NULL);
        g_object_unref(im);
    }
    g_free(out);
    if (bad)
        return ts_fail(ctx, TS_ERR_INTERNAL, "edit map: cannot encode %s: %s", path,
                       vips_why(why, sizeof why));
    ts_status s = ts_write_file_atomic(ctx, path, buf, len);
    g_free(buf);
    return s;
}
