/* Builtin operators that our XNNPACK build lacks, in plain C. */
#ifndef TS_NN_OPS_C_H
#define TS_NN_OPS_C_H

#include "nn/model.h"

/* True when op (of model m) is a builtin we run in C. */
bool ts_nn_c_supported(const ts_nn_model *m, const ts_nn_op *op, char *why, size_t cap);

/* Runs a builtin C op. in[k]/out[k] are views of the op's tensors (constants included, with
 * their data). Returns 0 or -1 with err set. */
int ts_nn_c_run(const ts_nn_model *m, const ts_nn_op *op, const ts_tview *in, ts_tview *out,
                char *err, size_t errlen);

#endif
