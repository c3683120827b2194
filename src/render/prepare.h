/* The photo-level work of `trueshot make`, done once before its looks: the subject's face
 * analysis, the matte and the identity check's noise floor (docs/render-pipeline.md). */
#ifndef TS_RENDER_PREPARE_H
#define TS_RENDER_PREPARE_H

#include "matte/matte.h"
#include "verify/verify.h"

/* The models `make` runs on every photo (for ts_ctx_preload): face detection (both ranges), the
 * face mesh and its second runtime (the identity readings' second thread), the person
 * segmentation. */
#define TS_RENDER_MODELS                                                                           \
    ((1u << TS_MODEL_FACE_DETECTION_SHORT) | (1u << TS_MODEL_FACE_DETECTION_FULL) |                \
     (1u << TS_MODEL_FACE_LANDMARK_ATTENTION) | (1u << TS_MODEL_SELFIE_SEGMENTATION) |             \
     TS_PRELOAD_SECOND_MESH)

/* The subject's analysis into *face (owned by the photo), the matte into *matte (the caller
 * frees it with ts_matte_free) and, when floor is not NULL, the noise floor into *floor. The
 * noise floor (mesh readings of a re-encoded copy and of the photo itself) runs on a thread of
 * its own while the matte (segmentation and the alpha solve) runs on the caller's: the two
 * share nothing but the photo's decoded copies, and the matte leaves a core idle much of the
 * time. On failure nothing is returned, and the error is the ctx's. */
ts_status ts_render_prepare(ts_ctx *ctx, ts_photo *p, const ts_face_analysis **face,
                            ts_matte **matte, ts_verify_floor *floor);

/* The decode shrink (1, 2 or 4) to render the n frame blocks params[] of p's subject from:
 * decoded at 1/k (ts_photo_open_shrunk: a JPEG by DCT scaling), the matte, the copies and the
 * canvases work on 1/k^2 of the pixels. 2 (then 4) while every output still shrinks that decode
 * by TS_FRAME_HALF_FROM / 2 or more: where frame would make every canvas from its half-size
 * copies of the full decode (a 2 x 2 box, then the resize), the half-size decode serves as those
 * copies, and nothing is enlarged. 1 when the subject cannot be analysed (said when it is
 * prepared) or a block cannot be framed. */
int ts_render_decode_shrink(ts_ctx *ctx, ts_photo *p, const void *const *params, int n);

#endif
