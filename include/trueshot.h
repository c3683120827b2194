/* trueshot: professional headshots from your own photos, on your own computer.
 *
 * The one public header. Conventions (see docs/api.md):
 * - every call that can fail returns a ts_status; on failure its outputs are left untouched and
 *   ts_ctx_error() holds a one-line message set where the problem was found;
 * - options structs start with their own size; call the matching _init() to get defaults, then
 *   change the fields you care about;
 * - ownership is stated on each call: "borrowed" pointers must stay valid for the call only.
 */
#ifndef TRUESHOT_H
#define TRUESHOT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TS_VERSION_MAJOR 0
#define TS_VERSION_MINOR 1
#define TS_VERSION_PATCH 0
#define TS_VERSION_STRING "0.1.0"

/* Outcome of a call. Each failure has its own process exit code (ts_status_exit_code). */
typedef enum ts_status {
    TS_OK = 0,
    TS_ERR_ARGUMENT,   /* a caller mistake: NULL where not allowed, value out of range */
    TS_ERR_NOMEM,      /* out of memory */
    TS_ERR_READ,       /* a file could not be opened or read */
    TS_ERR_FORMAT,     /* a file was read but is not an image/model we understand */
    TS_ERR_TOO_LARGE,  /* an image over the pixel limit */
    TS_ERR_NO_FACE,    /* no face in the photo */
    TS_ERR_MODEL,      /* a model file is missing, corrupt or uses an unsupported operator */
    TS_ERR_WRITE,      /* an output could not be written */
    TS_ERR_INTERNAL,   /* a bug or a failure inside a dependency */
    TS_ERR_NO_PERSON,  /* no person found to cut out */
    TS_ERR_IDENTITY,   /* an output would move the face's geometry; it is not delivered */
    TS_ERR_FRAMING,    /* the face runs off the photo: a headshot would need parts made up */
    TS_ERR_FACE_SMALL, /* the face is too small in the photo to make a headshot of */
} ts_status;

/* Short stable name of a status, e.g. "no-face". Never NULL. */
const char *ts_status_name(ts_status s);
/* Exit code the trueshot command uses for a status: 0 for TS_OK, distinct small integers
 * otherwise (documented in `trueshot --help`). */
int ts_status_exit_code(ts_status s);

/* A context: models, settings and the last error. One per thread of use. Opaque. */
typedef struct ts_ctx ts_ctx;

typedef struct ts_ctx_options {
    size_t size;           /* sizeof(ts_ctx_options): set by ts_ctx_options_init */
    const char *model_dir; /* where the .tflite files are; NULL: $TRUESHOT_MODELS, else
                              $TRUESHOT_CACHE/models, else ~/.cache/trueshot/models. Copied. */
    int threads;           /* inference threads; 0 = default (1 on machines with <= 2 cores) */
    uint64_t max_pixels;   /* images over this many pixels are refused; default 100 MP */
} ts_ctx_options;

/* Fills o with defaults, including o->size. */
void ts_ctx_options_init(ts_ctx_options *o);

/* Creates a context. opt may be NULL for defaults (borrowed for the call). *out is untouched on
 * error; the message is then available from ts_last_error(). Models load lazily on first use. */
ts_status ts_ctx_new(const ts_ctx_options *opt, ts_ctx **out);
void ts_ctx_free(ts_ctx *ctx); /* NULL-safe */
/* The last error message of this context ("" if none). Valid until the next call on ctx. */
const char *ts_ctx_error(const ts_ctx *ctx);
/* Message of the last ts_ctx_new failure on this thread. */
const char *ts_last_error(void);

/* The neural models trueshot runs (MediaPipe, Apache-2.0). */
typedef enum ts_model_id {
    TS_MODEL_FACE_DETECTION_SHORT,
    TS_MODEL_FACE_DETECTION_FULL,
    TS_MODEL_FACE_LANDMARK,
    TS_MODEL_FACE_LANDMARK_ATTENTION,
    TS_MODEL_SELFIE_SEGMENTATION,
    TS_MODEL_SELFIE_SEGMENTATION_LANDSCAPE,
    TS_MODEL_COUNT
} ts_model_id;

/* File name of a model inside the model directory, e.g. "face_landmark.tflite". */
const char *ts_model_file(ts_model_id id);

