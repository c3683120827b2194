/* Authenticity checks (issue 6; DESIGN.md promise 1): a pure frame job (level, crop, scale)
 * written as JPEG keeps the face within 1% of the eye distance on grace_hopper and two franck
 * frames, also when export had to scale the file for a size cap; the same output with its face
 * enlarged by 5% fails; the noise floor is small; the edit map shows where pixels changed and
 * only there; the photo's preparation (ts_render_prepare) gives the same floor and matte as its
 * steps one after the other. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <vips/vips.h>

#include "common.h"
#include "core/internal.h"
#include "render/export.h"
#include "render/pipeline.h"
#include "render/prepare.h"
#include "render/render.h"
#include "styles/style.h"
#include "verify/verify.h"

typedef ts_test_fixture fixture;

/* A job framed from photo with frame's defaults and the given crop template. */
static void frame_job(ts_ctx *ctx, ts_photo *p, const char *crop, ts_render_job *job) {
    const ts_face_analysis *fa;
    if (ts_photo_subject(ctx, p, &fa)) fail_msg("%s", ts_ctx_error(ctx));
    memset(job, 0, sizeof *job);
    job->ctx = ctx, job->photo = p, job->face = fa;
    void *fp = calloc(1, ts_stage_frame.params_size);
    ts_params_defaults(ts_stage_frame.table, fp);
    char err[200];
    assert_int_equal(
        ts_param_set(ts_param_find(ts_stage_frame.table, "crop"), fp, crop, err, sizeof err), 0);
    if (ts_stage_frame.run(job, fp)) fail_msg("%s", ts_ctx_error(ctx));
    free(fp);
}

static void identity_of(void **state, const char *name, const char *crop) {
    fixture *f = *state;
    ts_photo *p;
    assert_int_equal(ts_photo_open(f->ctx, ts_test_photo(name), &p), TS_OK);
    ts_render_job job;
    frame_job(f->ctx, p, crop, &job);
    ts_verify_floor floor;
    double t0 = g_get_monotonic_time();
    if (ts_verify_noise_floor(f->ctx, p, &floor)) fail_msg("%s", ts_ctx_error(f->ctx));
    double t_floor = (g_get_monotonic_time() - t0) / 1000;
    assert_true(floor.mean < 0.005);

    char path[400];
    snprintf(path, sizeof path, "%s/%s-%s.jpg", f->dir, name, crop);
    export_params ep;
    ts_params_defaults(ts_stage_export.table, &ep);
    assert_int_equal(ts_export_write(&job, &ep, path), TS_OK);
    ts_identity_result r;
    t0 = g_get_monotonic_time();
    if (ts_verify_identity(f->ctx, p, path, job.m, &floor, &r))
        fail_msg("%s", ts_ctx_error(f->ctx));
    double t_id = (g_get_monotonic_time() - t0) / 1000;
    print_message("  %-17s %-6s aligned mean %.3f%% max %.3f%% | as written mean %.3f%% max "
                  "%.3f%% | floor %.3f%% max %.3f%% | eye %.0f px | %.0f ms + floor %.0f ms\n",
                  name, crop, 100 * r.mean, 100 * r.max, 100 * r.direct_mean, 100 * r.direct_max,
                  100 * floor.mean, 100 * floor.max, r.inter_eye_px, t_id, t_floor);
    assert_true(r.pass);
    assert_true(r.mean <= TS_VERIFY_IDENTITY_LIMIT);
    assert_true(r.max >= r.mean);
    assert_non_null(strstr(r.message, "kept"));

    /* The same through a size cap that makes export scale the file: the result's transform
     * (frame times scale) maps it back. */
    ep.max_kb = 30;
    ts_export_result er;
    snprintf(path, sizeof path, "%s/%s-%s-capped.jpg", f->dir, name, crop);
    assert_int_equal(ts_export_write_ex(&job, &ep, path, &er), TS_OK);
    if (er.scale < 1) {
        ts_identity_result rc;
        assert_int_equal(ts_verify_identity(f->ctx, p, path, er.m, &floor, &rc), TS_OK);
        print_message("  %-17s capped to %dx%d q%d: aligned mean %.3f%% max %.3f%% | as "
                      "written mean %.3f%%\n",
                      name, er.width, er.height, er.quality, 100 * rc.mean, 100 * rc.max,
                      100 * rc.direct_mean);
        assert_true(rc.pass);
    }
    ts_render_job_clear(&job);
    ts_photo_unref(p);
}

