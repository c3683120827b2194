#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "face/mesh.h"

#define CROP 192
#define N_MESH 468

/* Mesh indices of the refined points, in the order the attention model outputs them (MediaPipe
 * tensors_to_face_landmarks_with_attention.pbtxt, LandmarksRefinementCalculator options). */
const int ts_mesh_lips_idx[80] = {
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0,  267, 269, 270, 409,
    78, 95,  88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415,
    76, 77,  90, 180, 85, 16, 315, 404, 320, 307, 306, 184, 74, 73, 72, 11, 302, 303, 304, 408,
    62, 96,  89, 179, 86, 15, 316, 403, 319, 325, 292, 183, 42, 41, 38, 12, 268, 271, 272, 407};
const int ts_mesh_left_eye_idx[71] = {
    33,  7,   163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173, 130, 25,
    110, 24,  23,  22,  26,  112, 243, 247, 30,  29,  27,  28,  56,  190, 226, 31,  228, 229,
    230, 231, 232, 233, 244, 113, 225, 224, 223, 222, 221, 189, 35,  124, 46,  53,  52,  65,
    143, 111, 117, 118, 119, 120, 121, 128, 245, 156, 70,  63,  105, 66,  107, 55,  193};
const int ts_mesh_right_eye_idx[71] = {
    263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398, 359, 255,
    339, 254, 253, 252, 256, 341, 463, 467, 260, 259, 257, 258, 286, 414, 446, 261, 448, 449,
    450, 451, 452, 453, 464, 342, 445, 444, 443, 442, 441, 413, 265, 353, 276, 283, 282, 295,
    372, 340, 346, 347, 348, 349, 350, 357, 465, 383, 300, 293, 334, 296, 336, 285, 417};
/* The first 16 refined eye points are the eye contour; an iris takes their mean depth. */
#define EYE_CONTOUR 16

static const float PI = 3.14159265358979f;

static float normalize_angle(float a) {
    return a - 2 * PI * floorf((a + PI) / (2 * PI));
}

/* MediaPipe's rotation rule: the angle that brings the line from `a` to `b` to horizontal. */
static float level_angle(float ax, float ay, float bx, float by) {
    return normalize_angle(0.f - atan2f(-(by - ay), bx - ax));
}

ts_face_roi ts_face_roi_from_detection(const ts_face_box *d) {
    ts_face_roi r;
    r.cx = d->x + d->w / 2;
    r.cy = d->y + d->h / 2;
    r.size = 1.5f * fmaxf(d->w, d->h);
    r.rotation = level_angle(d->kp[0][0], d->kp[0][1], d->kp[1][0], d->kp[1][1]);
    return r;
}

ts_face_roi ts_face_roi_from_mesh(const ts_face_mesh *m) {
    float x0 = m->pts[0][0], x1 = x0, y0 = m->pts[0][1], y1 = y0;
    for (int i = 1; i < N_MESH; i++) {
        x0 = fminf(x0, m->pts[i][0]), x1 = fmaxf(x1, m->pts[i][0]);
        y0 = fminf(y0, m->pts[i][1]), y1 = fmaxf(y1, m->pts[i][1]);
    }
    ts_face_roi r = {(x0 + x1) / 2, (y0 + y1) / 2, 1.5f * fmaxf(x1 - x0, y1 - y0), 0};
    r.rotation = level_angle(m->pts[33][0], m->pts[33][1], m->pts[263][0], m->pts[263][1]);
    return r;
}

/* 3-band 8-bit sRGB pixels that can be read where they are (a memory image): the identity
 * check's resampled canvases and files, read nine times each. */
static int is_rgb8_in_memory(VipsImage *im) {
    return im->BandFmt == VIPS_FORMAT_UCHAR && im->Bands == 3 && im->Coding == VIPS_CODING_NONE &&
           im->Type == VIPS_INTERPRETATION_sRGB && im->data &&
           (im->dtype == VIPS_IMAGE_SETBUF || im->dtype == VIPS_IMAGE_SETBUF_FOREIGN ||
            im->dtype == VIPS_IMAGE_MMAPIN);
}

