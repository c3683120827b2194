/* Drawing what face analysis found, for people to check it (demo, faces --draw). */
#ifndef TS_CLI_DRAW_H
#define TS_CLI_DRAW_H

#include <vips/vips.h>

#include "face/face.h"
#include "face/mesh.h"
#include "face/pose.h"

/* The photo decoded whole, EXIF-rotated, sRGB, 3-band uchar. NULL on failure (vips error set). */
VipsImage *cli_load_srgb(const char *path);

/* Saves im to path (format from the extension) under a temporary name in the same folder, then
 * renames it: a failure leaves no partial file. Returns 0 or -1. */
int cli_save_atomic(VipsImage *im, const char *path);

/* Writes `photo` with every face box (the subject's in red, others orange), the detector
 * keypoints, and for the subject the mesh, irises and pose axes (x red, y green, z blue), scaled
 * to at most max_side pixels. mesh and pose may be NULL. Returns 0 or -1. */
int cli_draw_analysis(VipsImage *photo, const ts_face_box *faces, int n, int subject,
                      const ts_face_mesh *mesh, const ts_pose *pose, int max_side,
                      const char *out_path);

#endif
