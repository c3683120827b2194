/* Labelled degraded copies of a photo for validating `trueshot check` (issue 5, "Validated with
 * labelled data"). Each copy targets one check component; see docs/check-validation.md.
 *
 *   check_degrade [--trueshot EXE] [--faces FACES.json] [--crop-subject] [--only NAME]
 *                 PHOTO OUT_DIR
 *
 * The subject's face box, inter-eye distance and roll come from `EXE faces --json PHOTO`
 * (EXE defaults to $TRUESHOT, else build/cli/trueshot), or from FACES.json when given.
 * --crop-subject first cuts a head-and-shoulders crop around the subject (for the group photos)
 * and uses that, written as OUT_DIR/STEM.orig.png, as the photo to degrade.
 *
 * Writes OUT_DIR/STEM.NAME.png (STEM.jpeg10.jpg for the JPEG copy) and prints one manifest line
 * per file on stdout, "NAME<TAB>TARGET_COMPONENT<TAB>PATH", the first line being the photo
 * itself ("orig", target "-"). NAME is one of:
 *   blur2, blur4   Gaussian blur, sigma 2 and 4 px at 1 MP: sigma scaled by sqrt(W*H / 1e6), so
 *                  the photo is not resampled (same blur relative to the frame as resizing to
 *                  1 MP, blurring, and resizing back)                              -> sharpness
 *   motion15       horizontal motion blur, a 1x15 box kernel in the photo's own pixels -> sharpness
 *   ev-2, ev+2     exposure x0.25 / x4 in linear light (scRGB), back to sRGB, clipped -> exposure
 *   noise15        additive Gaussian noise, sigma 15 on the 0..255 scale, independent per channel,
 *                  seeded from the file name (reproducible)                        -> noise
 *   jpeg10         JPEG quality 10 (libjpeg, 4:2:0)                                -> compression
 *   ied30          downscaled (Lanczos 3) until the inter-eye distance is 30 px; skipped when it
 *                  already is 30 px or less                                        -> resolution
 *   rot25          rotated 25 degrees about the face centre, same frame, edges mirrored; turned
 *                  the way that adds to the subject's own roll, so |roll| >= 25    -> pose
 *   cast           colour cast in linear light: R x1.3, B x0.7 (a warm, tungsten-like cast,
 *                  R/B ratio x1.86)                                                -> color_cast
 *   gradient       hard side light: linear light multiplied by a horizontal ramp from 0.25 at one
 *                  edge of the face box to 1.0 at the other (constant outside), darkening the
 *                  side of the face box that is already the darker                -> evenness
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <vips/vips.h>

typedef struct {
    double box[4]; /* x, y, w, h in the photo (after EXIF orientation) */
    double ied;    /* inter-eye distance, px */
    double roll;   /* degrees */
} subject;

static _Noreturn void die(const char *what, const char *detail) {
    fprintf(stderr, "check_degrade: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

static _Noreturn void vdie(const char *what) {
    die(what, vips_error_buffer());
}

/* The subject face of `trueshot faces --json` output. */
static void parse_faces(const char *text, subject *s) {
    json_error_t err;
    json_t *root = json_loads(text, 0, &err);
    if (!root) die("faces JSON", err.text);
    json_t *faces = json_object_get(root, "faces"), *f, *subj = NULL;
    size_t i;
    json_array_foreach(faces, i, f) {
        if (json_is_true(json_object_get(f, "subject"))) subj = f;
    }
    if (!subj) die("faces JSON", "no subject face");
    json_t *box = json_object_get(subj, "box");
    for (int k = 0; k < 4; k++) s->box[k] = json_number_value(json_array_get(box, k));
    s->ied = json_number_value(json_object_get(subj, "inter_eye_px"));
    s->roll = json_number_value(json_object_get(json_object_get(subj, "pose"), "roll"));
    if (!(s->box[2] > 0 && s->ied > 0)) die("faces JSON", "subject without box or inter_eye_px");
    json_decref(root);
}

static char *read_all(FILE *f) {
    size_t cap = 1 << 16, n = 0, r;
    char *buf = malloc(cap);
    if (!buf) die("out of memory", NULL);
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n < 2 && !(buf = realloc(buf, cap *= 2))) die("out of memory", NULL);
    }
    buf[n] = 0;
    return buf;
}

