/* The matte's outputs: alpha, cut-out, composites over a colour or an image; each written
 * atomically (temporary name in the same folder, then rename). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "matte/matte.h"

static const char *extension(const char *path) {
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    return dot && (!slash || dot > slash) ? dot : NULL;
}

/* Checks the path's format can hold what we write: an alpha channel, 16 bits. */
static ts_status check_format(ts_ctx *ctx, const char *path, int need_alpha, int sixteen) {
    const char *ext = extension(path);
    if (!ext || !vips_foreign_find_save(path)) {
        vips_error_clear();
        return ts_fail(ctx, TS_ERR_ARGUMENT,
                       "%s: unknown output format (use .png, .tif, .webp or .jpg)", path);
    }
    bool png = !strcasecmp(ext, ".png"),
         tif = !strcasecmp(ext, ".tif") || !strcasecmp(ext, ".tiff");
    bool jpg = !strcasecmp(ext, ".jpg") || !strcasecmp(ext, ".jpeg");
    if (need_alpha && jpg)
        return ts_fail(ctx, TS_ERR_ARGUMENT,
                       "%s: JPEG has no transparency; write the cut-out as .png, .webp or .tif",
                       path);
    if (sixteen && !png && !tif)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "%s: 16 bits per channel needs .png or .tif", path);
    return TS_OK;
}

ts_status ts_matte_save_atomic(ts_ctx *ctx, VipsImage *im, const char *path) {
    char tmp[1400], why[300];
    const char *ext = extension(path);
    /* Hidden, in the same folder (rename stays on one file system), extension last so libvips
     * picks the same format. */
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path + 1) : 0;
    snprintf(tmp, sizeof tmp, "%.*s.%s.tmp-%d%s", dirlen, path, path + dirlen, (int)getpid(),
             ext ? ext : ".png");
    if (vips_image_write_to_file(im, tmp, NULL) != 0) {
        unlink(tmp);
        return ts_fail(ctx, TS_ERR_WRITE, "cannot write %s: %s", path,
                       ts_vips_why(why, sizeof why));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return ts_fail(ctx, TS_ERR_WRITE, "cannot write %s: %s", path, strerror(e));
    }
    return TS_OK;
}

static void free_buffer(VipsImage *im, void *buf) {
    (void)im;
    free(buf);
}

