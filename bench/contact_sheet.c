/* Contact sheet of the person cut-outs (issue 4): every development photo with a face, matted
 * (head and shoulders, the default), over dark grey and over light grey, in a grid captioned
 * with the file names. `make contact-sheet` writes docs/contact-sheet.jpg.
 *   contact_sheet PHOTOS_DIR OUT.jpg */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vips/vips.h>

#include "trueshot.h"

#define TILE 240 /* each cut-out fitted in TILE x TILE */
#define CAPTION 26
#define ACROSS 4
#define DARK 0x333333
#define LIGHT 0xcccccc

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_image(const char *name) {
    const char *e = strrchr(name, '.');
    return e && (!strcasecmp(e, ".jpg") || !strcasecmp(e, ".jpeg") || !strcasecmp(e, ".png") ||
                 !strcasecmp(e, ".webp") || !strcasecmp(e, ".tif") || !strcasecmp(e, ".heic"));
}

/* A cut-out file fitted into TILE x TILE on its own background colour. */
static VipsImage *tile(const char *path, uint32_t bg) {
    VipsImage *t, *e;
    if (vips_thumbnail(path, &t, TILE, "height", TILE, NULL)) return NULL;
    double bgv[3] = {bg >> 16, (bg >> 8) & 255, bg & 255};
    int r = vips_embed(t, &e, (TILE - t->Xsize) / 2, (TILE - t->Ysize) / 2, TILE, TILE, "extend",
                       VIPS_EXTEND_BACKGROUND, "background", vips_array_double_new(bgv, 3), NULL);
    g_object_unref(t);
    return r ? NULL : e;
}

/* Black caption centred on a white strip as wide as the cell. */
static VipsImage *caption(const char *text, int width) {
    VipsImage *t, *inv, *e;
    if (vips_text(&t, text, "font", "sans 13", "width", width - 8, NULL)) return NULL;
    int r = vips_invert(t, &inv, NULL);
    g_object_unref(t);
    if (r) return NULL;
    double white = 255;
    r = vips_embed(inv, &e, (width - inv->Xsize) / 2, (CAPTION - inv->Ysize) / 2, width, CAPTION,
                   "extend", VIPS_EXTEND_BACKGROUND, "background", vips_array_double_new(&white, 1),
                   NULL);
    g_object_unref(inv);
    if (r) return NULL;
    VipsImage *bands[3] = {e, e, e}, *out;
    r = vips_bandjoin(bands, &out, 3, NULL);
    g_object_unref(e);
    if (r) return NULL;
    VipsImage *srgb;
    r = vips_copy(out, &srgb, "interpretation", VIPS_INTERPRETATION_sRGB, NULL);
    g_object_unref(out);
    return r ? NULL : srgb;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: contact_sheet PHOTOS_DIR OUT.jpg\n");
        return 2;
    }
    ts_ctx *ctx;
    if (ts_ctx_new(NULL, &ctx)) {
        fprintf(stderr, "contact_sheet: %s\n", ts_last_error());
        return 1;
    }
    DIR *d = opendir(argv[1]);
    if (!d) {
        fprintf(stderr, "contact_sheet: cannot open %s\n", argv[1]);
        return 1;
    }
    char *names[256];
    int nn = 0;
    struct dirent *de;
    while ((de = readdir(d)) && nn < 256)
        if (de->d_name[0] != '.' && is_image(de->d_name)) names[nn++] = strdup(de->d_name);
    closedir(d);
    qsort(names, (size_t)nn, sizeof *names, cmp_str);

    char tmpdir[] = "/tmp/contact_sheet.XXXXXX";
    if (!mkdtemp(tmpdir)) return 1;
    VipsImage *cells[256];
    int nc = 0, failed = 0;
    for (int i = 0; i < nn; i++) {
        char path[1200], dark[1200], light[1200];
        snprintf(path, sizeof path, "%s/%s", argv[1], names[i]);
        snprintf(dark, sizeof dark, "%s/dark.png", tmpdir);
        snprintf(light, sizeof light, "%s/light.png", tmpdir);
        ts_photo *p;
        ts_matte *m = NULL;
        ts_status s = ts_photo_open(ctx, path, &p);
        if (!s) s = ts_photo_matte(ctx, p, NULL, &m);
        ts_photo_unref(p);
        if (s == TS_ERR_NO_FACE || s == TS_ERR_NO_PERSON) {
            printf("%-22s skipped: %s\n", names[i], ts_status_name(s));
            continue;
        }
        if (s || ts_matte_save_over_color(ctx, m, DARK, dark) ||
            ts_matte_save_over_color(ctx, m, LIGHT, light)) {
            fprintf(stderr, "contact_sheet: %s: %s\n", names[i], ts_ctx_error(ctx));
            ts_matte_free(m);
            failed = 1;
            continue;
        }
        int rx, ry, rw, rh;
        ts_matte_region(m, &rx, &ry, &rw, &rh);
        ts_matte_free(m);
        VipsImage *a = tile(dark, DARK), *b = tile(light, LIGHT), *pair = NULL, *cell = NULL;
        char text[300];
        snprintf(text, sizeof text, "%s  (%dx%d)", names[i], rw, rh);
        VipsImage *cap = caption(text, 2 * TILE);
        if (!a || !b || !cap || vips_join(a, b, &pair, VIPS_DIRECTION_HORIZONTAL, NULL) ||
            vips_join(pair, cap, &cell, VIPS_DIRECTION_VERTICAL, NULL)) {
            fprintf(stderr, "contact_sheet: %s: %s\n", names[i], vips_error_buffer());
            return 1;
        }
        /* Materialise now: the temporary files are overwritten by the next photo. */
        VipsImage *mem = vips_image_copy_memory(cell);
        g_object_unref(a), g_object_unref(b), g_object_unref(cap), g_object_unref(pair);
        g_object_unref(cell);
        if (!mem) return 1;
        cells[nc++] = mem;
        printf("%-22s cut-out %dx%d at %d,%d\n", names[i], rw, rh, rx, ry);
    }
    {
        char f[1200];
        snprintf(f, sizeof f, "%s/dark.png", tmpdir);
        unlink(f);
        snprintf(f, sizeof f, "%s/light.png", tmpdir);
        unlink(f);
        rmdir(tmpdir);
    }
    if (!nc) {
        fprintf(stderr, "contact_sheet: no cut-outs\n");
        return 1;
    }
    VipsImage *sheet;
    double white = 255;
    if (vips_arrayjoin(cells, &sheet, nc, "across", ACROSS, "shim", 8, "background",
                       vips_array_double_new(&white, 1), NULL)) {
        fprintf(stderr, "contact_sheet: %s\n", vips_error_buffer());
        return 1;
    }
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp.jpg", argv[2]);
    if (vips_jpegsave(sheet, tmp, "Q", 82, "strip", TRUE, NULL) || rename(tmp, argv[2])) {
        fprintf(stderr, "contact_sheet: cannot write %s\n", argv[2]);
        return 1;
    }
    struct stat st;
    stat(argv[2], &st);
    printf("%s: %d cut-outs, %dx%d, %.0f KB\n", argv[2], nc, sheet->Xsize, sheet->Ysize,
           st.st_size / 1024.0);
    g_object_unref(sheet);
    for (int i = 0; i < nc; i++) g_object_unref(cells[i]);
    for (int i = 0; i < nn; i++) free(names[i]);
    ts_ctx_free(ctx);
    return failed;
}
