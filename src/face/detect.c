#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "face/face.h"

#define SHORT_SIZE 128
#define SHORT_ANCHORS 896

/* SSD anchors of face_detection_short_range (MediaPipe's face_detection_short_range.pbtxt:
 * 4 layers, strides 8,16,16,16, one aspect ratio, fixed size, offset 0.5). Layers with the same
 * stride share a grid, so stride 8 gives 2 anchors per cell and stride 16 gives 6. */
static void anchors(float (*a)[2]) {
    int k = 0;
    const int strides[2] = {8, 16}, per_cell[2] = {2, 6};
    for (int l = 0; l < 2; l++) {
        int g = SHORT_SIZE / strides[l];
        for (int y = 0; y < g; y++)
            for (int x = 0; x < g; x++)
                for (int r = 0; r < per_cell[l]; r++) {
                    a[k][0] = (x + 0.5f) / g;
                    a[k][1] = (y + 0.5f) / g;
                    k++;
                }
    }
}

static float iou(const ts_face_box *a, const ts_face_box *b) {
    float x0 = fmaxf(a->x, b->x), y0 = fmaxf(a->y, b->y);
    float x1 = fminf(a->x + a->w, b->x + b->w), y1 = fminf(a->y + a->h, b->y + b->h);
    float inter = fmaxf(0, x1 - x0) * fmaxf(0, y1 - y0);
    float uni = a->w * a->h + b->w * b->h - inter;
    return uni > 0 ? inter / uni : 0;
}

static int by_score(const void *a, const void *b) {
    float x = ((const ts_face_box *)a)->score, y = ((const ts_face_box *)b)->score;
    return x < y ? 1 : x > y ? -1 : 0;
}

ts_status ts_face_detect(ts_ctx *ctx, ts_photo *p, ts_face_box *out, int cap, int *n) {
    if (!ctx || !p || !out || !n) return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_face_detect: NULL");
    ts_nn_runtime *rt = ts_ctx_runtime(ctx, TS_MODEL_FACE_DETECTION_SHORT);
    if (!rt) return TS_ERR_MODEL;
    ts_tview in = ts_nn_input(rt, 0);
    float xf[4];
    ts_status s = ts_photo_tensor(ctx, p, SHORT_SIZE, SHORT_SIZE, -1.f, 1.f, in.data, xf);
    if (s) return s;
    char err[300];
    if (ts_nn_run(rt, err, sizeof err)) return ts_fail(ctx, TS_ERR_INTERNAL, "%s", err);
    const float *reg = ts_nn_output(rt, 0).data, *cls = ts_nn_output(rt, 1).data;
    static float a[SHORT_ANCHORS][2];
    static int have_anchors;
    if (!have_anchors) anchors(a), have_anchors = 1;
    ts_face_box cand[64];
    int nc = 0;
    for (int i = 0; i < SHORT_ANCHORS && nc < 64; i++) {
        float logit = fminf(100.f, fmaxf(-100.f, cls[i]));
        float score = 1.f / (1.f + expf(-logit));
        if (score < 0.5f) continue;
        const float *r = reg + 16 * i;
        /* Offsets are in input pixels relative to the anchor centre (x_scale = 128). */
        float cx = r[0] / SHORT_SIZE + a[i][0], cy = r[1] / SHORT_SIZE + a[i][1];
        float w = r[2] / SHORT_SIZE, h = r[3] / SHORT_SIZE;
        ts_face_box *b = &cand[nc++];
        b->x = ((cx - w / 2) * SHORT_SIZE) * xf[0] + xf[1];
        b->y = ((cy - h / 2) * SHORT_SIZE) * xf[2] + xf[3];
        b->w = w * SHORT_SIZE * xf[0];
        b->h = h * SHORT_SIZE * xf[2];
        for (int k = 0; k < 6; k++) {
            b->kp[k][0] = (r[4 + 2 * k] / SHORT_SIZE + a[i][0]) * SHORT_SIZE * xf[0] + xf[1];
            b->kp[k][1] = (r[5 + 2 * k] / SHORT_SIZE + a[i][1]) * SHORT_SIZE * xf[2] + xf[3];
        }
        b->score = score;
    }
    qsort(cand, (size_t)nc, sizeof cand[0], by_score);
    /* Weighted non-maximum suppression: overlapping boxes are averaged, weighted by score. */
    bool used[64] = {false};
    int m = 0;
    for (int i = 0; i < nc && m < cap; i++) {
        if (used[i]) continue;
        ts_face_box acc = {0};
        float wsum = 0;
        for (int j = i; j < nc; j++) {
            if (used[j] || iou(&cand[i], &cand[j]) < 0.3f) continue;
            used[j] = true;
            float wt = cand[j].score;
            acc.x += wt * cand[j].x, acc.y += wt * cand[j].y;
            acc.w += wt * cand[j].w, acc.h += wt * cand[j].h;
            for (int k = 0; k < 6; k++)
                acc.kp[k][0] += wt * cand[j].kp[k][0], acc.kp[k][1] += wt * cand[j].kp[k][1];
            wsum += wt;
        }
        acc.x /= wsum, acc.y /= wsum, acc.w /= wsum, acc.h /= wsum;
        for (int k = 0; k < 6; k++) acc.kp[k][0] /= wsum, acc.kp[k][1] /= wsum;
        acc.score = cand[i].score;
        out[m++] = acc;
    }
    *n = m;
    return TS_OK;
}
