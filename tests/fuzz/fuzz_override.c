/* libFuzzer harness: the model name and override parser (models/zoo.c,
 * NAME[:key=value,...]) on any string. */
#include "models/model.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    model_config c;
    if (model_config_from_name(text, &c) == ML_OK && strlen(c.name) >= sizeof c.name)
        abort();
    free(text);
    return 0;
}
