/* Style files (src/styles): the built-in looks parse and validate against the stage tables, a
 * style survives a round trip through its text, bad files get messages naming the file, line
 * and field exactly, and an old format version is upgraded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "styles/style.h"

static const char *const looks[] = {
    "academic", "actor-commercial", "actor-theatrical", "corporate",
    "creative", "dating-social",    "law-finance",      "linkedin",
    "medical",  "real-estate",      "team-directory",   "tech-startup",
};
#define N_LOOKS (int)(sizeof looks / sizeof looks[0])

/* Parses text as a file named name; returns the style or NULL (then ts_last_error()). */
static ts_style *parse(const char *name, const char *text) {
    ts_style *s = NULL;
    if (ts_style_parse(NULL, text, strlen(text), name, &s) != TS_OK) return NULL;
    return s;
}

/* The stage's parameter as text (ts_param_format). */
static const char *param_text(const ts_style *s, const char *stage, const char *key) {
    static char buf[128];
    const ts_stage *st = ts_styles_stage(stage);
    const ts_param *p = st ? ts_param_find(st->table, key) : NULL;
    if (!p) return "(none)";
    ts_param_format(p, ts_style_params(s, stage), buf, sizeof buf);
    return buf;
}

static void t_registry(void **state) {
    (void)state;
    assert_non_null(ts_styles_stage("frame"));
    assert_ptr_equal(ts_styles_stage("frame"), &ts_stage_frame);
    assert_null(ts_styles_stage("nope"));
    assert_null(ts_styles_stage(NULL));
    int n = 0;
    for (const ts_stage *st; (st = ts_styles_stage_at(n)); n++) {
        assert_ptr_equal(ts_styles_stage(st->name), st);
        assert_non_null(st->table);
        assert_true(st->params_size > 0);
    }
    assert_true(n >= 1);
    assert_null(ts_styles_stage_at(-1));
}

/* Every built-in look loads, names itself and describes itself on one line, sets the things a
 * look must set, and has outputs the frame stage can render. */
static void t_builtins(void **state) {
    (void)state;
    const ts_style_info *info;
    int n = ts_styles_builtins(&info);
    assert_int_equal(n, N_LOOKS);
    for (int i = 0; i < N_LOOKS; i++) {
        assert_string_equal(info[i].id, looks[i]);
        ts_style *s = NULL;
        ts_status st = ts_style_load_builtin(NULL, looks[i], &s);
        if (st != TS_OK) fail_msg("%s: %s", looks[i], ts_last_error());
        assert_string_equal(info[i].name, ts_style_name(s));
        assert_string_equal(info[i].description, ts_style_description(s));
        size_t dl = strlen(ts_style_description(s));
        assert_true(dl > 20 && dl < 120);
        assert_null(strchr(ts_style_description(s), '\n'));
        char src[96];
        snprintf(src, sizeof src, "%s.style", looks[i]);
        assert_string_equal(ts_style_source(s), src);
        /* A look sets its backdrop, grade, retouch strength and crops. */
        const char *must[][2] = {{"frame", "crop"},
                                 {"background", "kind"},
                                 {"tone", "contrast"},
                                 {"tone", "warmth"},
                                 {"retouch", "strength"}};
        for (size_t k = 0; k < sizeof must / sizeof must[0]; k++) {
            if (!ts_styles_stage(must[k][0])) continue; /* stage not in this build */
            if (!ts_style_is_set(s, must[k][0], must[k][1]))
                fail_msg("%s: %s.%s not set", looks[i], must[k][0], must[k][1]);
        }
        int no = ts_style_output_count(s);
        assert_true(no >= 1);
        for (int k = 0; k < no; k++) {
            const ts_style_output *o = ts_style_output_at(s, k);
            assert_true(o->width >= 400);
            char fp[256];
            assert_true(ts_stage_frame.params_size <= sizeof fp);
            assert_int_equal(ts_style_frame_params(NULL, s, k, fp), TS_OK);
            assert_string_equal(param_text(s, "frame", "crop"),
                                param_text(s, "frame", "crop")); /* block itself unchanged */
        }
        assert_null(ts_style_output_at(s, no));
        ts_style_free(s);
    }
    /* Ids ignore case and '_' for '-'; a path-like spec reads a file. */
    ts_style *s = NULL;
    assert_int_equal(ts_style_load(NULL, "Law_Finance", &s), TS_OK);
    assert_string_equal(ts_style_name(s), "Law & Finance");
    ts_style_free(s);
    s = NULL;
    assert_int_equal(ts_style_load(NULL, "corprate", &s), TS_ERR_ARGUMENT);
    assert_null(s);
    assert_non_null(strstr(ts_last_error(), "did you mean corporate?"));
}

