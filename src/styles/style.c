/* Style files: read the text into a list of (section, key, value, line), upgrade it one format
 * version at a time to the current one, then check every section and key against the render
 * stages' parameter tables and fill one parameter block per stage. Nothing here knows a stage's
 * parameters: the tables (render/param.h) carry names, types, ranges and defaults.
 *
 * Hostile input is bounded up front: the whole text (TS_STYLE_MAX_BYTES), each line
 * (TS_STYLE_MAX_LINE), names (TS_STYLE_NAME_MAX), the number of lines with content and of
 * sections; NUL bytes and control characters are errors, not terminators. */
#include "styles/style.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/internal.h"
#include "styles/builtin.h"

#define MAX_STAGES 16
#define MAX_ENTRIES 2048
#define MAX_SECTIONS 64
#define MAX_BUILTINS 64
#define ERR_CAP 512

/* --- The parsed text, before it is checked ------------------------------------------------ */

typedef struct doc_entry {
    char section[TS_STYLE_NAME_MAX]; /* "" above the first section */
    char key[TS_STYLE_NAME_MAX];
    char *value; /* malloc'd, trimmed */
    int line;
} doc_entry;

typedef struct doc_section {
    char name[TS_STYLE_NAME_MAX];
    int line;
} doc_section;

typedef struct doc {
    const char *source;
    doc_entry *e;
    int n, cap;
    doc_section s[MAX_SECTIONS];
    int ns;
    int lines; /* number of lines in the text */
} doc;

static void doc_clear(doc *d) {
    for (int i = 0; i < d->n; i++) free(d->e[i].value);
    free(d->e);
    d->e = NULL, d->n = d->cap = 0;
}

/* --- The checked style --------------------------------------------------------------------- */

typedef struct block {
    const ts_stage *stage;
    void *params;
    int *set_line; /* per table entry: the line that set it, -1 when set by ts_style_set, 0 not */
    int n_params;
} block;

struct ts_style {
    char name[TS_STYLE_NAME_MAX];
    char description[TS_STYLE_DESC_MAX];
    char source[256];
    ts_style_output outputs[TS_STYLE_MAX_OUTPUTS];
    int n_outputs;
    int outputs_given; /* the file had an outputs line (else one output from [frame]) */
    block blocks[MAX_STAGES];
    int n_blocks;
};

void ts_style_free(ts_style *s) {
    if (!s) return;
    for (int i = 0; i < s->n_blocks; i++) {
        free(s->blocks[i].params);
        free(s->blocks[i].set_line);
    }
    free(s);
}

static ts_style *style_new(const char *source) {
    ts_style *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    snprintf(s->source, sizeof s->source, "%s", source);
    for (const ts_stage *st; s->n_blocks < MAX_STAGES && (st = ts_styles_stage_at(s->n_blocks));) {
        block *b = &s->blocks[s->n_blocks++];
        b->stage = st;
        while (st->table[b->n_params].type != TS_PT_END) b->n_params++;
        b->params = calloc(1, st->params_size ? st->params_size : 1);
        b->set_line = calloc((size_t)b->n_params + 1, sizeof *b->set_line);
        if (!b->params || !b->set_line) {
            ts_style_free(s);
            return NULL;
        }
        ts_params_defaults(st->table, b->params);
    }
    return s;
}

static block *style_block(const ts_style *s, const char *stage) {
    for (int i = 0; i < s->n_blocks; i++)
        if (!strcmp(s->blocks[i].stage->name, stage)) return (block *)&s->blocks[i];
    return NULL;
}

/* --- Small helpers ------------------------------------------------------------------------- */

static int is_space(char c) {
    return c == ' ' || c == '\t';
}

static int is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

/* Trims spaces and tabs at both ends of s[0..*n), returning the new start. */
static char *trim(char *s, size_t *n) {
    while (*n && is_space(*s)) s++, (*n)--;
    while (*n && is_space(s[*n - 1])) (*n)--;
    s[*n] = 0;
    return s;
}

/* Edit distance of two short strings (both under TS_STYLE_NAME_MAX), for "did you mean". */
static int edit_distance(const char *a, const char *b) {
    size_t la = strnlen(a, TS_STYLE_NAME_MAX - 1), lb = strnlen(b, TS_STYLE_NAME_MAX - 1);
    int row[TS_STYLE_NAME_MAX];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up, row[j] = best;
        }
    }
    return row[lb];
}

