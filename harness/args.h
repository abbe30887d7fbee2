/* The command line: one table-driven parser for every command, and strict
 * value parsing (the whole string must be a number in range, otherwise a
 * usage error naming the flag). A command lists its flags in an arg_spec
 * table; args_parse walks argv once, in order, so the first bad flag is the
 * one reported. -h / --help never reach a command: main prints its usage. */
#ifndef MIXERLAB_ARGS_H
#define MIXERLAB_ARGS_H

#include "base/common.h"

typedef enum {
    ARG_FLAG,      /* no value: *(int *)dest = 1 */
    ARG_SET,       /* no value: *(int *)dest = (int)lo (several flags choosing one setting: the last wins) */
    ARG_STRING,    /* *(const char **)dest = the value */
    ARG_LONG,      /* *(long *)dest, in lo..hi */
    ARG_U64,       /* *(uint64_t *)dest, non-negative */
    ARG_DOUBLE,    /* *(double *)dest, in lo..hi */
    ARG_LONG_LIST, /* comma-separated, each in lo..hi: (long *)dest[0..max), *count */
    ARG_CHOICE,    /* one of choices (NULL-terminated): *(int *)dest = its index */
} arg_kind;

typedef struct {
    const char *name; /* "--res" */
    arg_kind kind;
    void *dest;
    double lo, hi;               /* ARG_LONG, ARG_DOUBLE, ARG_LONG_LIST */
    int max;                     /* ARG_LONG_LIST: capacity of dest */
    int *count;                  /* ARG_LONG_LIST: values parsed */
    const char *const *choices;  /* ARG_CHOICE */
    const char *what;            /* ARG_CHOICE: what a value is, for errors ("device"; default "value") */
    int *seen;                   /* optional: set to 1 when the flag is given */
} arg_spec;

/* Table entries (designated, so that unused fields are zero). */
#define OPT_FLAG(n, d) {.name = (n), .kind = ARG_FLAG, .dest = (d)}
#define OPT_SET(n, d, v) {.name = (n), .kind = ARG_SET, .dest = (d), .lo = (v)}
#define OPT_STRING(n, d) {.name = (n), .kind = ARG_STRING, .dest = (d)}
#define OPT_LONG(n, d, l, h) {.name = (n), .kind = ARG_LONG, .dest = (d), .lo = (l), .hi = (h)}
#define OPT_LONG_SEEN(n, d, l, h, s) {.name = (n), .kind = ARG_LONG, .dest = (d), .lo = (l), .hi = (h), .seen = (s)}
#define OPT_U64(n, d) {.name = (n), .kind = ARG_U64, .dest = (d)}
#define OPT_DOUBLE(n, d, l, h) {.name = (n), .kind = ARG_DOUBLE, .dest = (d), .lo = (l), .hi = (h)}
#define OPT_LIST(n, d, l, h, mx, cnt, s)                                                                              \
    {.name = (n), .kind = ARG_LONG_LIST, .dest = (d), .lo = (l), .hi = (h), .max = (mx), .count = (cnt), .seen = (s)}
#define OPT_CHOICE(n, d, ch, wh) {.name = (n), .kind = ARG_CHOICE, .dest = (d), .choices = (ch), .what = (wh)}
#define OPT_END {.name = NULL}

/* Parses argv[1..argc) of command cmd against specs (terminated by an entry
 * with name NULL); other arguments are positional and go to pos[0..max_pos)
 * (more is a usage error). Unknown flags name the command's --help. */
ml_status args_parse(const char *cmd, int argc, char **argv, const arg_spec *specs, const char **pos, int max_pos,
                     int *npos);

ml_status args_parse_long(const char *flag, const char *text, long lo, long hi, long *out);
ml_status args_parse_u64(const char *flag, const char *text, uint64_t *out);
ml_status args_parse_double(const char *flag, const char *text, double lo, double hi, double *out);
/* Comma-separated list of integers in [lo, hi]; at most max entries; no empty items. */
ml_status args_parse_long_list(const char *flag, const char *text, long lo, long hi, long *out,
                               int max, int *count);

/* Splits a comma-separated list of names into items[0..max) pointing into
 * buf (a copy of text, bufsz bytes); empty items and too many are usage errors. */
ml_status args_split(const char *flag, const char *text, char *buf, size_t bufsz, const char **items, int max,
                     int *count);

#endif
