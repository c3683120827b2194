/* trueshot make, promise 5 (honest), read back from the written files with libvips: a photo
 * that carries GPS position, camera make, model and lens (faceapi_sample1.jpg's EXIF on
 * grace_hopper's pixels, so the face passes the identity check) goes through `trueshot make` in
 * JPEG, PNG and WebP; no output has a GPS, make, model, lens or serial field, none of the
 * camera's strings appear in the bytes, and each carries the XMP disclosure; the report's
 * "metadata_read_back" says the same as the file.
 *   test_make TRUESHOT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <vips/vips.h>

#include "common.h"

static const char *trueshot;
static char dir[] = "/tmp/trueshot-test-make-XXXXXX";

static int has_field(VipsImage *im, const char *const *bad, char *which, size_t cap) {
    char **f = vips_image_get_fields(im);
    int found = 0;
    for (int i = 0; f[i] && !found; i++)
        for (int k = 0; bad[k] && !found; k++)
            if (strstr(f[i], bad[k])) {
                snprintf(which, cap, "%s", f[i]);
                found = 1;
            }
    g_strfreev(f);
    return found;
}

static int bytes_contain(const char *path, const char *needle) {
    gchar *buf;
    gsize len;
    if (!g_file_get_contents(path, &buf, &len, NULL)) return -1;
    size_t n = strlen(needle);
    int found = 0;
    for (gsize i = 0; i + n <= len && !found; i++) found = !memcmp(buf + i, needle, n);
    g_free(buf);
    return found;
}

/* The report's read-back of the one output in out/ (report.json) against the promise: the sRGB
 * profile, the disclosure the file carries, every edit listed, no location, serial number or
 * maker note; the report's preview of the photo has no metadata, and the photo -> file
 * transform is a similarity. */
static void report_agrees(const char *out, int keep) {
    char path[600];
    snprintf(path, sizeof path, "%s/report.json", out);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root) fail_msg("%s: %s", path, err.text);
    json_t *o = json_array_get(json_object_get(root, "outputs"), 0);
    json_t *m = json_object_get(o, "metadata_read_back");
    if (!m) fail_msg("%s: no metadata_read_back", path);
    assert_string_equal(json_string_value(json_object_get(m, "icc_profile")), "sRGB");
    assert_string_equal(json_string_value(json_object_get(m, "digital_source_type")),
                        keep ? "algorithmicallyEnhanced" : "compositeSynthetic");
    assert_string_equal(json_string_value(json_object_get(m, "digital_source_type")),
                        json_string_value(json_object_get(o, "digital_source_type")));
    assert_int_equal(json_integer_value(json_object_get(m, "edits_listed")),
                     json_array_size(json_object_get(o, "edits")));
    assert_true(json_array_size(json_object_get(o, "edits")) >= 3);
    assert_non_null(strstr(json_string_value(json_object_get(m, "creator_tool")), "trueshot "));
    assert_int_equal(json_integer_value(json_object_get(m, "gps_fields")), 0);
    assert_int_equal(json_integer_value(json_object_get(m, "serial_number_fields")), 0);
    assert_int_equal(json_integer_value(json_object_get(m, "maker_note_fields")), 0);
    /* The report's preview of the photo carries none of the photo's metadata either. */
    const char *preview = json_string_value(json_object_get(root, "photo_preview"));
    assert_non_null(preview);
    assert_non_null(strstr(preview, "/report-files/"));
    VipsImage *pv = vips_image_new_from_file(preview, NULL);
    if (!pv) fail_msg("the report's preview %s does not open", preview);
    char which[256];
    static const char *const bad[] = {"GPS", "Make", "Model", "Serial", "MakerNote", NULL};
    if (has_field(pv, bad, which, sizeof which)) fail_msg("%s: carries %s", preview, which);
    assert_true(pv->Xsize <= 1200 && pv->Ysize <= 1200);
    g_object_unref(pv);
    /* photo -> file is the frame's similarity (levelling and scale, no shear) */
    json_t *t = json_object_get(o, "photo_to_file");
    assert_int_equal(json_array_size(t), 6);
    double a[6];
    for (int i = 0; i < 6; i++) a[i] = json_real_value(json_array_get(t, i));
    assert_true(fabs(a[0] - a[4]) < 1e-4 && fabs(a[1] + a[3]) < 1e-4 && a[0] > 0);
    json_decref(root);
}

