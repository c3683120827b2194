/* Face detection: MediaPipe's BlazeFace short-range and full-range detectors, merged.
 *
 * Both models see the photo letterboxed into their square input (ts_photo_tensor keeps the aspect
 * ratio, centres the picture and returns the tensor -> photo mapping), and both run on every photo:
 * they cost about 1 and 3.5 ms. Their raw candidates are pooled and merged by one weighted
 * non-maximum suppression (below), rather than picking one model per photo, because on the
 * development photos each model is blind where the other sees:
 *  - the full-range model finds every face the short-range one finds, and the small ones of group
 *    and distant photos besides, but misses faces that fill the frame (a selfie, a tight
 *    headshot: grace_hopper.jpg cropped to her head gives no face at all);
 *  - the short-range model finds those large faces, but on faces under about a quarter of its
 *    128 px input its boxes come out up to 1.8x too large and its eye distance off by 25-140%
 *    (faceapi_sample*.jpg, camera.png), and it adds near-threshold duplicates. So its candidates
 *    count only when their box is at least 32 px of its input (a face a quarter of the photo's
 *    longer side or more), the range it is made for ("faces within 2 m").
 * Where both see a face (large faces) their boxes agree to about 5% and their keypoints to a few
 * percent of the eye distance, so the score-weighted average of the pool is a consistent box.
 *
 * Each model also runs on the mirror image of its input, and those candidates (mapped back, left
 * and right keypoints swapped) join the pool. The networks are not mirror-symmetric: on small
 * faces a photo and its mirror gave boxes differing by up to 9% of the face width, and the
 * mirrored faceapi_sample2.jpg gave a face the photo did not. With both in the pool, a photo and
 * its mirror give the same faces (a webcam preview is mirrored), and recall improves, for twice
 * the network time (about 9 ms instead of 4.5). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "face/face.h"

/* The two detectors as configured in MediaPipe (mediapipe/modules/face_detection/
 * face_detection_short_range.pbtxt, face_detection_full_range.pbtxt and the shared graph
 * face_detection.pbtxt). Anchors: SSD anchors with offset 0.5, one aspect ratio, fixed size;
 * layers that share a stride share a grid, so short range has a 16x16 grid with 2 anchors per cell
 * (stride 8) then an 8x8 grid with 6 (three stride-16 layers, two anchors each) = 896 anchors,
 * and full range one 48x48 grid (stride 4) with one anchor per cell = 2304. Each anchor regresses
 * 16 numbers: box centre offset and size, then 6 keypoint offsets, all in input pixels
 * (x/y/w/h scale = input size) relative to the anchor centre. Scores are sigmoids of logits
 * clipped to +-100; MediaPipe keeps those >= 0.5 (short) and >= 0.6 (full). */
typedef struct {
    ts_model_id model;
    int size, anchors;
    float min_score;
    float min_box; /* ours, not MediaPipe's: smallest box width kept, in input pixels */
    int flag;
} detector;

static const detector detectors[2] = {
    {TS_MODEL_FACE_DETECTION_SHORT, 128, 896, 0.5f, 32.f, TS_FACE_SHORT},
    {TS_MODEL_FACE_DETECTION_FULL, 192, 2304, 0.6f, 0.f, TS_FACE_FULL},
};

/* Boxes overlapping the best remaining one by IoU above this are merged into it
 * (NonMaxSuppressionCalculator options in face_detection.pbtxt). */
#define NMS_IOU 0.3f

