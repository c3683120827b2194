#include "nn/runtime.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthreadpool.h>
#include <xnnpack.h>

#include "nn/ops_c.h"
#include "nn/ops_mediapipe.h"

enum { STEP_XNN, STEP_BUILTIN_C, STEP_CUSTOM };

typedef struct step {
    int kind;
    xnn_runtime_t xnn; /* STEP_XNN */
    int op;            /* STEP_BUILTIN_C, STEP_CUSTOM */
    const ts_custom_op_def *def;
    void *params;
} step;

struct ts_nn_runtime {
    const ts_nn_model *m;
    float **buf; /* host buffer per tensor that crosses a step boundary; NULL otherwise */
    step *steps;
    int n_steps, n_c_ops, n_xnn;
    pthreadpool_t pool;
};

static pthread_once_t xnn_once = PTHREAD_ONCE_INIT;
static enum xnn_status xnn_init_status = xnn_status_uninitialized;
static void xnn_init(void) {
    xnn_init_status = xnn_initialize(NULL);
}

int ts_nn_default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    /* Two cores or fewer: the second core is better left to the caller (decode, UI). */
    return n <= 2 ? 1 : (int)(n / 2);
}

static void act_range(int act, float *lo, float *hi) {
    *lo = -INFINITY;
    *hi = INFINITY;
    if (act == TS_ACT_RELU) *lo = 0.f;
    if (act == TS_ACT_RELU6) *lo = 0.f, *hi = 6.f;
    if (act == TS_ACT_RELU_N1_TO_1) *lo = -1.f, *hi = 1.f;
}

static const ts_nn_tensor *T(const ts_nn_model *m, int idx) {
    return &m->tensors[idx];
}

static bool is_act_ok(int act) {
    return act >= TS_ACT_NONE && act <= TS_ACT_RELU6;
}

/* Does our XNNPACK mapping take this op? why gets the reason when it does not. */
static bool xnn_supported(const ts_nn_model *m, const ts_nn_op *op, char *why, size_t cap) {
    const ts_nn_opts *o = &op->opt;
    why[0] = 0;
    switch (op->code) {
    case TS_OP_CONV_2D:
    case TS_OP_DEPTHWISE_CONV_2D:
        if (op->n_in < 2 || op->in[1] < 0 || !T(m, op->in[1])->f32) {
            snprintf(why, cap, "convolution weights are not constant");
            return false;
        }
        if (op->n_in > 2 && op->in[2] >= 0 && !T(m, op->in[2])->f32) {
            snprintf(why, cap, "convolution bias is not constant");
            return false;
        }
        if (T(m, op->in[0])->rank != 4 || T(m, op->in[1])->rank != 4) return false;
        return is_act_ok(o->activation) && o->stride_w > 0 && o->stride_h > 0;
    case TS_OP_ADD:
    case TS_OP_MUL:
    case TS_OP_SUB:
    case TS_OP_DIV:
        return op->n_in == 2 && is_act_ok(o->activation);
    case TS_OP_MAXIMUM:
    case TS_OP_MINIMUM:
        return op->n_in == 2;
    case TS_OP_MAX_POOL_2D:
    case TS_OP_AVERAGE_POOL_2D:
        return T(m, op->in[0])->rank == 4 && is_act_ok(o->activation) && o->filter_w > 0 &&
               o->filter_h > 0 && o->stride_w > 0 && o->stride_h > 0;
    case TS_OP_MEAN: {
        /* Mean over height and width of an NHWC tensor is global average pooling. */
        if (op->n_in != 2 || op->in[1] < 0) return false;
        const ts_nn_tensor *ax = T(m, op->in[1]);
        if (!ax->i32 || ax->rank != 1 || ax->dims[0] != 2 || T(m, op->in[0])->rank != 4) {
            snprintf(why, cap, "MEAN is supported over the spatial axes of an NHWC tensor only");
            return false;
        }
        int a = ax->i32[0], b = ax->i32[1];
        if (!((a == 1 && b == 2) || (a == 2 && b == 1)) || T(m, op->out[0])->rank != 4) {
            snprintf(why, cap, "MEAN is supported over axes 1 and 2 with keep_dims only");
            return false;
        }
        return true;
    }
    case TS_OP_PAD: {
        if (op->n_in < 2 || op->in[1] < 0 || !T(m, op->in[1])->i32) {
            snprintf(why, cap, "PAD needs constant paddings");
            return false;
        }
        for (int k = 0; k < 2 * T(m, op->in[0])->rank; k++)
            if (T(m, op->in[1])->i32[k] < 0) return false;
        return T(m, op->in[1])->rank == 2 && T(m, op->in[1])->dims[0] == T(m, op->in[0])->rank;
    }
    case TS_OP_RESHAPE:
        return op->n_out == 1;
    case TS_OP_RESIZE_BILINEAR:
        return T(m, op->in[0])->rank == 4 && !(o->align_corners && o->half_pixel_centers);
    case TS_OP_RELU:
    case TS_OP_RELU6:
    case TS_OP_LOGISTIC:
    case TS_OP_HARD_SWISH:
    case TS_OP_LEAKY_RELU:
        return op->n_in == 1;
    case TS_OP_SOFTMAX:
        return o->beta == 1.f;
    case TS_OP_PRELU: {
        if (op->n_in != 2 || !T(m, op->in[1])->f32 || T(m, op->in[0])->rank != 4) return false;
        /* XNNPACK takes one slope per channel. */
        const ts_nn_tensor *s = T(m, op->in[1]);
        size_t n = 1;
        for (int d = 0; d < s->rank; d++) n *= (size_t)s->dims[d];
        return n == (size_t)T(m, op->in[0])->dims[3];
    }
    case TS_OP_DEPTH_TO_SPACE:
        return o->block_size > 1;
    case TS_OP_FULLY_CONNECTED:
        return op->n_in >= 2 && T(m, op->in[1])->f32 && is_act_ok(o->activation);
    case TS_OP_CUSTOM:
        if (strcmp(op->custom, "Convolution2DTransposeBias") == 0) {
            ts_tconv_params p;
            if (op->n_in != 3 || !T(m, op->in[1])->f32 || !T(m, op->in[2])->f32) return false;
            return ts_mp_parse_tconv(op->custom_opts, op->custom_len, &p, why, cap) == 0;
        }
        return false;
    default:
        return false;
    }
}

