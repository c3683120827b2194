/* Independent check of the face mesh against a second, unrelated model: dlib's 68-point shape
 * predictor (an ensemble of regression trees trained on iBUG 300-W, Debian's libdlib-data), run by
 * the test-only tool tests/dlib68.cc on the subject box from `trueshot faces --json`. At the eye
 * corners, nose tip and mouth corners the two must agree within 5% of the inter-eye distance on
 * average over the development photos ($TRUESHOT_CACHE/photos).
 *
 *   test_dlib_xcheck TRUESHOT DLIB68|-
 *
 * DLIB68 is "-" when meson did not find dlib: the test then fails and says what to install.
 * TS_DLIB_MODEL overrides the model path (default: libdlib-data's file).
 *
 * Correspondences (dlib 0-based iBUG index -> MediaPipe mesh index), from the iBUG 300-W markup
 * (points 37-48 eyes, 31 nose tip, 49-68 mouth, 1-based) and MediaPipe's mesh map
 * (canonical_face_model_uv_visualization.png; 33/133 and 362/263 are the right and left eye
 * corners on the lid contour, 61/291 the outer lip corners, 78/308 the inner ones; the
 * alternatives measure worse here too: 130/359 7.7%/7.9%, 78/308 6.0%/5.6% against 3-5%):
 *   36 -> 33   right eye, outer corner      42 -> 362  left eye, inner corner
 *   39 -> 133  right eye, inner corner      45 -> 263  left eye, outer corner
 *   30 -> 4    nose tip
 *   48 -> 61   mouth, right corner (outer lip contour, as iBUG 49 is)
 *   54 -> 291  mouth, left corner (outer lip contour, as iBUG 55 is)
 * Nose tip: mesh 1 is the point most code calls "nose tip" (the front of the tip, used in pose
 * fits), mesh 4 the next vertex up the dorsum. iBUG's point 31 ends the nose ridge line (points
 * 28-31) and in frontal photos sits at the top of the tip, above mesh 1: on these photos dlib's
 * point lies 2.6x closer to mesh 4 than to mesh 1 (mean 4.9% vs 12.7% of the inter-eye distance;
 * mesh 19, below the tip, 18%), and the published MediaPipe-to-dlib table
 * (github.com/PeizhiYan/Mediapipe_2_Dlib_Landmarks) also maps iBUG 31 to mesh 4. So 4.
 *
 * messi5.jpg is reported but left out of the average: its face is ~30 px wide (inter-eye ~10 px),
 * so 5% is half a pixel, below the whole-pixel resolution of dlib's output (and dlib's own
 * detector, which the predictor's training boxes come from, finds no face under ~80x80 px). */
#include <errno.h>
#include <glob.h>
#include <jansson.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define NPTS 7
#define MAX_MEAN 0.05  /* issue 3: mean over photos, fraction of inter-eye distance */
#define MAX_PHOTO 0.15 /* loose guard: one photo's mean; a mesh on the wrong face is ~0.5+ */

static const int dlib_idx[NPTS] = {36, 39, 42, 45, 30, 48, 54};
static const int mesh_idx[NPTS] = {33, 133, 362, 263, 4, 61, 291};
static const char *pt_name[NPTS] = {"R eye outer", "R eye inner", "L eye inner", "L eye outer",
                                    "nose tip",    "mouth R",     "mouth L"};

/* Runs argv, returns its stdout (malloc'd, NUL-terminated) or NULL; *status gets the exit code. */
static char *run_capture(char *const argv[], int *status) {
    int fd[2];
    if (pipe(fd) != 0) return NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
    posix_spawn_file_actions_addclose(&fa, fd[0]);
    posix_spawn_file_actions_addclose(&fa, fd[1]);
    pid_t pid;
    *status = -1;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    if (rc != 0) {
        close(fd[0]);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(rc));
        return NULL;
    }
    size_t len = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 4096 + 1 > cap) buf = realloc(buf, cap *= 2);
        ssize_t n = read(fd[0], buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    buf[len] = 0;
    close(fd[0]);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
    *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
    return buf;
}

