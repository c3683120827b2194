/* Runs a ts_nn_model: consecutive operators XNNPACK supports become one XNNPACK runtime; the
 * operators it lacks (CONCATENATION, STRIDED_SLICE, MediaPipe's custom ops) run in C between
 * those runtimes, on host buffers shared with them. */
#ifndef TS_NN_RUNTIME_H
#define TS_NN_RUNTIME_H

#include "nn/model.h"

typedef struct ts_nn_runtime ts_nn_runtime;

/* Builds a runtime for model m, which must outlive it (its constants are used in place).
 * threads: 0 picks the default (1 on machines with 2 cores or fewer, else cores / 2).
 * An operator we do not support fails here, with a message naming the operator and the model.
 * Returns NULL with err set on failure. */
ts_nn_runtime *ts_nn_runtime_new(const ts_nn_model *m, int threads, char *err, size_t errlen);
void ts_nn_runtime_free(ts_nn_runtime *rt);

/* The i-th model input / output as a view into the runtime's own buffer (valid until the
 * runtime is freed). Fill inputs, call ts_nn_run, read outputs. NULL data if i is out of range. */
ts_tview ts_nn_input(ts_nn_runtime *rt, int i);
ts_tview ts_nn_output(ts_nn_runtime *rt, int i);
int ts_nn_n_inputs(const ts_nn_runtime *rt);
int ts_nn_n_outputs(const ts_nn_runtime *rt);

/* Runs the model once. Returns 0, or -1 with err set. */
int ts_nn_run(ts_nn_runtime *rt, char *err, size_t errlen);

/* How the model was split: number of XNNPACK runtimes and of operators run in C. */
void ts_nn_runtime_stats(const ts_nn_runtime *rt, int *xnn_segments, int *c_ops);

/* The default thread count for this machine. */
int ts_nn_default_threads(void);

#endif
