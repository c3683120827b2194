/* trueshot: the command line. */
#include <errno.h>
#include <glib.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "core/internal.h"

static const char usage[] =
    "trueshot " TS_VERSION_STRING " - professional headshots from your own photos, on your own\n"
    "computer. Nothing is uploaded anywhere.\n"
    "\n"
    "usage: trueshot COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  make PHOTO... -o DIR  your best photo as a set of professional headshots (several looks\n"
    "                        and crops), with a contact sheet and a report\n"
    "  demo PHOTO [-o DIR]   find the face, cut out the person, and write a studio-grey\n"
    "                        headshot (DIR/headshot.jpg) and what was found (DIR/analysis.jpg)\n"
    "  check PHOTO... [--json] [--html REPORT.html]\n"
    "                        grade photos as headshot sources and say what to do\n"
    "                        differently; ranks them and names the best\n"
    "  faces PHOTO... [--json]\n"
    "                        list the faces in each photo: box, score, keypoints, subject\n"
    "  matte PHOTO -o OUT [--alpha A.png] [--over COLOR|IMAGE]\n"
    "                        cut the person out at full resolution (transparent PNG), or place\n"
    "                        them on a colour or an image\n"
    "  studio                the studio: a web page on this computer to check photos, get\n"
    "                        live coaching from the webcam, and make headshots with previews\n"
    "  models                check that every neural model is installed and loads\n"
    "\n"
    "options:\n"
    "  -h, --help            this help\n"
    "  --version             print the version\n"
    "\n"
    "environment:\n"
    "  TRUESHOT_MODELS       directory with the .tflite models\n"
    "                        (default $TRUESHOT_CACHE/models, ~/.cache/trueshot/models)\n"
    "\n"
    "exit codes:\n"
    "  0 ok, 1 failure, 2 bad usage, 3 unreadable file, 4 unsupported format,\n"
    "  5 image too large, 6 no face found, 7 model missing or invalid, 8 output not writable,\n"
    "  9 out of memory, 10 internal error, 11 no person found, 12 a headshot failed the\n"
    "  identity check (it would have changed your face) and was not written, 13 the face\n"
    "  runs off the photo's edge beside or below it (no headshot can be framed), 14 the\n"
    "  face is too small in the photo to make a headshot of\n"
    "\n"
    "example:\n"
    "  trueshot demo samples/sample.jpg -o out/\n";

bool cli_same_file(const char *a, const char *b) {
    struct stat x, y;
    return a && b && stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev &&
           x.st_ino == y.st_ino;
}

void cli_progress(const char *fmt, ...) {
    if (!cli_tty()) return;
    char line[76] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
    }
    fprintf(stderr, "\r%-76s\r%s", "", line);
}