/* The candidate nearest to word when near enough to be a slip (at most 2 edits, and fewer than
 * half the word), or NULL. */
static const char *nearest(const char *word, const char *const *cands, int n) {
    const char *best = NULL;
    int bd = 3;
    for (int i = 0; i < n; i++) {
        int d = edit_distance(word, cands[i]);
        if (d < bd && 2 * d < (int)strlen(cands[i])) bd = d, best = cands[i];
    }
    return best;
}

/* Appends a " (did you mean X?)" or " (one of: a, b, c)" hint to err. */
static void hint(char *err, size_t cap, const char *word, const char *const *cands, int n,
                 const char *prefix, const char *suffix) {
    size_t len = strlen(err);
    if (n <= 0 || len + 1 >= cap) return;
    const char *near = nearest(word, cands, n);
    if (near) {
        snprintf(err + len, cap - len, " (did you mean %s%s%s?)", prefix, near, suffix);
        return;
    }
    len += (size_t)snprintf(err + len, cap - len, " (one of:");
    for (int i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(err + len, cap - len, "%s %s%s%s", i ? "," : "", prefix, cands[i],
                                suffix);
    if (len < cap) snprintf(err + len, cap - len, ")");
}

/* --- Reading the text ---------------------------------------------------------------------- */

/* Error at a line: "source:line: message". */
static ts_status fail_at(ts_ctx *ctx, const char *source, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static ts_status fail_at(ts_ctx *ctx, const char *source, int line, const char *fmt, ...) {
    char msg[ERR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0) return ts_fail(ctx, TS_ERR_FORMAT, "%s:%d: %s", source, line, msg);
    return ts_fail(ctx, TS_ERR_FORMAT, "%s: %s", source, msg);
}

static int doc_add(doc *d, const char *section, const char *key, const char *value, int line) {
    if (d->n == d->cap) {
        int cap = d->cap ? 2 * d->cap : 32;
        doc_entry *e = realloc(d->e, sizeof *e * (size_t)cap);
        if (!e) return -1;
        d->e = e, d->cap = cap;
    }
    doc_entry *e = &d->e[d->n];
    snprintf(e->section, sizeof e->section, "%s", section);
    snprintf(e->key, sizeof e->key, "%s", key);
    e->line = line;
    if (!(e->value = strdup(value))) return -1;
    d->n++;
    return 0;
}

/* Checks that name (a section or key) is plain; writes its kind into the message otherwise. */
static int plain_name(const char *name) {
    size_t n = strlen(name);
    if (!n || n >= TS_STYLE_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_name_char(name[i])) return 0;
    return 1;
}

/* Cuts an inline comment off s[0..*n) and trims what is left. A comment is a '#' at the start or
 * after a space, and before a space or the end: colours (#8a8d91) stay values. The same rule
 * applies to a value's start, so that "name =# x" reads as the writer's "name = # x" does. */
static char *strip_comment(char *s, size_t *n) {
    for (size_t i = 0; i < *n; i++)
        if (s[i] == '#' && (i == 0 || is_space(s[i - 1])) && (i + 1 == *n || is_space(s[i + 1]))) {
            *n = i;
            break;
        }
    return trim(s, n);
}

static ts_status read_doc(ts_ctx *ctx, const char *text, size_t len, doc *d) {
    const char *src = d->source;
    char buf[TS_STYLE_MAX_LINE + 2];
    char section[TS_STYLE_NAME_MAX] = "";
    size_t pos = 0;
    int line = 0;
    if (len > TS_STYLE_MAX_BYTES)
        return fail_at(ctx, src, 0, "too large (%zu bytes; a style file is at most %d KiB)", len,
                       TS_STYLE_MAX_BYTES / 1024);
    /* A byte-order mark from an editor on Windows is not content. */
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) pos = 3;
    while (pos < len) {
        line++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len, n = end - pos;
        const char *raw = text + pos;
        pos = nl ? end + 1 : len;
        if (n && raw[n - 1] == '\r') n--;
        if (n > TS_STYLE_MAX_LINE)
            return fail_at(ctx, src, line, "line too long (over %d characters)", TS_STYLE_MAX_LINE);
        memcpy(buf, raw, n);
        buf[n] = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)buf[i];
            if (c == 0)
                return fail_at(ctx, src, line, "NUL byte in the text (a style file is plain text)");
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return fail_at(ctx, src, line, "control character 0x%02x in the text", c);
        }
        char *s = trim(buf, &n);
        if (!n || s[0] == '#' || s[0] == ';') continue;
        if (s[0] == '[') {
            s = strip_comment(s, &n);
            if (s[n - 1] != ']')
                return fail_at(ctx, src, line, "'%.100s': a section header ends with ']'", s);
            size_t m = n - 2;
            char *name = trim(s + 1, &m);
            if (!plain_name(name))
                return fail_at(ctx, src, line,
                               "[%.64s]: not a section name (a stage's name, such as [background])",
                               name);
            if (d->ns == MAX_SECTIONS)
                return fail_at(ctx, src, line, "too many sections (at most %d)", MAX_SECTIONS);
            snprintf(d->s[d->ns].name, sizeof d->s[d->ns].name, "%s", name);
            d->s[d->ns++].line = line;
            snprintf(section, sizeof section, "%s", name);
            continue;
        }
        char *eq = memchr(s, '=', n);
        if (!eq) {
            s = strip_comment(s, &n);
            return fail_at(ctx, src, line, "'%.100s': expected 'key = value' or a [section]", s);
        }
        size_t kn = (size_t)(eq - s), vn = n - kn - 1;
        char *key = trim(s, &kn), *value = trim(eq + 1, &vn);
        value = strip_comment(value, &vn);
        if (!plain_name(key))
            return fail_at(ctx, src, line,
                           "'%.64s': not a key (letters, digits, '_' and '-', under %d characters)",
                           key, TS_STYLE_NAME_MAX);
        if (d->n == MAX_ENTRIES)
            return fail_at(ctx, src, line, "too many settings (at most %d)", MAX_ENTRIES);
        if (doc_add(d, section, key, value, line))
            return ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
    }
    d->lines = line;
    return TS_OK;
}

