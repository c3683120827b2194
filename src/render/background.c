/* background: studio backdrops built from the person's matte (docs/render-background.md).
 *
 * Kinds: keep (the photo's own background, nothing composited), solid, vertical gradient, radial
 * gradient with vignette (the painted-paper studio look) and the original background blurred
 * (shallow depth of field). The backdrop colour is a brand colour, a named grey, or by default a
 * studio tone chosen to separate from the person's hair and clothing. Fine grain keeps the
 * gradients from banding once saved as 8 bits; a soft contact shadow under the shoulders seats
 * the person in the scene.
 *
 * Composite: out = fg a + backdrop (1 - a), by default on the sRGB-encoded values. The matte's
 * alpha and the decontaminated foreground were both solved for I = a F + (1 - a) B on sRGB
 * values (src/matte/foreground.c), so compositing in the same space puts back exactly the
 * colours the matte was fitted to: over the photo's own background it returns the photo.
 * Compositing in linear light (linear = yes) is the physically right blend for sub-pixel hair,
 * but applied to an alpha fitted in sRGB it makes dark hair over a light backdrop thinner and
 * lighter; the test suite measures both. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "render/render.h"
#include "render/srgb.h"

enum { KIND_KEEP, KIND_SOLID, KIND_GRADIENT, KIND_RADIAL, KIND_BLUR, KIND_COUNT };
static const char *const kind_names[] = {"keep", "solid", "gradient", "radial", "blur", NULL};
static const char *const kind_words[KIND_COUNT] = {"", "a solid backdrop", "a graded backdrop",
                                                   "a painted studio backdrop",
                                                   "the original blurred (shallow depth of field)"};

/* color's default: no colour given, so the tone is chosen automatically (when auto is on). */
#define AUTO_COLOR 0x000001u

typedef struct background_params {
    int kind;
    uint32_t color; /* 0xRRGGBB; AUTO_COLOR: none given */
    int auto_pick;  /* choose the tone from hair and clothing when no colour is given */
    float gradient; /* falloff, 0..1 (1: 1.5 stops from brightest to darkest) */
    float vignette; /* corner darkening, 0..1 (1: 1 stop in the corners) */
    float blur;     /* kind blur: Gaussian sigma as a fraction of the canvas width */
    float grain;    /* sigma of the backdrop's grain, in 8-bit levels */
    float shadow;   /* contact shadow strength, 0..1 */
    int linear;     /* composite in linear light instead of on sRGB values */
} background_params;

static const ts_param background_table[] = {
    TS_PARAM_ENUM(background_params, kind,
                  "backdrop: keep (the photo's own), solid, gradient (vertical), radial (painted "
                  "studio look), blur (the original, out of focus)",
                  kind_names, KIND_RADIAL),
    TS_PARAM_RGB(background_params, color,
                 "backdrop colour (#rrggbb or grey, lightgrey, darkgrey, ...); #000001: none, "
                 "chosen automatically",
                 AUTO_COLOR),
    {"auto",
     "when no colour is given, choose a studio tone that separates from the hair and "
     "the clothing (no: mid grey)",
     TS_PT_BOOL, offsetof(background_params, auto_pick), 0, 1, 1, 0, NULL},
    TS_PARAM_F32(background_params, gradient, "centre-to-edge falloff (1: 1.5 stops)", 0.f, 1.f,
                 .35f),
    TS_PARAM_F32(background_params, vignette, "corner darkening (1: one stop)", 0.f, 1.f, .15f),
    TS_PARAM_F32(background_params, blur,
                 "blur of the original background, sigma as a fraction of the width", 0.f, .05f,
                 .012f),
    TS_PARAM_F32(background_params, grain, "grain of the backdrop, sigma in 8-bit levels", 0.f, 4.f,
                 1.5f),
    TS_PARAM_F32(background_params, shadow, "soft contact shadow under the shoulders", 0.f, 1.f,
                 .3f),
    TS_PARAM_BOOL(background_params, linear, "composite in linear light instead of sRGB values", 0),
    TS_PARAM_END};

/* ---- colour ------------------------------------------------------------------------------- */

static double srgb_to_lin(double v) { /* v in 0..1 */
    return v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4);
}

static double lin_to_srgb(double v) {
    return v <= 0.0031308 ? 12.92 * v : 1.055 * pow(v, 1 / 2.4) - 0.055;
}

/* CIELAB (D65) of an sRGB colour given as 0..255 values. */
static void srgb_lab(const double rgb[3], double lab[3]) {
    double r = srgb_to_lin(rgb[0] / 255), g = srgb_to_lin(rgb[1] / 255),
           b = srgb_to_lin(rgb[2] / 255);
    double x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
    double y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    double z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
    double e = 216.0 / 24389, k = 24389.0 / 27;
    double fx = x > e ? cbrt(x) : (k * x + 16) / 116, fy = y > e ? cbrt(y) : (k * y + 16) / 116,
           fz = z > e ? cbrt(z) : (k * z + 16) / 116;
    lab[0] = 116 * fy - 16, lab[1] = 500 * (fx - fy), lab[2] = 200 * (fy - fz);
}

static void hex_rgb(uint32_t v, double rgb[3]) {
    rgb[0] = (v >> 16) & 255, rgb[1] = (v >> 8) & 255, rgb[2] = v & 255;
}

static double delta_e(const double a[3], const double b[3]) {
    return sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) +
                (a[2] - b[2]) * (a[2] - b[2]));
}

/* Studio tones (paper rolls and painted canvases). The greys are the named colours of the style
 * files (render/param.c), in the order a photographer reaches for them; the colours follow. */
