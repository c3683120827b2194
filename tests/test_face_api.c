/* The public face-analysis calls: results cached on the photo, no face reported as such, and a
 * 60-MP photo analysed within the memory budget (DESIGN.md: 400 MB peak). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>
#include <vips/vips.h>

#include "common.h"
#include "core/internal.h"
#include "face/mesh.h"
#include "trueshot.h"

static double peak_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

static void t_cached_and_consistent(void **state) {
    (void)state;
    ts_ctx *ctx;
    assert_int_equal(ts_ctx_new(NULL, &ctx), TS_OK);
    ts_photo *p;
    assert_int_equal(ts_photo_open(ctx, ts_test_photo("grace_hopper.jpg"), &p), TS_OK);
    const ts_face *f1, *f2;
    int n1, n2;
    assert_int_equal(ts_photo_faces(ctx, p, &f1, &n1), TS_OK);
    assert_int_equal(n1, 1);
    assert_int_equal(ts_photo_faces(ctx, p, &f2, &n2), TS_OK);
    assert_ptr_equal(f1, f2); /* computed once */
    const ts_face_analysis *a, *b;
    assert_int_equal(ts_photo_subject(ctx, p, &a), TS_OK);
    assert_int_equal(ts_photo_subject(ctx, p, &b), TS_OK);
    assert_ptr_equal(a, b);
    assert_int_equal(a->face, 0);
    /* The irises lie inside the detector's box, the inter-eye distance matches them. */
    for (int e = 0; e < 2; e++) {
        assert_true(a->irises[e].x > f1->x && a->irises[e].x < f1->x + f1->w);
        assert_true(a->irises[e].y > f1->y && a->irises[e].y < f1->y + f1->h);
    }
    assert_float_equal(a->inter_eye_px,
                       hypotf(a->irises[0].x - a->irises[1].x, a->irises[0].y - a->irises[1].y),
                       1e-3);
    assert_true(a->presence > 0.9f && fabsf(a->yaw) < 15 && fabsf(a->roll) < 10);
    ts_photo_unref(p);
    ts_ctx_free(ctx);
}

static void t_no_face(void **state) {
    (void)state;
    ts_ctx *ctx;
    assert_int_equal(ts_ctx_new(NULL, &ctx), TS_OK);
    ts_photo *p;
    assert_int_equal(ts_photo_open(ctx, ts_test_photo("baboon.jpg"), &p), TS_OK);
    const ts_face *f;
    int n = -1;
    assert_int_equal(ts_photo_faces(ctx, p, &f, &n), TS_OK);
    assert_int_equal(n, 0);
    const ts_face_analysis *a = NULL;
    assert_int_equal(ts_photo_subject(ctx, p, &a), TS_ERR_NO_FACE);
    assert_null(a);
    assert_non_null(strstr(ts_ctx_error(ctx), "no face"));
    /* Asked again: the same answer, from the cache. */
    assert_int_equal(ts_photo_subject(ctx, p, &a), TS_ERR_NO_FACE);
    assert_non_null(strstr(ts_ctx_error(ctx), "no face"));
    ts_photo_unref(p);
    ts_ctx_free(ctx);
}

/* A photo turned upside down (written as a lossless PNG of the upright one turned by 180
 * degrees) is read turned back: ts_photo_turn says so, its faces and landmarks are those of the
 * upright photo, and so are its pixels (the tensor the detectors see). Upright photos, a photo
 * turned on its side (the mesh levels a quarter turn by itself) and a photo of small faces that
 * scores low are left as they are. */
