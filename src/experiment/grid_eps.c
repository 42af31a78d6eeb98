/* Eps values as grid files and labels write them (robusta/grid.h,
 * rb_grid_parse_eps): a decimal or a fraction such as 8/255, checked by
 * hand because strtod takes far more than a grid file should. */
#include "config.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/grid.h>

#include "experiment/grid_internal.h"
#include "sys/internal.h"

/* [+-]digits[.digits][e[+-]digits], at least one mantissa digit. */
int grid_is_decimal(const char *s, size_t len)
{
    size_t i = 0, digits = 0;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        i++;
    for (; i < len && isdigit((unsigned char)s[i]); i++)
        digits++;
    if (i < len && s[i] == '.')
        for (i++; i < len && isdigit((unsigned char)s[i]); i++)
            digits++;
    if (digits == 0)
        return 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        size_t exp_digits = 0;
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        for (; i < len && isdigit((unsigned char)s[i]); i++)
            exp_digits++;
        if (exp_digits == 0)
            return 0;
    }
    return i == len;
}

rb_status rb_grid_parse_eps(const char *text, double *out)
{
    char buf[64], *slash;
    size_t n = 0;
    double num, den = 1;
    if (text == NULL || out == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_grid_parse_eps: NULL argument");
    for (const char *c = text; *c; c++) {
        if (*c == ' ' || *c == '\t')
            continue;
        if (n + 1 >= sizeof buf)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "'%.40s...' is too long for an eps", text);
        buf[n++] = *c;
    }
    buf[n] = '\0';
    slash = strchr(buf, '/');
    /* Checked by hand first: strtod would also take "nan", "inf", hex and
     * leading spaces. */
    if (slash == NULL ? !grid_is_decimal(buf, n)
                      : !grid_is_decimal(buf, (size_t)(slash - buf)) || !grid_is_decimal(slash + 1, strlen(slash + 1)))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "'%s' is not a number (expected e.g. 0.5 or 8/255)", text);
    if (buf[0] == '-' || (slash != NULL && slash[1] == '-'))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "'%s' is negative (eps must be >= 0)", text);
    num = strtod(buf, NULL);
    if (slash != NULL)
        den = strtod(slash + 1, NULL);
    if (den == 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "'%s' divides by zero", text);
    if (!isfinite(num) || !isfinite(den) || !isfinite(num / den))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "'%s' is not a finite number", text);
    *out = num / den;
    return RB_OK;
}
