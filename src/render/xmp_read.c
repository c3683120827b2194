/* Reading back what export wrote into a file's XMP packet (export.h, ts_xmp_read): the report
 * shows the metadata as read from the written file, not as meant to be written.
 *
 * This is not an XML parser: it finds the elements ts_export_xmp writes, by their qualified
 * names, and takes their character data up to the next tag, decoding the five predefined
 * entities. Anything else in the packet is ignored; anything malformed gives empty fields. */
#include <stdio.h>
#include <string.h>

#include "render/export.h"

/* The first occurrence of needle (nlen bytes) in hay[0 .. len), or NULL. */
static const char *find(const char *hay, size_t len, const char *needle) {
    size_t nlen = strlen(needle);
    if (nlen == 0 || nlen > len) return NULL;
    for (size_t i = 0; i + nlen <= len; i++)
        if (hay[i] == needle[0] && !memcmp(hay + i, needle, nlen)) return hay + i;
    return NULL;
}

/* Character data from s up to the next '<' (or end), entities decoded, into out (cap bytes,
 * NUL-terminated, cut short when longer). Returns the number of bytes read from s. */
static size_t text_at(const char *s, const char *end, char *out, size_t cap) {
    static const struct {
        const char *name;
        char c;
    } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    size_t n = 0;
    const char *p = s;
    while (p < end && *p != '<') {
        char c = *p++;
        if (c == '&')
            for (size_t k = 0; k < sizeof ents / sizeof ents[0]; k++) {
                size_t l = strlen(ents[k].name);
                if ((size_t)(end - p + 1) >= l && !memcmp(p - 1, ents[k].name, l)) {
                    c = ents[k].c, p += l - 1;
                    break;
                }
            }
        if (cap && n + 1 < cap) out[n++] = c;
    }
    if (cap) out[n] = 0;
    return (size_t)(p - s);
}

/* The text of the first <tag>...</tag> in x, or "" when there is none. */
static void element(const char *x, size_t len, const char *open, char *out, size_t cap) {
    if (cap) out[0] = 0;
    const char *s = find(x, len, open);
    if (!s) return;
    s += strlen(open);
    text_at(s, x + len, out, cap);
}

void ts_xmp_read(const char *xmp, size_t len, ts_xmp_fields *f) {
    memset(f, 0, sizeof *f);
    if (!xmp) return;
    char uri[256];
    element(xmp, len, "<Iptc4xmpExt:DigitalSourceType>", uri, sizeof uri);
    /* the IPTC code is the last segment of the URI */
    const char *code = strrchr(uri, '/');
    snprintf(f->source_type, sizeof f->source_type, "%.63s", code ? code + 1 : uri);
    element(xmp, len, "<xmp:CreatorTool>", f->creator_tool, sizeof f->creator_tool);
    element(xmp, len, "<rdf:li xml:lang=\"x-default\">", f->description, sizeof f->description);
    const char *a = find(xmp, len, "<trueshot:Edits>");
    const char *b = a ? find(a, len - (size_t)(a - xmp), "</trueshot:Edits>") : NULL;
    for (const char *p = a; p && b && p < b;) {
        const char *li = find(p, (size_t)(b - p), "<rdf:li>");
        if (!li) break;
        f->n_edits++;
        p = li + 8;
    }
}
