/* tone: white balance, exposure, gentle contrast and a per-style grade, set from the face.
 *
 * The illuminant is estimated from what should be neutral or nearly so: the whites of the eyes
 * (each eye opening minus its iris, the brightest part, which lids and lashes do not shade) and
 * the teeth when the mouth is open. Neither is perfectly white, so each is compared with its own
 * colour under daylight rather than with grey. The skin is then checked against the natural
 * skin-tone region (CIELAB hue and chroma under D65): if the neutral cues leave it outside, or
 * there are none, the skin is moved to the nearest natural colour, and no further. The cast is
 * removed with a Bradford (von Kries in cone space) adaptation in linear light, so colours keep
 * their relations and the skin's hue and chroma move only as much as the cast being removed; a
 * photo without a cast is left alone (a dead zone of 1.5 Delta-E on the skin).
 *
 * Exposure: the skin's L* is brought into a band (dark skin stays dark: the lift is bounded by
 * the eye whites and the person's highlights, which a dark-skinned face in a well-exposed photo
 * already has near white), only when it is clearly under or over. Contrast is an S curve on
 * the luminance pivoting at the skin, so it deepens shadows and opens highlights without
 * changing the face's exposure or saturating colours. The grade (warmth, tint, saturation) is
 * the style's look, applied last. Everything is one 3x3 matrix and one curve per pixel in
 * linear light, applied to rgb and fg alike. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "face/geometry.h"
#include "face/regions.h"
#include "render/render.h"
#include "render/srgb.h"

typedef struct tone_params {
    float white_balance; /* strength of the cast removal */
    float exposure;      /* strength of the exposure correction */
    float skin_low;      /* skin L* below which the face is lifted */
    float skin_high;     /* skin L* above which it is lowered */
    float contrast;      /* S curve */
    float warmth;        /* grade: + warmer, - cooler */
    float tint;          /* grade: + magenta, - green */
    float saturation;    /* grade: 1 unchanged */
} tone_params;

static const ts_param tone_table[] = {
    TS_PARAM_F32(tone_params, white_balance,
                 "remove the light's colour cast: 0 off, 1 all of the cast measured", 0, 1, 1),
    TS_PARAM_F32(tone_params, exposure,
                 "correct clear under or over exposure of the face: 0 off, 1 all the way to the "
                 "band",
                 0, 1, 0.8f),
    TS_PARAM_F32(tone_params, skin_low,
                 "skin L* below which a clearly underexposed face is lifted (bounded by the eye "
                 "whites and highlights, so dark skin is not made lighter)",
                 30, 70, 52),
    TS_PARAM_F32(tone_params, skin_high, "skin L* above which an overexposed face is lowered", 60,
                 95, 80),
    TS_PARAM_F32(tone_params, contrast, "S curve around the skin's tone: 0 flat, 0.5 strong", 0,
                 0.5f, 0.12f),
    TS_PARAM_F32(tone_params, warmth, "grade: warmer (+) or cooler (-), 1 is about 600 K", -1, 1,
                 0),
    TS_PARAM_F32(tone_params, tint, "grade: magenta (+) or green (-)", -1, 1, 0),
    TS_PARAM_F32(tone_params, saturation, "grade: colour saturation, 1 unchanged", 0, 2, 1),
    TS_PARAM_END};

/* ---- colour ------------------------------------------------------------------------------- */

static const double RGB2XYZ[3][3] = {{0.4124564, 0.3575761, 0.1804375},
                                     {0.2126729, 0.7151522, 0.0721750},
                                     {0.0193339, 0.1191920, 0.9503041}};
static const double XYZ2RGB[3][3] = {{3.2404542, -1.5371385, -0.4985314},
                                     {-0.9692660, 1.8760108, 0.0415560},
                                     {0.0556434, -0.2040259, 1.0572252}};
static const double BRADFORD[3][3] = {
    {0.8951, 0.2664, -0.1614}, {-0.7502, 1.7135, 0.0367}, {0.0389, -0.0685, 1.0296}};
static const double BRADFORD_INV[3][3] = {{0.9869929, -0.1470543, 0.1599627},
                                          {0.4323053, 0.5183603, 0.0492912},
                                          {-0.0085287, 0.0400428, 0.9684867}};
static const double D65[3] = {0.95047, 1.0, 1.08883};

static void mat_vec(const double m[3][3], const double v[3], double out[3]) {
    double t[3];
    for (int i = 0; i < 3; i++) t[i] = m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2];
    memcpy(out, t, sizeof t);
}

static void mat_mul(const double a[3][3], const double b[3][3], double out[3][3]) {
    double t[3][3];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            t[i][j] = a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j];
    memcpy(out, t, sizeof t);
}

static double luminance(const double rgb[3]) {
    return 0.2126729 * rgb[0] + 0.7151522 * rgb[1] + 0.0721750 * rgb[2];
}

static double lab_f(double t) {
    return t > 216.0 / 24389 ? cbrt(t) : (24389.0 / 27 * t + 16) / 116;
}

