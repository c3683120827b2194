/* Library-internal definitions shared by the concerns under src/. */
#ifndef TS_CORE_INTERNAL_H
#define TS_CORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <vips/vips.h>

#include "trueshot.h"
#include "nn/runtime.h"

struct ts_ctx {
    ts_ctx_options opt;
    char model_dir[1024];
    char err[512];
    ts_nn_model *models[TS_MODEL_COUNT];
    ts_nn_runtime *runtimes[TS_MODEL_COUNT];
    ts_nn_runtime *second[TS_MODEL_COUNT]; /* a second runtime of the same model, for a thread */
    struct ts_geom *geom;                  /* canonical face geometry, loaded on first pose fit */
    /* Models being loaded on a thread of their own (ts_ctx_preload); joined by the ctx's first
     * use of a model, a copy or its freeing. */
    pthread_t preload;
    bool preloading;
    unsigned preload_mask; /* 1 << ts_model_id; TS_PRELOAD_SECOND_MESH: the mesh's second too */
};

/* Built with AddressSanitizer (gcc or clang): what hands memory around behind malloc's back
 * (heap trimming, the render stages' buffer pool) stands aside, so it sees every access. */
#if defined(__SANITIZE_ADDRESS__)
#define TS_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TS_UNDER_ASAN 1
#endif
#endif

struct ts_photo {
    atomic_int refs;
    char path[1024];
    VipsImage *header; /* the file opened for its header; decoded lazily */
    int width, height; /* after EXIF orientation */
    /* The analysis copy: decoded once with shrink-on-load, sRGB, 3-band uchar, in memory;
     * built on first use under lock. */
    pthread_mutex_t lock;
    VipsImage *analysis;
    VipsImage *full; /* full-resolution decode for rendering, on first use */
    /* Face analysis, cached under face_lock (src/face/analysis.c); a separate lock because
     * computing it takes `lock` for the analysis copy. */
    pthread_mutex_t face_lock;
    bool faces_done, subject_done;
    ts_face *faces;
    int n_faces;
    ts_face_analysis *subject;
    float subject_roi[4];    /* the mesh's final crop: cx, cy, size, rotation (photo pixels) */
    float subject_src_scale; /* pixels per photo pixel of the image that crop came from */
    float (*seeded_ref)[2];  /* the identity check's reading of the photo itself (verify.c) */
    ts_status subject_status;
    char subject_error[512];
    double analysis_scale; /* analysis pixels per photo pixel */
    int shrink;            /* the photo is the file decoded at 1/shrink (ts_photo_open_shrunk) */
    /* The photo turned upside down beyond its EXIF orientation (0 or 180 degrees): decided by
     * the first face detection (face/detect.c) and applied to every decode of the file
     * (ts_photo_decoded). */
    atomic_int turn;
    atomic_int turn_tried; /* the other way up has been tried (face/detect.c) */
    VipsImage *retired[8]; /* copies made before a turn: borrowed pointers stay valid */
    VipsImage *small;      /* the analysis copy fitted in TS_SMALL_SIDE: detector inputs */
};

/* Longest side the analysis copy may have. The copy is the photo shrunk by the smallest power
 * of two that brings it under this, which is what JPEG shrink-on-load decodes directly (no
 * resampling pass): a 12-MP photo decodes at 1/4, still ~300 px across a headshot's face crop. */
#define TS_ANALYSIS_SIDE 1280
/* Longest side of the small copy the detectors' inputs (128 and 192 px) are made from: one
 * resize of the analysis copy instead of one per detector. */
#define TS_SMALL_SIDE 256

/* The photo's analysis copy (borrowed: valid while p lives) and its scale. NULL with the ctx
 * error set on failure. */
VipsImage *ts_photo_analysis(ts_ctx *ctx, ts_photo *p, double *scale);

/* ts_photo_tensor of a part of the photo: area = {x, y, w, h} in photo pixels, sampled from the
 * analysis copy (rounded out to its whole pixels, clipped to it); xform maps tensor pixels to
 * photo pixels as ts_photo_tensor's does. TS_ERR_ARGUMENT when the area is off the photo. */
ts_status ts_photo_tensor_area(ts_ctx *ctx, ts_photo *p, const double area[4], int w, int h,
                               float lo, float hi, float *dst, float xform[4]);

/* The whole photo decoded once at full resolution for rendering: EXIF orientation applied, sRGB,
 * 3-band uchar, in memory (borrowed: valid while p lives). NULL with the ctx error set. */
VipsImage *ts_photo_full(ts_ctx *ctx, ts_photo *p);
/* The same without a ctx, for a worker thread: NULL with the reason (one line) in why. */
VipsImage *ts_photo_full_try(ts_photo *p, char *why, size_t cap);

/* in, a decode of p's file with its EXIF orientation applied, turned as p is (p->turn): a new
 * reference to in when it is not turned. NULL with the vips error set. Every decode of the
 * file goes through this. */
VipsImage *ts_photo_decoded(ts_photo *p, VipsImage *in);

