#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/internal.h"
#include "face/geometry.h"
#include "face/regions.h"
#include "render/render.h"
#include "render/srgb.h"

float ts_srgb_dec_lut[TS_SRGB_LUT_N + 2];
float ts_srgb_enc_lut[TS_SRGB_LUT_N + 2];
int ts_srgb_avx2;
static pthread_once_t srgb_once = PTHREAD_ONCE_INIT;

static void srgb_fill(void) {
#ifdef TS_SRGB_HAVE_AVX2
    ts_srgb_avx2 = ts_cpu_avx2();
#endif
    for (int i = 0; i <= TS_SRGB_LUT_N + 1; i++) {
        double v = fmin(1.0, (double)i / TS_SRGB_LUT_N);
        ts_srgb_dec_lut[i] = (float)(v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4));
        double x = v * v;
        ts_srgb_enc_lut[i] =
            (float)(255 * (x <= 0.0031308 ? 12.92 * x : 1.055 * pow(x, 1 / 2.4) - 0.055));
    }
}

void ts_srgb_init(void) {
    pthread_once(&srgb_once, srgb_fill);
}

void ts_render_edit(ts_render_job *job, const char *fmt, ...) {
    if (job->n_edits >= TS_RENDER_MAX_EDITS) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(job->edits[job->n_edits++], sizeof job->edits[0], fmt, ap);
    va_end(ap);
}

void ts_render_note(ts_render_job *job, const char *fmt, ...) {
    if (job->n_notes >= TS_RENDER_MAX_NOTES) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(job->notes[job->n_notes++], sizeof job->notes[0], fmt, ap);
    va_end(ap);
}

void ts_render_replace(VipsImage **slot, VipsImage *im) {
    if (*slot) g_object_unref(*slot);
    *slot = im;
}

ts_status ts_render_map(ts_render_job *job, ts_render_op op, void *user, const char *what) {
    VipsImage *a = op(job->rgb, user), *b = NULL;
    if (a && job->fg) b = op(job->fg, user);
    if (!a || (job->fg && !b)) {
        if (a) g_object_unref(a);
        return ts_fail(job->ctx, TS_ERR_INTERNAL, "%s: %s", what, vips_error_buffer());
    }
    ts_render_replace(&job->rgb, a);
    if (b) ts_render_replace(&job->fg, b);
    return TS_OK;
}

/* ---- per-pixel maps ----------------------------------------------------------------------- */

static void free_buffer(VipsImage *im, void *buf) {
    (void)im;
    g_free(buf);
}

/* A map over pixels [base + first, base + first + n), in chunks: per chunk, which fg pixels
 * equal rgb's input is noted first (rgb may be mapped in place), then rgb is mapped, then fg:
 * a pixel equal to rgb's input takes rgb's output (the op is per pixel, so the result is the
 * same, and most of fg, where alpha is 1 and outside the matte, equals rgb). */
typedef struct map_job {
    ts_render_px_op op;
    void *user;
    const float *in[2];
    float *out[2];
    int n_img;
    size_t base;
    /* a box narrower than the canvas: its rows are mapped from x0 to x1 (x1 - x0 < w), the
     * rest of each row kept (copied where the output is not the input) */
    size_t w, x0, x1;
} map_job;

/* Whether pixel i is bit for bit the same in a and b. */
static inline int same_px(const float *a, const float *b, size_t i) {
    uint32_t x[3], y[3];
    memcpy(x, a + 3 * i, sizeof x);
    memcpy(y, b + 3 * i, sizeof y);
    return x[0] == y[0] && x[1] == y[1] && x[2] == y[2];
}

#ifdef TS_SRGB_HAVE_AVX2
/* same_px for pixels [first, first + k rounded down to 8) into same[0..), eight pixels (three
 * 32-byte words each of a and b) at a time; returns how many. */