/* What vips_affine (libvips 8.14, bilinear, black edge, oarea CROP x CROP) makes of a 3-band
 * uchar memory image for the forward matrix (a b; c d) and output offset (odx, ody), written as
 * the tensor: the same arithmetic, step for step, so the crop is the same to the bit (a crop
 * through libvips costs more than the mesh pass that reads it: a pipeline for 192 x 192
 * pixels). libvips pads the input by a black pixel on each side and clips to it; it maps each
 * output row from its tile's left edge (128-pixel tiles) and steps across by the inverse's
 * first column; the weights are 12-bit fixed point. */
enum { AFF_TILE = 128, AFF_SHIFT = 12, AFF_ONE = 1 << AFF_SHIFT };

/* One output pixel at input position (ix, iy) of the padded input (see affine_bilinear_u8). */
static inline void affine_px(const VipsPel *base, size_t ls, int w, int h, double ix, double iy,
                             float *q) {
    /* floor(ix) in [0, w] and floor(iy) in [0, h], without the calls */
    if (!(ix >= 0 && ix < w + 1.0 && iy >= 0 && iy < h + 1.0)) {
        q[0] = q[1] = q[2] = 0;
        return;
    }
    int ex = (int)ix, ey = (int)iy;
    int X = (int)((ix - ex) * AFF_ONE), Y = (int)((iy - ey) * AFF_ONE);
    int Yd = AFF_ONE - Y, c4 = (Y * X) >> AFF_SHIFT, c2 = (Yd * X) >> AFF_SHIFT;
    int c3 = Y - c4, c1 = Yd - c2;
    /* the four neighbours, (ex - 1 .. ex, ey - 1 .. ey) of im */
    static const VipsPel black[3] = {0, 0, 0};
    const VipsPel *p[4];
    if (ex >= 1 && ex < w && ey >= 1 && ey < h) {
        p[0] = base + (size_t)(ey - 1) * ls + 3 * (size_t)(ex - 1);
        p[1] = p[0] + 3, p[2] = p[0] + ls, p[3] = p[2] + 3;
    } else {
        for (int k = 0; k < 4; k++) {
            int sx = ex - 1 + (k & 1), sy = ey - 1 + (k >> 1);
            p[k] = sx >= 0 && sx < w && sy >= 0 && sy < h ? base + (size_t)sy * ls + 3 * (size_t)sx
                                                          : black;
        }
    }
    for (int ch = 0; ch < 3; ch++)
        q[ch] = ((c1 * p[0][ch] + c2 * p[1][ch] + c3 * p[2][ch] + c4 * p[3][ch] + AFF_ONE / 2) >>
                 AFF_SHIFT) /
                255.f;
}

#if defined(__GNUC__) && defined(__x86_64__)
#define AFF_AVX2 1
#include <immintrin.h>
static int aff_use_avx2;
static pthread_once_t aff_once = PTHREAD_ONCE_INIT;
static void aff_init(void) {
    aff_use_avx2 = ts_cpu_avx2();
}

/* affine_px on eight pixels whose four neighbours are all inside im, none of them its last
 * pixel (each neighbour is read as the four bytes at it): the same integer weights and sums,
 * two neighbours' products a madd. The positions come in as they were stepped. */
