/* Small helpers shared across librobusta. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/status.h>

#include "sys/internal.h"

char *rb_strdup(const char *s)
{
    char *copy = strdup(s);
    if (copy == NULL)
        rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory copying a %zu-byte string", strlen(s));
    return copy;
}

const char *rb_format_count(char *buf, size_t size, unsigned long long n)
{
    char digits[32];
    size_t len, at = 0;
    if (size == 0)
        return buf;
    len = (size_t)snprintf(digits, sizeof digits, "%llu", n);
    for (size_t i = 0; i < len && at + 1 < size; i++) {
        if (i > 0 && (len - i) % 3 == 0) {
            buf[at++] = ',';
            if (at + 1 >= size)
                break;
        }
        buf[at++] = digits[i];
    }
    buf[at] = '\0';
    return buf;
}

size_t rb_utf8_char(const unsigned char *p, size_t avail)
{
    unsigned char c, lo = 0x80, hi = 0xbf;
    size_t len;
    if (avail == 0)
        return 0;
    c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (avail < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return len;
}

bool rb_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t len = rb_utf8_char(p + i, n - i);
        if (len == 0)
            return false;
        i += len;
    }
    return true;
}
