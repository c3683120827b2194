/* The 478-point mesh follows the image: rotating a photo by a known angle turns the measured
 * roll by that angle and moves every landmark with the pixels; cropping and scaling move the
 * landmarks with the image; an EXIF orientation tag gives the landmarks of the physically
 * rotated image. Displacements are measured in units of the inter-eye distance (IED). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/internal.h"
#include "face/geometry.h"
#include "face/mesh.h"
#include "face/pose.h"

static char cache[1024], tmp[64];
static const char *photos[] = {"grace_hopper.jpg", "franck_02159.jpg", "astronaut.png"};

static void mesh_of(const char *path, ts_face_mesh *m) {
    ts_ctx *ctx;
    assert_int_equal(ts_ctx_new(NULL, &ctx), TS_OK);
    ts_photo *p;
    if (ts_photo_open(ctx, path, &p)) fail_msg("%s", ts_ctx_error(ctx));
    ts_face_box faces[8];
    int n = 0;
    if (ts_face_detect(ctx, p, faces, 8, &n)) fail_msg("%s", ts_ctx_error(ctx));
    if (n < 1) fail_msg("%s: no face", path);
    int best = 0;
    for (int i = 1; i < n; i++)
        if (faces[i].w * faces[i].h > faces[best].w * faces[best].h) best = i;
    if (ts_face_mesh_compute(ctx, p, &faces[best], m)) fail_msg("%s", ts_ctx_error(ctx));
    assert_true(m->presence > 0.9f);
    ts_photo_unref(p);
    ts_ctx_free(ctx);
}

/* Iris centres 468 and 473. */
static double ied(const ts_face_mesh *m) {
    return hypot(m->pts[468][0] - m->pts[473][0], m->pts[468][1] - m->pts[473][1]);
}

static double roll_deg(const ts_face_mesh *m) {
    return atan2(m->pts[263][1] - m->pts[33][1], m->pts[263][0] - m->pts[33][0]) * 180 / M_PI;
}

/* Mean and max distance between m (on the transformed image) and ref mapped by x' = A x + o. */
static void displacement(const ts_face_mesh *ref, const ts_face_mesh *m, const double A[4],
                         const double o[2], double *mean, double *max) {
    double sum = 0, mx = 0;
    for (int i = 0; i < TS_MESH_POINTS; i++) {
        double x = A[0] * ref->pts[i][0] + A[1] * ref->pts[i][1] + o[0];
        double y = A[2] * ref->pts[i][0] + A[3] * ref->pts[i][1] + o[1];
        double d = hypot(m->pts[i][0] - x, m->pts[i][1] - y);
        sum += d;
        mx = d > mx ? d : mx;
    }
    *mean = sum / TS_MESH_POINTS;
    *max = mx;
}

static VipsImage *load(const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/photos/%s", cache, name);
    VipsImage *im = vips_image_new_from_file(path, NULL);
    if (!im) fail_msg("cannot load %s", path);
    return im;
}

static void save_png(VipsImage *im, const char *path) {
    if (vips_pngsave(im, path, "compression", 1, NULL)) fail_msg("%s", vips_error_buffer());
}

