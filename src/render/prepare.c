/* The photo-level work of `trueshot make` (prepare.h). */
#include "render/prepare.h"

#include <pthread.h>
#include <string.h>

#include "core/internal.h"
#include "face/mesh.h"
#include "render/render.h"

/* The noise floor, measured on a thread of its own. It runs on a copy of the caller's ctx: the
 * same models and runtimes (the landmark model's is loaded before the thread starts, so the
 * copy never loads one), its own error message. */
typedef struct floor_job {
    ts_ctx shadow;
    ts_photo *photo;
    ts_verify_floor floor;
    ts_status status;
    pthread_t thread;
} floor_job;

static void *floor_thread(void *arg) {
    floor_job *j = arg;
    j->status = ts_verify_noise_floor(&j->shadow, j->photo, &j->floor);
    /* What this thread freed stays in its own malloc arena: hand it back. */
    ts_heap_trim();
    return NULL;
}

ts_status ts_render_prepare(ts_ctx *ctx, ts_photo *p, const ts_face_analysis **face,
                            ts_matte **matte, ts_verify_floor *floor) {
    if (!ctx || !p || !face || !matte)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_render_prepare: NULL argument");
    *face = NULL, *matte = NULL;
    ts_status s = ts_photo_subject(ctx, p, face);
    if (s) return s;
    floor_job *j = NULL;
    int threaded = 0;
    if (floor) {
        /* what the thread needs from ctx and the photo, made here, not there */
        ts_face_roi roi;
        float sc;
        if (!ts_ctx_runtime(ctx, TS_MODEL_FACE_LANDMARK_ATTENTION)) return TS_ERR_MODEL;
        if ((s = ts_photo_subject_roi(ctx, p, &roi, &sc))) return s;
        if (!ts_photo_analysis(ctx, p, NULL)) return TS_ERR_FORMAT;
        if (!(j = calloc(1, sizeof *j))) return ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
        ts_ctx_shadow(ctx, NULL, &j->shadow);
        j->photo = p;
        threaded = pthread_create(&j->thread, NULL, floor_thread, j) == 0;
    }
    s = ts_photo_matte(ctx, p, NULL, matte);
    if (j) {
        if (threaded)
            pthread_join(j->thread, NULL);
        else
            floor_thread(j); /* no thread to be had: here, after the matte */
        /* The face found on the photo but not found again on a re-encoded copy of it: the
         * analysis does not hold on this photo (a face upside down, or barely made out), and
         * nothing could be checked against it; said as such, with what to do. */
        if (!s && j->status == TS_ERR_NO_FACE)
            s = ts_fail(ctx, TS_ERR_NO_FACE,
                        "%s: the face cannot be measured reliably on this photo (its face mesh "
                        "is not found again on a re-encoded copy); use a photo with the face "
                        "upright, clear and well lit",
                        p->path);
        else if (!s && j->status)
            s = ts_fail(ctx, j->status, "%s", j->shadow.err);
        if (!s) *floor = j->floor;
        free(j);
    }
    if (s) {
        ts_matte_free(*matte);
        *matte = NULL;
    }
    return s;
}

int ts_render_decode_shrink(ts_ctx *ctx, ts_photo *p, const void *const *params, int n) {
    const ts_face_analysis *face;
    if (!ctx || !p || !params || n < 1 || ts_photo_subject(ctx, p, &face) != TS_OK) return 1;
    double most = 0;
    for (int j = 0; j < n; j++) {
        double s = ts_frame_scale(ctx, p, face, params[j]);
        if (s <= 0) return 1;
        most = s > most ? s : most;
    }
    int k = 1;
    while (k < 4 && 2 * k * most * (TS_FRAME_HALF_FROM / 2) <= 1) k *= 2;
    return k;
}
