#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/internal.h"

static pthread_once_t vips_once = PTHREAD_ONCE_INIT;
static int vips_status = -1;
static void vips_start(void) {
    vips_status = VIPS_INIT("trueshot");
    /* Nothing we do needs libvips' operation cache; it only grows memory. */
    vips_cache_set_max(0);
}

ts_status ts_photo_decode_failed(ts_ctx *ctx, const char *path, const char *why) {
    /* libjpeg's and libpng's words for a file that stops before its picture does */
    if (strstr(why, "Premature end") || strstr(why, "truncated") || strstr(why, "unexpected end"))
        return ts_fail(ctx, TS_ERR_FORMAT,
                       "%s: the file is damaged or cut short, so the photo cannot be read whole "
                       "(%s)",
                       path, why);
    return ts_fail(ctx, TS_ERR_FORMAT, "%s: cannot decode: %s", path, why);
}

int ts_vips_init(void) {
    pthread_once(&vips_once, vips_start);
    return vips_status;
}

/* The message libvips left, on one line, then cleared. */
static const char *vips_reason(char *buf, size_t cap) {
    snprintf(buf, cap, "%s", vips_error_buffer());
    vips_error_clear();
    for (char *p = buf; *p; p++)
        if (*p == '\n') *p = (p[1] ? ' ' : 0);
    return buf;
}

ts_status ts_photo_open(ts_ctx *ctx, const char *path, ts_photo **out) {
    return ts_photo_open_shrunk(ctx, path, 1, out);
}

/* JPEG files are decoded shrunk by the decoder itself (DCT scaling), exactly. */
static int is_jpeg(const char *path) {
    const char *loader = vips_foreign_find_load(path);
    if (!loader) vips_error_clear();
    return loader && !strcmp(loader, "VipsForeignLoadJpegFile");
}

ts_status ts_photo_open_shrunk(ts_ctx *ctx, const char *path, int shrink, ts_photo **out) {
    if (!ctx || !path || !out) return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_photo_open: NULL argument");
    if (shrink != 1 && shrink != 2 && shrink != 4 && shrink != 8)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_photo_open: shrink %d is not 1, 2, 4 or 8",
                       shrink);
    struct stat st;
    if (stat(path, &st) != 0) return ts_fail(ctx, TS_ERR_READ, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return ts_fail(ctx, TS_ERR_READ, "%s: is a directory", path);
    FILE *f = fopen(path, "rb");
    if (!f) return ts_fail(ctx, TS_ERR_READ, "%s: %s", path, strerror(errno));
    fclose(f);
    if (!vips_foreign_find_load(path)) {
        vips_error_clear();
        return ts_fail(ctx, TS_ERR_FORMAT, "%s: not an image format trueshot can read", path);
    }
    VipsImage *im = vips_image_new_from_file(path, "access", VIPS_ACCESS_SEQUENTIAL, NULL);
    if (!im) {
        char why[300];
        return ts_fail(ctx, TS_ERR_FORMAT, "%s: cannot read image header: %s", path,
                       vips_reason(why, sizeof why));
    }
    uint64_t px = (uint64_t)im->Xsize * (uint64_t)im->Ysize;
    if (px > ctx->opt.max_pixels) {
        g_object_unref(im);
        return ts_fail(ctx, TS_ERR_TOO_LARGE, "%s: %.1f megapixels is over the limit of %.1f", path,
                       px / 1e6, ctx->opt.max_pixels / 1e6);
    }
    /* Shrunk, the photo is its decode at 1/shrink. A JPEG's is the size libvips' loader gives,
     * read from its header (libvips 8.14 rounds down: 6451 rows at 1/4 are 1612; taken as 1613,
     * the matte's region reached past the decode and the photo could not be made); other
     * formats are resized to the size rounded up (decode_full). */
    int fw = (im->Xsize + shrink - 1) / shrink, fh = (im->Ysize + shrink - 1) / shrink;
    if (shrink > 1 && is_jpeg(path)) {
        VipsImage *sh = vips_image_new_from_file(path, "shrink", shrink, NULL);
        if (!sh) {
            char why[300];
            g_object_unref(im);
            return ts_fail(ctx, TS_ERR_FORMAT, "%s: cannot read image header: %s", path,
                           vips_reason(why, sizeof why));
        }
        fw = sh->Xsize, fh = sh->Ysize;
        g_object_unref(sh);
    }
    ts_photo *p = calloc(1, sizeof *p);
    if (!p) {
        g_object_unref(im);
        return ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
    }
    atomic_init(&p->refs, 1);
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->face_lock, NULL);
    snprintf(p->path, sizeof p->path, "%s", path);
    p->header = im;
    p->shrink = shrink;
    /* EXIF orientations 5-8 swap width and height. */
    int orient = vips_image_get_orientation(im);
    bool swap = orient >= 5 && orient <= 8;
    p->width = swap ? fh : fw;
    p->height = swap ? fw : fh;
    *out = p;
    return TS_OK;
}

