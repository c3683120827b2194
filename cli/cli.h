/* Shared helpers of the trueshot command's subcommands. */
#ifndef TS_CLI_H
#define TS_CLI_H

#include <stdbool.h>

#include "trueshot.h"

/* Prints "trueshot: <msg>" to stderr and returns the exit code for s. */
int cli_fail(ts_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Makes the output folder dir and any missing folders above it (as `mkdir -p`). An existing
 * folder is fine; a file of that name, or a folder that cannot be made, is reported (cli_fail)
 * and its exit code returned (TS_ERR_WRITE's); 0 on success. */
int cli_make_dir(const char *dir);
/* True when stderr is a terminal (progress and colour only then). */
bool cli_tty(void);

/* One line of progress on a terminal, in place of the last; cli_progress(NULL) clears it (before
 * anything else is said). Nothing when stderr is not a terminal. */
void cli_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Whether a and b name the same existing file (device and inode). */
bool cli_same_file(const char *a, const char *b);

/* The photos in a folder given as a photo: every file whose name says it is one (JPEG, PNG,
 * WebP, HEIC/HEIF, AVIF, TIFF, JPEG 2000, JPEG XL), sorted by name, hidden files left out, and
 * the files trueshot made there left out too (headshots by their XMP CreatorTool, contact
 * sheets by their name), said in one note: a second run over the same folder would otherwise
 * grade its own headshots as sources. Returns 0 with f filled (free it with cli_folder_free),
 * or the exit code, said (cmd names the command in the message): TS_ERR_READ's when the folder
 * cannot be read or holds no photo. */
typedef struct cli_folder {
    char **paths;
    int n;
    int ours; /* files left out as trueshot's own */
} cli_folder;
int cli_folder_photos(const char *cmd, const char *dir, cli_folder *f);
void cli_folder_free(cli_folder *f);

/* Whether path names an existing folder. */
bool cli_is_dir(const char *path);

int cmd_demo(int argc, char **argv);
int cmd_make(int argc, char **argv);
int cmd_faces(int argc, char **argv);
int cmd_matte(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_studio(int argc, char **argv);

/* The largest photo `make` and `check` take: they work from its shrunk decodes (the analysis
 * copy; make's decode at 1/2 or 1/4), so their memory does not grow with it (a 200-MP JPEG or PNG
 * makes the default set in ~350 MB, as a 12-MP one does). Medium-format cameras make 100-150 MP
 * photos; the library's default limit, 100 MP, stays for what works at full size (matte). */
#define CLI_SHRUNK_MAX_PIXELS (250ull * 1000 * 1000)

#endif
