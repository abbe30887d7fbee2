/* An image folder in timm's order (timm.data.readers.reader_image_folder):
 *
 *   root/<class>/<image>     one sub-folder per class
 *
 *   - classes are the sub-folder names sorted by timm's natural_key, class
 *     index = position in that order;
 *   - images are the files whose extension, lower-cased, is .png, .jpg or
 *     .jpeg (timm's IMG_EXTENSIONS; the extension as os.path.splitext finds
 *     it, so ".jpg" alone is a name without one), sorted by natural_key of
 *     their path; other files are skipped, as timm skips them;
 *   - natural_key lower-cases the path and compares digit runs as integers
 *     ("img9" < "img10"), the rest as text. Sorting whole paths means the
 *     images of a class whose name extends another's can come first:
 *     "cat2/x.jpg" splits into "cat", 2, "/x.jpg", and "cat" sorts before
 *     "cat/y.jpg", while the class order has "cat" (0) before "cat2" (1).
 *     timm does exactly this; labels are right either way.
 *   - symbolic links are followed (os.walk(followlinks=True)).
 *
 * Where timm would silently give another class numbering, this refuses with
 * ML_ERR_USAGE naming the path: a folder with no class sub-folders, a class
 * folder with no images (timm drops it and renumbers the classes after it),
 * an image directly in the root (timm makes a class named ''), a folder inside
 * a class folder (timm makes its leaf name a class of its own). A root that
 * cannot be opened or read is ML_ERR_IO.
 *
 * Two paths with equal natural keys ("a01.jpg", "a1.jpg") keep os.walk's
 * order in timm, which depends on the file system; here plain byte order
 * breaks the tie. Lower-casing is ASCII only (timm's is Unicode). */
#ifndef MIXERLAB_DATA_IMAGEFOLDER_H
#define MIXERLAB_DATA_IMAGEFOLDER_H

#include "base/common.h"

typedef struct {
    char *path;   /* root/class/file as given (root without a trailing '/') */
    size_t label; /* index into classes */
} imagefolder_item;

typedef struct {
    char *root;
    char **classes;   /* [n_classes] names, in class-index order */
    size_t n_classes;
    imagefolder_item *items; /* [n_items] in timm's order */
    size_t n_items;
    size_t n_found; /* images found; n_items = min(n_found, limit) */
} imagefolder;

/* Lists root. limit > 0 keeps the first limit images of timm's order (every
 * class is still listed, so labels stay those of the whole folder); 0 keeps
 * all. On failure *out is empty. */
ml_status imagefolder_scan(imagefolder *out, const char *root, size_t limit);
void imagefolder_free(imagefolder *f);

/* timm's natural_key order: < 0, 0, > 0 as a sorts before, with, after b
 * (0 only for identical keys, e.g. "a01" and "a1"). */
int imagefolder_natural_cmp(const char *a, const char *b);

/* 1 when timm would take name as an image: .png .jpg .jpeg, any case. */
int imagefolder_is_image_name(const char *name);

#endif
