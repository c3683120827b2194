/* libFuzzer target for the style file parser: any bytes must give either a style or a message
 * naming the file, never a crash, a read out of bounds or a leak; a style that parses must
 * survive a round trip through ts_style_format unchanged.
 *
 * Each input is parsed twice: as it is, and appended to one of the built-in looks (chosen by its
 * first byte), so that the fuzzer reaches the checks behind a valid header from the first run
 * without a seed corpus (run_suite.sh seeds from fuzz/corpus/style/ when there is one; styles/
 * is a good seed). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "styles/builtin.h"
#include "styles/style.h"

/* The parser and the parameter tables' parser are compiled into this file, so that libFuzzer's
 * coverage instrumentation (-fsanitize=fuzzer, given to this target only) sees their branches;
 * the library's copies are then not linked in. */
#include "../src/render/param.c"
#include "../src/styles/style.c"

static void one(const char *data, size_t size) {
    ts_style *s = NULL;
    if (ts_style_parse(NULL, data, size, "fuzz.style", &s) != TS_OK) {
        /* Every parse error names the file. */
        if (strncmp(ts_last_error(), "fuzz.style", 10)) abort();
        return;
    }
    char *text = ts_style_format(s);
    ts_style *again = NULL;
    if (!text || ts_style_parse(NULL, text, strlen(text), "again.style", &again) != TS_OK) abort();
    char *text2 = ts_style_format(again);
    if (!text2 || strcmp(text, text2)) abort();
    const ts_stage *frame = ts_styles_stage("frame");
    void *params = frame ? malloc(frame->params_size) : NULL;
    for (int i = 0; params && i < ts_style_output_count(s); i++)
        if (ts_style_frame_params(NULL, s, i, params) != TS_OK) abort();
    free(params);
    free(text2);
    free(text);
    ts_style_free(again);
    ts_style_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    one((const char *)data, size);
    if (!size || !ts_style_builtin_file_count) return 0;
    const ts_style_builtin *b = &ts_style_builtin_files[data[0] % ts_style_builtin_file_count];
    char *spliced = malloc(b->len + size);
    if (!spliced) return 0;
    memcpy(spliced, b->text, b->len);
    memcpy(spliced + b->len, data + 1, size - 1);
    one(spliced, b->len + size - 1);
    free(spliced);
    return 0;
}
