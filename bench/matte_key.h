/* Ground truth for the matte evaluation (issue 4): a chroma keyer for the blue-backdrop frames,
 * the Composition-1k error measures and CIEDE2000. Shared by bench/matte_eval.c and
 * tests/test_matte_keying.c; depends on libc and libm only. */
#ifndef TS_BENCH_MATTE_KEY_H
#define TS_BENCH_MATTE_KEY_H

#include <stdint.h>

/* Keys a subject shot against a saturated blue backdrop. rgb: w*h*3 sRGB bytes. seed_x/seed_y:
 * a pixel inside the subject (e.g. the face centre); only the subject connected to it is kept
 * (props at the frame edge are keyed out), with its soft edge. Outputs (caller-allocated):
 * alpha w*h values in [0,1]; fg w*h*3 foreground colours in [0,255] with the backdrop unmixed
 * and the blue spill suppressed. Returns 0, or -1 on bad input / no memory. */
int mk_key_blue(const uint8_t *rgb, int w, int h, int seed_x, int seed_y, float *alpha, float *fg);

/* Composition-1k measures (Xu et al. 2017, after Rhemann et al. 2009) of an estimated alpha
 * against the true one, both in [0,1], over the pixels where mask is nonzero (mask NULL: all):
 * SAD = sum |a - t| / 1000; MSE = mean (a - t)^2; gradient error = sum (|grad a| - |grad t|)^2
 * / 1000 with first-derivative-of-Gaussian filters, sigma 1.4 (the benchmark's MATLAB code). */
typedef struct mk_errors {
    double sad, mse, grad;
    long n;
} mk_errors;
int mk_alpha_errors(const float *est, const float *truth, const uint8_t *mask, int w, int h,
                    mk_errors *out);

/* sRGB (D65, 0..255 per channel, may be fractional) to CIELAB (D65 white). */
void mk_srgb_to_lab(const float rgb[3], double lab[3]);
/* CIEDE2000 colour difference, kL = kC = kH = 1 (Sharma, Wu and Dalal, "The CIEDE2000
 * Color-Difference Formula: Implementation Notes, Supplementary Test Data, and Mathematical
 * Observations", Color Research and Application 30(1), 2005, equations 1-22). */
double mk_ciede2000(const double lab1[3], const double lab2[3]);

/* Marks (1) the pixels within radius px of the 0.5 contour of alpha: a band 2*radius wide along
 * the true edge. Pixels on the frame border are never contour pixels. Returns the count. */
long mk_edge_band(const float *alpha, int w, int h, int radius, uint8_t *band);

#endif
