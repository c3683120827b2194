/* The person matte (issue 4): properties on real photos and small synthetic fixtures. Alpha in
 * range and the same whatever the background, no holes in the body, soft hair edges, opaque
 * where the body leaves the frame, atomic outputs, and the no-person / no-face errors. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <vips/vips.h>

#include "common.h"
#include "matte/matte.h"
#include "trueshot.h"

typedef ts_test_fixture fixture;

/* The matte of a photo file, with its alpha as floats (caller frees both). */
static ts_matte *matte_of(ts_ctx *ctx, const char *path, ts_matte_region_mode mode, float **alpha,
                          int *w, int *h) {
    ts_photo *p;
    assert_int_equal(ts_photo_open(ctx, path, &p), TS_OK);
    ts_matte_options o;
    ts_matte_options_init(&o);
    o.region = mode;
    ts_matte *m = NULL;
    ts_status s = ts_photo_matte(ctx, p, &o, &m);
    if (s) fprintf(stderr, "%s\n", ts_ctx_error(ctx));
    assert_int_equal(s, TS_OK);
    ts_photo_unref(p);
    ts_matte_region(m, NULL, NULL, w, h);
    uint16_t *a16 = malloc(sizeof *a16 * (size_t)*w * *h);
    assert_non_null(a16);
    assert_int_equal(ts_matte_alpha16(m, a16), TS_OK);
    *alpha = malloc(sizeof **alpha * (size_t)*w * *h);
    for (size_t i = 0; i < (size_t)*w * *h; i++) (*alpha)[i] = a16[i] / 65535.f;
    free(a16);
    return m;
}

/* The detector's box of the subject's face in the photo at path. */
static ts_face subject_box(ts_ctx *ctx, const char *path) {
    ts_photo *p;
    assert_int_equal(ts_photo_open(ctx, path, &p), TS_OK);
    const ts_face_analysis *subj;
    const ts_face *faces;
    int nf;
    assert_int_equal(ts_photo_subject(ctx, p, &subj), TS_OK);
    assert_int_equal(ts_photo_faces(ctx, p, &faces, &nf), TS_OK);
    ts_face box = faces[subj->face];
    ts_photo_unref(p);
    return box;
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

static void t_range_region_and_holes(void **state) {
    fixture *f = *state;
    int w, h, x, y;
    float *a;
    ts_matte *m = matte_of(f->ctx, ts_test_photo("grace_hopper.jpg"), TS_MATTE_HEAD_AND_SHOULDERS,
                           &a, &w, &h);
    ts_matte_region(m, &x, &y, NULL, NULL);
    /* Head-and-shoulders region inside the 512x600 photo (3.5 face widths: all its width). */
    assert_true(x >= 0 && y >= 0 && x + w <= 512 && y + h <= 600);
    assert_true(w > 300 && h > 300);
    size_t n = (size_t)w * h, person = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(a[i] >= 0.f && a[i] <= 1.f);
        person += a[i] > 0.5f;
    }
    assert_true(person > n / 4);
    /* No holes: every background pixel (alpha < 0.5) is connected to the region's border. */
    uint8_t *seen = calloc(n, 1);
    int *stack = malloc(sizeof *stack * n);
    size_t top = 0;
    for (int yy = 0; yy < h; yy++)
        for (int xx = 0; xx < w; xx++)
            if ((yy == 0 || xx == 0 || yy == h - 1 || xx == w - 1) && a[yy * w + xx] < 0.5f) {
                seen[yy * w + xx] = 1;
                stack[top++] = yy * w + xx;
            }
    while (top) {
        int i = stack[--top], xx = i % w, yy = i / w;
        int nb[4] = {xx > 0 ? i - 1 : -1, xx < w - 1 ? i + 1 : -1, yy > 0 ? i - w : -1,
                     yy < h - 1 ? i + w : -1};
        for (int k = 0; k < 4; k++)
            if (nb[k] >= 0 && !seen[nb[k]] && a[nb[k]] < 0.5f) {
                seen[nb[k]] = 1;
                stack[top++] = nb[k];
            }
    }
    size_t enclosed = 0;
    for (size_t i = 0; i < n; i++) enclosed += a[i] < 0.5f && !seen[i];
    fprintf(stderr, "enclosed background: %zu of %zu pixels\n", enclosed, n);
    /* Pockets the guided filter opens (852 px at the hat's edge before the final alpha's holes
     * were closed) are filled: measured 0. */
    assert_true(enclosed < n / 2000);
    free(seen);
    free(stack);
    free(a);
    ts_matte_free(m);
}