static const struct {
    const char *name;
    uint32_t rgb;
    int grey;
} palette[] = {
    {"mid grey", 0x8a8d91, 1},   {"light grey", 0xc9cbce, 1}, {"slate grey", 0x5e6369, 1},
    {"dark grey", 0x3c3f43, 1},  {"pale grey", 0xe4e5e6, 1},  {"steel blue", 0x4a6a8a, 0},
    {"navy", 0x1f2a44, 0},       {"teal", 0x2f6b6b, 0},       {"sage", 0x8c9a7c, 0},
    {"warm beige", 0xd6c6ae, 0},
};
#define N_PALETTE ((int)(sizeof palette / sizeof palette[0]))

/* Past this difference more contrast adds nothing: the outline already reads clearly. */
#define SEPARATION_CAP 30.0
/* A colour must beat the best grey by this much to be chosen. */
#define COLOUR_PENALTY 8.0
/* The face must not melt into the backdrop either. */
#define SKIN_MIN 20.0

/* ---- pixels ------------------------------------------------------------------------------- */

/* im cast to float and held in memory (a new reference; NULL on failure). */
static VipsImage *mem_float(VipsImage *im) {
    VipsImage *f = NULL, *m = NULL;
    if (im->BandFmt == VIPS_FORMAT_FLOAT) return vips_image_copy_memory(im); /* a ref if it is */
    if (vips_cast_float(im, &f, NULL)) return NULL;
    m = vips_image_copy_memory(f);
    g_object_unref(f);
    return m;
}

/* A Gaussian blur of sigma pixels of a float buffer (W x H x bands), read back a row at a time
 * (soft_grid_row): averaged down by k so that the kernel stays short, blurred, then brought back
 * up bilinearly. The result is smooth, so little is lost, and a sigma of 100 px costs what one
 * of 4 does. Edges extend the nearest pixel. */
typedef struct soft_grid {
    const float *in; /* the input, read as it is when sigma is too small to blur */
    float *sb;       /* the blurred small image, sw x sh x bands (g_malloc'd); NULL: in as it is */
    int W, H, bands, k, sw, sh;
    int *tx;    /* per column, its two cells */
    float *twx; /* and the second's weight */
} soft_grid;

static void soft_grid_free(soft_grid *g) {
    g_free(g->sb), free(g->tx), free(g->twx);
    g->sb = NULL, g->tx = NULL, g->twx = NULL;
}

/* Makes g for in (which must outlive it); -1 when out of memory. */
static int soft_grid_make(const float *in, int W, int H, int bands, double sigma, soft_grid *g) {
    *g = (soft_grid){in, NULL, W, H, bands, 1, W, H, NULL, NULL};
    if (sigma < 0.3) return 0;
    int k = (int)fmax(1, floor(sigma / 3));
    k = (int)fmin(k, fmax(1, fmin(W, H) / 8));
    int sw = (W + k - 1) / k, sh = (H + k - 1) / k;
    g->k = k, g->sw = sw, g->sh = sh;
    float *small = calloc((size_t)sw * sh * bands, sizeof *small);
    if (!small) return -1;
    /* (the same sums in the same order as cell by cell; the cell of a pixel is found by
     * counting rather than dividing) */
    for (int y = 0; y < H; y++) {
        float *row = small + (size_t)(y / k) * sw * bands;
        const float *src = in + (size_t)y * W * bands;
        for (int x = 0, cx = 0, kx = 0; x < W; x++) {
            for (int c = 0; c < bands; c++)
                row[(size_t)cx * bands + c] += src[(size_t)x * bands + c];
            if (++kx == k) kx = 0, cx++;
        }
    }
    for (int y = 0; y < sh; y++)
        for (int x = 0; x < sw; x++) {
            int bw = (x + 1) * k > W ? W - x * k : k, bh = (y + 1) * k > H ? H - y * k : k;
            for (int c = 0; c < bands; c++)
                small[((size_t)y * sw + x) * bands + c] /= (float)(bw * bh);
        }
    VipsImage *si = vips_image_new_from_memory(small, sizeof *small * (size_t)sw * sh * bands, sw,
                                               sh, bands, VIPS_FORMAT_FLOAT);
    VipsImage *bl = NULL;
    float *sb = NULL;
    size_t len = 0;
    if (si && vips_gaussblur(si, &bl, sigma / k, "min_ampl", 0.01, NULL) == 0)
        sb = vips_image_write_to_memory(bl, &len);
    if (si) g_object_unref(si);
    if (bl) g_object_unref(bl);
    free(small);
    if (!sb || len != sizeof *sb * (size_t)sw * sh * bands) {
        g_free(sb);
        return -1;
    }
    g->sb = sb;
    /* Block centres sit at (i + 0.5) k - 0.5 in full-size pixels. */
    /* the columns' taps are the same on every row */
    g->tx = malloc(sizeof *g->tx * (size_t)W * 2);
    g->twx = malloc(sizeof *g->twx * (size_t)W);
    if (!g->tx || !g->twx) {
        soft_grid_free(g);
        return -1;
    }
    for (int x = 0; x < W; x++) {
        float fx = (x + 0.5f) / k - 0.5f;
        fx = fx < 0 ? 0 : fx > sw - 1 ? (float)(sw - 1) : fx;
        g->tx[2 * x] = (int)fx;
        g->tx[2 * x + 1] = g->tx[2 * x] + 1 < sw ? g->tx[2 * x] + 1 : g->tx[2 * x];
        g->twx[x] = fx - g->tx[2 * x];
    }
    return 0;
}

