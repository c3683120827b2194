/* Ground truth for the matte evaluation: blue-screen keyer, Composition-1k measures, CIEDE2000.
 * See matte_key.h and docs/matte-evaluation.md. */
#include "matte_key.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---- Keyer ------------------------------------------------------------------------------- */

/* Soft ramp of the raw key 1 - d/d_backdrop: at or below KEY_LO it is backdrop (alpha 0), at or
 * above KEY_HI subject (alpha 1), linear in between. The margins absorb the backdrop's noise and
 * JPEG ringing (about +-0.05 here) and the slight blue of the grey sweater. */
#define KEY_LO 0.10f
#define KEY_HI 0.90f
#define KEY_KEEP_RADIUS 6 /* soft edge kept around the subject's solid component, px */
#define KEY_FG_SIGMA 4.0f /* spread of confident foreground colour into thin edges, px */
#define KEY_SOLID_DIST 10 /* farther than this from the backdrop, the subject is solid, px */

static float clampf(float v, float lo, float hi) {
    return v < lo ? lo : v > hi ? hi : v;
}
static float max2(float a, float b) {
    return a > b ? a : b;
}

/* Solves the n x n system A x = b (A row-major, overwritten) by Gaussian elimination with
 * partial pivoting. Returns -1 if singular. */
static int solve(double *A, double *b, int n) {
    for (int c = 0; c < n; c++) {
        int p = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(A[r * n + c]) > fabs(A[p * n + c])) p = r;
        if (fabs(A[p * n + c]) < 1e-12) return -1;
        if (p != c) {
            for (int k = 0; k < n; k++) {
                double t = A[c * n + k];
                A[c * n + k] = A[p * n + k];
                A[p * n + k] = t;
            }
            double t = b[c];
            b[c] = b[p];
            b[p] = t;
        }
        for (int r = c + 1; r < n; r++) {
            double f = A[r * n + c] / A[c * n + c];
            for (int k = c; k < n; k++) A[r * n + k] -= f * A[c * n + k];
            b[r] -= f * b[c];
        }
    }
    for (int c = n - 1; c >= 0; c--) {
        for (int k = c + 1; k < n; k++) b[c] -= A[c * n + k] * b[k];
        b[c] /= A[c * n + c];
    }
    return 0;
}

static void quad_basis(int x, int y, int w, int h, double q[6]) {
    double u = 2.0 * x / (w - 1) - 1, v = 2.0 * y / (h - 1) - 1;
    q[0] = 1, q[1] = u, q[2] = v, q[3] = u * u, q[4] = u * v, q[5] = v * v;
}

/* Separable Gaussian blur of n_ch interleaved float channels, borders replicated. */
static int blur(float *img, int w, int h, int n_ch, float sigma) {
    int r = (int)ceilf(3 * sigma);
    float *k = malloc(sizeof(float) * (size_t)(2 * r + 1));
    float *tmp = malloc(sizeof(float) * (size_t)w * h * n_ch);
    if (!k || !tmp) {
        free(k);
        free(tmp);
        return -1;
    }
    float s = 0;
    for (int i = -r; i <= r; i++) s += k[i + r] = expf(-i * i / (2 * sigma * sigma));
    for (int i = 0; i <= 2 * r; i++) k[i] /= s;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < n_ch; c++) {
                float a = 0;
                for (int i = -r; i <= r; i++) {
                    int xx = x + i < 0 ? 0 : x + i >= w ? w - 1 : x + i;
                    a += k[i + r] * img[((size_t)y * w + xx) * n_ch + c];
                }
                tmp[((size_t)y * w + x) * n_ch + c] = a;
            }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < n_ch; c++) {
                float a = 0;
                for (int i = -r; i <= r; i++) {
                    int yy = y + i < 0 ? 0 : y + i >= h ? h - 1 : y + i;
                    a += k[i + r] * tmp[((size_t)yy * w + x) * n_ch + c];
                }
                img[((size_t)y * w + x) * n_ch + c] = a;
            }
    free(k);
    free(tmp);
    return 0;
}

