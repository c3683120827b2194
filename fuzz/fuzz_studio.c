/* libFuzzer target for the studio's parsers of client input (server/params.c): a look's
 * parameters, as the query string or JSON body gives them, and an upload's X-Filename. Any bytes
 * must give parameters inside their documented ranges or a message, and a file name that is
 * valid UTF-8, non-empty, shorter than its buffer, without control characters or slashes;
 * never a crash, a read out of bounds or a leak.
 *
 * The input is read as lines "key=value" (at most 12); lookups of a key answer the last line
 * with that key. The whole input, as one string, is also a file name. */
#include <glib.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "studio.h"

/* Compiled into this file so libFuzzer's coverage instrumentation sees its branches. */
#include "../server/params.c"

enum { MAX_PAIRS = 12 };

typedef struct pairs {
    char *key[MAX_PAIRS], *value[MAX_PAIRS];
    int n;
} pairs;

static const char *lookup(void *user, const char *key) {
    const pairs *p = user;
    for (int i = p->n - 1; i >= 0; i--)
        if (!strcmp(p->key[i], key)) return p->value[i];
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;

    /* The file name. */
    char name[64];
    studio_filename_from(text, name, sizeof name);
    size_t n = strlen(name);
    if (n == 0 || n >= sizeof name || !g_utf8_validate(name, -1, NULL)) abort();
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 32 || c == 127 || c == '/' || c == '\\') abort();
    }

    /* The parameters. */
    pairs p = {.n = 0};
    char *save = NULL;
    for (char *line = strtok_r(text, "\n&", &save); line && p.n < MAX_PAIRS;
         line = strtok_r(NULL, "\n&", &save)) {
        char *eq = strchr(line, '=');
        if (!eq) continue;
        *eq = 0;
        p.key[p.n] = line, p.value[p.n] = eq + 1, p.n++;
    }
    studio_look_params lp;
    char err[200];
    if (studio_look_parse(lookup, &p, &lp, err, sizeof err) == 0) {
        if (!(lp.retouch == -1 || (lp.retouch >= 0 && lp.retouch <= 1))) abort();
        if (!(lp.brightness >= -1 && lp.brightness <= 1)) abort();
        if (studio_index_of(studio_formats, lp.format) < 0) abort();
        if (lp.crop[0] && studio_index_of(studio_crops, lp.crop) < 0) abort();
        if (lp.background[0] && studio_index_of(studio_kinds, lp.background) < 0 &&
            !(lp.background[0] == '#' && strlen(lp.background) == 7))
            abort();
    } else if (!err[0]) {
        abort(); /* a refusal always says why */
    }
    free(text);
    return 0;
}