/* Linear sRGB -> CIELAB (D65). */
static void lin_to_lab(const double rgb[3], double lab[3]) {
    double xyz[3];
    mat_vec(RGB2XYZ, rgb, xyz);
    double fx = lab_f(xyz[0] / D65[0]), fy = lab_f(xyz[1]), fz = lab_f(xyz[2] / D65[2]);
    lab[0] = 116 * fy - 16, lab[1] = 500 * (fx - fy), lab[2] = 200 * (fy - fz);
}

static double lab_finv(double f) {
    return f * f * f > 216.0 / 24389 ? f * f * f : (116 * f - 16) * 27 / 24389;
}

static void lab_to_lin(const double lab[3], double rgb[3]) {
    double fy = (lab[0] + 16) / 116, fx = fy + lab[1] / 500, fz = fy - lab[2] / 200;
    double xyz[3] = {D65[0] * lab_finv(fx), lab_finv(fy), D65[2] * lab_finv(fz)};
    mat_vec(XYZ2RGB, xyz, rgb);
}

static double lstar_to_y(double l) {
    return lab_finv((l + 16) / 116);
}

/* The Bradford adaptation as cone gains: those that turn the colour n (linear RGB) into a
 * neutral of the same luminance. */
static void bradford_gains(const double n[3], double d[3]) {
    double xyz[3], lms_n[3], lms_w[3];
    mat_vec(RGB2XYZ, n, xyz);
    double y = xyz[1] > 1e-9 ? xyz[1] : 1;
    for (int k = 0; k < 3; k++) xyz[k] /= y;
    mat_vec(BRADFORD, xyz, lms_n);
    mat_vec(BRADFORD, D65, lms_w);
    for (int k = 0; k < 3; k++) d[k] = lms_w[k] / fmax(lms_n[k], 1e-9);
}

/* The linear-RGB matrix of the cone gains d raised to the strength s. */
static void bradford_matrix(const double d[3], double s, double out[3][3]) {
    double g[3][3] = {{0}}, t[3][3];
    for (int k = 0; k < 3; k++) g[k][k] = pow(d[k], s);
    mat_mul(g, BRADFORD, t);
    mat_mul(BRADFORD_INV, t, t);
    mat_mul(t, RGB2XYZ, t);
    mat_mul(XYZ2RGB, t, out);
}

/* ---- measuring ---------------------------------------------------------------------------- */

/* What should look like under daylight (D65), as linear RGB relative to green: the brightest
 * part of the eye whites (slightly warm: the sclera is not white, and light reaching it passes
 * the lids) and the teeth (warmer). Measured on the development photos with neutral light
 * (docs/render-tone-light.md). */
static const double SCLERA_D65[3] = {1.12, 1.0, 0.93};
static const double TEETH_D65[3] = {1.10, 1.0, 0.88};
/* The natural skin-tone region in CIELAB under D65, across skin tones: hue angle and chroma
 * (after the ISO/IEC 29794-5 natural-colour box, a* 5..25, b* 5..35, narrowed in hue). */
/* L* of the brightest half of the eye whites in a well-exposed photo. */
#define SCLERA_LSTAR 82.0
/* The largest cone gain of a cast removal (tungsten 2900 K to D65 needs about 2.4 on S; a warm
 * photo under a further cast can need more, and is then left partly warm). */
#define MAX_CONE_GAIN 2.5
#define SKIN_HUE_LO 35.0
#define SKIN_HUE_HI 70.0
#define SKIN_CHROMA_LO 10.0
#define SKIN_CHROMA_HI 38.0

typedef struct tone_measure {
    double skin[3]; /* mean linear RGB of the lit skin */
    int n_skin;
    double sclera[3]; /* mean linear RGB of the brightest eye whites */
    int n_sclera;
    double teeth[3];
    int n_teeth;
    double person_hi; /* 99th percentile luminance of the person */
} tone_measure;

/* Mean of the pixels whose luminance lies in the [lo, hi] quantiles of the selected ones.
 * idx lists n pixel indices into lin (3 floats each); y their luminances. */
static int quantile_mean(const float *lin, const int *idx, float *y, int n, double lo, double hi,
                         double out[3]) {
    if (n <= 0) return 0;
    /* a histogram of luminance gives the quantiles without sorting */
    enum { NB = 2048 };
    int hist[NB] = {0};
    for (int i = 0; i < n; i++) hist[(int)(ts_minf(ts_maxf(y[i], 0), 1) * (NB - 1))]++;
    int a = (int)(lo * n), b = (int)(hi * n), c = 0, blo = 0, bhi = NB - 1;
    for (int k = 0; k < NB; k++) {
        if (c <= a) blo = k;
        c += hist[k];
        if (c < b) bhi = k + 1;
    }
    double sum[3] = {0};
    int m = 0;
    for (int i = 0; i < n; i++) {
        int k = (int)(ts_minf(ts_maxf(y[i], 0), 1) * (NB - 1));
        if (k < blo || k > bhi) continue;
        const float *p = lin + (size_t)idx[i] * 3;
        for (int j = 0; j < 3; j++) sum[j] += p[j];
        m++;
    }
    if (!m) return 0;
    for (int j = 0; j < 3; j++) out[j] = sum[j] / m;
    return m;
}

