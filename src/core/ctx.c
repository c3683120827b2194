#include <stdarg.h>
#include <stdio.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "face/geometry.h"

static _Thread_local char last_error[512];

const char *ts_status_name(ts_status s) {
    switch (s) {
    case TS_OK:
        return "ok";
    case TS_ERR_ARGUMENT:
        return "bad-argument";
    case TS_ERR_NOMEM:
        return "out-of-memory";
    case TS_ERR_READ:
        return "unreadable";
    case TS_ERR_FORMAT:
        return "unsupported-format";
    case TS_ERR_TOO_LARGE:
        return "too-large";
    case TS_ERR_NO_FACE:
        return "no-face";
    case TS_ERR_MODEL:
        return "model";
    case TS_ERR_WRITE:
        return "unwritable";
    case TS_ERR_INTERNAL:
        return "internal";
    case TS_ERR_NO_PERSON:
        return "no-person";
    case TS_ERR_IDENTITY:
        return "identity";
    case TS_ERR_FRAMING:
        return "framing";
    case TS_ERR_FACE_SMALL:
        return "face-too-small";
    }
    return "unknown";
}

int ts_status_exit_code(ts_status s) {
    /* 1 and 2 are left to the command line: 2 is usage, 1 a generic failure. */
    switch (s) {
    case TS_OK:
        return 0;
    case TS_ERR_ARGUMENT:
        return 2;
    case TS_ERR_READ:
        return 3;
    case TS_ERR_FORMAT:
        return 4;
    case TS_ERR_TOO_LARGE:
        return 5;
    case TS_ERR_NO_FACE:
        return 6;
    case TS_ERR_MODEL:
        return 7;
    case TS_ERR_WRITE:
        return 8;
    case TS_ERR_NOMEM:
        return 9;
    case TS_ERR_INTERNAL:
        return 10;
    case TS_ERR_NO_PERSON:
        return 11;
    case TS_ERR_IDENTITY:
        return 12;
    case TS_ERR_FRAMING:
        return 13;
    case TS_ERR_FACE_SMALL:
        return 14;
    }
    return 1;
}

const char *ts_vips_why(char *buf, size_t cap) {
    snprintf(buf, cap, "%s", vips_error_buffer());
    vips_error_clear();
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) buf[--n] = 0;
    for (char *p = buf; *p; p++)
        if (*p == '\n') *p = ' ';
    return buf;
}

ts_status ts_fail(ts_ctx *ctx, ts_status s, const char *fmt, ...) {
    char *dst = ctx ? ctx->err : last_error;
    size_t cap = ctx ? sizeof ctx->err : sizeof last_error;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
    return s;
}

void ts_ctx_options_init(ts_ctx_options *o) {
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->max_pixels = 100ull * 1000 * 1000;
}

const char *ts_last_error(void) {
    return last_error;
}
const char *ts_ctx_error(const ts_ctx *ctx) {
    return ctx ? ctx->err : last_error;
}

ts_status ts_ctx_new(const ts_ctx_options *opt, ts_ctx **out) {
    if (!out) return ts_fail(NULL, TS_ERR_ARGUMENT, "ts_ctx_new: out is NULL");
    ts_ctx_options o;
    ts_ctx_options_init(&o);
    if (opt) {
        /* Copy only the fields the caller's struct has: older callers pass a smaller size. */
        if (opt->size < sizeof(size_t) || opt->size > sizeof o)
            return ts_fail(NULL, TS_ERR_ARGUMENT,
                           "ts_ctx_new: options size %zu is invalid "
                           "(call ts_ctx_options_init)",
                           opt->size);
        memcpy(&o, opt, opt->size);
        o.size = sizeof o;
    }
    if (o.threads < 0 || o.threads > 64)
        return ts_fail(NULL, TS_ERR_ARGUMENT, "threads must be 0..64, not %d", o.threads);
    if (o.max_pixels == 0) o.max_pixels = 100ull * 1000 * 1000;
    if (ts_vips_init() != 0)
        return ts_fail(NULL, TS_ERR_INTERNAL, "libvips failed to start: %s", vips_error_buffer());
    ts_ctx *c = calloc(1, sizeof *c);
    if (!c) return ts_fail(NULL, TS_ERR_NOMEM, "out of memory");
    c->opt = o;
    c->opt.model_dir = NULL;
    const char *dir = o.model_dir ? o.model_dir : getenv("TRUESHOT_MODELS");
    if (dir && *dir) {
        snprintf(c->model_dir, sizeof c->model_dir, "%s", dir);
    } else {
        const char *cache = getenv("TRUESHOT_CACHE"), *home = getenv("HOME");
        if (cache && *cache)
            snprintf(c->model_dir, sizeof c->model_dir, "%s/models", cache);
        else
            snprintf(c->model_dir, sizeof c->model_dir, "%s/.cache/trueshot/models",
                     home && *home ? home : ".");
    }
    *out = c;
    return TS_OK;
}

