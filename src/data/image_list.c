/* Image lists (image_list.h): the parser of "PATH LABEL" lines, on its
 * own so that fuzz harnesses and tests compile it in. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image_list.h"
#include "sys/internal.h"

void rb_image_list_free(rb_image_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->count; i++)
        free(list->paths[i]);
    free(list->paths);
    free(list->labels);
    free(list->lines);
    memset(list, 0, sizeof *list);
}

static bool blank(char c)
{
    return c == ' ' || c == '\t';
}

/* The fault of a path, or NULL when it is acceptable. */
static const char *path_fault(const char *p, size_t n)
{
    if (n > RB_IMAGE_LIST_MAX_PATH)
        return "the path is longer than 1024 bytes";
    if (p[0] == '/')
        return "the path is absolute; paths are relative to the list's folder";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
            return "the path holds a control character";
    /* ".." as a whole part, anywhere */
    for (size_t i = 0; i < n; i++) {
        const bool starts = i == 0 || p[i - 1] == '/';
        if (starts && i + 2 <= n && p[i] == '.' && p[i + 1] == '.' && (i + 2 == n || p[i + 2] == '/'))
            return "the path leaves the list's folder ('..')";
    }
    return NULL;
}

rb_status rb_image_list_parse(const void *bytes, size_t size, const char *what, rb_image_list *out)
{
    const char *text = bytes, *end = text + size;
    size_t room = 0;
    int64_t line = 0;
    rb_status st = RB_OK;
    memset(out, 0, sizeof *out);
    if (memchr(text, '\0', size) != NULL)
        return rb_error_set(RB_ERR_CORRUPT, "%s holds a NUL byte: not a text list of \"path label\" lines", what);
    while (text < end && st == RB_OK) {
        const char *nl = memchr(text, '\n', (size_t)(end - text));
        const char *a = text, *b = nl != NULL ? nl : end, *word;
        char *path;
        int64_t label = 0;
        const char *fault;
        text = nl != NULL ? nl + 1 : end;
        line++;
        if (b > a && b[-1] == '\r')
            b--;
        while (a < b && blank(*a))
            a++;
        while (b > a && blank(b[-1]))
            b--;
        if (a == b)
            continue;
        for (word = b; word > a && !blank(word[-1]); word--)
            ;
        if (word == a) {
            st = rb_error_set(RB_ERR_CORRUPT, "%s line %" PRId64 ": expected \"path label\", found one word", what,
                              line);
            break;
        }
        for (const char *c = word; c < b; c++) {
            if (*c < '0' || *c > '9') {
                st = rb_error_set(RB_ERR_CORRUPT,
                                  "%s line %" PRId64 ": the label '%.*s' is not a number (labels are 0, 1, 2 ...)",
                                  what, line, (int)(b - word > 40 ? 40 : b - word), word);
                break;
            }
            label = label * 10 + (*c - '0');
            if (label >= RB_IMAGE_LIST_MAX_CLASSES) {
                st = rb_error_set(RB_ERR_CORRUPT, "%s line %" PRId64 ": label %.*s is over the %d classes a list "
                                  "may have", what, line, (int)(b - word > 40 ? 40 : b - word), word,
                                  RB_IMAGE_LIST_MAX_CLASSES);
                break;
            }
        }
        if (st != RB_OK)
            break;
        b = word;
        while (b > a && blank(b[-1]))
            b--;
        if ((fault = path_fault(a, (size_t)(b - a))) != NULL) {
            st = rb_error_set(RB_ERR_CORRUPT, "%s line %" PRId64 ": %s", what, line, fault);
            break;
        }
        if (out->count == room) {
            size_t grown = room ? 2 * room : 256;
            char **paths = realloc(out->paths, grown * sizeof *paths);
            int64_t *labels = paths ? realloc(out->labels, grown * sizeof *labels) : NULL;
            int64_t *lines = labels ? realloc(out->lines, grown * sizeof *lines) : NULL;
            if (paths != NULL)
                out->paths = paths;
            if (labels != NULL)
                out->labels = labels;
            if (lines == NULL) {
                st = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory reading %s", what);
                break;
            }
            out->lines = lines;
            room = grown;
        }
        if ((path = malloc((size_t)(b - a) + 1)) == NULL) {
            st = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory reading %s", what);
            break;
        }
        memcpy(path, a, (size_t)(b - a));
        path[b - a] = '\0';
        out->paths[out->count] = path;
        out->labels[out->count] = label;
        out->lines[out->count] = line;
        out->count++;
    }
    if (st == RB_OK && out->count == 0)
        st = rb_error_set(RB_ERR_CORRUPT, "%s lists no images: expected lines \"path label\"", what);
    if (st != RB_OK)
        rb_image_list_free(out);
    return st;
}
