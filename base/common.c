#include "base/common.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

/* per thread: a loader thread's failure never overwrites the main thread's message */
static _Thread_local char g_errmsg[1024];

/* Bytes of the valid UTF-8 sequence at s (2..4) that is not a C1 control, else 0. */
static int utf8_printable_len(const unsigned char *s)
{
    int n = s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : s[0] >= 0xe0 && s[0] <= 0xef ? 3 : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if (n == 2 && s[0] == 0xc2 && s[1] < 0xa0) /* U+0080..U+009F */
        return 0;
    if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 4 && s[0] == 0xf0 && s[1] < 0x90) ||
        (n == 4 && s[0] == 0xf4 && s[1] > 0x8f) || (n == 3 && s[0] == 0xed && s[1] > 0x9f))
        return 0; /* overlong, surrogate or past U+10FFFF */
    return n;
}

/* The message, one line whatever the values in it hold: every byte that is not
 * printable (control bytes, DEL, bytes that are not UTF-8) as \n, \t, \r or
 * \xNN. A message longer than the buffer ends in "..." (never cut silently). */
static void escape_into(char *dst, size_t n, const char *src, int cut)
{
    size_t o = 0;
    const unsigned char *s = (const unsigned char *)src;
    while (*s) {
        char esc[8];
        size_t len;
        const unsigned char *from = s;
        int u = *s >= 0x80 ? utf8_printable_len(s) : 0;
        if (*s >= 0x20 && *s < 0x7f) {
            len = 1;
        } else if (u) {
            len = (size_t)u;
        } else {
            if (*s == '\n' || *s == '\t' || *s == '\r')
                snprintf(esc, sizeof esc, "\\%c", *s == '\n' ? 'n' : *s == '\t' ? 't' : 'r');
            else
                snprintf(esc, sizeof esc, "\\x%02x", *s);
            from = (const unsigned char *)esc;
            len = strlen(esc);
        }
        if (o + len + 4 > n) { /* room for "..." and the NUL */
            cut = 1;
            break;
        }
        memcpy(dst + o, from, len);
        o += len;
        s += from == (const unsigned char *)esc ? 1 : len;
    }
    if (cut)
        memcpy(dst + o, "...", 3), o += 3;
    dst[o] = '\0';
}

ml_status ml_fail(ml_status code, const char *fmt, ...)
{
    /* formatted apart from g_errmsg: an argument may be the previous message */
    char raw[4096];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    escape_into(g_errmsg, sizeof g_errmsg, raw, len < 0 || (size_t)len >= sizeof raw);
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

/* One number from a file (a cgroup's limit or usage); "max" reads as SIZE_MAX. */
static int read_size_file(const char *path, size_t *out)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return 0;
    char buf[64] = "";
    int ok = fgets(buf, sizeof buf, fp) != NULL;
    fclose(fp);
    if (!ok)
        return 0;
    if (strncmp(buf, "max", 3) == 0) {
        *out = SIZE_MAX;
        return 1;
    }
    char *end;
    unsigned long long v = strtoull(buf, &end, 10);
    if (end == buf)
        return 0;
    *out = (size_t)v;
    return 1;
}

/* The room left under the limits of the cgroup at rel (below root) and each of
 * its ancestors; limit_name and usage_name are the files of that version. */
static void cgroup_room(const char *root, const char *rel, const char *limit_name, const char *usage_name,
                        size_t *room, const char **source, const char *label)
{
    char dir[1024];
    if (snprintf(dir, sizeof dir, "%s%s", root, rel) >= (int)sizeof dir)
        return;
    for (;;) {
        char lp[1100], up[1100];
        size_t limit, usage;
        snprintf(lp, sizeof lp, "%s/%s", dir, limit_name);
        snprintf(up, sizeof up, "%s/%s", dir, usage_name);
        /* v1 says "no limit" with a huge number rounded to the page size */
        if (read_size_file(lp, &limit) && limit < ((size_t)1 << 62) && read_size_file(up, &usage)) {
            const size_t left = usage < limit ? limit - usage : 0;
            if (left < *room)
                *room = left, *source = label;
        }
        char *slash = strrchr(dir, '/');
        if (!slash || (size_t)(slash - dir) < strlen(root))
            break;
        *slash = '\0';
    }
}

