/* Live coaching: one webcam frame in, where the face is and what to change out, within the
 * 30 ms DESIGN.md gives a frame. The frame lives in memory only (a memfd, opened by its /proc
 * path so the library reads it as a file). What runs: face detection and the mesh (pose), and
 * a few statistics of the face's pixels (level, clipping, left/right balance) — not the full
 * check, whose sharpness, noise and compression grades mean little on a webcam stream. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <vips/vips.h>

#include "core/internal.h"
#include "studio.h"

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Luma statistics over the inner part of the face box (forehead to chin, cheek to cheek). */
typedef struct face_light {
    double mean;        /* 0..255 */
    double clipped;     /* fraction >= 250 */
    double left, right; /* mean of each half, as seen in the picture */
} face_light;

static int measure_light(const void *jpeg, size_t len, const float box[4], face_light *out) {
    VipsImage *im = vips_image_new_from_buffer(jpeg, len, "", "access", VIPS_ACCESS_RANDOM, NULL);
    VipsImage *grey = NULL, *u8 = NULL, *mem = NULL;
    int ok = im != NULL;
    if (ok) {
        int x0 = (int)(box[0] + 0.2f * box[2]), y0 = (int)(box[1] + 0.2f * box[3]);
        int w = (int)(0.6f * box[2]), h = (int)(0.7f * box[3]);
        x0 = x0 < 0 ? 0 : x0, y0 = y0 < 0 ? 0 : y0;
        if (x0 + w > im->Xsize) w = im->Xsize - x0;
        if (y0 + h > im->Ysize) h = im->Ysize - y0;
        VipsImage *area = NULL;
        ok = w >= 4 && h >= 4 && !vips_extract_area(im, &area, x0, y0, w, h, NULL);
        if (ok) ok = !vips_colourspace(area, &grey, VIPS_INTERPRETATION_B_W, NULL);
        if (area) g_object_unref(area);
    }
    if (ok) ok = !vips_cast_uchar(grey, &u8, NULL) && (mem = vips_image_copy_memory(u8));
    if (ok) {
        double sum = 0, l = 0, r = 0;
        long clip = 0, nl = 0, nr = 0, n = (long)mem->Xsize * mem->Ysize;
        for (int y = 0; y < mem->Ysize; y++) {
            const unsigned char *row = VIPS_IMAGE_ADDR(mem, 0, y);
            for (int x = 0; x < mem->Xsize; x++) {
                int v = row[x * mem->Bands];
                sum += v;
                clip += v >= 250;
                if (x < mem->Xsize / 2)
                    l += v, nl++;
                else
                    r += v, nr++;
            }
        }
        out->mean = sum / n;
        out->clipped = (double)clip / n;
        out->left = nl ? l / nl : 0;
        out->right = nr ? r / nr : 0;
    }
    VipsImage *all[] = {im, grey, u8, mem};
    for (int i = 0; i < 4; i++)
        if (all[i]) g_object_unref(all[i]);
    if (!ok) vips_error_clear();
    return ok ? 0 : -1;
}

static void tip(json_t *tips, const char *s) {
    json_array_append_new(tips, json_string(s));
}