ts_photo *ts_photo_ref(ts_photo *p) {
    if (p) atomic_fetch_add(&p->refs, 1);
    return p;
}

void ts_photo_unref(ts_photo *p) {
    if (!p || atomic_fetch_sub(&p->refs, 1) != 1) return;
    if (p->header) g_object_unref(p->header);
    if (p->analysis) g_object_unref(p->analysis);
    if (p->small) g_object_unref(p->small);
    if (p->full) g_object_unref(p->full);
    for (size_t i = 0; i < sizeof p->retired / sizeof p->retired[0]; i++)
        if (p->retired[i]) g_object_unref(p->retired[i]);
    free(p->faces);
    free(p->subject);
    free(p->seeded_ref);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->face_lock);
    free(p);
}

int ts_photo_width(const ts_photo *p) {
    return p ? p->width : 0;
}
int ts_photo_height(const ts_photo *p) {
    return p ? p->height : 0;
}

/* How p's analysis copy is made from the file: fitted in TS_ANALYSIS_SIDE by the smallest power
 * of two (*s), tw x th, and the decoder's shrink from the file (the photo's own times the
 * copy's). */
static void analysis_plan(const ts_photo *p, double *s, int *tw, int *th, int *dct) {
    int longest = p->width > p->height ? p->width : p->height;
    *s = 1.0;
    while (longest * *s > TS_ANALYSIS_SIDE) *s /= 2;
    *tw = (int)lround(p->width * *s), *th = (int)lround(p->height * *s);
    *tw = *tw < 1 ? 1 : *tw;
    *th = *th < 1 ? 1 : *th;
    *dct = (int)lround(p->shrink / *s);
}

int ts_photo_share_analysis(ts_photo *dst, ts_photo *src) {
    if (!dst || !src || dst == src || strcmp(dst->path, src->path) ||
        atomic_load(&dst->turn) != atomic_load(&src->turn))
        return 0;
    double ss, sd;
    int tws, ths, dcts, twd, thd, dctd;
    analysis_plan(src, &ss, &tws, &ths, &dcts);
    analysis_plan(dst, &sd, &twd, &thd, &dctd);
    /* the same decode of the same file: a JPEG's at the same DCT shrink, another format's
     * thumbnail at the same size */
    int jpeg = is_jpeg(src->path);
    if (jpeg ? dcts != dctd || dcts > 8 : tws != twd || ths != thd) return 0;
    pthread_mutex_lock(&src->lock);
    VipsImage *a = src->analysis ? g_object_ref(src->analysis) : NULL;
    pthread_mutex_unlock(&src->lock);
    if (!a) return 0;
    pthread_mutex_lock(&dst->lock);
    int shared = !dst->analysis;
    if (shared) dst->analysis = a, dst->analysis_scale = (double)a->Xsize / dst->width;
    pthread_mutex_unlock(&dst->lock);
    if (!shared) g_object_unref(a);
    return shared;
}

