/* Bounds-checked FlexBuffers reader; see flexbuf.h. Format from the FlatBuffers project's
 * documentation (docs/source/flexbuffers.md / include/flatbuffers/flexbuffers.h,
 * google/flatbuffers). Byte order is little-endian on the wire; bytes are assembled explicitly, so
 * the host's endianness and alignment do not matter. */
#include "nn/flexbuf.h"

#include <math.h>
#include <string.h>

const char *ts_flex_strerror(int code) {
    switch (code) {
    case TS_FLEX_OK:
        return "ok";
    case TS_FLEX_EBOUNDS:
        return "offset or length outside the buffer";
    case TS_FLEX_EFORMAT:
        return "malformed flexbuffer";
    case TS_FLEX_ETYPE:
        return "value has the wrong type";
    case TS_FLEX_ENOTFOUND:
        return "key not found";
    case TS_FLEX_ERANGE:
        return "index or value out of range";
    default:
        return "unknown flexbuffer error";
    }
}

static bool valid_width(unsigned w) {
    return w == 1 || w == 2 || w == 4 || w == 8;
}

static bool valid_type(unsigned t) {
    return t <= TS_FLEX_BOOL || t == TS_FLEX_VECTOR_BOOL;
}

/* Unsigned little-endian integer of width w at buf[pos]. */
static int rd_u(const uint8_t *buf, size_t len, size_t pos, unsigned w, uint64_t *out) {
    if (!valid_width(w)) return TS_FLEX_EFORMAT;
    if (pos > len || len - pos < w) return TS_FLEX_EBOUNDS;
    uint64_t v = 0;
    for (unsigned i = 0; i < w; i++) v |= (uint64_t)buf[pos + i] << (8 * i);
    *out = v;
    return 0;
}

static int rd_i(const uint8_t *buf, size_t len, size_t pos, unsigned w, int64_t *out) {
    uint64_t u;
    int rc = rd_u(buf, len, pos, w, &u);
    if (rc) return rc;
    if (w < 8) {
        uint64_t sign = (uint64_t)1 << (8 * w - 1);
        if (u & sign) u |= ~((sign << 1) - 1); /* sign-extend */
    }
    memcpy(out, &u, sizeof u); /* two's complement reinterpretation */
    return 0;
}

/* FlexBuffers reads a "float" of width 1 or 2 as a signed integer of that width (there are no
 * 8/16-bit floats); 4 is IEEE single, 8 is IEEE double. */
static int rd_f(const uint8_t *buf, size_t len, size_t pos, unsigned w, double *out) {
    if (w < 4) {
        int64_t i;
        int rc = rd_i(buf, len, pos, w, &i);
        if (!rc) *out = (double)i;
        return rc;
    }
    uint64_t u;
    int rc = rd_u(buf, len, pos, w, &u);
    if (rc) return rc;
    if (w == 4) {
        uint32_t u32 = (uint32_t)u;
        float f;
        memcpy(&f, &u32, sizeof f);
        *out = f;
    } else {
        double d;
        memcpy(&d, &u, sizeof d);
        *out = d;
    }
    return 0;
}

/* Follows the offset stored in r's slot: target = pos - offset. */
static int indirect(const ts_flex_ref *r, size_t *target) {
    uint64_t off;
    int rc = rd_u(r->buf, r->len, r->pos, r->parent_width, &off);
    if (rc) return rc;
    if (off > r->pos) return TS_FLEX_EBOUNDS;
    *target = r->pos - (size_t)off;
    return 0;
}

int ts_flex_root(const uint8_t *buf, size_t len, ts_flex_ref *root) {
    if (!buf || len < 3) return TS_FLEX_EBOUNDS;
    unsigned w = buf[len - 1];
    uint8_t packed = buf[len - 2];
    if (!valid_width(w)) return TS_FLEX_EFORMAT;
    if (len - 2 < w) return TS_FLEX_EBOUNDS;
    root->buf = buf;
    root->len = len;
    root->pos = len - 2 - w;
    root->parent_width = (uint8_t)w;
    root->byte_width = (uint8_t)(1u << (packed & 3));
    root->type = (uint8_t)(packed >> 2);
    if (!valid_type(root->type)) return TS_FLEX_EFORMAT;
    return 0;
}

bool ts_flex_is_number(const ts_flex_ref *r) {
    switch (r->type) {
    case TS_FLEX_NULL:
    case TS_FLEX_INT:
    case TS_FLEX_UINT:
    case TS_FLEX_FLOAT:
    case TS_FLEX_INDIRECT_INT:
    case TS_FLEX_INDIRECT_UINT:
    case TS_FLEX_INDIRECT_FLOAT:
    case TS_FLEX_BOOL:
        return true;
    default:
        return false;
    }
}