bool cli_is_dir(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int cli_fail(ts_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("trueshot: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return ts_status_exit_code(s);
}

int cli_make_dir(const char *dir) {
    char path[4096];
    if (!dir || !dir[0] || strlen(dir) >= sizeof path)
        return cli_fail(TS_ERR_ARGUMENT, "output folder name missing or too long");
    snprintf(path, sizeof path, "%s", dir);
    /* each folder from the top down: the ones that exist are passed, the missing ones made */
    for (char *q = path + 1;; q++) {
        if (*q != '/' && *q) continue;
        char c = *q;
        *q = 0;
        struct stat st;
        if (stat(path, &st) != 0) {
            if (mkdir(path, 0755) != 0 && errno != EEXIST)
                return cli_fail(TS_ERR_WRITE, "cannot create the folder %s: %s", path,
                                strerror(errno));
        } else if (!S_ISDIR(st.st_mode)) {
            if (!c) return cli_fail(TS_ERR_WRITE, "%s is a file, not a folder", dir);
            return cli_fail(TS_ERR_WRITE, "cannot write into %s: %s is a file, not a folder", dir,
                            path);
        }
        if (!c) break;
        *q = c;
    }
    if (access(dir, W_OK | X_OK) != 0)
        return cli_fail(TS_ERR_WRITE, "cannot write into the folder %s: %s", dir, strerror(errno));
    return 0;
}

bool cli_tty(void) {
    return isatty(2);
}

static int cmd_models(void) {
    ts_ctx *ctx;
    if (ts_ctx_new(NULL, &ctx) != TS_OK) return cli_fail(TS_ERR_INTERNAL, "%s", ts_last_error());
    int bad = 0;
    for (int i = 0; i < TS_MODEL_COUNT; i++) {
        ts_status s = ts_ctx_load_model(ctx, (ts_model_id)i);
        if (s == TS_OK) {
            int segs, cops;
            ts_nn_runtime_stats(ctx->runtimes[i], &segs, &cops);
            printf("ok    %-40s %d XNNPACK segment%s, %d op%s in C\n", ts_model_file(i), segs,
                   segs == 1 ? "" : "s", cops, cops == 1 ? "" : "s");
        } else {
            printf("FAIL  %-40s %s\n", ts_model_file(i), ts_ctx_error(ctx));
            bad = ts_status_exit_code(s);
        }
    }
    ts_ctx_free(ctx);
    return bad;
}

/* libvips' warnings (a damaged or cut-short file decodes with warnings, the missing part grey)
 * are kept, not printed as glib's multi-line log, and said once, as one line, when the command
 * succeeded; a command that failed has said why on its own line. */
static pthread_mutex_t warn_lock = PTHREAD_MUTEX_INITIALIZER;
static char warn_first[200];
static int warn_n;

/* Warnings that say nothing about damage: every AVIF and HEIF with a colour description of the
 * nclx kind (phones write them) has libvips 8.14 say it ignores it, at each read. */
static const char *const harmless[] = {"ignoring nclx profile"};

static void keep_warning(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer u) {
    (void)domain, (void)level, (void)u;
    for (size_t i = 0; msg && i < sizeof harmless / sizeof harmless[0]; i++)
        if (strstr(msg, harmless[i])) return;
    pthread_mutex_lock(&warn_lock);
    /* the decoder's own words rather than libvips' count of them ("read gave 2 warnings") */
    int count = msg && !strncmp(msg, "read gave", 9);
    if (!warn_n++ || (!count && !strncmp(warn_first, "read gave", 9))) {
        snprintf(warn_first, sizeof warn_first, "%s", msg ? msg : "");
        warn_first[strcspn(warn_first, "\n")] = 0; /* (its first line: the rest repeats it) */
    }
    pthread_mutex_unlock(&warn_lock);
}

static int said_warnings(int rc) {
    pthread_mutex_lock(&warn_lock);
    if (warn_n && rc == 0)
        fprintf(stderr,
                "trueshot: note: a photo did not read cleanly (libvips: %s%s); it may be damaged "
                "or cut short, and what could be read was used\n",
                warn_first, warn_n > 1 ? ", and more" : "");
    pthread_mutex_unlock(&warn_lock);
    return rc;
}

int main(int argc, char **argv) {
    /* A file-size limit (ulimit -f) must fail the write with a message, not kill the process
     * and leave temporary files behind. */
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("trueshot %s\n", TS_VERSION_STRING);
        return 0;
    }
    /* (the studio keeps libvips' own log: it runs on, photo after photo) */
    if (strcmp(cmd, "studio")) g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING, keep_warning, NULL);
    if (!strcmp(cmd, "demo")) return said_warnings(cmd_demo(argc - 1, argv + 1));
    if (!strcmp(cmd, "make")) return said_warnings(cmd_make(argc - 1, argv + 1));
    if (!strcmp(cmd, "models")) return said_warnings(cmd_models());
    if (!strcmp(cmd, "faces")) return said_warnings(cmd_faces(argc - 1, argv + 1));
    if (!strcmp(cmd, "check")) return said_warnings(cmd_check(argc - 1, argv + 1));
    if (!strcmp(cmd, "matte")) return said_warnings(cmd_matte(argc - 1, argv + 1));
    if (!strcmp(cmd, "studio")) return cmd_studio(argc - 1, argv + 1);
    return cli_fail(TS_ERR_ARGUMENT, "unknown command '%s' (try trueshot --help)", cmd);
}
