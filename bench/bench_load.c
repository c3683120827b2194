/* Peak memory of loading all six models into runtimes, against the process before loading. */
#include <stdio.h>
#include <sys/resource.h>

#include "trueshot.h"

static long peak_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

int main(void) {
    ts_ctx *ctx;
    if (ts_ctx_new(NULL, &ctx) != TS_OK) {
        fprintf(stderr, "bench_load: %s\n", ts_last_error());
        return 1;
    }
    long before = peak_kb();
    for (int i = 0; i < TS_MODEL_COUNT; i++) {
        if (ts_ctx_load_model(ctx, (ts_model_id)i) != TS_OK) {
            fprintf(stderr, "bench_load: %s\n", ts_ctx_error(ctx));
            return 1;
        }
    }
    long after = peak_kb();
    printf("{\"peak_rss_before_mb\":%.1f,\"peak_rss_all_models_mb\":%.1f,\"models_mb\":%.1f}\n",
           before / 1024.0, after / 1024.0, (after - before) / 1024.0);
    ts_ctx_free(ctx);
    return 0;
}
