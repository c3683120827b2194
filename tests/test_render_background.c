/* The background stage (issue 6): composite properties on small synthetic jobs (the backdrop
 * where alpha is 0, the person where it is 1, the blend between, in sRGB values or linear light),
 * gradients that only fall off, grain of the configured sigma and zero mean, no bands after 8-bit
 * quantisation, a blurred original that the person does not bleed into; and on real photos, an
 * automatic tone that stands apart from the hair and the clothing. Writes background-demo.png
 * (each development photo in every kind) in the working directory. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <vips/vips.h>

#include "common.h"
#include "render/render.h"
#include "trueshot.h"

/* Parameters through the stage's own table, as a style file sets them. */
typedef struct params {
    const ts_stage *stage;
    _Alignas(8) unsigned char buf[256];
} params;

static void params_init(params *p, const ts_stage *stage) {
    assert_true(stage->params_size <= sizeof p->buf);
    p->stage = stage;
    ts_params_defaults(stage->table, p->buf);
}

static void set(params *p, const char *name, const char *value) {
    const ts_param *t = ts_param_find(p->stage->table, name);
    if (!t) fail_msg("no parameter %s", name);
    char err[200];
    if (ts_param_set(t, p->buf, value, err, sizeof err)) fail_msg("%s", err);
}

/* Plain backdrop settings: only what a test looks at changes. */
static void plain(params *p, const char *kind) {
    params_init(p, &ts_stage_background);
    set(p, "kind", kind);
    set(p, "grain", "0");
    set(p, "shadow", "0");
    set(p, "vignette", "0");
}

static VipsImage *image_of(const float *px, int w, int h, int bands) {
    VipsImage *im = vips_image_new_from_memory_copy(px, sizeof *px * (size_t)w * h * bands, w, h,
                                                    bands, VIPS_FORMAT_FLOAT);
    assert_non_null(im);
    im->Type = bands == 3 ? VIPS_INTERPRETATION_sRGB : VIPS_INTERPRETATION_B_W;
    return im;
}

/* A job by hand: rgb and fg the colour fgc inside a disc of radius r (alpha 1, a linear ramp
 * `edge` px wide outside it), rgb the colour bgc outside; a face's landmarks in the disc. */
static void synthetic(ts_render_job *job, int W, int H, const float fgc[3], const float bgc[3],
                      double r, double edge) {
    memset(job, 0, sizeof *job);
    assert_int_equal(ts_ctx_new(NULL, &job->ctx), TS_OK);
    size_t n = (size_t)W * H;
    float *rgb = malloc(sizeof *rgb * n * 3), *fg = malloc(sizeof *fg * n * 3),
          *al = malloc(sizeof *al * n);
    double cx = W / 2.0, cy = H / 2.0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)y * W + x;
            double d = hypot(x + 0.5 - cx, y + 0.5 - cy) - r;
            float a = d <= 0 ? 1.f : d >= edge ? 0.f : (float)(1 - d / edge);
            al[i] = a;
            for (int c = 0; c < 3; c++) {
                fg[i * 3 + c] = fgc[c];
                rgb[i * 3 + c] = a * fgc[c] + (1 - a) * bgc[c];
            }
        }
    job->rgb = image_of(rgb, W, H, 3);
    job->fg = image_of(fg, W, H, 3);
    job->alpha = image_of(al, W, H, 1);
    free(rgb), free(fg), free(al);
    for (int i = 0; i < TS_LANDMARKS; i++) job->lm[i][0] = (float)cx, job->lm[i][1] = (float)cy;
    job->lm[234][0] = (float)(cx - 0.5 * r), job->lm[454][0] = (float)(cx + 0.5 * r);
    job->lm[10][1] = (float)(cy - 0.6 * r), job->lm[152][1] = (float)(cy + 0.6 * r);
    job->inter_eye = (float)(0.4 * r);
}

static void job_free(ts_render_job *job) {
    ts_render_job_clear(job);
    ts_ctx_free(job->ctx);
}

