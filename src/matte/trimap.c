/* Trimap of the matte: confident person, confident background, and the band between them where
 * the alpha is solved. Also fills holes in the person before that, and afterwards moves band
 * pixels to the background: those of the background's own colours, and islands of alpha. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "matte/matte.h"

double ts_matte_fill_holes(float *prob, int w, int h, double max_frac) {
    size_t n = (size_t)w * h, person = 0;
    int *stack = malloc(sizeof *stack * n);
    uint8_t *seen = calloc(n, 1);
    if (!stack || !seen) {
        free(stack);
        free(seen);
        for (size_t i = 0; i < n; i++) person += prob[i] >= 0.5f;
        return (double)person / n;
    }
    /* Each 4-connected background component, flood-filled; the pixels of one component stay on
     * the stack after the fill, so a hole can be flipped without a second walk. */
    for (size_t start = 0; start < n; start++) {
        if (seen[start] || prob[start] >= 0.5f) continue;
        size_t top = 0, head = 0;
        bool border = false;
        stack[top++] = (int)start;
        seen[start] = 1;
        while (head < top) {
            int i = stack[head++], x = i % w, y = i / w;
            if (x == 0 || y == 0 || x == w - 1 || y == h - 1) border = true;
            int nb[4] = {x > 0 ? i - 1 : -1, x < w - 1 ? i + 1 : -1, y > 0 ? i - w : -1,
                         y < h - 1 ? i + w : -1};
            for (int k = 0; k < 4; k++)
                if (nb[k] >= 0 && !seen[nb[k]] && prob[nb[k]] < 0.5f) {
                    seen[nb[k]] = 1;
                    stack[top++] = nb[k];
                }
        }
        /* A pocket of background enclosed by the person is the network's mistake (a dark shirt,
         * a patterned tie), unless it is large: the gap between an arm and the body. */
        if (!border && top <= max_frac * n)
            for (size_t k = 0; k < top; k++) prob[stack[k]] = 1.f;
    }
    free(stack);
    free(seen);
    for (size_t i = 0; i < n; i++) person += prob[i] >= 0.5f;
    return (double)person / n;
}

int ts_matte_close_alpha_holes(float *alpha, uint8_t *tri, int w, int h, double max_frac) {
    size_t n = (size_t)w * h;
    float *a = malloc(sizeof *a * n);
    if (!a) return -1;
    memcpy(a, alpha, sizeof *a * n);
    ts_matte_fill_holes(a, w, h, max_frac);
    for (size_t i = 0; i < n; i++)
        if (alpha[i] < 0.5f && a[i] >= 0.5f) alpha[i] = 1.f, tri[i] = TS_TRI_FG;
    free(a);
    return 0;
}

/* Summed-area table of mask (w+1 x h+1). */
static void integral(const uint8_t *mask, int w, int h, uint32_t *sat) {
    memset(sat, 0, sizeof *sat * (size_t)(w + 1));
    for (int y = 0; y < h; y++) {
        uint32_t row = 0;
        uint32_t *s = sat + (size_t)(y + 1) * (w + 1), *above = s - (w + 1);
        s[0] = 0;
        for (int x = 0; x < w; x++) {
            row += mask[(size_t)y * w + x];
            s[x + 1] = above[x + 1] + row;
        }
    }
}

/* True when the (2r+1)^2 window at x, y, clipped to the image, is all set in the table's mask. */
static bool all_set(const uint32_t *sat, int w, int h, int x, int y, int r) {
    int x0 = x - r < 0 ? 0 : x - r, x1 = x + r + 1 > w ? w : x + r + 1;
    int y0 = y - r < 0 ? 0 : y - r, y1 = y + r + 1 > h ? h : y + r + 1;
    size_t W = (size_t)w + 1;
    uint32_t s = sat[y1 * W + x1] - sat[y0 * W + x1] - sat[y1 * W + x0] + sat[y0 * W + x0];
    return s == (uint32_t)((x1 - x0) * (y1 - y0));
}