/* Columns [x0, x1) of row y of the blur, into out (out[x * bands] for column x). */
static void soft_grid_row(const soft_grid *g, int y, int x0, int x1, float *out) {
    int bands = g->bands;
    if (!g->sb) {
        memcpy(out + (size_t)x0 * bands, g->in + ((size_t)y * g->W + x0) * bands,
               sizeof *out * (size_t)(x1 - x0) * bands);
        return;
    }
    int k = g->k, sw = g->sw, sh = g->sh;
    const float *sb = g->sb;
    float fy = (y + 0.5f) / k - 0.5f;
    fy = fy < 0 ? 0 : fy > sh - 1 ? sh - 1 : fy;
    int y0 = (int)fy, y1 = y0 + 1 < sh ? y0 + 1 : y0;
    float wy = fy - y0;
    for (int x = x0; x < x1; x++) {
        int c0 = g->tx[2 * x], c1 = g->tx[2 * x + 1];
        float wx = g->twx[x];
        const float *a = sb + ((size_t)y0 * sw + c0) * bands,
                    *b = sb + ((size_t)y0 * sw + c1) * bands,
                    *c = sb + ((size_t)y1 * sw + c0) * bands,
                    *d = sb + ((size_t)y1 * sw + c1) * bands;
        float *o = out + (size_t)x * bands;
        for (int j = 0; j < bands; j++)
            o[j] = (1 - wy) * ((1 - wx) * a[j] + wx * b[j]) + wy * ((1 - wx) * c[j] + wx * d[j]);
    }
}

/* The whole blur in a new malloc'd buffer; NULL when out of memory. */
static float *soft_blur(const float *in, int W, int H, int bands, double sigma) {
    soft_grid g;
    if (soft_grid_make(in, W, H, bands, sigma, &g)) return NULL;
    float *out = malloc(sizeof *out * (size_t)W * H * bands);
    if (out)
        for (int y = 0; y < H; y++) soft_grid_row(&g, y, 0, W, out + (size_t)y * W * bands);
    soft_grid_free(&g);
    return out;
}

/* The mean CIELAB colour of fg over the box where alpha > amin, or 0 when fewer than nmin pixels
 * qualify. Means are taken on sRGB values, then converted (a region's perceived colour). */
static int region_lab(const float *fg, const float *al, int W, int H, double x0, double y0,
                      double x1, double y1, double exclude_half, double cx, float amin, int nmin,
                      double lab[3]) {
    int ix0 = (int)fmax(0, floor(x0)), iy0 = (int)fmax(0, floor(y0));
    int ix1 = (int)fmin(W, ceil(x1)), iy1 = (int)fmin(H, ceil(y1));
    double s[3] = {0, 0, 0};
    long n = 0;
    for (int y = iy0; y < iy1; y++)
        for (int x = ix0; x < ix1; x++) {
            size_t i = (size_t)y * W + x;
            if (al[i] <= amin || fabs(x + 0.5 - cx) < exclude_half) continue;
            for (int c = 0; c < 3; c++) s[c] += fg[i * 3 + c];
            n++;
        }
    if (n < nmin) return 0;
    for (int c = 0; c < 3; c++) s[c] /= n;
    srgb_lab(s, lab);
    return 1;
}

/* The automatic backdrop tone (the rule: docs/render-background.md). Returns the palette
 * index and the measured separations (-1 where a region was not visible). */
static int choose_tone(const ts_render_job *job, const float *fg, const float *al, int W, int H,
                       double *de_hair, double *de_cloth) {
    const float(*L)[2] = (const float(*)[2])job->lm;
    double cx = (L[234][0] + L[454][0]) / 2, fw = fmax(1, fabs(L[454][0] - L[234][0]));
    double fh = fmax(1, hypot(L[152][0] - L[10][0], L[152][1] - L[10][1]));
    double chin = L[152][1], top = L[10][1];
    int nmin = (int)fmax(30, 0.002 * fw * fh);
    double hair[3], cloth[3], skin[3];
    /* Hair: the person above the forehead (mesh 10 sits at the hairline or just under it). */
    int have_hair = region_lab(fg, al, W, H, cx - 0.45 * fw, top - 0.5 * fh, cx + 0.45 * fw,
                               top - 0.06 * fh, 0, cx, 0.6f, nmin, hair);
    /* Clothing: the shoulders below the chin, leaving out the neck (and an open collar). */
    int have_cloth = region_lab(fg, al, W, H, cx - 1.7 * fw, chin + 0.45 * fh, cx + 1.7 * fw,
                                chin + 2.2 * fh, 0.55 * fw, cx, 0.9f, nmin, cloth);
    /* Skin: the cheeks (mesh 50 and 280). */
    double r = 0.1 * fw;
    int have_skin = region_lab(fg, al, W, H, L[50][0] - r, L[50][1] - r, L[50][0] + r, L[50][1] + r,
                               0, cx, 0.9f, 4, skin);
    double best = -1e9;
    int pick = 0;
    for (int i = 0; i < N_PALETTE; i++) {
        double rgb[3], lab[3];
        hex_rgb(palette[i].rgb, rgb);
        srgb_lab(rgb, lab);
        double dh = have_hair ? delta_e(lab, hair) : SEPARATION_CAP;
        double dc = have_cloth ? delta_e(lab, cloth) : SEPARATION_CAP;
        double ds = have_skin ? delta_e(lab, skin) : SEPARATION_CAP;
        double score = fmin(SEPARATION_CAP, fmin(dh, dc));
        if (ds < SKIN_MIN) score -= SKIN_MIN - ds;
        if (!palette[i].grey) score -= COLOUR_PENALTY;
        /* Ties go to the tone listed first (mid grey, then light grey, ...). */
        score -= 0.01 * i;
        if (score > best) best = score, pick = i;
    }
    double rgb[3], lab[3];
    hex_rgb(palette[pick].rgb, rgb);
    srgb_lab(rgb, lab);
    *de_hair = have_hair ? delta_e(lab, hair) : -1;
    *de_cloth = have_cloth ? delta_e(lab, cloth) : -1;
    return pick;
}

