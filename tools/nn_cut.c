/* Writes a prefix of a .tflite model: its first N operators, with chosen tensors as outputs.
 *   nn_cut MODEL.tflite N OUT.tflite TENSOR[,TENSOR...]
 * Used to run the part of a model before a custom op in runtimes that lack that op. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: nn_cut MODEL.tflite N OUT.tflite TENSOR[,TENSOR...]\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    size_t len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(len);
    if (!buf || fread(buf, 1, len, f) != len) return 1;
    fclose(f);
    int outs[TS_NN_MAX_IO], n = 0;
    for (char *tok = strtok(argv[4], ","); tok && n < TS_NN_MAX_IO; tok = strtok(NULL, ","))
        outs[n++] = atoi(tok);
    char err[300];
    size_t clen;
    uint8_t *cut = ts_nn_model_cut(buf, len, atoi(argv[2]), outs, n, &clen, err, sizeof err);
    if (!cut) {
        fprintf(stderr, "nn_cut: %s\n", err);
        return 1;
    }
    f = fopen(argv[3], "wb");
    if (!f || fwrite(cut, 1, clen, f) != clen || fclose(f) != 0) {
        fprintf(stderr, "nn_cut: cannot write %s\n", argv[3]);
        return 1;
    }
    free(cut);
    free(buf);
    return 0;
}
