/* End-to-end cross-check of face_landmark_with_attention.tflite against face_landmark.tflite.
 *
 * Both models are trained for the same 468-point mesh, so on the same face crop their meshes must
 * agree closely. The attention model's refined lips, eyes and irises come out of the MediaPipe
 * custom ops (Landmarks2TransformMatrix, TransformTensorBilinear, TransformLandmarks) that our C
 * code runs, so comparing those refined points with the plain model's mesh at the mesh indices
 * MediaPipe merges them into checks the custom ops end to end, on real photos.
 *
 * Crop: the face detector's box gives a rough square; face_landmark.tflite on it gives 468
 * points, and the final square is 1.5x the larger side of their bounding box, centred on it
 * (close to what MediaPipe's face mesh graph does, without the rotation). The 192x192 crop, in
 * [0, 1], is fed to both models.
 *
 * Criteria (crop pixels, crop side 192):
 *   mean 2-D distance between the two meshes            <= 2% of 192
 *   mean distance of refined lips / each eye to the mesh  <= 2% of 192
 *   each iris centre inside the bounding box of its eye's refined contour (first 16 points). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/internal.h"
#include "face/face.h"
#include "face/mesh.h"
#include "nn/runtime.h"

#define CROP 192
#define N_MESH 468
#define TOL (0.02 * CROP)

static char cache[1024];

static const char *photos[] = {"grace_hopper.jpg", "astronaut.png", "franck_02159.jpg",
                               "franck_04000.jpg", "faceapi_sample2.jpg"};

/* Mesh indices of the refined points: ts_mesh_lips_idx etc. in face/mesh.h.
 * The eye contour proper: 9 lower points and 7 upper ones. */
#define EYE_CONTOUR 16

/* The photo as a float RGB image in [0, 1], at most 1024 px on its longer side. */
typedef struct {
    float *px;
    int w, h;
    float xf[4]; /* image -> photo: photo = image * scale + offset, {sx, ox, sy, oy} */
} image;

static void load_image(ts_ctx *ctx, ts_photo *p, image *im) {
    int pw = ts_photo_width(p), ph = ts_photo_height(p), m = pw > ph ? pw : ph;
    double s = m > 1024 ? 1024.0 / m : 1.0;
    im->w = (int)lround(pw * s);
    im->h = (int)lround(ph * s);
    im->px = malloc((size_t)im->w * im->h * 3 * sizeof(float));
    assert_non_null(im->px);
    assert_int_equal(ts_photo_tensor(ctx, p, im->w, im->h, 0.f, 1.f, im->px, im->xf), TS_OK);
}

/* Samples the square of side `side` centred on (cx, cy) (image px) into a CROP x CROP tensor,
 * bilinear, zero outside the image. */
static void crop(const image *im, float cx, float cy, float side, float *dst) {
    float step = side / CROP, x0 = cx - side / 2, y0 = cy - side / 2;
    for (int j = 0; j < CROP; j++)
        for (int i = 0; i < CROP; i++) {
            float x = x0 + (i + 0.5f) * step - 0.5f, y = y0 + (j + 0.5f) * step - 0.5f;
            int xi = (int)floorf(x), yi = (int)floorf(y);
            float fx = x - xi, fy = y - yi;
            float *d = dst + ((size_t)j * CROP + i) * 3;
            for (int c = 0; c < 3; c++) d[c] = 0.f;
            for (int k = 0; k < 4; k++) {
                int sx = xi + (k & 1), sy = yi + (k >> 1);
                if (sx < 0 || sy < 0 || sx >= im->w || sy >= im->h) continue;
                float wgt = ((k & 1) ? fx : 1 - fx) * ((k >> 1) ? fy : 1 - fy);
                const float *s = im->px + ((size_t)sy * im->w + sx) * 3;
                for (int c = 0; c < 3; c++) d[c] += wgt * s[c];
            }
        }
}

