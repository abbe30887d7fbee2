#include "harness/args.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

ml_status args_parse_long(const char *flag, const char *text, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (text[0] == '\0' || *end != '\0' || errno == ERANGE)
        return ml_fail(ML_ERR_USAGE, "%s: '%s' is not an integer", flag, text);
    if (v < lo || v > hi)
        return ml_fail(ML_ERR_USAGE, "%s: %ld is out of range (allowed %ld..%ld)", flag, v, lo, hi);
    *out = v;
    return ML_OK;
}

ml_status args_parse_u64(const char *flag, const char *text, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    if (text[0] == '-' || text[0] == '\0')
        return ml_fail(ML_ERR_USAGE, "%s: '%s' is not a non-negative integer", flag, text);
    unsigned long long v = strtoull(text, &end, 10);
    if (*end != '\0' || errno == ERANGE)
        return ml_fail(ML_ERR_USAGE, "%s: '%s' is not a non-negative integer", flag, text);
    *out = (uint64_t)v;
    return ML_OK;
}

ml_status args_parse_long_list(const char *flag, const char *text, long lo, long hi, long *out,
                               int max, int *count)
{
    char buf[512];
    if (strlen(text) >= sizeof buf)
        return ml_fail(ML_ERR_USAGE, "%s: list too long", flag);
    strcpy(buf, text);
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == max)
            return ml_fail(ML_ERR_USAGE, "%s: at most %d values", flag, max);
        ML_TRY(args_parse_long(flag, tok, lo, hi, &out[n]));
        n++;
    }
    if (n == 0)
        return ml_fail(ML_ERR_USAGE, "%s: empty list", flag);
    *count = n;
    return ML_OK;
}

ml_status args_value(int argc, char **argv, int *i, const char **value)
{
    if (*i + 1 >= argc)
        return ml_fail(ML_ERR_USAGE, "%s needs a value", argv[*i]);
    *value = argv[++*i];
    return ML_OK;
}
