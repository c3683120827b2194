/* `trueshot make` benchmark (issue 6, "Benchmark"): a 12-MP photo to six looks.
 *
 * The photo: a 12-MP JPEG made from a real one (`vips resize franck_02159.jpg 12mp.jpg[Q=90]
 * 5.6`, 4032x3226), or any photo given with --photo. Six looks (linkedin, corporate,
 * tech-startup, creative, medical, team-directory), the first output of each, rendered with the
 * same library call as `trueshot make` (ts_render_look: frame, tone, light, retouch, background,
 * export, identity gate, identity of the written file, edit map).
 *
 * Every measured run is a fresh process (so its peak RSS is its own, as for the command), in
 * three kinds, interleaved so a change in the machine's load hits all three alike:
 *   baseline  plain libvips: decode the same file and encode it as JPEG Q90;
 *   make      ctx + open + face analysis + the decode the looks are made from, chosen as make
 *             chooses it (ts_render_decode_shrink: the six looks take at most 0.45 of the
 *             12-MP photo, so its half-size decode, which adopts the face analysis) + matte with
 *             the noise floor beside it (ts_render_prepare; the decode is made there, on the
 *             matte's second thread, as in make) + six looks, verification on;
 *   noverify  the same without the identity checks (for the share verification costs).
 * Printed: the medians over the runs, per step and per look, the budgets and the ratios to the
 * baseline. The load average is printed too: on a loaded machine every figure is slower.
 *
 *   bench_make [--runs N] [--photo FILE.jpg] [--source franck_02159.jpg] [--keep DIR] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <vips/vips.h>

#include "core/internal.h"
#include "render/pipeline.h"
#include "render/prepare.h"
#include "styles/style.h"
#include "trueshot.h"

#define N_LOOKS 6
static const char *const looks[N_LOOKS] = {"linkedin", "corporate", "tech-startup",
                                           "creative", "medical",   "team-directory"};
#define BUDGET_TOTAL_MS 1000.0
#define BUDGET_LOOK_MS 60.0
#define BUDGET_RSS_MB 400.0

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *t, int n) {
    if (n <= 0) return 0;
    double *s = malloc(sizeof *s * (size_t)n);
    memcpy(s, t, sizeof *s * (size_t)n);
    qsort(s, (size_t)n, sizeof *s, cmp_d);
    double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    free(s);
    return m;
}

/* ---- children: one measured run each, "key value" lines on stdout ------------------------ */

static int child_baseline(const char *photo, const char *dir) {
    if (VIPS_INIT("bench_make")) return 1;
    char out[1100];
    snprintf(out, sizeof out, "%s/baseline.jpg", dir);
    double t0 = now_ms();
    VipsImage *im = vips_image_new_from_file(photo, "access", VIPS_ACCESS_SEQUENTIAL, NULL);
    if (!im || vips_jpegsave(im, out, "Q", 90, NULL)) {
        fprintf(stderr, "bench_make: baseline: %s\n", vips_error_buffer());
        return 1;
    }
    g_object_unref(im);
    printf("total %.3f\nrss %.1f\n", now_ms() - t0, peak_rss_mb());
    unlink(out);
    return 0;
}

