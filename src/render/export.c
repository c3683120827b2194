/* export: the canvas as an uploadable file, with honest metadata.
 *
 * Metadata starts from nothing: the pixels are copied into a fresh image, so no field of the
 * source photo (EXIF with GPS, camera and lens serials, maker notes, IPTC, its XMP) can reach
 * the output. Then exactly three things are added: the sRGB ICC profile (libvips' built-in, the
 * canvas is sRGB-encoded), the resolution (72 dpi), and an XMP packet that discloses the IPTC
 * digital source type, the creator tool and the list of edits. libvips 8.14 also writes a
 * minimal EXIF block of its own (orientation 1, resolution, colour space, pixel size, EXIF
 * version) for JPEG, WebP and AVIF; it holds nothing about the person, camera or place.
 *
 * Encoding goes to memory, so a file-size cap can search the quality (and, failing that, a
 * slightly smaller size) before anything touches the disk; the chosen bytes are then written
 * atomically. The stage itself (ts_stage_export) only checks that the format can be written:
 * the pipeline calls ts_export_write with the output path. */
#include "render/export.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"
#include "render/srgb.h"

const char *const ts_export_format_names[] = {"jpeg", "png", "webp", "avif", NULL};
static const char *const format_labels[] = {"JPEG", "PNG", "WebP", "AVIF"};
static const int default_quality[] = {90, 0, 85, 60};
static const int floor_quality[] = {60, 0, 55, 35};

static const ts_param export_table[] = {
    TS_PARAM_ENUM(export_params, format, "file format: jpeg, png, webp or avif",
                  ts_export_format_names, TS_EXPORT_JPEG),
    TS_PARAM_INT(export_params, quality,
                 "encoder quality 1..100 (0: the format's default: JPEG 90, WebP 85, AVIF 60; "
                 "PNG is lossless)",
                 0, 100, 0),
    TS_PARAM_INT(export_params, max_kb, "file-size cap in KB (0: no cap)", 0, 1000000, 0),
    TS_PARAM_INT(export_params, min_quality,
                 "lowest quality the size cap may use (0: JPEG 60, WebP 55, AVIF 35)", 0, 100, 0),
    TS_PARAM_INT(export_params, min_side, "the size cap never scales the shorter side below this",
                 16, 8000, 400),
    TS_PARAM_INT(export_params, effort, "encoder effort 0..9 (WebP, AVIF): slower, smaller", 0, 9,
                 1),
    TS_PARAM_END};

static const char *const extensions[][3] = {
    {".jpg", ".jpeg", NULL}, {".png", NULL, NULL}, {".webp", NULL, NULL}, {".avif", NULL, NULL}};

const char *ts_export_extension(int format) {
    return format >= 0 && format < TS_EXPORT_FORMATS ? extensions[format][0] : "";
}

/* ---- Encoding ------------------------------------------------------------------------------ */

static int encode(VipsImage *im, int format, int q, int effort, void **buf, size_t *len) {
    switch (format) {
    case TS_EXPORT_JPEG:
        /* Optimised Huffman tables: smaller at no cost in quality. */
        return vips_jpegsave_buffer(im, buf, len, "Q", q, "optimize_coding", TRUE, NULL);
    case TS_EXPORT_PNG:
        return vips_pngsave_buffer(im, buf, len, "compression", 9, NULL);
    case TS_EXPORT_WEBP:
        return vips_webpsave_buffer(im, buf, len, "Q", q, "effort", effort > 6 ? 6 : effort,
                                    "smart_subsample", TRUE, NULL);
    case TS_EXPORT_AVIF:
        return vips_heifsave_buffer(im, buf, len, "Q", q, "compression",
                                    VIPS_FOREIGN_HEIF_COMPRESSION_AV1, "effort", effort, NULL);
    }
    vips_error("export", "unknown format %d", format);
    return -1;
}

