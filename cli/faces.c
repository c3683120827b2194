/* trueshot faces: the faces in each photo — box, score and six keypoints — as text or JSON. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "draw.h"
#include "core/internal.h"
#include "face/expression.h"
#include "face/face.h"
#include "face/geometry.h"
#include "face/mesh.h"
#include "face/pose.h"

#define MAX_FACES 256

static const char faces_usage[] =
    "usage: trueshot faces PHOTO... [--json] [--draw OUT.png] [--detector short|full|both]\n"
    "\n"
    "Finds every face in each photo and prints where it is. Two detectors run on every photo\n"
    "(MediaPipe's short-range one for selfies and near faces, its full-range one for groups and\n"
    "distant faces) and their boxes are merged, so one person gives one face.\n"
    "\n"
    "For each face:\n"
    "  box        x, y, width, height of the face in photo pixels (0,0 is the top-left corner of\n"
    "             the photo as it is meant to be seen, i.e. after its EXIF orientation; a photo\n"
    "             found upside down is read turned the right way up, and says so: \"turned\":\n"
    "             180 in --json)\n"
    "  score      how sure the detector is, 0 to 1 (faces under 0.5 are not reported)\n"
    "  keypoints  six points, in this order: right eye, left eye, nose tip, mouth centre,\n"
    "             right ear, left ear (the person's right: on the left of the picture)\n"
    "  subject    the face trueshot works on: the largest, most central one. A face's weight is\n"
    "             its width times (1 - 0.5 * distance from the centre), the distance being 0 in\n"
    "             the middle and 1 in a corner\n"
    "Faces are listed best score first. The subject also gets the full analysis: a 478-point\n"
    "mesh with irises, the distance between the irises in pixels, each eye's openness (lid gap\n"
    "over eye width: about 0.25-0.35 open, under 0.12 shut) and gaze (iris offset in half eye\n"
    "widths, 0 = at the camera), the mouth's openness and smile, and the head pose in degrees\n"
    "(yaw > 0: turned to their left; pitch > 0: chin up; roll > 0: tilted clockwise).\n"
    "\n"
    "options:\n"
    "  --json     one JSON object per photo, one per line (JSON Lines), e.g.\n"
    "             {\"photo\": \"a.jpg\", \"width\": 1200, \"height\": 800, \"faces\": [{\"box\":\n"
    "             [x, y, w, h], \"score\": 0.93, \"keypoints\": [[x, y], ...6], \"subject\": "
    "true,\n"
    "             \"landmarks\": [[x, y, z], ...478], \"irises\": {...}, \"inter_eye_px\": 84.4,\n"
    "             \"eyes\": {...}, \"mouth\": {...}, \"pose\": {\"yaw\": .., \"pitch\": .., "
    "\"roll\": ..}}]}\n"
    "  --draw OUT.png\n"
    "             also draw what was found: boxes, keypoints, the subject's mesh, irises and\n"
    "             head axes (with several photos: OUT-1.png, OUT-2.png, ...)\n"
    "  --detector short|full|both\n"
    "             which detector to run (default both): short range sees faces that fill\n"
    "             a good part of the photo, full range also small and distant ones\n"
    "  -h, --help this help\n"
    "\n"
    "Every photo is tried even when one fails. Exit code: 0 when every photo has a face, 6 when\n"
    "a photo has none, otherwise that of the first error (3 unreadable, 4 unsupported format,\n"
    "5 too large, 7 model missing; see trueshot --help).\n"
    "\n"
    "examples:\n"
    "  trueshot faces team/*.jpg\n"
    "  trueshot faces me.jpg --draw check.png\n"
    "  trueshot faces --json event/*.jpg | jq -r 'select(.faces == []) | .photo'\n";

/* Mesh and pose of the subject, added to its JSON object. */
static void subject_json(json_t *o, const ts_face_mesh *m, const ts_pose *pose) {
    json_t *lm = json_array();
    for (int i = 0; i < TS_MESH_POINTS; i++)
        json_array_append_new(lm, json_pack("[fff]", (double)m->pts[i][0], (double)m->pts[i][1],
                                            (double)m->pts[i][2]));
    json_object_set_new(o, "landmarks", lm);
    json_object_set_new(o, "irises",
                        json_pack("{s:[ff], s:[ff]}", "left", (double)m->pts[468][0],
                                  (double)m->pts[468][1], "right", (double)m->pts[473][0],
                                  (double)m->pts[473][1]));
    json_object_set_new(
        o, "inter_eye_px",
        json_real(hypot(m->pts[468][0] - m->pts[473][0], m->pts[468][1] - m->pts[473][1])));
    ts_face_expression x;
    ts_face_expression_measure(m, &x);
    /* "left"/"right" follow MediaPipe's mesh naming: "left" is mesh 33..133, iris 468. */
    json_object_set_new(o, "eyes",
                        json_pack("{s:{s:f, s:[ff]}, s:{s:f, s:[ff]}}", "left", "open",
                                  (double)x.eye_open[0], "gaze", (double)x.gaze[0][0],
                                  (double)x.gaze[0][1], "right", "open", (double)x.eye_open[1],
                                  "gaze", (double)x.gaze[1][0], (double)x.gaze[1][1]));
    json_object_set_new(
        o, "mouth",
        json_pack("{s:f, s:f}", "open", (double)x.mouth_open, "smile", (double)x.smile));
    if (pose)
        json_object_set_new(o, "pose",
                            json_pack("{s:f, s:f, s:f}", "yaw", pose->yaw, "pitch", pose->pitch,
                                      "roll", pose->roll));
}