/* A channel at the top of the range has lost its share of the colour. */
static bool clipped(const float *p) {
    return p[0] > 0.95f || p[1] > 0.95f || p[2] > 0.95f;
}

static uint8_t *region_mask(ts_render_job *job, const ts_face_mesh *mesh, ts_face_region r, int w,
                            int h, float feather) {
    uint8_t *m = malloc((size_t)w * h);
    if (m && ts_face_region_mask(mesh, job->ctx->geom, r, w, h, 1, feather, m) != TS_OK) {
        free(m);
        return NULL;
    }
    return m;
}

/* Measures the face in lin, linear RGB of w x h pixels whose origin is (ox, oy) on the canvas
 * (a box around the face: the masks cost by the pixel). */
static ts_status measure(ts_render_job *job, const float *lin, int w, int h, int ox, int oy,
                         tone_measure *t) {
    ts_face_mesh mesh;
    memset(&mesh, 0, sizeof mesh);
    for (int i = 0; i < TS_LANDMARKS; i++)
        mesh.pts[i][0] = job->lm[i][0] - ox, mesh.pts[i][1] = job->lm[i][1] - oy;
    size_t n = (size_t)w * h;
    uint8_t *skin = malloc(n);
    if (skin && ts_render_region_mask(job, TS_REGION_SKIN, ox, oy, w, h, skin)) {
        free(skin);
        return TS_ERR_INTERNAL;
    }
    uint8_t *eye_r = region_mask(job, &mesh, TS_REGION_RIGHT_EYE, w, h, 0);
    uint8_t *eye_l = region_mask(job, &mesh, TS_REGION_LEFT_EYE, w, h, 0);
    /* the irises, softened so their rim (the limbal ring) falls out too */
    uint8_t *iris_r = region_mask(job, &mesh, TS_REGION_RIGHT_IRIS, w, h, 1.5f);
    uint8_t *iris_l = region_mask(job, &mesh, TS_REGION_LEFT_IRIS, w, h, 1.5f);
    uint8_t *mouth = region_mask(job, &mesh, TS_REGION_MOUTH, w, h, 0);
    int *idx = ts_render_big_alloc(sizeof *idx * n);
    float *y = ts_render_big_alloc(sizeof *y * n);
    uint8_t *zero = calloc((size_t)w, 1);
    ts_status st = TS_OK;
    if (!skin || !eye_r || !eye_l || !iris_r || !iris_l || !mouth || !idx || !y || !zero) {
        st = ts_fail(job->ctx, TS_ERR_NOMEM, "tone: out of memory for the face masks");
        goto done;
    }
    /* Skin: the lit part, without speculars and deep shadow. */
    int m = 0;
    for (size_t i = 0; i < n; i++)
        if (skin[i] >= 250) {
            const float *p = lin + i * 3;
            idx[m] = (int)i, y[m++] = 0.2126f * p[0] + 0.7152f * p[1] + 0.0722f * p[2];
        }
    t->n_skin = quantile_mean(lin, idx, y, m, 0.25, 0.92, t->skin);
    double skin_y = luminance(t->skin);
    /* Eye whites and teeth are told from the lids, lips and gums by being clearly less red than
     * the skin (their chromaticity relative to the skin's, so whatever the cast); of those, the
     * brighter half, out of the lids' shade. */
    double skin_lr = log(fmax(t->skin[0], 1e-6) / fmax(t->skin[1], 1e-6));
    /* The eyes and the mouth hold a few rows of the box: the others (all 0, which memcmp tells
     * fast) are passed over. */
    m = 0;
    for (size_t i = 0; i < n; i++) {
        if (i % w == 0 && !memcmp(eye_r + i, zero, w) && !memcmp(eye_l + i, zero, w)) {
            i += w - 1;
            continue;
        }
        if ((eye_r[i] >= 250 && iris_r[i] == 0) || (eye_l[i] >= 250 && iris_l[i] == 0)) {
            const float *p = lin + i * 3;
            float yy = 0.2126f * p[0] + 0.7152f * p[1] + 0.0722f * p[2];
            if (yy > 0.3 * skin_y && p[1] > 1e-4f && !clipped(p) &&
                skin_lr - log(p[0] / p[1]) > 0.2)
                idx[m] = (int)i, y[m++] = yy;
        }
    }
    if (m >= 40) t->n_sclera = quantile_mean(lin, idx, y, m, 0.5, 0.98, t->sclera);
    /* Whites in the lids' shade (darker than the skin) are no reference: shade is bluer and
     * what is left of them mixes with the lids. */
    if (luminance(t->sclera) < 0.9 * skin_y) t->n_sclera = 0;
    m = 0;
    for (size_t i = 0; i < n; i++) {
        if (i % w == 0 && !memcmp(mouth + i, zero, w)) {
            i += w - 1;
            continue;
        }
        if (mouth[i] >= 250) {
            const float *p = lin + i * 3;
            float yy = 0.2126f * p[0] + 0.7152f * p[1] + 0.0722f * p[2];
            if (yy > 0.6 * skin_y && p[1] > 1e-4f && !clipped(p) &&
                skin_lr - log(p[0] / p[1]) > 0.2)
                idx[m] = (int)i, y[m++] = yy;
        }
    }
    double ied = job->inter_eye > 1 ? job->inter_eye : 1;
    if (m > 0.01 * ied * ied) t->n_teeth = quantile_mean(lin, idx, y, m, 0.5, 0.98, t->teeth);
done:
    free(skin), free(eye_r), free(eye_l), free(iris_r), free(iris_l), free(mouth), free(zero);
    ts_render_big_free(idx), ts_render_big_free(y);
    return st;
}