/* Platform sizes the looks promise. */
static void t_builtin_sizes(void **state) {
    (void)state;
    ts_style *s = NULL;
    assert_int_equal(ts_style_load_builtin(NULL, "linkedin", &s), TS_OK);
    const ts_style_output *o = ts_style_output_at(s, 0);
    assert_string_equal(o->crop, "square");
    assert_int_equal(o->width, 1200);
    ts_style_free(s);

    const char *actors[] = {"actor-commercial", "actor-theatrical"};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ts_style_load_builtin(NULL, actors[i], &s), TS_OK);
        o = ts_style_output_at(s, 0);
        assert_string_equal(o->crop, "8x10");
        assert_int_equal(o->width, 2400);
        assert_int_equal(o->height, 3000);
        ts_style_free(s);
    }

    assert_int_equal(ts_style_load_builtin(NULL, "team-directory", &s), TS_OK);
    assert_int_equal(ts_style_output_count(s), 1);
    o = ts_style_output_at(s, 0);
    assert_string_equal(o->crop, "square");
    assert_int_equal(o->width, 800);
    if (ts_styles_stage("background")) {
        /* Consistency: a fixed backdrop, not a tone picked per person. */
        assert_true(ts_style_is_set(s, "background", "color"));
        assert_string_equal(param_text(s, "background", "auto"), "no");
    }
    ts_style_free(s);

    /* Theatrical is darker and moodier than commercial; dating is warmer than corporate. */
    if (ts_styles_stage("background") && ts_styles_stage("tone")) {
        ts_style *c = NULL, *t = NULL;
        assert_int_equal(ts_style_load_builtin(NULL, "actor-commercial", &c), TS_OK);
        assert_int_equal(ts_style_load_builtin(NULL, "actor-theatrical", &t), TS_OK);
        unsigned cc = (unsigned)strtoul(param_text(c, "background", "color") + 1, NULL, 16);
        unsigned tc = (unsigned)strtoul(param_text(t, "background", "color") + 1, NULL, 16);
        assert_true((tc >> 8 & 0xff) < (cc >> 8 & 0xff));
        assert_true(atof(param_text(t, "tone", "contrast")) >
                    atof(param_text(c, "tone", "contrast")));
        ts_style_free(c);
        ts_style_free(t);
        assert_int_equal(ts_style_load_builtin(NULL, "dating-social", &c), TS_OK);
        assert_int_equal(ts_style_load_builtin(NULL, "corporate", &t), TS_OK);
        assert_true(atof(param_text(c, "tone", "warmth")) > atof(param_text(t, "tone", "warmth")));
        ts_style_free(c);
        ts_style_free(t);
    }
}

/* Format then parse gives the same parameter blocks and outputs, and formatting again the same
 * text. */
static void t_round_trip(void **state) {
    (void)state;
    for (int i = 0; i < N_LOOKS; i++) {
        ts_style *a = NULL, *b = NULL;
        assert_int_equal(ts_style_load_builtin(NULL, looks[i], &a), TS_OK);
        char *text = ts_style_format(a);
        assert_non_null(text);
        if (ts_style_parse(NULL, text, strlen(text), "again.style", &b) != TS_OK)
            fail_msg("%s: %s\n%s", looks[i], ts_last_error(), text);
        assert_string_equal(ts_style_name(a), ts_style_name(b));
        assert_string_equal(ts_style_description(a), ts_style_description(b));
        for (int k = 0; ts_styles_stage_at(k); k++) {
            const ts_stage *st = ts_styles_stage_at(k);
            assert_int_equal(ts_params_hash(st->table, ts_style_params(a, st->name), 0),
                             ts_params_hash(st->table, ts_style_params(b, st->name), 0));
            for (const ts_param *p = st->table; p->type != TS_PT_END; p++)
                assert_int_equal(ts_style_is_set(a, st->name, p->name),
                                 ts_style_is_set(b, st->name, p->name));
        }
        assert_int_equal(ts_style_output_count(a), ts_style_output_count(b));
        for (int k = 0; k < ts_style_output_count(a); k++)
            assert_memory_equal(ts_style_output_at(a, k), ts_style_output_at(b, k),
                                sizeof(ts_style_output));
        char *text2 = ts_style_format(b);
        assert_string_equal(text, text2);
        free(text);
        free(text2);
        ts_style_free(a);
        ts_style_free(b);
    }
}