static void t_upside_down(void **state) {
    (void)state;
    char dir[] = "/tmp/ts-turn-XXXXXX", path[64], side[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/down.png", dir);
    snprintf(side, sizeof side, "%s/side.png", dir);
    VipsImage *src = vips_image_new_from_file(ts_test_photo("grace_hopper.jpg"), NULL), *t;
    assert_non_null(src);
    assert_int_equal(vips_rot(src, &t, VIPS_ANGLE_D180, NULL), 0);
    assert_int_equal(vips_pngsave(t, path, NULL), 0);
    g_object_unref(t);
    assert_int_equal(vips_rot(src, &t, VIPS_ANGLE_D90, NULL), 0);
    assert_int_equal(vips_pngsave(t, side, NULL), 0);
    g_object_unref(t);
    g_object_unref(src);
    ts_ctx *ctx;
    assert_int_equal(ts_ctx_new(NULL, &ctx), TS_OK);
    ts_photo *up, *down, *p;
    assert_int_equal(ts_photo_open(ctx, ts_test_photo("grace_hopper.jpg"), &up), TS_OK);
    assert_int_equal(ts_photo_open(ctx, path, &down), TS_OK);
    const ts_face_analysis *a, *b;
    assert_int_equal(ts_photo_subject(ctx, up, &a), TS_OK);
    assert_int_equal(ts_photo_turn(down), 0); /* not known before the faces are looked for */
    assert_int_equal(ts_photo_subject(ctx, down, &b), TS_OK);
    assert_int_equal(ts_photo_turn(up), 0);
    assert_int_equal(ts_photo_turn(down), 180);
    double worst = 0;
    for (int i = 0; i < TS_LANDMARKS; i++)
        worst = fmax(worst, hypot(a->landmarks[i][0] - b->landmarks[i][0],
                                  a->landmarks[i][1] - b->landmarks[i][1]));
    printf("upside down: landmarks within %.4f px of the upright photo's\n", worst);
    assert_true(worst < 0.01);
    assert_true(b->presence > 0.9f && fabsf(b->roll) < 10);
    float *t1 = malloc(sizeof(float) * 128 * 128 * 3), *t2 = malloc(sizeof(float) * 128 * 128 * 3);
    assert_non_null(t1);
    assert_non_null(t2);
    assert_int_equal(ts_photo_tensor(ctx, up, 128, 128, 0, 1, t1, NULL), TS_OK);
    assert_int_equal(ts_photo_tensor(ctx, down, 128, 128, 0, 1, t2, NULL), TS_OK);
    assert_memory_equal(t1, t2, sizeof(float) * 128 * 128 * 3);
    free(t1), free(t2);
    ts_photo_unref(up);
    ts_photo_unref(down);
    /* a photo said to be upright (the studio's webcam frames) is not tried the other way up */
    assert_int_equal(ts_photo_open(ctx, path, &down), TS_OK);
    ts_photo_known_upright(down);
    const ts_face *fd;
    int nd;
    assert_int_equal(ts_photo_faces(ctx, down, &fd, &nd), TS_OK);
    assert_int_equal(ts_photo_turn(down), 0);
    ts_photo_unref(down);
    /* left as they are */
    const char *as_is[] = {side, ts_test_photo("messi5.jpg"), ts_test_photo("faceapi_sample2.jpg"),
                           ts_test_photo("franck_02159.jpg")};
    for (size_t k = 0; k < sizeof as_is / sizeof as_is[0]; k++) {
        assert_int_equal(ts_photo_open(ctx, as_is[k], &p), TS_OK);
        const ts_face *f;
        int n;
        assert_int_equal(ts_photo_faces(ctx, p, &f, &n), TS_OK);
        assert_true(n > 0);
        assert_int_equal(ts_photo_turn(p), 0);
        ts_photo_unref(p);
    }
    /* a group upside down, and messi5's small faces (0.77 the right way up) */
    const char *groups[] = {"faceapi_sample1.jpg", "messi5.jpg"};
    for (size_t k = 0; k < 2; k++) {
        VipsImage *g = vips_image_new_from_file(ts_test_photo(groups[k]), NULL);
        assert_non_null(g);
        assert_int_equal(vips_rot(g, &t, VIPS_ANGLE_D180, NULL), 0);
        assert_int_equal(vips_pngsave(t, path, NULL), 0);
        g_object_unref(t), g_object_unref(g);
        assert_int_equal(ts_photo_open(ctx, path, &p), TS_OK);
        const ts_face *f;
        int n;
        assert_int_equal(ts_photo_faces(ctx, p, &f, &n), TS_OK);
        print_message("%s upside down: %d faces, turned %d\n", groups[k], n, ts_photo_turn(p));
        assert_true(n > 0);
        assert_int_equal(ts_photo_turn(p), 180);
        ts_photo_unref(p);
    }
    ts_ctx_free(ctx);
    unlink(path), unlink(side);
    rmdir(dir);
}

static void t_60mp_memory(void **state) {
    (void)state;
    char dir[] = "/tmp/ts-60mp-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/60mp.jpg", dir);
    /* A real photo upscaled to 9000 x 7200 (64.8 MP), streamed to disk by libvips. */
    VipsImage *src = vips_image_new_from_file(ts_test_photo("franck_02159.jpg"), NULL), *big;
    assert_non_null(src);
    assert_int_equal(vips_resize(src, &big, 12.5, NULL), 0);
    assert_int_equal(vips_jpegsave(big, path, "Q", 85, NULL), 0);
    g_object_unref(big);
    g_object_unref(src);
    double before = peak_mb();
    ts_ctx *ctx;
    assert_int_equal(ts_ctx_new(NULL, &ctx), TS_OK);
    ts_photo *p;
    assert_int_equal(ts_photo_open(ctx, path, &p), TS_OK);
    assert_int_equal(ts_photo_width(p), 9000);
    const ts_face_analysis *a;
    assert_int_equal(ts_photo_subject(ctx, p, &a), TS_OK);
    double after = peak_mb();
    printf("60-MP analysis: peak RSS %.0f MB (before %.0f MB), inter-eye %.0f px\n", after, before,
           a->inter_eye_px);
    assert_true(after < 400.0);
    assert_true(a->inter_eye_px > 1000);
    ts_photo_unref(p);
    ts_ctx_free(ctx);
    unlink(path);
    rmdir(dir);
}

