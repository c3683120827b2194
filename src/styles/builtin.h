/* The built-in looks, embedded at build time: src/styles/embed.c turns styles/NAME.style files into
 * a C file defining these (see src/styles/meson.build). */
#ifndef TS_STYLES_BUILTIN_H
#define TS_STYLES_BUILTIN_H

#include <stddef.h>

typedef struct ts_style_builtin {
    const char *id;   /* the file name without .style */
    const char *text; /* the file's bytes, NUL-terminated */
    size_t len;       /* without the terminator */
} ts_style_builtin;

/* Sorted by id. */
extern const ts_style_builtin ts_style_builtin_files[];
extern const int ts_style_builtin_file_count;

#endif
