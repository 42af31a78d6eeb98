/* The background batch loader (robusta/data.h).
 *
 * A ring of `nslots` preallocated batch buffers; batch b of an epoch always
 * goes to slot b % nslots. Worker threads claim batches in order, each one
 * whole, as soon as its slot is free; the caller takes them in order,
 * waiting for the one it needs, and hands its previous slot back on its
 * next call. A slot is free again only once the caller has moved past the
 * batch in it, so a worker never writes a buffer the caller is reading.
 * What an example looks like depends only on (seed, epoch, example index),
 * never on which thread made it, so the batches are the same whatever the
 * number of workers.
 *
 * Restarting an epoch bumps a generation counter that workers check between
 * examples, waits until no worker is filling, then resets the ring.
 * Destroying sets a stop flag, checked the same way, and joins. */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/data.h>
#include <robusta/rng.h>

#include "data/data_internal.h"

#define MAX_THREADS 256
#define MAX_SLOTS 64

typedef enum slot_state { SLOT_FREE = 0, SLOT_FILLING = 1, SLOT_READY = 2 } slot_state;

typedef struct slot {
    float *images;
    int64_t *labels;
    int64_t *indices;
    int32_t *masks;       /* batch_size × height × width, when the split has masks */
    rb_box *boxes;        /* batch_size × max boxes, when the split has boxes */
    int64_t *box_offsets; /* batch_size + 1, with boxes */
    int64_t number, count, first, whole;
    slot_state state;
    rb_status status;  /* RB_OK, or why the batch could not be made */
    char message[512];
} slot;

struct rb_loader {
    const rb_split *split;
    rb_loader_options o;
    size_t example;
    size_t mask_plane; /* mask_height × mask_width when the split has masks, else 0 */
    int mask_height, mask_width; /* the examples' size; a feature split's target size */
    bool boxes;        /* the split has boxes */
    int channels, height, width;
    int64_t n, batches;
    int64_t *order;
    int64_t epoch;
    bool ever_started;

    slot *slots;
    int nslots;

    pthread_mutex_t mu;
    pthread_cond_t work;  /* workers: something to claim, or stop */
    pthread_cond_t ready; /* caller: a batch became ready */
    pthread_cond_t idle;  /* start_epoch: no worker is filling */
    bool sync_ready;      /* the mutex and conditions exist */
    pthread_t *threads;
    int nthreads;         /* threads running */
    bool claimable;       /* workers may claim batches of the current epoch */
    int64_t next_claim, next_consume;
    int held;             /* slot the caller holds, -1 if none */
    int busy;             /* workers filling a slot */
    atomic_bool stop;
    atomic_uint_fast64_t generation;
};

/* Fills `s` with batch b; false if stopped or the epoch was restarted
 * (generation changed) before it was done. An example that cannot be made
 * (an image that fails to decode) leaves its status and message in the
 * slot, which is then done: rb_loader_next reports it. */
static bool fill(rb_loader *l, slot *s, int64_t b, uint_fast64_t generation)
{
    int64_t first = b * l->o.batch_size, count = l->n - first, whole;
    if (count > l->o.batch_size)
        count = l->o.batch_size;
    whole = count;
    if (l->o.shards > 1) {
        int64_t from = whole * l->o.shard / l->o.shards, to = whole * (l->o.shard + 1) / l->o.shards;
        first += from;
        count = to - from;
    }
    s->status = RB_OK;
    for (int64_t k = 0; k < count; k++) {
        const int64_t index = l->order[first + k];
        int top, left, padding;
        bool flip;
        if (atomic_load_explicit(&l->stop, memory_order_relaxed) ||
            atomic_load_explicit(&l->generation, memory_order_relaxed) != generation)
            return false;
        if (l->split->store != NULL) {
            rb_status st = rb_split_render_kept(l->split, index, &l->o.augment, l->o.seed, l->epoch,
                                                s->images + (size_t)k * l->example);
            if (st != RB_OK) {
                s->status = st;
                snprintf(s->message, sizeof s->message, "%s", rb_last_error());
                break;
            }
            s->labels[k] = l->split->labels[index];
            s->indices[k] = index;
            continue;
        }
        rb_augment_place(&l->o.augment, l->o.seed, l->epoch, index, &padding, &top, &left, &flip);
        rb_split_render(l->split, index, padding, top, left, flip, s->images + (size_t)k * l->example);
        if (l->mask_plane > 0 || l->boxes) {
            int64_t n = 0;
            rb_split_render_targets(l->split, index, padding, top, left, flip,
                                    l->mask_plane > 0 ? s->masks + (size_t)k * l->mask_plane : NULL,
                                    l->boxes ? s->boxes + s->box_offsets[k] : NULL, l->boxes ? &n : NULL);
            if (l->boxes)
                s->box_offsets[k + 1] = s->box_offsets[k] + n;
        }
        s->labels[k] = l->split->labels[index];
        s->indices[k] = index;
    }
    s->number = b;
    s->count = count;
    s->first = first;
    s->whole = whole;
    return true;
}

