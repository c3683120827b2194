/* Rendering one look of one photo: a fixed order of stages, each one file with its parameter
 * table (param.h), each reading the job and replacing its images, never modifying them in place
 * (libvips images are immutable; a stage unrefs what it replaces).
 *
 *   frame -> tone -> light -> retouch -> background -> export
 *
 * frame turns the photo into the output canvas (levelled, cropped, scaled); every later stage
 * works in that canvas. Face landmarks and the person's alpha travel with the image. */
#ifndef TS_RENDER_H
#define TS_RENDER_H

#include <vips/vips.h>

#include "render/param.h"
#include "trueshot.h"

#define TS_RENDER_MAX_NOTES 8
#define TS_RENDER_MAX_EDITS 16

/* Work on one photo that every look of it can share (frame's half-resolution copies of the
 * photo, foreground and alpha). Optional: a job without one computes everything itself. Make
 * one per photo and matte, free it before they are freed (it recognises them by address), and
 * do not use it from two jobs at once. */
typedef struct ts_render_cache ts_render_cache;
ts_render_cache *ts_render_cache_new(void);    /* NULL when out of memory */
void ts_render_cache_free(ts_render_cache *c); /* NULL-safe; settles first (below) */

/* The reading of a look's written file left running while the next look is made
 * (ts_verify_written_start, by ts_render_look): the cache holds one, and settle waits for it and
 * writes its result to *out (the displacement, or -1). ts_render_look settles before its own gate
 * and before it leaves another; the caller settles before it reads *out (free settles too).
 * defer settles the one held first. NULL-safe. */
struct ts_verify_written;
void ts_render_cache_defer(ts_render_cache *c, struct ts_verify_written *w, double *out);
void ts_render_cache_settle(ts_render_cache *c);

typedef struct ts_render_job {
    ts_ctx *ctx;                  /* borrowed */
    ts_render_cache *cache;       /* borrowed; may be NULL */
    ts_photo *photo;              /* borrowed */
    const ts_face_analysis *face; /* the subject, photo pixels; borrowed from the photo */
    const ts_matte *matte;        /* head-and-shoulders matte, photo pixels; borrowed */

    /* The working canvas after frame: sRGB-encoded 3-band float (0..255) and the person's alpha
     * (1-band float 0..1) of the same size. Owned by the job. */
    VipsImage *rgb, *alpha;
    /* The person's colour with the old background's colour removed (the matte's foreground
     * estimate), same size and format as rgb; equal to rgb where alpha is 1. The background stage
     * composites this, not rgb, over the new backdrop, so no fringe of the old background shows.
     * Colour stages change rgb and fg alike (ts_render_map). NULL without a matte. */
    VipsImage *fg;
    /* The frame transform: canvas = m * photo, x' = m[0] x + m[1] y + m[2],
     * y' = m[3] x + m[4] y + m[5]. */
    double m[6];
    /* The subject's landmarks in canvas pixels (x, y). */
    float lm[TS_LANDMARKS][2];
    float inter_eye; /* canvas pixels */

    int background_replaced; /* set by the background stage: changes the disclosed source type */
    int background_blurred;  /* the photo's own background, blurred (not generated) */
    /* What was done, for the XMP edit list and the report ("levelled 2.1°", ...). */
    char edits[TS_RENDER_MAX_EDITS][96];
    int n_edits;
    /* What the person should know ("not enough room above the head: ..."). */
    char notes[TS_RENDER_MAX_NOTES][200];
    int n_notes;
    /* The last skin or face mask ts_render_region_mask made for this job, for the next stage
     * that asks for it (tone and light measure the same skin over boxes of their own). Owned by
     * the job; freed by ts_render_job_clear. */
    struct ts_render_kept_mask *kept_mask;
} ts_render_job;