static void t_identity_grace(void **state) {
    identity_of(state, "grace_hopper.jpg", "square");
    identity_of(state, "grace_hopper.jpg", "tight");
}

static void t_identity_franck(void **state) {
    identity_of(state, "franck_02045.jpg", "square");
    identity_of(state, "franck_03909.jpg", "4x5");
}

/* A face enlarged by 5% about the eyes (a geometry change that a generative service might
 * make) fails, and the message says by how much. */
static void t_warped_fails(void **state) {
    fixture *f = *state;
    ts_photo *p;
    assert_int_equal(ts_photo_open(f->ctx, ts_test_photo("grace_hopper.jpg"), &p), TS_OK);
    ts_render_job job;
    frame_job(f->ctx, p, "square", &job);
    /* Scale the face region (a box around the landmarks) by 5% about the eye centre. */
    float x0 = 1e9f, y0 = 1e9f, x1 = -1e9f, y1 = -1e9f;
    for (int i = 0; i < TS_LANDMARKS; i++) {
        x0 = fminf(x0, job.lm[i][0]), x1 = fmaxf(x1, job.lm[i][0]);
        y0 = fminf(y0, job.lm[i][1]), y1 = fmaxf(y1, job.lm[i][1]);
    }
    double cx = (job.lm[468][0] + job.lm[473][0]) / 2, cy = (job.lm[468][1] + job.lm[473][1]) / 2;
    int bx = (int)fmax(0, x0 - 20), by = (int)fmax(0, y0 - 20);
    int bw = (int)fmin(job.rgb->Xsize, x1 + 20) - bx, bh = (int)fmin(job.rgb->Ysize, y1 + 20) - by;
    const double k = 1.05;
    VipsImage *big = NULL, *warped = NULL;
    VipsArrayInt *area = vips_array_int_newv(4, bx, by, bw, bh);
    assert_int_equal(vips_affine(job.rgb, &big, k, 0, 0, k, "oarea", area, "odx", cx - k * cx,
                                 "ody", cy - k * cy, "interpolate",
                                 vips_interpolate_bilinear_static(), NULL),
                     0);
    vips_area_unref(VIPS_AREA(area));
    assert_int_equal(vips_insert(job.rgb, big, &warped, bx, by, NULL), 0);
    g_object_unref(big);
    ts_render_replace(&job.rgb, warped);
    char path[400];
    snprintf(path, sizeof path, "%s/warped.jpg", f->dir);
    export_params ep;
    ts_params_defaults(ts_stage_export.table, &ep);
    assert_int_equal(ts_export_write(&job, &ep, path), TS_OK);
    ts_identity_result r;
    assert_int_equal(ts_verify_identity(f->ctx, p, path, job.m, NULL, &r), TS_OK);
    print_message("  warped 5%%: aligned mean %.2f%% max %.2f%%, as written mean %.2f%% -> %s\n",
                  100 * r.mean, 100 * r.max, 100 * r.direct_mean, r.message);
    assert_false(r.pass);
    assert_true(r.mean > 2 * TS_VERIFY_IDENTITY_LIMIT);
    assert_non_null(strstr(r.message, "changed"));
    /* A wrong transform (the frame's shifted by 3% of the eye distance) fails too. */
    double m[6];
    memcpy(m, job.m, sizeof m);
    m[2] += 0.03 * job.inter_eye;
    snprintf(path, sizeof path, "%s/plain.jpg", f->dir);
    ts_render_job_clear(&job);
    frame_job(f->ctx, p, "square", &job);
    assert_int_equal(ts_export_write(&job, &ep, path), TS_OK);
    assert_int_equal(ts_verify_identity(f->ctx, p, path, m, NULL, &r), TS_OK);
    assert_false(r.pass);
    assert_float_equal(r.mean, 0.03, 0.006);
    /* Errors: a singular transform, an output without a face. */
    double zero[6] = {0};
    assert_int_equal(ts_verify_identity(f->ctx, p, path, zero, NULL, &r), TS_ERR_ARGUMENT);
    VipsImage *grey = NULL;
    assert_int_equal(vips_black(&grey, 600, 600, "bands", 3, NULL), 0);
    snprintf(path, sizeof path, "%s/noface.png", f->dir);
    assert_int_equal(vips_image_write_to_file(grey, path, NULL), 0);
    g_object_unref(grey);
    assert_int_equal(ts_verify_identity(f->ctx, p, path, job.m, NULL, &r), TS_ERR_NO_FACE);
    assert_non_null(strstr(ts_ctx_error(f->ctx), "output"));
    ts_render_job_clear(&job);
    ts_photo_unref(p);
}