/* --- Versions ------------------------------------------------------------------------------ */

/* Version 1 called the frame's output width "size"; version 2 uses the table's name, "width".
 * Each step takes the text one version up; steps never fail on what the older version allowed,
 * and keep line numbers so that later messages still point at the user's lines. */
static ts_status upgrade_1_to_2(ts_ctx *ctx, doc *d) {
    (void)ctx;
    for (int i = 0; i < d->n; i++)
        if (!strcmp(d->e[i].section, "frame") && !strcmp(d->e[i].key, "size"))
            snprintf(d->e[i].key, sizeof d->e[i].key, "width");
    return TS_OK;
}

/* upgrades[v - 1] turns version v into v + 1. */
static ts_status (*const upgrades[TS_STYLE_VERSION - 1])(ts_ctx *, doc *) = {upgrade_1_to_2};

/* The line where the header (the keys above the first section) ends: where a missing key is
 * reported. */
static int header_end(const doc *d) {
    if (d->ns) return d->s[0].line;
    return d->lines > 0 ? d->lines : 1;
}

static const char *const header_keys[] = {"name", "description", "version", "outputs"};

/* 1 when e is above the first section with a key the header doesn't have; msg says which. */
static int unknown_header_key(const doc_entry *e, char *msg, size_t cap) {
    if (e->section[0]) return 0;
    for (size_t k = 0; k < sizeof header_keys / sizeof header_keys[0]; k++)
        if (!strcmp(e->key, header_keys[k])) return 0;
    snprintf(msg, cap, "%s: unknown key above the first section", e->key);
    hint(msg, cap, e->key, header_keys, 4, "", "");
    return 1;
}

