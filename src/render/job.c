#include <stdarg.h>
#include <stdio.h>

#include "core/internal.h"
#include "render/render.h"

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

void ts_render_job_clear(ts_render_job *job) {
    ts_render_replace(&job->fg, NULL);
    ts_render_replace(&job->rgb, NULL);
    ts_render_replace(&job->alpha, NULL);
}
