#include "draw.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

VipsImage *cli_load_srgb(const char *path) {
    VipsImage *im = vips_image_new_from_file(path, NULL), *rot = NULL, *rgb = NULL, *flat = NULL,
              *u8 = NULL;
    if (!im) return NULL;
    int ok = vips_autorot(im, &rot, NULL) == 0 &&
             vips_colourspace(rot, &rgb, VIPS_INTERPRETATION_sRGB, NULL) == 0;
    if (ok)
        ok = vips_image_hasalpha(rgb) ? vips_flatten(rgb, &flat, NULL) == 0
                                      : (flat = g_object_ref(rgb)) != NULL;
    if (ok) ok = vips_cast_uchar(flat, &u8, NULL) == 0;
    VipsImage *all[] = {im, rot, rgb, flat};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]) g_object_unref(all[i]);
    return ok ? u8 : NULL;
}

int cli_save_atomic(VipsImage *im, const char *path) {
    char tmp[1400];
    const char *ext = strrchr(path, '.');
    /* Keep the extension last so libvips picks the same format for the temporary file. */
    snprintf(tmp, sizeof tmp, "%s.tmp-%d%s", path, (int)getpid(), ext ? ext : ".png");
    if (vips_image_write_to_file(im, tmp, NULL) != 0) {
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void line(VipsImage *im, double *ink, double x0, double y0, double x1, double y1, int w) {
    for (int dx = -w / 2; dx <= w / 2; dx++)
        for (int dy = -w / 2; dy <= w / 2; dy++)
            vips_draw_line(im, ink, 3, (int)x0 + dx, (int)y0 + dy, (int)x1 + dx, (int)y1 + dy,
                           NULL);
}

int cli_draw_analysis(VipsImage *photo, const ts_face_box *faces, int n, int subject,
                      const ts_face_mesh *mesh, const ts_pose *pose, int max_side,
                      const char *out_path) {
    VipsImage *copy = NULL, *view = NULL;
    if (vips_copy(photo, &copy, NULL) != 0 || vips_image_wio_input(copy) != 0) {
        if (copy) g_object_unref(copy);
        return -1;
    }
    int W = copy->Xsize, H = copy->Ysize, t = (int)fmax(2, (W > H ? W : H) / 500.0);
    double red[3] = {255, 40, 40}, orange[3] = {255, 160, 30}, green[3] = {40, 255, 80},
           cyan[3] = {60, 220, 255}, yellow[3] = {255, 230, 40}, blue[3] = {60, 90, 255};
    for (int i = 0; i < n; i++) {
        const ts_face_box *f = &faces[i];
        for (int k = 0; k < t; k++)
            vips_draw_rect(copy, i == subject ? red : orange, 3, (int)f->x - k, (int)f->y - k,
                           (int)f->w + 2 * k, (int)f->h + 2 * k, NULL);
        for (int k = 0; k < 6; k++)
            vips_draw_circle(copy, green, 3, (int)f->kp[k][0], (int)f->kp[k][1], t + 1, "fill",
                             TRUE, NULL);
    }
    if (mesh)
        for (int k = 0; k < TS_MESH_POINTS; k++)
            vips_draw_circle(copy, k < 468 ? cyan : yellow, 3, (int)mesh->pts[k][0],
                             (int)mesh->pts[k][1], k < 468 ? t / 2 + 1 : t, "fill", TRUE, NULL);
    if (pose) {
        /* Axes of the head from the canonical origin, 8 cm long. */
        double o[3], e[3], v[3][3] = {{8, 0, 0}, {0, 8, 0}, {0, 0, 8}};
        double *ink[3] = {red, green, blue};
        ts_pose_project(pose, (double[3]){0, 0, 0}, o);
        for (int a = 0; a < 3; a++) {
            ts_pose_project(pose, v[a], e);
            line(copy, ink[a], o[0], o[1], e[0], e[1], t);
        }
    }
    double sc = fmin(1.0, (double)max_side / (W > H ? W : H));
    int rc = vips_resize(copy, &view, sc, NULL) == 0 ? cli_save_atomic(view, out_path) : -1;
    if (view) g_object_unref(view);
    g_object_unref(copy);
    return rc;
}
