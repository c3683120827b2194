/* Golden tests for `trueshot make` (issue 6), in darktable's manner: each folder
 * tests/golden/NNNN-name/ holds a recipe (the photo and the command line's choices) and
 * expected.png; the recipe is rendered with the real command and compared with expected.png by
 * colour difference (CIEDE2000), never by bytes.
 *
 *   golden_run TRUESHOT GOLDEN_DIR [NAME...]     (NAME: only these folders)
 *   TS_GOLDEN_UPDATE=1 golden_run ...           rewrites expected.png from the current render
 *
 * Recipe (key = value, '#' comments; docs/testing-make.md):
 *   photo = sample.jpg      # samples/ of the repository, else the asset cache's photos/
 *   style = linkedin        # a built-in look (or a path relative to the recipe's folder)
 *   crop = square:400       # --crop: one output per recipe, small
 *   background = keep       # optional --background
 *   retouch = 0             # optional --retouch
 *   region = 100,80,200,220 # optional: compare only this box (x,y,w,h of the render) at full
 *                           # resolution instead of the whole render at half size
 *   mean_max = 0.1          # optional: tighter limits for a recipe about a subtle stage
 *   p99_max = 1.0
 *
 * The render is written as PNG (lossless, so the comparison sees the pipeline and not the
 * encoder) and box-averaged 2x2 before comparing: expected.png is stored at that half size,
 * which keeps it under 100 KB, and averages out the backdrop's grain. Criterion per recipe:
 * same size, mean dE00 <= 1.0 and 99th percentile dE00 <= 5.0 (see docs/testing-make.md for
 * why). A failing recipe leaves its render and a dE heat map in the current directory as
 * golden-NAME-actual.png and golden-NAME-de.png. Exit: 0 pass, 1 fail, 77 (skip) when no
 * recipe's photo is available. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vips/vips.h>

#define MEAN_MAX 1.0
#define P99_MAX 5.0

extern char **environ;

typedef struct recipe {
    char photo[256], style[256], crop[64], background[64], retouch[32], region[64];
    char mean_max[32], p99_max[32];
} recipe;

/* snprintf that reports truncation (paths here are short; a long one is an error). */
static int fmt(char *out, size_t cap, const char *f, ...) __attribute__((format(printf, 3, 4)));
static int fmt(char *out, size_t cap, const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(out, cap, f, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r')) *--e = 0;
    return s;
}

/* Reads dir/recipe; returns 0, or -1 with a message naming file:line. */
static int read_recipe(const char *dir, recipe *r) {
    char path[1200], line[512];
    fmt(path, sizeof path, "%s/recipe", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    memset(r, 0, sizeof *r);
    int n = 0, rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        n++;
        /* As in style files: '#' after a space and before a space ends the line, so colours
         * such as #a4a3a8 are values. */
        for (char *h = line; (h = strchr(h, '#')); h++)
            if ((h == line || h[-1] == ' ' || h[-1] == '\t') &&
                (h[1] == ' ' || h[1] == '\t' || h[1] == '\n' || h[1] == '\r' || !h[1])) {
                *h = 0;
                break;
            }
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            fprintf(stderr, "%s:%d: expected key = value\n", path, n);
            rc = -1;
            break;
        }
        *eq = 0;
        char *k = trim(s), *v = trim(eq + 1);
        struct {
            const char *key;
            char *dst;
            size_t cap;
        } keys[] = {{"photo", r->photo, sizeof r->photo},
                    {"style", r->style, sizeof r->style},
                    {"crop", r->crop, sizeof r->crop},
                    {"background", r->background, sizeof r->background},
                    {"retouch", r->retouch, sizeof r->retouch},
                    {"region", r->region, sizeof r->region},
                    {"mean_max", r->mean_max, sizeof r->mean_max},
                    {"p99_max", r->p99_max, sizeof r->p99_max}};
        size_t i = 0;
        while (i < sizeof keys / sizeof keys[0] && strcmp(keys[i].key, k)) i++;
        if (i == sizeof keys / sizeof keys[0]) {
            fprintf(stderr, "%s:%d: unknown key '%s'\n", path, n, k);
            rc = -1;
        } else {
            fmt(keys[i].dst, keys[i].cap, "%s", v);
        }
    }
    fclose(f);
    if (!rc && (!r->photo[0] || !r->style[0] || !r->crop[0])) {
        fprintf(stderr, "%s: photo, style and crop are required\n", path);
        rc = -1;
    }
    return rc;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* The photo's path: the repository's samples/, else the cache's photos/. */
static int find_photo(const char *golden_dir, const char *name, char *out, size_t cap) {
    fmt(out, cap, "%s/../../samples/%s", golden_dir, name);
    if (exists(out)) return 0;
    const char *cache = getenv("TRUESHOT_CACHE"), *home = getenv("HOME");
    if (cache)
        fmt(out, cap, "%s/photos/%s", cache, name);
    else
        fmt(out, cap, "%s/.cache/trueshot/photos/%s", home ? home : ".", name);
    return exists(out) ? 0 : -1;
}

static void stem_of(const char *path, char *out, size_t cap) {
    const char *b = strrchr(path, '/');
    fmt(out, cap, "%s", b ? b + 1 : path);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = 0;
}

/* Runs trueshot make for the recipe into outdir; returns the exit status. */
static int render(const char *ts, const recipe *r, const char *photo, const char *style,
                  const char *outdir) {
    const char *argv[20];
    int n = 0;
    argv[n++] = ts, argv[n++] = "make", argv[n++] = photo, argv[n++] = "-o", argv[n++] = outdir;
    argv[n++] = "--style", argv[n++] = style, argv[n++] = "--crop", argv[n++] = r->crop;
    argv[n++] = "--format", argv[n++] = "png";
    if (r->background[0]) argv[n++] = "--background", argv[n++] = r->background;
    if (r->retouch[0]) argv[n++] = "--retouch", argv[n++] = r->retouch;
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, ts, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) {
        fprintf(stderr, "cannot run %s: %s\n", ts, strerror(rc));
        return -1;
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Mean, 99th percentile and maximum of the dE00 between two same-sized sRGB images; writes
 * the heat map (dE 0..10 -> 0..255) to heat_path when it is not NULL. */
static int compare(VipsImage *a, VipsImage *b, double *mean, double *p99, double *max,
                   const char *heat_path) {
    VipsImage *de = NULL, *f = NULL;
    if (vips_dE00(a, b, &de, NULL) || vips_cast_float(de, &f, NULL)) {
        if (de) g_object_unref(de);
        return -1;
    }
    size_t bytes;
    float *v = vips_image_write_to_memory(f, &bytes);
    size_t n = bytes / sizeof *v;
    int rc = -1;
    if (v && n) {
        double sum = 0;
        for (size_t i = 0; i < n; i++) sum += v[i];
        qsort(v, n, sizeof *v, cmp_float);
        *mean = sum / (double)n;
        *p99 = v[(size_t)(0.99 * (double)(n - 1))];
        *max = v[n - 1];
        rc = 0;
    }
    g_free(v);
    if (!rc && heat_path) {
        VipsImage *s = NULL, *u = NULL;
        if (!vips_linear1(f, &s, 25.5, 0, NULL) && !vips_cast_uchar(s, &u, NULL))
            vips_pngsave(u, heat_path, NULL);
        if (s) g_object_unref(s);
        if (u) g_object_unref(u);
    }
    g_object_unref(f);
    g_object_unref(de);
    return rc;
}

/* What is compared: the render box-averaged 2x2 (every pixel of the output counts, the grain is
 * averaged down and expected.png stays small), or the recipe's region at full resolution. */
static int reduce(VipsImage *in, const recipe *r, VipsImage **out) {
    if (!r->region[0]) return vips_shrink(in, out, 2, 2, NULL);
    int x, y, w, h;
    if (sscanf(r->region, "%d,%d,%d,%d", &x, &y, &w, &h) != 4) {
        vips_error("golden", "region: '%s' is not x,y,w,h", r->region);
        return -1;
    }
    return vips_crop(in, out, x, y, w, h, NULL);
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs one golden folder: 0 pass (or updated), 1 fail, 77 skipped. */
/* Removes path and, if it is a folder, what is in it. */
static void remove_tree(const char *path) {
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[1400];
        fmt(p, sizeof p, "%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(p);
        else
            unlink(p);
    }
    if (d) closedir(d);
    rmdir(path);
}

static int run_one(const char *ts, const char *golden_dir, const char *name, int update) {
    char dir[1200], photo[1400], style[1400], out[1400], expected[1400];
    fmt(dir, sizeof dir, "%s/%s", golden_dir, name);
    recipe r;
    if (read_recipe(dir, &r)) return 1;
    if (find_photo(golden_dir, r.photo, photo, sizeof photo)) {
        printf("SKIP %s: photo %s not found (samples/ or the asset cache)\n", name, r.photo);
        return 77;
    }
    /* A style given as a path is relative to the recipe's folder. */
    if (strchr(r.style, '/') || strstr(r.style, ".style"))
        fmt(style, sizeof style, "%s/%s", dir, r.style);
    else
        fmt(style, sizeof style, "%s", r.style);
    char tmp[] = "/tmp/trueshot-golden-XXXXXX";
    if (!mkdtemp(tmp)) return 1;
    int result = 1;
    int rc = render(ts, &r, photo, style, tmp);
    char stem[256], look[256], crop[64];
    stem_of(photo, stem, sizeof stem);
    stem_of(style, look, sizeof look);
    fmt(crop, sizeof crop, "%s", r.crop);
    crop[strcspn(crop, ":")] = 0;
    fmt(out, sizeof out, "%s/%s-%s-%s.png", tmp, stem, look, crop);
    fmt(expected, sizeof expected, "%s/expected.png", dir);
    VipsImage *got = NULL, *half = NULL, *want = NULL;
    if (rc != 0) {
        printf("FAIL %s: trueshot make exited %d\n", name, rc);
    } else if (!(got = vips_image_new_from_file(out, NULL)) || reduce(got, &r, &half)) {
        printf("FAIL %s: cannot read the render %s: %s\n", name, out, vips_error_buffer());
    } else if (update) {
        if (vips_pngsave(half, expected, "compression", 9, "filter", VIPS_FOREIGN_PNG_FILTER_ALL,
                         "strip", TRUE, NULL)) {
            printf("FAIL %s: cannot write %s: %s\n", name, expected, vips_error_buffer());
        } else {
            printf("UPDATED %s (%dx%d)\n", expected, half->Xsize, half->Ysize);
            result = 0;
        }
    } else if (!(want = vips_image_new_from_file(expected, NULL))) {
        printf("FAIL %s: no expected.png (make it with TS_GOLDEN_UPDATE=1): %s\n", name,
               vips_error_buffer());
    } else if (want->Xsize != half->Xsize || want->Ysize != half->Ysize ||
               want->Bands != half->Bands) {
        printf("FAIL %s: size %dx%dx%d, expected %dx%dx%d\n", name, half->Xsize, half->Ysize,
               half->Bands, want->Xsize, want->Ysize, want->Bands);
    } else {
        char heat[1400], actual[1400];
        fmt(heat, sizeof heat, "golden-%s-de.png", name);
        fmt(actual, sizeof actual, "golden-%s-actual.png", name);
        double mean = 0, p99 = 0, max = 0;
        if (compare(half, want, &mean, &p99, &max, NULL)) {
            printf("FAIL %s: comparison failed: %s\n", name, vips_error_buffer());
        } else {
            double mean_max = r.mean_max[0] ? atof(r.mean_max) : MEAN_MAX;
            double p99_max = r.p99_max[0] ? atof(r.p99_max) : P99_MAX;
            int ok = mean <= mean_max && p99 <= p99_max;
            printf("%s %s: dE00 mean %.3f (<= %.2f), p99 %.3f (<= %.2f), max %.2f\n",
                   ok ? "PASS" : "FAIL", name, mean, mean_max, p99, p99_max, max);
            if (!ok) {
                compare(half, want, &mean, &p99, &max, heat);
                vips_pngsave(half, actual, NULL);
                printf("     see %s and %s\n", actual, heat);
            }
            result = !ok;
        }
    }
    vips_error_clear();
    if (got) g_object_unref(got);
    if (half) g_object_unref(half);
    if (want) g_object_unref(want);
    /* Everything make wrote goes: the render, the contact sheet, the reports and report-files/
     * (the edit maps, the photo's preview; left behind, it kept the folder: a /tmp folder a
     * golden a run). */
    remove_tree(tmp);
    fflush(stdout);
    return result;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: golden_run TRUESHOT GOLDEN_DIR [NAME...]\n");
        return 2;
    }
    if (VIPS_INIT(argv[0])) return 1;
    const char *ts = argv[1], *golden = argv[2];
    const char *u = getenv("TS_GOLDEN_UPDATE");
    int update = u && *u && strcmp(u, "0");
    char *names[256];
    int n = 0;
    if (argc > 3) {
        for (int i = 3; i < argc && n < 256; i++) names[n++] = strdup(argv[i]);
    } else {
        DIR *d = opendir(golden);
        if (!d) {
            fprintf(stderr, "%s: %s\n", golden, strerror(errno));
            return 1;
        }
        struct dirent *e;
        while ((e = readdir(d)) && n < 256) {
            char p[1400];
            fmt(p, sizeof p, "%s/%s/recipe", golden, e->d_name);
            if (e->d_name[0] != '.' && exists(p)) names[n++] = strdup(e->d_name);
        }
        closedir(d);
        qsort(names, (size_t)n, sizeof *names, by_name);
    }
    int failed = 0, ran = 0;
    for (int i = 0; i < n; i++) {
        int rc = run_one(ts, golden, names[i], update);
        if (rc != 77) ran++;
        if (rc == 1) failed++;
        free(names[i]);
    }
    printf("%d of %d golden recipes %s, %d failed, %d skipped\n", ran - failed, n,
           update ? "updated" : "passed", failed, n - ran);
    vips_shutdown();
    if (failed) return 1;
    return ran ? 0 : 77;
}
