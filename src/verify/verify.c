/* Authenticity checks: the identity promise measured on the written file, and the edit map. */
#include "verify/verify.h"

#include <libdeflate.h>
#include <math.h>
#include <png.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"
#include "face/mesh.h"
#include "render/export.h"

/* ---- Identity ------------------------------------------------------------------------------ */

typedef struct displacement {
    double mean_px, max_px;
    int worst;
} displacement;

/* Landmarks of b mapped through inv (output -> photo) against those of a, in photo pixels. */
static displacement compare(const ts_face_analysis *a, const ts_face_analysis *b,
                            const double inv[6]) {
    displacement d = {0, 0, 0};
    for (int i = 0; i < TS_LANDMARKS; i++) {
        double x = b->landmarks[i][0], y = b->landmarks[i][1];
        double px = inv[0] * x + inv[1] * y + inv[2], py = inv[3] * x + inv[4] * y + inv[5];
        double e = hypot(px - a->landmarks[i][0], py - a->landmarks[i][1]);
        d.mean_px += e;
        if (e > d.max_px) d.max_px = e, d.worst = i;
    }
    d.mean_px /= TS_LANDMARKS;
    return d;
}

/* Landmarks (x, y) as a face analysis for compare(); a new allocation or NULL. */
static ts_face_analysis *as_analysis(const float (*lm)[2]) {
    ts_face_analysis *a = calloc(1, sizeof *a);
    if (a)
        for (int i = 0; i < TS_LANDMARKS; i++)
            a->landmarks[i][0] = lm[i][0], a->landmarks[i][1] = lm[i][1];
    return a;
}

/* The result's figures for displacement d, against an inter-eye distance of ie pixels. */
static ts_identity_result result_of(displacement d, double ie, const ts_verify_floor *fl) {
    ts_identity_result r;
    memset(&r, 0, sizeof r);
    r.inter_eye_px = ie;
    r.mean_px = d.mean_px, r.max_px = d.max_px, r.worst = d.worst;
    r.mean = d.mean_px / ie, r.max = d.max_px / ie;
    r.floor = *fl;
    return r;
}

/* The subject of the file at path; the photo (returned in *ph) owns *f. A missing face is
 * reported as being missing from that file. */
static ts_status subject_of(ts_ctx *ctx, const char *path, const char *what, ts_photo **ph,
                            const ts_face_analysis **f) {
    ts_status s = ts_photo_open(ctx, path, ph);
    if (s) return s;
    s = ts_photo_subject(ctx, *ph, f);
    if (s == TS_ERR_NO_FACE)
        ts_fail(ctx, s, "%s: no face found on the %s, so its identity cannot be checked", path,
                what);
    if (s) ts_photo_unref(*ph), *ph = NULL;
    return s;
}

static ts_status seeded_landmarks(ts_ctx *ctx, ts_photo *input, VipsImage *src, const double P[6],
                                  const char *name, int split, float (*lm)[2]);
static ts_status reference_of(ts_ctx *ctx, ts_photo *p, ts_face_analysis **out);

ts_status ts_verify_noise_floor(ts_ctx *ctx, ts_photo *input, ts_verify_floor *out) {
    if (!ctx || !input || !out) return ts_fail(ctx, TS_ERR_ARGUMENT, "noise floor: NULL argument");
    const ts_face_analysis *fin;
    ts_status s = ts_photo_subject(ctx, input, &fin);
    if (s) return s;
    /* The image the photo's own reading was sampled from (the analysis copy; the full photo
     * for a small face), re-encoded: the same pixels but for JPEG's rounding. The re-encode
     * stays in memory: it holds the person's photo. */
    ts_face_roi roi;
    float sc = 1;
    double a = 1;
    if ((s = ts_photo_subject_roi(ctx, input, &roi, &sc))) return s;
    VipsImage *an = ts_photo_analysis(ctx, input, &a);
    if (!an) return TS_ERR_FORMAT;
    /* (the scales differ by the copy's rounding to whole pixels; a separate decode for a small
     * face is at least twice as sharp) */
    int use_an = fabs(sc - a) < 0.01 * a;
    VipsImage *src = use_an ? an : ts_photo_full(ctx, input);
    if (!src) return TS_ERR_FORMAT;
    double P[6] = {1, 0, 0, 0, 1, 0};
    if (use_an) P[0] = (double)an->Xsize / input->width, P[4] = (double)an->Ysize / input->height;
    char why[300];
    void *buf = NULL;
    size_t len = 0;
    VipsImage *copy = NULL;
    if (vips_jpegsave_buffer(src, &buf, &len, "Q", 95, "strip", TRUE, NULL) ||
        !(copy = vips_image_new_from_buffer(buf, len, "", NULL))) {
        g_free(buf);
        return ts_fail(ctx, TS_ERR_INTERNAL, "noise floor: cannot re-encode the photo: %s",
                       ts_vips_why(why, sizeof why));
    }
    float(*lm)[2] = malloc(sizeof(float) * 2 * TS_LANDMARKS);
    ts_face_analysis *fc = calloc(1, sizeof *fc);
    static const double id[6] = {1, 0, 0, 0, 1, 0};
    if (!lm || !fc)
        s = ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
    else
        s = seeded_landmarks(ctx, input, copy, P, "the re-encoded copy of the photo", 0, lm);
    ts_face_analysis *ref = NULL;
    if (!s) s = reference_of(ctx, input, &ref);
    if (!s) {
        for (int i = 0; i < TS_LANDMARKS; i++)
            fc->landmarks[i][0] = lm[i][0], fc->landmarks[i][1] = lm[i][1];
        displacement d = compare(ref, fc, id);
        out->mean = d.mean_px / fin->inter_eye_px;
        out->max = d.max_px / fin->inter_eye_px;
    }
    free(lm), free(fc), free(ref);
    g_object_unref(copy);
    g_free(buf);
    return s;
}

/* Writes im (uchar) to a private temporary folder as a libvips native file (no encoding: it
 * is read straight back) and analyses it; the copy is removed at once. lm (may be NULL)
 * receives the subject's landmarks divided by a. what names the image in messages. */
static ts_status analyse_image(ts_ctx *ctx, VipsImage *im, const char *what, double a,
                               float (*lm)[2]) {
    char why[300];
    GError *gerr = NULL;
    char *dir = g_dir_make_tmp("trueshot-verify-XXXXXX", &gerr);
    if (!dir) {
        ts_status s = ts_fail(ctx, TS_ERR_WRITE, "identity: cannot make a temporary folder: %s",
                              gerr ? gerr->message : "?");
        g_clear_error(&gerr);
        return s;
    }
    char *path = g_build_filename(dir, "aligned.v", NULL);
    ts_status s = TS_OK;
    if (vips_image_write_to_file(im, path, NULL))
        s = ts_fail(ctx, TS_ERR_WRITE, "identity: cannot write %s: %s", path,
                    ts_vips_why(why, sizeof why));
    ts_photo *ph = NULL;
    const ts_face_analysis *f = NULL;
    if (!s) s = subject_of(ctx, path, what, &ph, &f);
    if (!s)
        for (int i = 0; i < TS_LANDMARKS; i++)
            lm[i][0] = (float)(f->landmarks[i][0] / a), lm[i][1] = (float)(f->landmarks[i][1] / a);
    ts_photo_unref(ph);
    unlink(path);
    rmdir(dir);
    g_free(path);
    g_free(dir);
    return s;
}

/* The output as 3-band sRGB (alpha flattened), a new reference; NULL with the vips error set.
 * A float canvas (3-band, 0..255) is cast to 8 bits, as the PNG the pipeline used to write of
 * it held it; a decoded file goes through libvips' colour conversion, and keeps its format
 * until it has been resampled. */
static VipsImage *srgb_of(VipsImage *o) {
    VipsImage *rgb = NULL;
    if ((o->BandFmt == VIPS_FORMAT_FLOAT || o->BandFmt == VIPS_FORMAT_DOUBLE) && o->Bands == 3) {
        if (vips_cast_uchar(o, &rgb, NULL)) return NULL;
        rgb->Type = VIPS_INTERPRETATION_sRGB;
        return rgb;
    }
    int ok = vips_colourspace(o, &rgb, VIPS_INTERPRETATION_sRGB, NULL) == 0;
    if (ok && vips_image_hasalpha(rgb)) {
        VipsImage *flat = NULL;
        ok = vips_flatten(rgb, &flat, NULL) == 0;
        g_object_unref(rgb), rgb = flat;
    }
    if (!ok && rgb) g_object_unref(rgb), rgb = NULL;
    return rgb;
}