int studio_live(ts_ctx *ctx, const void *jpeg, size_t len, json_t **out, char *err, size_t cap) {
    double t0 = now_ms();
    const unsigned char *b = jpeg;
    if (len < 4 || b[0] != 0xff || b[1] != 0xd8)
        return snprintf(err, cap, "A live frame is one JPEG image."), 415;
    int fd = memfd_create("trueshot-live", MFD_CLOEXEC);
    size_t done = 0;
    while (fd >= 0 && done < len) {
        ssize_t w = write(fd, b + done, len - done);
        if (w <= 0) break;
        done += (size_t)w;
    }
    if (fd < 0 || done < len) {
        if (fd >= 0) close(fd);
        return snprintf(err, cap, "The frame could not be held in memory."), 500;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ts_photo *p = NULL;
    ts_status st = ts_photo_open(ctx, path, &p);
    /* a webcam frame is upright: no second detection on a frame without a face */
    if (!st) ts_photo_known_upright(p);
    const ts_face_analysis *fa = NULL;
    const ts_face *faces = NULL;
    int n_faces = 0;
    if (!st) st = ts_photo_faces(ctx, p, &faces, &n_faces);
    if (!st && n_faces) {
        st = ts_photo_subject(ctx, p, &fa);
        if (st == TS_ERR_NO_FACE) st = TS_OK, fa = NULL;
    }
    if (st) {
        snprintf(err, cap, "The frame could not be read: %s", ts_ctx_error(ctx));
        ts_photo_unref(p);
        close(fd);
        return st == TS_ERR_FORMAT ? 415 : 500;
    }
    int W = ts_photo_width(p), H = ts_photo_height(p);
    json_t *o = json_pack("{s:i, s:i}", "width", W, "height", H), *tips = json_array();
    const char *distance = "ok", *light = "ok";
    if (fa) {
        const ts_face *f = &faces[fa->face];
        float box[4] = {f->x, f->y, f->w, f->h};
        json_object_set_new(o, "face",
                            json_pack("{s:f, s:f, s:f, s:f}", "x", (double)f->x, "y", (double)f->y,
                                      "w", (double)f->w, "h", (double)f->h));
        json_object_set_new(o, "yaw", json_real(round(fa->yaw * 10) / 10));
        json_object_set_new(o, "pitch", json_real(round(fa->pitch * 10) / 10));
        json_object_set_new(o, "roll", json_real(round(fa->roll * 10) / 10));
        /* A headshot wants the face about a fifth to two fifths of the frame's width: enough
         * pixels, and the camera far enough away not to enlarge the nose. */
        double frac = f->w / (W > 0 ? W : 1);
        distance = frac > 0.42 ? "farther" : frac < 0.16 ? "closer" : "ok";
        face_light fl;
        if (!measure_light(jpeg, len, box, &fl)) {
            double hi = fmax(fl.left, fl.right), lo = fmin(fl.left, fl.right);
            light = fl.mean < 70                         ? "dark"
                    : fl.mean > 205 || fl.clipped > 0.08 ? "bright"
                    : hi > 1.55 * fmax(lo, 1)            ? "uneven"
                                                         : "ok";
            json_object_set_new(o, "face_luma", json_real(round(fl.mean)));
        }
        /* Most urgent first: framing, then pose, then light. yaw > 0: turned to their left. */
        if (!strcmp(distance, "closer")) tip(tips, "Come a little closer to the camera.");
        if (!strcmp(distance, "farther"))
            tip(tips, "Move back a little: leave room around your head and shoulders.");
        double cx = (f->x + f->w / 2) / W;
        if (cx < 0.3 || cx > 0.7) tip(tips, "Move to the middle of the picture.");
        if (fa->yaw > 10) tip(tips, "Turn your head a little to the right.");
        if (fa->yaw < -10) tip(tips, "Turn your head a little to the left.");
        if (fa->pitch > 10) tip(tips, "Lower your chin a little.");
        if (fa->pitch < -12) tip(tips, "Raise your chin a little.");
        if (fabs(fa->roll) > 8) tip(tips, "Hold your head straight: it is tilted.");
        if (!strcmp(light, "dark")) tip(tips, "Your face is too dark: face a window or a lamp.");
        if (!strcmp(light, "bright"))
            tip(tips, "Your face is too bright: step back from the light or turn it away.");
        if (!strcmp(light, "uneven"))
            tip(tips, "One side of your face is darker: turn towards the light, or add light on "
                      "the darker side.");
    } else {
        json_object_set_new(o, "face", json_null());
        json_object_set_new(o, "yaw", json_null());
        json_object_set_new(o, "pitch", json_null());
        json_object_set_new(o, "roll", json_null());
        tip(tips, "No face found: look at the camera, in good light.");
    }
    json_object_set_new(o, "faces", json_integer(n_faces));
    json_object_set_new(o, "distance", json_string(distance));
    json_object_set_new(o, "light", json_string(light));
    json_object_set_new(o, "tips", tips);
    ts_photo_unref(p);
    close(fd);
    json_object_set_new(o, "ms", json_real(round((now_ms() - t0) * 10) / 10));
    *out = o;
    return 200;
}