__attribute__((target("avx2"))) static void
affine_px8_avx2(const VipsPel *base, size_t ls, const double *ix, const double *iy, float *q) {
    __m256d x0 = _mm256_loadu_pd(ix), x1 = _mm256_loadu_pd(ix + 4);
    __m256d y0 = _mm256_loadu_pd(iy), y1 = _mm256_loadu_pd(iy + 4);
    __m128i ex0 = _mm256_cvttpd_epi32(x0), ex1 = _mm256_cvttpd_epi32(x1);
    __m128i ey0 = _mm256_cvttpd_epi32(y0), ey1 = _mm256_cvttpd_epi32(y1);
    const __m256d one = _mm256_set1_pd(AFF_ONE);
    __m256i ex = _mm256_set_m128i(ex1, ex0), ey = _mm256_set_m128i(ey1, ey0);
    __m256i X = _mm256_set_m128i(
        _mm256_cvttpd_epi32(_mm256_mul_pd(_mm256_sub_pd(x1, _mm256_cvtepi32_pd(ex1)), one)),
        _mm256_cvttpd_epi32(_mm256_mul_pd(_mm256_sub_pd(x0, _mm256_cvtepi32_pd(ex0)), one)));
    __m256i Y = _mm256_set_m128i(
        _mm256_cvttpd_epi32(_mm256_mul_pd(_mm256_sub_pd(y1, _mm256_cvtepi32_pd(ey1)), one)),
        _mm256_cvttpd_epi32(_mm256_mul_pd(_mm256_sub_pd(y0, _mm256_cvtepi32_pd(ey0)), one)));
    __m256i Yd = _mm256_sub_epi32(_mm256_set1_epi32(AFF_ONE), Y);
    __m256i c4 = _mm256_srai_epi32(_mm256_mullo_epi32(Y, X), AFF_SHIFT);
    __m256i c2 = _mm256_srai_epi32(_mm256_mullo_epi32(Yd, X), AFF_SHIFT);
    __m256i c3 = _mm256_sub_epi32(Y, c4), c1 = _mm256_sub_epi32(Yd, c2);
    /* (c1, c2) and (c3, c4) as 16-bit pairs: each weight is 0..4096 */
    __m256i k12 = _mm256_or_si256(c1, _mm256_slli_epi32(c2, 16));
    __m256i k34 = _mm256_or_si256(c3, _mm256_slli_epi32(c4, 16));
    const __m256i one1 = _mm256_set1_epi32(1);
    __m256i off =
        _mm256_add_epi32(_mm256_mullo_epi32(_mm256_sub_epi32(ey, one1), _mm256_set1_epi32((int)ls)),
                         _mm256_mullo_epi32(_mm256_sub_epi32(ex, one1), _mm256_set1_epi32(3)));
    const int *b = (const int *)base;
    __m256i g0 = _mm256_i32gather_epi32(b, off, 1);
    __m256i g1 = _mm256_i32gather_epi32((const int *)(base + 3), off, 1);
    __m256i g2 = _mm256_i32gather_epi32((const int *)(base + ls), off, 1);
    __m256i g3 = _mm256_i32gather_epi32((const int *)(base + ls + 3), off, 1);
    const __m256i lo = _mm256_set1_epi32(0xff), hi = _mm256_set1_epi32(0xff0000);
    const __m256i half = _mm256_set1_epi32(AFF_ONE / 2);
    const __m256 c255 = _mm256_set1_ps(255.f);
    float out[3][8];
    for (int ch = 0; ch < 3; ch++) {
        /* this band of neighbours 0 and 1 (2 and 3) as the low and high halves */
        __m256i a01, a23;
        if (ch == 0) {
            a01 = _mm256_or_si256(_mm256_and_si256(g0, lo), _mm256_slli_epi32(g1, 16));
            a23 = _mm256_or_si256(_mm256_and_si256(g2, lo), _mm256_slli_epi32(g3, 16));
        } else if (ch == 1) {
            a01 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(g0, 8), lo),
                                  _mm256_and_si256(_mm256_slli_epi32(g1, 8), hi));
            a23 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(g2, 8), lo),
                                  _mm256_and_si256(_mm256_slli_epi32(g3, 8), hi));
        } else {
            a01 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(g0, 16), lo),
                                  _mm256_and_si256(g1, hi));
            a23 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(g2, 16), lo),
                                  _mm256_and_si256(g3, hi));
        }
        if (ch == 0) {
            /* (the shift left leaves g1's second byte in the top half: clear it) */
            a01 = _mm256_and_si256(a01, _mm256_set1_epi32(0x00ff00ff));
            a23 = _mm256_and_si256(a23, _mm256_set1_epi32(0x00ff00ff));
        }
        __m256i sum = _mm256_add_epi32(_mm256_madd_epi16(a01, k12), _mm256_madd_epi16(a23, k34));
        sum = _mm256_srai_epi32(_mm256_add_epi32(sum, half), AFF_SHIFT);
        _mm256_storeu_ps(out[ch], _mm256_div_ps(_mm256_cvtepi32_ps(sum), c255));
    }
    for (int k = 0; k < 8; k++)
        q[3 * k] = out[0][k], q[3 * k + 1] = out[1][k], q[3 * k + 2] = out[2][k];
}
/* Whether all eight positions have their four neighbours inside im and none reading its last
 * row (*in: the positions are >= 0, so (int) is floor), or all are off the padded input (*out,
 * black). */
