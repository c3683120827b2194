/* The studio's parsers of client input: a look's parameters (query or JSON body) and an
 * upload's file name. Kept apart from the HTTP code so fuzz/fuzz_studio.c can compile them in. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "studio.h"
#include "styles/style.h"

const char *const studio_crops[] = {"square", "4x5", "2x3", "8x10", "tight", NULL};
const char *const studio_kinds[] = {"solid", "vertical", "gradient", "radial",
                                    "blur",  "keep",     NULL};
const char *const studio_formats[] = {"jpeg", "png", "webp", "avif", NULL};

int studio_index_of(const char *const *list, const char *s) {
    for (int i = 0; list[i]; i++)
        if (!strcmp(list[i], s)) return i;
    return -1;
}

/* ---- parameters ---- */

static int is_hex_colour(const char *s) {
    return s[0] == '#' && strlen(s) == 7 && strspn(s + 1, "0123456789abcdefABCDEF") == 6;
}

static int number(const char *v, double lo, double hi, double *out) {
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !isfinite(d) || d < lo || d > hi) return -1;
    *out = d;
    return 0;
}

int studio_look_parse(studio_lookup get, void *user, studio_look_params *lp, char *err,
                      size_t cap) {
    memset(lp, 0, sizeof *lp);
    lp->retouch = -1;
    const char *v = get(user, "style");
    const ts_style_info *info;
    int n = ts_styles_builtins(&info), found = 0;
    for (int i = 0; v && i < n; i++) found |= !strcmp(info[i].id, v);
    if (!found)
        return snprintf(err, cap, "Pick one of the built-in looks (style=linkedin, ...)."), -1;
    snprintf(lp->style, sizeof lp->style, "%s", v);
    if ((v = get(user, "background")) && v[0] && strcmp(v, "style")) {
        if (studio_index_of(studio_kinds, v) < 0 && !is_hex_colour(v))
            return snprintf(err, cap,
                            "background is solid, vertical, radial, blur, keep, style or a "
                            "colour #rrggbb."),
                   -1;
        snprintf(lp->background, sizeof lp->background, "%s", v);
    }
    if ((v = get(user, "crop")) && v[0] && strcmp(v, "style")) {
        if (studio_index_of(studio_crops, v) < 0)
            return snprintf(err, cap, "crop is square, 4x5, 2x3, 8x10, tight or style."), -1;
        snprintf(lp->crop, sizeof lp->crop, "%s", v);
    }
    if ((v = get(user, "retouch")) && v[0] && strcmp(v, "style") && number(v, 0, 1, &lp->retouch))
        return snprintf(err, cap, "retouch is a number from 0 to 1."), -1;
    if ((v = get(user, "brightness")) && v[0] && number(v, -1, 1, &lp->brightness))
        return snprintf(err, cap, "brightness is a number from -1 to 1."), -1;
    lp->before = (v = get(user, "before")) && !strcmp(v, "1");
    snprintf(lp->format, sizeof lp->format, "jpeg");
    if ((v = get(user, "format")) && v[0]) {
        if (studio_index_of(studio_formats, v) < 0)
            return snprintf(err, cap, "format is jpeg, png, webp or avif."), -1;
        snprintf(lp->format, sizeof lp->format, "%s", v);
    }
    return 0;
}

void studio_filename_from(const char *in, char *out, size_t cap) {
    size_t n = 0;
    for (const char *s = in; *s && n + 1 < cap; s++) {
        int ch = (unsigned char)*s;
        if (ch == '%' && s[1] && s[2]) {
            char hex[3] = {s[1], s[2], 0};
            char *end;
            long v = strtol(hex, &end, 16);
            if (!*end) ch = (int)v, s += 2;
        }
        out[n++] = ch < 32 || ch == 127 || ch == '/' || ch == '\\' ? '_' : (char)ch;
    }
    out[n] = 0;
    if (!n) snprintf(out, cap, "photo");
    /* The name goes into JSON, which must be UTF-8. */
    if (!g_utf8_validate(out, -1, NULL)) {
        char *valid = g_utf8_make_valid(out, -1);
        snprintf(out, cap, "%s", valid);
        g_free(valid);
        while (!g_utf8_validate(out, -1, NULL)) out[strlen(out) - 1] = 0; /* cut mid-character */
    }
}
