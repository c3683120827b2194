/* Face detection on the development photos ($TRUESHOT_CACHE/photos): the number of faces per
 * photo, and that boxes follow known transforms of the photo (mirror, half size). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/internal.h"
#include "face/face.h"

#define CAP 64

static char cache[1024], tmpdir[256];

/* Expected faces per development photo. Where the count differs from the number of people in the
 * picture, the comment says why; these are what the two MediaPipe detectors can reach. */
static const struct {
    const char *photo;
    int faces;
} expected[] = {
    {"astronaut.png", 1},
    {"grace_hopper.jpg", 1},
    {"messi5.jpg", 1}, /* one small face (32 px in a 548 px photo), found by full range only */
    {"baboon.jpg", 0}, /* a mandrill: no human face, and none reported */
    {"camera.png", 1}, /* the cameraman, face partly hidden by the camera: full range finds it */
    /* Two people: on the left a man facing the camera whose face is about 35 px in a 640 px
     * photo, about 10 px of the full-range model's 192 px input, below what it resolves (cropped
     * to 200x200 around him, it finds him at 0.77); on the right a man seen from behind and the
     * side, with no face visible. Neither detector finds either on the whole photo. */
    {"basketball1.png", 0},
    {"faceapi_sample1.jpg", 3},
    /* Three women; the one in the middle looks steeply down (score 0.62): found only by the
     * passes on the mirrored input, neither model finds her on the photo as it is. */
    {"faceapi_sample2.jpg", 3},
    {"faceapi_sample3.jpg", 3},
    {"faceapi_sample4.jpg", 4},
    {"faceapi_sample5.jpg", 5},
    {"faceapi_sample6.jpg", 4},
    {"franck_01829.jpg", 1},
    {"franck_02045.jpg", 1},
    {"franck_02159.jpg", 1},
    {"franck_02221.jpg", 1},
    {"franck_02683.jpg", 1},
    {"franck_02888.jpg", 1},
    {"franck_03909.jpg", 1},
    {"franck_03979.jpg", 1},
    {"franck_04000.jpg", 1},
    {"franck_04035.jpg", 1},
    {"franck_04117.jpg", 1},
};
#define NPHOTOS (int)(sizeof expected / sizeof expected[0])

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int detect_path(ts_ctx *ctx, const char *path, ts_face_box *f, int *w, int *h) {
    ts_photo *p;
    assert_int_equal(ts_photo_open(ctx, path, &p), TS_OK);
    int n = -1;
    assert_int_equal(ts_face_detect(ctx, p, f, CAP, &n), TS_OK);
    if (w) *w = ts_photo_width(p);
    if (h) *h = ts_photo_height(p);
    ts_photo_unref(p);
    return n;
}

static void photo_path(char *buf, size_t len, const char *photo) {
    snprintf(buf, len, "%s/photos/%s", cache, photo);
}

/* Counts per photo, sorted scores, keypoints inside boxes, a subject; prints the time taken. */
static void t_counts(void **state) {
    (void)state;
    ts_ctx *ctx;
    assert_int_equal(ts_ctx_new(NULL, &ctx), TS_OK);
    ts_face_box f[CAP];
    char path[1200];
    int bad = 0;
    /* Load both models first, so the times below are of detection alone. */
    photo_path(path, sizeof path, expected[0].photo);
    detect_path(ctx, path, f, NULL, NULL);
    for (int i = 0; i < NPHOTOS; i++) {
        photo_path(path, sizeof path, expected[i].photo);
        double best = 1e9;
        int n = 0, w = 0, h = 0;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = now_ms();
            n = detect_path(ctx, path, f, &w, &h);
            best = fmin(best, now_ms() - t0);
        }
        print_message("%-22s %4dx%-4d %d face%s (expected %d)  %.1f ms\n", expected[i].photo, w, h,
                      n, n == 1 ? " " : "s", expected[i].faces, best);
        if (n != expected[i].faces) bad++;
        for (int k = 0; k < n; k++) {
            if (k) assert_true(f[k].score <= f[k - 1].score);
            assert_true(f[k].score >= 0.5f && f[k].score <= 1.f);
            assert_true(f[k].w > 0 && f[k].h > 0);
            for (int j = 0; j < 6; j++) {
                /* Eyes, nose and mouth strictly inside; the ears (tragion) sit on the box's side
                 * edges by design, so they may stand out: by up to 25% of the face width (12% seen,
                 * camera.png). */
                float m = j < 4 ? 0 : 0.25f * f[k].w;
                bool in = f[k].kp[j][0] >= f[k].x - m && f[k].kp[j][0] <= f[k].x + f[k].w + m &&
                          f[k].kp[j][1] >= f[k].y - m && f[k].kp[j][1] <= f[k].y + f[k].h + m;
                if (!in)
                    print_message("  %s face %d keypoint %d (%.0f,%.0f) outside box %.0f,%.0f "
                                  "%.0fx%.0f\n",
                                  expected[i].photo, k, j, f[k].kp[j][0], f[k].kp[j][1], f[k].x,
                                  f[k].y, f[k].w, f[k].h);
                assert_true(in);
            }
        }
        int s = ts_face_subject(f, n, w, h);
        assert_true(n ? s >= 0 && s < n : s == -1);
    }
    assert_int_equal(bad, 0);
    ts_ctx_free(ctx);
}