TS_SRGB_AVX2 static size_t same_px8(const float *a, const float *b, size_t first, size_t k,
                                    uint8_t *same) {
    size_t j = 0;
    for (; j + 8 <= k; j += 8) {
        const float *p = a + 3 * (first + j), *q = b + 3 * (first + j);
        uint32_t bits = 0;
        for (int w = 0; w < 3; w++) {
            __m256i e = _mm256_cmpeq_epi32(_mm256_loadu_si256((const __m256i *)(p + 8 * w)),
                                           _mm256_loadu_si256((const __m256i *)(q + 8 * w)));
            bits |= (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(e)) << (8 * w);
        }
        /* a pixel is its three bits */
        if (bits == 0xffffff)
            memset(same + j, 1, 8);
        else
            for (int l = 0; l < 8; l++) same[j + l] = (bits >> (3 * l) & 7) == 7;
    }
    return j;
}
#endif

/* The map over pixels [c0, c0 + n). */
static void map_span(const map_job *m, size_t c0, size_t n) {
    enum { CHUNK = 4096 };
    uint8_t same[CHUNK];
    for (size_t c = c0, end = c + n; c < end; c += CHUNK) {
        size_t k = end - c < CHUNK ? end - c : CHUNK;
        if (m->n_img == 2) {
            size_t j = 0;
#ifdef TS_SRGB_HAVE_AVX2
            if (ts_srgb_avx2) j = same_px8(m->in[1], m->in[0], c, k, same);
#endif
            for (; j < k; j++) same[j] = (uint8_t)same_px(m->in[1], m->in[0], c + j);
        }
        m->op(m->in[0], m->out[0], c, k, m->user);
        if (m->n_img < 2) continue;
        /* the runs found with memchr (long, mostly) */
        for (size_t j = 0; j < k;) {
            const uint8_t *z = memchr(same + j, 0, k - j);
            size_t e = z ? (size_t)(z - same) : k;
            if (e > j)
                memcpy(m->out[1] + 3 * (c + j), m->out[0] + 3 * (c + j),
                       3 * sizeof(float) * (e - j));
            j = e;
            if (j == k) break;
            z = memchr(same + j, 1, k - j);
            e = z ? (size_t)(z - same) : k;
            m->op(m->in[1], m->out[1], c + j, e - j, m->user);
            j = e;
        }
    }
}

static void map_range(size_t first, size_t n, void *user) {
    const map_job *m = user;
    map_span(m, m->base + first, n);
}

/* The box's rows [first, first + n) (counted from its first row, base / w). */
static void map_box_rows(size_t first, size_t n, void *user) {
    const map_job *m = user;
    size_t w = m->w;
    for (size_t r = m->base / w + first, end = r + n; r < end; r++) {
        for (int k = 0; k < m->n_img; k++)
            if (m->out[k] != m->in[k]) {
                memcpy(m->out[k] + 3 * r * w, m->in[k] + 3 * r * w, sizeof(float) * 3 * m->x0);
                memcpy(m->out[k] + 3 * (r * w + m->x1), m->in[k] + 3 * (r * w + m->x1),
                       sizeof(float) * 3 * (w - m->x1));
            }
        map_span(m, r * w + m->x0, m->x1 - m->x0);
    }
}

/* The key under which ts_render_wrap marks the buffer its image owns. */
static const char OWN_KEY[] = "ts-render-own";

/* ---- big buffers ------------------------------------------------------------------------ */

