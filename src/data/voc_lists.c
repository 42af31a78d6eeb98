/* The text lists of a VOC folder (voc.h): image ids and class names, from
 * bytes, so that fuzz harnesses can drive them. */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "data/voc.h"
#include "sys/internal.h"

void rb_voc_list_free(rb_voc_list *list)
{
    if (list == NULL)
        return;
    for (int64_t i = 0; list->items != NULL && i < list->count; i++)
        free(list->items[i]);
    free(list->items);
    free(list->lines);
    memset(list, 0, sizeof *list);
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Why `item` (len bytes, trimmed, not empty) cannot be one of `kind`, or
 * NULL. */
static const char *item_fault(const unsigned char *item, size_t len, rb_voc_list_kind kind)
{
    if (len > RB_VOC_MAX_NAME)
        return kind == RB_VOC_IDS ? "is longer than 200 bytes" : "is a class name longer than 200 bytes";
    for (size_t k = 0; k < len;) {
        size_t n;
        if (item[k] < 0x20 || item[k] == 0x7f)
            return item[k] == 0 ? "holds a NUL byte (is this a text file?)" : "holds a control character";
        if (kind == RB_VOC_IDS && item[k] == '/')
            return "holds a '/': an id names a file in JPEGImages/ and SegmentationClass/, without folder or "
                   "extension";
        if (kind == RB_VOC_IDS && is_space(item[k]))
            return "holds a space: write one id per line (a list of 'ID FLAG' lines is ImageSets/Main's "
                   "per-class format, not a segmentation list)";
        if ((n = rb_utf8_char(item + k, len - k)) == 0)
            return "is not well-formed UTF-8";
        k += n;
    }
    if (kind == RB_VOC_IDS && ((len == 1 && item[0] == '.') || (len == 2 && item[0] == '.' && item[1] == '.')))
        return "is '.' or '..', not a file name";
    return NULL;
}

typedef struct entry {
    const char *text;
    int64_t line;
} entry;

static int by_text_then_line(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    int c = strcmp(x->text, y->text);
    if (c != 0)
        return c;
    return (x->line > y->line) - (x->line < y->line);
}

/* Refuses an item listed twice, naming the earliest repeat. */
static rb_status check_unique(const rb_voc_list *list, rb_voc_list_kind kind, const char *what)
{
    entry *e;
    int64_t best = -1;
    if (list->count < 2)
        return RB_OK;
    e = malloc((size_t)list->count * sizeof *e);
    if (e == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory checking %s", what);
    for (int64_t i = 0; i < list->count; i++) {
        e[i].text = list->items[i];
        e[i].line = list->lines[i];
    }
    qsort(e, (size_t)list->count, sizeof *e, by_text_then_line);
    for (int64_t i = 1; i < list->count; i++)
        if (strcmp(e[i].text, e[i - 1].text) == 0 && (best < 0 || e[i].line < e[best].line))
            best = i;
    if (best >= 0) {
        /* the first line of that text: the entry the sort put before the repeat's group start */
        int64_t first = best;
        while (first > 0 && strcmp(e[first - 1].text, e[best].text) == 0)
            first--;
        rb_status st = rb_error_set(RB_ERR_CORRUPT, "%s: line %" PRId64 " repeats %s '%s' of line %" PRId64
                                    "; list each %s once",
                                    what, e[best].line, kind == RB_VOC_IDS ? "id" : "class name", e[best].text,
                                    e[first].line, kind == RB_VOC_IDS ? "image" : "class");
        free(e);
        return st;
    }
    free(e);
    return RB_OK;
}

rb_status rb_voc_parse_list(const void *bytes, size_t size, rb_voc_list_kind kind, const char *what,
                            rb_voc_list *out)
{
    const unsigned char *b = bytes, *end;
    int64_t line = 0, cap = 0, blank_line = 0;
    rb_status st = RB_OK;

    if (out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_voc_parse_list: out is NULL");
    memset(out, 0, sizeof *out);
    if (what == NULL)
        what = kind == RB_VOC_IDS ? "id list" : "class list";
    if ((bytes == NULL && size > 0) || (kind != RB_VOC_IDS && kind != RB_VOC_CLASSES && kind != RB_CLASS_NAMES))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_voc_parse_list: %s: bad bytes or kind", what);
    end = b + size;
    if (size >= 3 && b[0] == 0xef && b[1] == 0xbb && b[2] == 0xbf)
        b += 3;
    while (b < end) {
        const unsigned char *nl = memchr(b, '\n', (size_t)(end - b));
        const unsigned char *stop = nl ? nl : end, *p = b, *q = stop;
        const char *fault;
        line++;
        b = nl ? nl + 1 : end;
        while (p < q && is_space(*p))
            p++;
        while (q > p && is_space(q[-1]))
            q--;
        if (p == q) {
            if (blank_line == 0)
                blank_line = line;
            continue;
        }
        if (kind != RB_VOC_IDS && blank_line != 0) {
            st = rb_error_set(RB_ERR_CORRUPT,
                              "%s: line %" PRId64 " is blank, but class names follow it: line N names class "
                              "N - 1, so remove the blank line",
                              what, blank_line);
            goto fail;
        }
        blank_line = 0;
        if ((fault = item_fault(p, (size_t)(q - p), kind)) != NULL) {
            st = rb_error_set(RB_ERR_CORRUPT, "%s: line %" PRId64 " %s", what, line, fault);
            goto fail;
        }
        if (kind == RB_VOC_CLASSES && out->count >= RB_VOC_MAX_CLASSES) {
            st = rb_error_set(RB_ERR_CORRUPT,
                              "%s names more than %d classes: masks hold 8-bit class ids and 255 means "
                              "ignore",
                              what, RB_VOC_MAX_CLASSES);
            goto fail;
        }
        if (kind == RB_CLASS_NAMES && out->count >= RB_CLASS_NAMES_MAX) {
            st = rb_error_set(RB_ERR_CORRUPT, "%s names more than %d classes", what, RB_CLASS_NAMES_MAX);
            goto fail;
        }
        if (out->count == cap) {
            int64_t grown = cap ? 2 * cap : 64;
            char **items = realloc(out->items, (size_t)grown * sizeof *items);
            int64_t *lines;
            if (items == NULL)
                goto oom;
            out->items = items;
            lines = realloc(out->lines, (size_t)grown * sizeof *lines);
            if (lines == NULL)
                goto oom;
            out->lines = lines;
            cap = grown;
        }
        out->items[out->count] = malloc((size_t)(q - p) + 1);
        if (out->items[out->count] == NULL)
            goto oom;
        memcpy(out->items[out->count], p, (size_t)(q - p));
        out->items[out->count][q - p] = '\0';
        out->lines[out->count] = line;
        out->count++;
    }
    if (out->count == 0) {
        st = rb_error_set(RB_ERR_CORRUPT, kind == RB_VOC_IDS ? "%s names no image: write one id per line"
                          : kind == RB_VOC_CLASSES ? "%s names no class: write one name per line, "
                                                     "background first"
                                                   : "%s names no class: write one name per line, class 0 first",
                          what);
        goto fail;
    }
    if ((st = check_unique(out, kind, what)) != RB_OK)
        goto fail;
    return RB_OK;
oom:
    st = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory reading %s", what);
fail:
    rb_voc_list_free(out);
    return st;
}
