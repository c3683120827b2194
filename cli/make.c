/* trueshot make: a set of professional headshots from the person's own best photo.
 *
 * photos -> check (pick the best) -> face analysis + matte (once) -> for each look and each of
 * its outputs: frame, tone, light, retouch, background, export -> identity check and edit map
 * per output -> report (JSON + HTML) and contact sheet. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "core/internal.h"
#include "make_report.h"
#include "render/export.h"
#include "render/pipeline.h"
#include "render/prepare.h"
#include "render/render.h"
#include "styles/style.h"
#include "verify/verify.h"

#define MAX_PHOTOS 64
#define MAX_STYLES 16

/* Shown when no --style is given: a LinkedIn square, a corporate pair, a tech look, a creative
 * one: several crops and backdrops to choose from. */
static const char *const default_styles[] = {"linkedin", "corporate", "tech-startup", "creative"};

static const char make_usage[] =
    "usage: trueshot make PHOTO|FOLDER... -o DIR [options]\n"
    "\n"
    "Turns your best photo into a set of professional headshots: framed to each platform's\n"
    "standard, on a studio backdrop cut out around your hair, light and colour corrected from\n"
    "your face, blemishes removed with restraint. Your face's geometry is never changed: each\n"
    "file is measured against the photo, and says in its metadata what was done to it.\n"
    "\n"
    "With several photos, `trueshot check` grades them and the best one is used (--all: every\n"
    "photo); a FOLDER gives every photo in it. DIR gets the headshots, a contact sheet, and "
    "report.html / report.json: for each\n"
    "headshot the photo before and after, an edit map (where the face was changed), the checks,\n"
    "and the metadata read back from the file. The report's pictures are in DIR/report-files/.\n"
    "With --all and several photos, each photo's report and sheet are named after it\n"
    "(DIR/PHOTO-report.html, DIR/PHOTO-contact-sheet.jpg).\n"
    "\n"
    "A photo that arrived upside down (its orientation lost on the way) is used turned the\n"
    "right way up, and said so. A photo with far more pixels than the headshots can hold is\n"
    "rendered from its half- or quarter-size decode, which needs a quarter of the memory;\n"
    "every headshot is still reduced from it, never enlarged. Photos of up to 250 megapixels\n"
    "are taken (a medium-format camera's 100-150).\n"
    "\n"
    "options:\n"
    "  -o, --output DIR        where to write (created, with any folders above it, if missing)\n"
    "  --style NAME|FILE       a look; repeat it or list several (linkedin,medical); default:\n"
    "                          linkedin, corporate, tech-startup, creative. --list-styles\n"
    "                          shows the built-in ones; FILE is your own style file\n"
    "                          (docs/styles.md)\n"
    "  --crop T[:W[xH]]        render this template instead of the looks' own: square, 4x5,\n"
    "                          2x3, 8x10 or tight, optionally with a width (square:800);\n"
    "                          a height, if given, is the template's (4x5:1080x1350)\n"
    "  --background B          a backdrop for every look: solid, vertical, radial, blur, keep\n"
    "                          (the original), or a colour (#rrggbb, grey, navy, ...)\n"
    "  --retouch 0..1          retouch strength (0: none; looks use about 0.3)\n"
    "  --format F              jpeg (default), png, webp or avif\n"
    "  --max-kb N              keep every file under N kilobytes (upload limits)\n"
    "  --all                   render every photo, not only the best\n"
    "  --list-styles           list the built-in looks and stop\n"
    "  -h, --help              this help\n"
    "\n"
    "exit codes: 0 ok, 2 bad usage, 3 unreadable photo, 4 not a photo or damaged, 5 too\n"
    "large, 6 no face (or one that cannot be measured), 8 cannot write, 11 no person to cut\n"
    "out, 12 a headshot failed the identity check (not written), 13 the face runs off the\n"
    "photo beside it or below the chin (no headshot can be framed), 14 the face is too small\n"
    "in the photo (under 24 px wide)\n"
    "\n"
    "example:\n"
    "  trueshot make me1.jpg me2.jpg -o headshots/ --style linkedin --style actor-commercial\n";

typedef struct make_opts {
    const char *dir, *photos[MAX_PHOTOS], *styles[MAX_STYLES];
    int n_photos, n_styles, all;
    const char *crop, *background, *retouch, *format, *max_kb;
    /* what each photo's files are named after (photo_stems): its file name without the
     * extension, made unique */
    char stems[MAX_PHOTOS][256];
    /* the folders given as photos: their photos' names live here (freed by cmd_make) */
    cli_folder folders[MAX_PHOTOS];
    int n_folders;
} make_opts;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int list_styles(void) {
    const ts_style_info *info;
    int n = ts_styles_builtins(&info);
    for (int i = 0; i < n; i++) printf("  %-18s %s\n", info[i].id, info[i].description);
    return 0;
}

