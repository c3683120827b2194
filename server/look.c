/* A look of one photo for the studio: the stages of render/pipeline.h with the studio's own
 * controls (background, crop, retouch, brightness) set on a copy of the style.
 *
 * Previews run frame -> tone -> brightness -> light -> retouch -> background on the photo's
 * preview copy (long side 1600) at a canvas of 720 px on the long side, and are encoded to JPEG
 * in memory: no file, no identity check (the file made by "render" has both). The last previews
 * are kept by their parameters, so going back to a setting answers at once, and the canvas after
 * each stage by a hash of the parameters that made it, so a slider re-runs only the stages from
 * its own on.
 *
 * Files run the same stages on the full photo, then export, the identity gate and the edit map,
 * as ts_render_look does. Brightness is the one control the library's stages don't have yet: an
 * exposure change in linear light, listed among the edits the file discloses. */
#include <math.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"
#include "render/export.h"
#include "render/pipeline.h"
#include "styles/style.h"
#include "studio.h"

#define PREVIEW_SIDE 720
#define PREVIEW_CACHE 48

static const double crop_aspect[] = {1.0, 0.8, 2.0 / 3.0, 0.8, 1.0};

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* The style with the studio's overrides; NULL with err set. */
static ts_style *look_style(ts_ctx *ctx, const studio_look_params *lp, int file, char *err,
                            size_t cap) {
    ts_style *s = NULL;
    ts_status st = ts_style_load_builtin(ctx, lp->style, &s);
    if (!st && lp->retouch >= 0) {
        char v[32];
        snprintf(v, sizeof v, "%.3f", lp->retouch);
        st = ts_style_set(ctx, s, "retouch", "strength", v);
    }
    if (!st && lp->background[0]) {
        if (!strcmp(lp->background, "vertical"))
            st = ts_style_set(ctx, s, "background", "kind", "gradient");
        else if (studio_index_of(studio_kinds, lp->background) >= 0)
            st = ts_style_set(ctx, s, "background", "kind", lp->background);
        else {
            st = ts_style_set(ctx, s, "background", "color", lp->background);
            if (!st) st = ts_style_set(ctx, s, "background", "auto", "no");
            /* A colour on a look that keeps the photo's background means a plain backdrop. */
            char kind[16];
            ts_param_format(ts_param_find(ts_stage_background.table, "kind"),
                            ts_style_params(s, "background"), kind, sizeof kind);
            if (!st && !strcmp(kind, "keep"))
                st = ts_style_set(ctx, s, "background", "kind", "solid");
        }
    }
    if (!st && file) st = ts_style_set(ctx, s, "export", "format", lp->format);
    if (st) {
        snprintf(err, cap, "%s", ts_ctx_error(ctx));
        ts_style_free(s);
        return NULL;
    }
    return s;
}

/* The frame block for the chosen crop: the look's own output with that crop when it has one
 * (its size), else its first output's size with the crop changed. preview_side > 0 sets the
 * width so that the long side is that many pixels. crop_out gets the crop's name. */
static int look_frame(ts_ctx *ctx, const ts_style *s, const char *crop, int preview_side,
                      void *params, char *crop_out, size_t crop_cap) {
    int out = 0;
    for (int i = 0; crop[0] && i < ts_style_output_count(s); i++)
        if (!strcmp(ts_style_output_at(s, i)->crop, crop)) {
            out = i;
            break;
        }
    if (ts_style_frame_params(ctx, s, out, params)) return -1;
    const ts_param *pc = ts_param_find(ts_stage_frame.table, "crop");
    char e[200];
    if (crop[0] && ts_param_set(pc, params, crop, e, sizeof e)) return -1;
    ts_param_format(pc, params, crop_out, crop_cap);
    if (preview_side > 0) {
        int k = studio_index_of(studio_crops, crop_out);
        double a = k >= 0 ? crop_aspect[k] : 1.0;
        char w[16];
        snprintf(w, sizeof w, "%d", a >= 1 ? preview_side : (int)lround(preview_side * a));
        if (ts_param_set(ts_param_find(ts_stage_frame.table, "width"), params, w, e, sizeof e))
            return -1;
    }
    return 0;
}

/* ---- brightness: an exposure change in linear light ---- */

#define LUT_N 1024
typedef struct brightness_lut {
    float v[LUT_N + 1]; /* encoded 0..255 in LUT_N steps -> encoded 0..255 */
} brightness_lut;

