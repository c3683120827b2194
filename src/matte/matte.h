/* Person matte: the pieces of ts_photo_matte, one file each (docs/matte.md).
 *
 * Resolutions: the "work" image is the matte region taken from the photo's analysis copy (a
 * power-of-two shrink, at most TS_ANALYSIS_SIDE); the network, the trimap, the guided filter's
 * coefficients and the coarse foreground colour live there. Only the uncertain band is then
 * computed at the photo's full resolution. */
#ifndef TS_MATTE_MATTE_H
#define TS_MATTE_MATTE_H

#include <stdint.h>

#include "core/internal.h"

/* The alpha and the foreground colour are kept in blocks of TS_MATTE_BLOCK x TS_MATTE_BLOCK
 * region pixels: an alpha block all 0 or all 1 is only marked so, a foreground block the solve
 * did not change is the photo's own pixels; only the rest (along the person's edge) is stored.
 * Whole copies of the region (26 + 39 MB for a 12-MP photo whose region is all of it) would
 * mostly repeat the photo and the two values. */
#define TS_MATTE_BLOCK 32

/* Alpha blocks that are all 0 or all 65535 are not stored: their a_index says which. */
enum { TS_MATTE_ALPHA_ZERO = -1, TS_MATTE_ALPHA_ONE = -2 };

struct ts_matte {
    int x, y, w, h; /* region in photo pixels */
    /* The blocks: blocks_w across and blocks_h down, row-major, for both planes. */
    int blocks_w, blocks_h;
    /* Alpha, 0..65535: block b is all 0 or all 65535 (a_index[b] TS_MATTE_ALPHA_ZERO or _ONE),
     * or its values at a_blocks + a_index[b] * TS_MATTE_BLOCK^2, in rows of
     * TS_MATTE_BLOCK (blocks at the region's right and bottom edges partly unused). Read it
     * with ts_matte_alpha_span, ts_matte_alpha_at or ts_matte_alpha16. */
    int32_t *a_index;
    uint16_t *a_blocks;
    /* The foreground colour (sRGB bytes; meaningless where alpha == 0): photo (the photo's
     * full-resolution decode, 3-band uchar in memory, a reference; the region at x, y in it),
     * except block b where fg_index[b] >= 0: then its colours, at
     * fg_blocks + fg_index[b] * TS_MATTE_BLOCK^2 * 3, rows of TS_MATTE_BLOCK pixels
     * (blocks at the region's right and bottom edges are partly unused). Read it with
     * ts_matte_fg_span or ts_matte_fg_copy. */
    VipsImage *photo;
    int32_t *fg_index;
    uint8_t *fg_blocks;
};

/* The alpha of region row y, columns x0 .. x1 - 1 (within the region), into dst. */
void ts_matte_alpha_span(const ts_matte *m, int y, int x0, int x1, uint16_t *dst);

/* The alpha at region pixel (x, y), 0 outside the region. */
uint16_t ts_matte_alpha_at(const ts_matte *m, int x, int y);

/* Where the foreground colour of region row y, columns x0 .. x1 - 1, differs from the photo:
 * writes the kept blocks' colours over dst (which holds those columns' photo pixels, 3 bytes
 * each). Returns how many pixels it wrote (0: the span is the photo's). */
int ts_matte_fg_span(const ts_matte *m, int y, int x0, int x1, uint8_t *dst);

/* The foreground colour of the whole region, w * h * 3 bytes (g_malloc'd; NULL when out of
 * memory). */
uint8_t *ts_matte_fg_copy(const ts_matte *m);

/* A float image of one or more interleaved bands. */
typedef struct ts_fimg {
    int w, h, bands;
    float *px;
} ts_fimg;

/* Trimap values. */
enum { TS_TRI_BG = 0, TS_TRI_UNKNOWN = 1, TS_TRI_FG = 2 };

