/* Predictions written out (robusta/train.h, rb_infer_split): an evaluation
 * whose decoded predictions also go to files, one PNG mask per image for a
 * segmentation model, one CSV line per image for a classifier, one COCO
 * results file for a detector. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/image.h"
#include "experiment/train_internal.h"
#include "sys/internal.h"

typedef struct infer_out {
    const char *dir;
    int64_t classes;
    uint8_t palette[256][3];
    uint8_t *pixels; /* one mask at its source size */
    size_t pixels_size;
    rb_atomic_file csv; /* predictions.csv, or the detections' JSON */
    bool csv_open;
    bool boxes;         /* a detector: `dir` is the JSON file to write */
    int64_t written;    /* detections written so far */
} infer_out;

/* The file name of example `index`: its name in the dataset, or its index. */
static void example_name(const rb_split *split, int64_t index, char *buf, size_t size)
{
    const char *name = rb_split_example_name(split, index);
    if (name != NULL)
        snprintf(buf, size, "%s", name);
    else
        snprintf(buf, size, "%06" PRId64, index);
}

/* A mask of h x w at the source size sh x sw by nearest neighbour at pixel
 * centres (source pixel y reads floor((y + 0.5) * h / sh)), the rule the
 * split uses for masks. */
static void resize_nearest(const int32_t *mask, int64_t h, int64_t w, uint8_t *out, int64_t sh, int64_t sw)
{
    for (int64_t y = 0; y < sh; y++) {
        int64_t my = (2 * y + 1) * h / (2 * sh);
        for (int64_t x = 0; x < sw; x++) {
            int64_t mx = (2 * x + 1) * w / (2 * sw);
            out[y * sw + x] = (uint8_t)mask[my * w + mx];
        }
    }
}

static rb_status write_masks(infer_out *o, const rb_split *split, int64_t first, int64_t rows, const rb_predictions *p)
{
    const int64_t h = p->mask_height, w = p->mask_width;
    char name[512], path[4096 + 600];
    rb_status s;
    if (o->classes > 256)
        return rb_error_set(RB_ERR_UNSUPPORTED, "infer: %" PRId64 " classes do not fit an 8-bit PNG mask",
                            o->classes);
    for (int64_t r = 0; r < rows; r++) {
        int64_t sh = 0, sw = 0;
        rb_split_example_source_size(split, first + r, &sh, &sw);
        if ((size_t)(sh * sw) > o->pixels_size) {
            free(o->pixels);
            o->pixels_size = (size_t)(sh * sw);
            if ((o->pixels = malloc(o->pixels_size)) == NULL) {
                o->pixels_size = 0;
                return rb_error_set(RB_ERR_OUT_OF_MEMORY, "infer: out of memory for a %" PRId64 " x %" PRId64
                                                          " mask",
                                    sh, sw);
            }
        }
        resize_nearest(p->masks + r * h * w, h, w, o->pixels, sh, sw);
        example_name(split, first + r, name, sizeof name);
        snprintf(path, sizeof path, "%s/%s.png", o->dir, name);
        if ((s = rb_image_write_png(path, o->pixels, sh, sw, 1, (const uint8_t(*)[3])o->palette, 256)) != RB_OK)
            return s;
    }
    return RB_OK;
}

static rb_status write_labels(infer_out *o, const rb_split *split, int64_t first, int64_t rows, const rb_predictions *p)
{
    char path[4096 + 32], name[512];
    rb_status s;
    if (!o->csv_open) {
        snprintf(path, sizeof path, "%s/predictions.csv", o->dir);
        if ((s = rb_atomic_file_open(&o->csv, path)) != RB_OK)
            return s;
        o->csv_open = true;
        fprintf(o->csv.file, "image,label,predicted\n");
    }
    for (int64_t r = 0; r < rows; r++) {
        example_name(split, first + r, name, sizeof name);
        fprintf(o->csv.file, "%s,%" PRId64 ",%" PRId64 "\n", name, rb_split_labels(split)[first + r], p->labels[r]);
    }
    return RB_OK;
}