int ts_export_available(int format, char *why, size_t cap) {
    static atomic_int known[TS_EXPORT_FORMATS]; /* 0 unknown, 1 yes, 2 no */
    static char reason[TS_EXPORT_FORMATS][200];
    if (format < 0 || format >= TS_EXPORT_FORMATS) {
        if (why) snprintf(why, cap, "unknown format %d", format);
        return 0;
    }
    if (!known[format]) {
        /* The savers are plugins of libvips' build, and an AVIF saver may be present with no AV1
         * encoder inside libheif: only a real encode tells. */
        char r[200] = "";
        int ok = 0;
        if (ts_vips_init() == 0) {
            VipsImage *black = NULL, *u8 = NULL;
            void *b = NULL;
            size_t n = 0;
            ok = vips_black(&black, 16, 16, "bands", 3, NULL) == 0 &&
                 vips_cast_uchar(black, &u8, NULL) == 0 && encode(u8, format, 50, 0, &b, &n) == 0 &&
                 n > 0;
            if (!ok) {
                char vw[160];
                snprintf(r, sizeof r, "this libvips cannot write %s (%s)", format_labels[format],
                         ts_vips_why(vw, sizeof vw));
                if (format == TS_EXPORT_AVIF)
                    snprintf(r, sizeof r,
                             "this libvips cannot write AVIF: it needs libheif with an AV1 "
                             "encoder (Debian: libheif1 built with libaom)");
            }
            g_free(b);
            if (black) g_object_unref(black);
            if (u8) g_object_unref(u8);
        } else {
            snprintf(r, sizeof r, "libvips failed to start");
        }
        snprintf(reason[format], sizeof reason[format], "%s", r);
        atomic_store(&known[format], ok ? 1 : 2);
    }
    if (why) snprintf(why, cap, "%s", atomic_load(&known[format]) == 1 ? "" : reason[format]);
    return atomic_load(&known[format]) == 1;
}

/* ---- XMP ----------------------------------------------------------------------------------- */

/* Appends s as XML character data: escaped, valid UTF-8, no control characters XML forbids. */
static void xml_text(GString *x, const char *s) {
    gchar *v = g_utf8_make_valid(s, -1);
    for (const char *p = v; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '&')
            g_string_append(x, "&amp;");
        else if (c == '<')
            g_string_append(x, "&lt;");
        else if (c == '>')
            g_string_append(x, "&gt;");
        else if (c == '"')
            g_string_append(x, "&quot;");
        else if (c == '\'')
            g_string_append(x, "&apos;");
        else if (c < 0x20 && c != '\t' && c != '\n')
            g_string_append_c(x, ' ');
        else
            g_string_append_c(x, (char)c);
    }
    g_free(v);
}

#define IPTC_SOURCE_TYPES "http://cv.iptc.org/newscodes/digitalsourcetype/"

static const char *source_type(const ts_render_job *job) {
    return job->background_replaced ? "compositeSynthetic" : "algorithmicallyEnhanced";
}

char *ts_export_xmp(const ts_render_job *job, const char *extra_edit) {
    GString *x = g_string_new(NULL);
    const char *tool = "trueshot " TS_VERSION_STRING;
    g_string_append(x, "<?xpacket begin=\"\xEF\xBB\xBF\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n"
                       "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n"
                       " <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n"
                       "  <rdf:Description rdf:about=\"\"\n"
                       "    xmlns:Iptc4xmpExt=\"http://iptc.org/std/Iptc4xmpExt/2008-02-29/\"\n"
                       "    xmlns:xmp=\"http://ns.adobe.com/xap/1.0/\"\n"
                       "    xmlns:dc=\"http://purl.org/dc/elements/1.1/\"\n"
                       "    xmlns:trueshot=\"https://trueshot.invalid/ns/1.0/\">\n");
    g_string_append_printf(x,
                           "   <Iptc4xmpExt:DigitalSourceType>" IPTC_SOURCE_TYPES
                           "%s</Iptc4xmpExt:DigitalSourceType>\n",
                           source_type(job));
    g_string_append_printf(x, "   <xmp:CreatorTool>%s</xmp:CreatorTool>\n", tool);
    /* The edits twice: a sentence in dc:description, which photo managers and portals show,
     * and an ordered list for programs. */
    g_string_append(x, "   <dc:description>\n    <rdf:Alt>\n"
                       "     <rdf:li xml:lang=\"x-default\">");
    g_string_append_printf(x, "Edited with %s from the person's own photo", tool);
    int n = job->n_edits < TS_RENDER_MAX_EDITS ? job->n_edits : TS_RENDER_MAX_EDITS;
    for (int i = 0; i < n; i++) {
        g_string_append(x, i ? "; " : ": ");
        xml_text(x, job->edits[i]);
    }
    if (extra_edit) {
        g_string_append(x, n ? "; " : ": ");
        xml_text(x, extra_edit);
    }
    g_string_append(x, job->background_replaced  ? ". The background is generated."
                       : job->background_blurred ? ". The background is the photo's own, blurred."
                                                 : ". No pixel was generated.");
    g_string_append(x, "</rdf:li>\n    </rdf:Alt>\n   </dc:description>\n");
    g_string_append(x, "   <trueshot:Edits>\n    <rdf:Seq>\n");
    for (int i = 0; i < n + (extra_edit != NULL); i++) {
        g_string_append(x, "     <rdf:li>");
        xml_text(x, i < n ? job->edits[i] : extra_edit);
        g_string_append(x, "</rdf:li>\n");
    }
    g_string_append(x, "    </rdf:Seq>\n   </trueshot:Edits>\n"
                       "  </rdf:Description>\n </rdf:RDF>\n</x:xmpmeta>\n"
                       "<?xpacket end=\"w\"?>");
    return g_string_free(x, FALSE);
}

