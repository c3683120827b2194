/* Reference implementations; see ref_ops.h. Correctness over speed, double precision. */
#include "ref_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double tent(double d) {
    d = fabs(d);
    return d < 1.0 ? 1.0 - d : 0.0;
}

void ref_transform_bilinear(int version, const float *in, int h, int w, int c, const float *m,
                            int oh, int ow, float *out) {
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            double u = x, v = y;
            if (version == 2) u += 0.5, v += 0.5;
            double sx = (double)m[0] * u + (double)m[1] * v + m[3];
            double sy = (double)m[4] * u + (double)m[5] * v + m[7];
            if (version == 2) sx -= 0.5, sy -= 0.5;
            for (int k = 0; k < c; k++) {
                double acc = 0.0;
                if (sx >= 0 && sy >= 0 && sx <= w - 1 && sy <= h - 1) {
                    /* sum over every input pixel of tent(dx) * tent(dy) */
                    for (int j = 0; j < h; j++)
                        for (int i = 0; i < w; i++) {
                            double wt = tent(sx - i) * tent(sy - j);
                            if (wt != 0.0) acc += wt * in[((size_t)j * w + i) * c + k];
                        }
                }
                out[((size_t)y * ow + x) * c + k] = (float)acc;
            }
        }
}

void ref_transform_landmarks(const float *pts, int n, int dim, const float *m, double tscale,
                             float *out) {
    for (int i = 0; i < n; i++) {
        double x = pts[i * dim], y = pts[i * dim + 1];
        out[i * dim] = (float)(m[0] * x + m[1] * y + m[3] * tscale);
        out[i * dim + 1] = (float)(m[4] * x + m[5] * y + m[7] * tscale);
        if (dim == 3) out[i * dim + 2] = pts[i * dim + 2];
    }
}

void ref_tconv(const float *in, int n, int h, int w, int ic, const float *wt, int oc, int kh,
               int kw, const float *bias, int sh, int sw, int same, float *out, int *oh, int *ow) {
    /* full (unpadded) transposed-convolution extent, then crop the SAME padding */
    int full_h = (h - 1) * sh + kh, full_w = (w - 1) * sw + kw;
    int crop_h = 0, crop_w = 0;
    if (same) {
        /* TFLite: padding needed so that the forward conv of the output gives the input back */
        int rem_h = (h - 1) % sh, rem_w = (w - 1) % sw;
        crop_h = kh - 1 - rem_h > 0 ? kh - 1 - rem_h : 0;
        crop_w = kw - 1 - rem_w > 0 ? kw - 1 - rem_w : 0;
    }
    *oh = full_h - crop_h;
    *ow = full_w - crop_w;
    if (!out) return;
    int top = crop_h / 2, left = crop_w / 2;
    double *full = calloc((size_t)n * full_h * full_w * oc, sizeof *full);
    for (int b = 0; b < n; b++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int ci = 0; ci < ic; ci++) {
                    double v = in[(((size_t)b * h + y) * w + x) * ic + ci];
                    for (int ky = 0; ky < kh; ky++)
                        for (int kx = 0; kx < kw; kx++)
                            for (int co = 0; co < oc; co++)
                                full[(((size_t)b * full_h + y * sh + ky) * full_w + x * sw + kx) *
                                         oc +
                                     co] += v * wt[(((size_t)co * kh + ky) * kw + kx) * ic + ci];
                }
    for (int b = 0; b < n; b++)
        for (int y = 0; y < *oh; y++)
            for (int x = 0; x < *ow; x++)
                for (int co = 0; co < oc; co++)
                    out[(((size_t)b * *oh + y) * *ow + x) * oc + co] =
                        (float)(bias[co] +
                                full[(((size_t)b * full_h + y + top) * full_w + x + left) * oc +
                                     co]);
    free(full);
}