static ts_status upgrade(ts_ctx *ctx, doc *d) {
    const doc_entry *ve = NULL;
    for (int i = 0; i < d->n; i++)
        if (!d->e[i].section[0] && !strcmp(d->e[i].key, "version")) {
            ve = &d->e[i];
            break;
        }
    /* A misspelt version key says so, rather than that the version is missing. */
    char msg[ERR_CAP];
    for (int i = 0; !ve && i < d->n; i++)
        if (unknown_header_key(&d->e[i], msg, sizeof msg))
            return fail_at(ctx, d->source, d->e[i].line, "%s", msg);
    if (!ve)
        return fail_at(ctx, d->source, header_end(d),
                       "version: missing (add 'version = %d' above the first section)",
                       TS_STYLE_VERSION);
    char *end;
    errno = 0;
    long v = strtol(ve->value, &end, 10);
    if (end == ve->value || *end || errno || v < 1)
        return fail_at(ctx, d->source, ve->line, "version: '%.40s' is not a version (1..%d)",
                       ve->value, TS_STYLE_VERSION);
    if (v > TS_STYLE_VERSION)
        return fail_at(ctx, d->source, ve->line,
                       "version: %ld is newer than this trueshot reads (%d); update trueshot", v,
                       TS_STYLE_VERSION);
    for (; v < TS_STYLE_VERSION; v++) {
        ts_status st = upgrades[v - 1](ctx, d);
        if (st != TS_OK) return st;
    }
    return TS_OK;
}

/* --- Checking ------------------------------------------------------------------------------ */

/* The names of the registered stages, for hints. */
static int stage_names(const char **out) {
    int n = 0;
    for (const ts_stage *st; n < MAX_STAGES && (st = ts_styles_stage_at(n));) out[n++] = st->name;
    return n;
}

static int table_names(const ts_param *t, const char **out, int cap) {
    int n = 0;
    for (; t->type != TS_PT_END && n < cap; t++) out[n++] = t->name;
    return n;
}

/* The width / height of a frame template named like "square" or "4x5", or 0 when the name
 * doesn't say. */
static double template_aspect(const char *crop) {
    if (!strcasecmp(crop, "square")) return 1;
    int a, b, k = 0;
    if (sscanf(crop, "%d%*[xX]%d%n", &a, &b, &k) == 2 && !crop[k] && a > 0 && b > 0)
        return (double)a / b;
    return 0;
}

/* Parses one whole decimal number of at most 6 digits starting at *p; advances *p. */
static int read_int(const char **p, int *v) {
    const char *s = *p;
    int n = 0, x = 0;
    while (s[n] >= '0' && s[n] <= '9') {
        if (n == 6) return -1;
        x = 10 * x + (s[n] - '0'), n++;
    }
    if (!n) return -1;
    *v = x, *p = s + n;
    return 0;
}

/* "square:1200, 4x5:1080x1350" into s->outputs. err gets the reason after "outputs: ". */
static int parse_outputs(ts_style *s, const char *value, char *err, size_t cap) {
    block *fb = style_block(s, "frame");
    const ts_param *pc = fb ? ts_param_find(fb->stage->table, "crop") : NULL;
    const ts_param *pw = fb ? ts_param_find(fb->stage->table, "width") : NULL;
    if (!pc || !pw || pc->type != TS_PT_ENUM) {
        snprintf(err, cap, "no frame stage with crop and width to render outputs with");
        return -1;
    }
    void *scratch = malloc(fb->stage->params_size);
    if (!scratch) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    int n = 0, rc = -1;
    const char *p = value;
    for (;;) {
        char item[TS_STYLE_MAX_LINE + 1];
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        memcpy(item, p, len);
        item[len] = 0;
        char *it = trim(item, &len);
        if (!len) {
            snprintf(err, cap, "empty entry in '%.100s' (write crop:width, as in square:1200)",
                     value);
            goto done;
        }
        if (n == TS_STYLE_MAX_OUTPUTS) {
            snprintf(err, cap, "more than %d outputs", TS_STYLE_MAX_OUTPUTS);
            goto done;
        }
        char *colon = strchr(it, ':');
        if (!colon) {
            snprintf(err, cap, "'%.40s' needs a size, as in %.40s:1200", it, it);
            goto done;
        }
        *colon = 0;
        size_t cl = (size_t)(colon - it);
        const char *crop = trim(it, &cl), *size = colon + 1;
        while (is_space(*size)) size++;
        char reason[ERR_CAP];
        if (ts_param_set(pc, scratch, crop, reason, sizeof reason)) {
            const char *names[64];
            int nn = 0;
            for (; nn < 64 && pc->choices[nn]; nn++) names[nn] = pc->choices[nn];
            snprintf(err, cap, "'%.40s' is not a crop", crop);
            hint(err, cap, crop, names, nn, "", "");
            goto done;
        }
        ts_style_output *o = &s->outputs[n];
        /* The table's spelling of the template, not the user's case. */
        ts_param_format(pc, scratch, o->crop, sizeof o->crop);
        const char *q = size;
        int w = 0, h = 0;
        if (read_int(&q, &w) || ((*q == 'x' || *q == 'X') && (q++, read_int(&q, &h))) || *q) {
            snprintf(err, cap, "%.40s:%.40s: the size is not WIDTH or WIDTHxHEIGHT in pixels", crop,
                     size);
            goto done;
        }
        char num[16];
        snprintf(num, sizeof num, "%d", w);
        if (ts_param_set(pw, scratch, num, reason, sizeof reason)) {
            snprintf(err, cap, "%.40s:%.40s: %.200s", crop, size, reason);
            goto done;
        }
        double aspect = template_aspect(o->crop);
        if (h && aspect > 0) {
            int want = (int)(w / aspect + 0.5);
            if (abs(h - want) > 1) {
                snprintf(err, cap, "%.40s:%.40s: %dx%d is not %s (did you mean %s:%dx%d?)", crop,
                         size, w, h, o->crop, o->crop, w, want);
                goto done;
            }
        }
        o->width = w, o->height = h;
        n++;
        if (!comma) break;
        p = comma + 1;
    }
    s->n_outputs = n;
    s->outputs_given = 1;
    rc = 0;
done:
    free(scratch);
    return rc;
}

