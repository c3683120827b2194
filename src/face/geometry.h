/* MediaPipe's canonical face geometry (geometry_pipeline_metadata_landmarks.binarypb from the
 * face_mesh package), read by a small bounds-checked protobuf wire-format reader.
 *
 * Schema (mediapipe/modules/face_geometry/protos/geometry_pipeline_metadata.proto, mesh_3d.proto):
 *   GeometryPipelineMetadata { Mesh3d canonical_mesh = 1;
 *                              repeated WeightedLandmarkRef procrustes_landmark_basis = 2;
 *                              InputSource input_source = 3; }
 *   Mesh3d { VertexType vertex_type = 1 (VERTEX_PT = 0: x y z u v per vertex);
 *            PrimitiveType primitive_type = 2 (TRIANGLE = 0);
 *            repeated float vertex_buffer = 3; repeated uint32 index_buffer = 4; }
 *   WeightedLandmarkRef { uint32 landmark_id = 1; float weight = 2; }
 * Repeated scalars are accepted packed or unpacked, as protobuf parsers must. Canonical vertex
 * positions are in centimetres, right-handed: x towards the image right (the subject's left),
 * y up, z out of the face towards the camera. */
#ifndef TS_FACE_GEOMETRY_H
#define TS_FACE_GEOMETRY_H

#include <stddef.h>
#include <stdint.h>

#define TS_GEOM_VERTICES 468       /* canonical mesh vertices = face landmarks without irises */
#define TS_GEOM_MAX_TRIANGLES 4096 /* hostile-input caps */
#define TS_GEOM_MAX_BASIS 4096
#define TS_GEOM_FILE "geometry_pipeline_metadata_landmarks.binarypb"

typedef struct ts_geom_ref {
    uint32_t id;  /* landmark id, < TS_GEOM_VERTICES */
    float weight; /* finite, >= 0 */
} ts_geom_ref;

typedef struct ts_geom {
    float vertices[TS_GEOM_VERTICES][3]; /* canonical positions, cm */
    float uv[TS_GEOM_VERTICES][2];       /* texture coordinates */
    uint16_t (*triangles)[3];            /* n_triangles triangles, every index < 468 */
    int n_triangles;
    ts_geom_ref *basis; /* Procrustes landmark basis, total weight > 0 */
    int n_basis;
    int input_source; /* 0 DEFAULT, 1 FACE_LANDMARK_PIPELINE, 2 FACE_DETECTION_PIPELINE */
} ts_geom;

/* Parses a binarypb of len bytes into *out (which need not be initialised). Returns 0, or -1
 * with a message in err (may be NULL) and *out left empty (safe to ts_geom_free). Any input is
 * safe: every length is checked against the buffer, counts are capped, indices validated. */
int ts_geom_parse(const uint8_t *buf, size_t len, ts_geom *out, char *err, size_t errlen);

/* Reads and parses a file (at most 16 MiB). Same contract as ts_geom_parse. */
int ts_geom_load(const char *path, ts_geom *out, char *err, size_t errlen);

/* Frees what ts_geom_parse allocated; idempotent, NULL-safe. */
void ts_geom_free(ts_geom *g);

#endif