/* Mean alpha over a rectangle given in face-box units (x0, y0 from the box's top-left corner,
 * sizes in box widths and heights), in matte coordinates offset by the region's corner. */
static float box_mean(const float *a, int w, int h, int rx, int ry, const ts_face *b, float x0,
                      float y0, float bw, float bh) {
    int xa = (int)(b->x + x0 * b->w) - rx, ya = (int)(b->y + y0 * b->h) - ry;
    int xb = (int)(b->x + (x0 + bw) * b->w) - rx, yb = (int)(b->y + (y0 + bh) * b->h) - ry;
    double sum = 0;
    int n = 0;
    for (int y = ya < 0 ? 0 : ya; y < yb && y < h; y++)
        for (int x = xa < 0 ? 0 : xa; x < xb && x < w; x++) sum += a[(size_t)y * w + x], n++;
    assert_true(n > 0);
    return (float)(sum / n);
}

/* Grace Hopper in front of a flag: the flag's gold cords and blue and white stripes beside her
 * cap and hair are background (before the background-colour test they survived as streaks of
 * partial alpha: 0.17 and 0.37 in the two areas below), while her cap and grey hair stay. */
static void t_busy_background_beside_hair(void **state) {
    fixture *f = *state;
    const char *path = ts_test_photo("grace_hopper.jpg");
    ts_face box = subject_box(f->ctx, path);
    int w, h, rx, ry;
    float *a;
    ts_matte *m = matte_of(f->ctx, path, TS_MATTE_HEAD_AND_SHOULDERS, &a, &w, &h);
    ts_matte_region(m, &rx, &ry, NULL, NULL);
    /* The flag left of the hair, from the brow to below the ear (box 166,139 200x200: x
     * 130-146, y 149-249), and the gold cord above the cap's brim (x 170-180, y 39-69). */
    float flag = box_mean(a, w, h, rx, ry, &box, -0.18f, 0.05f, 0.08f, 0.5f);
    float cord = box_mean(a, w, h, rx, ry, &box, 0.02f, -0.5f, 0.05f, 0.15f);
    /* The flag's white stripe between the cord and the hair below the ear (x 146-154, y 240-290):
     * the guided filter spread the hair's alpha over it (0.066) until soft alpha far from the
     * solid person was capped there (0.025). */
    float stripe = box_mean(a, w, h, rx, ry, &box, -0.10f, 0.505f, 0.04f, 0.25f);
    /* The cap's black side above the box, and the grey hair at the temple. */
    float cap = box_mean(a, w, h, rx, ry, &box, 0.05f, -0.3f, 0.25f, 0.3f);
    float hair = box_mean(a, w, h, rx, ry, &box, -0.02f, 0.25f, 0.08f, 0.2f);
    fprintf(stderr, "mean alpha: flag %.3f, cord %.3f, stripe %.3f, cap %.3f, hair %.3f\n", flag,
            cord, stripe, cap, hair);
    /* Measured 0.020 / 0.085 / 0.025 / 0.997 / 0.984 (before the background-colour test:
     * 0.174 / 0.366 / - / 0.998 / 0.983; before the reach cap: 0.026 / 0.105 / 0.066). */
    assert_true(flag < 0.06f);
    assert_true(stripe < 0.035f);
    assert_true(cord < 0.2f);
    assert_true(cap > 0.97f);
    assert_true(hair > 0.9f);
    free(a);
    ts_matte_free(m);
}

/* Franck on his blue backdrop: the hair edge is soft, and the body leaving the bottom of the
 * frame stays opaque there. */