/* Matches each face of a (by position) to the nearest of b after mapping a through
 * x' = sx * x + ox (mirror: sx = -1, ox = W) and y' = s * y; returns the largest error over the
 * boxes' edges in units of the face width. */
static double compare(const ts_face_box *a, int na, const ts_face_box *b, int nb, float sx,
                      float ox, float s, float min_score) {
    double worst = 0;
    for (int i = 0; i < na; i++) {
        if (a[i].score < min_score || (min_score > 0 && a[i].w < 64)) continue;
        float x0 = sx * a[i].x + ox, x1 = sx * (a[i].x + a[i].w) + ox;
        float ex = fminf(x0, x1), ey = s * a[i].y, ew = fabsf(x1 - x0), eh = s * a[i].h;
        double best = 1e9;
        for (int j = 0; j < nb; j++) {
            double e = fmax(fmax(fabs(b[j].x - ex), fabs(b[j].y - ey)),
                            fmax(fabs(b[j].x + b[j].w - ex - ew), fabs(b[j].y + b[j].h - ey - eh)));
            best = fmin(best, e / ew);
        }
        worst = fmax(worst, best);
    }
    return worst;
}

/* The development photo's pixels (EXIF orientation applied), a new image. */
static VipsImage *photo_image(const char *photo) {
    char path[1200];
    photo_path(path, sizeof path, photo);
    VipsImage *im = vips_image_new_from_file(path, NULL), *rot = NULL;
    assert_non_null(im);
    assert_int_equal(vips_autorot(im, &rot, NULL), 0);
    g_object_unref(im);
    return rot;
}

/* Writes t (taken) to tmpdir/name and detects on that file. */
static int detect_written(ts_ctx *ctx, VipsImage *t, const char *name, ts_face_box *f) {
    char out[600];
    snprintf(out, sizeof out, "%s/%s", tmpdir, name);
    assert_int_equal(vips_image_write_to_file(t, out, NULL), 0);
    g_object_unref(t);
    return detect_path(ctx, out, f, NULL, NULL);
}

/* Writes a transformed copy of photo (EXIF orientation applied first) and detects on it. */
static int detect_transformed(ts_ctx *ctx, const char *photo, bool mirror, double scale,
                              ts_face_box *f) {
    char name[300];
    VipsImage *rot = photo_image(photo), *t = NULL;
    if (mirror)
        assert_int_equal(vips_flip(rot, &t, VIPS_DIRECTION_HORIZONTAL, NULL), 0);
    else
        assert_int_equal(vips_resize(rot, &t, scale, NULL), 0);
    g_object_unref(rot);
    snprintf(name, sizeof name, "%s-%s.png", mirror ? "mirror" : "half", photo);
    return detect_written(ctx, t, name, f);
}

static void t_transforms(void **state) {
    (void)state;
    ts_ctx *ctx;
    assert_int_equal(ts_ctx_new(NULL, &ctx), TS_OK);
    ts_face_box a[CAP], b[CAP];
    char path[1200];
    double worst_m = 0, worst_h = 0;
    for (int i = 0; i < NPHOTOS; i++) {
        if (!expected[i].faces) continue;
        photo_path(path, sizeof path, expected[i].photo);
        int w, h, na = detect_path(ctx, path, a, &w, &h);
        int nb = detect_transformed(ctx, expected[i].photo, true, 1, b);
        double em = compare(a, na, b, nb, -1, (float)w, 1, 0.75f);
        int nc = detect_transformed(ctx, expected[i].photo, false, 0.5, b + nb);
        double eh = compare(a, na, b + nb, nc, 0.5f, 0, 0.5f, 0.75f);
        double em_all = compare(a, na, b, nb, -1, (float)w, 1, 0);
        double eh_all = compare(a, na, b + nb, nc, 0.5f, 0, 0.5f, 0);
        print_message("%-22s all faces: mirrored %.2f%%, half size %.2f%%\n", expected[i].photo,
                      100 * em_all, 100 * eh_all);
        assert_true(em_all <= 0.10 && eh_all <= 0.10);
        print_message("%-22s mirrored: %d faces, box error %.2f%%; half size: %d faces, %.2f%% of "
                      "face width\n",
                      expected[i].photo, nb, 100 * em, nc, 100 * eh);
        assert_int_equal(nb, na);
        assert_int_equal(nc, na);
        worst_m = fmax(worst_m, em), worst_h = fmax(worst_h, eh);
    }
    print_message("worst: mirrored %.2f%%, half size %.2f%% of face width\n", 100 * worst_m,
                  100 * worst_h);
    /* Confident (score >= 0.75), not tiny (>= 64 px) faces. The originals are JPEGs, decoded for
     * analysis by DCT-domain shrink-on-load; the transformed copies are PNGs, shrunk by libvips'
     * resampler, so the detector sees slightly different pixels. Achieved: mirror and half size
     * 2.4% worst (faceapi_sample6.jpg, faces ~20 px in the 192-px detector input: half a pixel
     * there), under 0.6% on every other photo. All faces, small and weak ones included: within
     * 10% (messi5.jpg's 32 px face, 16 px at half size; the weak middle face of
     * faceapi_sample2.jpg). */
    assert_true(worst_m <= 0.03);
    assert_true(worst_h <= 0.03);
    ts_ctx_free(ctx);
}

