/* Photo check (issue 5): what the graders share. Each grader file adds components to a report;
 * check.c runs them, aggregates and ranks. Thresholds and their sources: docs/check.md. */
#ifndef TS_QUALITY_H
#define TS_QUALITY_H

#include <stdbool.h>
#include <stdint.h>

#include "core/internal.h"
#include "face/mesh.h"

#define TS_CHECK_MAX_COMPONENTS 20
#define TS_CHECK_MAX_BACKDROPS 4

/* Verdict boundaries on the 0..100 score: every component maps its raw value so that its
 * "not usable" threshold lands on Q_UNUSABLE and its "good" threshold on Q_GOOD. */
#define Q_GOOD 75
#define Q_UNUSABLE 40

struct ts_check_report {
    char path[1024];
    ts_status status; /* TS_OK or TS_ERR_NO_FACE */
    int width, height;
    int score;
    ts_verdict verdict;
    bool has_face;
    float box[4], inter_eye_px;
    int n;
    ts_check_component comp[TS_CHECK_MAX_COMPONENTS];
    int n_backdrops;
    ts_backdrop backdrops[TS_CHECK_MAX_BACKDROPS];
};

/* Everything the graders read: the subject's analysis and the photo's analysis copy. */
typedef struct q_input {
    ts_ctx *ctx;
    ts_photo *photo;
    const ts_check_options *opt;
    const ts_face_analysis *a; /* the subject (photo pixels) */
    const ts_face *faces;      /* all faces, best score first */
    int n_faces;
    int W, H;         /* photo size */
    VipsImage *an;    /* analysis copy: sRGB uchar, 3 bands, in memory (borrowed from photo) */
    double an_scale;  /* analysis pixels per photo pixel */
    float face_h;     /* forehead (mesh 10) to chin (152), photo px */
    float face_w;     /* cheek to cheek (mesh 234 to 454), photo px */
    float eye_mid[2]; /* between the iris centres, photo px */
    /* Colours measured on the face, shared with the wardrobe grader (CIELAB). */
    bool have_skin;
    float skin_lab[3];
} q_input;

/* Adds a component to r (id and label must be static strings). NULL when r is full. */
ts_check_component *q_add(ts_check_report *r, const char *id, const char *label);
/* Records a raw measured value (silently dropped past TS_CHECK_RAW_MAX). */
void q_raw(ts_check_component *c, const char *name, double v);
/* Sets the score (clamped to 0..100) and the verdict that follows from it; the tip is kept only
 * when the verdict is not good. */
void q_grade(ts_check_component *c, double score, const char *tip_fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Score of a raw value where larger is better: `unusable` maps to Q_UNUSABLE, `good` to Q_GOOD,
 * linear in between and beyond (clamped to 0..100 by q_grade). */
double q_up(double x, double unusable, double good);
/* The same where smaller is better. */
double q_down(double x, double good, double unusable);

/* Relative luminance Y (0..1, linear light) of an sRGB 8-bit pixel. */
double q_luminance(const uint8_t rgb[3]);
/* sRGB 8-bit to CIELAB (D65). */
void q_lab(const uint8_t rgb[3], float lab[3]);
/* CIELAB back to sRGB 0xRRGGBB, clamped. */
uint32_t q_lab_to_rgb(const float lab[3]);
/* CIE 1976 colour difference. */
float q_delta_e(const float a[3], const float b[3]);

/* The graders, in report order. Each adds its components to r; a measure that cannot be taken
 * (e.g. no torso visible) is left out rather than guessed. They return TS_OK or an error that
 * stops the check (out of memory, libvips or model failure) with the ctx error set. */
ts_status q_grade_geometry(q_input *in, ts_check_report *r); /* faces .. expression */
ts_status q_grade_pixels(q_input *in, ts_check_report *r);   /* sharpness .. eyes_hidden */
ts_status q_grade_distance(q_input *in, ts_check_report *r); /* too_close */
ts_status q_grade_scene(q_input *in, ts_check_report *r);    /* background, wardrobe */

#endif
