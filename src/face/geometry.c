/* Bounds-checked protobuf wire-format reader for MediaPipe's face geometry metadata; see
 * geometry.h for the schema. Every read is checked against the end of its enclosing field, so
 * hostile input yields an error message, never an out-of-bounds access. */
#include "face/geometry.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VERTEX_SIZE 5 /* VERTEX_PT: x y z u v */
#define MAX_FILE (16u << 20)

enum { WT_VARINT = 0, WT_FIXED64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_FIXED32 = 5 };

typedef struct rd {
    const uint8_t *p, *end;
} rd;

typedef struct parser {
    const uint8_t *base; /* start of the whole buffer, for offsets in messages */
    char *err;
    size_t errlen;
    float vbuf[TS_GEOM_VERTICES * VERTEX_SIZE];
    size_t nv; /* floats in vbuf */
    uint32_t *ibuf;
    size_t ni, icap;
    ts_geom_ref *basis;
    size_t nb, bcap;
    int have_mesh;
    int input_source;
} parser;

__attribute__((format(printf, 3, 4))) static int fail(parser *P, const uint8_t *at, const char *fmt,
                                                      ...) {
    if (!P->err || !P->errlen) return -1;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at)
        snprintf(P->err, P->errlen, "geometry metadata: %s (at byte %zu)", msg,
                 (size_t)(at - P->base));
    else
        snprintf(P->err, P->errlen, "geometry metadata: %s", msg);
    return -1;
}