/* Defaults, then the file's values; unset parameters keep their defaults. */
static void t_defaults_then_values(void **state) {
    (void)state;
    ts_style *s = parse("mine.style", "name = Mine\nversion = 2\n[frame]\nwidth = 900\n");
    assert_non_null(s);
    char def[256];
    assert_true(ts_stage_frame.params_size <= sizeof def);
    ts_params_defaults(ts_stage_frame.table, def);
    const ts_param *w = ts_param_find(ts_stage_frame.table, "width");
    const ts_param *c = ts_param_find(ts_stage_frame.table, "crop");
    char a[64], b[64];
    ts_param_format(c, def, a, sizeof a);
    ts_param_format(c, ts_style_params(s, "frame"), b, sizeof b);
    assert_string_equal(a, b);
    assert_string_equal(param_text(s, "frame", "width"), "900");
    assert_true(ts_style_is_set(s, "frame", "width"));
    assert_false(ts_style_is_set(s, "frame", "crop"));
    (void)w;
    /* Without outputs: one output from the frame section. */
    assert_int_equal(ts_style_output_count(s), 1);
    assert_string_equal(ts_style_output_at(s, 0)->crop, a);
    assert_int_equal(ts_style_output_at(s, 0)->width, 900);
    assert_string_equal(ts_style_description(s), "");
    /* Overrides from the command line go through the same checks. */
    assert_int_equal(ts_style_set(NULL, s, "frame", "width", "1000"), TS_OK);
    assert_string_equal(param_text(s, "frame", "width"), "1000");
    assert_int_equal(ts_style_set(NULL, s, "frame", "width", "10"), TS_ERR_ARGUMENT);
    assert_string_equal(ts_last_error(), "frame.width: 10 is outside 400..8000");
    assert_int_equal(ts_style_set(NULL, s, "frame", "widht", "10"), TS_ERR_ARGUMENT);
    assert_string_equal(ts_last_error(), "frame.widht: unknown parameter (did you mean width?)");
    ts_style_free(s);

    /* Each output's frame block: the style's frame block with that crop and width. */
    s = parse("o.style", "name = O\nversion = 2\noutputs = square:1200, 4x5:1080x1350\n"
                         "[frame]\neye_line = 0.3\n");
    assert_non_null(s);
    char fp[256];
    assert_int_equal(ts_style_frame_params(NULL, s, 1, fp), TS_OK);
    ts_param_format(c, fp, a, sizeof a);
    assert_string_equal(a, "4x5");
    ts_param_format(w, fp, a, sizeof a);
    assert_string_equal(a, "1080");
    ts_param_format(ts_param_find(ts_stage_frame.table, "eye_line"), fp, a, sizeof a);
    assert_string_equal(a, "0.3");
    assert_int_equal(ts_style_frame_params(NULL, s, 2, fp), TS_ERR_ARGUMENT);
    ts_style_free(s);

    /* Comments, blank lines, CRLF, a byte-order mark, spaces around '=' and in headers. */
    s = parse("c.style", "\xEF\xBB\xBF# a comment\r\n; another\r\n\r\nname=  Spaced Out  \r\n"
                         "version = 2   # the format\r\n[ frame ]\r\n  width\t=\t1500 \r\n");
    assert_non_null(s);
    assert_string_equal(ts_style_name(s), "Spaced Out");
    assert_string_equal(param_text(s, "frame", "width"), "1500");
    ts_style_free(s);
}

