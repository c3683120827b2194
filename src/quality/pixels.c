/* Graders that read the face's pixels: sharpness, noise, exposure, evenness, colour cast,
 * compression and eyes hidden. All measured on the photo's analysis copy (no second decode),
 * on a crop around the face resampled so the inter-eye distance is at most CANON_IED: the
 * measures then see the face at the same scale whatever the photo's size, and a 12-MP photo
 * costs no more than a 1-MP one. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "face/regions.h"
#include "quality/quality.h"

/* Inter-eye distance the face is measured at (never upscaled to it). 128 px keeps detail a
 * 1200 px headshot shows (its face has ~245 px between the eyes) within a factor of two, and
 * the crop near 300 x 400 px. */
#define CANON_IED 128.0

typedef struct crop {
    int w, h;
    uint8_t *rgb;              /* w * h * 3 */
    float *lab;                /* w * h * 3, CIELAB */
    float *y;                  /* w * h, luma Y' 0..255 (Rec. 601) */
    uint8_t *face, *skin;      /* interior masks (edges eroded): 0 / 255 */
    uint8_t *eye[2], *iris[2]; /* 0..255 coverage, index 0 the subject's right */
    ts_face_mesh mesh;         /* in crop pixels */
    double scale;              /* crop pixels per photo pixel */
    double ied;                /* inter-eye distance in crop pixels */
} crop;

static void crop_free(crop *c) {
    free(c->rgb);
    free(c->lab);
    free(c->y);
    free(c->face);
    free(c->skin);
    for (int i = 0; i < 2; i++) free(c->eye[i]), free(c->iris[i]);
}

/* Bounds of the mesh (0..467) in photo pixels, grown by `grow` of its size on each side. */
static void mesh_bounds(const ts_face_analysis *a, double grow, double b[4]) {
    double x0 = 1e30, y0 = 1e30, x1 = -1e30, y1 = -1e30;
    for (int i = 0; i < 468; i++) {
        x0 = fmin(x0, a->landmarks[i][0]), x1 = fmax(x1, a->landmarks[i][0]);
        y0 = fmin(y0, a->landmarks[i][1]), y1 = fmax(y1, a->landmarks[i][1]);
    }
    double gw = (x1 - x0) * grow, gh = (y1 - y0) * grow;
    b[0] = x0 - gw, b[1] = y0 - gh, b[2] = x1 + gw, b[3] = y1 + gh;
}

/* Region of the analysis copy, resampled by rs (<= 1), into memory as RGB bytes. */
static uint8_t *extract(VipsImage *an, int x, int y, int w, int h, double rs, int *ow, int *oh) {
    VipsImage *area = NULL, *small = NULL;
    uint8_t *out = NULL;
    if (vips_extract_area(an, &area, x, y, w, h, NULL) != 0) goto done;
    if (rs < 0.999) {
        if (vips_resize(area, &small, rs, NULL) != 0) goto done;
    } else {
        small = g_object_ref(area);
    }
    size_t len;
    void *mem = vips_image_write_to_memory(small, &len);
    if (!mem) goto done;
    *ow = small->Xsize, *oh = small->Ysize;
    out = malloc(len);
    if (out) memcpy(out, mem, len);
    g_free(mem);
done:
    if (area) g_object_unref(area);
    if (small) g_object_unref(small);
    if (!out) vips_error_clear();
    return out;
}

static ts_status mask(q_input *in, crop *c, ts_face_region reg, float feather, uint8_t **out,
                      bool interior) {
    *out = malloc((size_t)c->w * c->h);
    if (!*out) return ts_fail(in->ctx, TS_ERR_NOMEM, "out of memory");
    ts_status s = ts_face_region_mask(&c->mesh, in->ctx->geom, reg, c->w, c->h, 1.f, feather, *out);
    if (s) return s;
    /* Interior: a feathered mask thresholded high drops a band of about 2 sigma along the
     * edge, so background and hair at the outline do not count as face. */
    if (interior)
        for (size_t i = 0; i < (size_t)c->w * c->h; i++) (*out)[i] = (*out)[i] >= 250 ? 255 : 0;
    return TS_OK;
}

