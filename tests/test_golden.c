/* Golden tests: every model, on real photos, against real TFLite.
 *
 * The reference is npm @tensorflow/tfjs-tflite 0.0.1-alpha.10 (TFLite's own WASM build, run
 * offline under node by tests/ref/run_tflite.mjs). Where it cannot run a MediaPipe custom op, the
 * model is cut just before that op and the cut is compared (both runtimes run the same cut
 * file); the selfie models are compared whole against LiteRT.js as well, and the custom ops
 * themselves against plain C in test_custom_ops. Criterion, per output:
 *   max |ours - reference| <= 1e-3 * max |reference|. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/internal.h"
#include "nn/model.h"
#include "nn/runtime.h"

static char cache[1024], repo[1024], tmpdir[256];

static const char *photos[] = {"grace_hopper.jpg", "faceapi_sample2.jpg", "franck_02159.jpg"};

static void *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* Fills the model's input from a photo, normalised the way MediaPipe feeds that model. */
static void photo_input(const char *photo, ts_tview in, float lo, float hi) {
    ts_ctx *ctx;
    assert_int_equal(ts_ctx_new(NULL, &ctx), TS_OK);
    char path[1200];
    snprintf(path, sizeof path, "%s/photos/%s", cache, photo);
    ts_photo *p;
    assert_int_equal(ts_photo_open(ctx, path, &p), TS_OK);
    assert_int_equal(ts_photo_tensor(ctx, p, in.dims[2], in.dims[1], lo, hi, in.data, NULL), TS_OK);
    ts_photo_unref(p);
    ts_ctx_free(ctx);
}

/* Runs model bytes in our runtime and in the reference, compares every output. */
static void compare(const char *label, const uint8_t *bytes, size_t len, const char *photo,
                    float lo, float hi, const char *engine) {
    char err[400];
    ts_nn_model *m = ts_nn_model_parse(bytes, len, label, err, sizeof err);
    if (!m) fail_msg("%s", err);
    ts_nn_runtime *rt = ts_nn_runtime_new(m, 1, err, sizeof err);
    if (!rt) fail_msg("%s", err);
    ts_tview in = ts_nn_input(rt, 0);
    photo_input(photo, in, lo, hi);
    assert_int_equal(ts_nn_run(rt, err, sizeof err), 0);

    char model_path[512], in_path[512], out_dir[512], cmd[4096];
    snprintf(model_path, sizeof model_path, "%s/model.tflite", tmpdir);
    snprintf(in_path, sizeof in_path, "%s/in.f32", tmpdir);
    snprintf(out_dir, sizeof out_dir, "%s/ref", tmpdir);
    write_file(model_path, bytes, len);
    write_file(in_path, in.data, ts_tview_count(&in) * sizeof(float));
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s' && mkdir -p '%s' && node '%s/tests/ref/run_tflite.mjs' '%s' --in '%s' "
             "--out-dir '%s' --engine %s > '%s/ref.log' 2>&1",
             out_dir, out_dir, repo, model_path, in_path, out_dir, engine, tmpdir);
    if (system(cmd) != 0) {
        snprintf(cmd, sizeof cmd, "cat '%s/ref.log' >&2", tmpdir);
        (void)system(cmd);
        fail_msg("%s: reference runner failed", label);
    }
    for (int o = 0; o < ts_nn_n_outputs(rt); o++) {
        ts_tview ours = ts_nn_output(rt, o);
        char path[600];
        snprintf(path, sizeof path, "%s/out%d.f32", out_dir, o);
        size_t rlen;
        float *ref = read_file(path, &rlen);
        assert_non_null(ref);
        size_t n = ts_tview_count(&ours);
        assert_int_equal(rlen, n * sizeof(float));
        double max_ref = 0, max_diff = 0;
        for (size_t i = 0; i < n; i++) {
            double r = ref[i], d = ours.data[i] - ref[i];
            if (r < 0) r = -r;
            if (d < 0) d = -d;
            if (r > max_ref) max_ref = r;
            if (d > max_diff) max_diff = d;
        }
        double rel = max_ref > 0 ? max_diff / max_ref : max_diff;
        printf("golden %-44s %-20s %-8s out%d: max|ref| %.4g  max|diff| %.3g  ratio %.2e\n", label,
               photo, engine, o, max_ref, max_diff, rel);
        if (!(max_diff <= 1e-3 * max_ref))
            fail_msg("%s on %s output %d: max diff %g > 1e-3 * %g", label, photo, o, max_diff,
                     max_ref);
        free(ref);
    }
    ts_nn_runtime_free(rt);
    ts_nn_model_free(m);
}

