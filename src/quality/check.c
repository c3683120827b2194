/* ts_photo_check: runs the graders on one photo, aggregates their scores into a headshot
 * readiness, and ranks several photos saying why the best won. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quality/quality.h"

const char *ts_verdict_name(ts_verdict v) {
    switch (v) {
    case TS_VERDICT_GOOD:
        return "good";
    case TS_VERDICT_COULD_BE_BETTER:
        return "could be better";
    case TS_VERDICT_NOT_USABLE:
        return "not usable";
    }
    return "?";
}

void ts_check_options_init(ts_check_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->output_px = 1200;
    o->face_fraction = 0.45f;
    o->scene = 1;
}

/* ---- helpers shared by the graders ---- */

ts_check_component *q_add(ts_check_report *r, const char *id, const char *label) {
    if (r->n >= TS_CHECK_MAX_COMPONENTS) return NULL;
    ts_check_component *c = &r->comp[r->n++];
    memset(c, 0, sizeof *c);
    c->id = id;
    c->label = label;
    c->score = 100;
    c->verdict = TS_VERDICT_GOOD;
    return c;
}

void q_raw(ts_check_component *c, const char *name, double v) {
    if (!c || c->n_raw >= TS_CHECK_RAW_MAX) return;
    c->raw_name[c->n_raw] = name;
    c->raw[c->n_raw++] = isfinite(v) ? v : 0;
}

void q_grade(ts_check_component *c, double score, const char *tip_fmt, ...) {
    if (!c) return;
    if (!isfinite(score)) score = 0;
    int s = (int)floor(score < 0 ? 0 : score > 100 ? 100 : score);
    c->score = s;
    c->verdict = s >= Q_GOOD       ? TS_VERDICT_GOOD
                 : s >= Q_UNUSABLE ? TS_VERDICT_COULD_BE_BETTER
                                   : TS_VERDICT_NOT_USABLE;
    c->tip[0] = 0;
    if (c->verdict != TS_VERDICT_GOOD && tip_fmt) {
        va_list ap;
        va_start(ap, tip_fmt);
        vsnprintf(c->tip, sizeof c->tip, tip_fmt, ap);
        va_end(ap);
    }
}

double q_up(double x, double unusable, double good) {
    if (!(good != unusable)) return x >= good ? 100 : 0;
    return Q_UNUSABLE + (Q_GOOD - Q_UNUSABLE) * (x - unusable) / (good - unusable);
}

double q_down(double x, double good, double unusable) {
    return q_up(-x, -unusable, -good);
}

static float srgb_lin(int v) {
    double c = v / 255.0;
    return (float)(c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4));
}

static float lab_f(float t) {
    return t > 0.008856f ? cbrtf(t) : 7.787f * t + 16.f / 116.f;
}

static const float *lin_lut(void) {
    static float lut[256];
    static bool ready;
    /* Benign race: every thread writes the same values. */
    if (!ready) {
        for (int i = 0; i < 256; i++) lut[i] = srgb_lin(i);
        ready = true;
    }
    return lut;
}

double q_luminance(const uint8_t rgb[3]) {
    const float *lut = lin_lut();
    return 0.2126 * lut[rgb[0]] + 0.7152 * lut[rgb[1]] + 0.0722 * lut[rgb[2]];
}

void q_lab(const uint8_t rgb[3], float lab[3]) {
    const float *lut = lin_lut();
    float r = lut[rgb[0]], g = lut[rgb[1]], b = lut[rgb[2]];
    /* sRGB (D65) to XYZ, normalised by the D65 white. */
    float x = (0.4124f * r + 0.3576f * g + 0.1805f * b) / 0.95047f;
    float y = 0.2126f * r + 0.7152f * g + 0.0722f * b;
    float z = (0.0193f * r + 0.1192f * g + 0.9505f * b) / 1.08883f;
    float fx = lab_f(x), fy = lab_f(y), fz = lab_f(z);
    lab[0] = 116.f * fy - 16.f;
    lab[1] = 500.f * (fx - fy);
    lab[2] = 200.f * (fy - fz);
}

static int lin_srgb8(double c) {
    c = c <= 0.0031308 ? 12.92 * c : 1.055 * pow(c, 1 / 2.4) - 0.055;
    int v = (int)lround(c * 255);
    return v < 0 ? 0 : v > 255 ? 255 : v;
}