static void t_soft_hair_opaque_bottom(void **state) {
    fixture *f = *state;
    int w, h;
    float *a;
    ts_matte *m = matte_of(f->ctx, ts_test_photo("franck_02159.jpg"), TS_MATTE_HEAD_AND_SHOULDERS,
                           &a, &w, &h);
    /* Soft values in the top third (hair), a good number of them. */
    size_t soft = 0;
    for (int y = 0; y < h / 3; y++)
        for (int x = 0; x < w; x++) soft += a[y * w + x] > 0.1f && a[y * w + x] < 0.9f;
    assert_true(soft > (size_t)w / 2);
    /* Where the person is solid ten rows up, the bottom row is solid too. */
    int solid = 0, bad = 0;
    for (int x = 0; x < w; x++) {
        if (a[(h - 11) * w + x] < 0.999f) continue;
        solid++;
        bad += a[(h - 1) * w + x] < 0.98f;
    }
    assert_true(solid > w / 3);
    assert_int_equal(bad, 0);
    free(a);
    ts_matte_free(m);
}

/* The matte of path (head and shoulders) as a float image the size of the photo: the region's
 * alpha in place, 0 elsewhere. */
static VipsImage *photo_alpha(ts_ctx *ctx, const char *path) {
    int w, h, x, y;
    float *a;
    ts_matte *m = matte_of(ctx, path, TS_MATTE_HEAD_AND_SHOULDERS, &a, &w, &h);
    ts_matte_region(m, &x, &y, NULL, NULL);
    VipsImage *src = vips_image_new_from_file(path, NULL), *reg, *full = NULL;
    assert_non_null(src);
    reg = vips_image_new_from_memory_copy(a, sizeof *a * (size_t)w * h, w, h, 1, VIPS_FORMAT_FLOAT);
    assert_int_equal(vips_embed(reg, &full, x, y, src->Xsize, src->Ysize, NULL), 0);
    g_object_unref(reg), g_object_unref(src);
    free(a);
    ts_matte_free(m);
    return full;
}

/* A photo lying on its side (saved without its EXIF orientation): the region runs along the
 * person, the network sees them upright, and the cut-out, turned back, is the upright photo's.
 * (Before, the network saw the person sideways and the neighbour cut's body model, which runs
 * down the photo, faded the lower body: the mean difference was ~0.1.) */
static void t_lying_sideways(void **state) {
    fixture *f = *state;
    char path[400];
    const char *sample = ts_test_sample();
    VipsImage *upright = photo_alpha(f->ctx, sample);
    static const VipsAngle turn[] = {VIPS_ANGLE_D90, VIPS_ANGLE_D270};
    static const VipsAngle back[] = {VIPS_ANGLE_D270, VIPS_ANGLE_D90};
    for (int k = 0; k < 2; k++) {
        VipsImage *in = vips_image_new_from_file(sample, NULL), *t = NULL;
        assert_int_equal(vips_rot(in, &t, turn[k], NULL), 0);
        snprintf(path, sizeof path, "%s/turned%d.png", f->dir, k);
        assert_int_equal(vips_pngsave(t, path, NULL), 0); /* lossless: the same pixels */
        g_object_unref(t), g_object_unref(in);
        VipsImage *a = photo_alpha(f->ctx, path), *b = NULL, *d = NULL, *ad = NULL;
        assert_int_equal(vips_rot(a, &b, back[k], NULL), 0);
        assert_int_equal(vips_subtract(b, upright, &d, NULL), 0);
        assert_int_equal(vips_abs(d, &ad, NULL), 0);
        double mean = 1, body = 0;
        assert_int_equal(vips_avg(ad, &mean, NULL), 0);
        /* the body at the bottom of the frame: the middle half of the last rows */
        VipsImage *strip = NULL;
        assert_int_equal(
            vips_extract_area(b, &strip, b->Xsize / 4, b->Ysize - 20, b->Xsize / 2, 20, NULL), 0);
        assert_int_equal(vips_avg(strip, &body, NULL), 0);
        print_message("  turned %s: mean |alpha - upright alpha| %.4f, body at the bottom %.3f\n",
                      k == 0   ? "90"
                      : k == 1 ? "270"
                               : "180",
                      mean, body);
        assert_true(mean < 0.01);
        assert_true(body > 0.95);
        g_object_unref(strip), g_object_unref(ad), g_object_unref(d), g_object_unref(b);
        g_object_unref(a);
    }
    g_object_unref(upright);
}

/* The same person over two different backgrounds gives the same alpha: Franck's cut-out,
 * composited over a warm light grey and a dark green, matted again. */