/* Seeded, repeatable grain: an Irwin-Hall sum of four 16-bit uniforms from a hash of the pixel
 * index, scaled to unit variance (zero mean; within 3.5 sigma, as a film grain is). */
static inline float grain_at(uint64_t i) {
    uint64_t z = i * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    uint32_t s = (uint32_t)(z & 0xffff) + (uint32_t)((z >> 16) & 0xffff) +
                 (uint32_t)((z >> 32) & 0xffff) + (uint32_t)(z >> 48);
    return (float)(((double)s / 65535.0 - 2.0) * 1.7320508075688772);
}

/* 2^x for -126 <= x <= 0, to within 1.1e-7 (float precision) and exactly 1 at 0: 2^floor(x)
 * from the exponent bits, times 2^u for u = x - floor(x) in [0, 1) by its Taylor series to
 * degree 9 (the remainder is (ln 2)^10 / 10! < 7e-9). Plain arithmetic, so a row of it
 * vectorises, where a call to exp2f per pixel would not. */
static inline float exp2_neg(float x) {
    x = x < -126.f ? -126.f : x;
    int i = (int)x;
    i -= (float)i > x; /* floor */
    float u = (x - (float)i) * 0.69314718f, p = 1.f / 362880;
    static const float k[] = {1.f / 40320, 1.f / 5040, 1.f / 720, 1.f / 120, 1.f / 24,
                              1.f / 6,     0.5f,       1.f,       1.f};
    for (int j = 0; j < 9; j++) p = p * u + k[j];
    union {
        uint32_t u;
        float f;
    } e = {.u = (uint32_t)(i + 127) << 23};
    return e.f * p;
}

/* The contact shadow's density (0..1) at a pixel: the alpha moved down (dy) and a little aside
 * (dx), blurred wide, and faded in from the chin down (rows y0..y1) so it gathers around the
 * shoulders, never around the hair. Read a row at a time where the backdrop shows. */
typedef struct shadow_field {
    soft_grid alpha; /* the alpha, blurred */
    int dx, dy;
    double y0, y1;
} shadow_field;

/* The fade-in at row y (0 above the chin: no shadow there). */
static float shadow_ramp(const shadow_field *s, int y) {
    double t = (y - s->y0) / (s->y1 - s->y0);
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return (float)(t * t * (3 - 2 * t));
}

/* The backdrop and the person over it, for rows [first, first + n) (two threads take half the
 * rows each; every pixel depends only on its own inputs). a fg + (1 - a) bg is exactly fg where
 * a is 1, so the backdrop (its light falloff, shadow and grain) is made only along the runs of
 * 8-pixel blocks where some alpha is below 1; the person's inside is fg, clamped, as the blend
 * gives it. A run is made in passes the compiler vectorises (the light falloff, the shadow, the
 * grain, the blend), or eight pixels at a time with AVX2 where the processor has it (the same
 * operations in the same order). */
typedef struct bg_comp {
    const float *fg, *al, *blur;
    const shadow_field *shadow; /* NULL: none */
    float *out;
    float *scratch; /* 4 W floats for each of the two halves */
    int W, H, kind, linear, avx2;
    float shadow_k, grain, inv_r2, inv_rc2, gx, gy, g_stops, v_stops;
    double col[3];
} bg_comp;

/* One row's share of the work: its constants and the scratch rows. */
typedef struct bg_row {
    int y;
    size_t row;              /* index of its first pixel */
    float dy, vdy, g_row;    /* the falloff's */
    float ramp;              /* the shadow's fade-in (0: none) */
    float *f, *gr, *sh, *up; /* falloff factor, grain, shadow density, the blurred alpha row */
} bg_row;

/* The blend of one pixel where 0 < a < 1 in linear light (the linear option). */
static float blend_linear(float fg, float bg, float a) {
    double F = srgb_to_lin(fmax(0, fg) / 255), B = srgb_to_lin(fmax(0, bg) / 255);
    return (float)(255 * lin_to_srgb(a * F + (1 - a) * B));
}

/* The shadow's density along [xa, xb) of the row into r->sh (when the row has any). */
static void shadow_span(const bg_comp *b, const bg_row *r, int xa, int xb) {
    const shadow_field *s = b->shadow;
    int W = b->W, dx = s->dx, sy = r->y - s->dy < 0 ? 0 : r->y - s->dy;
    int sa = xa - dx < 0 ? 0 : xa - dx >= W ? W - 1 : xa - dx;
    int sb = xb - 1 - dx < 0 ? 0 : xb - 1 - dx >= W ? W - 1 : xb - 1 - dx;
    soft_grid_row(&s->alpha, sy, sa, sb + 1, r->up);
    for (int x = xa; x < xb; x++) {
        int sx = x - dx < 0 ? 0 : x - dx >= W ? W - 1 : x - dx;
        r->sh[x] = r->ramp * r->up[sx];
    }
}