/* ---- deciding ----------------------------------------------------------------------------- */

/* The skin's hue and chroma clamped into the natural region, at the same L*. */
static void natural_skin(const double lab[3], double out[3]) {
    double c = hypot(lab[1], lab[2]), h = atan2(lab[2], lab[1]) * 180 / M_PI;
    double hc = fmin(fmax(h, SKIN_HUE_LO), SKIN_HUE_HI) * M_PI / 180;
    double cc = fmin(fmax(c, SKIN_CHROMA_LO), SKIN_CHROMA_HI);
    out[0] = lab[0], out[1] = cc * cos(hc), out[2] = cc * sin(hc);
}

static double delta_ab(const double a[3], const double b[3]) {
    return hypot(a[1] - b[1], a[2] - b[2]);
}

typedef struct tone_plan {
    double cone[3];     /* the applied Bradford cone gains (1, 1, 1: no cast removed) */
    const char *source; /* what the estimate rests on */
    double skin_before[3], skin_after[3]; /* Lab */
    double gain;                          /* exposure */
    double matrix[3][3];                  /* white balance, grade and exposure */
    double pivot, contrast, saturation;
} tone_plan;

static void plan(const tone_params *p, const tone_measure *t, tone_plan *pl) {
    memset(pl, 0, sizeof *pl);
    lin_to_lab(t->skin, pl->skin_before);
    /* Neutral cues, combined in log chromaticity, weighted by how many pixels they rest on. */
    double lr = 0, lb = 0, wsum = 0;
    if (t->n_sclera) {
        double wgt = fmin(t->n_sclera, 400);
        lr += wgt * log(t->sclera[0] / t->sclera[1] / SCLERA_D65[0]);
        lb += wgt * log(t->sclera[2] / t->sclera[1] / SCLERA_D65[2]);
        wsum += wgt, pl->source = "eye whites";
    }
    if (t->n_teeth) {
        double wgt = 0.5 * fmin(t->n_teeth, 400);
        lr += wgt * log(t->teeth[0] / t->teeth[1] / TEETH_D65[0]);
        lb += wgt * log(t->teeth[2] / t->teeth[1] / TEETH_D65[2]);
        wsum += wgt, pl->source = t->n_sclera ? "eye whites and teeth" : "teeth";
    }
    double d[3] = {1, 1, 1}, wb[3][3];
    if (wsum > 0) {
        /* the teeth alone are a weaker reference (gums, lips, mixed light in the mouth) */
        double conf = t->n_sclera ? 1 : 0.5;
        double n[3] = {exp(conf * lr / wsum), 1, exp(conf * lb / wsum)};
        bradford_gains(n, d);
    }
    /* The skin after the neutral cues; if still outside the natural region, move it to the
     * nearest natural colour with one more adaptation (what the skin alone says). */
    double s1[3], lab1[3], nat[3];
    bradford_matrix(d, 1, wb);
    mat_vec(wb, t->skin, s1);
    lin_to_lab(s1, lab1);
    natural_skin(lab1, nat);
    if (delta_ab(lab1, nat) > 0.5) {
        /* the neutral that this skin correction amounts to: the colour white would have if the
         * skin's gains skin -> natural skin were the light's */
        double target[3], n2[3], d2[3];
        lab_to_lin(nat, target);
        for (int k = 0; k < 3; k++) n2[k] = s1[k] / fmax(target[k], 1e-6);
        for (int k = 0; k < 3; k++) n2[k] /= fmax(n2[1], 1e-9);
        bradford_gains(n2, d2);
        for (int k = 0; k < 3; k++) d[k] *= d2[k];
        pl->source = !pl->source                 ? "skin"
                     : t->n_teeth && t->n_sclera ? "eye whites, teeth and skin"
                     : t->n_sclera               ? "eye whites and skin"
                                                 : "teeth and skin";
    }
    /* No more than a strong tungsten cast is removed: beyond that the light is mixed or a cue
     * is wrong, and a global correction would make things worse. */
    double big = 0;
    for (int k = 0; k < 3; k++) big = fmax(big, fabs(log(d[k])));
    if (big > log(MAX_CONE_GAIN))
        for (int k = 0; k < 3; k++) d[k] = exp(log(d[k]) * log(MAX_CONE_GAIN) / big);
    /* The correction at the chosen strength, with a dead zone for photos without a cast. */
    double full[3], lab2[3];
    bradford_matrix(d, 1, wb);
    mat_vec(wb, t->skin, full);
    lin_to_lab(full, lab2);
    double s = delta_ab(lab2, pl->skin_before) < 1.5 ? 0 : p->white_balance;
    for (int k = 0; k < 3; k++) pl->cone[k] = pow(d[k], s);
    bradford_matrix(pl->cone, 1, wb);
    double skin_wb[3];
    mat_vec(wb, t->skin, skin_wb);

    /* Exposure, only when the face is clearly under or over. A face darker than the band is
     * lifted as far as the eye whites say (they are near white on anyone, so a dark-skinned
     * face in a well-exposed photo is not lightened), or to the band's edge without them; the
     * lift never takes the person's highlights past L* 96 or the skin past the band's top. */
    double sy = luminance(skin_wb), lstar = 116 * lab_f(sy) - 16, gain = 1;
    if (lstar < p->skin_low) {
        double want = lstar_to_y(p->skin_low) / fmax(sy, 1e-6);
        if (t->n_sclera) {
            double sc[3];
            mat_vec(wb, t->sclera, sc);
            want = lstar_to_y(SCLERA_LSTAR) / fmax(luminance(sc), 1e-6);
        }
        double cap = fmin(4, lstar_to_y(p->skin_high) / fmax(sy, 1e-6));
        if (t->person_hi > 0) cap = fmin(cap, lstar_to_y(96) / t->person_hi);
        gain = fmax(1, fmin(want, cap));
    } else if (lstar > p->skin_high) {
        gain = lstar_to_y(p->skin_high) / sy;
    }
    /* less than a quarter stop is no clear error */
    pl->gain = fabs(log2(gain)) < 0.25 ? 1 : pow(gain, p->exposure);

    /* Grade: warmth and tint as channel gains that keep white's luminance. */
    double g[3] = {exp(0.10 * p->warmth), exp(-0.06 * p->tint), exp(-0.10 * p->warmth)};
    double gy = luminance(g);
    double grade[3][3] = {{g[0] / gy, 0, 0}, {0, g[1] / gy, 0}, {0, 0, g[2] / gy}};
    mat_mul(grade, wb, pl->matrix);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) pl->matrix[i][j] *= pl->gain;
    double skin_out[3];
    mat_vec(pl->matrix, t->skin, skin_out);
    lin_to_lab(skin_out, pl->skin_after);
    pl->pivot = fmin(fmax((116 * lab_f(luminance(skin_out)) - 16) / 100, 0.35), 0.7);
    pl->contrast = p->contrast;
    pl->saturation = p->saturation;
}

