/* The person probability over the matte region, from MediaPipe's selfie segmentation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "matte/matte.h"

/* Landscape model (256x144) when the region is clearly wider than tall, else the square one. */
#define LANDSCAPE_ASPECT 1.4

/* Bilinear resampling of a one-band image, pixel centres aligned (the same convention as the
 * network's input resize), edges clamped. */
static void upsample(const float *src, int sw, int sh, float *dst, int dw, int dh) {
    float fx = (float)sw / dw, fy = (float)sh / dh;
    int *x0 = malloc(sizeof *x0 * (size_t)dw);
    float *wx = malloc(sizeof *wx * (size_t)dw);
    if (!x0 || !wx) {
        /* Nearest neighbour rather than nothing when memory is that short. */
        for (int y = 0; y < dh; y++)
            for (int x = 0; x < dw; x++)
                dst[(size_t)y * dw + x] = src[(size_t)(y * sh / dh) * sw + x * sw / dw];
        free(x0);
        free(wx);
        return;
    }
    for (int x = 0; x < dw; x++) {
        float sx = (x + 0.5f) * fx - 0.5f;
        sx = sx < 0 ? 0 : sx > sw - 1 ? (float)(sw - 1) : sx;
        x0[x] = (int)sx < sw - 1 ? (int)sx : sw - 2 < 0 ? 0 : sw - 2;
        wx[x] = sw > 1 ? sx - x0[x] : 0;
    }
    for (int y = 0; y < dh; y++) {
        float sy = (y + 0.5f) * fy - 0.5f;
        sy = sy < 0 ? 0 : sy > sh - 1 ? (float)(sh - 1) : sy;
        int y0 = (int)sy < sh - 1 ? (int)sy : sh - 2 < 0 ? 0 : sh - 2;
        float wy = sh > 1 ? sy - y0 : 0;
        const float *r0 = src + (size_t)y0 * sw, *r1 = sh > 1 ? r0 + sw : r0;
        float *d = dst + (size_t)y * dw;
        for (int x = 0; x < dw; x++) {
            int i = x0[x], j = sw > 1 ? i + 1 : i;
            float top = r0[i] + wx[x] * (r0[j] - r0[i]);
            float bot = r1[i] + wx[x] * (r1[j] - r1[i]);
            d[x] = top + wy * (bot - top);
        }
    }
    free(x0);
    free(wx);
}

ts_status ts_matte_segment(ts_ctx *ctx, VipsImage *region, int mirror, float *prob) {
    int W = region->Xsize, H = region->Ysize;
    bool wide = W > LANDSCAPE_ASPECT * H;
    ts_model_id id = wide ? TS_MODEL_SELFIE_SEGMENTATION_LANDSCAPE : TS_MODEL_SELFIE_SEGMENTATION;
    ts_nn_runtime *rt = ts_ctx_runtime(ctx, id);
    if (!rt) return TS_ERR_MODEL;
    ts_tview in = ts_nn_input(rt, 0), out = ts_nn_output(rt, 0);
    /* NHWC input: 1 x h x w x 3; output 1 x h x w x 1. */
    int nh = in.dims[1], nw = in.dims[2];
    if (!in.data || !out.data || in.rank != 4 || in.dims[3] != 3 || nh < 2 || nw < 2)
        return ts_fail(ctx, TS_ERR_MODEL, "%s: unexpected input shape", ts_model_file(id));

    /* The whole region, stretched to the network's input (MediaPipe feeds it the same way). */
    VipsImage *small = NULL;
    if (vips_resize(region, &small, (double)nw / W, "vscale", (double)nh / H, NULL) != 0) {
        vips_error_clear();
        return ts_fail(ctx, TS_ERR_INTERNAL, "matte: resize for the network failed");
    }
    size_t len = 0;
    unsigned char *px = vips_image_write_to_memory(small, &len);
    int sw = small->Xsize, sh = small->Ysize, sb = small->Bands;
    g_object_unref(small);
    if (!px || sw != nw || sh != nh || sb < 3) {
        g_free(px);
        vips_error_clear();
        return ts_fail(ctx, TS_ERR_INTERNAL, "matte: resize for the network failed");
    }
    float *acc = calloc((size_t)nw * nh, sizeof *acc);
    if (!acc) {
        g_free(px);
        return ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
    }
    char err[300];
    int passes = mirror ? 2 : 1;
    for (int pass = 0; pass < passes; pass++) {
        for (int y = 0; y < nh; y++)
            for (int x = 0; x < nw; x++) {
                int sx = pass ? nw - 1 - x : x;
                const unsigned char *s = px + ((size_t)y * nw + sx) * sb;
                float *d = in.data + ((size_t)y * nw + x) * 3;
                for (int c = 0; c < 3; c++) d[c] = s[c] * (1.f / 255.f);
            }
        if (ts_nn_run(rt, err, sizeof err) != 0) {
            g_free(px);
            free(acc);
            return ts_fail(ctx, TS_ERR_INTERNAL, "matte: segmentation: %s", err);
        }
        for (int y = 0; y < nh; y++)
            for (int x = 0; x < nw; x++) {
                float v = out.data[(size_t)y * nw + (pass ? nw - 1 - x : x)];
                acc[(size_t)y * nw + x] += (isfinite(v) ? v : 0.f) / passes;
            }
    }
    g_free(px);
    upsample(acc, nw, nh, prob, W, H);
    free(acc);
    for (size_t i = 0; i < (size_t)W * H; i++) prob[i] = fminf(1.f, fmaxf(0.f, prob[i]));
    return TS_OK;
}