/* One render stage. params points to a struct laid out as table describes. */
typedef struct ts_stage {
    const char *name; /* section name in style files: "frame", "background", ... */
    int version;      /* bumped when the stage's output for the same parameters changes */
    const ts_param *table;
    size_t params_size;
    ts_status (*run)(ts_render_job *job, const void *params);
} ts_stage;

extern const ts_stage ts_stage_frame;
extern const ts_stage ts_stage_export;
extern const ts_stage ts_stage_tone;
extern const ts_stage ts_stage_light;
extern const ts_stage ts_stage_retouch;
extern const ts_stage ts_stage_background;

/* From which shrink of the photo frame makes a canvas from its half-resolution copies (each
 * averaged 2 x 2; frame.c has the figures): what that costs in fine detail is paid at any shrink
 * from there on, so a photo whose every output shrinks it by this much or more can as well be
 * decoded at half size (ts_render_decode_shrink). */
#define TS_FRAME_HALF_FROM 2.1

/* The scale (canvas pixels per photo pixel) frame renders params (a frame block) at for this
 * face on this photo, without rendering; 0 when it cannot frame it. */
double ts_frame_scale(ts_ctx *ctx, ts_photo *photo, const ts_face_analysis *face,
                      const void *params);

/* Where the face (its mesh) runs off a PW x PH photo by more than a pixel or two: beside it
 * (TS_FACE_CUT_SIDE) and/or below the chin (TS_FACE_CUT_BELOW), by the face's own up; 0 when it
 * is whole, or cut only above (the top of the head: framed, with a note). */
enum { TS_FACE_CUT_SIDE = 1, TS_FACE_CUT_BELOW = 2 };
int ts_frame_face_cut(const ts_face_analysis *f, int PW, int PH);
/* The smallest face frame makes a headshot of: its detection box this many photo pixels wide.
 * Smaller, even the smallest output (400 px) enlarges it more than five times and the mesh
 * reads it from a crop enlarged eight times; such a photo is a thumbnail. */
#define TS_FACE_MIN_PX 24
/* Whether a headshot can be framed from photo p (its subject f): TS_OK, or TS_ERR_FRAMING (the
 * face runs off the photo beside it or below the chin: ts_frame_face_cut) or TS_ERR_FACE_SMALL
 * (under TS_FACE_MIN_PX wide), with a sentence saying what to do on ctx. frame refuses every
 * look so; make asks once, before the cut-out. */
ts_status ts_frame_refusal(ts_ctx *ctx, ts_photo *p, const ts_face_analysis *f);

/* The height in pixels of the canvas a frame block (params) asks for: its width over its
 * template's aspect. */
int ts_frame_height(const void *params);