void ref_l2tm_v2(const float *lm, int left, int right, double target, const int *sub, int nsub,
                 int out_w, int out_h, double scale_x, double scale_y, float *m16) {
    double dx = lm[right * 3] - lm[left * 3], dy = lm[right * 3 + 1] - lm[left * 3 + 1];
    double th = target - atan2(dy, dx);
    /* extent of the subset along the rotated axes u = (cos th, -sin th), v = (sin th, cos th) */
    double umin = INFINITY, umax = -INFINITY, vmin = INFINITY, vmax = -INFINITY;
    for (int i = 0; i < nsub; i++) {
        double x = lm[sub[i] * 3], y = lm[sub[i] * 3 + 1];
        double u = cos(th) * x - sin(th) * y, v = sin(th) * x + cos(th) * y;
        umin = fmin(umin, u), umax = fmax(umax, u), vmin = fmin(vmin, v), vmax = fmax(vmax, v);
    }
    double um = (umin + umax) / 2, vm = (vmin + vmax) / 2;
    /* centre back in landmark space: rotate by -th */
    double cx = cos(th) * um + sin(th) * vm, cy = -sin(th) * um + cos(th) * vm;
    double sx = scale_x * (umax - umin) / out_w, sy = scale_y * (vmax - vmin) / out_h;
    double c = cos(-th), s = sin(-th);
    /* p = centre + R(-th) * diag(sx, sy) * (q - out/2) */
    double r[16] = {c * sx, -s * sy, 0, cx - c * sx * out_w / 2.0 + s * sy * out_h / 2.0,
                    s * sx, c * sy,  0, cy - s * sx * out_w / 2.0 - c * sy * out_h / 2.0,
                    0,      0,       1, 0,
                    0,      0,       0, 1};
    for (int i = 0; i < 16; i++) m16[i] = (float)r[i];
}

static void mul3(double *r, const double *a, const double *b) {
    double t[9] = {0};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 3; k++) t[i * 3 + j] += a[i * 3 + k] * b[k * 3 + j];
    memcpy(r, t, sizeof t);
}

void ref_l2tm_v1(const float *lm, int left, int right, const int *sub, int nsub, const int in_hw[2],
                 const int out_hw[2], int range, double mult, float *m16) {
    double a = -atan(((double)lm[right * 3 + 1] - lm[left * 3 + 1]) /
                     ((double)lm[right * 3] - lm[left * 3]));
    double xmin = 1e5, xmax = -1e5, ymin = 1e5, ymax = -1e5;
    for (int i = 0; i < nsub; i++) {
        double x = lm[sub[i] * 3], y = lm[sub[i] * 3 + 1];
        double u = x * cos(a) - y * sin(a), v = x * sin(a) + y * cos(a);
        xmin = fmin(xmin, u), xmax = fmax(xmax, u), ymin = fmin(ymin, v), ymax = fmax(ymax, v);
    }
    double mx = (xmin + xmax) / 2, my = (ymin + ymax) / 2;
    double rx = mx * cos(a) + my * sin(a), ry = -mx * sin(a) + my * cos(a);
    double S[9] = {(xmax - xmin) * mult / range, 0, 0, 0, (ymax - ymin) * mult / range, 0, 0, 0, 1};
    double R[9] = {cos(a), sin(a), rx / range * 2 - 1, -sin(a), cos(a), ry / range * 2 - 1, 0,
                   0,      1};
    double T[9] = {2.0 / (out_hw[1] - 1), 0, -1, 0, 2.0 / (out_hw[0] - 1), -1, 0, 0, 1};
    double A[9] = {(in_hw[1] - 1) / 2.0,
                   0,
                   (in_hw[1] - 1) / 2.0,
                   0,
                   (in_hw[0] - 1) / 2.0,
                   (in_hw[0] - 1) / 2.0,
                   0,
                   0,
                   1};
    double M[9];
    mul3(M, A, R);
    mul3(M, M, S);
    mul3(M, M, T);
    double r[16] = {M[0], M[1], 0, M[2], M[3], M[4], 0, M[5], M[6], M[7], M[8], 0, 0, 0, 0, 1};
    for (int i = 0; i < 16; i++) m16[i] = (float)r[i];
}
