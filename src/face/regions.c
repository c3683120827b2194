/* Face region masks rasterised from the mesh.
 *
 * Every region is built on one output row at a time from 4 x 4 sub-samples per pixel: for each
 * sub-row a byte per sub-column is set where shapes add and cleared where they remove, and the
 * pixel's alpha is the share of its 16 sub-samples left set. Shapes are closed polygons (even-odd
 * fill: a sub-sample is inside when its centre lies in the polygon), triangles of the canonical
 * mesh (union), and circles. The optional feathering is a Gaussian blur (libvips) of the part of
 * the mask around the region, done in float and rounded once (exact up to sigma 4, libvips'
 * box-filter approximation above). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "face/regions.h"

/* Contours, as closed loops of mesh indices. The index sets come from MediaPipe's public face
 * mesh connection lists (mediapipe/python/solutions/face_mesh_connections.py in google/mediapipe,
 * FACEMESH_LIPS, FACEMESH_LEFT_EYE, FACEMESH_RIGHT_EYE, FACEMESH_LEFT_EYEBROW,
 * FACEMESH_RIGHT_EYEBROW, FACEMESH_FACE_OVAL), which give each contour as unordered edges, often
 * as two open lines (upper and lower); here each is chained into one loop: the lower line from
 * one corner to the other, then the upper line back. */

/* Outer lip contour: lower outer line from the right corner (61) to the left (291), upper outer
 * line back. */
static const int LIPS_OUTER[] = {61,  146, 91,  181, 84,  17, 314, 405, 321, 375,
                                 291, 409, 270, 269, 267, 0,  37,  39,  40,  185};
/* Inner lip contour (the mouth opening): corners 78 and 308. */
static const int LIPS_INNER[] = {78,  95,  88,  178, 87,  14, 317, 402, 318, 324,
                                 308, 415, 310, 311, 312, 13, 82,  81,  80,  191};
/* Eye openings along the lid margins: right eye corners 33 (outer) and 133 (inner), left eye
 * corners 263 (outer) and 362 (inner). */
static const int EYE_RIGHT[] = {33,  7,   163, 144, 145, 153, 154, 155,
                                133, 173, 157, 158, 159, 160, 161, 246};
static const int EYE_LEFT[] = {263, 249, 390, 373, 374, 380, 381, 382,
                               362, 398, 384, 385, 386, 387, 388, 466};
/* Brows: MediaPipe gives each as two open lines of five points, the upper brow edge (70 63 105
 * 66 107; 300 293 334 296 336) and the lower (46 53 52 65 55; 276 283 282 295 285). The brow is
 * the strip between them: the upper line outer to inner, then the lower line inner to outer. */
static const int BROW_RIGHT[] = {70, 63, 105, 66, 107, 55, 65, 52, 53, 46};
static const int BROW_LEFT[] = {300, 293, 334, 296, 336, 285, 295, 282, 283, 276};
/* Face oval, clockwise from the forehead top (10); used for the skin when no geometry is given. */
static const int FACE_OVAL[] = {10,  338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288,
                                397, 365, 379, 378, 400, 377, 152, 148, 176, 149, 150, 136,
                                172, 58,  132, 93,  234, 127, 162, 21,  54,  103, 67,  109};
/* Nostrils: not a MediaPipe list. Chosen by looking at the mesh numbers drawn over the nose on
 * the development photos: the ring of points around each dark nostril opening, from the alar
 * rim (166 / 392) over the top of the opening to the columella (238, 20 / 458, 250) and back
 * along the lip side. The two rings are mirror images in the canonical geometry. */
static const int NOSTRIL_RIGHT[] = {166, 79, 239, 238, 20, 60, 75};
static const int NOSTRIL_LEFT[] = {392, 309, 459, 458, 250, 290, 305};

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define SS 4               /* sub-samples per pixel along each axis (rasterise sums 4 as a word) */
#define FEATHER_EXACT 4.0f /* largest feather sigma blurred with the exact Gaussian */

enum { IRIS_RIGHT_CENTRE = 468, IRIS_LEFT_CENTRE = 473 };