#if defined(__GNUC__) && defined(__x86_64__)
#define V_AVX2 1
#include <immintrin.h>
#define V_TARGET_AVX2 __attribute__((target("avx2")))
#else
#define V_AVX2 0
#endif
static int v_use_avx2; /* set once (v_init) */
static pthread_once_t v_once = PTHREAD_ONCE_INIT;

static void v_init(void) {
#if V_AVX2
    v_use_avx2 = ts_cpu_avx2();
#endif
}

/* A canvas (3-band float) is cast to 8 bits here, as vips_cast does it (clipped to 0..255, then
 * truncated): libvips' cast, run lazily under the resize, cost as much as a third of it. The
 * cast is an image of its own whose strips are made as the reduce asks for them (on libvips'
 * threads), over only the part the crops reach: no buffer of the whole area (4 MB of fresh
 * pages a reading), and each strip is read from the cache. */
typedef struct cast_src {
    const VipsPel *base; /* the canvas's pixels (held by the image: vips_object_local) */
    size_t line;
    int x0, y0;
} cast_src;

static void cast_row(const float *p, unsigned char *q, int n) {
    for (int i = 0; i < n; i++) {
        float v = p[i] > 255 ? 255 : p[i];
        q[i] = (unsigned char)(v < 0 ? 0 : v);
    }
}

#if V_AVX2
/* cast_row 32 values at a time (min and max take a NaN from their second operand: a NaN then
 * gives 0, as the truncation of one does) */
V_TARGET_AVX2 static void cast_row_avx2(const float *p, unsigned char *q, int n) {
    const __m256 lo = _mm256_setzero_ps(), hi = _mm256_set1_ps(255);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i v[4];
        for (int k = 0; k < 4; k++)
            v[k] = _mm256_cvttps_epi32(
                _mm256_max_ps(lo, _mm256_min_ps(hi, _mm256_loadu_ps(p + i + 8 * k))));
        __m256i a = _mm256_packs_epi32(v[0], v[1]), b = _mm256_packs_epi32(v[2], v[3]);
        _mm256_storeu_si256((__m256i *)(q + i),
                            _mm256_permutevar8x32_epi32(_mm256_packus_epi16(a, b), order));
    }
    cast_row(p + i, q + i, n - i);
}
#endif

static int cast_gen(VipsRegion *out, void *seq, void *a, void *b, gboolean *stop) {
    (void)seq, (void)b, (void)stop;
    const cast_src *c = a;
    const VipsRect *r = &out->valid;
    for (int y = 0; y < r->height; y++) {
        const float *p = (const float *)(c->base + (size_t)(c->y0 + r->top + y) * c->line) +
                         3 * (size_t)(c->x0 + r->left);
        unsigned char *q = VIPS_REGION_ADDR(out, r->left, r->top + y);
#if V_AVX2
        if (v_use_avx2)
            cast_row_avx2(p, q, 3 * r->width);
        else
#endif
            cast_row(p, q, 3 * r->width);
    }
    return 0;
}

static int is_float3(VipsImage *im) {
    return im->BandFmt == VIPS_FORMAT_FLOAT && im->Bands == 3 && im->Coding == VIPS_CODING_NONE;
}

/* The area (x0, y0, w, h) of src as a 3-band 8-bit sRGB image: cast by hand from a float
 * canvas, else as libvips extracts it. NULL with the vips error set. */
static VipsImage *area_of(VipsImage *src, int x0, int y0, int w, int h) {
    VipsImage *part = NULL;
    if (!is_float3(src)) return vips_extract_area(src, &part, x0, y0, w, h, NULL) ? NULL : part;
    pthread_once(&v_once, v_init);
    VipsImage *mem = vips_image_copy_memory(src); /* a reference: canvases are in memory */
    if (!mem) return NULL;
    part = vips_image_new();
    cast_src *c = vips_malloc(VIPS_OBJECT(part), sizeof *c); /* freed with part */
    vips_object_local(part, mem);                            /* unreferenced with part */
    if (!c || vips_image_pipelinev(part, VIPS_DEMAND_STYLE_THINSTRIP, mem, NULL)) {
        g_object_unref(part);
        return NULL;
    }
    *c = (cast_src){VIPS_IMAGE_ADDR(mem, 0, 0), VIPS_IMAGE_SIZEOF_LINE(mem), x0, y0};
    vips_image_init_fields(part, w, h, 3, VIPS_FORMAT_UCHAR, VIPS_CODING_NONE,
                           VIPS_INTERPRETATION_sRGB, 1.0, 1.0);
    if (vips_image_generate(part, NULL, cast_gen, NULL, c, NULL)) {
        g_object_unref(part);
        return NULL;
    }
    return part;
}

/* The crop at the ROI and at small shifts, zooms and turns of it (x, y and zoom as fractions of
 * the ROI's size, turn in radians), averaged: one pass's landmarks answer to small changes of
 * tone as much as to geometry; the average of several crops answers to geometry. */
static const float jitters[][4] = {{0, 0, 1, 0},     {0.03f, 0, 1, 0},  {-0.03f, 0, 1, 0},
                                   {0, 0.03f, 1, 0}, {0, -0.03f, 1, 0}, {0, 0, 1.05f, 0},
                                   {0, 0, 0.95f, 0}, {0, 0, 1, 0.035f}, {0, 0, 1, -0.035f}};
enum { N_JITTERS = sizeof jitters / sizeof jitters[0] };

/* Mesh passes at jitters [from, to) of roi on pre (photo -> pre: Q), each pass's landmarks and
 * presence kept apart (pts[j], presence[j]), so that the average is summed in the same order
 * however the passes were shared out. */
typedef struct jitter_job {
    ts_ctx *ctx;
    VipsImage *pre;
    const double *Q;
    ts_face_roi roi;
    const char *name;
    int from, to;
    float (*pts)[TS_LANDMARKS][2];
    float *presence;
    ts_status s;
} jitter_job;

static ts_status jitter_passes(jitter_job *j) {
    ts_face_mesh *mesh = malloc(sizeof *mesh);
    if (!mesh) return ts_fail(j->ctx, TS_ERR_NOMEM, "out of memory");
    ts_status s = TS_OK;
    for (int k = j->from; k < j->to && !s; k++) {
        ts_face_roi r = j->roi;
        r.cx += jitters[k][0] * j->roi.size, r.cy += jitters[k][1] * j->roi.size;
        r.size *= jitters[k][2], r.rotation += jitters[k][3];
        if ((s = ts_face_mesh_on(j->ctx, j->pre, j->Q, r, j->name, mesh))) break;
        j->presence[k] = mesh->presence;
        for (int i = 0; i < TS_LANDMARKS; i++)
            j->pts[k][i][0] = mesh->pts[i][0], j->pts[k][i][1] = mesh->pts[i][1];
    }
    free(mesh);
    return s;
}

/* The second share of the passes, on a thread of its own: a copy of the caller's ctx with the
 * second runtime of the mesh model in the first's place. */
typedef struct jitter_helper {
    ts_ctx shadow;
    jitter_job job;
} jitter_helper;

static void *jitter_thread(void *arg) {
    jitter_helper *h = arg;
    h->job.s = jitter_passes(&h->job);
    return NULL;
}

/* The subject's landmarks on src (an image related to the photo by P: photo -> src pixels),
 * measured by one mesh pass at the very crop the photo's own mesh ran on (the photo's final
 * ROI, carried through P), written to lm in photo pixels. The network then sees the face where,
 * and as large as, it saw it on the photo, so its re-framing noise (0.6-1.8% of the eye
 * distance when an output is analysed from scratch: detection boxes and the mesh's own ROI
 * move with the framing and the surroundings) drops out, and what remains is what the pixels
 * changed. src is first shrunk (Lanczos 3) to the scale the photo's pass sampled at, so both
 * crops are sampled alike. src is 3-band 8-bit sRGB, or a float canvas (cast to 8 bits as
 * srgb_of does). A crop without a face (presence < 0.5) is TS_ERR_NO_FACE. With split, the
 * passes are shared with a thread of its own on the mesh model's second runtime (made here on
 * first use: call it on the thread that owns ctx), for a caller with nothing else to do
 * meanwhile; the reading is the same to the bit either way. */
