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

/* The photo decoded at k of its size (libvips' thumbnail: shrink-on-load where the format has
 * it), turned as the photo is; NULL when it cannot be made (the caller keeps the analysis
 * copy). */
static VipsImage *sharper_copy(q_input *in, double k) {
    int tw = (int)lround(in->W * k), th = (int)lround(in->H * k);
    VipsImage *dec = NULL, *t = NULL;
    if (tw < 1 || th < 1 ||
        vips_thumbnail(in->photo->path, &dec, tw, "height", th, "size", VIPS_SIZE_FORCE, NULL) ||
        !(t = ts_photo_decoded(in->photo, dec))) {
        if (dec) g_object_unref(dec);
        vips_error_clear();
        return NULL;
    }
    g_object_unref(dec);
    if (t->Bands < 3 || t->BandFmt != VIPS_FORMAT_UCHAR) {
        g_object_unref(t);
        return NULL;
    }
    return t;
}

static ts_status crop_make(q_input *in, crop *c) {
    memset(c, 0, sizeof *c);
    double b[4];
    mesh_bounds(in->a, 0.12, b);
    /* The face is measured from the analysis copy; a face that copy holds at fewer than
     * CANON_IED pixels between the eyes, where the photo has more, from a decode of its own
     * with CANON_IED (as the mesh samples a small face, face/mesh.c): in a panorama 6000 px
     * wide the copy is shrunk 8 times, and a face 84 px between the eyes there is 10 px
     * across, where what is left of the skin's texture, multiplied back to the photo's scale,
     * read as heavy grain ("not usable: grainy" for grace_hopper's clean face). */
    VipsImage *src = in->an, *sharp = NULL;
    double as = in->an_scale, ied = in->a->inter_eye_px;
    if (ied * as < CANON_IED && as < 1) {
        double k = fmin(1.0, CANON_IED / fmax(ied, 1));
        if (k > 1.5 * as && (sharp = sharper_copy(in, k)))
            src = sharp, as = (double)sharp->Xsize / in->W;
    }
    int AW = src->Xsize, AH = src->Ysize;
    int x0 = (int)fmax(0, floor(b[0] * as)), y0 = (int)fmax(0, floor(b[1] * as));
    int x1 = (int)fmin(AW, ceil(b[2] * as)), y1 = (int)fmin(AH, ceil(b[3] * as));
    if (x1 - x0 < 8 || y1 - y0 < 8) {
        x0 = 0, y0 = 0, x1 = AW, y1 = AH;
    }
    double ied_an = ied * as;
    double rs = ied_an > CANON_IED ? CANON_IED / ied_an : 1.0;
    c->rgb = extract(src, x0, y0, x1 - x0, y1 - y0, rs, &c->w, &c->h);
    if (sharp) g_object_unref(sharp);
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
 * how much of the image's gradient survives a (2K+1)-tap box blur along it. 0 = sharp (blurring
 * removes much), 1 = already blurred (blurring changes nothing). Contrast-independent, and the
 * four directions tell motion blur (one direction blurred) from defocus (all). */
static double reblur(const crop *c, int dx, int dy, int K) {
    double sum_d = 0, sum_v = 0;
    int m = 6;
    for (int y = m; y < c->h - m; y++)
        for (int x = m; x < c->w - m; x++) {
            size_t i = (size_t)y * c->w + x;
            if (!c->face[i]) continue;
            const float *g = c->y;
            double di = fabs(g[i] - g[i - dy * c->w - dx]);
            double b0 = 0, b1 = 0;
            for (int k = -K; k <= K; k++) {
                b0 += g[(size_t)(y + k * dy) * c->w + x + k * dx];
                b1 += g[(size_t)(y + (k - 1) * dy) * c->w + x + (k - 1) * dx];
            }
            double db = fabs(b0 - b1) / (2 * K + 1);
            sum_d += di;
            sum_v += fmax(0, di - db);
        }
    return sum_d > 0 ? 1 - sum_v / sum_d : 1;
}