/* Centre of anchor i, in [0,1] input coordinates. */
static void anchor_centre(const detector *d, int i, float *ax, float *ay) {
    int g, cell;
    if (d->anchors == 896) {
        if (i < 512)
            g = 16, cell = i / 2;
        else
            g = 8, cell = (i - 512) / 6;
    } else {
        g = 48, cell = i;
    }
    *ax = (cell % g + 0.5f) / g;
    *ay = (cell / g + 0.5f) / g;
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

/* Appends the candidates of one network run above the score threshold to cand, mapped through
 * the letterbox xf to photo pixels. mirrored: the input was flipped left-right before the run. */
static void decode(const detector *d, const float *reg, const float *cls, bool mirrored,
                   const float xf[4], ts_face_box *cand, int *nc) {
    const float S = (float)d->size;
    /* Keypoint order is right eye, left eye, nose, mouth, right ear, left ear: the person's right
     * eye in a mirrored input is their left eye in the photo. */
    static const int swap[6] = {1, 0, 2, 3, 5, 4};
    for (int i = 0; i < d->anchors; i++) {
        float logit = fminf(100.f, fmaxf(-100.f, cls[i]));
        float score = 1.f / (1.f + expf(-logit));
        if (score < d->min_score) continue;
        const float *r = reg + 16 * i;
        if (r[2] < d->min_box) continue;
        float ax, ay;
        anchor_centre(d, i, &ax, &ay);
        /* Tensor pixels: anchor centre plus offset (flipped back if mirrored); then the letterbox
         * mapping to the photo. */
        float cx = ax * S + r[0], cy = ay * S + r[1], w = r[2], h = r[3];
        if (mirrored) cx = S - cx;
        ts_face_box *b = &cand[(*nc)++];
        b->x = (cx - w / 2) * xf[0] + xf[1];
        b->y = (cy - h / 2) * xf[2] + xf[3];
        b->w = w * xf[0];
        b->h = h * xf[2];
        for (int k = 0; k < 6; k++) {
            float kx = ax * S + r[4 + 2 * k], ky = ay * S + r[5 + 2 * k];
            if (mirrored) kx = S - kx;
            int o = mirrored ? swap[k] : k;
            b->kp[o][0] = kx * xf[0] + xf[1];
            b->kp[o][1] = ky * xf[2] + xf[3];
        }
        b->score = score;
        b->models = d->flag;
    }
}

/* Runs detector d on p (or on the part of it at area: x, y, w, h in photo pixels) and on its
 * mirror image, appending the candidates to cand (room for 2 * d->anchors more). */
static ts_status run_detector(ts_ctx *ctx, ts_photo *p, const double *area, const detector *d,
                              ts_face_box *cand, int *nc) {
    ts_nn_runtime *rt = ts_ctx_runtime(ctx, d->model);
    if (!rt) return TS_ERR_MODEL;
    ts_tview in = ts_nn_input(rt, 0);
    float xf[4];
    ts_status s = area
                      ? ts_photo_tensor_area(ctx, p, area, d->size, d->size, -1.f, 1.f, in.data, xf)
                      : ts_photo_tensor(ctx, p, d->size, d->size, -1.f, 1.f, in.data, xf);
    if (s) return s;
    char err[300];
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            for (int y = 0; y < d->size; y++) {
                float *row = in.data + (size_t)y * d->size * 3;
                for (int x = 0; x < d->size / 2; x++)
                    for (int c = 0; c < 3; c++) {
                        float t = row[3 * x + c];
                        row[3 * x + c] = row[3 * (d->size - 1 - x) + c];
                        row[3 * (d->size - 1 - x) + c] = t;
                    }
            }
        }
        if (ts_nn_run(rt, err, sizeof err)) return ts_fail(ctx, TS_ERR_INTERNAL, "%s", err);
        decode(d, ts_nn_output(rt, 0).data, ts_nn_output(rt, 1).data, pass == 1, xf, cand, nc);
    }
    return TS_OK;
}

/* Weighted non-maximum suppression, as MediaPipe's NonMaxSuppressionCalculator does it with
 * algorithm WEIGHTED (mediapipe/calculators/util/non_max_suppression_calculator.cc): take the
 * best-scoring remaining box; every remaining box whose IoU with it is above the threshold (the
 * best itself included) joins its group and leaves the pool; the group becomes one face whose
 * corners (xmin, ymin, xmax, ymax) and keypoints are the score-weighted means of the group's, and
 * whose score is the best box's score. Repeat until the pool is empty. cand is sorted here. */
static int weighted_nms(ts_face_box *cand, int nc, ts_face_box *out, int cap) {
    qsort(cand, (size_t)nc, sizeof cand[0], by_score);
    bool *used = calloc((size_t)nc + 1, sizeof *used);
    if (!used) return -1;
    int m = 0;
    for (int i = 0; i < nc && m < cap; i++) {
        if (used[i]) continue;
        double x0 = 0, y0 = 0, x1 = 0, y1 = 0, kp[6][2] = {{0}}, wsum = 0;
        int models = 0;
        for (int j = i; j < nc; j++) {
            if (used[j] || (j != i && iou(&cand[i], &cand[j]) <= NMS_IOU)) continue;
            used[j] = true;
            const ts_face_box *c = &cand[j];
            double wt = c->score;
            x0 += wt * c->x, y0 += wt * c->y;
            x1 += wt * (c->x + c->w), y1 += wt * (c->y + c->h);
            for (int k = 0; k < 6; k++) kp[k][0] += wt * c->kp[k][0], kp[k][1] += wt * c->kp[k][1];
            wsum += wt;
            models |= c->models;
        }
        ts_face_box *o = &out[m++];
        o->x = (float)(x0 / wsum), o->y = (float)(y0 / wsum);
        o->w = (float)(x1 / wsum) - o->x, o->h = (float)(y1 / wsum) - o->y;
        for (int k = 0; k < 6; k++)
            o->kp[k][0] = (float)(kp[k][0] / wsum), o->kp[k][1] = (float)(kp[k][1] / wsum);
        o->score = cand[i].score;
        o->models = models;
    }
    free(used);
    return m;
}

