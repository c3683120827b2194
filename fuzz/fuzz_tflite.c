/* libFuzzer target: the .tflite reader must reject any byte string cleanly, never crash or read
 * out of bounds. Seeded with the real MediaPipe models (tests/run_suite.sh). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256];
    ts_nn_model *m = ts_nn_model_parse(data, size, "fuzz", err, sizeof err);
    if (m) {
        /* Walk what the reader produced, so bad indices or shapes would show here too. */
        volatile float sink = 0;
        for (int i = 0; i < m->n_ops; i++)
            for (int k = 0; k < m->ops[i].n_in; k++)
                if (m->ops[i].in[k] >= 0) {
                    const ts_nn_tensor *t = &m->tensors[m->ops[i].in[k]];
                    if (t->f32) sink += t->f32[0];
                }
        (void)sink;
        int out = m->n_tensors - 1;
        size_t len = 0;
        uint8_t *cut = ts_nn_model_cut(data, size, m->n_ops / 2, &out, 1, &len, err, sizeof err);
        if (cut) {
            ts_nn_model *m2 = ts_nn_model_parse(cut, len, "fuzz-cut", err, sizeof err);
            ts_nn_model_free(m2);
            free(cut);
        }
        ts_nn_model_free(m);
    } else if (!err[0]) {
        abort(); /* a rejection must always say why */
    }
    return 0;
}