uint32_t q_lab_to_rgb(const float lab[3]) {
    double fy = (lab[0] + 16) / 116.0, fx = fy + lab[1] / 500.0, fz = fy - lab[2] / 200.0;
    double e = 6.0 / 29;
    double x = 0.95047 * (fx > e ? fx * fx * fx : (fx - 16.0 / 116) * 3 * e * e);
    double y = fy > e ? fy * fy * fy : (fy - 16.0 / 116) * 3 * e * e;
    double z = 1.08883 * (fz > e ? fz * fz * fz : (fz - 16.0 / 116) * 3 * e * e);
    double r = 3.2406 * x - 1.5372 * y - 0.4986 * z;
    double g = -0.9689 * x + 1.8758 * y + 0.0415 * z;
    double b = 0.0557 * x - 0.2040 * y + 1.0570 * z;
    return (uint32_t)lin_srgb8(r) << 16 | (uint32_t)lin_srgb8(g) << 8 | (uint32_t)lin_srgb8(b);
}

float q_delta_e(const float a[3], const float b[3]) {
    return sqrtf((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) +
                 (a[2] - b[2]) * (a[2] - b[2]));
}

/* ---- aggregate ---- */

/* How much each component counts in the readiness score. What a headshot cannot hide or repair
 * (resolution, focus, exposure, closed or hidden eyes, the face turned away) counts most;
 * background and wardrobe least, since the background can be replaced. */
static const struct {
    const char *id;
    double weight;
} weights[] = {
    {"faces", 1.0},       {"resolution", 2.0},  {"headroom", 1.0},   {"pose", 1.5},
    {"eyes_open", 1.5},   {"gaze", 1.0},        {"expression", 1.0}, {"sharpness", 2.0},
    {"noise", 1.0},       {"exposure", 1.5},    {"evenness", 1.0},   {"color_cast", 1.0},
    {"compression", 1.0}, {"eyes_hidden", 1.5}, {"too_close", 1.0},  {"background", 0.5},
    {"wardrobe", 0.5},
};

static double weight_of(const char *id) {
    for (size_t i = 0; i < sizeof weights / sizeof weights[0]; i++)
        if (!strcmp(weights[i].id, id)) return weights[i].weight;
    return 1.0;
}

static void aggregate(ts_check_report *r) {
    double sum = 0, wsum = 0;
    int worst = 100;
    bool unusable = false;
    for (int i = 0; i < r->n; i++) {
        const ts_check_component *c = &r->comp[i];
        double w = weight_of(c->id);
        sum += w * c->score;
        wsum += w;
        if (c->score < worst) worst = c->score;
        if (c->verdict == TS_VERDICT_NOT_USABLE) unusable = true;
    }
    double s = wsum > 0 ? sum / wsum : 0;
    /* One bad aspect spoils a photo however good the rest is: cap the mean at 25 above the
     * worst component, and any "not usable" makes the photo not usable. */
    if (s > worst + 25) s = worst + 25;
    if (unusable && s > Q_UNUSABLE - 1) s = Q_UNUSABLE - 1;
    /* Other people in the photo: the crop can leave them out, but a photo shared with others
     * is at best "could be better" as a headshot source (issue 5: a warning, not a failure). */
    const ts_check_component *faces = ts_check_find(r, "faces");
    if (faces && faces->verdict != TS_VERDICT_GOOD && s > Q_GOOD - 1) s = Q_GOOD - 1;
    r->score = (int)floor(s);
    r->verdict = r->score >= Q_GOOD       ? TS_VERDICT_GOOD
                 : r->score >= Q_UNUSABLE ? TS_VERDICT_COULD_BE_BETTER
                                          : TS_VERDICT_NOT_USABLE;
}

