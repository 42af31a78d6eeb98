/* Drawing text and marks into SVG (report_svg.c's grid plot and
 * report_curves.c's training curves): escaping, the palette, and text
 * sized to fit, since SVG text has no layout of its own. */
#include "config.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "experiment/report_internal.h"

const char *const REPORT_COLORS[REPORT_N_COLORS] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                     "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

void report_put_escaped(report_text *t, const char *s)
{
    while (*s) {
        size_t plain = strcspn(s, "&<>\""); /* copied as one piece: a page holds whole config.json files */
        if (plain > 0)
            report_put(t, "%.*s", (int)plain, s);
        s += plain;
        switch (*s) {
        case '&': report_put(t, "&amp;"); break;
        case '<': report_put(t, "&lt;"); break;
        case '>': report_put(t, "&gt;"); break;
        case '"': report_put(t, "&quot;"); break;
        default: continue; /* the end */
        }
        s++;
    }
}

/* ------------------------------------------------------------ text that fits */

/* DejaVu Sans's advance width of a character, in ems (bold: 10% wider). */
static double char_em(unsigned char c)
{
    static const double lower[26] = {0.613, 0.635, 0.550, 0.635, 0.615, 0.352, 0.635, 0.634, 0.278,
                                     0.278, 0.579, 0.278, 0.974, 0.634, 0.612, 0.635, 0.635, 0.411,
                                     0.521, 0.392, 0.634, 0.592, 0.818, 0.592, 0.592, 0.525};
    static const double upper[26] = {0.684, 0.686, 0.698, 0.770, 0.632, 0.575, 0.775, 0.752, 0.295,
                                     0.295, 0.656, 0.557, 0.863, 0.748, 0.787, 0.603, 0.787, 0.695,
                                     0.635, 0.611, 0.732, 0.684, 0.989, 0.685, 0.611, 0.685};
    if (c >= 'a' && c <= 'z')
        return lower[c - 'a'];
    if (c >= 'A' && c <= 'Z')
        return upper[c - 'A'];
    if (c >= '0' && c <= '9')
        return 0.636;
    switch (c) {
    case ' ': case '.': case ',': return 0.318;
    case ':': case ';': case '/': case '!': case '|': case '\'': return 0.337;
    case '-': return 0.361;
    case '(': case ')': case '[': case ']': return 0.390;
    case '%': return 0.950;
    case '&': return 0.780;
    case '<': case '>': case '=': case '+': return 0.838;
    default: return 0.650; /* the rest of ASCII, and each character beyond (its first byte) */
    }
}

/* The estimated width in px of `s` (UTF-8) at `size` px. */
double report_text_width(const char *s, double size, bool bold)
{
    double em = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xc0) != 0x80) /* one advance per character, not per byte */
            em += char_em(*p);
    return em * size * (bold ? 1.10 : 1.0) * TEXT_SLACK;
}

/* The font size at most `size` (and at least MIN_TEXT_SIZE) at which `s`
 * is at most `room` px wide. */
double report_fitting_size(const char *s, double size, bool bold, double room)
{
    double w = report_text_width(s, size, bold);
    if (w <= room)
        return size;
    return fmax(MIN_TEXT_SIZE, floor(size * room / w * 10) / 10);
}

/* `s` at `size`, cut to `room` px with an ellipsis if it is still wider. */
void report_put_fitted(report_text *t, const char *s, double size, bool bold, double room)
{
    size_t n = strlen(s);
    char *cut;
    if (report_text_width(s, size, bold) <= room || (cut = strdup(s)) == NULL) {
        report_put_escaped(t, s);
        return;
    }
    while (n > 0) {
        do /* whole characters */
            n--;
        while (n > 0 && ((unsigned char)cut[n] & 0xc0) == 0x80);
        cut[n] = '\0';
        if (report_text_width(cut, size, bold) + report_text_width("\xe2\x80\xa6", size, bold) <= room)
            break;
    }
    report_put_escaped(t, cut);
    report_put(t, "\xe2\x80\xa6");
    free(cut);
}

/* A round tick step (1, 2 or 5 times a power of ten) giving about 5 ticks. */
double report_nice_step(double span)
{
    double raw = span / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

double report_title_size(const char *title, double *width)
{
    double size = fmax(TITLE_SIZE * 2 / 3, report_fitting_size(title, TITLE_SIZE, true, *width - 2 * TEXT_MARGIN));
    *width = fmax(*width, ceil(report_text_width(title, size, true) + 2 * TEXT_MARGIN));
    return size;
}

void report_svg_begin(report_text *t, double width, double height, const char *title, double title_size,
                      double title_y)
{
    report_put(t, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
               "font-family=\"sans-serif\" font-size=\"11\">\n", width, height, width, height);
    report_put(t, "<rect width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", width, height);
    if (title == NULL)
        return;
    report_put(t, "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\" font-size=\"%g\" font-weight=\"bold\">",
               width / 2, title_y, title_size);
    report_put_escaped(t, title);
    report_put(t, "</text>\n");
}