/* Applies the command line's overrides to a loaded style. */
static ts_status override(ts_ctx *ctx, ts_style *s, const make_opts *o) {
    ts_status st = TS_OK;
    if (o->retouch) st = ts_style_set(ctx, s, "retouch", "strength", o->retouch);
    if (!st && o->background) {
        static const char *const kinds[] = {"solid", "vertical", "radial", "blur", "keep", NULL};
        int is_kind = 0;
        for (int k = 0; kinds[k]; k++) is_kind |= !strcmp(o->background, kinds[k]);
        if (is_kind) {
            st = ts_style_set(ctx, s, "background", "kind", o->background);
        } else {
            st = ts_style_set(ctx, s, "background", "color", o->background);
            if (!st) st = ts_style_set(ctx, s, "background", "auto", "no");
        }
    }
    if (!st && o->format) st = ts_style_set(ctx, s, "export", "format", o->format);
    if (!st && o->max_kb) st = ts_style_set(ctx, s, "export", "max_kb", o->max_kb);
    return st;
}

/* The output's crop and size: the style's own, or --crop T[:W[xH]]. */
static ts_status frame_for(ts_ctx *ctx, const ts_style *s, int i, const make_opts *o, void *params,
                           char *crop, size_t cap) {
    ts_status st = ts_style_frame_params(ctx, s, i, params);
    if (st) return st;
    const ts_param *pc = ts_param_find(ts_stage_frame.table, "crop");
    if (o->crop) {
        char spec[64], err[200];
        snprintf(spec, sizeof spec, "%s", o->crop);
        char *size = strchr(spec, ':');
        if (size) *size++ = 0;
        char own[32];
        ts_param_format(pc, params, own, sizeof own);
        if (ts_param_set(pc, params, spec, err, sizeof err))
            return ts_fail(ctx, TS_ERR_ARGUMENT, "--crop: %s", err);
        char now[32];
        ts_param_format(pc, params, now, sizeof now);
        /* Another template than the look's: its own eye line and head size, not the look's (a
         * look that fills the frame with the head would make every template look alike). */
        static const char *const conv[] = {"eye_line", "head"};
        for (int k = 0; k < 2 && strcmp(own, now); k++)
            if (ts_param_set(ts_param_find(ts_stage_frame.table, conv[k]), params, "0", err,
                             sizeof err))
                return ts_fail(ctx, TS_ERR_ARGUMENT, "--crop: %s", err);
        char *height = size ? strchr(size, 'x') : NULL;
        if (height) *height++ = 0;
        if (size && ts_param_set(ts_param_find(ts_stage_frame.table, "width"), params, size, err,
                                 sizeof err))
            return ts_fail(ctx, TS_ERR_ARGUMENT, "--crop: %s", err);
        /* A height is the template's own for that width (each template has one shape): one
         * that is not would be quietly dropped, so it is refused, naming the template that has
         * that shape if one does. */
        if (height) {
            char *end;
            long h = strtol(height, &end, 10);
            int want = ts_frame_height(params);
            if (!*height || *end || h <= 0)
                return ts_fail(ctx, TS_ERR_ARGUMENT,
                               "--crop %s: the height '%s' is not a number of pixels", o->crop,
                               height);
            if (labs(h - want) > 1)
                return ts_fail(ctx, TS_ERR_ARGUMENT,
                               "--crop %s: a %s frame %s px wide is %d px high; for another "
                               "shape take another template (square, 4x5, 2x3, 8x10, tight)",
                               o->crop, now, size, want);
        }
    }
    ts_param_format(pc, params, crop, cap);
    return TS_OK;
}

static void stem_of(const char *path, char *out, size_t cap) {
    const char *b = strrchr(path, '/');
    snprintf(out, cap, "%s", b ? b + 1 : path);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = 0;
}

/* Each photo's stem: its name without folder or extension, with -2, -3, ... after a name an
 * earlier photo has (a/me.jpg and b/me.jpg with --all: the second's files replaced the first's). */
