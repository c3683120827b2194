/* A small, bounds-checked FlexBuffers reader (enough for TFLite custom_options).
 *
 * FlexBuffers is the schemaless format of the FlatBuffers project. A buffer ends with two
 * bytes: the packed type of the root value and the byte width of the root slot. Values are
 * either inline scalars (stored in their parent's slot width) or offsets that point backwards
 * to size-prefixed data (vectors, maps, strings, blobs, indirect scalars).
 *
 * Every offset, width and length read from the buffer is checked against [buf, buf+len): a
 * hostile buffer makes these functions return a negative TS_FLEX_E* code, never read outside
 * the buffer. Nothing is allocated; references borrow the buffer.
 *
 * Numeric conversions follow FlexBuffers' own "As*" rules for numeric, bool and null values
 * (int <-> uint <-> float, bool as 0/1, null as 0), but strings, vectors and maps are not
 * numbers here (they return TS_FLEX_ETYPE instead of flexbuffers' string parsing / size).
 * Float -> integer conversion truncates toward zero and fails with TS_FLEX_ERANGE when the
 * value is NaN or does not fit. */
#ifndef TS_NN_FLEXBUF_H
#define TS_NN_FLEXBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Value types, numbered as in the FlexBuffers wire format. */
enum {
    TS_FLEX_NULL = 0,
    TS_FLEX_INT = 1,
    TS_FLEX_UINT = 2,
    TS_FLEX_FLOAT = 3,
    TS_FLEX_KEY = 4,
    TS_FLEX_STRING = 5,
    TS_FLEX_INDIRECT_INT = 6,
    TS_FLEX_INDIRECT_UINT = 7,
    TS_FLEX_INDIRECT_FLOAT = 8,
    TS_FLEX_MAP = 9,
    TS_FLEX_VECTOR = 10,     /* untyped: each element carries its own packed type */
    TS_FLEX_VECTOR_INT = 11, /* typed, sized: INT, UINT, FLOAT, KEY, STRING(deprecated) */
    TS_FLEX_VECTOR_UINT = 12,
    TS_FLEX_VECTOR_FLOAT = 13,
    TS_FLEX_VECTOR_KEY = 14,
    TS_FLEX_VECTOR_STRING_DEPRECATED = 15,
    TS_FLEX_VECTOR_INT2 = 16, /* typed, fixed length 2..4, no size prefix */
    TS_FLEX_VECTOR_UINT2 = 17,
    TS_FLEX_VECTOR_FLOAT2 = 18,
    TS_FLEX_VECTOR_INT3 = 19,
    TS_FLEX_VECTOR_UINT3 = 20,
    TS_FLEX_VECTOR_FLOAT3 = 21,
    TS_FLEX_VECTOR_INT4 = 22,
    TS_FLEX_VECTOR_UINT4 = 23,
    TS_FLEX_VECTOR_FLOAT4 = 24,
    TS_FLEX_BLOB = 25,
    TS_FLEX_BOOL = 26,
    TS_FLEX_VECTOR_BOOL = 36,
};

/* Error codes (all negative); 0 is success. */
enum {
    TS_FLEX_OK = 0,
    TS_FLEX_EBOUNDS = -1,   /* an offset/length points outside the buffer */
    TS_FLEX_EFORMAT = -2,   /* malformed: bad root width, unknown type code, ... */
    TS_FLEX_ETYPE = -3,     /* the value has a type the call cannot read */
    TS_FLEX_ENOTFOUND = -4, /* map key absent */
    TS_FLEX_ERANGE = -5,    /* index past the end, or a number that does not fit */
};

/* A reference to one value inside a buffer. Plain data; copy freely. */
typedef struct ts_flex_ref {
    const uint8_t *buf;   /* whole buffer (borrowed) */
    size_t len;           /* its length */
    size_t pos;           /* offset of this value's slot in buf */
    uint8_t parent_width; /* byte width of the slot (1, 2, 4 or 8) */
    uint8_t byte_width;   /* byte width of the data an offset type points to */
    uint8_t type;         /* TS_FLEX_* type code */
} ts_flex_ref;

/* A one-line description of an error code. */
const char *ts_flex_strerror(int code);

/* Reads the root value. Fails on an empty/too short buffer or a bad root byte width. */
int ts_flex_root(const uint8_t *buf, size_t len, ts_flex_ref *root);

/* Type predicates on a reference's type code. */
bool ts_flex_is_number(const ts_flex_ref *r); /* int/uint/float, inline or indirect, bool, null */
bool ts_flex_is_vector(const ts_flex_ref *r); /* any vector kind or map */

/* Scalars. Accept INT, UINT, FLOAT (and their INDIRECT forms), BOOL and NULL (=0). */
int ts_flex_as_int64(const ts_flex_ref *r, int64_t *out);
int ts_flex_as_int32(const ts_flex_ref *r, int32_t *out); /* TS_FLEX_ERANGE if it doesn't fit */
int ts_flex_as_uint64(const ts_flex_ref *r, uint64_t *out);
int ts_flex_as_double(const ts_flex_ref *r, double *out);
int ts_flex_as_bool(const ts_flex_ref *r, bool *out);

/* STRING or KEY: pointer into the buffer and its length (without terminator). A KEY's bytes are
 * guaranteed NUL-terminated inside the buffer; a STRING's terminator is checked too, so *s may
 * be used as a C string in both cases (it may contain an earlier NUL for STRING). */
int ts_flex_as_string(const ts_flex_ref *r, const char **s, size_t *n);
/* BLOB (or STRING): the bytes and their length. */
int ts_flex_as_blob(const ts_flex_ref *r, const uint8_t **data, size_t *n);

/* Vectors of every kind (untyped, typed, fixed-length typed, bool) and maps (= their values). */
int ts_flex_vec_len(const ts_flex_ref *r, size_t *n);
int ts_flex_vec_at(const ts_flex_ref *r, size_t i, ts_flex_ref *elem);

/* Maps: number of entries = ts_flex_vec_len; the i-th key (sorted order) and value. */
int ts_flex_map_key_at(const ts_flex_ref *map, size_t i, const char **key, size_t *n);
/* Look a key up (binary search over the sorted keys, as FlexBuffers does). */
int ts_flex_map_get(const ts_flex_ref *map, const char *key, ts_flex_ref *val);

/* Conveniences for option parsing: a missing key yields def and returns 0 (FlexBuffers reads a
 * missing key as null, which converts to 0); a present key of the wrong kind is an error. */
int ts_flex_map_int32(const ts_flex_ref *map, const char *key, int32_t def, int32_t *out);
int ts_flex_map_double(const ts_flex_ref *map, const char *key, double def, double *out);
/* Reads a vector of numbers into out[0..cap): *n receives the full length; returns
 * TS_FLEX_ERANGE when it exceeds cap. A missing key gives *n = 0. */
int ts_flex_map_int32_vec(const ts_flex_ref *map, const char *key, int32_t *out, size_t cap,
                          size_t *n);

#endif