/* ---- applying ----------------------------------------------------------------------------- */

typedef struct tone_apply {
    float m[3][3];
    float pivot, contrast, saturation;
    /* The S curve, which acts on the encoded luminance, composed with the sRGB transfer both
     * ways: the square root of linear luminance (0..1, TS_SRGB_LUT_N steps) -> new linear
     * luminance (one table read per pixel instead of three). */
    float curve[TS_SRGB_LUT_N + 2];
} tone_apply;

/* One pixel of tone_op (the reference; the vector path below computes the same). */
static inline void tone_px(const float *p, float *q, const float m[3][3], float sat,
                           const float *curve) {
    float l[3] = {ts_srgb_dec(p[0]), ts_srgb_dec(p[1]), ts_srgb_dec(p[2])}, o[3];
    for (int k = 0; k < 3; k++) o[k] = m[k][0] * l[0] + m[k][1] * l[1] + m[k][2] * l[2];
    float y = 0.2126f * o[0] + 0.7152f * o[1] + 0.0722f * o[2];
    if (y > 1e-6f) {
        /* the S curve; colours keep their ratios */
        float t = sqrtf(ts_clampf(y, 0, 1)) * TS_SRGB_LUT_N;
        int k = (int)t;
        float y2 = curve[k] + (t - k) * (curve[k + 1] - curve[k]), r = y2 / y;
        for (int c = 0; c < 3; c++) o[c] = y2 + sat * (o[c] * r - y2);
    }
    float r0 = ts_srgb_enc(o[0]), r1 = ts_srgb_enc(o[1]), r2 = ts_srgb_enc(o[2]);
    q[0] = r0, q[1] = r1, q[2] = r2;
}