static ts_status crop_make(q_input *in, crop *c) {
    memset(c, 0, sizeof *c);
    double b[4];
    mesh_bounds(in->a, 0.12, b);
    double as = in->an_scale;
    int AW = in->an->Xsize, AH = in->an->Ysize;
    int x0 = (int)fmax(0, floor(b[0] * as)), y0 = (int)fmax(0, floor(b[1] * as));
    int x1 = (int)fmin(AW, ceil(b[2] * as)), y1 = (int)fmin(AH, ceil(b[3] * as));
    if (x1 - x0 < 8 || y1 - y0 < 8) {
        x0 = 0, y0 = 0, x1 = AW, y1 = AH;
    }
    double ied_an = in->a->inter_eye_px * as;
    double rs = ied_an > CANON_IED ? CANON_IED / ied_an : 1.0;
    c->rgb = extract(in->an, x0, y0, x1 - x0, y1 - y0, rs, &c->w, &c->h);
    if (!c->rgb) return ts_fail(in->ctx, TS_ERR_INTERNAL, "check: cannot crop the face");
    /* The resize rounds the size: the exact scale is the ratio of sizes. */
    double sx = (double)c->w / (x1 - x0), sy = (double)c->h / (y1 - y0);
    c->scale = as * sx;
    c->ied = in->a->inter_eye_px * c->scale;
    for (int i = 0; i < TS_MESH_POINTS; i++) {
        c->mesh.pts[i][0] = (float)((in->a->landmarks[i][0] * as - x0) * sx);
        c->mesh.pts[i][1] = (float)((in->a->landmarks[i][1] * as - y0) * sy);
        c->mesh.pts[i][2] = (float)(in->a->landmarks[i][2] * as * sx);
    }
    c->mesh.presence = in->a->presence;
    size_t n = (size_t)c->w * c->h;
    c->lab = malloc(n * 3 * sizeof *c->lab);
    c->y = malloc(n * sizeof *c->y);
    if (!c->lab || !c->y) return ts_fail(in->ctx, TS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = c->rgb + i * 3;
        q_lab(p, c->lab + i * 3);
        c->y[i] = 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
    }
    ts_status s = mask(in, c, TS_REGION_FACE, 1.5f, &c->face, true);
    if (!s) s = mask(in, c, TS_REGION_SKIN, 1.5f, &c->skin, true);
    if (!s) s = mask(in, c, TS_REGION_RIGHT_EYE, 0, &c->eye[0], false);
    if (!s) s = mask(in, c, TS_REGION_LEFT_EYE, 0, &c->eye[1], false);
    if (!s) s = mask(in, c, TS_REGION_RIGHT_IRIS, 0, &c->iris[0], false);
    if (!s) s = mask(in, c, TS_REGION_LEFT_IRIS, 0, &c->iris[1], false);
    return s;
}

/* ---- sharpness ---- */

/* Re-blur measure (Crete, Dolmiere, Ladret and Nicolas, "The blur effect: perception and
 * estimation with a new no-reference perceptual blur metric", SPIE 2007) along one direction:
 * how much of the image's gradient survives a 9-tap box blur along it. 0 = sharp (blurring
 * removes much), 1 = already blurred (blurring changes nothing). Contrast-independent, and the
 * four directions tell motion blur (one direction blurred) from defocus (all). */