static double srgb_to_linear(double v) {
    return v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4);
}
static double linear_to_srgb(double v) {
    return v <= 0.0031308 ? 12.92 * v : 1.055 * pow(v, 1 / 2.4) - 0.055;
}

static void brightness_px(const float *in, float *out, size_t first, size_t n, void *user) {
    const brightness_lut *l = user;
    for (size_t i = 3 * first; i < 3 * (first + n); i++) {
        float x = in[i] < 0 ? 0 : in[i] > 255 ? 255 : in[i];
        float f = x * (LUT_N / 255.f);
        int k = (int)f;
        if (k >= LUT_N) k = LUT_N - 1;
        float t = f - k;
        out[i] = l->v[k] + t * (l->v[k + 1] - l->v[k]);
    }
}

/* brightness b: b / 2 stops; brightening rolls off towards white so nothing clips. */
static ts_status apply_brightness(ts_render_job *job, double b) {
    if (fabs(b) < 1e-3) return TS_OK;
    brightness_lut *l = malloc(sizeof *l);
    if (!l) return ts_fail(job->ctx, TS_ERR_NOMEM, "out of memory");
    double g = pow(2, b / 2);
    for (int i = 0; i <= LUT_N; i++) {
        double x = srgb_to_linear((double)i / LUT_N);
        double y = g > 1 ? x * g / (1 + (g - 1) * x) : x * g;
        l->v[i] = (float)(255 * linear_to_srgb(y));
    }
    ts_status st = ts_render_map_px(job, brightness_px, l, "brightness");
    free(l);
    if (!st) ts_render_edit(job, "brightness %+.2f stops", b / 2);
    return st;
}

/* tone -> brightness -> light -> retouch on a framed job. */
static ts_status face_stages(ts_render_job *job, const ts_style *s, double brightness) {
    ts_status st = ts_stage_tone.run(job, ts_style_params(s, "tone"));
    if (!st) st = apply_brightness(job, brightness);
    if (!st) st = ts_stage_light.run(job, ts_style_params(s, "light"));
    if (!st) st = ts_stage_retouch.run(job, ts_style_params(s, "retouch"));
    return st;
}

static int analysis_status(const studio_analysis *a, char *err, size_t cap) {
    if (a->status == TS_ERR_NO_FACE)
        return snprintf(err, cap,
                        "No face was found in this photo, so it cannot be framed as "
                        "a headshot."),
               422;
    if (a->status == TS_ERR_NO_PERSON)
        return snprintf(err, cap, "No person could be cut out of this photo."), 422;
    if (a->status) return snprintf(err, cap, "This photo could not be analysed: %s", a->error), 500;
    return 0;
}

/* A photo whose face runs off its edge cannot be framed (frame says why): the person's photo,
 * not the studio, is at fault. 0 for any other status. */
static int framing_status(ts_status st, ts_ctx *ctx, char *err, size_t cap) {
    if (st != TS_ERR_FRAMING && st != TS_ERR_FACE_SMALL) return 0;
    return snprintf(err, cap, "This photo cannot be framed as a headshot: %s", ts_ctx_error(ctx)),
           422;
}

/* ---- previews ---- */

/* Finished previews, by their parameters. */
typedef struct cached_preview {
    char key[512];
    void *jpeg;
    size_t len;
    long used;
} cached_preview;

/* Canvases part way through the stages, by a hash of the parameters that made them (after
 * darktable's pixelpipe cache): moving the retouch slider re-runs retouch and background only,
 * changing the backdrop re-runs the background only. */
typedef struct cached_canvas {
    uint64_t hash;
    ts_render_job job; /* its images in memory, one reference held here */
    long used;
} cached_canvas;

#define CANVAS_CACHE 4

static cached_preview cache[PREVIEW_CACHE];
static cached_canvas canvases[CANVAS_CACHE];
static long cache_clock;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static int cache_get(const char *key, void **jpeg, size_t *len) {
    int hit = 0;
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < PREVIEW_CACHE && !hit; i++)
        if (cache[i].jpeg && !strcmp(cache[i].key, key)) {
            *jpeg = g_memdup2(cache[i].jpeg, cache[i].len);
            *len = cache[i].len;
            cache[i].used = ++cache_clock;
            hit = *jpeg != NULL;
        }
    pthread_mutex_unlock(&cache_lock);
    return hit;
}

