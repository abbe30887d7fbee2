#include "data/imagefolder.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static unsigned char to_lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c; }

/* natural_key(s) = [int(p) if p.isdigit() else p for p in re.split(r'(\d+)', s.lower())]:
 * text and digit pieces alternate, starting and ending with a text piece
 * (maybe empty), so the lists compare piece by piece, and a list that runs
 * out first is the smaller. */
int imagefolder_natural_cmp(const char *a, const char *b)
{
    const unsigned char *p = (const unsigned char *)a, *q = (const unsigned char *)b;
    for (;;) {
        size_t lp = 0, lq = 0;
        while (p[lp] && !is_digit(p[lp]))
            lp++;
        while (q[lq] && !is_digit(q[lq]))
            lq++;
        size_t m = lp < lq ? lp : lq;
        for (size_t i = 0; i < m; i++) {
            unsigned char x = to_lower(p[i]), y = to_lower(q[i]);
            if (x != y)
                return x < y ? -1 : 1;
        }
        if (lp != lq)
            return lp < lq ? -1 : 1;
        p += lp;
        q += lq;
        if (!*p || !*q)
            return (*p != 0) - (*q != 0);
        /* two digit runs, compared as integers: leading zeros do not count */
        while (*p == '0' && is_digit(p[1]))
            p++;
        while (*q == '0' && is_digit(q[1]))
            q++;
        size_t dp = 0, dq = 0;
        while (is_digit(p[dp]))
            dp++;
        while (is_digit(q[dq]))
            dq++;
        if (dp != dq)
            return dp < dq ? -1 : 1;
        int c = memcmp(p, q, dp);
        if (c)
            return c < 0 ? -1 : 1;
        p += dp;
        q += dq;
    }
}

int imagefolder_is_image_name(const char *name)
{
    /* os.path.splitext: the last dot starts the extension unless only dots
     * come before it (".jpg" and "..jpg" have none) */
    const char *dot = strrchr(name, '.');
    if (!dot)
        return 0;
    const char *s = name;
    while (s < dot && *s == '.')
        s++;
    if (s == dot)
        return 0;
    return strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0;
}

/* a string list that grows */
typedef struct {
    char **v;
    size_t n, cap;
} strlist;

static ml_status strlist_push(strlist *l, char *s)
{
    if (!s)
        return ml_fail(ML_ERR_NOMEM, "out of memory listing an image folder");
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            free(s);
            return ml_fail(ML_ERR_NOMEM, "out of memory listing an image folder (%zu entries)", l->n);
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return ML_OK;
}

static void strlist_free(strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static char *join3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = c ? strlen(c) : 0;
    char *s = malloc(la + lb + lc + 3);
    if (!s)
        return NULL;
    memcpy(s, a, la);
    s[la] = '/';
    memcpy(s + la + 1, b, lb);
    if (c) {
        s[la + 1 + lb] = '/';
        memcpy(s + la + 2 + lb, c, lc + 1);
    } else {
        s[la + 1 + lb] = '\0';
    }
    return s;
}

/* os.walk's test: a directory after following links; anything that cannot
 * be stat'ed (a dangling link) counts as a file, as it does for os.walk. */
static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int cmp_natural_str(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    int c = imagefolder_natural_cmp(x, y);
    return c ? c : strcmp(x, y);
}

static int cmp_natural_item(const void *a, const void *b)
{
    const imagefolder_item *x = a, *y = b;
    int c = imagefolder_natural_cmp(x->path, y->path);
    return c ? c : strcmp(x->path, y->path);
}

/* The names in dir (without . and ..). */
static ml_status list_dir(strlist *out, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return ml_fail(ML_ERR_IO, "cannot open folder '%s': %s", dir, strerror(errno));
    ml_status s = ML_OK;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno)
                s = ml_fail(ML_ERR_IO, "cannot read folder '%s': %s", dir, strerror(errno));
            break;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if ((s = strlist_push(out, strdup(e->d_name))) != ML_OK)
            break;
    }
    closedir(d);
    return s;
}