static double reblur(const crop *c, int dx, int dy) {
    double sum_d = 0, sum_v = 0;
    int m = 6;
    for (int y = m; y < c->h - m; y++)
        for (int x = m; x < c->w - m; x++) {
            size_t i = (size_t)y * c->w + x;
            if (!c->face[i]) continue;
            const float *g = c->y;
            double di = fabs(g[i] - g[i - dy * c->w - dx]);
            double b0 = 0, b1 = 0;
            for (int k = -4; k <= 4; k++) {
                b0 += g[(size_t)(y + k * dy) * c->w + x + k * dx];
                b1 += g[(size_t)(y + (k - 1) * dy) * c->w + x + (k - 1) * dx];
            }
            double db = fabs(b0 - b1) / 9;
            sum_d += di;
            sum_v += fmax(0, di - db);
        }
    return sum_d > 0 ? 1 - sum_v / sum_d : 1;
}

static void grade_sharpness(const crop *c, ts_check_report *r) {
    ts_check_component *comp = q_add(r, "sharpness", "Sharpness");
    static const int dirs[4][2] = {{1, 0}, {0, 1}, {1, 1}, {1, -1}};
    double b[4], bmin = 1, bmax = 0, bmean = 0;
    for (int k = 0; k < 4; k++) {
        b[k] = reblur(c, dirs[k][0], dirs[k][1]);
        bmin = fmin(bmin, b[k]), bmax = fmax(bmax, b[k]);
        bmean += b[k] / 4;
    }
    /* Variance of the Laplacian on the face (Pech-Pacheco et al. 2000), at the canonical
     * scale: the classic focus measure, reported for comparison. */
    double s1 = 0, s2 = 0, n = 0;
    for (int y = 1; y < c->h - 1; y++)
        for (int x = 1; x < c->w - 1; x++) {
            size_t i = (size_t)y * c->w + x;
            if (!c->face[i]) continue;
            double l = 4 * c->y[i] - c->y[i - 1] - c->y[i + 1] - c->y[i - c->w] - c->y[i + c->w];
            s1 += l, s2 += l * l, n++;
        }
    double lapvar = n > 1 ? (s2 - s1 * s1 / n) / (n - 1) : 0;
    /* Motion blur: the sharpest direction stays sharp while the blurriest is smeared. */
    double aniso = bmax - bmin;
    q_raw(comp, "blur", bmean);
    q_raw(comp, "blur_min", bmin);
    q_raw(comp, "blur_max", bmax);
    q_raw(comp, "motion", aniso);
    q_raw(comp, "laplacian_var", lapvar);
    q_raw(comp, "measured_at_ied", c->ied);
    /* Thresholds from the development photos and their blurred copies (docs/check.md): sharp
     * faces score blur 0.25-0.40 at this scale, Gaussian sigma 2 px at 1 MP ~0.55. */
    double s = q_down(bmax, 0.56, 0.70);
    bool motion = aniso > 0.17 && bmin < 0.6;
    if (motion)
        q_grade(comp, s,
                "The photo is smeared by movement (motion blur). Hold the camera steady with "
                "both hands or rest it on something, use more light, and stay still.");
    else
        q_grade(comp, s,
                "The face is out of focus. Tap your face on the screen to focus before you "
                "shoot, and keep at least the camera's minimum distance.");
}

/* ---- noise ---- */

/* The k-th smallest of v[0..n) (Hoare's selection; reorders v): a median without sorting. */
static float select_k(float *v, size_t n, size_t k) {
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = v[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i <= j) {
                float t = v[i];
                v[i] = v[j], v[j] = t;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            break;
    }
    return v[k];
}

