#include "nn/model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nn/flatbuf.h"

/* Field indices from TFLite's schema.fbs. */
enum { MODEL_VERSION = 0, MODEL_OPCODES = 1, MODEL_SUBGRAPHS = 2, MODEL_BUFFERS = 4 };
enum { OPCODE_DEPRECATED = 0, OPCODE_CUSTOM = 1, OPCODE_VERSION = 2, OPCODE_BUILTIN = 3 };
enum { SG_TENSORS = 0, SG_INPUTS = 1, SG_OUTPUTS = 2, SG_OPERATORS = 3 };
enum { T_SHAPE = 0, T_TYPE = 1, T_BUFFER = 2, T_NAME = 3 };
enum { OP_OPCODE = 0, OP_INPUTS = 1, OP_OUTPUTS = 2, OP_OPT_TYPE = 3, OP_OPTS = 4, OP_CUSTOM = 5 };
enum { BUF_DATA = 0, BUF_OFFSET = 1, BUF_SIZE = 2 };

/* BuiltinOptions union tags (schema.fbs) for the options tables we decode. */
enum {
    BO_CONV2D = 1,
    BO_DEPTHWISE = 2,
    BO_POOL2D = 5,
    BO_FULLY_CONNECTED = 8,
    BO_SOFTMAX = 9,
    BO_CONCATENATION = 10,
    BO_ADD = 11,
    BO_RESHAPE = 17,
    BO_RESIZE_BILINEAR = 15,
    BO_MUL = 21,
    BO_SUB = 28,
    BO_DIV = 29,
    BO_STRIDED_SLICE = 32,
    BO_REDUCER = 27,
    BO_TRANSPOSE_CONV = 49,
    BO_LEAKY_RELU = 76,
    BO_DEPTH_TO_SPACE = 94,
};

/* Upper bounds that no real model reaches; they bound work and memory on hostile files. */
#define MAX_TENSORS 100000
#define MAX_OPS 100000
#define MAX_ELEMS (256u * 1024u * 1024u)