/* A message for the style being built: the first (lowest line) one wins. */
typedef struct first_error {
    int line; /* 0: none yet */
    char msg[ERR_CAP];
} first_error;

static void note_error(first_error *fe, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note_error(first_error *fe, int line, const char *fmt, ...) {
    if (fe->line && fe->line <= line) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fe->msg, sizeof fe->msg, fmt, ap);
    va_end(ap);
    fe->line = line;
}

static void check_sections(const doc *d, first_error *fe) {
    const char *names[MAX_STAGES];
    int nn = stage_names(names);
    for (int i = 0; i < d->ns; i++) {
        const doc_section *sec = &d->s[i];
        if (!ts_styles_stage(sec->name)) {
            char msg[ERR_CAP];
            snprintf(msg, sizeof msg, "[%s]: unknown section", sec->name);
            hint(msg, sizeof msg, sec->name, names, nn, "[", "]");
            note_error(fe, sec->line, "%s", msg);
            return;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(d->s[j].name, sec->name)) {
                note_error(fe, sec->line,
                           "[%s]: appears twice (first at line %d); put its keys in one section",
                           sec->name, d->s[j].line);
                return;
            }
    }
}

static void check_header_entry(ts_style *s, const doc *d, int i, first_error *fe) {
    const doc_entry *e = &d->e[i];
    char msg[ERR_CAP];
    if (unknown_header_key(e, msg, sizeof msg)) {
        note_error(fe, e->line, "%s", msg);
        return;
    }
    for (int j = 0; j < i; j++)
        if (!d->e[j].section[0] && !strcmp(d->e[j].key, e->key)) {
            note_error(fe, e->line, "%s: set twice (first at line %d)", e->key, d->e[j].line);
            return;
        }
    size_t len = strlen(e->value);
    if (!strcmp(e->key, "name")) {
        if (!len)
            note_error(fe, e->line, "name: empty");
        else if (len >= sizeof s->name)
            note_error(fe, e->line, "name: too long (at most %zu characters)", sizeof s->name - 1);
        else
            memcpy(s->name, e->value, len + 1);
    } else if (!strcmp(e->key, "description")) {
        if (len >= sizeof s->description)
            note_error(fe, e->line, "description: too long (at most %zu characters)",
                       sizeof s->description - 1);
        else
            memcpy(s->description, e->value, len + 1);
    } else if (!strcmp(e->key, "outputs")) {
        char reason[ERR_CAP];
        if (parse_outputs(s, e->value, reason, sizeof reason))
            note_error(fe, e->line, "outputs: %s", reason);
    }
    /* version was read by upgrade(). */
}