const char *ts_face_region_name(ts_face_region r) {
    static const char *const names[TS_REGION_COUNT] = {
        "skin",  "right-eye", "left-eye", "right-iris", "left-iris",
        "brows", "lips",      "mouth",    "nostrils",   "face"};
    return (unsigned)r < TS_REGION_COUNT ? names[r] : "?";
}

/* A shape in mask pixels. */
typedef enum { SH_POLY, SH_CIRCLE } shape_kind;
typedef struct {
    shape_kind kind;
    int n;                /* polygon vertices */
    float xy[64][2];      /* polygon vertices (every contour above is shorter) */
    float cx, cy, r;      /* circle */
    float x0, x1, y0, y1; /* extent */
} shape;

static void poly_from(shape *s, const ts_face_mesh *m, const int *idx, int n, float scale) {
    s->kind = SH_POLY;
    s->n = n;
    s->x0 = s->y0 = INFINITY;
    s->x1 = s->y1 = -INFINITY;
    for (int i = 0; i < n; i++) {
        s->xy[i][0] = m->pts[idx[i]][0] * scale;
        s->xy[i][1] = m->pts[idx[i]][1] * scale;
        s->x0 = fminf(s->x0, s->xy[i][0]);
        s->x1 = fmaxf(s->x1, s->xy[i][0]);
        s->y0 = fminf(s->y0, s->xy[i][1]);
        s->y1 = fmaxf(s->y1, s->xy[i][1]);
    }
}

/* The iris disc: centred on the iris centre point, radius the mean distance of the four boundary
 * points (right, top, left, bottom of the iris in MediaPipe's order) from it. */
static void iris_from(shape *s, const ts_face_mesh *m, int centre, float scale) {
    const float *c = m->pts[centre];
    float r = 0;
    for (int k = 1; k <= 4; k++)
        r += hypotf(m->pts[centre + k][0] - c[0], m->pts[centre + k][1] - c[1]);
    s->kind = SH_CIRCLE;
    s->cx = c[0] * scale;
    s->cy = c[1] * scale;
    s->r = r / 4 * scale;
    s->x0 = s->cx - s->r;
    s->x1 = s->cx + s->r;
    s->y0 = s->cy - s->r;
    s->y1 = s->cy + s->r;
}

/* Sets (value 1) or clears (value 0) the sub-samples of row (length w sub-columns) whose centre
 * x lies in [xa, xb), x in mask pixels. */