static void run(ts_render_job *job, const params *p) {
    ts_status s = p->stage->run(job, p->buf);
    if (s) fail_msg("%s: %s", p->stage->name, ts_ctx_error(job->ctx));
}

/* The canvas as floats (caller frees). */
static float *pixels(VipsImage *im) {
    size_t len;
    VipsImage *f = NULL;
    assert_int_equal(vips_cast_float(im, &f, NULL), 0);
    float *px = vips_image_write_to_memory(f, &len);
    g_object_unref(f);
    assert_non_null(px);
    return px;
}

static double to_lin(double v) {
    v /= 255;
    return v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4);
}

static double to_srgb(double v) {
    return 255 * (v <= 0.0031308 ? 12.92 * v : 1.055 * pow(v, 1 / 2.4) - 0.055);
}

static const float RED[3] = {200, 60, 40}, GREY[3] = {100, 100, 100};

/* ---- composite ---- */

static void check_composite(int linear) {
    ts_render_job job;
    int W = 160, H = 160;
    synthetic(&job, W, H, RED, GREY, 40, 20);
    params p;
    plain(&p, "solid");
    set(&p, "color", "#336699");
    set(&p, "linear", linear ? "yes" : "no");
    run(&job, &p);
    assert_int_equal(job.background_replaced, 1);
    assert_int_equal(job.n_edits, 1);
    assert_non_null(strstr(job.edits[0], "#336699"));
    float *o = pixels(job.rgb), *al = pixels(job.alpha);
    const double bg[3] = {0x33, 0x66, 0x99};
    int n_mid = 0;
    for (size_t i = 0; i < (size_t)W * H; i++)
        for (int c = 0; c < 3; c++) {
            double a = al[i], want;
            if (a <= 0)
                want = bg[c];
            else if (a >= 1)
                want = RED[c];
            else if (linear)
                want = to_srgb(a * to_lin(RED[c]) + (1 - a) * to_lin(bg[c]));
            else
                want = a * RED[c] + (1 - a) * bg[c];
            if (fabs(o[i * 3 + c] - want) > 0.01)
                fail_msg("pixel %zu band %d alpha %.3f: %.3f, want %.3f", i, c, a, o[i * 3 + c],
                         want);
            n_mid += c == 0 && a > 0 && a < 1;
        }
    assert_true(n_mid > 500);
    free(o), free(al);
    job_free(&job);
}

static void test_composite_srgb(void **state) {
    (void)state;
    check_composite(0);
}

static void test_composite_linear(void **state) {
    (void)state;
    check_composite(1);
}

/* keep: nothing composited, nothing disclosed. */
static void test_keep(void **state) {
    (void)state;
    ts_render_job job;
    synthetic(&job, 64, 64, RED, GREY, 16, 8);
    VipsImage *before = job.rgb;
    params p;
    params_init(&p, &ts_stage_background);
    set(&p, "kind", "keep");
    run(&job, &p);
    assert_ptr_equal(job.rgb, before);
    assert_int_equal(job.background_replaced, 0);
    assert_int_equal(job.n_edits, 0);
    job_free(&job);
}

/* Without a matte the stage keeps the photo's background and says so. */
static void test_no_matte(void **state) {
    (void)state;
    ts_render_job job;
    synthetic(&job, 64, 64, RED, GREY, 16, 8);
    ts_render_replace(&job.alpha, NULL);
    ts_render_replace(&job.fg, NULL);
    params p;
    params_init(&p, &ts_stage_background);
    run(&job, &p);
    assert_int_equal(job.background_replaced, 0);
    assert_int_equal(job.n_notes, 1);
    job_free(&job);
}

/* The stage replaces its image; the one it was given is unchanged. */
static void test_input_untouched(void **state) {
    (void)state;
    ts_render_job job;
    synthetic(&job, 64, 64, RED, GREY, 16, 8);
    VipsImage *before = g_object_ref(job.rgb);
    float *b0 = pixels(before);
    params p;
    params_init(&p, &ts_stage_background);
    run(&job, &p);
    assert_ptr_not_equal(job.rgb, before);
    float *b1 = pixels(before);
    assert_memory_equal(b0, b1, sizeof *b0 * 64 * 64 * 3);
    free(b0), free(b1);
    g_object_unref(before);
    job_free(&job);
}