#ifdef TS_SRGB_HAVE_AVX2
/* tone_op eight pixels at a time for [first, first + n rounded down to 8); returns how many. */
TS_SRGB_AVX2 static size_t tone_op8(const float *in, float *out, size_t first, size_t n,
                                    const tone_apply *a) {
    float m[3][3], sat = a->saturation;
    memcpy(m, a->m, sizeof m);
    const float *curve = a->curve;
    size_t i = first, end = first + n / 8 * 8;
    for (; i < end; i += 8) {
        __m256 l[3], o[3];
        ts_load3x8(in + i * 3, l);
        for (int c = 0; c < 3; c++) l[c] = ts_srgb_dec8(l[c]);
        for (int k = 0; k < 3; k++)
            o[k] = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(m[k][0]), l[0]),
                                               _mm256_mul_ps(_mm256_set1_ps(m[k][1]), l[1])),
                                 _mm256_mul_ps(_mm256_set1_ps(m[k][2]), l[2]));
        __m256 y = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(0.2126f), o[0]),
                                               _mm256_mul_ps(_mm256_set1_ps(0.7152f), o[1])),
                                 _mm256_mul_ps(_mm256_set1_ps(0.0722f), o[2]));
        __m256 lit = _mm256_cmp_ps(y, _mm256_set1_ps(1e-6f), _CMP_GT_OQ);
        if (_mm256_movemask_ps(lit)) {
            __m256 yc = _mm256_min_ps(_mm256_max_ps(y, _mm256_setzero_ps()), _mm256_set1_ps(1));
            __m256 y2 =
                ts_lut8(curve, _mm256_mul_ps(_mm256_sqrt_ps(yc), _mm256_set1_ps(TS_SRGB_LUT_N)));
            /* unlit lanes divide by 1 and are not used */
            __m256 r = _mm256_div_ps(y2, _mm256_blendv_ps(_mm256_set1_ps(1), y, lit));
            for (int c = 0; c < 3; c++) {
                __m256 v =
                    _mm256_add_ps(y2, _mm256_mul_ps(_mm256_set1_ps(sat),
                                                    _mm256_sub_ps(_mm256_mul_ps(o[c], r), y2)));
                o[c] = _mm256_blendv_ps(o[c], v, lit);
            }
        }
        for (int c = 0; c < 3; c++) o[c] = ts_srgb_enc8(o[c]);
        ts_store3x8(out + i * 3, o);
    }
    return i - first;
}
#endif

static void tone_op(const float *in, float *out, size_t first, size_t n, void *user) {
    const tone_apply *a = user;
#ifdef TS_SRGB_HAVE_AVX2
    if (ts_srgb_avx2) {
        size_t done = tone_op8(in, out, first, n, a);
        first += done, n -= done;
    }
#endif
    /* locals, so the stores to out (which could alias *a for all the compiler knows) do not
     * make it load them again for every pixel */
    float m[3][3], sat = a->saturation;
    memcpy(m, a->m, sizeof m);
    const float *curve = a->curve;
    size_t i = first, end = first + n;
#ifdef __SSE2__
    for (; i + 4 <= end; i += 4) {
        const float *p = in + i * 3;
        __m128 l[3], o[3];
        ts_load3x4(p, l);
        for (int c = 0; c < 3; c++) l[c] = ts_srgb_dec4(l[c]);
        for (int k = 0; k < 3; k++)
            o[k] = _mm_add_ps(_mm_add_ps(_mm_mul_ps(_mm_set1_ps(m[k][0]), l[0]),
                                         _mm_mul_ps(_mm_set1_ps(m[k][1]), l[1])),
                              _mm_mul_ps(_mm_set1_ps(m[k][2]), l[2]));
        __m128 y = _mm_add_ps(_mm_add_ps(_mm_mul_ps(_mm_set1_ps(0.2126f), o[0]),
                                         _mm_mul_ps(_mm_set1_ps(0.7152f), o[1])),
                              _mm_mul_ps(_mm_set1_ps(0.0722f), o[2]));
        __m128 lit = _mm_cmpgt_ps(y, _mm_set1_ps(1e-6f));
        if (_mm_movemask_ps(lit)) {
            __m128 yc = _mm_min_ps(_mm_max_ps(y, _mm_setzero_ps()), _mm_set1_ps(1));
            __m128 y2 = ts_lut4(curve, _mm_mul_ps(_mm_sqrt_ps(yc), _mm_set1_ps(TS_SRGB_LUT_N)));
            /* unlit lanes divide by 1 and are not used */
            __m128 r =
                _mm_div_ps(y2, _mm_or_ps(_mm_and_ps(lit, y), _mm_andnot_ps(lit, _mm_set1_ps(1))));
            for (int c = 0; c < 3; c++) {
                __m128 v = _mm_add_ps(
                    y2, _mm_mul_ps(_mm_set1_ps(sat), _mm_sub_ps(_mm_mul_ps(o[c], r), y2)));
                o[c] = _mm_or_ps(_mm_and_ps(lit, v), _mm_andnot_ps(lit, o[c]));
            }
        }
        for (int c = 0; c < 3; c++) o[c] = ts_srgb_enc4(o[c]);
        ts_store3x4(out + i * 3, o);
    }
#endif
    for (; i < end; i++) tone_px(in + i * 3, out + i * 3, m, sat, curve);
}

/* The cast that the cone gains remove: a warm light needs its blue (short) cones raised. */
static const char *cast_name(const double cone[3]) {
    double l = log(cone[0]), m = log(cone[1]), s = log(cone[2]);
    if (s - l > 0.06) return "warm";
    if (l - s > 0.06) return "cool";
    return m > (l + s) / 2 ? "magenta" : "green";
}

