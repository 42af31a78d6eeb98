/* Small helpers shared across librobusta. */
#include "config.h"

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
