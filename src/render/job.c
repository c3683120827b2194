#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "render/render.h"
#include "render/srgb.h"

float ts_srgb_dec_lut[TS_SRGB_LUT_N + 2];
float ts_srgb_enc_lut[TS_SRGB_LUT_N + 2];
static pthread_once_t srgb_once = PTHREAD_ONCE_INIT;

static void srgb_fill(void) {
    for (int i = 0; i <= TS_SRGB_LUT_N + 1; i++) {
        double v = fmin(1.0, (double)i / TS_SRGB_LUT_N);
        ts_srgb_dec_lut[i] = (float)(v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4));
        double x = v * v;
        ts_srgb_enc_lut[i] =
            (float)(255 * (x <= 0.0031308 ? 12.92 * x : 1.055 * pow(x, 1 / 2.4) - 0.055));
    }
}

void ts_srgb_init(void) {
    pthread_once(&srgb_once, srgb_fill);
}

void ts_render_edit(ts_render_job *job, const char *fmt, ...) {
    if (job->n_edits >= TS_RENDER_MAX_EDITS) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(job->edits[job->n_edits++], sizeof job->edits[0], fmt, ap);
    va_end(ap);
}

void ts_render_note(ts_render_job *job, const char *fmt, ...) {
    if (job->n_notes >= TS_RENDER_MAX_NOTES) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(job->notes[job->n_notes++], sizeof job->notes[0], fmt, ap);
    va_end(ap);
}

void ts_render_replace(VipsImage **slot, VipsImage *im) {
    if (*slot) g_object_unref(*slot);
    *slot = im;
}

ts_status ts_render_map(ts_render_job *job, ts_render_op op, void *user, const char *what) {
    VipsImage *a = op(job->rgb, user), *b = NULL;
    if (a && job->fg) b = op(job->fg, user);
    if (!a || (job->fg && !b)) {
        if (a) g_object_unref(a);
        return ts_fail(job->ctx, TS_ERR_INTERNAL, "%s: %s", what, vips_error_buffer());
    }
    ts_render_replace(&job->rgb, a);
    if (b) ts_render_replace(&job->fg, b);
    return TS_OK;
}

/* ---- per-pixel maps ----------------------------------------------------------------------- */

static void free_buffer(VipsImage *im, void *buf) {
    (void)im;
    g_free(buf);
}

/* One half of a map: pixels [first, first + n) of one image. When ref_in is given (fg mapped
 * after rgb), a pixel equal to rgb's input takes rgb's output: the op is per pixel, so the
 * result is the same, and most of fg (where alpha is 1, and outside the matte) equals rgb. */
typedef struct map_part {
    ts_render_px_op op;
    void *user;
    const float *in, *ref_in, *ref_out;
    float *out;
    size_t first, n;
} map_part;

/* Whether pixel i is bit for bit the same in a and b. */
static inline int same_px(const float *a, const float *b, size_t i) {
    uint32_t x[3], y[3];
    memcpy(x, a + 3 * i, sizeof x);
    memcpy(y, b + 3 * i, sizeof y);
    return x[0] == y[0] && x[1] == y[1] && x[2] == y[2];
}

static void *map_part_run(void *arg) {
    const map_part *m = arg;
    size_t end = m->first + m->n;
    if (!m->ref_in) {
        m->op(m->in, m->out, m->first, m->n, m->user);
        return NULL;
    }
    size_t i = m->first;
    while (i < end) {
        size_t j = i;
        while (j < end && same_px(m->in, m->ref_in, j)) j++;
        if (j > i) memcpy(m->out + 3 * i, m->ref_out + 3 * i, 3 * sizeof(float) * (j - i));
        i = j;
        while (j < end && !same_px(m->in, m->ref_in, j)) j++;
        if (j > i) m->op(m->in, m->out, i, j - i, m->user);
        i = j;
    }
    return NULL;
}

/* Maps one image in two halves, the second on a thread of its own. */
static void map_two(map_part *m) {
    map_part h[2] = {*m, *m};
    h[0].n = m->n / 2, h[1].first = m->first + h[0].n, h[1].n = m->n - h[0].n;
    pthread_t th;
    int threaded = m->n >= 65536 && pthread_create(&th, NULL, map_part_run, &h[1]) == 0;
    map_part_run(&h[0]);
    if (threaded)
        pthread_join(th, NULL);
    else
        map_part_run(&h[1]);
}