/* The colour stages' canvases and box-sized scratch, from one place. While a photo's looks are
 * made (a ts_render_cache lives: ts_render_big_pool_arm .. ts_render_big_pool_flush), a buffer of
 * 1 MiB or more is a mapping of its own, and when freed it waits in a small pool for the next
 * request, which takes the smallest that holds it (else the largest, grown: its pages stay, only
 * the new tail is fresh); retouch carves its planes from what waits (ts_render_big_take_waiting).
 * The next look's canvases and scratch then find the last look's pages already there. From the
 * heap they did not: the identity reading's malloc_trim (verify.c) hands the heap's free pages
 * back to the system every look, and a fresh 4 KiB page costs the kernel a fault and its
 * zeroing, some 15,000 of them a look (~4,000 now, mostly libvips' own buffers). At most
 * BIG_POOL_N buffers and BIG_POOL_CAP bytes wait (what comes back beyond that is unmapped at
 * once), and what waits is what the last look used; the look's peak (retouch's planes) finds
 * the pool empty, as retouch holds it all. Not armed (a look made on its own), and under
 * AddressSanitizer (which then sees every overflow), they come from the heap as before. Mapped
 * in huge pages instead, each cost a fault per 2 MiB and the zeroing, and on this machine (a VM
 * whose fresh huge pages are sometimes slow to back) the colour stages took 4 ms a look more
 * than from the heap, with spikes of tens of ms. A buffer handed out holds what its last user
 * left there, as one from malloc may: every caller writes each byte it reads (rendered with
 * every pooled buffer filled with NaNs first, the 5 x 8 reference set came out the same to the
 * bit). */
enum { BIG_HEAD = 64 }; /* bytes before the buffer; keeps it 64-byte aligned */

#if defined(MAP_ANONYMOUS) && defined(MREMAP_MAYMOVE) && !defined(TS_UNDER_ASAN)
#define BIG_POOLED 1
#endif

#define BIG_MIN ((size_t)1 << 20)       /* smaller ones come from the heap */
#define BIG_POOL_N TS_RENDER_BIG_POOL_N /* buffers waiting at most */
#define BIG_POOL_CAP ((size_t)48 << 20) /* bytes waiting at most */

/* What stands before each buffer: its mapping's length (head included), 0 when malloc'd. */
typedef struct big_head {
    size_t len;
} big_head;

static struct {
    pthread_mutex_t lock;
    int armed;
    int n;
    size_t parked; /* bytes waiting */
    struct {
        uint8_t *map;
        size_t len;
    } m[BIG_POOL_N];
} big_pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

void ts_render_big_pool_arm(void) {
    pthread_mutex_lock(&big_pool.lock);
    big_pool.armed++;
    pthread_mutex_unlock(&big_pool.lock);
}

void ts_render_big_pool_flush(void) {
    pthread_mutex_lock(&big_pool.lock);
    if (big_pool.armed > 0 && --big_pool.armed == 0) {
        for (int i = 0; i < big_pool.n; i++) munmap(big_pool.m[i].map, big_pool.m[i].len);
        big_pool.n = 0, big_pool.parked = 0;
    }
    pthread_mutex_unlock(&big_pool.lock);
}

#ifdef BIG_POOLED
/* A mapping of len bytes for bytes of buffer and the head: a waiting one (the smallest that
 * holds it, else the largest, grown), else a fresh one; NULL when not armed or out of memory. */
static uint8_t *big_take(size_t bytes, size_t *len) {
    size_t page = (size_t)4096, want = (bytes + BIG_HEAD + page - 1) & ~(page - 1);
    uint8_t *m = NULL;
    size_t have = 0;
    pthread_mutex_lock(&big_pool.lock);
    int armed = big_pool.armed > 0, best = -1;
    for (int i = 0; armed && i < big_pool.n; i++) {
        size_t l = big_pool.m[i].len, b = best < 0 ? 0 : big_pool.m[best].len;
        if (best < 0 || (l >= want ? b < want || l < b : b < want && l > b)) best = i;
    }
    if (best >= 0) {
        m = big_pool.m[best].map, have = big_pool.m[best].len;
        big_pool.parked -= have;
        big_pool.m[best] = big_pool.m[--big_pool.n];
    }
    pthread_mutex_unlock(&big_pool.lock);
    if (!armed) return NULL;
    if (m && have < want) {
        void *g = mremap(m, have, want, MREMAP_MAYMOVE);
        if (g == MAP_FAILED)
            munmap(m, have), m = NULL;
        else
            m = g, have = want;
    }
    if (!m) {
        m = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return NULL;
        have = want;
    }
    *len = have;
    return m;
}
#endif