static uint8_t *load_model(const char *file, size_t *len) {
    char path[1200];
    snprintf(path, sizeof path, "%s/models/%s", cache, file);
    uint8_t *b = read_file(path, len);
    if (!b) fail_msg("cannot read %s (run scripts/setup.sh)", path);
    return b;
}

/* Whole model in tfjs-tflite. */
static void whole(const char *file, float lo, float hi) {
    size_t len;
    uint8_t *b = load_model(file, &len);
    for (size_t i = 0; i < sizeof photos / sizeof photos[0]; i++)
        compare(file, b, len, photos[i], lo, hi, "tfjs");
    free(b);
}

/* The model cut before its first custom op (which tfjs-tflite lacks), with the tensors that op
 * and the rest of the graph read from the prefix as outputs. */
static void cut(const char *file, int n_ops, const int *outs, int n_outs, float lo, float hi) {
    size_t len, clen;
    char err[300], label[128];
    uint8_t *b = load_model(file, &len);
    uint8_t *c = ts_nn_model_cut(b, len, n_ops, outs, n_outs, &clen, err, sizeof err);
    if (!c) fail_msg("%s", err);
    snprintf(label, sizeof label, "%s[:%d]", file, n_ops);
    for (size_t i = 0; i < sizeof photos / sizeof photos[0]; i++)
        compare(label, c, clen, photos[i], lo, hi, "tfjs");
    free(c);
    free(b);
}

/* MediaPipe feeds the detectors [-1, 1] and the mesh and segmentation models [0, 1]. */
static void t_det_short(void **s) {
    (void)s;
    whole("face_detection_short_range.tflite", -1, 1);
}
static void t_det_full(void **s) {
    (void)s;
    whole("face_detection_full_range.tflite", -1, 1);
}
static void t_landmark(void **s) {
    (void)s;
    whole("face_landmark.tflite", 0, 1);
}

static void t_attention_cut(void **s) {
    (void)s;
    /* Operator 192 is the first Landmarks2TransformMatrix. Tensor 186 is the raw mesh, 191/193/
     * 195 the scaled landmarks the three custom ops read, 35 the feature map they sample. */
    const int outs[] = {186, 191, 193, 195, 35};
    cut("face_landmark_with_attention.tflite", 192, outs, 5, 0, 1);
}

static void t_selfie(void **s) {
    (void)s;
    /* Operator 244 is Convolution2DTransposeBias; tensor 245 feeds it. */
    const int outs[] = {245};
    cut("selfie_segmentation.tflite", 244, outs, 1, 0, 1);
    size_t len;
    uint8_t *b = load_model("selfie_segmentation.tflite", &len);
    for (size_t i = 0; i < sizeof photos / sizeof photos[0]; i++)
        compare("selfie_segmentation.tflite", b, len, photos[i], 0, 1, "litert");
    free(b);
}

static void t_selfie_landscape(void **s) {
    (void)s;
    size_t len;
    char err[300];
    uint8_t *b = load_model("selfie_segmentation_landscape.tflite", &len);
    ts_nn_model *m = ts_nn_model_parse(b, len, "landscape", err, sizeof err);
    assert_non_null(m);
    int op = -1;
    for (int i = 0; i < m->n_ops; i++)
        if (m->ops[i].code == TS_OP_CUSTOM) {
            op = i;
            break;
        }
    assert_true(op > 0);
    int outs[] = {m->ops[op].in[0]};
    ts_nn_model_free(m);
    cut("selfie_segmentation_landscape.tflite", op, outs, 1, 0, 1);
    for (size_t i = 0; i < sizeof photos / sizeof photos[0]; i++)
        compare("selfie_segmentation_landscape.tflite", b, len, photos[i], 0, 1, "litert");
    free(b);
}

int main(void) {
    const char *c = getenv("TRUESHOT_CACHE"), *home = getenv("HOME"), *r = getenv("TS_REPO");
    if (c && *c)
        snprintf(cache, sizeof cache, "%s", c);
    else
        snprintf(cache, sizeof cache, "%s/.cache/trueshot", home ? home : ".");
    snprintf(repo, sizeof repo, "%s", r && *r ? r : ".");
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ts-golden-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_det_short), cmocka_unit_test(t_det_full),
        cmocka_unit_test(t_landmark),  cmocka_unit_test(t_attention_cut),
        cmocka_unit_test(t_selfie),    cmocka_unit_test(t_selfie_landscape),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    (void)system(cmd);
    return rc;
}
