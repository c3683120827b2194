/* One look of one photo, end to end: the per-output pipeline of `trueshot make`, as a library
 * call so the command and the benchmark (bench/bench_make.c) run the same code.
 *
 *   frame -> tone -> light -> retouch -> background -> export
 *   -> identity gate on the pre-background canvas, identity of the file as written, edit map
 *
 * The photo's face analysis, matte and noise floor are computed once by the caller and shared
 * by all its looks. */
#ifndef TS_RENDER_PIPELINE_H
#define TS_RENDER_PIPELINE_H

#include "render/export.h"
#include "render/render.h"
#include "styles/style.h"
#include "verify/verify.h"

/* Seconds spent in each step of one look (wall clock). */
typedef struct ts_look_timing {
    double frame, tone, light, retouch, background, export_, verify, edit_map, total;
} ts_look_timing;

typedef struct ts_look_request {
    const ts_style *style;    /* tone, light, retouch, background and export parameters */
    const void *frame_params; /* the frame block for this output (ts_style_frame_params) */
    const export_params *export_override; /* NULL: the style's export block */
    const char *path;                     /* the file to write */
    const char *edit_map;                 /* where to write the edit map; NULL or "": none */
    const ts_verify_floor *floor;         /* the photo's noise floor (ts_verify_noise_floor) */
    int no_verify; /* 1: skip the identity checks (benchmarks only: make always verifies) */
    ts_render_cache *cache; /* the photo's shared work (ts_render_cache_new); may be NULL */
    /* With a cache: the written file's reading (id_written_mean) is left running while the
     * caller goes on to its next look, and its result written here when it is settled
     * (ts_render_cache_settle; r->id_written_mean stays -1). NULL: read before returning. */
    double *written_mean;
    /* The caller's last look of the photo: its file is read before returning, on both threads
     * (nothing else is left to run beside a reading left running), its result in written_mean
     * too. */
    int last;
} ts_look_request;

typedef struct ts_look_result {
    int width, height;
    long bytes;
    double m[6];          /* photo -> written file (x' = m0 x + m1 y + m2, y' = m3 x + m4 y + m5) */
    char source_type[32]; /* the IPTC DigitalSourceType written */
    /* The gate: face analysis re-run on the canvas after the face edits (before the backdrop),
     * mapped back to the photo; fractions of the inter-eye distance. */
    double id_mean, id_max;
    double id_total_mean, id_frame_mean; /* after vs the photo; framed-only vs the photo */
    double id_strength; /* the share of the face edits delivered (1, or 0.5 / 0.25 backed off) */
    double id_written_mean; /* the same measured on the file as written; -1 when not measured */
    int id_ok;
    int edit_map_written;
    char edits[TS_RENDER_MAX_EDITS][96];
    int n_edits;
    char notes[TS_RENDER_MAX_NOTES][200];
    int n_notes;
    char error[300];    /* non-empty when this look failed (its file is then removed) */
    ts_status status;   /* why it failed: TS_ERR_IDENTITY, or the stage's status */
    ts_look_timing t;   /* wall clock */
    ts_look_timing cpu; /* CPU time of the process (all threads): steadier on a loaded machine */
} ts_look_result;

/* The identity gate (docs/export-and-verify.md) on a job whose face edits are done: *after
 * (the canvas after tone, light and retouch) against before (the canvas right after frame).
 * When the edits move the landmarks more than 1% of the eye distance, they are blended back to
 * 50% and then 25% of their strength (unless they read over 2%: that is geometry, refused as
 * it is); the job's canvas and *after are replaced by the kept
 * version, an edit line says so, and *strength is the share kept. ir->pass says whether the
 * last try passed (a failing look must not be delivered). Returns an error only when the check
 * could not run. */
ts_status ts_render_identity_gate(ts_ctx *ctx, ts_photo *p, ts_render_job *job, VipsImage *before,
                                  VipsImage **after, const ts_verify_floor *floor,
                                  ts_identity_result *ir, double *strength);

/* Renders, writes and verifies one output. A look that fails (a stage error, the identity gate)
 * is reported in r->error with TS_OK returned, and no file is left; an error that should stop
 * the whole run (the output cannot be written: TS_ERR_WRITE) is returned. */
ts_status ts_render_look(ts_ctx *ctx, ts_photo *p, const ts_face_analysis *face,
                         const ts_matte *matte, const ts_look_request *req, ts_look_result *r);

#endif
