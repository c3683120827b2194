/* The public face-analysis calls: detection, then the subject's mesh, pose, eyes and mouth,
 * each computed once per photo and cached on it. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "face/expression.h"
#include "face/face.h"
#include "face/geometry.h"
#include "face/mesh.h"
#include "face/pose.h"

#define MAX_FACES 256

/* The canonical geometry for pose fitting ships beside the models; loaded once per context. */
static const ts_geom *ctx_geom(ts_ctx *ctx) {
    if (ctx->geom) return ctx->geom;
    ts_geom *g = calloc(1, sizeof *g);
    char path[1200], err[400];
    snprintf(path, sizeof path, "%s/geometry_pipeline_metadata_landmarks.binarypb", ctx->model_dir);
    if (!g || ts_geom_load(path, g, err, sizeof err) != 0) {
        ts_fail(ctx, TS_ERR_MODEL, "%s", g ? err : "out of memory");
        free(g);
        return NULL;
    }
    ctx->geom = g;
    return g;
}

/* Detection into the cache; call with face_lock held. */
static ts_status detect_locked(ts_ctx *ctx, ts_photo *p) {
    if (p->faces_done) return TS_OK;
    ts_face_box *boxes = malloc(sizeof *boxes * MAX_FACES);
    if (!boxes) return ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
    int n = 0;
    ts_status s = ts_face_detect(ctx, p, boxes, MAX_FACES, &n);
    if (s) {
        free(boxes);
        return s;
    }
    ts_face *faces = calloc(n ? (size_t)n : 1, sizeof *faces);
    if (!faces) {
        free(boxes);
        return ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        faces[i].x = boxes[i].x, faces[i].y = boxes[i].y;
        faces[i].w = boxes[i].w, faces[i].h = boxes[i].h;
        faces[i].score = boxes[i].score;
        for (int k = 0; k < 6; k++)
            faces[i].keypoints[k] = (ts_point){boxes[i].kp[k][0], boxes[i].kp[k][1]};
    }
    free(boxes);
    p->faces = faces;
    p->n_faces = n;
    p->faces_done = true;
    return TS_OK;
}

ts_status ts_photo_faces(ts_ctx *ctx, ts_photo *p, const ts_face **faces, int *n) {
    if (!ctx || !p || !faces || !n) return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_photo_faces: NULL");
    pthread_mutex_lock(&p->face_lock);
    ts_status s = detect_locked(ctx, p);
    if (!s) *faces = p->faces, *n = p->n_faces;
    pthread_mutex_unlock(&p->face_lock);
    return s;
}

static ts_status analyse_locked(ts_ctx *ctx, ts_photo *p) {
    ts_status s = detect_locked(ctx, p);
    if (s) return s;
    if (p->n_faces == 0) return ts_fail(ctx, TS_ERR_NO_FACE, "%s: no face found", p->path);
    /* ts_face_subject reads the internal boxes; rebuild them from the cache. */
    ts_face_box *boxes = calloc((size_t)p->n_faces, sizeof *boxes);
    ts_face_analysis *a = calloc(1, sizeof *a);
    if (!boxes || !a) {
        free(boxes);
        free(a);
        return ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < p->n_faces; i++) {
        const ts_face *f = &p->faces[i];
        boxes[i].x = f->x, boxes[i].y = f->y, boxes[i].w = f->w, boxes[i].h = f->h;
        boxes[i].score = f->score;
        for (int k = 0; k < 6; k++)
            boxes[i].kp[k][0] = f->keypoints[k].x, boxes[i].kp[k][1] = f->keypoints[k].y;
    }
    int subj = ts_face_subject(boxes, p->n_faces, p->width, p->height);
    ts_face_mesh mesh;
    s = ts_face_mesh_compute(ctx, p, &boxes[subj], &mesh);
    free(boxes);
    const ts_geom *g = s ? NULL : ctx_geom(ctx);
    ts_pose pose;
    char err[300];
    if (!s && !g) s = TS_ERR_MODEL;
    if (!s &&
        ts_pose_fit(g, (const float(*)[3])mesh.pts, TS_MESH_POINTS, &pose, err, sizeof err) != 0)
        s = ts_fail(ctx, TS_ERR_INTERNAL, "%s: pose: %s", p->path, err);
    if (s) {
        free(a);
        return s;
    }
    ts_face_expression x;
    ts_face_expression_measure(&mesh, &x);
    a->face = subj;
    memcpy(a->landmarks, mesh.pts, sizeof a->landmarks);
    a->irises[0] = (ts_point){mesh.pts[468][0], mesh.pts[468][1]};
    a->irises[1] = (ts_point){mesh.pts[473][0], mesh.pts[473][1]};
    a->inter_eye_px = x.inter_eye_px;
    a->yaw = (float)pose.yaw, a->pitch = (float)pose.pitch, a->roll = (float)pose.roll;
    memcpy(a->eye_open, x.eye_open, sizeof a->eye_open);
    memcpy(a->gaze, x.gaze, sizeof a->gaze);
    a->mouth_open = x.mouth_open;
    a->smile = x.smile;
    a->presence = mesh.presence;
    p->subject = a;
    p->subject_roi[0] = mesh.roi.cx, p->subject_roi[1] = mesh.roi.cy;
    p->subject_roi[2] = mesh.roi.size, p->subject_roi[3] = mesh.roi.rotation;
    p->subject_src_scale = mesh.src_scale;
    return TS_OK;
}

