/* The tone and light render stages on real photos, framed by the frame stage:
 * - tone removes a synthetic cast (R and B multiplied in linear light): the cast photo's skin
 *   a*, b* after tone lands close to the original's after tone, and the original's skin moves
 *   little (the skin's hue and chroma move only as much as the cast removed);
 * - tone lifts a clearly underexposed face and leaves a well exposed one; its parameters at
 *   zero leave the canvas unchanged; the grade moves the skin the way it says;
 * - light brings the left/right skin ratio of a face under a synthetic side gradient at least
 *   half way to 1 at strength 1, and leaves a balanced face nearly unchanged.
 * Writes tone-light-*.png (before | tone | tone + light) in the working directory, to look at. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common.h"
#include "core/internal.h"
#include "face/regions.h"
#include "render/render.h"

static ts_ctx *ctx;

static int setup(void **state) {
    (void)state;
    return ts_ctx_new(NULL, &ctx) == TS_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    ts_ctx_free(ctx);
    return 0;
}

/* A job framed from a development photo at the frame stage's defaults. */
typedef struct fixture {
    ts_photo *photo;
    ts_matte *matte;
    ts_render_job job;
} fixture;

static void open_job(const char *name, fixture *f) {
    memset(f, 0, sizeof *f);
    const char *path = ts_test_photo(name);
    if (ts_photo_open(ctx, path, &f->photo)) fail_msg("%s: %s", path, ts_ctx_error(ctx));
    const ts_face_analysis *a;
    if (ts_photo_subject(ctx, f->photo, &a)) fail_msg("%s: %s", path, ts_ctx_error(ctx));
    if (ts_photo_matte(ctx, f->photo, NULL, &f->matte)) fail_msg("%s", ts_ctx_error(ctx));
    f->job.ctx = ctx, f->job.photo = f->photo, f->job.face = a, f->job.matte = f->matte;
    char buf[256];
    assert_true(ts_stage_frame.params_size <= sizeof buf);
    ts_params_defaults(ts_stage_frame.table, buf);
    if (ts_stage_frame.run(&f->job, buf)) fail_msg("frame: %s", ts_ctx_error(ctx));
}

static void close_job(fixture *f) {
    ts_render_job_clear(&f->job);
    ts_matte_free(f->matte);
    ts_photo_unref(f->photo);
}

static void run_stage(fixture *f, const ts_stage *st, const char *const *kv) {
    char buf[256], err[200];
    assert_true(st->params_size <= sizeof buf);
    ts_params_defaults(st->table, buf);
    for (; kv && kv[0]; kv += 2) {
        const ts_param *p = ts_param_find(st->table, kv[0]);
        assert_non_null(p);
        if (ts_param_set(p, buf, kv[1], err, sizeof err)) fail_msg("%s: %s", kv[0], err);
    }
    if (st->run(&f->job, buf)) fail_msg("%s: %s", st->name, ts_ctx_error(ctx));
}

/* ---- colour, done the slow exact way (independent of the stages' tables) ------------------- */

static double to_lin(double v) {
    v /= 255;
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    return v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4);
}

static double to_enc(double x) {
    x = x < 0 ? 0 : x > 1 ? 1 : x;
    return 255 * (x <= 0.0031308 ? 12.92 * x : 1.055 * pow(x, 1 / 2.4) - 0.055);
}

static double lab_f(double t) {
    return t > 216.0 / 24389 ? cbrt(t) : (24389.0 / 27 * t + 16) / 116;
}

static void lin_to_lab(const double c[3], double lab[3]) {
    double X = 0.4124564 * c[0] + 0.3575761 * c[1] + 0.1804375 * c[2];
    double Y = 0.2126729 * c[0] + 0.7151522 * c[1] + 0.0721750 * c[2];
    double Z = 0.0193339 * c[0] + 0.1191920 * c[1] + 0.9503041 * c[2];
    double fx = lab_f(X / 0.95047), fy = lab_f(Y), fz = lab_f(Z / 1.08883);
    lab[0] = 116 * fy - 16, lab[1] = 500 * (fx - fy), lab[2] = 200 * (fy - fz);
}

/* Replaces rgb and fg by f(linear rgb, x, y). */
typedef void (*lin_fn)(double c[3], int x, int y, int w, const void *user);
typedef struct lin_op {
    lin_fn fn;
    const void *user;
} lin_op;

