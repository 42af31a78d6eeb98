/* Training curves for robusta report: panels side by side, each a value
 * per epoch for a few series, with its own legend underneath (see
 * report_internal.h). Text is fitted as in the grid plot (report_draw.c). */
#include "config.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experiment/report_internal.h"

#define CURVE_W 380.0
#define CURVE_H 240.0
#define CURVE_TITLE_H 30.0 /* the figure's title */
#define CURVE_LEFT 58.0
#define CURVE_RIGHT 14.0
#define CURVE_TOP 26.0     /* the panel's title */
#define CURVE_BOTTOM 40.0  /* epoch ticks and the axis title */
#define CURVE_INSET 10.0   /* keeps the first and last epoch off the frame */
#define CURVE_LEGEND_ROW 16.0

/* The range of one axis over every finite value of a panel's series. */
static void range(const report_panel *p, bool x_axis, double *lo, double *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (size_t s = 0; s < p->n; s++)
        for (size_t i = 0; i < p->curves[s].n; i++) {
            double v = x_axis ? p->curves[s].x[i] : p->curves[s].y[i];
            if (isfinite(p->curves[s].y[i]) && isfinite(v)) {
                *lo = fmin(*lo, v);
                *hi = fmax(*hi, v);
            }
        }
}

static void put_panel(report_text *t, const report_panel *p, double x0, double y0, double x_lo, double x_hi)
{
    double left = x0 + CURVE_LEFT, top = y0 + CURVE_TOP;
    double w = CURVE_W - CURVE_LEFT - CURVE_RIGHT, h = CURVE_H - CURVE_TOP - CURVE_BOTTOM;
    double y_lo, y_hi, x_step, y_step, room;
    range(p, false, &y_lo, &y_hi);
    if (!(y_lo <= y_hi)) { /* nothing measured: an empty frame with its axes */
        y_lo = 0;
        y_hi = 1;
    }
    if (x_hi - x_lo < 1)
        x_hi = x_lo + 1;
    if (y_hi - y_lo < 1e-9 * fmax(1, fabs(y_hi)))
        y_lo -= 0.5, y_hi += 0.5;
    y_step = report_nice_step(y_hi - y_lo);
    y_lo = floor(y_lo / y_step) * y_step;
    y_hi = ceil(y_hi / y_step) * y_step;
    x_step = fmax(1, report_nice_step(x_hi - x_lo)); /* epochs are whole */
#define PX(v) (left + CURVE_INSET + ((v) - x_lo) / (x_hi - x_lo) * (w - 2 * CURVE_INSET))
#define PY(v) (top + (y_hi - (v)) / (y_hi - y_lo) * h)
    room = CURVE_W - 2 * TEXT_MARGIN;
    {
        double size = report_fitting_size(p->title, PANEL_TITLE_SIZE, true, room);
        report_put(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"%g\" font-weight=\"bold\">",
                   x0 + CURVE_W / 2, y0 + 17, size);
        report_put_fitted(t, p->title, size, true, room);
        report_put(t, "</text>\n");
    }
    for (double v = y_lo; v <= y_hi + y_step / 2; v += y_step) {
        report_put(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", left, PY(v),
                   left + w, PY(v));
        report_put(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", left - 5, PY(v) + 4,
                   fabs(v) < y_step / 1e6 ? 0.0 : v);
    }
    for (double v = ceil(x_lo / x_step) * x_step; v <= x_hi + 1e-9; v += x_step) {
        report_put(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n", PX(v), top + h,
                   PX(v), top + h + 4);
        report_put(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", PX(v), top + h + 16, v);
    }
    report_put(t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n",
               left, top, w, h);
    report_put(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">epoch</text>\n", left + w / 2, top + h + 32);
    report_put(t, "<text transform=\"rotate(-90 %.1f %.1f)\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
               "font-size=\"%g\">", x0 + 14, top + h / 2, x0 + 14, top + h / 2,
               report_fitting_size(p->y_label, TEXT_SIZE, false, h));
    report_put_fitted(t, p->y_label, report_fitting_size(p->y_label, TEXT_SIZE, false, h), false, h);
    report_put(t, "</text>\n");

    for (size_t s = 0; s < p->n; s++) {
        const report_curve *c = &p->curves[s];
        const char *color = REPORT_COLORS[c->color % REPORT_N_COLORS];
        bool open = false;
        for (size_t i = 0; i < c->n; i++) { /* a line through each run of measured epochs */
            bool ok = isfinite(c->y[i]) && isfinite(c->x[i]);
            if (ok && !open)
                report_put(t, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\"%s points=\"", color,
                           c->dashed ? " stroke-dasharray=\"4 3\"" : "");
            if (ok)
                report_put(t, "%s%.1f,%.1f", open ? " " : "", PX(c->x[i]), PY(c->y[i]));
            if (open && !ok)
                report_put(t, "\"/>\n");
            open = ok;
        }
        if (open)
            report_put(t, "\"/>\n");
        if (c->n <= 60) /* markers show epochs measured alone (an evaluation every k epochs) */
            for (size_t i = 0; i < c->n; i++)
                if (isfinite(c->y[i]) && isfinite(c->x[i]))
                    report_put(t, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", PX(c->x[i]),
                               PY(c->y[i]), color);
    }
#undef PX
#undef PY
    for (size_t s = 0; s < p->n; s++) {
        double y = y0 + CURVE_H + CURVE_LEGEND_ROW * (double)s + CURVE_LEGEND_ROW / 2;
        const report_curve *c = &p->curves[s];
        double label_room = CURVE_W - CURVE_LEFT - 28 - TEXT_MARGIN;
        report_put(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s/>\n",
                   left, y, left + 22, y, REPORT_COLORS[c->color % REPORT_N_COLORS],
                   c->dashed ? " stroke-dasharray=\"4 3\"" : "");
        report_put(t, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%g\">", left + 28, y + 4,
                   report_fitting_size(c->label, TEXT_SIZE, false, label_room));
        report_put_fitted(t, c->label, report_fitting_size(c->label, TEXT_SIZE, false, label_room), false,
                          label_room);
        report_put(t, "</text>\n");
    }
}

rb_status report_curves_svg(report_text *t, const char *title, const report_panel *panels, size_t n_panels)
{
    size_t legend = 0;
    double width = CURVE_W * (double)(n_panels ? n_panels : 1), height, title_size = TITLE_SIZE, y0;
    for (size_t i = 0; i < n_panels; i++)
        legend = panels[i].n > legend ? panels[i].n : legend;
    y0 = title != NULL ? CURVE_TITLE_H : 4;
    height = y0 + CURVE_H + CURVE_LEGEND_ROW * (double)legend + 8;
    if (title != NULL)
        title_size = report_title_size(title, &width);
    report_svg_begin(t, width, height, title, title_size, 20);
    {
        /* one epoch axis for the figure: a value measured only at the end sits at the end */
        double x_lo = INFINITY, x_hi = -INFINITY;
        for (size_t i = 0; i < n_panels; i++) {
            double lo, hi;
            range(&panels[i], true, &lo, &hi);
            x_lo = fmin(x_lo, lo);
            x_hi = fmax(x_hi, hi);
        }
        if (!(x_lo <= x_hi))
            x_lo = 1, x_hi = 2;
        for (size_t i = 0; i < n_panels; i++)
            put_panel(t, &panels[i], CURVE_W * (double)i, y0, x_lo, x_hi);
    }
    report_put(t, "</svg>\n");
    return t->failed ? rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory drawing training curves") : RB_OK;
}