ts_status ts_photo_subject(ts_ctx *ctx, ts_photo *p, const ts_face_analysis **out) {
    if (!ctx || !p || !out) return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_photo_subject: NULL");
    pthread_mutex_lock(&p->face_lock);
    if (!p->subject_done) {
        p->subject_status = analyse_locked(ctx, p);
        /* Model and memory failures may be fixed by the caller; keep only final answers. */
        if (p->subject_status == TS_OK || p->subject_status == TS_ERR_NO_FACE) {
            p->subject_done = true;
            snprintf(p->subject_error, sizeof p->subject_error, "%s", ctx->err);
        }
    } else if (p->subject_status) {
        ts_fail(ctx, p->subject_status, "%s", p->subject_error);
    }
    ts_status s = p->subject_status;
    if (!s) *out = p->subject;
    pthread_mutex_unlock(&p->face_lock);
    return s;
}

ts_status ts_photo_subject_roi(ts_ctx *ctx, ts_photo *p, ts_face_roi *roi, float *src_scale) {
    const ts_face_analysis *f;
    ts_status s = ts_photo_subject(ctx, p, &f);
    if (s) return s;
    *roi =
        (ts_face_roi){p->subject_roi[0], p->subject_roi[1], p->subject_roi[2], p->subject_roi[3]};
    if (src_scale) *src_scale = p->subject_src_scale;
    return TS_OK;
}

int ts_photo_adopt_analysis(ts_ctx *ctx, ts_photo *dst, ts_photo *src) {
    if (!ctx || !dst || !src || dst == src || strcmp(dst->path, src->path)) return 0;
    const ts_face_analysis *a;
    if (ts_photo_subject(ctx, src, &a) != TS_OK) return 0;
    VipsImage *ia = ts_photo_analysis(ctx, src, NULL);
    if (!ia) return 0;
    /* the face measured on src's analysis copy (not on a sharper decode of a small face): the
     * copy's scale as the mesh computes it */
    double as = sqrt((double)ia->Xsize / src->width * ia->Ysize / src->height);
    if (fabs(src->subject_src_scale - as) > 1e-4 * as) return 0;
    pthread_mutex_lock(&dst->face_lock);
    int fresh = !dst->faces_done && !dst->subject_done;
    pthread_mutex_unlock(&dst->face_lock);
    if (!fresh) return 0;
    /* the same way up before dst decodes anything */
    atomic_store(&dst->turn, atomic_load(&src->turn));
    atomic_store(&dst->turn_tried, atomic_load(&src->turn_tried));
    ts_photo_share_analysis(dst, src);
    VipsImage *ib = ts_photo_analysis(ctx, dst, NULL);
    if (!ib || ia->Xsize != ib->Xsize || ia->Ysize != ib->Ysize) return 0;
    double ad = sqrt((double)ib->Xsize / dst->width * ib->Ysize / dst->height);
    double fx = (double)dst->width / src->width, fy = (double)dst->height / src->height;
    ts_face *faces = calloc(src->n_faces ? (size_t)src->n_faces : 1, sizeof *faces);
    ts_face_analysis *b = malloc(sizeof *b);
    if (!faces || !b) {
        free(faces), free(b);
        return 0;
    }
    for (int i = 0; i < src->n_faces; i++) {
        const ts_face *f = &src->faces[i];
        faces[i] = *f;
        faces[i].x = (float)(f->x * fx), faces[i].y = (float)(f->y * fy);
        faces[i].w = (float)(f->w * fx), faces[i].h = (float)(f->h * fy);
        for (int k = 0; k < 6; k++)
            faces[i].keypoints[k] =
                (ts_point){(float)(f->keypoints[k].x * fx), (float)(f->keypoints[k].y * fy)};
    }
    *b = *a;
    for (int i = 0; i < TS_LANDMARKS; i++) {
        b->landmarks[i][0] = (float)(a->landmarks[i][0] * fx);
        b->landmarks[i][1] = (float)(a->landmarks[i][1] * fy);
        b->landmarks[i][2] = (float)(a->landmarks[i][2] * fx);
    }
    for (int k = 0; k < 2; k++)
        b->irises[k] = (ts_point){(float)(a->irises[k].x * fx), (float)(a->irises[k].y * fy)};
    b->inter_eye_px = (float)(a->inter_eye_px * sqrt(fx * fy));
    pthread_mutex_lock(&dst->face_lock);
    int adopted = !dst->faces_done && !dst->subject_done;
    if (adopted) {
        dst->faces = faces, dst->n_faces = src->n_faces, dst->faces_done = true;
        dst->subject = b, dst->subject_status = TS_OK, dst->subject_done = true;
        dst->subject_error[0] = 0;
        dst->subject_roi[0] = (float)(src->subject_roi[0] * fx);
        dst->subject_roi[1] = (float)(src->subject_roi[1] * fy);
        dst->subject_roi[2] = (float)(src->subject_roi[2] * sqrt(fx * fy));
        dst->subject_roi[3] = src->subject_roi[3];
        dst->subject_src_scale = (float)ad;
    }
    pthread_mutex_unlock(&dst->face_lock);
    if (!adopted) free(faces), free(b);
    return adopted;
}