/* Loads a model now (otherwise it loads on first use), so errors surface early. */
ts_status ts_ctx_load_model(ts_ctx *ctx, ts_model_id id);

/* A dense float32 tensor shape, for running models directly. */
typedef struct ts_tensor_shape {
    int rank;
    int dims[6];
} ts_tensor_shape;

/* Runs model id once. inputs[i] (borrowed) must hold as many floats as input i's shape; outputs
 * are copied into outputs[i] (caller-allocated, borrowed), whose capacities in floats are given
 * in output_caps. Shapes: ts_model_shape(). */
ts_status ts_model_run(ts_ctx *ctx, ts_model_id id, const float *const *inputs, int n_inputs,
                       float *const *outputs, const size_t *output_caps, int n_outputs);
/* Shape of input (is_output = 0) or output (1) number i of model id. */
ts_status ts_model_shape(ts_ctx *ctx, ts_model_id id, int is_output, int i, ts_tensor_shape *shape);

/* A photo: decoded pixels (EXIF orientation applied, converted to sRGB) plus cached analysis.
 * Immutable and reference counted; safe to share between threads. Opaque. */
typedef struct ts_photo ts_photo;

/* Opens a photo file (JPEG, PNG, WebP, HEIC, TIFF, ...). Decoding is lazy and streaming; the
 * file is never modified. Fails with TS_ERR_READ, TS_ERR_FORMAT or TS_ERR_TOO_LARGE. */
ts_status ts_photo_open(ts_ctx *ctx, const char *path, ts_photo **out);
ts_photo *ts_photo_ref(ts_photo *p);
void ts_photo_unref(ts_photo *p); /* NULL-safe */
/* Size after EXIF orientation. */
int ts_photo_width(const ts_photo *p);
int ts_photo_height(const ts_photo *p);
/* 180 when the photo is upside down beyond what its EXIF orientation says (a camera held the
 * other way up, its orientation tag lost): its pixels, sizes and face coordinates are then
 * those of the photo turned the right way up. Decided by face detection (ts_photo_faces and
 * everything that analyses the face); 0 before that, and for upright photos. */
int ts_photo_turn(const ts_photo *p);

/* Samples the photo into an RGB float tensor of w x h (NHWC, values in [lo, hi]) with aspect
 * ratio kept and the rest letterboxed with zeros (in value space). The mapping from tensor
 * pixels back to photo pixels is photo = tensor * scale + offset, written to xform[4] as
 * {scale_x, offset_x, scale_y, offset_y}. Uses shrink-on-load: a large JPEG is never decoded at
 * full size for this. dst holds w * h * 3 floats (borrowed). */
ts_status ts_photo_tensor(ts_ctx *ctx, ts_photo *p, int w, int h, float lo, float hi, float *dst,
                          float xform[4]);

/* ---- Face analysis ------------------------------------------------------------------------ */

typedef struct ts_point {
    float x, y;
} ts_point;

/* One face found by detection. Coordinates are photo pixels after EXIF orientation. */
typedef struct ts_face {
    float x, y, w, h;      /* box: top-left corner and size */
    ts_point keypoints[6]; /* right eye, left eye, nose tip, mouth, right ear, left ear (the
                              person's right: on the picture's left) */
    float score;           /* detector confidence, 0..1 */
} ts_face;

#define TS_LANDMARKS 478

/* Everything measured on the subject (the largest, most central face). */
typedef struct ts_face_analysis {
    int face;                         /* index of the subject in ts_photo_faces() */
    float landmarks[TS_LANDMARKS][3]; /* MediaPipe face mesh topology: 0..467 the mesh, 468..472
                                         and 473..477 the irises (centre first); x, y photo
                                         pixels, z in the same scale, smaller = nearer */
    ts_point irises[2];               /* iris centres (landmarks 468 and 473) */
    float inter_eye_px;               /* distance between the iris centres */
    float yaw, pitch, roll;           /* degrees: yaw > 0 turned to their left, pitch > 0 chin
                                         up, roll > 0 tilted clockwise (docs/face-pose.md) */
    float eye_open[2];                /* lid gap / eye width: ~0.25-0.35 open, < 0.12 shut */
    float gaze[2][2];                 /* iris offset in half eye widths; 0,0 = at the camera */
    float mouth_open;                 /* inner-lip gap / mouth width */
    float smile;                      /* mouth corners above the lip centre, in mouth widths */
    float presence;                   /* the mesh model's confidence that a face is there */
} ts_face_analysis;