VipsImage *ts_photo_analysis(ts_ctx *ctx, ts_photo *p, double *scale) {
    pthread_mutex_lock(&p->lock);
    if (!p->analysis) {
        double s;
        int tw, th, dct;
        analysis_plan(p, &s, &tw, &th, &dct);
        VipsImage *t = NULL, *rgb = NULL, *flat = NULL, *u8 = NULL, *mem = NULL;
        char why[300];
        int ok;
        if (is_jpeg(p->path) && dct <= 8) {
            /* JPEG: decode straight at 1/2, 1/4 or 1/8 scale (DCT scaling) with the EXIF
             * rotation applied, then embedded ICC to sRGB: what thumbnail does, without its
             * final resize, which here would only round the size by a pixel. */
            VipsImage *j = vips_image_new_from_file(p->path, "shrink", dct, "autorotate", TRUE,
                                                    "fail_on", VIPS_FAIL_ON_TRUNCATED, NULL);
            ok = j != NULL;
            if (ok && vips_image_get_typeof(j, VIPS_META_ICC_NAME))
                ok = vips_icc_transform(j, &t, "srgb", "embedded", TRUE, "intent",
                                        VIPS_INTENT_PERCEPTUAL, NULL) == 0;
            else if (ok)
                t = g_object_ref(j);
            if (j) g_object_unref(j);
        } else {
            /* Others: thumbnail applies EXIF orientation, imports embedded ICC to sRGB and
             * shrinks on load where the format can. Fit inside the box (not "force"): forcing
             * the size defeats shrink-on-load. */
            ok = vips_thumbnail(p->path, &t, tw, "height", th, "fail_on", VIPS_FAIL_ON_TRUNCATED,
                                NULL) == 0;
        }
        VipsImage *up = NULL;
        if (ok) ok = (up = ts_photo_decoded(p, t)) != NULL;
        if (ok) ok = vips_colourspace(up, &rgb, VIPS_INTERPRETATION_sRGB, NULL) == 0;
        if (ok)
            ok = vips_image_hasalpha(rgb) ? vips_flatten(rgb, &flat, NULL) == 0
                                          : (flat = g_object_ref(rgb)) != NULL;
        if (ok) ok = vips_cast_uchar(flat, &u8, NULL) == 0;
        if (ok) ok = (mem = vips_image_copy_memory(u8)) != NULL;
        VipsImage *all[] = {t, up, rgb, flat, u8};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            if (all[i]) g_object_unref(all[i]);
        if (!ok || mem->Bands < 1) {
            if (mem) g_object_unref(mem);
            pthread_mutex_unlock(&p->lock);
            ts_photo_decode_failed(ctx, p->path, vips_reason(why, sizeof why));
            return NULL;
        }
        p->analysis = mem;
        p->analysis_scale = (double)mem->Xsize / p->width;
    }
    VipsImage *a = p->analysis;
    if (scale) *scale = p->analysis_scale;
    pthread_mutex_unlock(&p->lock);
    return a;
}

/* The whole photo decoded: EXIF-rotated, sRGB (an embedded profile honoured, anything else
 * taken as sRGB), 3-band uchar, in memory. NULL with the reason in why. */
