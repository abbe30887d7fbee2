/* Strict parsing of command-line values: the whole string must be a number in
 * range, otherwise a usage error naming the flag. */
#ifndef MIXERLAB_ARGS_H
#define MIXERLAB_ARGS_H

#include "base/common.h"

ml_status args_parse_long(const char *flag, const char *text, long lo, long hi, long *out);
ml_status args_parse_u64(const char *flag, const char *text, uint64_t *out);
/* Comma-separated list of integers in [lo, hi]; at most max entries. */
ml_status args_parse_long_list(const char *flag, const char *text, long lo, long hi, long *out,
                               int max, int *count);
/* Returns the value of a flag that needs one, or records a usage error. */
ml_status args_value(int argc, char **argv, int *i, const char **value);

#endif
