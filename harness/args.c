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

ml_status args_parse_double(const char *flag, const char *text, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (text[0] == '\0' || *end != '\0' || errno == ERANGE || !(v >= lo && v <= hi))
        return ml_fail(ML_ERR_USAGE, "%s: '%s' is not a number in %g..%g", flag, text, lo, hi);
    *out = v;
    return ML_OK;
}

ml_status args_parse_long_list(const char *flag, const char *text, long lo, long hi, long *out,
                               int max, int *count)
{
    char item[64];
    int n = 0;
    for (const char *p = text;;) {
        const char *comma = strchr(p, ',');
        const size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0)
            return ml_fail(ML_ERR_USAGE, "%s: empty item in '%s'", flag, text);
        if (len >= sizeof item)
            return ml_fail(ML_ERR_USAGE, "%s: '%.*s...' is not an integer", flag, 20, p);
        if (n == max)
            return ml_fail(ML_ERR_USAGE, "%s: at most %d values", flag, max);
        memcpy(item, p, len);
        item[len] = '\0';
        ML_TRY(args_parse_long(flag, item, lo, hi, &out[n]));
        n++;
        if (!comma)
            break;
        p = comma + 1;
    }
    *count = n;
    return ML_OK;
}

static ml_status parse_value(const arg_spec *a, const char *v)
{
    switch (a->kind) {
    case ARG_STRING:
        *(const char **)a->dest = v;
        return ML_OK;
    case ARG_LONG:
        return args_parse_long(a->name, v, (long)a->lo, (long)a->hi, a->dest);
    case ARG_U64:
        return args_parse_u64(a->name, v, a->dest);
    case ARG_DOUBLE:
        return args_parse_double(a->name, v, a->lo, a->hi, a->dest);
    case ARG_LONG_LIST:
        return args_parse_long_list(a->name, v, (long)a->lo, (long)a->hi, a->dest, a->max, a->count);
    case ARG_CHOICE: {
        char allowed[256] = "";
        for (int i = 0; a->choices[i]; i++) {
            if (strcmp(v, a->choices[i]) == 0) {
                *(int *)a->dest = i;
                return ML_OK;
            }
            if (i)
                strncat(allowed, ", ", sizeof allowed - strlen(allowed) - 1);
            strncat(allowed, a->choices[i], sizeof allowed - strlen(allowed) - 1);
        }
        return ml_fail(ML_ERR_USAGE, "%s: unknown %s '%s' (allowed: %s)", a->name, a->what ? a->what : "value", v,
                       allowed);
    }
    case ARG_FLAG:
    case ARG_SET:
        break;
    }
    return ML_OK;
}

ml_status args_parse(const char *cmd, int argc, char **argv, const arg_spec *specs, const char **pos, int max_pos,
                     int *npos)
{
    int n = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (f[0] != '-' || f[1] == '\0') {
            if (n == max_pos)
                return ml_fail(ML_ERR_USAGE, "%s: unexpected argument '%s'", cmd, f);
            pos[n++] = f;
            continue;
        }
        const arg_spec *a = specs;
        while (a->name && strcmp(a->name, f) != 0)
            a++;
        if (!a->name)
            return ml_fail(ML_ERR_USAGE, "%s: unknown option '%s' (see mixerlab %s --help)", cmd, f, cmd);
        if (a->seen)
            *a->seen = 1;
        if (a->kind == ARG_FLAG || a->kind == ARG_SET) {
            *(int *)a->dest = a->kind == ARG_FLAG ? 1 : (int)a->lo;
            continue;
        }
        if (i + 1 >= argc)
            return ml_fail(ML_ERR_USAGE, "%s needs a value", f);
        ML_TRY(parse_value(a, argv[++i]));
    }
    if (npos)
        *npos = n;
    return ML_OK;
}

ml_status args_split(const char *flag, const char *text, char *buf, size_t bufsz, const char **items, int max,
                     int *count)
{
    if (strlen(text) >= bufsz)
        return ml_fail(ML_ERR_USAGE, "%s: list too long (%zu characters, at most %zu)", flag, strlen(text), bufsz - 1);
    strcpy(buf, text);
    int n = 0;
    for (char *p = buf;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        if (!*p)
            return ml_fail(ML_ERR_USAGE, "%s: empty item in '%s'", flag, text);
        if (n == max)
            return ml_fail(ML_ERR_USAGE, "%s: at most %d items", flag, max);
        items[n++] = p;
        if (!comma)
            break;
        p = comma + 1;
    }
    *count = n;
    return ML_OK;
}