/* Per-segment state while defining an XNNPACK subgraph. */
typedef struct seg_ctx {
    const ts_nn_model *m;
    xnn_subgraph_t sg;
    uint32_t *vid; /* tensor -> value id in this subgraph */
    char *err;
    size_t errlen;
} seg_ctx;

static bool xcheck(seg_ctx *c, enum xnn_status s, const char *what, int op_index) {
    if (s == xnn_status_success) return true;
    snprintf(c->err, c->errlen, "model %s: XNNPACK rejected %s (operator %d, status %d)",
             c->m->name, what, op_index, (int)s);
    return false;
}

/* The value id for tensor t, defining it as a static (constant) or internal value if needed. */
static uint32_t value(seg_ctx *c, int t) {
    if (t < 0) return XNN_INVALID_VALUE_ID;
    if (c->vid[t] != XNN_INVALID_VALUE_ID) return c->vid[t];
    const ts_nn_tensor *tt = T(c->m, t);
    size_t dims[TS_NN_MAX_RANK];
    for (int d = 0; d < tt->rank; d++) dims[d] = (size_t)tt->dims[d];
    uint32_t id = XNN_INVALID_VALUE_ID;
    enum xnn_status s = xnn_define_tensor_value(c->sg, xnn_datatype_fp32, (size_t)tt->rank, dims,
                                                tt->f32, XNN_INVALID_VALUE_ID, 0, &id);
    if (s != xnn_status_success) return XNN_INVALID_VALUE_ID;
    c->vid[t] = id;
    return id;
}

/* A static value over constant data with a shape of our choosing (e.g. PReLU's 1-D slope). */
static uint32_t static_1d(seg_ctx *c, const float *data, size_t n) {
    uint32_t id = XNN_INVALID_VALUE_ID;
    size_t dims[1] = {n};
    xnn_define_tensor_value(c->sg, xnn_datatype_fp32, 1, dims, data, XNN_INVALID_VALUE_ID, 0, &id);
    return id;
}