void ts_matte_trimap(const float *prob, int w, int h, int r, int r_top, int y_top, uint8_t *tri) {
    size_t n = (size_t)w * h;
    uint8_t *fg = malloc(n), *bg = malloc(n);
    uint32_t *sf = malloc(sizeof *sf * (size_t)(w + 1) * (h + 1));
    uint32_t *sb = malloc(sizeof *sb * (size_t)(w + 1) * (h + 1));
    if (!fg || !bg || !sf || !sb) {
        /* Without memory for the erosion: thresholds alone. */
        for (size_t i = 0; i < n; i++)
            tri[i] = prob[i] > 0.9f ? TS_TRI_FG : prob[i] < 0.1f ? TS_TRI_BG : TS_TRI_UNKNOWN;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        fg[i] = prob[i] > 0.9f;
        bg[i] = prob[i] < 0.1f;
    }
    integral(fg, w, h, sf);
    integral(bg, w, h, sb);
    for (int y = 0; y < h; y++) {
        /* Flyaway hair reaches out into what the network calls background: above the eyes
         * the band grows outwards only, so the crown's own dark or tinted hair stays sure. */
        int rb = y < y_top ? r_top : r;
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            tri[i] = fg[i] && all_set(sf, w, h, x, y, r)    ? TS_TRI_FG
                     : bg[i] && all_set(sb, w, h, x, y, rb) ? TS_TRI_BG
                                                            : TS_TRI_UNKNOWN;
        }
    }
done:
    free(fg);
    free(bg);
    free(sf);
    free(sb);
}

/* The colour model's planes (13): the sure person's colours and mask weighted towards its darker
 * colours (1 - luma), then its brighter ones (luma); the sure background's colours, mask and
 * squared colour (for its variance). */
#define COLOUR_PLANES 13
/* The sure background counts as flat (its local mean is its colour, within noise) below this
 * variance (sum over the channels, 0..1 units: a standard deviation of ~3 levels per channel),
 * and not at all above FLAT_VAR_MAX (~6.5 levels). */
#define FLAT_VAR_FULL 0.0005f
#define FLAT_VAR_MAX 0.002f

typedef struct colour_job {
    const ts_fimg *rgb;
    const uint8_t *tri;
    float *alpha;
    float *bg;
    int hw, hh;    /* the half-resolution grid of the means */
    float *planes; /* hw x hh x COLOUR_PLANES: the planes at half resolution */
    float *means;  /* the same: their box means */
} colour_job;

/* The planes of one work pixel, added into o. */
static inline void colour_planes(const float *I, uint8_t t, float *o) {
    float fg = t == TS_TRI_FG, bg = t == TS_TRI_BG;
    float l = 0.299f * I[0] + 0.587f * I[1] + 0.114f * I[2];
    float fb = fg * l, fd = fg - fb;
    o[0] += I[0] * fd, o[1] += I[1] * fd, o[2] += I[2] * fd, o[3] += fd;
    o[4] += I[0] * fb, o[5] += I[1] * fb, o[6] += I[2] * fb, o[7] += fb;
    o[8] += I[0] * bg, o[9] += I[1] * bg, o[10] += I[2] * bg, o[11] += bg;
    o[12] += (I[0] * I[0] + I[1] * I[1] + I[2] * I[2]) * bg;
}

/* Rows begin..end of the planes at half resolution, into j->planes: the mean over each 2 x 2
 * block (clipped). */
static void colour_half_rows(void *arg, int begin, int end) {
    const colour_job *j = arg;
    for (int y = begin; y < end; y++) {
        float *o = j->planes + (size_t)y * j->hw * COLOUR_PLANES;
        int w = j->rgb->w, h = j->rgb->h, bands = j->rgb->bands;
        int y0 = 2 * y, y1 = 2 * y + 1 < h ? 2 * y + 1 : y0;
        memset(o, 0, sizeof *o * (size_t)j->hw * COLOUR_PLANES);
        for (int x = 0; x < j->hw; x++, o += COLOUR_PLANES) {
            int x0 = 2 * x, x1 = 2 * x + 1 < w ? 2 * x + 1 : x0;
            int xs[2] = {x0, x1}, ys[2] = {y0, y1};
            for (int b = 0; b < 2; b++)
                for (int a = 0; a < 2; a++) {
                    size_t i = (size_t)ys[b] * w + xs[a];
                    colour_planes(j->rgb->px + i * bands, j->tri[i], o);
                }
            for (int c = 0; c < COLOUR_PLANES; c++) o[c] *= 0.25f;
        }
    }
}