/* The faces in p, best score first. Computed on first call and cached on the photo; *faces is
 * owned by the photo and valid while it lives. No face is not an error: *n is then 0. */
ts_status ts_photo_faces(ts_ctx *ctx, ts_photo *p, const ts_face **faces, int *n);

/* The subject's full analysis (mesh with irises, pose, eyes, mouth), computed once and cached
 * on the photo; *out is owned by the photo. TS_ERR_NO_FACE when the photo has no face. */
ts_status ts_photo_subject(ts_ctx *ctx, ts_photo *p, const ts_face_analysis **out);

/* ---- Person matte ------------------------------------------------------------------------- */

/* A person cut out of a photo: alpha and background-free foreground colour over a region of the
 * photo, at the photo's full resolution. Immutable; owned by the caller (ts_matte_free). */
typedef struct ts_matte ts_matte;

typedef enum ts_matte_region_mode {
    TS_MATTE_HEAD_AND_SHOULDERS, /* a region around the subject, sized from the face (default) */
    TS_MATTE_FULL_PHOTO,         /* the whole photo */
} ts_matte_region_mode;

typedef struct ts_matte_options {
    size_t size;                 /* sizeof(ts_matte_options): set by _init */
    ts_matte_region_mode region; /* default TS_MATTE_HEAD_AND_SHOULDERS */
    int decontaminate;           /* estimate foreground colour (default 1) */
} ts_matte_options;

void ts_matte_options_init(ts_matte_options *o);

/* Computes the person matte of p. opt may be NULL for defaults. TS_ERR_NO_FACE (head-and-
 * shoulders mode: no face to place the region), or TS_ERR_NO_PERSON when no person is found. */
ts_status ts_photo_matte(ts_ctx *ctx, ts_photo *p, const ts_matte_options *opt, ts_matte **out);
void ts_matte_free(ts_matte *m); /* NULL-safe */

/* The region the matte covers, in photo pixels: x, y, width, height. */
void ts_matte_region(const ts_matte *m, int *x, int *y, int *w, int *h);
/* Alpha as 8-bit (0..255) or 16-bit (0..65535), width*height values, row-major (borrowed dst). */
ts_status ts_matte_alpha8(const ts_matte *m, uint8_t *dst);
ts_status ts_matte_alpha16(const ts_matte *m, uint16_t *dst);

/* Writes files atomically (temporary name, then rename; no partial file on failure); the format
 * follows the extension (.png, .tif, .webp, ...):
 * - the cut-out: RGBA, decontaminated foreground colour with alpha (16-bit PNG if 16 != 0);
 * - the alpha alone, 8- or 16-bit grey;
 * - the person composited over a colour (0xRRGGBB) or over an image file (scaled to cover). */
ts_status ts_matte_save_cutout(ts_ctx *ctx, const ts_matte *m, const char *path, int sixteen);
ts_status ts_matte_save_alpha(ts_ctx *ctx, const ts_matte *m, const char *path, int sixteen);
ts_status ts_matte_save_over_color(ts_ctx *ctx, const ts_matte *m, uint32_t rgb, const char *path);
ts_status ts_matte_save_over_image(ts_ctx *ctx, const ts_matte *m, const char *background,
                                   const char *path);

/* ---- Photo check: headshot readiness --------------------------------------------------- */

/* How usable one aspect of a photo is for a headshot. */
typedef enum ts_verdict {
    TS_VERDICT_GOOD,            /* nothing to do */
    TS_VERDICT_COULD_BE_BETTER, /* usable; the tip says how to do better next time */
    TS_VERDICT_NOT_USABLE,      /* a headshot made from this photo would show the problem */
} ts_verdict;

/* "good", "could be better" or "not usable" (the words the JSON report uses); "?" otherwise. */
const char *ts_verdict_name(ts_verdict v);