/* Keeps only the solid (alpha > 0.5) component holding the seed, plus its soft edge. */
static int keep_subject(float *alpha, int w, int h, int sx, int sy) {
    size_t n = (size_t)w * h;
    uint8_t *comp = calloc(n, 1), *keep = calloc(n, 1);
    int *stack = malloc(sizeof(int) * n);
    if (!comp || !keep || !stack) {
        free(comp);
        free(keep);
        free(stack);
        return -1;
    }
    /* The seed, or the nearest solid pixel to it (searched in growing squares). */
    int seed = -1;
    for (int rad = 0; rad < (w > h ? w : h) && seed < 0; rad++)
        for (int y = sy - rad; y <= sy + rad && seed < 0; y++)
            for (int x = sx - rad; x <= sx + rad; x++)
                if (x >= 0 && y >= 0 && x < w && y < h && alpha[(size_t)y * w + x] > 0.5f) {
                    seed = y * w + x;
                    break;
                }
    if (seed < 0) {
        free(comp);
        free(keep);
        free(stack);
        return -1;
    }
    int top = 0;
    stack[top++] = seed;
    comp[seed] = 1;
    while (top) {
        int p = stack[--top], x = p % w, y = p / w;
        const int nb[4][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}};
        for (int i = 0; i < 4; i++) {
            int xx = x + nb[i][0], yy = y + nb[i][1];
            if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
            int q = yy * w + xx;
            if (!comp[q] && alpha[q] > 0.5f) comp[q] = 1, stack[top++] = q;
        }
    }
    /* Square dilation by KEY_KEEP_RADIUS, separably. */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int any = 0;
            for (int i = -KEY_KEEP_RADIUS; i <= KEY_KEEP_RADIUS && !any; i++) {
                int xx = x + i;
                any = xx >= 0 && xx < w && comp[(size_t)y * w + xx];
            }
            keep[(size_t)y * w + x] = (uint8_t)any;
        }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int any = 0;
            for (int i = -KEY_KEEP_RADIUS; i <= KEY_KEEP_RADIUS && !any; i++) {
                int yy = y + i;
                any = yy >= 0 && yy < h && keep[(size_t)yy * w + x] & 1;
            }
            if (any) keep[(size_t)y * w + x] |= 2;
        }
    for (size_t i = 0; i < n; i++)
        if (!(keep[i] & 2)) alpha[i] = 0;
    free(comp);
    free(keep);
    free(stack);
    return 0;
}

/* Fills holes: a pixel farther than KEY_SOLID_DIST (square distance) from the backdrop, the
 * near-zero alpha reachable from the frame border, is inside the subject (blue-grey stripes of
 * the sweater key partly transparent otherwise). */
static int fill_interior(float *alpha, int w, int h) {
    size_t n = (size_t)w * h;
    uint8_t *bk = calloc(n, 1), *near = calloc(n, 1);
    int *stack = malloc(sizeof(int) * n);
    if (!bk || !near || !stack) {
        free(bk);
        free(near);
        free(stack);
        return -1;
    }
    int top = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if ((x == 0 || y == 0 || x == w - 1 || y == h - 1) && alpha[(size_t)y * w + x] < 0.1f)
                bk[(size_t)y * w + x] = 1, stack[top++] = y * w + x;
    while (top) {
        int p = stack[--top], x = p % w, y = p / w;
        const int nb[4][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}};
        for (int i = 0; i < 4; i++) {
            int xx = x + nb[i][0], yy = y + nb[i][1];
            if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
            int q = yy * w + xx;
            if (!bk[q] && alpha[q] < 0.1f) bk[q] = 1, stack[top++] = q;
        }
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int i = -KEY_SOLID_DIST; i <= KEY_SOLID_DIST; i++) {
                int xx = x + i;
                if (xx >= 0 && xx < w && bk[(size_t)y * w + xx]) {
                    near[(size_t)y * w + x] = 1;
                    break;
                }
            }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int any = 0;
            for (int i = -KEY_SOLID_DIST; i <= KEY_SOLID_DIST && !any; i++) {
                int yy = y + i;
                any = yy >= 0 && yy < h && near[(size_t)yy * w + x] & 1;
            }
            if (!any) alpha[(size_t)y * w + x] = 1;
        }
    free(bk);
    free(near);
    free(stack);
    return 0;
}