static void get_subject(const char *exe, const char *faces_json, const char *photo, subject *s) {
    char *text;
    if (faces_json) {
        FILE *f = fopen(faces_json, "r");
        if (!f) die("cannot read", faces_json);
        text = read_all(f);
        fclose(f);
    } else {
        GString *cmd = g_string_new(NULL);
        char *qe = g_shell_quote(exe), *qp = g_shell_quote(photo);
        g_string_printf(cmd, "%s faces --json %s", qe, qp);
        g_free(qe), g_free(qp);
        FILE *f = popen(cmd->str, "r");
        if (!f) die("cannot run", cmd->str);
        text = read_all(f);
        if (pclose(f) != 0) die("failed", cmd->str);
        g_string_free(cmd, TRUE);
    }
    parse_faces(text, s);
    free(text);
}

/* The photo as 3-band sRGB uchar, EXIF orientation applied, alpha flattened over white. */
static VipsImage *load(const char *path) {
    VipsImage *im = vips_image_new_from_file(path, NULL), *t;
    if (!im) vdie(path);
    if (vips_autorot(im, &t, NULL)) vdie("autorot");
    g_object_unref(im), im = t;
    if (vips_image_hasalpha(im)) {
        VipsArrayDouble *white = vips_array_double_newv(1, 255.0);
        if (vips_flatten(im, &t, "background", white, NULL)) vdie("flatten");
        vips_area_unref(VIPS_AREA(white));
        g_object_unref(im), im = t;
    }
    if (vips_colourspace(im, &t, VIPS_INTERPRETATION_sRGB, NULL)) vdie("colourspace");
    g_object_unref(im), im = t;
    if (vips_cast_uchar(im, &t, NULL)) vdie("cast");
    g_object_unref(im), im = t;
    /* Decode once: every degradation reads the whole image. */
    if (!(t = vips_image_copy_memory(im))) vdie("copy_memory");
    g_object_unref(im);
    return t;
}

/* Float image (any range) back to uchar sRGB, clipped to 0..255. */
static VipsImage *to_uchar(VipsImage *in) {
    VipsImage *t, *u;
    if (vips_cast_uchar(in, &t, NULL)) vdie("cast"); /* vips_cast clips */
    g_object_unref(in);
    if (vips_copy(t, &u, "interpretation", VIPS_INTERPRETATION_sRGB, NULL)) vdie("copy");
    g_object_unref(t);
    return u;
}

/* In linear light: multiply by a constant per band (k3) or by a 1-band image (ramp). */
static VipsImage *linear_light(VipsImage *in, const double k3[3], VipsImage *ramp) {
    VipsImage *lin, *m, *out;
    if (vips_colourspace(in, &lin, VIPS_INTERPRETATION_scRGB, NULL)) vdie("scRGB");
    if (ramp) {
        if (vips_multiply(lin, ramp, &m, NULL)) vdie("multiply");
    } else if (vips_linear(lin, &m, k3, (double[3]){0, 0, 0}, 3, NULL))
        vdie("linear");
    g_object_unref(lin);
    /* scRGB -> sRGB clips to 0..255 in the conversion to 8 bits. */
    if (vips_colourspace(m, &out, VIPS_INTERPRETATION_sRGB, NULL)) vdie("sRGB");
    g_object_unref(m);
    return to_uchar(out);
}

static VipsImage *gauss_blur(VipsImage *in, double sigma) {
    VipsImage *t;
    if (vips_gaussblur(in, &t, sigma, "min_ampl", 0.005, "precision", VIPS_PRECISION_FLOAT, NULL))
        vdie("gaussblur");
    return to_uchar(t);
}

static VipsImage *motion_blur(VipsImage *in, int len) {
    VipsImage *k = vips_image_new_matrix(len, 1), *t;
    for (int i = 0; i < len; i++) *VIPS_MATRIX(k, i, 0) = 1.0;
    vips_image_set_double(k, "scale", len);
    vips_image_set_double(k, "offset", 0);
    if (vips_conv(in, &t, k, "precision", VIPS_PRECISION_FLOAT, NULL)) vdie("conv");
    g_object_unref(k);
    return to_uchar(t);
}

static unsigned name_seed(const char *s) {
    unsigned h = 2166136261u; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h & 0x7fffffff;
}

static VipsImage *add_noise(VipsImage *in, double sigma, const char *stem) {
    VipsImage *n[3], *nj, *t;
    for (int b = 0; b < 3; b++)
        if (vips_gaussnoise(&n[b], in->Xsize, in->Ysize, "sigma", sigma, "mean", 0.0, "seed",
                            (int)((name_seed(stem) + 7919u * b) & 0x7fffffff), NULL))
            vdie("gaussnoise");
    if (vips_bandjoin(n, &nj, 3, NULL)) vdie("bandjoin");
    for (int b = 0; b < 3; b++) g_object_unref(n[b]);
    if (vips_add(in, nj, &t, NULL)) vdie("add");
    g_object_unref(nj);
    return to_uchar(t);
}