static void t_rotation(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof photos / sizeof photos[0]; k++) {
        VipsImage *im = load(photos[k]);
        char a[128], b[128];
        snprintf(a, sizeof a, "%s/orig.png", tmp);
        save_png(im, a);
        ts_face_mesh m0, m1;
        mesh_of(a, &m0);
        double e = ied(&m0);
        const double angles[] = {15, -25};
        for (int j = 0; j < 2; j++) {
            /* Rotate about the image centre (clockwise on screen for positive angles), same
             * canvas: x' = R (x - c) + c, written for pixel centres. */
            double t = angles[j] * M_PI / 180, c = cos(t), s = sin(t);
            double cx = im->Xsize / 2.0, cy = im->Ysize / 2.0;
            double A[4] = {c, -s, s, c}, o[2] = {cx - (c * cx - s * cy), cy - (s * cx + c * cy)};
            VipsImage *rot;
            VipsArrayInt *area = vips_array_int_newv(4, 0, 0, im->Xsize, im->Ysize);
            /* vips samples at pixel corners: shift by half a pixel in and out. */
            int r = vips_affine(im, &rot, A[0], A[1], A[2], A[3], "oarea", area, "odx",
                                o[0] + 0.5 * (A[0] + A[1]) - 0.5, "ody",
                                o[1] + 0.5 * (A[2] + A[3]) - 0.5, "interpolate",
                                vips_interpolate_bilinear_static(), NULL);
            vips_area_unref(VIPS_AREA(area));
            assert_int_equal(r, 0);
            snprintf(b, sizeof b, "%s/rot.png", tmp);
            save_png(rot, b);
            g_object_unref(rot);
            mesh_of(b, &m1);
            double droll = roll_deg(&m1) - roll_deg(&m0), mean, max;
            displacement(&m0, &m1, A, o, &mean, &max);
            printf("rotation %-18s %+5.0f deg: roll changed %+6.2f deg; landmarks mean %.3f max "
                   "%.3f IED (IED %.1f px)\n",
                   photos[k], angles[j], droll, mean / e, max / e, e);
            assert_true(fabs(droll - angles[j]) <= 2.0);
        }
        g_object_unref(im);
    }
}

static void t_crop_scale(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof photos / sizeof photos[0]; k++) {
        VipsImage *im = load(photos[k]), *crop, *small;
        char a[128], b[128];
        snprintf(a, sizeof a, "%s/orig.png", tmp);
        save_png(im, a);
        ts_face_mesh m0, m1;
        mesh_of(a, &m0);
        double e = ied(&m0);
        /* Crop a margin off the top-left, keeping the face, then scale by 0.75. */
        int ox = (int)fmax(0, fmin(m0.roi.cx - m0.roi.size, im->Xsize / 8.0));
        int oy = (int)fmax(0, fmin(m0.roi.cy - m0.roi.size, im->Ysize / 8.0));
        assert_int_equal(vips_extract_area(im, &crop, ox, oy, im->Xsize - ox, im->Ysize - oy, NULL),
                         0);
        double sc = 0.75;
        assert_int_equal(vips_resize(crop, &small, sc, NULL), 0);
        snprintf(b, sizeof b, "%s/crop.png", tmp);
        save_png(small, b);
        double fx = (double)small->Xsize / crop->Xsize, fy = (double)small->Ysize / crop->Ysize;
        mesh_of(b, &m1);
        /* Pixel centres scale: x' + 0.5 = (x - ox + 0.5) f. */
        double A[4] = {fx, 0, 0, fy}, o[2] = {(-ox + 0.5) * fx - 0.5, (-oy + 0.5) * fy - 0.5};
        double mean, max;
        displacement(&m0, &m1, A, o, &mean, &max);
        /* Compare in the transformed image's IED. */
        double e1 = e * sc;
        printf("crop+scale %-18s: landmarks mean %.4f max %.4f IED\n", photos[k], mean / e1,
               max / e1);
        assert_true(mean / e1 <= 0.01);
        g_object_unref(small);
        g_object_unref(crop);
        g_object_unref(im);
    }
}

