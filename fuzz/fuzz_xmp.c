/* libFuzzer target for the XMP read-back (src/render/xmp_read.c): any bytes must give fields
 * that are NUL-terminated within their arrays, never a crash or a read outside the input (the
 * round trip of a packet ts_export_xmp wrote is checked in tests/test_export.c). The reader is
 * compiled into this file so the fuzzer's coverage sees its branches. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/render/xmp_read.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a copy of exactly size bytes, so ASan catches any read past the end */
    char *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    ts_xmp_fields f;
    ts_xmp_read(copy, size, &f);
    if (memchr(f.source_type, 0, sizeof f.source_type) == NULL ||
        memchr(f.creator_tool, 0, sizeof f.creator_tool) == NULL ||
        memchr(f.description, 0, sizeof f.description) == NULL || f.n_edits < 0 ||
        (size_t)f.n_edits > size)
        abort();
    free(copy);
    return 0;
}