static void check_stage_entry(ts_style *s, const doc *d, int i, first_error *fe) {
    const doc_entry *e = &d->e[i];
    block *b = style_block(s, e->section);
    if (!b) return; /* reported by check_sections */
    const ts_param *p = ts_param_find(b->stage->table, e->key);
    if (!p) {
        const char *names[128];
        int nn = table_names(b->stage->table, names, 128);
        char msg[ERR_CAP];
        snprintf(msg, sizeof msg, "%s.%s: unknown parameter", e->section, e->key);
        hint(msg, sizeof msg, e->key, names, nn, "", "");
        note_error(fe, e->line, "%s", msg);
        return;
    }
    int idx = (int)(p - b->stage->table);
    if (b->set_line[idx] > 0) {
        note_error(fe, e->line, "%s.%s: set twice (first at line %d)", e->section, e->key,
                   b->set_line[idx]);
        return;
    }
    char reason[ERR_CAP];
    if (ts_param_set(p, b->params, e->value, reason, sizeof reason)) {
        note_error(fe, e->line, "%s.%s", e->section, reason);
        return;
    }
    b->set_line[idx] = e->line;
}

/* The default output when the file names none: the frame section's own crop and width. */
static void default_output(ts_style *s) {
    block *fb = style_block(s, "frame");
    const ts_param *pc = fb ? ts_param_find(fb->stage->table, "crop") : NULL;
    const ts_param *pw = fb ? ts_param_find(fb->stage->table, "width") : NULL;
    if (!pc || !pw || pw->type != TS_PT_INT) return;
    ts_style_output *o = &s->outputs[0];
    ts_param_format(pc, fb->params, o->crop, sizeof o->crop);
    o->width = *(const int *)((const char *)fb->params + pw->offset);
    o->height = 0;
    s->n_outputs = 1;
}

static ts_status build(ts_ctx *ctx, const doc *d, ts_style **out) {
    ts_style *s = style_new(d->source);
    if (!s) return ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
    first_error fe = {0, ""};
    check_sections(d, &fe);
    for (int i = 0; i < d->n; i++) {
        if (fe.line && d->e[i].line >= fe.line) break;
        if (d->e[i].section[0])
            check_stage_entry(s, d, i, &fe);
        else
            check_header_entry(s, d, i, &fe);
    }
    if (!fe.line && !s->name[0])
        note_error(&fe, header_end(d), "name: missing (add 'name = ...' above the first section)");
    if (fe.line) {
        ts_style_free(s);
        return fail_at(ctx, d->source, fe.line, "%s", fe.msg);
    }
    if (!s->outputs_given) default_output(s);
    *out = s;
    return TS_OK;
}

/* --- Loading ------------------------------------------------------------------------------- */

ts_status ts_style_parse(ts_ctx *ctx, const char *text, size_t len, const char *source,
                         ts_style **out) {
    if (!out || (!text && len)) return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_style_parse: NULL");
    doc d = {.source = source && *source ? source : "(style)"};
    ts_status st = read_doc(ctx, text ? text : "", len, &d);
    if (st == TS_OK) st = upgrade(ctx, &d);
    if (st == TS_OK) st = build(ctx, &d, out);
    doc_clear(&d);
    return st;
}

ts_status ts_style_load_file(ts_ctx *ctx, const char *path, ts_style **out) {
    if (!path || !out) return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_style_load_file: NULL");
    FILE *f = fopen(path, "rb");
    if (!f) return ts_fail(ctx, TS_ERR_READ, "%s: cannot open: %s", path, strerror(errno));
    /* One byte over the limit tells a too-large file from one exactly at it. */
    char *buf = malloc(TS_STYLE_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        return ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
    }
    size_t n = fread(buf, 1, TS_STYLE_MAX_BYTES + 1, f);
    int err = ferror(f) ? errno : 0;
    fclose(f);
    ts_status st;
    if (err)
        st = ts_fail(ctx, TS_ERR_READ, "%s: cannot read: %s", path, strerror(err));
    else
        st = ts_style_parse(ctx, buf, n, path, out);
    free(buf);
    return st;
}