static void cache_put(const char *key, const void *jpeg, size_t len) {
    pthread_mutex_lock(&cache_lock);
    int slot = 0;
    for (int i = 1; i < PREVIEW_CACHE; i++)
        if (cache[i].used < cache[slot].used) slot = i;
    g_free(cache[slot].jpeg);
    snprintf(cache[slot].key, sizeof cache[slot].key, "%s", key);
    cache[slot].jpeg = g_memdup2(jpeg, len);
    cache[slot].len = cache[slot].jpeg ? len : 0;
    cache[slot].used = ++cache_clock;
    pthread_mutex_unlock(&cache_lock);
}

static void job_ref(ts_render_job *job) {
    VipsImage *all[] = {job->rgb, job->alpha, job->fg};
    for (int i = 0; i < 3; i++)
        if (all[i]) g_object_ref(all[i]);
}

/* A copy of the canvas cached under hash into *job (its own references), or 0. */
static int canvas_get(uint64_t hash, ts_render_job *job) {
    int hit = 0;
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < CANVAS_CACHE && !hit; i++)
        if (canvases[i].job.rgb && canvases[i].hash == hash) {
            *job = canvases[i].job;
            job_ref(job);
            job->kept_mask = NULL; /* the cached job's own (a cached job keeps none) */
            canvases[i].used = ++cache_clock;
            hit = 1;
        }
    pthread_mutex_unlock(&cache_lock);
    return hit;
}

static void canvas_put(uint64_t hash, const ts_render_job *job) {
    ts_render_job keep = *job;
    keep.kept_mask = NULL; /* the job's, freed with it: the cache holds only the images */
    VipsImage **all[] = {&keep.rgb, &keep.alpha, &keep.fg};
    for (int i = 0; i < 3; i++)
        if (*all[i] && !(*all[i] = vips_image_copy_memory(*all[i]))) {
            vips_error_clear();
            for (int k = 0; k < i; k++) ts_render_replace(all[k], NULL);
            return;
        }
    pthread_mutex_lock(&cache_lock);
    int slot = 0;
    for (int i = 1; i < CANVAS_CACHE; i++)
        if (canvases[i].used < canvases[slot].used) slot = i;
    ts_render_job old = canvases[slot].job;
    canvases[slot].hash = hash;
    canvases[slot].job = keep;
    canvases[slot].used = ++cache_clock;
    pthread_mutex_unlock(&cache_lock);
    ts_render_job_clear(&old);
}

void studio_preview_cache_clear(void) {
    pthread_mutex_lock(&cache_lock);
    ts_render_job old[CANVAS_CACHE];
    for (int i = 0; i < PREVIEW_CACHE; i++) {
        g_free(cache[i].jpeg);
        memset(&cache[i], 0, sizeof cache[i]);
    }
    for (int i = 0; i < CANVAS_CACHE; i++) {
        old[i] = canvases[i].job;
        memset(&canvases[i], 0, sizeof canvases[i]);
    }
    pthread_mutex_unlock(&cache_lock);
    for (int i = 0; i < CANVAS_CACHE; i++) ts_render_job_clear(&old[i]);
}

