/* COCO detection datasets (coco:..., robusta/data.h), read by coco_data.c
 * on top of the annotation parser (robusta/coco.h). Internal to librobusta. */
#ifndef RB_DATA_COCO_DATA_H
#define RB_DATA_COCO_DATA_H

#include <robusta/data.h>
#include <robusta/status.h>

/* Opens the images an annotation file lists, as one split: the images
 * read from `images_dir`/file_name (PNG or JPEG, decoded to RGB), each
 * resized to size × size as it is decoded (size 0: kept, and then all
 * must share one size); boxes from the annotations that are not crowd
 * regions, as corners clipped to the image and scaled with it, those with
 * nothing left dropped; classes 0..K-1 for the category ids in ascending
 * order, named by the categories' names. `which` only names the split.
 * Every fault is one line naming the file and the entry. */
rb_status rb_coco_data_load(rb_split **out, const char *images_dir, const char *annotations, rb_split_which which,
                            int size);

#endif /* RB_DATA_COCO_DATA_H */