/* Faces too small for the detectors' view of the whole photo: the full-range detector finds
 * faces down to about a twentieth of its input's side, so in a panorama or a group photo 6000 px
 * wide a face 200 px wide (grace_hopper's, placed in a 6000 x 800 picture) is not found at all,
 * while the same face in a 3000 px wide part of it is. When the whole photo gives no face and its
 * longer side is TILE_FROM pixels or more (a webcam frame never is), the detectors look again at
 * parts of it, each seen at its own scale: squares as tall as the photo's shorter side along the
 * longer one, then squares half that size over the whole photo, each overlapping the next by
 * half (so a face up to half a square across lies whole in one of them). Their candidates are
 * pooled and merged as the whole photo's are. It costs the detectors' time once per square
 * (~9 ms), for photos that would otherwise fail with "no face". */
#define TILE_FROM 1600
#define TILE_MAX 48
/* A part seen closer shows clothes and backgrounds closer too: the short-range model, whose own
 * threshold is 0.5, found a 0.54 "face" on grace_hopper's jacket in a part of a tall photo. Its
 * candidates from parts need the full-range model's 0.6. */
#define TILE_MIN_SCORE 0.6f

/* Starts of squares of side t covering [0, len) with a step of at most t / 2, in at (filled
 * only when they are cap or fewer); returns how many there are. */
static int tile_starts(double len, double t, double *at, int cap) {
    int k = t >= len ? 1 : (int)ceil((len - t) / (t / 2)) + 1;
    for (int i = 0; i < k && k <= cap; i++) at[i] = k > 1 ? (len - t) * i / (k - 1) : 0;
    return k;
}

/* The squares of p to search when the whole photo gives no face ({x, y, side, side} each, in
 * photo pixels), as above; returns how many (at most cap). */
static int tiles_of(const ts_photo *p, double (*tiles)[4], int cap) {
    double W = p->width, H = p->height, shorter = W < H ? W : H, longer = W > H ? W : H;
    int n = 0;
    if (longer < TILE_FROM) return 0;
    for (int level = 0; level < 2; level++) {
        double t = level == 0 ? shorter : shorter / 2;
        if (level == 0 && longer < 1.5 * shorter) continue; /* one square: the whole photo */
        double xs[TILE_MAX], ys[TILE_MAX];
        int nx = tile_starts(W, t, xs, TILE_MAX), ny = tile_starts(H, t, ys, TILE_MAX);
        if (nx > TILE_MAX || ny > TILE_MAX || n + nx * ny > cap)
            continue; /* (a level is searched whole or not at all) */
        for (int j = 0; j < ny; j++)
            for (int i = 0; i < nx; i++)
                tiles[n][0] = xs[i], tiles[n][1] = ys[j], tiles[n][2] = tiles[n][3] = t, n++;
    }
    return n;
}