/* The 12-MP benchmark photo (franck_02159.jpg enlarged 5.6x, 4032 x 3226, as bench_make makes
 * it), in memory; the caller unrefs it. */
static VipsImage *twelve_mp(void) {
    VipsImage *src = vips_image_new_from_file(ts_test_photo("franck_02159.jpg"), NULL), *big = NULL;
    assert_non_null(src);
    assert_int_equal(vips_resize(src, &big, 5.6, NULL), 0);
    g_object_unref(src);
    return big;
}

/* A photo opened shrunk for rendering (ts_photo_open_shrunk) takes the analysis made on the
 * file (ts_photo_adopt_analysis) instead of analysing the same pixels again: what it adopts is
 * what it would have measured itself, to the float's rounding of the scaling, and a shrink
 * whose analysis copy is another decode (1/8 of a 4032-px photo: a 504-px copy, not 1008) is
 * analysed afresh. */
static void t_adopt_analysis(void **state) {
    (void)state;
    char dir[256], path[300];
    assert_int_equal(ts_test_tmpdir(dir, sizeof dir, "adopt"), 0);
    snprintf(path, sizeof path, "%s/12mp.jpg", dir);
    VipsImage *big = twelve_mp();
    assert_int_equal(vips_jpegsave(big, path, "Q", 90, NULL), 0);
    g_object_unref(big);
    ts_ctx *ctx;
    assert_int_equal(ts_ctx_new(NULL, &ctx), TS_OK);
    ts_photo *orig, *adopted, *own, *tiny;
    assert_int_equal(ts_photo_open(ctx, path, &orig), TS_OK);
    assert_int_equal(ts_photo_open_shrunk(ctx, path, 2, &adopted), TS_OK);
    assert_int_equal(ts_photo_open_shrunk(ctx, path, 2, &own), TS_OK);
    assert_int_equal(ts_photo_open_shrunk(ctx, path, 8, &tiny), TS_OK);
    assert_int_equal(ts_photo_adopt_analysis(ctx, adopted, orig), 1);
    /* the copy itself shared, not decoded again */
    assert_ptr_equal(ts_photo_analysis(ctx, adopted, NULL), ts_photo_analysis(ctx, orig, NULL));
    assert_int_equal(ts_photo_adopt_analysis(ctx, adopted, orig), 0); /* analysed already */
    assert_int_equal(ts_photo_adopt_analysis(ctx, tiny, orig), 0);    /* another decode */
    const ts_face_analysis *a, *b;
    assert_int_equal(ts_photo_subject(ctx, adopted, &a), TS_OK);
    assert_int_equal(ts_photo_subject(ctx, own, &b), TS_OK);
    double worst = 0;
    for (int i = 0; i < TS_LANDMARKS; i++)
        for (int c = 0; c < 3; c++)
            worst = fmax(worst, fabs(a->landmarks[i][c] - b->landmarks[i][c]));
    print_message("  adopted against measured on the shrunk photo: landmarks within %.2g px, "
                  "inter-eye %.3f / %.3f px\n",
                  worst, a->inter_eye_px, b->inter_eye_px);
    assert_true(worst < 1e-3);
    assert_float_equal(a->inter_eye_px, b->inter_eye_px, 1e-3);
    assert_float_equal(a->yaw, b->yaw, 1e-4);
    ts_face_roi ra, rb;
    float sa, sb;
    assert_int_equal(ts_photo_subject_roi(ctx, adopted, &ra, &sa), TS_OK);
    assert_int_equal(ts_photo_subject_roi(ctx, own, &rb, &sb), TS_OK);
    assert_float_equal(ra.cx, rb.cx, 1e-3);
    assert_float_equal(ra.size, rb.size, 1e-3);
    assert_float_equal(sa, sb, 1e-6);
    const ts_face *fa, *fb;
    int na, nb;
    assert_int_equal(ts_photo_faces(ctx, adopted, &fa, &na), TS_OK);
    assert_int_equal(ts_photo_faces(ctx, own, &fb, &nb), TS_OK);
    assert_int_equal(na, nb);
    assert_float_equal(fa[0].x, fb[0].x, 1e-3);
    assert_float_equal(fa[0].w, fb[0].w, 1e-3);
    ts_photo_unref(orig), ts_photo_unref(adopted), ts_photo_unref(own), ts_photo_unref(tiny);
    ts_ctx_free(ctx);
    ts_test_rmdir(dir);
}

