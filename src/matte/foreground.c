/* Foreground colour: Germer, Uelwer, Conrad, Harmeling, "Fast Multi-Level Foreground
 * Estimation", ICPR 2020. For each pixel, F and B minimise
 *   (a F + (1 - a) B - I)^2 + sum over the 4 neighbours j of
 *   (eps + w |a - a_j|) ((F - F_j)^2 + (B - B_j)^2),
 * solved by local 2x2 updates, coarse to fine, so F carries the person's colour out into the
 * edge where I mixes it with the old background. Parameters are the paper's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "matte/matte.h"

#define REGULARIZATION TS_MATTE_FG_EPS
#define GRADIENT_WEIGHT TS_MATTE_FG_GRAD
#define SMALL_SIZE 32
#define SMALL_ITERATIONS 10
#define BIG_ITERATIONS 2
#define ACTIVE_MIN_PIXELS 4096 /* levels larger than this update only where it matters */
#define ACTIVE_MARGIN 2

static inline float clamp01(float v) {
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

/* One local solve at (x, y) of a w x h level, in place. */
static inline void update(const float *img, const float *alpha, float *F, float *B, int w, int h,
                          int x, int y) {
    size_t i = (size_t)y * w + x;
    float a0 = alpha[i], a1 = 1.f - a0;
    size_t nb[4] = {x > 0 ? i - 1 : i, x < w - 1 ? i + 1 : i, y > 0 ? i - w : i,
                    y < h - 1 ? i + w : i};
    float a00 = a0 * a0, a01 = a0 * a1, a11 = a1 * a1;
    float b0[3], b1[3];
    for (int c = 0; c < 3; c++) {
        b0[c] = a0 * img[i * 3 + c];
        b1[c] = a1 * img[i * 3 + c];
    }
    for (int k = 0; k < 4; k++) {
        size_t j = nb[k];
        float da = REGULARIZATION + GRADIENT_WEIGHT * fabsf(a0 - alpha[j]);
        a00 += da;
        a11 += da;
        for (int c = 0; c < 3; c++) {
            b0[c] += da * F[j * 3 + c];
            b1[c] += da * B[j * 3 + c];
        }
    }
    float inv = 1.f / (a00 * a11 - a01 * a01);
    for (int c = 0; c < 3; c++) {
        F[i * 3 + c] = clamp01(inv * (a11 * b0[c] - a01 * b1[c]));
        B[i * 3 + c] = clamp01(inv * (a00 * b1[c] - a01 * b0[c]));
    }
}

/* Marks the pixels whose update matters at a fine level: 0 < alpha < 1 (or, at the finest
 * level, the trimap's band), and their neighbours within ACTIVE_MARGIN px. Elsewhere F and B keep
 * the coarser level's values, which only their smoothness terms (weight eps) see. */
static void active_pixels(const float *al, const uint8_t *tri, int w, int h, uint8_t *act,
                          uint8_t *tmp) {
    for (size_t i = 0; i < (size_t)w * h; i++)
        tmp[i] = (al[i] > 0.f && al[i] < 1.f) || (tri && tri[i] == TS_TRI_UNKNOWN);
    for (int y = 0; y < h; y++) {
        const uint8_t *s = tmp + (size_t)y * w;
        uint8_t *d = act + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            uint8_t v = 0;
            for (int dx = -ACTIVE_MARGIN; dx <= ACTIVE_MARGIN && !v; dx++)
                v = x + dx >= 0 && x + dx < w && s[x + dx];
            d[x] = v;
        }
    }
    memcpy(tmp, act, (size_t)w * h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t v = 0;
            for (int dy = -ACTIVE_MARGIN; dy <= ACTIVE_MARGIN && !v; dy++)
                v = y + dy >= 0 && y + dy < h && tmp[(size_t)(y + dy) * w + x];
            act[(size_t)y * w + x] = v;
        }
}

