/* MediaPipe's custom TFLite operators, written from their documented semantics.
 * See docs/nn-custom-ops.md for the exact definitions. */
#ifndef TS_NN_OPS_MEDIAPIPE_H
#define TS_NN_OPS_MEDIAPIPE_H

#include "nn/tensor.h"

/* One custom operator. All callbacks write a one-line reason into err (size errlen) on failure
 * and return -1; 0 on success. */
typedef struct ts_custom_op_def {
    const char *name; /* the model's custom_code, e.g. "TransformTensorBilinear" */
    /* Parse the operator's custom_options bytes (borrowed for the call; may be NULL/0) into a
     * heap-allocated parameter block owned by the caller (release with free_params). */
    int (*parse)(const uint8_t *opts, size_t len, void **params, char *err, size_t errlen);
    /* Given input shapes (in[i].data may be NULL), fill the rank/dims of every output. */
    int (*shape)(const void *params, const ts_tview *in, int n_in, ts_tview *out, int n_out,
                 char *err, size_t errlen);
    /* Compute: inputs and outputs have data and shapes set; outputs never alias inputs. */
    int (*run)(const void *params, const ts_tview *in, int n_in, ts_tview *out, int n_out,
               char *err, size_t errlen);
    void (*free_params)(void *params);
} ts_custom_op_def;

/* The definition for a custom_code, or NULL when we do not implement it. */
const ts_custom_op_def *ts_mp_custom_op(const char *name);

/* Convolution2DTransposeBias options: a raw TfLiteTransposeConvParams struct. */
typedef struct ts_tconv_params {
    int padding_same; /* 1 = SAME, 0 = VALID */
    int stride_w, stride_h;
} ts_tconv_params;

/* Like ts_mp_custom_op, but for a specific operator version as recorded in the model's
 * operator_codes[].version (MediaPipe registers different kernels per version). version 0 means
 * "decide from the options": Landmarks2TransformMatrix is v1 when its options have "input_hw" or
 * "output_hw", TransformTensorBilinear is v1 when they have "output_size" or "mode",
 * TransformLandmarks is v1 when they have "dimensions" or "scale"; otherwise v2. The name
 * "TransformTensor" is MediaPipe's v1 bilinear kernel. ts_mp_custom_op(name) is version 0.
 * NULL for an unknown name or unsupported version. */
const ts_custom_op_def *ts_mp_custom_op_versioned(const char *name, int version);

/* Parses Convolution2DTransposeBias custom_options: the raw bytes of TFLite's
 * TfLiteTransposeConvParams as laid out by a little-endian compiler, i.e. at least 12 bytes:
 * int32 padding (1 = SAME, 2 = VALID, 0 = "unknown", which MediaPipe treats as VALID),
 * int32 stride_width, int32 stride_height. Extra trailing bytes (newer TFLite versions append
 * fields) are ignored. Strides must be >= 1. Returns 0, or -1 with a one-line reason in err. */
int ts_mp_parse_tconv(const uint8_t *opts, size_t len, ts_tconv_params *p, char *err,
                      size_t errlen);

/* Output size and explicit padding of Convolution2DTransposeBias (input NHWC [N,IH,IW,C],
 * weights OHWI [O,KH,KW,C], bias [O], output [N,OH,OW,O]):
 *   total_h = SAME ? max(0, KH - (IH - 1) % stride_h - 1) : 0        (same for w)
 *   OH      = stride_h * (IH - 1) + KH - total_h                      (same for w)
 *   pad_top = total_h / 2 (rounded down), pad_bottom = total_h - pad_top
 *   pad_left = total_w / 2,               pad_right = total_w - pad_left
 * Output pixel oy receives input row iy through kernel row ky when oy = iy*stride_h - pad_top + ky
 * (the usual transposed-convolution scatter). This is exactly XNNPACK's deconvolution with
 * padding_top/bottom/left/right as above, adjustment 0, dilation 1, upsampling = stride,
 * one group, kernel layout OHWI, followed by nothing else (the bias is added, no activation).
 * Returns 0, or -1 with a one-line reason (non-positive dims, overflow). */
typedef struct ts_tconv_geom {
    int32_t out_h, out_w;
    int32_t pad_top, pad_bottom, pad_left, pad_right;
} ts_tconv_geom;
int ts_mp_tconv_geometry(const ts_tconv_params *p, int32_t in_h, int32_t in_w, int32_t k_h,
                         int32_t k_w, ts_tconv_geom *g, char *err, size_t errlen);

#endif
