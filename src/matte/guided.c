/* Colour guided filter (He, Sun, Tang, "Guided Image Filtering", TPAMI 2013), giving the
 * alpha's local linear model a . I + b at the work resolution; the full-resolution alpha then
 * applies the upsampled coefficients to the full-resolution colour (He & Sun 2015, "Fast
 * Guided Filter"). Box means by separable running sums: O(1) per pixel whatever the radius. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "matte/matte.h"

typedef struct box_job {
    const float *src;
    float *dst;
    int w, h, bands, r;
} box_job;

/* Rows begin..end: horizontal running sums, src -> dst. */
static void box_rows(void *arg, int begin, int end) {
    const box_job *j = arg;
    int w = j->w, bands = j->bands, r = j->r;
    double acc[64];
    for (int y = begin; y < end; y++) {
        const float *s = j->src + (size_t)y * w * bands;
        float *d = j->dst + (size_t)y * w * bands;
        for (int c = 0; c < bands; c++) acc[c] = 0;
        for (int x = 0; x < r && x < w; x++)
            for (int c = 0; c < bands; c++) acc[c] += s[(size_t)x * bands + c];
        for (int x = 0; x < w; x++) {
            const float *add = x + r < w ? s + (size_t)(x + r) * bands : NULL;
            const float *sub = x - r - 1 >= 0 ? s + (size_t)(x - r - 1) * bands : NULL;
            int x0 = x - r < 0 ? 0 : x - r, x1 = x + r >= w ? w - 1 : x + r;
            double inv = 1.0 / (x1 - x0 + 1);
            float *o = d + (size_t)x * bands;
            for (int c = 0; c < bands; c++) {
                if (add) acc[c] += add[c];
                if (sub) acc[c] -= sub[c];
                o[c] = (float)(acc[c] * inv);
            }
        }
    }
}

/* Columns (as interleaved row offsets) begin..end: vertical running sums, src -> dst. */
static void box_cols(void *arg, int begin, int end) {
    const box_job *j = arg;
    int h = j->h, r = j->r;
    size_t row = (size_t)j->w * j->bands, len = (size_t)(end - begin);
    float *acc = calloc(len, sizeof *acc);
    if (!acc) return;
    const float *s = j->src + begin;
    float *d = j->dst + begin;
    for (int y = 0; y < r && y < h; y++)
        for (size_t k = 0; k < len; k++) acc[k] += s[(size_t)y * row + k];
    for (int y = 0; y < h; y++) {
        const float *add = y + r < h ? s + (size_t)(y + r) * row : NULL;
        const float *sub = y - r - 1 >= 0 ? s + (size_t)(y - r - 1) * row : NULL;
        if (add)
            for (size_t k = 0; k < len; k++) acc[k] += add[k];
        if (sub)
            for (size_t k = 0; k < len; k++) acc[k] -= sub[k];
        int y0 = y - r < 0 ? 0 : y - r, y1 = y + r >= h ? h - 1 : y + r;
        float inv = 1.f / (y1 - y0 + 1);
        float *o = d + (size_t)y * row;
        for (size_t k = 0; k < len; k++) o[k] = acc[k] * inv;
    }
    free(acc);
}

int ts_matte_box_mean(float *img, int w, int h, int bands, int r) {
    if (bands > 64) return -1;
    float *tmp = malloc(sizeof *tmp * (size_t)w * h * bands);
    if (!tmp) return -1;
    /* Rows in double, so long runs do not drift; columns are short enough for float (the
     * window's sum is re-derived every column, errors stay within h additions). */
    box_job j = {img, tmp, w, h, bands, r};
    ts_matte_parallel(h, box_rows, &j);
    j = (box_job){tmp, img, w, h, bands, r};
    ts_matte_parallel(w * bands, box_cols, &j);
    free(tmp);
    return 0;
}