static void photo_stems(make_opts *o) {
    for (int i = 0; i < o->n_photos; i++) {
        char base[240];
        stem_of(o->photos[i], base, sizeof base);
        snprintf(o->stems[i], sizeof o->stems[i], "%s", base);
        for (int n = 2, clash = 1; clash; n++) {
            clash = 0;
            for (int k = 0; k < i && !clash; k++) clash = !strcmp(o->stems[k], o->stems[i]);
            if (clash) snprintf(o->stems[i], sizeof o->stems[i], "%s-%d", base, n);
        }
    }
}

/* Adds photo a to o's photos, unless it is one already (the same file under another name, or a
 * shell glob that overlaps: compared with itself, it was "the best" by a tie, and --all made it
 * twice). Returns 0, or the exit code, said. */
static int add_photo(make_opts *o, const char *a) {
    for (int k = 0; k < o->n_photos; k++)
        if (!strcmp(o->photos[k], a) || cli_same_file(o->photos[k], a)) return 0;
    if (o->n_photos == MAX_PHOTOS)
        return cli_fail(TS_ERR_ARGUMENT, "make: at most %d photos", MAX_PHOTOS);
    o->photos[o->n_photos++] = a;
    return 0;
}

/* A folder given as a photo: the photos in it (cli_folder_photos), kept in o until the command
 * ends. Returns 0, or the exit code, said. */
static int add_folder(make_opts *o, const char *dir) {
    if (o->n_folders == MAX_PHOTOS)
        return cli_fail(TS_ERR_ARGUMENT, "make: at most %d photos", MAX_PHOTOS);
    cli_folder *f = &o->folders[o->n_folders];
    int rc = cli_folder_photos("make", dir, f);
    if (rc) return rc;
    o->n_folders++;
    for (int i = 0; !rc && i < f->n; i++) rc = add_photo(o, f->paths[i]);
    return rc;
}

/* An output's file and its edit map (in DIR/report-files/), for the photo's stem, the look and
 * the crop: the names render_one writes and inputs_safe checks. */
static void output_paths(const char *dir, const char *stem, const char *look, const char *crop,
                         const char *ext, char *path, size_t cap, char *map, size_t map_cap) {
    snprintf(path, cap, "%s/%s-%s-%s%s", dir, stem, look, crop, ext);
    snprintf(map, map_cap, "%s/" MAKE_REPORT_FILES "/%s-%s-%s-editmap.png", dir, stem, look, crop);
}

/* Whether path names one of the photos given (the same file: device and inode). */
static bool is_input(const make_opts *o, const char *path) {
    for (int i = 0; i < o->n_photos; i++)
        if (cli_same_file(o->photos[i], path)) return true;
    return false;
}

/* One output to render: outs[index], of styles[style], framed by params
 * (frame_for's, zero-padded: compared as bytes). */
typedef struct make_slot {
    int index, style;
    char crop[32];                 /* template name */
    int width;                     /* output width */
    _Alignas(16) char params[512]; /* (aligned for the stage's struct) */
} make_slot;

static int slot_cmp(const void *a, const void *b) {
    const make_slot *x = a, *y = b;
    int t = strcmp(x->crop, y->crop);
    if (t) return t;
    if (x->width != y->width) return x->width < y->width ? -1 : 1;
    int c = memcmp(x->params, y->params, sizeof x->params);
    return c ? c : x->index - y->index; /* stable: the report's order among equals */
}

/* The render order of every output of every look (*n of them): sorted by frame parameters
 * (crop, size, then the rest), so the outputs that share a framed canvas come one after the
 * other and the canvas is made once (frame's cache); among equals, the report's order. Fails
 * on a --crop the frame stage does not take, before anything is written. */
static ts_status render_order(ts_ctx *ctx, ts_style *const *styles, int n_styles,
                              const make_opts *o, make_slot **out, int *n) {
    int total = 0;
    for (int i = 0; i < n_styles; i++) total += o->crop ? 1 : ts_style_output_count(styles[i]);
    make_slot *slots = calloc(total ? (size_t)total : 1, sizeof *slots);
    if (!slots) return ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
    int k = 0;
    for (int si = 0; si < n_styles; si++) {
        int no = o->crop ? 1 : ts_style_output_count(styles[si]);
        for (int i = 0; i < no; i++, k++) {
            char width[16];
            make_slot *sl = &slots[k]; /* (calloc'd: params zero-padded) */
            ts_status st = frame_for(ctx, styles[si], i, o, sl->params, sl->crop, sizeof sl->crop);
            if (st) {
                free(slots);
                return st;
            }
            sl->index = k, sl->style = si;
            ts_param_format(ts_param_find(ts_stage_frame.table, "width"), sl->params, width,
                            sizeof width);
            sl->width = atoi(width);
        }
    }
    qsort(slots, (size_t)total, sizeof *slots, slot_cmp);
    *out = slots, *n = total;
    return TS_OK;
}

