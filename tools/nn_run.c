/* Runs a .tflite model on raw float32 inputs and writes raw float32 outputs.
 *   nn_run MODEL.tflite OUTDIR [IN0.f32 ...] [--bench N] [--threads T]
 * Without input files, inputs are filled with a fixed pattern. Used by the golden tests and the
 * benchmark; prints one line of JSON with the split and, with --bench, the median time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/runtime.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const char *model = NULL, *outdir = NULL, *inputs[8];
    int n_inputs = 0, bench = 0, threads = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--bench") && i + 1 < argc)
            bench = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!model)
            model = argv[i];
        else if (!outdir)
            outdir = argv[i];
        else if (n_inputs < 8)
            inputs[n_inputs++] = argv[i];
    }
    if (!model || !outdir) {
        fprintf(stderr,
                "usage: nn_run MODEL.tflite OUTDIR [IN.f32 ...] [--bench N] [--threads T]\n");
        return 2;
    }
    char err[300];
    ts_nn_model *m = ts_nn_model_load(model, err, sizeof err);
    if (!m) {
        fprintf(stderr, "nn_run: %s\n", err);
        return 1;
    }
    ts_nn_runtime *rt = ts_nn_runtime_new(m, threads, err, sizeof err);
    if (!rt) {
        fprintf(stderr, "nn_run: %s\n", err);
        ts_nn_model_free(m);
        return 1;
    }
    for (int i = 0; i < ts_nn_n_inputs(rt); i++) {
        ts_tview v = ts_nn_input(rt, i);
        size_t n = ts_tview_count(&v);
        if (i < n_inputs) {
            FILE *f = fopen(inputs[i], "rb");
            size_t got = f ? fread(v.data, sizeof(float), n, f) : 0;
            int extra = f ? fgetc(f) : EOF;
            if (f) fclose(f);
            if (got != n || extra != EOF) {
                fprintf(stderr, "nn_run: %s: expected exactly %zu float32 values\n", inputs[i], n);
                return 1;
            }
        } else {
            for (size_t k = 0; k < n; k++) v.data[k] = (float)((k * 7919) % 255) / 127.5f - 1.f;
        }
    }
    if (ts_nn_run(rt, err, sizeof err) != 0) {
        fprintf(stderr, "nn_run: %s\n", err);
        return 1;
    }
    for (int i = 0; i < ts_nn_n_outputs(rt); i++) {
        ts_tview v = ts_nn_output(rt, i);
        char path[1024];
        snprintf(path, sizeof path, "%s/out%d.f32", outdir, i);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(v.data, sizeof(float), ts_tview_count(&v), f) != ts_tview_count(&v)) {
            fprintf(stderr, "nn_run: cannot write %s\n", path);
            return 1;
        }
        fclose(f);
    }
    int segs, cops;
    ts_nn_runtime_stats(rt, &segs, &cops);
    printf("{\"model\":\"%s\",\"xnn_segments\":%d,\"c_ops\":%d", m->name, segs, cops);
    if (bench > 0) {
        double *t = malloc(sizeof(double) * (size_t)bench);
        for (int w = 0; w < 3; w++) ts_nn_run(rt, err, sizeof err);
        for (int r = 0; r < bench; r++) {
            double t0 = now_ms();
            ts_nn_run(rt, err, sizeof err);
            t[r] = now_ms() - t0;
        }
        qsort(t, (size_t)bench, sizeof(double), cmp_d);
        printf(",\"median_ms\":%.3f,\"min_ms\":%.3f,\"runs\":%d", t[bench / 2], t[0], bench);
        free(t);
    }
    printf("}\n");
    ts_nn_runtime_free(rt);
    ts_nn_model_free(m);
    return 0;
}
