/* Eyes, mouth and gaze measured from the 478-point mesh. */
#ifndef TS_FACE_EXPRESSION_H
#define TS_FACE_EXPRESSION_H

#include "face/mesh.h"

/* Index 0 is MediaPipe's "left" eye (mesh 33..133, iris 468: the subject's right eye, on the
 * image's left in an unmirrored photo), 1 the other. All measures are taken in the face's own
 * frame (roll removed), so they do not change when the photo is turned or scaled. */
typedef struct ts_face_expression {
    float eye_open[2];  /* eye aspect ratio: lid gap / eye width; ~0.25-0.35 open, < 0.12 shut */
    float gaze[2][2];   /* iris centre offset from the eye centre, in half eye widths (x right in
                           the image, y down); 0,0 = looking straight at the camera */
    float mouth_open;   /* inner-lip gap / mouth width; ~0 closed */
    float smile;        /* how far the mouth corners sit above the lip centre, in mouth widths */
    float inter_eye_px; /* distance between iris centres, photo pixels */
} ts_face_expression;

void ts_face_expression_measure(const ts_face_mesh *m, ts_face_expression *out);

#endif