static void t_background_invariance(void **state) {
    fixture *f = *state;
    int w, h;
    float *a0;
    ts_matte *m =
        matte_of(f->ctx, ts_test_photo("franck_02159.jpg"), TS_MATTE_FULL_PHOTO, &a0, &w, &h);
    char p1[400], p2[400];
    snprintf(p1, sizeof p1, "%s/over1.png", f->dir);
    snprintf(p2, sizeof p2, "%s/over2.png", f->dir);
    assert_int_equal(ts_matte_save_over_color(f->ctx, m, 0xd8d0c8, p1), TS_OK);
    assert_int_equal(ts_matte_save_over_color(f->ctx, m, 0x28502c, p2), TS_OK);
    ts_matte_free(m);
    float *a1, *a2;
    int w1, h1, w2, h2;
    ts_matte *m1 = matte_of(f->ctx, p1, TS_MATTE_FULL_PHOTO, &a1, &w1, &h1);
    ts_matte *m2 = matte_of(f->ctx, p2, TS_MATTE_FULL_PHOTO, &a2, &w2, &h2);
    assert_int_equal(w1, w2);
    assert_int_equal(h1, h2);
    double sad = 0, sad_ref = 0;
    size_t far = 0, n = (size_t)w1 * h1;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a1[i] - a2[i]);
        sad += d;
        sad_ref += fabsf(a1[i] - a0[i]);
        far += d > 0.5f;
    }
    fprintf(stderr,
            "alpha across backgrounds: mean |difference| %.4f, >0.5 on %.3f%%; vs the "
            "source alpha %.4f\n",
            sad / n, 100.0 * far / n, sad_ref / n);
    assert_true(sad / n < 0.02);
    /* The network itself redraws the neck a little over a dark background (~0.7% of pixels). */
    assert_true(far < n / 100);
    assert_true(sad_ref / n < 0.03);
    free(a0), free(a1), free(a2);
    ts_matte_free(m1);
    ts_matte_free(m2);
}

static void t_atomic_outputs(void **state) {
    fixture *f = *state;
    int w, h;
    float *a;
    ts_matte *m = matte_of(f->ctx, ts_test_photo("grace_hopper.jpg"), TS_MATTE_HEAD_AND_SHOULDERS,
                           &a, &w, &h);
    free(a);
    char path[400];
    int before = count_files(f->dir);
    snprintf(path, sizeof path, "%s/cut.png", f->dir);
    assert_int_equal(ts_matte_save_cutout(f->ctx, m, path, 1), TS_OK);
    VipsImage *im = vips_image_new_from_file(path, NULL);
    assert_non_null(im);
    assert_int_equal(im->Bands, 4);
    assert_int_equal(im->BandFmt, VIPS_FORMAT_USHORT);
    assert_int_equal(im->Xsize, w);
    g_object_unref(im);
    snprintf(path, sizeof path, "%s/alpha.png", f->dir);
    assert_int_equal(ts_matte_save_alpha(f->ctx, m, path, 0), TS_OK);
    /* Exactly the two files: no temporary left behind. */
    assert_int_equal(count_files(f->dir), before + 2);
    /* Failures leave nothing: a missing folder, JPEG for a cut-out, a missing background. */
    snprintf(path, sizeof path, "%s/missing/cut.png", f->dir);
    assert_int_equal(ts_matte_save_cutout(f->ctx, m, path, 0), TS_ERR_WRITE);
    snprintf(path, sizeof path, "%s/cut.jpg", f->dir);
    assert_int_equal(ts_matte_save_cutout(f->ctx, m, path, 0), TS_ERR_ARGUMENT);
    snprintf(path, sizeof path, "%s/over.jpg", f->dir);
    assert_int_equal(ts_matte_save_over_image(f->ctx, m, "/nonexistent.jpg", path), TS_ERR_READ);
    assert_int_equal(count_files(f->dir), before + 2);
    /* Over an image: the composite has the region's size. */
    assert_int_equal(ts_matte_save_over_image(f->ctx, m, ts_test_photo("baboon.jpg"), path), TS_OK);
    im = vips_image_new_from_file(path, NULL);
    assert_non_null(im);
    assert_int_equal(im->Xsize, w);
    assert_int_equal(im->Ysize, h);
    assert_int_equal(im->Bands, 3);
    g_object_unref(im);
    ts_matte_free(m);
}

