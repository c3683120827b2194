/* The session: a 0700 folder under the temp dir holding the uploads, their preview copies and
 * the rendered files, plus the tables that name them. Each photo's check report is made on
 * upload; its analyses (face, matte, render cache) on first preview or render, once. */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdatomic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"
#include "quality/check_json.h"
#include "render/prepare.h"
#include "studio.h"

static char session_dir[1024];
static studio_options opts;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static studio_photo **photos;
static int n_photos;
static long seq;
static studio_file *files;
static int n_files, cap_files;
static atomic_int warming; /* analyses running in the background */

int studio_session_init(const char *dir, const studio_options *opt) {
    snprintf(session_dir, sizeof session_dir, "%s", dir);
    opts = *opt;
    photos = calloc((size_t)(opt->max_photos > 0 ? opt->max_photos : 1), sizeof *photos);
    return photos ? 0 : -1;
}

const char *studio_session_dir(void) {
    return session_dir;
}

void studio_new_id(char id[STUDIO_ID_LEN]) {
    unsigned char r[6];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        /* Ids only need to be unique within the session. */
        static long fallback;
        long v = __atomic_add_fetch(&fallback, 1, __ATOMIC_SEQ_CST);
        snprintf(id, STUDIO_ID_LEN, "%012lx", v);
        return;
    }
    for (int i = 0; i < 6; i++) snprintf(id + 2 * i, 3, "%02x", r[i]);
}

/* ---- check JSON: the per-photo object of `trueshot check --json` (docs/check-json.md) ---- */

json_t *studio_check_json(const ts_check_report *r, const char *name, int w, int h, double ms) {
    json_t *o = json_pack("{s:s, s:i, s:i}", "photo", name, "width", w, "height", h);
    ts_check_json_fill(o, r);
    json_object_set_new(o, "time_ms", json_real(round(ms * 10) / 10));
    return o;
}

/* ---- photos ---- */

/* Frees what an analysis holds; it is computed again on next use. */
static void analysis_drop(studio_analysis *a) {
    ts_render_cache_free(a->cache); /* before the photo and matte it points to */
    ts_matte_free(a->matte);
    ts_photo_unref(a->photo);
    a->cache = NULL, a->matte = NULL, a->photo = NULL, a->face = NULL;
    a->status = TS_OK, a->error[0] = 0;
}

static void photo_free(studio_photo *p) {
    analysis_drop(&p->full);
    analysis_drop(&p->prev);
    ts_check_report_free(p->report);
    json_decref(p->check);
    pthread_mutex_destroy(&p->full_lock);
    pthread_mutex_destroy(&p->prev_lock);
    free(p);
}

void studio_photo_put(studio_photo *p) {
    if (!p) return;
    pthread_mutex_lock(&lock);
    int last = --p->refs == 0;
    pthread_mutex_unlock(&lock);
    if (last) photo_free(p);
}

studio_photo *studio_photo_get(const char *id) {
    studio_photo *got = NULL;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < n_photos && !got; i++)
        if (!strcmp(photos[i]->id, id)) got = photos[i], got->refs++;
    pthread_mutex_unlock(&lock);
    return got;
}

int studio_photo_limit(void) {
    return opts.max_photos;
}

int studio_photo_count(void) {
    pthread_mutex_lock(&lock);
    int n = n_photos;
    pthread_mutex_unlock(&lock);
    return n;
}

/* A copy of the photo for previews, long side at most 1600 px, orientation applied, as a vips
 * file (no encode/decode loss, opens instantly). */
static int make_preview_copy(studio_photo *p) {
    VipsImage *t = NULL;
    snprintf(p->preview, sizeof p->preview, "%s/%s-preview.v", session_dir, p->id);
    int ok = vips_thumbnail(p->path, &t, 1600, "size", VIPS_SIZE_DOWN, NULL) == 0 &&
             vips_image_write_to_file(t, p->preview, NULL) == 0;
    if (t) g_object_unref(t);
    if (!ok) {
        vips_error_clear();
        snprintf(p->preview, sizeof p->preview, "%s", p->path);
    }
    return ok ? 0 : -1;
}