/* The luminance histogram of the person (alpha > 0.9; everything without a matte), for a range
 * of pixels; the first half of the canvas counts into hist[0], the second into hist[1]. */
typedef struct hi_job {
    const float *px, *alpha;
    int hist[2][1024], total[2];
} hi_job;

#ifdef TS_SRGB_HAVE_AVX2
/* hi_range's luminances eight pixels at a time (the same floats), for [first, first + n rounded
 * down to 8); returns how many it counted and adds them to hist. */
TS_SRGB_AVX2 static size_t hi_range8(const float *px, const float *alpha, size_t first, size_t n,
                                     int *hist, int *total) {
    size_t i = first, end = first + n / 8 * 8;
    float yy[8];
    for (; i < end; i += 8) {
        int on = 0xff;
        if (alpha)
            on = _mm256_movemask_ps(
                _mm256_cmp_ps(_mm256_loadu_ps(alpha + i), _mm256_set1_ps(0.9f), _CMP_GT_OQ));
        if (!on) continue;
        __m256 v[3];
        ts_load3x8(px + i * 3, v);
        __m256 y =
            _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(0.2126f), ts_srgb_dec8(v[0])),
                                        _mm256_mul_ps(_mm256_set1_ps(0.7152f), ts_srgb_dec8(v[1]))),
                          _mm256_mul_ps(_mm256_set1_ps(0.0722f), ts_srgb_dec8(v[2])));
        y = _mm256_min_ps(_mm256_max_ps(y, _mm256_setzero_ps()), _mm256_set1_ps(1));
        _mm256_storeu_ps(yy, _mm256_mul_ps(y, _mm256_set1_ps(1023)));
        for (int k = 0; k < 8; k++)
            if (on >> k & 1) hist[(int)yy[k]]++, (*total)++;
    }
    return i - first;
}
#endif

static void hi_range(size_t first, size_t n, void *user) {
    hi_job *j = user;
    int half = first > 0, *hist = j->hist[half], total = 0;
    const float *alpha = j->alpha;
#ifdef TS_SRGB_HAVE_AVX2
    if (ts_srgb_avx2) {
        size_t done = hi_range8(j->px, alpha, first, n, hist, &total);
        first += done, n -= done;
    }
#endif
    for (size_t i = first; i < first + n; i++)
        if (!alpha || alpha[i] > 0.9f) {
            const float *q = j->px + i * 3;
            float yy = 0.2126f * ts_srgb_dec(q[0]) + 0.7152f * ts_srgb_dec(q[1]) +
                       0.0722f * ts_srgb_dec(q[2]);
            hist[(int)(ts_minf(ts_maxf(yy, 0), 1) * 1023)]++, total++;
        }
    j->total[half] += total;
}

#ifdef TS_SRGB_HAVE_AVX2
/* ts_srgb_dec of src[0, n rounded down to 8) into dst; returns how many. */
TS_SRGB_AVX2 static int dec_row8(const float *src, float *dst, int n) {
    int x = 0;
    for (; x + 8 <= n; x += 8) _mm256_storeu_ps(dst + x, ts_srgb_dec8(_mm256_loadu_ps(src + x)));
    return x;
}
#endif

/* Measures the canvas (the person's highlights, then the face) into t; *outside set (and t
 * left empty) when the face is not on it. */