/* Built-in ids compare without case and with '_' the same as '-'. */
static int same_id(const char *a, const char *b) {
    for (;; a++, b++) {
        char x = *a == '_' ? '-' : *a, y = *b == '_' ? '-' : *b;
        if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = (char)(y - 'A' + 'a');
        if (x != y) return 0;
        if (!x) return 1;
    }
}

ts_status ts_style_load_builtin(ts_ctx *ctx, const char *id, ts_style **out) {
    if (!id || !out) return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_style_load_builtin: NULL");
    for (int i = 0; i < ts_style_builtin_file_count; i++) {
        const ts_style_builtin *b = &ts_style_builtin_files[i];
        if (!same_id(id, b->id)) continue;
        char source[TS_STYLE_NAME_MAX + 8];
        snprintf(source, sizeof source, "%s.style", b->id);
        return ts_style_parse(ctx, b->text, b->len, source, out);
    }
    const char *ids[MAX_BUILTINS];
    int n = 0;
    for (; n < ts_style_builtin_file_count && n < MAX_BUILTINS; n++)
        ids[n] = ts_style_builtin_files[n].id;
    char msg[ERR_CAP * 2];
    snprintf(msg, sizeof msg, "'%.64s': no built-in style of that name", id);
    hint(msg, sizeof msg, id, ids, n, "", "");
    return ts_fail(ctx, TS_ERR_ARGUMENT, "%s; or give the path of a .style file", msg);
}

ts_status ts_style_load(ts_ctx *ctx, const char *spec, ts_style **out) {
    if (!spec || !out) return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_style_load: NULL");
    size_t n = strlen(spec);
    if (strchr(spec, '/') || (n > 6 && !strcmp(spec + n - 6, ".style")))
        return ts_style_load_file(ctx, spec, out);
    return ts_style_load_builtin(ctx, spec, out);
}

static ts_style_info infos[MAX_BUILTINS];
static char info_names[MAX_BUILTINS][TS_STYLE_NAME_MAX];
static char info_descs[MAX_BUILTINS][TS_STYLE_DESC_MAX];
static int n_infos;
static pthread_once_t infos_once = PTHREAD_ONCE_INIT;

static void infos_init(void) {
    for (int i = 0; i < ts_style_builtin_file_count && i < MAX_BUILTINS; i++) {
        const ts_style_builtin *b = &ts_style_builtin_files[i];
        ts_style *s = NULL;
        char source[TS_STYLE_NAME_MAX + 8];
        snprintf(source, sizeof source, "%s.style", b->id);
        /* A built-in that doesn't parse is a bug the tests catch; list it with the reason. */
        if (ts_style_parse(NULL, b->text, b->len, source, &s) == TS_OK) {
            snprintf(info_names[i], sizeof info_names[i], "%s", s->name);
            snprintf(info_descs[i], sizeof info_descs[i], "%s", s->description);
        } else {
            snprintf(info_names[i], sizeof info_names[i], "%s", b->id);
            snprintf(info_descs[i], sizeof info_descs[i], "(invalid: %s)", ts_last_error());
        }
        ts_style_free(s);
        infos[i] = (ts_style_info){b->id, info_names[i], info_descs[i]};
        n_infos = i + 1;
    }
}

int ts_styles_builtins(const ts_style_info **out) {
    pthread_once(&infos_once, infos_init);
    if (out) *out = infos;
    return n_infos;
}

/* --- Reading a style ----------------------------------------------------------------------- */

const char *ts_style_name(const ts_style *s) {
    return s->name;
}
const char *ts_style_description(const ts_style *s) {
    return s->description;
}
const char *ts_style_source(const ts_style *s) {
    return s->source;
}

const void *ts_style_params(const ts_style *s, const char *stage) {
    const block *b = s && stage ? style_block(s, stage) : NULL;
    return b ? b->params : NULL;
}

int ts_style_is_set(const ts_style *s, const char *stage, const char *key) {
    const block *b = s && stage && key ? style_block(s, stage) : NULL;
    const ts_param *p = b ? ts_param_find(b->stage->table, key) : NULL;
    return p ? b->set_line[p - b->stage->table] != 0 : 0;
}

int ts_style_output_count(const ts_style *s) {
    return s->n_outputs;
}

