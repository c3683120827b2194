/* Face region masks on real photos: regions that must not overlap don't, each region's area is
 * plausible against the inter-eye distance, areas scale with the mask resolution, feathering
 * keeps the mass, and translating the mesh translates the mask. Also writes regions-demo.png
 * (grace_hopper with every region tinted) in the build directory, to look at. */
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

static ts_geom geom;

static int setup(void **state) {
    (void)state;
    char path[1400], err[256];
    snprintf(path, sizeof path, "%s/models/%s", ts_test_cache(), TS_GEOM_FILE);
    if (ts_geom_load(path, &geom, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", path, err);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    ts_geom_free(&geom);
    return 0;
}

static uint8_t *mask_of(const ts_face_mesh *m, ts_face_region r, int w, int h, float scale,
                        float feather) {
    uint8_t *out = malloc((size_t)w * h);
    assert_non_null(out);
    assert_int_equal(ts_face_region_mask(m, &geom, r, w, h, scale, feather, out), TS_OK);
    return out;
}

/* Area in pixels (alpha 255 = one pixel). */
static double area(const uint8_t *a, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i];
    return s / 255;
}

/* Area covered by both a and b beyond what antialiasing of a shared edge allows (a + b <= 255
 * up to one step of rounding). */
static double overlap(const uint8_t *a, const uint8_t *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        int o = (int)a[i] + b[i] - 256;
        if (o > 0) s += o;
    }
    return s / 255;
}

/* Area of a outside b. */
static double outside(const uint8_t *a, const uint8_t *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] > b[i] + 1) s += a[i] - b[i];
    return s / 255;
}

static float ied_of(const ts_face_mesh *m) {
    return hypotf(m->pts[468][0] - m->pts[473][0], m->pts[468][1] - m->pts[473][1]);
}

static void photo_size(const char *path, int *w, int *h) {
    VipsImage *im = vips_image_new_from_file(path, NULL);
    assert_non_null(im);
    *w = im->Xsize;
    *h = im->Ysize;
    g_object_unref(im);
}

/* Area bounds in IED^2 per region: lo, hi. */
static const double BOUNDS[TS_REGION_COUNT][2] = {
    [TS_REGION_SKIN] = {2.0, 8.0},         [TS_REGION_RIGHT_EYE] = {0.02, 0.3},
    [TS_REGION_LEFT_EYE] = {0.02, 0.3},    [TS_REGION_RIGHT_IRIS] = {0.005, 0.15},
    [TS_REGION_LEFT_IRIS] = {0.005, 0.15}, [TS_REGION_BROWS] = {0.05, 0.6},
    [TS_REGION_LIPS] = {0.1, 1.0},         [TS_REGION_MOUTH] = {0.0, 0.4},
    [TS_REGION_NOSTRILS] = {0.005, 0.15},  [TS_REGION_FACE] = {2.5, 9.0},
};

