/* trueshot check: grade photos as headshot sources and say what to do differently — a terminal
 * report at a glance, JSON (docs/check-json.md) and a self-contained HTML report. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "quality/check_json.h"
#include "core/internal.h"

static const char check_usage[] =
    "usage: trueshot check PHOTO|FOLDER... [--json] [--html REPORT.html] [--size PX] [--no-scene]\n"
    "\n"
    "Grades each photo as the source of a headshot, the way ISO/IEC 29794-5 (face image\n"
    "quality) and its reference implementation OFIQ grade passport photos, adapted to\n"
    "headshots, and says for every problem what to do differently next time.\n"
    "\n"
    "Each photo gets a readiness score from 0 to 100 and a verdict:\n"
    "  good              ready for a headshot\n"
    "  could be better   usable; the tips say how to get a better one\n"
    "  not usable        a headshot would show the problem; retake it\n"
    "\n"
    "What is graded (the ids the JSON report uses):\n"
    "  faces        exactly one clear face (others are a warning while you dominate)\n"
    "  resolution   pixels between the eyes against what the headshot size needs\n"
    "  headroom     room above the head, below the chin and to the sides for the crop\n"
    "  pose         face turned, tipped or tilted (yaw, pitch, roll)\n"
    "  eyes_open    a blink or half-closed eyes\n"
    "  gaze         looking into the lens\n"
    "  expression   relaxed mouth or a smile, not mid-word\n"
    "  sharpness    focus on the face; motion blur told apart from defocus\n"
    "  noise        grain on the skin (too little light)\n"
    "  exposure     face too dark or too bright, blown highlights, flat contrast\n"
    "  evenness     one side of the face much darker (hard side light)\n"
    "  color_cast   skin colour outside the natural range (white balance)\n"
    "  compression  JPEG blocks from a heavily compressed copy\n"
    "  eyes_hidden  sunglasses, or glare on glasses over the eyes\n"
    "  too_close    camera too near: a phone at arm's length enlarges the nose\n"
    "  background   plain enough to keep, or better replaced\n"
    "  wardrobe     busy patterns, logos, clothes the colour of your skin or the backdrop;\n"
    "               and which backdrop colours suit your clothes and hair\n"
    "With several photos, they are ranked and the best one is named, with why it won.\n"
    "A folder stands for the photos in it (by their names: JPEG, PNG, WebP, HEIC, AVIF,\n"
    "TIFF, JPEG 2000, JPEG XL); headshots and contact sheets trueshot made are left out.\n"
    "\n"
    "options:\n"
    "  --json          print one JSON report for all photos (schema: docs/check-json.md)\n"
    "  --html FILE     also write a report page with thumbnails (face box drawn) and the tips;\n"
    "                  one file, images embedded, safe to e-mail\n"
    "  --size PX       side of the square headshot you want (default 1200, e.g. LinkedIn);\n"
    "                  the resolution grade depends on it\n"
    "  --no-scene      skip background and wardrobe (faster: no person segmentation)\n"
    "  -h, --help      this help\n"
    "\n"
    "Every photo is checked even when some fail. Exit code: 0 when every photo could be\n"
    "checked, whatever the verdicts (a photo without a face is \"not usable\"); otherwise that\n"
    "of the first failure: 3 unreadable, 4 unsupported format, 5 too large, 7 model missing,\n"
    "8 report not writable (see trueshot --help).\n"
    "\n"
    "examples:\n"
    "  trueshot check me1.jpg me2.jpg me3.jpg\n"
    "  trueshot check ~/Pictures/headshot-tries --html report.html\n"
    "  trueshot check --json *.jpg | jq -r '.photos[] | select(.verdict == \"good\") | .photo'\n";

typedef struct item {
    const char *path;
    ts_status status; /* of opening / checking; TS_OK with a report */
    char error[512];
    ts_check_report *report;
    double ms;
    int turned; /* ts_photo_turn: 180 when found upside down */
} item;

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* ---- terminal ---- */

