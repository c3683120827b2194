/* Trimap of the matte: confident person, confident background, and the band between them where
 * the alpha is solved. Also fills holes in the person before that. */
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

int ts_matte_colour_alpha(const ts_fimg *rgb, const uint8_t *tri, int r, float *alpha) {
    int w = rgb->w, h = rgb->h;
    size_t n = (size_t)w * h;
    /* Normalised convolution: box means of the masked colours over the box means of the masks. */
    enum { NB = 8 };
    float *m = malloc(sizeof *m * n * NB);
    if (!m) return -1;
    for (size_t i = 0; i < n; i++) {
        const float *I = rgb->px + i * rgb->bands;
        float fg = tri[i] == TS_TRI_FG, bg = tri[i] == TS_TRI_BG, *o = m + i * NB;
        o[0] = I[0] * fg, o[1] = I[1] * fg, o[2] = I[2] * fg, o[3] = fg;
        o[4] = I[0] * bg, o[5] = I[1] * bg, o[6] = I[2] * bg, o[7] = bg;
    }
    if (ts_matte_box_mean(m, w, h, NB, r) != 0) {
        free(m);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (tri[i] != TS_TRI_UNKNOWN) continue;
        const float *o = m + i * NB, *I = rgb->px + i * rgb->bands;
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
        float seen = alpha[i] / 0.15f;
        trust *= seen > 1 ? 1 : seen;
        float a = ed / (dd > 1e-6f ? dd : 1e-6f);
        a = a < 0 ? 0 : a > 1 ? 1 : a;
        alpha[i] = trust * a + (1 - trust) * alpha[i];
    }
    free(m);
    return 0;
}