/* Runs the square or landscape selfie segmentation network (by the aspect of region, a 3-band
 * uchar sRGB image) on region and on its mirror image, and writes the averaged person
 * probability, resampled to region's size, to prob (Xsize * Ysize floats). mirror = 0 runs the
 * network once. Returns TS_OK or an error set on ctx. */
ts_status ts_matte_segment(ts_ctx *ctx, VipsImage *region, int mirror, float *prob);

/* Fills holes in the person: background components of prob < 0.5 that touch no side of the
 * image and are smaller than max_frac of it are set to 1. Returns the person's area fraction. */
double ts_matte_fill_holes(float *prob, int w, int h, double max_frac);

/* A face in work pixels, for the subject prior: centre line, box top, chin (box bottom), width. */
typedef struct ts_matte_face {
    float cx, top, chin, w;
} ts_matte_face;

/* The subject prior at (x, y) in [0, 1]: 1 inside the subject's expected silhouette (head, then
 * shoulders widening below the chin), fading beyond it, and 0 where another face's silhouette
 * is nearer (distances normalised by each face's size: a Voronoi split weighted by face size). */
float ts_matte_subject_weight(const ts_matte_face *faces, int nf, int subject, float x, float y);

/* Keeps only the subject in prob: multiplies it by the subject prior, then drops the person
 * components (p >= 0.5, then their p >= 0.1 fringes) not joined to the subject's face. */
void ts_matte_isolate(float *prob, int w, int h, const ts_matte_face *faces, int nf, int subject);

/* Closes holes in a solved alpha: components of alpha < 0.5 that touch no side and cover at most
 * max_frac of the image become 1 and sure person in tri. Returns 0, or -1 when out of memory. */
int ts_matte_close_alpha_holes(float *alpha, uint8_t *tri, int w, int h, double max_frac);

/* Trimap from the probability: confident foreground (p > 0.9) and background (p < 0.1), each
 * eroded by r pixels (the background by r_top above row y_top, for hair), the rest unknown. Erosion
 * windows are clipped at the image sides, so a body that runs off the side stays confident there.
 */
void ts_matte_trimap(const float *prob, int w, int h, int r, int r_top, int y_top, uint8_t *tri);

/* Alpha from colour in the trimap's band. Within radius r, the local mean colours of the
 * confident background B and of the confident person, the latter twice, weighted towards its
 * darker (Fd) and its brighter (Fb) colours; alpha is the least-squares fit of
 * I - B = u (Fd - B) + v (Fb - B), u, v >= 0, alpha = u + v (the projection on the colour line
 * (I - B).(F - B) / |F - B|^2 where the two are collinear), blended into alpha (which holds the
 * network's estimate there) by how far apart person and background colours are. bg (w x h x 4,
 * or NULL) receives, at band pixels, B and how flat the sure background is there (1 where the
 * variance of its colours is within noise, down to 0). Returns 0, or -1 when out of memory. */
int ts_matte_colour_alpha(const ts_fimg *rgb, const uint8_t *tri, int r, float *alpha, float *bg);

/* How much each band pixel's colour belongs to the background rather than the person, in
 * [0, 1] into bgw (w x h; 0 outside the band): colours frequent in the sure background and
 * rare in the sure person, both taken within r_near of the band (RGB histograms), where the
 * network's probability prob is not high. strong (w x h) is set to 1 at band pixels of a colour
 * that is clearly and abundantly the background's, where prob is not high, else 0. Returns 0,
 * or -1 when out of memory. */
int ts_matte_bg_colour(const ts_fimg *rgb, const uint8_t *tri, const float *prob, int r_near,
                       float *bgw, uint8_t *strong);

