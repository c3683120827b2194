#include <math.h>

#include "face/expression.h"

/* Mesh indices (MediaPipe face mesh topology). Eye corners and three lid pairs per eye, as in
 * the eye aspect ratio of Soukupova & Cech, "Real-Time Eye Blink Detection using Facial
 * Landmarks" (CVWW 2016): EAR = (|p2-p6| + |p3-p5|) / (2 |p1-p4|). */
static const int eye_corner[2][2] = {{33, 133}, {362, 263}};
static const int eye_lids[2][3][2] = {{{160, 144}, {159, 145}, {158, 153}},
                                      {{385, 380}, {386, 374}, {387, 373}}};
static const int iris_centre[2] = {468, 473};
/* Mouth: outer corners 61/291, inner lip centres 13 (upper) and 14 (lower). */
enum { MOUTH_L = 61, MOUTH_R = 291, LIP_UP = 13, LIP_DOWN = 14 };

typedef struct {
    double c, s, ox, oy;
} frame;

/* Coordinates with the face's roll removed (the line between the eye corners made level). */
static void to_face(const frame *f, const float *p, double *x, double *y) {
    double dx = p[0] - f->ox, dy = p[1] - f->oy;
    *x = f->c * dx + f->s * dy;
    *y = -f->s * dx + f->c * dy;
}

static double dist(const ts_face_mesh *m, int a, int b) {
    return hypot(m->pts[a][0] - m->pts[b][0], m->pts[a][1] - m->pts[b][1]);
}

void ts_face_expression_measure(const ts_face_mesh *m, ts_face_expression *out) {
    double ang = atan2(m->pts[263][1] - m->pts[33][1], m->pts[263][0] - m->pts[33][0]);
    frame f = {cos(ang), sin(ang), m->pts[33][0], m->pts[33][1]};
    for (int e = 0; e < 2; e++) {
        double width = dist(m, eye_corner[e][0], eye_corner[e][1]);
        double gap = 0;
        for (int k = 0; k < 3; k++) gap += dist(m, eye_lids[e][k][0], eye_lids[e][k][1]);
        out->eye_open[e] = width > 0 ? (float)(gap / 3 / width) : 0.f;
        double ax, ay, bx, by, ix, iy, ty = 0;
        to_face(&f, m->pts[eye_corner[e][0]], &ax, &ay);
        to_face(&f, m->pts[eye_corner[e][1]], &bx, &by);
        to_face(&f, m->pts[iris_centre[e]], &ix, &iy);
        /* Vertical centre: the middle of the lid pairs, not the corners (lids are asymmetric). */
        for (int k = 0; k < 3; k++) {
            double ux, uy, lx, ly;
            to_face(&f, m->pts[eye_lids[e][k][0]], &ux, &uy);
            to_face(&f, m->pts[eye_lids[e][k][1]], &lx, &ly);
            ty += (uy + ly) / 2;
        }
        double half = width / 2 > 0 ? width / 2 : 1;
        out->gaze[e][0] = (float)((ix - (ax + bx) / 2) / half);
        out->gaze[e][1] = (float)((iy - ty / 3) / half);
    }
    double mw = dist(m, MOUTH_L, MOUTH_R);
    out->mouth_open = mw > 0 ? (float)(dist(m, LIP_UP, LIP_DOWN) / mw) : 0.f;
    double lx, ly, rx, ry, ux, uy, dx, dy;
    to_face(&f, m->pts[MOUTH_L], &lx, &ly);
    to_face(&f, m->pts[MOUTH_R], &rx, &ry);
    to_face(&f, m->pts[LIP_UP], &ux, &uy);
    to_face(&f, m->pts[LIP_DOWN], &dx, &dy);
    /* Positive when the corners are above the centre of the lips (y grows downwards). */
    out->smile = mw > 0 ? (float)(((uy + dy) / 2 - (ly + ry) / 2) / mw) : 0.f;
    out->inter_eye_px = (float)dist(m, 468, 473);
}
