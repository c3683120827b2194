/* trueshot make, promise 5 (honest), read back from the written files with libvips: a photo
 * that carries GPS position, camera make, model and lens (faceapi_sample1.jpg's EXIF on
 * grace_hopper's pixels, so the face passes the identity check) goes through `trueshot make` in
 * JPEG, PNG and WebP; no output has a GPS, make, model, lens or serial field, none of the
 * camera's strings appear in the bytes, and each carries the XMP disclosure.
 *   test_make TRUESHOT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
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
