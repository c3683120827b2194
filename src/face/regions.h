/* Face region masks (skin, eyes, irises, brows, lips, mouth interior, nostrils) rasterised from
 * the 478-point mesh at any resolution, with optional Gaussian soft edges. See
 * docs/face-regions.md for what each region covers and how far the skin reaches. */
#ifndef TS_FACE_REGIONS_H
#define TS_FACE_REGIONS_H

#include <stdint.h>

#include "face/geometry.h"
#include "face/mesh.h"

/* "Right" and "left" are the subject's own, as in MediaPipe's FACEMESH_RIGHT_EYE etc.: the right
 * eye is mesh 33..133 with iris 468..472, on the image's left in an unmirrored photo (index 0 of
 * ts_face_expression). */
typedef enum ts_face_region {
    TS_REGION_SKIN,       /* the mesh surface minus eyes, brows, lips, mouth and nostrils */
    TS_REGION_RIGHT_EYE,  /* eye opening (lid margin contour), iris included */
    TS_REGION_LEFT_EYE,   /* eye opening */
    TS_REGION_RIGHT_IRIS, /* iris disc, clipped to the right eye opening */
    TS_REGION_LEFT_IRIS,  /* iris disc, clipped to the left eye opening */
    TS_REGION_BROWS,      /* both eyebrows (between the upper and lower brow lines) */
    TS_REGION_LIPS,       /* outer lip contour minus inner lip contour */
    TS_REGION_MOUTH,      /* mouth interior: inside the inner lip contour (teeth, tongue) */
    TS_REGION_NOSTRILS,   /* both nostril openings */
    TS_REGION_FACE,       /* the whole mesh surface, nothing removed */
    TS_REGION_COUNT
} ts_face_region;

/* Short stable name ("skin", "right-eye", ...); "?" for an invalid value. */
const char *ts_face_region_name(ts_face_region r);

/* Writes the mask of `region` into out: width * height bytes, row-major, 0 outside, 255 inside,
 * for the photo the mesh was measured on scaled by `scale` (a photo point (x, y) lands at
 * (x * scale, y * scale) in the mask; pixel (i, j) covers [i, i+1) x [j, j+1)). Edges are
 * antialiased by 4 x 4 supersampling; feather_px > 0 then blurs the mask with a Gaussian of that
 * sigma in mask pixels (libvips; ts_ctx_new must have started it). g is the canonical geometry,
 * whose triangles make the skin and face regions; g may be NULL, and the face oval contour is used
 * instead. Returns TS_OK, TS_ERR_ARGUMENT (NULL pointer, size <= 0 or over 2^28 pixels, scale
 * not finite and > 0, feather_px not finite and >= 0, invalid region, mesh point not finite),
 * TS_ERR_NOMEM or TS_ERR_INTERNAL (libvips failed); on failure out is left untouched. */
ts_status ts_face_region_mask(const ts_face_mesh *m, const ts_geom *g, ts_face_region region,
                              int width, int height, float scale, float feather_px, uint8_t *out);

#endif