static int child_make(const char *photo, const char *dir, int verify) {
    double t0 = now_ms(), t;
    ts_ctx *ctx;
    if (ts_ctx_new(NULL, &ctx) != TS_OK) {
        fprintf(stderr, "bench_make: %s\n", ts_last_error());
        return 1;
    }
    ts_style *styles[N_LOOKS] = {0};
    for (int i = 0; i < N_LOOKS; i++)
        if (ts_style_load(ctx, looks[i], &styles[i]) != TS_OK) {
            fprintf(stderr, "bench_make: %s\n", ts_ctx_error(ctx));
            return 1;
        }
    printf("ctx %.3f\n", (t = now_ms()) - t0);
    double t_start = t; /* the photo's work starts here */
    /* as make: the models load on a thread while the photo is opened and decoded for analysis */
    ts_ctx_preload(ctx, TS_RENDER_MODELS);
    ts_photo *p = NULL;
    const ts_face_analysis *face = NULL;
    ts_matte *matte = NULL;
    ts_verify_floor floor = {0};
    /* (no full decode here: as in `trueshot make`, the matte makes it on a thread of its own
     * while its network runs) */
    if (ts_photo_open(ctx, photo, &p) != TS_OK) goto fail;
    printf("open %.3f\n", now_ms() - t), t = now_ms();
    if (!ts_photo_analysis(ctx, p, NULL) || ts_photo_subject(ctx, p, &face) != TS_OK) goto fail;
    printf("analysis %.3f\n", now_ms() - t), t = now_ms();
    /* the decode the looks are rendered from, as `trueshot make` chooses it */
    _Alignas(16) char params[N_LOOKS][512];
    const void *pp[N_LOOKS];
    for (int i = 0; i < N_LOOKS; i++) {
        if (ts_style_frame_params(ctx, styles[i], 0, params[i]) != TS_OK) goto fail;
        pp[i] = params[i];
    }
    int k = ts_render_decode_shrink(ctx, p, pp, N_LOOKS);
    if (k > 1) {
        ts_photo *shrunk = NULL;
        if (ts_photo_open_shrunk(ctx, photo, k, &shrunk) != TS_OK) goto fail;
        ts_photo_adopt_analysis(ctx, shrunk, p); /* as make does */
        ts_photo_unref(p);
        p = shrunk;
    }
    printf("shrink %d\n", k);
    printf("decode_choice %.3f\n", now_ms() - t), t = now_ms();
    /* the matte, and the noise floor beside it (as `trueshot make` does) */
    if (ts_render_prepare(ctx, p, &face, &matte, verify ? &floor : NULL) != TS_OK) goto fail;
    printf("matte %.3f\n", now_ms() - t), t = now_ms();
    ts_render_cache *cache = ts_render_cache_new();
    double written[N_LOOKS]; /* each file's reading, settled while the next look is made */
    for (int i = 0; i < N_LOOKS; i++) {
        char path[1100], map[1100];
        const export_params *ep = ts_style_params(styles[i], "export");
        snprintf(path, sizeof path, "%s/%s%s", dir, looks[i], ts_export_extension(ep->format));
        snprintf(map, sizeof map, "%s/%s-editmap.png", dir, looks[i]);
        ts_look_request req = {.style = styles[i],
                               .frame_params = params[i],
                               .path = path,
                               .edit_map = map,
                               .floor = &floor,
                               .no_verify = !verify,
                               .cache = cache,
                               .written_mean = &written[i],
                               .last = i == N_LOOKS - 1};
        ts_look_result r;
        if (ts_render_look(ctx, p, face, matte, &req, &r) != TS_OK) goto fail;
        if (r.error[0]) {
            fprintf(stderr, "bench_make: %s: %s\n", looks[i], r.error);
            return 1;
        }
        printf("look%d %.3f\n", i, r.t.total * 1e3);
        printf("cpu_look %.3f\ncpu_frame %.3f\ncpu_tone %.3f\ncpu_light %.3f\ncpu_retouch %.3f\n"
               "cpu_background %.3f\ncpu_export %.3f\ncpu_verify %.3f\ncpu_editmap %.3f\n",
               r.cpu.total * 1e3, r.cpu.frame * 1e3, r.cpu.tone * 1e3, r.cpu.light * 1e3,
               r.cpu.retouch * 1e3, r.cpu.background * 1e3, r.cpu.export_ * 1e3, r.cpu.verify * 1e3,
               r.cpu.edit_map * 1e3);
        printf("frame %.3f\ntone %.3f\nlight %.3f\nretouch %.3f\nbackground %.3f\nexport %.3f\n"
               "verify %.3f\neditmap %.3f\n",
               r.t.frame * 1e3, r.t.tone * 1e3, r.t.light * 1e3, r.t.retouch * 1e3,
               r.t.background * 1e3, r.t.export_ * 1e3, r.t.verify * 1e3, r.t.edit_map * 1e3);
        if (verify) printf("id %.5f\n", r.id_mean);
        t = now_ms();
    }
    /* the last file's reading, still running after the loop, belongs in the total */
    ts_render_cache_settle(cache);
    t = now_ms();
    for (int i = 0; verify && i < N_LOOKS; i++) printf("id_written %.5f\n", written[i]);
    printf("total %.3f\nwithctx %.3f\nrss %.1f\n", t - t_start, t - t0, peak_rss_mb());
    ts_render_cache_free(cache);
    ts_matte_free(matte);
    ts_photo_unref(p);
    for (int i = 0; i < N_LOOKS; i++) ts_style_free(styles[i]);
    ts_ctx_free(ctx);
    return 0;
fail:
    fprintf(stderr, "bench_make: %s\n", ts_ctx_error(ctx));
    return 1;
}

/* ---- parent ------------------------------------------------------------------------------ */

enum { K_BASE, K_MAKE, K_NOVERIFY, KINDS };
static const char *const kind_arg[KINDS] = {"baseline", "make", "noverify"};