/* ---- Atomic write -------------------------------------------------------------------------- */

static ts_status write_all(int fd, const void *data, size_t len, int *err) {
    const char *p = data;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            *err = w < 0 ? errno : ENOSPC;
            return TS_ERR_WRITE;
        }
        p += w, len -= (size_t)w;
    }
    return TS_OK;
}

ts_status ts_write_file_atomic(ts_ctx *ctx, const char *path, const void *data, size_t len) {
    if (!path || !*path || (!data && len))
        return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_write_file_atomic: no path or data");
    static atomic_uint counter;
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path + 1) : 0;
    char tmp[4200];
    int fd = -1;
    /* A hidden name in the same folder, so the rename stays on one file system; O_EXCL so two
     * writers never share one; 0666 so the umask decides, as for any new file. */
    for (int attempt = 0; fd < 0 && attempt < 100; attempt++) {
        int n = snprintf(tmp, sizeof tmp, "%.*s.%s.tmp-%d-%u", dirlen, path, path + dirlen,
                         (int)getpid(), atomic_fetch_add(&counter, 1));
        if (n < 0 || (size_t)n >= sizeof tmp)
            return ts_fail(ctx, TS_ERR_WRITE, "cannot write %s: the path is too long", path);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0)
        return ts_fail(ctx, TS_ERR_WRITE, "cannot write %s: %s", path,
                       errno == ENOENT ? "no such folder" : strerror(errno));
    int err = 0;
    ts_status s = write_all(fd, data, len, &err);
    /* Flushed before the rename, so a crash leaves the old file or the whole new one. */
    if (!s && fsync(fd) != 0 && errno != EINVAL && errno != EROFS) err = errno, s = TS_ERR_WRITE;
    if (close(fd) != 0 && !s) err = errno, s = TS_ERR_WRITE;
    if (!s && rename(tmp, path) != 0) err = errno, s = TS_ERR_WRITE;
    if (s) {
        unlink(tmp);
        return ts_fail(ctx, TS_ERR_WRITE, "cannot write %s: %s", path, strerror(err));
    }
    /* The folder entry too (best effort: not every file system allows it). */
    char dir[4200];
    snprintf(dir, sizeof dir, "%.*s", dirlen ? dirlen : 1, dirlen ? path : ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return TS_OK;
}

/* ---- Export -------------------------------------------------------------------------------- */

static int has_extension(const char *path, int format) {
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    if (!dot || (slash && dot < slash)) return 0;
    for (int i = 0; extensions[format][i]; i++)
        if (!strcasecmp(dot, extensions[format][i])) return 1;
    return 0;
}

#ifdef TS_SRGB_HAVE_AVX2
/* to_bytes for [0, n rounded down to 32), 32 samples at a time; returns how many. The same
 * bytes: max and min as the scalar selects (NaN to 0), then rounding to nearest, ties to even
 * (the processor's default mode, as lrintf). */
