/* coco-eval: box AP of a COCO results file against a COCO annotation file,
 * exactly as pycocotools computes it (robusta/coco.h), printed in
 * COCOeval.summarize()'s layout or as JSON. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include <json-c/json.h>

#include <robusta/coco.h>

#include "cli/cli.h"
#include "sys/json.h"

static const rb_param_spec coco_options[] = {
    {"gt", RB_PARAM_STRING, NULL, NULL, 0, "ground truth: a COCO annotation file (instances_*.json)"},
    {"dt", RB_PARAM_STRING, NULL, NULL, 0,
     "detections: a COCO results file (a JSON array of image_id, category_id, bbox, score)"},
    {"json", RB_PARAM_BOOL, "false", NULL, 0, "print the 12 numbers and each category's AP as JSON"},
    {NULL}};

/* One line of COCOeval.summarize(): ' {:<18} {} @[ IoU={:<9} |
 * area={:>6s} | maxDets={:>3d} ] = {:0.3f}'. */
static void print_summary(const double stats[RB_COCO_STATS])
{
    static const struct {
        int ap;
        const char *iou, *area;
        int max_dets;
    } line[RB_COCO_STATS] = {
        {1, "0.50:0.95", "all", 100},   {1, "0.50", "all", 100},       {1, "0.75", "all", 100},
        {1, "0.50:0.95", "small", 100}, {1, "0.50:0.95", "medium", 100}, {1, "0.50:0.95", "large", 100},
        {0, "0.50:0.95", "all", 1},     {0, "0.50:0.95", "all", 10},   {0, "0.50:0.95", "all", 100},
        {0, "0.50:0.95", "small", 100}, {0, "0.50:0.95", "medium", 100}, {0, "0.50:0.95", "large", 100},
    };
    for (int i = 0; i < RB_COCO_STATS; i++)
        printf(" %-18s %s @[ IoU=%-9s | area=%6s | maxDets=%3d ] = %0.3f\n",
               line[i].ap ? "Average Precision" : "Average Recall", line[i].ap ? "(AP)" : "(AR)", line[i].iou,
               line[i].area, line[i].max_dets, stats[i]);
}

static int print_json(const rb_coco *gt, const double stats[RB_COCO_STATS], const double *category_ap)
{
    json_object *root = json_object_new_object(), *cats = json_object_new_array();
    for (int i = 0; i < RB_COCO_STATS; i++)
        json_object_object_add(root, rb_coco_stat_name(i), rb_json_number(stats[i]));
    for (size_t k = 0; k < gt->n_categories; k++) {
        json_object *c = json_object_new_object();
        json_object_object_add(c, "id", json_object_new_int64(gt->categories[k].id));
        json_object_object_add(c, "name",
                               gt->categories[k].name ? json_object_new_string(gt->categories[k].name) : NULL);
        json_object_object_add(c, "AP", rb_json_number(category_ap[k]));
        json_object_array_add(cats, c);
    }
    json_object_object_add(root, "categories", cats);
    printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(root);
    return RB_EXIT_OK;
}

static int run_coco_eval(const cli_command *self, rb_params *o, int argc, char **args)
{
    const char *gt_path = cli_opt_string(o, "gt"), *dt_path = cli_opt_string(o, "dt");
    rb_coco *gt = NULL;
    rb_coco_detection *dt = NULL;
    size_t n = 0;
    double stats[RB_COCO_STATS], *category_ap = NULL;
    rb_status s;
    int code;

    if (argc > 0) {
        fprintf(stderr, "robusta %s: takes no positional arguments (got '%s'); give files with --gt and --dt\n",
                self->name, args[0]);
        return RB_EXIT_USAGE;
    }
    if (gt_path == NULL || dt_path == NULL) {
        fprintf(stderr, "robusta %s: --%s FILE is needed (robusta %s --help lists the options)\n", self->name,
                gt_path == NULL ? "gt" : "dt", self->name);
        return RB_EXIT_USAGE;
    }
    s = rb_coco_load(&gt, gt_path);
    if (s == RB_OK)
        s = rb_coco_load_detections(gt, dt_path, &dt, &n);
    if (s == RB_OK && (category_ap = malloc((gt->n_categories ? gt->n_categories : 1) * sizeof *category_ap)) == NULL)
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory");
    if (s == RB_OK)
        s = rb_coco_evaluate(gt, dt, n, stats, category_ap);
    if (s != RB_OK)
        code = cli_fail(self->name, s);
    else if (cli_opt_bool(o, "json"))
        code = print_json(gt, stats, category_ap);
    else {
        print_summary(stats);
        code = RB_EXIT_OK;
    }
    free(category_ap);
    free(dt);
    rb_coco_destroy(gt);
    return code;
}

const cli_command cli_coco_eval_command = {
    .name = "coco-eval",
    .summary = "box AP of COCO detections, exactly as pycocotools computes it",
    .usage = "--gt instances.json --dt detections.json [--json]",
    .description =
        "Evaluates detections in COCO's results format (a JSON array of {image_id, category_id,\n"
        "bbox: [x, y, width, height], score}) against a COCO annotation file, as pycocotools'\n"
        "COCOeval(iouType='bbox') does: IoU thresholds .50:.05:.95, 101 recall points, at most\n"
        "1/10/100 detections per image and category, areas small/medium/large by the ground\n"
        "truth's `area` field, crowd regions ignored. Prints COCOeval.summarize()'s 12 lines,\n"
        "or with --json an object with AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm,\n"
        "ARl (-1: nothing to measure, e.g. no small objects) and each category's AP.",
    .options = coco_options,
    .run = run_coco_eval,
};