/* The luma and face mask of c resampled by rs (< 1) into o (o->y and o->face owned by o). */
static bool crop_shrink(const crop *c, double rs, crop *o) {
    memset(o, 0, sizeof *o);
    VipsImage *y = vips_image_new_from_memory(c->y, (size_t)c->w * c->h * sizeof(float), c->w, c->h,
                                              1, VIPS_FORMAT_FLOAT);
    VipsImage *m =
        vips_image_new_from_memory(c->face, (size_t)c->w * c->h, c->w, c->h, 1, VIPS_FORMAT_UCHAR);
    VipsImage *ys = NULL, *ms = NULL;
    bool ok = y && m && vips_resize(y, &ys, rs, NULL) == 0 &&
              vips_resize(m, &ms, rs, "kernel", VIPS_KERNEL_NEAREST, NULL) == 0 &&
              ys->Xsize == ms->Xsize && ys->Ysize == ms->Ysize;
    size_t len;
    if (ok) o->y = vips_image_write_to_memory(ys, &len);
    if (ok && o->y) o->face = vips_image_write_to_memory(ms, &len);
    if (ok) o->w = ys->Xsize, o->h = ys->Ysize;
    VipsImage *all[] = {y, m, ys, ms};
    for (int i = 0; i < 4; i++)
        if (all[i]) g_object_unref(all[i]);
    if (!o->y || !o->face) {
        g_free(o->y), g_free(o->face);
        vips_error_clear();
        return false;
    }
    o->ied = c->ied * o->w / c->w;
    return true;
}