TS_SRGB_AVX2 static size_t to_bytes32(const float *in, unsigned char *px, size_t n) {
    size_t i = 0;
    const __m256 zero = _mm256_setzero_ps(), top = _mm256_set1_ps(255.f);
    for (; i + 32 <= n; i += 32) {
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            __m256 v = _mm256_loadu_ps(in + i + 8 * k);
            /* in >= 0 ? in : 0, then v <= 255 ? v : 255 */
            v = _mm256_and_ps(v, _mm256_cmp_ps(v, zero, _CMP_GE_OQ));
            v = _mm256_blendv_ps(top, v, _mm256_cmp_ps(v, top, _CMP_LE_OQ));
            q[k] = _mm256_cvtps_epi32(v);
        }
        /* 32 ints (0..255) to bytes, back in order after the lane-wise packs */
        __m256i w = _mm256_packus_epi32(q[0], q[1]), x = _mm256_packus_epi32(q[2], q[3]);
        __m256i b = _mm256_packus_epi16(w, x);
        b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(px + i), b);
    }
    return i;
}
#endif

/* The float samples in[0, n) rounded to nearest (ties to even, as libvips' rint) and clamped
 * to 0..255 into px. */
static void to_bytes(const float *in, unsigned char *px, size_t n) {
    size_t i = 0;
#ifdef TS_SRGB_HAVE_AVX2
    ts_srgb_init();
    if (ts_srgb_avx2) i = to_bytes32(in, px, n);
#endif
    for (; i < n; i++) {
        float v = in[i] >= 0.f ? in[i] : 0.f; /* (NaN too) */
        px[i] = (unsigned char)lrintf(v <= 255.f ? v : 255.f);
    }
}

/* The canvas as 8-bit sRGB in a fresh image: no metadata of any kind. */
static VipsImage *fresh_pixels(VipsImage *rgb) {
    if (rgb->BandFmt == VIPS_FORMAT_FLOAT) {
        /* A canvas: rounded and clamped in one pass, rather than three libvips passes over the
         * float image. */
        VipsImage *m = vips_image_copy_memory(rgb); /* a reference when it is in memory */
        if (!m) return NULL;
        size_t n = (size_t)m->Xsize * m->Ysize * m->Bands;
        const float *in = (const float *)VIPS_IMAGE_ADDR(m, 0, 0);
        unsigned char *px = ts_render_big_alloc(n);
        if (px) to_bytes(in, px, n);
        VipsImage *out =
            px ? ts_render_wrap_big(px, n, m->Xsize, m->Ysize, m->Bands, VIPS_FORMAT_UCHAR) : NULL;
        g_object_unref(m);
        if (out) out->Type = VIPS_INTERPRETATION_sRGB;
        return out;
    }
    VipsImage *r = NULL, *u = NULL, *out = NULL;
    if (vips_round(rgb, &r, VIPS_OPERATION_ROUND_RINT, NULL) == 0 &&
        vips_cast_uchar(r, &u, NULL) == 0) {
        size_t n = 0;
        void *mem = vips_image_write_to_memory(u, &n);
        if (mem) {
            out = vips_image_new_from_memory_copy(mem, n, u->Xsize, u->Ysize, u->Bands,
                                                  VIPS_FORMAT_UCHAR);
            g_free(mem);
        }
    }
    if (r) g_object_unref(r);
    if (u) g_object_unref(u);
    if (out) out->Type = VIPS_INTERPRETATION_sRGB;
    return out;
}

/* pix (fresh, no metadata) with the profile, resolution and XMP for this job attached. */
static VipsImage *with_metadata(VipsImage *pix, const ts_render_job *job, VipsBlob *icc,
                                const char *extra_edit) {
    VipsImage *out = NULL;
    const double ppmm = 72 / 25.4;
    if (vips_copy(pix, &out, "xres", ppmm, "yres", ppmm, NULL)) return NULL;
    size_t icc_len = 0;
    const void *icc_data = vips_blob_get(icc, &icc_len);
    vips_image_set_blob_copy(out, VIPS_META_ICC_NAME, icc_data, icc_len);
    char *xmp = ts_export_xmp(job, extra_edit);
    vips_image_set_blob_copy(out, VIPS_META_XMP_NAME, xmp, strlen(xmp));
    g_free(xmp);
    /* The EXIF block libvips writes: say sRGB rather than "uncalibrated". */
    vips_image_set_string(out, "exif-ifd2-ColorSpace", "1");
    return out;
}

typedef struct attempt {
    void *buf;
    size_t len;
    int q;
} attempt;

