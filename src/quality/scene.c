/* Graders background and wardrobe, and the backdrop colours suggested for the person. They need
 * to know where the person is: MediaPipe's selfie segmentation, run once on the whole analysis
 * copy at the network's 256 x 256 (the full matte is far more than these measures need). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quality/quality.h"

/* Studio backdrop colours photographers keep (paper rolls and painted canvases). */
static const struct {
    const char *name;
    uint32_t rgb;
} palette[] = {
    {"white", 0xf2f2f0}, {"light grey", 0xc9cacc}, {"mid grey", 0x8a8d91},   {"charcoal", 0x3d4045},
    {"black", 0x161616}, {"navy", 0x1f2a44},       {"steel blue", 0x4a6a8a}, {"teal", 0x2f6b6b},
    {"sage", 0x8c9a7c},  {"warm beige", 0xd6c6ae}, {"burgundy", 0x5b1f2b},
};

typedef struct grid {
    int w, h;
    float *prob;   /* person probability */
    float *lab;    /* CIELAB of the stretched analysis copy */
    double sx, sy; /* grid pixels per photo pixel */
} grid;

static ts_status segment(q_input *in, grid *g) {
    ts_nn_runtime *rt = ts_ctx_runtime(in->ctx, TS_MODEL_SELFIE_SEGMENTATION);
    if (!rt) return TS_ERR_MODEL;
    ts_tview ti = ts_nn_input(rt, 0), to = ts_nn_output(rt, 0);
    if (!ti.data || !to.data || ti.rank != 4 || ti.dims[3] != 3)
        return ts_fail(in->ctx, TS_ERR_MODEL, "check: unexpected segmentation model shape");
    int nh = ti.dims[1], nw = ti.dims[2];
    VipsImage *small = NULL;
    /* Stretched to the network's input, as MediaPipe feeds it. */
    if (vips_resize(in->an, &small, (double)nw / in->an->Xsize, "vscale",
                    (double)nh / in->an->Ysize, NULL) != 0) {
        vips_error_clear();
        return ts_fail(in->ctx, TS_ERR_INTERNAL, "check: resize for segmentation failed");
    }
    size_t len;
    uint8_t *px = vips_image_write_to_memory(small, &len);
    int ok = px && small->Xsize == nw && small->Ysize == nh && small->Bands >= 3;
    int bands = small->Bands;
    g_object_unref(small);
    if (!ok) {
        g_free(px);
        vips_error_clear();
        return ts_fail(in->ctx, TS_ERR_INTERNAL, "check: resize for segmentation failed");
    }
    g->w = nw, g->h = nh;
    g->sx = (double)nw / in->W, g->sy = (double)nh / in->H;
    g->prob = malloc((size_t)nw * nh * sizeof *g->prob);
    g->lab = malloc((size_t)nw * nh * 3 * sizeof *g->lab);
    if (!g->prob || !g->lab) {
        g_free(px);
        return ts_fail(in->ctx, TS_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < (size_t)nw * nh; i++) {
        const uint8_t *p = px + i * bands;
        for (int k = 0; k < 3; k++) ti.data[i * 3 + k] = p[k] / 255.f;
        q_lab(p, g->lab + i * 3);
    }
    g_free(px);
    char err[300];
    if (ts_nn_run(rt, err, sizeof err) != 0)
        return ts_fail(in->ctx, TS_ERR_INTERNAL, "check: segmentation: %s", err);
    for (size_t i = 0; i < (size_t)nw * nh; i++) {
        float v = to.data[i];
        g->prob[i] = isfinite(v) ? fminf(1, fmaxf(0, v)) : 0;
    }
    return TS_OK;
}

/* Background: clearly not the person, and not within 3 grid pixels of them (the halo where
 * hair meets the backdrop). */
static bool is_background(const grid *g, int x, int y) {
    for (int dy = -3; dy <= 3; dy++)
        for (int dx = -3; dx <= 3; dx++) {
            int xx = x + dx, yy = y + dy;
            if (xx < 0 || yy < 0 || xx >= g->w || yy >= g->h) continue;
            if (g->prob[(size_t)yy * g->w + xx] > 0.3f) return false;
        }
    return true;
}

static void grade_background(const grid *g, ts_check_report *r, bool *have_bg, float bg_lab[3]) {
    ts_check_component *c = q_add(r, "background", "Background");
    double n = 0, edges = 0, s[3] = {0}, s2[3] = {0};
    for (int y = 1; y < g->h - 1; y++)
        for (int x = 1; x < g->w - 1; x++) {
            if (!is_background(g, x, y)) continue;
            size_t i = (size_t)y * g->w + x;
            const float *l = g->lab + i * 3;
            float gx = g->lab[(i + 1) * 3] - g->lab[(i - 1) * 3];
            float gy = g->lab[(i + g->w) * 3] - g->lab[(i - g->w) * 3];
            /* An edge: L* changes by more than 8 per grid pixel (the grid is ~1/5 of a 1-MP
             * photo; a plain wall's light falloff stays far under that). */
            edges += hypotf(gx, gy) / 2 > 8;
            for (int k = 0; k < 3; k++) s[k] += l[k], s2[k] += (double)l[k] * l[k];
            n++;
        }
    double frac = n / ((double)g->w * g->h);
    q_raw(c, "visible", frac);
    if (frac < 0.03) {
        /* The person fills the frame: nothing to judge, and the framing will add background. */
        *have_bg = false;
        q_grade(c, 100, NULL);
        return;
    }
    double var = 0;
    for (int k = 0; k < 3; k++) {
        bg_lab[k] = (float)(s[k] / n);
        var += fmax(0, s2[k] / n - (s[k] / n) * (s[k] / n));
    }
    *have_bg = true;
    edges /= n;
    double sd = sqrt(var);
    q_raw(c, "edge_density", edges);
    q_raw(c, "color_sd", sd);
    q_raw(c, "lstar", bg_lab[0]);
    q_raw(c, "a", bg_lab[1]);
    q_raw(c, "b", bg_lab[2]);
    /* OFIQ's BackgroundUniformity grades the mean gradient outside the face; we take the share
     * of edge pixels (clutter, furniture, text) and the colour spread (CIELAB standard
     * deviation). Plain: edges under 5% and spread under 12 (a wall with a light falloff);
     * busy from 20% or 30. Never "not usable": trueshot can replace the background. */
    double sc = fmin(q_down(edges, 0.05, 0.20), q_down(sd, 12, 30));
    q_grade(c, fmax(sc, Q_UNUSABLE),
            "The background is busy (%.0f%% edges). Keep it if you like it, let trueshot "
            "replace it, or stand in front of a plain wall 1-2 m behind you.",
            edges * 100);
}

/* Mean CIELAB of the person pixels (prob > 0.5) inside a box of photo pixels. */
static double person_mean(const grid *g, double x0, double y0, double x1, double y1, float lab[3]) {
    int gx0 = (int)fmax(0, x0 * g->sx), gx1 = (int)fmin(g->w, x1 * g->sx);
    int gy0 = (int)fmax(0, y0 * g->sy), gy1 = (int)fmin(g->h, y1 * g->sy);
    double s[3] = {0}, n = 0;
    for (int y = gy0; y < gy1; y++)
        for (int x = gx0; x < gx1; x++) {
            size_t i = (size_t)y * g->w + x;
            if (g->prob[i] <= 0.5f) continue;
            for (int k = 0; k < 3; k++) s[k] += g->lab[i * 3 + k];
            n++;
        }
    for (int k = 0; k < 3 && n > 0; k++) lab[k] = (float)(s[k] / n);
    return n;
}

/* Pattern and logo measures on the torso, at the face's canonical scale (the inter-eye
 * distance at most 128 px) so stripes are judged at the size a headshot shows them. */
static ts_status torso_texture(q_input *in, const grid *g, double box[4], double *hf,
                               double *logo_blocks, double *blocks) {
    *hf = 0, *logo_blocks = 0, *blocks = 0;
    double as = in->an_scale, ied = in->a->inter_eye_px * as;
    double rs = ied > 128 ? 128 / ied : 1;
    int AW = in->an->Xsize, AH = in->an->Ysize;
    int x0 = (int)fmax(0, box[0] * as), y0 = (int)fmax(0, box[1] * as);
    int x1 = (int)fmin(AW, box[2] * as), y1 = (int)fmin(AH, box[3] * as);
    if (x1 - x0 < 16 || y1 - y0 < 16) return TS_OK;
    VipsImage *area = NULL, *small = NULL, *grey = NULL;
    int ok = vips_extract_area(in->an, &area, x0, y0, x1 - x0, y1 - y0, NULL) == 0 &&
             (rs < 0.999 ? vips_resize(area, &small, rs, NULL) == 0
                         : (small = g_object_ref(area)) != NULL) &&
             vips_colourspace(small, &grey, VIPS_INTERPRETATION_B_W, NULL) == 0;
    size_t len = 0;
    uint8_t *px = ok ? vips_image_write_to_memory(grey, &len) : NULL;
    int w = ok ? grey->Xsize : 0, h = ok ? grey->Ysize : 0, bands = ok ? grey->Bands : 1;
    VipsImage *all[] = {area, small, grey};
    for (int i = 0; i < 3; i++)
        if (all[i]) g_object_unref(all[i]);
    if (!px) {
        vips_error_clear();
        return ts_fail(in->ctx, TS_ERR_INTERNAL, "check: cannot crop the torso");
    }
    /* Torso pixels: person probability, looked up in the grid. */
    double tx = (double)(x1 - x0) / w / as, ty = (double)(y1 - y0) / h / as;
    int bs = (int)fmax(4, ied * rs / 2); /* logo blocks: half an inter-eye distance */
    int nbx = w / bs, nby = h / bs;
    double *bd = calloc((size_t)(nbx * nby + 1), sizeof *bd),
           *bn = calloc((size_t)(nbx * nby + 1), sizeof *bn);
    if (!bd || !bn) {
        g_free(px), free(bd), free(bn);
        return ts_fail(in->ctx, TS_ERR_NOMEM, "out of memory");
    }
    /* |Laplacian| of 8-bit pixels is an integer 0..1020: a histogram gives the trimmed mean
     * without sorting. */
    unsigned *lh = calloc(1021, sizeof *lh);
    if (!lh) {
        g_free(px), free(bd), free(bn);
        return ts_fail(in->ctx, TS_ERR_NOMEM, "out of memory");
    }
    double hn = 0;
    for (int y = 1; y < h - 1; y++)
        for (int x = 1; x < w - 1; x++) {
            int gx = (int)((x0 / as + x * tx) * g->sx), gy = (int)((y0 / as + y * ty) * g->sy);
            if (gx < 0 || gy < 0 || gx >= g->w || gy >= g->h) continue;
            if (g->prob[(size_t)gy * g->w + gx] < 0.8f) continue;
            const uint8_t *p = px + ((size_t)y * w + x) * bands;
            int s = w * bands;
            double lap = 4.0 * p[0] - p[-bands] - p[bands] - p[-s] - p[s];
            double grad = hypot(p[bands] - p[-bands], p[s] - p[-s]) / 2;
            int al = (int)fabs(lap);
            lh[al > 1020 ? 1020 : al]++, hn++;
            int b = (y / bs) * nbx + x / bs;
            if (x / bs < nbx && y / bs < nby) bd[b] += grad > 20, bn[b]++;
        }
    g_free(px);
    /* Mean of the weakest 90%: a pattern raises the response everywhere on the cloth, while
     * a few strong edges (a collar, a zip, a neck ring, medals) sit in the top tenth. */
    double keep = floor(hn * 0.9), taken = 0, tsum = 0;
    for (int v = 0; v <= 1020 && taken < keep; v++) {
        double k = fmin(lh[v], keep - taken);
        tsum += k * v, taken += k;
    }
    free(lh);
    *hf = taken > 0 ? tsum / taken : 0;
    /* Text and logos: blocks crowded with strong edges amid plainer cloth. */
    int nb = 0;
    double dens[4096];
    for (int b = 0; b < nbx * nby && nb < 4096; b++)
        if (bn[b] >= bs * bs * 0.6) dens[nb++] = bd[b] / bn[b];
    if (nb >= 6) {
        double sorted[4096];
        memcpy(sorted, dens, sizeof(double) * (size_t)nb);
        for (int i = 1; i < nb; i++)
            for (int j = i; j > 0 && sorted[j] < sorted[j - 1]; j--) {
                double t = sorted[j];
                sorted[j] = sorted[j - 1], sorted[j - 1] = t;
            }
        double med = sorted[nb / 2];
        for (int i = 0; i < nb; i++) *logo_blocks += dens[i] > fmax(0.15, 3 * med);
        *blocks = nb;
    }
    free(bd), free(bn);
    return TS_OK;
}

static void suggest_backdrops(q_input *in, ts_check_report *r, const float cloth[3],
                              const float hair[3], bool have_hair) {
    int n = (int)(sizeof palette / sizeof palette[0]);
    double merit[32];
    float lab[32][3];
    for (int i = 0; i < n; i++) {
        uint32_t v = palette[i].rgb;
        uint8_t rgb[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
        q_lab(rgb, lab[i]);
        double dc = q_delta_e(lab[i], cloth), dh = have_hair ? q_delta_e(lab[i], hair) : 100;
        double ds = in->have_skin ? q_delta_e(lab[i], in->skin_lab) : 100;
        /* The backdrop must separate from the clothes and the hair (the outline) and from the
         * face; past ~40 Delta E more contrast adds nothing, so the score saturates there. */
        merit[i] = fmin(fmin(dc, 40), fmin(fmin(dh, 40), fmin(ds, 40))) + 0.01 * (dc + dh);
    }
    r->n_backdrops = 0;
    for (int k = 0; k < 3; k++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            bool used = false;
            for (int j = 0; j < r->n_backdrops; j++)
                used |= r->backdrops[j].name == palette[i].name;
            if (!used && (best < 0 || merit[i] > merit[best])) best = i;
        }
        if (best < 0) break;
        ts_backdrop *b = &r->backdrops[r->n_backdrops++];
        b->name = palette[best].name;
        b->rgb = palette[best].rgb;
        b->contrast_clothing = q_delta_e(lab[best], cloth);
        b->contrast_hair = have_hair ? q_delta_e(lab[best], hair) : 0;
    }
}

static ts_status grade_wardrobe(q_input *in, const grid *g, ts_check_report *r, bool have_bg,
                                const float bg_lab[3]) {
    ts_check_component *c = q_add(r, "wardrobe", "Clothing");
    const float(*L)[3] = in->a->landmarks;
    double cx = (L[234][0] + L[454][0]) / 2, fh = in->face_h, fw = fmax(in->face_w, 1);
    double chin = L[152][1];
    /* The clothes the headshot will show: from just under the chin to the bottom of the
     * framing square the headroom grader uses (face width = face_fraction of its side, eyes
     * 40% from the top), across its width. A name badge or a ribbon bar on the chest, below
     * the crop, is not in the headshot and is not judged. */
    double side = fmax(fw, 0.8 * fh) / in->opt->face_fraction;
    double bottom = fmax(in->eye_mid[1] + 0.6 * side, chin + 0.6 * fh);
    double box[4] = {cx - 0.5 * side, chin + 0.3 * fh, cx + 0.5 * side, bottom};
    float cloth[3] = {0}, hair[3] = {0};
    double n = person_mean(g, box[0], box[1], box[2], box[3], cloth);
    /* Hair: the person above the forehead (mesh 10). */
    double nh = person_mean(g, cx - 0.4 * fw, L[10][1] - 0.45 * fh, cx + 0.4 * fw,
                            L[10][1] - 0.08 * fh, hair);
    bool have_hair = nh >= 6;
    q_raw(c, "torso_visible", n * 1.0 / ((double)g->w * g->h));
    if (n < 60) {
        /* Cropped at the chin: nothing of the clothes to judge. */
        q_grade(c, 100, NULL);
        return TS_OK;
    }
    double hf, logos, blocks;
    ts_status s = torso_texture(in, g, box, &hf, &logos, &blocks);
    if (s) return s;
    double de_skin = in->have_skin ? q_delta_e(cloth, in->skin_lab) : 100;
    double de_bg = have_bg ? q_delta_e(cloth, bg_lab) : 100;
    q_raw(c, "pattern", hf);
    q_raw(c, "logo_blocks", logos);
    q_raw(c, "clothing_lstar", cloth[0]);
    q_raw(c, "delta_e_skin", de_skin);
    q_raw(c, "delta_e_background", de_bg);
    q_raw(c, "clothing_rgb", q_lab_to_rgb(cloth));
    suggest_backdrops(in, r, cloth, hair, have_hair);
    /* Busy patterns: fine stripes, checks and herringbone shimmer (moire) once resampled for a
     * screen. Mean |Laplacian| of the cloth at the canonical scale, over its weakest 90% (the
     * strongest tenth is edges: collar, zip, medals): plain cloth with folds measures 1.5-8 on
     * the development photos, the astronaut's spacesuit with its metal neck ring 14 (25 as a
     * plain mean, which read the ring as a pattern); +-25-level stripes of 3-6 px period added
     * to grace_hopper's jacket measure 26-51. */
    double sp = q_down(hf, 16, 32);
    /* Large text or logo: at least two blocks crowded with strong edges while the rest of the
     * cloth is plain (a pattern fills most blocks instead). */
    bool logo = logos >= 2 && logos <= 0.4 * blocks;
    double sl = logo ? 60 : 100;
    /* Colour: clothing within ~12 Delta E of the skin washes the face out; of the background,
     * the body melts into it. */
    double ss = q_up(de_skin, 5, 15), sb = q_up(de_bg, 5, 15);
    double sc = fmin(fmin(sp, sl), fmin(ss, sb));
    const char *first = r->n_backdrops ? r->backdrops[0].name : "a contrasting colour";
    if (sc == sp)
        q_grade(c, fmax(sc, Q_UNUSABLE),
                "Your top has a busy pattern that will shimmer on screens. Wear a plain, solid "
                "colour.");
    else if (sc == sl)
        q_grade(c, fmax(sc, Q_UNUSABLE),
                "Your top has large text or a logo that draws the eye. Wear something plain, or "
                "cover it with a jacket.");
    else if (sc == ss)
        q_grade(c, fmax(sc, Q_UNUSABLE),
                "Your top is close to your skin colour, which washes you out. Wear a colour "
                "clearly darker or richer than your skin (navy, charcoal, deep green, burgundy).");
    else
        q_grade(c, fmax(sc, Q_UNUSABLE),
                "Your top is about the colour of the background, so you blend in. Stand in front "
                "of a contrasting wall, or pick the suggested backdrop (%s).",
                first);
    return TS_OK;
}

ts_status q_grade_scene(q_input *in, ts_check_report *r) {
    grid g = {0};
    ts_status s = segment(in, &g);
    if (!s) {
        bool have_bg = false;
        float bg_lab[3] = {0};
        grade_background(&g, r, &have_bg, bg_lab);
        s = grade_wardrobe(in, &g, r, have_bg, bg_lab);
    }
    free(g.prob);
    free(g.lab);
    return s;
}
