/* Trimap of the matte: confident person, confident background, and the band between them where
 * the alpha is solved. Also fills holes in the person before that. */
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

/* The colour model's planes: masked colours and masks of sure person and sure background. */
typedef struct colour_job {
    const ts_fimg *rgb;
    const uint8_t *tri;
    float *alpha;
} colour_job;

static void colour_produce(void *arg, int y, float *o) {
    const colour_job *j = arg;
    int w = j->rgb->w, bands = j->rgb->bands;
    const float *I = j->rgb->px + (size_t)y * w * bands;
    const uint8_t *t = j->tri + (size_t)y * w;
    for (int x = 0; x < w; x++, I += bands, o += 8) {
        float fg = t[x] == TS_TRI_FG, bg = t[x] == TS_TRI_BG;
        o[0] = I[0] * fg, o[1] = I[1] * fg, o[2] = I[2] * fg, o[3] = fg;
        o[4] = I[0] * bg, o[5] = I[1] * bg, o[6] = I[2] * bg, o[7] = bg;
    }
}

static void colour_consume(void *arg, int y, const float *mean) {
    const colour_job *j = arg;
    int w = j->rgb->w, bands = j->rgb->bands;
    const uint8_t *t = j->tri + (size_t)y * w;
    float *alpha = j->alpha + (size_t)y * w;
    for (int x = 0; x < w; x++) {
        if (t[x] != TS_TRI_UNKNOWN) continue;
        const float *o = mean + (size_t)x * 8, *I = j->rgb->px + ((size_t)y * w + x) * bands;
        if (o[3] < 1e-3f || o[7] < 1e-3f) continue;
        float d[3], e[3], dd = 0, ed = 0;
        for (int c = 0; c < 3; c++) {
            float F = o[c] / o[3], B = o[4 + c] / o[7];
            d[c] = F - B;
            e[c] = I[c] - B;
            dd += d[c] * d[c];
            ed += e[c] * d[c];
        }
        /* Colours closer than ~0.1 (in 0..1 units) say little; from ~0.25 apart, trust them. */
        float trust = (dd - 0.01f) / 0.05f;
        trust = trust < 0 ? 0 : trust > 1 ? 1 : trust;
        /* Where the network sees (almost) no person, a busy background's colours (a flag, a
         * bookshelf) would pass for foreground: it must see a little of one. */
        float seen = alpha[x] / 0.15f;
        trust *= seen > 1 ? 1 : seen;
        float a = ed / (dd > 1e-6f ? dd : 1e-6f);
        a = a < 0 ? 0 : a > 1 ? 1 : a;
        alpha[x] = trust * a + (1 - trust) * alpha[x];
    }
}

int ts_matte_colour_alpha(const ts_fimg *rgb, const uint8_t *tri, int r, float *alpha) {
    /* Normalised convolution: box means of the masked colours over the box means of the masks. */
    colour_job j = {rgb, tri, alpha};
    return ts_matte_box_stream(rgb->w, rgb->h, 8, r, colour_produce, colour_consume, &j);
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
