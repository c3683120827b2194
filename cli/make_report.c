#include "make_report.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <vips/vips.h>

#include "draw.h"
#include "render/export.h"
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

/* vips_image_map callback: counts the EXIF fields, and those the export must have removed. */
static void *exif_field(VipsImage *im, const char *name, GValue *value, void *user) {
    (void)im, (void)value;
    make_metadata *m = user;
    if (strncmp(name, "exif-ifd", 8)) return NULL;
    m->exif_fields++;
    /* libexif's IFD 3 is the GPS IFD */
    if (!strncmp(name, "exif-ifd3-", 10) || strstr(name, "GPS")) m->gps++;
    if (strstr(name, "SerialNumber")) m->serial++;
    if (strstr(name, "MakerNote")) m->maker_note++;
    return NULL;
}

int make_read_back(const char *path, make_metadata *m) {
    memset(m, 0, sizeof *m);
    VipsImage *im = vips_image_new_from_file(path, NULL); /* the header only */
    if (!im) {
        vips_error_clear();
        return -1;
    }
    m->read = 1;
    const void *data = NULL;
    size_t len = 0;
    /* The XMP packet: "xmp-data", or for HEIF/AVIF an item libvips 8.14's loader names
     * "heif-mime-N" (it reads no "xmp-data" there). */
    char **names = vips_image_get_fields(im);
    for (int i = 0; names[i] && !data; i++) {
        if (strcmp(names[i], VIPS_META_XMP_NAME) && strncmp(names[i], "heif-mime-", 10)) continue;
        if (vips_image_get_blob(im, names[i], &data, &len) ||
            !g_strstr_len(data, (gssize)len, "x:xmpmeta"))
            data = NULL, len = 0;
    }
    g_strfreev(names);
    if (data) {
        ts_xmp_fields x;
        ts_xmp_read(data, len, &x);
        snprintf(m->source_type, sizeof m->source_type, "%s", x.source_type);
        snprintf(m->creator_tool, sizeof m->creator_tool, "%s", x.creator_tool);
        m->n_edits = x.n_edits;
    }
    if (vips_image_get_typeof(im, VIPS_META_ICC_NAME) &&
        !vips_image_get_blob(im, VIPS_META_ICC_NAME, &data, &len)) {
        m->icc_bytes = len;
        VipsBlob *srgb = NULL;
        if (!vips_profile_load("sRGB", &srgb, NULL)) {
            size_t n = 0;
            const void *ref = vips_blob_get(srgb, &n);
            m->icc_srgb = n == len && !memcmp(ref, data, n);
            vips_area_unref(VIPS_AREA(srgb));
        }
    }
    vips_image_map(im, exif_field, m);
    vips_error_clear();
    g_object_unref(im);
    return 0;
}

int make_write_preview(make_report *r, int photo_w, int photo_h) {
    /* Halvings of the longer side until it fits: the sizes a JPEG decodes to directly (its
     * shrink-on-load), so the preview costs a partial decode and an encode, no resampling. */
    int target = photo_w > photo_h ? photo_w : photo_h;
    while (target > MAKE_PREVIEW_SIDE) target = (target + 1) / 2;
    VipsImage *t = NULL;
    void *buf = NULL;
    size_t len = 0;
    int ok = photo_w > 0 &&
             !vips_thumbnail(r->photo, &t, target, "height", target, "size", VIPS_SIZE_DOWN, NULL);
    if (ok && r->turned) {
        /* the photo the way the headshots were made from it (a turn reads bottom first) */
        VipsImage *mem = vips_image_copy_memory(t), *up = NULL;
        ok = mem && !vips_rot(mem, &up, VIPS_ANGLE_D180, NULL);
        if (mem) g_object_unref(mem);
        g_object_unref(t), t = up;
    }
    ok = ok &&
         /* no metadata: the photo's own EXIF (location, camera) stays out of the report */
         !vips_jpegsave_buffer(t, &buf, &len, "Q", 85, "strip", TRUE, NULL) &&
         ts_write_file_atomic(NULL, r->preview, buf, len) == TS_OK;
    if (ok) {
        r->preview_w = t->Xsize, r->preview_h = t->Ysize;
        r->preview_scale = (double)t->Xsize / photo_w;
    } else {
        r->preview[0] = 0;
    }
    if (t) g_object_unref(t);
    g_free(buf);
    vips_error_clear();
    return ok ? 0 : -1;
}