typedef struct ts_check_options {
    size_t size;         /* sizeof(ts_check_options): set by _init */
    int output_px;       /* side of the square headshot the photo is meant for, in pixels
                            (default 1200: a LinkedIn / company-page photo) */
    float face_fraction; /* face width over that side in the headshot (default 0.45) */
    int scene;           /* 1 (default): also grade background and wardrobe, which runs the
                            person segmentation network (~10 ms); 0: face components only */
} ts_check_options;

void ts_check_options_init(ts_check_options *o);

#define TS_CHECK_RAW_MAX 8

/* One graded aspect of a photo. Ids are stable (docs/check-json.md): faces, resolution,
 * headroom, pose, eyes_open, gaze, expression, sharpness, noise, exposure, evenness, color_cast,
 * compression, eyes_hidden, too_close, background, wardrobe. */
typedef struct ts_check_component {
    const char *id;                         /* stable identifier, e.g. "sharpness" */
    const char *label;                      /* for people, e.g. "Sharpness" */
    int score;                              /* 0..100; >= 75 good, >= 40 could be better */
    ts_verdict verdict;                     /* follows from the score */
    char tip[320];                          /* what to do, in plain words; "" when good */
    int n_raw;                              /* measured values (units: docs/check.md) */
    const char *raw_name[TS_CHECK_RAW_MAX]; /* e.g. "inter_eye_px" */
    double raw[TS_CHECK_RAW_MAX];
} ts_check_component;

/* The grades of one photo. Owned by the caller (ts_check_report_free). Opaque. */
typedef struct ts_check_report ts_check_report;

/* A backdrop colour suggested for the person's clothing and hair. */
typedef struct ts_backdrop {
    const char *name;        /* e.g. "charcoal" */
    uint32_t rgb;            /* 0xRRGGBB */
    float contrast_clothing; /* CIELAB Delta E 1976 to the clothing colour */
    float contrast_hair;     /* to the hair colour */
} ts_backdrop;

/* Grades p as a headshot source (docs/check.md). opt may be NULL for defaults (borrowed for the
 * call). A photo without a face is not an error: the report's status is then TS_ERR_NO_FACE,
 * its verdict "not usable" and its one component "faces" says why. Fails with
 * TS_ERR_ARGUMENT, TS_ERR_NOMEM, TS_ERR_FORMAT (the pixels cannot be decoded), TS_ERR_MODEL or
 * TS_ERR_INTERNAL; *out is untouched on failure. Face analysis is cached on p and reused. */
ts_status ts_photo_check(ts_ctx *ctx, ts_photo *p, const ts_check_options *opt,
                         ts_check_report **out);
void ts_check_report_free(ts_check_report *r); /* NULL-safe */

/* Headshot readiness 0..100 and its verdict: a weighted mean of the components, capped at 25
 * above the worst one, and below 40 (not usable) when any component is not usable. */
int ts_check_score(const ts_check_report *r);
ts_verdict ts_check_verdict(const ts_check_report *r);
/* TS_OK, or TS_ERR_NO_FACE when the photo has no face. */
ts_status ts_check_status(const ts_check_report *r);
/* The components, in the order of the id list above (borrowed: valid while r lives). */
int ts_check_count(const ts_check_report *r);
const ts_check_component *ts_check_component_at(const ts_check_report *r, int i);
/* The component with this id, or NULL (not measured, or no face). */
const ts_check_component *ts_check_find(const ts_check_report *r, const char *id);
/* The subject's detection box (x, y, w, h in photo pixels) and inter-eye distance; returns 0
 * when the photo has no face (outputs untouched), 1 otherwise. */
int ts_check_face(const ts_check_report *r, float box[4], float *inter_eye_px);
/* Suggested backdrop colours, best first (borrowed); returns how many (0 without scene). */
int ts_check_backdrops(const ts_check_report *r, const ts_backdrop **out);

/* Ranks n reports best first: order[] (n ints, caller-allocated) gets their indices. reason
 * (cap bytes, may be NULL) gets why the first one won in words, e.g. "sharpest, most evenly lit
 * and the only one with eyes open". Reports may be NULL (a photo that could not be read): they
 * come last. Returns TS_ERR_ARGUMENT when order is NULL or n < 0. */
ts_status ts_check_rank(const ts_check_report *const *reports, int n, int *order, char *reason,
                        size_t cap);

#ifdef __cplusplus
}
#endif
#endif