static uint64_t hash_text(const char *s, uint64_t h) {
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Runs step k of the preview's stages on job: 0 frame, 1 tone, 2 brightness and light,
 * 3 retouch. */
static ts_status preview_step(ts_render_job *job, int k, const ts_style *s, const void *frame,
                              double brightness) {
    switch (k) {
    case 0:
        return ts_stage_frame.run(job, frame); /* the caller holds the frame lock */
    case 1:
        return ts_stage_tone.run(job, ts_style_params(s, "tone"));
    case 2: {
        ts_status st = apply_brightness(job, brightness);
        return st ? st : ts_stage_light.run(job, ts_style_params(s, "light"));
    }
    default:
        return ts_stage_retouch.run(job, ts_style_params(s, "retouch"));
    }
}

/* The preview canvas up to the background: the deepest step already cached, then the rest,
 * each step's canvas cached in turn. */
static ts_status preview_canvas(ts_ctx *ctx, studio_photo *p, studio_analysis *a, const ts_style *s,
                                const void *frame, const studio_look_params *lp,
                                ts_render_job *job) {
    uint64_t h[4];
    h[0] = ts_params_hash(ts_stage_frame.table, frame, hash_text(p->id, 0));
    h[1] = ts_params_hash(ts_stage_tone.table, ts_style_params(s, "tone"), h[0]);
    h[2] = ts_params_hash(ts_stage_light.table, ts_style_params(s, "light"),
                          hash_text("brightness", h[1]) ^
                              (uint64_t)llround(lp->brightness * 1000 + 1000));
    h[3] = ts_params_hash(ts_stage_retouch.table, ts_style_params(s, "retouch"), h[2]);
    int last = lp->before ? 0 : 3, k = last;
    while (k >= 0 && !canvas_get(h[k], job)) k--;
    if (k < 0) memset(job, 0, sizeof *job);
    /* A cached canvas may come from an analysis since dropped and made again: the same results,
     * at other addresses. */
    job->photo = a->photo, job->face = a->face, job->matte = a->matte;
    job->ctx = ctx, job->cache = a->cache;
    ts_status st = TS_OK;
    for (k++; !st && k <= last; k++) {
        if (k == 0) studio_frame_lock(p, 1, 1);
        st = preview_step(job, k, s, frame, lp->brightness);
        if (k == 0) studio_frame_lock(p, 1, 0);
        if (!st) canvas_put(h[k], job);
    }
    return st;
}

static int preview_render(ts_ctx *ctx, studio_photo *p, const studio_look_params *lp,
                          const char *key, void **jpeg, size_t *len, char *err, size_t cap) {
    ts_style *s = look_style(ctx, lp, 0, err, cap);
    if (!s) return 400;
    alignas(max_align_t) char frame[512];
    char crop[16];
    if (look_frame(ctx, s, lp->crop, PREVIEW_SIDE, frame, crop, sizeof crop)) {
        snprintf(err, cap, "%s", ts_ctx_error(ctx));
        ts_style_free(s);
        return 400;
    }
    studio_analysis *a = studio_analysis_get(ctx, p, 1);
    int status = analysis_status(a, err, cap);
    ts_render_job job = {0};
    ts_status st = TS_OK;
    if (!status) {
        st = preview_canvas(ctx, p, a, s, frame, lp, &job);
        if (!st && !lp->before)
            st = ts_stage_background.run(&job, ts_style_params(s, "background"));
    }
    studio_analysis_put(p, 1);
    if (!status && st) {
        status = framing_status(st, ctx, err, cap);
        if (!status) {
            status = 500;
            snprintf(err, cap, "The preview could not be made: %s", ts_ctx_error(ctx));
        }
    }
    VipsImage *u8 = NULL;
    if (!status) {
        if (vips_cast_uchar(job.rgb, &u8, NULL) ||
            vips_jpegsave_buffer(u8, jpeg, len, "Q", 85, "strip", TRUE, NULL)) {
            status = 500;
            snprintf(err, cap, "The preview could not be encoded: %s", vips_error_buffer());
            vips_error_clear();
        }
    }
    if (u8) g_object_unref(u8);
    ts_render_job_clear(&job);
    ts_style_free(s);
    if (status) return status;
    cache_put(key, *jpeg, *len);
    return 200;
}

int studio_preview(studio_photo *p, const studio_look_params *lp, void **jpeg, size_t *len,
                   char *err, size_t cap) {
    char key[512];
    snprintf(key, sizeof key, "%s|%s|%s|%s|%.3f|%.3f|%d", p->id, lp->style, lp->background,
             lp->crop, lp->retouch, lp->brightness, lp->before);
    if (cache_get(key, jpeg, len)) return 200;
    ts_ctx *ctx = studio_ctx_get();
    if (!ctx) return snprintf(err, cap, "The studio could not start its analysis."), 500;
    int status = preview_render(ctx, p, lp, key, jpeg, len, err, cap);
    studio_ctx_put(ctx);
    return status;
}

/* ---- files ---- */

static json_t *strings(char list[][96], int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_string(list[i]));
    return a;
}

