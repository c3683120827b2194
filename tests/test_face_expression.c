/* Eyes, mouth and gaze on real photos whose state was judged by eye (recorded below), and the
 * measures' invariance: turning the photo changes nothing, mirroring swaps the eyes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"
#include "core/internal.h"
#include "face/expression.h"

static ts_face_expression measure(const char *path) {
    ts_face_mesh m;
    ts_test_mesh_of(path, &m);
    ts_face_expression x;
    ts_face_expression_measure(&m, &x);
    printf("%-48s eyes %.2f %.2f  gaze %+.2f,%+.2f %+.2f,%+.2f  mouth %.2f  smile %+.3f\n", path,
           x.eye_open[0], x.eye_open[1], x.gaze[0][0], x.gaze[0][1], x.gaze[1][0], x.gaze[1][1],
           x.mouth_open, x.smile);
    return x;
}

/* Judged by eye on the photos. */
static void t_labelled(void **state) {
    (void)state;
    /* Open eyes, closed mouth, neutral. */
    ts_face_expression g = measure(ts_test_photo("grace_hopper.jpg"));
    assert_true(g.eye_open[0] > 0.2f && g.eye_open[1] > 0.2f);
    assert_true(g.mouth_open < 0.05f);
    assert_true(fabsf(g.gaze[0][0]) < 0.2f && fabsf(g.gaze[1][0]) < 0.2f);
    /* Open eyes, closed mouth. */
    ts_face_expression a = measure(ts_test_photo("franck_01829.jpg"));
    assert_true(a.eye_open[0] > 0.2f && a.eye_open[1] > 0.2f);
    assert_true(a.mouth_open < 0.05f);
    /* Looking down, lids nearly shut, while laughing. */
    ts_face_expression d = measure(ts_test_photo("franck_03979.jpg"));
    assert_true(d.eye_open[0] < 0.12f && d.eye_open[1] < 0.12f);
    /* Laughing with the mouth open. */
    ts_face_expression l = measure(ts_test_photo("franck_04117.jpg"));
    assert_true(l.mouth_open > 0.2f);
    assert_true(l.eye_open[0] > 0.15f);
    /* A closed-lip smile with teeth showing: corners well above the lip centre. */
    ts_face_expression s = measure(ts_test_photo("astronaut.png"));
    assert_true(s.smile > 0.1f);
    assert_true(s.smile > g.smile + 0.1f);
}

static void t_invariance(void **state) {
    (void)state;
    char tmp[] = "/tmp/ts-expr-XXXXXX", a[64], b[64], c[64];
    assert_non_null(mkdtemp(tmp));
    const char *names[] = {"grace_hopper.jpg", "franck_02159.jpg"};
    for (int k = 0; k < 2; k++) {
        VipsImage *im = vips_image_new_from_file(ts_test_photo(names[k]), NULL), *rot, *flip;
        assert_non_null(im);
        snprintf(a, sizeof a, "%s/a.png", tmp);
        snprintf(b, sizeof b, "%s/rot.png", tmp);
        snprintf(c, sizeof c, "%s/flip.png", tmp);
        assert_int_equal(vips_pngsave(im, a, NULL), 0);
        assert_int_equal(vips_similarity(im, &rot, "angle", -20.0, NULL), 0);
        assert_int_equal(vips_pngsave(rot, b, NULL), 0);
        assert_int_equal(vips_flip(im, &flip, VIPS_DIRECTION_HORIZONTAL, NULL), 0);
        assert_int_equal(vips_pngsave(flip, c, NULL), 0);
        ts_face_expression x = measure(a), r = measure(b), f = measure(c);
        /* The network's own jitter between resampled copies is about 0.02-0.04 in eye aspect
         * ratio (open ~0.25-0.35, shut < 0.12), so 0.05 separates noise from a real change. */
        for (int e = 0; e < 2; e++) {
            assert_true(fabsf(x.eye_open[e] - r.eye_open[e]) < 0.05f);
            assert_true(fabsf(x.gaze[e][0] - r.gaze[e][0]) < 0.1f);
            /* Mirrored: the other eye, and its horizontal gaze reversed. */
            assert_true(fabsf(x.eye_open[e] - f.eye_open[1 - e]) < 0.05f);
            assert_true(fabsf(x.gaze[e][0] + f.gaze[1 - e][0]) < 0.12f);
        }
        assert_true(fabsf(x.mouth_open - r.mouth_open) < 0.03f);
        assert_true(fabsf(x.smile - r.smile) < 0.02f);
        assert_true(fabsf(x.smile - f.smile) < 0.02f);
        assert_true(fabsf(x.inter_eye_px - r.inter_eye_px) < 0.02f * x.inter_eye_px);
        g_object_unref(flip);
        g_object_unref(rot);
        g_object_unref(im);
    }
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    if (VIPS_INIT("test_face_expression")) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_labelled),
        cmocka_unit_test(t_invariance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
