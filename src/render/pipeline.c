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

ts_status ts_render_identity_gate(ts_ctx *ctx, ts_photo *p, ts_render_job *job, VipsImage *before,
                                  VipsImage **after, const ts_verify_floor *floor,
                                  ts_identity_result *ir, double *strength) {
    static const double back_off[] = {1, 0.5, 0.25};
    const char *name = p->path;
    for (int k = 0; k < 3; k++) {
        VipsImage *cand = NULL;
        if (k == 0) {
            cand = g_object_ref(*after);
        } else {
            /* before + f (after - before), computed once */
            VipsImage *d = NULL, *sum = NULL;
            int bad = vips_subtract(*after, before, &d, NULL) ||
                      vips_linear1(d, &cand, back_off[k], 0, NULL) ||
                      vips_add(before, cand, &sum, NULL);
            if (d) g_object_unref(d);
            if (cand) g_object_unref(cand);
            cand = bad ? NULL : vips_image_copy_memory(sum);
            if (sum) g_object_unref(sum);
            if (!cand) {
                ts_status s = ts_fail(ctx, TS_ERR_INTERNAL, "%s: cannot scale the edits back: %s",
                                      name, vips_error_buffer());
                vips_error_clear();
                return s;
            }
        }
        ts_status s = ts_verify_identity_edits(ctx, p, before, cand, name, job->m, floor, ir);
        if (s) {
            g_object_unref(cand);
            return s;
        }
        /* Appearance edits read up to ~1.8% on small faces (docs/export-and-verify.md); a
         * reading over twice the limit is geometry (a 3% enlargement reads 2.45%): refused as
         * it is, never blended into a ghost that would pass. */
        if (ir->pass || k == 2 || (k == 0 && ir->mean > 2 * TS_VERIFY_IDENTITY_LIMIT)) {
            *strength = back_off[k];
            if (k > 0) {
                g_object_unref(job->rgb), job->rgb = g_object_ref(cand);
                g_object_unref(*after), *after = g_object_ref(cand);
                ts_render_edit(job,
                               "face edits applied at %.0f%% of the look's strength, to keep the "
                               "face's landmarks within 1%% of the eye distance",
                               100 * back_off[k]);
            }
            g_object_unref(cand);
            return TS_OK;
        }
        g_object_unref(cand);
    }
    return TS_OK;
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
    /* The gate's reading of the framed canvas does not wait for the face edits: it is made on
     * a thread of its own while they run (they leave a core idle much of the time, and they
     * do not run the mesh model). */
    ts_verify_reading *early =
        before && !req->no_verify ? ts_verify_read_start(ctx, p, before, job.m, p->path) : NULL;
    static const char *const middle[] = {"tone", "light", "retouch"};
    for (int k = 0; !st && k < 3; k++) {
        st = ts_styles_stage(middle[k])->run(&job, ts_style_params(req->style, middle[k]));
        if (k == 0) LAP(tone);
        if (k == 1) LAP(light);
        if (k == 2) LAP(retouch);
    }
    ts_verify_read_finish(early);
    if (!st) after = ts_verify_snapshot(&job);
    ts_edit_map_job *map = NULL;
    int want_map = !st && before && after && req->edit_map && req->edit_map[0];
    /* The identity gate (docs/export-and-verify.md), right after the face edits and before the
     * backdrop: the canvas as tone, light and retouch left it against the canvas right after
     * frame, both read by the same instrument (one mesh pass at the photo's own face crop,
     * carried through the frame transform, averaged over small shifts of that crop); the
     * frame is a similarity by construction, so what moves between the two is the edits'.
     * When the edits move the landmarks more than the limit, they are applied at half and then
     * a quarter of their strength (the canvas blended back toward the framed one), as a
     * retoucher would back off; if even that fails, the look is not delivered. */
    ts_identity_result ir;
    if (!st && !req->no_verify && before && after) {
        double strength = 1;
        ts_render_cache_settle(req->cache); /* the gate runs the second runtime too */
        ts_status vs =
            ts_render_identity_gate(ctx, p, &job, before, &after, req->floor, &ir, &strength);
        if (vs) {
            snprintf(r->error, sizeof r->error, "identity check could not run: %s",
                     ts_ctx_error(ctx));
            st = vs;
        } else {
            r->id_mean = ir.mean, r->id_max = ir.max, r->id_ok = ir.pass;
            r->id_total_mean = ir.total_mean, r->id_frame_mean = ir.frame_mean;
            r->id_strength = strength;
            if (!ir.pass) {
                snprintf(r->error, sizeof r->error, "identity check failed: %s", ir.message);
                st = TS_ERR_IDENTITY; /* a look that moved the face is not delivered */
            }
        }
        LAP(verify);
    }
    /* The edit map needs only the two canvases and the alpha, which nothing after the gate
     * changes: it is made on a thread of its own beside the backdrop and the file's encoding
     * (which leave a core idle), and written once the look is known to be delivered. */
    want_map = want_map && !st;
    if (want_map) map = ts_verify_edit_map_start(before, after, job.alpha, req->edit_map);
    if (!st) st = ts_stage_background.run(&job, ts_style_params(req->style, "background"));
    /* Nothing after the backdrop reads the foreground colour: free it before the file and the
     * checks, which are when the most memory is in use. */
    ts_render_replace(&job.fg, NULL);
    LAP(background);
    const export_params *ep =
        req->export_override ? req->export_override : ts_style_params(req->style, "export");
    ts_export_result er = {0};
    if (!st) st = ts_export_write_ex(&job, ep, req->path, &er);
    LAP(export_);
    if (st) {
        if (!r->error[0]) snprintf(r->error, sizeof r->error, "%s", ts_ctx_error(ctx));
        r->status = st;
        ts_verify_edit_map_finish(NULL, map, NULL); /* (waits for it; writes nothing) */
        goto done;
    }
    r->width = er.width, r->height = er.height, r->bytes = (long)er.bytes;
    memcpy(r->m, er.m, sizeof r->m);
    snprintf(r->source_type, sizeof r->source_type, "%s", er.source_type);
    for (int k = 0; k < job.n_edits && k < TS_RENDER_MAX_EDITS; k++)
        snprintf(r->edits[r->n_edits++], sizeof r->edits[0], "%s", job.edits[k]);
    for (int k = 0; k < job.n_notes && k < TS_RENDER_MAX_NOTES; k++)
        snprintf(r->notes[r->n_notes++], sizeof r->notes[0], "%s", job.notes[k]);
    ts_verify_written *later = NULL;
    if (!req->no_verify && req->cache && req->written_mean && !req->last) {
        /* The file as written, read on a thread of its own while the caller makes its next
         * look (whose colour stages leave a core idle), settled before that look's gate. */
        ts_render_cache_settle(req->cache);
        later = ts_verify_written_start(ctx, p, req->path, er.m, req->floor);
        if (later) ts_render_cache_defer(req->cache, later, req->written_mean);
        LAP(verify);
    }
    if (!req->no_verify && !later) {
        /* The file as written (backdrop and encoding included), read by the same
         * instrument against the photo: reported beside the gate. */
        ts_render_cache_settle(req->cache); /* (this reading runs the second runtime too) */
        if (req->written_mean) *req->written_mean = -1;
        ts_identity_result wr;
        VipsImage *written = ts_verify_open_written(req->path);
        if (written &&
            ts_verify_identity_image(ctx, p, written, req->path, er.m, req->floor, 0, &wr) == TS_OK)
            r->id_written_mean = wr.mean;
        if (req->written_mean) *req->written_mean = r->id_written_mean;
        if (!written) vips_error_clear();
        if (written) g_object_unref(written);
        LAP(verify);
    }
    if (want_map)
        r->edit_map_written =
            (map ? ts_verify_edit_map_finish(ctx, map, NULL)
                 : ts_verify_edit_map(ctx, before, after, job.alpha, req->edit_map, NULL)) == TS_OK;
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