static VipsImage *apply_lin(VipsImage *in, void *user) {
    const lin_op *op = user;
    size_t size;
    float *px = vips_image_write_to_memory(in, &size);
    assert_non_null(px);
    for (int y = 0; y < in->Ysize; y++)
        for (int x = 0; x < in->Xsize; x++) {
            float *p = px + ((size_t)y * in->Xsize + x) * 3;
            double c[3] = {to_lin(p[0]), to_lin(p[1]), to_lin(p[2])};
            op->fn(c, x, y, in->Xsize, op->user);
            for (int k = 0; k < 3; k++) p[k] = (float)to_enc(c[k]);
        }
    VipsImage *out =
        vips_image_new_from_memory_copy(px, size, in->Xsize, in->Ysize, 3, VIPS_FORMAT_FLOAT);
    g_free(px);
    return out;
}

static void degrade(fixture *f, lin_fn fn, const void *user) {
    lin_op op = {fn, user};
    assert_int_equal(ts_render_map(&f->job, apply_lin, &op, "test"), TS_OK);
}

static void cast_fn(double c[3], int x, int y, int w, const void *user) {
    (void)x, (void)y, (void)w;
    const double *k = user;
    for (int i = 0; i < 3; i++) c[i] *= k[i];
}

/* Hard side light: full on one side of the face, falling off across it (between the cheek
 * contour points) to `shadow` on the other side; from the image's right when dir is 0. */
typedef struct side_light {
    double x0, x1, shadow;
    int dir;
} side_light;

static void gradient_fn(double c[3], int x, int y, int w, const void *user) {
    (void)y, (void)w;
    const side_light *s = user;
    double u = fmin(1, fmax(0, (x - s->x0) / (s->x1 - s->x0)));
    double g = exp(log(s->shadow) * (s->dir ? u : 1 - u));
    for (int i = 0; i < 3; i++) c[i] *= g;
}

/* Skin statistics on the canvas: the lit skin's mean Lab (from the mean linear colour), and the
 * mean luminance of the skin on the image-left and image-right of the midline 168-152. */
typedef struct skin_stats {
    double lab[3];
    double side[2];
} skin_stats;

static skin_stats skin_of(const ts_render_job *job) {
    int w = job->rgb->Xsize, h = job->rgb->Ysize;
    ts_face_mesh m;
    memset(&m, 0, sizeof m);
    for (int i = 0; i < TS_LANDMARKS; i++) m.pts[i][0] = job->lm[i][0], m.pts[i][1] = job->lm[i][1];
    uint8_t *mask = malloc((size_t)w * h);
    assert_non_null(mask);
    assert_int_equal(ts_face_region_mask(&m, ctx->geom, TS_REGION_SKIN, w, h, 1, 0, mask), TS_OK);
    float *px = vips_image_write_to_memory(job->rgb, NULL);
    assert_non_null(px);
    const float(*L)[2] = job->lm;
    double ax = L[168][0], ay = L[168][1], dx = L[152][0] - ax, dy = L[152][1] - ay;
    double sum[3] = {0}, side[2] = {0}, cnt[2] = {0};
    long n = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            if (mask[i] < 250) continue;
            double c[3];
            for (int k = 0; k < 3; k++) c[k] = to_lin(px[i * 3 + k]);
            for (int k = 0; k < 3; k++) sum[k] += c[k];
            n++;
            /* cross product sign: which side of the midline (image right when > 0 for a
             * midline pointing down) */
            int s = (dx * (y + 0.5 - ay) - dy * (x + 0.5 - ax)) < 0;
            side[s] += 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2], cnt[s]++;
        }
    free(mask);
    g_free(px);
    assert_true(n > 1000 && cnt[0] > 100 && cnt[1] > 100);
    skin_stats st;
    for (int k = 0; k < 3; k++) sum[k] /= n;
    lin_to_lab(sum, st.lab);
    st.side[0] = side[0] / cnt[0], st.side[1] = side[1] / cnt[1];
    return st;
}

static double dab(const double a[3], const double b[3]) {
    return hypot(a[1] - b[1], a[2] - b[2]);
}
static double chroma(const double a[3]) {
    return hypot(a[1], a[2]);
}
static double hue(const double a[3]) {
    return atan2(a[2], a[1]) * 180 / M_PI;
}
static double side_ratio(const skin_stats *s) {
    return fmin(s->side[0], s->side[1]) / fmax(s->side[0], s->side[1]);
}

/* Mean and maximum absolute difference of two canvases, in 0..255 levels (values clamped to
 * the range first: the frame's resampling rings slightly past it, stages may clamp). */