/* ts_photo_open for a photo that is the file decoded at 1/shrink (2, 4 or 8; 1: the file): its
 * size, pixels and coordinates are the shrunk decode's. JPEG decodes shrunk (DCT scaling), other
 * formats are resized to the size a JPEG decoder would give (rounded up). For renders that need
 * no more than that (cli/make.c). */
ts_status ts_photo_open_shrunk(ts_ctx *ctx, const char *path, int shrink, ts_photo **out);

/* Gives dst (the same file as src, the same way up) src's analysis copy when dst's would be the
 * same decode of the file (a JPEG's DCT shrink depends only on the copy's size), instead of
 * decoding it again. Returns 1 when shared; 0 when not (src has none yet, dst has one, or they
 * differ). */
int ts_photo_share_analysis(ts_photo *dst, ts_photo *src);

/* Gives dst (the same file as src, opened shrunk or not) src's face analysis, its coordinates
 * scaled to dst's pixels, instead of analysing dst again: when src's subject was measured on its
 * analysis copy and dst's analysis copy is the same decode of the file (the same size: a JPEG's
 * DCT shrink depends only on the copy's size), dst's own analysis would measure the same pixels
 * and find the same faces, to the scaling. Returns 1 when adopted; 0 when it was not (src not
 * analysed, a face from another decode, dst analysed already, no face), and dst analyses
 * itself as before. */
int ts_photo_adopt_analysis(ts_ctx *ctx, ts_photo *dst, ts_photo *src);

/* Says p is upright (a webcam frame): face detection will not try it the other way up, which
 * costs a second detection on frames whose faces score low (face/detect.c). */
void ts_photo_known_upright(ts_photo *p);

/* Turns p by 180 degrees more: the analysis copy turned in memory, the small copy and the full
 * decode dropped to be made again (kept until p goes, for callers holding them borrowed). For
 * face detection (face/detect.c), before any face is cached on p. */
ts_status ts_photo_turn_over(ts_ctx *ctx, ts_photo *p);

/* Sets ctx's error message (printf-style) and returns s, so callers can write
 * `return ts_fail(ctx, TS_ERR_READ, "...", ...)`. The message is set once, where detected. */
/* libvips' last error message on one line (newlines and trailing blanks removed), copied to buf
 * and cleared from libvips; returns buf. For messages such as "cannot write X: <why>". */
const char *ts_vips_why(char *buf, size_t cap);

ts_status ts_fail(ts_ctx *ctx, ts_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The error for a photo whose decode failed (why: libvips' reason, one line): TS_ERR_FORMAT, with
 * a message that says so in words when the file stops before its picture does. Decodes are made
 * with fail_on = truncated: a cut-short file read on would give a headshot half grey. */
ts_status ts_photo_decode_failed(ts_ctx *ctx, const char *path, const char *why);

/* Starts libvips once per process. Returns 0 or -1. */
int ts_vips_init(void);

/* The runtime for a model, loading it on first use. NULL with the ctx error set on failure. */
ts_nn_runtime *ts_ctx_runtime(ts_ctx *ctx, ts_model_id id);

/* A copy of ctx for a worker thread: the same models and runtimes, its own error message, none
 * of the second runtimes (a copy must not make one: it would be lost with the copy); with mesh,
 * that runtime in the face landmark model's place (the second one, for a thread that runs the
 * model while the owner of ctx runs it too). Load what the thread needs before copying. */
void ts_ctx_shadow(ts_ctx *ctx, ts_nn_runtime *mesh, ts_ctx *out);

/* Loads the models in mask (1 << ts_model_id each; TS_PRELOAD_SECOND_MESH adds the face mesh's
 * second runtime) on a thread of its own while the caller goes on with work that uses no model
 * (decoding the photo for analysis): loading them took ~20 ms of `make`'s critical path. The
 * ctx's first use of a model waits for the thread; a model it could not load is loaded again
 * then, and its error said there. */
#define TS_PRELOAD_SECOND_MESH (1u << 31)
void ts_ctx_preload(ts_ctx *ctx, unsigned mask);

/* A second runtime of the same model (its own buffers, the same weights), made on first use, so
 * that two threads can run the model at once: a copy of ctx with it in runtimes[id] serves the
 * second thread. Call it on the thread that owns ctx. NULL with the ctx error set on failure. */
ts_nn_runtime *ts_ctx_runtime_second(ts_ctx *ctx, ts_model_id id);

/* Hands the memory malloc holds free back to the system (glibc's malloc_trim), after work
 * that freed large buffers on a thread of its own (each thread's arena keeps what it freed).
 * Does nothing elsewhere, and nothing under AddressSanitizer: its allocator is not glibc's, and
 * glibc's trim then walks arenas nobody set up (it crashed the studio under test). */
void ts_heap_trim(void);

/* Whether the AVX2 paths of the pixel loops may run: the CPU has AVX2, and the
 * environment does not set TRUESHOT_NO_AVX2 (to anything but 0), which the test suite sets to
 * run the SSE2 and scalar paths that give the same results on any x86-64. */
int ts_cpu_avx2(void);

#endif