static ts_status seeded_landmarks(ts_ctx *ctx, ts_photo *input, VipsImage *src, const double P[6],
                                  const char *name, int split, float (*lm)[2]) {
    char why[300];
    ts_face_roi roi;
    float src_scale = 1;
    ts_status s = ts_photo_subject_roi(ctx, input, &roi, &src_scale);
    if (s) return s;
    double scale = sqrt(fabs(P[0] * P[4] - P[1] * P[3])), Q[6];
    memcpy(Q, P, sizeof Q);
    VipsImage *pre = NULL, *part = NULL;
    double f = src_scale / scale;
    /* Only the part of src the crops can reach (the ROI turned, zoomed by 5%, shifted by 3%,
     * plus the resampling kernel's reach) is resampled. */
    double cx = P[0] * roi.cx + P[1] * roi.cy + P[2], cy = P[3] * roi.cx + P[4] * roi.cy + P[5];
    double reach = roi.size * scale * (0.5 * 1.05 * sqrt(2.0) + 0.03) + 4 / fmin(f, 1) + 2;
    int x0 = (int)fmax(0, floor(cx - reach)), y0 = (int)fmax(0, floor(cy - reach));
    int x1 = (int)fmin(src->Xsize, ceil(cx + reach)), y1 = (int)fmin(src->Ysize, ceil(cy + reach));
    if (x1 - x0 < 8 || y1 - y0 < 8) {
        x0 = y0 = 0, x1 = src->Xsize, y1 = src->Ysize; /* the face is off the image */
    }
    if (!(part = area_of(src, x0, y0, x1 - x0, y1 - y0)))
        return ts_fail(ctx, TS_ERR_INTERNAL, "%s: cannot resample the output: %s", name,
                       ts_vips_why(why, sizeof why));
    Q[2] -= x0, Q[5] -= y0;
    if (f < 0.95) {
        int bad = vips_resize(part, &pre, f, "kernel", VIPS_KERNEL_LANCZOS3, NULL);
        g_object_unref(part);
        if (bad)
            return ts_fail(ctx, TS_ERR_INTERNAL, "%s: cannot resample the output: %s", name,
                           ts_vips_why(why, sizeof why));
        /* resized = f (o + 0.5) - 0.5 */
        for (int i = 0; i < 6; i++) Q[i] *= f;
        Q[2] += 0.5 * f - 0.5, Q[5] += 0.5 * f - 0.5;
    } else {
        pre = part;
    }
    /* Nine crops read it: compute it once. */
    VipsImage *mem = vips_image_copy_memory(pre);
    g_object_unref(pre);
    if (!(pre = mem))
        return ts_fail(ctx, TS_ERR_INTERNAL, "%s: cannot resample the output: %s", name,
                       ts_vips_why(why, sizeof why));
    /* Nine passes: with split, shared with a second thread (the caller's runtime and the
     * second one), when the caller has no other work beside this reading. */
    float(*pts)[TS_LANDMARKS][2] = malloc(sizeof *pts * N_JITTERS);
    float pres[N_JITTERS];
    if (!pts) {
        g_object_unref(pre);
        return ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
    }
    jitter_job mine = {ctx, pre, Q, roi, name, 0, N_JITTERS, pts, pres, TS_OK};
    jitter_helper *h = NULL;
    pthread_t helper;
    if (split && ts_ctx_runtime_second(ctx, TS_MODEL_FACE_LANDMARK_ATTENTION) &&
        (h = malloc(sizeof *h))) {
        ts_ctx_shadow(ctx, ctx->second[TS_MODEL_FACE_LANDMARK_ATTENTION], &h->shadow);
        h->job = mine;
        h->job.ctx = &h->shadow;
        h->job.from = mine.to = (N_JITTERS + 1) / 2;
        if (pthread_create(&helper, NULL, jitter_thread, h)) {
            free(h), h = NULL;
            mine.to = N_JITTERS;
        }
    }
    s = jitter_passes(&mine);
    if (h) {
        pthread_join(helper, NULL);
        if (!s && h->job.s) s = ts_fail(ctx, h->job.s, "%s", h->shadow.err);
        free(h);
    }
    g_object_unref(pre);
    double acc[TS_LANDMARKS][2] = {{0}};
    float presence = 0;
    for (int j = 0; j < N_JITTERS && !s; j++) {
        presence += pres[j] / N_JITTERS;
        for (int i = 0; i < TS_LANDMARKS; i++)
            acc[i][0] += pts[j][i][0] / N_JITTERS, acc[i][1] += pts[j][i][1] / N_JITTERS;
    }
    free(pts);
    if (s) return s;
    if (presence < 0.5f)
        return ts_fail(ctx, TS_ERR_NO_FACE,
                       "%s: no face found on the output where the photo's face was mapped "
                       "(presence %.2f), so its identity cannot be checked",
                       name, presence);
    for (int i = 0; i < TS_LANDMARKS; i++) lm[i][0] = (float)acc[i][0], lm[i][1] = (float)acc[i][1];
    return TS_OK;
}

/* The photo's own landmarks as the identity check reads them (seeded_landmarks on the image
 * the photo's mesh was sampled from), computed once and kept on the photo, as a new face
 * analysis in *out (free()). */
static ts_status reference_of(ts_ctx *ctx, ts_photo *p, ts_face_analysis **out) {
    *out = NULL;
    pthread_mutex_lock(&p->face_lock);
    const float(*ref)[2] = (const float(*)[2])p->seeded_ref;
    pthread_mutex_unlock(&p->face_lock);
    if (!ref) {
        ts_face_roi roi;
        float sc = 1;
        ts_status s = ts_photo_subject_roi(ctx, p, &roi, &sc);
        if (s) return s;
        double a = 1;
        VipsImage *an = ts_photo_analysis(ctx, p, &a), *src = NULL;
        if (!an) return TS_ERR_FORMAT;
        double sx = 1, sy = 1;
        if (fabs(sc - a) < 0.01 * a) {
            src = g_object_ref(an);
            sx = (double)an->Xsize / p->width, sy = (double)an->Ysize / p->height;
        } else if ((src = ts_photo_full(ctx, p))) {
            g_object_ref(src); /* a small face: sampled from full resolution */
        } else {
            return TS_ERR_FORMAT;
        }
        float(*lm)[2] = malloc(sizeof(float) * 2 * TS_LANDMARKS);
        const double P[6] = {sx, 0, 0, 0, sy, 0};
        s = lm ? seeded_landmarks(ctx, p, src, P, p->path, 0, lm)
               : ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
        g_object_unref(src);
        if (s) {
            free(lm);
            return s;
        }
        pthread_mutex_lock(&p->face_lock);
        if (!p->seeded_ref)
            p->seeded_ref = lm;
        else
            free(lm);
        ref = (const float(*)[2])p->seeded_ref;
        pthread_mutex_unlock(&p->face_lock);
    }
    if (!(*out = as_analysis(ref))) return ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
    return TS_OK;
}

/* The photo's subject and noise floor (the given one, or measured now). */
static ts_status subject_and_floor(ts_ctx *ctx, ts_photo *input, const ts_verify_floor *floor,
                                   const ts_face_analysis **fin, ts_verify_floor *fl) {
    ts_status s = ts_photo_subject(ctx, input, fin);
    if (s) return s;
    if (floor) {
        *fl = *floor;
        return TS_OK;
    }
    return ts_verify_noise_floor(ctx, input, fl);
}

/* The identity measure of rgb (3-band sRGB uchar, borrowed) against input; see
 * ts_verify_identity_image. */