size_t ml_bytes_available(const char **source)
{
    size_t room = SIZE_MAX;
    *source = "nothing to read";
    FILE *fp = fopen("/proc/meminfo", "r");
    if (fp) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, fp))
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
                room = (size_t)kb * 1024, *source = "MemAvailable";
                break;
            }
        fclose(fp);
    }
    if (room == SIZE_MAX) { /* kernels before 3.14: physical memory */
        long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
        if (pages > 0 && psize > 0)
            room = (size_t)pages * (size_t)psize, *source = "physical memory";
    }
    fp = fopen("/proc/self/cgroup", "r");
    if (fp) {
        char line[1024];
        while (fgets(line, sizeof line, fp)) {
            line[strcspn(line, "\n")] = '\0';
            char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
            if (!c2)
                continue;
            *c2 = '\0';
            const char *controllers = c1 + 1, *rel = c2 + 1;
            if (strcmp(line, "0") == 0 && !*controllers) {
                cgroup_room("/sys/fs/cgroup", rel, "memory.max", "memory.current", &room, source,
                            "cgroup memory.max - memory.current");
                cgroup_room("/sys/fs/cgroup/unified", rel, "memory.max", "memory.current", &room, source,
                            "cgroup memory.max - memory.current");
            } else {
                for (char *tok = strtok((char *)controllers, ","); tok; tok = strtok(NULL, ","))
                    if (strcmp(tok, "memory") == 0)
                        cgroup_room("/sys/fs/cgroup/memory", rel, "memory.limit_in_bytes", "memory.usage_in_bytes",
                                    &room, source, "cgroup memory.limit_in_bytes - memory.usage_in_bytes");
            }
        }
        fclose(fp);
    }
    return room;
}

ml_status ml_check_fits(double bytes, const char *what)
{
    const char *source;
    const size_t have = ml_bytes_available(&source);
    if (have != SIZE_MAX && bytes > (double)have)
        return ml_fail(ML_ERR_NOMEM, "%s needs %.0f bytes (%.2f GiB) but %zu bytes (%.2f GiB) are available (%s)", what,
                       bytes, bytes / 1073741824.0, have, have / 1073741824.0, source);
    return ML_OK;
}

ml_status ml_size_product(size_t *out, const char *what, int n, const size_t *factors, size_t headroom)
{
    size_t p = 1, room;
    int wrapped = 0;
    for (int i = 0; i < n; i++)
        wrapped |= ml_mul_overflows(p, factors[i], &p);
    wrapped |= ml_mul_overflows(p, headroom ? headroom : 1, &room);
    if (!wrapped) {
        *out = p;
        return ML_OK;
    }
    char list[512] = "";
    size_t o = 0;
    for (int i = 0; i < n && o < sizeof list; i++)
        o += (size_t)snprintf(list + o, sizeof list - o, "%s%zu", i ? " x " : "", factors[i]);
    return ml_fail(ML_ERR_USAGE, "%s: %s is too large (its sizes do not fit in %zu bits)", what, list,
                   sizeof(size_t) * 8);
}

ml_status ml_size_add(size_t *out, const char *what, size_t a, size_t b)
{
    if (__builtin_add_overflow(a, b, out))
        return ml_fail(ML_ERR_USAGE, "%s: %zu + %zu is too large (does not fit in %zu bits)", what, a, b,
                       sizeof(size_t) * 8);
    return ML_OK;
}

ml_status ml_read_file(const char *path, size_t max_bytes, const char *what, unsigned char **out, size_t *size)
{
    *out = NULL;
    *size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return ml_fail(ML_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return ml_fail(ML_ERR_IO, "cannot read '%s': not a regular file", path);
    }
    const size_t len = (size_t)st.st_size;
    ml_status s = ML_OK;
    if (max_bytes && len > max_bytes)
        s = ml_fail(ML_ERR_FORMAT, "'%s': %zu bytes, over the %zu-byte limit for %s", path, len, max_bytes, what);
    else if (!max_bytes)
        s = ml_check_fits((double)len, what);
    unsigned char *buf = s == ML_OK ? ml_malloc(len ? len : 1, path) : NULL;
    if (s != ML_OK || !buf) {
        fclose(fp);
        return s != ML_OK ? s : ML_ERR_NOMEM;
    }
    const size_t got = fread(buf, 1, len, fp);
    const int err = ferror(fp), saved = errno;
    fclose(fp);
    if (err || got != len) {
        free(buf);
        return ml_fail(ML_ERR_IO, "cannot read '%s': %s", path, err ? strerror(saved) : "short read");
    }
    *out = buf;
    *size = len;
    return ML_OK;
}
