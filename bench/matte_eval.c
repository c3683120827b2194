/* Matte evaluation by composition (issue 4, "Measured honestly"): the blue-backdrop frames
 * franck_*.jpg are keyed (bench/matte_key.c) into a true alpha and foreground, composited over
 * backgrounds, and the real matte (ts_photo_matte, whole photo) is run on each composite.
 *
 *   matte_eval [--out DIR] [--keys-only] PHOTOS_DIR
 *
 * Prints, per background and overall, the Composition-1k errors (SAD, MSE, gradient error) over
 * the whole frame and over the band within 10 px of the true edge, the variation of the
 * estimated alpha across the backgrounds, and the halo figure: the subject on saturated green
 * and red, matted, re-composited over mid grey (ts_matte_save_over_color 0x808080), against the
 * true alpha and foreground over the same grey: mean CIEDE2000 in the 10-pixel band along the
 * true edge; the same over the busy background (baboon), where colour says least. --out DIR keeps
 * the keys (original | key over magenta | alpha) and per-frame pictures to look at. --keys-only
 * writes the keys and stops (no matte needed). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vips/vips.h>

#include "matte_key.h"
#include "trueshot.h"

/* Frames whose key is not good enough to serve as ground truth: {name, reason}. All eleven keys
 * were looked at (--keys-only --out DIR) and pass; see docs/matte-evaluation.md. */
static const char *const excluded[][2] = {
    {NULL, NULL},
};

static const char *const frames[] = {
    "franck_01829.jpg", "franck_02045.jpg", "franck_02159.jpg", "franck_02221.jpg",
    "franck_02683.jpg", "franck_02888.jpg", "franck_03909.jpg", "franck_03979.jpg",
    "franck_04000.jpg", "franck_04035.jpg", "franck_04117.jpg",
};
#define N_FRAMES (int)(sizeof frames / sizeof *frames)

enum { BG_BUSY, BG_WINDOW, BG_HAIR, BG_DARK, BG_OUTDOOR, N_BG };
static const char *const bg_names[N_BG] = {"busy (baboon)", "bright window", "hair brown", "dark",
                                           "outdoor (messi5)"};
/* The halo over saturated flat colours, and over the busy background (the colour solve's hard
 * case: stripes and fur behind hair). */
static const char *const halo_names[3] = {"green", "red", "busy"};
static const uint8_t halo_rgb[2][3] = {{0, 255, 0}, {255, 0, 0}};
#define EDGE_RADIUS 4     /* the contour pixels +-4: a band 10 px wide */
#define UNKNOWN_RADIUS 10 /* "band" columns: within 10 px of the edge, a trimap-like region */

static const char *excluded_reason(const char *name) {
    for (size_t i = 0; i < sizeof excluded / sizeof *excluded; i++)
        if (excluded[i][0] && !strcmp(excluded[i][0], name)) return excluded[i][1];
    return NULL;
}

