#include "render/param.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void ts_params_defaults(const ts_param *t, void *params) {
    for (; t->type != TS_PT_END; t++) {
        char *f = (char *)params + t->offset;
        switch (t->type) {
        case TS_PT_F32:
            *(float *)f = (float)t->dflt;
            break;
        case TS_PT_INT:
        case TS_PT_BOOL:
        case TS_PT_ENUM:
            *(int *)f = (int)t->dflt;
            break;
        case TS_PT_RGB:
            *(uint32_t *)f = t->dflt_rgb;
            break;
        case TS_PT_END:
            break;
        }
    }
}

const ts_param *ts_param_find(const ts_param *t, const char *name) {
    for (; t->type != TS_PT_END; t++)
        if (!strcmp(t->name, name)) return t;
    return NULL;
}

/* Colours by name, for people who don't write hex. */
static const struct {
    const char *name;
    uint32_t rgb;
} named[] = {{"white", 0xffffff},    {"black", 0x000000},     {"grey", 0x8a8d91},
             {"gray", 0x8a8d91},     {"lightgrey", 0xc9cbce}, {"lightgray", 0xc9cbce},
             {"darkgrey", 0x3c3f43}, {"darkgray", 0x3c3f43},  {"navy", 0x1f2a44},
             {"blue", 0x2f5d8a},     {"green", 0x2f5d4a},     {"cream", 0xeee6d8}};

int ts_param_set(const ts_param *p, void *params, const char *value, char *err, size_t cap) {
    char *f = (char *)params + p->offset, *end = NULL;
    while (*value == ' ' || *value == '\t') value++;
    switch (p->type) {
    case TS_PT_F32: {
        errno = 0;
        double v = strtod(value, &end);
        if (end == value || *end || errno || !isfinite(v)) {
            snprintf(err, cap, "%s: '%s' is not a number", p->name, value);
            return -1;
        }
        if (v < p->min || v > p->max) {
            snprintf(err, cap, "%s: %g is outside %g..%g", p->name, v, p->min, p->max);
            return -1;
        }
        *(float *)f = (float)v;
        return 0;
    }
    case TS_PT_INT: {
        errno = 0;
        long v = strtol(value, &end, 10);
        if (end == value || *end || errno) {
            snprintf(err, cap, "%s: '%s' is not a whole number", p->name, value);
            return -1;
        }
        if (v < p->min || v > p->max) {
            snprintf(err, cap, "%s: %ld is outside %g..%g", p->name, v, p->min, p->max);
            return -1;
        }
        *(int *)f = (int)v;
        return 0;
    }
    case TS_PT_BOOL: {
        static const char *yes[] = {"yes", "true", "on", "1"}, *no[] = {"no", "false", "off", "0"};
        for (int i = 0; i < 4; i++) {
            if (!strcasecmp(value, yes[i])) return *(int *)f = 1, 0;
            if (!strcasecmp(value, no[i])) return *(int *)f = 0, 0;
        }
        snprintf(err, cap, "%s: '%s' is not yes or no", p->name, value);
        return -1;
    }
    case TS_PT_RGB: {
        for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
            if (!strcasecmp(value, named[i].name)) return *(uint32_t *)f = named[i].rgb, 0;
        const char *h = value[0] == '#' ? value + 1 : value;
        /* Exactly six hex digits: strtoul alone would take signs, "0x" and spaces. */
        int hex = strlen(h) == 6;
        for (int i = 0; hex && i < 6; i++) hex = isxdigit((unsigned char)h[i]) != 0;
        unsigned long v = hex ? strtoul(h, &end, 16) : 0;
        if (!hex) {
            snprintf(err, cap, "%s: '%s' is not a colour (#rrggbb or a name such as grey)", p->name,
                     value);
            return -1;
        }
        *(uint32_t *)f = (uint32_t)v;
        return 0;
    }
    case TS_PT_ENUM: {
        for (int i = 0; p->choices[i]; i++)
            if (!strcasecmp(value, p->choices[i])) return *(int *)f = i, 0;
        size_t n = (size_t)snprintf(err, cap, "%s: '%s' is not one of", p->name, value);
        for (int i = 0; p->choices[i] && n < cap; i++)
            n += (size_t)snprintf(err + n, cap - n, "%s %s", i ? "," : "", p->choices[i]);
        return -1;
    }
    case TS_PT_END:
        break;
    }
    snprintf(err, cap, "%s: unknown parameter type", p->name);
    return -1;
}

void ts_param_format(const ts_param *p, const void *params, char *out, size_t cap) {
    const char *f = (const char *)params + p->offset;
    switch (p->type) {
    case TS_PT_F32:
        snprintf(out, cap, "%g", (double)*(const float *)f);
        break;
    case TS_PT_INT:
        snprintf(out, cap, "%d", *(const int *)f);
        break;
    case TS_PT_BOOL:
        snprintf(out, cap, "%s", *(const int *)f ? "yes" : "no");
        break;
    case TS_PT_RGB:
        snprintf(out, cap, "#%06x", (unsigned)*(const uint32_t *)f);
        break;
    case TS_PT_ENUM:
        snprintf(out, cap, "%s", p->choices[*(const int *)f]);
        break;
    case TS_PT_END:
        snprintf(out, cap, "?");
        break;
    }
}

uint64_t ts_params_hash(const ts_param *t, const void *params, uint64_t h) {
    if (!h) h = 1469598103934665603ull;
    for (; t->type != TS_PT_END; t++) {
        size_t n = t->type == TS_PT_F32   ? sizeof(float)
                   : t->type == TS_PT_RGB ? sizeof(uint32_t)
                                          : sizeof(int);
        const unsigned char *b = (const unsigned char *)params + t->offset;
        for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    }
    return h;
}