static ts_status measure_canvas(ts_render_job *job, tone_measure *t, int *outside) {
    VipsImage *im = job->rgb;
    int w = im->Xsize, h = im->Ysize;
    /* The canvas is read in place (frame leaves it in memory) and decoded where it is read. */
    VipsImage *mem = vips_image_copy_memory(im);
    VipsImage *amem = job->alpha ? vips_image_copy_memory(job->alpha) : NULL;
    if (!mem || (job->alpha && !amem)) {
        if (mem) g_object_unref(mem);
        if (amem) g_object_unref(amem);
        return ts_fail(job->ctx, TS_ERR_INTERNAL, "tone: %s", vips_error_buffer());
    }
    const float *px = (const float *)VIPS_IMAGE_ADDR(mem, 0, 0);
    memset(t, 0, sizeof *t);
    /* The person's highlights (clothes, hair, speculars): the 99th percentile of luminance. */
    const float *alpha = amem && amem->BandFmt == VIPS_FORMAT_FLOAT && amem->Bands == 1
                             ? (const float *)VIPS_IMAGE_ADDR(amem, 0, 0)
                             : NULL;
    hi_job hj = {px, alpha, {{0}}, {0}};
    ts_render_split2(hi_range, &hj, (size_t)w * h, 65536);
    int hist[1024], total = hj.total[0] + hj.total[1];
    for (int k = 0; k < 1024; k++) hist[k] = hj.hist[0][k] + hj.hist[1][k];
    if (amem) g_object_unref(amem);
    for (int k = 1023, c = 0; k > 0; k--)
        if ((c += hist[k]) >= total / 100) {
            t->person_hi = k / 1023.0;
            break;
        }
    /* The face's box, with a margin. */
    float x0 = INFINITY, y0 = INFINITY, x1 = -INFINITY, y1 = -INFINITY;
    for (int i = 0; i < TS_LANDMARKS; i++) {
        x0 = ts_minf(x0, job->lm[i][0]), x1 = ts_maxf(x1, job->lm[i][0]);
        y0 = ts_minf(y0, job->lm[i][1]), y1 = ts_maxf(y1, job->lm[i][1]);
    }
    float mg = 0.05f * (x1 - x0 + y1 - y0);
    int bx0 = (int)ts_maxf(0, floorf(x0 - mg)), by0 = (int)ts_maxf(0, floorf(y0 - mg));
    int bx1 = (int)ts_minf(w, ceilf(x1 + mg)), by1 = (int)ts_minf(h, ceilf(y1 + mg));
    if (bx1 - bx0 < 8 || by1 - by0 < 8) {
        g_object_unref(mem);
        *outside = 1;
        return TS_OK;
    }
    int bw = bx1 - bx0, bh = by1 - by0;
    float *face = ts_render_big_alloc(sizeof *face * 3 * (size_t)bw * bh);
    if (!face) {
        g_object_unref(mem);
        return ts_fail(job->ctx, TS_ERR_NOMEM, "tone: out of memory");
    }
    for (int y = 0; y < bh; y++) {
        const float *row = px + ((size_t)(by0 + y) * w + bx0) * 3;
        float *dst = face + (size_t)y * bw * 3;
        int x = 0;
#ifdef TS_SRGB_HAVE_AVX2
        if (ts_srgb_avx2) x = dec_row8(row, dst, 3 * bw);
#endif
        for (; x < 3 * bw; x++) dst[x] = ts_srgb_dec(row[x]);
    }
    g_object_unref(mem);
    ts_status st = measure(job, face, bw, bh, bx0, by0, t);
    ts_render_big_free(face);
    return st;
}

static ts_status tone_run(ts_render_job *job, const void *params) {
    const tone_params *p = params;
    ts_status st = ts_render_colour_canvas(job, "tone");
    if (st) return st;
    /* What the canvas says: measured, or kept from a look that had the same canvas. */
    tone_measure t;
    if (!ts_render_memo_get(job, "tone", &t, sizeof t)) {
        int outside = 0;
        st = measure_canvas(job, &t, &outside);
        if (st) return st;
        if (outside) {
            ts_render_note(job, "tone: the face is outside the frame; colour and exposure left "
                                "as they are");
            return TS_OK;
        }
        ts_render_memo_put(job, "tone", &t, sizeof t);
    }
    if (t.n_skin < 50) {
        ts_render_note(job, "tone: too little skin visible to set colour and exposure");
        return TS_OK;
    }
    tone_plan pl;
    plan(p, &t, &pl);
    tone_apply *a = malloc(sizeof *a);
    if (!a) return ts_fail(job->ctx, TS_ERR_NOMEM, "tone: out of memory");
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) a->m[i][j] = (float)pl.matrix[i][j];
    a->saturation = (float)pl.saturation;
    /* f(x) = x + c 4 x (1 - x) (x - pivot) / max: fixed at 0, the skin and 1; monotonic for
     * c <= 0.5 at any pivot in 0.35..0.7. */
    double pv = pl.pivot, c = pl.contrast;
    for (int i = 0; i <= TS_SRGB_LUT_N + 1; i++) {
        double sq = fmin(1, (double)i / TS_SRGB_LUT_N), yl = sq * sq;
        double x = yl <= 0.0031308 ? 12.92 * yl : 1.055 * pow(yl, 1 / 2.4) - 0.055;
        double f = fmin(1, fmax(0, x + c * 4 * x * (1 - x) * (x - pv)));
        a->curve[i] = (float)(f <= 0.04045 ? f / 12.92 : pow((f + 0.055) / 1.055, 2.4));
    }
    st = ts_render_map_px(job, tone_op, a, "tone");
    free(a);
    if (st) return st;
    if (fabs(log(pl.cone[0])) + fabs(log(pl.cone[1])) + fabs(log(pl.cone[2])) > 0.01)
        ts_render_edit(job, "white balance: removed a %s cast (from the %s)", cast_name(pl.cone),
                       pl.source ? pl.source : "skin");
    if (fabs(log(pl.gain)) > 0.02)
        ts_render_edit(job, "exposure %+.1f EV (skin L* %.0f -> %.0f)", log2(pl.gain),
                       pl.skin_before[0], pl.skin_after[0]);
    if (c > 0.001) ts_render_edit(job, "contrast %.2f", c);
    if (p->warmth != 0 || p->tint != 0 || p->saturation != 1)
        ts_render_edit(job, "grade: warmth %+.2f, tint %+.2f, saturation %.2f", p->warmth, p->tint,
                       p->saturation);
    return TS_OK;
}

const ts_stage ts_stage_tone = {"tone", 1, tone_table, sizeof(tone_params), tone_run};
