/* trueshot matte: cut the person out of a photo, at full resolution, with a clean edge. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli.h"

static const char matte_usage[] =
    "usage: trueshot matte PHOTO -o OUT [--alpha ALPHA.png] [--over COLOR|IMAGE]\n"
    "                      [--region head|full] [--16]\n"
    "\n"
    "Cuts the person out of PHOTO at the photo's full resolution: hair, ears and shoulders\n"
    "with soft, natural edges, holes inside the body filled, and the old background's colour\n"
    "removed from the edges (so no blue or green fringe on a new background).\n"
    "\n"
    "What is cut out (--region):\n"
    "  head   (default) head and shoulders around the main face: 3.5 face widths wide, from\n"
    "         0.8 face heights above the face to 3 face heights below the chin, within the\n"
    "         photo. The outputs are that size. Needs a face (exit code 6 otherwise)\n"
    "  full   the whole photo, face or not\n"
    "\n"
    "Outputs (the format follows each file's extension: .png, .tif, .webp, .jpg):\n"
    "  -o OUT            without --over: the cut-out, colour plus transparency (PNG, WebP or\n"
    "                    TIFF; JPEG has no transparency); with --over: the composite\n"
    "  --alpha ALPHA     also write the transparency alone, as grey: white = person, black =\n"
    "                    background, grey = partly both (hair, motion blur)\n"
    "  --over COLOR      place the person on a plain colour: #rrggbb (e.g. '#8a8d91'), or\n"
    "                    grey, lightgrey, darkgrey, white, black, blue, navy, green\n"
    "  --over IMAGE      place the person on an image file, scaled to cover and centred\n"
    "  --16              16 bits per channel for -o (cut-out only) and --alpha (PNG or TIFF)\n"
    "  -h, --help        this help\n"
    "\n"
    "Files are written under a temporary name and renamed: an existing file is never left\n"
    "half-written, and a failure leaves nothing behind.\n"
    "\n"
    "exit codes: 0 ok, 2 bad usage, 3 unreadable file, 4 unsupported format, 5 too large,\n"
    "6 no face (with --region head), 7 model missing, 8 output not writable, 11 no person.\n"
    "\n"
    "examples:\n"
    "  trueshot matte me.jpg -o me-cutout.png\n"
    "  trueshot matte me.jpg -o me-grey.jpg --over grey --alpha me-alpha.png\n"
    "  trueshot matte me.jpg -o me-office.jpg --over office.jpg\n";

static const struct {
    const char *name;
    uint32_t rgb;
} colours[] = {
    {"grey", 0x8a8d91},      {"gray", 0x8a8d91},     {"lightgrey", 0xc8cacc},
    {"lightgray", 0xc8cacc}, {"darkgrey", 0x3a3c40}, {"darkgray", 0x3a3c40},
    {"white", 0xffffff},     {"black", 0x000000},    {"blue", 0x2f5d8a},
    {"navy", 0x1c2a44},      {"green", 0x3f6b4a},
};

/* A colour name or #rrggbb into *rgb; 0 when it is neither. */
static int parse_colour(const char *s, uint32_t *rgb) {
    for (size_t i = 0; i < sizeof colours / sizeof colours[0]; i++)
        if (!strcasecmp(s, colours[i].name)) {
            *rgb = colours[i].rgb;
            return 1;
        }
    if (s[0] == '#' && strlen(s) == 7) {
        for (int i = 1; i < 7; i++)
            if (!isxdigit((unsigned char)s[i])) return 0;
        *rgb = (uint32_t)strtoul(s + 1, NULL, 16);
        return 1;
    }
    return 0;
}