static void colour_produce(void *arg, int y, float *o) {
    const colour_job *j = arg;
    memcpy(o, j->planes + (size_t)y * j->hw * COLOUR_PLANES,
           sizeof *o * (size_t)j->hw * COLOUR_PLANES);
}

static void colour_store(void *arg, int y, const float *mean) {
    const colour_job *j = arg;
    memcpy(j->means + (size_t)y * j->hw * COLOUR_PLANES, mean,
           sizeof *mean * (size_t)j->hw * COLOUR_PLANES);
}

static inline float dot3(const float *a, const float *b) {
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

/* The colour model at band pixel (x, y), from its planes' local means o. */
static void colour_pixel(const colour_job *j, int x, int y, const float *o) {
    int w = j->rgb->w;
    size_t i = (size_t)y * w + x;
    const float *I = j->rgb->px + i * j->rgb->bands;
    float wf = o[3] + o[7];
    /* All four written even when the pixel is left as it is: bg_at (matte.c) takes 0 times the
     * colour there, and 0 times whatever a fresh buffer held (a NaN, by chance) made the
     * foreground colour differ from run to run. */
    if (j->bg) memset(j->bg + i * 4, 0, sizeof(float) * 4);
    if (wf < 1e-3f || o[11] < 1e-3f) return;
    float d[3], e[3], d1[3], d2[3];
    for (int c = 0; c < 3; c++) {
        float B = o[8 + c] / o[11];
        d[c] = (o[c] + o[4 + c]) / wf - B;
        e[c] = I[c] - B;
        d1[c] = o[3] > 1e-4f ? o[c] / o[3] - B : d[c];
        d2[c] = o[7] > 1e-4f ? o[4 + c] / o[7] - B : d[c];
    }
    if (j->bg) {
        float *bo = j->bg + i * 4, var = o[12] / o[11];
        for (int c = 0; c < 3; c++) bo[c] = o[8 + c] / o[11], var -= bo[c] * bo[c];
        float fl = (FLAT_VAR_MAX - var) / (FLAT_VAR_MAX - FLAT_VAR_FULL);
        bo[3] = fl < 0 ? 0 : fl > 1 ? 1 : fl;
    }
    float dd = dot3(d, d), ed = dot3(e, d);
    /* Colours closer than ~0.1 (in 0..1 units) say little; from ~0.25 apart, trust them. */
    float trust = (dd - 0.01f) / 0.05f;
    trust = trust < 0 ? 0 : trust > 1 ? 1 : trust;
    /* Where the network sees (almost) no person, a busy background's colours (a flag, a
     * bookshelf) would pass for foreground: it must see a little of one. */
    float *alpha = j->alpha + i;
    float seen = *alpha / 0.15f;
    trust *= seen > 1 ? 1 : seen;
    /* The colour line from B through the person's mean colour; where the darker and brighter
     * person colours span a plane with B, the fit in that plane (a dark strand at the edge
     * of lighter hair is not taken for a partly transparent one). */
    float a = ed / (dd > 1e-6f ? dd : 1e-6f);
    float s11 = dot3(d1, d1), s12 = dot3(d1, d2), s22 = dot3(d2, d2);
    float r1 = dot3(e, d1), r2 = dot3(e, d2), det = s11 * s22 - s12 * s12;
    if (s11 > 1e-6f && s22 > 1e-6f && det > 1e-4f * s11 * s22) {
        float u = (s22 * r1 - s12 * r2) / det, v = (s11 * r2 - s12 * r1) / det;
        if (u < 0)
            u = 0, v = r2 / s22;
        else if (v < 0)
            v = 0, u = r1 / s11;
        a = u + v;
    }
    a = a < 0 ? 0 : a > 1 ? 1 : a;
    *alpha = trust * a + (1 - trust) * *alpha;
}

/* The band's pixels, rows begin..end: the means interpolated bilinearly from the half grid. */
static void colour_rows(void *arg, int begin, int end) {
    const colour_job *j = arg;
    int w = j->rgb->w, hw = j->hw, hh = j->hh;
    float o[COLOUR_PLANES];
    for (int y = begin; y < end; y++) {
        const uint8_t *t = j->tri + (size_t)y * w;
        float v = (y + 0.5f) * 0.5f - 0.5f;
        v = v < 0 ? 0 : v > hh - 1 ? (float)(hh - 1) : v;
        int v0 = (int)v, v1 = v0 + 1 < hh ? v0 + 1 : v0;
        float fy = v - v0;
        const float *r0 = j->means + (size_t)v0 * hw * COLOUR_PLANES,
                    *r1 = j->means + (size_t)v1 * hw * COLOUR_PLANES;
        for (int x = 0; x < w; x++) {
            if (t[x] != TS_TRI_UNKNOWN) continue;
            float u = (x + 0.5f) * 0.5f - 0.5f;
            u = u < 0 ? 0 : u > hw - 1 ? (float)(hw - 1) : u;
            int u0 = (int)u, u1 = u0 + 1 < hw ? u0 + 1 : u0;
            float fx = u - u0;
            const float *p00 = r0 + (size_t)u0 * COLOUR_PLANES,
                        *p01 = r0 + (size_t)u1 * COLOUR_PLANES;
            const float *p10 = r1 + (size_t)u0 * COLOUR_PLANES,
                        *p11 = r1 + (size_t)u1 * COLOUR_PLANES;
            for (int c = 0; c < COLOUR_PLANES; c++) {
                float top = p00[c] + fx * (p01[c] - p00[c]), bot = p10[c] + fx * (p11[c] - p10[c]);
                o[c] = top + fy * (bot - top);
            }
            colour_pixel(j, x, y, o);
        }
    }
}

int ts_matte_colour_alpha(const ts_fimg *rgb, const uint8_t *tri, int r, float *alpha, float *bg) {
    /* Normalised convolution: box means of the masked colours over the box means of the masks.
     * The means are smooth (r is several times the band): computed on a half-resolution grid
     * (2 x 2 block means, radius r / 2) and interpolated at the band's pixels. */
    int hw = (rgb->w + 1) / 2, hh = (rgb->h + 1) / 2;
    size_t len = (size_t)hw * hh * COLOUR_PLANES;
    colour_job j = {rgb, tri, alpha, bg, hw, hh, malloc(sizeof(float) * len * 2), NULL};
    if (!j.planes) return -1;
    j.means = j.planes + len;
    ts_matte_parallel(hh, colour_half_rows, &j);
    int hr = r / 2 > 1 ? r / 2 : 1;
    int rc = ts_matte_box_stream(hw, hh, COLOUR_PLANES, hr, colour_produce, colour_store, &j);
    if (rc == 0) ts_matte_parallel(rgb->h, colour_rows, &j);
    free(j.planes);
    return rc;
}

/* The expected silhouette of a person below a face, in face widths (docs/matte.md): the head
 * (hair and ears) within HEAD_HW of the centre line, an ellipse above the box top; widening from
 * SHOULDER_START to SHOULDER_END face heights below the chin to the shoulders' SHOULDER_HW, then
 * slowly (arms). */
#define HEAD_HW 0.9f
#define HEAD_ABOVE 1.0f /* face heights above the box top where the ellipse ends */
#define SHOULDER_START 0.15f
#define SHOULDER_END 1.0f
#define SHOULDER_HW 2.0f       /* for the fade: generous, so shoulders leaving the region stay */
#define SPLIT_SHOULDER_HW 1.5f /* for the split with a neighbour: a typical build */
#define BODY_WIDEN 0.3f
/* The subject's prior is 1 inside the silhouette and fades to 0 at FADE_END times its size. */
#define FADE_END 1.5f
/* Between the subject and a neighbour the boundary is where the two normalised distances are
 * equal, softened over +-SPLIT_SOFT of their ratio. */
#define SPLIT_SOFT 0.08f

/* Normalised distance of (x, y) from face f's expected silhouette: 0 on the centre line, 1 at
 * its edge. */
static float body_dist(const ts_matte_face *f, float x, float y, float shoulder_hw) {
    float h = f->chin - f->top > 1 ? f->chin - f->top : 1, t = (y - f->chin) / h, hw;
    if (t <= SHOULDER_START)
        hw = HEAD_HW;
    else if (t < SHOULDER_END)
        hw = HEAD_HW +
             (shoulder_hw - HEAD_HW) * (t - SHOULDER_START) / (SHOULDER_END - SHOULDER_START);
    else
        hw = shoulder_hw + BODY_WIDEN * (t - SHOULDER_END);
    float dx = fabsf(x - f->cx) / (hw * (f->w > 1 ? f->w : 1));
    float u = (f->top - y) / (HEAD_ABOVE * h);
    return u > 0 ? sqrtf(dx * dx + u * u) : dx;
}

float ts_matte_subject_weight(const ts_matte_face *faces, int nf, int subject, float x, float y) {
    float wgt = (FADE_END - body_dist(&faces[subject], x, y, SHOULDER_HW)) / (FADE_END - 1.f);
    wgt = wgt < 0 ? 0 : wgt > 1 ? 1 : wgt;
    float ds = 0;
    int first = subject == 0 ? 1 : 0;
    for (int i = 0; i < nf && wgt > 0; i++) {
        if (i == subject) continue;
        if (i == first) ds = body_dist(&faces[subject], x, y, SPLIT_SHOULDER_HW);
        float dn = body_dist(&faces[i], x, y, SPLIT_SHOULDER_HW);
        float r = ds / (dn > 1e-3f ? dn : 1e-3f);
        float c = (1.f + SPLIT_SOFT - r) / (2 * SPLIT_SOFT);
        wgt *= c < 0 ? 0 : c > 1 ? 1 : c;
    }
    return wgt;
}

void ts_matte_isolate(float *prob, int w, int h, const ts_matte_face *faces, int nf, int subject) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            prob[(size_t)y * w + x] *=
                ts_matte_subject_weight(faces, nf, subject, x + .5f, y + .5f);
    /* Only the person joined to the subject's face: other components of p >= 0.5 go, then the
     * soft fringes (p >= 0.1) not joined to what is left. */
    size_t n = (size_t)w * h;
    int *stack = malloc(sizeof *stack * n);
    uint8_t *seen = calloc(n, 1);
    if (!stack || !seen) {
        free(stack), free(seen);
        return;
    }
    const ts_matte_face *f = &faces[subject];
    size_t top = 0;
    /* Seeds: the person pixels in the middle of the face box. */
    int fx0 = (int)(f->cx - f->w / 4), fx1 = (int)(f->cx + f->w / 4);
    int fy0 = (int)(f->top + (f->chin - f->top) / 4), fy1 = (int)(f->chin - (f->chin - f->top) / 4);
    for (int y = fy0 < 0 ? 0 : fy0; y <= fy1 && y < h; y++)
        for (int x = fx0 < 0 ? 0 : fx0; x <= fx1 && x < w; x++) {
            size_t i = (size_t)y * w + x;
            if (prob[i] >= 0.5f && !seen[i]) seen[i] = 1, stack[top++] = (int)i;
        }
    if (!top) {
        free(stack), free(seen);
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        float thr = pass ? 0.1f : 0.5f;
        if (pass)
            for (size_t i = 0; i < n; i++)
                if (seen[i]) stack[top++] = (int)i;
        while (top) {
            int i = stack[--top], x = i % w, y = i / w;
            int nb[4] = {x > 0 ? i - 1 : -1, x < w - 1 ? i + 1 : -1, y > 0 ? i - w : -1,
                         y < h - 1 ? i + w : -1};
            for (int k = 0; k < 4; k++)
                if (nb[k] >= 0 && !seen[nb[k]] && prob[nb[k]] >= thr) {
                    seen[nb[k]] = 1;
                    stack[top++] = nb[k];
                }
        }
        for (size_t i = 0; i < n; i++)
            if (!seen[i] && prob[i] >= thr) prob[i] = 0.f;
    }
    free(stack);
    free(seen);
}