void *ts_render_big_alloc(size_t bytes) {
#ifdef BIG_POOLED
    size_t len;
    uint8_t *m = bytes >= BIG_MIN ? big_take(bytes, &len) : NULL;
    if (m) {
        ((big_head *)m)->len = len;
        return m + BIG_HEAD;
    }
#endif
    uint8_t *h = malloc(bytes + BIG_HEAD);
    if (!h) return NULL;
    ((big_head *)h)->len = 0;
    return h + BIG_HEAD;
}

void *ts_render_big_take_waiting(size_t *bytes) {
    uint8_t *m = NULL;
    pthread_mutex_lock(&big_pool.lock);
    int best = -1;
    for (int i = 0; i < big_pool.n; i++)
        if (best < 0 || big_pool.m[i].len > big_pool.m[best].len) best = i;
    if (best >= 0) {
        m = big_pool.m[best].map, *bytes = big_pool.m[best].len - BIG_HEAD;
        big_pool.parked -= big_pool.m[best].len;
        big_pool.m[best] = big_pool.m[--big_pool.n];
    }
    pthread_mutex_unlock(&big_pool.lock);
    return m ? m + BIG_HEAD : NULL;
}

void ts_render_big_free(void *buf) {
    if (!buf) return;
    uint8_t *h = (uint8_t *)buf - BIG_HEAD;
    size_t len = ((big_head *)h)->len;
    if (!len) {
        free(h);
        return;
    }
    pthread_mutex_lock(&big_pool.lock);
    int kept =
        big_pool.armed > 0 && big_pool.n < BIG_POOL_N && big_pool.parked + len <= BIG_POOL_CAP;
    if (kept) {
        big_pool.m[big_pool.n].map = h, big_pool.m[big_pool.n++].len = len;
        big_pool.parked += len;
    }
    pthread_mutex_unlock(&big_pool.lock);
    if (!kept) munmap(h, len);
}

static void free_big(VipsImage *im, void *buf) {
    (void)im;
    ts_render_big_free(buf);
}

/* A memory image around buf that owns it: on_close(im, buf) frees it with the image, release(buf)
 * at once when the image cannot be made. */
static VipsImage *wrap_owned(void *buf, size_t bytes, int w, int h, int bands, VipsBandFormat fmt,
                             void (*release)(void *), GCallback on_close) {
    VipsImage *im = vips_image_new_from_memory(buf, bytes, w, h, bands, fmt);
    if (!im) {
        release(buf);
        return NULL;
    }
    g_signal_connect(im, "postclose", on_close, buf);
    g_object_set_data(G_OBJECT(im), OWN_KEY, buf);
    im->Type = bands == 3 ? VIPS_INTERPRETATION_sRGB : VIPS_INTERPRETATION_B_W;
    return im;
}

VipsImage *ts_render_wrap_big(void *buf, size_t bytes, int w, int h, int bands,
                              VipsBandFormat fmt) {
    return wrap_owned(buf, bytes, w, h, bands, fmt, ts_render_big_free, G_CALLBACK(free_big));
}

VipsImage *ts_render_wrap(void *buf, size_t bytes, int w, int h, int bands, VipsBandFormat fmt) {
    return wrap_owned(buf, bytes, w, h, bands, fmt, g_free, G_CALLBACK(free_buffer));
}

void ts_render_own(VipsImage *im) {
    if (im && im->data) g_object_set_data(G_OBJECT(im), OWN_KEY, im->data);
}

/* Whether a per-pixel map may write im's pixels in place: a memory image whose buffer is its
 * own (libvips' or ts_render_wrap's) and that nothing but the job references (a snapshot, the
 * per-photo cache or libvips' operation cache would hold a reference of their own). In place
 * the result is the same image a new one would be, without a new canvas: 17 MB of fresh pages
 * cost more than the map itself. */
static int writable(VipsImage *im) {
    return G_OBJECT(im)->ref_count == 1 && im->data &&
           (im->dtype == VIPS_IMAGE_SETBUF ||
            (im->dtype == VIPS_IMAGE_SETBUF_FOREIGN &&
             g_object_get_data(G_OBJECT(im), OWN_KEY) == (void *)im->data));
}