/* The backdrop and the blend along [xa, xb) of the row, in passes. */
static void backdrop_span(const bg_comp *b, const bg_row *r, int xa, int xb) {
    int W = b->W, H = b->H, kind = b->kind;
    float inv_r2 = b->inv_r2, inv_rc2 = b->inv_rc2, gx = b->gx;
    float g_stops = b->g_stops, v_stops = b->v_stops, shadow_k = 0.55f * b->shadow_k;
    float col[3] = {(float)b->col[0], (float)b->col[1], (float)b->col[2]};
    float *f = r->f, *gr = r->gr;
    size_t row = r->row;
    (void)H;
    /* The light on the backdrop in stops below its brightest point, then as a factor on
     * sRGB values. */
    float dy = r->dy, vdy = r->vdy;
    if (kind == KIND_RADIAL) {
        for (int x = xa; x < xb; x++) {
            float dx = x + 0.5f - gx;
            f[x] = g_stops * (dx * dx + dy * dy) * inv_r2;
        }
    } else {
        for (int x = xa; x < xb; x++) f[x] = r->g_row;
    }
    if (v_stops > 0)
        for (int x = xa; x < xb; x++) {
            float dx = x + 0.5f - W / 2.0f;
            float t = (sqrtf((dx * dx + vdy * vdy) * inv_rc2) - 0.45f) / 0.55f;
            t = t < 0 ? 0 : t;
            f[x] += v_stops * t * t * (3 - 2 * t);
        }
    for (int x = xa; x < xb; x++) f[x] = exp2_neg(-f[x] / 2.2f);
    /* (a row without shadow multiplies by exactly 1) */
    if (r->ramp != 0)
        for (int x = xa; x < xb; x++) f[x] *= 1.f - shadow_k * r->sh[x];
    if (b->grain > 0)
        for (int x = xa; x < xb; x++) gr[x] = b->grain * grain_at(row + x);
    else
        for (int x = xa; x < xb; x++) gr[x] = 0;
    const float *fr = b->fg + 3 * row, *ar = b->al + row, *br = b->blur ? b->blur + 3 * row : NULL;
    float *o = b->out + 3 * row;
    if (br)
        for (int x = xa; x < xb; x++) {
            float a = ar[x] < 0.f ? 0.f : ar[x] > 1.f ? 1.f : ar[x];
            for (int c = 0; c < 3; c++) {
                float v = a * fr[3 * x + c] + (1 - a) * (br[3 * x + c] * f[x] + gr[x]);
                o[3 * x + c] = v < 0.f ? 0.f : v > 255.f ? 255.f : v;
            }
        }
    else
        for (int x = xa; x < xb; x++) {
            float a = ar[x] < 0.f ? 0.f : ar[x] > 1.f ? 1.f : ar[x];
            for (int c = 0; c < 3; c++) {
                float v = a * fr[3 * x + c] + (1 - a) * (col[c] * f[x] + gr[x]);
                o[3 * x + c] = v < 0.f ? 0.f : v > 255.f ? 255.f : v;
            }
        }
    if (b->linear)
        for (int x = xa; x < xb; x++) {
            float a = ar[x];
            if (a <= 0.f || a >= 1.f) continue;
            for (int c = 0; c < 3; c++) {
                float bg = (br ? br[3 * x + c] : col[c]) * f[x] + gr[x];
                float v = blend_linear(fr[3 * x + c], bg, a);
                o[3 * x + c] = v < 0.f ? 0.f : v > 255.f ? 255.f : v;
            }
        }
}

#ifdef TS_SRGB_HAVE_AVX2
/* The low 64 bits of a * b in each lane (AVX2 has no 64-bit multiply). */
TS_SRGB_AVX2 static inline __m256i mul64(__m256i a, __m256i b) {
    __m256i lo = _mm256_mul_epu32(a, b);
    __m256i mid = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), b),
                                   _mm256_mul_epu32(a, _mm256_srli_epi64(b, 32)));
    return _mm256_add_epi64(lo, _mm256_slli_epi64(mid, 32));
}

/* grain_at for the four indices in i. */
TS_SRGB_AVX2 static inline __m128 grain4(__m256i i) {
    __m256i z = _mm256_add_epi64(mul64(i, _mm256_set1_epi64x((long long)0x9e3779b97f4a7c15ull)),
                                 _mm256_set1_epi64x(0x2545f4914f6cdd1dll));
    z = mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)),
              _mm256_set1_epi64x((long long)0xbf58476d1ce4e5b9ull));
    z = mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)),
              _mm256_set1_epi64x((long long)0x94d049bb133111ebull));
    z = _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
    const __m256i m16 = _mm256_set1_epi64x(0xffff);
    __m256i s = _mm256_add_epi64(
        _mm256_add_epi64(_mm256_and_si256(z, m16), _mm256_and_si256(_mm256_srli_epi64(z, 16), m16)),
        _mm256_add_epi64(_mm256_and_si256(_mm256_srli_epi64(z, 32), m16),
                         _mm256_srli_epi64(z, 48)));
    /* the sums (below 2^18) from the low half of each lane, as doubles */
    __m128i s32 = _mm256_castsi256_si128(
        _mm256_permutevar8x32_epi32(s, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6)));
    __m256d d = _mm256_div_pd(_mm256_cvtepi32_pd(s32), _mm256_set1_pd(65535.0));
    d = _mm256_mul_pd(_mm256_sub_pd(d, _mm256_set1_pd(2.0)), _mm256_set1_pd(1.7320508075688772));
    return _mm256_cvtpd_ps(d);
}

/* v < lo ? lo : v > hi ? hi : v, lanewise (NaN stays NaN, as in the scalar code). */
TS_SRGB_AVX2 static inline __m256 clamp8(__m256 v, __m256 lo, __m256 hi) {
    v = _mm256_blendv_ps(v, hi, _mm256_cmp_ps(v, hi, _CMP_GT_OQ));
    return _mm256_blendv_ps(v, lo, _mm256_cmp_ps(v, lo, _CMP_LT_OQ));
}

/* backdrop_span for [xa, xa + 8 m) in one pass, eight pixels at a time (not for the linear
 * option); returns where it stopped. */