static void die(const char *what, const char *detail) {
    fprintf(stderr, "matte_eval: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

/* An image file as w*h*3 sRGB bytes; with cw, ch > 0 scaled and centre-cropped to cover that. */
static uint8_t *load_rgb(const char *path, int cw, int ch, int *w, int *h) {
    VipsImage *im = NULL, *t = NULL;
    if (cw > 0) {
        if (vips_thumbnail(path, &im, cw, "height", ch, "crop", VIPS_INTERESTING_CENTRE, "size",
                           VIPS_SIZE_FORCE, NULL))
            return NULL;
    } else if (!(im = vips_image_new_from_file(path, "access", VIPS_ACCESS_SEQUENTIAL, NULL)))
        return NULL;
    if (vips_colourspace(im, &t, VIPS_INTERPRETATION_sRGB, NULL)) goto fail;
    g_object_unref(im), im = t;
    if (im->Bands > 3) {
        if (vips_extract_band(im, &t, 0, "n", 3, NULL)) goto fail;
        g_object_unref(im), im = t;
    }
    if (vips_cast_uchar(im, &t, NULL)) goto fail;
    g_object_unref(im), im = t;
    size_t sz;
    uint8_t *buf = vips_image_write_to_memory(im, &sz);
    *w = im->Xsize, *h = im->Ysize;
    g_object_unref(im);
    return buf;
fail:
    g_object_unref(im);
    return NULL;
}

static int save_rgb(const uint8_t *buf, int w, int h, int bands, const char *path) {
    VipsImage *im =
        vips_image_new_from_memory_copy(buf, (size_t)w * h * bands, w, h, bands, VIPS_FORMAT_UCHAR);
    if (!im) return -1;
    int r = vips_image_write_to_file(im, path, NULL);
    g_object_unref(im);
    return r;
}

static int cmpf(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static uint8_t to_u8(float v) {
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5f);
}

/* I = alpha F + (1 - alpha) B, rounded to bytes. */
static void composite(const float *alpha, const float *fg, const uint8_t *bg, int n, uint8_t *dst) {
    for (int i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            dst[i * 3 + c] = to_u8(alpha[i] * fg[i * 3 + c] + (1 - alpha[i]) * bg[i * 3 + c]);
}

/* Runs the real matte, whole photo, on an image file; alpha in [0,1] into est (w*h). */
static ts_matte *run_matte(ts_ctx *ctx, const char *path, int w, int h, float *est) {
    ts_photo *p;
    ts_matte *m;
    ts_matte_options o;
    ts_matte_options_init(&o);
    o.region = TS_MATTE_FULL_PHOTO;
    if (ts_photo_open(ctx, path, &p)) die(path, ts_ctx_error(ctx));
    ts_status s = ts_photo_matte(ctx, p, &o, &m);
    ts_photo_unref(p);
    if (s) die(path, ts_ctx_error(ctx));
    int rx, ry, rw, rh;
    ts_matte_region(m, &rx, &ry, &rw, &rh);
    if (rx != 0 || ry != 0 || rw != w || rh != h) die(path, "full-photo matte region is not w x h");
    uint16_t *a16 = malloc(sizeof(uint16_t) * (size_t)w * h);
    if (!a16 || ts_matte_alpha16(m, a16)) die(path, ts_ctx_error(ctx));
    for (size_t i = 0; i < (size_t)w * h; i++) est[i] = a16[i] / 65535.f;
    free(a16);
    return m;
}

typedef struct acc {
    double sad, mse, grad, sad_b, mse_b;
    int n;
} acc;

static void acc_add(acc *a, const mk_errors *all, const mk_errors *band) {
    a->sad += all->sad, a->mse += all->mse, a->grad += all->grad;
    a->sad_b += band->sad, a->mse_b += band->mse, a->n++;
}

static void acc_print(const char *name, const acc *a) {
    int n = a->n ? a->n : 1;
    printf("| %-18s | %8.2f | %9.5f | %8.2f | %8.2f | %9.5f |\n", name, a->sad / n, a->mse / n,
           a->grad / n, a->sad_b / n, a->mse_b / n);
}

/* The key to look at: original | subject over magenta | alpha. */
static void save_key_view(const char *dir, const char *name, const uint8_t *rgb, const float *a,
                          const float *fg, int w, int h) {
    uint8_t *v = malloc((size_t)w * 3 * h * 3);
    if (!v) return;
    const uint8_t mag[3] = {255, 0, 255};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            uint8_t *row = v + (size_t)y * w * 9;
            for (int c = 0; c < 3; c++) {
                row[x * 3 + c] = rgb[i * 3 + c];
                row[(w + x) * 3 + c] = to_u8(a[i] * fg[i * 3 + c] + (1 - a[i]) * mag[c]);
                row[(2 * w + x) * 3 + c] = to_u8(a[i] * 255);
            }
        }
    char path[1200];
    snprintf(path, sizeof path, "%s/key_%.*s.png", dir, (int)(strlen(name) - 4), name);
    if (save_rgb(v, 3 * w, h, 3, path)) fprintf(stderr, "matte_eval: cannot write %s\n", path);
    free(v);
}

int main(int argc, char **argv) {
    const char *out = NULL, *photos = NULL;
    int keys_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--keys-only"))
            keys_only = 1;
        else if (argv[i][0] != '-' && !photos)
            photos = argv[i];
        else {
            fprintf(stderr, "usage: matte_eval [--out DIR] [--keys-only] PHOTOS_DIR\n");
            return 2;
        }
    }
    if (!photos) {
        fprintf(stderr, "usage: matte_eval [--out DIR] [--keys-only] PHOTOS_DIR\n");
        return 2;
    }
    ts_ctx *ctx;
    if (ts_ctx_new(NULL, &ctx)) die("context", ts_last_error());
    char tmpdir[] = "/tmp/matte_eval.XXXXXX";
    if (!mkdtemp(tmpdir)) die("mkdtemp", NULL);
    if (out) mkdir(out, 0755);

    acc per_bg[N_BG] = {{0}}, total = {0};
    double var_all = 0, var_band = 0, halo[3] = {0}, halo_p95[3] = {0};
    int n_used = 0;
    printf("frame             keyed: soft px  | per background SAD (whole frame)\n");
    for (int f = 0; f < N_FRAMES; f++) {
        const char *reason = excluded_reason(frames[f]);
        if (reason) {
            printf("%-17s excluded: %s\n", frames[f], reason);
            continue;
        }
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", photos, frames[f]);
        int w, h;
        uint8_t *rgb = load_rgb(path, 0, 0, &w, &h);
        if (!rgb) die(path, vips_error_buffer());
        size_t n = (size_t)w * h;

        /* Seed the keyer at the face. */
        ts_photo *p;
        const ts_face *faces = NULL;
        int nf = 0;
        if (ts_photo_open(ctx, path, &p) || ts_photo_faces(ctx, p, &faces, &nf) || nf < 1)
            die(path, nf < 1 ? "no face to seed the key" : ts_ctx_error(ctx));
        int sx = (int)(faces[0].x + faces[0].w / 2), sy = (int)(faces[0].y + faces[0].h / 2);
        ts_photo_unref(p);

        float *alpha = malloc(sizeof(float) * n), *fg = malloc(sizeof(float) * n * 3);
        uint8_t *band = malloc(n), *unknown = malloc(n), *comp = malloc(n * 3);
        if (!alpha || !fg || !band || !unknown || !comp) die("out of memory", NULL);
        if (mk_key_blue(rgb, w, h, sx, sy, alpha, fg)) die(path, "keying failed");
        long soft = 0;
        for (size_t i = 0; i < n; i++) soft += alpha[i] > 0.02f && alpha[i] < 0.98f;
        if (out) save_key_view(out, frames[f], rgb, alpha, fg, w, h);
        if (keys_only) {
            printf("%-17s keyed: %6ld\n", frames[f], soft);
            g_free(rgb), free(alpha), free(fg), free(band), free(unknown), free(comp);
            continue;
        }
        mk_edge_band(alpha, w, h, EDGE_RADIUS, band);
        mk_edge_band(alpha, w, h, UNKNOWN_RADIUS, unknown);

        /* Backgrounds at the frame's size. */
        uint8_t *bgs[N_BG];
        int bw, bh;
        snprintf(path, sizeof path, "%s/baboon.jpg", photos);
        if (!(bgs[BG_BUSY] = load_rgb(path, w, h, &bw, &bh))) die(path, vips_error_buffer());
        snprintf(path, sizeof path, "%s/messi5.jpg", photos);
        if (!(bgs[BG_OUTDOOR] = load_rgb(path, w, h, &bw, &bh))) die(path, vips_error_buffer());
        for (int b = BG_WINDOW; b <= BG_DARK; b++)
            if (!(bgs[b] = g_malloc(n * 3))) die("out of memory", NULL);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                size_t i = (size_t)y * w + x;
                /* window: near white, a soft diagonal gradient, a touch cool at the top */
                float t = 0.5f * x / w + 0.5f * y / h;
                bgs[BG_WINDOW][i * 3 + 0] = to_u8(255 - 22 * t);
                bgs[BG_WINDOW][i * 3 + 1] = to_u8(255 - 18 * t);
                bgs[BG_WINDOW][i * 3 + 2] = to_u8(250 - 10 * t);
                const uint8_t hair[3] = {92, 64, 46}, dark[3] = {14, 13, 15};
                memcpy(bgs[BG_HAIR] + i * 3, hair, 3);
                memcpy(bgs[BG_DARK] + i * 3, dark, 3);
            }

        float *est[N_BG];
        printf("%-17s keyed: %6ld  |", frames[f], soft);
        for (int b = 0; b < N_BG; b++) {
            composite(alpha, fg, bgs[b], (int)n, comp);
            snprintf(path, sizeof path, "%s/comp.png", tmpdir);
            if (save_rgb(comp, w, h, 3, path)) die(path, vips_error_buffer());
            if (!(est[b] = malloc(sizeof(float) * n))) die("out of memory", NULL);
            ts_matte_free(run_matte(ctx, path, w, h, est[b]));
            mk_errors all, bandm;
            mk_alpha_errors(est[b], alpha, NULL, w, h, &all);
            mk_alpha_errors(est[b], alpha, unknown, w, h, &bandm);
            acc_add(&per_bg[b], &all, &bandm);
            acc_add(&total, &all, &bandm);
            printf(" %7.2f", all.sad);
            if (out && b == BG_BUSY) {
                char vp[1200];
                uint8_t *a8 = malloc(n);
                for (size_t i = 0; a8 && i < n; i++) a8[i] = to_u8(est[b][i] * 255);
                snprintf(vp, sizeof vp, "%s/est_%.*s_busy.png", out, (int)(strlen(frames[f]) - 4),
                         frames[f]);
                if (a8) save_rgb(a8, w, h, 1, vp);
                snprintf(vp, sizeof vp, "%s/comp_%.*s_busy.png", out, (int)(strlen(frames[f]) - 4),
                         frames[f]);
                save_rgb(comp, w, h, 3, vp);
                free(a8);
            }
        }
        printf("\n");

        /* Variation of the estimate across backgrounds: per-pixel standard deviation. */
        double vs = 0, vb = 0;
        long nb = 0;
        for (size_t i = 0; i < n; i++) {
            double m = 0, s2 = 0;
            for (int b = 0; b < N_BG; b++) m += est[b][i];
            m /= N_BG;
            for (int b = 0; b < N_BG; b++) s2 += (est[b][i] - m) * (est[b][i] - m);
            double sd = sqrt(s2 / N_BG);
            vs += sd;
            if (unknown[i]) vb += sd, nb++;
        }
        var_all += vs / n, var_band += nb ? vb / nb : 0;

        /* Halo: on saturated green / red, matted, over mid grey vs the truth over mid grey. */
        for (int k = 0; k < 3; k++) {
            uint8_t *flat = k < 2 ? bgs[BG_HAIR] : bgs[BG_BUSY]; /* (the flats reuse a buffer) */
            if (k < 2)
                for (size_t i = 0; i < n; i++) memcpy(flat + i * 3, halo_rgb[k], 3);
            composite(alpha, fg, flat, (int)n, comp);
            snprintf(path, sizeof path, "%s/comp.png", tmpdir);
            if (save_rgb(comp, w, h, 3, path)) die(path, vips_error_buffer());
            float *tmpa = malloc(sizeof(float) * n);
            ts_matte *m = run_matte(ctx, path, w, h, tmpa);
            free(tmpa);
            char grey_path[1200];
            snprintf(grey_path, sizeof grey_path, "%s/over_grey.png", tmpdir);
            if (ts_matte_save_over_color(ctx, m, 0x808080, grey_path))
                die(grey_path, ts_ctx_error(ctx));
            ts_matte_free(m);
            int gw, gh;
            uint8_t *res = load_rgb(grey_path, 0, 0, &gw, &gh);
            if (!res || gw != w || gh != h) die(grey_path, "cannot read back, or wrong size");
            double sum = 0;
            long cnt = 0;
            float *des = malloc(sizeof(float) * n);
            for (size_t i = 0; i < n; i++) {
                if (!band[i]) continue;
                float ref[3], got[3];
                double l1[3], l2[3];
                for (int c = 0; c < 3; c++) {
                    ref[c] = alpha[i] * fg[i * 3 + c] + (1 - alpha[i]) * 128.f;
                    got[c] = res[i * 3 + c];
                }
                mk_srgb_to_lab(ref, l1);
                mk_srgb_to_lab(got, l2);
                des[cnt++] = (float)mk_ciede2000(l1, l2);
                sum += des[cnt - 1];
            }
            qsort(des, (size_t)cnt, sizeof *des, cmpf);
            halo[k] += cnt ? sum / cnt : 0;
            halo_p95[k] += cnt ? des[(size_t)(0.95 * (cnt - 1))] : 0;
            printf("    halo on %-5s: mean dE00 %.2f, p95 %.2f over %ld band px\n", halo_names[k],
                   cnt ? sum / cnt : 0, cnt ? des[(size_t)(0.95 * (cnt - 1))] : 0, cnt);
            if (out) {
                char vp[1200];
                snprintf(vp, sizeof vp, "%s/halo_%.*s_%s.png", out, (int)(strlen(frames[f]) - 4),
                         frames[f], halo_names[k]);
                save_rgb(res, w, h, 3, vp);
            }
            free(des);
            g_free(res);
        }

        for (int b = 0; b < N_BG; b++) free(est[b]), g_free(bgs[b]);
        g_free(rgb);
        free(alpha), free(fg), free(band), free(unknown), free(comp);
        n_used++;
    }
    if (!keys_only && n_used) {
        printf("\n%d frames x %d backgrounds; alpha in [0,1]; SAD and gradient error / 1000 "
               "(Composition-1k); band = within %d px of the true 0.5 contour\n\n",
               n_used, N_BG, UNKNOWN_RADIUS);
        printf("| background         | SAD      | MSE       | Grad     | SAD band | MSE band  |\n");
        printf("|--------------------|----------|-----------|----------|----------|-----------|\n");
        for (int b = 0; b < N_BG; b++) acc_print(bg_names[b], &per_bg[b]);
        acc_print("overall", &total);
        printf("\nvariation across backgrounds (mean per-pixel std of alpha): whole frame %.4f, "
               "band %.4f\n",
               var_all / n_used, var_band / n_used);
        printf("halo (mean CIEDE2000 in the 10-px edge band, over mid grey; target < 3): "
               "green %.2f, red %.2f, overall %.2f (mean p95 %.2f / %.2f)\n",
               halo[0] / n_used, halo[1] / n_used, (halo[0] + halo[1]) / (2 * n_used),
               halo_p95[0] / n_used, halo_p95[1] / n_used);
        printf("halo over the busy background (baboon), the same measure: mean %.2f, p95 %.2f\n",
               halo[2] / n_used, halo_p95[2] / n_used);
    }
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s/comp.png", tmpdir);
    unlink(cmd);
    snprintf(cmd, sizeof cmd, "%s/over_grey.png", tmpdir);
    unlink(cmd);
    rmdir(tmpdir);
    ts_ctx_free(ctx);
    return 0;
}