/* A new image of in's shape around buf (ts_render_big_alloc'd, freed with the image); NULL, buf
 * freed, on failure. */
static VipsImage *wrap_like(float *buf, VipsImage *in) {
    VipsImage *im = ts_render_wrap_big(buf, VIPS_IMAGE_SIZEOF_IMAGE(in), in->Xsize, in->Ysize,
                                       in->Bands, VIPS_FORMAT_FLOAT);
    if (im) im->Type = in->Type, im->Xres = in->Xres, im->Yres = in->Yres;
    return im;
}

ts_status ts_render_map_px(ts_render_job *job, ts_render_px_op op, void *user, const char *what) {
    return ts_render_map_px_rows(job, op, user, 0, job->rgb ? job->rgb->Ysize : 0, what);
}

ts_status ts_render_map_px_rows(ts_render_job *job, ts_render_px_op op, void *user, int y0, int y1,
                                const char *what) {
    return ts_render_map_px_box(job, op, user, 0, y0, job->rgb ? job->rgb->Xsize : 0, y1, what);
}

ts_status ts_render_map_px_box(ts_render_job *job, ts_render_px_op op, void *user, int x0, int y0,
                               int x1, int y1, const char *what) {
    VipsImage *src[2] = {job->rgb, job->fg}, *mem[2] = {NULL, NULL}, *res[2] = {NULL, NULL};
    int n_img = job->fg ? 2 : 1, ok = 1, inplace[2] = {0, 0};
    for (int k = 0; k < n_img && ok; k++) {
        ok = src[k] && src[k]->Bands == 3 && src[k]->BandFmt == VIPS_FORMAT_FLOAT;
        if (!ok) break;
        inplace[k] = writable(src[k]);
        ok = (mem[k] = vips_image_copy_memory(src[k])) != NULL;
        if (ok && k == 1) ok = mem[1]->Xsize == mem[0]->Xsize && mem[1]->Ysize == mem[0]->Ysize;
    }
    float *buf[2] = {NULL, NULL};
    map_job mj = {op, user, {NULL, NULL}, {NULL, NULL}, n_img, 0, 0, 0, 0};
    size_t w = ok ? (size_t)mem[0]->Xsize : 0, h = ok ? (size_t)mem[0]->Ysize : 0;
    y0 = y0 < 0 ? 0 : y0, y1 = y1 > (int)h ? (int)h : y1;
    x0 = x0 < 0 ? 0 : x0, x1 = x1 > (int)w ? (int)w : x1;
    if (x1 <= x0) y1 = y0; /* nothing to map */
    for (int k = 0; k < n_img && ok; k++) {
        mj.in[k] = (const float *)VIPS_IMAGE_ADDR(mem[k], 0, 0);
        if (inplace[k]) {
            mj.out[k] = (float *)VIPS_IMAGE_ADDR(mem[k], 0, 0);
            continue;
        }
        mj.out[k] = buf[k] = ts_render_big_alloc(VIPS_IMAGE_SIZEOF_IMAGE(mem[k]));
        ok = buf[k] != NULL;
        /* the rows left alone keep their values */
        if (ok && y0 > 0) memcpy(buf[k], mj.in[k], sizeof(float) * 3 * w * (size_t)y0);
        if (ok && y1 < (int)h)
            memcpy(buf[k] + 3 * w * (size_t)y1, mj.in[k] + 3 * w * (size_t)y1,
                   sizeof(float) * 3 * w * (h - (size_t)y1));
    }
    if (ok && y1 > y0) {
        mj.base = w * (size_t)y0;
        if (x0 == 0 && x1 == (int)w) {
            ts_render_split2(map_range, &mj, w * (size_t)(y1 - y0), 65536);
        } else {
            mj.w = w, mj.x0 = (size_t)x0, mj.x1 = (size_t)x1;
            ts_render_split2(map_box_rows, &mj, (size_t)(y1 - y0), 65536 / (size_t)(x1 - x0) + 1);
        }
    }
    for (int k = 0; k < n_img && ok; k++) {
        if (inplace[k]) continue;
        res[k] = wrap_like(buf[k], mem[k]);
        buf[k] = NULL;
        ok = res[k] != NULL;
    }
    for (int k = 0; k < 2; k++) {
        ts_render_big_free(buf[k]);
        if (mem[k]) g_object_unref(mem[k]);
    }
    if (!ok) {
        for (int k = 0; k < 2; k++)
            if (res[k]) g_object_unref(res[k]);
        return ts_fail(job->ctx, TS_ERR_INTERNAL, "%s: %s", what,
                       vips_error_buffer()[0] ? vips_error_buffer()
                                              : "the canvas must be 3-band float");
    }
    if (res[0]) ts_render_replace(&job->rgb, res[0]);
    if (res[1]) ts_render_replace(&job->fg, res[1]);
    return TS_OK;
}