static bool fail(char *err, size_t errlen, const char *name, const char *msg) {
    snprintf(err, errlen, "model %s: %s", name, msg);
    return false;
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        /* zero or subnormal: value = man * 2^-24 */
        float f = ldexpf((float)man, -24);
        return sign ? -f : f;
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static void decode_opts(ts_fb *fb, ts_fb_table op, ts_nn_opts *o) {
    memset(o, 0, sizeof *o);
    o->stride_w = o->stride_h = o->dilation_w = o->dilation_h = 1;
    o->depth_multiplier = 1;
    o->beta = 1.f;
    int type = ts_fb_u8(fb, op, OP_OPT_TYPE, 0);
    ts_fb_table t = ts_fb_table_field(fb, op, OP_OPTS, "builtin options");
    if (!t.ok) return;
    switch (type) {
    case BO_CONV2D:
        o->padding = ts_fb_u8(fb, t, 0, 0);
        o->stride_w = ts_fb_i32(fb, t, 1, 0);
        o->stride_h = ts_fb_i32(fb, t, 2, 0);
        o->activation = ts_fb_u8(fb, t, 3, 0);
        o->dilation_w = ts_fb_i32(fb, t, 4, 1);
        o->dilation_h = ts_fb_i32(fb, t, 5, 1);
        break;
    case BO_DEPTHWISE:
        o->padding = ts_fb_u8(fb, t, 0, 0);
        o->stride_w = ts_fb_i32(fb, t, 1, 0);
        o->stride_h = ts_fb_i32(fb, t, 2, 0);
        o->depth_multiplier = ts_fb_i32(fb, t, 3, 0);
        o->activation = ts_fb_u8(fb, t, 4, 0);
        o->dilation_w = ts_fb_i32(fb, t, 5, 1);
        o->dilation_h = ts_fb_i32(fb, t, 6, 1);
        break;
    case BO_POOL2D:
        o->padding = ts_fb_u8(fb, t, 0, 0);
        o->stride_w = ts_fb_i32(fb, t, 1, 0);
        o->stride_h = ts_fb_i32(fb, t, 2, 0);
        o->filter_w = ts_fb_i32(fb, t, 3, 0);
        o->filter_h = ts_fb_i32(fb, t, 4, 0);
        o->activation = ts_fb_u8(fb, t, 5, 0);
        break;
    case BO_FULLY_CONNECTED:
        o->activation = ts_fb_u8(fb, t, 0, 0);
        o->keep_num_dims = ts_fb_u8(fb, t, 2, 0) != 0;
        break;
    case BO_SOFTMAX:
        o->beta = ts_fb_f32(fb, t, 0, 0.f);
        break;
    case BO_CONCATENATION:
        o->axis = ts_fb_i32(fb, t, 0, 0);
        o->activation = ts_fb_u8(fb, t, 1, 0);
        break;
    case BO_ADD:
    case BO_MUL:
    case BO_SUB:
    case BO_DIV:
        o->activation = ts_fb_u8(fb, t, 0, 0);
        break;
    case BO_RESIZE_BILINEAR:
        o->align_corners = ts_fb_u8(fb, t, 2, 0) != 0;
        o->half_pixel_centers = ts_fb_u8(fb, t, 3, 0) != 0;
        break;
    case BO_STRIDED_SLICE:
        o->begin_mask = ts_fb_i32(fb, t, 0, 0);
        o->end_mask = ts_fb_i32(fb, t, 1, 0);
        o->ellipsis_mask = ts_fb_i32(fb, t, 2, 0);
        o->new_axis_mask = ts_fb_i32(fb, t, 3, 0);
        o->shrink_axis_mask = ts_fb_i32(fb, t, 4, 0);
        break;
    case BO_REDUCER:
        o->keep_dims = ts_fb_u8(fb, t, 0, 0) != 0;
        break;
    case BO_TRANSPOSE_CONV:
        o->padding = ts_fb_u8(fb, t, 0, 0);
        o->stride_w = ts_fb_i32(fb, t, 1, 0);
        o->stride_h = ts_fb_i32(fb, t, 2, 0);
        o->activation = ts_fb_u8(fb, t, 3, 0);
        break;
    case BO_LEAKY_RELU:
        o->alpha = ts_fb_f32(fb, t, 0, 0.f);
        break;
    case BO_DEPTH_TO_SPACE:
        o->block_size = ts_fb_i32(fb, t, 0, 0);
        break;
    default:
        break;
    }
}

void ts_nn_model_free(ts_nn_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_tensors; i++) {
        free(m->tensors[i].f32);
        free(m->tensors[i].i32);
    }
    for (int i = 0; i < m->n_ops; i++) free(m->ops[i].custom_opts);
    free(m->tensors);
    free(m->ops);
    free(m);
}

/* Reads an index vector (op or graph inputs/outputs) into out, checking each index. */
static bool read_indices(ts_fb *fb, ts_fb_vec v, int n_tensors, bool allow_omitted, int *out,
                         int *n_out, const char *what, char *msg, size_t cap) {
    if (!v.ok) {
        *n_out = 0;
        return true;
    }
    if (v.n > TS_NN_MAX_IO) {
        snprintf(msg, cap, "%s has %u tensors, more than the %d supported", what, v.n,
                 TS_NN_MAX_IO);
        return false;
    }
    for (uint32_t i = 0; i < v.n; i++) {
        int32_t idx = ts_fb_vec_i32(fb, v, i);
        if (idx == -1 && allow_omitted) {
            out[i] = -1;
            continue;
        }
        if (idx < 0 || idx >= n_tensors) {
            snprintf(msg, cap, "%s refers to tensor %d, but the model has %d tensors", what, idx,
                     n_tensors);
            return false;
        }
        out[i] = idx;
    }
    *n_out = (int)v.n;
    return true;
}