int studio_render(ts_ctx *ctx, studio_photo *p, const studio_look_params *lp, json_t **out,
                  char *err, size_t cap) {
    double t0 = now_ms();
    ts_style *s = look_style(ctx, lp, 1, err, cap);
    if (!s) return 400;
    alignas(max_align_t) char frame[512];
    char crop[16];
    if (look_frame(ctx, s, lp->crop, 0, frame, crop, sizeof crop)) {
        snprintf(err, cap, "%s", ts_ctx_error(ctx));
        ts_style_free(s);
        return 400;
    }
    const export_params *ep = ts_style_params(s, "export");
    studio_file f = {0};
    studio_new_id(f.id);
    snprintf(f.name, sizeof f.name, "%s-%s%s", lp->style, crop, ts_export_extension(ep->format));
    snprintf(f.path, sizeof f.path, "%s/%s%s", studio_session_dir(), f.id,
             ts_export_extension(ep->format));
    snprintf(f.editmap, sizeof f.editmap, "%s/%s-editmap.png", studio_session_dir(), f.id);
    static const char *const mimes[] = {"image/jpeg", "image/png", "image/webp", "image/avif"};
    snprintf(f.mime, sizeof f.mime, "%s", mimes[ep->format]);

    studio_analysis *a = studio_analysis_get(ctx, p, 0);
    int status = analysis_status(a, err, cap);
    ts_render_job job = {0};
    job.ctx = ctx, job.photo = a->photo, job.face = a->face, job.matte = a->matte;
    job.cache = a->cache;
    VipsImage *before = NULL, *after = NULL;
    ts_export_result er = {0};
    ts_identity_result ir = {0};
    ts_status st = TS_OK;
    if (!status) {
        studio_frame_lock(p, 0, 1);
        st = ts_stage_frame.run(&job, frame);
        studio_frame_lock(p, 0, 0);
        if (!st) before = ts_verify_snapshot(&job);
        if (!st) st = face_stages(&job, s, lp->brightness);
        if (!st) after = ts_verify_snapshot(&job);
        /* The gate of ts_render_look: what the face edits did, backed off to 50% or 25% when
         * they move the landmarks; a file is only written when it passes. */
        double strength = 1;
        if (!st && before && after)
            st = ts_render_identity_gate(ctx, a->photo, &job, before, &after, &a->floor, &ir,
                                         &strength);
        if (!st && ir.pass) st = ts_stage_background.run(&job, ts_style_params(s, "background"));
        if (!st && ir.pass) st = ts_export_write_ex(&job, ep, f.path, &er);
        if (st) {
            status = framing_status(st, ctx, err, cap);
            if (!status) {
                status = 500;
                snprintf(err, cap, "The file could not be made: %s", ts_ctx_error(ctx));
            }
        } else if (!ir.pass) {
            status = 422;
            snprintf(err, cap, "Identity check failed, so the file was not kept: %s", ir.message);
        }
        if (!status && ts_verify_edit_map(ctx, before, after, job.alpha, f.editmap, NULL))
            f.editmap[0] = 0;
    }
    studio_analysis_put(p, 0);
    if (status) unlink(f.path);
    json_t *o = NULL;
    if (!status) {
        char url[64], map[80], prev[600];
        snprintf(url, sizeof url, "/api/files/%s", f.id);
        snprintf(map, sizeof map, "/api/files/%s/editmap", f.id);
        snprintf(prev, sizeof prev, "/api/preview?photo=%s&style=%s&crop=%s&before=1", p->id,
                 lp->style, crop);
        json_t *notes = json_array();
        for (int i = 0; i < job.n_notes; i++)
            json_array_append_new(notes, json_string(job.notes[i]));
        o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:I, s:{s:f, s:f, s:b, s:s}, "
                      "s:{s:s, s:o, s:s}, s:o, s:s, s:o, s:f}",
                      "file", f.id, "name", f.name, "url", url, "photo", p->id, "width", er.width,
                      "height", er.height, "bytes", (json_int_t)er.bytes, "identity", "mean",
                      ir.mean, "max", ir.max, "pass", ir.pass, "message", ir.message, "disclosure",
                      "digital_source_type", er.source_type, "edits",
                      strings(job.edits, job.n_edits), "creator_tool",
                      "trueshot " TS_VERSION_STRING, "edit_map_url",
                      f.editmap[0] ? json_string(map) : json_null(), "before_url", prev, "notes",
                      notes, "ms", round(now_ms() - t0));
        if (!o || studio_file_add(&f)) {
            json_decref(o);
            o = NULL;
            status = 500;
            snprintf(err, cap, "Out of memory.");
            unlink(f.path);
        }
    }
    if (before) g_object_unref(before);
    if (after) g_object_unref(after);
    ts_render_job_clear(&job);
    ts_style_free(s);
    if (status) return status;
    *out = o;
    return 201;
}