/* A neighbour whose face centre is within this many of the subject's face widths (sideways) of
 * the subject's reaches the head-and-shoulders region the matte works in (3.5 face widths wide,
 * src/matte/matte.c): their hair or shoulder can stay in the cut-out. */
#define NEIGHBOUR_NEAR_FACE_WIDTHS 2.5f

void make_neighbour_note(make_report *r, const ts_face *faces, int n, int subject) {
    r->note[0] = 0;
    if (subject < 0 || subject >= n) return;
    const ts_face *s = &faces[subject];
    float cx = s->x + s->w / 2, cy = s->y + s->h / 2;
    int near = 0;
    for (int i = 0; i < n; i++) {
        if (i == subject) continue;
        float dx = faces[i].x + faces[i].w / 2 - cx, dy = faces[i].y + faces[i].h / 2 - cy;
        /* beside the subject (not far above or below: a face in the background crowd) */
        if (fabsf(dx) < NEIGHBOUR_NEAR_FACE_WIDTHS * s->w && fabsf(dy) < 1.5f * s->h) near++;
    }
    if (near)
        snprintf(r->note, sizeof r->note,
                 "%s right next to you in this photo. trueshot cut them away, but hair or a "
                 "shoulder touching yours can stay in the cut-out: check the edge on their "
                 "side, or use a photo of you alone.",
                 near == 1 ? "Someone is" : "Other people are");
}

void make_set_advice(make_report *r, const ts_check_report *check) {
    r->check_score = -1, r->check_verdict = NULL, r->n_advice = 0;
    if (!check || ts_check_status(check) != TS_OK) return;
    r->check_score = ts_check_score(check);
    r->check_verdict = ts_verdict_name(ts_check_verdict(check));
    /* the weakest components with something to do, in order */
    int n = ts_check_count(check), used[64] = {0};
    for (int pick = 0; pick < MAKE_MAX_ADVICE; pick++) {
        int best = -1;
        for (int i = 0; i < n && i < 64; i++) {
            const ts_check_component *c = ts_check_component_at(check, i);
            if (used[i] || !c || c->verdict == TS_VERDICT_GOOD || !c->tip[0]) continue;
            if (best < 0 || c->score < ts_check_component_at(check, best)->score) best = i;
        }
        if (best < 0) break;
        used[best] = 1;
        const ts_check_component *c = ts_check_component_at(check, best);
        snprintf(r->advice[r->n_advice].id, sizeof r->advice[0].id, "%s", c->id);
        snprintf(r->advice[r->n_advice].label, sizeof r->advice[0].label, "%s", c->label);
        snprintf(r->advice[r->n_advice].tip, sizeof r->advice[0].tip, "%s", c->tip);
        r->n_advice++;
    }
}

