/* Head pose and canonical face geometry: the binarypb reader (real file, re-encoded packed,
 * truncated, corrupted, randomly mutated) and the Procrustes pose fit on the canonical mesh moved
 * by known rotations, mirrored, rotated in the image plane and with seeded noise. Needs
 * geometry_pipeline_metadata_landmarks.binarypb in $TRUESHOT_MODELS or $TRUESHOT_CACHE/models
 * (default ~/.cache/trueshot/models); skipped without it. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "face/geometry.h"
#include "face/pose.h"

#define RAD (M_PI / 180.0)
#define NLM 478

static char models[1024];
static uint8_t *file_buf;
static size_t file_len;
static ts_geom G;
static int have_geom;

/* ---- helpers ------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) { /* splitmix64: seeded, reproducible */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double uniform(void) {
    return ((rng() >> 11) + 0.5) / 9007199254740992.0;
}
static double gauss(void) {
    return sqrt(-2 * log(uniform())) * cos(2 * M_PI * uniform());
}

static void mat3(double A[3][3], double B[3][3], double C[3][3]) {
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            C[i][j] = A[i][0] * B[0][j] + A[i][1] * B[1][j] + A[i][2] * B[2][j];
}

/* The test's own rotation (independent of ts_pose_matrix): yaw about the head's vertical axis,
 * then pitch about the camera's horizontal axis, then roll in the image plane; camera frame X
 * right, Y up, Z towards the camera. Semantics are checked on the image in t_semantics. */
static void rotation(double yaw, double pitch, double roll, double R[3][3]) {
    double a = yaw * RAD, b = -pitch * RAD, c = -roll * RAD;
    double Ry[3][3] = {{cos(a), 0, sin(a)}, {0, 1, 0}, {-sin(a), 0, cos(a)}};
    double Rx[3][3] = {{1, 0, 0}, {0, cos(b), -sin(b)}, {0, sin(b), cos(b)}};
    double Rz[3][3] = {{cos(c), -sin(c), 0}, {sin(c), cos(c), 0}, {0, 0, 1}};
    double T[3][3];
    mat3(Rx, Ry, T);
    mat3(Rz, T, R);
}

/* Canonical mesh rotated, scaled to s px/cm, placed at (cx, cy) and projected like landmarks:
 * x right, y down (pixels), z scaled like x, smaller z nearer the camera, arbitrary z offset.
 * Irises (468..477) are filled with far-off junk that the fit must ignore. */
static void make_landmarks(double yaw, double pitch, double roll, double s, double cx, double cy,
                           float lm[NLM][3]) {
    double R[3][3];
    rotation(yaw, pitch, roll, R);
    for (int i = 0; i < TS_GEOM_VERTICES; i++) {
        const float *v = G.vertices[i];
        double p[3];
        for (int k = 0; k < 3; k++) p[k] = R[k][0] * v[0] + R[k][1] * v[1] + R[k][2] * v[2];
        lm[i][0] = (float)(cx + s * p[0]);
        lm[i][1] = (float)(cy - s * p[1]);
        lm[i][2] = (float)(-s * p[2] + 123.0);
    }
    for (int i = TS_GEOM_VERTICES; i < NLM; i++) lm[i][0] = lm[i][1] = lm[i][2] = 1e6f;
}

static double angle_err(const ts_pose *p, double yaw, double pitch, double roll) {
    double e = fabs(p->yaw - yaw);
    if (fabs(p->pitch - pitch) > e) e = fabs(p->pitch - pitch);
    if (fabs(p->roll - roll) > e) e = fabs(p->roll - roll);
    return e;
}

static ts_pose fit(float lm[NLM][3]) {
    ts_pose p;
    char err[256];
    int rc = ts_pose_fit(&G, (const float(*)[3])lm, NLM, &p, err, sizeof err);
    if (rc) fail_msg("ts_pose_fit: %s", err);
    return p;
}

