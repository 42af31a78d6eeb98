/* A plot of grid results (see rb_grid_write_svg in robusta/grid.h): one
 * panel per target, the target's metric against source eps, a series per
 * arch and mode, and the robust target accuracy where it was measured. */
#include "config.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/grid.h>

#include "experiment/report_internal.h"
#include "sys/internal.h"

#define EPSILON "\xce\xb5"

#define PANEL_W 420.0
#define PANEL_H 300.0
#define TITLE_H 34.0     /* the main title, above the panels */
#define PLOT_LEFT 60.0   /* inside a panel: room for the y labels */
#define PLOT_RIGHT 16.0
#define PLOT_TOP 30.0    /* the panel title */
#define PLOT_BOTTOM 46.0 /* x tick labels and the x axis title */
#define X_INSET 14.0     /* keeps the first and last eps off the frame */
#define LEGEND_ROW 18.0

/* One line of a panel: an arch and mode's target metric, or its robust
 * target accuracy (dotted, hollow markers, the color of the metric's line). */
typedef struct series {
    const char *arch;
    int mode, robust;
    size_t color;
} series;

/* Series style: a color, dashed once the palette has been used up, dotted
 * for robust accuracy. */
static void put_stroke(report_text *t, const series *s)
{
    report_put(t, "stroke=\"%s\"%s", REPORT_COLORS[s->color % REPORT_N_COLORS],
               s->robust                       ? " stroke-dasharray=\"2 3\""
               : s->color >= REPORT_N_COLORS   ? " stroke-dasharray=\"5 3\""
                                               : "");
}

/* "ARCH MODE", or "ARCH MODE, robust accuracy under eval-attack". */
static void legend_label(const series *s, char *out, size_t size)
{
    snprintf(out, size, "%s %s%s", s->arch, MODES[s->mode], s->robust ? ", robust accuracy under eval-attack" : "");
}

static void put_marker(report_text *t, const series *s, double x, double y)
{
    if (s->robust)
        report_put(t, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"white\" stroke=\"%s\"/>\n", x, y,
                   REPORT_COLORS[s->color % REPORT_N_COLORS]);
    else
        report_put(t, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", x, y,
                   REPORT_COLORS[s->color % REPORT_N_COLORS]);
}

