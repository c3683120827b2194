/* The .tflite reader and the runtime's structure: real models load with the expected shapes,
 * float16 weights are folded, hostile files are refused with a reason, unsupported operators are
 * named at load, and the C operators compute what TFLite defines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <stdbool.h>

#include <cmocka.h>

#include "nn/model.h"
#include "nn/ops_c.h"
#include "nn/runtime.h"

static char models[1100];

/* True when f is exactly a float16 value (normal: low 13 mantissa bits clear and in range;
 * subnormal: a whole multiple of 2^-24). */
static bool is_half(float f) {
    float a = fabsf(f);
    if (a == 0.f) return true;
    if (a >= 6.103515625e-05f) {
        uint32_t bits;
        memcpy(&bits, &a, 4);
        return (bits & 0x1fffu) == 0 && a <= 65504.f;
    }
    float k = a * 16777216.f;
    return k == floorf(k);
}

static uint8_t *slurp(const char *file, size_t *len) {
    char path[1300];
    snprintf(path, sizeof path, "%s/%s", models, file);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s (run scripts/setup.sh)", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*len);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static ts_nn_model *load(const char *file) {
    char path[1300], err[300];
    snprintf(path, sizeof path, "%s/%s", models, file);
    ts_nn_model *m = ts_nn_model_load(path, err, sizeof err);
    if (!m) fail_msg("%s", err);
    return m;
}

static const struct {
    const char *file;
    int in_h, in_w, n_outputs, c_ops;
} expect[] = {
    {"face_detection_short_range.tflite", 128, 128, 2, 2},
    {"face_detection_full_range.tflite", 192, 192, 2, 0},
    {"face_landmark.tflite", 192, 192, 2, 0},
    {"face_landmark_with_attention.tflite", 192, 192, 7, 12},
    {"selfie_segmentation.tflite", 256, 256, 1, 0},
    {"selfie_segmentation_landscape.tflite", 144, 256, 1, 0},
};

static void t_real_models(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        ts_nn_model *m = load(expect[i].file);
        assert_int_equal(m->n_inputs, 1);
        const ts_nn_tensor *in = &m->tensors[m->inputs[0]];
        assert_int_equal(in->rank, 4);
        assert_int_equal(in->dims[1], expect[i].in_h);
        assert_int_equal(in->dims[2], expect[i].in_w);
        assert_int_equal(in->dims[3], 3);
        assert_int_equal(m->n_outputs, expect[i].n_outputs);
        /* Every DEQUANTIZE of these models reads float16 weights: all must be folded, and every
         * folded value must be exactly a float16 value (the widening loses nothing, adds
         * nothing). */
        int deq = 0;
        for (int k = 0; k < m->n_ops; k++) {
            if (m->ops[k].code != TS_OP_DEQUANTIZE) continue;
            deq++;
            assert_true(m->ops[k].folded);
            const ts_nn_tensor *t = &m->tensors[m->ops[k].out[0]];
            assert_non_null(t->f32);
            size_t n = 1;
            for (int d = 0; d < t->rank; d++) n *= (size_t)t->dims[d];
            for (size_t j = 0; j < n; j++) assert_true(is_half(t->f32[j]));
        }
        assert_true(deq > 50);
        char err[300];
        ts_nn_runtime *rt = ts_nn_runtime_new(m, 1, err, sizeof err);
        if (!rt) fail_msg("%s", err);
        int segs, cops;
        ts_nn_runtime_stats(rt, &segs, &cops);
        assert_int_equal(cops, expect[i].c_ops);
        assert_true(segs >= 1);
        ts_nn_runtime_free(rt);
        ts_nn_model_free(m);
    }
}

/* Every truncation of a real model is refused with a message naming the model, never a crash
 * (run under ASan in the sanitizer build). */
static void t_truncated(void **state) {
    (void)state;
    size_t len;
    uint8_t *b = slurp("face_detection_short_range.tflite", &len);
    for (int i = 0; i < 300; i++) {
        size_t cut = (size_t)((double)len * i / 300.0);
        uint8_t *c = malloc(cut ? cut : 1);
        memcpy(c, b, cut);
        char err[300] = "";
        ts_nn_model *m = ts_nn_model_parse(c, cut, "short", err, sizeof err);
        if (m) fail_msg("truncated at %zu of %zu bytes but accepted", cut, len);
        assert_non_null(strstr(err, "model short:"));
        free(c);
    }
    free(b);
}