#define MAX_RUNS 64
#define MAX_KEYS 48
typedef struct series {
    char key[MAX_KEYS][64];
    double v[MAX_KEYS][MAX_RUNS * N_LOOKS];
    int n[MAX_KEYS];
    int nk;
} series;

static void add(series *s, const char *key, double v) {
    int k = 0;
    while (k < s->nk && strcmp(s->key[k], key)) k++;
    if (k == s->nk) {
        if (s->nk == MAX_KEYS) return;
        snprintf(s->key[s->nk++], sizeof s->key[0], "%s", key);
    }
    if (s->n[k] < MAX_RUNS * N_LOOKS) s->v[k][s->n[k]++] = v;
}

static double med(const series *s, const char *key) {
    for (int k = 0; k < s->nk; k++)
        if (!strcmp(s->key[k], key)) return median(s->v[k], s->n[k]);
    return 0;
}

/* Runs one child and adds its lines to s. A step's values (one per look) all go into the same
 * series: its median over every (run, look) pair is what the step costs one look. */
static int run_child(const char *self, int kind, const char *photo, const char *dir, series *s) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "'%s' --child %s '%s' '%s'", self, kind_arg[kind], photo, dir);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    char key[64];
    double v;
    while (fscanf(f, "%63s %lf", key, &v) == 2) {
        add(s, key, v);
        if (!strncmp(key, "look", 4) && key[4] != '0') add(s, "further", v);
    }
    return pclose(f) == 0 ? 0 : -1;
}