static json_t *face_json(const ts_face_box *f, bool subject) {
    json_t *kp = json_array();
    for (int k = 0; k < 6; k++)
        json_array_append_new(kp, json_pack("[ff]", (double)f->kp[k][0], (double)f->kp[k][1]));
    /* Pixel positions to a tenth of a pixel, scores to 1e-4: enough, and readable. */
    json_t *box = json_pack("[ffff]", (double)f->x, (double)f->y, (double)f->w, (double)f->h);
    return json_pack("{s:o, s:f, s:o, s:b}", "box", box, "score", (double)f->score, "keypoints", kp,
                     "subject", subject);
}

/* The index of the first photo in argv after i (options and their values skipped), or argc. */
static int next_photo(int argc, char **argv, int i) {
    for (i++; i < argc; i++) {
        if (!strcmp(argv[i], "--detector") || !strcmp(argv[i], "--draw"))
            i++;
        else if (!(argv[i][0] == '-' && argv[i][1]))
            break;
    }
    return i < argc ? i : argc;
}

/* The drawing of photo k (1-based) of n: the name as given for one photo; for several
 * NAME-1.png, NAME-2.png, ... */
static void draw_name(const char *draw, int n, int k, char *out, size_t cap) {
    const char *dot = strrchr(draw, '.');
    int stem = dot ? (int)(dot - draw) : (int)strlen(draw);
    if (n == 1)
        snprintf(out, cap, "%s", draw);
    else
        snprintf(out, cap, "%.*s-%d%s", stem, draw, k, dot ? dot : ".png");
}