static ts_status identity_of(ts_ctx *ctx, ts_photo *input, VipsImage *rgb, const char *name,
                             const char *direct_path, const double m[6],
                             const ts_verify_floor *floor, unsigned flags, ts_identity_result *r) {
    double det = m[0] * m[4] - m[1] * m[3];
    if (!isfinite(det) || fabs(det) < 1e-12)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_verify_identity: the transform is not invertible");
    /* output -> photo: p = A^-1 (q - t). */
    double inv[6] = {m[4] / det, -m[1] / det, 0, -m[3] / det, m[0] / det, 0};
    inv[2] = -(inv[0] * m[2] + inv[1] * m[5]);
    inv[5] = -(inv[3] * m[2] + inv[4] * m[5]);
    const ts_face_analysis *fin;
    ts_verify_floor fl;
    ts_status s = subject_and_floor(ctx, input, floor, &fin, &fl);
    if (s) return s;
    ts_face_analysis *al = malloc(sizeof *al);
    float(*lm)[2] = malloc(sizeof(float) * 2 * TS_LANDMARKS);
    if (!al || !lm) {
        free(al), free(lm);
        return ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
    }
    /* As it is: the output analysed at its own framing, its landmarks mapped back. */
    displacement direct = {-1, -1, 0};
    if (direct_path) {
        /* the file itself, decoded as any photo is */
        ts_photo *out = NULL;
        const ts_face_analysis *fo = NULL;
        if ((s = subject_of(ctx, direct_path, "output", &out, &fo))) {
            free(al), free(lm);
            return s;
        }
        direct = compare(fin, fo, inv);
        ts_photo_unref(out);
    } else if (flags & TS_VERIFY_DIRECT) {
        VipsImage *u8 = NULL;
        if (vips_cast_uchar(rgb, &u8, NULL)) {
            char why[300];
            free(al), free(lm);
            return ts_fail(ctx, TS_ERR_INTERNAL, "%s: %s", name, ts_vips_why(why, sizeof why));
        }
        s = analyse_image(ctx, u8, "output", 1, lm);
        g_object_unref(u8);
        if (s == TS_ERR_NO_FACE)
            ts_fail(ctx, s, "%s: no face found on the output, so its identity cannot be checked",
                    name);
        if (s) {
            free(al), free(lm);
            return s;
        }
        for (int i = 0; i < TS_LANDMARKS; i++)
            al->landmarks[i][0] = lm[i][0], al->landmarks[i][1] = lm[i][1];
        direct = compare(fin, al, inv);
    }
    /* The gate: the output measured at the photo's own crop (seeded_landmarks). */
    if ((s = seeded_landmarks(ctx, input, rgb, m, name, !(flags & TS_VERIFY_ONE_THREAD), lm))) {
        free(al), free(lm);
        return s;
    }
    for (int i = 0; i < TS_LANDMARKS; i++)
        al->landmarks[i][0] = lm[i][0], al->landmarks[i][1] = lm[i][1], al->landmarks[i][2] = 0;
    static const double id[6] = {1, 0, 0, 0, 1, 0};
    ts_face_analysis *ref = NULL;
    if ((s = reference_of(ctx, input, &ref))) {
        free(al), free(lm);
        return s;
    }
    displacement d = compare(ref, al, id);
    free(al), free(lm), free(ref);

    double ie = fin->inter_eye_px;
    ts_identity_result res = result_of(d, ie, &fl);
    res.direct_mean = direct.mean_px < 0 ? -1 : direct.mean_px / ie;
    res.direct_max = direct.max_px < 0 ? -1 : direct.max_px / ie;
    res.total_mean = res.mean, res.total_max = res.max, res.frame_mean = -1;
    res.pass = res.mean <= TS_VERIFY_IDENTITY_LIMIT;
    if (res.pass)
        snprintf(res.message, sizeof res.message,
                 "face geometry kept: landmarks within %.2f%% of the eye distance on average "
                 "(max %.2f%%; the analysis's own noise %.2f%%)",
                 100 * res.mean, 100 * res.max, 100 * fl.mean);
    else
        snprintf(res.message, sizeof res.message,
                 "face geometry changed: landmarks moved %.2f%% of the eye distance on average "
                 "(limit %.0f%%; max %.2f%% at landmark %d; the analysis's own noise %.2f%%)",
                 100 * res.mean, 100 * TS_VERIFY_IDENTITY_LIMIT, 100 * res.max, res.worst,
                 100 * fl.mean);
    *r = res;
    return TS_OK;
}

ts_status ts_verify_identity_image(ts_ctx *ctx, ts_photo *input, VipsImage *output,
                                   const char *name, const double m[6],
                                   const ts_verify_floor *floor, unsigned flags,
                                   ts_identity_result *r) {
    if (!ctx || !input || !output || !m || !r)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_verify_identity_image: NULL argument");
    if (!name) name = "output";
    char why[300];
    VipsImage *rgb = srgb_of(output);
    if (!rgb)
        return ts_fail(ctx, TS_ERR_INTERNAL, "%s: cannot read the output: %s", name,
                       ts_vips_why(why, sizeof why));
    ts_status s = identity_of(ctx, input, rgb, name, NULL, m, floor, flags, r);
    g_object_unref(rgb);
    return s;
}

/* A canvas's reading, kept on the canvas itself (GObject data, freed with it): looks that frame
 * alike share the canvas frame made (ts_render_cache), and libvips images are immutable, so
 * the same image object read at the same crop reads the same; so does the gate's back-off,
 * which measures the framed canvas again at each strength. */
typedef struct kept_reading {
    const ts_photo *photo;
    double m[6];
    ts_face_roi roi;
    float lm[TS_LANDMARKS][2];
} kept_reading;

static GQuark kept_reading_quark(void) {
    return g_quark_from_static_string("trueshot-identity-reading");
}

/* The reading of canvas (as in ts_render_job.rgb; photo -> canvas m) into lm: the kept one when
 * it was made for this photo, transform and crop, else measured now (seeded_landmarks on its
 * 8-bit cast) and kept. */
static ts_status canvas_landmarks(ts_ctx *ctx, ts_photo *input, VipsImage *canvas,
                                  const double m[6], const char *name, int split, float (*lm)[2]) {
    ts_face_roi roi;
    float sc = 1;
    ts_status s = ts_photo_subject_roi(ctx, input, &roi, &sc);
    if (s) return s;
    const kept_reading *k = g_object_get_qdata(G_OBJECT(canvas), kept_reading_quark());
    if (k && k->photo == input && !memcmp(k->m, m, sizeof k->m) &&
        !memcmp(&k->roi, &roi, sizeof roi)) {
        memcpy(lm, k->lm, sizeof k->lm);
        return TS_OK;
    }
    char why[300];
    VipsImage *rgb = is_float3(canvas) ? g_object_ref(canvas) : srgb_of(canvas);
    if (!rgb)
        return ts_fail(ctx, TS_ERR_INTERNAL, "%s: cannot read the canvas: %s", name,
                       ts_vips_why(why, sizeof why));
    s = seeded_landmarks(ctx, input, rgb, m, name, split, lm);
    g_object_unref(rgb);
    kept_reading *keep = s ? NULL : malloc(sizeof *keep);
    if (keep) {
        keep->photo = input;
        memcpy(keep->m, m, sizeof keep->m);
        keep->roi = roi;
        memcpy(keep->lm, lm, sizeof keep->lm);
        g_object_set_qdata_full(G_OBJECT(canvas), kept_reading_quark(), keep, free);
    }
    return s;
}

/* The framed canvas read on a thread of its own (ts_verify_read_start). It runs on a copy of the
 * caller's ctx: the same models and runtimes, its own error message (an error there is not
 * reported: the gate then reads the canvas again and reports it). */
struct ts_verify_reading {
    ts_ctx shadow;
    ts_photo *photo;
    VipsImage *canvas;
    double m[6];
    char name[256];
    pthread_t thread;
};

static void *read_thread(void *arg) {
    ts_verify_reading *r = arg;
    float(*lm)[2] = malloc(sizeof(float) * 2 * TS_LANDMARKS);
    if (lm) canvas_landmarks(&r->shadow, r->photo, r->canvas, r->m, r->name, 0, lm);
    free(lm);
    /* What this thread freed stays in its own malloc arena, where the rest of the look cannot
     * reuse it: hand it back here (off the caller's path), or it adds to the run's peak. */
    ts_heap_trim();
    return NULL;
}

ts_verify_reading *ts_verify_read_start(ts_ctx *ctx, ts_photo *input, VipsImage *canvas,
                                        const double m[6], const char *name) {
    if (!ctx || !input || !canvas || !m) return NULL;
    /* what the thread needs from ctx and the photo, made here, not there */
    ts_face_roi roi;
    float sc;
    if (!ts_ctx_runtime(ctx, TS_MODEL_FACE_LANDMARK_ATTENTION) ||
        ts_photo_subject_roi(ctx, input, &roi, &sc) || !ts_photo_analysis(ctx, input, NULL))
        return NULL;
    ts_verify_reading *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    ts_ctx_shadow(ctx, NULL, &r->shadow);
    r->photo = input;
    r->canvas = g_object_ref(canvas);
    memcpy(r->m, m, sizeof r->m);
    snprintf(r->name, sizeof r->name, "%s", name ? name : "output");
    if (pthread_create(&r->thread, NULL, read_thread, r)) {
        g_object_unref(r->canvas);
        free(r);
        return NULL;
    }
    return r;
}

void ts_verify_read_finish(ts_verify_reading *r) {
    if (!r) return;
    pthread_join(r->thread, NULL);
    g_object_unref(r->canvas);
    free(r);
}