/* Encodes im (metadata attached) at quality q; keeps the result in *best when it fits or when
 * nothing fitting is known yet and it is smaller. Returns 1 if it fits, 0 if not, -1 on error. */
static int try_quality(VipsImage *im, const export_params *p, int q, size_t cap, attempt *a) {
    void *buf = NULL;
    size_t len = 0;
    if (encode(im, p->format, q, p->effort, &buf, &len)) return -1;
    a->buf = buf, a->len = len, a->q = q;
    return cap == 0 || len <= cap;
}

static void attempt_clear(attempt *a) {
    g_free(a->buf);
    a->buf = NULL, a->len = 0;
}

/* The highest quality in [qlo, qhi] whose file fits cap (size grows with quality), or the file
 * at qlo in *a with 0 returned when even that is too big. */
static int search_quality(VipsImage *im, const export_params *p, int qlo, int qhi, size_t cap,
                          attempt *a) {
    attempt t = {0};
    int fit = try_quality(im, p, qhi, cap, &t);
    if (fit != 0 || qlo >= qhi) {
        *a = t;
        return fit;
    }
    attempt_clear(&t);
    fit = try_quality(im, p, qlo, cap, &t);
    if (fit != 1) {
        *a = t;
        return fit;
    }
    /* Invariant: lo fits (its file in t), hi does not. */
    int lo = qlo, hi = qhi;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        attempt u = {0};
        int f = try_quality(im, p, mid, cap, &u);
        if (f < 0) {
            attempt_clear(&t);
            return -1;
        }
        if (f) {
            attempt_clear(&t);
            t = u, lo = mid;
        } else {
            attempt_clear(&u);
            hi = mid;
        }
    }
    *a = t;
    return 1;
}

