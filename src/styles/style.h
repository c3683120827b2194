/* Styles ("looks"): a small text file that sets the parameters of each render stage, the crops and
 * output sizes to render, a name and a one-line description. The format is documented in
 * docs/styles.md; the built-in looks are the files in styles/, embedded at build time.
 *
 * A style holds one parameter block per render stage the library has (ts_styles_stage_at): the
 * stage's defaults, then whatever the file set. Section names are stage names and keys are the
 * names in the stage's parameter table, so a new stage or parameter needs no change here.
 *
 * Errors go to ctx (NULL allowed: then ts_last_error()) and name the file, line and field:
 *   corporate.style:12: background.color: 'x12' is not a colour (#rrggbb or a name such as grey)
 */
#ifndef TS_STYLES_STYLE_H
#define TS_STYLES_STYLE_H

#include <stddef.h>

#include "render/render.h"
#include "trueshot.h"

/* The format version written by this library. Older files are upgraded one version at a time
 * when loaded (see docs/styles.md, "Versions"). */
#define TS_STYLE_VERSION 2

/* Limits on hostile or mistaken input. */
#define TS_STYLE_MAX_BYTES (256 * 1024) /* a style file is a few hundred bytes */
#define TS_STYLE_MAX_LINE 1024          /* characters per line, without the newline */
#define TS_STYLE_MAX_OUTPUTS 16
#define TS_STYLE_NAME_MAX 64 /* name, stage and key names, including the NUL */
#define TS_STYLE_DESC_MAX 240

/* One image to render for a look: a frame template (the frame stage's crop choice) and a size. */
typedef struct ts_style_output {
    char crop[16]; /* the frame template's name, e.g. "square", "4x5" */
    int width;     /* pixels */
    int height;    /* pixels; 0 when the file gave only the width (the template's aspect rules) */
} ts_style_output;

typedef struct ts_style ts_style; /* opaque; changed only by ts_style_set */

/* A built-in look: its id (the file name in styles/ without .style), display name and one-line
 * description. */
typedef struct ts_style_info {
    const char *id, *name, *description;
} ts_style_info;

/* --- Stage registry ---------------------------------------------------------------------- */

/* The render stage whose section name is name, or NULL. */
const ts_stage *ts_styles_stage(const char *name);
/* The i-th registered stage in render order (frame first), or NULL past the last. */
const ts_stage *ts_styles_stage_at(int i);

/* --- Loading ----------------------------------------------------------------------------- */

/* Parses a style from text (len bytes; NUL bytes are an error, no terminator needed). source is
 * the file name used in messages ("mine.style"). On success *out is a new style (free it with
 * ts_style_free); on failure *out is untouched and the message names source, line and field.
 * Returns TS_OK, TS_ERR_FORMAT (the text is not a valid style), TS_ERR_ARGUMENT or TS_ERR_NOMEM. */
ts_status ts_style_parse(ts_ctx *ctx, const char *text, size_t len, const char *source,
                         ts_style **out);
/* Reads and parses the style file at path (named in messages as given). Adds TS_ERR_READ. */
ts_status ts_style_load_file(ts_ctx *ctx, const char *path, ts_style **out);
/* Loads the built-in look id ("corporate", "law-finance"; case and - or _ don't matter).
 * TS_ERR_ARGUMENT, with the list of built-ins, when there is none of that name. */
ts_status ts_style_load_builtin(ts_ctx *ctx, const char *id, ts_style **out);
/* A built-in id, or a path when spec contains '/' or ends in ".style". */
ts_status ts_style_load(ts_ctx *ctx, const char *spec, ts_style **out);

void ts_style_free(ts_style *s); /* NULL-safe */

/* The built-in looks, in a fixed order (alphabetical by id): *out points to a static array
 * (valid for the life of the process). Returns the count. */
int ts_styles_builtins(const ts_style_info **out);

/* --- Reading a style --------------------------------------------------------------------- */

/* Borrowed strings, valid while s lives. source is the file name given when loading. */
const char *ts_style_name(const ts_style *s);
const char *ts_style_description(const ts_style *s);
const char *ts_style_source(const ts_style *s);

/* The parameter block of a stage (laid out as stage->table describes: defaults, then the file's
 * values), or NULL when no registered stage has that name. Borrowed. */
const void *ts_style_params(const ts_style *s, const char *stage);
/* 1 when the file itself set stage.key (rather than leaving the default), else 0. */
int ts_style_is_set(const ts_style *s, const char *stage, const char *key);

/* The outputs to render: at least one (a file without outputs renders the frame section's crop
 * and width once). */
int ts_style_output_count(const ts_style *s);
const ts_style_output *ts_style_output_at(const ts_style *s, int i);
/* Fills params (a frame parameter block, ts_stage_frame.params_size bytes) for output i: the
 * style's frame block with that output's crop and width. */
ts_status ts_style_frame_params(ts_ctx *ctx, const ts_style *s, int i, void *params);

/* --- Changing and writing ---------------------------------------------------------------- */

/* Sets one parameter ("retouch", "strength", "0.2"), validated as in a file: for the command
 * line's overrides (--retouch, --background). TS_ERR_ARGUMENT with "stage.key: reason". */
ts_status ts_style_set(ts_ctx *ctx, ts_style *s, const char *stage, const char *key,
                       const char *value);

/* The style as text in the current format version: the header, outputs, then one section per
 * stage with the parameters the file set, in table order. Parsing it gives the same style.
 * Returns a malloc'd string (free it) or NULL when out of memory. */
char *ts_style_format(const ts_style *s);

#endif