/* Closes specks: an enclosed patch of alpha < 0.5 (not joined to the frame border through such
 * pixels) smaller than 25 px is key noise where hair meets skin (one frame has a 2-px one at the
 * top of an ear); it becomes opaque. Larger enclosed patches are left (real gaps). */
static int close_specks(float *alpha, int w, int h) {
    size_t n = (size_t)w * h;
    uint8_t *seen = calloc(n, 1);
    int *stack = malloc(sizeof(int) * n), *comp = malloc(sizeof(int) * n);
    if (!seen || !stack || !comp) {
        free(seen);
        free(stack);
        free(comp);
        return -1;
    }
    const int nb[4][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}};
    for (int pass = 0; pass < 2; pass++)
        for (size_t s0 = 0; s0 < n; s0++) {
            int x0 = (int)(s0 % w), y0 = (int)(s0 / w);
            int border = x0 == 0 || y0 == 0 || x0 == w - 1 || y0 == h - 1;
            /* pass 0: everything joined to the border; pass 1: the enclosed patches */
            if (seen[s0] || alpha[s0] >= 0.5f || (pass == 0 && !border)) continue;
            int top = 0, nc = 0;
            stack[top++] = (int)s0;
            seen[s0] = 1;
            while (top) {
                int q = stack[--top], x = q % w, y = q / w;
                comp[nc++] = q;
                for (int i = 0; i < 4; i++) {
                    int xx = x + nb[i][0], yy = y + nb[i][1];
                    if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
                    int r = yy * w + xx;
                    if (!seen[r] && alpha[r] < 0.5f) seen[r] = 1, stack[top++] = r;
                }
            }
            if (pass == 1 && nc < 25)
                for (int i = 0; i < nc; i++) alpha[comp[i]] = 1;
        }
    free(seen);
    free(stack);
    free(comp);
    return 0;
}

