/* libFuzzer harness: a generated task's spec (data/tasks.c, NAME:key=value,...) on any string, and
 * when it opens at a small size, one training and one held-out sample checked against the rules
 * every task keeps: tokens in 0..vocab-1, labels -1 or a class, at least one label asked.
 * sequential-fashion-mnist is left out (it reads the IDX files). */
#include "data/tasks.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char name[64];
    const size_t len = strcspn(text, ":");
    if (len >= sizeof name || memchr(text, '\0', size)) {
        free(text);
        return 0;
    }
    memcpy(name, text, len);
    name[len] = '\0';
    dataset d;
    if (!tasks_is_task(name) || !strcmp(name, "sequential-fashion-mnist") || dataset_open(&d, text, 0) != ML_OK) {
        free(text);
        return 0;
    }
    if (d.seq_len < 1 || d.vocab < 2 || d.classes < 2 || !d.n[DATA_TEST])
        abort();
    if (d.seq_len <= 16384) {
        float *x = malloc((size_t)d.seq_len * sizeof *x);
        int32_t *y = malloc((size_t)d.seq_len * sizeof *y);
        for (int split = 0; split < 2 && x && y; split++) {
            const size_t i = split ? d.n[DATA_TEST] - 1 : 12345;
            if (d.batch(&d, (data_split)split, &i, 1, 32, 0, 7, x, y) != ML_OK)
                abort();
            int asked = 0;
            for (int p = 0; p < d.seq_len; p++) {
                if (!(x[p] >= 0 && x[p] < (float)d.vocab) || y[p] < -1 || y[p] >= d.classes)
                    abort();
                asked += y[p] >= 0;
            }
            if (!asked)
                abort();
        }
        free(x), free(y);
    }
    dataset_close(&d);
    free(text);
    return 0;
}