ts_status ts_verify_identity_edits(ts_ctx *ctx, ts_photo *input, VipsImage *before,
                                   VipsImage *after, const char *name, const double m[6],
                                   const ts_verify_floor *floor, ts_identity_result *r) {
    if (!ctx || !input || !before || !after || !m || !r)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_verify_identity_edits: NULL argument");
    if (!name) name = "output";
    const ts_face_analysis *fin;
    ts_verify_floor fl;
    ts_status s = subject_and_floor(ctx, input, floor, &fin, &fl);
    if (s) return s;
    float(*lb)[2] = malloc(sizeof(float) * 2 * TS_LANDMARKS);
    float(*la)[2] = malloc(sizeof(float) * 2 * TS_LANDMARKS);
    ts_face_analysis *fb = NULL, *fa = NULL;
    if (!lb || !la) s = ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
    if (!s) s = canvas_landmarks(ctx, input, before, m, name, 1, lb);
    if (!s) s = canvas_landmarks(ctx, input, after, m, name, 1, la);
    ts_face_analysis *ref = NULL;
    if (!s) s = reference_of(ctx, input, &ref);
    if (!s &&
        (!(fb = as_analysis((const float(*)[2])lb)) || !(fa = as_analysis((const float(*)[2])la))))
        s = ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
    if (!s) {
        static const double id[6] = {1, 0, 0, 0, 1, 0};
        displacement e = compare(fb, fa, id), tot = compare(ref, fa, id), fr = compare(ref, fb, id);
        double ie = fin->inter_eye_px;
        ts_identity_result res = result_of(e, ie, &fl);
        res.total_mean = tot.mean_px / ie, res.total_max = tot.max_px / ie;
        res.frame_mean = fr.mean_px / ie;
        res.direct_mean = res.direct_max = -1;
        res.pass = res.mean <= TS_VERIFY_IDENTITY_LIMIT;
        if (res.pass)
            snprintf(res.message, sizeof res.message,
                     "face geometry kept: the edits moved landmarks %.2f%% of the eye distance "
                     "on average (max %.2f%%; %.2f%% against the photo, of which framing "
                     "alone reads %.2f%%)",
                     100 * res.mean, 100 * res.max, 100 * res.total_mean, 100 * res.frame_mean);
        else
            snprintf(res.message, sizeof res.message,
                     "face geometry changed: the edits moved landmarks %.2f%% of the eye "
                     "distance on average (limit %.0f%%; max %.2f%% at landmark %d)",
                     100 * res.mean, 100 * TS_VERIFY_IDENTITY_LIMIT, 100 * res.max, res.worst);
        *r = res;
    }
    free(lb), free(la), free(fb), free(fa), free(ref);
    return s;
}

ts_status ts_verify_identity(ts_ctx *ctx, ts_photo *input, const char *output_path,
                             const double m[6], const ts_verify_floor *floor,
                             ts_identity_result *r) {
    if (!ctx || !input || !output_path || !m || !r)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_verify_identity: NULL argument");
    char why[300];
    VipsImage *o = ts_verify_open_written(output_path);
    if (!o) {
        /* the reason as opening it as a photo gives it (missing, not an image, ...) */
        vips_error_clear();
        ts_photo *ph = NULL;
        ts_status s = ts_photo_open(ctx, output_path, &ph);
        ts_photo_unref(ph);
        return s ? s
                 : ts_fail(ctx, TS_ERR_READ, "%s: cannot read the output: %s", output_path,
                           ts_vips_why(why, sizeof why));
    }
    VipsImage *rgb = srgb_of(o);
    g_object_unref(o);
    if (!rgb)
        return ts_fail(ctx, TS_ERR_READ, "%s: cannot read the output: %s", output_path,
                       ts_vips_why(why, sizeof why));
    ts_status s =
        identity_of(ctx, input, rgb, output_path, output_path, m, floor, TS_VERIFY_DIRECT, r);
    g_object_unref(rgb);
    return s;
}

/* ---- The written file ------------------------------------------------------------------- */

struct ts_verify_written {
    ts_ctx shadow; /* the caller's ctx with the mesh model's second runtime in the first's place */
    ts_photo *photo;
    char path[1024];
    double m[6];
    ts_verify_floor floor;
    int has_floor;
    double mean;
    pthread_t thread;
};

static void *written_thread(void *arg) {
    ts_verify_written *w = arg;
    w->mean = -1;
    VipsImage *o = ts_verify_open_written(w->path);
    ts_identity_result r;
    if (o && ts_verify_identity_image(&w->shadow, w->photo, o, w->path, w->m,
                                      w->has_floor ? &w->floor : NULL, TS_VERIFY_ONE_THREAD,
                                      &r) == TS_OK)
        w->mean = r.mean;
    if (!o) vips_error_clear();
    if (o) g_object_unref(o);
    ts_heap_trim(); /* (what this thread freed stays in its own malloc arena otherwise) */
    return NULL;
}

ts_verify_written *ts_verify_written_start(ts_ctx *ctx, ts_photo *input, const char *path,
                                           const double m[6], const ts_verify_floor *floor) {
    if (!ctx || !input || !path || !m || strlen(path) >= sizeof((ts_verify_written *)0)->path)
        return NULL;
    /* what the thread needs from ctx and the photo, made here, not there */
    ts_face_roi roi;
    float sc;
    ts_nn_runtime *second = ts_ctx_runtime_second(ctx, TS_MODEL_FACE_LANDMARK_ATTENTION);
    ts_face_analysis *ref = NULL;
    if (!second || ts_photo_subject_roi(ctx, input, &roi, &sc) ||
        !ts_photo_analysis(ctx, input, NULL) || reference_of(ctx, input, &ref))
        return NULL;
    free(ref);
    ts_verify_written *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    ts_ctx_shadow(ctx, second, &w->shadow);
    w->photo = input;
    snprintf(w->path, sizeof w->path, "%s", path);
    memcpy(w->m, m, sizeof w->m);
    if (floor) w->floor = *floor, w->has_floor = 1;
    if (pthread_create(&w->thread, NULL, written_thread, w)) {
        free(w);
        return NULL;
    }
    return w;
}

double ts_verify_written_finish(ts_verify_written *w) {
    if (!w) return -1;
    pthread_join(w->thread, NULL);
    double mean = w->mean;
    free(w);
    return mean;
}

VipsImage *ts_verify_open_written(const char *path) {
    /* (read once, top to bottom: decoded as it is read, not into a buffer of its own first) */
    return vips_image_new_from_file(path, "access", VIPS_ACCESS_SEQUENTIAL, NULL);
}

/* ---- Edit map ------------------------------------------------------------------------------ */

VipsImage *ts_verify_snapshot(const ts_render_job *job) {
    if (!job || !job->rgb) return NULL;
    g_object_ref(job->rgb);
    return job->rgb;
}

/* im as w x h x bands floats in a new buffer (g_free), or NULL. */
static float *floats_of(VipsImage *im, int bands, VipsImage **hold) {
    *hold = NULL;
    if (im->Bands != bands) return NULL;
    if (im->BandFmt == VIPS_FORMAT_FLOAT) {
        /* a canvas: read where it is (a reference when it is in memory already) */
        *hold = vips_image_copy_memory(im);
        return *hold ? (float *)VIPS_IMAGE_ADDR(*hold, 0, 0) : NULL;
    }
    VipsImage *f = NULL;
    if (vips_cast_float(im, &f, NULL)) return NULL;
    size_t n = 0;
    float *px = vips_image_write_to_memory(f, &n);
    g_object_unref(f);
    if (px && n != sizeof(float) * (size_t)im->Xsize * im->Ysize * bands) g_free(px), px = NULL;
    return px;
}

/* Frees what floats_of returned. */
static void floats_free(float *px, VipsImage *hold) {
    if (hold)
        g_object_unref(hold);
    else
        g_free(px);
}

/* A magma-like colour scale (after matplotlib's magma): perceptually ordered, dark to bright,
 * readable by the colour-blind. Nine stops, interpolated linearly. */
static const unsigned char magma_stops[9][3] = {{0, 0, 4},      {28, 16, 68},    {79, 18, 123},
                                                {129, 37, 129}, {181, 54, 122},  {229, 80, 100},
                                                {251, 135, 97}, {254, 194, 135}, {252, 253, 191}};

static inline void magma(double t, unsigned char rgb[3]) {
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double u = t * 8;
    int i = (int)u < 8 ? (int)u : 7;
    double f = u - i;
    /* (the values are >= 0: + 0.5 and truncation round as lround does, without the call) */
    for (int c = 0; c < 3; c++)
        rgb[c] = (unsigned char)(magma_stops[i][c] +
                                 f * (magma_stops[i + 1][c] - magma_stops[i][c]) + 0.5);
}

static const char *extension_of(const char *path) {
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    return dot && (!slash || dot > slash) ? dot : NULL;
}

/* Change histogram in quarter levels, for the percentile. */
enum { EDIT_BINS = 1024 };

/* What one half of the map's pixels measured. */
typedef struct edit_part {
    long hist[EDIT_BINS], pixels, changed;
    double sum, max;
} edit_part;

typedef struct edit_pixels {
    const float *b, *a, *m; /* before, after (3-band), alpha (may be NULL) */
    unsigned char *out;
    int stats;         /* 0: the statistics are not wanted (the AVX2 loop then skips them) */
    edit_part part[2]; /* the first half's and the second's (ts_render_split2) */
} edit_pixels;