/* in with a side x side patch at (x, y) made `levels` brighter: a new image. */
static VipsImage *brightened(VipsImage *in, int x, int y, int side, double levels) {
    VipsImage *patch = NULL, *lit = NULL, *out = NULL;
    assert_int_equal(vips_extract_area(in, &patch, x, y, side, side, NULL), 0);
    assert_int_equal(vips_linear1(patch, &lit, 1, levels, NULL), 0);
    assert_int_equal(vips_insert(in, lit, &out, x, y, NULL), 0);
    g_object_unref(patch), g_object_unref(lit);
    return out;
}

/* in (a canvas of job) with everything enlarged by k about the eye centre: a new image. */
static VipsImage *enlarged(VipsImage *in, const ts_render_job *job, double k) {
    double cx = (job->lm[468][0] + job->lm[473][0]) / 2,
           cy = (job->lm[468][1] + job->lm[473][1]) / 2;
    VipsImage *out = NULL;
    VipsArrayInt *area = vips_array_int_newv(4, 0, 0, in->Xsize, in->Ysize);
    assert_int_equal(vips_affine(in, &out, k, 0, 0, k, "oarea", area, "odx", cx - k * cx, "ody",
                                 cy - k * cy, "interpolate", vips_interpolate_bilinear_static(),
                                 NULL),
                     0);
    vips_area_unref(VIPS_AREA(area));
    return out;
}

/* The gate of `trueshot make` (ts_verify_identity_edits): the canvas after the face edits
 * against the canvas right after frame. Identical canvases read exactly 0; a 20-level
 * brightening of a cheek patch (appearance, not geometry) stays under the limit; the face
 * enlarged by 3% about the eyes between the two fails. */
static void t_edits_gate(void **state) {
    fixture *f = *state;
    ts_photo *p;
    assert_int_equal(ts_photo_open(f->ctx, ts_test_photo("grace_hopper.jpg"), &p), TS_OK);
    ts_render_job job;
    frame_job(f->ctx, p, "square", &job);
    VipsImage *before = ts_verify_snapshot(&job);
    ts_identity_result r;
    assert_int_equal(ts_verify_identity_edits(f->ctx, p, before, before, "same", job.m, NULL, &r),
                     TS_OK);
    print_message("  identical: edits %.4f%%, vs photo %.3f%%, framing %.3f%%\n", 100 * r.mean,
                  100 * r.total_mean, 100 * r.frame_mean);
    assert_float_equal(r.mean, 0, 1e-9);
    assert_true(r.pass);
    assert_true(r.frame_mean >= 0 && r.frame_mean < TS_VERIFY_IDENTITY_LIMIT);

    VipsImage *bright =
        brightened(before, (int)job.lm[205][0] - 20, (int)job.lm[205][1] - 20, 40, 20);
    assert_int_equal(ts_verify_identity_edits(f->ctx, p, before, bright, "bright", job.m, NULL, &r),
                     TS_OK);
    print_message("  brightened patch: edits %.3f%% max %.3f%%\n", 100 * r.mean, 100 * r.max);
    assert_true(r.pass);
    g_object_unref(bright);

    /* The face enlarged by 3% about the eye centre. */
    VipsImage *warped = enlarged(before, &job, 1.03);
    assert_int_equal(ts_verify_identity_edits(f->ctx, p, before, warped, "warped", job.m, NULL, &r),
                     TS_OK);
    print_message("  enlarged 3%%: edits %.3f%% -> %s\n", 100 * r.mean, r.message);
    assert_false(r.pass);
    assert_true(r.mean > 1.5 * TS_VERIFY_IDENTITY_LIMIT);
    assert_non_null(strstr(r.message, "changed"));
    g_object_unref(warped);
    g_object_unref(before);
    ts_render_job_clear(&job);
    ts_photo_unref(p);
}