/* Each bad file gets exactly this message. */
static void t_errors(void **state) {
    (void)state;
    static const struct {
        const char *text, *msg;
    } cases[] = {
        /* Wrong values: the stage table's reason, prefixed with file, line and stage. */
        {"name = A\nversion = 2\n[frame]\nwidth = 1200\ncrop = circle\n",
         "bad.style:5: frame.crop: 'circle' is not one of square, 4x5, 2x3, 8x10, tight"},
        {"name = A\nversion = 2\n\n[frame]\nwidth = 12\n",
         "bad.style:5: frame.width: 12 is outside 400..8000"},
        {"name = A\nversion = 2\n[frame]\nlevel = maybe\n",
         "bad.style:4: frame.level: 'maybe' is not yes or no"},
        {"name = A\nversion = 2\n[frame]\neye_line = half\n",
         "bad.style:4: frame.eye_line: 'half' is not a number"},
        /* Unknown keys and sections, with a did-you-mean for a slip. */
        {"name = A\nversion = 2\n[frame]\nwidht = 1200\n",
         "bad.style:4: frame.widht: unknown parameter (did you mean width?)"},
        {"name = A\nversion = 2\n[frame]\nzoom = 2\n",
         "bad.style:4: frame.zoom: unknown parameter (one of: crop, width, eye_line, head, "
         "level)"},
        {"name = A\nversion = 2\n[frane]\nwidth = 1200\n",
         "bad.style:3: [frane]: unknown section (did you mean [frame]?)"},
        {"name = A\nversion = 2\ncolour = red\n",
         "bad.style:3: colour: unknown key above the first section (one of: name, description, "
         "version, outputs)"},
        {"name = A\nversoin = 2\n", "bad.style:2: versoin: unknown key above the first section "
                                    "(did you mean version?)"},
        /* Missing or doubled header fields. */
        {"version = 2\n# no name\n[frame]\nwidth = 1200\n",
         "bad.style:3: name: missing (add 'name = ...' above the first section)"},
        {"name = A\n", "bad.style:1: version: missing (add 'version = 2' above the first section)"},
        {"name = A\nversion = 2\nname = B\n", "bad.style:3: name: set twice (first at line 1)"},
        {"name = A\nversion = 2\n[frame]\nwidth = 900\n[frame]\n",
         "bad.style:5: [frame]: appears twice (first at line 3); put its keys in one section"},
        {"name = A\nversion = 2\n[frame]\nwidth = 900\nwidth = 1000\n",
         "bad.style:5: frame.width: set twice (first at line 4)"},
        {"name = A\nversion = 9\n",
         "bad.style:2: version: 9 is newer than this trueshot reads (2); update trueshot"},
        {"name = A\nversion = two\n", "bad.style:2: version: 'two' is not a version (1..2)"},
        /* Bad outputs specs. */
        {"name = A\nversion = 2\noutputs = square\n",
         "bad.style:3: outputs: 'square' needs a size, as in square:1200"},
        {"name = A\nversion = 2\noutputs = circle:1200\n",
         "bad.style:3: outputs: 'circle' is not a crop (one of: square, 4x5, 2x3, 8x10, tight)"},
        {"name = A\nversion = 2\noutputs = sqare:1200\n",
         "bad.style:3: outputs: 'sqare' is not a crop (did you mean square?)"},
        {"name = A\nversion = 2\noutputs = square:1200, 4x5:1080x1080\n",
         "bad.style:3: outputs: 4x5:1080x1080: 1080x1080 is not 4x5 (did you mean "
         "4x5:1080x1350?)"},
        {"name = A\nversion = 2\noutputs = square:big\n",
         "bad.style:3: outputs: square:big: the size is not WIDTH or WIDTHxHEIGHT in pixels"},
        {"name = A\nversion = 2\noutputs = square:100\n",
         "bad.style:3: outputs: square:100: width: 100 is outside 400..8000"},
        {"name = A\nversion = 2\noutputs = square:1200,,4x5:1080\n",
         "bad.style:3: outputs: empty entry in 'square:1200,,4x5:1080' (write crop:width, as in "
         "square:1200)"},
        /* Syntax. */
        {"name = A\nversion = 2\n[frame\n",
         "bad.style:3: '[frame': a section header ends with ']'"},
        {"name = A\nversion = 2\njust words\n",
         "bad.style:3: 'just words': expected 'key = value' or a [section]"},
        {"name = A\nversion = 2\nmy key = 1\n",
         "bad.style:3: 'my key': not a key (letters, digits, '_' and '-', under 64 characters)"},
        /* The first error in the file wins. */
        {"name = A\nversion = 2\n[frame]\nwidth = 1\n[nope]\n",
         "bad.style:4: frame.width: 1 is outside 400..8000"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ts_style *s = parse("bad.style", cases[i].text);
        if (s) fail_msg("case %zu parsed:\n%s", i, cases[i].text);
        if (strcmp(ts_last_error(), cases[i].msg))
            fail_msg("case %zu:\n got  %s\n want %s", i, ts_last_error(), cases[i].msg);
    }

    /* The colour message from the brief, once the background stage is registered. */
    if (ts_styles_stage("background")) {
        const char *text = "name = A\nversion = 2\n[background]\ncolor = x12\n";
        assert_null(parse("corporate.style", text));
        assert_string_equal(ts_last_error(), "corporate.style:4: background.color: 'x12' is not a "
                                             "colour (#rrggbb or a name such as grey)");
    }
}

/* Hostile input: NUL bytes, long lines, control characters, too large; a missing file. */
static void t_hostile(void **state) {
    (void)state;
    ts_style *s = NULL;
    const char nul[] = "name = A\nversion = 2\nname\0 = B\n";
    assert_int_equal(ts_style_parse(NULL, nul, sizeof nul - 1, "n.style", &s), TS_ERR_FORMAT);
    assert_null(s);
    assert_string_equal(ts_last_error(), "n.style:3: NUL byte in the text (a style file is plain "
                                         "text)");

    size_t big = TS_STYLE_MAX_LINE + 100;
    char *line = malloc(big + 32);
    memset(line, 'a', big);
    memcpy(line, "name = ", 7);
    line[big] = 0;
    assert_int_equal(ts_style_parse(NULL, line, big, "l.style", &s), TS_ERR_FORMAT);
    assert_string_equal(ts_last_error(), "l.style:1: line too long (over 1024 characters)");
    free(line);

    assert_int_equal(ts_style_parse(NULL, "name = \x1b[31m\n", 13, "e.style", &s), TS_ERR_FORMAT);
    assert_string_equal(ts_last_error(), "e.style:1: control character 0x1b in the text");

    char *huge = calloc(TS_STYLE_MAX_BYTES + 2, 1);
    memset(huge, '\n', TS_STYLE_MAX_BYTES + 1);
    assert_int_equal(ts_style_parse(NULL, huge, TS_STYLE_MAX_BYTES + 1, "h.style", &s),
                     TS_ERR_FORMAT);
    assert_string_equal(ts_last_error(), "h.style: too large (262145 bytes; a style file is at "
                                         "most 256 KiB)");
    free(huge);

    assert_int_equal(ts_style_parse(NULL, "", 0, "empty.style", &s), TS_ERR_FORMAT);
    assert_string_equal(ts_last_error(), "empty.style:1: version: missing (add 'version = 2' above "
                                         "the first section)");
    assert_null(s);

    assert_int_equal(ts_style_load_file(NULL, "/nonexistent/x.style", &s), TS_ERR_READ);
    assert_string_equal(ts_last_error(), "/nonexistent/x.style: cannot open: No such file or "
                                         "directory");
    assert_null(s);
}

/* A user's file read from disk: the message names the path as given. */
static void t_file(void **state) {
    (void)state;
    char path[] = "/tmp/ts_style_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# mine\nname = Mine\nversion = 2\n\n[frame]\ncrop = 8x10\nwidth = 99999\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    ts_style *s = NULL;
    assert_int_equal(ts_style_load_file(NULL, path, &s), TS_ERR_FORMAT);
    char want[128];
    snprintf(want, sizeof want, "%s:7: frame.width: 99999 is outside 400..8000", path);
    assert_string_equal(ts_last_error(), want);
    /* Through a context too. */
    ts_ctx *ctx = NULL;
    assert_int_equal(ts_ctx_new(NULL, &ctx), TS_OK);
    assert_int_equal(ts_style_load(ctx, path, &s), TS_ERR_FORMAT);
    assert_string_equal(ts_ctx_error(ctx), want);
    ts_ctx_free(ctx);
    unlink(path);
}

/* Version 1 named frame.width "size": it loads as version 2 and is written back as version 2. */
static void t_upgrade(void **state) {
    (void)state;
    const char *v1 = "name = Old\nversion = 1\noutputs = square:1000\n[frame]\nsize = 1000\n";
    ts_style *s = parse("old.style", v1);
    if (!s) fail_msg("%s", ts_last_error());
    assert_string_equal(param_text(s, "frame", "width"), "1000");
    assert_true(ts_style_is_set(s, "frame", "width"));
    char *text = ts_style_format(s);
    assert_non_null(strstr(text, "version = 2\n"));
    assert_non_null(strstr(text, "\n[frame]\nwidth = 1000\n"));
    assert_null(strstr(text, "size"));
    free(text);
    ts_style_free(s);
    /* In version 2 "size" is no longer a parameter; errors after an upgrade keep the user's
     * line numbers. */
    assert_null(parse("new.style", "name = New\nversion = 2\n[frame]\nsize = 1000\n"));
    assert_string_equal(ts_last_error(),
                        "new.style:4: frame.size: unknown parameter (one of: crop, width, "
                        "eye_line, head, level)");
    assert_null(parse("old.style", "name = Old\nversion = 1\n[frame]\n\nsize = 10\n"));
    assert_string_equal(ts_last_error(), "old.style:5: frame.width: 10 is outside 400..8000");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_registry),
        cmocka_unit_test(t_builtins),
        cmocka_unit_test(t_builtin_sizes),
        cmocka_unit_test(t_round_trip),
        cmocka_unit_test(t_defaults_then_values),
        cmocka_unit_test(t_errors),
        cmocka_unit_test(t_hostile),
        cmocka_unit_test(t_file),
        cmocka_unit_test(t_upgrade),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