/* Analyses the preview copy in the background after an upload, so that the first preview of
 * the photo only renders. */
static void *warm(void *arg) {
    studio_photo *p = arg;
    ts_ctx *ctx = studio_ctx_get();
    if (ctx) {
        studio_analysis_get(ctx, p, 1);
        studio_analysis_put(p, 1);
        studio_ctx_put(ctx);
    }
    studio_photo_put(p);
    atomic_fetch_sub(&warming, 1);
    return NULL;
}

int studio_photo_add(const char *name, const char *path, studio_photo **out, char *err,
                     size_t cap) {
    pthread_mutex_lock(&lock);
    int full = n_photos >= opts.max_photos;
    pthread_mutex_unlock(&lock);
    if (full) {
        snprintf(err, cap, "The studio holds at most %d photos: remove one before adding another.",
                 opts.max_photos);
        return 409;
    }
    studio_photo *p = calloc(1, sizeof *p);
    if (!p) return snprintf(err, cap, "Out of memory."), 500;
    p->refs = 1;
    pthread_mutex_init(&p->full_lock, NULL);
    pthread_mutex_init(&p->prev_lock, NULL);
    const char *slash = strrchr(path, '/');
    snprintf(p->id, sizeof p->id, "%.*s", STUDIO_ID_LEN - 1, slash ? slash + 1 : path);
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->path, sizeof p->path, "%s", path);

    ts_ctx *ctx = studio_ctx_get();
    if (!ctx) {
        photo_free(p);
        return snprintf(err, cap, "The studio could not start its analysis."), 500;
    }
    int status = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ts_photo *ph = NULL;
    ts_status st = ts_photo_open(ctx, path, &ph);
    if (st) {
        status = st == TS_ERR_TOO_LARGE ? 422 : st == TS_ERR_FORMAT ? 415 : 400;
        if (st == TS_ERR_TOO_LARGE)
            snprintf(err, cap, "This photo has more than %llu megapixels, the studio's limit.",
                     (unsigned long long)(opts.max_pixels / 1000000));
        else
            snprintf(err, cap, "This file could not be read as a photo: %s", ts_ctx_error(ctx));
    }
    if (!status) {
        p->width = ts_photo_width(ph), p->height = ts_photo_height(ph);
        st = ts_photo_check(ctx, ph, NULL, &p->report);
        if (st) {
            status = st == TS_ERR_MODEL ? 500 : 422;
            snprintf(err, cap, "This photo could not be checked: %s", ts_ctx_error(ctx));
        }
    }
    ts_photo_unref(ph);
    studio_ctx_put(ctx);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!status) {
        p->check =
            studio_check_json(p->report, p->name, p->width, p->height,
                              (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
        make_preview_copy(p);
        pthread_mutex_lock(&lock);
        if (n_photos >= opts.max_photos) {
            status = 409;
            snprintf(err, cap,
                     "The studio holds at most %d photos: remove one before adding another.",
                     opts.max_photos);
        } else {
            p->seq = seq++;
            photos[n_photos++] = p;
            p->refs += 2; /* the table's, and the warming thread's */
        }
        pthread_mutex_unlock(&lock);
        pthread_t t;
        if (!status) atomic_fetch_add(&warming, 1);
        if (!status && pthread_create(&t, NULL, warm, p) == 0)
            pthread_detach(t);
        else if (!status)
            studio_photo_put(p), atomic_fetch_sub(&warming, 1);
    }
    if (status) {
        if (strcmp(p->preview, p->path) && p->preview[0]) unlink(p->preview);
        photo_free(p);
        return status;
    }
    *out = p;
    return 0;
}

int studio_photo_remove(const char *id) {
    studio_photo *gone = NULL;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < n_photos; i++)
        if (!strcmp(photos[i]->id, id)) {
            gone = photos[i];
            memmove(&photos[i], &photos[i + 1], (size_t)(n_photos - i - 1) * sizeof *photos);
            n_photos--;
            break;
        }
    pthread_mutex_unlock(&lock);
    if (!gone) return -1;
    unlink(gone->path);
    if (strcmp(gone->preview, gone->path)) unlink(gone->preview);
    studio_photo_put(gone);
    return 0;
}

