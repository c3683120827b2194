/* The photo-level work of `trueshot make`, done once before its looks: the subject's face
 * analysis, the matte and the identity check's noise floor (docs/render-pipeline.md). */
#ifndef TS_RENDER_PREPARE_H
#define TS_RENDER_PREPARE_H

#include "matte/matte.h"
#include "verify/verify.h"

/* The subject's analysis into *face (owned by the photo), the matte into *matte (the caller
 * frees it with ts_matte_free) and, when floor is not NULL, the noise floor into *floor. The
 * noise floor (mesh readings of a re-encoded copy and of the photo itself) runs on a thread of
 * its own while the matte (segmentation and the alpha solve) runs on the caller's: the two
 * share nothing but the photo's decoded copies, and the matte leaves a core idle much of the
 * time. On failure nothing is returned, and the error is the ctx's. */
ts_status ts_render_prepare(ts_ctx *ctx, ts_photo *p, const ts_face_analysis **face,
                            ts_matte **matte, ts_verify_floor *floor);

#endif