/* ---- backdrop light ---- */

static void test_gradient_monotonic(void **state) {
    (void)state;
    int W = 200, H = 300;
    ts_render_job job;
    synthetic(&job, W, H, RED, GREY, 0, 0.5); /* no person: alpha 0 everywhere */
    params p;
    plain(&p, "gradient");
    set(&p, "color", "lightgrey");
    set(&p, "gradient", "1");
    run(&job, &p);
    float *o = pixels(job.rgb);
    /* Vertical: every column falls off from the top, and by about 1.5 stops. */
    for (int x = 0; x < W; x += 7)
        for (int y = 1; y < H; y++)
            for (int c = 0; c < 3; c++)
                assert_true(o[((size_t)y * W + x) * 3 + c] <=
                            o[((size_t)(y - 1) * W + x) * 3 + c] + 1e-4f);
    double top = to_lin(o[1]), bottom = to_lin(o[((size_t)(H - 1) * W) * 3 + 1]);
    double stops = log2(top / bottom);
    assert_true(stops > 1.3 && stops < 1.7);
    free(o);
    job_free(&job);

    /* Radial with vignette: brightest behind the neck (the chin, mesh 152), falling off along
     * every ray from there. */
    synthetic(&job, W, H, RED, GREY, 0, 0.5);
    plain(&p, "radial");
    set(&p, "color", "#808080");
    set(&p, "vignette", "1");
    run(&job, &p);
    o = pixels(job.rgb);
    double gx = job.lm[152][0], gy = job.lm[152][1];
    for (int k = 0; k < 32; k++) {
        double th = 2 * M_PI * k / 32, prev = 1e9;
        for (double t = 2; t < 400; t += 1) {
            int x = (int)(gx + t * cos(th)), y = (int)(gy + t * sin(th));
            if (x < 0 || y < 0 || x >= W || y >= H) break;
            double v = o[((size_t)y * W + x) * 3];
            assert_true(v <= prev + 0.05);
            prev = v;
        }
    }
    /* The vignette darkens the corners beyond the gradient alone. */
    double corner = o[0];
    free(o);
    job_free(&job);
    synthetic(&job, W, H, RED, GREY, 0, 0.5);
    set(&p, "vignette", "0");
    run(&job, &p);
    o = pixels(job.rgb);
    assert_true(o[0] < corner - 5 || corner < o[0] - 5);
    assert_true(corner < o[0]);
    free(o);
    job_free(&job);
}

/* Grain: the configured sigma, zero mean, the same every run. */
static void test_grain(void **state) {
    (void)state;
    int W = 300, H = 300;
    for (double sigma = 1; sigma <= 4; sigma += 1.5) {
        ts_render_job job;
        synthetic(&job, W, H, RED, GREY, 0, 0.5);
        params p;
        plain(&p, "solid");
        set(&p, "color", "grey");
        char v[16];
        snprintf(v, sizeof v, "%g", sigma);
        set(&p, "grain", v);
        run(&job, &p);
        float *o = pixels(job.rgb);
        double s = 0, s2 = 0, base[3] = {0x8a, 0x8d, 0x91};
        long n = 0;
        for (size_t i = 0; i < (size_t)W * H; i++) {
            for (int c = 0; c < 3; c++) {
                double d = o[i * 3 + c] - base[c];
                s += d, s2 += d * d, n++;
            }
        }
        double mean = s / n, sd = sqrt(s2 / n - mean * mean);
        printf("grain %.1f: mean %+.4f, sigma %.3f\n", sigma, mean, sd);
        assert_true(fabs(mean) < 0.02 * sigma);
        assert_true(fabs(sd - sigma) < 0.03 * sigma);
        ts_render_job again;
        synthetic(&again, W, H, RED, GREY, 0, 0.5);
        run(&again, &p);
        float *o2 = pixels(again.rgb);
        assert_memory_equal(o, o2, sizeof *o * (size_t)W * H * 3);
        free(o), free(o2);
        job_free(&job), job_free(&again);
    }
}

