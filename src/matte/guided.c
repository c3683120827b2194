/* Colour guided filter (He, Sun, Tang, "Guided Image Filtering", TPAMI 2013), giving the
 * alpha's local linear model a . I + b at the work resolution; the full-resolution alpha then
 * applies the upsampled coefficients to the full-resolution colour (He & Sun 2015, "Fast
 * Guided Filter"). Box means by separable running sums: O(1) per pixel whatever the radius. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "matte/matte.h"

/* Streaming box mean: rows of `bands` interleaved planes come from a producer and their box
 * means (radius r, windows clipped at the sides and normalised by the pixels inside) go to a
 * consumer, one row at a time, so the planes are never stored whole. Vertical running sums over
 * a row-sized accumulator, then a horizontal running sum within the row. */
typedef struct box_stream {
    int w, h, bands, r;
    void (*produce)(void *arg, int y, float *row);        /* row y of the planes */
    void (*consume)(void *arg, int y, const float *mean); /* box means of row y */
    void *arg;
} box_stream;

/* Horizontal box mean of one row of B interleaved planes (sums over rows already divided by
 * their count); B a compile-time constant where inlined. */
static inline __attribute__((always_inline)) void row_mean(const float *s, float *d, int w, int r,
                                                           const int B) {
    float acc[64];
    for (int c = 0; c < B; c++) acc[c] = 0;
    for (int x = 0; x < r && x < w; x++)
        for (int c = 0; c < B; c++) acc[c] += s[(size_t)x * B + c];
    int x = 0;
    /* Left edge: the window grows. */
    for (; x < w && x - r - 1 < 0; x++) {
        if (x + r < w)
            for (int c = 0; c < B; c++) acc[c] += s[(size_t)(x + r) * B + c];
        int x1 = x + r >= w ? w - 1 : x + r;
        float inv = 1.f / (x1 + 1);
        for (int c = 0; c < B; c++) d[(size_t)x * B + c] = acc[c] * inv;
    }
    /* Middle: full windows. */
    float inv = 1.f / (2 * r + 1);
    for (; x + r < w; x++) {
        const float *add = s + (size_t)(x + r) * B, *sub = s + (size_t)(x - r - 1) * B;
        float *o = d + (size_t)x * B;
        for (int c = 0; c < B; c++) {
            acc[c] += add[c] - sub[c];
            o[c] = acc[c] * inv;
        }
    }
    /* Right edge: the window shrinks. */
    for (; x < w; x++) {
        for (int c = 0; c < B; c++) acc[c] -= s[(size_t)(x - r - 1) * B + c];
        float iv = 1.f / (w - (x - r));
        for (int c = 0; c < B; c++) d[(size_t)x * B + c] = acc[c] * iv;
    }
}

static void box_rows(void *arg, int begin, int end) {
    const box_stream *b = arg;
    int w = b->w, h = b->h, B = b->bands, r = b->r;
    size_t len = (size_t)w * B;
    float *acc = calloc(len * 4, sizeof *acc);
    if (!acc) return; /* the caller checked memory first; see ts_matte_box_stream */
    float *row = acc + len, *vm = row + len, *out = vm + len;
    int y0 = begin - r - 1 < 0 ? 0 : begin - r - 1; /* the first row is subtracted first */
    for (int y = y0; y < begin + r && y < h; y++) {
        b->produce(b->arg, y, row);
        for (size_t k = 0; k < len; k++) acc[k] += row[k];
    }
    for (int y = begin; y < end; y++) {
        if (y + r < h) {
            b->produce(b->arg, y + r, row);
            for (size_t k = 0; k < len; k++) acc[k] += row[k];
        }
        if (y - r - 1 >= 0) {
            b->produce(b->arg, y - r - 1, row);
            for (size_t k = 0; k < len; k++) acc[k] -= row[k];
        }
        int ya = y - r < 0 ? 0 : y - r, yb = y + r >= h ? h - 1 : y + r;
        float inv = 1.f / (yb - ya + 1);
        for (size_t k = 0; k < len; k++) vm[k] = acc[k] * inv;
        switch (B) {
        case 4:
            row_mean(vm, out, w, r, 4);
            break;
        case 8:
            row_mean(vm, out, w, r, 8);
            break;
        case 12:
            row_mean(vm, out, w, r, 12);
            break;
        case 13:
            row_mean(vm, out, w, r, 13);
            break;
        default:
            row_mean(vm, out, w, r, B);
            break;
        }
        b->consume(b->arg, y, out);
    }
    free(acc);
}

