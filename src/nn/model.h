/* A .tflite model read into plain C structures.
 *
 * The reader checks every offset, length and index in the file (see flatbuf.h), resolves tensor
 * data to float32 (float16 weights behind DEQUANTIZE are folded at load), and checks each op's
 * tensor indices. The runtime (runtime.h) builds on this; nothing else reads the flatbuffer. */
#ifndef TS_NN_MODEL_H
#define TS_NN_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nn/tensor.h"

/* TFLite BuiltinOperator codes we name (schema.fbs). */
enum {
    TS_OP_ADD = 0,
    TS_OP_AVERAGE_POOL_2D = 1,
    TS_OP_CONCATENATION = 2,
    TS_OP_CONV_2D = 3,
    TS_OP_DEPTHWISE_CONV_2D = 4,
    TS_OP_DEPTH_TO_SPACE = 5,
    TS_OP_DEQUANTIZE = 6,
    TS_OP_FULLY_CONNECTED = 9,
    TS_OP_LOGISTIC = 14,
    TS_OP_MAX_POOL_2D = 17,
    TS_OP_MUL = 18,
    TS_OP_RELU = 19,
    TS_OP_RELU6 = 21,
    TS_OP_RESHAPE = 22,
    TS_OP_RESIZE_BILINEAR = 23,
    TS_OP_SOFTMAX = 25,
    TS_OP_TANH = 28,
    TS_OP_CUSTOM = 32,
    TS_OP_PAD = 34,
    TS_OP_TRANSPOSE = 39,
    TS_OP_MEAN = 40,
    TS_OP_SUB = 41,
    TS_OP_DIV = 42,
    TS_OP_STRIDED_SLICE = 45,
    TS_OP_PRELU = 54,
    TS_OP_MAXIMUM = 55,
    TS_OP_MINIMUM = 57,
    TS_OP_SLICE = 65,
    TS_OP_TRANSPOSE_CONV = 67,
    TS_OP_LEAKY_RELU = 97,
    TS_OP_HARD_SWISH = 117,
};

/* TFLite TensorType codes. */
enum { TS_TT_FLOAT32 = 0, TS_TT_FLOAT16 = 1, TS_TT_INT32 = 2, TS_TT_UINT8 = 3, TS_TT_INT64 = 4 };

/* Fused activations. */
enum { TS_ACT_NONE = 0, TS_ACT_RELU = 1, TS_ACT_RELU_N1_TO_1 = 2, TS_ACT_RELU6 = 3 };

typedef struct ts_nn_tensor {
    char name[96];
    int type; /* TS_TT_* as stored in the file */
    int rank;
    int32_t dims[TS_NN_MAX_RANK];
    /* Constant data, owned: float32 for float tensors (float16 already widened), int32 for
     * int32 tensors; NULL for activations. */
    float *f32;
    int32_t *i32;
    bool is_const;
} ts_nn_tensor;

/* Builtin options we use, decoded from whichever options table the op carries. */
typedef struct ts_nn_opts {
    int padding; /* 0 = SAME, 1 = VALID (TFLite's Padding enum) */
    int stride_w, stride_h, dilation_w, dilation_h;
    int filter_w, filter_h, depth_multiplier;
    int activation; /* TS_ACT_* */
    int axis;
    bool keep_dims, align_corners, half_pixel_centers, keep_num_dims;
    float alpha, beta;
    int begin_mask, end_mask, ellipsis_mask, new_axis_mask, shrink_axis_mask;
    int block_size;
} ts_nn_opts;

#define TS_NN_MAX_IO 8

typedef struct ts_nn_op {
    int code;        /* builtin code, TS_OP_CUSTOM for custom ops */
    char custom[48]; /* custom_code for custom ops */
    int version;
    int n_in, n_out;
    int in[TS_NN_MAX_IO]; /* tensor indices; -1 for an omitted optional input */
    int out[TS_NN_MAX_IO];
    ts_nn_opts opt;
    uint8_t *custom_opts; /* owned copy */
    size_t custom_len;
    bool folded; /* true for a DEQUANTIZE folded at load: it runs no more */
} ts_nn_op;

typedef struct ts_nn_model {
    char name[64]; /* file name without directory or extension, for messages */
    int n_tensors, n_ops, n_inputs, n_outputs;
    ts_nn_tensor *tensors;
    ts_nn_op *ops;
    int inputs[TS_NN_MAX_IO], outputs[TS_NN_MAX_IO];
    size_t const_bytes; /* bytes of constant data held */
} ts_nn_model;

/* Reads a model from memory (borrowed for the call). On failure returns NULL and writes a
 * one-line reason naming the model and what is wrong into err. */
ts_nn_model *ts_nn_model_parse(const uint8_t *buf, size_t len, const char *name, char *err,
                               size_t errlen);
/* Reads a model from a file; name for messages is the file's base name. */
ts_nn_model *ts_nn_model_load(const char *path, char *err, size_t errlen);
void ts_nn_model_free(ts_nn_model *m);

/* Human-readable name of a builtin op code ("CONV_2D"), or "BUILTIN_<n>". */
const char *ts_nn_op_name(const ts_nn_op *op, char *scratch, size_t cap);

/* Writes a copy of the .tflite buffer cut to its first n_ops operators, with the given tensors as
 * its outputs. For checking a prefix of a model in another runtime. Returns a malloc'd buffer or
 * NULL with err set. */
uint8_t *ts_nn_model_cut(const uint8_t *buf, size_t len, int n_ops, const int *outputs,
                         int n_outputs, size_t *out_len, char *err, size_t errlen);

#endif