/* Random byte corruption: either rejected with a reason, or a model whose indices are valid. */
static void t_corrupted(void **state) {
    (void)state;
    size_t len;
    uint8_t *b = slurp("face_detection_short_range.tflite", &len);
    uint8_t *c = malloc(len);
    uint32_t seed = 12345;
    int rejected = 0;
    for (int i = 0; i < 400; i++) {
        memcpy(c, b, len);
        /* Corrupt the structural part (the first 64 KiB holds the tables). */
        for (int k = 0; k < 8; k++) {
            seed = seed * 1664525u + 1013904223u;
            size_t pos = (seed >> 8) % (len < 65536 ? len : 65536);
            c[pos] = (uint8_t)(seed >> 24);
        }
        char err[300] = "";
        ts_nn_model *m = ts_nn_model_parse(c, len, "corrupt", err, sizeof err);
        if (!m) {
            assert_true(strlen(err) > 15);
            rejected++;
            continue;
        }
        for (int o = 0; o < m->n_ops; o++)
            for (int k = 0; k < m->ops[o].n_in; k++)
                assert_true(m->ops[o].in[k] >= -1 && m->ops[o].in[k] < m->n_tensors);
        ts_nn_model_free(m);
    }
    assert_true(rejected > 0);
    free(c);
    free(b);
}

static void t_hostile_headers(void **state) {
    (void)state;
    char err[300];
    uint8_t notflite[16] = {8, 0, 0, 0, 'N', 'O', 'P', 'E'};
    assert_null(ts_nn_model_parse(notflite, sizeof notflite, "x", err, sizeof err));
    assert_non_null(strstr(err, "not a TFLite model"));
    /* Root offset far past the end. */
    uint8_t far[16] = {0xff, 0xff, 0xff, 0x7f, 'T', 'F', 'L', '3'};
    assert_null(ts_nn_model_parse(far, sizeof far, "x", err, sizeof err));
    assert_non_null(strstr(err, "past the end"));
    /* A vtable offset that points before the start of the file. */
    uint8_t back[16] = {8, 0, 0, 0, 'T', 'F', 'L', '3', 0x10, 0, 0, 0};
    assert_null(ts_nn_model_parse(back, sizeof back, "x", err, sizeof err));
    assert_non_null(strstr(err, "vtable"));
    assert_null(ts_nn_model_parse(far, 3, "x", err, sizeof err));
}

static void t_unsupported_op_named(void **state) {
    (void)state;
    ts_nn_model *m = load("face_landmark.tflite");
    for (int k = 0; k < m->n_ops; k++)
        if (m->ops[k].code == TS_OP_PRELU) {
            m->ops[k].code = 88; /* REDUCE_MIN: nothing here runs it */
            break;
        }
    char err[300];
    assert_null(ts_nn_runtime_new(m, 1, err, sizeof err));
    assert_non_null(strstr(err, "face_landmark"));
    assert_non_null(strstr(err, "BUILTIN_88"));
    assert_non_null(strstr(err, "not supported"));
    ts_nn_model_free(m);
    m = load("face_landmark_with_attention.tflite");
    for (int k = 0; k < m->n_ops; k++)
        if (m->ops[k].code == TS_OP_CUSTOM) {
            strcpy(m->ops[k].custom, "FancyCustomThing");
            break;
        }
    assert_null(ts_nn_runtime_new(m, 1, err, sizeof err));
    assert_non_null(strstr(err, "FancyCustomThing"));
    assert_non_null(strstr(err, "face_landmark_with_attention"));
    ts_nn_model_free(m);
}

static void t_cut(void **state) {
    (void)state;
    size_t len, clen;
    char err[300];
    uint8_t *b = slurp("face_detection_short_range.tflite", &len);
    int outs[] = {170, 171};
    uint8_t *c = ts_nn_model_cut(b, len, 159, outs, 2, &clen, err, sizeof err);
    assert_non_null(c);
    ts_nn_model *m = ts_nn_model_parse(c, clen, "cut", err, sizeof err);
    if (!m) fail_msg("%s", err);
    assert_int_equal(m->n_ops, 159);
    assert_int_equal(m->n_outputs, 2);
    assert_int_equal(m->outputs[0], 170);
    assert_int_equal(m->outputs[1], 171);
    ts_nn_model_free(m);
    free(c);
    free(b);
}