static bool load_tensor(ts_fb *fb, ts_fb_table tt, ts_fb_vec buffers, ts_nn_tensor *t, int index,
                        char *msg, size_t cap, size_t *const_bytes) {
    ts_fb_str_field(fb, tt, T_NAME, t->name, sizeof t->name, "tensor name");
    t->type = ts_fb_u8(fb, tt, T_TYPE, 0);
    ts_fb_vec shape = ts_fb_vec_field(fb, tt, T_SHAPE, 4, "tensor shape");
    if (fb->err[0]) return false;
    if (shape.n > TS_NN_MAX_RANK) {
        snprintf(msg, cap, "tensor %d (%s) has rank %u; at most %d is supported", index, t->name,
                 shape.n, TS_NN_MAX_RANK);
        return false;
    }
    t->rank = (int)shape.n;
    uint64_t count = 1;
    for (int d = 0; d < t->rank; d++) {
        t->dims[d] = ts_fb_vec_i32(fb, shape, (uint32_t)d);
        if (t->dims[d] < 0) {
            snprintf(msg, cap, "tensor %d (%s) has dynamic or negative dimension %d", index,
                     t->name, t->dims[d]);
            return false;
        }
        count *= (uint64_t)t->dims[d];
        if (count > MAX_ELEMS) {
            snprintf(msg, cap, "tensor %d (%s) is larger than %u elements", index, t->name,
                     MAX_ELEMS);
            return false;
        }
    }
    uint32_t bidx = ts_fb_u32(fb, tt, T_BUFFER, 0);
    if (bidx >= buffers.n) {
        snprintf(msg, cap, "tensor %d (%s) refers to buffer %u, but there are %u", index, t->name,
                 bidx, buffers.n);
        return false;
    }
    if (bidx == 0) return true; /* buffer 0 is the empty sentinel: an activation */
    ts_fb_table bt = ts_fb_vec_table(fb, buffers, bidx, "buffer");
    ts_fb_vec data = ts_fb_vec_field(fb, bt, BUF_DATA, 1, "buffer data");
    if (fb->err[0]) return false;
    if (!data.ok || data.n == 0) {
        if (ts_fb_u64(fb, bt, BUF_OFFSET, 0) > 1) {
            snprintf(msg, cap, "tensor %d (%s) uses out-of-flatbuffer data, not supported", index,
                     t->name);
            return false;
        }
        return true;
    }
    size_t esize = t->type == TS_TT_FLOAT16 ? 2 : t->type == TS_TT_INT64 ? 8 : 4;
    if (t->type != TS_TT_FLOAT32 && t->type != TS_TT_FLOAT16 && t->type != TS_TT_INT32 &&
        t->type != TS_TT_INT64) {
        snprintf(msg, cap,
                 "tensor %d (%s) has type %d; only float32, float16 and int32 "
                 "constants are supported",
                 index, t->name, t->type);
        return false;
    }
    if ((uint64_t)data.n != count * esize) {
        snprintf(msg, cap, "tensor %d (%s) holds %u bytes but its shape needs %llu", index, t->name,
                 data.n, (unsigned long long)(count * esize));
        return false;
    }
    const uint8_t *src = fb->buf + data.pos;
    t->is_const = true;
    if (t->type == TS_TT_INT32 || t->type == TS_TT_INT64) {
        t->i32 = malloc(count ? count * 4 : 4);
        if (!t->i32) return snprintf(msg, cap, "out of memory"), false;
        for (uint64_t i = 0; i < count; i++) {
            if (t->type == TS_TT_INT32) {
                memcpy(&t->i32[i], src + 4 * i, 4);
            } else {
                int64_t v;
                memcpy(&v, src + 8 * i, 8);
                t->i32[i] = v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
            }
        }
        *const_bytes += count * 4;
        return true;
    }
    t->f32 = malloc(count ? count * 4 : 4);
    if (!t->f32) return snprintf(msg, cap, "out of memory"), false;
    if (t->type == TS_TT_FLOAT32) {
        memcpy(t->f32, src, count * 4);
    } else {
        for (uint64_t i = 0; i < count; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            t->f32[i] = half_to_float(h);
        }
    }
    *const_bytes += count * 4;
    return true;
}