static VipsImage *downscale(VipsImage *in, double scale) {
    VipsImage *t;
    if (vips_resize(in, &t, scale, "kernel", VIPS_KERNEL_LANCZOS3, NULL)) vdie("resize");
    return t;
}

/* Rotated by deg (counter-clockwise as seen, for deg > 0) about (cx, cy), same frame. The
 * photo is first extended by mirroring, so the corners that come in from outside the frame hold
 * mirrored picture rather than black wedges. */
static VipsImage *rotate_about(VipsImage *in, double deg, double cx, double cy) {
    double a = -deg * M_PI / 180.0, c = cos(a), s = sin(a);
    int m = (in->Xsize > in->Ysize ? in->Xsize : in->Ysize) / 2 + 4;
    VipsImage *big, *t;
    if (vips_embed(in, &big, m, m, in->Xsize + 2 * m, in->Ysize + 2 * m, "extend",
                   VIPS_EXTEND_MIRROR, NULL))
        vdie("embed");
    VipsArrayInt *area = vips_array_int_newv(4, 0, 0, in->Xsize, in->Ysize);
    if (vips_affine(big, &t, c, -s, s, c, "idx", -(cx + m), "idy", -(cy + m), "odx", cx, "ody", cy,
                    "oarea", area, "interpolate", vips_interpolate_bilinear_static(), NULL))
        vdie("affine");
    vips_area_unref(VIPS_AREA(area));
    g_object_unref(big);
    return t;
}

/* Mean luminance (linear light) of the left half of a box over that of its right half. */
static double box_left_right(VipsImage *im, const double box[4]) {
    int x0 = (int)fmax(0, box[0]), y0 = (int)fmax(0, box[1]);
    int x1 = (int)fmin(im->Xsize, box[0] + box[2]), y1 = (int)fmin(im->Ysize, box[1] + box[3]);
    int xm = (x0 + x1) / 2;
    if (xm - x0 < 2 || y1 - y0 < 2) return 1;
    VipsImage *lin, *l, *r;
    double ml, mr;
    if (vips_colourspace(im, &lin, VIPS_INTERPRETATION_scRGB, NULL)) vdie("scRGB");
    if (vips_extract_area(lin, &l, x0, y0, xm - x0, y1 - y0, NULL) ||
        vips_extract_area(lin, &r, xm, y0, x1 - xm, y1 - y0, NULL) || vips_avg(l, &ml, NULL) ||
        vips_avg(r, &mr, NULL))
        vdie("box means");
    g_object_unref(l), g_object_unref(r), g_object_unref(lin);
    return mr > 0 ? ml / mr : 1;
}

/* A 1-band float image W x H: 0.25 left of x0, 1.0 right of x0 + w, linear in between; the
 * mirror image (0.25 right of x0 + w) when flip is set. */
static VipsImage *side_ramp(int width, int height, double x0, double w, int flip) {
    float *row = malloc(sizeof(float) * width);
    if (!row) die("out of memory", NULL);
    for (int x = 0; x < width; x++) {
        double f = (x + 0.5 - x0) / w;
        f = f < 0 ? 0 : f > 1 ? 1 : f;
        if (flip) f = 1 - f;
        row[x] = (float)(0.25 + 0.75 * f);
    }
    VipsImage *r =
        vips_image_new_from_memory_copy(row, sizeof(float) * width, width, 1, 1, VIPS_FORMAT_FLOAT);
    free(row);
    VipsImage *t;
    if (!r || vips_replicate(r, &t, 1, height, NULL)) vdie("ramp");
    g_object_unref(r);
    return t;
}

static const char *out_dir, *stem, *only;

static void save(VipsImage *im, const char *name, const char *target) {
    char path[4096];
    int jpeg = !strcmp(name, "jpeg10");
    snprintf(path, sizeof path, "%s/%s.%s.%s", out_dir, stem, name, jpeg ? "jpg" : "png");
    int r = jpeg ? vips_jpegsave(im, path, "Q", 10, "strip", TRUE, NULL)
                 : vips_pngsave(im, path, "compression", 1, NULL);
    if (r) vdie(path);
    g_object_unref(im);
    printf("%s\t%s\t%s\n", name, target, path);
    fflush(stdout);
}

static int want(const char *name) {
    return !only || !strcmp(only, name);
}