static bool define_node(seg_ctx *c, const ts_nn_op *op, int op_index) {
    const ts_nn_model *m = c->m;
    const ts_nn_opts *o = &op->opt;
    float lo, hi;
    act_range(o->activation, &lo, &hi);
    uint32_t in0 = value(c, op->in[0]), out = value(c, op->out[0]);
    if (in0 == XNN_INVALID_VALUE_ID || out == XNN_INVALID_VALUE_ID)
        return xcheck(c, xnn_status_invalid_parameter, "a tensor", op_index);
    uint32_t same = o->padding == 0 ? XNN_FLAG_TENSORFLOW_SAME_PADDING : 0;
    enum xnn_status s;
    switch (op->code) {
    case TS_OP_CONV_2D: {
        const ts_nn_tensor *w = T(m, op->in[1]);
        uint32_t bias = op->n_in > 2 ? value(c, op->in[2]) : XNN_INVALID_VALUE_ID;
        s = xnn_define_convolution_2d(c->sg, 0, 0, 0, 0, (uint32_t)w->dims[1], (uint32_t)w->dims[2],
                                      (uint32_t)o->stride_h, (uint32_t)o->stride_w,
                                      (uint32_t)o->dilation_h, (uint32_t)o->dilation_w, 1,
                                      (size_t)w->dims[3], (size_t)w->dims[0], lo, hi, in0,
                                      value(c, op->in[1]), bias, out, same);
        return xcheck(c, s, "CONV_2D", op_index);
    }
    case TS_OP_DEPTHWISE_CONV_2D: {
        const ts_nn_tensor *w = T(m, op->in[1]);
        uint32_t bias = op->n_in > 2 ? value(c, op->in[2]) : XNN_INVALID_VALUE_ID;
        int cin = T(m, op->in[0])->dims[3];
        int mult = o->depth_multiplier > 0 ? o->depth_multiplier : w->dims[3] / cin;
        s = xnn_define_depthwise_convolution_2d(
            c->sg, 0, 0, 0, 0, (uint32_t)w->dims[1], (uint32_t)w->dims[2], (uint32_t)o->stride_h,
            (uint32_t)o->stride_w, (uint32_t)o->dilation_h, (uint32_t)o->dilation_w, (uint32_t)mult,
            (size_t)cin, lo, hi, in0, value(c, op->in[1]), bias, out, same);
        return xcheck(c, s, "DEPTHWISE_CONV_2D", op_index);
    }
    case TS_OP_ADD:
        return xcheck(c, xnn_define_add2(c->sg, lo, hi, in0, value(c, op->in[1]), out, 0), "ADD",
                      op_index);
    case TS_OP_MUL:
        return xcheck(c, xnn_define_multiply2(c->sg, lo, hi, in0, value(c, op->in[1]), out, 0),
                      "MUL", op_index);
    case TS_OP_SUB:
        return xcheck(c, xnn_define_subtract(c->sg, lo, hi, in0, value(c, op->in[1]), out, 0),
                      "SUB", op_index);
    case TS_OP_DIV:
        return xcheck(c, xnn_define_divide(c->sg, lo, hi, in0, value(c, op->in[1]), out, 0), "DIV",
                      op_index);
    case TS_OP_MAXIMUM:
        return xcheck(c, xnn_define_maximum2(c->sg, in0, value(c, op->in[1]), out, 0), "MAXIMUM",
                      op_index);
    case TS_OP_MINIMUM:
        return xcheck(c, xnn_define_minimum2(c->sg, in0, value(c, op->in[1]), out, 0), "MINIMUM",
                      op_index);
    case TS_OP_MAX_POOL_2D:
        s = xnn_define_max_pooling_2d(c->sg, 0, 0, 0, 0, (uint32_t)o->filter_h,
                                      (uint32_t)o->filter_w, (uint32_t)o->stride_h,
                                      (uint32_t)o->stride_w, 1, 1, lo, hi, in0, out, same);
        return xcheck(c, s, "MAX_POOL_2D", op_index);
    case TS_OP_AVERAGE_POOL_2D: {
        const ts_nn_tensor *ti = T(m, op->in[0]), *to = T(m, op->out[0]);
        /* A window covering the whole input is global pooling, which XNNPACK does directly. */
        if (to->dims[1] == 1 && to->dims[2] == 1 && o->filter_h == ti->dims[1] &&
            o->filter_w == ti->dims[2])
            s = xnn_define_global_average_pooling_2d(c->sg, lo, hi, in0, out, 0);
        else
            s = xnn_define_average_pooling_2d(c->sg, 0, 0, 0, 0, (uint32_t)o->filter_h,
                                              (uint32_t)o->filter_w, (uint32_t)o->stride_h,
                                              (uint32_t)o->stride_w, lo, hi, in0, out, same);
        return xcheck(c, s, "AVERAGE_POOL_2D", op_index);
    }
    case TS_OP_MEAN:
        return xcheck(c,
                      xnn_define_global_average_pooling_2d(c->sg, -INFINITY, INFINITY, in0, out, 0),
                      "MEAN", op_index);
    case TS_OP_PAD: {
        const ts_nn_tensor *p = T(m, op->in[1]);
        size_t pre[TS_NN_MAX_RANK] = {0}, post[TS_NN_MAX_RANK] = {0};
        for (int d = 0; d < p->dims[0]; d++) {
            pre[d] = (size_t)p->i32[2 * d];
            post[d] = (size_t)p->i32[2 * d + 1];
        }
        return xcheck(c, xnn_define_static_constant_pad(c->sg, pre, post, 0.f, in0, out, 0), "PAD",
                      op_index);
    }
    case TS_OP_RESHAPE: {
        const ts_nn_tensor *to = T(m, op->out[0]);
        size_t shape[TS_NN_MAX_RANK];
        for (int d = 0; d < to->rank; d++) shape[d] = (size_t)to->dims[d];
        return xcheck(c, xnn_define_static_reshape(c->sg, (size_t)to->rank, shape, in0, out, 0),
                      "RESHAPE", op_index);
    }
    case TS_OP_RESIZE_BILINEAR: {
        const ts_nn_tensor *to = T(m, op->out[0]);
        uint32_t flags = o->align_corners        ? XNN_FLAG_ALIGN_CORNERS
                         : o->half_pixel_centers ? 0
                                                 : XNN_FLAG_TENSORFLOW_LEGACY_MODE;
        s = xnn_define_static_resize_bilinear_2d(c->sg, (size_t)to->dims[1], (size_t)to->dims[2],
                                                 in0, out, flags);
        return xcheck(c, s, "RESIZE_BILINEAR", op_index);
    }
    case TS_OP_RELU:
        return xcheck(c, xnn_define_clamp(c->sg, 0.f, INFINITY, in0, out, 0), "RELU", op_index);
    case TS_OP_RELU6:
        return xcheck(c, xnn_define_clamp(c->sg, 0.f, 6.f, in0, out, 0), "RELU6", op_index);
    case TS_OP_LOGISTIC:
        return xcheck(c, xnn_define_sigmoid(c->sg, in0, out, 0), "LOGISTIC", op_index);
    case TS_OP_HARD_SWISH:
        return xcheck(c, xnn_define_hardswish(c->sg, in0, out, 0), "HARD_SWISH", op_index);
    case TS_OP_LEAKY_RELU:
        return xcheck(c, xnn_define_leaky_relu(c->sg, o->alpha, in0, out, 0), "LEAKY_RELU",
                      op_index);
    case TS_OP_SOFTMAX:
        return xcheck(c, xnn_define_softmax(c->sg, in0, out, 0), "SOFTMAX", op_index);
    case TS_OP_PRELU: {
        const ts_nn_tensor *sl = T(m, op->in[1]);
        uint32_t slope = static_1d(c, sl->f32, (size_t)T(m, op->in[0])->dims[3]);
        return xcheck(c, xnn_define_prelu(c->sg, in0, slope, out, 0), "PRELU", op_index);
    }
    case TS_OP_DEPTH_TO_SPACE:
        return xcheck(c, xnn_define_depth_to_space(c->sg, in0, out, (uint32_t)o->block_size, 0),
                      "DEPTH_TO_SPACE", op_index);
    case TS_OP_FULLY_CONNECTED: {
        uint32_t bias = op->n_in > 2 ? value(c, op->in[2]) : XNN_INVALID_VALUE_ID;
        s = xnn_define_fully_connected(c->sg, lo, hi, in0, value(c, op->in[1]), bias, out,
                                       o->keep_num_dims ? 0 : XNN_FLAG_TENSORFLOW_RESHAPE_2D);
        return xcheck(c, s, "FULLY_CONNECTED", op_index);
    }
    case TS_OP_CUSTOM: {
        /* Convolution2DTransposeBias: a transposed convolution, which XNNPACK calls
         * deconvolution, with TFLite's padding rule made explicit. */
        ts_tconv_params p;
        char why[160];
        if (ts_mp_parse_tconv(op->custom_opts, op->custom_len, &p, why, sizeof why) != 0) {
            snprintf(c->err, c->errlen, "model %s: operator %d: %s", m->name, op_index, why);
            return false;
        }
        const ts_nn_tensor *ti = T(m, op->in[0]), *w = T(m, op->in[1]), *to = T(m, op->out[0]);
        int pad[2], adj[2]; /* [h, w] */
        int in_hw[2] = {ti->dims[1], ti->dims[2]}, k[2] = {w->dims[1], w->dims[2]},
            st[2] = {p.stride_h, p.stride_w}, out_hw[2] = {to->dims[1], to->dims[2]};
        for (int a = 0; a < 2; a++) {
            int total = (in_hw[a] - 1) * st[a] + k[a] - out_hw[a];
            adj[a] = total < 0 ? -total : 0;
            pad[a] = total > 0 ? total : 0;
        }
        s = xnn_define_deconvolution_2d(
            c->sg, (uint32_t)(pad[0] / 2), (uint32_t)(pad[1] - pad[1] / 2),
            (uint32_t)(pad[0] - pad[0] / 2), (uint32_t)(pad[1] / 2), (uint32_t)adj[0],
            (uint32_t)adj[1], (uint32_t)k[0], (uint32_t)k[1], (uint32_t)st[0], (uint32_t)st[1], 1,
            1, 1, (size_t)w->dims[3], (size_t)w->dims[0], -INFINITY, INFINITY, in0,
            value(c, op->in[1]), value(c, op->in[2]), out, 0);
        return xcheck(c, s, "Convolution2DTransposeBias", op_index);
    }
    default:
        snprintf(c->err, c->errlen, "model %s: internal error: op %d has no XNNPACK mapping",
                 m->name, op_index);
        return false;
    }
}