int mk_key_blue(const uint8_t *rgb, int w, int h, int seed_x, int seed_y, float *alpha, float *fg) {
    if (!rgb || !alpha || !fg || w < 16 || h < 16) return -1;
    size_t n = (size_t)w * h;

    /* 1. The backdrop's colour, smooth over the frame: a quadratic in x, y per channel fitted
     * to the clearly blue pixels (blue well above red and green). */
    double A[3][36] = {{0}}, B[3][6] = {{0}};
    long nb = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const uint8_t *p = rgb + ((size_t)y * w + x) * 3;
            if (p[2] < 150 || p[2] - max2(p[0], p[1]) < 70) continue;
            double q[6];
            quad_basis(x, y, w, h, q);
            for (int c = 0; c < 3; c++)
                for (int i = 0; i < 6; i++) {
                    B[c][i] += q[i] * p[c];
                    for (int j = 0; j < 6; j++) A[c][i * 6 + j] += q[i] * q[j];
                }
            nb++;
        }
    if (nb < (long)(n / 50)) return -1; /* no blue backdrop */
    for (int c = 0; c < 3; c++)
        if (solve(A[c], B[c], 6)) return -1;

    /* 2. Raw key: the blue excess d = b - max(r, g) of the pixel relative to the backdrop's
     * (a mix alpha*F + (1-alpha)*K of a neutral or warm subject F with the backdrop K has
     * d ~ (1-alpha) d_K), through the soft ramp. */
    float *bg = malloc(sizeof(float) * n * 3);
    if (!bg) return -1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            double q[6];
            quad_basis(x, y, w, h, q);
            for (int c = 0; c < 3; c++) {
                double v = 0;
                for (int k = 0; k < 6; k++) v += B[c][k] * q[k];
                bg[i * 3 + c] = clampf((float)v, 0, 255);
            }
            const uint8_t *p = rgb + i * 3;
            float dk = max2(bg[i * 3 + 2] - max2(bg[i * 3], bg[i * 3 + 1]), 20.f);
            float d = p[2] - max2(p[0], p[1]);
            alpha[i] = clampf(((1 - d / dk) - KEY_LO) / (KEY_HI - KEY_LO), 0, 1);
        }

    /* 3. Only the subject: props touching the frame (a microphone at the left edge) go. */
    if (keep_subject(alpha, w, h, seed_x, seed_y) || fill_interior(alpha, w, h)) {
        free(bg);
        return -1;
    }

    /* 4. The subject's colour near each pixel: the colours of the solid subject (alpha > 0.95)
     * spread by a normalised Gaussian. */
    float *conf = malloc(sizeof(float) * n * 4);
    if (!conf) {
        free(bg);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        float wgt = alpha[i] > 0.95f ? 1.f : 0.f;
        for (int c = 0; c < 3; c++) conf[i * 4 + c] = wgt * rgb[i * 3 + c];
        conf[i * 4 + 3] = wgt;
    }
    if (blur(conf, w, h, 4, KEY_FG_SIGMA)) {
        free(bg);
        free(conf);
        return -1;
    }

    /* 5. In the soft edge, alpha from all three channels: the projection of I on the segment
     * from the backdrop K to that local subject colour S, alpha = (I-K).(S-K) / |S-K|^2 (the
     * blue excess alone overestimates alpha by 1 - d_S/d_K, ~40% on brown hair), through a
     * narrow ramp against noise. Kept from step 2 where S is unknown or too close to K. */
    for (size_t i = 0; i < n; i++) {
        float wsum = conf[i * 4 + 3];
        if (alpha[i] <= 0 || alpha[i] >= 1 || wsum < 1e-3f) continue;
        float dot = 0, l2 = 0;
        for (int c = 0; c < 3; c++) {
            float v = conf[i * 4 + c] / wsum - bg[i * 3 + c];
            dot += (rgb[i * 3 + c] - bg[i * 3 + c]) * v, l2 += v * v;
        }
        if (l2 > 60.f * 60.f) alpha[i] = clampf((dot / l2 - 0.04f) / 0.92f, 0, 1);
    }
    if (close_specks(alpha, w, h)) {
        free(bg);
        free(conf);
        return -1;
    }

    /* 6. Foreground colour: the backdrop unmixed, F = (I - (1-alpha) K) / alpha, where alpha is
     * large enough for that to be stable; towards alpha 0 it hands over to the local subject
     * colour S; then blue spill is clamped to max(r, g). */
    for (size_t i = 0; i < n; i++) {
        float a = alpha[i], wsum = conf[i * 4 + 3];
        float t = clampf((a - 0.2f) / 0.7f, 0, 1);
        for (int c = 0; c < 3; c++) {
            float v = rgb[i * 3 + c];
            float u = a > 0.02f ? clampf((v - (1 - a) * bg[i * 3 + c]) / a, 0, 255) : v;
            if (wsum > 1e-3f && t < 1) u = t * u + (1 - t) * conf[i * 4 + c] / wsum;
            fg[i * 3 + c] = u;
        }
        float m = max2(fg[i * 3], fg[i * 3 + 1]);
        if (fg[i * 3 + 2] > m) fg[i * 3 + 2] = m;
    }
    free(bg);
    free(conf);
    return 0;
}

/* ---- Composition-1k measures ------------------------------------------------------------- */

/* gaussgradient.m of the Composition-1k evaluation code: a (2*half+1)^2 kernel
 * gauss(row) * dgauss(col), half = ceil(sigma * sqrt(-2 log(sqrt(2 pi) sigma 0.01))), scaled
 * to unit L2 norm; replicate borders. Separable, so applied as two 1-D passes. */