static int rd_varint(parser *P, rd *r, uint64_t *v) {
    uint64_t x = 0;
    const uint8_t *start = r->p;
    for (int i = 0; i < 10; i++) {
        if (r->p >= r->end) return fail(P, start, "truncated varint");
        uint8_t c = *r->p++;
        if (i == 9 && c > 1) return fail(P, start, "varint overflows 64 bits");
        x |= (uint64_t)(c & 0x7f) << (7 * i);
        if (!(c & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return fail(P, start, "varint longer than 10 bytes");
}

static int rd_fixed32(parser *P, rd *r, uint32_t *v) {
    if (r->end - r->p < 4) return fail(P, r->p, "truncated fixed32");
    *v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
         (uint32_t)r->p[3] << 24;
    r->p += 4;
    return 0;
}

static int rd_float(parser *P, rd *r, float *f) {
    uint32_t u = 0;
    if (rd_fixed32(P, r, &u)) return -1;
    memcpy(f, &u, sizeof *f);
    return 0;
}

/* A length-delimited field's payload as a sub-reader; the length is checked against r. */
static int rd_sub(parser *P, rd *r, rd *sub) {
    const uint8_t *at = r->p;
    uint64_t n = 0;
    if (rd_varint(P, r, &n)) return -1;
    if (n > (uint64_t)(r->end - r->p))
        return fail(P, at, "field length %llu runs past the end of its message (%zu bytes left)",
                    (unsigned long long)n, (size_t)(r->end - r->p));
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return 0;
}

static int rd_tag(parser *P, rd *r, uint32_t *field, int *wt) {
    const uint8_t *at = r->p;
    uint64_t k = 0;
    if (rd_varint(P, r, &k)) return -1;
    if (k >> 32 || (k >> 3) == 0) return fail(P, at, "invalid field number");
    *field = (uint32_t)(k >> 3);
    *wt = (int)(k & 7);
    return 0;
}

static int rd_skip(parser *P, rd *r, int wt) {
    uint64_t v = 0;
    rd sub = {0};
    switch (wt) {
    case WT_VARINT:
        return rd_varint(P, r, &v);
    case WT_FIXED64:
        if (r->end - r->p < 8) return fail(P, r->p, "truncated fixed64");
        r->p += 8;
        return 0;
    case WT_LEN:
        return rd_sub(P, r, &sub);
    case WT_FIXED32:
        if (r->end - r->p < 4) return fail(P, r->p, "truncated fixed32");
        r->p += 4;
        return 0;
    default:
        return fail(P, r->p, "unsupported wire type %d (groups are not allowed)", wt);
    }
}

static int expect_wt(parser *P, const uint8_t *at, const char *name, int wt, int want1, int want2) {
    if (wt == want1 || wt == want2) return 0;
    return fail(P, at, "%s has wire type %d", name, wt);
}

static int push_vertex_float(parser *P, const uint8_t *at, float f) {
    if (P->nv >= sizeof P->vbuf / sizeof P->vbuf[0])
        return fail(P, at, "vertex buffer holds more than %d floats (%d vertices x %d)",
                    TS_GEOM_VERTICES * VERTEX_SIZE, TS_GEOM_VERTICES, VERTEX_SIZE);
    if (!isfinite(f)) return fail(P, at, "vertex buffer value %zu is not finite", P->nv);
    P->vbuf[P->nv++] = f;
    return 0;
}

static int push_index(parser *P, const uint8_t *at, uint64_t v) {
    if (v >= TS_GEOM_VERTICES)
        return fail(P, at, "triangle index %llu out of range (mesh has %d vertices)",
                    (unsigned long long)v, TS_GEOM_VERTICES);
    if (P->ni >= (size_t)TS_GEOM_MAX_TRIANGLES * 3)
        return fail(P, at, "index buffer holds more than %d triangles", TS_GEOM_MAX_TRIANGLES);
    if (P->ni == P->icap) {
        size_t cap = P->icap ? P->icap * 2 : 1024;
        uint32_t *n = realloc(P->ibuf, cap * sizeof *n);
        if (!n) return fail(P, NULL, "out of memory");
        P->ibuf = n;
        P->icap = cap;
    }
    P->ibuf[P->ni++] = (uint32_t)v;
    return 0;
}

static int parse_mesh(parser *P, rd r) {
    while (r.p < r.end) {
        const uint8_t *at = r.p;
        uint32_t f = 0;
        int wt = 0;
        uint64_t v = 0;
        if (rd_tag(P, &r, &f, &wt)) return -1;
        if (f == 1 || f == 2) { /* vertex_type, primitive_type: enums, only 0 is defined */
            const char *name = f == 1 ? "vertex_type" : "primitive_type";
            if (expect_wt(P, at, name, wt, WT_VARINT, WT_VARINT) || rd_varint(P, &r, &v)) return -1;
            if (v != 0)
                return fail(P, at, "%s %llu unsupported (only %s)", name, (unsigned long long)v,
                            f == 1 ? "VERTEX_PT" : "TRIANGLE");
        } else if (f == 3) { /* vertex_buffer: repeated float */
            if (expect_wt(P, at, "vertex_buffer", wt, WT_FIXED32, WT_LEN)) return -1;
            if (wt == WT_FIXED32) {
                float x = 0;
                if (rd_float(P, &r, &x) || push_vertex_float(P, at, x)) return -1;
            } else {
                rd s = {0};
                if (rd_sub(P, &r, &s)) return -1;
                if ((s.end - s.p) % 4)
                    return fail(P, at, "packed vertex_buffer of %zu bytes, not whole floats",
                                (size_t)(s.end - s.p));
                while (s.p < s.end) {
                    const uint8_t *e = s.p;
                    float x = 0;
                    if (rd_float(P, &s, &x) || push_vertex_float(P, e, x)) return -1;
                }
            }
        } else if (f == 4) { /* index_buffer: repeated uint32 */
            if (expect_wt(P, at, "index_buffer", wt, WT_VARINT, WT_LEN)) return -1;
            if (wt == WT_VARINT) {
                if (rd_varint(P, &r, &v) || push_index(P, at, v)) return -1;
            } else {
                rd s = {0};
                if (rd_sub(P, &r, &s)) return -1;
                while (s.p < s.end) {
                    const uint8_t *e = s.p;
                    if (rd_varint(P, &s, &v) || push_index(P, e, v)) return -1;
                }
            }
        } else if (rd_skip(P, &r, wt)) {
            return -1;
        }
    }
    return 0;
}

static int parse_ref(parser *P, rd r, const uint8_t *at) {
    ts_geom_ref ref = {0, 0.f};
    int have_weight = 0;
    while (r.p < r.end) {
        const uint8_t *fat = r.p;
        uint32_t f = 0;
        int wt = 0;
        if (rd_tag(P, &r, &f, &wt)) return -1;
        if (f == 1) {
            uint64_t v = 0;
            if (expect_wt(P, fat, "landmark_id", wt, WT_VARINT, WT_VARINT) || rd_varint(P, &r, &v))
                return -1;
            if (v >= TS_GEOM_VERTICES)
                return fail(P, fat, "procrustes landmark id %llu out of range (< %d)",
                            (unsigned long long)v, TS_GEOM_VERTICES);
            ref.id = (uint32_t)v;
        } else if (f == 2) {
            if (expect_wt(P, fat, "weight", wt, WT_FIXED32, WT_FIXED32) ||
                rd_float(P, &r, &ref.weight))
                return -1;
            have_weight = 1;
        } else if (rd_skip(P, &r, wt)) {
            return -1;
        }
    }
    if (!have_weight) return fail(P, at, "procrustes basis entry %zu has no weight", P->nb);
    if (!isfinite(ref.weight) || ref.weight < 0.f)
        return fail(P, at, "procrustes weight of landmark %u is %g (must be finite, >= 0)", ref.id,
                    (double)ref.weight);
    if (P->nb >= TS_GEOM_MAX_BASIS)
        return fail(P, at, "more than %d procrustes basis entries", TS_GEOM_MAX_BASIS);
    if (P->nb == P->bcap) {
        size_t cap = P->bcap ? P->bcap * 2 : 64;
        ts_geom_ref *n = realloc(P->basis, cap * sizeof *n);
        if (!n) return fail(P, NULL, "out of memory");
        P->basis = n;
        P->bcap = cap;
    }
    P->basis[P->nb++] = ref;
    return 0;
}

static int parse_top(parser *P, rd r) {
    while (r.p < r.end) {
        const uint8_t *at = r.p;
        uint32_t f = 0;
        int wt = 0;
        if (rd_tag(P, &r, &f, &wt)) return -1;
        if (f == 1 || f == 2) {
            rd s = {0};
            if (expect_wt(P, at, f == 1 ? "canonical_mesh" : "procrustes_landmark_basis", wt,
                          WT_LEN, WT_LEN) ||
                rd_sub(P, &r, &s))
                return -1;
            if (f == 1) {
                P->have_mesh = 1; /* a repeated occurrence merges, as protobuf specifies */
                if (parse_mesh(P, s)) return -1;
            } else if (parse_ref(P, s, at)) {
                return -1;
            }
        } else if (f == 3) {
            uint64_t v = 0;
            if (expect_wt(P, at, "input_source", wt, WT_VARINT, WT_VARINT) || rd_varint(P, &r, &v))
                return -1;
            if (v > 2) return fail(P, at, "unknown input_source %llu", (unsigned long long)v);
            P->input_source = (int)v;
        } else if (rd_skip(P, &r, wt)) {
            return -1;
        }
    }
    return 0;
}

void ts_geom_free(ts_geom *g) {
    if (!g) return;
    free(g->triangles);
    free(g->basis);
    g->triangles = NULL;
    g->basis = NULL;
    g->n_triangles = g->n_basis = 0;
}

int ts_geom_parse(const uint8_t *buf, size_t len, ts_geom *out, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!out) {
        if (err && errlen) snprintf(err, errlen, "geometry metadata: NULL output");
        return -1;
    }
    memset(out, 0, sizeof *out);
    parser *P = calloc(1, sizeof *P);
    if (!P) {
        if (err && errlen) snprintf(err, errlen, "geometry metadata: out of memory");
        return -1;
    }
    P->base = buf;
    P->err = err;
    P->errlen = errlen;
    int rc = -1;
    if (!buf && len) {
        fail(P, NULL, "NULL buffer");
        goto done;
    }
    if (len == 0) {
        fail(P, NULL, "empty file");
        goto done;
    }
    if (parse_top(P, (rd){buf, buf + len})) goto done;
    if (!P->have_mesh) {
        fail(P, NULL, "no canonical_mesh");
        goto done;
    }
    if (P->nv != (size_t)TS_GEOM_VERTICES * VERTEX_SIZE) {
        fail(P, NULL, "vertex buffer holds %zu floats, expected %d (%d vertices x %d)", P->nv,
             TS_GEOM_VERTICES * VERTEX_SIZE, TS_GEOM_VERTICES, VERTEX_SIZE);
        goto done;
    }
    if (P->ni == 0 || P->ni % 3) {
        fail(P, NULL, "index buffer holds %zu indices, not a positive multiple of 3", P->ni);
        goto done;
    }
    if (P->nb == 0) {
        fail(P, NULL, "no procrustes landmark basis");
        goto done;
    }
    double total = 0;
    for (size_t i = 0; i < P->nb; i++) total += P->basis[i].weight;
    if (!(total > 1e-9)) {
        fail(P, NULL, "procrustes basis total weight %g is not positive", total);
        goto done;
    }
    out->triangles = malloc(P->ni / 3 * sizeof *out->triangles);
    if (!out->triangles) {
        fail(P, NULL, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < P->ni; i++) out->triangles[i / 3][i % 3] = (uint16_t)P->ibuf[i];
    out->n_triangles = (int)(P->ni / 3);
    for (int v = 0; v < TS_GEOM_VERTICES; v++) {
        for (int k = 0; k < 3; k++) out->vertices[v][k] = P->vbuf[v * VERTEX_SIZE + k];
        for (int k = 0; k < 2; k++) out->uv[v][k] = P->vbuf[v * VERTEX_SIZE + 3 + k];
    }
    out->basis = P->basis;
    out->n_basis = (int)P->nb;
    P->basis = NULL;
    out->input_source = P->input_source;
    rc = 0;
done:
    free(P->ibuf);
    free(P->basis);
    free(P);
    if (rc) ts_geom_free(out);
    return rc;
}

int ts_geom_load(const char *path, ts_geom *out, char *err, size_t errlen) {
    if (out) memset(out, 0, sizeof *out);
    if (!path) {
        if (err && errlen) snprintf(err, errlen, "geometry metadata: NULL path");
        return -1;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (err && errlen) snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0 || size > (long)MAX_FILE) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path,
                     size > (long)MAX_FILE ? "larger than 16 MiB" : "cannot seek");
        fclose(f);
        return -1;
    }
    uint8_t *buf = malloc(size ? (size_t)size : 1);
    size_t n = buf ? fread(buf, 1, (size_t)size, f) : 0;
    int bad = !buf || ferror(f) || n != (size_t)size;
    fclose(f);
    if (bad) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path, !buf ? "out of memory" : "read error");
        free(buf);
        return -1;
    }
    char msg[256];
    int rc = ts_geom_parse(buf, n, out, msg, sizeof msg);
    free(buf);
    if (rc && err && errlen) snprintf(err, errlen, "%s: %s", path, msg);
    return rc;
}