VipsImage *ts_render_wrap(void *buf, size_t bytes, int w, int h, int bands, VipsBandFormat fmt) {
    VipsImage *im = vips_image_new_from_memory(buf, bytes, w, h, bands, fmt);
    if (!im) {
        g_free(buf);
        return NULL;
    }
    g_signal_connect(im, "postclose", G_CALLBACK(free_buffer), buf);
    im->Type = bands == 3 ? VIPS_INTERPRETATION_sRGB : VIPS_INTERPRETATION_B_W;
    return im;
}

/* A new image of in's shape around buf (freed with the image); NULL, buf freed, on failure. */
static VipsImage *wrap_like(float *buf, VipsImage *in) {
    VipsImage *im = ts_render_wrap(buf, VIPS_IMAGE_SIZEOF_IMAGE(in), in->Xsize, in->Ysize,
                                   in->Bands, VIPS_FORMAT_FLOAT);
    if (im) im->Type = in->Type, im->Xres = in->Xres, im->Yres = in->Yres;
    return im;
}

ts_status ts_render_map_px(ts_render_job *job, ts_render_px_op op, void *user, const char *what) {
    VipsImage *src[2] = {job->rgb, job->fg}, *mem[2] = {NULL, NULL}, *res[2] = {NULL, NULL};
    int n_img = job->fg ? 2 : 1, ok = 1;
    for (int k = 0; k < n_img && ok; k++) {
        ok = src[k] && src[k]->Bands == 3 && src[k]->BandFmt == VIPS_FORMAT_FLOAT &&
             (mem[k] = vips_image_copy_memory(src[k])) != NULL;
        if (ok && k == 1) ok = mem[1]->Xsize == mem[0]->Xsize && mem[1]->Ysize == mem[0]->Ysize;
    }
    float *out[2] = {NULL, NULL};
    for (int k = 0; k < n_img && ok; k++) {
        size_t npx = (size_t)mem[k]->Xsize * mem[k]->Ysize;
        out[k] = g_try_malloc(VIPS_IMAGE_SIZEOF_IMAGE(mem[k]));
        if (!out[k]) {
            ok = 0;
            break;
        }
        map_part m = {op, user, (const float *)VIPS_IMAGE_ADDR(mem[k], 0, 0), NULL, NULL, out[k],
                      0,  npx};
        if (k == 1) m.ref_in = (const float *)VIPS_IMAGE_ADDR(mem[0], 0, 0), m.ref_out = out[0];
        map_two(&m);
    }
    for (int k = 0; k < n_img && ok; k++) {
        res[k] = wrap_like(out[k], mem[k]);
        out[k] = NULL;
        ok = res[k] != NULL;
    }
    for (int k = 0; k < 2; k++) {
        g_free(out[k]);
        if (mem[k]) g_object_unref(mem[k]);
    }
    if (!ok) {
        for (int k = 0; k < 2; k++)
            if (res[k]) g_object_unref(res[k]);
        return ts_fail(job->ctx, TS_ERR_INTERNAL, "%s: %s", what,
                       vips_error_buffer()[0] ? vips_error_buffer()
                                              : "the canvas must be 3-band float");
    }
    ts_render_replace(&job->rgb, res[0]);
    if (res[1]) ts_render_replace(&job->fg, res[1]);
    return TS_OK;
}

typedef struct split_part {
    ts_render_range_fn fn;
    void *user;
    size_t first, n;
} split_part;

static void *split_run(void *arg) {
    const split_part *p = arg;
    p->fn(p->first, p->n, p->user);
    return NULL;
}

void ts_render_split2(ts_render_range_fn fn, void *user, size_t n, size_t min_n) {
    split_part h = {fn, user, n / 2, n - n / 2};
    pthread_t th;
    int threaded = n >= min_n && pthread_create(&th, NULL, split_run, &h) == 0;
    fn(0, n / 2, user);
    if (threaded)
        pthread_join(th, NULL);
    else
        fn(h.first, h.n, user);
}

ts_status ts_render_colour_canvas(ts_render_job *job, const char *stage) {
    ts_srgb_init();
    VipsImage *im = job->rgb;
    if (!im || im->Bands != 3 || im->BandFmt != VIPS_FORMAT_FLOAT)
        return ts_fail(job->ctx, TS_ERR_ARGUMENT, "%s: the canvas must be 3-band float", stage);
    return TS_OK;
}

void ts_render_job_clear(ts_render_job *job) {
    ts_render_replace(&job->fg, NULL);
    ts_render_replace(&job->rgb, NULL);
    ts_render_replace(&job->alpha, NULL);
}
