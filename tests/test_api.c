/* Public API basics: options, statuses and exit codes, photo errors, EXIF orientation and the
 * letterboxed tensor mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <vips/vips.h>

#include "trueshot.h"

static char tmp[64];

static void t_options_and_status(void **state) {
    (void)state;
    ts_ctx_options o;
    ts_ctx_options_init(&o);
    assert_int_equal(o.size, sizeof o);
    assert_int_equal(o.threads, 0);
    ts_ctx *ctx = NULL;
    o.size = 3;
    assert_int_equal(ts_ctx_new(&o, &ctx), TS_ERR_ARGUMENT);
    assert_null(ctx);
    assert_non_null(strstr(ts_last_error(), "size"));
    ts_ctx_options_init(&o);
    o.threads = -1;
    assert_int_equal(ts_ctx_new(&o, &ctx), TS_ERR_ARGUMENT);
    /* Every failure has its own exit code and name. */
    int seen[64] = {0};
    for (int s = TS_ERR_ARGUMENT; s <= TS_ERR_FACE_SMALL; s++) {
        int code = ts_status_exit_code((ts_status)s);
        assert_true(code > 1 && code < 64);
        assert_int_equal(seen[code], 0);
        seen[code] = 1;
        assert_string_not_equal(ts_status_name((ts_status)s), "unknown");
    }
    assert_int_equal(ts_status_exit_code(TS_OK), 0);
}

static void t_photo_errors(void **state) {
    (void)state;
    ts_ctx *ctx;
    assert_int_equal(ts_ctx_new(NULL, &ctx), TS_OK);
    ts_photo *p = NULL;
    assert_int_equal(ts_photo_open(ctx, "/nonexistent/photo.jpg", &p), TS_ERR_READ);
    assert_null(p);
    assert_non_null(strstr(ts_ctx_error(ctx), "/nonexistent/photo.jpg"));
    char path[128];
    snprintf(path, sizeof path, "%s/notes.txt", tmp);
    FILE *f = fopen(path, "w");
    fputs("this is not a photo\n", f);
    fclose(f);
    assert_int_equal(ts_photo_open(ctx, path, &p), TS_ERR_FORMAT);
    assert_int_equal(ts_photo_open(ctx, tmp, &p), TS_ERR_READ);
    ts_ctx_free(ctx);

    ts_ctx_options o;
    ts_ctx_options_init(&o);
    o.max_pixels = 1000;
    assert_int_equal(ts_ctx_new(&o, &ctx), TS_OK);
    snprintf(path, sizeof path, "%s/big.png", tmp);
    VipsImage *im;
    assert_int_equal(vips_black(&im, 100, 100, NULL), 0);
    assert_int_equal(vips_pngsave(im, path, NULL), 0);
    g_object_unref(im);
    assert_int_equal(ts_photo_open(ctx, path, &p), TS_ERR_TOO_LARGE);
    assert_non_null(strstr(ts_ctx_error(ctx), "megapixels"));
    ts_ctx_free(ctx);
}

/* A bright dot at a known place, in a 300x200 picture: found in the tensor where the xform
 * says; and the same picture stored sideways with EXIF orientation 6 gives the same tensor. */
static void t_tensor_mapping_and_orientation(void **state) {
    (void)state;
    int W = 300, H = 200, dx = 210, dy = 60;
    unsigned char *px = calloc((size_t)W * H * 3, 1);
    for (int y = dy - 2; y <= dy + 2; y++)
        for (int x = dx - 2; x <= dx + 2; x++) px[(y * W + x) * 3 + 0] = 255;
    VipsImage *im =
        vips_image_new_from_memory_copy(px, (size_t)W * H * 3, W, H, 3, VIPS_FORMAT_UCHAR);
    im->Type = VIPS_INTERPRETATION_sRGB;
    char upright[128], sideways[128];
    snprintf(upright, sizeof upright, "%s/upright.png", tmp);
    snprintf(sideways, sizeof sideways, "%s/sideways.jpg", tmp);
    assert_int_equal(vips_pngsave(im, upright, NULL), 0);
    /* Orientation 6 means "rotate 90° clockwise to view": store the picture turned 90° anti-
     * clockwise, tagged 6. */
    VipsImage *rot, *tagged;
    assert_int_equal(vips_rot(im, &rot, VIPS_ANGLE_D270, NULL), 0);
    assert_int_equal(vips_copy(rot, &tagged, NULL), 0);
    vips_image_set_int(tagged, VIPS_META_ORIENTATION, 6);
    assert_int_equal(vips_jpegsave(tagged, sideways, "Q", 100, NULL), 0);
    g_object_unref(tagged);
    g_object_unref(rot);
    g_object_unref(im);
    free(px);

    ts_ctx *ctx;
    assert_int_equal(ts_ctx_new(NULL, &ctx), TS_OK);
    ts_photo *a, *b;
    assert_int_equal(ts_photo_open(ctx, upright, &a), TS_OK);
    assert_int_equal(ts_photo_open(ctx, sideways, &b), TS_OK);
    assert_int_equal(ts_photo_width(b), W);
    assert_int_equal(ts_photo_height(b), H);
    enum { S = 150 };
    float *ta = malloc(sizeof(float) * S * S * 3), *tb = malloc(sizeof(float) * S * S * 3);
    float xa[4], xb[4];
    assert_int_equal(ts_photo_tensor(ctx, a, S, S, -1, 1, ta, xa), TS_OK);
    assert_int_equal(ts_photo_tensor(ctx, b, S, S, -1, 1, tb, xb), TS_OK);
    int best = 0;
    for (int i = 0; i < S * S; i++)
        if (ta[i * 3] - ta[i * 3 + 1] > ta[best * 3] - ta[best * 3 + 1]) best = i;
    float px_x = (best % S + 0.5f) * xa[0] + xa[1], px_y = (best / S + 0.5f) * xa[2] + xa[3];
    assert_true(abs((int)px_x - dx) <= 2 && abs((int)px_y - dy) <= 2);
    /* Letterbox rows are zero, i.e. the middle of [-1, 1]. */
    assert_float_equal(ta[0], 0.f, 1e-6);
    double diff = 0;
    for (int i = 0; i < S * S * 3; i++) diff += fabsf(ta[i] - tb[i]);
    assert_true(diff / (S * S * 3) < 0.02); /* JPEG vs PNG; a wrong rotation is ~0.05+ */
    for (int k = 0; k < 4; k++) assert_float_equal(xa[k], xb[k], 1e-4);
    free(ta);
    free(tb);
    ts_photo_unref(a);
    ts_photo_unref(b);
    ts_ctx_free(ctx);
}

int main(void) {
    if (VIPS_INIT("test_api")) return 1;
    snprintf(tmp, sizeof tmp, "/tmp/ts-api-XXXXXX");
    if (!mkdtemp(tmp)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_options_and_status),
        cmocka_unit_test(t_photo_errors),
        cmocka_unit_test(t_tensor_mapping_and_orientation),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) rc = 1;
    return rc;
}