/* The gate's reading shares its nine passes with a second thread (the mesh model's second
 * runtime) and the early reading does not (ts_verify_read_start: it runs beside the colour
 * stages): the two must read the same pixels the same to the bit, or every look's edits would
 * read the difference. A copy of the framed canvas (another image object, so nothing kept on
 * the first is found on it) read by the gate against the canvas read early moves nothing. */
static void t_split_reading(void **state) {
    fixture *f = *state;
    ts_photo *p;
    assert_int_equal(ts_photo_open(f->ctx, ts_test_photo("franck_02045.jpg"), &p), TS_OK);
    ts_render_job job;
    frame_job(f->ctx, p, "square", &job);
    VipsImage *before = ts_verify_snapshot(&job), *copy = NULL;
    ts_verify_read_finish(ts_verify_read_start(f->ctx, p, before, job.m, "early"));
    assert_int_equal(vips_copy(before, &copy, NULL), 0);
    VipsImage *mem = vips_image_copy_memory(copy); /* its own pixels, the same values */
    g_object_unref(copy);
    assert_non_null(mem);
    assert_ptr_not_equal(VIPS_IMAGE_ADDR(mem, 0, 0), VIPS_IMAGE_ADDR(before, 0, 0));
    assert_null(f->ctx->second[TS_MODEL_FACE_LANDMARK_ATTENTION]);
    ts_identity_result r;
    assert_int_equal(ts_verify_identity_edits(f->ctx, p, before, mem, "copy", job.m, NULL, &r),
                     TS_OK);
    print_message("  copy read on two threads against the canvas read on one: %.6f%%\n",
                  100 * r.mean);
    assert_non_null(f->ctx->second[TS_MODEL_FACE_LANDMARK_ATTENTION]); /* it did split */
    assert_true(r.mean == 0 && r.max == 0);
    assert_true(r.frame_mean > 0); /* the instrument did read something */
    g_object_unref(mem);
    g_object_unref(before);
    ts_render_job_clear(&job);
    ts_photo_unref(p);
}

/* make's gate with its back-off (ts_render_identity_gate): edits that pass are kept whole; a
 * face enlarged by 5% reads over twice the limit and is refused as it is (not blended back into
 * a ghost that would pass); a soft warp that reads between 1% and 2% is backed off: the canvas
 * replaced by a blend toward the framed one, with an edit line saying so. */
static void t_gate_back_off(void **state) {
    fixture *f = *state;
    ts_photo *p;
    assert_int_equal(ts_photo_open(f->ctx, ts_test_photo("grace_hopper.jpg"), &p), TS_OK);
    ts_render_job job;
    frame_job(f->ctx, p, "square", &job);
    VipsImage *before = ts_verify_snapshot(&job), *after = NULL;
    /* a mild tone edit: 4 levels brighter everywhere */
    assert_int_equal(vips_linear1(before, &after, 1, 4, NULL), 0);
    ts_render_replace(&job.rgb, g_object_ref(after));
    ts_identity_result r;
    double strength = 0;
    const int framed_edits = job.n_edits; /* frame's own lines */
    assert_int_equal(ts_render_identity_gate(f->ctx, p, &job, before, &after, NULL, &r, &strength),
                     TS_OK);
    print_message("  +4 levels: edits %.3f%%, strength %.2f\n", 100 * r.mean, strength);
    assert_true(r.pass);
    assert_float_equal(strength, 1, 0);
    assert_ptr_equal(job.rgb, after);
    assert_int_equal(job.n_edits, framed_edits);
    g_object_unref(after);

    after = enlarged(before, &job, 1.05);
    VipsImage *warped = after;
    g_object_ref(warped);
    ts_render_replace(&job.rgb, g_object_ref(after));
    assert_int_equal(ts_render_identity_gate(f->ctx, p, &job, before, &after, NULL, &r, &strength),
                     TS_OK);
    print_message("  enlarged 5%%: edits %.3f%%, strength %.2f, pass %d\n", 100 * r.mean, strength,
                  r.pass);
    assert_false(r.pass);
    assert_float_equal(strength, 1, 0);
    assert_true(r.mean > 2 * TS_VERIFY_IDENTITY_LIMIT);
    g_object_unref(warped), g_object_unref(after);

    /* 1.5%: between the limit and twice it */
    after = enlarged(before, &job, 1.015);
    warped = after;
    g_object_ref(warped);
    ts_render_replace(&job.rgb, g_object_ref(after));
    int n0 = job.n_edits;
    assert_int_equal(ts_render_identity_gate(f->ctx, p, &job, before, &after, NULL, &r, &strength),
                     TS_OK);
    print_message("  enlarged 1.5%%: edits %.3f%%, strength %.2f, pass %d\n", 100 * r.mean,
                  strength, r.pass);
    assert_true(r.pass);
    assert_true(strength < 1);
    assert_ptr_not_equal(after, warped);
    assert_ptr_equal(job.rgb, after);
    assert_int_equal(job.n_edits, n0 + 1);
    assert_non_null(strstr(job.edits[n0], "face edits applied at"));
    g_object_unref(warped), g_object_unref(after), g_object_unref(before);
    ts_render_job_clear(&job);
    ts_photo_unref(p);
}