/* Synthetic: a flat grey card has no face and no person. */
static void t_no_person(void **state) {
    fixture *f = *state;
    char path[400];
    snprintf(path, sizeof path, "%s/card.png", f->dir);
    ts_test_grey_card(path);
    ts_photo *p;
    assert_int_equal(ts_photo_open(f->ctx, path, &p), TS_OK);
    ts_matte *m = NULL;
    assert_int_equal(ts_photo_matte(f->ctx, p, NULL, &m), TS_ERR_NO_FACE);
    assert_null(m);
    ts_matte_options o;
    ts_matte_options_init(&o);
    o.region = TS_MATTE_FULL_PHOTO;
    assert_int_equal(ts_photo_matte(f->ctx, p, &o, &m), TS_ERR_NO_PERSON);
    assert_null(m);
    assert_int_equal(ts_status_exit_code(TS_ERR_NO_PERSON), 11);
    ts_photo_unref(p);
    unlink(path);
}

/* The colour model's background output is fully written at every band pixel, also where it
 * finds no sure person or background within reach and leaves the pixel as it is: the
 * full-resolution foreground reads it there (times a weight of 0), and what a fresh buffer
 * happened to hold (a NaN) once made messi5's foreground colour differ from run to run. The
 * buffer starts as NaN here, so any entry left unwritten shows. */
static void t_colour_model_writes_band(void **state) {
    (void)state;
    enum { W = 48, H = 32, R = 3 };
    ts_fimg rgb = {W, H, 3, malloc(sizeof(float) * W * H * 3)};
    uint8_t *tri = malloc(W * H);
    float *alpha = malloc(sizeof(float) * W * H), *bg = malloc(sizeof(float) * W * H * 4);
    assert_non_null(rgb.px), assert_non_null(tri), assert_non_null(alpha), assert_non_null(bg);
    /* Person on the left, background on the right, a wide band between: its middle columns
     * are more than R from both. */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)y * W + x;
            tri[i] = x < 8 ? TS_TRI_FG : x >= 40 ? TS_TRI_BG : TS_TRI_UNKNOWN;
            for (int c = 0; c < 3; c++) rgb.px[i * 3 + c] = x < 8 ? 0.2f : x >= 40 ? 0.8f : 0.5f;
            alpha[i] = 0.5f;
        }
    for (size_t i = 0; i < (size_t)W * H * 4; i++) bg[i] = NAN;
    assert_int_equal(ts_matte_colour_alpha(&rgb, tri, R, alpha, bg), 0);
    long band = 0;
    for (size_t i = 0; i < (size_t)W * H; i++) {
        if (tri[i] != TS_TRI_UNKNOWN) continue;
        band++;
        for (int c = 0; c < 4; c++) assert_true(isfinite(bg[i * 4 + c]));
        assert_true(isfinite(alpha[i]) && alpha[i] >= 0 && alpha[i] <= 1);
    }
    assert_int_equal(band, 32 * H);
    free(rgb.px), free(tri), free(alpha), free(bg);
}

/* The subject's face is opaque: next to a neighbour (faceapi_sample3: the middle woman, a
 * shoulder and a window by her chin) the network and the colours used to leave her jaw and
 * chin half transparent (alpha 0.14 at the least, on the face outline drawn a fifth of the
 * way to the face's centre), and the backdrop showed through the face. The face is opaque
 * within that line; the outer fifth keeps a soft edge. */
