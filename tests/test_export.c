/* The export stage (issue 6; DESIGN.md promises 2 and 5), everything read back from the written
 * files: every format opens, holds the sRGB ICC profile and an XMP packet that parses as XML and
 * says the truth (IPTC DigitalSourceType, creator tool, the edits, escaped); nothing of the
 * source's EXIF (GPS, make, model, software) survives; the file-size cap lowers quality, then
 * scales, never below the minimum side; writes are atomic: no file and no temporary file after a
 * failure, a full disk included (simulated with RLIMIT_FSIZE), and the input is never
 * overwritten. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <vips/vips.h>

#include "common.h"
#include "core/internal.h"
#include "render/export.h"
#include "render/render.h"

typedef struct fixture {
    ts_ctx *ctx;
    ts_photo *photo;
    ts_render_job job;
    char dir[256]; /* scratch folder, removed at the end */
} fixture;

/* A job framed from the photo (default square 1200x1200, no matte). */
static void frame_job(fixture *f, const char *photo) {
    assert_int_equal(ts_photo_open(f->ctx, photo, &f->photo), TS_OK);
    const ts_face_analysis *fa;
    if (ts_photo_subject(f->ctx, f->photo, &fa)) fail_msg("%s", ts_ctx_error(f->ctx));
    memset(&f->job, 0, sizeof f->job);
    f->job.ctx = f->ctx, f->job.photo = f->photo, f->job.face = fa;
    void *fp = calloc(1, ts_stage_frame.params_size);
    ts_params_defaults(ts_stage_frame.table, fp);
    if (ts_stage_frame.run(&f->job, fp)) fail_msg("%s", ts_ctx_error(f->ctx));
    free(fp);
}

static int setup_photo(void **state, const char *photo) {
    fixture *f = calloc(1, sizeof *f);
    if (!f || ts_ctx_new(NULL, &f->ctx) != TS_OK) return -1;
    if (ts_test_tmpdir(f->dir, sizeof f->dir, "export")) return -1;
    frame_job(f, ts_test_photo(photo));
    *state = f;
    return 0;
}

static int setup_grace(void **state) {
    return setup_photo(state, "grace_hopper.jpg");
}
/* A camera photo with GPS, make, model and software in its EXIF. */
static int setup_gps(void **state) {
    return setup_photo(state, "faceapi_sample1.jpg");
}

