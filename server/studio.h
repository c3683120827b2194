/* The local studio: an HTTP server on the loopback interface and the web page it serves
 * (server/API.md is the contract; docs/studio.md the user's guide).
 *
 *   cli/studio.c     options, --help                  -> studio_run()
 *   server.c         the daemon: security checks on every request, routing, lifecycle
 *   api.c            the endpoints (photos, styles, preview, render, files, zip, forget)
 *   session.c        the session directory and its photo table, analysis cached per photo
 *   look.c           rendering a look for a preview or a file (brightness added to the stages)
 *   live.c           webcam coaching frames
 *   embed_web.c      build tool: server/web/ files -> a C file (studio_web_files) */
#ifndef TS_STUDIO_H
#define TS_STUDIO_H

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "render/render.h"
#include "trueshot.h"
#include "verify/verify.h"

typedef struct studio_options {
    int port;            /* 0: a free port */
    int open_browser;    /* xdg-open when a desktop is present */
    int idle_timeout_s;  /* exit after this long without a request (0: never) */
    long max_upload;     /* bytes per upload */
    int max_photos;      /* photos held at once */
    uint64_t max_pixels; /* per photo */
} studio_options;

/* Runs the studio until a signal, the idle timeout or a fatal error. Prints the URL line on
 * stdout and progress on stderr. Returns the process exit code. */
int studio_run(const studio_options *opt);

/* ---- Embedded page files (generated from server/web/ by embed_web.c) ---- */
typedef struct studio_web_file {
    const char *path; /* "/app.js" ("/" for index.html) */
    const char *mime;
    const unsigned char *data;
    size_t len;
} studio_web_file;
extern const studio_web_file studio_web_files[];
extern const int studio_web_count;

/* ---- Contexts: one ts_ctx per worker at a time (a ts_ctx is not re-entrant) ---- */
ts_ctx *studio_ctx_get(void);
void studio_ctx_put(ts_ctx *ctx);

/* ---- Session: photos and rendered files ---- */

#define STUDIO_ID_LEN 13 /* ids are 12 hex characters + NUL */

/* Work done once per photo, shared by every preview and render of it. */
typedef struct studio_analysis {
    ts_photo *photo; /* may be NULL when the photo has no usable face */
    const ts_face_analysis *face;
    ts_matte *matte;
    ts_verify_floor floor; /* only for full-resolution renders */
    ts_render_cache *cache;
    ts_status status;
    char error[300];
    int users; /* renders using it now (under the photo's lock): it is not dropped meanwhile */
    long used; /* when it was last asked for, for dropping the least recent */
} studio_analysis;

typedef struct studio_photo {
    int refs; /* under the session lock */
    char id[STUDIO_ID_LEN];
    char name[256];
    char path[1200];    /* the upload as sent */
    char preview[1200]; /* a copy with the long side at most 1600 px, for previews */
    int width, height;
    json_t *check; /* the `trueshot check --json` object of this photo */
    ts_check_report *report;
    long seq; /* upload order */
    /* Lazily computed analyses of the full photo and of the preview copy, each under its own
     * lock, which also guards the analysis's render cache during a frame stage. */
    pthread_mutex_t full_lock, prev_lock;
    studio_analysis full, prev;
} studio_photo;

typedef struct studio_file {
    char id[STUDIO_ID_LEN];
    char name[160]; /* download name, e.g. "linkedin-square.jpg" */
    char path[1200];
    char editmap[1200]; /* "" when none */
    char mime[32];
} studio_file;

int studio_session_init(const char *dir, const studio_options *opt);
const char *studio_session_dir(void);
/* Adds a photo from a saved file (the caller wrote path). On failure returns an HTTP status and
 * fills err; on success 0 and *out (a new reference). */
