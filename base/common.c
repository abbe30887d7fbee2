#include "base/common.h"

#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

/* per thread: a loader thread's failure never overwrites the main thread's message */
static _Thread_local char g_errmsg[1024];

ml_status ml_fail(ml_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_errmsg, sizeof g_errmsg, fmt, ap);
    va_end(ap);
    return code;
}

const char *ml_last_error(void) { return g_errmsg[0] ? g_errmsg : "unknown error"; }

void ml_clear_error(void) { g_errmsg[0] = '\0'; }

void *ml_malloc(size_t bytes, const char *what)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        ml_fail(ML_ERR_NOMEM, "out of memory allocating %zu bytes for %s", bytes, what);
    return p;
}

void *ml_calloc(size_t count, size_t size, const char *what)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        ml_fail(ML_ERR_NOMEM, "out of memory allocating %zu x %zu bytes for %s", count, size, what);
    return p;
}

ml_status ml_check_fits(double bytes, const char *what)
{
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || psize <= 0)
        return ML_OK;
    double have = (double)pages * (double)psize;
    if (bytes > 0.9 * have)
        return ml_fail(ML_ERR_NOMEM, "%s needs %.2f GiB but this machine has %.2f GiB", what, bytes / 1073741824.0,
                       have / 1073741824.0);
    return ML_OK;
}