const ts_style_output *ts_style_output_at(const ts_style *s, int i) {
    return i >= 0 && i < s->n_outputs ? &s->outputs[i] : NULL;
}

ts_status ts_style_frame_params(ts_ctx *ctx, const ts_style *s, int i, void *params) {
    const block *fb = s ? style_block(s, "frame") : NULL;
    const ts_style_output *o = s ? ts_style_output_at(s, i) : NULL;
    if (!fb || !o || !params)
        return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_style_frame_params: no frame stage or output %d",
                       i);
    char *tmp = malloc(fb->stage->params_size);
    if (!tmp) return ts_fail(ctx, TS_ERR_NOMEM, "out of memory");
    memcpy(tmp, fb->params, fb->stage->params_size);
    const ts_param *pc = ts_param_find(fb->stage->table, "crop");
    const ts_param *pw = ts_param_find(fb->stage->table, "width");
    char num[16], reason[ERR_CAP];
    snprintf(num, sizeof num, "%d", o->width);
    /* Both were checked against the same table when the style was read. */
    if (!pc || !pw || ts_param_set(pc, tmp, o->crop, reason, sizeof reason) ||
        ts_param_set(pw, tmp, num, reason, sizeof reason)) {
        free(tmp);
        return ts_fail(ctx, TS_ERR_INTERNAL, "%s: output %d does not fit the frame stage",
                       s->source, i);
    }
    memcpy(params, tmp, fb->stage->params_size);
    free(tmp);
    return TS_OK;
}

/* --- Changing and writing ------------------------------------------------------------------ */

ts_status ts_style_set(ts_ctx *ctx, ts_style *s, const char *stage, const char *key,
                       const char *value) {
    if (!s || !stage || !key || !value) return ts_fail(ctx, TS_ERR_ARGUMENT, "ts_style_set: NULL");
    block *b = style_block(s, stage);
    if (!b) {
        const char *names[MAX_STAGES];
        char msg[ERR_CAP];
        snprintf(msg, sizeof msg, "%.64s: no such stage", stage);
        hint(msg, sizeof msg, stage, names, stage_names(names), "", "");
        return ts_fail(ctx, TS_ERR_ARGUMENT, "%s", msg);
    }
    const ts_param *p = ts_param_find(b->stage->table, key);
    if (!p) {
        const char *names[128];
        char msg[ERR_CAP];
        snprintf(msg, sizeof msg, "%s.%.64s: unknown parameter", stage, key);
        hint(msg, sizeof msg, key, names, table_names(b->stage->table, names, 128), "", "");
        return ts_fail(ctx, TS_ERR_ARGUMENT, "%s", msg);
    }
    char reason[ERR_CAP];
    if (ts_param_set(p, b->params, value, reason, sizeof reason))
        return ts_fail(ctx, TS_ERR_ARGUMENT, "%s.%s", stage, reason);
    b->set_line[p - b->stage->table] = -1;
    return TS_OK;
}

char *ts_style_format(const ts_style *s) {
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f) return NULL;
    fprintf(f, "name = %s\n", s->name);
    if (s->description[0]) fprintf(f, "description = %s\n", s->description);
    fprintf(f, "version = %d\n", TS_STYLE_VERSION);
    if (s->outputs_given) {
        fprintf(f, "outputs = ");
        for (int i = 0; i < s->n_outputs; i++) {
            const ts_style_output *o = &s->outputs[i];
            fprintf(f, "%s%s:%d", i ? ", " : "", o->crop, o->width);
            if (o->height) fprintf(f, "x%d", o->height);
        }
        fprintf(f, "\n");
    }
    for (int i = 0; i < s->n_blocks; i++) {
        const block *b = &s->blocks[i];
        int any = 0;
        for (int k = 0; k < b->n_params; k++) {
            if (!b->set_line[k]) continue;
            if (!any++) fprintf(f, "\n[%s]\n", b->stage->name);
            char val[128];
            ts_param_format(&b->stage->table[k], b->params, val, sizeof val);
            fprintf(f, "%s = %s\n", b->stage->table[k].name, val);
        }
    }
    if (fclose(f)) {
        free(text);
        return NULL;
    }
    return text;
}