/* The files make writes (each headshot, its edit map, the contact sheet, the reports, the photo's
 * preview; each photo's and the run's names): none may be one of the photos given. A photo named
 * contact-sheet.jpg in the output folder was overwritten by the sheet, and with two photos, one
 * named like the other's headshot (me.jpg, me-linkedin-square.jpg) by that headshot. Returns 0,
 * or the exit code, said. */
static int inputs_safe(const make_opts *o, ts_style *const *styles, const make_slot *slots,
                       int total) {
    static const char *const fixed[] = {"contact-sheet.jpg", "report.html", "report.json"};
    char paths[2][1400], look[256];
    for (int i = -1; i < o->n_photos; i++) {
        const char *stem = i < 0 ? "" : o->stems[i], *sep = i < 0 ? "" : "-";
        /* the sheet and the reports (the run's, then each photo's), the photo's preview, then
         * each output and its edit map */
        int n = 3 + (i >= 0 ? 1 + total : 0);
        for (int k = 0; k < n; k++) {
            paths[1][0] = 0;
            if (k < 3) {
                snprintf(paths[0], sizeof paths[0], "%s/%s%s%s", o->dir, stem, sep, fixed[k]);
            } else if (k == 3) {
                snprintf(paths[0], sizeof paths[0], "%s/" MAKE_REPORT_FILES "/%s-photo.jpg", o->dir,
                         stem);
            } else {
                const make_slot *sl = &slots[k - 4];
                stem_of(o->styles[sl->style], look, sizeof look);
                const export_params *ep = ts_style_params(styles[sl->style], "export");
                output_paths(o->dir, stem, look, sl->crop, ts_export_extension(ep->format),
                             paths[0], sizeof paths[0], paths[1], sizeof paths[1]);
            }
            for (int q = 0; q < 2; q++)
                if (paths[q][0] && is_input(o, paths[q]))
                    return cli_fail(TS_ERR_ARGUMENT,
                                    "make: %s is one of the photos given, and trueshot never "
                                    "overwrites its inputs; write to another folder (-o)",
                                    paths[q]);
        }
    }
    return 0;
}

/* Enlargement of the photo from which make says on the terminal that the headshots are soft
 * (frame notes each output over 1.5x in the report). */
#define ENLARGE_SAY 2.0

/* Renders one output of one look (ts_render_look); fills o. Returns the status of a failure
 * that should stop the whole run (output not writable), TS_OK otherwise (a failed look is
 * reported in o->error). */
static ts_status render_one(ts_ctx *ctx, ts_photo *p, const ts_face_analysis *face,
                            const ts_matte *matte, const ts_style *s, const make_slot *sl,
                            const make_opts *mo, const char *stem, const ts_verify_floor *floor,
                            ts_render_cache *cache, bool last, make_output *o) {
    ts_status st;
    snprintf(o->crop, sizeof o->crop, "%s", sl->crop);
    const export_params *ep = ts_style_params(s, "export");
    output_paths(mo->dir, stem, o->look, o->crop, ts_export_extension(ep->format), o->path,
                 sizeof o->path, o->edit_map, sizeof o->edit_map);
    ts_look_request req = {.style = s,
                           .frame_params = sl->params,
                           .path = o->path,
                           .edit_map = o->edit_map,
                           .floor = floor,
                           .cache = cache,
                           /* read while the next output is made; settled before the report */
                           .written_mean = &o->id_written_mean,
                           .last = last};
    ts_look_result *r = calloc(1, sizeof *r);
    if (!r) return ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
    st = ts_render_look(ctx, p, face, matte, &req, r);
    if (!r->edit_map_written) o->edit_map[0] = 0;
    if (r->error[0] && !r->width) o->path[0] = 0; /* nothing was written */
    snprintf(o->error, sizeof o->error, "%s", r->error);
    o->status = r->error[0] ? (r->status ? r->status : TS_ERR_INTERNAL) : TS_OK;
    if (!r->error[0] || r->width) {
        o->width = r->width, o->height = r->height, o->bytes = r->bytes;
        o->max_kb = ep->max_kb;
        memcpy(o->m, r->m, sizeof o->m);
        o->source_type = strcmp(r->source_type, "compositeSynthetic") ? "algorithmicallyEnhanced"
                                                                      : "compositeSynthetic";
        for (int k = 0; k < r->n_edits && k < MAKE_MAX_EDITS; k++)
            snprintf(o->edits[o->n_edits++], sizeof o->edits[0], "%s", r->edits[k]);
        for (int k = 0; k < r->n_notes && k < MAKE_MAX_NOTES; k++)
            snprintf(o->notes[o->n_notes++], sizeof o->notes[0], "%s", r->notes[k]);
        o->id_mean = r->id_mean, o->id_max = r->id_max, o->id_ok = r->id_ok;
        o->id_total_mean = r->id_total_mean, o->id_frame_mean = r->id_frame_mean;
        make_read_back(o->path, &o->meta);
    }
    if (getenv("TRUESHOT_TIMING"))
        fprintf(stderr,
                "trueshot: %s %s: frame %.0f tone %.0f light %.0f retouch %.0f background %.0f "
                "export %.0f verify %.0f edit map %.0f = %.0f ms\n",
                o->look, o->crop, 1e3 * r->t.frame, 1e3 * r->t.tone, 1e3 * r->t.light,
                1e3 * r->t.retouch, 1e3 * r->t.background, 1e3 * r->t.export_, 1e3 * r->t.verify,
                1e3 * r->t.edit_map, 1e3 * r->t.total);
    free(r);
    return st;
}