ts_nn_model *ts_nn_model_parse(const uint8_t *buf, size_t len, const char *name, char *err,
                               size_t errlen) {
    char msg[200] = "";
    ts_fb fb;
    ts_fb_init(&fb, buf, len);
    ts_nn_model *m = calloc(1, sizeof *m);
    if (!m) return fail(err, errlen, name, "out of memory"), NULL;
    snprintf(m->name, sizeof m->name, "%s", name);

    /* TFLite files carry the identifier "TFL3" right after the root offset. */
    if (len < 8 || memcmp(buf + 4, "TFL3", 4) != 0) {
        fail(err, errlen, name, "not a TFLite model (no TFL3 identifier)");
        goto bad;
    }
    ts_fb_table root = ts_fb_root(&fb, "model");
    uint32_t version = ts_fb_u32(&fb, root, MODEL_VERSION, 0);
    ts_fb_vec opcodes = ts_fb_vec_field(&fb, root, MODEL_OPCODES, 4, "operator codes");
    ts_fb_vec subgraphs = ts_fb_vec_field(&fb, root, MODEL_SUBGRAPHS, 4, "subgraphs");
    ts_fb_vec buffers = ts_fb_vec_field(&fb, root, MODEL_BUFFERS, 4, "buffers");
    if (fb.err[0]) goto fb_bad;
    if (version != 3) {
        snprintf(msg, sizeof msg, "schema version %u, expected 3", version);
        goto msg_bad;
    }
    if (!subgraphs.ok || subgraphs.n == 0) {
        snprintf(msg, sizeof msg, "has no subgraph");
        goto msg_bad;
    }
    if (!buffers.ok || buffers.n == 0) {
        snprintf(msg, sizeof msg, "has no buffer table");
        goto msg_bad;
    }
    /* Only the first subgraph runs; MediaPipe's models have one. */
    ts_fb_table sg = ts_fb_vec_table(&fb, subgraphs, 0, "subgraph");
    ts_fb_vec tensors = ts_fb_vec_field(&fb, sg, SG_TENSORS, 4, "tensors");
    ts_fb_vec ops = ts_fb_vec_field(&fb, sg, SG_OPERATORS, 4, "operators");
    if (fb.err[0]) goto fb_bad;
    if (!tensors.ok || tensors.n == 0 || tensors.n > MAX_TENSORS) {
        snprintf(msg, sizeof msg, "has %u tensors", tensors.ok ? tensors.n : 0);
        goto msg_bad;
    }
    if (ops.n > MAX_OPS) {
        snprintf(msg, sizeof msg, "has %u operators, too many", ops.n);
        goto msg_bad;
    }
    m->n_tensors = (int)tensors.n;
    m->n_ops = (int)ops.n;
    m->tensors = calloc(tensors.n, sizeof *m->tensors);
    m->ops = calloc(ops.n ? ops.n : 1, sizeof *m->ops);
    if (!m->tensors || !m->ops) {
        snprintf(msg, sizeof msg, "out of memory");
        goto msg_bad;
    }
    for (uint32_t i = 0; i < tensors.n; i++) {
        ts_fb_table tt = ts_fb_vec_table(&fb, tensors, i, "tensor");
        if (!load_tensor(&fb, tt, buffers, &m->tensors[i], (int)i, msg, sizeof msg,
                         &m->const_bytes)) {
            if (fb.err[0]) goto fb_bad;
            goto msg_bad;
        }
    }
    if (!read_indices(&fb, ts_fb_vec_field(&fb, sg, SG_INPUTS, 4, "graph inputs"), m->n_tensors,
                      false, m->inputs, &m->n_inputs, "graph inputs", msg, sizeof msg) ||
        !read_indices(&fb, ts_fb_vec_field(&fb, sg, SG_OUTPUTS, 4, "graph outputs"), m->n_tensors,
                      false, m->outputs, &m->n_outputs, "graph outputs", msg, sizeof msg))
        goto msg_or_fb_bad;

    for (uint32_t i = 0; i < ops.n; i++) {
        ts_nn_op *op = &m->ops[i];
        ts_fb_table ot = ts_fb_vec_table(&fb, ops, i, "operator");
        uint32_t oc = ts_fb_u32(&fb, ot, OP_OPCODE, 0);
        if (fb.err[0]) goto fb_bad;
        if (!opcodes.ok || oc >= opcodes.n) {
            snprintf(msg, sizeof msg, "operator %u uses opcode %u, but there are %u", i, oc,
                     opcodes.ok ? opcodes.n : 0);
            goto msg_bad;
        }
        ts_fb_table ct = ts_fb_vec_table(&fb, opcodes, oc, "operator code");
        /* builtin_code replaced the int8 deprecated_builtin_code at 127; take the larger. */
        int dep = (int8_t)ts_fb_u8(&fb, ct, OPCODE_DEPRECATED, 0);
        int bc = ts_fb_i32(&fb, ct, OPCODE_BUILTIN, 0);
        op->code = bc > dep ? bc : dep;
        op->version = ts_fb_i32(&fb, ct, OPCODE_VERSION, 1);
        if (op->code == TS_OP_CUSTOM)
            ts_fb_str_field(&fb, ct, OPCODE_CUSTOM, op->custom, sizeof op->custom, "custom code");
        char what[48];
        snprintf(what, sizeof what, "operator %u inputs", i);
        if (!read_indices(&fb, ts_fb_vec_field(&fb, ot, OP_INPUTS, 4, what), m->n_tensors, true,
                          op->in, &op->n_in, what, msg, sizeof msg))
            goto msg_or_fb_bad;
        snprintf(what, sizeof what, "operator %u outputs", i);
        if (!read_indices(&fb, ts_fb_vec_field(&fb, ot, OP_OUTPUTS, 4, what), m->n_tensors, false,
                          op->out, &op->n_out, what, msg, sizeof msg))
            goto msg_or_fb_bad;
        decode_opts(&fb, ot, &op->opt);
        ts_fb_vec co = ts_fb_vec_field(&fb, ot, OP_CUSTOM, 1, "custom options");
        if (fb.err[0]) goto fb_bad;
        if (co.ok && co.n) {
            op->custom_opts = malloc(co.n);
            if (!op->custom_opts) {
                snprintf(msg, sizeof msg, "out of memory");
                goto msg_bad;
            }
            memcpy(op->custom_opts, buf + co.pos, co.n);
            op->custom_len = co.n;
        }
    }

    /* Fold DEQUANTIZE of a constant: the weights were widened to float32 above, so the op's
     * output becomes that constant and the op runs no more. */
    for (int i = 0; i < m->n_ops; i++) {
        ts_nn_op *op = &m->ops[i];
        if (op->code != TS_OP_DEQUANTIZE || op->n_in != 1 || op->n_out != 1 || op->in[0] < 0)
            continue;
        ts_nn_tensor *src = &m->tensors[op->in[0]], *dst = &m->tensors[op->out[0]];
        if (!src->is_const || !src->f32 || dst->is_const) continue;
        uint64_t a = 1, b = 1;
        for (int d = 0; d < src->rank; d++) a *= (uint64_t)src->dims[d];
        for (int d = 0; d < dst->rank; d++) b *= (uint64_t)dst->dims[d];
        if (a != b) {
            snprintf(msg, sizeof msg, "DEQUANTIZE operator %d changes the element count", i);
            goto msg_bad;
        }
        dst->f32 = src->f32;
        src->f32 = NULL;
        src->is_const = false;
        dst->is_const = true;
        op->folded = true;
    }
    return m;

msg_or_fb_bad:
    if (fb.err[0]) goto fb_bad;
msg_bad:
    fail(err, errlen, name, msg);
    ts_nn_model_free(m);
    return NULL;
fb_bad:
    fail(err, errlen, name, fb.err);
bad:
    ts_nn_model_free(m);
    return NULL;
}

