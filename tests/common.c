#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"
#include "core/internal.h"

const char *ts_test_cache(void) {
    static char cache[1024];
    if (!cache[0]) {
        const char *c = getenv("TRUESHOT_CACHE"), *home = getenv("HOME");
        if (c && *c)
            snprintf(cache, sizeof cache, "%s", c);
        else
            snprintf(cache, sizeof cache, "%s/.cache/trueshot", home ? home : ".");
    }
    return cache;
}

const char *ts_test_photo(const char *name) {
    static char path[1200];
    snprintf(path, sizeof path, "%s/photos/%s", ts_test_cache(), name);
    return path;
}

int ts_test_setup(void **state) {
    ts_test_fixture *f = calloc(1, sizeof *f);
    if (!f || ts_ctx_new(NULL, &f->ctx) != TS_OK || ts_test_tmpdir(f->dir, sizeof f->dir, "test"))
        return -1;
    *state = f;
    return 0;
}

int ts_test_teardown(void **state) {
    ts_test_fixture *f = *state;
    ts_test_rmdir(f->dir);
    ts_ctx_free(f->ctx);
    free(f);
    return 0;
}

const char *ts_test_sample(void) {
    static char path[1200];
    const char *repo = getenv("TS_REPO");
    snprintf(path, sizeof path, "%s/samples/sample.jpg", repo ? repo : ".");
    return path;
}

void ts_test_mesh_of(const char *path, ts_face_mesh *m) {
    ts_ctx *ctx;
    assert_int_equal(ts_ctx_new(NULL, &ctx), TS_OK);
    ts_photo *p;
    if (ts_photo_open(ctx, path, &p)) fail_msg("%s", ts_ctx_error(ctx));
    ts_face_box faces[16];
    int n = 0;
    if (ts_face_detect(ctx, p, faces, 16, &n)) fail_msg("%s", ts_ctx_error(ctx));
    if (n < 1) fail_msg("%s: no face", path);
    int s = ts_face_subject(faces, n, ts_photo_width(p), ts_photo_height(p));
    if (ts_face_mesh_compute(ctx, p, &faces[s], m)) fail_msg("%s", ts_ctx_error(ctx));
    ts_photo_unref(p);
    ts_ctx_free(ctx);
}

int ts_test_tmpdir(char *dir, size_t cap, const char *what) {
    snprintf(dir, cap, "/tmp/ts-test-%s-XXXXXX", what);
    return mkdtemp(dir) ? 0 : -1;
}

void ts_test_rmdir(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[1200];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    if (d) closedir(d);
    rmdir(dir);
}

void ts_test_grey_card(const char *path) {
    VipsImage *black = NULL, *grey = NULL;
    assert_int_equal(vips_black(&black, 320, 240, "bands", 3, NULL), 0);
    assert_int_equal(vips_linear1(black, &grey, 1, 128, "uchar", TRUE, NULL), 0);
    assert_int_equal(vips_image_write_to_file(grey, path, NULL), 0);
    g_object_unref(black);
    g_object_unref(grey);
}