/* COCO's results format: one object per detection, in the image's own
 * pixels (the model's boxes scaled back to rb_split_example_source_size)
 * and the dataset's image and category ids (rb_split_example_source_id,
 * rb_split_class_source_id; the example index and the class where it has
 * none). Floats with 9 significant digits read back to the same float. */
static rb_status write_boxes(infer_out *o, const rb_split *split, int64_t first, int64_t rows, const rb_predictions *p)
{
    int ch, h, w;
    rb_split_shape(split, &ch, &h, &w);
    for (int64_t r = 0; r < rows; r++) {
        const int64_t index = first + r, id = rb_split_example_source_id(split, index);
        int64_t sh = 0, sw = 0;
        rb_split_example_source_size(split, index, &sh, &sw);
        const double fx = (double)sw / (double)w, fy = (double)sh / (double)h;
        for (int64_t b = 0; b < p->box_counts[r]; b++) {
            const rb_box *box = &p->boxes[r * p->max_boxes + b];
            const double x1 = box->x1 * fx, y1 = box->y1 * fy, x2 = box->x2 * fx, y2 = box->y2 * fy;
            fprintf(o->csv.file,
                    "%s{\"image_id\": %" PRId64 ", \"category_id\": %" PRId64
                    ", \"bbox\": [%.9g, %.9g, %.9g, %.9g], \"score\": %.9g}",
                    o->written == 0 ? "\n" : ",\n", id >= 0 ? id : index, rb_split_class_source_id(split, box->label),
                    (double)(float)x1, (double)(float)y1, (double)(float)(x2 - x1), (double)(float)(y2 - y1),
                    (double)p->scores[r * p->max_boxes + b]);
            o->written++;
        }
    }
    return ferror(o->csv.file) ? rb_error_set(RB_ERR_IO, "infer: cannot write the detections") : RB_OK;
}

static rb_status write_predictions(void *user, const rb_split *split, int64_t first, int64_t rows,
                                   const rb_predictions *p)
{
    infer_out *o = user;
    if (p->masks != NULL)
        return write_masks(o, split, first, rows, p);
    if (p->boxes != NULL)
        return write_boxes(o, split, first, rows, p);
    if (p->labels != NULL)
        return write_labels(o, split, first, rows, p);
    return rb_error_set(RB_ERR_PLUGIN, "infer: the task decoded neither masks, boxes nor labels");
}

rb_status rb_infer_split(rb_model *model, const rb_split *split, int64_t batch, const rb_engine_options *engine,
                         const char *dir, rb_eval_result *out)
{
    const rb_plugin *task = rb_model_task(model);
    infer_out o = {.dir = dir};
    eval_sink sink = {write_predictions, &o};
    struct stat st;
    rb_status s;

    if (model == NULL || split == NULL || dir == NULL || dir[0] == '\0' || out == NULL)
        return train_invalid("rb_infer_split: needs a model, a split, an output and a result");
    memset(out, 0, sizeof *out);
    o.boxes = task != NULL && task->ops.task->dataset_kind == RB_DATASET_DETECTION;
    if (o.boxes) {
        /* one results file, written whole or not at all */
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
            return train_invalid("--output %s is a folder; a detector's predictions go to one COCO results file "
                                 "(detections.json)",
                                 dir);
        if ((s = rb_atomic_file_open(&o.csv, dir)) != RB_OK)
            return s;
        o.csv_open = true;
        fputc('[', o.csv.file);
    } else {
        if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode))
            return train_invalid("--output %s exists and is not a folder", dir);
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            return rb_error_set(RB_ERR_IO, "cannot create folder %s: %s", dir, strerror(errno));
    }
    o.classes = rb_model_num_classes(model);
    rb_image_voc_palette(o.palette);
    s = train_evaluate_model(model, split, batch, engine, NULL, &sink, out);
    if (s == RB_OK && o.boxes)
        fputs(o.written > 0 ? "\n]\n" : "]\n", o.csv.file);
    if (o.csv_open) {
        if (s == RB_OK)
            s = rb_atomic_file_commit(&o.csv);
        else
            rb_atomic_file_abort(&o.csv);
    }
    free(o.pixels);
    return s;
}