/* The widest band of a vertical gradient after rounding to 8 bits: the longest run of rows over
 * which the row's mean level stays within 0.02 of a level. Also the worst departure of the row
 * means from the unquantised gradient. */
static int widest_band(const char *grain, double *worst) {
    int W = 1200, H = 1200;
    ts_render_job job;
    synthetic(&job, W, H, RED, GREY, 0, 0.5);
    params p;
    plain(&p, "gradient");
    set(&p, "color", "grey");
    set(&p, "gradient", "1");
    run(&job, &p);
    float *ideal = pixels(job.rgb);
    job_free(&job);
    synthetic(&job, W, H, RED, GREY, 0, 0.5);
    set(&p, "grain", grain);
    run(&job, &p);
    float *o = pixels(job.rgb);
    int band = 1, run_start = 0;
    double lo = 1e9, hi = -1e9;
    *worst = 0;
    for (int y = 0; y < H; y++) {
        double m = 0, mi = 0;
        for (int x = 0; x < W; x++) {
            m += rint(o[((size_t)y * W + x) * 3 + 1]);
            mi += ideal[((size_t)y * W + x) * 3 + 1];
        }
        m /= W, mi /= W;
        *worst = fmax(*worst, fabs(m - mi));
        lo = fmin(lo, m), hi = fmax(hi, m);
        if (hi - lo > 0.02) {
            run_start = y, lo = hi = m;
        }
        band = y - run_start + 1 > band ? y - run_start + 1 : band;
    }
    free(o), free(ideal);
    job_free(&job);
    return band;
}

static void test_no_banding(void **state) {
    (void)state;
    double worst;
    int plain_band = widest_band("0", &worst);
    printf("no grain: widest band %d px, row means off by up to %.3f level\n", plain_band, worst);
    /* Without grain the steps are plain to see: the measure catches them. */
    assert_true(plain_band >= 15);
    int grain_band = widest_band("1.5", &worst);
    printf("grain 1.5: widest band %d px, row means off by up to %.3f level\n", grain_band, worst);
    assert_true(grain_band <= 4);
    assert_true(worst < 0.2);
}

/* The contact shadow darkens the backdrop beside and below the shoulders, never above the
 * chin. */
static void test_shadow(void **state) {
    (void)state;
    int W = 200, H = 200;
    float *o[2];
    ts_render_job job;
    for (int k = 0; k < 2; k++) {
        synthetic(&job, W, H, RED, GREY, 40, 4);
        params p;
        plain(&p, "solid");
        set(&p, "color", "lightgrey");
        set(&p, "shadow", k ? "1" : "0");
        run(&job, &p);
        o[k] = pixels(job.rgb);
        if (!k) job_free(&job);
    }
    float *al = pixels(job.alpha);
    double above = 0, below = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)y * W + x;
            if (al[i] > 0) continue;
            double d = o[0][i * 3 + 1] - o[1][i * 3 + 1];
            assert_true(d >= -1e-4); /* only ever darker */
            if (y < job.lm[152][1] - 0.2 * job.inter_eye)
                above = fmax(above, d);
            else
                below = fmax(below, d);
        }
    printf("shadow 1: darkest %.1f levels below the chin, %.2f above\n", below, above);
    assert_true(above < 0.01);
    assert_true(below > 10);
    free(o[0]), free(o[1]), free(al);
    job_free(&job);
}

/* ---- blurred original ---- */

/* The person's colour does not bleed into the blurred background, and over its own background
 * with no blur the sRGB composite gives the photo back. */