TS_SRGB_AVX2 static int backdrop_span8(const bg_comp *b, const bg_row *r, int xa, int xb) {
    int x = xa, kind = b->kind;
    const __m256 lane = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), half = _mm256_set1_ps(0.5f);
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1);
    const __m256 dy2 = _mm256_set1_ps(r->dy * r->dy), vdy2 = _mm256_set1_ps(r->vdy * r->vdy);
    const __m256 gx = _mm256_set1_ps(b->gx), hw = _mm256_set1_ps(b->W / 2.0f);
    const __m256 g_stops = _mm256_set1_ps(b->g_stops), inv_r2 = _mm256_set1_ps(b->inv_r2);
    const __m256 v_stops = _mm256_set1_ps(b->v_stops), inv_rc2 = _mm256_set1_ps(b->inv_rc2);
    const __m256 shadow_k = _mm256_set1_ps(0.55f * b->shadow_k), grain = _mm256_set1_ps(b->grain);
    static const float k[] = {1.f / 40320, 1.f / 5040, 1.f / 720, 1.f / 120, 1.f / 24,
                              1.f / 6,     0.5f,       1.f,       1.f};
    const float *fr = b->fg + 3 * r->row, *ar = b->al + r->row,
                *br = b->blur ? b->blur + 3 * r->row : NULL;
    float *o = b->out + 3 * r->row;
    __m256 col[3];
    for (int c = 0; c < 3; c++) col[c] = _mm256_set1_ps((float)b->col[c]);
    for (; x + 8 <= xb; x += 8) {
        __m256 xs = _mm256_add_ps(_mm256_add_ps(_mm256_set1_ps((float)x), lane), half), f;
        if (kind == KIND_RADIAL) {
            __m256 dx = _mm256_sub_ps(xs, gx);
            f = _mm256_mul_ps(_mm256_mul_ps(g_stops, _mm256_add_ps(_mm256_mul_ps(dx, dx), dy2)),
                              inv_r2);
        } else {
            f = _mm256_set1_ps(r->g_row);
        }
        if (b->v_stops > 0) {
            __m256 dx = _mm256_sub_ps(xs, hw);
            __m256 t = _mm256_div_ps(
                _mm256_sub_ps(_mm256_sqrt_ps(_mm256_mul_ps(
                                  _mm256_add_ps(_mm256_mul_ps(dx, dx), vdy2), inv_rc2)),
                              _mm256_set1_ps(0.45f)),
                _mm256_set1_ps(0.55f));
            t = _mm256_blendv_ps(t, zero, _mm256_cmp_ps(t, zero, _CMP_LT_OQ));
            __m256 s = _mm256_mul_ps(
                _mm256_mul_ps(_mm256_mul_ps(v_stops, t), t),
                _mm256_sub_ps(_mm256_set1_ps(3), _mm256_mul_ps(_mm256_set1_ps(2), t)));
            f = _mm256_add_ps(f, s);
        }
        /* exp2_neg(-f / 2.2f) */
        __m256 e = _mm256_div_ps(_mm256_xor_ps(f, _mm256_set1_ps(-0.f)), _mm256_set1_ps(2.2f));
        e = _mm256_blendv_ps(e, _mm256_set1_ps(-126.f),
                             _mm256_cmp_ps(e, _mm256_set1_ps(-126.f), _CMP_LT_OQ));
        __m256i i = _mm256_cvttps_epi32(e);
        i = _mm256_add_epi32(
            i, _mm256_castps_si256(_mm256_cmp_ps(_mm256_cvtepi32_ps(i), e, _CMP_GT_OQ)));
        __m256 u =
            _mm256_mul_ps(_mm256_sub_ps(e, _mm256_cvtepi32_ps(i)), _mm256_set1_ps(0.69314718f));
        __m256 p = _mm256_set1_ps(1.f / 362880);
        for (int j = 0; j < 9; j++) p = _mm256_add_ps(_mm256_mul_ps(p, u), _mm256_set1_ps(k[j]));
        __m256 two_i =
            _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(i, _mm256_set1_epi32(127)), 23));
        f = _mm256_mul_ps(two_i, p);
        if (r->ramp != 0)
            f = _mm256_mul_ps(
                f, _mm256_sub_ps(one, _mm256_mul_ps(shadow_k, _mm256_loadu_ps(r->sh + x))));
        __m256 gr = zero;
        if (b->grain > 0) {
            __m256i idx = _mm256_add_epi64(_mm256_set1_epi64x((long long)(r->row + x)),
                                           _mm256_setr_epi64x(0, 1, 2, 3));
            __m256 g =
                _mm256_set_m128(grain4(_mm256_add_epi64(idx, _mm256_set1_epi64x(4))), grain4(idx));
            gr = _mm256_mul_ps(grain, g);
        }
        __m256 a = clamp8(_mm256_loadu_ps(ar + x), zero, one), na = _mm256_sub_ps(one, a);
        __m256 v[3], bg[3];
        ts_load3x8(fr + 3 * x, v);
        if (br) ts_load3x8(br + 3 * x, bg);
        for (int c = 0; c < 3; c++) {
            __m256 back = _mm256_add_ps(_mm256_mul_ps(br ? bg[c] : col[c], f), gr);
            v[c] = clamp8(_mm256_add_ps(_mm256_mul_ps(a, v[c]), _mm256_mul_ps(na, back)), zero,
                          _mm256_set1_ps(255.f));
        }
        ts_store3x8(o + 3 * x, v);
    }
    return x;
}
#endif

/* Whether every alpha of the block [x, x + 8) (or to the row's end) is 1 or more. */
static inline int block_opaque(const float *ar, int x, int W) {
    int all = 1;
    if (x + 8 <= W)
        for (int i = 0; i < 8; i++) all &= ar[x + i] >= 1.f;
    else
        for (int i = x; i < W; i++) all &= ar[i] >= 1.f;
    return all;
}