/* A JPEG whose sides do not divide by the shrink: the shrunk photo's size is its decode's
 * (libvips rounds down), so its decode holds every pixel the photo says it has (it said one
 * more row and column, and the matte's region reached past the decode: make failed with "the
 * decoded photo does not hold the region" on a 48-MP photo). */
static void t_shrunk_odd(void **state) {
    (void)state;
    char dir[256], path[300];
    assert_int_equal(ts_test_tmpdir(dir, sizeof dir, "odd"), 0);
    snprintf(path, sizeof path, "%s/odd.jpg", dir);
    VipsImage *big = twelve_mp(), *odd;
    assert_int_equal(vips_crop(big, &odd, 0, 0, 4031, 3025, NULL), 0);
    assert_int_equal(vips_jpegsave(odd, path, "Q", 85, NULL), 0);
    g_object_unref(odd), g_object_unref(big);
    ts_ctx *ctx;
    assert_int_equal(ts_ctx_new(NULL, &ctx), TS_OK);
    for (int k = 2; k <= 8; k *= 2) {
        ts_photo *p;
        assert_int_equal(ts_photo_open_shrunk(ctx, path, k, &p), TS_OK);
        VipsImage *full = ts_photo_full(ctx, p);
        assert_non_null(full);
        print_message("  1/%d: photo %dx%d, decode %dx%d\n", k, ts_photo_width(p),
                      ts_photo_height(p), full->Xsize, full->Ysize);
        assert_int_equal(full->Xsize, ts_photo_width(p));
        assert_int_equal(full->Ysize, ts_photo_height(p));
        ts_photo_unref(p);
    }
    ts_ctx_free(ctx);
    ts_test_rmdir(dir);
}

/* A large photo stored sideways with EXIF orientation 6, as a phone saves a photo taken held
 * upright: its full decode (whole and at half size) is the picture turned upright. The decode
 * read the file once, top to bottom, which a turned image cannot be read as: from a few MP it
 * failed with "out of order read", and make, matte and demo refused every such photo. */
static void t_turned_big(void **state) {
    (void)state;
    char dir[256], path[300];
    assert_int_equal(ts_test_tmpdir(dir, sizeof dir, "turned"), 0);
    snprintf(path, sizeof path, "%s/turned.jpg", dir);
    VipsImage *big = twelve_mp(), *side, *tagged;
    assert_int_equal(vips_rot(big, &side, VIPS_ANGLE_D270, NULL), 0);
    assert_int_equal(vips_copy(side, &tagged, NULL), 0);
    vips_image_set_int(tagged, "orientation", 6); /* turn 90 degrees clockwise to view */
    assert_int_equal(vips_jpegsave(tagged, path, "Q", 90, NULL), 0);
    ts_ctx *ctx;
    assert_int_equal(ts_ctx_new(NULL, &ctx), TS_OK);
    for (int k = 1; k <= 2; k++) {
        ts_photo *p;
        assert_int_equal(ts_photo_open_shrunk(ctx, path, k, &p), TS_OK);
        VipsImage *full = ts_photo_full(ctx, p);
        if (!full) fail_msg("1/%d: %s", k, ts_ctx_error(ctx));
        assert_int_equal(full->Xsize, ts_photo_width(p));
        assert_int_equal(full->Ysize, ts_photo_height(p));
        assert_int_equal(full->Xsize, 4032 / k);
        /* the picture upright: against the one it was made from, at the decode's size */
        VipsImage *ref = NULL, *d = NULL, *a = NULL;
        assert_int_equal(vips_resize(big, &ref, (double)full->Xsize / big->Xsize, "vscale",
                                     (double)full->Ysize / big->Ysize, NULL),
                         0);
        assert_int_equal(vips_subtract(full, ref, &d, NULL), 0);
        assert_int_equal(vips_abs(d, &a, NULL), 0);
        double mean;
        assert_int_equal(vips_avg(a, &mean, NULL), 0);
        print_message("  1/%d: %dx%d, mean difference from the upright picture %.2f levels\n", k,
                      full->Xsize, full->Ysize, mean);
        assert_true(mean < 3);
        g_object_unref(a), g_object_unref(d), g_object_unref(ref);
        ts_photo_unref(p);
    }
    g_object_unref(tagged), g_object_unref(side), g_object_unref(big);
    ts_ctx_free(ctx);
    ts_test_rmdir(dir);
}

int main(void) {
    if (VIPS_INIT("test_face_api")) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_cached_and_consistent),
        cmocka_unit_test(t_no_face),
        cmocka_unit_test(t_60mp_memory), /* (first of the big ones: it reads the process's peak) */
        cmocka_unit_test(t_upside_down),
        cmocka_unit_test(t_adopt_analysis),
        cmocka_unit_test(t_shrunk_odd),
        cmocka_unit_test(t_turned_big),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