/* The background-colour test (docs/matte.md): RGB histograms of BGC_BINS bins per channel of
 * the sure background and of the sure person within r_near of the band, each smoothed by
 * [1 2 1] along every axis and normalised. A band pixel whose colour is at least as frequent in
 * the background as a uniform spread (BGC_MIN_BG) and BGC_RATIO_LO times more frequent there
 * than at the person's edge starts to count as background, fully from BGC_RATIO_HI: a flag's
 * stripe or cord beside the hair, fur behind a head. Where the network is sure of the person
 * (p >= BGC_P_HI) the test is off, fully on from BGC_P_LO down: a crowd behind the head holds
 * the hair's own colours. */
#define BGC_BINS 32
#define BGC_RATIO_LO 16.f
#define BGC_RATIO_HI 64.f
#define BGC_MIN_BG 1.f
#define BGC_P_HI 0.9f
#define BGC_P_LO 0.5f
/* A strong background colour: weight at least BGC_STRONG_W and BGC_STRONG_BG times the uniform
 * density in the background (a flag's few colours, not a crowd's many), where p is below
 * BGC_STRONG_P. */
#define BGC_STRONG_W 0.7f
#define BGC_STRONG_BG 20.f
#define BGC_STRONG_P 0.8f

static inline int bgc_bin(const float *I) {
    int r = (int)(I[0] * BGC_BINS), g = (int)(I[1] * BGC_BINS), b = (int)(I[2] * BGC_BINS);
    r = r < 0 ? 0 : r >= BGC_BINS ? BGC_BINS - 1 : r;
    g = g < 0 ? 0 : g >= BGC_BINS ? BGC_BINS - 1 : g;
    b = b < 0 ? 0 : b >= BGC_BINS ? BGC_BINS - 1 : b;
    return (r * BGC_BINS + g) * BGC_BINS + b;
}