static void settle(ts_ctx *ctx);

void ts_ctx_free(ts_ctx *ctx) {
    if (!ctx) return;
    settle(ctx);
    for (int i = 0; i < TS_MODEL_COUNT; i++) {
        ts_nn_runtime_free(ctx->second[i]);
        ts_nn_runtime_free(ctx->runtimes[i]);
        ts_nn_model_free(ctx->models[i]);
    }
    if (ctx->geom) {
        ts_geom_free(ctx->geom);
        free(ctx->geom);
    }
    free(ctx);
}

const char *ts_model_file(ts_model_id id) {
    static const char *const files[TS_MODEL_COUNT] = {
        "face_detection_short_range.tflite",
        "face_detection_full_range.tflite",
        "face_landmark.tflite",
        "face_landmark_with_attention.tflite",
        "selfie_segmentation.tflite",
        "selfie_segmentation_landscape.tflite",
    };
    return (unsigned)id < TS_MODEL_COUNT ? files[id] : NULL;
}

/* The runtime for id, loaded if it is not yet; quiet: no error said (the preload thread, which
 * must not write the ctx's message). */
static ts_nn_runtime *load_runtime(ts_ctx *ctx, ts_model_id id, bool quiet) {
    if (ctx->runtimes[id]) return ctx->runtimes[id];
    char path[1200], err[400];
    snprintf(path, sizeof path, "%s/%s", ctx->model_dir, ts_model_file(id));
    ts_nn_model *m = ts_nn_model_load(path, err, sizeof err);
    if (!m) {
        if (!quiet)
            ts_fail(ctx, TS_ERR_MODEL, "%s (run `make demo` or scripts/setup.sh to install models)",
                    err);
        return NULL;
    }
    ts_nn_runtime *rt = ts_nn_runtime_new(m, ctx->opt.threads, err, sizeof err);
    if (!rt) {
        ts_nn_model_free(m);
        if (!quiet) ts_fail(ctx, TS_ERR_MODEL, "%s", err);
        return NULL;
    }
    ctx->models[id] = m;
    ctx->runtimes[id] = rt;
    return rt;
}

static void *preload_run(void *arg) {
    ts_ctx *ctx = arg;
    for (int id = 0; id < TS_MODEL_COUNT; id++)
        if (ctx->preload_mask & (1u << id)) load_runtime(ctx, (ts_model_id)id, true);
    ts_model_id mesh = TS_MODEL_FACE_LANDMARK_ATTENTION;
    char err[400];
    if ((ctx->preload_mask & TS_PRELOAD_SECOND_MESH) && ctx->runtimes[mesh] && !ctx->second[mesh])
        ctx->second[mesh] = ts_nn_runtime_new(ctx->models[mesh], ctx->opt.threads, err, sizeof err);
    return NULL;
}

/* Waits for the preload thread, if any. */
static void settle(ts_ctx *ctx) {
    if (!ctx->preloading) return;
    pthread_join(ctx->preload, NULL);
    ctx->preloading = false;
}

void ts_ctx_preload(ts_ctx *ctx, unsigned mask) {
    if (!ctx) return;
    settle(ctx);
    ctx->preload_mask = mask;
    ctx->preloading = pthread_create(&ctx->preload, NULL, preload_run, ctx) == 0;
}

ts_nn_runtime *ts_ctx_runtime(ts_ctx *ctx, ts_model_id id) {
    if ((unsigned)id >= TS_MODEL_COUNT) {
        ts_fail(ctx, TS_ERR_ARGUMENT, "unknown model id %d", (int)id);
        return NULL;
    }
    settle(ctx);
    return load_runtime(ctx, id, false);
}