static ml_status scan(imagefolder *out, const char *root, size_t limit)
{
    struct stat st;
    if (stat(root, &st) != 0)
        return ml_fail(ML_ERR_IO, "cannot open image folder '%s': %s", root, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return ml_fail(ML_ERR_USAGE, "'%s' is not a folder (want root/<class>/<image>)", root);
    size_t rl = strlen(root);
    while (rl > 1 && root[rl - 1] == '/')
        rl--;
    out->root = strndup(root, rl);
    if (!out->root)
        return ml_fail(ML_ERR_NOMEM, "out of memory");

    strlist top = {0}, classes = {0};
    ml_status s = list_dir(&top, out->root);
    for (size_t i = 0; s == ML_OK && i < top.n; i++) {
        char *path = join3(out->root, top.v[i], NULL);
        if (!path) {
            s = ml_fail(ML_ERR_NOMEM, "out of memory");
        } else if (is_dir(path)) {
            s = strlist_push(&classes, strdup(top.v[i]));
        } else if (imagefolder_is_image_name(top.v[i])) {
            s = ml_fail(ML_ERR_USAGE,
                        "'%s': an image directly in the top folder; images go in class folders "
                        "root/<class>/ (timm would make it a class named '')",
                        path);
        }
        free(path);
    }
    strlist_free(&top);
    if (s == ML_OK && classes.n == 0)
        s = ml_fail(ML_ERR_USAGE, "'%s': no class sub-folders (want root/<class>/<image>)", out->root);
    if (s != ML_OK) {
        strlist_free(&classes);
        return s;
    }
    qsort(classes.v, classes.n, sizeof *classes.v, cmp_natural_str);
    out->classes = classes.v;
    out->n_classes = classes.n;

    size_t cap = 0;
    for (size_t c = 0; s == ML_OK && c < out->n_classes; c++) {
        char *dir = join3(out->root, out->classes[c], NULL);
        strlist names = {0};
        s = dir ? list_dir(&names, dir) : ml_fail(ML_ERR_NOMEM, "out of memory");
        size_t in_class = 0;
        for (size_t i = 0; s == ML_OK && i < names.n; i++) {
            char *path = join3(out->root, out->classes[c], names.v[i]);
            if (!path) {
                s = ml_fail(ML_ERR_NOMEM, "out of memory");
                break;
            }
            if (is_dir(path)) {
                s = ml_fail(ML_ERR_USAGE,
                            "'%s': a folder inside a class folder (timm would make '%s' a class of "
                            "its own); want root/<class>/<image>",
                            path, names.v[i]);
                free(path);
                break;
            }
            if (!imagefolder_is_image_name(names.v[i])) {
                free(path);
                continue;
            }
            if (out->n_items == cap) {
                size_t ncap = cap ? 2 * cap : 256;
                imagefolder_item *v = realloc(out->items, ncap * sizeof *v);
                if (!v) {
                    free(path);
                    s = ml_fail(ML_ERR_NOMEM, "out of memory listing '%s' (%zu images)", out->root,
                                out->n_items);
                    break;
                }
                out->items = v;
                cap = ncap;
            }
            out->items[out->n_items++] = (imagefolder_item){path, c};
            in_class++;
        }
        if (s == ML_OK && in_class == 0)
            s = ml_fail(ML_ERR_USAGE,
                        "'%s': class folder holds no .png, .jpg or .jpeg image (timm would drop the "
                        "class and renumber the ones after it)",
                        dir);
        strlist_free(&names);
        free(dir);
    }
    if (s != ML_OK)
        return s;
    /* timm sorts whole paths; the root is a common prefix ending in '/',
     * so comparing the full strings orders them as timm does */
    qsort(out->items, out->n_items, sizeof *out->items, cmp_natural_item);
    out->n_found = out->n_items;
    if (limit > 0 && limit < out->n_items) {
        for (size_t i = limit; i < out->n_items; i++)
            free(out->items[i].path);
        out->n_items = limit;
    }
    return ML_OK;
}

ml_status imagefolder_scan(imagefolder *out, const char *root, size_t limit)
{
    memset(out, 0, sizeof *out);
    ml_status s = scan(out, root, limit);
    if (s != ML_OK)
        imagefolder_free(out);
    return s;
}

void imagefolder_free(imagefolder *f)
{
    for (size_t i = 0; i < f->n_classes; i++)
        free(f->classes[i]);
    free(f->classes);
    for (size_t i = 0; i < f->n_items; i++)
        free(f->items[i].path);
    free(f->items);
    free(f->root);
    memset(f, 0, sizeof *f);
}