static void test_blur(void **state) {
    (void)state;
    int W = 240, H = 240;
    ts_render_job job;
    synthetic(&job, W, H, RED, GREY, 50, 6);
    params p;
    plain(&p, "blur");
    set(&p, "blur", "0.04");
    run(&job, &p);
    /* the photo's own background, blurred: not a generated one (the disclosure follows) */
    assert_int_equal(job.background_replaced, 0);
    assert_int_equal(job.background_blurred, 1);
    float *o = pixels(job.rgb), *al = pixels(job.alpha);
    double worst = 0;
    for (size_t i = 0; i < (size_t)W * H; i++)
        if (al[i] == 0)
            for (int c = 0; c < 3; c++) worst = fmax(worst, fabs(o[i * 3 + c] - GREY[c]));
    printf("blur: worst bleed of the person into the background %.3f levels\n", worst);
    assert_true(worst < 0.5);
    free(o), free(al);
    job_free(&job);

    /* A striped background, blur 0: the photo comes back where the sRGB composite is used;
     * linear light changes the edge. */
    for (int linear = 0; linear <= 1; linear++) {
        synthetic(&job, W, H, RED, GREY, 50, 12);
        float *px = pixels(job.rgb), *a = pixels(job.alpha);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t i = (size_t)y * W + x;
                float b = (x / 8) % 2 ? 230.f : 20.f;
                for (int c = 0; c < 3; c++) px[i * 3 + c] = a[i] * RED[c] + (1 - a[i]) * b;
            }
        ts_render_replace(&job.rgb, image_of(px, W, H, 3));
        plain(&p, "blur");
        set(&p, "blur", "0");
        set(&p, "linear", linear ? "yes" : "no");
        run(&job, &p);
        float *out = pixels(job.rgb);
        double d = 0;
        long n = 0;
        for (size_t i = 0; i < (size_t)W * H; i++)
            if (a[i] > 0 && a[i] < 0.98f)
                for (int c = 0; c < 3; c++) d += fabs(out[i * 3 + c] - px[i * 3 + c]), n++;
        printf("%s composite over the photo's own background: mean |change| at the edge %.3f\n",
               linear ? "linear" : "sRGB", d / n);
        if (!linear) assert_true(d / n < 0.01);
        if (linear) assert_true(d / n > 1);
        free(px), free(a), free(out);
        job_free(&job);
    }
}

/* ---- real photos ---- */

static void srgb_lab(const double rgb[3], double lab[3]) {
    double r = to_lin(rgb[0]), g = to_lin(rgb[1]), b = to_lin(rgb[2]);
    double x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
    double y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    double z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
    double f[3] = {x, y, z};
    for (int k = 0; k < 3; k++)
        f[k] = f[k] > 216.0 / 24389 ? cbrt(f[k]) : (24389.0 / 27 * f[k] + 16) / 116;
    lab[0] = 116 * f[1] - 16, lab[1] = 500 * (f[0] - f[1]), lab[2] = 200 * (f[1] - f[2]);
}

/* The median Lab colour of the person's pixels (alpha >= amin) in the box: an independent,
 * more robust measure than the stage's own mean. Returns the count. */
static int person_lab(const float *fg, const float *al, int W, int H, double x0, double y0,
                      double x1, double y1, float amin, double lab[3]) {
    int n = 0, cap = 1 << 20;
    float *v[3];
    for (int c = 0; c < 3; c++) v[c] = malloc(sizeof(float) * cap);
    for (int y = (int)fmax(0, y0); y < (int)fmin(H, y1); y++)
        for (int x = (int)fmax(0, x0); x < (int)fmin(W, x1); x++) {
            size_t i = (size_t)y * W + x;
            if (al[i] < amin || n >= cap) continue;
            double rgb[3] = {fg[i * 3], fg[i * 3 + 1], fg[i * 3 + 2]}, l[3];
            srgb_lab(rgb, l);
            for (int c = 0; c < 3; c++) v[c][n] = (float)l[c];
            n++;
        }
    for (int c = 0; c < 3; c++) {
        /* nth element by a partial selection sort is too slow; a histogram of 0.5 units. */
        int hist[1024] = {0}, half = n / 2, acc = 0;
        for (int k = 0; k < n; k++) {
            int b = (int)lrint((v[c][k] + 256) * 2);
            hist[b < 0 ? 0 : b > 1023 ? 1023 : b]++;
        }
        int b = 0;
        while (b < 1023 && acc + hist[b] <= half) acc += hist[b++];
        lab[c] = b / 2.0 - 256;
        free(v[c]);
    }
    return n;
}