static void check_photo(const char *name) {
    ts_face_mesh m;
    const char *path = ts_test_photo(name);
    ts_test_mesh_of(path, &m);
    int w, h;
    photo_size(path, &w, &h);
    size_t n = (size_t)w * h;
    float ied = ied_of(&m), ied2 = ied * ied;
    uint8_t *mk[TS_REGION_COUNT];
    double ar[TS_REGION_COUNT];
    printf("%s (%dx%d, inter-eye %.1f px): area / IED^2\n", name, w, h, ied);
    for (int r = 0; r < TS_REGION_COUNT; r++) {
        mk[r] = mask_of(&m, r, w, h, 1, 0);
        ar[r] = area(mk[r], n);
        printf("  %-10s %7.0f px  %.4f\n", ts_face_region_name(r), ar[r], ar[r] / ied2);
        assert_true(ar[r] / ied2 >= BOUNDS[r][0] && ar[r] / ied2 <= BOUNDS[r][1]);
        if (r != TS_REGION_SKIN && r != TS_REGION_FACE) assert_true(ar[r] < ar[TS_REGION_SKIN]);
    }

    /* Skin excludes the features; lips and mouth interior do not overlap; irises lie in the
     * eyes; everything lies in the face. */
    const int excluded[] = {TS_REGION_RIGHT_EYE, TS_REGION_LEFT_EYE, TS_REGION_BROWS,
                            TS_REGION_LIPS,      TS_REGION_MOUTH,    TS_REGION_NOSTRILS};
    for (int k = 0; k < 6; k++) {
        double o = overlap(mk[TS_REGION_SKIN], mk[excluded[k]], n);
        printf("  skin & %-9s overlap %.2f px\n", ts_face_region_name(excluded[k]), o);
        assert_true(o <= 0.005 * ar[excluded[k]] + 1);
    }
    assert_true(overlap(mk[TS_REGION_LIPS], mk[TS_REGION_MOUTH], n) <= 1);
    assert_true(overlap(mk[TS_REGION_RIGHT_EYE], mk[TS_REGION_LEFT_EYE], n) == 0);
    double ri = outside(mk[TS_REGION_RIGHT_IRIS], mk[TS_REGION_RIGHT_EYE], n),
           li = outside(mk[TS_REGION_LEFT_IRIS], mk[TS_REGION_LEFT_EYE], n);
    printf("  iris outside its eye: %.2f %.2f px\n", ri, li);
    assert_true(ri <= 1 && li <= 1);
    for (int r = 0; r < TS_REGION_COUNT; r++)
        if (r != TS_REGION_FACE) {
            double o = outside(mk[r], mk[TS_REGION_FACE], n);
            assert_true(o <= 0.01 * ar[r] + 1);
        }
    /* Skin + features fill the face: nothing of the face is left unassigned. */
    double sum = ar[TS_REGION_SKIN];
    for (int k = 0; k < 6; k++) sum += ar[excluded[k]];
    printf("  skin + features %.0f px, face %.0f px\n", sum, ar[TS_REGION_FACE]);
    assert_true(fabs(sum - ar[TS_REGION_FACE]) <= 0.01 * ar[TS_REGION_FACE]);

    /* Half resolution: a quarter of the area. */
    int hw = (w + 1) / 2, hh = (h + 1) / 2;
    for (int r = 0; r < TS_REGION_COUNT; r++) {
        if (ar[r] < 0.02 * ied2) continue; /* a closed mouth: a sliver */
        uint8_t *half = mask_of(&m, r, hw, hh, 0.5f, 0);
        double q = area(half, (size_t)hw * hh) / ar[r];
        printf("  %-10s area at scale 0.5 / at 1: %.4f\n", ts_face_region_name(r), q);
        assert_true(fabs(q - 0.25) <= 0.05 * 0.25);
        free(half);
    }

    /* Feathering keeps the mass and softens the edge: sigma 2 (exact Gaussian) and 8 (libvips'
     * box-filter approximation). */
    const int feathered[] = {TS_REGION_SKIN, TS_REGION_RIGHT_EYE, TS_REGION_LIPS, TS_REGION_BROWS};
    const float sigmas[] = {2.0f, 8.0f};
    for (int k = 0; k < 8; k++) {
        int r = feathered[k % 4];
        float sg = sigmas[k / 4];
        uint8_t *f = mask_of(&m, r, w, h, 1, sg);
        size_t mid0 = 0, mid1 = 0;
        for (size_t i = 0; i < n; i++) {
            mid0 += mk[r][i] > 20 && mk[r][i] < 235;
            mid1 += f[i] > 20 && f[i] < 235;
        }
        double q = area(f, n) / ar[r];
        printf("  %-10s feather %.0f px: mass ratio %.4f, edge pixels %zu -> %zu\n",
               ts_face_region_name(r), sg, q, mid0, mid1);
        assert_true(fabs(q - 1) <= 0.03);
        assert_true(mid1 > 2 * mid0);
        free(f);
    }
    for (int r = 0; r < TS_REGION_COUNT; r++) free(mk[r]);
}

static void t_photos(void **state) {
    (void)state;
    check_photo("grace_hopper.jpg");
    check_photo("franck_02159.jpg");
    check_photo("astronaut.png");
}