/* [1 2 1] / 4 along each axis of a BGC_BINS^3 histogram, clamped at the ends; then scaled so
 * that the mean bin is 1. tmp has the histogram's size. */
static void bgc_smooth(float *hist, float *tmp) {
    const int n = BGC_BINS, stride[3] = {n * n, n, 1};
    for (int axis = 0; axis < 3; axis++) {
        int s = stride[axis];
        for (int i = 0; i < n * n * n; i++) {
            int c = i / s % n;
            float lo = hist[c > 0 ? i - s : i], hi = hist[c < n - 1 ? i + s : i];
            tmp[i] = 0.25f * (lo + hi) + 0.5f * hist[i];
        }
        memcpy(hist, tmp, sizeof *hist * (size_t)n * n * n);
    }
    double sum = 0;
    for (int i = 0; i < n * n * n; i++) sum += hist[i];
    float k = sum > 0 ? (float)(n * n * n / sum) : 0.f;
    for (int i = 0; i < n * n * n; i++) hist[i] *= k;
}

/* The weights of rows begin..end, from the weight of each colour bin (above 1: a strong
 * background colour, marked by + 2). */
typedef struct bgc_job {
    const ts_fimg *rgb;
    const float *prob;
    const uint8_t *band;
    const float *bin_w;
    float *bgw;
    uint8_t *strong;
} bgc_job;