static ts_status grade_noise(q_input *in, const crop *c, ts_check_report *r) {
    ts_check_component *comp = q_add(r, "noise", "Noise");
    size_t cap = (size_t)c->w * c->h, n = 0;
    float *h = malloc(cap * sizeof *h), *grad = malloc(cap * sizeof *grad);
    if (!h || !grad) {
        free(h), free(grad);
        return ts_fail(in->ctx, TS_ERR_NOMEM, "out of memory");
    }
    /* Immerkaer's fast noise estimate (CVIU 1996): the kernel [1 -2 1; -2 4 -2; 1 -2 1]
     * cancels smooth ramps; on flat skin what remains is noise. Taken as a median absolute
     * value (robust to pores and edges) over the skin pixels of lowest gradient, the flat
     * half: sigma = median |h| / (0.6745 * 6), 6 being the kernel's L2 norm. */
    const float *g = c->y;
    int w = c->w;
    for (int y = 1; y < c->h - 1; y++)
        for (int x = 1; x < w - 1; x++) {
            size_t i = (size_t)y * w + x;
            if (!c->skin[i]) continue;
            float v = g[i - w - 1] - 2 * g[i - w] + g[i - w + 1] - 2 * g[i - 1] + 4 * g[i] -
                      2 * g[i + 1] + g[i + w - 1] - 2 * g[i + w] + g[i + w + 1];
            float gx = g[i + 1] - g[i - 1], gy = g[i + w] - g[i - w];
            h[n] = fabsf(v);
            grad[n] = gx * gx + gy * gy;
            n++;
        }
    double sigma = 0;
    if (n > 50) {
        /* The flat half: pixels whose gradient is under the median. */
        float *gs = malloc(n * sizeof *gs);
        if (!gs) {
            free(h), free(grad);
            return ts_fail(in->ctx, TS_ERR_NOMEM, "out of memory");
        }
        memcpy(gs, grad, n * sizeof *gs);
        float gmed = select_k(gs, n, n / 2);
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (grad[i] <= gmed) gs[k++] = h[i];
        sigma = k ? select_k(gs, k, k / 2) / (0.6745 * 6) : 0;
        free(gs);
    }
    free(h), free(grad);
    /* Noise as the headshot will show it: the crop is the photo averaged down by
     * ied_native / ied_measured, which divides white noise by that factor; the headshot is
     * the photo resampled to the needed inter-eye distance (never more than the photo has). */
    double ied_native = in->a->inter_eye_px;
    double needed = in->opt->output_px * in->opt->face_fraction / 2.2;
    double at_output = c->ied > 0 ? sigma * fmin(ied_native, needed) / c->ied : sigma;
    q_raw(comp, "sigma", sigma);
    q_raw(comp, "sigma_at_output", at_output);
    q_raw(comp, "measured_at_ied", c->ied);
    sigma = at_output;
    /* sigma in 8-bit levels at the output scale. Clean camera faces measure 0.2-1.5; grain
     * becomes visible on skin around 4 (ISO 15739's visual noise puts "acceptable" near a
     * luminance noise of 1.5-2% of full scale); sigma 8 (3%) looks grainy. */
    q_grade(comp, q_down(sigma, 4.0, 8.0),
            "The face is grainy (noise). Use more light: face a window in daylight, or turn on "
            "more lamps, so the camera can use a lower ISO.");
    return TS_OK;
}

/* ---- exposure ---- */