/* A mesh moved by (dx, dy) gives the mask moved by (dx, dy) * scale. */
static void t_translate(void **state) {
    (void)state;
    ts_face_mesh m, t;
    ts_test_mesh_of(ts_test_photo("grace_hopper.jpg"), &m);
    const int dx = 24, dy = -12, w = 700, h = 800;
    const float scales[] = {1.0f, 1.5f};
    t = m;
    for (int i = 0; i < TS_MESH_POINTS; i++) {
        t.pts[i][0] += dx;
        t.pts[i][1] += dy;
    }
    for (int s = 0; s < 2; s++) {
        float sc = scales[s];
        int sx = (int)lrintf(dx * sc), sy = (int)lrintf(dy * sc);
        assert_true(fabsf(dx * sc - sx) < 1e-6f && fabsf(dy * sc - sy) < 1e-6f);
        for (int r = 0; r < TS_REGION_COUNT; r++) {
            uint8_t *a = mask_of(&m, r, w, h, sc, 0), *b = mask_of(&t, r, w, h, sc, 0);
            size_t diff = 0, count = 0;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    int xs = x - sx, ys = y - sy;
                    int va = xs >= 0 && xs < w && ys >= 0 && ys < h ? a[(size_t)ys * w + xs] : 0;
                    int vb = b[(size_t)y * w + x];
                    count += vb > 0;
                    diff += abs(va - vb) > 16; /* more than one sub-sample of 16 */
                }
            if (diff)
                printf("  %s scale %.1f: %zu of %zu pixels differ\n", ts_face_region_name(r), sc,
                       diff, count);
            assert_true(count > 0);
            assert_true(diff <= count / 1000);
            free(a);
            free(b);
        }
    }
}

static void t_arguments(void **state) {
    (void)state;
    ts_face_mesh m;
    memset(&m, 0, sizeof m);
    for (int i = 0; i < TS_MESH_POINTS; i++) m.pts[i][0] = m.pts[i][1] = 10;
    uint8_t out[16] = {7};
    assert_int_equal(ts_face_region_mask(NULL, &geom, TS_REGION_SKIN, 4, 4, 1, 0, out),
                     TS_ERR_ARGUMENT);
    assert_int_equal(ts_face_region_mask(&m, &geom, TS_REGION_SKIN, 4, 4, 1, 0, NULL),
                     TS_ERR_ARGUMENT);
    assert_int_equal(ts_face_region_mask(&m, &geom, TS_REGION_COUNT, 4, 4, 1, 0, out),
                     TS_ERR_ARGUMENT);
    assert_int_equal(ts_face_region_mask(&m, &geom, TS_REGION_SKIN, 0, 4, 1, 0, out),
                     TS_ERR_ARGUMENT);
    assert_int_equal(ts_face_region_mask(&m, &geom, TS_REGION_SKIN, 4, 4, 0, 0, out),
                     TS_ERR_ARGUMENT);
    assert_int_equal(ts_face_region_mask(&m, &geom, TS_REGION_SKIN, 4, 4, NAN, 0, out),
                     TS_ERR_ARGUMENT);
    assert_int_equal(ts_face_region_mask(&m, &geom, TS_REGION_SKIN, 4, 4, 1, -1, out),
                     TS_ERR_ARGUMENT);
    assert_int_equal(ts_face_region_mask(&m, &geom, TS_REGION_SKIN, 1 << 15, 1 << 15, 1, 0, out),
                     TS_ERR_ARGUMENT);
    m.pts[100][0] = INFINITY;
    assert_int_equal(ts_face_region_mask(&m, &geom, TS_REGION_SKIN, 4, 4, 1, 0, out),
                     TS_ERR_ARGUMENT);
    assert_int_equal(out[0], 7); /* untouched */
    /* A degenerate mesh (every point in one place) is an empty mask, not an error. */
    m.pts[100][0] = 10;
    assert_int_equal(ts_face_region_mask(&m, &geom, TS_REGION_SKIN, 4, 4, 1, 1, out), TS_OK);
    for (int i = 0; i < 16; i++) assert_int_equal(out[i], 0);
    assert_string_equal(ts_face_region_name(TS_REGION_LEFT_IRIS), "left-iris");
    assert_string_equal(ts_face_region_name(TS_REGION_COUNT), "?");
}