/* make's looks leave the reading of each written file running while the next look is made
 * (ts_look_request.written_mean with a cache): the value settled later is the very reading of
 * that file (ts_verify_identity on it), r->id_written_mean says it was not taken there, and
 * freeing the cache settles the last one. */
static void t_written_later(void **state) {
    fixture *f = *state;
    ts_photo *p;
    assert_int_equal(ts_photo_open(f->ctx, ts_test_photo("grace_hopper.jpg"), &p), TS_OK);
    const ts_face_analysis *fa;
    ts_matte *mt = NULL;
    ts_verify_floor fl;
    if (ts_render_prepare(f->ctx, p, &fa, &mt, &fl)) fail_msg("%s", ts_ctx_error(f->ctx));
    ts_style *st;
    assert_int_equal(ts_style_load(f->ctx, "linkedin", &st), TS_OK);
    _Alignas(16) char params[512];
    assert_int_equal(ts_style_frame_params(f->ctx, st, 0, params), TS_OK);
    ts_render_cache *cache = ts_render_cache_new();
    assert_non_null(cache);
    char path[2][300];
    double later[2] = {-2, -2}, last_m[6];
    for (int k = 0; k < 2; k++) {
        snprintf(path[k], sizeof path[k], "%s/later-%d.jpg", f->dir, k);
        ts_look_request req = {.style = st,
                               .frame_params = params,
                               .path = path[k],
                               .floor = &fl,
                               .cache = cache,
                               .written_mean = &later[k]};
        ts_look_result r;
        assert_int_equal(ts_render_look(f->ctx, p, fa, mt, &req, &r), TS_OK);
        assert_string_equal(r.error, "");
        assert_true(r.id_written_mean == -1);
        memcpy(last_m, r.m, sizeof last_m);
        if (k == 0) {
            ts_render_cache_settle(cache);
            ts_identity_result now;
            assert_int_equal(ts_verify_identity(f->ctx, p, path[0], r.m, &fl, &now), TS_OK);
            print_message("  the file read later %.5f%%, read now %.5f%%\n", 100 * later[0],
                          100 * now.mean);
            assert_true(later[0] == now.mean);
        }
    }
    assert_true(later[1] == -2); /* still running, or done and not yet settled */
    ts_render_cache_free(cache);
    ts_identity_result now;
    assert_int_equal(ts_verify_identity(f->ctx, p, path[1], last_m, &fl, &now), TS_OK);
    assert_true(later[1] == now.mean);
    ts_style_free(st);
    ts_matte_free(mt);
    ts_photo_unref(p);
}

/* The RGB of the edit map at (x, y). */
/* ts_render_prepare measures the noise floor on a thread beside the matte: the same floor and
 * the same matte as measured one after the other on the same photo opened afresh; no floor
 * asked, none measured; a photo without a face fails with nothing returned. */
