/* trueshot demo: the face and matte pipeline end to end, on one photo.
 * Finds the face, cuts the person out at full resolution (ts_photo_matte), places them on a
 * studio grey, and frames a square head-and-shoulders crop around the face. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "draw.h"
#include "core/internal.h"
#include "face/face.h"
#include "face/mesh.h"

#define OUT_SIZE 800

int cmd_demo(int argc, char **argv) {
    const char *photo = NULL, *dir = "out";
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: trueshot demo PHOTO [-o DIR]\n"
                   "Writes DIR/headshot.jpg (%dx%d, person on studio grey) and\n"
                   "DIR/analysis.jpg (the photo with the face box and keypoints).\n",
                   OUT_SIZE, OUT_SIZE);
            return 0;
        } else if (argv[i][0] == '-')
            return cli_fail(TS_ERR_ARGUMENT, "demo: unknown option '%s'", argv[i]);
        else if (!photo)
            photo = argv[i];
        else
            return cli_fail(TS_ERR_ARGUMENT, "demo: one photo at a time");
    }
    if (!photo) return cli_fail(TS_ERR_ARGUMENT, "demo: which photo? (trueshot demo PHOTO)");
    /* "out/" and "out" name the same folder; keep printed paths clean. */
    char dirbuf[1024];
    snprintf(dirbuf, sizeof dirbuf, "%s", dir);
    for (size_t n = strlen(dirbuf); n > 1 && dirbuf[n - 1] == '/'; n--) dirbuf[n - 1] = 0;
    dir = dirbuf;
    /* Inputs are never overwritten. */
    static const char *const names[] = {"headshot.jpg", "analysis.jpg"};
    for (int k = 0; k < 2; k++) {
        char path[1100];
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        if (cli_same_file(photo, path))
            return cli_fail(TS_ERR_ARGUMENT,
                            "demo: %s is the photo, and trueshot never overwrites its inputs; "
                            "write to another folder (-o)",
                            path);
    }
    int made = cli_make_dir(dir);
    if (made) return made;

    ts_ctx *ctx;
    if (ts_ctx_new(NULL, &ctx) != TS_OK) return cli_fail(TS_ERR_INTERNAL, "%s", ts_last_error());
    ts_photo *p = NULL;
    int rc = 0;
    ts_status s = ts_photo_open(ctx, photo, &p);
    ts_face_box faces[16];
    int nf = 0;
    if (!s) s = ts_face_detect(ctx, p, faces, 16, &nf);
    if (s) {
        rc = cli_fail(s, "%s", ts_ctx_error(ctx));
        goto done;
    }
    if (nf == 0) {
        rc = cli_fail(TS_ERR_NO_FACE, "%s: no face found", photo);
        goto done;
    }
    /* The subject: the largest, most central face. */
    int best = ts_face_subject(faces, nf, ts_photo_width(p), ts_photo_height(p));
    ts_face_box f = faces[best];
    fprintf(stderr, "trueshot: %s: %d face%s, subject at %.0f,%.0f size %.0fx%.0f (score %.2f)\n",
            photo, nf, nf == 1 ? "" : "s", f.x, f.y, f.w, f.h, f.score);

    /* The 478-point mesh, drawn on the analysis view. */
    ts_face_mesh mesh;
    bool have_mesh = ts_face_mesh_compute(ctx, p, &f, &mesh) == TS_OK;
    if (!have_mesh) fprintf(stderr, "trueshot: mesh: %s\n", ts_ctx_error(ctx));

    VipsImage *full = cli_load_srgb(photo);
    if (!full) {
        rc = cli_fail(TS_ERR_FORMAT, "%s: cannot decode: %s", photo, vips_error_buffer());
        goto done;
    }
    /* The person cut out at full resolution (head and shoulders), placed on studio grey, then
     * the square around the eyes: about 3x the face width, eyes a little above the middle. */
    ts_matte *m = NULL;
    s = ts_photo_matte(ctx, p, NULL, &m);
    char path[1200], tmp[1300];
    snprintf(path, sizeof path, "%s/headshot.jpg", dir);
    snprintf(tmp, sizeof tmp, "%s/.headshot-matte-%d.png", dir, (int)getpid());
    if (!s) s = ts_matte_save_over_color(ctx, m, 0x8a8d91, tmp); /* studio grey */
    int mx = 0, my = 0, mw = 0, mh = 0;
    ts_matte_region(m, &mx, &my, &mw, &mh);
    ts_matte_free(m);
    if (s) {
        rc = cli_fail(s, "%s", ts_ctx_error(ctx));
        unlink(tmp);
        g_object_unref(full);
        goto done;
    }
    VipsImage *comp = vips_image_new_from_file(tmp, "access", VIPS_ACCESS_SEQUENTIAL, NULL),
              *crop = NULL, *out = NULL;
    float side = fminf(3.0f * f.w, (float)(mw < mh ? mw : mh));
    float eye_y = (f.kp[0][1] + f.kp[1][1]) / 2 - my, cx = f.x + f.w / 2 - mx;
    float left = fmaxf(0, fminf(cx - side / 2, mw - side));
    float top = fmaxf(0, fminf(eye_y - 0.42f * side, mh - side));
    int cs = (int)side;
    bool ok = comp && vips_extract_area(comp, &crop, (int)left, (int)top, cs, cs, NULL) == 0 &&
              vips_resize(crop, &out, (double)OUT_SIZE / cs, NULL) == 0;
    if (!ok || cli_save_atomic(out, path) != 0) {
        rc = cli_fail(TS_ERR_WRITE, "cannot write %s: %s", path, vips_error_buffer());
    } else {
        printf("%s\n", path);
        /* The analysis view: every face, the subject's mesh and irises. */
        snprintf(path, sizeof path, "%s/analysis.jpg", dir);
        if (cli_draw_analysis(full, faces, nf, best, have_mesh ? &mesh : NULL, NULL, 1200, path) ==
            0)
            printf("%s\n", path);
        else
            rc = cli_fail(TS_ERR_WRITE, "cannot write %s", path);
    }
    if (comp) g_object_unref(comp);
    if (crop) g_object_unref(crop);
    if (out) g_object_unref(out);
    unlink(tmp);
    g_object_unref(full);
done:
    ts_photo_unref(p);
    ts_ctx_free(ctx);
    return rc;
}
