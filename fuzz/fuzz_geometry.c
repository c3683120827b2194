/* libFuzzer target: arbitrary bytes as MediaPipe face geometry metadata (binarypb). Whatever
 * parses must hold its invariants, and the pose fit must run on it without faults. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "face/geometry.h"
#include "face/pose.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ts_geom g;
    char err[256];
    if (ts_geom_parse(data, size, &g, err, sizeof err) != 0) {
        assert(err[0] != '\0');
        return 0;
    }
    assert(g.n_triangles > 0 && g.n_triangles <= TS_GEOM_MAX_TRIANGLES);
    assert(g.n_basis > 0 && g.n_basis <= TS_GEOM_MAX_BASIS);
    for (int t = 0; t < g.n_triangles; t++)
        for (int k = 0; k < 3; k++) assert(g.triangles[t][k] < TS_GEOM_VERTICES);
    for (int i = 0; i < g.n_basis; i++) assert(g.basis[i].id < TS_GEOM_VERTICES);
    /* the mesh fitted to itself, moved: must either fit or refuse cleanly */
    static float lm[TS_GEOM_VERTICES][3];
    for (int v = 0; v < TS_GEOM_VERTICES; v++) {
        lm[v][0] = 100 + 10 * g.vertices[v][0];
        lm[v][1] = 100 - 10 * g.vertices[v][1];
        lm[v][2] = -10 * g.vertices[v][2];
    }
    ts_pose p;
    (void)ts_pose_fit(&g, (const float(*)[3])lm, TS_GEOM_VERTICES, &p, err, sizeof err);
    ts_geom_free(&g);
    return 0;
}