static void print_text(const item *it, int n, const int *order, const char *reason, bool colour) {
    const char *red = colour ? "\033[31m" : "", *yellow = colour ? "\033[33m" : "",
               *green = colour ? "\033[32m" : "", *bold = colour ? "\033[1m" : "",
               *dim = colour ? "\033[2m" : "", *off = colour ? "\033[0m" : "";
    for (int i = 0; i < n; i++) {
        const item *p = &it[i];
        if (!p->report) {
            printf("%s  --  not checked      %s%s: %s\n", red, p->path, off, p->error);
            continue;
        }
        ts_verdict v = ts_check_verdict(p->report);
        const char *c = v == TS_VERDICT_GOOD              ? green
                        : v == TS_VERDICT_COULD_BE_BETTER ? yellow
                                                          : red;
        printf("%s%s%3d  %-16s%s %s%s\n", bold, c, ts_check_score(p->report), ts_verdict_name(v),
               off, p->path, off);
        if (p->turned)
            printf("     %s!%s %sOrientation:%s The photo is upside down (its orientation was lost "
                   "on the way): trueshot reads it turned the right way up, but other software "
                   "may show it upside down. Turn it before you share it.\n",
                   yellow, off, bold, off);
        /* The problems, worst first. */
        int nc = ts_check_count(p->report);
        for (int pass = TS_VERDICT_NOT_USABLE; pass >= TS_VERDICT_COULD_BE_BETTER; pass--)
            for (int k = 0; k < nc; k++) {
                const ts_check_component *cp = ts_check_component_at(p->report, k);
                if ((int)cp->verdict != pass) continue;
                printf("     %s%s%s %s%s:%s %s\n", pass == TS_VERDICT_NOT_USABLE ? red : yellow,
                       pass == TS_VERDICT_NOT_USABLE ? "x" : "!", off, bold, cp->label, off,
                       cp->tip);
            }
        const ts_backdrop *bd;
        int nb = ts_check_backdrops(p->report, &bd);
        if (nb > 0) {
            printf("     %sbackdrops that suit your clothes and hair:", dim);
            for (int k = 0; k < nb; k++)
                printf("%s %s (#%06x)", k ? "," : "", bd[k].name, (unsigned)bd[k].rgb);
            printf("%s\n", off);
        }
    }
    if (n > 1 && order && it[order[0]].report)
        printf("\n%sbest: %s%s (%s)\n", bold, it[order[0]].path, off, reason);
}

/* ---- JSON ---- */

static json_t *report_json(const item *p) {
    json_t *o = json_object();
    json_object_set_new(o, "photo", json_string(p->path));
    if (!p->report) {
        json_object_set_new(o, "status", json_string(ts_status_name(p->status)));
        json_object_set_new(o, "error", json_string(p->error));
        json_object_set_new(o, "score", json_integer(0));
        json_object_set_new(o, "verdict", json_string(ts_verdict_name(TS_VERDICT_NOT_USABLE)));
        json_object_set_new(o, "components", json_array());
    }
    return o;
}

static json_t *full_json(const item *p, int W, int H) {
    json_t *o = report_json(p);
    if (!p->report) return o;
    const ts_check_report *r = p->report;
    json_object_set_new(o, "width", json_integer(W));
    json_object_set_new(o, "height", json_integer(H));
    if (p->turned) json_object_set_new(o, "turned", json_integer(p->turned));
    ts_check_json_fill(o, r);
    json_object_set_new(o, "time_ms", json_real(round(p->ms * 10) / 10));
    return o;
}

/* ---- HTML ---- */

static void html_escape(FILE *f, const char *s) {
    for (; *s; s++) switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*s, f);
        }
}