static bool tensor_is_boundary(const ts_nn_runtime *rt, int t) {
    return rt->buf[t] != NULL;
}

/* Builds one XNNPACK runtime over ops [first, last] (all XNNPACK-supported). */
static bool build_segment(ts_nn_runtime *rt, int first, int last, step *st, uint32_t *vid,
                          char *err, size_t errlen) {
    const ts_nn_model *m = rt->m;
    for (int t = 0; t < m->n_tensors; t++) vid[t] = XNN_INVALID_VALUE_ID;
    /* External values: host-buffered tensors read or written here. Ids 0..n_ext-1. */
    uint32_t n_ext = 0;
    bool *produced = calloc((size_t)m->n_tensors, 1);
    if (!produced) return snprintf(err, errlen, "out of memory"), false;
    for (int i = first; i <= last; i++) {
        const ts_nn_op *op = &m->ops[i];
        if (op->folded) continue;
        for (int k = 0; k < op->n_out; k++) produced[op->out[k]] = true;
    }
    int *ext_t = malloc(sizeof(int) * (size_t)m->n_tensors);
    if (!ext_t) {
        free(produced);
        return snprintf(err, errlen, "out of memory"), false;
    }
    for (int i = first; i <= last; i++) {
        const ts_nn_op *op = &m->ops[i];
        if (op->folded) continue;
        for (int k = 0; k < op->n_in + op->n_out; k++) {
            int t = k < op->n_in ? op->in[k] : op->out[k - op->n_in];
            if (t < 0 || !tensor_is_boundary(rt, t) || vid[t] != XNN_INVALID_VALUE_ID) continue;
            vid[t] = n_ext;
            ext_t[n_ext++] = t;
        }
    }
    seg_ctx c = {m, NULL, vid, err, errlen};
    bool ok = xcheck(&c, xnn_create_subgraph(n_ext, 0, &c.sg), "a new subgraph", first);
    for (uint32_t e = 0; ok && e < n_ext; e++) {
        const ts_nn_tensor *tt = T(m, ext_t[e]);
        size_t dims[TS_NN_MAX_RANK];
        for (int d = 0; d < tt->rank; d++) dims[d] = (size_t)tt->dims[d];
        uint32_t id;
        uint32_t flags =
            produced[ext_t[e]] ? XNN_VALUE_FLAG_EXTERNAL_OUTPUT : XNN_VALUE_FLAG_EXTERNAL_INPUT;
        ok = xcheck(&c,
                    xnn_define_tensor_value(c.sg, xnn_datatype_fp32, (size_t)tt->rank, dims, NULL,
                                            e, flags, &id),
                    "an external tensor", first);
    }
    for (int i = first; ok && i <= last; i++)
        if (!m->ops[i].folded) ok = define_node(&c, &m->ops[i], i);
    if (ok)
        ok = xcheck(&c, xnn_create_runtime_v2(c.sg, rt->pool, 0, &st->xnn), "the runtime", first);
    if (ok) {
        struct xnn_external_value *ev = malloc(sizeof *ev * (n_ext ? n_ext : 1));
        if (!ev) {
            ok = false;
            snprintf(err, errlen, "out of memory");
        } else {
            for (uint32_t e = 0; e < n_ext; e++) {
                ev[e].id = e;
                ev[e].data = rt->buf[ext_t[e]];
            }
            ok = xcheck(&c, xnn_setup_runtime(st->xnn, n_ext, ev), "runtime setup", first);
            free(ev);
        }
    }
    if (c.sg) xnn_delete_subgraph(c.sg);
    free(produced);
    free(ext_t);
    return ok;
}