static void grade_exposure(const crop *c, ts_check_report *r) {
    ts_check_component *comp = q_add(r, "exposure", "Exposure");
    double hist[256] = {0}, n = 0, bright = 0, dark = 0, lsum = 0, ln = 0;
    for (size_t i = 0; i < (size_t)c->w * c->h; i++) {
        if (!c->face[i]) continue;
        int v = (int)lroundf(c->y[i]);
        v = v < 0 ? 0 : v > 255 ? 255 : v;
        hist[v]++, n++;
        /* OFIQ's exposure ranges on the face: under 0..25, over 247..255 (luma). */
        if (v >= 247) bright++;
        if (v <= 25) dark++;
        if (c->skin[i]) lsum += c->lab[i * 3], ln++;
    }
    if (n < 1) n = 1;
    double mean_l = ln > 0 ? lsum / ln : 50;
    /* The 99th percentile of luma: a well exposed face of any skin tone has highlights (eye
     * whites, specular spots); an underexposed one does not. */
    double acc = 0, p99 = 0, entropy = 0;
    for (int v = 0; v < 256; v++) {
        acc += hist[v];
        if (acc >= 0.99 * n && p99 == 0) p99 = v;
        double q = hist[v] / n;
        if (q > 0) entropy -= q * log2(q);
    }
    bright /= n, dark /= n;
    q_raw(comp, "mean_lstar", mean_l);
    q_raw(comp, "clipped", bright);
    q_raw(comp, "crushed", dark);
    q_raw(comp, "p99_luma", p99);
    q_raw(comp, "dynamic_range_bits", entropy);
    /* Clipped: blown-out skin cannot be recovered; a few specular pixels are normal. Good up to
     * 2% of the face, not usable from 10%. Crushed: good to 5%, not usable from 25%. */
    double sb = q_down(bright, 0.02, 0.10), sd = q_down(dark, 0.05, 0.25);
    /* Mean skin L*: OFIQ's Luminance mean wants face luma within 0.2..0.8 of full scale. Skin
     * L* spans ~25 (deep) to ~75 (fair) in good light (Xiao et al., "Characterising the
     * variations in ethnic skin colours", 2017), so a dark face alone is not underexposure:
     * when the face still has bright highlights (p99 >= 190) the limits drop by 12. */
    double lo_good = 42, lo_bad = 30;
    if (p99 >= 190) lo_good -= 12, lo_bad -= 12;
    double sl = q_up(mean_l, lo_bad, lo_good), sh = q_down(mean_l, 80, 90);
    /* OFIQ DynamicRange: entropy of the face's luma histogram; a washed-out, flat face falls
     * under ~5 bits. Good from 5.5, not usable under 4. */
    double se = q_up(entropy, 4.0, 5.5);
    double s = fmin(fmin(sb, sd), fmin(fmin(sl, sh), se));
    if (s == sb || s == sh)
        q_grade(comp, s,
                "The face is too bright (%.0f%% blown to white). Move out of direct sun, turn "
                "off the flash, or tap your face on the screen and slide the exposure down.",
                bright * 100);
    else if (s == se)
        q_grade(comp, s,
                "The face looks flat and washed out (low contrast). Avoid shooting into the "
                "light or through a window pane; clean the lens.");
    else
        q_grade(comp, s,
                "The face is too dark. Face a window or a lamp, or tap your face on the screen "
                "so the camera exposes for it.");
}

/* ---- evenness and colour, on the cheeks ---- */

/* The cheek band: skin between the eye line and the mouth, split by the face's midline (nose
 * bridge 168 to chin 152). side: 0 the image's left half of the face, 1 its right. */
static int cheek_side(const crop *c, int x, int y) {
    const float(*p)[3] = c->mesh.pts;
    double mx = p[152][0] - p[168][0], my = p[152][1] - p[168][1];
    double len = hypot(mx, my);
    if (len < 1) return -1;
    mx /= len, my /= len;
    double eye = ((p[468][0] + p[473][0]) / 2 - p[168][0]) * mx +
                 ((p[468][1] + p[473][1]) / 2 - p[168][1]) * my;
    double mouth = ((p[61][0] + p[291][0]) / 2 - p[168][0]) * mx +
                   ((p[61][1] + p[291][1]) / 2 - p[168][1]) * my;
    double t = (x + 0.5 - p[168][0]) * mx + (y + 0.5 - p[168][1]) * my;
    if (t < eye + 0.1 * (mouth - eye) || t > mouth) return -1;
    double cross = (x + 0.5 - p[168][0]) * my - (y + 0.5 - p[168][1]) * mx;
    return cross > 0 ? 0 : 1;
}