/* Wraps a malloc'd buffer as an image that frees it; NULL (buffer freed) on failure. */
static VipsImage *wrap(ts_ctx *ctx, void *buf, size_t len, int w, int h, int bands,
                       VipsBandFormat fmt, VipsInterpretation interp) {
    if (!buf) {
        ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    VipsImage *im = vips_image_new_from_memory(buf, len, w, h, bands, fmt);
    if (!im) {
        free(buf);
        vips_error_clear();
        ts_fail(ctx, TS_ERR_INTERNAL, "matte: cannot wrap the output");
        return NULL;
    }
    g_signal_connect(im, "postclose", G_CALLBACK(free_buffer), buf);
    im->Type = interp;
    return im;
}

static ts_status save_owned(ts_ctx *ctx, VipsImage *im, const char *path) {
    if (!im) return TS_ERR_NOMEM;
    ts_status s = ts_matte_save_atomic(ctx, im, path);
    g_object_unref(im);
    return s;
}

ts_status ts_matte_save_alpha(ts_ctx *ctx, const ts_matte *m, const char *path, int sixteen) {
    if (!ctx || !m || !path) return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_matte_save_alpha: NULL");
    ts_status s = check_format(ctx, path, 0, sixteen);
    if (s) return s;
    size_t n = (size_t)m->w * m->h;
    if (sixteen) {
        uint16_t *a = malloc(n * 2);
        if (a) ts_matte_alpha16(m, a);
        return save_owned(
            ctx, wrap(ctx, a, n * 2, m->w, m->h, 1, VIPS_FORMAT_USHORT, VIPS_INTERPRETATION_GREY16),
            path);
    }
    uint8_t *a = malloc(n);
    if (a) ts_matte_alpha8(m, a);
    return save_owned(
        ctx, wrap(ctx, a, n, m->w, m->h, 1, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_B_W), path);
}

ts_status ts_matte_save_cutout(ts_ctx *ctx, const ts_matte *m, const char *path, int sixteen) {
    if (!ctx || !m || !path) return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_matte_save_cutout: NULL");
    ts_status s = check_format(ctx, path, 1, sixteen);
    if (s) return s;
    size_t n = (size_t)m->w * m->h;
    uint8_t *fg = ts_matte_fg_copy(m);
    uint16_t *al = malloc(sizeof *al * n);
    if (!fg || !al) {
        g_free(fg), free(al);
        return ts_fail(ctx, TS_ERR_NOMEM, "%s: out of memory", path);
    }
    ts_matte_alpha16(m, al);
    if (sixteen) {
        uint16_t *px = malloc(n * 8);
        for (size_t i = 0; px && i < n; i++) {
            bool on = al[i] != 0;
            for (int c = 0; c < 3; c++) px[i * 4 + c] = on ? (uint16_t)(fg[i * 3 + c] * 257) : 0;
            px[i * 4 + 3] = al[i];
        }
        g_free(fg), free(al);
        return save_owned(
            ctx, wrap(ctx, px, n * 8, m->w, m->h, 4, VIPS_FORMAT_USHORT, VIPS_INTERPRETATION_RGB16),
            path);
    }
    uint8_t *px = malloc(n * 4);
    for (size_t i = 0; px && i < n; i++) {
        uint8_t a = (uint8_t)((al[i] * 255u + 32767u) / 65535u);
        for (int c = 0; c < 3; c++) px[i * 4 + c] = a ? fg[i * 3 + c] : 0;
        px[i * 4 + 3] = a;
    }
    g_free(fg), free(al);
    return save_owned(
        ctx, wrap(ctx, px, n * 4, m->w, m->h, 4, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_sRGB),
        path);
}

/* out = alpha F + (1 - alpha) bg, in sRGB values (the space F was solved in). bg is 3-band uchar
 * w x h, or NULL for the constant colour rgb. */
static uint8_t *composite(const ts_matte *m, const uint8_t *bg, uint32_t rgb) {
    size_t n = (size_t)m->w * m->h;
    uint8_t *fg = ts_matte_fg_copy(m);
    uint16_t *al = malloc(sizeof *al * n);
    uint8_t *px = fg && al ? malloc(n * 3) : NULL;
    if (px) ts_matte_alpha16(m, al);
    float col[3] = {(rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255};
    for (size_t i = 0; px && i < n; i++) {
        float a = al[i] * (1.f / 65535.f);
        for (int c = 0; c < 3; c++) {
            float b = bg ? bg[i * 3 + c] : col[c];
            float v = a * fg[i * 3 + c] + (1 - a) * b;
            px[i * 3 + c] = (uint8_t)lrintf(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    g_free(fg), free(al);
    return px;
}

ts_status ts_matte_save_over_color(ts_ctx *ctx, const ts_matte *m, uint32_t rgb, const char *path) {
    if (!ctx || !m || !path) return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_matte_save_over_color: NULL");
    ts_status s = check_format(ctx, path, 0, 0);
    if (s) return s;
    size_t n = (size_t)m->w * m->h;
    return save_owned(ctx,
                      wrap(ctx, composite(m, NULL, rgb), n * 3, m->w, m->h, 3, VIPS_FORMAT_UCHAR,
                           VIPS_INTERPRETATION_sRGB),
                      path);
}

/* The background image scaled to cover w x h (centred), sRGB 3-band uchar, malloc'd. */
static uint8_t *cover(ts_ctx *ctx, const char *file, int w, int h, ts_status *st) {
    char why[300];
    FILE *f = fopen(file, "rb");
    if (!f) {
        *st = ts_fail(ctx, TS_ERR_READ, "%s: %s", file, strerror(errno));
        return NULL;
    }
    fclose(f);
    if (!vips_foreign_find_load(file)) {
        vips_error_clear();
        *st = ts_fail(ctx, TS_ERR_FORMAT, "%s: not an image format trueshot can read", file);
        return NULL;
    }
    VipsImage *im = vips_image_new_from_file(file, NULL), *rot = NULL, *rgb = NULL, *flat = NULL,
              *u8 = NULL, *big = NULL, *crop = NULL;
    int ok = im && vips_autorot(im, &rot, NULL) == 0 &&
             vips_colourspace(rot, &rgb, VIPS_INTERPRETATION_sRGB, NULL) == 0;
    if (ok)
        ok = vips_image_hasalpha(rgb) ? vips_flatten(rgb, &flat, NULL) == 0
                                      : (flat = g_object_ref(rgb)) != NULL;
    if (ok) ok = vips_cast_uchar(flat, &u8, NULL) == 0 && u8->Bands == 3;
    if (ok) {
        double sc = fmax((double)w / u8->Xsize, (double)h / u8->Ysize);
        ok = vips_resize(u8, &big, sc, NULL) == 0;
        /* Rounding may leave the scaled image a pixel short: scale up a hair more. */
        if (ok && (big->Xsize < w || big->Ysize < h)) {
            g_object_unref(big);
            big = NULL;
            ok = vips_resize(u8, &big, sc * (1 + 2.0 / (w < h ? w : h)), NULL) == 0;
        }
    }
    if (ok)
        ok = vips_extract_area(big, &crop, (big->Xsize - w) / 2, (big->Ysize - h) / 2, w, h,
                               NULL) == 0;
    size_t len = 0;
    void *px = ok ? vips_image_write_to_memory(crop, &len) : NULL;
    VipsImage *all[] = {im, rot, rgb, flat, u8, big, crop};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]) g_object_unref(all[i]);
    if (!px) {
        *st = ts_fail(ctx, im ? TS_ERR_FORMAT : TS_ERR_READ, "%s: cannot use as background: %s",
                      file, ts_vips_why(why, sizeof why));
        return NULL;
    }
    /* Into malloc'd memory: the caller frees with free(). */
    uint8_t *out = malloc(len);
    if (out)
        memcpy(out, px, len);
    else
        *st = ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
    g_free(px);
    return out;
}

ts_status ts_matte_save_over_image(ts_ctx *ctx, const ts_matte *m, const char *background,
                                   const char *path) {
    if (!ctx || !m || !background || !path)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_matte_save_over_image: NULL");
    ts_status s = check_format(ctx, path, 0, 0);
    if (s) return s;
    uint8_t *bg = cover(ctx, background, m->w, m->h, &s);
    if (!bg) return s;
    size_t n = (size_t)m->w * m->h;
    uint8_t *px = composite(m, bg, 0);
    free(bg);
    return save_owned(
        ctx, wrap(ctx, px, n * 3, m->w, m->h, 3, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_sRGB),
        path);
}