int ts_matte_box_stream(int w, int h, int bands, int r,
                        void (*produce)(void *arg, int y, float *row),
                        void (*consume)(void *arg, int y, const float *mean), void *arg) {
    if (bands > 64 || bands < 1) return -1;
    /* Each thread allocates its own rows; check that this much is there at all. */
    float *probe = malloc(sizeof *probe * (size_t)w * bands * 4 * 2);
    if (!probe) return -1;
    free(probe);
    box_stream b = {w, h, bands, r, produce, consume, arg};
    ts_matte_parallel(h, box_rows, &b);
    return 0;
}

/* The guided filter's two passes. */
typedef struct guided_job {
    const ts_fimg *rgb;
    const float *p;
    float eps;
    float *ab;   /* per-pixel coefficients (pass 1 output) */
    float *coef; /* their box means (pass 2 output) */
} guided_job;

/* The 13 planes the filter needs: I (3), p, I*p (3), I I^T (6). */
static void guided_produce(void *arg, int y, float *o) {
    const guided_job *g = arg;
    int w = g->rgb->w, bands = g->rgb->bands;
    const float *I = g->rgb->px + (size_t)y * w * bands, *p = g->p + (size_t)y * w;
    for (int x = 0; x < w; x++, I += bands, o += 13) {
        float v = p[x];
        o[0] = I[0], o[1] = I[1], o[2] = I[2], o[3] = v;
        o[4] = I[0] * v, o[5] = I[1] * v, o[6] = I[2] * v;
        o[7] = I[0] * I[0], o[8] = I[0] * I[1], o[9] = I[0] * I[2];
        o[10] = I[1] * I[1], o[11] = I[1] * I[2], o[12] = I[2] * I[2];
    }
}

static void guided_solve(void *arg, int y, const float *mean) {
    const guided_job *g = arg;
    int w = g->rgb->w;
    double eps = g->eps;
    float *c = g->ab + (size_t)y * w * 4;
    for (int x = 0; x < w; x++, c += 4) {
        const float *o = mean + (size_t)x * 13;
        double mr = o[0], mg = o[1], mb = o[2], mp = o[3];
        /* A window of constant p (all sure person or all background): a = 0, b = p. */
        if (mp <= 0.f || mp >= 1.f) {
            c[0] = c[1] = c[2] = 0, c[3] = (float)mp;
            continue;
        }
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
        c[0] = (float)ar, c[1] = (float)ag, c[2] = (float)ab;
        c[3] = (float)(mp - ar * mr - ag * mg - ab * mb);
    }
}

static void coef_produce(void *arg, int y, float *row) {
    const guided_job *g = arg;
    memcpy(row, g->ab + (size_t)y * g->rgb->w * 4, sizeof *row * g->rgb->w * 4);
}

static void coef_consume(void *arg, int y, const float *mean) {
    const guided_job *g = arg;
    memcpy(g->coef + (size_t)y * g->rgb->w * 4, mean, sizeof *mean * g->rgb->w * 4);
}

int ts_matte_guided_coef(const ts_fimg *rgb, const float *p, int r_fit, int r_avg, float eps,
                         float *coef) {
    int w = rgb->w, h = rgb->h;
    guided_job g = {rgb, p, eps, malloc(sizeof(float) * (size_t)w * h * 4), coef};
    if (!g.ab) return -1;
    int rc = ts_matte_box_stream(w, h, 13, r_fit, guided_produce, guided_solve, &g);
    if (rc == 0) rc = ts_matte_box_stream(w, h, 4, r_avg, coef_produce, coef_consume, &g);
    free(g.ab);
    return rc;
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
