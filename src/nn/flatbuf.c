#include "nn/flatbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void ts_fb_init(ts_fb *fb, const uint8_t *buf, size_t len) {
    fb->buf = buf;
    fb->len = len;
    fb->err[0] = 0;
}

bool ts_fb_fail(ts_fb *fb, const char *fmt, ...) {
    if (fb->err[0]) return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fb->err, sizeof fb->err, fmt, ap);
    va_end(ap);
    if (!fb->err[0]) snprintf(fb->err, sizeof fb->err, "invalid flatbuffer");
    return false;
}

/* True when [pos, pos+size) lies inside the buffer, without overflowing. */
static bool in_range(const ts_fb *fb, size_t pos, size_t size) {
    return pos <= fb->len && size <= fb->len - pos;
}

static uint32_t rd32(const ts_fb *fb, size_t pos) {
    uint32_t v;
    memcpy(&v, fb->buf + pos, 4);
    return v; /* flatbuffers are little-endian, as is every machine we build for */
}

static uint16_t rd16(const ts_fb *fb, size_t pos) {
    uint16_t v;
    memcpy(&v, fb->buf + pos, 2);
    return v;
}

static ts_fb_table open_table(ts_fb *fb, size_t pos, const char *what) {
    ts_fb_table t = {0};
    if (fb->err[0]) return t;
    if (!in_range(fb, pos, 4)) {
        ts_fb_fail(fb, "%s: table at offset %zu is past the end of the file (%zu bytes)", what, pos,
                   fb->len);
        return t;
    }
    int32_t soff;
    uint32_t raw = rd32(fb, pos);
    memcpy(&soff, &raw, 4);
    /* The vtable lives at pos - soff; do the arithmetic in 64 bits so no value wraps. */
    int64_t vt = (int64_t)pos - (int64_t)soff;
    if (vt < 0 || !in_range(fb, (size_t)vt, 4)) {
        ts_fb_fail(fb, "%s: vtable offset %d of table at %zu points outside the file", what,
                   (int)soff, pos);
        return t;
    }
    uint16_t vt_size = rd16(fb, (size_t)vt);
    uint16_t tbl_size = rd16(fb, (size_t)vt + 2);
    if (vt_size < 4 || (vt_size & 1) || !in_range(fb, (size_t)vt, vt_size)) {
        ts_fb_fail(fb, "%s: vtable at %lld has invalid size %u", what, (long long)vt, vt_size);
        return t;
    }
    if (tbl_size < 4 || !in_range(fb, pos, tbl_size)) {
        ts_fb_fail(fb, "%s: table at %zu claims %u bytes, past the end of the file", what, pos,
                   tbl_size);
        return t;
    }
    t.pos = pos;
    t.vt = (size_t)vt;
    t.vt_size = vt_size;
    t.ok = true;
    return t;
}

ts_fb_table ts_fb_root(ts_fb *fb, const char *what) {
    if (!in_range(fb, 0, 8)) {
        ts_fb_fail(fb, "%s: file too short (%zu bytes) to be a flatbuffer", what, fb->len);
        return (ts_fb_table){0};
    }
    return open_table(fb, rd32(fb, 0), what);
}

size_t ts_fb_field(ts_fb *fb, ts_fb_table t, int index, size_t size) {
    if (!t.ok || fb->err[0]) return 0;
    size_t slot = 4 + 2 * (size_t)index;
    if (slot + 2 > t.vt_size) return 0; /* field newer than the writer: absent */
    uint16_t off = rd16(fb, t.vt + slot);
    if (off == 0) return 0;
    uint16_t tbl_size = rd16(fb, t.vt + 2);
    if ((size_t)off + size > tbl_size) {
        ts_fb_fail(fb, "field %d of table at %zu lies outside the table (%u + %zu > %u)", index,
                   t.pos, off, size, tbl_size);
        return 0;
    }
    return t.pos + off;
}

uint8_t ts_fb_u8(ts_fb *fb, ts_fb_table t, int index, uint8_t dflt) {
    size_t p = ts_fb_field(fb, t, index, 1);
    return p ? fb->buf[p] : dflt;
}

uint32_t ts_fb_u32(ts_fb *fb, ts_fb_table t, int index, uint32_t dflt) {
    size_t p = ts_fb_field(fb, t, index, 4);
    return p ? rd32(fb, p) : dflt;
}

