/* A borrowed view of a dense float32 tensor in row-major (NHWC) order. */
#ifndef TS_NN_TENSOR_H
#define TS_NN_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define TS_NN_MAX_RANK 6

typedef struct ts_tview {
    float *data; /* borrowed; NULL while only the shape is known */
    int rank;
    int32_t dims[TS_NN_MAX_RANK];
} ts_tview;

static inline size_t ts_tview_count(const ts_tview *t) {
    size_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= (size_t)t->dims[i];
    return n;
}

#endif
