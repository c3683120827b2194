/* Bounds-checked access to FlatBuffers data (the .tflite container).
 *
 * Every accessor takes a position inside the buffer and checks it, and everything it derives from
 * it, against the buffer's length before reading. A failure sets fb->err once (the first problem
 * wins) and returns a neutral value, so a parser can read a whole table and test fb->err once. */
#ifndef TS_NN_FLATBUF_H
#define TS_NN_FLATBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ts_fb {
    const uint8_t *buf; /* borrowed */
    size_t len;
    char err[160]; /* empty while no error */
} ts_fb;

/* A table: its position and its vtable's, both checked when the table was opened. */
typedef struct ts_fb_table {
    size_t pos, vt;
    uint16_t vt_size;
    bool ok; /* false for an absent or invalid table */
} ts_fb_table;

/* A vector: element count and the position of its first element, range-checked. */
typedef struct ts_fb_vec {
    size_t pos;
    uint32_t n;
    bool ok;
} ts_fb_vec;

void ts_fb_init(ts_fb *fb, const uint8_t *buf, size_t len);
/* Sets the error (printf-style) if none is set yet. Returns false, for chaining. */
bool ts_fb_fail(ts_fb *fb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

ts_fb_table ts_fb_root(ts_fb *fb, const char *what);
/* The field's absolute position, or 0 when absent (0 is never a valid field position). */
size_t ts_fb_field(ts_fb *fb, ts_fb_table t, int index, size_t size);

uint8_t ts_fb_u8(ts_fb *fb, ts_fb_table t, int index, uint8_t dflt);
int32_t ts_fb_i32(ts_fb *fb, ts_fb_table t, int index, int32_t dflt);
uint32_t ts_fb_u32(ts_fb *fb, ts_fb_table t, int index, uint32_t dflt);
uint64_t ts_fb_u64(ts_fb *fb, ts_fb_table t, int index, uint64_t dflt);
float ts_fb_f32(ts_fb *fb, ts_fb_table t, int index, float dflt);

/* Sub-table, vector and string fields; absent ones come back with ok = false / NULL. */
ts_fb_table ts_fb_table_field(ts_fb *fb, ts_fb_table t, int index, const char *what);
ts_fb_vec ts_fb_vec_field(ts_fb *fb, ts_fb_table t, int index, size_t elem_size, const char *what);
/* A string field copied into out (NUL-terminated, truncated to cap). Returns false if absent. */
bool ts_fb_str_field(ts_fb *fb, ts_fb_table t, int index, char *out, size_t cap, const char *what);

/* Elements of vectors. */
ts_fb_table ts_fb_vec_table(ts_fb *fb, ts_fb_vec v, uint32_t i, const char *what);
int32_t ts_fb_vec_i32(ts_fb *fb, ts_fb_vec v, uint32_t i);

/* Absolute position of a vector's length prefix (for in-place edits of a copy). */
static inline size_t ts_fb_vec_len_pos(ts_fb_vec v) {
    return v.pos - 4;
}

#endif