ts_status ts_photo_check(ts_ctx *ctx, ts_photo *p, const ts_check_options *opt,
                         ts_check_report **out) {
    if (!ctx || !p || !out) return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_photo_check: NULL argument");
    ts_check_options o;
    ts_check_options_init(&o);
    if (opt) {
        if (opt->size < offsetof(ts_check_options, scene) + sizeof opt->scene)
            return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_photo_check: options not initialised");
        o.output_px = opt->output_px;
        o.face_fraction = opt->face_fraction;
        o.scene = opt->scene;
    }
    if (o.output_px < 64 || o.output_px > 20000 || !(o.face_fraction > 0.05f) ||
        !(o.face_fraction <= 1.f))
        return ts_fail(ctx, TS_ERR_ARGUMENT,
                       "ts_photo_check: output_px must be 64..20000 and face_fraction 0.05..1");
    ts_check_report *r = calloc(1, sizeof *r);
    if (!r) return ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
    snprintf(r->path, sizeof r->path, "%s", p->path);
    r->width = ts_photo_width(p);
    r->height = ts_photo_height(p);

    q_input in = {.ctx = ctx, .photo = p, .opt = &o, .W = r->width, .H = r->height};
    ts_status s = ts_photo_faces(ctx, p, &in.faces, &in.n_faces);
    if (!s) s = ts_photo_subject(ctx, p, &in.a);
    if (s == TS_ERR_NO_FACE) {
        r->status = TS_ERR_NO_FACE;
        ts_check_component *c = q_add(r, "faces", "Face");
        q_raw(c, "count", 0);
        q_grade(c, 0,
                "No face was found. Face the camera in good light, with your whole face in the "
                "picture and nothing covering it.");
        aggregate(r);
        *out = r;
        return TS_OK;
    }
    if (!s) {
        in.an = ts_photo_analysis(ctx, p, &in.an_scale);
        if (!in.an) s = TS_ERR_FORMAT;
    }
    if (!s) {
        const float(*L)[3] = in.a->landmarks;
        in.face_h = hypotf(L[10][0] - L[152][0], L[10][1] - L[152][1]);
        in.face_w = hypotf(L[234][0] - L[454][0], L[234][1] - L[454][1]);
        in.eye_mid[0] = (in.a->irises[0].x + in.a->irises[1].x) / 2;
        in.eye_mid[1] = (in.a->irises[0].y + in.a->irises[1].y) / 2;
        const ts_face *f = &in.faces[in.a->face];
        r->has_face = true;
        r->box[0] = f->x, r->box[1] = f->y, r->box[2] = f->w, r->box[3] = f->h;
        r->inter_eye_px = in.a->inter_eye_px;
        s = q_grade_geometry(&in, r);
    }
    if (!s) s = q_grade_pixels(&in, r);
    if (!s) s = q_grade_distance(&in, r);
    if (!s && o.scene) s = q_grade_scene(&in, r);
    if (s) {
        free(r);
        return s;
    }
    aggregate(r);
    *out = r;
    return TS_OK;
}

void ts_check_report_free(ts_check_report *r) {
    free(r);
}

int ts_check_score(const ts_check_report *r) {
    return r ? r->score : 0;
}
ts_verdict ts_check_verdict(const ts_check_report *r) {
    return r ? r->verdict : TS_VERDICT_NOT_USABLE;
}
ts_status ts_check_status(const ts_check_report *r) {
    return r ? r->status : TS_ERR_ARGUMENT;
}
int ts_check_count(const ts_check_report *r) {
    return r ? r->n : 0;
}
const ts_check_component *ts_check_component_at(const ts_check_report *r, int i) {
    return r && i >= 0 && i < r->n ? &r->comp[i] : NULL;
}
const ts_check_component *ts_check_find(const ts_check_report *r, const char *id) {
    if (!r || !id) return NULL;
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->comp[i].id, id)) return &r->comp[i];
    return NULL;
}
int ts_check_face(const ts_check_report *r, float box[4], float *inter_eye_px) {
    if (!r || !r->has_face) return 0;
    if (box) memcpy(box, r->box, sizeof r->box);
    if (inter_eye_px) *inter_eye_px = r->inter_eye_px;
    return 1;
}
int ts_check_backdrops(const ts_check_report *r, const ts_backdrop **out) {
    if (!r) return 0;
    if (out) *out = r->backdrops;
    return r->n_backdrops;
}

/* ---- ranking ---- */