bool ts_flex_is_vector(const ts_flex_ref *r) {
    return (r->type >= TS_FLEX_MAP && r->type <= TS_FLEX_VECTOR_FLOAT4) ||
           r->type == TS_FLEX_VECTOR_BOOL;
}

/* The numeric value as one of three kinds, so each conversion is written once. */
enum { K_INT, K_UINT, K_FLOAT };
typedef struct {
    int kind;
    int64_t i;
    uint64_t u;
    double f;
} num;

static int read_num(const ts_flex_ref *r, num *n) {
    size_t p;
    int rc = 0;
    switch (r->type) {
    case TS_FLEX_NULL:
        n->kind = K_INT, n->i = 0;
        return 0;
    case TS_FLEX_INT:
    case TS_FLEX_BOOL:
        n->kind = K_INT;
        return rd_i(r->buf, r->len, r->pos, r->parent_width, &n->i);
    case TS_FLEX_UINT:
        n->kind = K_UINT;
        return rd_u(r->buf, r->len, r->pos, r->parent_width, &n->u);
    case TS_FLEX_FLOAT:
        n->kind = K_FLOAT;
        return rd_f(r->buf, r->len, r->pos, r->parent_width, &n->f);
    case TS_FLEX_INDIRECT_INT:
        if ((rc = indirect(r, &p))) return rc;
        n->kind = K_INT;
        return rd_i(r->buf, r->len, p, r->byte_width, &n->i);
    case TS_FLEX_INDIRECT_UINT:
        if ((rc = indirect(r, &p))) return rc;
        n->kind = K_UINT;
        return rd_u(r->buf, r->len, p, r->byte_width, &n->u);
    case TS_FLEX_INDIRECT_FLOAT:
        if ((rc = indirect(r, &p))) return rc;
        n->kind = K_FLOAT;
        return rd_f(r->buf, r->len, p, r->byte_width, &n->f);
    default:
        return valid_type(r->type) ? TS_FLEX_ETYPE : TS_FLEX_EFORMAT;
    }
}

int ts_flex_as_int64(const ts_flex_ref *r, int64_t *out) {
    num n;
    int rc = read_num(r, &n);
    if (rc) return rc;
    switch (n.kind) {
    case K_INT:
        *out = n.i;
        return 0;
    case K_UINT:
        if (n.u > (uint64_t)INT64_MAX) return TS_FLEX_ERANGE;
        *out = (int64_t)n.u;
        return 0;
    default:
        /* 2^63 is exactly representable; anything in [-2^63, 2^63) truncates safely. */
        if (!(n.f >= -9223372036854775808.0 && n.f < 9223372036854775808.0)) return TS_FLEX_ERANGE;
        *out = (int64_t)n.f;
        return 0;
    }
}

int ts_flex_as_int32(const ts_flex_ref *r, int32_t *out) {
    int64_t v;
    int rc = ts_flex_as_int64(r, &v);
    if (rc) return rc;
    if (v < INT32_MIN || v > INT32_MAX) return TS_FLEX_ERANGE;
    *out = (int32_t)v;
    return 0;
}

int ts_flex_as_uint64(const ts_flex_ref *r, uint64_t *out) {
    num n;
    int rc = read_num(r, &n);
    if (rc) return rc;
    switch (n.kind) {
    case K_UINT:
        *out = n.u;
        return 0;
    case K_INT:
        if (n.i < 0) return TS_FLEX_ERANGE;
        *out = (uint64_t)n.i;
        return 0;
    default:
        if (!(n.f > -1.0 && n.f < 18446744073709551616.0)) return TS_FLEX_ERANGE;
        *out = (uint64_t)n.f;
        return 0;
    }
}

int ts_flex_as_double(const ts_flex_ref *r, double *out) {
    num n;
    int rc = read_num(r, &n);
    if (rc) return rc;
    *out = n.kind == K_INT ? (double)n.i : n.kind == K_UINT ? (double)n.u : n.f;
    return 0;
}

int ts_flex_as_bool(const ts_flex_ref *r, bool *out) {
    num n;
    int rc = read_num(r, &n);
    if (rc) return rc;
    /* Like FlexBuffers: non-zero after conversion to an integer (so 0.5 is false). */
    *out = n.kind == K_INT ? n.i != 0 : n.kind == K_UINT ? n.u != 0 : trunc(n.f) != 0.0;
    return 0;
}

/* Data position and size of a size-prefixed object (vector, string, blob) of width w at d. */
static int sized(const ts_flex_ref *r, size_t d, unsigned w, uint64_t *size) {
    if (d < w) return TS_FLEX_EBOUNDS;
    return rd_u(r->buf, r->len, d - w, w, size);
}