static void diff(VipsImage *a, VipsImage *b, double *mean, double *max) {
    size_t na, nb;
    float *pa = vips_image_write_to_memory(a, &na), *pb = vips_image_write_to_memory(b, &nb);
    assert_true(pa && pb && na == nb);
    double s = 0, m = 0;
    size_t n = na / sizeof(float);
    for (size_t i = 0; i < n; i++) {
        double d = fabs(fmin(fmax(pa[i], 0), 255) - fmin(fmax(pb[i], 0), 255));
        s += d, m = fmax(m, d);
    }
    *mean = s / n, *max = m;
    g_free(pa), g_free(pb);
}

static VipsImage *copy_of(VipsImage *im) {
    VipsImage *c = vips_image_copy_memory(im);
    assert_non_null(c);
    return c;
}

/* Writes the images side by side, half size, as 8-bit PNG. */
static void save_strip(const char *path, VipsImage **ims, int n) {
    VipsImage *joined = NULL, *small = NULL, *u8 = NULL;
    assert_int_equal(vips_arrayjoin(ims, &joined, n, "shim", 8, NULL), 0);
    assert_int_equal(vips_resize(joined, &small, 0.5, NULL), 0);
    assert_int_equal(vips_cast_uchar(small, &u8, NULL), 0);
    assert_int_equal(vips_pngsave(u8, path, NULL), 0);
    g_object_unref(joined), g_object_unref(small), g_object_unref(u8);
}

/* ---- tone ---------------------------------------------------------------------------------- */

static const char *const TONE_EXACT[] = {"white_balance", "1", NULL};

/* Photos and what they allow: `neutral`, their light has no cast (correcting their skin would
 * change the person's skin colour); `whites`, the eye whites are clear and lit, a neutral
 * reference that moves with the cast. Without one the skin is the only cue and can only be
 * moved back into the natural skin-tone region, not to the person's own colour. */
static const struct {
    const char *name;
    int neutral, whites;
} CAST_PHOTOS[] = {{"astronaut.png", 1, 1},       {"faceapi_sample6.jpg", 0, 1},
                   {"faceapi_sample5.jpg", 0, 1}, {"franck_02159.jpg", 1, 0},
                   {"franck_04000.jpg", 1, 0},    {"grace_hopper.jpg", 1, 0}};
/* The casts: warm indoor light, cool shade, green fluorescent; linear R, G, B gains. */
static const double CASTS[][3] = {{1.25, 1.0, 0.72}, {0.82, 1.0, 1.22}, {1.0, 0.88, 1.0}};

static void t_tone_cast(void **state) {
    (void)state;
    for (size_t pi = 0; pi < sizeof CAST_PHOTOS / sizeof *CAST_PHOTOS; pi++) {
        const char *name = CAST_PHOTOS[pi].name;
        fixture a;
        open_job(name, &a);
        skin_stats a0 = skin_of(&a.job);
        VipsImage *framed = copy_of(a.job.rgb);
        run_stage(&a, &ts_stage_tone, TONE_EXACT);
        skin_stats a1 = skin_of(&a.job);
        printf("%-20s skin L*a*b* %5.1f %5.1f %5.1f (hue %4.1f, C %4.1f) -> tone %5.1f %5.1f "
               "%5.1f (hue %4.1f, C %4.1f): dE_ab %.2f\n",
               name, a0.lab[0], a0.lab[1], a0.lab[2], hue(a0.lab), chroma(a0.lab), a1.lab[0],
               a1.lab[1], a1.lab[2], hue(a1.lab), chroma(a1.lab), dab(a0.lab, a1.lab));
        /* no cast: the skin's colour stays the person's */
        if (CAST_PHOTOS[pi].neutral) assert_true(dab(a0.lab, a1.lab) < 3);
        for (size_t ci = 0; ci < sizeof CASTS / sizeof *CASTS; ci++) {
            fixture b;
            open_job(name, &b);
            degrade(&b, cast_fn, CASTS[ci]);
            skin_stats b0 = skin_of(&b.job);
            VipsImage *cast = copy_of(b.job.rgb);
            run_stage(&b, &ts_stage_tone, TONE_EXACT);
            skin_stats b1 = skin_of(&b.job);
            double moved = dab(b0.lab, b1.lab), cast_de = dab(b0.lab, a1.lab);
            double left = dab(b1.lab, a1.lab);
            printf("  cast %.2f %.2f %.2f: skin a*b* %5.1f %5.1f -> %5.1f %5.1f (hue %4.1f, C "
                   "%4.1f); %4.1f dE_ab from the toned original, now %.2f (moved %.1f)\n",
                   CASTS[ci][0], CASTS[ci][1], CASTS[ci][2], b0.lab[1], b0.lab[2], b1.lab[1],
                   b1.lab[2], hue(b1.lab), chroma(b1.lab), cast_de, left, moved);
            /* (a cast that cancels the photo's own tells nothing) */
            if (cast_de > 4) {
                /* the skin moves back toward the person's colour (or, with only the skin to
                 * go by and the skin still natural, stays: the contrast curve alone moves it
                 * by a fraction of a unit), never past it */
                assert_true(left < cast_de + 1);
                assert_true(moved < 1.3 * cast_de + 1);
            }
            /* with a reference the cast is removed: the skin returns to the original's */
            if (CAST_PHOTOS[pi].whites) assert_true(left < 3);
            if (ci == 0) {
                char path[256];
                snprintf(path, sizeof path, "tone-light-cast-%zu.png", pi);
                VipsImage *ims[4] = {framed, a.job.rgb, cast, b.job.rgb};
                save_strip(path, ims, 4);
            }
            g_object_unref(cast);
            close_job(&b);
        }
        g_object_unref(framed);
        close_job(&a);
    }
}

