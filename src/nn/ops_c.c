#include "nn/ops_c.h"

#include <stdio.h>
#include <string.h>

bool ts_nn_c_supported(const ts_nn_model *m, const ts_nn_op *op, char *why, size_t cap) {
    switch (op->code) {
    case TS_OP_CONCATENATION:
        if (op->opt.activation != TS_ACT_NONE) {
            snprintf(why, cap, "CONCATENATION with a fused activation is not supported");
            return false;
        }
        return op->n_out == 1 && op->n_in >= 1;
    case TS_OP_STRIDED_SLICE:
        if (op->n_in != 4 || op->n_out != 1) return false;
        for (int k = 1; k < 4; k++) {
            if (op->in[k] < 0 || !m->tensors[op->in[k]].i32) {
                snprintf(why, cap, "STRIDED_SLICE needs constant begin, end and strides");
                return false;
            }
        }
        if (op->opt.ellipsis_mask || op->opt.new_axis_mask) {
            snprintf(why, cap, "STRIDED_SLICE with ellipsis or new-axis masks is not supported");
            return false;
        }
        return true;
    case TS_OP_RESHAPE:
        return op->n_out == 1 && op->n_in >= 1;
    default:
        return false;
    }
}

static int concat(const ts_nn_op *op, const ts_tview *in, ts_tview *out, char *err, size_t errlen) {
    int rank = out->rank, axis = op->opt.axis < 0 ? op->opt.axis + rank : op->opt.axis;
    if (axis < 0 || axis >= rank) {
        snprintf(err, errlen, "CONCATENATION axis %d outside rank %d", op->opt.axis, rank);
        return -1;
    }
    /* Treat each tensor as [outer, axis * inner]: rows are copied in turn from each input. */
    size_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++) outer *= (size_t)out->dims[d];
    for (int d = axis + 1; d < rank; d++) inner *= (size_t)out->dims[d];
    size_t total_axis = 0;
    for (int k = 0; k < op->n_in; k++) {
        if (in[k].rank != rank) {
            snprintf(err, errlen, "CONCATENATION input %d has rank %d, output %d", k, in[k].rank,
                     rank);
            return -1;
        }
        total_axis += (size_t)in[k].dims[axis];
    }
    if (total_axis != (size_t)out->dims[axis]) {
        snprintf(err, errlen, "CONCATENATION inputs do not add up to the output");
        return -1;
    }
    float *dst = out->data;
    for (size_t o = 0; o < outer; o++) {
        for (int k = 0; k < op->n_in; k++) {
            size_t n = (size_t)in[k].dims[axis] * inner;
            memcpy(dst, in[k].data + o * n, n * sizeof(float));
            dst += n;
        }
    }
    return 0;
}

/* TFLite's StridedSlice index rules (tensorflow/lite/kernels/strided_slice.cc semantics):
 * negative indices count from the end, masks take the full range, and a shrink axis keeps one
 * element at begin. */
static int strided_slice(const ts_nn_model *m, const ts_nn_op *op, const ts_tview *in,
                         ts_tview *out, char *err, size_t errlen) {
    const ts_nn_tensor *tb = &m->tensors[op->in[1]], *te = &m->tensors[op->in[2]],
                       *ts = &m->tensors[op->in[3]];
    int rank = in[0].rank;
    if (tb->rank != 1 || tb->dims[0] != rank || te->dims[0] != rank || ts->dims[0] != rank) {
        snprintf(err, errlen, "STRIDED_SLICE begin/end/strides must have %d entries", rank);
        return -1;
    }
    int begin[TS_NN_MAX_RANK], stride[TS_NN_MAX_RANK], count[TS_NN_MAX_RANK];
    for (int d = 0; d < rank; d++) {
        int n = in[0].dims[d], s = ts->i32[d], b = tb->i32[d], e = te->i32[d];
        if (s == 0) {
            snprintf(err, errlen, "STRIDED_SLICE stride 0 on axis %d", d);
            return -1;
        }
        if (op->opt.begin_mask & (1 << d)) b = s > 0 ? 0 : n - 1;
        if (op->opt.end_mask & (1 << d)) e = s > 0 ? n : -1 - n;
        if (b < 0) b += n;
        if (!(op->opt.end_mask & (1 << d)) && e < 0) e += n;
        if (op->opt.shrink_axis_mask & (1 << d)) {
            e = b + 1;
            s = 1;
        }
        /* Clamp into the valid range for the direction of travel. */
        if (s > 0) {
            b = b < 0 ? 0 : b > n ? n : b;
            e = e < 0 ? 0 : e > n ? n : e;
            count[d] = e > b ? (e - b + s - 1) / s : 0;
        } else {
            b = b < -1 ? -1 : b > n - 1 ? n - 1 : b;
            e = e < -1 ? -1 : e > n - 1 ? n - 1 : e;
            count[d] = b > e ? (b - e - s - 1) / -s : 0;
        }
        begin[d] = b;
        stride[d] = s;
    }
    size_t total = 1;
    for (int d = 0; d < rank; d++) total *= (size_t)count[d];
    if (total != ts_tview_count(out)) {
        snprintf(err, errlen, "STRIDED_SLICE result has %zu elements, output tensor %zu", total,
                 ts_tview_count(out));
        return -1;
    }
    size_t istride[TS_NN_MAX_RANK];
    istride[rank - 1] = 1;
    for (int d = rank - 2; d >= 0; d--) istride[d] = istride[d + 1] * (size_t)in[0].dims[d + 1];
    int idx[TS_NN_MAX_RANK] = {0};
    for (size_t o = 0; o < total; o++) {
        size_t src = 0;
        for (int d = 0; d < rank; d++) src += (size_t)(begin[d] + idx[d] * stride[d]) * istride[d];
        out->data[o] = in[0].data[src];
        for (int d = rank - 1; d >= 0; d--) {
            if (++idx[d] < count[d]) break;
            idx[d] = 0;
        }
    }
    return 0;
}

int ts_nn_c_run(const ts_nn_model *m, const ts_nn_op *op, const ts_tview *in, ts_tview *out,
                char *err, size_t errlen) {
    switch (op->code) {
    case TS_OP_CONCATENATION:
        return concat(op, in, out, err, errlen);
    case TS_OP_STRIDED_SLICE:
        return strided_slice(m, op, in, out, err, errlen);
    case TS_OP_RESHAPE:
        if (ts_tview_count(&in[0]) != ts_tview_count(out)) {
            snprintf(err, errlen, "RESHAPE changes the element count");
            return -1;
        }
        memmove(out->data, in[0].data, ts_tview_count(out) * sizeof(float));
        return 0;
    default:
        snprintf(err, errlen, "no C implementation for builtin %d", op->code);
        return -1;
    }
}