int ts_matte_foreground_ml(const ts_fimg *rgb, const float *alpha, const uint8_t *tri, float *fg,
                           float *bg) {
    int w0 = rgb->w, h0 = rgb->h;
    size_t n0 = (size_t)w0 * h0;
    float *img = malloc(sizeof *img * n0 * 3), *al = malloc(sizeof *al * n0);
    float *F = malloc(sizeof *F * n0 * 3), *B = malloc(sizeof *B * n0 * 3);
    float *F2 = malloc(sizeof *F2 * n0 * 3), *B2 = malloc(sizeof *B2 * n0 * 3);
    uint8_t *act = malloc(n0 * 2);
    int *cols = malloc(sizeof *cols * (size_t)w0 * 2); /* a level's source columns, once a level */
    if (!img || !al || !F || !B || !F2 || !B2 || !act || !cols) {
        free(img), free(al), free(F), free(B), free(F2), free(B2), free(act), free(cols);
        return -1;
    }
    /* The coarsest level is one pixel: the mean colour for both. */
    double mean[3] = {0, 0, 0};
    for (size_t i = 0; i < n0; i++)
        for (int c = 0; c < 3; c++) mean[c] += rgb->px[i * rgb->bands + c];
    for (int c = 0; c < 3; c++) F[c] = B[c] = (float)(mean[c] / n0);
    int pw = 1, ph = 1;
    int longest = w0 > h0 ? w0 : h0;
    int levels = (int)ceil(log2(longest > 1 ? longest : 2));
    for (int l = 0; l <= levels; l++) {
        int w = (int)lround(pow(w0, (double)l / levels)),
            h = (int)lround(pow(h0, (double)l / levels));
        w = w < 1 ? 1 : w > w0 ? w0 : w;
        h = h < 1 ? 1 : h > h0 ? h0 : h;
        /* The finest level reads the image and the alpha where they are (a 3-band image) and is
         * solved in the outputs themselves: copying them, fresh pages each, was half the
         * solve's time. */
        bool last = l == levels, direct = last && rgb->bands == 3;
        const float *li = direct ? rgb->px : img, *la = last ? alpha : al;
        float *nF = last ? fg : F2, *nB = last ? bg : B2;
        /* Nearest-neighbour resampling of the image, the alpha and the previous level (the
         * columns worked out once a level). */
        for (int x = 0; x < w; x++)
            cols[2 * x] = (int)((long)x * w0 / w), cols[2 * x + 1] = (int)((long)x * pw / w);
        for (int y = 0; y < h; y++) {
            int sy = (int)((long)y * h0 / h), py = (int)((long)y * ph / h);
            for (int x = 0; x < w; x++) {
                size_t d = (size_t)y * w + x, s = (size_t)sy * w0 + cols[2 * x],
                       p = (size_t)py * pw + cols[2 * x + 1];
                if (!last) al[d] = alpha[s];
                for (int c = 0; c < 3; c++) {
                    if (!direct) img[d * 3 + c] = rgb->px[s * rgb->bands + c];
                    nF[d * 3 + c] = F[p * 3 + c];
                    nB[d * 3 + c] = B[p * 3 + c];
                }
            }
        }
        if (!last) {
            float *t = F;
            F = F2, F2 = t;
            t = B, B = B2, B2 = t;
        }
        float *cF = last ? fg : F, *cB = last ? bg : B;
        int iters = w <= SMALL_SIZE && h <= SMALL_SIZE ? SMALL_ITERATIONS : BIG_ITERATIONS;
        bool sparse = (size_t)w * h > ACTIVE_MIN_PIXELS;
        if (sparse) active_pixels(la, w == w0 && h == h0 ? tri : NULL, w, h, act, act + n0);
        for (int it = 0; it < iters; it++)
            for (int y = 0; y < h; y++) {
                const uint8_t *ar = act + (size_t)y * w;
                for (int x = 0; x < w; x++)
                    if (!sparse || ar[x]) update(li, la, cF, cB, w, h, x, y);
            }
        pw = w, ph = h;
    }
    free(img), free(al), free(F), free(B), free(F2), free(B2), free(act), free(cols);
    return 0;
}
