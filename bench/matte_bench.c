/* Matte benchmark (issue 4): a 12-MP JPEG made from a real photo (`vips resize franck_02159.jpg
 * 12mp.jpg[Q=90] 5.6`, 4032x3226), head-and-shoulders matte at full resolution. Median of N runs
 * with a fresh photo each time (models loaded once, in a warm-up run): open + face analysis +
 * matte, and the matte alone after the face analysis; peak RSS; the ratio to a plain libvips
 * full decode of the same file measured in the same run. Budget: 200 ms. One JSON line.
 *   matte_bench SOURCE_PHOTO [RUNS]       (SOURCE_PHOTO: franck_02159.jpg) */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <vips/vips.h>

#include "trueshot.h"

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
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: matte_bench SOURCE_PHOTO [RUNS]\n");
        return 2;
    }
    int runs = argc > 2 ? atoi(argv[2]) : 15;
    if (runs < 1) runs = 1;
    ts_ctx *ctx;
    if (ts_ctx_new(NULL, &ctx) != TS_OK) {
        fprintf(stderr, "matte_bench: %s\n", ts_last_error());
        return 1;
    }
    char path[] = "/tmp/matte_bench.XXXXXX.jpg";
    int fd = mkstemps(path, 4);
    if (fd < 0) return 1;
    close(fd);
    VipsImage *src = vips_image_new_from_file(argv[1], NULL), *big;
    if (!src || vips_resize(src, &big, 5.6, NULL) || vips_jpegsave(big, path, "Q", 90, NULL)) {
        fprintf(stderr, "matte_bench: %s\n", vips_error_buffer());
        unlink(path);
        return 1;
    }
    int W = big->Xsize, H = big->Ysize;
    g_object_unref(big);
    g_object_unref(src);

    double rss0 = peak_rss_mb();
    double *ta = calloc((size_t)runs, sizeof *ta), *tm = calloc((size_t)runs, sizeof *tm);
    double *tb = calloc((size_t)runs, sizeof *tb);
    int rx = 0, ry = 0, rw = 0, rh = 0;
    for (int r = -1; r < runs; r++) { /* r = -1 warms up and loads the models */
        double t0 = now_ms();
        ts_photo *p;
        const ts_face_analysis *fa;
        ts_matte *m;
        if (ts_photo_open(ctx, path, &p) || ts_photo_subject(ctx, p, &fa)) {
            fprintf(stderr, "matte_bench: %s\n", ts_ctx_error(ctx));
            return 1;
        }
        double t1 = now_ms();
        if (ts_photo_matte(ctx, p, NULL, &m)) {
            fprintf(stderr, "matte_bench: %s\n", ts_ctx_error(ctx));
            return 1;
        }
        double t2 = now_ms();
        ts_matte_region(m, &rx, &ry, &rw, &rh);
        ts_matte_free(m);
        ts_photo_unref(p);
        if (r >= 0) ta[r] = t2 - t0, tm[r] = t2 - t1;
    }
    double rss_matte = peak_rss_mb();
    for (int r = -1; r < runs; r++) {
        double t0 = now_ms();
        VipsImage *im = vips_image_new_from_file(path, "access", VIPS_ACCESS_SEQUENTIAL, NULL);
        VipsImage *mem = im ? vips_image_copy_memory(im) : NULL;
        if (!mem) return 1;
        g_object_unref(mem);
        g_object_unref(im);
        if (r >= 0) tb[r] = now_ms() - t0;
    }
    double total = median(ta, runs), matte = median(tm, runs), base = median(tb, runs);
    printf("{\"photo\":\"%dx%d (%.1f MP) from %s\",\"runs\":%d,\"region\":[%d,%d,%d,%d],"
           "\"region_megapixels\":%.2f,\"open_faces_matte_median_ms\":%.1f,"
           "\"matte_only_median_ms\":%.1f,\"vips_full_decode_median_ms\":%.1f,"
           "\"ratio_total_to_full_decode\":%.2f,\"ratio_matte_to_full_decode\":%.2f,"
           "\"peak_rss_mb\":%.1f,\"rss_before_first_matte_mb\":%.1f,\"budget_ms\":200,"
           "\"within_budget\":%s}\n",
           W, H, W * (double)H / 1e6, argv[1], runs, rx, ry, rw, rh, rw * (double)rh / 1e6, total,
           matte, base, total / base, matte / base, rss_matte, rss0,
           total <= 200 ? "true" : "false");
    unlink(path);
    free(ta), free(tm), free(tb);
    ts_ctx_free(ctx);
    return 0;
}