/* The detectors on p as it is turned now, merged: out (cap), *n. */
static ts_status detect_as_is(ts_ctx *ctx, ts_photo *p, int models, ts_face_box *out, int cap,
                              int *n) {
    *n = 0;
    size_t per_run = 2 * (size_t)(detectors[0].anchors + detectors[1].anchors);
    ts_face_box *cand = malloc(sizeof *cand * per_run);
    if (!cand) return ts_fail(ctx, TS_ERR_NOMEM, "ts_face_detect: out of memory");
    int nc = 0;
    ts_status s = TS_OK;
    for (int d = 0; d < 2 && !s; d++)
        if (models & detectors[d].flag) s = run_detector(ctx, p, NULL, &detectors[d], cand, &nc);
    double tiles[TILE_MAX][4];
    int nt = !s && nc == 0 ? tiles_of(p, tiles, TILE_MAX) : 0;
    /* Squares, when the whole photo gave nothing: the candidates above threshold are few, so the
     * pool grows by what each square adds. */
    for (int t = 0; t < nt && !s; t++) {
        ts_face_box *grown = realloc(cand, sizeof *cand * ((size_t)nc + per_run));
        if (!grown) {
            s = ts_fail(ctx, TS_ERR_NOMEM, "ts_face_detect: out of memory");
            break;
        }
        cand = grown;
        for (int d = 0; d < 2 && !s; d++) {
            if (!(models & detectors[d].flag)) continue;
            int from = nc;
            s = run_detector(ctx, p, tiles[t], &detectors[d], cand, &nc);
            int kept = from;
            for (int i = from; i < nc; i++)
                if (cand[i].score >= TILE_MIN_SCORE) cand[kept++] = cand[i];
            nc = kept;
        }
    }
    if (!s) {
        int m = weighted_nms(cand, nc, out, cap);
        if (m < 0)
            s = ts_fail(ctx, TS_ERR_NOMEM, "ts_face_detect: out of memory");
        else
            *n = m;
    }
    free(cand);
    return s;
}

static float best_score(const ts_face_box *b, int n) {
    float best = 0;
    for (int i = 0; i < n; i++) best = b[i].score > best ? b[i].score : best;
    return best;
}

/* Upside down: the detectors score an upright face 0.91-0.97 on the development portraits
 * (0.77 on messi5's distant ones) and the same faces upside down 0.56-0.81, their keypoints
 * then wrong and the face mesh reading garbage. A photo whose best face scores under TURN_TRY
 * is tried the other way up once (the first detection on it decides), and taken that way when
 * its best face scores TURN_GAIN more there, and at least TURN_TAKE (basketball1.png, no face,
 * finds a 0.54 "face" upside down). */
#define TURN_TRY 0.85f
#define TURN_GAIN 0.10f
#define TURN_TAKE 0.75f

ts_status ts_face_detect_with(ts_ctx *ctx, ts_photo *p, int models, ts_face_box *out, int cap,
                              int *n) {
    if (!ctx || !p || !out || !n || cap < 0)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_face_detect: NULL or negative cap");
    if (!(models & (TS_FACE_SHORT | TS_FACE_FULL)))
        return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_face_detect_with: no detector chosen");
    ts_status s = detect_as_is(ctx, p, models, out, cap, n);
    float best = s ? 1 : best_score(out, *n);
    if (best >= TURN_TRY || atomic_exchange(&p->turn_tried, 1)) return s;
    ts_face_box *other = malloc(sizeof *other * (size_t)(cap > 0 ? cap : 1));
    int n2 = 0;
    if (!other) return ts_fail(ctx, TS_ERR_NOMEM, "ts_face_detect: out of memory");
    /* The try is a second opinion: when it cannot be made (out of memory turning the photo or
     * detecting on it), the photo stays, or is put back, the way it was and the upright
     * detection stands. */
    if (ts_photo_turn_over(ctx, p) == TS_OK) {
        ts_status d = detect_as_is(ctx, p, models, other, cap, &n2);
        float turned = d ? 0 : best_score(other, n2);
        if (!d && turned >= best + TURN_GAIN && turned >= TURN_TAKE)
            memcpy(out, other, sizeof *out * (size_t)(*n = n2));
        else
            s = ts_photo_turn_over(ctx, p); /* back the way it was */
    }
    free(other);
    return s;
}

ts_status ts_face_detect(ts_ctx *ctx, ts_photo *p, ts_face_box *out, int cap, int *n) {
    return ts_face_detect_with(ctx, p, TS_FACE_SHORT | TS_FACE_FULL, out, cap, n);
}

int ts_face_subject(const ts_face_box *faces, int n, int width, int height) {
    if (!faces || n <= 0) return -1;
    float hx = width / 2.f, hy = height / 2.f, half_diag = hypotf(hx, hy);
    int best = -1;
    float best_v = -1;
    for (int i = 0; i < n; i++) {
        const ts_face_box *f = &faces[i];
        float d =
            half_diag > 0 ? hypotf(f->x + f->w / 2 - hx, f->y + f->h / 2 - hy) / half_diag : 0;
        float v = f->w * (1 - 0.5f * fminf(1.f, d));
        if (v > best_v) best_v = v, best = i;
    }
    return best;
}