__attribute__((target("avx2"))) static void aff_classify8_avx2(const double *ix, const double *iy,
                                                               int w, int h, int *in, int *out) {
    const __m256d one = _mm256_set1_pd(1), zero = _mm256_setzero_pd();
    const __m256d wd = _mm256_set1_pd(w), hd = _mm256_set1_pd(h);
    int inside = 0, within = 0; /* bits: inside im; on the padded input */
    for (int k = 0; k < 2; k++) {
        __m256d x = _mm256_loadu_pd(ix + 4 * k), y = _mm256_loadu_pd(iy + 4 * k);
        __m256d i = _mm256_and_pd(
            _mm256_and_pd(_mm256_cmp_pd(x, one, _CMP_GE_OQ), _mm256_cmp_pd(x, wd, _CMP_LT_OQ)),
            _mm256_and_pd(_mm256_cmp_pd(y, one, _CMP_GE_OQ),
                          _mm256_cmp_pd(y, _mm256_sub_pd(hd, one), _CMP_LT_OQ)));
        __m256d o =
            _mm256_and_pd(_mm256_and_pd(_mm256_cmp_pd(x, zero, _CMP_GE_OQ),
                                        _mm256_cmp_pd(x, _mm256_add_pd(wd, one), _CMP_LT_OQ)),
                          _mm256_and_pd(_mm256_cmp_pd(y, zero, _CMP_GE_OQ),
                                        _mm256_cmp_pd(y, _mm256_add_pd(hd, one), _CMP_LT_OQ)));
        inside |= _mm256_movemask_pd(i) << (4 * k);
        within |= _mm256_movemask_pd(o) << (4 * k);
    }
    *in = inside == 0xff, *out = within == 0;
}
#else
#define AFF_AVX2 0
#endif

/* What vips_affine (libvips 8.14, bilinear, black edge, oarea CROP x CROP) makes of a 3-band
 * uchar memory image for the forward matrix (a b; c d) and output offset (odx, ody), written as
 * the tensor: the same arithmetic, step for step, so the crop is the same to the bit (a crop
 * through libvips costs more than the mesh pass that reads it: a pipeline for 192 x 192
 * pixels). libvips pads the input by a black pixel on each side and clips to it; it maps each
 * output row from its tile's left edge (128-pixel tiles) and steps across by the inverse's
 * first column; the weights are 12-bit fixed point. With AVX2, eight pixels at a time where
 * all their neighbours are inside the image (0.3 ms a crop one at a time). */