static void t_prepare(void **state) {
    fixture *f = *state;
    ts_photo *a, *b;
    assert_int_equal(ts_photo_open(f->ctx, ts_test_photo("grace_hopper.jpg"), &a), TS_OK);
    assert_int_equal(ts_photo_open(f->ctx, ts_test_photo("grace_hopper.jpg"), &b), TS_OK);
    const ts_face_analysis *fa, *fb;
    ts_matte *ma = NULL, *mb = NULL;
    ts_verify_floor fla = {-1, -1}, flb = {-1, -1};
    if (ts_render_prepare(f->ctx, a, &fa, &ma, &fla)) fail_msg("%s", ts_ctx_error(f->ctx));
    if (ts_photo_subject(f->ctx, b, &fb) || ts_photo_matte(f->ctx, b, NULL, &mb) ||
        ts_verify_noise_floor(f->ctx, b, &flb))
        fail_msg("%s", ts_ctx_error(f->ctx));
    print_message(
        "  prepared: floor %.4f%% (max %.4f%%), one after the other %.4f%% (max %.4f%%)\n",
        100 * fla.mean, 100 * fla.max, 100 * flb.mean, 100 * flb.max);
    assert_true(fla.mean > 0 && fla.mean < 0.005);
    assert_true(fabs(fla.mean - flb.mean) < 1e-9 && fabs(fla.max - flb.max) < 1e-9);
    assert_true(fabs(fa->inter_eye_px - fb->inter_eye_px) < 1e-9);
    assert_int_equal(ma->w, mb->w);
    assert_int_equal(ma->h, mb->h);
    size_t na = (size_t)ma->w * ma->h;
    uint16_t *aa = malloc(sizeof *aa * na), *ab = malloc(sizeof *ab * na);
    assert_int_equal(ts_matte_alpha16(ma, aa), TS_OK);
    assert_int_equal(ts_matte_alpha16(mb, ab), TS_OK);
    assert_memory_equal(aa, ab, sizeof *aa * na);
    free(aa), free(ab);
    ts_matte_free(ma), ts_matte_free(mb);
    ts_photo_unref(a), ts_photo_unref(b);

    /* no floor asked */
    assert_int_equal(ts_photo_open(f->ctx, ts_test_photo("grace_hopper.jpg"), &a), TS_OK);
    if (ts_render_prepare(f->ctx, a, &fa, &ma, NULL)) fail_msg("%s", ts_ctx_error(f->ctx));
    assert_non_null(ma);
    ts_matte_free(ma);
    ts_photo_unref(a);

    /* no face: a flat grey picture */
    char path[400];
    snprintf(path, sizeof path, "%s/grey.jpg", f->dir);
    ts_test_grey_card(path);
    assert_int_equal(ts_photo_open(f->ctx, path, &a), TS_OK);
    ma = (ts_matte *)1;
    ts_status s = ts_render_prepare(f->ctx, a, &fa, &ma, &fla);
    assert_int_equal(s, TS_ERR_NO_FACE);
    assert_null(ma);
    ts_photo_unref(a);
}

static void map_pixel(VipsImage *map, int x, int y, double rgb[3]) {
    double *v;
    int n;
    assert_int_equal(vips_getpoint(map, &v, &n, x, y, NULL), 0);
    for (int c = 0; c < 3; c++) rgb[c] = v[c];
    g_free(v);
}

