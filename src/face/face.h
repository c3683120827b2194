/* Face detection (MediaPipe BlazeFace short and full range) — the first step of face analysis. */
#ifndef TS_FACE_H
#define TS_FACE_H

#include "trueshot.h"

/* Which detector found a face (bit mask: a merged face may carry both). */
enum { TS_FACE_SHORT = 1, TS_FACE_FULL = 2 };

typedef struct ts_face_box {
    float x, y, w, h; /* photo pixels, top-left and size */
    float kp[6][2];   /* right eye, left eye, nose tip, mouth, right ear, left ear (photo px) */
    float score;      /* detector confidence 0..1 of the best box of the merged group */
    int models;       /* TS_FACE_SHORT | TS_FACE_FULL: the detectors that contributed */
} ts_face_box;

/* Detects faces with both detectors (short range for selfies, full range for distant and group
 * photos) and merges their boxes by weighted non-maximum suppression. Writes up to cap faces, best
 * score first, in photo pixels (EXIF orientation applied) into out and their number into *n. */
ts_status ts_face_detect(ts_ctx *ctx, ts_photo *p, ts_face_box *out, int cap, int *n);

/* One detector alone: models is TS_FACE_SHORT or TS_FACE_FULL (or both, as ts_face_detect). */
ts_status ts_face_detect_with(ts_ctx *ctx, ts_photo *p, int models, ts_face_box *out, int cap,
                              int *n);

/* The subject among n faces of a width x height photo: the face with the largest
 * width * (1 - 0.5 * d), d being the distance of the face centre from the photo centre divided by
 * the half-diagonal (0 in the middle, 1 in a corner). A face in a corner must be twice as wide as
 * one in the middle to win. Returns its index, or -1 when n <= 0. */
int ts_face_subject(const ts_face_box *faces, int n, int width, int height);

#endif