static void grade_evenness_colour(q_input *in, const crop *c, ts_check_report *r) {
    double sum[2][3] = {{0}}, cnt[2] = {0};
    double hist[2][32] = {{0}};
    for (int y = 0; y < c->h; y++)
        for (int x = 0; x < c->w; x++) {
            size_t i = (size_t)y * c->w + x;
            if (!c->skin[i]) continue;
            int side = cheek_side(c, x, y);
            if (side < 0) continue;
            const float *lab = c->lab + i * 3;
            for (int k = 0; k < 3; k++) sum[side][k] += lab[k];
            cnt[side]++;
            int bin = (int)(lab[0] / 100 * 32);
            hist[side][bin < 0 ? 0 : bin > 31 ? 31 : bin]++;
        }
    ts_check_component *ev = q_add(r, "evenness", "Even light");
    ts_check_component *cc = q_add(r, "color_cast", "Natural colour");
    if (cnt[0] < 20 || cnt[1] < 20) {
        /* Profile or tiny face: one cheek is not visible. Nothing to grade. */
        q_grade(ev, 100, NULL);
        q_grade(cc, 100, NULL);
        return;
    }
    double mean[2][3];
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < 3; k++) mean[s][k] = sum[s][k] / cnt[s];
    double inter = 0;
    for (int b = 0; b < 32; b++) inter += fmin(hist[0][b] / cnt[0], hist[1][b] / cnt[1]);
    double dl = mean[0][0] - mean[1][0];
    q_raw(ev, "delta_lstar", fabs(dl));
    q_raw(ev, "histogram_intersection", inter);
    /* OFIQ's IlluminationUniformity compares the two cheek histograms (intersection); we grade
     * the plainer mean L* difference, which says how strong the side light is. Soft portrait
     * light (a window at 45 degrees, fill on the far side) keeps the cheeks within ~10 L*
     * (about 1/3 stop at mid skin tones); hard side light with no fill reaches 25+ (a cheek in
     * shadow), which even the light stage cannot lift without noise. Good to 11 (the webcam
     * frames of the development set reach 10 with the head turned), not usable from 28. */
    /* The image's left cheek is the subject's right. */
    q_grade(ev, q_down(fabs(dl), 11, 28),
            "Your %s side is much darker than the other (hard side light). Turn to face the "
            "light squarely, or put something white (a wall, a sheet) on your %s side to bounce "
            "light back.",
            dl < 0 ? "right" : "left", dl < 0 ? "right" : "left");

    float lab[3];
    for (int k = 0; k < 3; k++) lab[k] = (float)((sum[0][k] + sum[1][k]) / (cnt[0] + cnt[1]));
    in->have_skin = true;
    memcpy(in->skin_lab, lab, sizeof lab);
    double a = lab[1], b = lab[2];
    double chroma = hypot(a, b), hue = atan2(b, a) * 180 / M_PI;
    /* ISO/IEC 29794-5 natural colour as OFIQ computes it: mean cheek a* within 5..25 and b*
     * within 5..35 is natural; the raw value is the CIELAB distance outside that box. OFIQ
     * maps it with a sigmoid that halves the score at ~10; we call <= 3 good and >= 15 not
     * usable (a cast no white balance correction hides). */
    double da = fmax(fmax(0, 5 - a), a - 25), db = fmax(fmax(0, 5 - b), b - 35);
    double dist = hypot(da, db);
    q_raw(cc, "a", a);
    q_raw(cc, "b", b);
    q_raw(cc, "hue_deg", hue);
    q_raw(cc, "chroma", chroma);
    q_raw(cc, "outside_natural", dist);
    if (chroma < 3)
        /* A black-and-white photo: usable for a B&W look only, and the colour stages need
         * colour. Could be better, not a cast. */
        q_grade(cc, 55,
                "This photo is black and white. Use the colour original: trueshot can make a "
                "black-and-white headshot from it, not the other way round.");
    else {
        const char *what = b > 35   ? "yellow-orange cast, typical of indoor bulbs"
                           : b < 5  ? "blue cast, typical of shade or cold LED light"
                           : a > 25 ? "red-magenta cast"
                                    : "green cast, typical of fluorescent light";
        q_grade(cc, q_down(dist, 3, 15),
                "The skin has a %s. Shoot by a window in daylight with other lights off, and "
                "leave white balance on auto.",
                what);
    }
}

/* ---- compression ---- */