static void bgc_rows(void *arg, int begin, int end) {
    const bgc_job *j = arg;
    size_t w = (size_t)j->rgb->w;
    for (size_t i = begin * w; i < end * w; i++) {
        float g = (BGC_P_HI - j->prob[i]) / (BGC_P_HI - BGC_P_LO);
        g = g < 0 ? 0 : g > 1 ? 1 : g;
        float t = j->band[i] ? j->bin_w[bgc_bin(j->rgb->px + i * j->rgb->bands)] : 0.f;
        bool sure = t > 1.5f;
        j->bgw[i] = (sure ? t - 2.f : t) * g;
        j->strong[i] = sure && j->prob[i] < BGC_STRONG_P;
    }
}

int ts_matte_bg_colour(const ts_fimg *rgb, const uint8_t *tri, const float *prob, int r_near,
                       float *bgw, uint8_t *strong) {
    int w = rgb->w, h = rgb->h;
    size_t n = (size_t)w * h, nb = (size_t)BGC_BINS * BGC_BINS * BGC_BINS;
    float *hb = calloc(nb * 3, sizeof *hb);
    uint8_t *band = malloc(n);
    uint32_t *sat = malloc(sizeof *sat * (size_t)(w + 1) * (h + 1));
    if (!hb || !band || !sat) {
        free(hb), free(band), free(sat);
        return -1;
    }
    float *hf = hb + nb, *tmp = hf + nb;
    for (size_t i = 0; i < n; i++) band[i] = tri[i] == TS_TRI_UNKNOWN;
    integral(band, w, h, sat);
    /* Colours near the band only: the clothes far below say nothing of the hair. Every other
     * pixel of every other row is sample enough. */
    size_t W = (size_t)w + 1;
    for (int y = 0; y < h; y += 2) {
        int y0 = y - r_near < 0 ? 0 : y - r_near, y1 = y + r_near + 1 > h ? h : y + r_near + 1;
        for (int x = 0; x < w; x += 2) {
            size_t i = (size_t)y * w + x;
            const float *I = rgb->px + i * rgb->bands;
            if (tri[i] == TS_TRI_UNKNOWN) continue;
            int x0 = x - r_near < 0 ? 0 : x - r_near, x1 = x + r_near + 1 > w ? w : x + r_near + 1;
            if (sat[y1 * W + x1] - sat[y0 * W + x1] - sat[y1 * W + x0] + sat[y0 * W + x0])
                (tri[i] == TS_TRI_BG ? hb : hf)[bgc_bin(I)] += 1.f;
        }
    }
    bgc_smooth(hb, tmp);
    bgc_smooth(hf, tmp);
    /* The weight of each colour bin, once. */
    float lo = logf(BGC_RATIO_LO), span = logf(BGC_RATIO_HI) - lo;
    for (size_t b = 0; b < nb; b++) {
        float s = hb[b] < BGC_MIN_BG ? 0.f : (logf(hb[b] / fmaxf(hf[b], 1e-3f)) - lo) / span;
        s = s < 0 ? 0 : s > 1 ? 1 : s;
        /* A strong background colour is marked by a weight above 1 (the flag's few colours). */
        tmp[b] = s >= BGC_STRONG_W && hb[b] >= BGC_STRONG_BG ? s + 2.f : s;
    }
    bgc_job j = {rgb, prob, band, tmp, bgw, strong};
    ts_matte_parallel(h, bgc_rows, &j);
    free(hb), free(band), free(sat);
    return 0;
}