void ts_nn_runtime_free(ts_nn_runtime *rt) {
    if (!rt) return;
    for (int i = 0; i < rt->n_steps; i++) {
        if (rt->steps[i].xnn) xnn_delete_runtime(rt->steps[i].xnn);
        if (rt->steps[i].def && rt->steps[i].params)
            rt->steps[i].def->free_params(rt->steps[i].params);
    }
    if (rt->buf)
        for (int t = 0; t < rt->m->n_tensors; t++) free(rt->buf[t]);
    free(rt->buf);
    free(rt->steps);
    if (rt->pool) pthreadpool_destroy(rt->pool);
    free(rt);
}

static int op_kind(const ts_nn_model *m, const ts_nn_op *op, char *why, size_t cap) {
    if (xnn_supported(m, op, why, cap)) return STEP_XNN;
    char why2[160] = "";
    if (op->code != TS_OP_CUSTOM && ts_nn_c_supported(m, op, why2, sizeof why2))
        return STEP_BUILTIN_C;
    if (op->code == TS_OP_CUSTOM && ts_mp_custom_op_versioned(op->custom, op->version))
        return STEP_CUSTOM;
    if (!why[0] && why2[0]) snprintf(why, cap, "%s", why2);
    return -1;
}

ts_nn_runtime *ts_nn_runtime_new(const ts_nn_model *m, int threads, char *err, size_t errlen) {
    pthread_once(&xnn_once, xnn_init);
    if (xnn_init_status != xnn_status_success) {
        snprintf(err, errlen, "XNNPACK could not initialise on this CPU (status %d)",
                 (int)xnn_init_status);
        return NULL;
    }
    ts_nn_runtime *rt = calloc(1, sizeof *rt);
    int *kind = m->n_ops ? calloc((size_t)m->n_ops, sizeof *kind) : NULL;
    int *producer = calloc((size_t)m->n_tensors, sizeof *producer);
    uint32_t *vid = calloc((size_t)m->n_tensors, sizeof *vid);
    if (!rt || (m->n_ops && !kind) || !producer || !vid) goto oom;
    rt->m = m;
    if (threads <= 0) threads = ts_nn_default_threads();
    if (threads > 1) rt->pool = pthreadpool_create((size_t)threads);

    /* Classify every op; an op nobody runs stops the load here, by name. */
    for (int i = 0; i < m->n_ops; i++) {
        const ts_nn_op *op = &m->ops[i];
        if (op->folded) {
            kind[i] = -2;
            continue;
        }
        char why[160] = "", scratch[32];
        kind[i] = op_kind(m, op, why, sizeof why);
        if (kind[i] < 0) {
            snprintf(err, errlen, "model %s: operator %d (%s) is not supported%s%s", m->name, i,
                     ts_nn_op_name(op, scratch, sizeof scratch), why[0] ? ": " : "", why);
            goto fail;
        }
    }
    /* Steps: runs of XNNPACK ops, and each C op on its own. */
    rt->steps = calloc((size_t)m->n_ops + 1, sizeof *rt->steps);
    int *step_of = calloc((size_t)m->n_ops + 1, sizeof *step_of);
    if (!rt->steps || !step_of) {
        free(step_of);
        goto oom;
    }
    for (int i = 0; i < m->n_ops; i++) {
        if (kind[i] == -2) {
            step_of[i] = -1;
            continue;
        }
        bool join =
            kind[i] == STEP_XNN && rt->n_steps > 0 && rt->steps[rt->n_steps - 1].kind == STEP_XNN;
        if (!join) {
            step *s = &rt->steps[rt->n_steps++];
            s->kind = kind[i];
            s->op = i;
        }
        step_of[i] = rt->n_steps - 1;
    }
    /* Host buffers for tensors that cross steps or are graph inputs/outputs. */
    rt->buf = calloc((size_t)m->n_tensors, sizeof *rt->buf);
    if (!rt->buf) {
        free(step_of);
        goto oom;
    }
    for (int t = 0; t < m->n_tensors; t++) producer[t] = -1;
    bool *need = calloc((size_t)m->n_tensors, 1);
    if (!need) {
        free(step_of);
        goto oom;
    }
    for (int i = 0; i < m->n_inputs; i++) need[m->inputs[i]] = true;
    for (int i = 0; i < m->n_outputs; i++) need[m->outputs[i]] = true;
    for (int i = 0; i < m->n_ops; i++) {
        const ts_nn_op *op = &m->ops[i];
        if (op->folded) continue;
        for (int k = 0; k < op->n_out; k++) {
            int t = op->out[k];
            if (T(m, t)->is_const) {
                snprintf(err, errlen, "model %s: operator %d writes constant tensor %d", m->name, i,
                         t);
                free(need);
                free(step_of);
                goto fail;
            }
            producer[t] = step_of[i];
            if (kind[i] != STEP_XNN) need[t] = true;
        }
    }
    for (int i = 0; i < m->n_ops; i++) {
        const ts_nn_op *op = &m->ops[i];
        if (op->folded) continue;
        for (int k = 0; k < op->n_in; k++) {
            int t = op->in[k];
            if (t < 0 || T(m, t)->is_const) continue;
            if (kind[i] != STEP_XNN || producer[t] != step_of[i]) need[t] = true;
        }
    }
    for (int t = 0; t < m->n_tensors; t++) {
        if (!need[t] || T(m, t)->is_const) continue;
        size_t n = 1;
        for (int d = 0; d < T(m, t)->rank; d++) n *= (size_t)T(m, t)->dims[d];
        /* XNNPACK may read up to 16 bytes past the end of an external buffer. */
        rt->buf[t] = calloc(n + 16, sizeof(float));
        if (!rt->buf[t]) {
            free(need);
            free(step_of);
            goto oom;
        }
    }
    free(need);
    /* Build each step. */
    for (int s = 0; s < rt->n_steps; s++) {
        step *st = &rt->steps[s];
        if (st->kind == STEP_XNN) {
            int last = st->op;
            while (last + 1 < m->n_ops && (kind[last + 1] == -2 || step_of[last + 1] == s)) last++;
            if (!build_segment(rt, st->op, last, st, vid, err, errlen)) {
                free(step_of);
                goto fail;
            }
            rt->n_xnn++;
        } else if (st->kind == STEP_CUSTOM) {
            const ts_nn_op *op = &m->ops[st->op];
            st->def = ts_mp_custom_op_versioned(op->custom, op->version);
            char why[160] = "";
            if (st->def->parse(op->custom_opts, op->custom_len, &st->params, why, sizeof why)) {
                snprintf(err, errlen, "model %s: operator %d (%s): %s", m->name, st->op, op->custom,
                         why);
                free(step_of);
                goto fail;
            }
            /* The shapes the model declares must be the ones the op computes. */
            ts_tview in[TS_NN_MAX_IO] = {{0}}, out[TS_NN_MAX_IO] = {{0}};
            for (int k = 0; k < op->n_in; k++) {
                in[k].rank = T(m, op->in[k])->rank;
                memcpy(in[k].dims, T(m, op->in[k])->dims, sizeof in[k].dims);
            }
            if (st->def->shape(st->params, in, op->n_in, out, op->n_out, why, sizeof why)) {
                snprintf(err, errlen, "model %s: operator %d (%s): %s", m->name, st->op, op->custom,
                         why);
                free(step_of);
                goto fail;
            }
            for (int k = 0; k < op->n_out; k++) {
                const ts_nn_tensor *to = T(m, op->out[k]);
                size_t a = ts_tview_count(&out[k]), b = 1;
                for (int d = 0; d < to->rank; d++) b *= (size_t)to->dims[d];
                if (a != b) {
                    snprintf(err, errlen,
                             "model %s: operator %d (%s): computes %zu outputs, model says %zu",
                             m->name, st->op, op->custom, a, b);
                    free(step_of);
                    goto fail;
                }
            }
            rt->n_c_ops++;
        } else {
            rt->n_c_ops++;
        }
    }
    free(step_of);
    free(kind);
    free(producer);
    free(vid);
    return rt;
oom:
    snprintf(err, errlen, "model %s: out of memory building the runtime", m->name);
fail:
    free(kind);
    free(producer);
    free(vid);
    ts_nn_runtime_free(rt);
    return NULL;
}

