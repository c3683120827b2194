/* export: the last render stage. Writes the canvas as a file people can upload: JPEG, PNG, WebP
 * or AVIF, sRGB with the sRGB ICC profile embedded, an optional file-size cap, and honest
 * metadata — nothing carried over from the source photo (no GPS, no camera serials, no maker
 * notes), plus an XMP packet that says what was done (docs/export-and-verify.md). Files are
 * written atomically: a temporary name in the same folder, then rename. */
#ifndef TS_RENDER_EXPORT_H
#define TS_RENDER_EXPORT_H

#include <stddef.h>

#include "render/render.h"

enum { TS_EXPORT_JPEG, TS_EXPORT_PNG, TS_EXPORT_WEBP, TS_EXPORT_AVIF, TS_EXPORT_FORMATS };

typedef struct export_params {
    int format;      /* TS_EXPORT_* */
    int quality;     /* 1..100; 0: the format's default (JPEG 90, WebP 85, AVIF 60) */
    int max_kb;      /* file-size cap in KiB (1024 bytes); 0: no cap */
    int min_quality; /* lowest quality the cap may go to; 0: the format's floor (JPEG 60, WebP
                        55, AVIF 35) */
    int min_side;    /* the cap never scales the shorter side below this (400: LinkedIn) */
    int effort;      /* encoder CPU effort 0..9 (WebP uses 0..6, AVIF 0..9; JPEG and PNG ignore
                        it): more is slower and a little smaller */
} export_params;

extern const char *const ts_export_format_names[]; /* "jpeg", "png", "webp", "avif", NULL */

/* What ts_export_write_ex did, for the report. */
typedef struct ts_export_result {
    int width, height;    /* of the written file */
    int quality;          /* used (0 for PNG) */
    size_t bytes;         /* size of the written file */
    double scale;         /* written size / canvas size (1 unless the cap had to scale down) */
    double m[6];          /* photo -> written file transform: job->m times scale */
    int over_cap;         /* 1 when even min_quality at min_side could not meet max_kb (the file
                             is then written at that smallest setting and a note says so) */
    char source_type[32]; /* the IPTC DigitalSourceType written: "algorithmicallyEnhanced" or
                             "compositeSynthetic" */
} ts_export_result;

/* Writes job->rgb to path as p describes (borrowed). The path's extension must match the format
 * (.jpg/.jpeg, .png, .webp, .avif). An existing file at path is replaced atomically, unless it is
 * the job's input photo, which is refused (inputs are never overwritten). When the cap needs
 * lower quality or a smaller size, a note on the job says so. r (may be NULL) receives what
 * was done. Returns TS_OK; TS_ERR_ARGUMENT (bad parameters, extension, input path),
 * TS_ERR_FORMAT (no encoder for the format in this libvips), TS_ERR_WRITE (the message names
 * the path and the reason; no file or temporary file is left behind) or TS_ERR_INTERNAL. */
ts_status ts_export_write_ex(ts_render_job *job, const export_params *p, const char *path,
                             ts_export_result *r);
ts_status ts_export_write(ts_render_job *job, const export_params *p, const char *path);

/* Whether this libvips can write the format; when not, why (cap bytes) says so. */
int ts_export_available(int format, char *why, size_t cap);

/* The usual file extension of the format, with its dot (".jpg", ".png", ".webp", ".avif"). */
const char *ts_export_extension(int format);

/* The XMP packet ts_export_write puts in the file for this job (with one optional extra edit,
 * may be NULL), as a NUL-terminated string the caller frees with g_free. */
char *ts_export_xmp(const ts_render_job *job, const char *extra_edit);

/* What ts_export_xmp wrote, as read back from a file's XMP packet (ts_xmp_read). */
typedef struct ts_xmp_fields {
    char source_type[64];   /* the IPTC DigitalSourceType code, e.g. "compositeSynthetic" */
    char creator_tool[64];  /* e.g. "trueshot 0.1.0" */
    char description[1024]; /* dc:description, the edits as a sentence (cut short if longer) */
    int n_edits;            /* items in the trueshot:Edits list */
} ts_xmp_fields;

/* Reads the fields above from an XMP packet (len bytes, need not be NUL-terminated): fields not
 * found are empty / 0. Any bytes are safe to pass (fuzz/fuzz_xmp.c). */
void ts_xmp_read(const char *xmp, size_t len, ts_xmp_fields *f);

/* Writes len bytes to path atomically: a new temporary file in path's folder, written,
 * flushed to disk, then renamed over path. On any failure the temporary file is removed,
 * path is untouched, and ctx's error names path and the reason (TS_ERR_WRITE). */
ts_status ts_write_file_atomic(ts_ctx *ctx, const char *path, const void *data, size_t len);

#endif