static void t_tone_exposure(void **state) {
    (void)state;
    const char *const names[] = {"franck_02159.jpg", "astronaut.png"};
    for (size_t pi = 0; pi < 2; pi++) {
        fixture a, b;
        open_job(names[pi], &a);
        run_stage(&a, &ts_stage_tone, NULL);
        skin_stats a1 = skin_of(&a.job);
        open_job(names[pi], &b);
        /* 1.5 stops under */
        const double under[3] = {0.35, 0.35, 0.35};
        degrade(&b, cast_fn, under);
        skin_stats b0 = skin_of(&b.job);
        run_stage(&b, &ts_stage_tone, NULL);
        skin_stats b1 = skin_of(&b.job);
        printf("%-18s toned skin L* %.1f; 1.5 stops under: L* %.1f -> %.1f\n", names[pi], a1.lab[0],
               b0.lab[0], b1.lab[0]);
        assert_true(b1.lab[0] > b0.lab[0] + 8);
        assert_true(b1.lab[0] < a1.lab[0] + 3);
        close_job(&a), close_job(&b);
    }
}

static void t_tone_identity_and_grade(void **state) {
    (void)state;
    fixture f;
    open_job("franck_02159.jpg", &f);
    VipsImage *before = copy_of(f.job.rgb);
    skin_stats s0 = skin_of(&f.job);
    static const char *const off[] = {"white_balance", "0", "exposure", "0", "contrast", "0", NULL};
    run_stage(&f, &ts_stage_tone, off);
    double mean, max;
    diff(before, f.job.rgb, &mean, &max);
    printf("tone with everything off: mean |diff| %.4f, max %.3f levels\n", mean, max);
    assert_true(max < 0.5);
    /* warmer raises b*, saturation 0 leaves grey */
    static const char *const warm[] = {"white_balance", "0",   "exposure", "0", "contrast", "0",
                                       "warmth",        "0.5", NULL};
    run_stage(&f, &ts_stage_tone, warm);
    skin_stats s1 = skin_of(&f.job);
    printf("warmth 0.5: skin b* %.1f -> %.1f\n", s0.lab[2], s1.lab[2]);
    assert_true(s1.lab[2] > s0.lab[2] + 2);
    static const char *const grey[] = {"white_balance", "0", "exposure", "0", "contrast", "0",
                                       "saturation",    "0", NULL};
    run_stage(&f, &ts_stage_tone, grey);
    skin_stats s2 = skin_of(&f.job);
    printf("saturation 0: skin chroma %.2f\n", chroma(s2.lab));
    assert_true(chroma(s2.lab) < 1);
    g_object_unref(before);
    close_job(&f);
}

/* ---- light --------------------------------------------------------------------------------- */

static const char *const LIGHT_FULL[] = {"strength", "1", NULL};

