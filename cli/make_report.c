#include "make_report.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <vips/vips.h>

#include "draw.h"
#include "trueshot.h"

/* Writes text to path via a temporary file and rename. */
static int write_atomic_text(const char *path, const char *text, size_t len) {
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return -1;
    int ok = fwrite(text, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static json_t *output_json(const make_output *o) {
    json_t *edits = json_array(), *notes = json_array();
    for (int i = 0; i < o->n_edits; i++) json_array_append_new(edits, json_string(o->edits[i]));
    for (int i = 0; i < o->n_notes; i++) json_array_append_new(notes, json_string(o->notes[i]));
    json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:i, s:I, s:o, s:o}", "look", o->look, "crop",
                          o->crop, "file", o->path, "width", o->width, "height", o->height, "bytes",
                          (json_int_t)o->bytes, "edits", edits, "notes", notes);
    if (o->source_type) json_object_set_new(j, "digital_source_type", json_string(o->source_type));
    json_object_set_new(
        j, "identity",
        json_pack("{s:f, s:f, s:f, s:f, s:f, s:b}", "mean_displacement_ied", o->id_mean,
                  "max_displacement_ied", o->id_max, "vs_photo_mean_displacement_ied",
                  o->id_total_mean, "framing_only_mean_displacement_ied", o->id_frame_mean,
                  "as_written_mean_displacement_ied", o->id_written_mean, "ok", o->id_ok));
    if (o->edit_map[0]) json_object_set_new(j, "edit_map", json_string(o->edit_map));
    if (o->error[0]) json_object_set_new(j, "error", json_string(o->error));
    return j;
}

static void html_escape(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else if (*s == '"')
            fputs("&quot;", f);
        else
            fputc(*s, f);
    }
}

/* The file's name relative to the report's folder (outputs live in the same folder). */
static const char *base(const char *path) {
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

int make_write_report(const make_report *r, const char *dir) {
    json_t *outs = json_array();
    for (int i = 0; i < r->n_outputs; i++) json_array_append_new(outs, output_json(&r->outputs[i]));
    json_t *root = json_pack("{s:s, s:s, s:o, s:f, s:f}", "tool", "trueshot " TS_VERSION_STRING,
                             "photo", r->photo, "outputs", outs, "identity_noise_floor_ied",
                             r->noise_floor, "seconds", r->seconds);
    if (r->why) json_object_set_new(root, "why_this_photo", json_string(r->why));
    char *txt = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(5));
    json_decref(root);
    char path[1100];
    snprintf(path, sizeof path, "%s/report.json", dir);
    int rc = txt ? write_atomic_text(path, txt, strlen(txt)) : -1;
    free(txt);
    if (rc) return -1;

    /* The HTML page: each look before/after, its edit map, the checks, the metadata written. */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return -1;
    fputs("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
          "<title>trueshot report</title><style>"
          "body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;"
          "color:#222;padding:0 1rem}h1{font-weight:600}"
          ".look{display:grid;grid-template-columns:repeat(auto-fit,minmax(14rem,1fr));gap:1rem;"
          "border-top:1px solid #ddd;padding:1rem 0}img{max-width:100%;border-radius:4px}"
          ".ok{color:#1a7f37}.bad{color:#b42318}small{color:#666}</style></head><body>",
          f);
    fputs("<h1>Your headshots</h1><p>Made from <b>", f);
    html_escape(f, r->photo);
    fputs("</b>", f);
    if (r->why) {
        fputs(" &mdash; ", f);
        html_escape(f, r->why);
    }
    fprintf(f,
            ". Every file below says in its metadata what was done to it. The face's geometry "
            "was measured on each output and compared with the photo (the analysis's own "
            "noise: %.2f%% of the distance between the eyes).</p>",
            100 * r->noise_floor);
    for (int i = 0; i < r->n_outputs; i++) {
        const make_output *o = &r->outputs[i];
        fputs("<section class=\"look\"><div><h2>", f);
        html_escape(f, o->look);
        fputs(" <small>", f);
        html_escape(f, o->crop);
        fputs("</small></h2>", f);
        if (o->error[0]) {
            fputs("<p class=\"bad\">", f);
            html_escape(f, o->error);
            fputs("</p></div></section>", f);
            continue;
        }
        fprintf(f, "<p>%dx%d, %ld KB</p>", o->width, o->height, (o->bytes + 512) / 1024);
        fprintf(f,
                "<p class=\"%s\">Identity: the edits moved landmarks %.2f%% of the eye "
                "distance on average (max %.2f%%; limit 1%%) &mdash; %s. Against the photo: "
                "%.2f%%, of which framing alone reads %.2f%%.</p>",
                o->id_ok ? "ok" : "bad", 100 * o->id_mean, 100 * o->id_max,
                o->id_ok ? "still you" : "CHECK FAILED", 100 * o->id_total_mean,
                100 * o->id_frame_mean);
        fputs("<p>Disclosed as <code>", f);
        html_escape(f, o->source_type ? o->source_type : "?");
        fputs("</code></p><ul>", f);
        for (int k = 0; k < o->n_edits; k++) {
            fputs("<li>", f);
            html_escape(f, o->edits[k]);
            fputs("</li>", f);
        }
        fputs("</ul>", f);
        for (int k = 0; k < o->n_notes; k++) {
            fputs("<p><b>Note:</b> ", f);
            html_escape(f, o->notes[k]);
            fputs("</p>", f);
        }
        fputs("</div><div><img alt=\"the headshot\" src=\"", f);
        html_escape(f, base(o->path));
        fputs("\"></div>", f);
        if (o->edit_map[0]) {
            fputs("<div><img alt=\"where the face was changed\" src=\"", f);
            html_escape(f, base(o->edit_map));
            fputs("\"><br><small>Edit map: brighter = more changed</small></div>", f);
        }
        fputs("</section>", f);
    }
    fputs("</body></html>\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/report.html", dir);
    rc = write_atomic_text(path, buf, len);
    free(buf);
    return rc;
}

