/* The 478-point face mesh with irises (MediaPipe face_landmark_with_attention), in photo pixels. */
#ifndef TS_FACE_MESH_H
#define TS_FACE_MESH_H

#include <vips/vips.h>

#include "face/face.h"

#define TS_MESH_POINTS 478

/* Mesh indices of the attention model's refined points, in the order it outputs them: the
 * lips (80), MediaPipe's "left" eye (71: mesh 33..133, the eye contour first, 16 points) and
 * "right" eye (71). Source: MediaPipe's tensors_to_face_landmarks_with_attention.pbtxt. */
extern const int ts_mesh_lips_idx[80];
extern const int ts_mesh_left_eye_idx[71];
extern const int ts_mesh_right_eye_idx[71];

/* A region of interest: a square of side `size` photo pixels centred at (cx, cy), turned by
 * `rotation` radians (clockwise in the image, y down), so the eyes are level inside it. */
typedef struct ts_face_roi {
    float cx, cy, size, rotation;
} ts_face_roi;

typedef struct ts_face_mesh {
    /* x, y in photo pixels; z in photo pixels too (same scale as x), smaller = nearer the camera.
     * 0..467 the mesh (lips and eyes refined), 468..472 one iris (centre first), 473..477 the
     * other, in MediaPipe's order. */
    float pts[TS_MESH_POINTS][3];
    float presence;  /* probability that the crop holds a face */
    ts_face_roi roi; /* the crop the final pass ran on */
    float src_scale; /* pixels per photo pixel of the image that crop was sampled from */
} ts_face_mesh;

/* The ROI MediaPipe derives from a detection: box centre, long side x 1.5, rotation from the
 * eye keypoints (face_detection_front_detection_to_roi.pbtxt). */
ts_face_roi ts_face_roi_from_detection(const ts_face_box *det);
/* The ROI derived from a mesh: axis-aligned bounds of the 468 points, long side x 1.5, rotation
 * from points 33 and 263 (face_landmark_landmarks_to_roi.pbtxt). */
ts_face_roi ts_face_roi_from_mesh(const ts_face_mesh *m);

/* Computes the mesh for the face found by det: a first pass on the detection's ROI, a second
 * on the ROI of the first pass's mesh. */
ts_status ts_face_mesh_compute(ts_ctx *ctx, ts_photo *p, const ts_face_box *det, ts_face_mesh *out);

/* One mesh pass at a given ROI (photo pixels) on src, an image related to the photo by P
 * (photo -> src pixels, x' = P0 x + P1 y + P2, y' = P3 x + P4 y + P5): a rendered output (P
 * its frame transform) or a copy of the photo. No detection: the crop is where roi puts it, so
 * two images of the same face measured at the same ROI differ only by their pixels. Landmarks
 * come out in photo pixels; out->presence says whether the crop held a face. src is sampled
 * bilinearly: shrink it first to about out->src_scale of the photo pass it is compared with.
 * name names src in messages. */
ts_status ts_face_mesh_on(ts_ctx *ctx, VipsImage *src, const double P[6], ts_face_roi roi,
                          const char *name, ts_face_mesh *out);

/* The ROI the subject's mesh was computed on (photo pixels) and that pass's src_scale; runs
 * the face analysis when it has not run yet (errors as ts_photo_subject). */
ts_status ts_photo_subject_roi(ts_ctx *ctx, ts_photo *p, ts_face_roi *roi, float *src_scale);

#endif