int ts_flex_as_string(const ts_flex_ref *r, const char **s, size_t *n) {
    size_t d;
    int rc;
    if (r->type == TS_FLEX_KEY) {
        if ((rc = indirect(r, &d))) return rc;
        if (d >= r->len) return TS_FLEX_EBOUNDS;
        const uint8_t *z = memchr(r->buf + d, 0, r->len - d);
        if (!z) return TS_FLEX_EBOUNDS;
        *s = (const char *)(r->buf + d);
        *n = (size_t)(z - (r->buf + d));
        return 0;
    }
    if (r->type != TS_FLEX_STRING) return valid_type(r->type) ? TS_FLEX_ETYPE : TS_FLEX_EFORMAT;
    uint64_t size;
    if ((rc = indirect(r, &d)) || (rc = sized(r, d, r->byte_width, &size))) return rc;
    /* size bytes plus the terminator must lie inside the buffer */
    if (d > r->len || size >= (uint64_t)(r->len - d)) return TS_FLEX_EBOUNDS;
    if (r->buf[d + (size_t)size] != 0) return TS_FLEX_EFORMAT;
    *s = (const char *)(r->buf + d);
    *n = (size_t)size;
    return 0;
}

int ts_flex_as_blob(const ts_flex_ref *r, const uint8_t **data, size_t *n) {
    if (r->type != TS_FLEX_BLOB && r->type != TS_FLEX_STRING)
        return valid_type(r->type) ? TS_FLEX_ETYPE : TS_FLEX_EFORMAT;
    size_t d;
    uint64_t size;
    int rc;
    if ((rc = indirect(r, &d)) || (rc = sized(r, d, r->byte_width, &size))) return rc;
    if (d > r->len || size > (uint64_t)(r->len - d)) return TS_FLEX_EBOUNDS;
    *data = r->buf + d;
    *n = (size_t)size;
    return 0;
}

/* Everything needed to index a vector-like value. */
typedef struct {
    size_t data;   /* position of element 0 */
    size_t n;      /* element count */
    unsigned w;    /* element slot width */
    int untyped;   /* 1: a type byte per element follows the slots (VECTOR, MAP) */
    uint8_t etype; /* element type for typed vectors */
} vec_info;

static int vec_open(const ts_flex_ref *r, vec_info *v) {
    size_t d;
    uint64_t size;
    int rc;
    unsigned t = r->type;
    if (!ts_flex_is_vector(r)) return valid_type(t) ? TS_FLEX_ETYPE : TS_FLEX_EFORMAT;
    if ((rc = indirect(r, &d))) return rc;
    v->data = d;
    v->w = r->byte_width;
    v->untyped = 0;
    if (t >= TS_FLEX_VECTOR_INT2 && t <= TS_FLEX_VECTOR_FLOAT4) {
        unsigned k = t - TS_FLEX_VECTOR_INT2;
        size = k / 3 + 2;
        v->etype = (uint8_t)(TS_FLEX_INT + k % 3);
    } else {
        if ((rc = sized(r, d, v->w, &size))) return rc;
        if (t == TS_FLEX_MAP || t == TS_FLEX_VECTOR)
            v->untyped = 1, v->etype = TS_FLEX_NULL;
        else if (t == TS_FLEX_VECTOR_BOOL)
            v->etype = TS_FLEX_BOOL;
        else if (t == TS_FLEX_VECTOR_STRING_DEPRECATED)
            v->etype = TS_FLEX_KEY; /* as FlexBuffers */
        else
            v->etype = (uint8_t)(t - TS_FLEX_VECTOR_INT + TS_FLEX_INT);
    }
    if (d > r->len) return TS_FLEX_EBOUNDS;
    uint64_t per = v->w + (unsigned)v->untyped; /* bytes per element incl. type byte */
    if (size > (uint64_t)(r->len - d) / per) return TS_FLEX_EBOUNDS;
    v->n = (size_t)size;
    return 0;
}

int ts_flex_vec_len(const ts_flex_ref *r, size_t *n) {
    vec_info v;
    int rc = vec_open(r, &v);
    if (!rc) *n = v.n;
    return rc;
}

static void vec_elem(const ts_flex_ref *r, const vec_info *v, size_t i, ts_flex_ref *e) {
    e->buf = r->buf;
    e->len = r->len;
    e->pos = v->data + i * v->w;
    e->parent_width = (uint8_t)v->w;
    if (v->untyped) {
        uint8_t packed = r->buf[v->data + v->n * v->w + i]; /* in bounds: checked by vec_open */
        e->byte_width = (uint8_t)(1u << (packed & 3));
        e->type = (uint8_t)(packed >> 2);
    } else {
        e->byte_width = 1;
        e->type = v->etype;
    }
}