static void grade_sharpness(q_input *in, const crop *c0, ts_check_report *r) {
    ts_check_component *comp = q_add(r, "sharpness", "Sharpness");
    /* Judged at the scale the headshot shows the face: the inter-eye distance the chosen
     * output needs, when the crop has more (as noise is). A soft frame that the headshot
     * shrinks looks sharp in it; the same blur on a face the headshot shows 1:1 does not.
     * Blur is a length, so a measure at a fixed scale relative to the face is what compares
     * photos of different sizes. */
    double needed = in->opt->output_px * in->opt->face_fraction / 2.2;
    crop small;
    const crop *c = c0;
    if (needed < 0.95 * c0->ied && crop_shrink(c0, needed / c0->ied, &small)) c = &small;
    static const int dirs[4][2] = {{1, 0}, {0, 1}, {1, 1}, {1, -1}};
    double b[4], bmin = 1, bmax = 0, bmean = 0, fine = 0;
    for (int k = 0; k < 4; k++) {
        b[k] = reblur(c, dirs[k][0], dirs[k][1], 4);
        fine = fmax(fine, reblur(c, dirs[k][0], dirs[k][1], 1));
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
    q_raw(comp, "fine", fine);
    q_raw(comp, "laplacian_var", lapvar);
    q_raw(comp, "measured_at_ied", c->ied);
    /* Two scales of the re-blur measure. The 9-tap one sees coarse blur (defocus of several
     * pixels, motion): at headshot scale sharp faces measure 0.32-0.55, the softest webcam
     * frames 0.60, sigma 4 px at 1 MP 0.72-0.87, 15-px motion 0.74-0.86. It saturates on fine
     * blur: sigma 2 px at 1 MP leaves the sharpest face (grace_hopper, 0.32) at 0.51, inside
     * the range of sharp faces. The 3-tap one (`fine`) sees the finest detail, what a 1-px
     * blur removes: the development originals measure 0.59-0.78, the three judged soft by eye
     * (smeared lashes and hair at 1:1) 0.79-0.81, sigma 2 px at 1 MP 0.87-0.93, sigma 4 px
     * 0.94-0.95. Good: fine up to 0.79 and coarse up to 0.62; not usable from 0.93 and 0.75.
     * Both are ratios of gradients, so the face's contrast and texture matter little. */
    double s = fmin(q_down(fine, 0.79, 0.93), q_down(bmax, 0.62, 0.75));
    bool motion = aniso > 0.17 && bmin < 0.6;
    if (motion)
        q_grade(comp, s,
                "The photo is smeared by movement (motion blur). Hold the camera steady with "
                "both hands or rest it on something, use more light, and stay still.");
    else
        q_grade(comp, s,
                "The face is out of focus. Tap your face on the screen to focus before you "
                "shoot, and keep at least the camera's minimum distance.");
    if (c == &small) g_free(small.y), g_free(small.face);
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

/* The colour of the scene's neutrals: the least chromatic tenth of the photo's pixels (the
 * analysis copy sampled about 128 px across), leaving out the near-black (L* < 12) and the
 * clipped (> 97), whose hue is noise. Walls, shirts, paper, grey hair and the whites of the eyes
 * are grey under balanced light; a colour cast moves them all (the grey-world idea restricted
 * to what is nearly grey, after Gasparini and Schettini, "Color balancing of digital photos
 * using simple image statistics", Pattern Recognition 2004). false when it cannot be measured. */
static bool neutral_colour(q_input *in, double ab[2]) {
    ab[0] = ab[1] = 0;
    /* Sampled on a grid of about 128 px across (each sample the mean of up to 4 x 4 pixels) rather
     * than resampled: the statistic needs no filtering, and a resize of the whole analysis copy
     * costs ~10 ms on a 12-MP photo. */
    VipsImage *an = in->an;
    int AW = an->Xsize, AH = an->Ysize, bands = an->Bands;
    if (bands < 3 || AW < 2 || AH < 2) return false;
    int step = (int)fmax(1, ceil(fmax(AW, AH) / 128.0));
    int blk = step < 4 ? step : 4;
    int nx = (AW - blk) / step + 1, ny = (AH - blk) / step + 1;
    size_t cap = (size_t)nx * ny + 1;
    float *ch = malloc(sizeof(float) * 4 * cap);
    if (!ch) return false;
    float *ca = ch + cap, *cb = ch + 2 * cap, *sel = ch + 3 * cap;
    const uint8_t *px = (const uint8_t *)VIPS_IMAGE_ADDR(an, 0, 0);
    size_t stride = VIPS_IMAGE_SIZEOF_LINE(an), m = 0;
    for (int gy = 0; gy < ny; gy++)
        for (int gx = 0; gx < nx; gx++) {
            const uint8_t *p = px + (size_t)gy * step * stride + (size_t)gx * step * bands;
            unsigned acc[3] = {0, 0, 0};
            for (int dy = 0; dy < blk; dy++)
                for (int dx = 0; dx < blk; dx++)
                    for (int k = 0; k < 3; k++) acc[k] += p[(size_t)dy * stride + dx * bands + k];
            uint8_t rgb[3];
            for (int k = 0; k < 3; k++)
                rgb[k] = (uint8_t)((acc[k] + blk * blk / 2) / (unsigned)(blk * blk));
            float lab[3];
            q_lab(rgb, lab);
            if (lab[0] < 12 || lab[0] > 97) continue;
            ch[m] = sel[m] = hypotf(lab[1], lab[2]), ca[m] = lab[1], cb[m] = lab[2];
            m++;
        }
    size_t k = m / 10;
    double sa = 0, sb = 0;
    int taken = 0;
    if (k >= 20) {
        /* The tenth of lowest chroma: those under the k-th smallest, then ties up to k. */
        float lim = select_k(sel, m, k - 1);
        for (size_t i = 0; i < m && taken < (int)k; i++)
            if (ch[i] < lim) sa += ca[i], sb += cb[i], taken++;
        for (size_t i = 0; i < m && taken < (int)k; i++)
            if (ch[i] == lim) sa += ca[i], sb += cb[i], taken++;
    }
    free(ch);
    if (taken < 20) return false;
    ab[0] = sa / taken, ab[1] = sb / taken;
    return true;
}

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
    /* Lighting ratio, measured as a photographer meters it: mean linear-light luminance of the
     * skin on each side of the face's midline (nose bridge 168 to chin 152), over the outer
     * part of each side (beyond 40% of the half face width: the cheeks and temples, where the
     * key and the shadow side are metered; the nose ridge in between is lit from both). In
     * stops, log2 of the brighter side over the darker. Also over the whole halves. */
    double ylin[2][2] = {{0}}, ycnt[2][2] = {{0}};
    {
        const float(*p)[3] = c->mesh.pts;
        double mx = p[152][0] - p[168][0], my = p[152][1] - p[168][1];
        double len = hypot(mx, my), half = in->face_w * c->scale / 2;
        for (int y = 0; y < c->h && len >= 1; y++)
            for (int x = 0; x < c->w; x++) {
                size_t i = (size_t)y * c->w + x;
                if (!c->skin[i]) continue;
                double cross = ((x + 0.5 - p[168][0]) * my - (y + 0.5 - p[168][1]) * mx) / len;
                int side = cross > 0 ? 0 : 1;
                double Y = q_luminance(c->rgb + i * 3);
                ylin[side][0] += Y, ycnt[side][0]++;
                if (fabs(cross) > 0.4 * half) ylin[side][1] += Y, ycnt[side][1]++;
            }
    }
    double ev_half = 0, ev_outer = 0;
    if (ycnt[0][0] > 0 && ycnt[1][0] > 0 && ylin[0][0] > 0 && ylin[1][0] > 0)
        ev_half = log2((ylin[0][0] / ycnt[0][0]) / (ylin[1][0] / ycnt[1][0]));
    if (ycnt[0][1] > 0 && ycnt[1][1] > 0 && ylin[0][1] > 0 && ylin[1][1] > 0)
        ev_outer = log2((ylin[0][1] / ycnt[0][1]) / (ylin[1][1] / ycnt[1][1]));
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
    q_raw(ev, "stops", fabs(ev_outer));
    q_raw(ev, "stops_halves", fabs(ev_half));
    q_raw(ev, "delta_lstar", fabs(dl));
    q_raw(ev, "histogram_intersection", inter);
    /* OFIQ's IlluminationUniformity compares the two cheek histograms (intersection, reported); we
     * grade the lighting ratio in stops, which is how photographers set and judge side light: 2:1
     * (1 stop) is the flat, even light of corporate and high-key headshots, 3:1 (1.6 stops) the
     * classic portrait ratio, 4:1 and more dramatic, low-key light (the portrait photographers'
     * lighting-ratio convention). A headshot for professional use wants the even end: good to 0.85
     * stops (1.8:1; the development originals reach 0.77 with the head turned toward a window), not
     * usable from 2.5 stops (5.7:1, a cheek in shadow the light stage cannot lift without noise).
     * The image's left side is the subject's right. */
    bool right_dark = ev_outer < 0;
    q_grade(ev, q_down(fabs(ev_outer), 0.85, 2.5),
            "Your %s side is much darker than the other (side light, about %.1f:1). Turn to face "
            "the light squarely, or put something white (a wall, a sheet) on your %s side to "
            "bounce light back.",
            right_dark ? "right" : "left", pow(2, fabs(ev_outer)), right_dark ? "right" : "left");

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
    double nab[2];
    bool have_neutral = neutral_colour(in, nab);
    q_raw(cc, "neutral_a", nab[0]);
    q_raw(cc, "neutral_b", nab[1]);
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
        /* The skin alone cannot tell a warm cast from warm skin: R x1.3, B x0.7 puts fair and
         * olive cheeks at a* 8-15, b* 26-33, colours real skin has. The neutrals of the scene
         * can: a white-balance error moves them off grey, mostly along the blue-amber axis
         * (the daylight and Planckian loci run along CIELAB b*; a* is also pulled by skin and
         * wood among the least chromatic pixels, so it is reported, not graded). A Delta E*ab
         * of 2.3 is a just noticeable difference (Mahy et al., Color Res Appl 1994, as given
         * in Sharma, "Digital Color Imaging Handbook", 2003): good while the neutrals stay
         * within 3.5 (1.5 JND) of grey in b* (the development originals measure -1.1..1.9, the
         * tungsten-lit party photo 5.3), not usable from 15 (a tungsten-lit scene left at daylight
         * balance; the warm-cast copies measure 4.9-11.5). */
        double sn = have_neutral ? q_down(fabs(nab[1]), 3.5, 15) : 100;
        double ss = q_down(dist, 3, 15);
        if (sn < ss)
            q_grade(cc, sn,
                    "The photo has a %s cast (greys and whites look %s). Shoot by a window in "
                    "daylight with other lights off, and leave white balance on auto.",
                    nab[1] > 0 ? "warm, yellow-orange" : "cold, blue",
                    nab[1] > 0 ? "yellowish" : "bluish");
        else
            q_grade(cc, ss,
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
    double blk = 1, step = 0, activity = 0;
    if (grid) {
        double b[4];
        mesh_bounds(in->a, 0.05, b);
        int AW = in->an->Xsize, AH = in->an->Ysize;
        int x0 = (int)fmax(0, b[0] * as), y0 = (int)fmax(0, b[1] * as);
        int x1 = (int)fmin(AW, b[2] * as), y1 = (int)fmin(AH, b[3] * as);
        const uint8_t *px = (const uint8_t *)VIPS_IMAGE_ADDR(in->an, 0, 0);
        size_t stride = VIPS_IMAGE_SIZEOF_LINE(in->an);
        int bands = in->an->Bands;
        double col[8] = {0}, row[8] = {0}, ncol[8] = {0}, nrow[8] = {0};
        for (int y = y0; y < y1 - 1; y++)
            for (int x = x0; x < x1 - 1; x++) {
                const uint8_t *p = px + (size_t)y * stride + (size_t)x * bands;
                const uint8_t *pr = p + bands, *pd = p + stride;
                double v = 0.299 * p[0] + 0.587 * p[1 % bands] + 0.114 * p[2 % bands];
                double vr = 0.299 * pr[0] + 0.587 * pr[1 % bands] + 0.114 * pr[2 % bands];
                double vd = 0.299 * pd[0] + 0.587 * pd[1 % bands] + 0.114 * pd[2 % bands];
                col[(x + 1) % grid] += fabs(vr - v), ncol[(x + 1) % grid]++;
                row[(y + 1) % grid] += fabs(vd - v), nrow[(y + 1) % grid]++;
            }
        double ratio[2];
        double *acc[2] = {col, row}, *cnt[2] = {ncol, nrow};
        for (int d = 0; d < 2; d++) {
            int best = 0;
            double tot = 0;
            for (int k = 0; k < grid; k++) {
                tot += acc[d][k];
                if (acc[d][k] > acc[d][best]) best = k;
            }
            double others = (tot - acc[d][best]) / (grid - 1);
            ratio[d] = others > 0 ? acc[d][best] / others : 1;
            double nb = cnt[d][best], no = 0;
            for (int k = 0; k < grid; k++) no += k == best ? 0 : cnt[d][k];
            if (nb > 0 && no > 0) {
                double mb = acc[d][best] / nb, mo = (tot - acc[d][best]) / no;
                step += (mb - mo) / 2, activity += mo / 2;
            }
        }
        blk = (ratio[0] + ratio[1]) / 2;
    }
    q_raw(comp, "step_levels", step);
    q_raw(comp, "blockiness", blk);
    q_raw(comp, "activity", activity);
    q_raw(comp, "grid_px", grid);
    /* Graded on the step: how much larger, in 8-bit luma levels, the jump across a block
     * boundary is than the jumps inside blocks (Wang, Sheikh and Bovik's B feature less their
     * activity A). The ratio of the two (blockiness, reported) misreads soft, smooth faces:
     * with little detail inside the blocks any faint grid makes a large ratio (the soft webcam
     * and phone frames of the development set reach 1.75-1.94 with steps of 1.3-1.5 levels,
     * no blocks to be seen). A step of a level or two is under the ~1% contrast at which an
     * edge becomes visible; quality 10 leaves 4-9 levels, blocks plain at any size. The
     * development originals measure 0.7-1.8, their quality-10 copies 4.2-8.7: good to 2.5
     * levels, not usable from 4. On a small, detailed face (few blocks, strong edges) the
     * strongest of the 8 phases can carry a large step by chance, which the ratio does not
     * mistake for a grid (clean 1.00-1.15; quality 10 2.25-5.7): a photo is flagged only when
     * both say so (the better of the two scores; ratio good to 1.5, not usable from 2.2). */
    q_grade(comp, fmax(q_down(step, 2.5, 4.0), q_down(blk, 1.5, 2.2)),
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
        grade_sharpness(in, &c, r);
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