/* A JPEG thumbnail (longest side 360) with the face box drawn, base64; NULL on failure. */
static char *thumbnail_b64(const char *path, const ts_check_report *r, int W) {
    VipsImage *t = NULL, *rgb = NULL, *flat = NULL, *u8 = NULL, *mem = NULL;
    char *b64 = NULL;
    int ok = vips_thumbnail(path, &t, 360, NULL) == 0 &&
             vips_colourspace(t, &rgb, VIPS_INTERPRETATION_sRGB, NULL) == 0;
    if (ok)
        ok = vips_image_hasalpha(rgb) ? vips_flatten(rgb, &flat, NULL) == 0
                                      : (flat = g_object_ref(rgb)) != NULL;
    if (ok) ok = vips_cast_uchar(flat, &u8, NULL) == 0 && (mem = vips_image_copy_memory(u8));
    float box[4];
    if (ok && ts_check_face(r, box, NULL) && W > 0) {
        double s = (double)mem->Xsize / W, red[3] = {230, 40, 40};
        for (int k = 0; k < 2; k++)
            vips_draw_rect(mem, red, 3, (int)(box[0] * s) - k, (int)(box[1] * s) - k,
                           (int)(box[2] * s) + 2 * k, (int)(box[3] * s) + 2 * k, NULL);
    }
    void *buf = NULL;
    size_t len = 0;
    if (ok && vips_jpegsave_buffer(mem, &buf, &len, "Q", 80, "strip", TRUE, NULL) == 0)
        b64 = g_base64_encode(buf, len);
    g_free(buf);
    VipsImage *all[] = {t, rgb, flat, u8, mem};
    for (int i = 0; i < 5; i++)
        if (all[i]) g_object_unref(all[i]);
    if (!b64) vips_error_clear();
    return b64;
}