static double load1(void) {
    double l[1] = {0};
    return getloadavg(l, 1) == 1 ? l[0] : -1;
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "--child")) {
        if (!strcmp(argv[2], "baseline")) return child_baseline(argv[3], argv[4]);
        if (VIPS_INIT("bench_make")) return 1;
        return child_make(argv[3], argv[4], !strcmp(argv[2], "make"));
    }
    int runs = 5;
    const char *photo = NULL, *keep = NULL;
    char source[1024];
    snprintf(source, sizeof source, "%s/.cache/trueshot/photos/franck_02159.jpg",
             getenv("HOME") ? getenv("HOME") : ".");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--photo") && i + 1 < argc) {
            photo = argv[++i];
        } else if (!strcmp(argv[i], "--source") && i + 1 < argc) {
            snprintf(source, sizeof source, "%s", argv[++i]);
        } else if (!strcmp(argv[i], "--keep") && i + 1 < argc) {
            keep = argv[++i];
        } else {
            fprintf(stderr, "usage: bench_make [--runs N] [--photo FILE.jpg] [--source "
                            "franck_02159.jpg] [--keep DIR]\n");
            return 2;
        }
    }
    if (runs < 1) runs = 1;
    if (runs > MAX_RUNS) runs = MAX_RUNS;
    if (VIPS_INIT(argv[0])) return 1;
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) return 1;
    self[sl] = 0;
    char tmpl[] = "/tmp/bench_make.XXXXXX";
    const char *dir = keep;
    if (!dir) dir = mkdtemp(tmpl);
    if (!dir || (keep && mkdir(keep, 0755) && access(keep, W_OK))) {
        perror("bench_make: output folder");
        return 1;
    }
    char made[1100];
    if (!photo) {
        snprintf(made, sizeof made, "%s/12mp.jpg", dir);
        VipsImage *src = vips_image_new_from_file(source, NULL), *big = NULL;
        if (!src || vips_resize(src, &big, 5.6, NULL) || vips_jpegsave(big, made, "Q", 90, NULL)) {
            fprintf(stderr, "bench_make: cannot make the 12-MP photo from %s: %s\n", source,
                    vips_error_buffer());
            return 1;
        }
        g_object_unref(src), g_object_unref(big);
        photo = made;
    }
    VipsImage *hdr = vips_image_new_from_file(photo, NULL);
    if (!hdr) {
        fprintf(stderr, "bench_make: %s\n", vips_error_buffer());
        return 1;
    }
    printf("bench_make: %s, %dx%d (%.1f MP), six looks (first output of each), %d runs, each a "
           "fresh process\n",
           photo, hdr->Xsize, hdr->Ysize, hdr->Xsize * (double)hdr->Ysize / 1e6, runs);
    g_object_unref(hdr);
    series s[KINDS];
    memset(s, 0, sizeof s);
    double load_before = load1();
    /* A warm-up of each kind (page cache, first-touch of the model files), not counted. */
    for (int k = 0; k < KINDS; k++) {
        series w;
        memset(&w, 0, sizeof w);
        if (run_child(self, k, photo, dir, &w)) {
            fprintf(stderr, "bench_make: the %s run failed\n", kind_arg[k]);
            return 1;
        }
    }
    for (int r = 0; r < runs; r++)
        for (int k = 0; k < KINDS; k++)
            if (run_child(self, k, photo, dir, &s[k])) {
                fprintf(stderr, "bench_make: the %s run failed\n", kind_arg[k]);
                return 1;
            }
    double load_after = load1();
    const series *m = &s[K_MAKE], *nv = &s[K_NOVERIFY], *b = &s[K_BASE];
    double base = med(b, "total");
    printf("load average (1 min) %.2f before, %.2f after; %ld CPUs online\n\n", load_before,
           load_after, sysconf(_SC_NPROCESSORS_ONLN));
    printf("%-44s %10s %10s %8s\n", "median of the runs", "verified", "no verify", "budget");
    printf("%-44s %10.0f %10.0f %8s\n", "ctx: models, styles (ms)", med(m, "ctx"), med(nv, "ctx"),
           "");
    printf("%-44s %10.0f %10.0f %8s\n", "open (ms)", med(m, "open"), med(nv, "open"), "");
    printf("%-44s %10.0f %10.0f %8s\n", "face analysis (ms)", med(m, "analysis"),
           med(nv, "analysis"), "");
    char dlabel[64];
    snprintf(dlabel, sizeof dlabel, "decode for the looks: at 1/%.0f (ms)", med(m, "shrink"));
    printf("%-44s %10.0f %10.0f %8s\n", dlabel, med(m, "decode_choice"), med(nv, "decode_choice"),
           "");
    printf("%-44s %10.0f %10.0f %8s\n", "matte, its decode (+ noise floor) (ms)", med(m, "matte"),
           med(nv, "matte"), "");
    static const char *const steps[] = {"frame",      "tone",   "light",  "retouch",
                                        "background", "export", "verify", "editmap"};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        char label[64];
        snprintf(label, sizeof label, "  per look: %s (ms)", steps[i]);
        printf("%-44s %10.1f %10.1f %8s\n", label, med(m, steps[i]), med(nv, steps[i]), "");
    }
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        char label[64], key[64];
        snprintf(label, sizeof label, "  per look, CPU: %s (ms)", steps[i]);
        snprintf(key, sizeof key, "cpu_%s", steps[i]);
        printf("%-44s %10.1f %10.1f %8s\n", label, med(m, key), med(nv, key), "");
    }
    printf("%-44s %10.0f %10.0f %8s\n", "  per look, CPU: all (ms)", med(m, "cpu_look"),
           med(nv, "cpu_look"), "");
    printf("%-44s %10.0f %10.0f %8s\n", "first look (ms)", med(m, "look0"), med(nv, "look0"), "");
    printf("%-44s %10.0f %10.0f %8.0f\n", "each further look (ms)", med(m, "further"),
           med(nv, "further"), BUDGET_LOOK_MS);
    printf("%-44s %10.0f %10.0f %8.0f\n", "TOTAL: open .. six looks written (ms)", med(m, "total"),
           med(nv, "total"), BUDGET_TOTAL_MS);
    printf("%-44s %10.0f %10.0f %8s\n", "  the same with ctx (process start) (ms)",
           med(m, "withctx"), med(nv, "withctx"), "");
    printf("%-44s %10.0f %10.0f %8.0f\n", "peak RSS (MB)", med(m, "rss"), med(nv, "rss"),
           BUDGET_RSS_MB);
    printf("%-44s %10.0f %10s %8s\n", "baseline: libvips decode + JPEG Q90 (ms)", base, "", "");
    printf("%-44s %10.0f %10s %8s\n", "baseline peak RSS (MB)", med(b, "rss"), "", "");
    printf("%-44s %10.1f %10.1f\n", "ratio total / baseline", med(m, "total") / base,
           med(nv, "total") / base);
    printf("%-44s %10.2f %10.2f\n", "ratio further look / baseline", med(m, "further") / base,
           med(nv, "further") / base);
    printf("%-44s %10.1f %10.1f\n", "ratio peak RSS / baseline", med(m, "rss") / med(b, "rss"),
           med(nv, "rss") / med(b, "rss"));
    printf("%-44s %10.3f%%\n", "identity gate, median mean displacement", 100 * med(m, "id"));
    if (!keep) {
        /* the outputs of the last run, and the photo made here */
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd)) fprintf(stderr, "bench_make: could not remove %s\n", dir);
    }
    return 0;
}