json_t *studio_photo_json(const studio_photo *p, int best) {
    return json_pack("{s:s, s:s, s:i, s:i, s:O, s:b}", "id", p->id, "name", p->name, "width",
                     p->width, "height", p->height, "check", p->check, "best", best);
}

json_t *studio_photos_json(void) {
    pthread_mutex_lock(&lock);
    int n = n_photos;
    studio_photo **ps = calloc((size_t)(n ? n : 1), sizeof *ps);
    const ts_check_report **reps = calloc((size_t)(n ? n : 1), sizeof *reps);
    int *order = calloc((size_t)(n ? n : 1), sizeof *order);
    for (int i = 0; ps && i < n; i++) ps[i] = photos[i], ps[i]->refs++;
    pthread_mutex_unlock(&lock);
    json_t *list = json_array(), *root = json_object();
    if (!ps || !reps || !order) n = 0;
    for (int i = 0; i < n; i++) reps[i] = ps[i]->report, order[i] = i;
    char reason[300] = "";
    if (n) ts_check_rank(reps, n, order, reason, sizeof reason);
    int best = n && ts_check_status(reps[order[0]]) == TS_OK ? order[0] : -1;
    for (int i = 0; i < n; i++)
        json_array_append_new(list, studio_photo_json(ps[order[i]], order[i] == best));
    json_object_set_new(root, "photos", list);
    json_object_set_new(root, "best", best >= 0 ? json_string(ps[best]->id) : json_null());
    if (best >= 0 && n > 1) json_object_set_new(root, "best_reason", json_string(reason));
    for (int i = 0; i < n; i++) studio_photo_put(ps[i]);
    free(ps), free(reps), free(order);
    return root;
}

/* ---- analyses ---- */

static void analyse(ts_ctx *ctx, studio_photo *p, studio_analysis *a, int preview) {
    /* The photo is opened again rather than kept from the check: between uploading and the
     * first render, the check's decoded copies would only hold memory. */
    ts_status st = ts_photo_open(ctx, preview ? p->preview : p->path, &a->photo);
    if (!st) st = ts_render_prepare(ctx, a->photo, &a->face, &a->matte, preview ? NULL : &a->floor);
    if (!st) a->cache = ts_render_cache_new();
    a->status = st ? st : TS_OK;
    if (st) snprintf(a->error, sizeof a->error, "%s", ts_ctx_error(ctx));
}

/* How many analyses of each kind are kept: a full photo's holds its full-resolution matte
 * and decode (~100 MB for 12 MP), a preview copy's ~10 MB. */
static const int keep_analyses[2] = {1, 3};
static atomic_long analysis_clock;

/* Drops the analyses of that kind past the most recently used keep_analyses. */
static void drop_old_analyses(int preview) {
    pthread_mutex_lock(&lock);
    int n = n_photos;
    studio_photo **ps = malloc((size_t)(n ? n : 1) * sizeof *ps);
    for (int i = 0; ps && i < n; i++) ps[i] = photos[i], ps[i]->refs++;
    pthread_mutex_unlock(&lock);
    if (!ps) return;
    long *used = calloc((size_t)(n ? n : 1), sizeof *used);
    for (int i = 0; used && i < n; i++) {
        pthread_mutex_t *l = preview ? &ps[i]->prev_lock : &ps[i]->full_lock;
        studio_analysis *a = preview ? &ps[i]->prev : &ps[i]->full;
        pthread_mutex_lock(l);
        used[i] = a->cache ? a->used : 0;
        pthread_mutex_unlock(l);
    }
    for (int i = 0; used && i < n; i++) {
        /* Newer ones than this, held: keep it while fewer than the limit. */
        int newer = 0;
        for (int k = 0; k < n; k++) newer += used[k] > used[i];
        if (!used[i] || newer < keep_analyses[preview]) continue;
        pthread_mutex_t *l = preview ? &ps[i]->prev_lock : &ps[i]->full_lock;
        studio_analysis *a = preview ? &ps[i]->prev : &ps[i]->full;
        pthread_mutex_lock(l);
        if (!a->users && a->cache) {
            analysis_drop(a);
            if (getenv("TRUESHOT_STUDIO_DEBUG"))
                fprintf(stderr, "trueshot studio: dropped the %s analysis of %s\n",
                        preview ? "preview" : "full", ps[i]->id);
        }
        pthread_mutex_unlock(l);
    }
    for (int i = 0; i < n; i++) studio_photo_put(ps[i]);
    free(used);
    free(ps);
    /* Give the freed image buffers back to the system rather than keep them in the heap. */
    ts_heap_trim();
}