typedef struct {
    double err[NPTS]; /* distance / inter-eye distance */
    double mean, inter_eye;
} photo_result;

/* Compares the two models on one photo; returns 0 on success, prints why and returns -1 if not. */
static int check_photo(const char *ts, const char *dlib68, const char *model, const char *path,
                       photo_result *res) {
    char *ts_argv[] = {(char *)ts, "faces", "--json", (char *)path, NULL};
    int st = -1;
    char *out = run_capture(ts_argv, &st);
    if (!out || st != 0) {
        fprintf(stderr, "FAIL %s: trueshot faces exited %d\n", path, st);
        free(out);
        return -1;
    }
    json_error_t jerr;
    json_t *doc = json_loads(out, JSON_DISABLE_EOF_CHECK, &jerr);
    free(out);
    json_t *faces = doc ? json_object_get(doc, "faces") : NULL, *subj = NULL, *f;
    size_t i;
    json_array_foreach(faces, i, f) if (json_is_true(json_object_get(f, "subject"))) subj = f;
    json_t *box = subj ? json_object_get(subj, "box") : NULL;
    json_t *lm = subj ? json_object_get(subj, "landmarks") : NULL;
    double ie = subj ? json_number_value(json_object_get(subj, "inter_eye_px")) : 0;
    if (!subj || json_array_size(box) != 4 || json_array_size(lm) < 468 || !(ie > 0)) {
        fprintf(stderr, "FAIL %s: no subject face with box, landmarks and inter_eye_px\n", path);
        json_decref(doc);
        return -1;
    }
    char b[4][32];
    for (int k = 0; k < 4; k++)
        snprintf(b[k], sizeof b[k], "%.3f", json_number_value(json_array_get(box, (size_t)k)));
    char *d_argv[] = {(char *)dlib68, (char *)model, (char *)path, b[0], b[1], b[2], b[3], NULL};
    out = run_capture(d_argv, &st);
    double pts[68][2];
    int n = 0;
    if (out && st == 0) {
        const char *p = out;
        int used;
        while (n < 68 && sscanf(p, "%lf %lf%n", &pts[n][0], &pts[n][1], &used) == 2) {
            p += used;
            n++;
        }
    }
    free(out);
    if (n != 68) {
        fprintf(stderr, "FAIL %s: dlib68 exited %d with %d points\n", path, st, n);
        json_decref(doc);
        return -1;
    }
    res->mean = 0;
    res->inter_eye = ie;
    for (int k = 0; k < NPTS; k++) {
        json_t *m = json_array_get(lm, (size_t)mesh_idx[k]);
        double dx = pts[dlib_idx[k]][0] - json_number_value(json_array_get(m, 0));
        double dy = pts[dlib_idx[k]][1] - json_number_value(json_array_get(m, 1));
        res->err[k] = hypot(dx, dy) / ie;
        res->mean += res->err[k] / NPTS;
    }
    json_decref(doc);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: test_dlib_xcheck TRUESHOT DLIB68|-\n");
        return 2;
    }
    const char *ts = argv[1], *dlib68 = argv[2];
    const char *model = getenv("TS_DLIB_MODEL");
    if (!model || !*model) model = "/usr/share/dlib/shape_predictor_68_face_landmarks.dat";
    if (strcmp(dlib68, "-") == 0) {
        fprintf(stderr, "FAIL: dlib was not found when the build was configured, so tests/dlib68 "
                        "was not built; install libdlib-dev and libdlib-data "
                        "(scripts/setup.sh --test) and reconfigure (meson setup --reconfigure)\n");
        return 1;
    }
    if (access(model, R_OK) != 0) {
        fprintf(stderr,
                "FAIL: dlib's 68-point model %s is missing; install libdlib-data "
                "(scripts/setup.sh --test) or set TS_DLIB_MODEL\n",
                model);
        return 1;
    }
    const char *cache = getenv("TRUESHOT_CACHE"), *home = getenv("HOME");
    char dir[4096];
    if (cache && *cache)
        snprintf(dir, sizeof dir, "%s/photos", cache);
    else
        snprintf(dir, sizeof dir, "%s/.cache/trueshot/photos", home ? home : "");

    /* The development photos: fixed ones, every franck_*.jpg, messi5.jpg (last, reported only). */
    char *names[64];
    int nn = 0;
    static const char *fixed[] = {
        "grace_hopper.jpg",    "astronaut.png",       "faceapi_sample1.jpg", "faceapi_sample2.jpg",
        "faceapi_sample3.jpg", "faceapi_sample4.jpg", "faceapi_sample5.jpg", "faceapi_sample6.jpg"};
    for (size_t k = 0; k < sizeof fixed / sizeof *fixed; k++) names[nn++] = strdup(fixed[k]);
    char pat[4200];
    snprintf(pat, sizeof pat, "%s/franck_*.jpg", dir);
    glob_t g;
    int nfranck = 0;
    if (glob(pat, 0, NULL, &g) == 0) {
        for (size_t k = 0; k < g.gl_pathc && nn < 62; k++, nfranck++)
            names[nn++] = strdup(strrchr(g.gl_pathv[k], '/') + 1);
        globfree(&g);
    }
    const int n_checked = nn;
    names[nn++] = strdup("messi5.jpg");

    int failures = 0;
    if (nfranck == 0) {
        fprintf(stderr, "FAIL: no franck_*.jpg in %s (scripts/fetch_assets.sh?)\n", dir);
        failures++;
    }
    double sum_pt[NPTS] = {0}, max_pt[NPTS] = {0}, sum_mean = 0, max_mean = 0, max_err = 0;
    int counted = 0;
    const char *worst = "";
    printf("%-20s %6s", "photo", "eye_px");
    for (int k = 0; k < NPTS; k++) printf(" %6d", dlib_idx[k]);
    printf("   mean  (dlib 68-point index; error / inter-eye distance)\n");
    for (int i = 0; i < nn; i++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (access(path, R_OK) != 0) {
            fprintf(stderr, "FAIL: missing development photo %s\n", path);
            failures++;
            continue;
        }
        photo_result r;
        if (check_photo(ts, dlib68, model, path, &r) != 0) {
            failures++;
            continue;
        }
        printf("%-20s %6.1f", names[i], r.inter_eye);
        for (int k = 0; k < NPTS; k++) printf(" %6.3f", r.err[k]);
        printf(" %6.3f%s\n", r.mean, i < n_checked ? "" : "  (not counted: face too small)");
        if (i >= n_checked) continue;
        counted++;
        sum_mean += r.mean;
        for (int k = 0; k < NPTS; k++) {
            sum_pt[k] += r.err[k];
            if (r.err[k] > max_pt[k]) max_pt[k] = r.err[k];
            if (r.err[k] > max_err) max_err = r.err[k];
        }
        if (r.mean > max_mean) {
            max_mean = r.mean;
            worst = names[i];
        }
        if (r.mean > MAX_PHOTO) {
            fprintf(stderr, "FAIL %s: mean error %.3f of the inter-eye distance > %.2f\n", names[i],
                    r.mean, MAX_PHOTO);
            failures++;
        }
    }
    if (counted > 0) {
        printf("per point over %d photos (mean / max):\n", counted);
        for (int k = 0; k < NPTS; k++)
            printf("  dlib %2d <-> mesh %3d  %-12s %.3f / %.3f\n", dlib_idx[k], mesh_idx[k],
                   pt_name[k], sum_pt[k] / counted, max_pt[k]);
        double mean = sum_mean / counted;
        printf(
            "mean over photos %.4f (limit %.2f); worst photo %s %.4f; largest single point %.4f\n",
            mean, MAX_MEAN, worst, max_mean, max_err);
        if (mean > MAX_MEAN) {
            fprintf(stderr, "FAIL: mean error %.4f of the inter-eye distance > %.2f\n", mean,
                    MAX_MEAN);
            failures++;
        }
    }
    for (int i = 0; i < nn; i++) free(names[i]);
    printf("%s\n", failures ? "FAILED" : "OK");
    return failures ? 1 : 0;
}
