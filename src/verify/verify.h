/* Authenticity checks on every output (DESIGN.md promise 1; docs/export-and-verify.md):
 * - identity: face analysis re-run on the written file, compared with the photo's landmarks
 *   through the inverse of the frame transform; the mean displacement must stay within 1% of
 *   the inter-eye distance. The analysis's own noise floor (the same measure on a JPEG q95
 *   re-encode of the photo) is reported beside it;
 * - edit map: how much each face pixel changed between the framed photo and the canvas just
 *   before the background stage, as a heat map over a dimmed grey of the face. */
#ifndef TS_VERIFY_H
#define TS_VERIFY_H

#include <vips/vips.h>

#include "render/render.h"
#include "trueshot.h"

/* The limit of promise 1: mean landmark displacement / inter-eye distance. */
#define TS_VERIFY_IDENTITY_LIMIT 0.01

/* The analysis's noise floor on one photo: the identity measure between the photo and a JPEG
 * q95 re-encode of it (no geometric change at all). */
typedef struct ts_verify_floor {
    double mean, max; /* fractions of the inter-eye distance */
} ts_verify_floor;

typedef struct ts_identity_result {
    /* The gate: the output resampled back into the photo's geometry (inverse of m), analysed,
     * and compared with the photo's landmarks; fractions of the input's inter-eye distance. */
    double mean, max;
    double mean_px, max_px; /* the same in input photo pixels */
    int worst;              /* the landmark with the largest displacement (mesh index) */
    /* The output analysed as written, its landmarks mapped back through the inverse of m. This
     * includes the analysis's re-framing noise (the face at another size and place in the
     * frame): 0.6-1.1% on unedited frames, so it is reported, not gated on. */
    double direct_mean, direct_max;
    /* ts_verify_identity_edits only (else -1): the edited canvas against the photo (total) and
     * the framed, unedited canvas against the photo (frame): what the measuring instrument
     * reads when the face is only resampled, not edited. */
    double total_mean, total_max, frame_mean;
    double inter_eye_px;   /* the input's */
    ts_verify_floor floor; /* the noise floor (given, or measured by the call) */
    int pass;              /* mean <= TS_VERIFY_IDENTITY_LIMIT */
    char message[200];     /* one line for the report, e.g. "face geometry kept: ..." */
} ts_identity_result;

/* Measures the noise floor of p: encodes the photo as JPEG q95 to a private temporary file
 * (a 0700 folder, removed before returning), analyses it and compares its landmarks with p's.
 * Measure it once per photo and pass it to every ts_verify_identity of its looks. */
ts_status ts_verify_noise_floor(ts_ctx *ctx, ts_photo *input, ts_verify_floor *out);

/* Checks the identity promise for one written output: the output is resampled back into the
 * photo's geometry through the inverse of m and analysed there (see ts_identity_result). m is the
 * photo -> output transform (ts_render_job.m, or ts_export_result.m when export scaled the file),
 * x' = m0 x + m1 y + m2, y' = m3 x + m4 y + m5. floor may be NULL: it is then measured now
 * (ts_verify_noise_floor). A look that moves the face is not an error: the call returns TS_OK with
 * r->pass = 0 and the message says by how much. Errors: TS_ERR_ARGUMENT (m not invertible),
 * TS_ERR_READ / TS_ERR_FORMAT (output unreadable), TS_ERR_NO_FACE (no face found on the output: the
 * message says so), TS_ERR_MODEL, TS_ERR_INTERNAL. r is untouched on error. */
ts_status ts_verify_identity(ts_ctx *ctx, ts_photo *input, const char *output_path,
                             const double m[6], const ts_verify_floor *floor,
                             ts_identity_result *r);

/* The file at path (an output just written) opened for a reading, by libvips, top to bottom: a
 * new reference, or NULL with the vips error set. */
VipsImage *ts_verify_open_written(const char *path);

/* ts_verify_identity_image's flags: also analyse the output as it is (direct_mean, direct_max);
 * without it they are -1 and the call runs one face analysis instead of two. */
#define TS_VERIFY_DIRECT 1u
/* ... and read it on the caller's thread alone (its nine mesh passes not shared with a second
 * thread: for a caller that is itself the second thread, ts_verify_written_start). */
#define TS_VERIFY_ONE_THREAD 2u

/* The file as written (path, photo -> file m), read on a thread of its own against the photo,
 * as ts_verify_identity_image reads it, while the caller goes on (with the next look: its
 * early reading runs the mesh model's first runtime, this one its second, made here). The caller
 * must not run the mesh model's second runtime until finish: ts_verify_identity_edits does, so
 * finish first. finish waits for it, frees it (NULL-safe) and returns the mean displacement
 * (a fraction of the inter-eye distance), or -1 when the file could not be read. start returns
 * NULL when it cannot start (then read the file on the caller's thread). */
typedef struct ts_verify_written ts_verify_written;
ts_verify_written *ts_verify_written_start(ts_ctx *ctx, ts_photo *input, const char *path,
                                           const double m[6], const ts_verify_floor *floor);
double ts_verify_written_finish(ts_verify_written *w);

