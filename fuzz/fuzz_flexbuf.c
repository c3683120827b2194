/* libFuzzer target: arbitrary bytes as a FlexBuffers buffer (as TFLite custom_options are),
 * walked through every accessor of src/nn/flexbuf.h, then handed to every MediaPipe custom op's
 * option parser. Any out-of-bounds read shows up under ASan. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/flexbuf.h"
#include "nn/ops_mediapipe.h"

/* Offsets may point back at their own vector (or share targets), so the walk is bounded both in
 * depth and in the total number of values visited. */
static void walk(const ts_flex_ref *r, int depth, int *budget) {
    if (depth > 24 || --*budget < 0) return;
    int64_t i;
    int32_t i32;
    uint64_t u;
    double d;
    bool b;
    const char *s;
    const uint8_t *bl;
    size_t n;
    (void)ts_flex_is_number(r);
    (void)ts_flex_as_int64(r, &i);
    (void)ts_flex_as_int32(r, &i32);
    (void)ts_flex_as_uint64(r, &u);
    (void)ts_flex_as_double(r, &d);
    (void)ts_flex_as_bool(r, &b);
    if (ts_flex_as_string(r, &s, &n) == 0) (void)strlen(s); /* must be terminated in-buffer */
    if (ts_flex_as_blob(r, &bl, &n) == 0 && n) {
        volatile uint8_t sink = bl[0] ^ bl[n - 1];
        (void)sink;
    }
    if (ts_flex_vec_len(r, &n) != 0) return;
    for (size_t k = 0; k < n; k++) {
        ts_flex_ref e;
        if (ts_flex_vec_at(r, k, &e) == 0) walk(&e, depth + 1, budget);
        if (r->type == TS_FLEX_MAP && ts_flex_map_key_at(r, k, &s, &n) == 0) {
            ts_flex_ref v;
            (void)ts_flex_map_get(r, s, &v);
            if (ts_flex_vec_len(r, &n) != 0) return; /* restore n (the map's length) */
        }
        if (*budget < 0) return;
    }
    (void)ts_flex_vec_at(r, n, &(ts_flex_ref){0}); /* one past the end: must be refused */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* exact-size heap copy so reads past the end are caught */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    ts_flex_ref root;
    if (ts_flex_root(buf, size, &root) == 0) {
        int budget = 1 << 14;
        walk(&root, 0, &budget);
        int32_t x, v[8];
        double dd;
        size_t n;
        (void)ts_flex_map_int32(&root, "output_width", 0, &x);
        (void)ts_flex_map_double(&root, "scale_x", 0, &dd);
        (void)ts_flex_map_int32_vec(&root, "subset_idxs", v, 8, &n);
    }
    static const char *ops[] = {"Landmarks2TransformMatrix", "TransformTensorBilinear",
                                "TransformLandmarks", "TransformTensor",
                                "Convolution2DTransposeBias"};
    char err[128];
    for (int version = 0; version <= 2; version++)
        for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
            const ts_custom_op_def *def = ts_mp_custom_op_versioned(ops[k], version);
            void *p = NULL;
            if (def && def->parse(buf, size, &p, err, sizeof err) == 0) def->free_params(p);
        }
    free(buf);
    return 0;
}