int cmd_matte(int argc, char **argv) {
    const char *photo = NULL, *out = NULL, *alpha = NULL, *over = NULL;
    int sixteen = 0;
    ts_matte_options mo;
    ts_matte_options_init(&mo);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(matte_usage, stdout);
            return 0;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && has)
            out = argv[++i];
        else if (!strcmp(a, "--alpha") && has)
            alpha = argv[++i];
        else if (!strcmp(a, "--over") && has)
            over = argv[++i];
        else if (!strcmp(a, "--16"))
            sixteen = 1;
        else if (!strcmp(a, "--region") && has) {
            const char *r = argv[++i];
            if (!strcmp(r, "head"))
                mo.region = TS_MATTE_HEAD_AND_SHOULDERS;
            else if (!strcmp(r, "full"))
                mo.region = TS_MATTE_FULL_PHOTO;
            else
                return cli_fail(TS_ERR_ARGUMENT, "matte: --region is head or full, not '%s'", r);
        } else if (a[0] == '-' && a[1])
            return cli_fail(TS_ERR_ARGUMENT,
                            "matte: unknown option or missing value: '%s' "
                            "(trueshot matte --help)",
                            a);
        else if (!photo)
            photo = a;
        else
            return cli_fail(TS_ERR_ARGUMENT, "matte: one photo at a time ('%s'?)", a);
    }
    if (!photo)
        return cli_fail(TS_ERR_ARGUMENT, "matte: which photo? (trueshot matte PHOTO -o OUT)");
    if (!out) return cli_fail(TS_ERR_ARGUMENT, "matte: where to? (-o OUT.png)");
    /* Decide what --over is before spending time: a colour, else an image that must exist. */
    uint32_t rgb = 0;
    bool over_colour = over && parse_colour(over, &rgb);
    if (over && !over_colour) {
        struct stat st;
        if (stat(over, &st) != 0)
            return cli_fail(over[0] == '#' ? TS_ERR_ARGUMENT : TS_ERR_READ,
                            "matte: --over '%s' is neither a colour (#rrggbb, grey, white, "
                            "black, ...) nor a readable image: %s",
                            over, over[0] == '#' ? "bad colour" : strerror(errno));
    }
    /* Inputs are never overwritten, nor one output by the other. */
    const char *ins[2] = {photo, over && !over_colour ? over : NULL}, *outs[2] = {out, alpha};
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++)
            if (ins[i] && outs[k] && cli_same_file(ins[i], outs[k]))
                return cli_fail(TS_ERR_ARGUMENT,
                                "matte: %s is %s, and trueshot never overwrites its inputs; "
                                "write to another file",
                                outs[k], i ? "the --over image" : "the photo");
    if (alpha && (!strcmp(out, alpha) || cli_same_file(out, alpha)))
        return cli_fail(TS_ERR_ARGUMENT, "matte: -o and --alpha name the same file (%s)", out);
    if (over && sixteen && !alpha)
        return cli_fail(TS_ERR_ARGUMENT, "matte: --16 applies to the cut-out and --alpha, "
                                         "not to a composite (--over)");

    ts_ctx *ctx;
    if (ts_ctx_new(NULL, &ctx) != TS_OK) return cli_fail(TS_ERR_INTERNAL, "%s", ts_last_error());
    ts_photo *p = NULL;
    ts_matte *m = NULL;
    int rc = 0;
    ts_status s = ts_photo_open(ctx, photo, &p);
    if (!s) s = ts_photo_matte(ctx, p, &mo, &m);
    if (s == TS_ERR_NO_FACE)
        rc = cli_fail(s,
                      "%s: no face found to place the head-and-shoulders region "
                      "(use --region full to cut out the whole photo)",
                      photo);
    else if (s)
        rc = cli_fail(s, "%s", ts_ctx_error(ctx));
    if (!s) {
        if (over_colour)
            s = ts_matte_save_over_color(ctx, m, rgb, out);
        else if (over)
            s = ts_matte_save_over_image(ctx, m, over, out);
        else
            s = ts_matte_save_cutout(ctx, m, out, sixteen);
        if (!s && alpha) s = ts_matte_save_alpha(ctx, m, alpha, sixteen);
        if (s) {
            rc = cli_fail(s, "%s", ts_ctx_error(ctx));
        } else {
            int x, y, w, h;
            ts_matte_region(m, &x, &y, &w, &h);
            printf("%s\n", out);
            if (alpha) printf("%s\n", alpha);
            fprintf(stderr, "trueshot: %s: region %dx%d at %d,%d\n", photo, w, h, x, y);
        }
    }
    ts_matte_free(m);
    ts_photo_unref(p);
    ts_ctx_free(ctx);
    return rc;
}