/* Two threads compute what one does. */
static void t_threads_agree(void **state) {
    (void)state;
    ts_nn_model *m = load("face_landmark.tflite");
    char err[300];
    ts_nn_runtime *a = ts_nn_runtime_new(m, 1, err, sizeof err),
                  *b = ts_nn_runtime_new(m, 2, err, sizeof err);
    assert_non_null(a);
    assert_non_null(b);
    ts_tview ia = ts_nn_input(a, 0), ib = ts_nn_input(b, 0);
    for (size_t i = 0; i < ts_tview_count(&ia); i++)
        ia.data[i] = ib.data[i] = (float)((i * 37) % 101) / 100.f;
    assert_int_equal(ts_nn_run(a, err, sizeof err), 0);
    assert_int_equal(ts_nn_run(b, err, sizeof err), 0);
    ts_tview oa = ts_nn_output(a, 0), ob = ts_nn_output(b, 0);
    for (size_t i = 0; i < ts_tview_count(&oa); i++)
        assert_float_equal(oa.data[i], ob.data[i], 1e-3);
    ts_nn_runtime_free(a);
    ts_nn_runtime_free(b);
    ts_nn_model_free(m);
}

/* STRIDED_SLICE and CONCATENATION against hand-computed answers. */
static void t_c_ops(void **state) {
    (void)state;
    ts_nn_tensor tensors[4] = {0};
    int32_t begin[2] = {1, -1}, end[2] = {3, 0}, strides[2] = {1, -2};
    tensors[1].i32 = begin, tensors[2].i32 = end, tensors[3].i32 = strides;
    for (int k = 1; k < 4; k++) tensors[k].rank = 1, tensors[k].dims[0] = 2;
    ts_nn_model m = {.tensors = tensors, .n_tensors = 4};
    ts_nn_op op = {.code = TS_OP_STRIDED_SLICE, .n_in = 4, .n_out = 1, .in = {0, 1, 2, 3}};
    float x[4 * 5];
    for (int i = 0; i < 20; i++) x[i] = (float)i;
    /* x is 4x5; rows 1..2, columns 4 and 2 (from the end, stepping back 2, stopping before 0). */
    ts_tview in[4] = {{x, 2, {4, 5}}}, out = {(float[4]){0}, 2, {2, 2}};
    char err[200], why[200];
    assert_true(ts_nn_c_supported(&m, &op, why, sizeof why));
    assert_int_equal(ts_nn_c_run(&m, &op, in, &out, err, sizeof err), 0);
    float want[4] = {9, 7, 14, 12};
    for (int i = 0; i < 4; i++) assert_float_equal(out.data[i], want[i], 0);
    /* Shrink axis 0 with begin mask on axis 1: row 2 whole. */
    begin[0] = 2, end[0] = 3, strides[0] = 1, begin[1] = 0, end[1] = 5, strides[1] = 1;
    op.opt.shrink_axis_mask = 1;
    float r[5];
    ts_tview out2 = {r, 1, {5}};
    assert_int_equal(ts_nn_c_run(&m, &op, in, &out2, err, sizeof err), 0);
    for (int i = 0; i < 5; i++) assert_float_equal(r[i], 10 + i, 0);

    ts_nn_op cat = {.code = TS_OP_CONCATENATION, .n_in = 2, .n_out = 1};
    cat.opt.axis = 1;
    float a[4] = {1, 2, 3, 4}, bb[2] = {9, 8}, o[6];
    ts_tview ci[2] = {{a, 2, {2, 2}}, {bb, 2, {2, 1}}}, co = {o, 2, {2, 3}};
    assert_int_equal(ts_nn_c_run(&m, &cat, ci, &co, err, sizeof err), 0);
    float wantc[6] = {1, 2, 9, 3, 4, 8};
    for (int i = 0; i < 6; i++) assert_float_equal(o[i], wantc[i], 0);
}

int main(void) {
    const char *dir = getenv("TRUESHOT_MODELS"), *cache = getenv("TRUESHOT_CACHE"),
               *home = getenv("HOME");
    if (dir && *dir)
        snprintf(models, sizeof models, "%s", dir);
    else if (cache && *cache)
        snprintf(models, sizeof models, "%s/models", cache);
    else
        snprintf(models, sizeof models, "%s/.cache/trueshot/models", home ? home : ".");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_real_models),
        cmocka_unit_test(t_truncated),
        cmocka_unit_test(t_corrupted),
        cmocka_unit_test(t_hostile_headers),
        cmocka_unit_test(t_unsupported_op_named),
        cmocka_unit_test(t_cut),
        cmocka_unit_test(t_threads_agree),
        cmocka_unit_test(t_c_ops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