static int write_html(const char *out, const item *it, int n, const int *order, const char *reason,
                      const int *W) {
    char tmp[1400];
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", out, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    fputs("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<title>trueshot check</title>\n<style>\n"
          "body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:960px;color:#222}\n"
          ".photo{display:flex;gap:1.5em;border-top:1px solid #ddd;padding:1.2em 0}\n"
          ".photo img{max-width:360px;max-height:360px;border-radius:4px}\n"
          ".score{font-size:2em;font-weight:600}\n"
          ".good{color:#1a7f37}.could{color:#b26b00}.not{color:#c62828}\n"
          "table{border-collapse:collapse;margin-top:.5em}td{padding:2px 8px;vertical-align:top}\n"
          ".sw{display:inline-block;width:1.2em;height:1.2em;border:1px solid #999;"
          "vertical-align:middle;margin-right:.3em}\n"
          ".best{background:#f3f8f3;padding:.8em 1em;border-radius:6px}\n"
          "</style></head><body>\n<h1>Headshot check</h1>\n",
          f);
    if (n > 1 && it[order[0]].report) {
        fputs("<p class=\"best\"><b>Best photo:</b> ", f);
        html_escape(f, it[order[0]].path);
        fputs(" &mdash; ", f);
        html_escape(f, reason);
        fputs("</p>\n", f);
    }
    for (int oi = 0; oi < n; oi++) {
        const item *p = &it[order ? order[oi] : oi];
        fputs("<div class=\"photo\"><div>", f);
        char *b64 = p->report ? thumbnail_b64(p->path, p->report, W[order ? order[oi] : oi]) : NULL;
        if (b64) fprintf(f, "<img alt=\"thumbnail\" src=\"data:image/jpeg;base64,%s\">", b64);
        g_free(b64);
        fputs("</div><div><h2>", f);
        html_escape(f, p->path);
        fputs("</h2>\n", f);
        if (!p->report) {
            fputs("<p class=\"not\">Could not be checked: ", f);
            html_escape(f, p->error);
            fputs("</p></div></div>\n", f);
            continue;
        }
        ts_verdict v = ts_check_verdict(p->report);
        const char *cls = v == TS_VERDICT_GOOD              ? "good"
                          : v == TS_VERDICT_COULD_BE_BETTER ? "could"
                                                            : "not";
        fprintf(f, "<div class=\"score %s\">%d &middot; %s</div>\n<table>\n", cls,
                ts_check_score(p->report), ts_verdict_name(v));
        for (int k = 0; k < ts_check_count(p->report); k++) {
            const ts_check_component *c = ts_check_component_at(p->report, k);
            const char *cc = c->verdict == TS_VERDICT_GOOD              ? "good"
                             : c->verdict == TS_VERDICT_COULD_BE_BETTER ? "could"
                                                                        : "not";
            fprintf(f, "<tr><td>%s</td><td class=\"%s\">%d</td><td class=\"%s\">%s</td><td>",
                    c->label, cc, c->score, cc, ts_verdict_name(c->verdict));
            html_escape(f, c->tip);
            fputs("</td></tr>\n", f);
        }
        fputs("</table>\n", f);
        const ts_backdrop *bd;
        int nb = ts_check_backdrops(p->report, &bd);
        if (nb > 0) {
            fputs("<p>Backdrops that suit your clothes and hair: ", f);
            for (int k = 0; k < nb; k++)
                fprintf(f, "%s<span class=\"sw\" style=\"background:#%06x\"></span>%s",
                        k ? ", " : "", (unsigned)bd[k].rgb, bd[k].name);
            fputs("</p>\n", f);
        }
        fputs("</div></div>\n", f);
    }
    fputs("<p style=\"color:#777\">Made by trueshot " TS_VERSION_STRING
          " on this computer; nothing was uploaded.</p>\n</body></html>\n",
          f);
    if (fflush(f) != 0 || ferror(f)) {
        fclose(f);
        unlink(tmp);
        return -1;
    }
    if (fclose(f) != 0 || rename(tmp, out) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int cmd_check(int argc, char **argv) {
    bool json = false, scene = true;
    const char *html = NULL;
    int size = 1200, nphotos = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!strcmp(argv[i], "--no-scene"))
            scene = false;
        else if (!strcmp(argv[i], "--html") && i + 1 < argc)
            html = argv[++i];
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 64 || v > 20000)
                return cli_fail(TS_ERR_ARGUMENT, "check: --size is a number of pixels, 64-20000");
            size = (int)v;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(check_usage, stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1])
            return cli_fail(TS_ERR_ARGUMENT, "check: unknown option '%s' (try trueshot check -h)",
                            argv[i]);
        else
            nphotos++;
    }
    if (!nphotos)
        return cli_fail(TS_ERR_ARGUMENT, "check: which photos? (trueshot check PHOTO...)");
    /* The photos: each named one, and the photos in each folder named (a photo named twice, or
     * again through its folder, is checked once). */
    const char **paths = NULL;
    cli_folder *folders = calloc((size_t)argc, sizeof *folders);
    int n_folders = 0, rc = 0;
    nphotos = 0;
    for (int i = 1; !rc && folders && i < argc; i++) {
        if (!strcmp(argv[i], "--html") || !strcmp(argv[i], "--size")) {
            i++;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1]) continue;
        cli_folder one = {(char **)&argv[i], 1, 0};
        if (cli_is_dir(argv[i]) && (rc = cli_folder_photos("check", argv[i], &folders[n_folders])))
            break;
        const cli_folder *f = cli_is_dir(argv[i]) ? &folders[n_folders++] : &one;
        const char **grown = realloc(paths, sizeof *paths * (size_t)(nphotos + f->n));
        if (!grown) {
            rc = cli_fail(TS_ERR_NOMEM, "out of memory");
            break;
        }
        paths = grown;
        for (int k = 0; k < f->n; k++) {
            int seen = 0;
            for (int j = 0; j < nphotos && !seen; j++)
                seen = !strcmp(paths[j], f->paths[k]) || cli_same_file(paths[j], f->paths[k]);
            if (!seen) paths[nphotos++] = f->paths[k];
        }
    }
    if (!folders) rc = cli_fail(TS_ERR_NOMEM, "out of memory");
    if (rc) {
        for (int i = 0; i < n_folders; i++) cli_folder_free(&folders[i]);
        free(folders), free(paths);
        return rc;
    }

    ts_ctx *ctx;
    ts_ctx_options co;
    ts_ctx_options_init(&co);
    co.max_pixels = CLI_SHRUNK_MAX_PIXELS;
    if (ts_ctx_new(&co, &ctx) != TS_OK) return cli_fail(TS_ERR_INTERNAL, "%s", ts_last_error());
    item *it = calloc((size_t)nphotos, sizeof *it);
    int *order = calloc((size_t)nphotos, sizeof *order), *W = calloc((size_t)nphotos, sizeof *W),
        *H = calloc((size_t)nphotos, sizeof *H);
    const ts_check_report **reps = calloc((size_t)nphotos, sizeof *reps);
    if (!it || !order || !W || !H || !reps) {
        free(it), free(order), free(W), free(H), free(reps);
        ts_ctx_free(ctx);
        return cli_fail(TS_ERR_NOMEM, "out of memory");
    }
    ts_check_options opt;
    ts_check_options_init(&opt);
    opt.output_px = size;
    opt.scene = scene;
    int k = 0;
    bool model_failed = false;
    for (int i = 0; i < nphotos; i++) {
        item *p = &it[k++];
        p->path = paths[i];
        if (nphotos > 1) {
            const char *base = strrchr(p->path, '/') ? strrchr(p->path, '/') + 1 : p->path;
            cli_progress("trueshot: checking %d of %d: %s...", i + 1, nphotos, base);
        }
        if (model_failed) {
            /* The next photo would fail the same way. */
            p->status = TS_ERR_MODEL;
            snprintf(p->error, sizeof p->error, "not checked: a model is missing");
            continue;
        }
        double t0 = now_ms();
        ts_photo *ph = NULL;
        ts_status s = ts_photo_open(ctx, p->path, &ph);
        if (!s) s = ts_photo_check(ctx, ph, &opt, &p->report);
        if (!s) p->turned = ts_photo_turn(ph);
        p->ms = now_ms() - t0;
        if (ph) W[k - 1] = ts_photo_width(ph), H[k - 1] = ts_photo_height(ph);
        ts_photo_unref(ph);
        p->status = s;
        if (s) {
            snprintf(p->error, sizeof p->error, "%s", ts_ctx_error(ctx));
            cli_progress(NULL);
            int code = cli_fail(s, "%s", p->error);
            if (!rc) rc = code;
            if (s == TS_ERR_MODEL) model_failed = true;
        }
        reps[k - 1] = p->report;
    }
    cli_progress(NULL);
    char reason[512] = "";
    ts_check_rank(reps, nphotos, order, reason, sizeof reason);

    if (json) {
        json_t *photos = json_array(), *ranking = json_array();
        for (int i = 0; i < nphotos; i++)
            json_array_append_new(photos, full_json(&it[i], W[i], H[i]));
        for (int i = 0; i < nphotos; i++)
            json_array_append_new(ranking, json_string(it[order[i]].path));
        json_t *root =
            json_pack("{s:i, s:o, s:o}", "version", 1, "photos", photos, "ranking", ranking);
        if (it[order[0]].report)
            json_object_set_new(
                root, "best",
                json_pack("{s:s, s:s}", "photo", it[order[0]].path, "reason", reason));
        else
            json_object_set_new(root, "best", json_null());
        char *txt = json_dumps(root, JSON_INDENT(1) | JSON_REAL_PRECISION(5));
        if (txt) puts(txt);
        free(txt);
        json_decref(root);
    } else {
        print_text(it, nphotos, order, reason, isatty(1) && !getenv("NO_COLOR"));
    }
    if (html) {
        if (write_html(html, it, nphotos, order, reason, W) != 0) {
            int code = cli_fail(TS_ERR_WRITE, "check: cannot write %s", html);
            if (!rc) rc = code;
        } else if (!json) {
            printf("report written to %s\n", html);
        }
    }
    for (int i = 0; i < nphotos; i++) ts_check_report_free(it[i].report);
    free(it), free(order), free(W), free(H), free(reps);
    ts_ctx_free(ctx);
    for (int i = 0; i < n_folders; i++) cli_folder_free(&folders[i]);
    free(folders), free(paths);
    return rc;
}