studio_analysis *studio_analysis_get(ts_ctx *ctx, studio_photo *p, int preview) {
    pthread_mutex_t *l = preview ? &p->prev_lock : &p->full_lock;
    studio_analysis *a = preview ? &p->prev : &p->full;
    pthread_mutex_lock(l);
    /* Computed once; a failure is kept too (the same photo fails the same way). */
    int fresh = !a->cache && !a->status;
    if (fresh) analyse(ctx, p, a, preview);
    a->users++;
    a->used = atomic_fetch_add(&analysis_clock, 1) + 1;
    pthread_mutex_unlock(l);
    if (fresh) drop_old_analyses(preview);
    return a;
}

void studio_analysis_put(studio_photo *p, int preview) {
    pthread_mutex_t *l = preview ? &p->prev_lock : &p->full_lock;
    pthread_mutex_lock(l);
    (preview ? &p->prev : &p->full)->users--;
    pthread_mutex_unlock(l);
}

void studio_frame_lock(studio_photo *p, int preview, int lock_it) {
    pthread_mutex_t *l = preview ? &p->prev_lock : &p->full_lock;
    if (lock_it)
        pthread_mutex_lock(l);
    else
        pthread_mutex_unlock(l);
}

/* ---- rendered files ---- */

int studio_file_add(const studio_file *f) {
    pthread_mutex_lock(&lock);
    int rc = 0;
    if (n_files == cap_files) {
        int cap = cap_files ? 2 * cap_files : 16;
        studio_file *b = realloc(files, (size_t)cap * sizeof *b);
        if (b)
            files = b, cap_files = cap;
        else
            rc = -1;
    }
    if (!rc) files[n_files++] = *f;
    pthread_mutex_unlock(&lock);
    return rc;
}

int studio_file_find(const char *id, studio_file *out) {
    int rc = -1;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < n_files && rc; i++)
        if (!strcmp(files[i].id, id)) *out = files[i], rc = 0;
    pthread_mutex_unlock(&lock);
    return rc;
}

int studio_file_list(studio_file **out) {
    pthread_mutex_lock(&lock);
    int n = n_files;
    *out = malloc((size_t)(n ? n : 1) * sizeof **out);
    if (*out && n) memcpy(*out, files, (size_t)n * sizeof **out);
    pthread_mutex_unlock(&lock);
    return *out ? n : 0;
}

/* ---- forgetting ---- */

static int removed;

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    if (ftw->level == 0) return 0; /* the session folder itself stays */
    if (flag == FTW_F || flag == FTW_SL) removed++;
    remove(path);
    return 0;
}

static int remove_all(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

int studio_forget(void) {
    pthread_mutex_lock(&lock);
    studio_photo **gone = photos;
    int n = n_photos;
    photos = calloc((size_t)(opts.max_photos > 0 ? opts.max_photos : 1), sizeof *photos);
    n_photos = 0;
    n_files = 0;
    removed = 0;
    /* Files written by a render still in flight land after this; the next forget or the exit
     * removes them. */
    nftw(session_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    int count = removed;
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < n; i++) studio_photo_put(gone[i]);
    free(gone);
    return count;
}

void studio_session_end(void) {
    /* The background analyses use the contexts the caller frees next. */
    for (int i = 0; i < 6000 && atomic_load(&warming) > 0; i++) usleep(10000);
    studio_forget();
    nftw(session_dir, remove_all, 16, FTW_DEPTH | FTW_PHYS);
    free(photos);
    photos = NULL;
    free(files);
    files = NULL;
}