static void t_exif(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof photos / sizeof photos[0]; k++) {
        VipsImage *im = load(photos[k]), *rot, *tagged;
        char a[128], b[128];
        snprintf(a, sizeof a, "%s/orig.png", tmp);
        snprintf(b, sizeof b, "%s/tagged.jpg", tmp);
        save_png(im, a);
        /* Stored turned 90 degrees anticlockwise and tagged 6 ("rotate 90 clockwise"). */
        assert_int_equal(vips_rot(im, &rot, VIPS_ANGLE_D270, NULL), 0);
        assert_int_equal(vips_copy(rot, &tagged, NULL), 0);
        vips_image_set_int(tagged, VIPS_META_ORIENTATION, 6);
        assert_int_equal(
            vips_jpegsave(tagged, b, "Q", 100, "subsample_mode", VIPS_FOREIGN_SUBSAMPLE_OFF, NULL),
            0);
        ts_face_mesh m0, m1;
        mesh_of(a, &m0);
        mesh_of(b, &m1);
        double A[4] = {1, 0, 0, 1}, o[2] = {0, 0}, mean, max;
        displacement(&m0, &m1, A, o, &mean, &max);
        printf("exif %-18s: landmarks mean %.4f max %.4f IED\n", photos[k], mean / ied(&m0),
               max / ied(&m0));
        assert_true(mean / ied(&m0) <= 0.01);
        g_object_unref(tagged);
        g_object_unref(rot);
        g_object_unref(im);
    }
}

static void pose_of(const char *path, ts_pose *pose) {
    ts_face_mesh m;
    mesh_of(path, &m);
    char gpath[1200], err[300];
    snprintf(gpath, sizeof gpath, "%s/models/geometry_pipeline_metadata_landmarks.binarypb", cache);
    ts_geom g;
    if (ts_geom_load(gpath, &g, err, sizeof err)) fail_msg("%s", err);
    if (ts_pose_fit(&g, (const float(*)[3])m.pts, TS_MESH_POINTS, pose, err, sizeof err))
        fail_msg("%s", err);
    ts_geom_free(&g);
}

/* Head pose on real photos: a mirror image negates yaw (and roll); turning the photo by a
 * known angle adds that angle to roll; pitch stays. */
static void t_pose(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof photos / sizeof photos[0]; k++) {
        VipsImage *im = load(photos[k]), *flip, *rot;
        char a[128], b[128], c[128];
        snprintf(a, sizeof a, "%s/orig.png", tmp);
        snprintf(b, sizeof b, "%s/flip.png", tmp);
        snprintf(c, sizeof c, "%s/rot.png", tmp);
        save_png(im, a);
        assert_int_equal(vips_flip(im, &flip, VIPS_DIRECTION_HORIZONTAL, NULL), 0);
        save_png(flip, b);
        assert_int_equal(vips_similarity(im, &rot, "angle", 20.0, NULL), 0);
        save_png(rot, c);
        ts_pose p0, pf, pr;
        pose_of(a, &p0);
        pose_of(b, &pf);
        pose_of(c, &pr);
        printf("pose %-18s yaw %+6.2f pitch %+6.2f roll %+6.2f | mirrored yaw %+6.2f roll "
               "%+6.2f | turned 20: roll %+6.2f pitch %+6.2f\n",
               photos[k], p0.yaw, p0.pitch, p0.roll, pf.yaw, pf.roll, pr.roll, pr.pitch);
        assert_true(fabs(pf.yaw + p0.yaw) <= 2.0);
        assert_true(fabs(pf.roll + p0.roll) <= 2.0);
        assert_true(fabs(pr.roll - p0.roll - 20.0) <= 2.0);
        assert_true(fabs(pr.pitch - p0.pitch) <= 2.0);
        g_object_unref(rot);
        g_object_unref(flip);
        g_object_unref(im);
    }
}

int main(void) {
    const char *c = getenv("TRUESHOT_CACHE"), *home = getenv("HOME");
    snprintf(cache, sizeof cache, "%s", c && *c ? c : "");
    if (!cache[0]) snprintf(cache, sizeof cache, "%s/.cache/trueshot", home ? home : ".");
    if (VIPS_INIT("test_face_mesh")) return 1;
    snprintf(tmp, sizeof tmp, "/tmp/ts-mesh-XXXXXX");
    if (!mkdtemp(tmp)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_rotation),
        cmocka_unit_test(t_crop_scale),
        cmocka_unit_test(t_exif),
        cmocka_unit_test(t_pose),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) rc = 1;
    return rc;
}