/* ---- face masks in bands ------------------------------------------------------------------ */

/* The rasteriser visits every shape of a region on every sub-row, and the skin and face regions
 * are the mesh's ~850 triangles: a 1000-row skin mask cost 16 ms. Made in bands of BAND rows,
 * each band from the triangles that reach it (a triangle adds nothing to rows it does not
 * reach), it visits a few dozen per sub-row. */
enum { BAND = 32 };

typedef struct band_job {
    const ts_geom *g;
    const ts_face_mesh *mesh; /* in box pixels */
    const float (*tri_y)[2];  /* each triangle's rows, least and most y */
    const float (*lm)[2];
    int region, x0, y0, w, h;
    uint8_t *out;
    int fail[2];
} band_job;

static void band_rows(size_t first, size_t n, void *user) {
    band_job *b = user;
    int half = first > 0;
    uint16_t(*tri)[3] = malloc(sizeof *tri * (size_t)b->g->n_triangles);
    ts_face_mesh *mesh = malloc(sizeof *mesh);
    if (!tri || !mesh) {
        b->fail[half] = TS_ERR_NOMEM;
        goto done;
    }
    *mesh = *b->mesh;
    ts_geom sub = *b->g;
    sub.triangles = tri;
    for (size_t k = first; k < first + n; k++) {
        int r0 = (int)k * BAND, r1 = r0 + BAND < b->h ? r0 + BAND : b->h, nt = 0;
        for (int t = 0; t < b->g->n_triangles; t++)
            if (b->tri_y[t][1] >= r0 - 1 && b->tri_y[t][0] <= r1 + 1)
                memcpy(tri[nt++], b->g->triangles[t], sizeof tri[0]);
        if (!nt) continue; /* nothing reaches these rows: they stay 0 */
        sub.n_triangles = nt;
        /* the mesh moved to the band's first row (the box's own moved by whole pixels) */
        for (int i = 0; i < TS_LANDMARKS; i++) mesh->pts[i][1] = b->lm[i][1] - (float)(b->y0 + r0);
        int st = ts_face_region_mask(mesh, &sub, (ts_face_region)b->region, b->w, r1 - r0, 1, 0,
                                     b->out + (size_t)r0 * b->w);
        if (st) {
            b->fail[half] = st;
            break;
        }
    }
done:
    free(tri), free(mesh);
}

/* The last skin or face mask made for a job, for the next request of the same landmarks: tone
 * and light both measure the skin of the same canvas, over boxes of their own. A mask holds
 * nothing outside the pixels its landmarks span (the triangles' corners are landmarks), so a box
 * that holds all of those that lie in another box gives that box's mask too. */
struct ts_render_kept_mask {
    int region, x0, y0, w, h;
    float lm[TS_LANDMARKS][2];
    uint8_t *mask;
};

/* Fills out (the box x0, y0, w, h) from the job's kept mask when it was made for the same
 * region and landmarks and holds all of their pixels that lie in the box; returns 1 then, else
 * 0. */