static void fill_span(uint8_t *row, int w, float xa, float xb, uint8_t value) {
    /* sub-column i has its centre at (i + 0.5) / SS */
    float fa = ceilf(xa * SS - 0.5f), fb = ceilf(xb * SS - 0.5f);
    int a = fa < 0 ? 0 : fa > (float)w ? w : (int)fa;
    int b = fb < 0 ? 0 : fb > (float)w ? w : (int)fb;
    if (b > a) memset(row + a, value, (size_t)(b - a));
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Applies shape s to sub-row `row` at height y (mask pixels). */
static void shape_row(const shape *s, float y, uint8_t *row, int w, uint8_t value) {
    if (y < s->y0 || y > s->y1) return;
    if (s->kind == SH_CIRCLE) {
        float d = s->r * s->r - (y - s->cy) * (y - s->cy);
        if (d <= 0) return;
        float h = sqrtf(d);
        fill_span(row, w, s->cx - h, s->cx + h, value);
        return;
    }
    float xs[64];
    int k = 0;
    for (int i = 0, j = s->n - 1; i < s->n; j = i++) {
        float ya = s->xy[j][1], yb = s->xy[i][1];
        /* half-open rule: an edge counts for ya <= y < yb (either direction) */
        if ((ya <= y && y < yb) || (yb <= y && y < ya)) {
            float t = (y - ya) / (yb - ya);
            xs[k++] = s->xy[j][0] + t * (s->xy[i][0] - s->xy[j][0]);
        }
    }
    if (k < 2) return;
    qsort(xs, (size_t)k, sizeof xs[0], cmp_float);
    for (int i = 0; i + 1 < k; i += 2) fill_span(row, w, xs[i], xs[i + 1], value);
}

/* The recipe of a region: shapes added (union), shapes intersected with it, shapes removed. */
typedef struct {
    shape add[TS_GEOM_MAX_TRIANGLES + 1];
    int n_add;
    shape clip[1];
    int n_clip;
    shape sub[8];
    int n_sub;
} recipe;

static void add_triangles_or_oval(recipe *r, const ts_face_mesh *m, const ts_geom *g, float scale) {
    if (!g || g->n_triangles <= 0) {
        poly_from(&r->add[r->n_add++], m, FACE_OVAL, N_OF(FACE_OVAL), scale);
        return;
    }
    for (int t = 0; t < g->n_triangles && t < TS_GEOM_MAX_TRIANGLES; t++) {
        int idx[3] = {g->triangles[t][0], g->triangles[t][1], g->triangles[t][2]};
        poly_from(&r->add[r->n_add++], m, idx, 3, scale);
    }
}

static void build_recipe(recipe *r, const ts_face_mesh *m, const ts_geom *g, ts_face_region region,
                         float scale) {
    r->n_add = r->n_clip = r->n_sub = 0;
    switch (region) {
    case TS_REGION_SKIN:
        add_triangles_or_oval(r, m, g, scale);
        poly_from(&r->sub[r->n_sub++], m, EYE_RIGHT, N_OF(EYE_RIGHT), scale);
        poly_from(&r->sub[r->n_sub++], m, EYE_LEFT, N_OF(EYE_LEFT), scale);
        poly_from(&r->sub[r->n_sub++], m, BROW_RIGHT, N_OF(BROW_RIGHT), scale);
        poly_from(&r->sub[r->n_sub++], m, BROW_LEFT, N_OF(BROW_LEFT), scale);
        poly_from(&r->sub[r->n_sub++], m, LIPS_OUTER, N_OF(LIPS_OUTER), scale);
        poly_from(&r->sub[r->n_sub++], m, NOSTRIL_RIGHT, N_OF(NOSTRIL_RIGHT), scale);
        poly_from(&r->sub[r->n_sub++], m, NOSTRIL_LEFT, N_OF(NOSTRIL_LEFT), scale);
        break;
    case TS_REGION_FACE:
        add_triangles_or_oval(r, m, g, scale);
        break;
    case TS_REGION_RIGHT_EYE:
        poly_from(&r->add[r->n_add++], m, EYE_RIGHT, N_OF(EYE_RIGHT), scale);
        break;
    case TS_REGION_LEFT_EYE:
        poly_from(&r->add[r->n_add++], m, EYE_LEFT, N_OF(EYE_LEFT), scale);
        break;
    case TS_REGION_RIGHT_IRIS:
        iris_from(&r->add[r->n_add++], m, IRIS_RIGHT_CENTRE, scale);
        poly_from(&r->clip[r->n_clip++], m, EYE_RIGHT, N_OF(EYE_RIGHT), scale);
        break;
    case TS_REGION_LEFT_IRIS:
        iris_from(&r->add[r->n_add++], m, IRIS_LEFT_CENTRE, scale);
        poly_from(&r->clip[r->n_clip++], m, EYE_LEFT, N_OF(EYE_LEFT), scale);
        break;
    case TS_REGION_BROWS:
        poly_from(&r->add[r->n_add++], m, BROW_RIGHT, N_OF(BROW_RIGHT), scale);
        poly_from(&r->add[r->n_add++], m, BROW_LEFT, N_OF(BROW_LEFT), scale);
        break;
    case TS_REGION_LIPS:
        poly_from(&r->add[r->n_add++], m, LIPS_OUTER, N_OF(LIPS_OUTER), scale);
        poly_from(&r->sub[r->n_sub++], m, LIPS_INNER, N_OF(LIPS_INNER), scale);
        break;
    case TS_REGION_MOUTH:
        poly_from(&r->add[r->n_add++], m, LIPS_INNER, N_OF(LIPS_INNER), scale);
        break;
    case TS_REGION_NOSTRILS:
        poly_from(&r->add[r->n_add++], m, NOSTRIL_RIGHT, N_OF(NOSTRIL_RIGHT), scale);
        poly_from(&r->add[r->n_add++], m, NOSTRIL_LEFT, N_OF(NOSTRIL_LEFT), scale);
        break;
    default:
        break;
    }
}

/* Rasterises the recipe into mask (width x height, zeroed by the caller); reports the rows and
 * columns that hold anything in *bx0..*by1 (empty: bx0 > bx1). */
static void rasterise(const recipe *r, int width, int height, uint8_t *mask, uint8_t *sub,
                      uint8_t *tmp, uint16_t *acc, int *bx0, int *by0, int *bx1, int *by1) {
    int w = width * SS;
    float xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int i = 0; i < r->n_add; i++) {
        xlo = fminf(xlo, r->add[i].x0);
        xhi = fmaxf(xhi, r->add[i].x1);
        ylo = fminf(ylo, r->add[i].y0);
        yhi = fmaxf(yhi, r->add[i].y1);
    }
    *bx0 = width;
    *by0 = height;
    *bx1 = *by1 = -1;
    if (!(ylo <= yhi)) return;
    int j0 = ylo < 0 ? 0 : ylo >= (float)height ? height : (int)ylo;
    int j1 = yhi < 0 ? -1 : yhi >= (float)height ? height - 1 : (int)yhi;
    /* the pixel columns that may hold anything, and their sub-columns */
    int i0 = xlo < 0 ? 0 : xlo >= (float)width ? width : (int)xlo;
    int i1 = xhi < 0 ? -1 : xhi >= (float)width ? width - 1 : (int)xhi;
    if (i1 < i0) return;
    int s0 = i0 * SS, s1 = (i1 + 1) * SS;
    for (int j = j0; j <= j1; j++) {
        memset(acc + i0, 0, (size_t)(i1 - i0 + 1) * sizeof acc[0]);
        int any = 0;
        for (int s = 0; s < SS; s++) {
            float y = (float)j + ((float)s + 0.5f) / SS;
            memset(sub + s0, 0, (size_t)(s1 - s0));
            for (int i = 0; i < r->n_add; i++) shape_row(&r->add[i], y, sub, w, 1);
            for (int i = 0; i < r->n_clip; i++) {
                memset(tmp + s0, 0, (size_t)(s1 - s0));
                shape_row(&r->clip[i], y, tmp, w, 1);
                for (int x = s0; x < s1; x++) sub[x] &= tmp[x];
            }
            for (int i = 0; i < r->n_sub; i++) shape_row(&r->sub[i], y, sub, w, 0);
            /* a pixel's SS sub-samples (0 or 1 each) added as one word: the byte sum lands in
             * the top byte of the product */
            for (int x = i0; x <= i1; x++) {
                uint32_t v;
                memcpy(&v, sub + (size_t)x * SS, sizeof v);
                acc[x] += (uint16_t)((v * 0x01010101u) >> 24);
            }
        }
        uint8_t *row = mask + (size_t)j * (size_t)width;
        for (int x = i0; x <= i1; x++) {
            if (!acc[x]) continue;
            row[x] = (uint8_t)((acc[x] * 255 + SS * SS / 2) / (SS * SS));
            if (x < *bx0) *bx0 = x;
            if (x > *bx1) *bx1 = x;
            any = 1;
        }
        if (any) {
            if (j < *by0) *by0 = j;
            *by1 = j;
        }
    }
}

