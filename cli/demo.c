/* trueshot demo: the face and matte pipeline end to end, on one photo.
 * Finds the face, frames a square head-and-shoulders crop around it, cuts the person out with
 * the segmentation network, and places them on a studio grey. */
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
#define SEG_SIZE 256

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
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return cli_fail(TS_ERR_WRITE, "cannot create %s: %s", dir, strerror(errno));

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
    int W = full->Xsize, H = full->Ysize;
    /* Head-and-shoulders square: about 3x the face width, eyes a little above the middle. */
    float side = fminf(3.0f * f.w, (float)(W < H ? W : H));
    float eye_y = (f.kp[0][1] + f.kp[1][1]) / 2, cx = f.x + f.w / 2;
    float left = cx - side / 2, top = eye_y - 0.42f * side;
    left = fmaxf(0, fminf(left, W - side));
    top = fmaxf(0, fminf(top, H - side));
    int cs = (int)side, cl = (int)left, ct = (int)top;
    VipsImage *crop = NULL, *small = NULL, *mask = NULL, *mask_big = NULL, *grey = NULL,
              *comp = NULL, *out = NULL;
    bool ok = vips_extract_area(full, &crop, cl, ct, cs, cs, NULL) == 0 &&
              vips_resize(crop, &small, (double)SEG_SIZE / cs, NULL) == 0;
    size_t len = 0;
    unsigned char *px = ok ? vips_image_write_to_memory(small, &len) : NULL;
    ts_nn_runtime *rt = ok ? ts_ctx_runtime(ctx, TS_MODEL_SELFIE_SEGMENTATION) : NULL;
    if (!px || !rt || small->Xsize != SEG_SIZE || small->Ysize != SEG_SIZE) {
        rc = cli_fail(rt ? TS_ERR_INTERNAL : TS_ERR_MODEL, "segmentation failed: %s",
                      rt ? vips_error_buffer() : ts_ctx_error(ctx));
        g_free(px);
        goto cleanup;
    }
    ts_tview in = ts_nn_input(rt, 0);
    for (size_t i = 0; i < (size_t)SEG_SIZE * SEG_SIZE * 3; i++) in.data[i] = px[i] / 255.f;
    g_free(px);
    char err[300];
    if (ts_nn_run(rt, err, sizeof err)) {
        rc = cli_fail(TS_ERR_INTERNAL, "%s", err);
        goto cleanup;
    }
    const float *seg = ts_nn_output(rt, 0).data;
    unsigned char alpha[SEG_SIZE * SEG_SIZE];
    for (int i = 0; i < SEG_SIZE * SEG_SIZE; i++)
        alpha[i] = (unsigned char)lrintf(255.f * fminf(1.f, fmaxf(0.f, seg[i])));
    mask = vips_image_new_from_memory_copy(alpha, sizeof alpha, SEG_SIZE, SEG_SIZE, 1,
                                           VIPS_FORMAT_UCHAR);
    double bg[3] = {138, 141, 145}; /* studio grey #8a8d91 */
    ok = mask && vips_resize(mask, &mask_big, (double)cs / SEG_SIZE, "kernel", VIPS_KERNEL_LINEAR,
                             NULL) == 0;
    if (ok) ok = vips_black(&grey, cs, cs, "bands", 3, NULL) == 0;
    VipsImage *grey_c = NULL, *mask_fit = NULL;
    if (ok) ok = vips_linear(grey, &grey_c, (double[]){1, 1, 1}, bg, 3, "uchar", TRUE, NULL) == 0;
    if (ok) ok = vips_extract_area(mask_big, &mask_fit, 0, 0, cs, cs, NULL) == 0;
    if (ok) ok = vips_ifthenelse(mask_fit, crop, grey_c, &comp, "blend", TRUE, NULL) == 0;
    if (ok) ok = vips_resize(comp, &out, (double)OUT_SIZE / cs, NULL) == 0;
    char path[1200];
    snprintf(path, sizeof path, "%s/headshot.jpg", dir);
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
    if (grey_c) g_object_unref(grey_c);
    if (mask_fit) g_object_unref(mask_fit);
cleanup:
    if (crop) g_object_unref(crop);
    if (small) g_object_unref(small);
    if (mask) g_object_unref(mask);
    if (mask_big) g_object_unref(mask_big);
    if (grey) g_object_unref(grey);
    if (comp) g_object_unref(comp);
    if (out) g_object_unref(out);
    g_object_unref(full);
done:
    ts_photo_unref(p);
    ts_ctx_free(ctx);
    return rc;
}
