/* Helpers shared by the C tests. */
#ifndef TS_TESTS_COMMON_H
#define TS_TESTS_COMMON_H

#include "face/mesh.h"

/* The asset cache: $TRUESHOT_CACHE, else ~/.cache/trueshot. */
const char *ts_test_cache(void);
/* Path of a development photo in the cache (static buffer, valid until the next call). */
const char *ts_test_photo(const char *name);
/* Path of the bundled sample photo, $TS_REPO/samples/sample.jpg (static buffer). */
const char *ts_test_sample(void);
/* A new private folder /tmp/ts-test-WHAT-XXXXXX in dir; 0, or -1 when it cannot be made. */
int ts_test_tmpdir(char *dir, size_t cap, const char *what);
/* Removes the files in dir (one level) and dir itself. */
void ts_test_rmdir(const char *dir);

/* The usual cmocka fixture: a ctx and a private scratch folder, removed at the end. */
typedef struct ts_test_fixture {
    ts_ctx *ctx;
    char dir[256];
} ts_test_fixture;
/* cmocka setup / teardown of a ts_test_fixture in *state. */
int ts_test_setup(void **state);
int ts_test_teardown(void **state);

/* Writes a flat mid-grey 320 x 240 picture (no face, no person) to path; fails the test
 * otherwise. */
void ts_test_grey_card(const char *path);

/* Detects the subject in the photo at path and computes its mesh; fails the test otherwise. */
void ts_test_mesh_of(const char *path, ts_face_mesh *m);

#endif