/* Blurs the rectangle (x, y, w, h) of mask in place with a Gaussian of sigma `sigma`. */
static ts_status feather(uint8_t *mask, int width, int x, int y, int w, int h, float sigma) {
    if (ts_vips_init() != 0) return TS_ERR_INTERNAL;
    float *f = malloc((size_t)w * (size_t)h * sizeof *f);
    if (!f) return TS_ERR_NOMEM;
    for (int j = 0; j < h; j++)
        for (int i = 0; i < w; i++) f[(size_t)j * w + i] = mask[(size_t)(y + j) * width + (x + i)];
    VipsImage *in =
        vips_image_new_from_memory(f, (size_t)w * h * sizeof *f, w, h, 1, VIPS_FORMAT_FLOAT);
    VipsImage *blur = NULL;
    ts_status st = TS_ERR_INTERNAL;
    /* min_ampl 0.001: the kernel runs to ~3.7 sigma, so the blur keeps the mask's mass. Up to
     * sigma FEATHER_EXACT the true Gaussian in float; above, libvips' approximation by layered box
     * filters (also mass-preserving, within ~5/255 of the exact blur, and ~25x faster at sigma
     * 56 on a 15-MP mask: 0.2 s instead of 5.4 s). */
    VipsPrecision prec = sigma <= FEATHER_EXACT ? VIPS_PRECISION_FLOAT : VIPS_PRECISION_APPROXIMATE;
    if (in && !vips_gaussblur(in, &blur, sigma, "precision", prec, "min_ampl", 0.001, NULL)) {
        size_t len = 0;
        float *o = vips_image_write_to_memory(blur, &len);
        if (o && len == (size_t)w * h * sizeof *o) {
            for (int j = 0; j < h; j++)
                for (int i = 0; i < w; i++) {
                    float v = o[(size_t)j * w + i];
                    v = v < 0 ? 0 : v > 255 ? 255 : v;
                    mask[(size_t)(y + j) * width + (x + i)] = (uint8_t)lrintf(v);
                }
            st = TS_OK;
        } else if (!o) {
            st = TS_ERR_NOMEM;
        }
        g_free(o);
    }
    if (st == TS_ERR_INTERNAL) vips_error_clear();
    if (blur) g_object_unref(blur);
    if (in) g_object_unref(in);
    free(f);
    return st;
}