static int gauss_gradient_mag(const float *img, int w, int h, float sigma, float *mag) {
    int half = (int)ceil(sigma * sqrt(-2 * log(sqrt(2 * M_PI) * sigma * 1e-2)));
    int ks = 2 * half + 1;
    double g[64], dg[64], ng = 0, ndg = 0;
    if (ks > 64) return -1;
    for (int i = 0; i < ks; i++) {
        double u = i - half;
        g[i] = exp(-u * u / (2 * sigma * sigma)) / (sigma * sqrt(2 * M_PI));
        dg[i] = -u * g[i] / (sigma * sigma);
        ng += g[i] * g[i];
        ndg += dg[i] * dg[i];
    }
    double norm = sqrt(ng * ndg);
    size_t n = (size_t)w * h;
    float *sx = malloc(sizeof(float) * n), *sy = malloc(sizeof(float) * n);
    if (!sx || !sy) {
        free(sx);
        free(sy);
        return -1;
    }
    /* Horizontal passes: derivative (for gx) and smoothing (for gy). */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double a = 0, b = 0;
            for (int i = 0; i < ks; i++) {
                int xx = x + i - half;
                xx = xx < 0 ? 0 : xx >= w ? w - 1 : xx;
                float v = img[(size_t)y * w + xx];
                a += dg[i] * v, b += g[i] * v;
            }
            sx[(size_t)y * w + x] = (float)a, sy[(size_t)y * w + x] = (float)b;
        }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double gx = 0, gy = 0;
            for (int i = 0; i < ks; i++) {
                int yy = y + i - half;
                yy = yy < 0 ? 0 : yy >= h ? h - 1 : yy;
                gx += g[i] * sx[(size_t)yy * w + x], gy += dg[i] * sy[(size_t)yy * w + x];
            }
            mag[(size_t)y * w + x] = (float)(sqrt(gx * gx + gy * gy) / norm);
        }
    free(sx);
    free(sy);
    return 0;
}

int mk_alpha_errors(const float *est, const float *truth, const uint8_t *mask, int w, int h,
                    mk_errors *out) {
    size_t n = (size_t)w * h;
    float *ge = malloc(sizeof(float) * n), *gt = malloc(sizeof(float) * n);
    if (!ge || !gt || gauss_gradient_mag(est, w, h, 1.4f, ge) ||
        gauss_gradient_mag(truth, w, h, 1.4f, gt)) {
        free(ge);
        free(gt);
        return -1;
    }
    double sad = 0, sse = 0, grad = 0;
    long cnt = 0;
    for (size_t i = 0; i < n; i++) {
        if (mask && !mask[i]) continue;
        double d = (double)est[i] - truth[i], dg = (double)ge[i] - gt[i];
        sad += fabs(d), sse += d * d, grad += dg * dg, cnt++;
    }
    out->sad = sad / 1000, out->mse = cnt ? sse / cnt : 0, out->grad = grad / 1000, out->n = cnt;
    free(ge);
    free(gt);
    return 0;
}

/* ---- Colour ------------------------------------------------------------------------------ */

static double srgb_linear(double v) {
    v /= 255;
    return v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4);
}

static double lab_f(double t) {
    const double e = 6.0 / 29;
    return t > e * e * e ? cbrt(t) : t / (3 * e * e) + 4.0 / 29;
}

void mk_srgb_to_lab(const float rgb[3], double lab[3]) {
    double r = srgb_linear(rgb[0]), g = srgb_linear(rgb[1]), b = srgb_linear(rgb[2]);
    double X = 0.4124564 * r + 0.3575761 * g + 0.1804375 * b;
    double Y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b;
    double Z = 0.0193339 * r + 0.1191920 * g + 0.9503041 * b;
    double fx = lab_f(X / 0.95047), fy = lab_f(Y), fz = lab_f(Z / 1.08883);
    lab[0] = 116 * fy - 16, lab[1] = 500 * (fx - fy), lab[2] = 200 * (fy - fz);
}

static double deg(double r) {
    return r * 180 / M_PI;
}
static double rad(double d) {
    return d * M_PI / 180;
}

