/* What the grid file parser (grid_config.c) and the eps parser (grid_eps.c)
 * share. */
#ifndef ROBUSTA_GRID_INTERNAL_H
#define ROBUSTA_GRID_INTERNAL_H

#include <stddef.h>

/* 1 when s[0, len) is [+-]digits[.digits][e[+-]digits] with at least one
 * mantissa digit: what strtod takes minus nan, inf, hex and spaces. */
int grid_is_decimal(const char *s, size_t len);

#endif
