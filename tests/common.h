/* Helpers shared by the C tests. */
#ifndef TS_TESTS_COMMON_H
#define TS_TESTS_COMMON_H

#include "face/mesh.h"

/* The asset cache: $TRUESHOT_CACHE, else ~/.cache/trueshot. */
const char *ts_test_cache(void);
/* Path of a development photo in the cache (static buffer, valid until the next call). */
const char *ts_test_photo(const char *name);
/* Detects the subject in the photo at path and computes its mesh; fails the test otherwise. */
void ts_test_mesh_of(const char *path, ts_face_mesh *m);

#endif