static void base_name(const char *path, char *out, size_t cap) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(out, cap, "%s", b);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = 0;
}

ts_nn_model *ts_nn_model_load(const char *path, char *err, size_t errlen) {
    char name[64];
    base_name(path, name, sizeof name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "model %s: cannot open %s: %s", name, path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size <= 0 || st.st_size > (1 << 30)) {
        snprintf(err, errlen, "model %s: %s is empty or too large", name, path);
        fclose(f);
        return NULL;
    }
    uint8_t *buf = malloc((size_t)st.st_size);
    if (!buf || fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        snprintf(err, errlen, "model %s: cannot read %s", name, path);
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    ts_nn_model *m = ts_nn_model_parse(buf, (size_t)st.st_size, name, err, errlen);
    free(buf);
    return m;
}

const char *ts_nn_op_name(const ts_nn_op *op, char *scratch, size_t cap) {
    static const struct {
        int code;
        const char *name;
    } names[] = {
        {TS_OP_ADD, "ADD"},
        {TS_OP_AVERAGE_POOL_2D, "AVERAGE_POOL_2D"},
        {TS_OP_CONCATENATION, "CONCATENATION"},
        {TS_OP_CONV_2D, "CONV_2D"},
        {TS_OP_DEPTHWISE_CONV_2D, "DEPTHWISE_CONV_2D"},
        {TS_OP_DEPTH_TO_SPACE, "DEPTH_TO_SPACE"},
        {TS_OP_DEQUANTIZE, "DEQUANTIZE"},
        {TS_OP_FULLY_CONNECTED, "FULLY_CONNECTED"},
        {TS_OP_LOGISTIC, "LOGISTIC"},
        {TS_OP_MAX_POOL_2D, "MAX_POOL_2D"},
        {TS_OP_MUL, "MUL"},
        {TS_OP_RELU, "RELU"},
        {TS_OP_RELU6, "RELU6"},
        {TS_OP_RESHAPE, "RESHAPE"},
        {TS_OP_RESIZE_BILINEAR, "RESIZE_BILINEAR"},
        {TS_OP_SOFTMAX, "SOFTMAX"},
        {TS_OP_TANH, "TANH"},
        {TS_OP_PAD, "PAD"},
        {TS_OP_TRANSPOSE, "TRANSPOSE"},
        {TS_OP_MEAN, "MEAN"},
        {TS_OP_SUB, "SUB"},
        {TS_OP_DIV, "DIV"},
        {TS_OP_STRIDED_SLICE, "STRIDED_SLICE"},
        {TS_OP_PRELU, "PRELU"},
        {TS_OP_MAXIMUM, "MAXIMUM"},
        {TS_OP_MINIMUM, "MINIMUM"},
        {TS_OP_SLICE, "SLICE"},
        {TS_OP_TRANSPOSE_CONV, "TRANSPOSE_CONV"},
        {TS_OP_LEAKY_RELU, "LEAKY_RELU"},
        {TS_OP_HARD_SWISH, "HARD_SWISH"},
    };
    if (op->code == TS_OP_CUSTOM) return op->custom[0] ? op->custom : "CUSTOM";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].code == op->code) return names[i].name;
    snprintf(scratch, cap, "BUILTIN_%d", op->code);
    return scratch;
}