/* Blockiness after Wang, Sheikh and Bovik ("No-reference perceptual quality assessment of
 * JPEG compressed images", ICIP 2002): the mean absolute difference across 8-px block
 * boundaries over that inside blocks. Measured on the analysis copy at its own resolution; a
 * JPEG decoded with shrink-on-load at 1/2 or 1/4 has its blocks at 4 or 2 px. The grid phase
 * is found as the strongest one (EXIF rotation and cropping move it). */
static void grade_compression(q_input *in, ts_check_report *r) {
    ts_check_component *comp = q_add(r, "compression", "Compression");
    const char *loader = vips_foreign_find_load(in->photo->path);
    bool jpeg = loader && strstr(loader, "Jpeg");
    double as = in->an_scale;
    int grid = 0;
    if (fabs(as - 1) < 1e-6)
        grid = 8;
    else if (jpeg && fabs(as * 2 - 1) < 0.01)
        grid = 4;
    else if (jpeg && fabs(as * 4 - 1) < 0.01)
        grid = 2;
    if (!loader) vips_error_clear();
    double blk = 1;
    if (grid) {
        double b[4];
        mesh_bounds(in->a, 0.05, b);
        int AW = in->an->Xsize, AH = in->an->Ysize;
        int x0 = (int)fmax(0, b[0] * as), y0 = (int)fmax(0, b[1] * as);
        int x1 = (int)fmin(AW, b[2] * as), y1 = (int)fmin(AH, b[3] * as);
        const uint8_t *px = (const uint8_t *)VIPS_IMAGE_ADDR(in->an, 0, 0);
        size_t stride = VIPS_IMAGE_SIZEOF_LINE(in->an);
        int bands = in->an->Bands;
        double col[8] = {0}, row[8] = {0};
        for (int y = y0; y < y1 - 1; y++)
            for (int x = x0; x < x1 - 1; x++) {
                const uint8_t *p = px + (size_t)y * stride + (size_t)x * bands;
                const uint8_t *pr = p + bands, *pd = p + stride;
                double v = 0.299 * p[0] + 0.587 * p[1 % bands] + 0.114 * p[2 % bands];
                double vr = 0.299 * pr[0] + 0.587 * pr[1 % bands] + 0.114 * pr[2 % bands];
                double vd = 0.299 * pd[0] + 0.587 * pd[1 % bands] + 0.114 * pd[2 % bands];
                col[(x + 1) % grid] += fabs(vr - v);
                row[(y + 1) % grid] += fabs(vd - v);
            }
        double ratio[2];
        double *acc[2] = {col, row};
        for (int d = 0; d < 2; d++) {
            int best = 0;
            double tot = 0;
            for (int k = 0; k < grid; k++) {
                tot += acc[d][k];
                if (acc[d][k] > acc[d][best]) best = k;
            }
            double others = (tot - acc[d][best]) / (grid - 1);
            ratio[d] = others > 0 ? acc[d][best] / others : 1;
        }
        blk = (ratio[0] + ratio[1]) / 2;
    }
    q_raw(comp, "blockiness", blk);
    q_raw(comp, "grid_px", grid);
    /* A clean photo measures 1.00-1.15 (the strongest of 8 phases by chance); the webcam
     * frames of the development set, compressed but fine at headshot size, 1.37-1.46; JPEG
     * quality 10 measures 1.9-4 (docs/check.md). Good to 1.5, not usable from 2.2. */
    q_grade(comp, q_down(blk, 1.5, 2.2),
            "The photo is heavily compressed (blocky, smeared detail). Use the original file "
            "from the camera or phone, not a copy saved from a messaging app or a website.");
}

/* ---- eyes hidden ---- */