static VipsImage *decode_full(ts_photo *p, char *why, size_t cap) {
    int jpeg = p->shrink > 1 && is_jpeg(p->path);
    /* Read once, top to bottom, unless the EXIF orientation turns it: a turned image is read
     * across its rows, which a sequential read refuses past its small cache ("out of order
     * read": every phone photo held upright, orientation 6 or 8, failed from a few MP). */
    int upright = vips_image_get_orientation(p->header) <= 1;
    VipsAccess access = upright ? VIPS_ACCESS_SEQUENTIAL : VIPS_ACCESS_RANDOM;
    VipsImage *im = jpeg ? vips_image_new_from_file(p->path, "access", access, "shrink", p->shrink,
                                                    "fail_on", VIPS_FAIL_ON_TRUNCATED, NULL)
                         : vips_image_new_from_file(p->path, "access", access, "fail_on",
                                                    VIPS_FAIL_ON_TRUNCATED, NULL);
    VipsImage *sized = NULL, *exif = NULL, *rot = NULL, *rgb = NULL, *flat = NULL, *u8 = NULL,
              *mem = NULL;
    int ok = im != NULL;
    /* other formats shrunk as libvips resizes, to the size the photo says */
    if (ok && p->shrink > 1 && !jpeg) {
        int fw = (im->Xsize + p->shrink - 1) / p->shrink;
        int fh = (im->Ysize + p->shrink - 1) / p->shrink;
        ok = vips_resize(im, &sized, (double)fw / im->Xsize, "vscale", (double)fh / im->Ysize,
                         NULL) == 0;
    } else if (ok) {
        sized = g_object_ref(im);
    }
    ok = ok && vips_autorot(sized, &exif, NULL) == 0 && (rot = ts_photo_decoded(p, exif));
    if (ok && vips_image_get_typeof(rot, VIPS_META_ICC_NAME))
        ok = vips_icc_transform(rot, &rgb, "srgb", "embedded", TRUE, "intent",
                                VIPS_INTENT_PERCEPTUAL, NULL) == 0;
    else if (ok)
        ok = vips_colourspace(rot, &rgb, VIPS_INTERPRETATION_sRGB, NULL) == 0;
    if (ok)
        ok = vips_image_hasalpha(rgb) ? vips_flatten(rgb, &flat, NULL) == 0
                                      : (flat = g_object_ref(rgb)) != NULL;
    if (ok) ok = vips_cast_uchar(flat, &u8, NULL) == 0;
    if (ok) ok = (mem = vips_image_copy_memory(u8)) != NULL;
    VipsImage *all[] = {im, sized, exif, rot, rgb, flat, u8};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]) g_object_unref(all[i]);
    if (!ok) vips_reason(why, cap);
    return ok ? mem : NULL;
}

VipsImage *ts_photo_decoded(ts_photo *p, VipsImage *in) {
    if (atomic_load(&p->turn) == 0) return g_object_ref(in);
    /* A turn reads the decode bottom row first: the decode is made in memory first (decoders
     * stream top to bottom). Only upside-down photos pay for it. */
    VipsImage *mem = vips_image_copy_memory(in), *out = NULL;
    if (mem && vips_rot(mem, &out, VIPS_ANGLE_D180, NULL)) out = NULL;
    if (mem) g_object_unref(mem);
    return out;
}

VipsImage *ts_photo_full_try(ts_photo *p, char *why, size_t cap) {
    pthread_mutex_lock(&p->lock);
    VipsImage *f = p->full;
    pthread_mutex_unlock(&p->lock);
    if (f) return f;
    /* Decoded outside the lock, so the analysis copy and the faces, which take it, never wait
     * for a full decode (the matte starts this one on a thread of its own). Two callers at once
     * may both decode; the first one kept wins. */
    int turn = atomic_load(&p->turn);
    VipsImage *mem = decode_full(p, why, cap);
    if (!mem) return NULL;
    pthread_mutex_lock(&p->lock);
    if (!p->full && atomic_load(&p->turn) == turn)
        p->full = mem;
    else
        g_object_unref(mem);
    f = p->full;
    pthread_mutex_unlock(&p->lock);
    /* (turned over while it was decoded: made again) */
    return f ? f : ts_photo_full_try(p, why, cap);
}

VipsImage *ts_photo_full(ts_ctx *ctx, ts_photo *p) {
    char why[300];
    VipsImage *f = ts_photo_full_try(p, why, sizeof why);
    if (!f) ts_photo_decode_failed(ctx, p->path, why);
    return f;
}