static double de(const double a[3], const double b[3]) {
    return sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) +
                (a[2] - b[2]) * (a[2] - b[2]));
}

static const char *const photos[] = {"grace_hopper.jpg", "franck_01829.jpg", "astronaut.png",
                                     "faceapi_sample3.jpg", "faceapi_sample1.jpg"};
static const char *const demo_kinds[] = {"keep", "solid", "gradient", "radial", "blur"};

/* A job for the photo, framed with frame's defaults (the caller clears it). */
static void framed(ts_ctx *ctx, const char *name, ts_photo **photo, ts_matte **matte,
                   ts_render_job *job) {
    const char *path = ts_test_photo(name);
    if (ts_photo_open(ctx, path, photo)) fail_msg("%s", ts_ctx_error(ctx));
    const ts_face_analysis *face;
    if (ts_photo_subject(ctx, *photo, &face)) fail_msg("%s", ts_ctx_error(ctx));
    ts_matte_options o;
    ts_matte_options_init(&o);
    if (ts_photo_matte(ctx, *photo, &o, matte)) fail_msg("%s", ts_ctx_error(ctx));
    memset(job, 0, sizeof *job);
    job->ctx = ctx, job->photo = *photo, job->face = face, job->matte = *matte;
    params fp;
    params_init(&fp, &ts_stage_frame);
    run(job, &fp);
}