/* What a run of the map's pixels measured so far. */
typedef struct edit_acc {
    long pixels, changed;
    double sum, max;
    long *hist;
} edit_acc;

/* Map pixel i. */
static inline void edit_px(const edit_pixels *e, size_t i, edit_acc *acc) {
    const float *p = e->b + 3 * i, *q = e->a + 3 * i;
    /* (inline comparisons: fmax and fmin are calls without -ffast-math; every value
     * rounded here is >= 0, so + 0.5 and truncation round as lround does) */
    double d = 0;
    for (int c = 0; c < 3; c++) {
        double x = (double)q[c] - p[c];
        x = x < 0 ? -x : x;
        d = x > d ? x : d;
    }
    double grey = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
    grey = 24 + 0.45 * (grey < 0 ? 0 : grey > 255 ? 255 : grey);
    unsigned char *o = e->out + 3 * i;
    if (e->m && e->m[i] < 0.5f) {
        /* Outside the person: darker still, so the face stands out. */
        o[0] = o[1] = o[2] = (unsigned char)(grey * 0.6 + 0.5);
        return;
    }
    acc->pixels++, acc->sum += d, acc->max = d > acc->max ? d : acc->max, acc->changed += d > 4;
    acc->hist[d * 4 < EDIT_BINS - 1 ? (int)(d * 4) : EDIT_BINS - 1]++;
    if (d == 0) {
        o[0] = o[1] = o[2] = (unsigned char)(grey + 0.5); /* untouched: the grey alone */
        return;
    }
    /* The heat colour covers the grey as the change grows; untouched pixels stay grey. */
    double t = d / TS_EDIT_MAP_FULL_SCALE, cover = d / 6 < 0.85 ? d / 6 : 0.85;
    unsigned char heat[3];
    magma(0.15 + 0.85 * (t < 1 ? t : 1), heat);
    for (int c = 0; c < 3; c++) o[c] = (unsigned char)(grey + cover * (heat[c] - grey) + 0.5);
}

#if V_AVX2
/* edit_px on four pixels at a time, in doubles as it computes them (the same operations in the
 * same order, no fused multiply-add, so the same bytes), for pixels [first, first + n), n a
 * multiple of 4. Each case (outside the person, untouched, changed) is computed for all four and
 * the right one kept: the cases mix from pixel to pixel, and a branch on them mispredicts. The
 * statistics are added one pixel at a time in order, as edit_px adds them (an outside pixel
 * adds 0 to the sum and lands in a bin of its own), so the sum is the same double. */
V_TARGET_AVX2 static void edit_run_avx2(const edit_pixels *e, size_t first, size_t n,
                                        edit_acc *acc) {
    /* magma's stops by band and the steps to the next, small integers, as eight floats each: a
     * lookup is one permutation */
    __m256 stop[3], step[3];
    for (int c = 0; c < 3; c++) {
        float a[8], b[8];
        for (int k = 0; k < 8; k++)
            a[k] = magma_stops[k][c], b[k] = magma_stops[k + 1][c] - magma_stops[k][c];
        stop[c] = _mm256_loadu_ps(a), step[c] = _mm256_loadu_ps(b);
    }
    /* floats 0..7 and 4..11 of four pixels to each band's four: R = 0 3 6 | 9, G = 1 4 7 | 10,
     * B = 2 5 | 8 11 */
    const __m256i ir = _mm256_setr_epi32(0, 3, 6, 0, 0, 0, 0, 0),
                  ir2 = _mm256_setr_epi32(0, 0, 0, 5, 0, 0, 0, 0),
                  ig = _mm256_setr_epi32(1, 4, 7, 0, 0, 0, 0, 0),
                  ig2 = _mm256_setr_epi32(0, 0, 0, 6, 0, 0, 0, 0),
                  ib = _mm256_setr_epi32(2, 5, 0, 0, 0, 0, 0, 0),
                  ib2 = _mm256_setr_epi32(0, 0, 4, 7, 0, 0, 0, 0);
    const __m128i pack = _mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
    const __m256d zero = _mm256_setzero_pd(), one = _mm256_set1_pd(1), half = _mm256_set1_pd(0.5);
    const __m256d sign = _mm256_set1_pd(-0.0), c255 = _mm256_set1_pd(255);
    for (size_t i = first; i < first + n; i += 4) {
        __m128 outside4 =
            e->m ? _mm_cmplt_ps(_mm_loadu_ps(e->m + i), _mm_set1_ps(0.5f)) : _mm_setzero_ps();
        int all_out = _mm_movemask_ps(outside4) == 15;
        __m256d pd[3], qd[3];
        /* (four pixels outside the person need only the grey of before: after is not read) */
        for (int s = 0; s < 2 - all_out; s++) {
            const float *src = (s ? e->a : e->b) + 3 * i;
            __m256 y = _mm256_loadu_ps(src), y2 = _mm256_loadu_ps(src + 4);
            __m128 r = _mm_blend_ps(_mm256_castps256_ps128(_mm256_permutevar8x32_ps(y, ir)),
                                    _mm256_castps256_ps128(_mm256_permutevar8x32_ps(y2, ir2)), 8);
            __m128 g = _mm_blend_ps(_mm256_castps256_ps128(_mm256_permutevar8x32_ps(y, ig)),
                                    _mm256_castps256_ps128(_mm256_permutevar8x32_ps(y2, ig2)), 8);
            __m128 b = _mm_blend_ps(_mm256_castps256_ps128(_mm256_permutevar8x32_ps(y, ib)),
                                    _mm256_castps256_ps128(_mm256_permutevar8x32_ps(y2, ib2)), 12);
            __m256d *o = s ? qd : pd;
            o[0] = _mm256_cvtps_pd(r), o[1] = _mm256_cvtps_pd(g), o[2] = _mm256_cvtps_pd(b);
        }
        __m256d grey = _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(_mm256_set1_pd(0.299), pd[0]),
                                                   _mm256_mul_pd(_mm256_set1_pd(0.587), pd[1])),
                                     _mm256_mul_pd(_mm256_set1_pd(0.114), pd[2]));
        grey = _mm256_blendv_pd(grey, c255, _mm256_cmp_pd(grey, c255, _CMP_GT_OQ));
        grey = _mm256_blendv_pd(grey, zero, _mm256_cmp_pd(grey, zero, _CMP_LT_OQ));
        grey = _mm256_add_pd(_mm256_set1_pd(24), _mm256_mul_pd(_mm256_set1_pd(0.45), grey));
        __m256d vo = _mm256_add_pd(_mm256_mul_pd(grey, _mm256_set1_pd(0.6)), half);
        unsigned char *q = e->out + 3 * i;
        if (all_out) {
            /* The darker grey alone, the same bytes the blend below keeps for such pixels, and
             * only the outside bin counts them (the sum gains 0 for each, as below). Runs of
             * them are long (the backdrop), so the branch predicts well, where a branch per
             * pixel would not. */
            __m128i o = _mm256_cvttpd_epi32(vo);
            __m128i px = _mm_or_si128(o, _mm_or_si128(_mm_slli_epi32(o, 8), _mm_slli_epi32(o, 16)));
            px = _mm_shuffle_epi8(px, pack);
            _mm_storel_epi64((__m128i *)q, px);
            int last = _mm_extract_epi32(px, 2);
            memcpy(q + 8, &last, 4);
            acc->hist[EDIT_BINS] += 4;
            continue;
        }
        __m256d d = zero;
        for (int c = 0; c < 3; c++) {
            __m256d x = _mm256_andnot_pd(sign, _mm256_sub_pd(qd[c], pd[c]));
            d = _mm256_blendv_pd(d, x, _mm256_cmp_pd(x, d, _CMP_GT_OQ));
        }
        /* the three cases, before truncation */
        __m256d outside = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm_castps_si128(outside4)));
        __m256d untouched = _mm256_cmp_pd(d, zero, _CMP_EQ_OQ);
        __m256d vz = _mm256_add_pd(grey, half);
        /* (a power of two: its reciprocal multiplies exactly as it divides) */
        __m256d t = _mm256_mul_pd(d, _mm256_set1_pd(1 / TS_EDIT_MAP_FULL_SCALE));
        __m256d d6 = _mm256_div_pd(d, _mm256_set1_pd(6));
        __m256d cover = _mm256_blendv_pd(_mm256_set1_pd(0.85), d6,
                                         _mm256_cmp_pd(d6, _mm256_set1_pd(0.85), _CMP_LT_OQ));
        t = _mm256_blendv_pd(one, t, _mm256_cmp_pd(t, one, _CMP_LT_OQ));
        t = _mm256_add_pd(_mm256_set1_pd(0.15), _mm256_mul_pd(_mm256_set1_pd(0.85), t));
        /* magma(t) */
        t = _mm256_blendv_pd(t, one, _mm256_cmp_pd(t, one, _CMP_GT_OQ));
        t = _mm256_blendv_pd(t, zero, _mm256_cmp_pd(t, zero, _CMP_LT_OQ));
        __m256d u = _mm256_mul_pd(t, _mm256_set1_pd(8));
        __m128i k = _mm_min_epi32(_mm256_cvttpd_epi32(u), _mm_set1_epi32(7));
        __m256d f = _mm256_sub_pd(u, _mm256_cvtepi32_pd(k));
        __m128i o[3];
        for (int c = 0; c < 3; c++) {
            __m256i k8 = _mm256_castsi128_si256(k);
            __m256d s0 =
                _mm256_cvtps_pd(_mm256_castps256_ps128(_mm256_permutevar8x32_ps(stop[c], k8)));
            __m256d s1 =
                _mm256_cvtps_pd(_mm256_castps256_ps128(_mm256_permutevar8x32_ps(step[c], k8)));
            __m256d heat = _mm256_add_pd(_mm256_add_pd(s0, _mm256_mul_pd(f, s1)), half);
            heat = _mm256_cvtepi32_pd(_mm256_cvttpd_epi32(heat));
            __m256d v = _mm256_add_pd(
                _mm256_add_pd(grey, _mm256_mul_pd(cover, _mm256_sub_pd(heat, grey))), half);
            v = _mm256_blendv_pd(_mm256_blendv_pd(v, vz, untouched), vo, outside);
            o[c] = _mm256_cvttpd_epi32(v);
        }
        __m128i px =
            _mm_or_si128(o[0], _mm_or_si128(_mm_slli_epi32(o[1], 8), _mm_slli_epi32(o[2], 16)));
        px = _mm_shuffle_epi8(px, pack);
        _mm_storel_epi64((__m128i *)q, px);
        int last = _mm_extract_epi32(px, 2);
        memcpy(q + 8, &last, 4);
        if (!e->stats) continue;
        /* the statistics, pixel by pixel in order */
        double dv[4];
        _mm256_storeu_pd(dv, d);
        int out = _mm_movemask_ps(outside4);
        for (int l = 0; l < 4; l++) {
            int in = !((out >> l) & 1);
            double x = dv[l];
            acc->pixels += in, acc->changed += in & (x > 4);
            acc->sum += in ? x : 0;
            acc->max = in && x > acc->max ? x : acc->max;
            acc->hist[!in ? EDIT_BINS : x * 4 < EDIT_BINS - 1 ? (int)(x * 4) : EDIT_BINS - 1]++;
        }
    }
}
#endif