/* A cached copy let go of at a turn: kept (unreferenced with the photo), not freed, as callers
 * may hold it borrowed. */
static int retire(ts_photo *p, VipsImage **slot) {
    if (!*slot) return 0;
    for (size_t i = 0; i < sizeof p->retired / sizeof p->retired[0]; i++)
        if (!p->retired[i]) {
            p->retired[i] = *slot, *slot = NULL;
            return 0;
        }
    return -1;
}

ts_status ts_photo_turn_over(ts_ctx *ctx, ts_photo *p) {
    pthread_mutex_lock(&p->lock);
    /* The analysis copy is turned in memory (a few MB); the small copy and the full decode are
     * made again, turned, when next needed (the faces come before either is used). */
    VipsImage *t = NULL, *mem = NULL;
    int bad = p->analysis && (vips_rot(p->analysis, &t, VIPS_ANGLE_D180, NULL) ||
                              !(mem = vips_image_copy_memory(t)));
    if (t) g_object_unref(t);
    if (!bad) bad = retire(p, &p->analysis) || retire(p, &p->small) || retire(p, &p->full);
    if (!bad) {
        p->analysis = mem, mem = NULL;
        atomic_store(&p->turn, atomic_load(&p->turn) ^ 180);
    }
    if (mem) g_object_unref(mem);
    pthread_mutex_unlock(&p->lock);
    if (bad) {
        char why[300];
        return ts_fail(ctx, TS_ERR_INTERNAL, "%s: cannot turn the photo over: %s", p->path,
                       vips_reason(why, sizeof why));
    }
    return TS_OK;
}

void ts_photo_known_upright(ts_photo *p) {
    if (p) atomic_store(&p->turn_tried, 1);
}

int ts_photo_turn(const ts_photo *p) {
    return p ? atomic_load(&((ts_photo *)p)->turn) : 0;
}

/* src (all of the photo, or the part of it at photo pixels (x0, y0), span_x photo pixels wide and
 * span_y high) letterboxed into the w x h tensor dst, and the mapping back. */
static ts_status letterbox(ts_ctx *ctx, const ts_photo *p, VipsImage *src, float x0, float y0,
                           float span_x, float span_y, int w, int h, float lo, float hi, float *dst,
                           float xform[4]);

ts_status ts_photo_tensor(ts_ctx *ctx, ts_photo *p, int w, int h, float lo, float hi, float *dst,
                          float xform[4]) {
    if (!ctx || !p || !dst || w <= 0 || h <= 0 || w > 8192 || h > 8192)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_photo_tensor: bad argument");
    VipsImage *an = ts_photo_analysis(ctx, p, NULL);
    if (!an) return TS_ERR_FORMAT;
    if (w <= TS_SMALL_SIDE && h <= TS_SMALL_SIDE) {
        /* Small tensors come from the small copy, made once from the analysis copy. */
        pthread_mutex_lock(&p->lock);
        if (!p->small) {
            int longest = an->Xsize > an->Ysize ? an->Xsize : an->Ysize;
            VipsImage *sm = NULL, *mem = NULL;
            if (longest <= TS_SMALL_SIDE)
                mem = g_object_ref(an);
            else if (vips_resize(an, &sm, (double)TS_SMALL_SIDE / longest, NULL) == 0)
                mem = vips_image_copy_memory(sm);
            if (sm) g_object_unref(sm);
            p->small = mem;
        }
        if (p->small) an = p->small;
        pthread_mutex_unlock(&p->lock);
    }
    return letterbox(ctx, p, an, 0, 0, (float)p->width, (float)p->height, w, h, lo, hi, dst, xform);
}