static void honest_metadata(void **state) {
    (void)state;
    char src[256], gps[300], cmd[2048];
    snprintf(src, sizeof src, "%s", ts_test_photo("faceapi_sample1.jpg"));
    if (access(src, R_OK) || access(ts_test_photo("grace_hopper.jpg"), R_OK)) skip();
    /* The test photo: grace_hopper with faceapi_sample1's EXIF block. */
    VipsImage *exif_src = vips_image_new_from_file(src, NULL);
    VipsImage *face = vips_image_new_from_file(ts_test_photo("grace_hopper.jpg"), NULL), *copy;
    assert_non_null(exif_src);
    assert_non_null(face);
    assert_int_equal(vips_copy(face, &copy, NULL), 0);
    const void *blob;
    size_t blen;
    assert_int_equal(vips_image_get_blob(exif_src, VIPS_META_EXIF_NAME, &blob, &blen), 0);
    vips_image_set_blob_copy(copy, VIPS_META_EXIF_NAME, blob, blen);
    snprintf(gps, sizeof gps, "%s/with-gps.jpg", dir);
    assert_int_equal(vips_jpegsave(copy, gps, "Q", 95, NULL), 0);
    g_object_unref(copy);
    g_object_unref(face);
    g_object_unref(exif_src);
    /* The source really carries what must not come out. */
    static const char *const bad[] = {"GPS",    "Make",      "Model", "LensModel",
                                      "Serial", "MakerNote", NULL};
    char which[256];
    VipsImage *in = vips_image_new_from_file(gps, NULL);
    assert_non_null(in);
    assert_true(has_field(in, (const char *const[]){"GPSLatitude", NULL}, which, sizeof which));
    assert_true(has_field(in, (const char *const[]){"Model", NULL}, which, sizeof which));
    g_object_unref(in);
    assert_int_equal(bytes_contain(gps, "ILCE-7M2"), 1);

    static const char *const formats[] = {"jpeg", "png", "webp"}, *const ext[] = {"jpg", "png",
                                                                                  "webp"};
    for (int f = 0; f < 3; f++) {
        for (int keep = 0; keep < 2; keep++) {
            char out[400], file[600];
            snprintf(out, sizeof out, "%s/out-%s-%d", dir, formats[f], keep);
            snprintf(cmd, sizeof cmd,
                     "'%s' make '%s' -o '%s' --style corporate --crop square:400 --format %s %s "
                     ">/dev/null",
                     trueshot, gps, out, formats[f], keep ? "--background keep" : "");
            assert_int_equal(system(cmd), 0);
            snprintf(file, sizeof file, "%s/with-gps-corporate-square.%s", out, ext[f]);
            VipsImage *im = vips_image_new_from_file(file, NULL);
            assert_non_null(im);
            if (has_field(im, bad, which, sizeof which)) fail_msg("%s: carries %s", file, which);
            /* The XMP disclosure, as libvips reads it back from each format. */
            const void *x;
            size_t xlen;
            assert_int_equal(vips_image_get_blob(im, VIPS_META_XMP_NAME, &x, &xlen), 0);
            char *xmp = g_strndup(x, xlen);
            const char *type = keep ? "digitalsourcetype/algorithmicallyEnhanced"
                                    : "digitalsourcetype/compositeSynthetic";
            if (!strstr(xmp, type)) fail_msg("%s: no %s in its XMP", file, type);
            assert_non_null(strstr(xmp, "<xmp:CreatorTool>trueshot "));
            assert_non_null(strstr(xmp, "levelled the eyes"));
            g_free(xmp);
            g_object_unref(im);
            report_agrees(out, keep);
            static const char *const strings[] = {"SONY", "ILCE-7M2", "paint.net", "FE 55mm"};
            for (int k = 0; k < 4; k++)
                if (bytes_contain(file, strings[k]) != 0)
                    fail_msg("%s: contains '%s'", file, strings[k]);
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_make TRUESHOT\n");
        return 2;
    }
    trueshot = argv[1];
    if (VIPS_INIT(argv[0]) || !mkdtemp(dir)) return 1;
    const struct CMUnitTest tests[] = {cmocka_unit_test(honest_metadata)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    vips_shutdown();
    return rc;
}