uint8_t *ts_nn_model_cut(const uint8_t *buf, size_t len, int n_ops, const int *outputs,
                         int n_outputs, size_t *out_len, char *err, size_t errlen) {
    ts_fb fb;
    ts_fb_init(&fb, buf, len);
    ts_fb_table root = ts_fb_root(&fb, "model");
    ts_fb_vec subgraphs = ts_fb_vec_field(&fb, root, MODEL_SUBGRAPHS, 4, "subgraphs");
    ts_fb_table sg = ts_fb_vec_table(&fb, subgraphs, 0, "subgraph");
    ts_fb_vec ops = ts_fb_vec_field(&fb, sg, SG_OPERATORS, 4, "operators");
    size_t out_field = ts_fb_field(&fb, sg, SG_OUTPUTS, 4);
    if (fb.err[0] || !ops.ok || !out_field || n_ops < 0 || (uint32_t)n_ops > ops.n ||
        n_outputs <= 0) {
        snprintf(err, errlen, "cannot cut model: %s", fb.err[0] ? fb.err : "bad arguments");
        return NULL;
    }
    /* The new outputs vector goes at the end (4-aligned) so its uoffset points forward. */
    size_t at = (len + 3) & ~(size_t)3;
    size_t total = at + 4 + 4 * (size_t)n_outputs;
    uint8_t *copy = calloc(1, total);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(copy, buf, len);
    uint32_t n = (uint32_t)n_ops, no = (uint32_t)n_outputs;
    memcpy(copy + ts_fb_vec_len_pos(ops), &n, 4);
    memcpy(copy + at, &no, 4);
    for (int i = 0; i < n_outputs; i++) memcpy(copy + at + 4 + 4 * i, &outputs[i], 4);
    uint32_t rel = (uint32_t)(at - out_field);
    memcpy(copy + out_field, &rel, 4);
    *out_len = total;
    return copy;
}
