/* Lists a .tflite model's operators and tensors, as our reader sees them. */
#include <stdio.h>

#include "nn/model.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: nn_dump MODEL.tflite [-v]\n");
        return 2;
    }
    char err[256];
    ts_nn_model *m = ts_nn_model_load(argv[1], err, sizeof err);
    if (!m) {
        fprintf(stderr, "nn_dump: %s\n", err);
        return 1;
    }
    int verbose = argc > 2;
    printf("%s: %d tensors, %d ops, %zu bytes of constants\n", m->name, m->n_tensors, m->n_ops,
           m->const_bytes);
    for (int i = 0; i < m->n_inputs; i++) {
        ts_nn_tensor *t = &m->tensors[m->inputs[i]];
        printf("input %d: %s [", m->inputs[i], t->name);
        for (int d = 0; d < t->rank; d++) printf("%s%d", d ? "," : "", t->dims[d]);
        printf("]\n");
    }
    for (int i = 0; i < m->n_outputs; i++) {
        ts_nn_tensor *t = &m->tensors[m->outputs[i]];
        printf("output %d: %s [", m->outputs[i], t->name);
        for (int d = 0; d < t->rank; d++) printf("%s%d", d ? "," : "", t->dims[d]);
        printf("]\n");
    }
    for (int i = 0; i < m->n_ops; i++) {
        ts_nn_op *op = &m->ops[i];
        char scratch[32];
        if (!verbose) {
            printf("%s\n", ts_nn_op_name(op, scratch, sizeof scratch));
            continue;
        }
        printf("%4d %-26s%s in:", i, ts_nn_op_name(op, scratch, sizeof scratch),
               op->folded ? " (folded)" : "");
        for (int k = 0; k < op->n_in; k++) {
            if (op->in[k] < 0) {
                printf(" -");
                continue;
            }
            ts_nn_tensor *t = &m->tensors[op->in[k]];
            printf(" %d%s[", op->in[k], t->is_const ? "c" : "");
            for (int d = 0; d < t->rank; d++) printf("%s%d", d ? "," : "", t->dims[d]);
            printf("]");
        }
        printf(" out:");
        for (int k = 0; k < op->n_out; k++) {
            ts_nn_tensor *t = &m->tensors[op->out[k]];
            printf(" %d[", op->out[k]);
            for (int d = 0; d < t->rank; d++) printf("%s%d", d ? "," : "", t->dims[d]);
            printf("]");
        }
        printf(" pad=%d s=%d,%d act=%d%s\n", op->opt.padding, op->opt.stride_w, op->opt.stride_h,
               op->opt.activation, op->custom_len ? " +custom_opts" : "");
    }
    ts_nn_model_free(m);
    return 0;
}