/* The map's pixels [first, first + n) (a ts_render_range_fn). */
static void edit_range(size_t first, size_t n, void *user) {
    edit_pixels *e = user;
    edit_part *st = &e->part[first > 0];
    long hist[EDIT_BINS + 1] = {0}; /* (the last: pixels outside the person) */
    edit_acc acc = {0, 0, 0, 0, hist};
    size_t i = first;
#if V_AVX2
    pthread_once(&v_once, v_init);
    if (v_use_avx2) {
        edit_run_avx2(e, first, n / 4 * 4, &acc);
        i += n / 4 * 4;
    }
#endif
    for (; i < first + n; i++) edit_px(e, i, &acc);
    for (int k = 0; k < EDIT_BINS; k++) st->hist[k] += hist[k];
    st->pixels = acc.pixels, st->changed = acc.changed, st->sum = acc.sum, st->max = acc.max;
}

/* One edit map being made: the pixels and the encoded file, on a thread of its own when
 * started by ts_verify_edit_map_start, then written by ts_verify_edit_map_finish. */
struct ts_edit_map_job {
    VipsImage *before, *after, *alpha; /* references */
    char *path;
    ts_status status; /* set with why when the map cannot be made */
    char why[400];
    int want_stats; /* 0: stats is not measured */
    ts_edit_stats stats;
    void *buf; /* the encoded file (g_free) */
    size_t len;
    pthread_t thread;
    int threaded;
};

/* A PNG file being put together in memory by libpng (its write callback). */
typedef struct png_mem {
    unsigned char *p; /* g_free */
    size_t n, cap;
    char why[200]; /* libpng's error message */
} png_mem;

static void png_mem_write(png_structp pp, png_bytep data, size_t n) {
    png_mem *m = png_get_io_ptr(pp);
    if (n > m->cap - m->n) {
        size_t cap = m->n + n + (m->n + n) / 2;
        unsigned char *p = g_try_realloc(m->p, cap);
        if (!p) png_error(pp, "out of memory");
        m->p = p, m->cap = cap;
    }
    memcpy(m->p + m->n, data, n);
    m->n += n;
}

static void png_mem_flush(png_structp pp) {
    (void)pp;
}

/* libpng's errors: the message kept for the caller (png_mem.why), then back to setjmp. */
static void png_fail(png_structp pp, png_const_charp msg) {
    png_mem *m = png_get_error_ptr(pp);
    snprintf(m->why, sizeof m->why, "%s", msg);
    png_longjmp(pp, 1);
}

static void png_quiet(png_structp pp, png_const_charp msg) {
    (void)pp, (void)msg;
}

/* The map, w x h RGB bytes at px + h (the h bytes before it are room for the rows' filter-type
 * bytes: the rows are filtered in place), as a PNG file in *buf (g_free) and *len; 0, or -1
 * with why.
 *
 * The map's pixels take thousands of colours (the heat colour is blended over the photo's
 * grey), so a palette cannot hold them: it stays 8-bit RGB. Most of its cost is the deflate,
 * so that is made by libdeflate (about twice zlib's speed at its fastest level, and smaller),
 * on rows filtered "Up" (each byte less the one above it: the grey varies smoothly down the
 * photo, which is what shrinks the file most for the least work), and libpng frames the
 * result (signature, header, the compressed rows as IDAT chunks, end). Measured on the
 * reference maps (docs/export-and-verify.md): 33 -> 16 ms of CPU, 1.28 -> 1.0 MB a map. */