static json_t *metadata_json(const make_metadata *m) {
    return json_pack("{s:s, s:I, s:s, s:s, s:i, s:i, s:i, s:i, s:i}", "icc_profile",
                     m->icc_bytes ? (m->icc_srgb ? "sRGB" : "other") : "none", "icc_profile_bytes",
                     (json_int_t)m->icc_bytes, "digital_source_type", m->source_type,
                     "creator_tool", m->creator_tool, "edits_listed", m->n_edits, "exif_fields",
                     m->exif_fields, "gps_fields", m->gps, "serial_number_fields", m->serial,
                     "maker_note_fields", m->maker_note);
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
    if (o->width)
        json_object_set_new(
            j, "photo_to_file",
            json_pack("[f, f, f, f, f, f]", o->m[0], o->m[1], o->m[2], o->m[3], o->m[4], o->m[5]));
    if (o->meta.read) json_object_set_new(j, "metadata_read_back", metadata_json(&o->meta));
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

/* The file's name relative to the report's folder: the outputs live in it, the report's
 * pictures in its MAKE_REPORT_FILES folder. */
static const char *base(const char *path) {
    const char *b = strrchr(path, '/');
    if (!b) return path;
    static const char sub[] = "/" MAKE_REPORT_FILES "/";
    size_t n = sizeof sub - 1;
    if ((size_t)(b - path) + 1 >= n && !strncmp(b + 1 - n, sub, n)) return b + 1 - n + 1;
    return b + 1;
}

/* The metadata of a written file as read back from it: what a portal or photo manager sees. */
static void html_metadata(FILE *f, const make_metadata *m) {
    fputs("<details><summary>Metadata in the file (read back from it)</summary><ul>", f);
    if (m->icc_bytes)
        fprintf(f, "<li>Colour profile: %s (%zu bytes)</li>",
                m->icc_srgb ? "sRGB, embedded" : "embedded, not the standard sRGB", m->icc_bytes);
    else
        fputs("<li class=\"bad\">No colour profile</li>", f);
    if (m->source_type[0]) {
        fputs("<li>IPTC digital source type: <code>", f);
        html_escape(f, m->source_type);
        fputs(!strcmp(m->source_type, "compositeSynthetic")
                  ? "</code> (a photo combined with a generated background)</li>"
                  : "</code> (the photo, corrected; no pixel generated)</li>",
              f);
    } else {
        fputs("<li class=\"bad\">No IPTC digital source type</li>", f);
    }
    if (m->creator_tool[0]) {
        fputs("<li>Creator tool: ", f);
        html_escape(f, m->creator_tool);
        fputs("</li>", f);
    }
    fprintf(f, "<li>Edits listed: %d</li>", m->n_edits);
    fprintf(f, "<li>EXIF: %d field%s; ", m->exif_fields, m->exif_fields == 1 ? "" : "s");
    if (!m->gps && !m->serial && !m->maker_note)
        fputs("no location, no serial numbers, no maker notes</li>", f);
    else
        fprintf(f,
                "<span class=\"bad\">%d location, %d serial-number and %d maker-note "
                "field(s)</span></li>",
                m->gps, m->serial, m->maker_note);
    fputs("</ul></details>", f);
}

/* The end of the grade's sentence, and the list's start when there are tips. */
static const char *n_advice_text(int n) {
    return n ? ").</p><ul>" : "); nothing to change.</p>";
}

int make_write_report(const make_report *r, const char *dir) {
    json_t *outs = json_array();
    for (int i = 0; i < r->n_outputs; i++) json_array_append_new(outs, output_json(&r->outputs[i]));
    json_t *root = json_pack("{s:s, s:s, s:o, s:f, s:f}", "tool", "trueshot " TS_VERSION_STRING,
                             "photo", r->photo, "outputs", outs, "identity_noise_floor_ied",
                             r->noise_floor, "seconds", r->seconds);
    if (r->why) json_object_set_new(root, "why_this_photo", json_string(r->why));
    if (r->preview[0]) json_object_set_new(root, "photo_preview", json_string(r->preview));
    if (r->note[0]) json_object_set_new(root, "photo_note", json_string(r->note));
    if (r->turned) json_object_set_new(root, "photo_turned", json_integer(r->turned));
    if (r->decode_shrink > 1)
        json_object_set_new(root, "photo_decoded_at", json_real(1.0 / r->decode_shrink));
    if (r->check_score >= 0) {
        json_t *adv = json_array();
        for (int i = 0; i < r->n_advice; i++)
            json_array_append_new(adv, json_pack("{s:s, s:s, s:s}", "id", r->advice[i].id, "label",
                                                 r->advice[i].label, "tip", r->advice[i].tip));
        json_object_set_new(root, "photo_check",
                            json_pack("{s:i, s:s, s:o}", "score", r->check_score, "verdict",
                                      r->check_verdict ? r->check_verdict : "?", "advice", adv));
    }
    char *txt = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(5));
    json_decref(root);
    char path[1100];
    snprintf(path, sizeof path, "%s/%sreport.json", dir, r->prefix ? r->prefix : "");
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
          ".look{display:grid;grid-template-columns:repeat(auto-fit,minmax(18rem,1fr));gap:1rem;"
          "border-top:1px solid #ddd;padding:1rem 0}img{max-width:100%;border-radius:4px}"
          /* the look's text across the top, its pictures side by side below */
          ".info{grid-column:1/-1}.info ul{columns:2 16rem}h2{margin:.2rem 0}"
          "svg.before{width:100%;height:auto;border-radius:4px;background:#eee}"
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
            "noise: %.2f%% of the distance between the eyes).",
            100 * r->noise_floor);
    if (r->decode_shrink > 1)
        fprintf(f,
                " The photo has more pixels than these headshots can hold: they were made from "
                "it decoded at 1/%d of its width, which every one of them still reduces.",
                r->decode_shrink);
    fputs("</p>", f);
    if (r->turned)
        fputs("<p><b>Note:</b> the photo is upside down (its orientation was lost on the way); "
              "the headshots are made from it turned the right way up.</p>",
              f);
    if (r->note[0]) {
        fputs("<p><b>Note:</b> ", f);
        html_escape(f, r->note);
        fputs("</p>", f);
    }
    if (r->check_score >= 0) {
        /* coaching: what would make the next photo a better source */
        fprintf(f,
                "<h3>For an even better headshot next time</h3><p>As a headshot source this "
                "photo grades %d/100 (",
                r->check_score);
        html_escape(f, r->check_verdict ? r->check_verdict : "?");
        fputs(n_advice_text(r->n_advice), f);
        for (int i = 0; i < r->n_advice; i++) {
            fputs("<li><b>", f);
            html_escape(f, r->advice[i].label);
            fputs(":</b> ", f);
            html_escape(f, r->advice[i].tip);
            fputs("</li>", f);
        }
        if (r->n_advice) fputs("</ul>", f);
    }
    for (int i = 0; i < r->n_outputs; i++) {
        const make_output *o = &r->outputs[i];
        fputs("<section class=\"look\"><div class=\"info\"><h2>", f);
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
        if (o->meta.read) html_metadata(f, &o->meta);
        fputs("</div>", f);
        if (r->preview[0] && o->width > 0 && o->height > 0 && r->preview_scale > 0) {
            /* Before: the photo's preview placed by the look's own transform (photo -> file,
             * a similarity), so it shows the same framing without a picture of its own. */
            double k = 1 / r->preview_scale;
            fprintf(f,
                    "<div><svg class=\"before\" viewBox=\"0 0 %d %d\" role=\"img\" "
                    "aria-label=\"the photo at the same framing, before any edit\"><image "
                    "href=\"",
                    o->width, o->height);
            html_escape(f, base(r->preview));
            fprintf(f,
                    "\" width=\"%d\" height=\"%d\" preserveAspectRatio=\"none\" "
                    "transform=\"matrix(%.6g %.6g %.6g %.6g %.6g %.6g)\"/></svg>"
                    "<br><small>Before: the photo at the same framing</small></div>",
                    r->preview_w, r->preview_h, o->m[0] * k, o->m[3] * k, o->m[1] * k, o->m[4] * k,
                    o->m[2], o->m[5]);
        }
        fputs("<div><img alt=\"the headshot\" src=\"", f);
        html_escape(f, base(o->path));
        fputs("\"><br><small>After: the headshot as written</small></div>", f);
        if (o->edit_map[0]) {
            fputs("<div><img alt=\"where the face was changed\" src=\"", f);
            html_escape(f, base(o->edit_map));
            fputs("\"><br><small>Edit map: brighter = more changed</small></div>", f);
        }
        fputs("</section>", f);
    }
    fputs("</body></html>\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/%sreport.html", dir, r->prefix ? r->prefix : "");
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
        snprintf(path, sizeof path, "%s/%scontact-sheet.jpg", dir, r->prefix ? r->prefix : "");
        rc = cli_save_atomic(sheet, path);
        g_object_unref(sheet);
    }
    vips_area_unref(VIPS_AREA(white));
    for (int i = 0; i < n; i++) g_object_unref(cells[i]);
    free(cells);
    return rc;
}