static ts_tview view_of(const ts_nn_runtime *rt, int t) {
    ts_tview v = {0};
    if (t < 0) return v;
    const ts_nn_tensor *tt = T(rt->m, t);
    v.rank = tt->rank;
    memcpy(v.dims, tt->dims, sizeof v.dims);
    v.data = rt->buf[t] ? rt->buf[t] : tt->f32;
    if (!v.data && tt->i32) v.data = (float *)tt->i32; /* int constants travel as raw bits */
    return v;
}

ts_tview ts_nn_input(ts_nn_runtime *rt, int i) {
    return i >= 0 && i < rt->m->n_inputs ? view_of(rt, rt->m->inputs[i]) : (ts_tview){0};
}

ts_tview ts_nn_output(ts_nn_runtime *rt, int i) {
    return i >= 0 && i < rt->m->n_outputs ? view_of(rt, rt->m->outputs[i]) : (ts_tview){0};
}

int ts_nn_n_inputs(const ts_nn_runtime *rt) {
    return rt->m->n_inputs;
}
int ts_nn_n_outputs(const ts_nn_runtime *rt) {
    return rt->m->n_outputs;
}

void ts_nn_runtime_stats(const ts_nn_runtime *rt, int *xnn_segments, int *c_ops) {
    if (xnn_segments) *xnn_segments = rt->n_xnn;
    if (c_ops) *c_ops = rt->n_c_ops;
}