int ts_matte_guided_coef(const ts_fimg *rgb, const float *p, int r, float eps, float *coef) {
    int w = rgb->w, h = rgb->h;
    size_t n = (size_t)w * h;
    /* The 13 local means the filter needs: I (3), p, I*p (3), I I^T (6). */
    enum { NB = 13 };
    float *m = malloc(sizeof *m * n * NB);
    if (!m) return -1;
    for (size_t i = 0; i < n; i++) {
        const float *I = rgb->px + i * rgb->bands;
        float *o = m + i * NB, v = p[i];
        o[0] = I[0], o[1] = I[1], o[2] = I[2], o[3] = v;
        o[4] = I[0] * v, o[5] = I[1] * v, o[6] = I[2] * v;
        o[7] = I[0] * I[0], o[8] = I[0] * I[1], o[9] = I[0] * I[2];
        o[10] = I[1] * I[1], o[11] = I[1] * I[2], o[12] = I[2] * I[2];
    }
    if (ts_matte_box_mean(m, w, h, NB, r) != 0) {
        free(m);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const float *o = m + i * NB;
        double mr = o[0], mg = o[1], mb = o[2], mp = o[3];
        double cr = o[4] - mr * mp, cg = o[5] - mg * mp, cb = o[6] - mb * mp;
        /* Sigma + eps U, symmetric; its inverse by cofactors. */
        double s00 = o[7] - mr * mr + eps, s01 = o[8] - mr * mg, s02 = o[9] - mr * mb;
        double s11 = o[10] - mg * mg + eps, s12 = o[11] - mg * mb, s22 = o[12] - mb * mb + eps;
        double i00 = s11 * s22 - s12 * s12, i01 = s02 * s12 - s01 * s22,
               i02 = s01 * s12 - s02 * s11;
        double i11 = s00 * s22 - s02 * s02, i12 = s01 * s02 - s00 * s12,
               i22 = s00 * s11 - s01 * s01;
        double det = s00 * i00 + s01 * i01 + s02 * i02;
        double ar = 0, ag = 0, ab = 0;
        if (det > 1e-30) {
            ar = (i00 * cr + i01 * cg + i02 * cb) / det;
            ag = (i01 * cr + i11 * cg + i12 * cb) / det;
            ab = (i02 * cr + i12 * cg + i22 * cb) / det;
        }
        float *c = coef + i * 4;
        c[0] = (float)ar, c[1] = (float)ag, c[2] = (float)ab;
        c[3] = (float)(mp - ar * mr - ag * mg - ab * mb);
    }
    free(m);
    return ts_matte_box_mean(coef, w, h, 4, r);
}

typedef struct par_job {
    void (*fn)(void *, int, int);
    void *arg;
    int begin, end;
} par_job;

static void *par_run(void *p) {
    par_job *j = p;
    j->fn(j->arg, j->begin, j->end);
    return NULL;
}

void ts_matte_parallel(int n, void (*fn)(void *arg, int begin, int end), void *arg) {
    static int cores = 0;
    if (!cores) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        cores = c < 1 ? 1 : c > 4 ? 4 : (int)c;
    }
    int parts = n < 64 ? 1 : cores;
    par_job jobs[4];
    pthread_t th[4];
    bool started[4] = {false};
    for (int i = 0; i < parts; i++)
        jobs[i] = (par_job){fn, arg, (int)((long)n * i / parts), (int)((long)n * (i + 1) / parts)};
    /* The last chunk runs on this thread; a thread that cannot start runs inline too. */
    for (int i = 0; i < parts - 1; i++)
        started[i] = pthread_create(&th[i], NULL, par_run, &jobs[i]) == 0;
    for (int i = 0; i < parts - 1; i++)
        if (!started[i]) par_run(&jobs[i]);
    par_run(&jobs[parts - 1]);
    for (int i = 0; i < parts - 1; i++)
        if (started[i]) pthread_join(th[i], NULL);
}