static void run(ts_nn_runtime *rt, const float *in) {
    char err[400];
    ts_tview v = ts_nn_input(rt, 0);
    assert_int_equal(ts_tview_count(&v), (size_t)CROP * CROP * 3);
    memcpy(v.data, in, (size_t)CROP * CROP * 3 * sizeof(float));
    if (ts_nn_run(rt, err, sizeof err)) fail_msg("%s", err);
}

/* Output o of rt, which must hold n floats. */
static const float *output(ts_nn_runtime *rt, int o, size_t n) {
    ts_tview v = ts_nn_output(rt, o);
    assert_non_null(v.data);
    assert_int_equal(ts_tview_count(&v), n);
    return v.data;
}

static double dist2d(const float *a, const float *b) {
    return hypot((double)a[0] - b[0], (double)a[1] - b[1]);
}

/* Mean and max distance of n refined points (stride `stride` floats) to the mesh at idx. */
static void refined_vs_mesh(const float *ref, int stride, const float *mesh, const int *idx, int n,
                            double *mean, double *max) {
    double sum = 0, mx = 0;
    for (int k = 0; k < n; k++) {
        double d = dist2d(ref + (size_t)k * stride, mesh + (size_t)idx[k] * 3);
        sum += d;
        if (d > mx) mx = d;
    }
    *mean = sum / n;
    *max = mx;
}

/* Whether the iris centre lies in the bounding box of the eye contour's first 16 points. */
static int iris_in_eye(const float *iris, const float *eye) {
    float x0 = eye[0], x1 = eye[0], y0 = eye[1], y1 = eye[1];
    for (int k = 1; k < EYE_CONTOUR; k++) {
        x0 = fminf(x0, eye[2 * k]), x1 = fmaxf(x1, eye[2 * k]);
        y0 = fminf(y0, eye[2 * k + 1]), y1 = fmaxf(y1, eye[2 * k + 1]);
    }
    return iris[0] >= x0 && iris[0] <= x1 && iris[1] >= y0 && iris[1] <= y1;
}