int ts_nn_run(ts_nn_runtime *rt, char *err, size_t errlen) {
    const ts_nn_model *m = rt->m;
    for (int s = 0; s < rt->n_steps; s++) {
        step *st = &rt->steps[s];
        if (st->kind == STEP_XNN) {
            enum xnn_status x = xnn_invoke_runtime(st->xnn);
            if (x != xnn_status_success) {
                snprintf(err, errlen, "model %s: XNNPACK failed at operator %d (status %d)",
                         m->name, st->op, (int)x);
                return -1;
            }
            continue;
        }
        const ts_nn_op *op = &m->ops[st->op];
        ts_tview in[TS_NN_MAX_IO], out[TS_NN_MAX_IO];
        for (int k = 0; k < op->n_in; k++) in[k] = view_of(rt, op->in[k]);
        for (int k = 0; k < op->n_out; k++) out[k] = view_of(rt, op->out[k]);
        char why[200] = "";
        int r = st->kind == STEP_CUSTOM
                    ? st->def->run(st->params, in, op->n_in, out, op->n_out, why, sizeof why)
                    : ts_nn_c_run(m, op, in, out, why, sizeof why);
        if (r != 0) {
            char scratch[32];
            snprintf(err, errlen, "model %s: operator %d (%s): %s", m->name, st->op,
                     ts_nn_op_name(op, scratch, sizeof scratch), why);
            return -1;
        }
    }
    return 0;
}