static void svg_panel(report_text *t, const rb_grid_result *rows, size_t n, scratch *sc, const series *ser,
                      size_t n_ser, size_t ne, double x_max, size_t g)
{
    const char *target = sc->targets[g];
    double x0 = (double)g * PANEL_W, left = x0 + PLOT_LEFT, top = TITLE_H + PLOT_TOP;
    double w = PANEL_W - PLOT_LEFT - PLOT_RIGHT, h = PANEL_H - PLOT_TOP - PLOT_BOTTOM;
    double lo = INFINITY, hi = -INFINITY, step, y_lo, y_hi;
    int n_ticks;

    /* y range: every mean ± sd of this panel, widened to round ticks */
    for (size_t s = 0; s < n_ser; s++)
        for (size_t e = 0; e < ne; e++) {
            report_stat st = target_stat(rows, n, sc->values, ser[s].arch, MODES[ser[s].mode], sc->eps[e].value, target,
                                         ser[s].robust);
            if (st.n == 0)
                continue;
            lo = fmin(lo, st.mean - st.sd);
            hi = fmax(hi, st.mean + st.sd);
        }
    if (!(lo <= hi)) {
        lo = 0;
        hi = 100;
    }
    if (hi - lo < 1e-6) {
        lo -= 1;
        hi += 1;
    }
    step = report_nice_step(hi - lo);
    y_lo = floor(lo / step) * step;
    y_hi = ceil(hi / step) * step;
    n_ticks = (int)lround((y_hi - y_lo) / step) + 1;

#define PX(eps) (x_max > 0 ? left + X_INSET + (eps) / x_max * (w - 2 * X_INSET) : left + w / 2)
#define PY(v) (top + (y_hi - (v)) / (y_hi - y_lo) * h)
    {
        /* centred over the plot, within the panel */
        double room = 2 * fmin(PLOT_LEFT + w / 2, PANEL_W - PLOT_LEFT - w / 2) - 2 * TEXT_MARGIN;
        double size = report_fitting_size(target, PANEL_TITLE_SIZE, true, room);
        report_put(t, "<g>\n<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"%g\" font-weight=\"bold\">",
                   x0 + PLOT_LEFT + w / 2, TITLE_H + 18, size);
        report_put_fitted(t, target, size, true, room);
        report_put(t, "</text>\n");
    }
    for (int k = 0; k < n_ticks; k++) {
        double v = y_lo + k * step, y = PY(v);
        report_put(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", left, y,
                   left + w, y);
        report_put(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", left - 6, y + 4, v);
    }
    report_put(t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n",
               left, top, w, h);
    {
        /* a label too close to the previous one (0 and 8/255) drops a row */
        double last_x = -INFINITY;
        int row = 0;
        for (size_t e = 0; e < ne; e++) {
            double x = PX(sc->eps[e].value);
            row = x - last_x < 30 && row == 0;
            last_x = x;
            report_put(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n", x, top + h, x,
                top + h + 4);
            report_put(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", x, top + h + 16 + 11 * row);
            report_put_escaped(t, sc->eps[e].text);
            report_put(t, "</text>\n");
        }
    }
    report_put(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">source " EPSILON "</text>\n", left + w / 2,
        top + h + 40);
    /* the y axis names the panel's metric: "target accuracy (%)", "target mIoU (%)" */
    report_put(t, "<text transform=\"rotate(-90 %.1f %.1f)\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
               x0 + 16, top + h / 2, x0 + 16, top + h / 2);
    report_put(t, "target ");
    report_put_escaped(t, rb_grid_metric_label(sc->metrics[g]));
    report_put(t, " (%%)</text>\n");

    for (size_t s = 0; s < n_ser; s++) {
        int any = 0;
        for (size_t e = 0; e < ne; e++) {
            report_stat st = target_stat(rows, n, sc->values, ser[s].arch, MODES[ser[s].mode], sc->eps[e].value, target,
                                         ser[s].robust);
            if (st.n == 0)
                continue;
            if (!any)
                report_put(t, "<polyline fill=\"none\" stroke-width=\"1.5\" ");
            if (!any)
                put_stroke(t, &ser[s]);
            report_put(t, "%s%.1f,%.1f", any ? " " : " points=\"", PX(sc->eps[e].value), PY(st.mean));
            any = 1;
        }
        if (any)
            report_put(t, "\"/>\n");
        for (size_t e = 0; e < ne; e++) {
            report_stat st = target_stat(rows, n, sc->values, ser[s].arch, MODES[ser[s].mode], sc->eps[e].value, target,
                                         ser[s].robust);
            double x = PX(sc->eps[e].value);
            if (st.n == 0)
                continue;
            if (st.n > 1) {
                report_put(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" ", x, PY(st.mean - st.sd), x,
                    PY(st.mean + st.sd));
                put_stroke(t, &ser[s]);
                report_put(t, "/>\n");
            }
            put_marker(t, &ser[s], x, PY(st.mean));
        }
    }
#undef PX
#undef PY
    report_put(t, "</g>\n");
}

rb_status report_grid_svg(report_text *t, const char *title, const rb_grid_result *rows, size_t n)
{
    scratch sc;
    series *ser = NULL;
    size_t n_ser = 0, ne = 0, panels;
    double x_max = 0, width, height, title_size = TITLE_SIZE;
    rb_status s;
    if ((s = report_check_rows(rows, n)) != RB_OK)
        return s;
    if ((s = scratch_make(&sc, rows, n)) != RB_OK)
        return s;
    if ((ser = malloc((4 * sc.n_archs + 1) * sizeof *ser)) == NULL) {
        scratch_free(&sc);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory plotting %zu results", n);
    }
    for (size_t a = 0; a < sc.n_archs; a++)
        for (int m = 0; m < 2; m++)
            for (size_t i = 0; i < n; i++)
                if (strcmp(rows[i].arch, sc.archs[a]) == 0 && strcmp(rows[i].mode, MODES[m]) == 0) {
                    ser[n_ser] = (series){sc.archs[a], m, 0, n_ser};
                    n_ser++;
                    break;
                }
    /* then the robust lines of those that have them */
    for (size_t k = 0, clean = n_ser; k < clean; k++)
        for (size_t i = 0; i < n; i++)
            if (strcmp(rows[i].arch, ser[k].arch) == 0 && strcmp(rows[i].mode, MODES[ser[k].mode]) == 0 &&
                rows[i].robust_attack[0] != '\0') {
                ser[n_ser++] = (series){ser[k].arch, ser[k].mode, 1, k};
                break;
            }
    ne = eps_values(rows, n, NULL, sc.eps);
    for (size_t e = 0; e < ne; e++)
        x_max = fmax(x_max, sc.eps[e].value);
    panels = sc.n_targets > 0 ? sc.n_targets : 1;
    width = PANEL_W * (double)panels;
    height = TITLE_H + PANEL_H + 10 + LEGEND_ROW * (double)n_ser + 10;
    /* the legend (under the panels, never over data) and the title set the
     * canvas's width where the panels are narrower: the title shrinks to
     * 2/3 of its size first */
    for (size_t i = 0; i < n_ser; i++) {
        char label[160]; /* an arch label (under 64), a mode and the robust note */
        legend_label(&ser[i], label, sizeof label);
        width = fmax(width, ceil(PLOT_LEFT + 32 + report_text_width(label, TEXT_SIZE, false) + TEXT_MARGIN));
    }
    if (title != NULL)
        title_size = report_title_size(title, &width);
    report_svg_begin(t, width, height, title, title_size, 22);
    if (n == 0)
        report_put(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">no results yet</text>\n", width / 2,
            TITLE_H + PANEL_H / 2);
    for (size_t g = 0; g < sc.n_targets; g++)
        svg_panel(t, rows, n, &sc, ser, n_ser, ne, x_max, g);
    for (size_t i = 0; i < n_ser; i++) {
        double y = TITLE_H + PANEL_H + 10 + LEGEND_ROW * (double)i + LEGEND_ROW / 2;
        report_put(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke-width=\"2\" ", PLOT_LEFT, y,
            PLOT_LEFT + 24, y);
        put_stroke(t, &ser[i]);
        report_put(t, "/>\n");
        put_marker(t, &ser[i], PLOT_LEFT + 12, y);
        report_put(t, "<text x=\"%.1f\" y=\"%.1f\">", PLOT_LEFT + 32, y + 4);
        {
            char label[160]; /* an arch label (under 64), a mode and the robust note */
            legend_label(&ser[i], label, sizeof label);
            report_put_escaped(t, label);
        }
        report_put(t, "</text>\n");
    }
    report_put(t, "</svg>\n");
    free(ser);
    scratch_free(&sc);
    return RB_OK;
}

rb_status rb_grid_write_svg(const char *path, const char *title, const rb_grid_result *rows, size_t n)
{
    report_text t = {0};
    rb_status s;
    if (path == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_grid_write_svg: NULL path");
    report_put(&t, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    if ((s = report_grid_svg(&t, title, rows, n)) != RB_OK) {
        free(t.data);
        return s;
    }
    return report_write_file(&t, path, path);
}

void report_plot_title(const char *name, const rb_grid_result *rows, size_t n, char *out, size_t size)
{
    const char *seen[16];
    size_t k = 0, used;
    for (size_t i = 0; i < n && k < 16; i++) {
        const char *label = rb_grid_metric_label(rows[i].metric);
        size_t j = 0;
        while (j < k && strcmp(seen[j], label) != 0)
            j++;
        if (j == k)
            seen[k++] = label;
    }
    if (k == 0)
        seen[k++] = "accuracy";
    used = (size_t)snprintf(out, size, "%s: target", name);
    for (size_t j = 0; j < k && used < size; j++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", j == 0 ? " " : j + 1 == k ? " and " : ", ",
                                 seen[j]);
    if (used < size)
        snprintf(out + used, size - used, " against source robustness (eps)");
}
