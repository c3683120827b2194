/* Grader too_close: the perspective distortion of a camera held too near the face (a phone at
 * arm's length enlarges the nose and shrinks the ears and jaw). Two estimates of the camera
 * distance: from EXIF (35 mm equivalent focal length and the face's size in the frame), exact
 * when the photo is uncropped; else from the mesh (how much wider the nose is, relative to the
 * face, than on the canonical face), which individual noses blur, so it alone never calls a
 * photo "not usable". */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "face/geometry.h"
#include "quality/quality.h"

/* Mean adult inter-pupillary distance, mm (Dodgson, "Variation and extrema of human
 * interpupillary distance", SPIE 2004: 63 mm). */
#define IPD_MM 63.0

/* An integer EXIF field from the photo's header ("26 (26, Short, ...)"), or 0. */
static int exif_int(VipsImage *im, const char *field) {
    const char *s = NULL;
    if (vips_image_get_typeof(im, field) == 0 || vips_image_get_string(im, field, &s) != 0 || !s) {
        vips_error_clear();
        return 0;
    }
    return atoi(s);
}

/* Camera-to-face distance in mm from EXIF, or 0 when it cannot be known. */
static double exif_distance(q_input *in) {
    VipsImage *h = in->photo->header;
    int f35 = exif_int(h, "exif-ifd2-FocalLengthIn35mmFilm");
    if (f35 <= 0 || f35 > 1200) return 0;
    /* A crop changes the frame the focal length refers to: trust EXIF only when the recorded
     * pixel size has the photo's aspect ratio (a resize keeps it). */
    int px = exif_int(h, "exif-ifd2-PixelXDimension"),
        py = exif_int(h, "exif-ifd2-PixelYDimension");
    double aspect = (double)h->Xsize / h->Ysize;
    if (px > 0 && py > 0 && fabs((double)px / py - aspect) > 0.02 * aspect) return 0;
    /* The 35 mm equivalent is defined on the diagonal (43.27 mm for 36 x 24). */
    double diag = hypot(in->W, in->H);
    double f_px = f35 * diag / 43.27;
    double ied = in->a->inter_eye_px / fmax(cos(in->a->yaw * M_PI / 180), 0.5);
    return ied > 0 ? f_px * IPD_MM / ied : 0;
}

/* The mesh estimate: the nose's alar width (mesh 129 to 358) over the face width (234 to 454),
 * relative to the same ratio on the canonical face.
 * Under a pinhole camera at distance d from the nose, a feature dz behind it is magnified by
 * d / (d + dz), so the nose grows against the cheeks as the camera nears. MediaPipe's image-space
 * mesh puts this ratio at 1.30-1.41 for the development photos whose EXIF says 1.6-2.6 m, and at
 * 1.31-1.56 for webcam frames at roughly half a metre: the effect is there, but people's noses
 * vary as much, so only a ratio beyond every development photo counts. */
static double nose_ratio(q_input *in) {
    const float(*L)[3] = in->a->landmarks;
    double nose = hypot(L[129][0] - L[358][0], L[129][1] - L[358][1]);
    double face = hypot(L[234][0] - L[454][0], L[234][1] - L[454][1]);
    const ts_geom *g = in->ctx->geom;
    if (!g || face < 1) return 0;
    const float(*V)[3] = g->vertices;
    double nose0 = hypot(V[129][0] - V[358][0], V[129][1] - V[358][1]);
    double face0 = hypot(V[234][0] - V[454][0], V[234][1] - V[454][1]);
    /* Relative to the canonical face's ratio. */
    return nose0 > 0 && face0 > 0 ? (nose / face) / (nose0 / face0) : 0;
}

ts_status q_grade_distance(q_input *in, ts_check_report *r) {
    ts_check_component *c = q_add(r, "too_close", "Camera distance");
    double ratio = nose_ratio(in), de = exif_distance(in);
    q_raw(c, "distance_m", de / 1000);
    q_raw(c, "from_exif", de > 0);
    q_raw(c, "nose_ratio", ratio);
    /* Ward et al., "Nasal distortion in short-distance photographs: the selfie effect" (JAMA
     * Facial Plast Surg 2018): at 30 cm the nasal base looks ~30% wider than at 1.5 m, the
     * distance portrait photographers work from. About 7% remains at 1 m, which few see. Good
     * from 1.0 m; from EXIF, not usable under 0.35 m (arm's length selfie: ~20%). */
    if (de > 0) {
        q_grade(c, q_up(de, 350, 1000),
                "The camera was too close (about %.0f cm): at arm's length a phone's wide lens "
                "enlarges the nose and shrinks the ears. Hold the phone farther away and zoom in "
                "2x, or have someone take the photo from 1.5-2 m.",
                de / 10);
        return TS_OK;
    }
    /* The mesh alone never says "not usable", and a turned head hides the cheek contour. */
    if (fabs(in->a->yaw) > 20 || ratio <= 0) {
        q_grade(c, 100, NULL);
        return TS_OK;
    }
    q_grade(c, fmax(Q_UNUSABLE, q_down(ratio, 1.6, 1.8)),
            "The nose looks large against the face, as when the camera is close (a phone at "
            "arm's length). Hold the phone farther away and zoom in 2x, or have someone take "
            "the photo from 1.5-2 m.");
    return TS_OK;
}