static void composite_rows(size_t first, size_t n, void *user) {
    const bg_comp *b = user;
    int W = b->W, H = b->H, kind = b->kind;
    float *scratch = b->scratch + (first ? 4 * (size_t)W : 0);
    bg_row r = {.f = scratch, .gr = scratch + W, .sh = scratch + 2 * W, .up = scratch + 3 * W};
    for (int y = (int)first; y < (int)(first + n); y++) {
        r.y = y, r.row = (size_t)y * W;
        r.dy = y + 0.5f - b->gy, r.vdy = y + 0.5f - H / 2.0f;
        r.g_row = kind == KIND_GRADIENT ? b->g_stops * (y + 0.5f) / H : 0.f;
        r.ramp = b->shadow ? shadow_ramp(b->shadow, y) : 0.f;
        const float *fr = b->fg + 3 * r.row, *ar = b->al + r.row;
        float *o = b->out + 3 * r.row;
        for (int x = 0; x < W;) {
            /* the person's inside: blocks where every alpha is 1 */
            int xa = x;
            while (xa < W && block_opaque(ar, xa, W)) xa += 8;
            xa = xa < W ? xa : W;
            for (int i = 3 * x; i < 3 * xa; i++) {
                float v = fr[i];
                o[i] = v < 0.f ? 0.f : v > 255.f ? 255.f : v;
            }
            if (xa == W) break;
            /* where the backdrop shows through */
            int xb = xa;
            while (xb < W && !block_opaque(ar, xb, W)) xb += 8;
            xb = xb < W ? xb : W;
            if (r.ramp != 0) shadow_span(b, &r, xa, xb);
            int done = xa;
#ifdef TS_SRGB_HAVE_AVX2
            if (b->avx2 && !b->linear) done = backdrop_span8(b, &r, xa, xb);
#endif
            if (done < xb) backdrop_span(b, &r, done, xb);
            x = xb;
        }
    }
}

/* ---- the stage ---------------------------------------------------------------------------- */

typedef struct bg_buffers {
    VipsImage *rgb, *alpha, *fg; /* memory float copies (references) */
} bg_buffers;

static void buffers_free(bg_buffers *b) {
    if (b->rgb) g_object_unref(b->rgb);
    if (b->alpha) g_object_unref(b->alpha);
    if (b->fg) g_object_unref(b->fg);
}

/* The original background with the person filled in from around them: the photo's own colour
 * minus the person's share (rgb - a fg = (1 - a) B, the matte's own equation), blurred and
 * divided by the blurred (1 - a), so no colour of the person bleeds into the blur. */
static float *blurred_original(const float *rgb, const float *fg, const float *al, int W, int H,
                               double sigma) {
    size_t n = (size_t)W * H;
    float *pre = malloc(sizeof *pre * n * 4), *out = malloc(sizeof *out * n * 3);
    if (!pre || !out) {
        free(pre), free(out);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        float a = al[i];
        /* Nearly opaque pixels say little about what is behind them. */
        float w = a > 0.98f ? 0.f : 1.f - a;
        for (int c = 0; c < 3; c++) {
            float v = rgb[i * 3 + c] - a * fg[i * 3 + c];
            pre[i * 4 + c] = w > 0 && v > 0 ? v : 0.f;
        }
        pre[i * 4 + 3] = w;
    }
    float *bl = soft_blur(pre, W, H, 4, sigma);
    free(pre);
    if (!bl) {
        free(out);
        return NULL;
    }
    /* Where the person covers a wide area nothing is left to spread (the bottom of the frame):
     * marked -1, filled by fill_holes. */
    for (size_t i = 0; i < n; i++) {
        float d = bl[i * 4 + 3];
        for (int c = 0; c < 3; c++) out[i * 3 + c] = d > 1e-3f ? bl[i * 4 + c] / d : -1.f;
    }
    free(bl);
    return out;
}

/* Fills pixels of bl left at -1 (no background within reach of the blur) by a wide blur of the
 * rest, so the shoulders never reveal a hole in the backdrop. */
static int fill_holes(float *bl, int W, int H) {
    size_t n = (size_t)W * H;
    long holes = 0;
    for (size_t i = 0; i < n; i++) holes += bl[i * 3] < 0;
    if (!holes) return 0;
    float *pre = malloc(sizeof *pre * n * 4);
    if (!pre) return -1;
    for (size_t i = 0; i < n; i++) {
        int ok = bl[i * 3] >= 0;
        for (int c = 0; c < 3; c++) pre[i * 4 + c] = ok ? bl[i * 3 + c] : 0;
        pre[i * 4 + 3] = (float)ok;
    }
    float *wide = soft_blur(pre, W, H, 4, 0.15 * fmax(W, H));
    free(pre);
    if (!wide) return -1;
    for (size_t i = 0; i < n; i++)
        if (bl[i * 3] < 0)
            for (int c = 0; c < 3; c++)
                bl[i * 3 + c] = wide[i * 4 + 3] > 1e-4f ? wide[i * 4 + c] / wide[i * 4 + 3]
                                                        : (float)(c == 0 ? 138 : 141);
    free(wide);
    return 0;
}

/* The contact shadow of the alpha al (which must outlive it) into s; -1 when out of memory. */
static int contact_shadow(const ts_render_job *job, const float *al, int W, int H,
                          shadow_field *s) {
    double ie = fmax(job->inter_eye, 4);
    s->dx = (int)lround(0.12 * ie), s->dy = (int)lround(0.35 * ie);
    double chin = job->lm[152][1];
    s->y0 = chin - 0.2 * ie, s->y1 = chin + 1.2 * ie;
    return soft_grid_make(al, W, H, 1, 0.6 * ie, &s->alpha);
}