static void t_light_gradient(void **state) {
    (void)state;
    const char *const names[] = {"franck_02159.jpg", "astronaut.png", "grace_hopper.jpg"};
    for (size_t pi = 0; pi < 3; pi++) {
        /* a balanced face: untouched, or nearly */
        fixture a;
        open_job(names[pi], &a);
        skin_stats a0 = skin_of(&a.job);
        VipsImage *before = copy_of(a.job.rgb);
        run_stage(&a, &ts_stage_light, NULL);
        skin_stats a1 = skin_of(&a.job);
        double mean, max;
        diff(before, a.job.rgb, &mean, &max);
        printf("%-18s sides %.3f -> %.3f at the default strength, mean |diff| %.3f levels\n",
               names[pi], side_ratio(&a0), side_ratio(&a1), mean);
        if (side_ratio(&a0) > 0.9) assert_true(mean < 0.5);
        /* hard side light, from either side */
        for (int dir = 0; dir < 2; dir++) {
            fixture b;
            open_job(names[pi], &b);
            side_light sl = {fmin(b.job.lm[234][0], b.job.lm[454][0]),
                             fmax(b.job.lm[234][0], b.job.lm[454][0]), 0.2, dir};
            degrade(&b, gradient_fn, &sl);
            skin_stats b0 = skin_of(&b.job);
            VipsImage *hard = copy_of(b.job.rgb);
            run_stage(&b, &ts_stage_light, LIGHT_FULL);
            skin_stats b1 = skin_of(&b.job);
            double r0 = side_ratio(&b0), r1 = side_ratio(&b1);
            printf("  side light from the image %s: sides %.3f -> %.3f at strength 1 (%s)\n",
                   dir ? "left" : "right", r0, r1,
                   b.job.n_edits ? b.job.edits[b.job.n_edits - 1] : "-");
            assert_true(r0 < 0.8);
            assert_true(1 - r1 <= 0.5 * (1 - r0));
            if (dir == 0) {
                fixture c;
                open_job(names[pi], &c);
                degrade(&c, gradient_fn, &sl);
                run_stage(&c, &ts_stage_light, NULL);
                char path[256];
                snprintf(path, sizeof path, "tone-light-side-%zu.png", pi);
                VipsImage *ims[3] = {hard, c.job.rgb, b.job.rgb};
                save_strip(path, ims, 3);
                close_job(&c);
            }
            g_object_unref(hard);
            close_job(&b);
        }
        g_object_unref(before);
        close_job(&a);
    }
}

/* ---- both, on the indoor photos, for a look ------------------------------------------------ */

static void t_demo(void **state) {
    (void)state;
    const char *const names[] = {
        "faceapi_sample1.jpg", "faceapi_sample2.jpg", "faceapi_sample3.jpg", "faceapi_sample4.jpg",
        "faceapi_sample5.jpg", "faceapi_sample6.jpg", "franck_01829.jpg",    "grace_hopper.jpg"};
    for (size_t pi = 0; pi < sizeof names / sizeof *names; pi++) {
        fixture f;
        memset(&f, 0, sizeof f);
        const ts_face_analysis *an;
        if (ts_photo_open(ctx, ts_test_photo(names[pi]), &f.photo) ||
            ts_photo_subject(ctx, f.photo, &an)) {
            printf("%s: %s (skipped)\n", names[pi], ts_ctx_error(ctx));
            ts_photo_unref(f.photo);
            continue;
        }
        ts_photo_unref(f.photo);
        open_job(names[pi], &f);
        VipsImage *framed = copy_of(f.job.rgb);
        skin_stats s0 = skin_of(&f.job);
        gint64 t0 = g_get_monotonic_time();
        run_stage(&f, &ts_stage_tone, NULL);
        gint64 t1 = g_get_monotonic_time();
        VipsImage *toned = copy_of(f.job.rgb);
        skin_stats s1 = skin_of(&f.job);
        gint64 t2 = g_get_monotonic_time();
        run_stage(&f, &ts_stage_light, NULL);
        gint64 t3 = g_get_monotonic_time();
        skin_stats s2 = skin_of(&f.job);
        printf("%-20s skin %5.1f %5.1f %5.1f -> tone %5.1f %5.1f %5.1f; sides %.2f -> %.2f; "
               "%dx%d: tone %.0f ms, light %.0f ms\n",
               names[pi], s0.lab[0], s0.lab[1], s0.lab[2], s1.lab[0], s1.lab[1], s1.lab[2],
               side_ratio(&s1), side_ratio(&s2), f.job.rgb->Xsize, f.job.rgb->Ysize,
               (t1 - t0) / 1e3, (t3 - t2) / 1e3);
        for (int i = 0; i < f.job.n_edits; i++) printf("    %s\n", f.job.edits[i]);
        char path[256];
        snprintf(path, sizeof path, "tone-light-demo-%zu.png", pi);
        VipsImage *ims[3] = {framed, toned, f.job.rgb};
        save_strip(path, ims, 3);
        g_object_unref(framed), g_object_unref(toned);
        close_job(&f);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_tone_cast),
        cmocka_unit_test(t_tone_exposure),
        cmocka_unit_test(t_tone_identity_and_grade),
        cmocka_unit_test(t_light_gradient),
        cmocka_unit_test(t_demo),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