static void t_face_opaque(void **state) {
    fixture *f = *state;
    static const int oval[] = {10,  338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288,
                               397, 365, 379, 378, 400, 377, 152, 148, 176, 149, 150, 136,
                               172, 58,  132, 93,  234, 127, 162, 21,  54,  103, 67,  109};
    const char *path = ts_test_photo("faceapi_sample3.jpg");
    ts_photo *p;
    assert_int_equal(ts_photo_open(f->ctx, path, &p), TS_OK);
    const ts_face_analysis *a;
    assert_int_equal(ts_photo_subject(f->ctx, p, &a), TS_OK);
    float *alpha;
    int w, h, x0, y0;
    ts_matte *m = matte_of(f->ctx, path, TS_MATTE_HEAD_AND_SHOULDERS, &alpha, &w, &h);
    ts_matte_region(m, &x0, &y0, NULL, NULL);
    double cx = 0, cy = 0;
    for (int i = 0; i < 468; i++) cx += a->landmarks[i][0] / 468, cy += a->landmarks[i][1] / 468;
    float least = 1;
    for (size_t k = 0; k < sizeof oval / sizeof oval[0]; k++) {
        int x = (int)lround(cx + 0.8 * (a->landmarks[oval[k]][0] - cx)) - x0;
        int y = (int)lround(cy + 0.8 * (a->landmarks[oval[k]][1] - cy)) - y0;
        assert_true(x >= 0 && x < w && y >= 0 && y < h);
        least = fminf(least, alpha[(size_t)y * w + x]);
    }
    print_message("faceapi_sample3: least alpha on the face outline drawn in by a fifth: %.3f\n",
                  least);
    assert_true(least >= 0.98f);
    free(alpha);
    ts_matte_free(m);
    ts_photo_unref(p);
}

/* A head tilted down (faceapi_sample1's middle woman, faceapi_sample2) has hair above the usual
 * head-and-shoulders region (0.8 face heights above the face box): the region grows upward
 * until the hair is inside it, rather than cutting it off along a straight line (before: the
 * region's top row ran through the hair). A head well inside the usual region (astronaut) keeps
 * it. */