ts_status ts_photo_tensor_area(ts_ctx *ctx, ts_photo *p, const double area[4], int w, int h,
                               float lo, float hi, float *dst, float xform[4]) {
    if (!ctx || !p || !area || !dst || w <= 0 || h <= 0 || w > 8192 || h > 8192)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_photo_tensor_area: bad argument");
    VipsImage *an = ts_photo_analysis(ctx, p, NULL);
    if (!an) return TS_ERR_FORMAT;
    /* the area in the analysis copy, rounded out to whole pixels within it */
    double kx = (double)an->Xsize / p->width, ky = (double)an->Ysize / p->height;
    int x0 = (int)floor(area[0] * kx), y0 = (int)floor(area[1] * ky);
    int x1 = (int)ceil((area[0] + area[2]) * kx), y1 = (int)ceil((area[1] + area[3]) * ky);
    x0 = x0 < 0 ? 0 : x0, y0 = y0 < 0 ? 0 : y0;
    x1 = x1 > an->Xsize ? an->Xsize : x1, y1 = y1 > an->Ysize ? an->Ysize : y1;
    if (x1 - x0 < 2 || y1 - y0 < 2)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_photo_tensor_area: the area is off the photo");
    VipsImage *part = NULL;
    char why[300];
    if (vips_extract_area(an, &part, x0, y0, x1 - x0, y1 - y0, NULL))
        return ts_fail(ctx, TS_ERR_INTERNAL, "%s: %s", p->path, vips_reason(why, sizeof why));
    ts_status s =
        letterbox(ctx, p, part, (float)(x0 / kx), (float)(y0 / ky), (float)((x1 - x0) / kx),
                  (float)((y1 - y0) / ky), w, h, lo, hi, dst, xform);
    g_object_unref(part);
    return s;
}

static ts_status letterbox(ts_ctx *ctx, const ts_photo *p, VipsImage *an, float x0, float y0,
                           float span_x, float span_y, int w, int h, float lo, float hi, float *dst,
                           float xform[4]) {
    /* Fit inside w x h keeping the aspect ratio. */
    double sx = (double)w / an->Xsize, sy = (double)h / an->Ysize, s = sx < sy ? sx : sy;
    int tw = (int)lround(an->Xsize * s), th = (int)lround(an->Ysize * s);
    tw = tw < 1 ? 1 : tw > w ? w : tw;
    th = th < 1 ? 1 : th > h ? h : th;
    VipsImage *u8 = NULL;
    char why[300];
    if (vips_resize(an, &u8, (double)tw / an->Xsize, "vscale", (double)th / an->Ysize, NULL))
        return ts_fail(ctx, TS_ERR_INTERNAL, "%s: resize failed: %s", p->path,
                       vips_reason(why, sizeof why));
    size_t len = 0;
    unsigned char *px = vips_image_write_to_memory(u8, &len);
    int bands = u8->Bands, iw = u8->Xsize, ih = u8->Ysize;
    g_object_unref(u8);
    if (!px || bands < 1 || iw > w || ih > h) {
        g_free(px);
        return ts_fail(ctx, TS_ERR_INTERNAL, "%s: resize failed: %s", p->path,
                       vips_reason(why, sizeof why));
    }
    /* Letterbox: centre the picture; the border is zero in value space. */
    int ox = (w - iw) / 2, oy = (h - ih) / 2;
    float scale = (hi - lo) / 255.f;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) dst[i] = 0.f;
    for (int y = 0; y < ih; y++) {
        for (int x = 0; x < iw; x++) {
            const unsigned char *s8 = px + ((size_t)y * iw + x) * bands;
            float *d = dst + ((size_t)(y + oy) * w + (x + ox)) * 3;
            for (int c = 0; c < 3; c++) d[c] = lo + scale * s8[bands >= 3 ? c : 0];
        }
    }
    g_free(px);
    if (xform) {
        xform[0] = span_x / iw;
        xform[1] = x0 - ox * xform[0];
        xform[2] = span_y / ih;
        xform[3] = y0 - oy * xform[2];
    }
    return TS_OK;
}