/* A photo larger than its headshots need is rendered from its decode at 1/2 or 1/4 (JPEG's own
 * DCT scaling): its matte, canvases and copies are 4 or 16 times smaller
 * (ts_render_decode_shrink: while every output still shrinks that decode by 1.05 or more, as
 * frame would otherwise make them from its half-size copies). 12-MP photos keep their full
 * decode for the default set (its 2x3 takes 0.56 of the photo), a 24-MP one is halved. */
static int decode_shrink(ts_ctx *ctx, ts_photo *p, const make_slot *slots, int n) {
    const void **params = malloc(sizeof *params * (n > 0 ? n : 1));
    if (!params) return 1;
    for (int j = 0; j < n; j++) params[j] = slots[j].params;
    int k = ts_render_decode_shrink(ctx, p, params, n);
    free(params);
    return k;
}

/* Picks the photo to use: the best by check, with the reason. The photos' reports are left in
 * reports (NULL where check failed) for the report's advice, so no photo is checked twice. */
static int pick_best(ts_ctx *ctx, ts_photo **photos, int n, ts_check_report **reports, char *reason,
                     size_t cap) {
    if (n == 1) return 0;
    for (int i = 0; i < n; i++)
        if (photos[i] && ts_photo_check(ctx, photos[i], NULL, &reports[i]) != TS_OK)
            reports[i] = NULL;
    int order[MAX_PHOTOS];
    int best = 0;
    if (ts_check_rank((const ts_check_report *const *)reports, n, order, reason, cap) == TS_OK)
        best = order[0];
    return best;
}