ts_status ts_export_write_ex(ts_render_job *job, const export_params *p, const char *path,
                             ts_export_result *r) {
    if (!job || !job->ctx) return TS_ERR_ARGUMENT;
    ts_ctx *ctx = job->ctx;
    if (!p || !path || !*path)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "export: no parameters or path");
    if (!job->rgb) return ts_fail(ctx, TS_ERR_ARGUMENT, "export: nothing rendered to write");
    if (p->format < 0 || p->format >= TS_EXPORT_FORMATS)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "export: unknown format %d", p->format);
    if (!has_extension(path, p->format))
        return ts_fail(ctx, TS_ERR_ARGUMENT, "%s: a %s file should be named *%s", path,
                       format_labels[p->format], extensions[p->format][0]);
    char why[300];
    if (!ts_export_available(p->format, why, sizeof why))
        return ts_fail(ctx, TS_ERR_FORMAT, "%s: %s", path, why);
    /* Inputs are never overwritten, whatever the output folder. */
    struct stat so, si;
    if (job->photo && stat(path, &so) == 0 && stat(job->photo->path, &si) == 0 &&
        so.st_dev == si.st_dev && so.st_ino == si.st_ino)
        return ts_fail(ctx, TS_ERR_ARGUMENT,
                       "%s is the input photo; trueshot never overwrites its inputs", path);

    int q0 = p->quality ? p->quality : default_quality[p->format];
    int qmin = p->min_quality ? p->min_quality : floor_quality[p->format];
    if (qmin > q0) qmin = q0;
    if (p->format == TS_EXPORT_PNG) q0 = qmin = 0;
    size_t cap = (size_t)p->max_kb * 1024;

    VipsBlob *icc = NULL;
    if (vips_profile_load("sRGB", &icc, NULL))
        return ts_fail(ctx, TS_ERR_INTERNAL, "export: no sRGB profile: %s",
                       ts_vips_why(why, sizeof why));
    VipsImage *base = fresh_pixels(job->rgb);
    if (!base) {
        vips_area_unref(VIPS_AREA(icc));
        return ts_fail(ctx, TS_ERR_INTERNAL, "export: %s", ts_vips_why(why, sizeof why));
    }
    int W = base->Xsize, H = base->Ysize, shorter = W < H ? W : H;
    double k = 1, k_min = shorter > p->min_side ? (double)p->min_side / shorter : 1;
    attempt a = {0};
    int fit = -1;
    char scaled[96] = "";
    for (;;) {
        VipsImage *pix = base, *im = NULL;
        fit = -1;
        if (k < 1) {
            VipsImage *small = NULL;
            if (vips_resize(base, &small, k, "kernel", VIPS_KERNEL_LANCZOS3, NULL)) break;
            pix = fresh_pixels(small);
            g_object_unref(small);
            if (!pix) break;
            snprintf(scaled, sizeof scaled, "scaled to %dx%d for a %d KB file-size cap", pix->Xsize,
                     pix->Ysize, p->max_kb);
        }
        im = with_metadata(pix, job, icc, k < 1 ? scaled : NULL);
        if (pix != base) g_object_unref(pix);
        if (!im) break;
        attempt_clear(&a);
        fit = search_quality(im, p, qmin, q0, cap, &a);
        g_object_unref(im);
        if (fit != 0 || k <= k_min) break;
        /* Too big even at the lowest quality: shrink a little. File size grows about with the
         * pixel count, so aim at the cap with a 3% margin, by 5% to 30% a step. */
        double f = sqrt((double)cap / a.len) * 0.97;
        f = f < 0.7 ? 0.7 : f > 0.95 ? 0.95 : f;
        k = k * f < k_min ? k_min : k * f;
    }
    g_object_unref(base);
    vips_area_unref(VIPS_AREA(icc));
    if (fit < 0) {
        attempt_clear(&a);
        return ts_fail(ctx, TS_ERR_INTERNAL, "export: cannot encode %s: %s",
                       format_labels[p->format], ts_vips_why(why, sizeof why));
    }
    ts_status s = ts_write_file_atomic(ctx, path, a.buf, a.len);
    if (s) {
        attempt_clear(&a);
        return s;
    }
    int ow = k < 1 ? (int)lround(W * k) : W, oh = k < 1 ? (int)lround(H * k) : H;
    if (k < 1) {
        /* The size libvips' resize actually produced. */
        VipsImage *hdr = vips_image_new_from_buffer(a.buf, a.len, "", NULL);
        if (hdr) ow = hdr->Xsize, oh = hdr->Ysize, g_object_unref(hdr);
        vips_error_clear();
    }
    if (cap) {
        const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        char qual[32] = "", least[32] = "";
        if (p->format != TS_EXPORT_PNG) {
            snprintf(qual, sizeof qual, " at quality %d", a.q);
            snprintf(least, sizeof least, " and quality %d", a.q);
        }
        if (!fit)
            ts_render_note(job,
                           "%s is %zu KB, over the %d KB cap even at %dx%d%s (the smallest "
                           "allowed); use %s or a higher cap",
                           name, (a.len + 1023) / 1024, p->max_kb, ow, oh, least,
                           p->format == TS_EXPORT_PNG ? "JPEG or WebP" : "a lower min_quality");
        else if (k < 1)
            ts_render_note(job, "%s: scaled to %dx%d%s to stay under %d KB", name, ow, oh, qual,
                           p->max_kb);
        else if (a.q < q0)
            ts_render_note(job, "%s: quality %d (not %d) to stay under %d KB", name, a.q, q0,
                           p->max_kb);
    }
    if (r) {
        memset(r, 0, sizeof *r);
        r->width = ow, r->height = oh, r->quality = a.q, r->bytes = a.len;
        r->scale = (double)ow / W;
        for (int i = 0; i < 6; i++) r->m[i] = job->m[i] * r->scale;
        /* Pixel centres: libvips' resize maps corners, so centre x' = s (x + 0.5) - 0.5. */
        r->m[2] += 0.5 * r->scale - 0.5, r->m[5] += 0.5 * r->scale - 0.5;
        r->over_cap = cap && !fit;
        snprintf(r->source_type, sizeof r->source_type, "%s", source_type(job));
    }
    attempt_clear(&a);
    return TS_OK;
}

ts_status ts_export_write(ts_render_job *job, const export_params *p, const char *path) {
    return ts_export_write_ex(job, p, path, NULL);
}

/* As a stage: the pipeline runs it before writing anything, so a format this libvips cannot
 * write fails the look at once, with the reason. */
static ts_status export_run(ts_render_job *job, const void *params) {
    const export_params *p = params;
    char why[300];
    if (!ts_export_available(p->format, why, sizeof why))
        return ts_fail(job->ctx, TS_ERR_FORMAT, "export: %s", why);
    return TS_OK;
}

const ts_stage ts_stage_export = {"export", 1, export_table, sizeof(export_params), export_run};
