/* Head pose from face landmarks: the canonical face mesh (face/geometry.h) fitted to the
 * landmarks by weighted orthogonal Procrustes (scale, rotation, translation) over MediaPipe's
 * Procrustes landmark basis, as mediapipe/modules/face_geometry does. docs/face-pose.md has the
 * derivation; in short:
 *
 * Camera model: weak perspective (scaled orthographic). Landmarks are image pixels, x right,
 * y down, z in the same scale as x with smaller z closer to the camera (MediaPipe's convention).
 * They are taken into a right-handed camera frame X = x, Y = -y, Z = -z (X right, Y up, Z towards
 * the camera, the canonical mesh's own axes) and fitted as  p = s * R * v + t.
 *
 * Angles, degrees, R = Rz(-roll) * Rx(-pitch) * Ry(yaw) (yaw applied first, in the head's frame;
 * roll last, in the image plane):
 *   yaw   > 0: the subject turns to their left, the nose moves towards the image's right;
 *   pitch > 0: chin up, the nose moves up in the image;
 *   roll  > 0: the head is tilted clockwise in the image as displayed.
 * Rotating the photo clockwise by a adds a to roll and leaves yaw and pitch alone; mirroring the
 * photo left-right negates yaw and roll and leaves pitch alone. */
#ifndef TS_FACE_POSE_H
#define TS_FACE_POSE_H

#include <stddef.h>

#include "face/geometry.h"
#include "trueshot.h"

typedef struct ts_pose {
    double yaw, pitch, roll; /* degrees, conventions above */
    double scale;            /* image pixels per canonical centimetre */
    double R[3][3];          /* rotation, canonical mesh -> camera frame */
    double t[3];             /* translation, camera frame (pixels; X = x, Y = -y, Z = -z) */
    double rms;              /* weighted RMS residual over the basis, pixels */
    double rms_rel;          /* rms / (scale * canonical inter-ocular distance 33-263) */
} ts_pose;

/* Fits the canonical mesh of g to n landmarks (n >= 468: the 468-point mesh, or 478 with irises,
 * which are ignored), each {x, y, z} as above. Returns 0, or -1 with a message in err (NULL
 * allowed) for bad arguments, non-finite landmarks, or a degenerate (collapsed) landmark set. */
int ts_pose_fit(const ts_geom *g, const float (*lm)[3], int n, ts_pose *out, char *err,
                size_t errlen);

/* The rotation for yaw, pitch, roll in degrees, and back (pitch in [-90, 90]). */
void ts_pose_matrix(double yaw, double pitch, double roll, double R[3][3]);
void ts_pose_angles(const double R[3][3], double *yaw, double *pitch, double *roll);

/* A canonical-space point (cm) to image pixels {x, y, z} under a fitted pose (for drawing axes:
 * the origin and the points (L,0,0), (0,L,0), (0,0,L)). */
void ts_pose_project(const ts_pose *p, const double v[3], double out[3]);

/* Weighted orthogonal Procrustes with scale: minimises sum w_i |s R a_i + t - b_i|^2 over s > 0,
 * proper rotations R and t (Horn's unit-quaternion method, double precision). Returns 0, or -1
 * when the weights or either point set are degenerate. */
int ts_pose_procrustes(const double (*a)[3], const double (*b)[3], const double *w, int n,
                       double *s, double R[3][3], double t[3]);

/* Eyes this close (degrees) to a quarter or half turn mean the photo lies on its side or upside
 * down (saved without its EXIF orientation), not that the head does. */
#define TS_POSE_UPRIGHT_TOL_DEG 25.0

/* How the subject lies in the photo: the eye line's angle (outer corners 33 -> 263, radians;
 * > 0 leans clockwise, image y pointing down) into *roll (may be NULL), and the quarter turns it
 * lies from level (-1, 1 or 2) when it is within TS_POSE_UPRIGHT_TOL_DEG of one; else 0. Frame
 * turns such a photo upright, the matte runs along the person (src/render/frame.c,
 * src/matte/matte.c). */
int ts_pose_quarters(const ts_face_analysis *a, double *roll);

#endif
