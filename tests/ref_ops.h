/* Deliberately plain reference implementations of the MediaPipe custom ops, written separately
 * from src/nn/ops_mediapipe.c and in double precision, for the tests to compare against.
 * Formulations differ on purpose: bilinear as a tent-filter sum, transposed convolution as
 * scatter-accumulate, the landmark matrices in closed form. */
#ifndef TS_TESTS_REF_OPS_H
#define TS_TESTS_REF_OPS_H

#include <stddef.h>

/* version 1: sample input at M*(x, y); version 2: at M*(x+0.5, y+0.5) - 0.5.
 * in: [h][w][c], out: [oh][ow][c], m: row-major 4x4. */
void ref_transform_bilinear(int version, const float *in, int h, int w, int c, const float *m,
                            int oh, int ow, float *out);

/* n points of dim (2 or 3) floats; x,y through rows 0 and 1 with the translation scaled by
 * tscale; z copied. */
void ref_transform_landmarks(const float *pts, int n, int dim, const float *m, double tscale,
                             float *out);

/* Transposed convolution, NHWC input, OHWI weights, scatter form.
 * same: 1 for SAME, 0 for VALID. Writes output dims to *oh, *ow when out is NULL. */
void ref_tconv(const float *in, int n, int h, int w, int ic, const float *wt, int oc, int kh,
               int kw, const float *bias, int sh, int sw, int same, float *out, int *oh, int *ow);

/* Landmarks2TransformMatrix v2 in closed form. lm: xyz triplets; sub: 2*npairs indices. */
void ref_l2tm_v2(const float *lm, int left, int right, double target, const int *sub, int nsub,
                 int out_w, int out_h, double scale_x, double scale_y, float *m16);

/* Landmarks2TransformMatrix v1 (input_hw/output_hw as [h, w]). */
void ref_l2tm_v1(const float *lm, int left, int right, const int *sub, int nsub, const int in_hw[2],
                 const int out_hw[2], int range, double mult, float *m16);

#endif