ts_status ts_face_region_mask(const ts_face_mesh *m, const ts_geom *g, ts_face_region region,
                              int width, int height, float scale, float feather_px, uint8_t *out) {
    if (!m || !out || (unsigned)region >= TS_REGION_COUNT) return TS_ERR_ARGUMENT;
    if (width <= 0 || height <= 0 || (int64_t)width * height > ((int64_t)1 << 28) ||
        width > (1 << 28) / SS)
        return TS_ERR_ARGUMENT;
    if (!isfinite(scale) || scale <= 0 || !isfinite(feather_px) || feather_px < 0)
        return TS_ERR_ARGUMENT;
    for (int i = 0; i < TS_MESH_POINTS; i++)
        if (!isfinite(m->pts[i][0] * scale) || !isfinite(m->pts[i][1] * scale))
            return TS_ERR_ARGUMENT;
    if (g && g->n_triangles > 0 && !g->triangles) return TS_ERR_ARGUMENT;

    size_t npx = (size_t)width * (size_t)height;
    recipe *r = malloc(sizeof *r);
    uint8_t *mask = calloc(npx, 1), *sub = malloc((size_t)width * SS),
            *tmp = malloc((size_t)width * SS);
    uint16_t *acc = malloc((size_t)width * sizeof *acc);
    ts_status st = TS_ERR_NOMEM;
    if (r && mask && sub && tmp && acc) {
        build_recipe(r, m, g, region, scale);
        int x0, y0, x1, y1;
        rasterise(r, width, height, mask, sub, tmp, acc, &x0, &y0, &x1, &y1);
        st = TS_OK;
        if (feather_px > 0 && x0 <= x1) {
            /* the blur reaches ~3.7 sigma; 4 sigma of margin around what was drawn */
            int pad = (int)ceilf(4 * feather_px) + 1;
            x0 = x0 - pad < 0 ? 0 : x0 - pad;
            y0 = y0 - pad < 0 ? 0 : y0 - pad;
            x1 = x1 + pad >= width ? width - 1 : x1 + pad;
            y1 = y1 + pad >= height ? height - 1 : y1 + pad;
            st = feather(mask, width, x0, y0, x1 - x0 + 1, y1 - y0 + 1, feather_px);
        }
        if (st == TS_OK) memcpy(out, mask, npx);
    }
    free(r);
    free(mask);
    free(sub);
    free(tmp);
    free(acc);
    return st;
}