/* Adds an edit (printf-style) to the job's list; silently drops past the limit. */
void ts_render_edit(ts_render_job *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Adds a note for the person. */
void ts_render_note(ts_render_job *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Replaces *slot by im (unreffing the old one). */
void ts_render_replace(VipsImage **slot, VipsImage *im);

/* Applies op to rgb and, when present, fg, replacing both (op must not keep its input).
 * Returns TS_OK or an error set on the job's ctx. */
typedef VipsImage *(*ts_render_op)(VipsImage *in, void *user);
ts_status ts_render_map(ts_render_job *job, ts_render_op op, void *user, const char *what);

/* The same for a per-pixel operation: op maps pixels [first, first + n) of in to out (both
 * 3-band float buffers of the whole canvas, pixel i at 3 i); it may be called on several
 * ranges at once from two threads, so it must only read user. The canvas is read in place (no
 * copy) and the work is split between two threads; fg pixels equal to rgb's are not computed
 * again but take rgb's result (the op must depend only on the pixel's value and index). */
typedef void (*ts_render_px_op)(const float *in, float *out, size_t first, size_t n, void *user);
ts_status ts_render_map_px(ts_render_job *job, ts_render_px_op op, void *user, const char *what);

/* Runs fn on [0, n) in two halves, the second on a thread of its own when n is at least min_n
 * (else both here). fn must only read user and write what its own range owns. */
typedef void (*ts_render_range_fn)(size_t first, size_t n, void *user);
void ts_render_split2(ts_render_range_fn fn, void *user, size_t n, size_t min_n);

/* What a stage measured on the canvas frame made, kept with that canvas in the job's cache, so a
 * later look that gets the same canvas (ts_render_cache) skips the measuring. get copies the
 * size bytes kept under key into out and returns 1, when the job's rgb is still the canvas frame
 * made (the stage runs first after frame) and a put for it stored key; else 0. put keeps a copy
 * (silently nothing without a cache, or when out of memory). */
int ts_render_memo_get(const ts_render_job *job, const char *key, void *out, size_t size);
void ts_render_memo_put(ts_render_job *job, const char *key, const void *data, size_t size);

/* For the colour stages: TS_OK when the canvas is 3-band float (and the sRGB tables of
 * render/srgb.h are ready), else an error on the job's ctx naming stage. */
ts_status ts_render_colour_canvas(ts_render_job *job, const char *stage);

/* A memory image of w x h x bands samples of fmt around buf (g_malloc'd, bytes long), which it
 * owns: freed with the image, or at once when NULL is returned. */
VipsImage *ts_render_wrap(void *buf, size_t bytes, int w, int h, int bands, VipsBandFormat fmt);

/* Frees the job's images. */
void ts_render_job_clear(ts_render_job *job);

/* ts_render_map_px on the pixels of rows [y0, y1) only; the others keep their values. An image
 * only the job references is mapped in place (ts_render_map_px too). */
ts_status ts_render_map_px_rows(ts_render_job *job, ts_render_px_op op, void *user, int y0, int y1,
                                const char *what);

/* The mask of a face region (a ts_face_region, face/regions.h; no feathering) over the canvas
 * box (x0, y0, w, h) from the job's landmarks, as ts_face_region_mask makes it at scale 1 for
 * the mesh moved by (-x0, -y0) into out (w * h bytes). Made in bands of rows from the mesh
 * triangles that reach each, on two threads. TS_OK, else an error set on the job's ctx. */
ts_status ts_render_region_mask(ts_render_job *job, int region, int x0, int y0, int w, int h,
                                uint8_t *out);

/* ts_render_map_px on the pixels of the box [x0, x1) x [y0, y1) only; the others keep their
 * values (op is called on ranges within one row of the box). */
ts_status ts_render_map_px_box(ts_render_job *job, ts_render_px_op op, void *user, int x0, int y0,
                               int x1, int y1, const char *what);

/* A buffer of bytes for a canvas or a stage's scratch (64-byte aligned; job.c says where it comes
 * from and why). NULL when out of memory. Free with ts_render_big_free (NULL-safe). */
void *ts_render_big_alloc(size_t bytes);
void ts_render_big_free(void *buf);

/* The pool big buffers wait in between looks: armed while a photo's looks are made (by
 * ts_render_cache_new), emptied when the last arm is flushed (by ts_render_cache_free). */
void ts_render_big_pool_arm(void);
void ts_render_big_pool_flush(void);

/* How many big buffers wait in that pool at most. */
#define TS_RENDER_BIG_POOL_N 8

/* The largest big buffer waiting in that pool, its size in *bytes (as if allocated with it; free
 * with ts_render_big_free); NULL when none waits. For a stage that carves its scratch from
 * several buffers: what waits then serves it rather than waiting beside it. */
void *ts_render_big_take_waiting(size_t *bytes);

/* ts_render_wrap for a buffer from ts_render_big_alloc (owned by the image from here on; freed
 * at once when NULL is returned). A per-pixel map may write it in place. */
VipsImage *ts_render_wrap_big(void *buf, size_t bytes, int w, int h, int bands, VipsBandFormat fmt);

/* Marks a memory image made around a buffer of its own (freed with it) as such, so a per-pixel
 * map may write it in place while the job alone holds it (as it may ts_render_wrap's images). */
void ts_render_own(VipsImage *im);

#endif