static void affine_bilinear_u8(VipsImage *im, double a, double b, double c, double d, double odx,
                               double ody, float *dst) {
    const int w = im->Xsize, h = im->Ysize;
    const size_t ls = VIPS_IMAGE_SIZEOF_LINE(im);
    const VipsPel *base = im->data;
    double t = 1.0 / (a * d - b * c);
    double ia = t * d, ib = -t * b, ic = -t * c, id = t * a;
#if AFF_AVX2
    pthread_once(&aff_once, aff_init);
#endif
    /* pixel (ex, ey) of the padded input: (ex - 1, ey - 1) of im, black outside it */
    for (int y = 0; y < CROP; y++)
        for (int le = 0; le < CROP; le += AFF_TILE) {
            int ri = le + AFF_TILE < CROP ? le + AFF_TILE : CROP;
            double ox = le - odx, oy = y - ody;
            double ix = ia * ox + ib * oy, iy = ic * ox + id * oy;
            ix -= -1.0, iy -= -1.0;
            float *q = dst + ((size_t)y * CROP + le) * 3;
            double px[AFF_TILE], py[AFF_TILE];
            for (int x = le; x < ri; x++, ix += ia, iy += ic) px[x - le] = ix, py[x - le] = iy;
            int x = le;
#if AFF_AVX2
            if (aff_use_avx2)
                for (; x + 8 <= ri; x += 8) {
                    const double *gx = px + (x - le), *gy = py + (x - le);
                    int in, out;
                    aff_classify8_avx2(gx, gy, w, h, &in, &out);
                    if (in) {
                        affine_px8_avx2(base, ls, gx, gy, q + 3 * (x - le));
                    } else if (out) {
                        memset(q + 3 * (x - le), 0, sizeof(float) * 24);
                    } else {
                        for (int k = 0; k < 8; k++)
                            affine_px(base, ls, w, h, gx[k], gy[k], q + 3 * (x - le + k));
                    }
                }
#endif
            for (; x < ri; x++) affine_px(base, ls, w, h, px[x - le], py[x - le], q + 3 * (x - le));
        }
}

/* Samples the ROI (photo pixels) into a CROP x CROP RGB tensor in [0, 1] from src, an image
 * related to the photo by P (photo -> src pixels, x' = P0 x + P1 y + P2, y' = P3 x + P4 y + P5),
 * with libvips' bilinear affine transform. name names src in messages. */
static ts_status sample_roi_from(ts_ctx *ctx, VipsImage *src, const double P[6], ts_face_roi r,
                                 const char *name, float *dst) {
    VipsImage *rgb = NULL, *flat = NULL, *u8 = NULL, *warped = NULL;
    /* Photo -> crop: (u, v) = K (x - c) + CROP/2 with K = k R(-rot); src -> crop: K P^-1. */
    double k = CROP / r.size, c = cos(r.rotation), s = sin(r.rotation);
    double K[4] = {k * c, k * s, -k * s, k * c};
    double det = P[0] * P[4] - P[1] * P[3];
    if (!isfinite(det) || fabs(det) < 1e-12)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "%s: face crop: singular transform", name);
    double Pi[4] = {P[4] / det, -P[1] / det, -P[3] / det, P[0] / det};
    double a = K[0] * Pi[0] + K[1] * Pi[2], b = K[0] * Pi[1] + K[1] * Pi[3];
    double cc = K[2] * Pi[0] + K[3] * Pi[2], d = K[2] * Pi[1] + K[3] * Pi[3];
    /* the ROI centre in src lands on the crop centre */
    double tcx = P[0] * r.cx + P[1] * r.cy + P[2], tcy = P[3] * r.cx + P[4] * r.cy + P[5];
    double odx = CROP / 2.0 - (a * tcx + b * tcy), ody = CROP / 2.0 - (cc * tcx + d * tcy);
    if (is_rgb8_in_memory(src)) {
        affine_bilinear_u8(src, a, b, cc, d, odx + 0.5 * (a + b) - 0.5, ody + 0.5 * (cc + d) - 0.5,
                           dst);
        return TS_OK;
    }
    VipsInterpolate *bil = vips_interpolate_new("bilinear");
    int ok = vips_colourspace(src, &rgb, VIPS_INTERPRETATION_sRGB, NULL) == 0;
    if (ok)
        ok = vips_image_hasalpha(rgb) ? vips_flatten(rgb, &flat, NULL) == 0
                                      : (flat = g_object_ref(rgb)) != NULL;
    VipsArrayInt *area = vips_array_int_newv(4, 0, 0, CROP, CROP);
    VipsArrayDouble *black = vips_array_double_newv(1, 0.0);
    /* Pixel centres: vips maps pixel corners, so shift by half a pixel in and out. */
    if (ok)
        ok = vips_affine(flat, &warped, a, b, cc, d, "interpolate", bil, "oarea", area, "odx",
                         odx + 0.5 * (a + b) - 0.5, "ody", ody + 0.5 * (cc + d) - 0.5, "extend",
                         VIPS_EXTEND_BLACK, "background", black, NULL) == 0;
    if (ok) ok = vips_cast_uchar(warped, &u8, NULL) == 0;
    vips_area_unref(VIPS_AREA(area));
    vips_area_unref(VIPS_AREA(black));
    g_object_unref(bil);
    size_t len = 0;
    unsigned char *px = ok ? vips_image_write_to_memory(u8, &len) : NULL;
    int bands = u8 ? u8->Bands : 0;
    VipsImage *all[] = {rgb, flat, u8, warped};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]) g_object_unref(all[i]);
    if (!px || len != (size_t)CROP * CROP * bands || bands < 1) {
        g_free(px);
        return ts_fail(ctx, TS_ERR_INTERNAL, "%s: face crop failed: %s", name, vips_error_buffer());
    }
    for (int i = 0; i < CROP * CROP; i++)
        for (int ch = 0; ch < 3; ch++)
            dst[i * 3 + ch] = px[i * bands + (bands >= 3 ? ch : 0)] / 255.f;
    g_free(px);
    return TS_OK;
}