int32_t ts_fb_i32(ts_fb *fb, ts_fb_table t, int index, int32_t dflt) {
    uint32_t u = ts_fb_u32(fb, t, index, (uint32_t)dflt);
    int32_t v;
    memcpy(&v, &u, 4);
    return v;
}

uint64_t ts_fb_u64(ts_fb *fb, ts_fb_table t, int index, uint64_t dflt) {
    size_t p = ts_fb_field(fb, t, index, 8);
    if (!p) return dflt;
    uint64_t v;
    memcpy(&v, fb->buf + p, 8);
    return v;
}

float ts_fb_f32(ts_fb *fb, ts_fb_table t, int index, float dflt) {
    size_t p = ts_fb_field(fb, t, index, 4);
    if (!p) return dflt;
    float v;
    memcpy(&v, fb->buf + p, 4);
    return v;
}

/* Follows the uoffset stored at field position p. Returns 0 on failure. */
static size_t follow(ts_fb *fb, size_t p, const char *what) {
    uint64_t target = (uint64_t)p + rd32(fb, p);
    if (target >= fb->len) {
        ts_fb_fail(fb, "%s: offset at %zu points past the end of the file", what, p);
        return 0;
    }
    return (size_t)target;
}

ts_fb_table ts_fb_table_field(ts_fb *fb, ts_fb_table t, int index, const char *what) {
    size_t p = ts_fb_field(fb, t, index, 4);
    if (!p) return (ts_fb_table){0};
    size_t target = follow(fb, p, what);
    return target ? open_table(fb, target, what) : (ts_fb_table){0};
}

static ts_fb_vec open_vec(ts_fb *fb, size_t pos, size_t elem_size, const char *what) {
    ts_fb_vec v = {0};
    if (!in_range(fb, pos, 4)) {
        ts_fb_fail(fb, "%s: vector at %zu is past the end of the file", what, pos);
        return v;
    }
    uint32_t n = rd32(fb, pos);
    /* n * elem_size cannot overflow 64 bits: n < 2^32 and elem_size is a small constant. */
    if (!in_range(fb, pos + 4, (uint64_t)n * elem_size)) {
        ts_fb_fail(fb, "%s: vector of %u elements at %zu runs past the end of the file", what, n,
                   pos);
        return v;
    }
    v.pos = pos + 4;
    v.n = n;
    v.ok = true;
    return v;
}

ts_fb_vec ts_fb_vec_field(ts_fb *fb, ts_fb_table t, int index, size_t elem_size, const char *what) {
    size_t p = ts_fb_field(fb, t, index, 4);
    if (!p) return (ts_fb_vec){0};
    size_t target = follow(fb, p, what);
    return target ? open_vec(fb, target, elem_size, what) : (ts_fb_vec){0};
}

bool ts_fb_str_field(ts_fb *fb, ts_fb_table t, int index, char *out, size_t cap, const char *what) {
    if (cap) out[0] = 0;
    ts_fb_vec v = ts_fb_vec_field(fb, t, index, 1, what);
    if (!v.ok || !cap) return false;
    size_t n = v.n < cap - 1 ? v.n : cap - 1;
    memcpy(out, fb->buf + v.pos, n);
    out[n] = 0;
    /* A NUL inside the string ends it; the rest is ignored rather than trusted. */
    return true;
}

ts_fb_table ts_fb_vec_table(ts_fb *fb, ts_fb_vec v, uint32_t i, const char *what) {
    if (!v.ok || i >= v.n || fb->err[0]) {
        if (!fb->err[0]) ts_fb_fail(fb, "%s: index %u outside vector of %u", what, i, v.n);
        return (ts_fb_table){0};
    }
    size_t p = v.pos + 4 * (size_t)i;
    size_t target = follow(fb, p, what);
    return target ? open_table(fb, target, what) : (ts_fb_table){0};
}

int32_t ts_fb_vec_i32(ts_fb *fb, ts_fb_vec v, uint32_t i) {
    if (!v.ok || i >= v.n) {
        ts_fb_fail(fb, "index %u outside vector of %u", i, v.n);
        return 0;
    }
    uint32_t u = rd32(fb, v.pos + 4 * (size_t)i);
    int32_t x;
    memcpy(&x, &u, 4);
    return x;
}