/* The box of the job's landmarks: x0, y0, x1, y1 in b; 0 when they are not finite. */
static int landmark_box(const ts_render_job *job, float b[4]) {
    b[0] = b[1] = INFINITY, b[2] = b[3] = -INFINITY;
    for (int i = 0; i < TS_LANDMARKS; i++) {
        b[0] = fminf(b[0], job->lm[i][0]), b[2] = fmaxf(b[2], job->lm[i][0]);
        b[1] = fminf(b[1], job->lm[i][1]), b[3] = fmaxf(b[3], job->lm[i][1]);
    }
    return b[0] <= b[2] && b[1] <= b[3];
}

static int kept_mask_get(const ts_render_job *job, int region, int x0, int y0, int w, int h,
                         uint8_t *out) {
    const struct ts_render_kept_mask *k = job->kept_mask;
    if (!k || k->region != region || memcmp(k->lm, job->lm, sizeof k->lm)) return 0;
    float lb[4];
    if (!landmark_box(job, lb)) return 0;
    float lx0 = lb[0], ly0 = lb[1], lx1 = lb[2], ly1 = lb[3];
    /* the pixels the landmarks span, within the box */
    double px0 = fmax(x0, floor(lx0)), py0 = fmax(y0, floor(ly0));
    double px1 = fmin(x0 + w - 1, floor(lx1)), py1 = fmin(y0 + h - 1, floor(ly1));
    memset(out, 0, (size_t)w * h);
    if (px0 > px1 || py0 > py1) return 1;
    if (px0 < k->x0 || py0 < k->y0 || px1 >= k->x0 + k->w || py1 >= k->y0 + k->h) return 0;
    for (int y = (int)py0; y <= (int)py1; y++)
        memcpy(out + (size_t)(y - y0) * w + ((int)px0 - x0),
               k->mask + (size_t)(y - k->y0) * k->w + ((int)px0 - k->x0), (size_t)(px1 - px0 + 1));
    return 1;
}

/* Keeps mask (w x h at x0, y0; taken over) as the job's kept mask. */
static void kept_mask_put(ts_render_job *job, int region, int x0, int y0, int w, int h,
                          uint8_t *mask) {
    struct ts_render_kept_mask *k = job->kept_mask;
    if (!k && !(k = job->kept_mask = calloc(1, sizeof *k))) {
        free(mask);
        return;
    }
    free(k->mask);
    k->mask = mask;
    k->region = region, k->x0 = x0, k->y0 = y0, k->w = w, k->h = h;
    memcpy(k->lm, job->lm, sizeof k->lm);
}

/* The region's mask rasterised over the box (x0, y0, w, h). */
static ts_status rasterise(ts_render_job *job, int region, int x0, int y0, int w, int h,
                           uint8_t *out) {
    const ts_geom *g = job->ctx->geom;
    ts_face_mesh *mesh = calloc(1, sizeof *mesh);
    if (!mesh) return ts_fail(job->ctx, TS_ERR_NOMEM, "face mask: out of memory");
    for (int i = 0; i < TS_LANDMARKS; i++)
        mesh->pts[i][0] = job->lm[i][0] - (float)x0, mesh->pts[i][1] = job->lm[i][1] - (float)y0;
    ts_status st;
    if ((region != TS_REGION_SKIN && region != TS_REGION_FACE) || !g || g->n_triangles <= 0 ||
        !g->triangles || w <= 0 || h <= BAND) {
        st = ts_face_region_mask(mesh, g, (ts_face_region)region, w, h, 1, 0, out);
    } else {
        float(*tri_y)[2] = malloc(sizeof *tri_y * (size_t)g->n_triangles);
        if (!tri_y) {
            free(mesh);
            return ts_fail(job->ctx, TS_ERR_NOMEM, "face mask: out of memory");
        }
        for (int t = 0; t < g->n_triangles; t++) {
            float lo = INFINITY, hi = -INFINITY;
            for (int v = 0; v < 3; v++) {
                float y = mesh->pts[g->triangles[t][v]][1];
                lo = y < lo ? y : lo, hi = y > hi ? y : hi;
            }
            tri_y[t][0] = lo, tri_y[t][1] = hi;
        }
        memset(out, 0, (size_t)w * h);
        band_job b = {
            g,   mesh,  (const float(*)[2])tri_y, (const float(*)[2])job->lm, region, x0, y0, w, h,
            out, {0, 0}};
        ts_render_split2(band_rows, &b, (size_t)(h + BAND - 1) / BAND, 4);
        free(tri_y);
        st = b.fail[0] ? b.fail[0] : b.fail[1];
    }
    free(mesh);
    if (st)
        return ts_fail(job->ctx, st, "face mask: %s",
                       st == TS_ERR_NOMEM ? "out of memory" : "could not be made");
    return TS_OK;
}

