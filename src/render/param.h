/* Parameter tables: each render stage declares its parameters once (name, type, range, default,
 * description) and that one table drives defaults, validation, style files, CLI flags, the
 * studio's sliders and the cache key (STYLE.md, after darktable's modules). */
#ifndef TS_RENDER_PARAM_H
#define TS_RENDER_PARAM_H

#include <stddef.h>
#include <stdint.h>

typedef enum ts_param_type {
    TS_PT_END = 0,
    TS_PT_F32,  /* float in [min, max] */
    TS_PT_INT,  /* int in [min, max] */
    TS_PT_BOOL, /* int 0/1; "yes"/"no", "true"/"false", "on"/"off", 1/0 */
    TS_PT_RGB,  /* uint32_t 0xRRGGBB; "#rrggbb" */
    TS_PT_ENUM, /* int index into choices */
} ts_param_type;

typedef struct ts_param {
    const char *name; /* key in style files and on the command line */
    const char *description;
    ts_param_type type;
    size_t offset;
    double min, max, dflt;      /* F32, INT, BOOL, ENUM (dflt = index) */
    uint32_t dflt_rgb;          /* RGB */
    const char *const *choices; /* ENUM: NULL-terminated */
} ts_param;

#define TS_PARAM_F32(T, f, desc, lo, hi, def)                                                      \
    { #f, desc, TS_PT_F32, offsetof(T, f), lo, hi, def, 0, NULL }
#define TS_PARAM_INT(T, f, desc, lo, hi, def)                                                      \
    { #f, desc, TS_PT_INT, offsetof(T, f), lo, hi, def, 0, NULL }
#define TS_PARAM_BOOL(T, f, desc, def)                                                             \
    { #f, desc, TS_PT_BOOL, offsetof(T, f), 0, 1, def, 0, NULL }
#define TS_PARAM_RGB(T, f, desc, def)                                                              \
    { #f, desc, TS_PT_RGB, offsetof(T, f), 0, 0, 0, def, NULL }
#define TS_PARAM_ENUM(T, f, desc, names, def)                                                      \
    { #f, desc, TS_PT_ENUM, offsetof(T, f), 0, 0, def, 0, names }
#define TS_PARAM_END                                                                               \
    { NULL, NULL, TS_PT_END, 0, 0, 0, 0, 0, NULL }

/* Fills params with every default of table. */
void ts_params_defaults(const ts_param *table, void *params);
/* The entry named name, or NULL. */
const ts_param *ts_param_find(const ts_param *table, const char *name);
/* Parses value (text, as in a style file) into the field; range-checked. On failure writes a
 * one-line reason (without the file/line, which the caller adds) and returns -1. */
int ts_param_set(const ts_param *p, void *params, const char *value, char *err, size_t cap);
/* Writes the field's value as text (the inverse of ts_param_set). */
void ts_param_format(const ts_param *p, const void *params, char *out, size_t cap);
/* A 64-bit hash of the values (for cache keys), FNV-1a over the table's fields in order. */
uint64_t ts_params_hash(const ts_param *table, const void *params, uint64_t seed);

#endif
