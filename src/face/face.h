/* Face detection (MediaPipe BlazeFace short range) — the first step of face analysis. */
#ifndef TS_FACE_H
#define TS_FACE_H

#include "trueshot.h"

typedef struct ts_face_box {
    float x, y, w, h; /* photo pixels, top-left and size */
    float kp[6][2];   /* right eye, left eye, nose tip, mouth, right ear, left ear (photo px) */
    float score;
} ts_face_box;

/* Detects faces with the short-range model. Writes up to cap faces (best first) into out and
 * their number into *n. */
ts_status ts_face_detect(ts_ctx *ctx, ts_photo *p, ts_face_box *out, int cap, int *n);

#endif