void ts_ctx_shadow(ts_ctx *ctx, ts_nn_runtime *mesh, ts_ctx *out) {
    settle(ctx);
    *out = *ctx;
    out->err[0] = 0;
    memset(out->second, 0, sizeof out->second);
    if (mesh) out->runtimes[TS_MODEL_FACE_LANDMARK_ATTENTION] = mesh;
}

ts_nn_runtime *ts_ctx_runtime_second(ts_ctx *ctx, ts_model_id id) {
    if (!ts_ctx_runtime(ctx, id)) return NULL; /* (settled there) */
    if (ctx->second[id]) return ctx->second[id];
    char err[400];
    if (!(ctx->second[id] = ts_nn_runtime_new(ctx->models[id], ctx->opt.threads, err, sizeof err)))
        ts_fail(ctx, TS_ERR_MODEL, "%s", err);
    return ctx->second[id];
}

ts_status ts_ctx_load_model(ts_ctx *ctx, ts_model_id id) {
    if (!ctx) return ts_fail(NULL, TS_ERR_ARGUMENT, "ctx is NULL");
    return ts_ctx_runtime(ctx, id) ? TS_OK : TS_ERR_MODEL;
}

ts_status ts_model_shape(ts_ctx *ctx, ts_model_id id, int is_output, int i,
                         ts_tensor_shape *shape) {
    if (!ctx || !shape) return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_model_shape: NULL argument");
    ts_nn_runtime *rt = ts_ctx_runtime(ctx, id);
    if (!rt) return TS_ERR_MODEL;
    ts_tview v = is_output ? ts_nn_output(rt, i) : ts_nn_input(rt, i);
    if (!v.data)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "model %s has no %s %d", ts_model_file(id),
                       is_output ? "output" : "input", i);
    shape->rank = v.rank;
    for (int d = 0; d < 6; d++) shape->dims[d] = d < v.rank ? v.dims[d] : 0;
    return TS_OK;
}

ts_status ts_model_run(ts_ctx *ctx, ts_model_id id, const float *const *inputs, int n_inputs,
                       float *const *outputs, const size_t *output_caps, int n_outputs) {
    if (!ctx || (n_inputs && !inputs) || (n_outputs && (!outputs || !output_caps)))
        return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_model_run: NULL argument");
    ts_nn_runtime *rt = ts_ctx_runtime(ctx, id);
    if (!rt) return TS_ERR_MODEL;
    if (n_inputs != ts_nn_n_inputs(rt) || n_outputs > ts_nn_n_outputs(rt))
        return ts_fail(ctx, TS_ERR_ARGUMENT, "model %s takes %d inputs and gives %d outputs",
                       ts_model_file(id), ts_nn_n_inputs(rt), ts_nn_n_outputs(rt));
    for (int i = 0; i < n_inputs; i++) {
        ts_tview v = ts_nn_input(rt, i);
        memcpy(v.data, inputs[i], ts_tview_count(&v) * sizeof(float));
    }
    char err[400];
    if (ts_nn_run(rt, err, sizeof err) != 0) return ts_fail(ctx, TS_ERR_INTERNAL, "%s", err);
    for (int i = 0; i < n_outputs; i++) {
        ts_tview v = ts_nn_output(rt, i);
        size_t n = ts_tview_count(&v);
        if (output_caps[i] < n)
            return ts_fail(ctx, TS_ERR_ARGUMENT, "output %d of %s needs %zu floats, got %zu", i,
                           ts_model_file(id), n, output_caps[i]);
        memcpy(outputs[i], v.data, n * sizeof(float));
    }
    return TS_OK;
}

void ts_heap_trim(void) {
#if defined(__GLIBC__) && !defined(TS_UNDER_ASAN)
    malloc_trim(0);
#endif
}

int ts_cpu_avx2(void) {
    static int avx2 = -1; /* a race here writes the same value twice */
    if (avx2 < 0) {
        int has = 0;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
        __builtin_cpu_init();
        has = __builtin_cpu_supports("avx2") != 0;
#endif
        const char *off = getenv("TRUESHOT_NO_AVX2");
        avx2 = has && !(off && *off && strcmp(off, "0"));
    }
    return avx2;
}