static void t_edit_map(void **state) {
    fixture *f = *state;
    ts_photo *p;
    assert_int_equal(ts_photo_open(f->ctx, ts_test_photo("grace_hopper.jpg"), &p), TS_OK);
    ts_render_job job;
    frame_job(f->ctx, p, "square", &job);
    VipsImage *before = ts_verify_snapshot(&job);
    assert_non_null(before);
    assert_ptr_equal(before, job.rgb);
    /* A stage that brightens a patch on the cheek by 20 levels, and changes nothing else. */
    int px = (int)job.lm[205][0] - 20, py = (int)job.lm[205][1] - 20, pw = 40, ph = 40;
    ts_render_replace(&job.rgb, brightened(job.rgb, px, py, pw, 20));
    VipsImage *snap = ts_verify_snapshot(&job);
    /* The snapshot taken earlier is unaffected by the stage. */
    assert_ptr_not_equal(snap, before);

    char path[400];
    snprintf(path, sizeof path, "%s/editmap.png", f->dir);
    ts_edit_stats st;
    if (ts_verify_edit_map(f->ctx, before, snap, NULL, path, &st))
        fail_msg("%s", ts_ctx_error(f->ctx));
    long W = before->Xsize, H = before->Ysize;
    print_message("  edit map: mean %.3f p99 %.2f max %.2f changed %.4f%% of %ld px\n", st.mean,
                  st.p99, st.max, 100 * st.changed, st.pixels);
    assert_int_equal(st.pixels, W * H);
    assert_float_equal(st.changed, (double)pw * ph / (W * H), 1e-4);
    assert_true(st.max >= 19 && st.max <= 21); /* 20 levels, clipped at 255 in places */
    VipsImage *map = vips_image_new_from_file(path, NULL);
    assert_non_null(map);
    assert_int_equal(map->Xsize, W);
    double in[3], out[3];
    map_pixel(map, px + pw / 2, py + ph / 2, in);
    map_pixel(map, px - 30, py + ph / 2, out);
    /* Unchanged: grey. Changed: a warm heat colour (magma at 20/32: red > blue, not grey). */
    assert_true(fabs(out[0] - out[1]) < 2 && fabs(out[1] - out[2]) < 2);
    assert_true(in[0] > in[2] + 40 && in[0] > in[1] + 40);
    /* the PNG (libdeflate's stream in libpng's chunks) decodes to its last row, with no error */
    double avg = -1;
    assert_int_equal(vips_avg(map, &avg, NULL), 0);
    assert_true(avg > 10 && avg < 245);
    g_object_unref(map);
    /* An odd size, and a single row (the "Up" filter has no row above the first): the map
     * decodes whole, 3-band, with the change where it was made. */
    static const int sizes[][2] = {{101, 37}, {64, 1}};
    for (int k = 0; k < 2; k++) {
        VipsImage *b0 = NULL, *a0 = NULL;
        assert_int_equal(vips_extract_area(before, &b0, px, py, sizes[k][0], sizes[k][1], NULL), 0);
        assert_int_equal(vips_extract_area(snap, &a0, px, py, sizes[k][0], sizes[k][1], NULL), 0);
        snprintf(path, sizeof path, "%s/odd%d.png", f->dir, k);
        if (ts_verify_edit_map(f->ctx, b0, a0, NULL, path, &st))
            fail_msg("%s", ts_ctx_error(f->ctx));
        VipsImage *m2 = vips_image_new_from_file(path, NULL);
        assert_non_null(m2);
        assert_int_equal(m2->Xsize, sizes[k][0]);
        assert_int_equal(m2->Ysize, sizes[k][1]);
        assert_int_equal(m2->Bands, 3);
        assert_int_equal(vips_avg(m2, &avg, NULL), 0);
        double c[3];
        map_pixel(m2, 5, 0, c); /* inside the brightened patch: heat, not grey */
        assert_true(c[0] > c[2] + 40);
        g_object_unref(m2), g_object_unref(b0), g_object_unref(a0);
    }

    /* Identical canvases: nothing changed, and the map is grey everywhere. */
    snprintf(path, sizeof path, "%s/nothing.jpg", f->dir);
    assert_int_equal(ts_verify_edit_map(f->ctx, before, before, NULL, path, &st), TS_OK);
    assert_float_equal(st.max, 0, 0);
    assert_float_equal(st.changed, 0, 0);
    /* Mismatched sizes are refused. */
    VipsImage *small = NULL;
    assert_int_equal(vips_extract_area(before, &small, 0, 0, 100, 100, NULL), 0);
    assert_int_equal(ts_verify_edit_map(f->ctx, before, small, NULL, path, &st), TS_ERR_ARGUMENT);
    g_object_unref(small);
    g_object_unref(before), g_object_unref(snap);
    ts_render_job_clear(&job);
    ts_photo_unref(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_identity_grace, ts_test_setup, ts_test_teardown),
        cmocka_unit_test_setup_teardown(t_identity_franck, ts_test_setup, ts_test_teardown),
        cmocka_unit_test_setup_teardown(t_warped_fails, ts_test_setup, ts_test_teardown),
        cmocka_unit_test_setup_teardown(t_edits_gate, ts_test_setup, ts_test_teardown),
        cmocka_unit_test_setup_teardown(t_gate_back_off, ts_test_setup, ts_test_teardown),
        cmocka_unit_test_setup_teardown(t_split_reading, ts_test_setup, ts_test_teardown),
        cmocka_unit_test_setup_teardown(t_written_later, ts_test_setup, ts_test_teardown),
        cmocka_unit_test_setup_teardown(t_edit_map, ts_test_setup, ts_test_teardown),
        cmocka_unit_test_setup_teardown(t_prepare, ts_test_setup, ts_test_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