ts_status ts_render_region_mask(ts_render_job *job, int region, int x0, int y0, int w, int h,
                                uint8_t *out) {
    int shared = region == TS_REGION_SKIN || region == TS_REGION_FACE;
    if (!shared || w <= 0 || h <= 0) return rasterise(job, region, x0, y0, w, h, out);
    if (kept_mask_get(job, region, x0, y0, w, h, out)) return TS_OK;
    /* Rasterised always over the same box, the pixels the landmarks span, and cut to the box
     * asked for: a pixel's value then does not depend on which stage asked first, over which
     * box. (Rasterised over each stage's own box, the antialiased edge came out a little
     * different, so a look's light and retouch depended on whether tone had measured its
     * canvas or found the measurements kept from an earlier look: 0.04 dE00 on average.) */
    float lb[4];
    if (!landmark_box(job, lb) || lb[2] - lb[0] > 1e5f || lb[3] - lb[1] > 1e5f)
        return rasterise(job, region, x0, y0, w, h, out);
    int cx0 = (int)floorf(lb[0]), cy0 = (int)floorf(lb[1]);
    int cw = (int)floorf(lb[2]) - cx0 + 1, ch = (int)floorf(lb[3]) - cy0 + 1;
    uint8_t *span = malloc((size_t)cw * ch);
    if (!span) return ts_fail(job->ctx, TS_ERR_NOMEM, "face mask: out of memory");
    ts_status st = rasterise(job, region, cx0, cy0, cw, ch, span);
    if (st) {
        free(span);
        return st;
    }
    kept_mask_put(job, region, cx0, cy0, cw, ch, span);
    if (kept_mask_get(job, region, x0, y0, w, h, out)) return TS_OK;
    return rasterise(job, region, x0, y0, w, h, out); /* (the copy could not be kept) */
}

typedef struct split_part {
    ts_render_range_fn fn;
    void *user;
    size_t first, n;
} split_part;

static void *split_run(void *arg) {
    const split_part *p = arg;
    p->fn(p->first, p->n, p->user);
    return NULL;
}

void ts_render_split2(ts_render_range_fn fn, void *user, size_t n, size_t min_n) {
    split_part h = {fn, user, n / 2, n - n / 2};
    pthread_t th;
    int threaded = n >= min_n && pthread_create(&th, NULL, split_run, &h) == 0;
    fn(0, n / 2, user);
    if (threaded)
        pthread_join(th, NULL);
    else
        fn(h.first, h.n, user);
}

ts_status ts_render_colour_canvas(ts_render_job *job, const char *stage) {
    ts_srgb_init();
    VipsImage *im = job->rgb;
    if (!im || im->Bands != 3 || im->BandFmt != VIPS_FORMAT_FLOAT)
        return ts_fail(job->ctx, TS_ERR_ARGUMENT, "%s: the canvas must be 3-band float", stage);
    return TS_OK;
}

void ts_render_job_clear(ts_render_job *job) {
    ts_render_replace(&job->fg, NULL);
    ts_render_replace(&job->rgb, NULL);
    ts_render_replace(&job->alpha, NULL);
    if (job->kept_mask) free(job->kept_mask->mask);
    free(job->kept_mask);
    job->kept_mask = NULL;
}