static void t_region_grows_for_hair(void **state) {
    fixture *f = *state;
    static const struct {
        const char *photo;
        int grows;
    } cases[] = {
        {"faceapi_sample1.jpg", 1}, {"faceapi_sample2.jpg", 1}, {"faceapi_sample5.jpg", 0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *path = ts_test_photo(cases[c].photo);
        ts_face box = subject_box(f->ctx, path);
        const ts_face *b = &box;
        float *alpha;
        int w, h, x0, y0;
        ts_matte *m = matte_of(f->ctx, path, TS_MATTE_HEAD_AND_SHOULDERS, &alpha, &w, &h);
        ts_matte_region(m, &x0, &y0, NULL, NULL);
        int usual = (int)floorf(b->y - 0.8f * b->h);
        usual = usual < 0 ? 0 : usual;
        int top_person = 0;
        for (int x = 0; x < w; x++) top_person += alpha[x] >= 0.5f;
        print_message("%s: region top %d (usual rule %d), person in its top row: %d of %d\n",
                      cases[c].photo, y0, usual, top_person, w);
        if (cases[c].grows)
            assert_true(y0 < usual);
        else
            assert_int_equal(y0, usual);
        /* the hair ends inside the region (or the photo's own top edge is reached) */
        assert_true(y0 == 0 || top_person < 0.02 * w);
        free(alpha);
        ts_matte_free(m);
    }
}

/* The foreground colour is kept as the photo plus the blocks the solve changed: where alpha is 1
 * it is the photo's pixel, the kept blocks lie along the edge (a small share of the region),
 * the edge's pixels are unmixed there (some differ from the photo), and a span read on its own
 * (ts_matte_fg_span) is what the whole copy holds. */
static void t_fg_blocks(void **state) {
    fixture *f = *state;
    const char *path = ts_test_sample();
    ts_photo *p;
    assert_int_equal(ts_photo_open(f->ctx, path, &p), TS_OK);
    ts_matte *m = NULL;
    assert_int_equal(ts_photo_matte(f->ctx, p, NULL, &m), TS_OK);
    VipsImage *im = vips_image_new_from_file(path, NULL), *mem = NULL;
    assert_non_null(im);
    assert_int_equal(vips_extract_area(im, &mem, m->x, m->y, m->w, m->h, NULL), 0);
    size_t len;
    uint8_t *photo = vips_image_write_to_memory(mem, &len), *fg = ts_matte_fg_copy(m);
    assert_non_null(photo);
    assert_non_null(fg);
    size_t n = (size_t)m->w * m->h, opaque_off = 0, mixed = 0, mixed_changed = 0;
    uint16_t *al = malloc(sizeof *al * n);
    assert_int_equal(ts_matte_alpha16(m, al), TS_OK);
    for (size_t i = 0; i < n; i++) {
        int same = !memcmp(fg + i * 3, photo + i * 3, 3);
        if (al[i] == 65535) opaque_off += !same;
        if (al[i] > 0 && al[i] < 65535) mixed++, mixed_changed += !same;
        /* the alpha read a pixel at a time is the alpha read a row at a time */
        if (i % 97 == 0)
            assert_int_equal(ts_matte_alpha_at(m, (int)(i % m->w), (int)(i / m->w)), al[i]);
    }
    free(al);
    int kept = 0;
    for (int b = 0; b < m->blocks_w * m->blocks_h; b++) kept += m->fg_index[b] >= 0;
    print_message("sample: %d of %d blocks kept, %zu of %zu edge pixels unmixed\n", kept,
                  m->blocks_w * m->blocks_h, mixed_changed, mixed);
    assert_int_equal(opaque_off, 0);
    assert_true(kept > 0 && kept < m->blocks_w * m->blocks_h / 3);
    assert_true(mixed_changed > mixed / 4);
    uint8_t *row = malloc((size_t)m->w * 3);
    for (int y = 0; y < m->h; y += 7) {
        int x0 = (y * 13) % m->w, x1 = x0 + 45 < m->w ? x0 + 45 : m->w;
        memcpy(row, photo + ((size_t)y * m->w + x0) * 3, (size_t)(x1 - x0) * 3);
        ts_matte_fg_span(m, y, x0, x1, row);
        assert_memory_equal(row, fg + ((size_t)y * m->w + x0) * 3, (size_t)(x1 - x0) * 3);
    }
    free(row);
    g_free(photo), g_free(fg);
    g_object_unref(mem), g_object_unref(im);
    ts_matte_free(m);
    ts_photo_unref(p);
}

/* Along grace_hopper's shoulder the flag's stripes left wisps of soft alpha standing up from
 * the jacket's edge (grey smoke on a light backdrop). Below the chin soft alpha may reach only
 * a little way past the solid person on a busy background: the alpha more than 3 px above the
 * shoulder line (x 60-159) was 38.7 pixels' worth (201 pixels over 0.05), now 25.1 (128). */
static void t_shoulder_wisps(void **state) {
    fixture *f = *state;
    float *a;
    int w, h;
    ts_matte *m = matte_of(f->ctx, ts_test_sample(), TS_MATTE_HEAD_AND_SHOULDERS, &a, &w, &h);
    int x0, y0;
    ts_matte_region(m, &x0, &y0, NULL, NULL);
    assert_true(x0 == 0 && y0 == 0 && w >= 160 && h >= 420);
    double mass = 0;
    for (int x = 60; x < 160; x++) {
        int sh = 300;
        while (sh < 420 && a[(size_t)sh * w + x] <= 0.9f) sh++;
        assert_true(sh < 420); /* the shoulder is there */
        for (int y = 300; y < sh - 3; y++) mass += a[(size_t)y * w + x];
    }
    print_message("sample: alpha above the shoulder line %.1f\n", mass);
    assert_true(mass < 32);
    free(a);
    ts_matte_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_range_region_and_holes, ts_test_setup, ts_test_teardown),
        cmocka_unit_test_setup_teardown(t_busy_background_beside_hair, ts_test_setup,
                                        ts_test_teardown),
        cmocka_unit_test_setup_teardown(t_soft_hair_opaque_bottom, ts_test_setup, ts_test_teardown),
        cmocka_unit_test_setup_teardown(t_lying_sideways, ts_test_setup, ts_test_teardown),
        cmocka_unit_test_setup_teardown(t_background_invariance, ts_test_setup, ts_test_teardown),
        cmocka_unit_test_setup_teardown(t_atomic_outputs, ts_test_setup, ts_test_teardown),
        cmocka_unit_test_setup_teardown(t_no_person, ts_test_setup, ts_test_teardown),
        cmocka_unit_test(t_colour_model_writes_band),
        cmocka_unit_test_setup_teardown(t_face_opaque, ts_test_setup, ts_test_teardown),
        cmocka_unit_test_setup_teardown(t_region_grows_for_hair, ts_test_setup, ts_test_teardown),
        cmocka_unit_test_setup_teardown(t_fg_blocks, ts_test_setup, ts_test_teardown),
        cmocka_unit_test_setup_teardown(t_shoulder_wisps, ts_test_setup, ts_test_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