static int teardown(void **state) {
    fixture *f = *state;
    ts_test_rmdir(f->dir);
    ts_render_job_clear(&f->job);
    ts_photo_unref(f->photo);
    ts_ctx_free(f->ctx);
    free(f);
    return 0;
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

static export_params defaults(int format) {
    export_params p;
    ts_params_defaults(ts_stage_export.table, &p);
    p.format = format;
    return p;
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* The XMP packet of a written file, as libvips reads it back: "xmp-data", or for HEIF/AVIF a
 * "heif-mime-N" item (libvips 8.14's heifload names XMP items so). g_free the result. */
static char *xmp_of(VipsImage *im) {
    char **names = vips_image_get_fields(im);
    char *x = NULL;
    for (int i = 0; names[i] && !x; i++) {
        if (strcmp(names[i], VIPS_META_XMP_NAME) && strncmp(names[i], "heif-mime-", 10)) continue;
        const void *d;
        size_t n;
        if (vips_image_get_blob(im, names[i], &d, &n) == 0 && n > 10 &&
            g_strstr_len(d, (gssize)n, "x:xmpmeta"))
            x = g_strndup(d, n);
    }
    g_strfreev(names);
    return x;
}

/* The text of the XPath expression's first node (g_free), or NULL; *count gets the node count. */
static char *xpath_text(xmlDocPtr doc, const char *expr, int *count) {
    xmlXPathContextPtr xc = xmlXPathNewContext(doc);
    xmlXPathRegisterNs(xc, BAD_CAST "rdf", BAD_CAST "http://www.w3.org/1999/02/22-rdf-syntax-ns#");
    xmlXPathRegisterNs(xc, BAD_CAST "Iptc4xmpExt",
                       BAD_CAST "http://iptc.org/std/Iptc4xmpExt/2008-02-29/");
    xmlXPathRegisterNs(xc, BAD_CAST "xmp", BAD_CAST "http://ns.adobe.com/xap/1.0/");
    xmlXPathRegisterNs(xc, BAD_CAST "dc", BAD_CAST "http://purl.org/dc/elements/1.1/");
    xmlXPathRegisterNs(xc, BAD_CAST "trueshot", BAD_CAST "https://trueshot.invalid/ns/1.0/");
    xmlXPathObjectPtr o = xmlXPathEvalExpression(BAD_CAST expr, xc);
    char *text = NULL;
    int n = o && o->nodesetval ? o->nodesetval->nodeNr : 0;
    if (count) *count = n;
    if (n > 0) {
        xmlChar *c = xmlNodeGetContent(o->nodesetval->nodeTab[0]);
        text = g_strdup((const char *)c);
        xmlFree(c);
    }
    xmlXPathFreeObject(o);
    xmlXPathFreeContext(xc);
    return text;
}

/* EXIF fields libvips writes on its own (no person, camera or place in them). */
static const char *const exif_allowed[] = {"exif-data",
                                           "exif-ifd0-Orientation",
                                           "exif-ifd0-XResolution",
                                           "exif-ifd0-YResolution",
                                           "exif-ifd0-ResolutionUnit",
                                           "exif-ifd0-YCbCrPositioning",
                                           "exif-ifd2-ExifVersion",
                                           "exif-ifd2-ComponentsConfiguration",
                                           "exif-ifd2-FlashpixVersion",
                                           "exif-ifd2-ColorSpace",
                                           "exif-ifd2-PixelXDimension",
                                           "exif-ifd2-PixelYDimension",
                                           NULL};

/* Everything promise 5 asks of a written file, read back from it. Returns the XMP (g_free). */
static char *check_written(const ts_render_job *job, const char *path, int width) {
    VipsImage *im = vips_image_new_from_file(path, NULL);
    if (!im) fail_msg("%s: %s", path, vips_error_buffer());
    if (width) assert_int_equal(im->Xsize, width);
    assert_int_equal(im->Bands, 3);
    /* The sRGB ICC profile, byte for byte libvips' built-in one. */
    const void *icc;
    size_t icc_len;
    assert_int_equal(vips_image_get_blob(im, VIPS_META_ICC_NAME, &icc, &icc_len), 0);
    VipsBlob *srgb;
    assert_int_equal(vips_profile_load("sRGB", &srgb, NULL), 0);
    size_t srgb_len;
    const void *srgb_data = vips_blob_get(srgb, &srgb_len);
    assert_int_equal(icc_len, srgb_len);
    assert_memory_equal(icc, srgb_data, icc_len);
    vips_area_unref(VIPS_AREA(srgb));
    /* No EXIF beyond libvips' own minimal block; colour space sRGB where there is one. */
    char **names = vips_image_get_fields(im);
    for (int i = 0; names[i]; i++) {
        if (strncmp(names[i], "exif-", 5)) continue;
        int ok = 0;
        for (int k = 0; exif_allowed[k]; k++) ok |= !strcmp(names[i], exif_allowed[k]);
        if (!ok) fail_msg("%s: unexpected EXIF field %s", path, names[i]);
    }
    g_strfreev(names);
    const char *cs;
    if (vips_image_get_typeof(im, "exif-ifd2-ColorSpace")) {
        assert_int_equal(vips_image_get_string(im, "exif-ifd2-ColorSpace", &cs), 0);
        assert_true(cs[0] == '1' && cs[1] == ' ');
    }
    /* The XMP: well-formed, and true. */
    char *xmp = xmp_of(im);
    if (!xmp) fail_msg("%s: no XMP packet", path);
    xmlDocPtr doc = xmlReadMemory(xmp, (int)strlen(xmp), "xmp.xml", NULL, XML_PARSE_NONET);
    if (!doc) fail_msg("%s: the XMP is not well-formed XML:\n%s", path, xmp);
    char *type = xpath_text(doc, "//Iptc4xmpExt:DigitalSourceType", NULL);
    assert_non_null(type);
    assert_string_equal(type, job->background_replaced
                                  ? "http://cv.iptc.org/newscodes/digitalsourcetype/"
                                    "compositeSynthetic"
                                  : "http://cv.iptc.org/newscodes/digitalsourcetype/"
                                    "algorithmicallyEnhanced");
    char *tool = xpath_text(doc, "//xmp:CreatorTool", NULL);
    assert_non_null(tool);
    assert_string_equal(tool, "trueshot " TS_VERSION_STRING);
    int n = 0;
    char *first = xpath_text(doc, "//trueshot:Edits/rdf:Seq/rdf:li", &n);
    assert_true(n >= job->n_edits);
    if (job->n_edits) assert_string_equal(first, job->edits[0]);
    char *desc = xpath_text(doc, "//dc:description/rdf:Alt/rdf:li", NULL);
    assert_non_null(desc);
    for (int i = 0; i < job->n_edits; i++) {
        /* Control characters (not allowed in XML 1.0) are written as spaces. */
        char e[sizeof job->edits[0]];
        snprintf(e, sizeof e, "%s", job->edits[i]);
        for (char *c = e; *c; c++)
            if ((unsigned char)*c < 0x20) *c = ' ';
        if (!strstr(desc, e)) fail_msg("%s: edit \"%s\" missing from \"%s\"", path, e, desc);
    }
    g_free(type), g_free(tool), g_free(first), g_free(desc);
    xmlFreeDoc(doc);
    g_object_unref(im);
    return xmp;
}

static void t_formats(void **state) {
    fixture *f = *state;
    ts_render_edit(&f->job, "evened the light");
    for (int fmt = 0; fmt < TS_EXPORT_FORMATS; fmt++) {
        char why[300], path[400];
        snprintf(path, sizeof path, "%s/look%s", f->dir, ts_export_extension(fmt));
        export_params p = defaults(fmt);
        if (!ts_export_available(fmt, why, sizeof why)) {
            /* Only AVIF may be missing from a libvips build; the error must say so. */
            assert_int_equal(fmt, TS_EXPORT_AVIF);
            assert_int_equal(ts_export_write(&f->job, &p, path), TS_ERR_FORMAT);
            assert_non_null(strstr(ts_ctx_error(f->ctx), "AVIF"));
            print_message("  %s: not available: %s\n", ts_export_format_names[fmt], why);
            continue;
        }
        ts_export_result r;
        double t0 = g_get_monotonic_time();
        if (ts_export_write_ex(&f->job, &p, path, &r)) fail_msg("%s", ts_ctx_error(f->ctx));
        double ms = (g_get_monotonic_time() - t0) / 1000;
        assert_int_equal(r.bytes, file_size(path));
        assert_int_equal(r.width, 1200);
        assert_float_equal(r.scale, 1, 0);
        assert_string_equal(r.source_type, "algorithmicallyEnhanced");
        g_free(check_written(&f->job, path, 1200));
        print_message("  %-4s q%-3d %7zu bytes  %6.0f ms\n", ts_export_format_names[fmt], r.quality,
                      r.bytes, ms);
    }
    /* Only the outputs: no temporary files left. */
    assert_int_equal(count_files(f->dir), 3 + ts_export_available(TS_EXPORT_AVIF, NULL, 0));
}

static void t_strips_source_metadata(void **state) {
    fixture *f = *state;
    const char *src = ts_test_photo("faceapi_sample1.jpg");
    /* The precondition: the source does carry GPS and camera fields. */
    VipsImage *in = vips_image_new_from_file(src, NULL);
    assert_non_null(in);
    assert_true(vips_image_get_typeof(in, "exif-ifd3-GPSLatitude") != 0);
    assert_true(vips_image_get_typeof(in, "exif-ifd0-Model") != 0);
    g_object_unref(in);
    f->job.background_replaced = 1;
    ts_render_edit(&f->job, "background: solid grey");
    for (int fmt = 0; fmt < TS_EXPORT_FORMATS; fmt++) {
        if (!ts_export_available(fmt, NULL, 0)) continue;
        char path[400];
        snprintf(path, sizeof path, "%s/gps%s", f->dir, ts_export_extension(fmt));
        export_params p = defaults(fmt);
        if (ts_export_write(&f->job, &p, path)) fail_msg("%s", ts_ctx_error(f->ctx));
        g_free(check_written(&f->job, path, 1200));
        /* And no trace in the bytes either. */
        gchar *bytes;
        gsize n;
        assert_true(g_file_get_contents(path, &bytes, &n, NULL));
        static const char *const leaks[] = {"ILCE-7M2", "SONY", "paint.net", "2017:10:31", NULL};
        for (int k = 0; leaks[k]; k++)
            if (g_strstr_len(bytes, (gssize)n, leaks[k]))
                fail_msg("%s still contains \"%s\"", path, leaks[k]);
        g_free(bytes);
    }
}

static void t_xmp_escaping(void **state) {
    fixture *f = *state;
    ts_render_edit(&f->job, "contrast <gentle> & \"warm\" 'grade' \x01 bell");
    char path[400];
    snprintf(path, sizeof path, "%s/escaped.jpg", f->dir);
    export_params p = defaults(TS_EXPORT_JPEG);
    assert_int_equal(ts_export_write(&f->job, &p, path), TS_OK);
    char *xmp = check_written(&f->job, path, 1200);
    xmlDocPtr doc = xmlReadMemory(xmp, (int)strlen(xmp), "xmp.xml", NULL, XML_PARSE_NONET);
    int n = 0;
    char *all = NULL;
    xmlXPathContextPtr xc = xmlXPathNewContext(doc);
    xmlXPathRegisterNs(xc, BAD_CAST "rdf", BAD_CAST "http://www.w3.org/1999/02/22-rdf-syntax-ns#");
    xmlXPathRegisterNs(xc, BAD_CAST "trueshot", BAD_CAST "https://trueshot.invalid/ns/1.0/");
    xmlXPathObjectPtr o = xmlXPathEvalExpression(BAD_CAST "//trueshot:Edits/rdf:Seq/rdf:li", xc);
    n = o->nodesetval ? o->nodesetval->nodeNr : 0;
    assert_int_equal(n, f->job.n_edits);
    xmlChar *c = xmlNodeGetContent(o->nodesetval->nodeTab[n - 1]);
    all = g_strdup((const char *)c);
    xmlFree(c);
    /* The control character (not allowed in XML 1.0) became a space; the rest round-trips. */
    assert_string_equal(all, "contrast <gentle> & \"warm\" 'grade'   bell");
    g_free(all);
    /* The report's read-back (ts_xmp_read) finds what the XML parser finds. */
    ts_xmp_fields rb;
    ts_xmp_read(xmp, strlen(xmp), &rb);
    assert_int_equal(rb.n_edits, f->job.n_edits);
    assert_string_equal(rb.source_type, f->job.background_replaced ? "compositeSynthetic"
                                                                   : "algorithmicallyEnhanced");
    assert_string_equal(rb.creator_tool, "trueshot " TS_VERSION_STRING);
    xmlXPathRegisterNs(xc, BAD_CAST "dc", BAD_CAST "http://purl.org/dc/elements/1.1/");
    xmlXPathObjectPtr d = xmlXPathEvalExpression(BAD_CAST "//dc:description/rdf:Alt/rdf:li", xc);
    assert_true(d->nodesetval && d->nodesetval->nodeNr == 1);
    xmlChar *dt = xmlNodeGetContent(d->nodesetval->nodeTab[0]);
    assert_string_equal(rb.description, (const char *)dt);
    assert_non_null(strstr(rb.description, "contrast <gentle> & \"warm\""));
    xmlFree(dt);
    xmlXPathFreeObject(d);
    /* Cut anywhere, the packet reads without overrunning and never finds more edits. */
    for (size_t cut = 0; cut < strlen(xmp); cut += 7) {
        ts_xmp_read(xmp, cut, &rb);
        assert_true(rb.n_edits <= f->job.n_edits);
    }
    xmlXPathFreeObject(o);
    xmlXPathFreeContext(xc);
    xmlFreeDoc(doc);
    g_free(xmp);
}

static void t_size_cap(void **state) {
    fixture *f = *state;
    char path[400];
    /* A cap the default quality misses: a lower quality, same size. */
    export_params p = defaults(TS_EXPORT_JPEG);
    ts_export_result r0, r;
    snprintf(path, sizeof path, "%s/uncapped.jpg", f->dir);
    assert_int_equal(ts_export_write_ex(&f->job, &p, path, &r0), TS_OK);
    p.max_kb = (int)(r0.bytes * 0.6 / 1024);
    snprintf(path, sizeof path, "%s/capped.jpg", f->dir);
    int notes = f->job.n_notes;
    assert_int_equal(ts_export_write_ex(&f->job, &p, path, &r), TS_OK);
    assert_true(file_size(path) <= p.max_kb * 1024);
    assert_int_equal(r.width, 1200);
    assert_true(r.quality < 90 && r.quality >= 60);
    assert_int_equal(f->job.n_notes, notes + 1);
    print_message("  JPEG uncapped q90 %zu KB; cap %d KB -> q%d %zu KB (%s)\n",
                  (r0.bytes + 1023) / 1024, p.max_kb, r.quality, (r.bytes + 1023) / 1024,
                  f->job.notes[notes]);
    /* The best quality that fits: one step up does not. */
    if (r.quality < 90) {
        export_params q = p;
        q.quality = r.quality + 1, q.max_kb = 0;
        snprintf(path, sizeof path, "%s/onemore.jpg", f->dir);
        assert_int_equal(ts_export_write(&f->job, &q, path), TS_OK);
        assert_true(file_size(path) > p.max_kb * 1024);
    }
    g_free(check_written(&f->job, path, 1200));

    /* A cap that even the lowest quality misses: scaled a little, quality kept >= the floor. */
    p.max_kb = (int)(r0.bytes * 0.15 / 1024);
    snprintf(path, sizeof path, "%s/scaled.jpg", f->dir);
    assert_int_equal(ts_export_write_ex(&f->job, &p, path, &r), TS_OK);
    assert_true(file_size(path) <= p.max_kb * 1024);
    assert_true(r.width < 1200 && r.width >= 400 && r.quality >= 60);
    assert_false(r.over_cap);
    print_message("  cap %d KB -> %dx%d q%d %zu KB (%s)\n", p.max_kb, r.width, r.height, r.quality,
                  (r.bytes + 1023) / 1024, f->job.notes[f->job.n_notes - 1]);
    /* The transform follows the scale (used to verify identity on the file). */
    assert_float_equal(r.m[0], f->job.m[0] * r.scale, 1e-9);
    char *xmp = check_written(&f->job, path, r.width);
    assert_non_null(strstr(xmp, "KB file-size cap"));
    g_free(xmp);

    /* An impossible cap: never below 400 px, written anyway at the smallest setting, and said. */
    p.max_kb = 1;
    snprintf(path, sizeof path, "%s/tiny.jpg", f->dir);
    assert_int_equal(ts_export_write_ex(&f->job, &p, path, &r), TS_OK);
    assert_int_equal(r.width, 400);
    assert_int_equal(r.quality, 60);
    assert_true(r.over_cap);
    assert_non_null(strstr(f->job.notes[f->job.n_notes - 1], "over the 1 KB cap"));
    print_message("  cap 1 KB -> %dx%d q%d %zu KB (%s)\n", r.width, r.height, r.quality,
                  (r.bytes + 1023) / 1024, f->job.notes[f->job.n_notes - 1]);

    /* PNG is lossless: only scaling can meet a cap. */
    p = defaults(TS_EXPORT_PNG);
    p.max_kb = 600;
    snprintf(path, sizeof path, "%s/capped.png", f->dir);
    assert_int_equal(ts_export_write_ex(&f->job, &p, path, &r), TS_OK);
    assert_true(file_size(path) <= 600 * 1024 || r.width == 400);
    print_message("  PNG cap 600 KB -> %dx%d %zu KB\n", r.width, r.height, (r.bytes + 1023) / 1024);

    /* WebP and AVIF search quality too. */
    for (int fmt = TS_EXPORT_WEBP; fmt <= TS_EXPORT_AVIF; fmt++) {
        if (!ts_export_available(fmt, NULL, 0)) continue;
        p = defaults(fmt);
        p.max_kb = 40;
        snprintf(path, sizeof path, "%s/capped%s", f->dir, ts_export_extension(fmt));
        double t0 = g_get_monotonic_time();
        assert_int_equal(ts_export_write_ex(&f->job, &p, path, &r), TS_OK);
        assert_true(file_size(path) <= 40 * 1024 || r.over_cap);
        print_message("  %s cap 40 KB -> %dx%d q%d %zu bytes in %.0f ms\n",
                      ts_export_format_names[fmt], r.width, r.height, r.quality, r.bytes,
                      (g_get_monotonic_time() - t0) / 1000);
    }
}

static void t_atomic_and_errors(void **state) {
    fixture *f = *state;
    export_params p = defaults(TS_EXPORT_JPEG);
    char path[400];
    /* A folder that does not exist: the error names the path; nothing is created. */
    snprintf(path, sizeof path, "%s/no-such-folder/out.jpg", f->dir);
    assert_int_equal(ts_export_write(&f->job, &p, path), TS_ERR_WRITE);
    assert_non_null(strstr(ts_ctx_error(f->ctx), path));
    assert_int_equal(count_files(f->dir), 0);
    /* A "folder" that is a file. */
    char notdir[300];
    snprintf(notdir, sizeof notdir, "%s/plain", f->dir);
    assert_true(g_file_set_contents(notdir, "x", 1, NULL));
    snprintf(path, sizeof path, "%s/out.jpg", notdir);
    assert_int_equal(ts_export_write(&f->job, &p, path), TS_ERR_WRITE);
    assert_non_null(strstr(ts_ctx_error(f->ctx), path));
    unlink(notdir);
    /* The extension must match the format. */
    snprintf(path, sizeof path, "%s/out.png", f->dir);
    assert_int_equal(ts_export_write(&f->job, &p, path), TS_ERR_ARGUMENT);
    assert_int_equal(count_files(f->dir), 0);

    /* A full disk, simulated: the file-size limit makes write() fail with EFBIG past 20 KB, as
     * ENOSPC would. The earlier file of that name is untouched; no temporary file remains. */
    snprintf(path, sizeof path, "%s/out.jpg", f->dir);
    assert_true(g_file_set_contents(path, "previous", 8, NULL));
    struct rlimit old, small;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = 20000;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    ts_status s = ts_export_write(&f->job, &p, path);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(s, TS_ERR_WRITE);
    print_message("  full disk: %s\n", ts_ctx_error(f->ctx));
    assert_non_null(strstr(ts_ctx_error(f->ctx), path));
    assert_int_equal(count_files(f->dir), 1);
    gchar *bytes;
    gsize n;
    assert_true(g_file_get_contents(path, &bytes, &n, NULL));
    assert_int_equal(n, 8);
    assert_memory_equal(bytes, "previous", 8);
    g_free(bytes);
    /* Without the limit the same call replaces it. */
    assert_int_equal(ts_export_write(&f->job, &p, path), TS_OK);
    assert_true(file_size(path) > 20000);
    assert_int_equal(count_files(f->dir), 1);
}

/* The input photo is never overwritten, even when asked to. */
static void t_never_overwrites_input(void **state) {
    fixture *f = *state;
    char copy[400];
    snprintf(copy, sizeof copy, "%s/me.jpg", f->dir);
    gchar *orig;
    gsize n;
    assert_true(g_file_get_contents(ts_test_photo("grace_hopper.jpg"), &orig, &n, NULL));
    assert_true(g_file_set_contents(copy, orig, (gssize)n, NULL));
    ts_render_job_clear(&f->job);
    ts_photo_unref(f->photo);
    frame_job(f, copy);
    export_params p = defaults(TS_EXPORT_JPEG);
    assert_int_equal(ts_export_write(&f->job, &p, copy), TS_ERR_ARGUMENT);
    assert_non_null(strstr(ts_ctx_error(f->ctx), "never overwrites"));
    gchar *now;
    gsize m;
    assert_true(g_file_get_contents(copy, &now, &m, NULL));
    assert_int_equal(m, n);
    assert_memory_equal(now, orig, n);
    g_free(now), g_free(orig);
}

static void t_param_table(void **state) {
    (void)state;
    export_params p;
    ts_params_defaults(ts_stage_export.table, &p);
    assert_int_equal(p.format, TS_EXPORT_JPEG);
    assert_int_equal(p.max_kb, 0);
    assert_int_equal(p.min_side, 400);
    char err[200];
    const ts_param *fmt = ts_param_find(ts_stage_export.table, "format");
    assert_non_null(fmt);
    assert_int_equal(ts_param_set(fmt, &p, "webp", err, sizeof err), 0);
    assert_int_equal(p.format, TS_EXPORT_WEBP);
    assert_int_equal(ts_param_set(fmt, &p, "gif", err, sizeof err), -1);
    assert_int_equal(
        ts_param_set(ts_param_find(ts_stage_export.table, "quality"), &p, "101", err, sizeof err),
        -1);
    assert_string_equal(ts_stage_export.name, "export");
}

int main(void) {
    LIBXML_TEST_VERSION
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_param_table),
        cmocka_unit_test_setup_teardown(t_formats, setup_grace, teardown),
        cmocka_unit_test_setup_teardown(t_strips_source_metadata, setup_gps, teardown),
        cmocka_unit_test_setup_teardown(t_xmp_escaping, setup_grace, teardown),
        cmocka_unit_test_setup_teardown(t_size_cap, setup_grace, teardown),
        cmocka_unit_test_setup_teardown(t_atomic_and_errors, setup_grace, teardown),
        cmocka_unit_test_setup_teardown(t_never_overwrites_input, setup_grace, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    xmlCleanupParser();
    return rc;
}