int studio_photo_add(const char *name, const char *path, studio_photo **out, char *err, size_t cap);
studio_photo *studio_photo_get(const char *id); /* a new reference or NULL */
void studio_photo_put(studio_photo *p);
int studio_photo_remove(const char *id); /* 0 or -1 (no such photo) */
int studio_photo_count(void);
int studio_photo_limit(void); /* --max-photos */
/* The list endpoint's JSON (ranked, best marked). */
json_t *studio_photos_json(void);
json_t *studio_photo_json(const studio_photo *p, int best);
/* The analysis of the full photo (preview = 0) or of the preview copy (1), computed on first
 * use, then read-only until studio_analysis_put. To bound memory, only the most recently used
 * few analyses are kept (one of a full photo: its matte is at full resolution); the others are
 * dropped when not in use and computed again when needed. */
studio_analysis *studio_analysis_get(ts_ctx *ctx, studio_photo *p, int preview);
void studio_analysis_put(studio_photo *p, int preview);
/* Locks (lock_it = 1) or unlocks that analysis's render cache, which one frame stage at a time
 * may use. */
void studio_frame_lock(studio_photo *p, int preview, int lock_it);

/* Rendered files. */
int studio_file_add(const studio_file *f); /* copies f; 0 or -1 */
int studio_file_find(const char *id, studio_file *out);
int studio_file_list(studio_file **out); /* malloc'd copy, count */
/* Deletes every file of the session (the empty directory stays); returns how many. */
int studio_forget(void);
void studio_session_end(void); /* removes the directory */
/* A fresh random id (12 hex characters). */
void studio_new_id(char id[STUDIO_ID_LEN]);
/* The photo check JSON object of one report, as `trueshot check --json` writes it per photo
 * (docs/check-json.md); ms: how long the check took. */
json_t *studio_check_json(const ts_check_report *r, const char *name, int w, int h, double ms);

/* ---- Looks ---- */

typedef struct studio_look_params {
    char style[64];
    char background[32]; /* "" or "style": the look's own */
    char crop[16];       /* "" or "style": the look's own */
    double retouch;      /* < 0: the look's own */
    double brightness;   /* -1..1: exposure offset of brightness/2 stops */
    int before;          /* preview only: framing without edits */
    char format[8];      /* file only: jpeg, png, webp, avif */
} studio_look_params;

/* The names the studio accepts (NULL-terminated) and the index of s in such a list, or -1. */
extern const char *const studio_crops[], *const studio_kinds[], *const studio_formats[];
int studio_index_of(const char *const *list, const char *s);

/* The display name of an upload from its X-Filename header: %XX decoded, control characters
 * and slashes turned to '_', cut to valid UTF-8 (it goes into JSON), "photo" when empty. out
 * holds at most cap - 1 bytes. Parses client input: fuzzed by fuzz/fuzz_studio.c. */
void studio_filename_from(const char *in, char *out, size_t cap);

/* Parses and validates a look's parameters from key/value lookups; returns 0 or -1 with err.
 * Parses client input: fuzzed by fuzz/fuzz_studio.c. */
typedef const char *(*studio_lookup)(void *user, const char *key);
int studio_look_parse(studio_lookup get, void *user, studio_look_params *lp, char *err, size_t cap);

/* A preview JPEG (long side <= 720) in a g_malloc'd buffer. Returns an HTTP status (200) and
 * fills err otherwise. */
int studio_preview(studio_photo *p, const studio_look_params *lp, void **jpeg, size_t *len,
                   char *err, size_t cap);
/* Drops every cached preview ("forget"). */
void studio_preview_cache_clear(void);
/* A full-resolution file with verification and edit map; returns 201 with the JSON result in
 * *out, or an HTTP status with err (422 when the identity check fails). */
int studio_render(ts_ctx *ctx, studio_photo *p, const studio_look_params *lp, json_t **out,
                  char *err, size_t cap);

/* ---- Live coaching ---- */
/* Analyses one webcam frame (JPEG bytes, never written to disk). Returns 200 and the JSON, or an
 * HTTP status with err. */
int studio_live(ts_ctx *ctx, const void *jpeg, size_t len, json_t **out, char *err, size_t cap);

#endif