int cmd_faces(int argc, char **argv) {
    bool json = false;
    const char *draw = NULL;
    int nphotos = 0, models = TS_FACE_SHORT | TS_FACE_FULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!strcmp(argv[i], "--draw") && i + 1 < argc)
            draw = argv[++i];
        else if (!strcmp(argv[i], "--detector") && i + 1 < argc) {
            const char *d = argv[++i];
            models = !strcmp(d, "short")  ? TS_FACE_SHORT
                     : !strcmp(d, "full") ? TS_FACE_FULL
                     : !strcmp(d, "both") ? TS_FACE_SHORT | TS_FACE_FULL
                                          : 0;
            if (!models)
                return cli_fail(TS_ERR_ARGUMENT, "faces: --detector is short, full or both");
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(faces_usage, stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1])
            return cli_fail(TS_ERR_ARGUMENT, "faces: unknown option '%s' (try trueshot faces -h)",
                            argv[i]);
        else
            nphotos++;
    }
    if (!nphotos)
        return cli_fail(TS_ERR_ARGUMENT, "faces: which photos? (trueshot faces PHOTO...)");
    /* No drawing over a photo given (inputs are never overwritten). */
    char out[1200];
    for (int i = next_photo(argc, argv, 0), k = 1; draw && i < argc;
         i = next_photo(argc, argv, i), k++) {
        draw_name(draw, nphotos, k, out, sizeof out);
        for (int j = next_photo(argc, argv, 0); j < argc; j = next_photo(argc, argv, j))
            if (cli_same_file(argv[j], out))
                return cli_fail(TS_ERR_ARGUMENT,
                                "faces: --draw would write %s, one of the photos given, and "
                                "trueshot never overwrites its inputs; draw to another file",
                                out);
    }

    ts_ctx *ctx;
    if (ts_ctx_new(NULL, &ctx) != TS_OK) return cli_fail(TS_ERR_INTERNAL, "%s", ts_last_error());
    static ts_face_box faces[MAX_FACES];
    /* The canonical face geometry for the pose fit ships beside the models. */
    ts_geom geom = {0};
    char gpath[1200], gerr[300];
    snprintf(gpath, sizeof gpath, "%s/geometry_pipeline_metadata_landmarks.binarypb",
             ctx->model_dir);
    bool geom_ok = ts_geom_load(gpath, &geom, gerr, sizeof gerr) == 0;
    if (!geom_ok) fprintf(stderr, "trueshot: no head pose: %s\n", gerr);
    int rc = 0, drawn = 0;
    for (int i = next_photo(argc, argv, 0); i < argc; i = next_photo(argc, argv, i)) {
        const char *photo = argv[i];
        ts_photo *p = NULL;
        int nf = 0;
        ts_status s = ts_photo_open(ctx, photo, &p);
        if (!s) s = ts_face_detect_with(ctx, p, models, faces, MAX_FACES, &nf);
        if (s) {
            int code = cli_fail(s, "%s", ts_ctx_error(ctx));
            if (!rc) rc = code;
            ts_photo_unref(p);
            if (s == TS_ERR_MODEL) break; /* the next photo would fail the same way */
            continue;
        }
        int W = ts_photo_width(p), H = ts_photo_height(p);
        int subj = ts_face_subject(faces, nf, W, H);
        /* The subject gets the full analysis: 478-point mesh with irises, then head pose. */
        ts_face_mesh mesh;
        ts_pose pose;
        bool have_mesh = false, have_pose = false;
        if (subj >= 0 && subj < nf) {
            have_mesh = ts_face_mesh_compute(ctx, p, &faces[subj], &mesh) == TS_OK;
            if (!have_mesh) cli_fail(TS_ERR_INTERNAL, "%s: mesh: %s", photo, ts_ctx_error(ctx));
            char err[300];
            if (have_mesh && geom_ok)
                have_pose = ts_pose_fit(&geom, (const float(*)[3])mesh.pts, TS_MESH_POINTS, &pose,
                                        err, sizeof err) == 0;
        }
        if (json) {
            json_t *arr = json_array();
            for (int k = 0; k < nf; k++) {
                json_t *fo = face_json(&faces[k], k == subj);
                if (k == subj && have_mesh) subject_json(fo, &mesh, have_pose ? &pose : NULL);
                json_array_append_new(arr, fo);
            }
            json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:o}", "photo", photo, "width", W, "height",
                                  H, "turned", ts_photo_turn(p), "faces", arr);
            char *txt = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
            if (txt) puts(txt);
            free(txt);
            json_decref(o);
        } else {
            printf("%s: %dx%d, %d face%s%s\n", photo, W, H, nf, nf == 1 ? "" : "s",
                   ts_photo_turn(p) ? " (upside down: read turned the right way up)" : "");
            for (int k = 0; k < nf; k++) {
                const ts_face_box *f = &faces[k];
                printf("  face %d%s: box %.0f,%.0f %.0fx%.0f  score %.2f\n", k + 1,
                       k == subj ? " (subject)" : "", f->x, f->y, f->w, f->h, f->score);
                printf(
                    "    eyes %.0f,%.0f %.0f,%.0f  nose %.0f,%.0f  mouth %.0f,%.0f  ears %.0f,%.0f "
                    "%.0f,%.0f\n",
                    f->kp[0][0], f->kp[0][1], f->kp[1][0], f->kp[1][1], f->kp[2][0], f->kp[2][1],
                    f->kp[3][0], f->kp[3][1], f->kp[4][0], f->kp[4][1], f->kp[5][0], f->kp[5][1]);
                if (k == subj && have_mesh)
                    printf("    mesh 478 points, irises %.0f,%.0f %.0f,%.0f, inter-eye %.1f px\n",
                           mesh.pts[468][0], mesh.pts[468][1], mesh.pts[473][0], mesh.pts[473][1],
                           hypot(mesh.pts[468][0] - mesh.pts[473][0],
                                 mesh.pts[468][1] - mesh.pts[473][1]));
                if (k == subj && have_mesh) {
                    ts_face_expression x;
                    ts_face_expression_measure(&mesh, &x);
                    printf(
                        "    eyes open %.2f %.2f  gaze %+.2f,%+.2f %+.2f,%+.2f  mouth open %.2f  "
                        "smile %+.3f\n",
                        x.eye_open[0], x.eye_open[1], x.gaze[0][0], x.gaze[0][1], x.gaze[1][0],
                        x.gaze[1][1], x.mouth_open, x.smile);
                }
                if (k == subj && have_pose)
                    printf("    pose yaw %+.1f  pitch %+.1f  roll %+.1f degrees\n", pose.yaw,
                           pose.pitch, pose.roll);
            }
        }
        if (draw) {
            draw_name(draw, nphotos, ++drawn, out, sizeof out);
            VipsImage *full = cli_load_srgb(photo), *up = NULL;
            /* drawn on the photo the way the faces were found */
            if (full && ts_photo_turn(p) && vips_rot(full, &up, VIPS_ANGLE_D180, NULL) == 0)
                g_object_unref(full), full = up;
            if (!full || cli_draw_analysis(full, faces, nf, subj, have_mesh ? &mesh : NULL,
                                           have_pose ? &pose : NULL, 1600, out) != 0) {
                int code = cli_fail(TS_ERR_WRITE, "cannot write %s", out);
                if (!rc) rc = code;
            } else if (!json) {
                printf("  drawn to %s\n", out);
            }
            if (full) g_object_unref(full);
        }
        fflush(stdout);
        if (nf == 0) {
            int code = cli_fail(TS_ERR_NO_FACE, "%s: no face found", photo);
            if (!rc) rc = code;
        }
        ts_photo_unref(p);
    }
    ts_geom_free(&geom);
    ts_ctx_free(ctx);
    return rc;
}