int ts_flex_vec_at(const ts_flex_ref *r, size_t i, ts_flex_ref *elem) {
    vec_info v;
    int rc = vec_open(r, &v);
    if (rc) return rc;
    if (i >= v.n) return TS_FLEX_ERANGE;
    vec_elem(r, &v, i, elem);
    return 0;
}

/* The keys vector of a map, as a typed vector of KEY. */
static int map_keys(const ts_flex_ref *map, vec_info *vals, ts_flex_ref *keys) {
    int rc;
    if (map->type != TS_FLEX_MAP) return valid_type(map->type) ? TS_FLEX_ETYPE : TS_FLEX_EFORMAT;
    if ((rc = vec_open(map, vals))) return rc;
    size_t d = vals->data;
    unsigned w = vals->w;
    if (d < 3 * (size_t)w) return TS_FLEX_EBOUNDS;
    uint64_t kw;
    if ((rc = rd_u(map->buf, map->len, d - 2 * (size_t)w, w, &kw))) return rc;
    if (!valid_width((unsigned)kw) || kw > 8) return TS_FLEX_EFORMAT;
    keys->buf = map->buf;
    keys->len = map->len;
    keys->pos = d - 3 * (size_t)w; /* slot holding the offset to the keys vector */
    keys->parent_width = (uint8_t)w;
    keys->byte_width = (uint8_t)kw;
    keys->type = TS_FLEX_VECTOR_KEY;
    return 0;
}

int ts_flex_map_key_at(const ts_flex_ref *map, size_t i, const char **key, size_t *n) {
    vec_info vals, kv;
    ts_flex_ref keys, k;
    int rc;
    if ((rc = map_keys(map, &vals, &keys)) || (rc = vec_open(&keys, &kv))) return rc;
    if (kv.n != vals.n) return TS_FLEX_EFORMAT;
    if (i >= kv.n) return TS_FLEX_ERANGE;
    vec_elem(&keys, &kv, i, &k);
    return ts_flex_as_string(&k, key, n);
}

int ts_flex_map_get(const ts_flex_ref *map, const char *key, ts_flex_ref *val) {
    vec_info vals, kv;
    ts_flex_ref keys;
    int rc;
    if ((rc = map_keys(map, &vals, &keys)) || (rc = vec_open(&keys, &kv))) return rc;
    if (kv.n != vals.n) return TS_FLEX_EFORMAT;
    size_t lo = 0, hi = kv.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        ts_flex_ref k;
        const char *s;
        size_t n;
        vec_elem(&keys, &kv, mid, &k);
        if ((rc = ts_flex_as_string(&k, &s, &n))) return rc;
        int c = strcmp(key, s); /* s is NUL-terminated inside the buffer */
        if (c == 0) {
            vec_elem(map, &vals, mid, val);
            return 0;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return TS_FLEX_ENOTFOUND;
}

int ts_flex_map_int32(const ts_flex_ref *map, const char *key, int32_t def, int32_t *out) {
    ts_flex_ref v;
    int rc = ts_flex_map_get(map, key, &v);
    if (rc == TS_FLEX_ENOTFOUND) {
        *out = def;
        return 0;
    }
    return rc ? rc : ts_flex_as_int32(&v, out);
}

int ts_flex_map_double(const ts_flex_ref *map, const char *key, double def, double *out) {
    ts_flex_ref v;
    int rc = ts_flex_map_get(map, key, &v);
    if (rc == TS_FLEX_ENOTFOUND) {
        *out = def;
        return 0;
    }
    return rc ? rc : ts_flex_as_double(&v, out);
}

int ts_flex_map_int32_vec(const ts_flex_ref *map, const char *key, int32_t *out, size_t cap,
                          size_t *n) {
    ts_flex_ref v, e;
    size_t len;
    int rc = ts_flex_map_get(map, key, &v);
    if (rc == TS_FLEX_ENOTFOUND) {
        *n = 0;
        return 0;
    }
    if (rc || (rc = ts_flex_vec_len(&v, &len))) return rc;
    if (v.type == TS_FLEX_MAP) return TS_FLEX_ETYPE;
    *n = len;
    if (len > cap) return TS_FLEX_ERANGE;
    for (size_t i = 0; i < len; i++) {
        if ((rc = ts_flex_vec_at(&v, i, &e)) || (rc = ts_flex_as_int32(&e, &out[i]))) return rc;
    }
    return 0;
}
