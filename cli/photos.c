/* Photos named on the command line: a folder given as a photo stands for the photos in it
 * (`make` and `check` alike). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli.h"
#include "make_report.h"

/* A photo by its name: the formats libvips reads here that cameras and phones write. */
static int photo_file(const struct dirent *e) {
    static const char *const exts[] = {".jpg",  ".jpeg", ".png",  ".webp", ".heic", ".heif",
                                       ".avif", ".tif",  ".tiff", ".jp2",  ".jxl"};
    const char *dot = strrchr(e->d_name, '.');
    if (e->d_name[0] == '.' || !dot) return 0;
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (!strcasecmp(dot, exts[i])) return 1;
    return 0;
}

/* Whether path is a file trueshot made: a headshot (its XMP names trueshot as the creator tool)
 * or a contact sheet (by its name: it carries no XMP). */
static int made_here(const char *path) {
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    size_t n = strlen(base), k = strlen("contact-sheet.jpg");
    if (n >= k && !strcmp(base + n - k, "contact-sheet.jpg")) return 1;
    make_metadata m;
    return make_read_back(path, &m) == 0 && !strncmp(m.creator_tool, "trueshot", 8);
}

void cli_folder_free(cli_folder *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) free(f->paths[i]);
    free(f->paths);
    f->paths = NULL, f->n = 0;
}

int cli_folder_photos(const char *cmd, const char *dir, cli_folder *f) {
    memset(f, 0, sizeof *f);
    struct dirent **list = NULL;
    int n = scandir(dir, &list, photo_file, alphasort), rc = 0;
    if (n < 0) return cli_fail(TS_ERR_READ, "%s: %s", dir, strerror(errno));
    f->paths = calloc(n > 0 ? (size_t)n : 1, sizeof *f->paths);
    if (!f->paths) rc = cli_fail(TS_ERR_NOMEM, "out of memory");
    size_t len = strlen(dir);
    for (int i = 0; i < n; i++) {
        char *path = NULL;
        if (!rc && (path = malloc(len + strlen(list[i]->d_name) + 2)) == NULL)
            rc = cli_fail(TS_ERR_NOMEM, "out of memory");
        if (!rc) {
            sprintf(path, "%s%s%s", dir, len && dir[len - 1] == '/' ? "" : "/", list[i]->d_name);
            struct stat st;
            if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
                free(path); /* a folder or a broken link named like a photo */
            } else if (made_here(path)) {
                f->ours++;
                free(path);
            } else {
                f->paths[f->n++] = path;
            }
        }
        free(list[i]);
    }
    free(list);
    if (!rc && f->ours)
        fprintf(stderr,
                "trueshot: note: %s: left out %d file%s trueshot made (headshots, sheets)\n", dir,
                f->ours, f->ours == 1 ? "" : "s");
    if (!rc && !f->n)
        rc = cli_fail(TS_ERR_READ,
                      "%s: %s: no photos in this folder (JPEG, PNG, WebP, HEIC, AVIF, TIFF, "
                      "JPEG 2000 or JPEG XL, by their names)",
                      cmd, dir);
    if (rc) cli_folder_free(f);
    return rc;
}