/* How a component reads in "why this photo won": as a superlative, and as "the only one with". */
static const struct {
    const char *id, *best, *only;
} phrases[] = {
    {"faces", "fewest other people", "the only one with just you in it"},
    {"resolution", "highest resolution", "the only one with enough resolution"},
    {"headroom", "most room around the head", "the only one with room for the framing"},
    {"pose", "facing the camera best", "the only one facing the camera"},
    {"eyes_open", "eyes most open", "the only one with eyes open"},
    {"gaze", "best eye contact", "the only one looking at the camera"},
    {"expression", "most relaxed expression", "the only one with a relaxed expression"},
    {"sharpness", "sharpest", "the only sharp one"},
    {"noise", "least noise", "the only one without noise"},
    {"exposure", "best exposed", "the only well exposed one"},
    {"evenness", "most evenly lit", "the only evenly lit one"},
    {"color_cast", "most natural colour", "the only one with natural colour"},
    {"compression", "fewest compression artefacts", "the only one without compression damage"},
    {"eyes_hidden", "eyes most clearly visible", "the only one with the eyes clearly visible"},
    {"too_close", "taken from the best distance", "the only one taken from far enough"},
    {"background", "plainest background", "the only one with a plain background"},
    {"wardrobe", "best clothing for a headshot", "the only one with headshot-friendly clothes"},
};

static int cmp_rank(const ts_check_report *a, const ts_check_report *b) {
    if (!a || !b) return a ? -1 : b ? 1 : 0;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    const ts_check_component *sa = ts_check_find(a, "sharpness"),
                             *sb = ts_check_find(b, "sharpness");
    int va = sa ? sa->score : 0, vb = sb ? sb->score : 0;
    return va > vb ? -1 : va < vb ? 1 : 0;
}

ts_status ts_check_rank(const ts_check_report *const *reports, int n, int *order, char *reason,
                        size_t cap) {
    if (!order || n < 0 || (n > 0 && !reports)) return TS_ERR_ARGUMENT;
    for (int i = 0; i < n; i++) order[i] = i;
    /* Insertion sort: stable, and n is the handful of photos one person gives. */
    for (int i = 1; i < n; i++) {
        int k = order[i], j = i - 1;
        while (j >= 0 && cmp_rank(reports[k], reports[order[j]]) < 0) {
            order[j + 1] = order[j];
            j--;
        }
        order[j + 1] = k;
    }
    if (!reason || !cap) return TS_OK;
    reason[0] = 0;
    const ts_check_report *best = n > 0 ? reports[order[0]] : NULL;
    if (!best) {
        snprintf(reason, cap, "%s", n ? "no photo could be read" : "no photos");
        return TS_OK;
    }
    int readable = 0;
    for (int i = 0; i < n; i++) readable += reports[i] != NULL;
    if (readable == 1) {
        snprintf(reason, cap, "the only photo that could be graded");
        return TS_OK;
    }
    /* Components where the winner beats every other photo clearly: first those where it is
     * the only good one, then the largest margins. */
    const char *said[3];
    int nsaid = 0;
    for (int pass = 0; pass < 2 && nsaid < 3; pass++) {
        int margin_min = 10;
        for (int k = 0; k < (int)(sizeof phrases / sizeof phrases[0]) && nsaid < 3; k++) {
            const ts_check_component *c = ts_check_find(best, phrases[k].id);
            if (!c) continue;
            int others_max = -1;
            bool others_good = false;
            for (int i = 1; i < n; i++) {
                const ts_check_component *o = ts_check_find(reports[order[i]], phrases[k].id);
                if (!reports[order[i]]) continue;
                int v = o ? o->score : 0;
                if (v > others_max) others_max = v;
                if (o && o->verdict == TS_VERDICT_GOOD) others_good = true;
            }
            if (others_max < 0) continue;
            bool only = c->verdict == TS_VERDICT_GOOD && !others_good;
            if (pass == 0 && only) said[nsaid++] = phrases[k].only;
            if (pass == 1 && !only && c->score - others_max >= margin_min)
                said[nsaid++] = phrases[k].best;
        }
    }
    size_t len = 0;
    if (best->verdict == TS_VERDICT_NOT_USABLE)
        len += (size_t)snprintf(reason, cap, "none is usable; this one comes closest%s",
                                nsaid ? ": " : "");
    for (int i = 0; i < nsaid && len < cap; i++)
        len += (size_t)snprintf(reason + len, cap - len, "%s%s",
                                i == 0           ? ""
                                : i == nsaid - 1 ? " and "
                                                 : ", ",
                                said[i]);
    if (!nsaid && len < cap) {
        const ts_check_report *second = n > 1 ? reports[order[1]] : NULL;
        snprintf(reason + len, cap - len, "highest overall score (%d, next %d)", best->score,
                 second ? second->score : 0);
    }
    return TS_OK;
}