/* The ROI from the photo: the analysis copy serves when the crop takes at least CROP of its
 * pixels (the usual case); a small face in a big photo gets its own, sharper decode, sized so
 * the crop is never upsampled from more than 2x decimated data. *scale receives the sampled
 * image's pixels per photo pixel. */
static ts_status sample_roi(ts_ctx *ctx, ts_photo *p, ts_face_roi r, float *dst, float *scale) {
    VipsImage *t = NULL;
    double an_scale;
    VipsImage *an = ts_photo_analysis(ctx, p, &an_scale);
    if (!an) return TS_ERR_FORMAT;
    if (r.size * an_scale >= CROP) {
        t = g_object_ref(an);
    } else {
        double shrink = fmin(1.0, 2.0 * CROP / fmax(r.size, 1.0));
        int tw = (int)lround(p->width * shrink), th = (int)lround(p->height * shrink);
        tw = tw < 1 ? 1 : tw, th = th < 1 ? 1 : th;
        VipsImage *dec = NULL;
        if (vips_thumbnail(p->path, &dec, tw, "height", th, NULL) ||
            !(t = ts_photo_decoded(p, dec))) {
            if (dec) g_object_unref(dec);
            return ts_fail(ctx, TS_ERR_FORMAT, "%s: cannot decode: %s", p->path,
                           vips_error_buffer());
        }
        g_object_unref(dec);
    }
    double sx = (double)t->Xsize / p->width, sy = (double)t->Ysize / p->height;
    const double P[6] = {sx, 0, 0, 0, sy, 0};
    ts_status s = sample_roi_from(ctx, t, P, r, p->path, dst);
    g_object_unref(t);
    *scale = (float)sqrt(sx * sy);
    return s;
}

/* One pass: crop (from the photo, or from src through P when src is given), run the attention
 * model, refine, map back to photo pixels. */
