/* Face analysis on one photo: decode (shrink-on-load) + detection + 478-point mesh + head pose,
 * median of N runs with a fresh photo each time (models loaded once), against a plain libvips
 * full decode of the same file measured in the same run. Prints one JSON line.
 *   bench_face PHOTO [RUNS] */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "core/internal.h"
#include "face/geometry.h"
#include "face/mesh.h"
#include "face/pose.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    return t[n / 2];
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_face PHOTO [RUNS]\n");
        return 2;
    }
    int runs = argc > 2 ? atoi(argv[2]) : 15;
    if (runs < 1) runs = 1;
    ts_ctx *ctx;
    if (ts_ctx_new(NULL, &ctx) != TS_OK) return 1;
    char gpath[1200], err[300];
    snprintf(gpath, sizeof gpath, "%s/geometry_pipeline_metadata_landmarks.binarypb",
             ctx->model_dir);
    ts_geom g;
    if (ts_geom_load(gpath, &g, err, sizeof err)) {
        fprintf(stderr, "bench_face: %s\n", err);
        return 1;
    }
    double *ta = calloc((size_t)runs, sizeof *ta), *tb = calloc((size_t)runs, sizeof *tb);
    double tdet = 0, tmesh = 0;
    for (int r = -1; r < runs; r++) { /* r = -1 warms up and loads the models */
        double t0 = now_ms();
        ts_photo *p;
        ts_face_box faces[32];
        int n = 0;
        ts_face_mesh m;
        ts_pose pose;
        if (ts_photo_open(ctx, argv[1], &p) || ts_face_detect(ctx, p, faces, 32, &n) || n < 1) {
            fprintf(stderr, "bench_face: %s\n", n < 1 ? "no face" : ts_ctx_error(ctx));
            return 1;
        }
        double t1 = now_ms();
        int s = ts_face_subject(faces, n, ts_photo_width(p), ts_photo_height(p));
        if (ts_face_mesh_compute(ctx, p, &faces[s], &m) ||
            ts_pose_fit(&g, (const float(*)[3])m.pts, TS_MESH_POINTS, &pose, err, sizeof err)) {
            fprintf(stderr, "bench_face: mesh or pose failed\n");
            return 1;
        }
        double t2 = now_ms();
        ts_photo_unref(p);
        if (r >= 0) ta[r] = t2 - t0, tdet += t1 - t0, tmesh += t2 - t1;
    }
    for (int r = -1; r < runs; r++) {
        double t0 = now_ms();
        VipsImage *im = vips_image_new_from_file(argv[1], "access", VIPS_ACCESS_SEQUENTIAL, NULL);
        VipsImage *mem = im ? vips_image_copy_memory(im) : NULL;
        if (!mem) return 1;
        g_object_unref(mem);
        g_object_unref(im);
        if (r >= 0) tb[r] = now_ms() - t0;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    VipsImage *h = vips_image_new_from_file(argv[1], NULL);
    double ours = median(ta, runs), base = median(tb, runs);
    printf("{\"photo\":\"%s\",\"megapixels\":%.1f,\"runs\":%d,\"analysis_median_ms\":%.1f,"
           "\"of_which_decode_detect_ms\":%.1f,\"of_which_mesh_pose_ms\":%.1f,"
           "\"vips_full_decode_median_ms\":%.1f,\"ratio_to_full_decode\":%.2f,"
           "\"peak_rss_mb\":%.1f}\n",
           argv[1], h ? h->Xsize * (double)h->Ysize / 1e6 : 0, runs, ours, tdet / runs,
           tmesh / runs, base, ours / base, ru.ru_maxrss / 1024.0);
    if (h) g_object_unref(h);
    ts_geom_free(&g);
    ts_ctx_free(ctx);
    free(ta);
    free(tb);
    return 0;
}
