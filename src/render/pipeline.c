/* One look of one photo, end to end (pipeline.h): the render stages, the file, and the
 * authenticity checks on it. */
#include "render/pipeline.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

ts_status ts_render_look(ts_ctx *ctx, ts_photo *p, const ts_face_analysis *face,
                         const ts_matte *matte, const ts_look_request *req, ts_look_result *r) {
    if (!ctx || !p || !face || !req || !req->style || !req->frame_params || !req->path || !r)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_render_look: NULL argument");
    memset(r, 0, sizeof *r);
    r->id_written_mean = -1;
    double t0 = now_s(), t = t0, t1, c0 = cpu_s(), c = c0, c1;
#define LAP(field)                                                                                 \
    (t1 = now_s(), r->t.field += t1 - t, t = t1, c1 = cpu_s(), r->cpu.field += c1 - c, c = c1)
    ts_render_job job = {0};
    job.ctx = ctx, job.photo = p, job.face = face, job.matte = matte, job.cache = req->cache;
    VipsImage *before = NULL, *after = NULL;
    ts_status st = ts_stage_frame.run(&job, req->frame_params);
    LAP(frame);
    if (!st) before = ts_verify_snapshot(&job);
    static const char *const middle[] = {"tone", "light", "retouch"};
    for (int k = 0; !st && k < 3; k++) {
        st = ts_styles_stage(middle[k])->run(&job, ts_style_params(req->style, middle[k]));
        if (k == 0) LAP(tone);
        if (k == 1) LAP(light);
        if (k == 2) LAP(retouch);
    }
    if (!st) after = ts_verify_snapshot(&job);
    if (!st) st = ts_stage_background.run(&job, ts_style_params(req->style, "background"));
    LAP(background);
    const export_params *ep =
        req->export_override ? req->export_override : ts_style_params(req->style, "export");
    ts_export_result er = {0};
    if (!st) st = ts_export_write_ex(&job, ep, req->path, &er);
    LAP(export_);
    if (st) {
        snprintf(r->error, sizeof r->error, "%s", ts_ctx_error(ctx));
        goto done;
    }
    r->width = er.width, r->height = er.height, r->bytes = (long)er.bytes;
    snprintf(r->source_type, sizeof r->source_type, "%s", er.source_type);
    for (int k = 0; k < job.n_edits && k < TS_RENDER_MAX_EDITS; k++)
        snprintf(r->edits[r->n_edits++], sizeof r->edits[0], "%s", job.edits[k]);
    for (int k = 0; k < job.n_notes && k < TS_RENDER_MAX_NOTES; k++)
        snprintf(r->notes[r->n_notes++], sizeof r->notes[0], "%s", job.notes[k]);
    if (!req->no_verify) {
        /* Authenticity: the face is measured against the photo on the canvas as the face edits
         * left it (after tone, light and retouch), before the backdrop goes in: the backdrop
         * changes no face pixel, but a new background shifts the mesh model's face-outline
         * points by up to ~1.5% of the eye distance on unedited faces, which would hide the
         * edits' own effect. The canvas is measured as the 8-bit image a lossless file of it
         * would hold, without writing one. The file as written is decoded, measured too and
         * reported. Each is a full face analysis (detection and mesh) of the output's pixels. */
        ts_identity_result ir, wr;
        VipsImage *written = vips_image_new_from_file(req->path, NULL);
        if (written &&
            ts_verify_identity_image(ctx, p, written, req->path, er.m, req->floor, 0, &wr) == TS_OK)
            r->id_written_mean = wr.mean;
        if (!written) vips_error_clear();
        if (written) g_object_unref(written);
        if (after && ts_verify_identity_image(ctx, p, after, "the canvas before the background",
                                              job.m, req->floor, 0, &ir) == TS_OK) {
            r->id_mean = ir.mean, r->id_max = ir.max, r->id_ok = ir.pass;
            if (!ir.pass) {
                snprintf(r->error, sizeof r->error, "identity check failed: %s", ir.message);
                unlink(req->path); /* a look that moved the face is not delivered */
            }
        } else {
            snprintf(r->error, sizeof r->error, "identity check could not run: %s",
                     ts_ctx_error(ctx));
            unlink(req->path);
        }
        LAP(verify);
    }
    if (before && after && req->edit_map && req->edit_map[0])
        r->edit_map_written =
            ts_verify_edit_map(ctx, before, after, job.alpha, req->edit_map, NULL) == TS_OK;
    LAP(edit_map);
#undef LAP
done:
    if (before) g_object_unref(before);
    if (after) g_object_unref(after);
    ts_render_job_clear(&job);
    r->t.total = now_s() - t0;
    r->cpu.total = cpu_s() - c0;
    return st == TS_ERR_WRITE ? st : TS_OK;
}