#define NEED_GEOM()                                                                                \
    do {                                                                                           \
        if (!have_geom) {                                                                          \
            print_message("no %s/%s: skipped\n", models, TS_GEOM_FILE);                            \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* ---- a minimal protobuf writer, to re-encode the metadata (packed) and corrupt it ---------- */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put_varint(buf *b, uint64_t v) {
    uint8_t c[10];
    int n = 0;
    do {
        c[n] = v & 0x7f;
        v >>= 7;
        if (v) c[n] |= 0x80;
        n++;
    } while (v);
    put(b, c, (size_t)n);
}
static void put_tag(buf *b, int field, int wt) {
    put_varint(b, (uint64_t)field << 3 | (unsigned)wt);
}
static void put_f32(buf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint8_t c[4] = {u & 0xff, u >> 8 & 0xff, u >> 16 & 0xff, u >> 24};
    put(b, c, 4);
}
static void put_bytes(buf *b, int field, const buf *m) {
    put_tag(b, field, 2);
    put_varint(b, m->n);
    put(b, m->p, m->n);
}

typedef struct corrupt {
    int drop_floats;    /* leave this many vertex floats out */
    int bad_index;      /* write 468 as the 100th index */
    int nan_vertex;     /* vertex float 7 is NaN */
    int bad_id;         /* basis entry 3 has landmark id 500 */
    int neg_weight;     /* basis entry 5 has weight -1 */
    int vertex_type;    /* vertex_type field value (0 = absent) */
    int no_basis;       /* omit the basis */
    int odd_packed;     /* packed vertex_buffer with a stray byte */
    int zero_weights;   /* all basis weights 0 */
    int unknown_fields; /* add unknown fields of every wire type (must be skipped) */
} corrupt;

static buf encode(const ts_geom *g, const corrupt *c) {
    buf mesh = {0}, vb = {0}, ib = {0}, out = {0};
    if (c->vertex_type) {
        put_tag(&mesh, 1, 0);
        put_varint(&mesh, (uint64_t)c->vertex_type);
    }
    put_tag(&mesh, 2, 0);
    put_varint(&mesh, 0);
    int nf = TS_GEOM_VERTICES * 5 - c->drop_floats;
    for (int i = 0; i < nf; i++) {
        int v = i / 5, k = i % 5;
        float f = k < 3 ? g->vertices[v][k] : g->uv[v][k - 3];
        if (c->nan_vertex && i == 7) f = NAN;
        put_f32(&vb, f);
    }
    if (c->odd_packed) put(&vb, "x", 1);
    put_bytes(&mesh, 3, &vb);
    for (int i = 0; i < g->n_triangles * 3; i++)
        put_varint(&ib, c->bad_index && i == 99 ? 468 : g->triangles[i / 3][i % 3]);
    put_bytes(&mesh, 4, &ib);
    if (c->unknown_fields) {
        put_tag(&mesh, 9, 0), put_varint(&mesh, 12345678901ull);
        put_tag(&mesh, 10, 1), put(&mesh, "12345678", 8);
        put_tag(&mesh, 11, 5), put(&mesh, "1234", 4);
        put_bytes(&mesh, 12, &ib);
    }
    put_bytes(&out, 1, &mesh);
    for (int i = 0; !c->no_basis && i < g->n_basis; i++) {
        buf r = {0};
        put_tag(&r, 1, 0);
        put_varint(&r, c->bad_id && i == 3 ? 500 : g->basis[i].id);
        put_tag(&r, 2, 5);
        put_f32(&r, c->zero_weights ? 0.f : c->neg_weight && i == 5 ? -1.f : g->basis[i].weight);
        put_bytes(&out, 2, &r);
        free(r.p);
    }
    put_tag(&out, 3, 0);
    put_varint(&out, (uint64_t)g->input_source);
    free(mesh.p), free(vb.p), free(ib.p);
    return out;
}

/* ---- parsing ------------------------------------------------------------------------------- */

static void t_parse_real(void **st) {
    (void)st;
    NEED_GEOM();
    assert_int_equal(G.n_triangles, 898);
    assert_int_equal(G.n_basis, 33);
    assert_int_equal(G.input_source, 1);
    /* nose tip forward, forehead up, the subject's right eye outer corner on the image left */
    assert_true(G.vertices[1][2] > 7.f && fabsf(G.vertices[1][0]) < 1e-4f);
    assert_true(G.vertices[10][1] > 8.f);
    assert_true(G.vertices[33][0] < -4.f && G.vertices[263][0] > 4.f);
    double w = 0;
    for (int i = 0; i < G.n_basis; i++) w += G.basis[i].weight;
    print_message("canonical mesh: %d vertices, %d triangles, basis %d ids, total weight %.4f\n",
                  TS_GEOM_VERTICES, G.n_triangles, G.n_basis, w);
}

static void same_geom(const ts_geom *a, const ts_geom *b) {
    assert_memory_equal(a->vertices, b->vertices, sizeof a->vertices);
    assert_memory_equal(a->uv, b->uv, sizeof a->uv);
    assert_int_equal(a->n_triangles, b->n_triangles);
    assert_memory_equal(a->triangles, b->triangles, (size_t)a->n_triangles * sizeof *a->triangles);
    assert_int_equal(a->n_basis, b->n_basis);
    assert_memory_equal(a->basis, b->basis, (size_t)a->n_basis * sizeof *a->basis);
}

static void t_packed_and_unknown(void **st) {
    (void)st;
    NEED_GEOM();
    corrupt c = {0};
    c.unknown_fields = 1;
    buf b = encode(&G, &c);
    ts_geom g2;
    char err[256];
    assert_int_equal(ts_geom_parse(b.p, b.n, &g2, err, sizeof err), 0);
    same_geom(&G, &g2);
    ts_geom_free(&g2);
    ts_geom_free(&g2); /* idempotent */
    free(b.p);
}

static void expect_refused(const uint8_t *p, size_t n, const char *needle) {
    ts_geom g;
    char err[256] = "untouched";
    int rc = ts_geom_parse(p, n, &g, err, sizeof err);
    if (rc == 0) fail_msg("accepted, expected an error containing '%s'", needle);
    assert_null(g.triangles);
    assert_null(g.basis);
    if (!strstr(err, needle)) fail_msg("message '%s' lacks '%s'", err, needle);
    print_message("  refused: %s\n", err);
}

static void t_corrupted(void **st) {
    (void)st;
    NEED_GEOM();
    struct {
        corrupt c;
        const char *needle;
    } cases[] = {
        {{.drop_floats = 5}, "2335 floats, expected 2340"},
        {{.drop_floats = 1}, "2339 floats"},
        {{.bad_index = 1}, "triangle index 468 out of range"},
        {{.nan_vertex = 1}, "not finite"},
        {{.bad_id = 1}, "landmark id 500 out of range"},
        {{.neg_weight = 1}, "must be finite, >= 0"},
        {{.vertex_type = 3}, "vertex_type 3 unsupported"},
        {{.no_basis = 1}, "no procrustes landmark basis"},
        {{.odd_packed = 1}, "not whole floats"},
        {{.zero_weights = 1}, "total weight"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf b = encode(&G, &cases[i].c);
        expect_refused(b.p, b.n, cases[i].needle);
        free(b.p);
    }
    /* hand-made hostile headers */
    const uint8_t huge_len[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00};
    expect_refused(huge_len, sizeof huge_len, "runs past the end");
    const uint8_t group[] = {0x0b, 0x0c};
    expect_refused(group, sizeof group, "wire type 3");
    const uint8_t long_varint[] = {0x18, 0x80, 0x80, 0x80, 0x80, 0x80,
                                   0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    expect_refused(long_varint, sizeof long_varint, "varint");
    const uint8_t cut_varint[] = {0x18, 0x80};
    expect_refused(cut_varint, sizeof cut_varint, "truncated varint");
    const uint8_t field0[] = {0x00, 0x01};
    expect_refused(field0, sizeof field0, "invalid field number");
    const uint8_t mesh_as_varint[] = {0x08, 0x01};
    expect_refused(mesh_as_varint, sizeof mesh_as_varint, "canonical_mesh has wire type 0");
    const uint8_t only_source[] = {0x18, 0x01};
    expect_refused(only_source, sizeof only_source, "no canonical_mesh");
    expect_refused((const uint8_t *)"", 0, "empty");
    expect_refused(NULL, 0, "empty");
}

static void t_truncated(void **st) {
    (void)st;
    NEED_GEOM();
    /* The first field is the canonical mesh: 0x0a then its length. Every cut inside it must be
     * refused; a cut after it can only succeed at a field boundary, with fewer basis entries. */
    assert_int_equal(file_buf[0], 0x0a);
    size_t mesh_end = 1, shift = 0, mlen = 0;
    while (file_buf[mesh_end] & 0x80)
        mlen |= (size_t)(file_buf[mesh_end++] & 0x7f) << shift, shift += 7;
    mlen |= (size_t)file_buf[mesh_end++] << shift;
    mesh_end += mlen;
    int refused = 0, accepted = 0;
    for (size_t n = 0; n < file_len; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exact-size copy: ASan sees any overread */
        memcpy(copy, file_buf, n);
        ts_geom g;
        char err[256] = "";
        int rc = ts_geom_parse(copy, n, &g, err, sizeof err);
        if (rc) {
            assert_true(err[0] != '\0');
            refused++;
        } else {
            assert_true(n >= mesh_end);
            assert_true(g.n_basis <= 33);
            accepted++;
        }
        ts_geom_free(&g);
        free(copy);
        if (n < mesh_end) assert_int_not_equal(rc, 0);
    }
    print_message("truncations: %d refused with a message, %d accepted at field boundaries after "
                  "the mesh (byte %zu of %zu)\n",
                  refused, accepted, mesh_end, file_len);

    /* files on disk: truncated and corrupted ones refused, the message naming the file */
    char path[] = "/tmp/ts_geom_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    fwrite(file_buf, 1, file_len / 2, f);
    fclose(f);
    ts_geom g;
    char err[512];
    assert_int_equal(ts_geom_load(path, &g, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    print_message("  half file: %s\n", err);
    f = fopen(path, "wb");
    uint8_t *bad = malloc(file_len);
    memcpy(bad, file_buf, file_len);
    bad[1] ^= 0x40; /* the mesh length */
    fwrite(bad, 1, file_len, f);
    fclose(f);
    assert_int_equal(ts_geom_load(path, &g, err, sizeof err), -1);
    print_message("  corrupted mesh length: %s\n", err);
    free(bad);
    unlink(path);
    assert_int_equal(ts_geom_load("/nonexistent/x.binarypb", &g, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/x.binarypb"));
}

static void t_mutations(void **st) {
    (void)st;
    NEED_GEOM();
    rng_state = 42;
    int ok = 0, bad = 0;
    uint8_t *m = malloc(file_len);
    for (int it = 0; it < 3000; it++) {
        memcpy(m, file_buf, file_len);
        int flips = 1 + (int)(rng() % 4);
        for (int k = 0; k < flips; k++) m[rng() % file_len] = (uint8_t)rng();
        size_t n = it % 3 ? file_len : rng() % file_len;
        ts_geom g;
        char err[256] = "";
        if (ts_geom_parse(m, n, &g, err, sizeof err) == 0) {
            for (int t = 0; t < g.n_triangles; t++)
                for (int k = 0; k < 3; k++) assert_true(g.triangles[t][k] < TS_GEOM_VERTICES);
            for (int i = 0; i < g.n_basis; i++) assert_true(g.basis[i].id < TS_GEOM_VERTICES);
            ok++;
        } else {
            assert_true(err[0] != '\0');
            bad++;
        }
        ts_geom_free(&g);
    }
    free(m);
    print_message("random mutations: %d accepted (valid), %d refused with a message\n", ok, bad);
}

/* ---- pose ---------------------------------------------------------------------------------- */

static void t_matrix_matches(void **st) {
    (void)st;
    double R1[3][3], R2[3][3], y, p, r;
    for (int i = 0; i < 50; i++) {
        double yaw = -80 + 160 * uniform(), pitch = -80 + 160 * uniform(),
               roll = -170 + 340 * uniform();
        rotation(yaw, pitch, roll, R1);
        ts_pose_matrix(yaw, pitch, roll, R2);
        for (int j = 0; j < 9; j++) assert_true(fabs(R1[j / 3][j % 3] - R2[j / 3][j % 3]) < 1e-12);
        ts_pose_angles((const double(*)[3])R2, &y, &p, &r);
        assert_true(fabs(y - yaw) < 1e-9 && fabs(p - pitch) < 1e-9 && fabs(r - roll) < 1e-9);
    }
}

/* The documented meaning of the signs, read off the generated image. */
static void t_semantics(void **st) {
    (void)st;
    NEED_GEOM();
    float lm[NLM][3], f[NLM][3];
    make_landmarks(0, 0, 0, 20, 500, 500, f);
    double eye_mid_x = (f[33][0] + f[263][0]) / 2, nose_dy0 = f[1][1] - (f[33][1] + f[263][1]) / 2;
    assert_true(fabs(f[1][0] - eye_mid_x) < 1e-3);
    make_landmarks(30, 0, 0, 20, 500, 500, lm); /* yaw +: nose towards the image right */
    assert_true(lm[1][0] - (lm[33][0] + lm[263][0]) / 2 > 20);
    make_landmarks(0, 20, 0, 20, 500, 500, lm); /* pitch +: chin up, nose rises towards the eyes */
    assert_true(lm[1][1] - (lm[33][1] + lm[263][1]) / 2 < nose_dy0 - 10);
    assert_true(lm[152][2] < f[152][2]);        /* chin comes nearer the camera */
    make_landmarks(0, 0, 15, 20, 500, 500, lm); /* roll +: clockwise on screen (y down) */
    assert_true(lm[263][1] > lm[33][1] + 20);   /* the eye on the image right goes down */
    assert_true(fabs(atan2(lm[263][1] - lm[33][1], lm[263][0] - lm[33][0]) / RAD - 15) < 1.0);
}

static void t_recover(void **st) {
    (void)st;
    NEED_GEOM();
    const double ys[] = {-30, -15, 0, 15, 30}, ps[] = {-20, 0, 20}, rs[] = {-15, 0, 15};
    float lm[NLM][3];
    double worst = 0, worst_rms = 0;
    int n = 0;
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 3; k++) {
                double s = 8 + 4 * (i + j + k); /* 8..40 px/cm: ~70..360 px between eyes */
                make_landmarks(ys[i], ps[j], rs[k], s, 300 + 50 * i, 900 - 70 * k, lm);
                ts_pose p = fit(lm);
                double e = angle_err(&p, ys[i], ps[j], rs[k]);
                if (e > worst) worst = e;
                if (p.rms_rel > worst_rms) worst_rms = p.rms_rel;
                assert_true(fabs(p.scale - s) < 1e-3 * s);
                if (e >= 0.5)
                    fail_msg("yaw %g pitch %g roll %g -> %g %g %g", ys[i], ps[j], rs[k], p.yaw,
                             p.pitch, p.roll);
                n++;
            }
    print_message("exact landmarks: %d poses (yaw +-30/15/0, pitch +-20/0, roll +-15/0), max angle "
                  "error %.2e deg, max rms %.2e of inter-eye\n",
                  n, worst, worst_rms);
    /* large angles still fine */
    make_landmarks(60, -35, 40, 15, 500, 500, lm);
    ts_pose p = fit(lm);
    assert_true(angle_err(&p, 60, -35, 40) < 0.5);
    /* 468 landmarks suffice; 467 do not */
    char err[256];
    assert_int_equal(ts_pose_fit(&G, (const float(*)[3])lm, 468, &p, err, sizeof err), 0);
    assert_int_equal(ts_pose_fit(&G, (const float(*)[3])lm, 467, &p, err, sizeof err), -1);
    print_message("  467 landmarks: %s\n", err);
}

static void t_mirror(void **st) {
    (void)st;
    NEED_GEOM();
    /* the canonical mesh's left-right pairing: vertex nearest to (-x, y, z) */
    int mirror_id[TS_GEOM_VERTICES];
    double far = 0;
    for (int v = 0; v < TS_GEOM_VERTICES; v++) {
        double best = 1e30;
        for (int u = 0; u < TS_GEOM_VERTICES; u++) {
            double dx = G.vertices[u][0] + G.vertices[v][0],
                   dy = G.vertices[u][1] - G.vertices[v][1],
                   dz = G.vertices[u][2] - G.vertices[v][2], d = dx * dx + dy * dy + dz * dz;
            if (d < best) best = d, mirror_id[v] = u;
        }
        if (best > far) far = best;
    }
    assert_int_equal(mirror_id[33], 263);
    assert_true(sqrt(far) < 0.05); /* symmetric mesh: every vertex has a partner within 0.5 mm */
    const double W = 1000;
    float lm[NLM][3];
    double worst = 0;
    for (int i = 0; i < 20; i++) {
        double yaw = -30 + 60 * uniform(), pitch = -20 + 40 * uniform(),
               roll = -15 + 30 * uniform();
        make_landmarks(yaw, pitch, roll, 20, 450, 500, lm);
        ts_pose a = fit(lm);
        /* mirror the image: x -> W - x, and the landmark model names points anatomically, so
         * landmark v of the mirrored face is the mirror of landmark mirror_id[v] */
        float mir[NLM][3];
        for (int v = 0; v < NLM; v++) {
            int u = v < TS_GEOM_VERTICES ? mirror_id[v] : v;
            mir[v][0] = (float)(W - lm[u][0]);
            mir[v][1] = lm[u][1];
            mir[v][2] = lm[u][2];
        }
        memcpy(lm, mir, sizeof mir);
        ts_pose b = fit(lm);
        double e = fabs(b.yaw + a.yaw);
        if (fabs(b.roll + a.roll) > e) e = fabs(b.roll + a.roll);
        if (fabs(b.pitch - a.pitch) > e) e = fabs(b.pitch - a.pitch);
        if (e > worst) worst = e;
        assert_true(e < 0.5);
        assert_true(angle_err(&a, yaw, pitch, roll) < 0.5);
    }
    print_message("mirroring: yaw and roll negate, pitch kept, worst deviation %.2e deg\n", worst);
}

static void t_image_rotation(void **st) {
    (void)st;
    NEED_GEOM();
    float lm[NLM][3];
    double worst = 0;
    for (int i = 0; i < 20; i++) {
        double yaw = -30 + 60 * uniform(), pitch = -20 + 40 * uniform(),
               roll = -15 + 30 * uniform();
        double alpha = -40 + 80 * uniform(); /* clockwise on screen */
        make_landmarks(yaw, pitch, roll, 20, 450, 500, lm);
        double c = cos(alpha * RAD), s = sin(alpha * RAD), ox = 400, oy = 300;
        for (int v = 0; v < NLM; v++) { /* y down: clockwise on screen is +alpha here */
            double x = lm[v][0] - ox, y = lm[v][1] - oy;
            lm[v][0] = (float)(ox + c * x - s * y);
            lm[v][1] = (float)(oy + s * x + c * y);
        }
        ts_pose p = fit(lm);
        double e = angle_err(&p, yaw, pitch, roll + alpha);
        if (e > worst) worst = e;
        assert_true(e < 0.5);
    }
    print_message("rotating the image clockwise by a adds a to roll: worst deviation %.2e deg\n",
                  worst);
}

static void t_noise(void **st) {
    (void)st;
    NEED_GEOM();
    rng_state = 7;
    const double sigmas[] = {0.5, 1.0, 2.0};
    float lm[NLM][3];
    for (int si = 0; si < 3; si++) {
        double worst = 0, sum = 0;
        int n = 200;
        for (int i = 0; i < n; i++) {
            double yaw = -30 + 60 * uniform(), pitch = -20 + 40 * uniform(),
                   roll = -15 + 30 * uniform();
            make_landmarks(yaw, pitch, roll, 20, 500, 500, lm); /* ~178 px between eye corners */
            for (int v = 0; v < TS_GEOM_VERTICES; v++)
                for (int k = 0; k < 3; k++) lm[v][k] += (float)(sigmas[si] * gauss());
            ts_pose p = fit(lm);
            double e = angle_err(&p, yaw, pitch, roll);
            sum += e;
            if (e > worst) worst = e;
            assert_true(e < 2.0);
        }
        print_message(
            "noise sigma %.1f px (%.2f%% of inter-eye) on x,y,z: %d poses, mean max-angle "
            "error %.3f deg, worst %.3f deg\n",
            sigmas[si], 100 * sigmas[si] / (20 * 8.89), n, sum / n, worst);
    }
}

static void t_degenerate(void **st) {
    (void)st;
    NEED_GEOM();
    float lm[NLM][3];
    char err[256];
    ts_pose p;
    for (int v = 0; v < NLM; v++) lm[v][0] = lm[v][1] = lm[v][2] = 5.f;
    assert_int_equal(ts_pose_fit(&G, (const float(*)[3])lm, NLM, &p, err, sizeof err), -1);
    print_message("  collapsed: %s\n", err);
    make_landmarks(0, 0, 0, 20, 500, 500, lm);
    lm[33][1] = NAN;
    assert_int_equal(ts_pose_fit(&G, (const float(*)[3])lm, NLM, &p, err, sizeof err), -1);
    print_message("  NaN: %s\n", err);
    assert_int_equal(ts_pose_fit(NULL, (const float(*)[3])lm, NLM, &p, err, sizeof err), -1);
}

int main(void) {
    const char *dir = getenv("TRUESHOT_MODELS"), *cache = getenv("TRUESHOT_CACHE"),
               *home = getenv("HOME");
    if (dir && *dir)
        snprintf(models, sizeof models, "%s", dir);
    else if (cache && *cache)
        snprintf(models, sizeof models, "%s/models", cache);
    else
        snprintf(models, sizeof models, "%s/.cache/trueshot/models", home ? home : ".");
    char path[1200], err[1400];
    snprintf(path, sizeof path, "%s/%s", models, TS_GEOM_FILE);
    FILE *f = fopen(path, "rb");
    if (f) {
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        if (n > 0 && n < (1 << 24)) {
            file_buf = malloc((size_t)n);
            file_len = fread(file_buf, 1, (size_t)n, f);
        }
        fclose(f);
        if (ts_geom_load(path, &G, err, sizeof err) == 0)
            have_geom = 1;
        else
            fprintf(stderr, "%s\n", err);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_parse_real), cmocka_unit_test(t_packed_and_unknown),
        cmocka_unit_test(t_corrupted),  cmocka_unit_test(t_truncated),
        cmocka_unit_test(t_mutations),  cmocka_unit_test(t_matrix_matches),
        cmocka_unit_test(t_semantics),  cmocka_unit_test(t_recover),
        cmocka_unit_test(t_mirror),     cmocka_unit_test(t_image_rotation),
        cmocka_unit_test(t_noise),      cmocka_unit_test(t_degenerate),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ts_geom_free(&G);
    free(file_buf);
    return rc;
}