static void check_photo(ts_ctx *ctx, const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/photos/%s", cache, name);
    ts_photo *p;
    if (ts_photo_open(ctx, path, &p) != TS_OK) fail_msg("%s", ts_ctx_error(ctx));
    image im;
    load_image(ctx, p, &im);

    ts_face_box faces[4];
    int nf = 0;
    if (ts_face_detect(ctx, p, faces, 4, &nf) != TS_OK) fail_msg("%s", ts_ctx_error(ctx));
    if (nf < 1) fail_msg("%s: no face detected", name);
    /* Detector box (photo px) to image px, then a rough square 1.5x its larger side. */
    const ts_face_box *f = &faces[0];
    float cx = (f->x + f->w / 2 - im.xf[1]) / im.xf[0];
    float cy = (f->y + f->h / 2 - im.xf[3]) / im.xf[2];
    float side = 1.5f * fmaxf(f->w / im.xf[0], f->h / im.xf[2]);

    ts_nn_runtime *plain = ts_ctx_runtime(ctx, TS_MODEL_FACE_LANDMARK);
    ts_nn_runtime *attn = ts_ctx_runtime(ctx, TS_MODEL_FACE_LANDMARK_ATTENTION);
    if (!plain || !attn) fail_msg("%s", ts_ctx_error(ctx));
    assert_int_equal(ts_nn_n_outputs(attn), 7);

    float *in = malloc((size_t)CROP * CROP * 3 * sizeof(float));
    assert_non_null(in);
    /* Two refinement passes: the mesh's bounding box sets the next square. */
    for (int pass = 0; pass < 2; pass++) {
        crop(&im, cx, cy, side, in);
        run(plain, in);
        const float *mesh = output(plain, 0, N_MESH * 3);
        float x0 = mesh[0], x1 = mesh[0], y0 = mesh[1], y1 = mesh[1];
        for (int k = 1; k < N_MESH; k++) {
            x0 = fminf(x0, mesh[3 * k]), x1 = fmaxf(x1, mesh[3 * k]);
            y0 = fminf(y0, mesh[3 * k + 1]), y1 = fmaxf(y1, mesh[3 * k + 1]);
        }
        float s = side / CROP;
        float ox = cx - side / 2, oy = cy - side / 2;
        cx = ox + (x0 + x1) / 2 * s;
        cy = oy + (y0 + y1) / 2 * s;
        side = 1.5f * fmaxf(x1 - x0, y1 - y0) * s;
    }
    crop(&im, cx, cy, side, in);
    run(plain, in);
    run(attn, in);
    free(in);

    const float *mesh = output(plain, 0, N_MESH * 3);
    const float *amesh = output(attn, 0, N_MESH * 3);
    const float *lips = output(attn, 1, 160), *leye = output(attn, 2, 142),
                *reye = output(attn, 3, 142), *liris = output(attn, 4, 10),
                *riris = output(attn, 5, 10);
    float flag_plain = output(plain, 1, 1)[0], flag_attn = output(attn, 6, 1)[0];

    double sum = 0, mx = 0;
    for (int k = 0; k < N_MESH; k++) {
        double d = dist2d(mesh + 3 * k, amesh + 3 * k);
        sum += d;
        if (d > mx) mx = d;
    }
    double mesh_mean = sum / N_MESH;
    double lm, lx, lem, lex, rem, rex;
    refined_vs_mesh(lips, 2, mesh, ts_mesh_lips_idx, 80, &lm, &lx);
    refined_vs_mesh(leye, 2, mesh, ts_mesh_left_eye_idx, 71, &lem, &lex);
    refined_vs_mesh(reye, 2, mesh, ts_mesh_right_eye_idx, 71, &rem, &rex);
    int li = iris_in_eye(liris, leye), ri = iris_in_eye(riris, reye);

    printf("xcheck %-20s crop %5.0f px  faceflag %.2f/%.2f  mesh mean %.2f max %.2f  "
           "lips mean %.2f max %.2f  leye mean %.2f max %.2f  reye mean %.2f max %.2f  "
           "iris L (%.1f,%.1f)%s R (%.1f,%.1f)%s  (crop px, tol %.2f)\n",
           name, side, flag_plain, flag_attn, mesh_mean, mx, lm, lx, lem, lex, rem, rex, liris[0],
           liris[1], li ? " in eye" : " OUTSIDE", riris[0], riris[1], ri ? " in eye" : " OUTSIDE",
           TOL);
    fflush(stdout);

    if (!(mesh_mean <= TOL))
        fail_msg("%s: mesh mean distance %.2f px > %.2f", name, mesh_mean, TOL);
    if (!(lm <= TOL)) fail_msg("%s: lips mean distance %.2f px > %.2f", name, lm, TOL);
    if (!(lem <= TOL)) fail_msg("%s: left eye mean distance %.2f px > %.2f", name, lem, TOL);
    if (!(rem <= TOL)) fail_msg("%s: right eye mean distance %.2f px > %.2f", name, rem, TOL);
    if (!li) fail_msg("%s: left iris centre outside the left eye contour", name);
    if (!ri) fail_msg("%s: right iris centre outside the right eye contour", name);

    free(im.px);
    ts_photo_unref(p);
}

static void t_xcheck(void **s) {
    (void)s;
    ts_ctx *ctx;
    assert_int_equal(ts_ctx_new(NULL, &ctx), TS_OK);
    for (size_t i = 0; i < sizeof photos / sizeof photos[0]; i++) check_photo(ctx, photos[i]);
    ts_ctx_free(ctx);
}

int main(void) {
    const char *c = getenv("TRUESHOT_CACHE"), *home = getenv("HOME");
    if (c && *c)
        snprintf(cache, sizeof cache, "%s", c);
    else
        snprintf(cache, sizeof cache, "%s/.cache/trueshot", home ? home : ".");
    const struct CMUnitTest tests[] = {cmocka_unit_test(t_xcheck)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
