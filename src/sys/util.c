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
