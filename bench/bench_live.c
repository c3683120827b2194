/* The studio's live coaching, one webcam frame (DESIGN.md budget: 30 ms for 640x480): the same
 * call the server makes for POST /api/live (studio_live: decode from memory, detection, mesh,
 * pose, light statistics, tips), on 640x480 JPEG frames cut from a real photo. Baseline in the
 * same run: a plain libvips decode of the same frame. Prints medians and the ratio.
 *
 *   bench_live [PHOTO] [RUNS]   (default: franck_02045.jpg from the cache, 101 runs) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vips/vips.h>

#include "studio.h"
#include "trueshot.h"

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    return v[n / 2];
}

int main(int argc, char **argv) {
    if (VIPS_INIT(argv[0])) return 1;
    char def[1200];
    const char *cache = getenv("TRUESHOT_CACHE");
    if (cache)
        snprintf(def, sizeof def, "%s/photos/franck_02045.jpg", cache);
    else
        snprintf(def, sizeof def, "%s/.cache/trueshot/photos/franck_02045.jpg",
                 getenv("HOME") ? getenv("HOME") : ".");
    const char *photo = argc > 1 ? argv[1] : def;
    int runs = argc > 2 ? atoi(argv[2]) : 101;
    if (runs < 3) runs = 3;
    /* The frame: the photo fitted into 640x480, as a webcam would send it (JPEG q80). */
    VipsImage *t = NULL;
    void *jpeg = NULL;
    size_t len = 0;
    if (vips_thumbnail(photo, &t, 640, "height", 480, "crop", VIPS_INTERESTING_CENTRE, NULL) ||
        vips_jpegsave_buffer(t, &jpeg, &len, "Q", 80, NULL)) {
        fprintf(stderr, "bench_live: %s: %s\n", photo, vips_error_buffer());
        return 1;
    }
    printf("bench_live: %s as a %dx%d JPEG frame (%zu bytes), %d runs\n", photo, t->Xsize, t->Ysize,
           len, runs);
    g_object_unref(t);
    ts_ctx *ctx;
    if (ts_ctx_new(NULL, &ctx)) {
        fprintf(stderr, "bench_live: %s\n", ts_last_error());
        return 1;
    }
    double *live = calloc((size_t)runs, sizeof *live), *dec = calloc((size_t)runs, sizeof *dec);
    int faces = 0;
    for (int i = -3; i < runs; i++) { /* three warm-up runs */
        double t0 = now_ms();
        VipsImage *im = vips_image_new_from_buffer(jpeg, len, "", NULL), *mem = NULL;
        if (im) mem = vips_image_copy_memory(im);
        double t1 = now_ms();
        if (im) g_object_unref(im);
        if (mem) g_object_unref(mem);
        json_t *o = NULL;
        char err[300];
        double t2 = now_ms();
        int st = studio_live(ctx, jpeg, len, &o, err, sizeof err);
        double t3 = now_ms();
        if (st != 200) {
            fprintf(stderr, "bench_live: %s\n", err);
            return 1;
        }
        faces += json_object_get(o, "face") && !json_is_null(json_object_get(o, "face"));
        json_decref(o);
        if (i >= 0) dec[i] = t1 - t0, live[i] = t3 - t2;
    }
    double ml = median(live, runs), md = median(dec, runs);
    printf("live frame (decode, detection, mesh, pose, light, tips)  median %6.1f ms   budget 30\n",
           ml);
    printf("baseline: libvips decode of the same frame                median %6.1f ms\n", md);
    printf("ratio live / decode %.1f; a face in %d of %d frames\n", ml / md, faces, runs + 3);
    free(live), free(dec);
    g_free(jpeg);
    ts_ctx_free(ctx);
    return 0;
}