int ts_matte_drop_islands(float *alpha, uint8_t *tri, int w, int h, float thr) {
    size_t n = (size_t)w * h, top = 0;
    int *stack = malloc(sizeof *stack * n);
    uint8_t *seen = calloc(n, 1);
    if (!stack || !seen) {
        free(stack), free(seen);
        return -1;
    }
    /* Seeds: the sure person; only its pixels beside something else need walking from. */
    for (size_t i = 0; i < n; i++)
        if (tri[i] == TS_TRI_FG) seen[i] = 1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            if (tri[i] == TS_TRI_FG && ((x > 0 && !seen[i - 1]) || (x < w - 1 && !seen[i + 1]) ||
                                        (y > 0 && !seen[i - w]) || (y < h - 1 && !seen[i + w])))
                stack[top++] = (int)i;
        }
    /* 8-connected: a strand one pixel wide running diagonally stays joined. */
    while (top) {
        int i = stack[--top], x = i % w, y = i / w;
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                int xx = x + dx, yy = y + dy;
                if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
                int j = yy * w + xx;
                if (!seen[j] && alpha[j] >= thr) seen[j] = 1, stack[top++] = j;
            }
    }
    for (size_t i = 0; i < n; i++)
        if (!seen[i] && tri[i] == TS_TRI_UNKNOWN && alpha[i] > 0) alpha[i] = 0, tri[i] = TS_TRI_BG;
    free(stack), free(seen);
    return 0;
}

/* How far soft alpha may reach from the solid person (docs/matte.md, step 4): alpha of at least
 * REACH_SOLID is solid; from REACH_FULL band away from it the cap falls linearly, to 0 at
 * REACH_END band. Real hair is a thin soft fringe at the solid edge; behind it, on a busy
 * background, the guided filter spreads alpha over a wide soft area (a flag's stripes beside
 * the hair). The cap acts as far as the sure background nearby is busy (1 - its flatness), and
 * only where the network is unsure: fully at p <= REACH_P_LO, not at all from REACH_P_HI, so
 * hair the network sees stays. Tuned on bench/matte_eval (docs/matte-evaluation.md): a cap
 * ending at 1.5 band, or acting up to p = 0.7-0.9, cut real hair over the stadium crowd. */