int make_write_contact_sheet(const make_report *r, const char *dir) {
    enum { CELL = 360 };
    VipsImage **cells = calloc((size_t)r->n_outputs + 1, sizeof *cells);
    int n = 0;
    for (int i = 0; i < r->n_outputs; i++) {
        const make_output *o = &r->outputs[i];
        if (o->error[0]) continue;
        VipsImage *t = NULL, *flat = NULL, *label = NULL, *lab3 = NULL, *cell = NULL, *emb = NULL;
        char text[200];
        snprintf(text, sizeof text, "%s  %s", o->look, o->crop);
        int ok = vips_thumbnail(o->path, &t, CELL, "height", CELL, NULL) == 0;
        if (ok)
            ok = vips_embed(t, &emb, (CELL - t->Xsize) / 2, 0, CELL, CELL, "extend",
                            VIPS_EXTEND_WHITE, NULL) == 0;
        if (ok) ok = vips_text(&label, text, "width", CELL - 10, "dpi", 110, NULL) == 0;
        /* Text is a white-on-black mask: turn it into dark text on white. */
        if (ok) ok = vips_invert(label, &flat, NULL) == 0;
        if (ok) ok = vips_bandjoin((VipsImage *[]){flat, flat, flat}, &lab3, 3, NULL) == 0;
        VipsImage *pad = NULL;
        if (ok)
            ok = vips_embed(lab3, &pad, 5, 6, CELL, lab3->Ysize + 12, "extend", VIPS_EXTEND_WHITE,
                            NULL) == 0;
        if (ok) {
            VipsArrayDouble *white = vips_array_double_newv(1, 255.0);
            ok = vips_join(emb, pad, &cell, VIPS_DIRECTION_VERTICAL, "expand", TRUE, "background",
                           white, NULL) == 0;
            vips_area_unref(VIPS_AREA(white));
        }
        VipsImage *all[] = {t, flat, label, lab3, emb, pad};
        for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
            if (all[k]) g_object_unref(all[k]);
        if (ok) cells[n++] = cell;
    }
    int rc = n > 0 ? -1 : 1; /* nothing to show: no sheet */
    VipsImage *sheet = NULL;
    VipsArrayDouble *white = vips_array_double_newv(1, 255.0);
    if (n > 0 && vips_arrayjoin(cells, &sheet, n, "across", n < 4 ? n : 4, "shim", 12, "background",
                                white, "halign", VIPS_ALIGN_CENTRE, NULL) == 0) {
        char path[1100];
        snprintf(path, sizeof path, "%s/contact-sheet.jpg", dir);
        rc = cli_save_atomic(sheet, path);
        g_object_unref(sheet);
    }
    vips_area_unref(VIPS_AREA(white));
    for (int i = 0; i < n; i++) g_object_unref(cells[i]);
    free(cells);
    return rc;
}