/* The identity measure of an output held in memory: a canvas (3-band float 0..255, as
 * ts_render_job.rgb, cast to 8 bits as a file of it would hold) or a decoded image. What is
 * measured is what ts_verify_identity measures on a file, without writing and decoding one: the
 * output resampled back into the photo's geometry and analysed there (a full face analysis,
 * detection included, of the output's pixels). name names the output in messages (may be NULL).
 * Returns as ts_verify_identity. */
ts_status ts_verify_identity_image(ts_ctx *ctx, ts_photo *input, VipsImage *output,
                                   const char *name, const double m[6],
                                   const ts_verify_floor *floor, unsigned flags,
                                   ts_identity_result *r);

/* The gate of `trueshot make`: what the face edits (tone, light, retouch) did to the face's
 * geometry. before is the canvas right after frame, after the canvas right before the
 * background (both as in ts_render_job.rgb, photo -> canvas transform m). Both are measured by
 * the same instrument (one mesh pass at the photo's own crop carried through m, see
 * docs/export-and-verify.md), and r->mean / r->max is the displacement of after's landmarks
 * from before's: the frame is a similarity transform by construction, so any displacement
 * between the two canvases is the edits'. r->total_* compares after with the photo's own
 * landmarks, r->frame_mean before with them (the instrument's reading of resampling alone:
 * large when a small face is enlarged). Returns as ts_verify_identity. */
ts_status ts_verify_identity_edits(ts_ctx *ctx, ts_photo *input, VipsImage *before,
                                   VipsImage *after, const char *name, const double m[6],
                                   const ts_verify_floor *floor, ts_identity_result *r);

/* Reads canvas (as ts_verify_identity_edits reads before) on a thread of its own and keeps the
 * reading on the canvas, where ts_verify_identity_edits finds it: the pipeline starts it right
 * after frame, so the framed canvas is read while tone, light and retouch work. The thread runs
 * the face mesh model of ctx: until finish, the caller must not run that model on ctx (the
 * colour stages do not), nor free input or ctx. Returns NULL when it cannot start (the gate then
 * reads the canvas itself); an error on the thread is not reported, for the same reason.
 * finish waits for the thread and frees the handle (NULL-safe). */
typedef struct ts_verify_reading ts_verify_reading;
ts_verify_reading *ts_verify_read_start(ts_ctx *ctx, ts_photo *input, VipsImage *canvas,
                                        const double m[6], const char *name);
void ts_verify_read_finish(ts_verify_reading *r);

/* A new reference to the job's canvas as it is now (images are immutable, so a reference is a
 * snapshot). The pipeline takes one right after frame ("before") and one right before the
 * background stage ("after"), and passes both to ts_verify_edit_map; the caller unrefs them.
 * NULL when the job has no canvas yet. */
VipsImage *ts_verify_snapshot(const ts_render_job *job);

/* What the edit map measured: per-pixel change = the largest |after - before| over R, G, B in
 * 8-bit sRGB levels, over the pixels of the mask (alpha >= 0.5, or all when alpha is NULL). */
typedef struct ts_edit_stats {
    double mean;    /* mean change, levels */
    double p99;     /* 99th percentile, levels */
    double max;     /* levels */
    double changed; /* fraction of mask pixels changed by more than 4 levels */
    long pixels;    /* mask pixels */
} ts_edit_stats;

/* The change at which the heat map's colour scale saturates (levels of 0..255). */
#define TS_EDIT_MAP_FULL_SCALE 32.0

/* Renders the edit map of before -> after (canvases as in ts_render_job.rgb: 3-band float
 * 0..255, the same size) to path (PNG, JPEG or WebP by extension; written atomically): a dimmed
 * grey of before, with a magma-like heat colour where the change is, 0 to
 * TS_EDIT_MAP_FULL_SCALE levels and beyond; outside the mask (alpha < 0.5) only the grey.
 * alpha (1-band float 0..1, same size) may be NULL. stats may be NULL. All images borrowed. */
ts_status ts_verify_edit_map(ts_ctx *ctx, VipsImage *before, VipsImage *after, VipsImage *alpha,
                             const char *path, ts_edit_stats *stats);

/* ts_verify_edit_map in two halves, so the map is made while the caller does other work: start
 * takes references to the images and makes the map and its encoded file on a thread of its own
 * (it touches no ctx); finish waits for it, writes the file (atomically) and fills stats (may
 * be NULL; the thread does not measure them, so finish then goes over the pixels once more).
 * Errors are reported by finish, as ts_verify_edit_map reports them. start returns
 * NULL when out of memory or an argument is NULL; every job it returns must be finished, which
 * frees it. finish with a NULL ctx only waits and frees, writing nothing (a look that is not
 * delivered), and returns TS_ERR_ARGUMENT; a NULL job is TS_ERR_ARGUMENT. */
typedef struct ts_edit_map_job ts_edit_map_job;
ts_edit_map_job *ts_verify_edit_map_start(VipsImage *before, VipsImage *after, VipsImage *alpha,
                                          const char *path);
ts_status ts_verify_edit_map_finish(ts_ctx *ctx, ts_edit_map_job *job, ts_edit_stats *stats);

#endif