#define REACH_SOLID 0.9f
#define REACH_FULL 0.5f
#define REACH_END 2.f
/* Below the chin (body_row) the cap starts at REACH_BODY_FULL band and reaches 0 at
 * REACH_BODY_END: clothes have crisp edges, and soft alpha beyond them on a busy background is
 * the background (grace_hopper: wisps of the flag's stripes along her shoulder). */
#define REACH_BODY_FULL 0.1f
#define REACH_BODY_END 0.6f
#define REACH_P_LO 0.2f
#define REACH_P_HI 0.6f

/* Chamfer distance (1, sqrt 2) to the nearest pixel where d is 0, in place (others start
 * large): a forward and a backward pass. */
static void chamfer(float *d, int w, int h) {
    const float diag = 1.41421356f;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            float v = d[i];
            if (x > 0) v = fminf(v, d[i - 1] + 1);
            if (y > 0) {
                v = fminf(v, d[i - w] + 1);
                if (x > 0) v = fminf(v, d[i - w - 1] + diag);
                if (x < w - 1) v = fminf(v, d[i - w + 1] + diag);
            }
            d[i] = v;
        }
    for (int y = h - 1; y >= 0; y--)
        for (int x = w - 1; x >= 0; x--) {
            size_t i = (size_t)y * w + x;
            float v = d[i];
            if (x < w - 1) v = fminf(v, d[i + 1] + 1);
            if (y < h - 1) {
                v = fminf(v, d[i + w] + 1);
                if (x < w - 1) v = fminf(v, d[i + w + 1] + diag);
                if (x > 0) v = fminf(v, d[i + w - 1] + diag);
            }
            d[i] = v;
        }
}

/* How much the reach cap acts at band pixel i: how busy the sure background nearby is, where
 * the network is unsure. */
static inline float reach_weight(const float *prob, const float *bg, size_t i) {
    /* bg holds 0 in all four where the colour model had no sure background (or person) nearby:
     * no busy background to speak of. */
    const float *b = bg + i * 4;
    float busy = b[0] + b[1] + b[2] + b[3] > 0 ? 1.f - b[3] : 0.f;
    float g = (REACH_P_HI - prob[i]) / (REACH_P_HI - REACH_P_LO);
    return busy * (g < 0 ? 0 : g > 1 ? 1 : g);
}

int ts_matte_limit_reach(float *alpha, float *coef, const uint8_t *tri, const float *prob,
                         const float *bg, int w, int h, int band, int body_row) {
    size_t n = (size_t)w * h, any = 0;
    /* On a plain backdrop nothing is capped: no distance map (2 passes over the image). */
    for (size_t i = 0; i < n && !any; i++)
        any = tri[i] == TS_TRI_UNKNOWN && alpha[i] > 0 && reach_weight(prob, bg, i) > 0;
    if (!any) return 0;
    float *d = malloc(sizeof *d * n);
    if (!d) return -1;
    for (size_t i = 0; i < n; i++) d[i] = alpha[i] >= REACH_SOLID ? 0.f : 1e9f;
    chamfer(d, w, h);
    float d0h = REACH_FULL * band, d1h = REACH_END * band;
    float d0b = REACH_BODY_FULL * band, d1b = REACH_BODY_END * band;
    for (size_t i = 0; i < n; i++) {
        int body = (int)(i / w) >= body_row;
        float d0 = body ? d0b : d0h, d1 = body ? d1b : d1h;
        if (tri[i] != TS_TRI_UNKNOWN || alpha[i] <= 0 || d[i] <= d0) continue;
        float busy = reach_weight(prob, bg, i);
        if (busy <= 0) continue;
        float c = (d1 - d[i]) / (d1 - d0);
        c = c < 0 ? 0 : c;
        float cap = busy * c + (1 - busy);
        /* The full-resolution alpha is the coefficients applied to the full-resolution colour:
         * scaled with the work alpha, it is capped there too. */
        if (alpha[i] > cap) {
            float s = cap / alpha[i];
            for (int q = 0; q < 4; q++) coef[i * 4 + q] *= s;
            alpha[i] = cap;
        }
    }
    free(d);
    return 0;
}