/* Caps soft alpha far from the solid person where the background is busy: at band pixels more
 * than half a band from alpha >= 0.9, falling to 0 at 2 band, as far as the sure background
 * nearby is busy (bg: the colour model's w x h x 4 output, band 3 its flatness) and the
 * network's prob is low; from row body_row down (below the chin: clothes, not hair) from a tenth
 * of a band, falling to 0 at 0.6 band. alpha and the guided filter's coefficients coef
 * (w x h x 4) are scaled together. band: the trimap's band in pixels. Returns 0, or -1 when out
 * of memory. */
int ts_matte_limit_reach(float *alpha, float *coef, const uint8_t *tri, const float *prob,
                         const float *bg, int w, int h, int band, int body_row);

/* Drops islands of alpha: band pixels not joined to the sure person through pixels of alpha >=
 * thr (8-connected) become 0 and sure background in tri. Returns 0, or -1 when out of memory. */
int ts_matte_drop_islands(float *alpha, uint8_t *tri, int w, int h, float thr);

/* Colour guided filter (He et al. 2013) of p with guide rgb, regulariser eps: the linear
 * coefficients are fitted over windows of radius r_fit, then averaged over radius r_avg, into
 * coef (w x h x 4: a_r, a_g, a_b, b), so that the filtered value at a pixel of colour I is
 * a . I + b. Returns 0, or -1 when out of memory. */
int ts_matte_guided_coef(const ts_fimg *rgb, const float *p, int r_fit, int r_avg, float eps,
                         float *coef);

/* Box mean of radius r over `bands` interleaved planes (at most 64), windows clipped at the
 * sides (normalised by the pixels inside), streamed: produce(arg, y, row) writes row y of the
 * planes (w * bands floats; called for each row about twice, from any thread), consume(arg, y,
 * mean) receives the means of row y (each row once). Rows are split between the cores. Returns
 * 0, or -1 when out of memory. */
int ts_matte_box_stream(int w, int h, int bands, int r,
                        void (*produce)(void *arg, int y, float *row),
                        void (*consume)(void *arg, int y, const float *mean), void *arg);

/* Foreground and background colours (Germer et al. 2020, multi-level) for image rgb with
 * alpha; fg and bg are w x h x 3. Coarse levels are solved over the whole image, fine ones only
 * near 0 < alpha < 1 and near the trimap's band (tri may be NULL). Returns 0 / -1. */
int ts_matte_foreground_ml(const ts_fimg *rgb, const float *alpha, const uint8_t *tri, float *fg,
                           float *bg);

/* The finest level of that solve at one full-resolution pixel of colour I and alpha a, whose
 * neighbours' F and B are taken from the coarse solution (f_up, b_up, upsampled) and whose
 * smoothness weight is wsum (the sum over its neighbours of eps + w |a - a_j|). Writes F. */
static inline void ts_matte_foreground_pixel(const float I[3], float a, float wsum,
                                             const float f_up[3], const float b_up[3], float F[3]) {
    float a1 = 1.f - a, a00 = a * a + wsum, a11 = a1 * a1 + wsum, a01 = a * a1;
    float inv = 1.f / (a00 * a11 - a01 * a01);
    for (int c = 0; c < 3; c++) {
        float b0 = a * I[c] + wsum * f_up[c], b1 = a1 * I[c] + wsum * b_up[c];
        float v = inv * (a11 * b0 - a01 * b1);
        F[c] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
}

/* Smoothness weight of the foreground solve between alphas a and a_j. */
#define TS_MATTE_FG_EPS 1e-5f
#define TS_MATTE_FG_GRAD 1.0f

/* Runs fn(arg, begin, end) over [0, n) split into one chunk per core (at most 4), on threads;
 * returns when all are done. Small n runs inline. */
void ts_matte_parallel(int n, void (*fn)(void *arg, int begin, int end), void *arg);

/* Writes im to path under a temporary name in the same folder, then renames it; a failure
 * leaves no file. Sets the ctx error; returns TS_OK or TS_ERR_WRITE. */
ts_status ts_matte_save_atomic(ts_ctx *ctx, VipsImage *im, const char *path);

#endif