static void test_photos(void **state) {
    (void)state;
    ts_ctx *ctx;
    assert_int_equal(ts_ctx_new(NULL, &ctx), TS_OK);
    int np = (int)(sizeof photos / sizeof photos[0]), nk = 5;
    VipsImage *tiles[5 * 6] = {0};
    for (int i = 0; i < np; i++) {
        ts_photo *photo;
        ts_matte *matte;
        ts_render_job job;
        framed(ctx, photos[i], &photo, &matte, &job);
        int W = job.rgb->Xsize, H = job.rgb->Ysize;
        /* The automatic tone against the hair and the clothing, measured here independently. */
        float *fg = pixels(job.fg), *al = pixels(job.alpha);
        const float(*L)[2] = (const float(*)[2])job.lm;
        double cx = (L[234][0] + L[454][0]) / 2, fw = fabs(L[454][0] - L[234][0]);
        double fh = hypot(L[152][0] - L[10][0], L[152][1] - L[10][1]);
        double hair[3], cl_l[3], cl_r[3];
        int nh = person_lab(fg, al, W, H, cx - 0.4 * fw, L[10][1] - 0.45 * fh, cx + 0.4 * fw,
                            L[10][1] - 0.1 * fh, 0.8f, hair);
        /* Clothing: each shoulder on its own. */
        int ncl = person_lab(fg, al, W, H, cx - 1.6 * fw, L[152][1] + 0.6 * fh, cx - 0.6 * fw,
                             L[152][1] + 2 * fh, 0.95f, cl_l);
        int ncr = person_lab(fg, al, W, H, cx + 0.6 * fw, L[152][1] + 0.6 * fh, cx + 1.6 * fw,
                             L[152][1] + 2 * fh, 0.95f, cl_r);
        for (int k = 0; k < nk; k++) {
            ts_render_job j2 = job;
            j2.rgb = g_object_ref(job.rgb), j2.alpha = g_object_ref(job.alpha),
            j2.fg = g_object_ref(job.fg);
            j2.n_edits = 0;
            params p;
            params_init(&p, &ts_stage_background);
            set(&p, "kind", demo_kinds[k]);
            /* Extra settings to look at, on request: TS_BACKGROUND_SET="shadow=1,grain=0". */
            const char *extra = getenv("TS_BACKGROUND_SET");
            if (extra) {
                char buf[256], *save = NULL;
                snprintf(buf, sizeof buf, "%s", extra);
                for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
                    char *eq = strchr(kv, '=');
                    if (eq) *eq = 0, set(&p, kv, eq + 1);
                }
            }
            gint64 t0 = g_get_monotonic_time();
            clock_t c0 = clock();
            run(&j2, &p);
            printf("%-20s %-8s %4dx%d %6.1f ms (%.1f ms of CPU)\n", photos[i], demo_kinds[k], W, H,
                   (g_get_monotonic_time() - t0) / 1000.0,
                   (clock() - c0) * 1000.0 / CLOCKS_PER_SEC);
            assert_int_equal(j2.background_replaced, k != 0 && strcmp(demo_kinds[k], "blur"));
            assert_int_equal(j2.background_blurred, !strcmp(demo_kinds[k], "blur"));
            if (k == 3) {
                const char *hex = strchr(j2.edits[0], '#');
                assert_non_null(hex);
                uint32_t v = (uint32_t)strtoul(hex + 1, NULL, 16);
                double rgb[3] = {v >> 16 & 255, v >> 8 & 255, v & 255}, lab[3];
                srgb_lab(rgb, lab);
                double dh = nh > 200 ? de(lab, hair) : 99, dl = ncl > 200 ? de(lab, cl_l) : 99,
                       dr = ncr > 200 ? de(lab, cl_r) : 99;
                printf("%-20s %s\n%-20s hair L %.0f a %.0f b %.0f (%d px), clothing L %.0f/%.0f "
                       "(%d/%d px); Delta E hair %.1f, clothing %.1f / %.1f\n",
                       photos[i], j2.edits[0], "", hair[0], hair[1], hair[2], nh, cl_l[0], cl_r[0],
                       ncl, ncr, dh, dl, dr);
                assert_true(dh >= 15);
                assert_true(dl >= 15 && dr >= 15);
            }
            /* Full-size outputs to look at, on request. */
            const char *dir = getenv("TS_BACKGROUND_OUT");
            if (dir && *dir) {
                char path[1400];
                VipsImage *u8 = NULL;
                snprintf(path, sizeof path, "%s/%.*s-%s.png", dir,
                         (int)(strchr(photos[i], '.') - photos[i]), photos[i], demo_kinds[k]);
                assert_int_equal(vips_cast_uchar(j2.rgb, &u8, NULL), 0);
                assert_int_equal(vips_image_write_to_file(u8, path, NULL), 0);
                g_object_unref(u8);
            }
            VipsImage *small = NULL;
            assert_int_equal(vips_resize(j2.rgb, &small, 300.0 / W, NULL), 0);
            tiles[i * nk + k] = small;
            ts_render_job_clear(&j2);
        }
        free(fg), free(al);
        ts_render_job_clear(&job);
        ts_matte_free(matte);
        ts_photo_unref(photo);
    }
    /* Each photo a row, each kind a column. */
    VipsImage *sheet = NULL, *u8 = NULL;
    VipsArrayDouble *white = vips_array_double_newv(1, 255.0);
    assert_int_equal(
        vips_arrayjoin(tiles, &sheet, np * nk, "across", nk, "shim", 4, "background", white, NULL),
        0);
    vips_area_unref(VIPS_AREA(white));
    assert_int_equal(vips_cast_uchar(sheet, &u8, NULL), 0);
    assert_int_equal(vips_image_write_to_file(u8, "background-demo.png", NULL), 0);
    g_object_unref(sheet), g_object_unref(u8);
    for (int i = 0; i < np * nk; i++) g_object_unref(tiles[i]);
    ts_ctx_free(ctx);
}

int main(void) {
    if (VIPS_INIT("test_render_background")) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_composite_srgb),
        cmocka_unit_test(test_composite_linear),
        cmocka_unit_test(test_keep),
        cmocka_unit_test(test_no_matte),
        cmocka_unit_test(test_input_untouched),
        cmocka_unit_test(test_gradient_monotonic),
        cmocka_unit_test(test_grain),
        cmocka_unit_test(test_no_banding),
        cmocka_unit_test(test_shadow),
        cmocka_unit_test(test_blur),
        cmocka_unit_test(test_photos),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