static int make_main(int argc, char **argv, make_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(make_usage, stdout);
            return 0;
        } else if (!strcmp(a, "--list-styles")) {
            return list_styles();
        } else if (!strcmp(a, "--all")) {
            o->all = 1;
        } else if (a[0] == '-' && a[1] && !v) {
            return cli_fail(TS_ERR_ARGUMENT, "make: %s needs a value (try trueshot make -h)", a);
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            o->dir = argv[++i];
        } else if (!strcmp(a, "--style")) {
            /* several at once: linkedin,corporate (a style file's path is taken whole) */
            char *name = argv[++i], *next;
            struct stat st;
            bool whole = stat(name, &st) == 0;
            for (; name; name = next) {
                next = whole ? NULL : strchr(name, ',');
                if (next) *next++ = 0;
                int seen = !*name; /* a look asked for twice is made once (the same files) */
                for (int k = 0; k < o->n_styles; k++) seen |= !strcmp(o->styles[k], name);
                if (seen) continue;
                if (o->n_styles == MAX_STYLES)
                    return cli_fail(TS_ERR_ARGUMENT, "make: at most %d looks", MAX_STYLES);
                o->styles[o->n_styles++] = name;
            }
        } else if (!strcmp(a, "--crop")) {
            o->crop = argv[++i];
        } else if (!strcmp(a, "--background")) {
            o->background = argv[++i];
        } else if (!strcmp(a, "--retouch")) {
            o->retouch = argv[++i];
        } else if (!strcmp(a, "--format")) {
            o->format = argv[++i];
        } else if (!strcmp(a, "--max-kb")) {
            o->max_kb = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            return cli_fail(TS_ERR_ARGUMENT, "make: unknown option '%s' (try trueshot make -h)", a);
        } else {
            int code = cli_is_dir(a) ? add_folder(o, a) : add_photo(o, a);
            if (code) return code;
        }
    }
    if (!o->n_photos) return cli_fail(TS_ERR_ARGUMENT, "make: which photos? (trueshot make -h)");
    photo_stems(o);
    if (!o->dir) return cli_fail(TS_ERR_ARGUMENT, "make: where to? give -o DIR");
    if (!o->n_styles)
        for (size_t k = 0; k < sizeof default_styles / sizeof default_styles[0]; k++)
            o->styles[o->n_styles++] = default_styles[k];
    /* "out/" and "out" are the same folder; keep the paths in the report clean. */
    char dirbuf[1024];
    snprintf(dirbuf, sizeof dirbuf, "%s", o->dir);
    for (size_t n = strlen(dirbuf); n > 1 && dirbuf[n - 1] == '/'; n--) dirbuf[n - 1] = 0;
    o->dir = dirbuf;

    ts_ctx *ctx;
    ts_ctx_options co;
    ts_ctx_options_init(&co);
    co.max_pixels = CLI_SHRUNK_MAX_PIXELS;
    if (ts_ctx_new(&co, &ctx) != TS_OK) return cli_fail(TS_ERR_INTERNAL, "%s", ts_last_error());
    /* the models every photo needs load on a thread of their own while the photos are opened
     * and decoded for analysis */
    ts_ctx_preload(ctx, TS_RENDER_MODELS);
    int rc = 0;
    ts_style *styles[MAX_STYLES] = {0};
    ts_photo *photos[MAX_PHOTOS] = {0};
    make_output *outs = NULL;
    make_slot *slots = NULL;                   /* the render order (render_order) */
    ts_check_report *graded[MAX_PHOTOS] = {0}; /* each photo's check, once */
    ts_photo *shrunk = NULL; /* the photo being rendered, decoded shrunk (decode_shrink) */
    /* Everything the user asked for is validated before any work starts. */
    for (int i = 0; i < o->n_styles; i++) {
        ts_status st = ts_style_load(ctx, o->styles[i], &styles[i]);
        if (!st) st = override(ctx, styles[i], o);
        if (st) {
            rc = cli_fail(st, "%s", ts_ctx_error(ctx));
            goto done;
        }
    }
    int total = 0;
    /* The outputs in the order the report lists them (look by look), rendered in the order that
     * lets one framed canvas serve several looks: the cache keeps the last canvas, and its
     * reading for the identity gate, so outputs with the same crop are made one after the other.
     * A --crop the frame stage does not take fails here, before anything is written. */
    ts_status ost = render_order(ctx, styles, o->n_styles, o, &slots, &total);
    if (ost) {
        rc = cli_fail(ost, "%s", ts_ctx_error(ctx));
        goto done;
    }
    if ((rc = inputs_safe(o, styles, slots, total)) != 0 || (rc = cli_make_dir(o->dir)) != 0)
        goto done;
    int n_ok = 0;
    for (int i = 0; i < o->n_photos; i++) {
        ts_status st = ts_photo_open(ctx, o->photos[i], &photos[i]);
        if (st) {
            int code = cli_fail(st, "%s", ts_ctx_error(ctx));
            if (!rc) rc = code;
        } else {
            n_ok++;
        }
    }
    if (!n_ok) goto done;
    /* (decoded here, beside the models' loading, not after it: detection asks for its model
     * first) */
    for (int i = 0; i < o->n_photos; i++)
        if (photos[i]) ts_photo_analysis(ctx, photos[i], NULL);
    char reason[300] = "";
    if (n_ok > 1) cli_progress("trueshot: grading %d photos...", n_ok);
    int best = pick_best(ctx, photos, o->n_photos, graded, reason, sizeof reason);
    for (int pi = 0; pi < o->n_photos; pi++) {
        if (!photos[pi] || (!o->all && pi != best)) continue;
        double t0 = now_s();
        ts_photo *orig = photos[pi], *p = orig;
        const char *stem = o->stems[pi];
        cli_progress("trueshot: %s: finding the face...", stem);
        /* A face the photo cuts beside it or under the chin, or a thumbnail's: every look would
         * refuse it (frame), so it is said once, before the cut-out is made. (A photo without a
         * face is said by ts_render_prepare.) */
        const ts_face_analysis *subj = NULL;
        ts_status refused =
            ts_photo_subject(ctx, orig, &subj) == TS_OK ? ts_frame_refusal(ctx, orig, subj) : TS_OK;
        if (refused == TS_ERR_FRAMING || refused == TS_ERR_FACE_SMALL) {
            cli_progress(NULL);
            int code = cli_fail(refused, "%s: %s", o->photos[pi], ts_ctx_error(ctx));
            if (!rc) rc = code;
            continue;
        }
        /* the photo as large as its outputs need (the file's own for the report's picture and
         * grade) */
        ts_photo_unref(shrunk), shrunk = NULL;
        int k = decode_shrink(ctx, orig, slots, total);
        if (k > 1 && ts_photo_open_shrunk(ctx, o->photos[pi], k, &shrunk) == TS_OK) {
            p = shrunk;
            /* the face found on the file, not looked for again on the same pixels */
            ts_photo_adopt_analysis(ctx, shrunk, orig);
        }
        const ts_face_analysis *face;
        ts_matte *matte = NULL;
        ts_verify_floor floor = {0};
        cli_progress("trueshot: %s: cutting out the person...", stem);
        ts_status st = ts_render_prepare(ctx, p, &face, &matte, &floor);
        cli_progress(NULL);
        if (st) {
            int code = cli_fail(st, "%s", ts_ctx_error(ctx));
            if (!rc) rc = code;
            ts_matte_free(matte);
            continue;
        }
        if (o->n_photos > 1 && !o->all)
            fprintf(stderr, "trueshot: using %s%s%s\n", o->photos[pi], reason[0] ? ": " : "",
                    reason);
        /* The report's pictures (edit maps, the photo's preview) go in a folder of their own, so
         * the output folder holds the headshots, the contact sheet and the report; made once there
         * is something to render (bad input leaves no folder behind). */
        char assets[1100];
        snprintf(assets, sizeof assets, "%s/" MAKE_REPORT_FILES, o->dir);
        struct stat as;
        if ((mkdir(assets, 0755) != 0 && errno != EEXIST) ||
            (stat(assets, &as) == 0 && !S_ISDIR(as.st_mode) && (errno = ENOTDIR))) {
            rc = cli_fail(TS_ERR_WRITE, "cannot create %s: %s", assets, strerror(errno));
            ts_matte_free(matte);
            goto done;
        }
        free(outs);
        outs = calloc((size_t)total, sizeof *outs);
        ts_render_cache *cache = ts_render_cache_new(); /* NULL: each look does its own work */
        int n = outs ? total : 0;
        for (int j = 0; j < n && outs; j++) {
            make_output *out = &outs[slots[j].index];
            int si = slots[j].style;
            /* A style given as a path is named by its file name. */
            stem_of(o->styles[si], out->look, sizeof out->look);
            if (cli_tty())
                fprintf(stderr, "\rtrueshot: rendering %d/%d: %-40s", j + 1, total, out->look);
            st = render_one(ctx, p, face, matte, styles[si], &slots[j], o, stem, &floor, cache,
                            j == n - 1, out);
            if (st) {
                if (cli_tty()) fputc('\n', stderr);
                rc = cli_fail(st, "%s", ts_ctx_error(ctx));
                ts_render_cache_free(cache);
                ts_matte_free(matte);
                goto done;
            }
        }
        ts_render_cache_free(cache);
        if (cli_tty()) fprintf(stderr, "\r%-70s\r", "");
        /* the outputs' transforms from the file's pixels (the report places the photo's
         * picture by them), not the shrunk decode's */
        if (p != orig) {
            double fx = (double)ts_photo_width(p) / ts_photo_width(orig);
            double fy = (double)ts_photo_height(p) / ts_photo_height(orig);
            for (int j = 0; j < n; j++)
                outs[j].m[0] *= fx, outs[j].m[3] *= fx, outs[j].m[1] *= fy, outs[j].m[4] *= fy;
        }
        /* several photos rendered (--all): each its own report and sheet */
        char prefix[300] = "";
        if (o->all && n_ok > 1) snprintf(prefix, sizeof prefix, "%s-", stem);
        make_report r = {.photo = o->photos[pi],
                         .prefix = prefix,
                         .why = reason[0] && !o->all ? reason : NULL,
                         .noise_floor = floor.mean,
                         .outputs = outs,
                         .n_outputs = n,
                         .seconds = now_s() - t0,
                         .decode_shrink = p != orig ? k : 1};
        r.turned = ts_photo_turn(p);
        if (r.turned)
            fprintf(stderr,
                    "trueshot: note: %s is upside down (its orientation was lost on the way); the "
                    "headshots are made from it turned the right way up\n",
                    o->photos[pi]);
        snprintf(r.preview, sizeof r.preview, "%s/" MAKE_REPORT_FILES "/%s-photo.jpg", o->dir,
                 stem);
        make_write_preview(&r, ts_photo_width(orig), ts_photo_height(orig));
        /* the photo's grade and tips for next time (its analysis is cached on the photo) */
        if (!graded[pi] && ts_photo_check(ctx, orig, NULL, &graded[pi]) != TS_OK) graded[pi] = NULL;
        make_set_advice(&r, graded[pi]);
        const ts_face *faces = NULL;
        int n_faces = 0;
        if (ts_photo_faces(ctx, p, &faces, &n_faces) == TS_OK)
            make_neighbour_note(&r, faces, n_faces, face->face);
        if (r.note[0]) fprintf(stderr, "trueshot: note: %s\n", r.note);
        /* The most any headshot enlarged the photo (each says so in the report): said here too
         * when it is enough to see, so nobody uploads a soft headshot unaware. */
        double most = 0;
        for (int k = 0; k < n; k++)
            if (!outs[k].error[0]) most = fmax(most, hypot(outs[k].m[0], outs[k].m[1]));
        if (most >= ENLARGE_SAY)
            fprintf(stderr,
                    "trueshot: note: the photo is enlarged up to %.1fx, so these headshots are "
                    "soft at full size; a photo taken closer, or at full resolution, gives sharp "
                    "ones (see %s/%sreport.html)\n",
                    most, o->dir, prefix);
        int failed = 0;
        ts_status why = TS_OK;
        for (int k = 0; k < n; k++) {
            if (outs[k].error[0]) {
                failed++;
                if (why != TS_ERR_INTERNAL) why = outs[k].status;
                fprintf(stderr, "trueshot: %s %s: %s\n", outs[k].look, outs[k].crop, outs[k].error);
            } else {
                printf("%s\n", outs[k].path);
                /* A file over the cap asked for would be refused by the portal it is for:
                 * said here, not only in the report (export's note says why and what to do). */
                if (outs[k].max_kb > 0 && outs[k].bytes > 1024L * outs[k].max_kb) {
                    const char *why = NULL;
                    for (int e = 0; e < outs[k].n_notes && !why; e++)
                        if (strstr(outs[k].notes[e], "KB cap")) why = outs[k].notes[e];
                    if (why)
                        fprintf(stderr, "trueshot: note: %s\n", why);
                    else
                        fprintf(stderr, "trueshot: note: %s is %ld KB, over the %d KB cap\n",
                                outs[k].path, (outs[k].bytes + 1023) / 1024, outs[k].max_kb);
                }
            }
        }
        char sheet[1100];
        snprintf(sheet, sizeof sheet, "%s/%sreport.html", o->dir, prefix);
        int sheet_rc = -1;
        if (make_write_report(&r, o->dir) != 0 ||
            (sheet_rc = make_write_contact_sheet(&r, o->dir)) < 0) {
            rc = cli_fail(TS_ERR_WRITE, "cannot write the report in %s", o->dir);
        } else {
            if (sheet_rc == 0) printf("%s/%scontact-sheet.jpg\n", o->dir, prefix);
            printf("%s\n", sheet);
        }
        if (failed == n && n > 0)
            fprintf(
                stderr, "trueshot: no headshot was written from %s (%s); see %s\n", o->photos[pi],
                why == TS_ERR_IDENTITY ? "every look failed the identity check" : "errors", sheet);
        if (failed && !rc) rc = ts_status_exit_code(why ? why : TS_ERR_INTERNAL);
        ts_matte_free(matte);
    }
done:
    free(outs);
    free(slots);
    for (int i = 0; i < o->n_styles; i++) ts_style_free(styles[i]);
    for (int i = 0; i < o->n_photos; i++) ts_check_report_free(graded[i]);
    ts_photo_unref(shrunk);
    for (int i = 0; i < o->n_photos; i++) ts_photo_unref(photos[i]);
    ts_ctx_free(ctx);
    return rc;
}

int cmd_make(int argc, char **argv) {
    make_opts *o = calloc(1, sizeof *o);
    if (!o) return cli_fail(TS_ERR_NOMEM, "out of memory");
    int rc = make_main(argc, argv, o);
    for (int i = 0; i < o->n_folders; i++) cli_folder_free(&o->folders[i]);
    free(o);
    return rc;
}