/* grace_hopper placed at (x, y) on a flat W x H grey photo, written to a PNG; the faces found. */
static int detect_placed(ts_ctx *ctx, int W, int H, int x, int y, ts_face_box *f) {
    char name[64];
    VipsImage *im = photo_image("grace_hopper.jpg"), *big = NULL;
    double grey[3] = {96, 104, 112};
    VipsArrayDouble *bg = vips_array_double_new(grey, 3);
    assert_int_equal(
        vips_embed(im, &big, x, y, W, H, "extend", VIPS_EXTEND_BACKGROUND, "background", bg, NULL),
        0);
    vips_area_unref(VIPS_AREA(bg));
    g_object_unref(im);
    snprintf(name, sizeof name, "placed-%dx%d.png", W, H);
    return detect_written(ctx, big, name, f);
}

/* A face too small for the detectors' view of the whole photo is found by the search over its
 * parts (detect.c, TILE_FROM): grace_hopper's face (about 200 px wide, found whole in her own
 * photo) in 6000 x 800, 800 x 6000 and 4000 x 3000 grey photos, where the whole-photo pass
 * alone finds nothing (this test fails on the build before the search: no face in each). Found
 * once, its box where her face was placed. */
static void t_small_in_large(void **state) {
    (void)state;
    ts_ctx *ctx;
    assert_int_equal(ts_ctx_new(NULL, &ctx), TS_OK);
    ts_face_box own[CAP], f[CAP];
    char path[1200];
    photo_path(path, sizeof path, "grace_hopper.jpg");
    assert_int_equal(detect_path(ctx, path, own, NULL, NULL), 1);
    static const int at[][4] = {
        {6000, 800, 2000, 100}, {800, 6000, 100, 3500}, {4000, 3000, 2500, 1800}};
    for (int k = 0; k < 3; k++) {
        int n = detect_placed(ctx, at[k][0], at[k][1], at[k][2], at[k][3], f);
        print_message("%dx%d: %d face(s)", at[k][0], at[k][1], n);
        for (int i = 0; i < n; i++)
            print_message(" [%.0f,%.0f %.0fx%.0f %.2f]", f[i].x, f[i].y, f[i].w, f[i].h,
                          f[i].score);
        assert_int_equal(n, 1);
        double cx = f[0].x + f[0].w / 2 - (own[0].x + own[0].w / 2 + at[k][2]);
        double cy = f[0].y + f[0].h / 2 - (own[0].y + own[0].h / 2 + at[k][3]);
        print_message(", centre off by %.1f, %.1f px, width %.0f (own %.0f)\n", cx, cy, f[0].w,
                      own[0].w);
        assert_true(hypot(cx, cy) < 0.25 * own[0].w);
        assert_true(f[0].w > 0.6 * own[0].w && f[0].w < 1.5 * own[0].w);
    }
    ts_ctx_free(ctx);
}

/* The subject rule: larger wins; at equal size, the more central wins. */
static void t_subject(void **state) {
    (void)state;
    ts_face_box f[3] = {{.x = 0, .y = 0, .w = 100, .h = 100},
                        {.x = 450, .y = 450, .w = 100, .h = 100},
                        {.x = 850, .y = 0, .w = 150, .h = 150}};
    assert_int_equal(ts_face_subject(f, 2, 1000, 1000), 1);
    /* A corner face 1.5x wider does not beat a central one ... */
    assert_int_equal(ts_face_subject(f, 3, 1000, 1000), 1);
    /* ... but 2.2x wider does. */
    f[2].w = f[2].h = 220;
    f[2].x = 780;
    assert_int_equal(ts_face_subject(f, 3, 1000, 1000), 2);
    assert_int_equal(ts_face_subject(f, 0, 1000, 1000), -1);
}

int main(void) {
    const char *c = getenv("TRUESHOT_CACHE"), *home = getenv("HOME");
    if (c && *c)
        snprintf(cache, sizeof cache, "%s", c);
    else
        snprintf(cache, sizeof cache, "%s/.cache/trueshot", home ? home : ".");
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ts-facedet-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    if (ts_vips_init() != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_subject),
        cmocka_unit_test(t_counts),
        cmocka_unit_test(t_transforms),
        cmocka_unit_test(t_small_in_large),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    (void)system(cmd);
    return rc;
}