static ts_status mesh_pass(ts_ctx *ctx, ts_photo *p, VipsImage *src, const double P[6],
                           const char *name, ts_face_roi r, ts_face_mesh *out) {
    ts_nn_runtime *rt = ts_ctx_runtime(ctx, TS_MODEL_FACE_LANDMARK_ATTENTION);
    if (!rt) return TS_ERR_MODEL;
    float scale = 1;
    ts_status s = src ? sample_roi_from(ctx, src, P, r, name, ts_nn_input(rt, 0).data)
                      : sample_roi(ctx, p, r, ts_nn_input(rt, 0).data, &scale);
    if (s) return s;
    out->src_scale = src ? (float)sqrt(fabs(P[0] * P[4] - P[1] * P[3])) : scale;
    char err[300];
    if (ts_nn_run(rt, err, sizeof err)) return ts_fail(ctx, TS_ERR_INTERNAL, "%s", err);
    const float *mesh = ts_nn_output(rt, 0).data, *lips = ts_nn_output(rt, 1).data,
                *leye = ts_nn_output(rt, 2).data, *reye = ts_nn_output(rt, 3).data,
                *liris = ts_nn_output(rt, 4).data, *riris = ts_nn_output(rt, 5).data,
                *flag = ts_nn_output(rt, 6).data;
    float crop[TS_MESH_POINTS][3];
    for (int i = 0; i < N_MESH; i++)
        for (int k = 0; k < 3; k++) crop[i][k] = mesh[i * 3 + k];
    /* Refinement replaces x and y of lips and eyes; depth stays the mesh's. */
    for (int i = 0; i < 80; i++)
        crop[ts_mesh_lips_idx[i]][0] = lips[2 * i], crop[ts_mesh_lips_idx[i]][1] = lips[2 * i + 1];
    for (int i = 0; i < 71; i++) {
        crop[ts_mesh_left_eye_idx[i]][0] = leye[2 * i],
        crop[ts_mesh_left_eye_idx[i]][1] = leye[2 * i + 1];
        crop[ts_mesh_right_eye_idx[i]][0] = reye[2 * i],
        crop[ts_mesh_right_eye_idx[i]][1] = reye[2 * i + 1];
    }
    float zl = 0, zr = 0;
    for (int i = 0; i < EYE_CONTOUR; i++)
        zl += crop[ts_mesh_left_eye_idx[i]][2], zr += crop[ts_mesh_right_eye_idx[i]][2];
    for (int i = 0; i < 5; i++) {
        crop[468 + i][0] = liris[2 * i], crop[468 + i][1] = liris[2 * i + 1];
        crop[468 + i][2] = zl / EYE_CONTOUR;
        crop[473 + i][0] = riris[2 * i], crop[473 + i][1] = riris[2 * i + 1];
        crop[473 + i][2] = zr / EYE_CONTOUR;
    }
    float c = cosf(r.rotation), sn = sinf(r.rotation), k = r.size / CROP;
    for (int i = 0; i < TS_MESH_POINTS; i++) {
        float u = (crop[i][0] - CROP / 2.f) * k, v = (crop[i][1] - CROP / 2.f) * k;
        out->pts[i][0] = r.cx + u * c - v * sn;
        out->pts[i][1] = r.cy + u * sn + v * c;
        out->pts[i][2] = crop[i][2] * k;
    }
    out->presence = 1.f / (1.f + expf(-flag[0]));
    out->roi = r;
    return TS_OK;
}

ts_status ts_face_mesh_compute(ts_ctx *ctx, ts_photo *p, const ts_face_box *det,
                               ts_face_mesh *out) {
    if (!ctx || !p || !det || !out) return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_face_mesh: NULL");
    ts_face_mesh first;
    ts_status s = mesh_pass(ctx, p, NULL, NULL, NULL, ts_face_roi_from_detection(det), &first);
    if (s) return s;
    /* The detection box is loose; the mesh's own box centres and levels the face better. */
    ts_face_mesh second;
    s = mesh_pass(ctx, p, NULL, NULL, NULL, ts_face_roi_from_mesh(&first), &second);
    if (s) return s;
    *out = second;
    return TS_OK;
}

ts_status ts_face_mesh_on(ts_ctx *ctx, VipsImage *src, const double P[6], ts_face_roi roi,
                          const char *name, ts_face_mesh *out) {
    if (!ctx || !src || !P || !out) return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_face_mesh_on: NULL");
    return mesh_pass(ctx, NULL, src, P, name ? name : "image", roi, out);
}