static ts_status background_run(ts_render_job *job, const void *params) {
    const background_params *p = params;
    ts_ctx *ctx = job->ctx;
    if (p->kind == KIND_KEEP) return TS_OK;
    if (!job->rgb) return ts_fail(ctx, TS_ERR_ARGUMENT, "background: no canvas (run frame first)");
    if (!job->alpha || !job->fg) {
        ts_render_note(job, "the person could not be cut out of this photo, so its own "
                            "background was kept");
        return TS_OK;
    }
    int W = job->rgb->Xsize, H = job->rgb->Ysize;
    if (job->alpha->Xsize != W || job->alpha->Ysize != H || job->fg->Xsize != W ||
        job->fg->Ysize != H || job->rgb->Bands != 3 || job->fg->Bands != 3 ||
        job->alpha->Bands != 1)
        return ts_fail(ctx, TS_ERR_INTERNAL, "background: canvas, alpha and fg differ in shape");
    bg_buffers b = {mem_float(job->rgb), mem_float(job->alpha), mem_float(job->fg)};
    if (!b.rgb || !b.alpha || !b.fg) {
        buffers_free(&b);
        return ts_fail(ctx, TS_ERR_INTERNAL, "background: %s", vips_error_buffer());
    }
    const float *rgb = (const float *)VIPS_IMAGE_ADDR(b.rgb, 0, 0);
    const float *al = (const float *)VIPS_IMAGE_ADDR(b.alpha, 0, 0);
    const float *fg = (const float *)VIPS_IMAGE_ADDR(b.fg, 0, 0);
    size_t n = (size_t)W * H;

    /* The tone. */
    uint32_t tone = p->color;
    int pick = -1;
    double de_hair = -1, de_cloth = -1;
    if (p->kind != KIND_BLUR && tone == AUTO_COLOR) {
        if (p->auto_pick) {
            pick = choose_tone(job, fg, al, W, H, &de_hair, &de_cloth);
            tone = palette[pick].rgb;
        } else {
            tone = palette[0].rgb;
        }
    }
    double col[3];
    hex_rgb(tone, col);

    /* The backdrop before light falloff: a flat tone, or the blurred original. */
    float *blur = NULL;
    if (p->kind == KIND_BLUR) {
        blur = blurred_original(rgb, fg, al, W, H, p->blur * W);
        if (!blur || fill_holes(blur, W, H)) {
            free(blur);
            buffers_free(&b);
            return ts_fail(ctx, TS_ERR_NOMEM, "background: out of memory");
        }
    }
    shadow_field shadow_f, *shadow = NULL;
    if (p->shadow > 0 && p->kind != KIND_BLUR) {
        if (contact_shadow(job, al, W, H, &shadow_f)) {
            free(blur);
            buffers_free(&b);
            return ts_fail(ctx, TS_ERR_NOMEM, "background: out of memory");
        }
        shadow = &shadow_f;
    }
    float *out = ts_render_big_alloc(sizeof *out * n * 3),
          *scratch = malloc(sizeof *scratch * W * 8);
    if (!out || !scratch) {
        ts_render_big_free(out), free(scratch), free(blur);
        if (shadow) soft_grid_free(&shadow->alpha);
        buffers_free(&b);
        return ts_fail(ctx, TS_ERR_NOMEM, "background: out of memory");
    }

    /* The light on the backdrop, in stops below its brightest point: the radial glow is centred
     * behind the neck, where a background light is aimed; the vertical one is brightest at the
     * top. The vignette darkens the corners of the frame. Falloff multiplies linear light; on
     * the sRGB values that is a factor 2^(-stops / 2.2) (the sRGB curve's gamma). */
    const float(*L)[2] = (const float(*)[2])job->lm;
    double gx0 = (L[234][0] + L[454][0]) / 2, gy0 = L[152][1];
    double R = hypot(fmax(gx0, W - gx0), fmax(gy0, H - gy0));
    double Rc = hypot(W / 2.0, H / 2.0);
    int avx2 = 0;
#ifdef TS_SRGB_HAVE_AVX2
    ts_srgb_init();
    avx2 = ts_srgb_avx2;
#endif
    bg_comp cp = {fg,
                  al,
                  blur,
                  shadow,
                  out,
                  scratch,
                  W,
                  H,
                  p->kind,
                  p->linear,
                  avx2,
                  p->shadow,
                  p->grain,
                  (float)(1 / (R * R)),
                  (float)(1 / (Rc * Rc)),
                  (float)gx0,
                  (float)gy0,
                  p->kind == KIND_SOLID ? 0.f : 1.5f * p->gradient,
                  p->kind == KIND_SOLID ? 0.f : p->vignette,
                  {col[0], col[1], col[2]}};
    ts_render_split2(composite_rows, &cp, (size_t)H, 64);
    free(scratch);
    free(blur);
    if (shadow) soft_grid_free(&shadow->alpha);
    VipsImage *im = ts_render_wrap_big(out, sizeof *out * n * 3, W, H, 3, VIPS_FORMAT_FLOAT);
    VipsInterpretation interp = b.rgb->Type;
    buffers_free(&b);
    if (!im) return ts_fail(ctx, TS_ERR_INTERNAL, "background: %s", vips_error_buffer());
    im->Type = interp;
    ts_render_replace(&job->rgb, im);
    /* The blurred original is the photo's own background, algorithmically changed; every other
     * kind is a generated backdrop (the disclosed DigitalSourceType follows, export.c). */
    job->background_replaced = p->kind != KIND_BLUR;
    job->background_blurred = p->kind == KIND_BLUR;
    if (p->kind == KIND_BLUR)
        ts_render_edit(job, "blurred the original background (shallow depth of field)");
    else if (pick >= 0)
        ts_render_edit(job, "replaced the background with %s, %s #%06x (auto)", kind_words[p->kind],
                       palette[pick].name, (unsigned)tone);
    else
        ts_render_edit(job, "replaced the background with %s, #%06x", kind_words[p->kind],
                       (unsigned)tone);
    return TS_OK;
}

const ts_stage ts_stage_background = {"background", 1, background_table, sizeof(background_params),
                                      background_run};