double mk_ciede2000(const double lab1[3], const double lab2[3]) {
    const double p25_7 = 6103515625.0; /* 25^7 */
    double L1 = lab1[0], a1 = lab1[1], b1 = lab1[2], L2 = lab2[0], a2 = lab2[1], b2 = lab2[2];
    /* (2)-(7) */
    double C1 = hypot(a1, b1), C2 = hypot(a2, b2), Cb = (C1 + C2) / 2, Cb7 = pow(Cb, 7);
    double G = 0.5 * (1 - sqrt(Cb7 / (Cb7 + p25_7)));
    double a1p = (1 + G) * a1, a2p = (1 + G) * a2;
    double C1p = hypot(a1p, b1), C2p = hypot(a2p, b2);
    double h1p = (a1p == 0 && b1 == 0) ? 0 : deg(atan2(b1, a1p));
    double h2p = (a2p == 0 && b2 == 0) ? 0 : deg(atan2(b2, a2p));
    if (h1p < 0) h1p += 360;
    if (h2p < 0) h2p += 360;
    /* (8)-(11) */
    double dLp = L2 - L1, dCp = C2p - C1p, dhp = 0;
    if (C1p * C2p != 0) {
        dhp = h2p - h1p;
        if (dhp > 180)
            dhp -= 360;
        else if (dhp < -180)
            dhp += 360;
    }
    double dHp = 2 * sqrt(C1p * C2p) * sin(rad(dhp) / 2);
    /* (12)-(22) */
    double Lbp = (L1 + L2) / 2, Cbp = (C1p + C2p) / 2, hbp = h1p + h2p;
    if (C1p * C2p != 0) {
        if (fabs(h1p - h2p) <= 180)
            hbp = (h1p + h2p) / 2;
        else if (h1p + h2p < 360)
            hbp = (h1p + h2p + 360) / 2;
        else
            hbp = (h1p + h2p - 360) / 2;
    }
    double T = 1 - 0.17 * cos(rad(hbp - 30)) + 0.24 * cos(rad(2 * hbp)) +
               0.32 * cos(rad(3 * hbp + 6)) - 0.20 * cos(rad(4 * hbp - 63));
    double dtheta = 30 * exp(-((hbp - 275) / 25) * ((hbp - 275) / 25));
    double Cbp7 = pow(Cbp, 7), RC = 2 * sqrt(Cbp7 / (Cbp7 + p25_7));
    double l50 = (Lbp - 50) * (Lbp - 50);
    double SL = 1 + 0.015 * l50 / sqrt(20 + l50), SC = 1 + 0.045 * Cbp, SH = 1 + 0.015 * Cbp * T;
    double RT = -sin(rad(2 * dtheta)) * RC;
    double l = dLp / SL, c = dCp / SC, hh = dHp / SH;
    return sqrt(l * l + c * c + hh * hh + RT * c * hh);
}

/* ---- Edge band --------------------------------------------------------------------------- */

long mk_edge_band(const float *alpha, int w, int h, int radius, uint8_t *band) {
    memset(band, 0, (size_t)w * h);
    for (int y = 1; y < h - 1; y++)
        for (int x = 1; x < w - 1; x++) {
            size_t i = (size_t)y * w + x;
            int in = alpha[i] >= 0.5f;
            if (in == (alpha[i + 1] >= 0.5f) && in == (alpha[i - 1] >= 0.5f) &&
                in == (alpha[i + w] >= 0.5f) && in == (alpha[i - w] >= 0.5f))
                continue;
            for (int dy = -radius; dy <= radius; dy++)
                for (int dx = -radius; dx <= radius; dx++) {
                    int xx = x + dx, yy = y + dy;
                    if (dx * dx + dy * dy > radius * radius || xx < 0 || yy < 0 || xx >= w ||
                        yy >= h)
                        continue;
                    band[(size_t)yy * w + xx] = 1;
                }
        }
    long cnt = 0;
    for (size_t i = 0; i < (size_t)w * h; i++) cnt += band[i];
    return cnt;
}