static int map_png(unsigned char *px, int w, int h, void **buf, size_t *len, char *why,
                   size_t cap) {
    size_t row = (size_t)w * 3, size = (row + 1) * h;
    unsigned char *rows = g_try_malloc(2 * row);
    if (!rows) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    /* Row y filtered lands at px + (row + 1) y, at or before where it was read from (px + h +
     * row y) and before row y + 1: each row is copied out before it is overwritten, and the one
     * above it is kept from the previous step. */
    unsigned char *prev = rows, *cur = rows + row;
    memset(prev, 0, row); /* (above the first row: zeros, as the filter defines) */
    for (int y = 0; y < h; y++) {
        memcpy(cur, px + h + row * y, row);
        unsigned char *o = px + (row + 1) * y;
        o[0] = PNG_FILTER_VALUE_UP;
        for (size_t i = 0; i < row; i++) o[1 + i] = (unsigned char)(cur[i] - prev[i]);
        unsigned char *t = prev;
        prev = cur, cur = t;
    }
    g_free(rows);
    struct libdeflate_compressor *c = libdeflate_alloc_compressor(1);
    size_t bound = c ? libdeflate_zlib_compress_bound(c, size) : 0;
    unsigned char *z = c ? g_try_malloc(bound) : NULL;
    size_t zlen = z ? libdeflate_zlib_compress(c, px, size, z, bound) : 0;
    if (c) libdeflate_free_compressor(c);
    if (!zlen) {
        g_free(z);
        snprintf(why, cap, "%s", z ? "the compressor failed" : "out of memory");
        return -1;
    }
    /* (on the heap, not on this stack frame: libpng changes it and may then longjmp here) */
    png_mem *m = g_try_new0(png_mem, 1);
    if (m) {
        snprintf(m->why, sizeof m->why, "out of memory");
        m->p = g_try_malloc(m->cap = zlen + 4096);
    }
    png_structp pp =
        m && m->p ? png_create_write_struct(PNG_LIBPNG_VER_STRING, m, png_fail, png_quiet) : NULL;
    png_infop ip = pp ? png_create_info_struct(pp) : NULL;
    if (!ip || setjmp(png_jmpbuf(pp))) {
        png_destroy_write_struct(&pp, &ip);
        snprintf(why, cap, "%s", m ? m->why : "out of memory");
        if (m) g_free(m->p);
        g_free(m), g_free(z);
        return -1;
    }
    png_set_write_fn(pp, m, png_mem_write, png_mem_flush);
    png_set_IHDR(pp, ip, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    /* 1 pixel a millimetre, libvips' default resolution, as the maps it wrote carried */
    png_set_pHYs(pp, ip, 1000, 1000, PNG_RESOLUTION_METER);
    png_write_info(pp, ip);
    /* The zlib stream in IDAT chunks of at most 256 KiB (one stream, split anywhere). */
    for (size_t off = 0; off < zlen; off += 1 << 18)
        png_write_chunk(pp, (png_const_bytep) "IDAT", z + off,
                        zlen - off < 1 << 18 ? zlen - off : 1 << 18);
    png_write_chunk(pp, (png_const_bytep) "IEND", NULL, 0);
    png_destroy_write_struct(&pp, &ip);
    g_free(z);
    *buf = m->p, *len = m->n;
    g_free(m);
    return 0;
}

/* The map of before -> after (alpha may be NULL) into out (w x h RGB bytes) and, when st is not
 * NULL, its statistics into *st; 0, or -1 with the vips error set. */
static int edit_measure(VipsImage *before, VipsImage *after, VipsImage *alpha, unsigned char *out,
                        ts_edit_stats *st) {
    VipsImage *hb = NULL, *ha = NULL, *hm = NULL;
    edit_pixels *e = calloc(1, sizeof *e);
    float *b = floats_of(before, 3, &hb), *a = floats_of(after, 3, &ha),
          *m = alpha ? floats_of(alpha, 1, &hm) : NULL;
    size_t n = (size_t)before->Xsize * before->Ysize;
    if (!e || !b || !a || (alpha && !m)) {
        floats_free(b, hb), floats_free(a, ha), floats_free(m, hm), free(e);
        return -1;
    }
    /* Two threads: the loop costs as much as the encoding. The statistics are a good part of
     * the loop (the sum is added pixel by pixel in order), and the pipeline does not ask for
     * them: they are measured only when wanted. */
    e->b = b, e->a = a, e->m = m, e->out = out, e->stats = st != NULL;
    ts_render_split2(edit_range, e, n, 1 << 16);
    floats_free(b, hb), floats_free(a, ha), floats_free(m, hm);
    if (st) {
        long pixels = 0, changed = 0;
        double sum = 0, mx = 0;
        for (int k = 0; k < 2; k++) {
            pixels += e->part[k].pixels, changed += e->part[k].changed, sum += e->part[k].sum;
            mx = e->part[k].max > mx ? e->part[k].max : mx;
        }
        memset(st, 0, sizeof *st);
        st->pixels = pixels;
        st->mean = pixels ? sum / pixels : 0;
        st->max = mx;
        st->changed = pixels ? (double)changed / pixels : 0;
        long want = (long)ceil(0.99 * pixels), acc = 0;
        for (int i = 0; i < EDIT_BINS && pixels; i++)
            if ((acc += e->part[0].hist[i] + e->part[1].hist[i]) >= want) {
                st->p99 = i / 4.0;
                break;
            }
    }
    free(e);
    return 0;
}

/* Computes and encodes the map (touches no ctx: it may run beside the caller's thread). */
static void edit_map_make(ts_edit_map_job *j) {
    int w = j->before->Xsize, h = j->before->Ysize;
    const char *ext = extension_of(j->path);
    int png = !g_ascii_strcasecmp(ext, ".png");
    char why[300];
    size_t n = (size_t)w * h, pad = png ? (size_t)h : 0; /* (map_png's room) */
    unsigned char *out = g_try_malloc(n * 3 + pad);
    if (!out ||
        edit_measure(j->before, j->after, j->alpha, out + pad, j->want_stats ? &j->stats : NULL)) {
        j->status = TS_ERR_INTERNAL;
        snprintf(j->why, sizeof j->why,
                 "edit map: cannot read the canvases (3-band and 1-band images expected): %s",
                 ts_vips_why(why, sizeof why));
        g_free(out);
        return;
    }
    int bad;
    if (png) {
        bad = map_png(out, w, h, &j->buf, &j->len, why, sizeof why);
        g_free(out);
    } else {
        VipsImage *im = ts_render_wrap(out, n * 3, w, h, 3, VIPS_FORMAT_UCHAR);
        bad = !im;
        if (im) {
            im->Type = VIPS_INTERPRETATION_sRGB;
            bad = vips_image_write_to_buffer(im, ext, &j->buf, &j->len, "strip", TRUE, NULL);
            g_object_unref(im);
        }
        if (bad) ts_vips_why(why, sizeof why);
    }
    if (bad) {
        j->status = TS_ERR_INTERNAL;
        snprintf(j->why, sizeof j->why, "edit map: cannot encode %s: %s", j->path, why);
    }
}

static void *edit_map_thread(void *arg) {
    edit_map_make(arg);
    return NULL;
}

static void edit_map_free(ts_edit_map_job *j) {
    VipsImage *all[] = {j->before, j->after, j->alpha};
    for (int k = 0; k < 3; k++)
        if (all[k]) g_object_unref(all[k]);
    g_free(j->buf);
    free(j->path);
    free(j);
}

/* The job for ts_verify_edit_map's arguments; NULL when out of memory. A job that cannot be
 * made carries its error (status, why) for finish to report. */
static ts_edit_map_job *edit_map_new(VipsImage *before, VipsImage *after, VipsImage *alpha,
                                     const char *path, int want_stats) {
    ts_edit_map_job *j = calloc(1, sizeof *j);
    if (!j || !(j->path = strdup(path))) {
        free(j);
        return NULL;
    }
    j->want_stats = want_stats;
    int w = before->Xsize, h = before->Ysize;
    const char *ext = extension_of(path);
    if (after->Xsize != w || after->Ysize != h ||
        (alpha && (alpha->Xsize != w || alpha->Ysize != h))) {
        j->status = TS_ERR_ARGUMENT;
        snprintf(j->why, sizeof j->why, "edit map: the images differ in size");
    } else if (!ext || !vips_foreign_find_save_buffer(ext)) {
        vips_error_clear();
        j->status = TS_ERR_ARGUMENT;
        snprintf(j->why, sizeof j->why, "%s: unknown image format (use .png or .jpg)", path);
    } else {
        j->before = g_object_ref(before), j->after = g_object_ref(after);
        j->alpha = alpha ? g_object_ref(alpha) : NULL;
    }
    return j;
}

ts_edit_map_job *ts_verify_edit_map_start(VipsImage *before, VipsImage *after, VipsImage *alpha,
                                          const char *path) {
    if (!before || !after || !path) return NULL;
    /* (the statistics are measured only if finish asks for them: the pipeline does not) */
    ts_edit_map_job *j = edit_map_new(before, after, alpha, path, 0);
    if (j && !j->status) j->threaded = pthread_create(&j->thread, NULL, edit_map_thread, j) == 0;
    return j;
}

ts_status ts_verify_edit_map_finish(ts_ctx *ctx, ts_edit_map_job *j, ts_edit_stats *stats) {
    if (!j)
        return ctx ? ts_fail(ctx, TS_ERR_ARGUMENT, "ts_verify_edit_map_finish: NULL argument")
                   : TS_ERR_ARGUMENT;
    if (j->threaded)
        pthread_join(j->thread, NULL);
    else if (!j->status && ctx)
        edit_map_make(j);
    ts_status s = !ctx        ? TS_ERR_ARGUMENT
                  : j->status ? ts_fail(ctx, j->status, "%s", j->why)
                              : ts_write_file_atomic(ctx, j->path, j->buf, j->len);
    int measured = j->want_stats;
    if (!j->status && ctx && stats && !measured) {
        /* started without them: measured now, over a scratch map */
        char why[300];
        size_t n = (size_t)j->before->Xsize * j->before->Ysize;
        unsigned char *scratch = g_try_malloc(n * 3);
        measured = scratch && !edit_measure(j->before, j->after, j->alpha, scratch, &j->stats);
        if (!measured && !s)
            s = ts_fail(ctx, TS_ERR_INTERNAL, "edit map: cannot measure the change: %s",
                        ts_vips_why(why, sizeof why));
        g_free(scratch);
    }
    if (!j->status && stats && measured) *stats = j->stats;
    edit_map_free(j);
    return s;
}

ts_status ts_verify_edit_map(ts_ctx *ctx, VipsImage *before, VipsImage *after, VipsImage *alpha,
                             const char *path, ts_edit_stats *stats) {
    if (!ctx || !before || !after || !path)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_verify_edit_map: NULL argument");
    ts_edit_map_job *j = edit_map_new(before, after, alpha, path, stats != NULL);
    if (!j) return ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
    return ts_verify_edit_map_finish(ctx, j, stats);
}