/* Face oval fallback without geometry: close to the triangle union. */
static void t_oval(void **state) {
    (void)state;
    ts_face_mesh m;
    ts_test_mesh_of(ts_test_photo("grace_hopper.jpg"), &m);
    int w, h;
    photo_size(ts_test_photo("grace_hopper.jpg"), &w, &h);
    uint8_t *a = mask_of(&m, TS_REGION_FACE, w, h, 1, 0), *b = malloc((size_t)w * h);
    assert_int_equal(ts_face_region_mask(&m, NULL, TS_REGION_FACE, w, h, 1, 0, b), TS_OK);
    double q = area(b, (size_t)w * h) / area(a, (size_t)w * h);
    printf("face oval / triangle union area: %.4f\n", q);
    assert_true(fabs(q - 1) < 0.05);
    free(a);
    free(b);
}

/* grace_hopper (or the development photo named by $TS_REGIONS_DEMO) at twice its size, every
 * region tinted, next to the feathered skin mask. */
static void t_demo(void **state) {
    (void)state;
    const char *name = getenv("TS_REGIONS_DEMO");
    const char *path = ts_test_photo(name && *name ? name : "grace_hopper.jpg");
    ts_face_mesh m;
    ts_test_mesh_of(path, &m);
    const float sc = 2;
    VipsImage *im = vips_image_new_from_file(path, NULL), *big, *mem;
    assert_non_null(im);
    assert_int_equal(vips_resize(im, &big, sc, NULL), 0);
    assert_int_equal(vips_cast_uchar(big, &mem, NULL), 0);
    int w = mem->Xsize, h = mem->Ysize;
    size_t n = (size_t)w * h, len;
    uint8_t *rgb = vips_image_write_to_memory(mem, &len);
    assert_non_null(rgb);
    assert_int_equal(len, n * 3);
    static const uint8_t tint[TS_REGION_COUNT][3] = {
        [TS_REGION_SKIN] = {255, 200, 0},      [TS_REGION_RIGHT_EYE] = {0, 120, 255},
        [TS_REGION_LEFT_EYE] = {0, 220, 255},  [TS_REGION_RIGHT_IRIS] = {255, 0, 255},
        [TS_REGION_LEFT_IRIS] = {160, 0, 255}, [TS_REGION_BROWS] = {0, 255, 0},
        [TS_REGION_LIPS] = {255, 0, 0},        [TS_REGION_MOUTH] = {0, 0, 0},
        [TS_REGION_NOSTRILS] = {0, 255, 160},
    };
    uint8_t *demo = malloc(n * 2 * 3);
    assert_non_null(demo);
    for (size_t i = 0; i < n; i++) {
        size_t y = i / w, x = i % w;
        memcpy(demo + (y * 2 * w + x) * 3, rgb + i * 3, 3);
    }
    for (int r = 0; r < TS_REGION_COUNT; r++) {
        if (r == TS_REGION_FACE) continue;
        uint8_t *a = mask_of(&m, r, w, h, sc, 0);
        /* irises over the eyes: a stronger tint */
        float k = r == TS_REGION_RIGHT_IRIS || r == TS_REGION_LEFT_IRIS ? 0.7f : 0.45f;
        for (size_t i = 0; i < n; i++) {
            if (!a[i]) continue;
            size_t y = i / w, x = i % w;
            uint8_t *p = demo + (y * 2 * w + x) * 3;
            float al = k * a[i] / 255.0f;
            for (int c = 0; c < 3; c++) p[c] = (uint8_t)lrintf(p[c] * (1 - al) + tint[r][c] * al);
        }
        free(a);
    }
    uint8_t *f = mask_of(&m, TS_REGION_SKIN, w, h, sc, 4 * sc);
    for (size_t i = 0; i < n; i++) {
        size_t y = i / w, x = i % w;
        memset(demo + (y * 2 * w + w + x) * 3, f[i], 3);
    }
    free(f);
    VipsImage *out = vips_image_new_from_memory(demo, n * 2 * 3, 2 * w, h, 3, VIPS_FORMAT_UCHAR);
    assert_non_null(out);
    assert_int_equal(vips_image_write_to_file(out, "regions-demo.png", NULL), 0);
    char *abs = realpath("regions-demo.png", NULL);
    printf("demo: %s\n", abs ? abs : "regions-demo.png");
    free(abs);
    g_object_unref(out);
    free(demo);
    g_free(rgb);
    g_object_unref(mem);
    g_object_unref(big);
    g_object_unref(im);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_arguments), cmocka_unit_test(t_photos), cmocka_unit_test(t_translate),
        cmocka_unit_test(t_oval),      cmocka_unit_test(t_demo),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