static void *worker(void *arg)
{
    rb_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        int64_t b;
        slot *s;
        uint_fast64_t generation;
        bool ok;
        while (!atomic_load(&l->stop) &&
               !(l->claimable && l->next_claim < l->batches &&
                 l->slots[l->next_claim % l->nslots].state == SLOT_FREE))
            pthread_cond_wait(&l->work, &l->mu);
        if (atomic_load(&l->stop))
            break;
        b = l->next_claim++;
        s = &l->slots[b % l->nslots];
        s->state = SLOT_FILLING;
        generation = atomic_load(&l->generation);
        l->busy++;
        pthread_mutex_unlock(&l->mu);

        ok = fill(l, s, b, generation);

        pthread_mutex_lock(&l->mu);
        l->busy--;
        if (ok && generation == atomic_load(&l->generation)) {
            s->state = SLOT_READY;
            pthread_cond_broadcast(&l->ready);
        }
        if (l->busy == 0)
            pthread_cond_broadcast(&l->idle);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

void rb_loader_destroy(rb_loader *l)
{
    if (l == NULL)
        return;
    if (l->sync_ready) {
        pthread_mutex_lock(&l->mu);
        atomic_store(&l->stop, true);
        pthread_cond_broadcast(&l->work);
        pthread_mutex_unlock(&l->mu);
        for (int t = 0; t < l->nthreads; t++)
            pthread_join(l->threads[t], NULL);
        pthread_cond_destroy(&l->work);
        pthread_cond_destroy(&l->ready);
        pthread_cond_destroy(&l->idle);
        pthread_mutex_destroy(&l->mu);
    }
    if (l->slots != NULL)
        for (int i = 0; i < l->nslots; i++) {
            free(l->slots[i].images);
            free(l->slots[i].labels);
            free(l->slots[i].indices);
            free(l->slots[i].masks);
            free(l->slots[i].boxes);
            free(l->slots[i].box_offsets);
        }
    free(l->slots);
    free(l->threads);
    free(l->order);
    free(l);
}

rb_status rb_loader_create(rb_loader **out, const rb_split *split, const rb_loader_options *options)
{
    rb_loader *l;
    const rb_loader_options *o = options;
    size_t image_bytes;
    int err;

    if (out == NULL || split == NULL || options == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_loader_create: out, split or options is NULL");
    *out = NULL;
    if (o->batch_size < 1 || o->batch_size > (INT64_C(1) << 24))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "loader: batch size %" PRId64 " is out of range [1, %" PRId64 "]",
                            o->batch_size, INT64_C(1) << 24);
    if (o->threads < 0 || o->threads > MAX_THREADS)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "loader: %d threads is out of range [0, %d] (0 makes batches on the caller's thread)",
                            o->threads, MAX_THREADS);
    if (o->prefetch < 0 || o->prefetch > MAX_SLOTS)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "loader: prefetch %d is out of range [0, %d]", o->prefetch,
                            MAX_SLOTS);
    if (o->shards < 0 || o->shards > (1 << 20) || o->shard < 0 || (o->shards > 0 && o->shard >= o->shards))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "loader: shard %d of %d is out of range", o->shard, o->shards);
    if (o->shards > 1 && !o->drop_last)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "loader: shards need drop_last (a last partial batch could leave a part empty)");
    if (o->shards > o->batch_size)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "loader: a batch of %" PRId64 " examples cannot be split into %d parts (each would need "
                            "at least one)",
                            o->batch_size, o->shards);
    if (o->augment.crop && (o->augment.padding < 0 || o->augment.padding > 65536))
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "loader: crop padding %d is out of range [0, 65536]",
                            o->augment.padding);
    if (rb_split_example_size(split) > SIZE_MAX / sizeof(float) / (size_t)o->batch_size / 2 ||
        (uint64_t)rb_split_max_boxes(split) > SIZE_MAX / sizeof(rb_box) / (uint64_t)o->batch_size / 2)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "loader: batches of %" PRId64 " examples are too large",
                            o->batch_size);

    l = calloc(1, sizeof *l);
    if (l == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for a loader");
    l->split = split;
    l->o = *o;
    l->example = rb_split_example_size(split);
    rb_split_shape(split, &l->channels, &l->height, &l->width);
    {
        rb_targets stored;
        rb_split_stored_targets(split, &stored);
        rb_split_mask_shape(split, &l->mask_height, &l->mask_width);
        l->mask_plane = stored.masks != NULL ? (size_t)l->mask_height * (size_t)l->mask_width : 0;
        l->boxes = stored.box_offsets != NULL;
    }
    l->n = rb_split_count(split);
    l->batches = o->drop_last ? l->n / o->batch_size : (l->n + o->batch_size - 1) / o->batch_size;
    l->held = -1;
    atomic_init(&l->stop, false);
    atomic_init(&l->generation, 0);
    if (o->threads == 0)
        l->nslots = 1;
    else
        l->nslots = o->prefetch > 0 ? (o->prefetch < 2 ? 2 : o->prefetch) : (o->threads + 1 < 2 ? 2 : o->threads + 1);

    image_bytes = (size_t)o->batch_size * l->example * sizeof(float);
    image_bytes = (image_bytes + 63) / 64 * 64;
    l->order = malloc((l->n ? (size_t)l->n : 1) * sizeof *l->order);
    l->slots = calloc((size_t)l->nslots, sizeof *l->slots);
    if (l->order == NULL || l->slots == NULL)
        goto oom;
    for (int i = 0; i < l->nslots; i++) {
        slot *s = &l->slots[i];
        s->images = aligned_alloc(64, image_bytes ? image_bytes : 64);
        s->labels = malloc((size_t)o->batch_size * sizeof *s->labels);
        s->indices = malloc((size_t)o->batch_size * sizeof *s->indices);
        if (s->images == NULL || s->labels == NULL || s->indices == NULL)
            goto oom;
        if (l->mask_plane > 0 &&
            (s->masks = malloc((size_t)o->batch_size * l->mask_plane * sizeof *s->masks)) == NULL)
            goto oom;
        if (l->boxes) {
            const int64_t most = rb_split_max_boxes(split);
            s->boxes = malloc((size_t)o->batch_size * (most > 0 ? (size_t)most : 1) * sizeof *s->boxes);
            s->box_offsets = calloc((size_t)o->batch_size + 1, sizeof *s->box_offsets);
            if (s->boxes == NULL || s->box_offsets == NULL)
                goto oom;
        }
    }

    if (pthread_mutex_init(&l->mu, NULL) != 0)
        goto oom;
    if (pthread_cond_init(&l->work, NULL) != 0) {
        pthread_mutex_destroy(&l->mu);
        goto oom;
    }
    if (pthread_cond_init(&l->ready, NULL) != 0) {
        pthread_cond_destroy(&l->work);
        pthread_mutex_destroy(&l->mu);
        goto oom;
    }
    if (pthread_cond_init(&l->idle, NULL) != 0) {
        pthread_cond_destroy(&l->ready);
        pthread_cond_destroy(&l->work);
        pthread_mutex_destroy(&l->mu);
        goto oom;
    }
    l->sync_ready = true;

    if (o->threads > 0) {
        sigset_t all, old;
        l->threads = calloc((size_t)o->threads, sizeof *l->threads);
        if (l->threads == NULL)
            goto oom;
        /* Workers inherit a full signal mask: signals (Ctrl-C) go to the
         * caller's threads, which decide what stopping means. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        for (int t = 0; t < o->threads; t++) {
            err = pthread_create(&l->threads[t], NULL, worker, l);
            if (err != 0) {
                pthread_sigmask(SIG_SETMASK, &old, NULL);
                rb_loader_destroy(l);
                return rb_error_set(RB_ERR_OUT_OF_MEMORY, "loader: cannot start worker thread %d of %d: %s", t + 1,
                                    o->threads, strerror(err));
            }
            l->nthreads++;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    *out = l;
    return RB_OK;

oom:
    rb_loader_destroy(l);
    return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for a loader of %d batches of %" PRId64 " examples",
                        o->threads == 0 ? 1 : (o->prefetch ? o->prefetch : o->threads + 1), o->batch_size);
}

int64_t rb_loader_batch_count(const rb_loader *loader)
{
    return loader ? loader->batches : 0;
}

rb_status rb_loader_start_epoch(rb_loader *l, int64_t epoch)
{
    if (l == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_loader_start_epoch: loader is NULL");
    if (epoch < 0 || epoch >= RB_DATA_EPOCH_LIMIT)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "loader: epoch %" PRId64 " is out of range [0, %" PRId64 ")",
                            epoch, RB_DATA_EPOCH_LIMIT);
    pthread_mutex_lock(&l->mu);
    /* Stop claims, make fills in progress give up, and wait for them. */
    l->claimable = false;
    atomic_fetch_add(&l->generation, 1);
    while (l->busy > 0)
        pthread_cond_wait(&l->idle, &l->mu);
    for (int i = 0; i < l->nslots; i++)
        l->slots[i].state = SLOT_FREE;

    for (int64_t i = 0; i < l->n; i++)
        l->order[i] = i;
    if (l->o.shuffle && l->n > 1) {
        rb_rng r;
        rb_rng_init(&r, l->o.seed, RB_RNG_STREAM(RB_RNG_SHUFFLE, (uint32_t)epoch), 0);
        for (int64_t i = l->n - 1; i > 0; i--) {
            int64_t j = (int64_t)rb_rng_below(&r, (uint64_t)i + 1);
            int64_t t = l->order[i];
            l->order[i] = l->order[j];
            l->order[j] = t;
        }
    }
    l->epoch = epoch;
    l->next_claim = 0;
    l->next_consume = 0;
    l->held = -1;
    l->ever_started = true;
    l->claimable = true;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    return RB_OK;
}

rb_status rb_loader_next(rb_loader *l, rb_batch *batch)
{
    int64_t b;
    slot *s;

    if (l == NULL || batch == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_loader_next: loader or batch is NULL");
    memset(batch, 0, sizeof *batch);
    batch->channels = l->channels;
    batch->height = l->height;
    batch->width = l->width;
    pthread_mutex_lock(&l->mu);
    if (!l->ever_started) {
        pthread_mutex_unlock(&l->mu);
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "loader: call rb_loader_start_epoch before rb_loader_next");
    }
    if (l->held >= 0) {
        l->slots[l->held].state = SLOT_FREE;
        l->held = -1;
        pthread_cond_broadcast(&l->work);
    }
    b = l->next_consume;
    if (b >= l->batches) {
        pthread_mutex_unlock(&l->mu);
        batch->first = l->n;
        batch->number = l->batches;
        return RB_OK;
    }
    s = &l->slots[b % l->nslots];
    if (l->nthreads == 0) {
        /* No workers: make it here. Nothing else touches the ring. */
        pthread_mutex_unlock(&l->mu);
        fill(l, s, b, atomic_load(&l->generation));
        pthread_mutex_lock(&l->mu);
    } else {
        while (!(s->state == SLOT_READY && s->number == b))
            pthread_cond_wait(&l->ready, &l->mu);
    }
    l->held = (int)(b % l->nslots);
    l->next_consume = b + 1;
    pthread_mutex_unlock(&l->mu);
    if (s->status != RB_OK)
        return rb_error_set(s->status, "%s", s->message);

    batch->images = s->images;
    batch->labels = s->labels;
    batch->indices = s->indices;
    batch->count = s->count;
    batch->first = s->first;
    batch->global_count = s->whole;
    batch->number = s->number;
    batch->targets.count = s->count;
    batch->targets.labels = s->labels;
    if (l->mask_plane > 0) {
        batch->targets.masks = s->masks;
        batch->targets.mask_height = l->mask_height;
        batch->targets.mask_width = l->mask_width;
    }
    if (l->boxes) {
        batch->targets.boxes = s->boxes;
        batch->targets.box_offsets = s->box_offsets;
    }
    return RB_OK;
}