static void grade_eyes_hidden(q_input *in, const crop *c, ts_check_report *r) {
    ts_check_component *comp = q_add(r, "eyes_hidden", "Eyes visible");
    double worst = 100, glare_max = 0, dark_min = 99, sd_max = 0;
    int seen = 0, hidden = 0;
    double skin = in->have_skin ? in->skin_lab[0] : 60;
    for (int e = 0; e < 2; e++) {
        /* Closed eyes are the eyes_open grader's; a far eye in a turned head is hidden by the
         * nose, not by glasses. */
        if (in->a->eye_open[e] < 0.12f) continue;
        if (fabs(in->a->yaw) > 30 && e != (in->a->yaw > 0 ? 0 : 1)) continue;
        double s1 = 0, s2 = 0, nn = 0;
        int bx0 = c->w, by0 = c->h, bx1 = 0, by1 = 0;
        for (int y = 0; y < c->h; y++)
            for (int x = 0; x < c->w; x++) {
                size_t i = (size_t)y * c->w + x;
                if (c->eye[e][i] < 128) continue;
                double L = c->lab[i * 3];
                s1 += L, s2 += L * L, nn++;
                if (x < bx0) bx0 = x;
                if (x > bx1) bx1 = x;
                if (y < by0) by0 = y;
                if (y > by1) by1 = y;
            }
        if (nn < 6) continue;
        seen++;
        double mean = s1 / nn, sd = sqrt(fmax(0, s2 / nn - mean * mean));
        /* Glare: blown pixels over the eye and the glasses' rim area around it (the eye box
         * grown by 40% of the eye's width); a catchlight is a few pixels, lens glare a sheet. */
        int gw = (int)((bx1 - bx0) * 0.4) + 1;
        double glare = 0, gn = 0;
        for (int y = by0 - gw / 2; y <= by1 + gw / 2; y++)
            for (int x = bx0 - gw; x <= bx1 + gw; x++) {
                if (x < 0 || y < 0 || x >= c->w || y >= c->h) continue;
                const uint8_t *p = c->rgb + ((size_t)y * c->w + x) * 3;
                glare += p[0] >= 250 && p[1] >= 250 && p[2] >= 250;
                gn++;
            }
        glare = gn > 0 ? glare / gn : 0;
        glare_max = fmax(glare_max, glare);
        /* The band under the eye (lower lid and upper cheek, half an eye width deep): skin
         * on a bare face, lens on tinted glasses. */
        double band = 0, bn = 0;
        for (int y = by1 + 1; y <= by1 + (bx1 - bx0) / 2 && y < c->h; y++)
            for (int x = bx0; x <= bx1; x++) band += c->lab[((size_t)y * c->w + x) * 3], bn++;
        band = bn > 0 ? band / bn : skin;
        /* Tinted lenses turn the eye into a dark, flat patch (little of the sclera / iris /
         * lash contrast of a bare eye: L* spread 10-25 on the development photos, squints
         * 3-6) and darken the skin under it too: a squint leaves that band skin-bright. */
        double dark = skin - band;
        dark_min = fmin(dark_min, dark);
        sd_max = fmax(sd_max, sd);
        if (dark > 20 && sd < 8) hidden++;
        worst = fmin(worst, q_down(glare, 0.06, 0.25));
    }
    q_raw(comp, "under_eye_darker", seen ? dark_min : 0);
    q_raw(comp, "eye_lstar_sd", sd_max);
    q_raw(comp, "glare", glare_max);
    if (seen && hidden == seen)
        q_grade(comp, 20,
                "Your eyes cannot be seen clearly (hair, tinted glasses or deep shadow). Keep "
                "hair off your eyes, take off sunglasses and light your face from the front.");
    else
        q_grade(comp, worst,
                "Light reflects off your glasses over your eyes. Tilt the glasses down slightly, "
                "or move the light (or yourself) so it comes from higher or more to the side.");
}

ts_status q_grade_pixels(q_input *in, ts_check_report *r) {
    crop c;
    ts_status s = crop_make(in, &c);
    if (!s) {
        grade_sharpness(&c, r);
        s = grade_noise(in, &c, r);
    }
    if (!s) {
        grade_exposure(&c, r);
        grade_evenness_colour(in, &c, r);
        grade_compression(in, r);
        grade_eyes_hidden(in, &c, r);
    }
    crop_free(&c);
    return s;
}