int main(int argc, char **argv) {
    if (VIPS_INIT(argv[0])) vdie("vips_init");
    const char *exe = getenv("TRUESHOT"), *faces_json = NULL, *photo = NULL;
    int crop = 0;
    if (!exe || !*exe) exe = "build/cli/trueshot";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--trueshot") && i + 1 < argc)
            exe = argv[++i];
        else if (!strcmp(argv[i], "--faces") && i + 1 < argc)
            faces_json = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--crop-subject"))
            crop = 1;
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "usage: check_degrade [--trueshot EXE] [--faces FACES.json] "
                            "[--crop-subject] [--only NAME] PHOTO OUT_DIR\n");
            return 2;
        } else if (!photo)
            photo = argv[i];
        else
            out_dir = argv[i];
    }
    if (!photo || !out_dir) die("usage", "check_degrade [options] PHOTO OUT_DIR");
    mkdir(out_dir, 0755);

    const char *base = strrchr(photo, '/');
    char *st = g_strdup(base ? base + 1 : photo), *dot = strrchr(st, '.');
    if (dot) *dot = 0;
    stem = st;

    subject s;
    get_subject(exe, faces_json, photo, &s);
    VipsImage *im = load(photo);

    if (crop) { /* head and shoulders: 1.3 face widths either side, 0.8 above, 2.3 below */
        double cx = s.box[0] + s.box[2] / 2;
        int x0 = (int)fmax(0, cx - 1.3 * s.box[2]), y0 = (int)fmax(0, s.box[1] - 0.8 * s.box[3]);
        int x1 = (int)fmin(im->Xsize, cx + 1.3 * s.box[2]);
        int y1 = (int)fmin(im->Ysize, s.box[1] + 3.3 * s.box[3]);
        VipsImage *t, *m;
        if (vips_crop(im, &t, x0, y0, x1 - x0, y1 - y0, NULL)) vdie("crop");
        if (!(m = vips_image_copy_memory(t))) vdie("copy_memory");
        g_object_unref(t), g_object_unref(im), im = m;
        /* A crop is no longer the camera's frame: drop the EXIF, whose focal length would now
         * refer to a wider picture (and libvips rewrites the recorded pixel size on save, so
         * check could not tell). */
        gchar **fields = vips_image_get_fields(im);
        for (int k = 0; fields[k]; k++)
            if (!strncmp(fields[k], "exif-", 5)) vips_image_remove(im, fields[k]);
        g_strfreev(fields);
        s.box[0] -= x0, s.box[1] -= y0;
        g_object_ref(im);
        save(im, "orig", "-");
    } else
        printf("orig\t-\t%s\n", photo);

    const int w = im->Xsize, h = im->Ysize;
    const double mp_scale = sqrt((double)w * h / 1e6);
    const double cx = s.box[0] + s.box[2] / 2, cy = s.box[1] + s.box[3] / 2;

    if (want("blur2")) save(gauss_blur(im, 2.0 * mp_scale), "blur2", "sharpness");
    if (want("blur4")) save(gauss_blur(im, 4.0 * mp_scale), "blur4", "sharpness");
    if (want("motion15")) save(motion_blur(im, 15), "motion15", "sharpness");
    if (want("ev-2"))
        save(linear_light(im, (double[3]){0.25, 0.25, 0.25}, NULL), "ev-2", "exposure");
    if (want("ev+2")) save(linear_light(im, (double[3]){4, 4, 4}, NULL), "ev+2", "exposure");
    if (want("noise15")) save(add_noise(im, 15.0, stem), "noise15", "noise");
    if (want("jpeg10")) {
        g_object_ref(im);
        save(im, "jpeg10", "compression");
    }
    if (want("ied30") && s.ied > 30.5) save(downscale(im, 30.0 / s.ied), "ied30", "resolution");
    if (want("rot25")) save(rotate_about(im, s.roll < 0 ? 25.0 : -25.0, cx, cy), "rot25", "pose");
    if (want("cast"))
        save(linear_light(im, (double[3]){1.3, 1.0, 0.7}, NULL), "cast", "color_cast");
    if (want("gradient")) {
        /* Darken the side that is already the darker one, as rot25 adds to the subject's own
         * roll: a ramp against the photo's own side light would even it out instead. */
        int flip = box_left_right(im, s.box) > 1;
        VipsImage *ramp = side_ramp(w, h, s.box[0], s.box[2], flip);
        save(linear_light(im, NULL, ramp), "gradient", "evenness");
        g_object_unref(ramp);
    }
    g_object_unref(im);
    g_free(st);
    vips_shutdown();
    return 0;
}
