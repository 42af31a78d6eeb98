/* Bucketed, overlapped gradient sums across ranks (robusta/grad_sync.h). */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <robusta/grad_sync.h>
#include <robusta/dist.h>

#include "nn/graph_internal.h"
#include "sys/internal.h"

typedef struct bucket {
    size_t first, end;  /* its parameters: order[first .. end) */
    size_t floats;      /* their elements, the length of buf */
    size_t pending;     /* parameters whose gradient backward has not finished */
    float *buf;
    rb_dist_request *request;
    bool started, done;
    double started_at, done_at;
} bucket;

struct rb_grad_sync {
    rb_graph *g;
    size_t *order;     /* parameter indices, bucket by bucket */
    long *bucket_of;   /* per parameter: its bucket, -1 if none */
    bucket *buckets;
    size_t n_buckets, n_order, bytes;
    float *buffers;    /* the buffers' values, packed for one broadcast */
    size_t buffer_floats;
    float scale;
    rb_status error; /* the first failure inside the hook, reported by finish */
    bool in_step;
    rb_grad_sync_stats stats;
    /* Open MPI moves a nonblocking sum only inside MPI calls; with
     * MPI_THREAD_MULTIPLE a thread makes them every millisecond while
     * buckets are in flight (polling), so the sums move while backward
     * computes. The lock guards the buckets' state between it and the hook. */
    bool has_progress, polling, quit;
    pthread_t progress;
    pthread_mutex_t lock;
    pthread_cond_t wake;
};

static void *progress_main(void *user);

static bool reduced(const rb_param_tensor *p) { return p->grad != NULL && p->trainable && !p->frozen; }

void rb_grad_sync_destroy(rb_grad_sync *sync)
{
    if (sync == NULL)
        return;
    if (sync->has_progress) {
        pthread_mutex_lock(&sync->lock);
        sync->quit = true;
        pthread_cond_signal(&sync->wake);
        pthread_mutex_unlock(&sync->lock);
        pthread_join(sync->progress, NULL);
        pthread_mutex_destroy(&sync->lock);
        pthread_cond_destroy(&sync->wake);
    }
    for (size_t b = 0; b < sync->n_buckets; b++) {
        rb_dist_request_destroy(sync->buckets[b].request);
        free(sync->buckets[b].buf);
    }
    free(sync->buckets);
    free(sync->buffers);
    free(sync->order);
    free(sync->bucket_of);
    free(sync);
}

rb_status rb_grad_sync_create(rb_grad_sync **out, rb_graph *g, const rb_grad_sync_options *options)
{
    size_t limit = options != NULL && options->bucket_bytes > 0 ? options->bucket_bytes : RB_GRAD_SYNC_BUCKET_BYTES;
    size_t first_limit = options != NULL && options->first_bucket_bytes > 0 ? options->first_bucket_bytes
                         : options != NULL && options->bucket_bytes > 0 ? options->bucket_bytes / 16
                                                                         : RB_GRAD_SYNC_FIRST_BUCKET_BYTES;
    rb_grad_sync *sync = calloc(1, sizeof *sync);
    rb_status s = RB_OK;
    *out = NULL;
    if (sync == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for gradient buckets");
    sync->g = g;
    sync->order = malloc((g->n_params + 1) * sizeof *sync->order);
    sync->bucket_of = malloc((g->n_params + 1) * sizeof *sync->bucket_of);
    sync->buckets = calloc(g->n_params + 1, sizeof *sync->buckets);
    if (sync->order == NULL || sync->bucket_of == NULL || sync->buckets == NULL) {
        rb_grad_sync_destroy(sync);
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for gradient buckets");
    }
    for (size_t i = 0; i < g->n_params; i++)
        sync->bucket_of[i] = -1;
    /* Backward's order: nodes last to first, each node's own parameters. */
    for (size_t k = g->n_nodes; k-- > 0;) {
        const rb_node *n = g->nodes[k];
        for (int slot = 0; slot < RB_NODE_MAX_PARAMS; slot++) {
            long i = n->param[slot];
            if (i < 0 || g->params[i].owner != n || !reduced(&g->params[i]) || sync->bucket_of[i] >= 0)
                continue;
            sync->bucket_of[i] = 0;
            sync->order[sync->n_order++] = (size_t)i;
        }
    }
    /* Both ends' buckets are small: the first so that the network starts
     * early, the last (the tail: the shortest end of the order holding the
     * first bucket's limit) because it is ready only when backward ends
     * and its whole sum is waited on. In between, a bucket closes once it
     * holds its limit; what is left before the tail, if less than the
     * first bucket's limit, joins it rather than go alone. */
    size_t tail = sync->n_order;
    for (size_t fill = 0; tail > 0 && fill < first_limit; tail--)
        fill += (size_t)g->params[sync->order[tail - 1]].numel * sizeof(float);
    for (size_t j = 0, fill = 0; j < sync->n_order; j++) {
        long i = (long)sync->order[j];
        bucket *b = &sync->buckets[sync->n_buckets];
        if (j == tail && fill >= first_limit) {
            sync->n_buckets++;
            b++;
            fill = 0;
        }
        if (fill == 0)
            b->first = j;
        b->end = j + 1;
        b->floats += (size_t)g->params[i].numel;
        sync->bucket_of[i] = (long)sync->n_buckets;
        fill += (size_t)g->params[i].numel * sizeof(float);
        if (j < tail && fill >= (sync->n_buckets == 0 ? first_limit : limit)) {
            sync->n_buckets++;
            fill = 0;
        }
    }
    if (sync->n_order > 0) /* the tail, never closed above */
        sync->n_buckets++;
    for (size_t b = 0; s == RB_OK && b < sync->n_buckets; b++) {
        bucket *bk = &sync->buckets[b];
        sync->bytes += bk->floats * sizeof(float);
        if ((bk->buf = malloc(bk->floats * sizeof *bk->buf)) == NULL)
            s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for gradient buckets");
        else
            s = rb_dist_request_create(&bk->request);
    }
    for (size_t i = 0; i < g->n_params; i++)
        if (g->params[i].grad == NULL)
            sync->buffer_floats += (size_t)g->params[i].numel;
    if (s == RB_OK && (sync->buffers = malloc((sync->buffer_floats + 1) * sizeof *sync->buffers)) == NULL)
        s = rb_error_set(RB_ERR_OUT_OF_MEMORY, "out of memory for gradient buckets");
    if (s != RB_OK) {
        rb_grad_sync_destroy(sync);
        return s;
    }
    sync->stats.bytes_per_step = sync->bytes;
    sync->stats.buckets = sync->n_buckets;
    sync->stats.last_bucket_bytes = sync->n_buckets > 0 ? sync->buckets[sync->n_buckets - 1].floats * sizeof(float) : 0;
    if (rb_dist_threads_may_call() && getenv("RB_GRAD_SYNC_NO_THREAD") == NULL) {
        if (pthread_mutex_init(&sync->lock, NULL) != 0 || pthread_cond_init(&sync->wake, NULL) != 0) {
            rb_grad_sync_destroy(sync);
            return rb_error_set(RB_ERR_OUT_OF_MEMORY, "cannot make the gradient sums' progress thread");
        }
        sync->has_progress = pthread_create(&sync->progress, NULL, progress_main, sync) == 0;
        if (!sync->has_progress) {
            pthread_mutex_destroy(&sync->lock);
            pthread_cond_destroy(&sync->wake);
        }
    }
    *out = sync;
    return RB_OK;
}

void rb_grad_sync_begin(rb_grad_sync *sync, int64_t share, int64_t global_batch)
{
    sync->scale = global_batch > 0 ? (float)((double)share / (double)global_batch) : 1.0f;
    sync->error = RB_OK;
    sync->in_step = true;
    for (size_t b = 0; b < sync->n_buckets; b++) {
        bucket *bk = &sync->buckets[b];
        bk->pending = bk->end - bk->first;
        bk->started = bk->done = false;
    }
}

static void start_bucket(rb_grad_sync *sync, bucket *bk)
{
    float *to = bk->buf;
    rb_status s;
    for (size_t j = bk->first; j < bk->end; j++) {
        const rb_param_tensor *p = &sync->g->params[sync->order[j]];
        for (int64_t k = 0; k < p->numel; k++)
            to[k] = p->grad[k] * sync->scale;
        to += p->numel;
    }
    bk->started = true;
    bk->started_at = rb_monotonic_seconds();
    s = rb_dist_iallreduce_sum(bk->request, bk->buf, bk->floats);
    if (s != RB_OK && sync->error == RB_OK)
        sync->error = s;
}

/* A summed bucket's share goes back into its parameters' gradients. */
static void copy_out(rb_grad_sync *sync, bucket *bk)
{
    const float *from = bk->buf;
    for (size_t j = bk->first; j < bk->end; j++) {
        rb_param_tensor *p = &sync->g->params[sync->order[j]];
        memcpy(p->grad, from, (size_t)p->numel * sizeof *from);
        from += p->numel;
    }
    bk->done = true;
}

/* MPI progresses a nonblocking sum only inside MPI calls: test the
 * started ones, oldest first, stopping at the first still running. A
 * finished one is copied back at once: backward has written its
 * gradients for good, and the copy (10 MiB take milliseconds) is then
 * not left for the optimizer step to wait on. */
static void poll_buckets(rb_grad_sync *sync)
{
    for (size_t b = 0; b < sync->n_buckets; b++) {
        bucket *bk = &sync->buckets[b];
        bool done = false;
        if (!bk->started)
            return;
        if (bk->done)
            continue;
        if (rb_dist_test(bk->request, &done) != RB_OK) {
            if (sync->error == RB_OK)
                sync->error = rb_last_status();
            return;
        }
        if (!done)
            return;
        bk->done_at = rb_monotonic_seconds();
        copy_out(sync, bk);
    }
}

/* The progress thread: polls while a step's buckets are in flight,
 * sleeps on the condition otherwise. */
static void *progress_main(void *user)
{
    rb_grad_sync *sync = user;
    pthread_mutex_lock(&sync->lock);
    while (!sync->quit) {
        if (!sync->polling) {
            pthread_cond_wait(&sync->wake, &sync->lock);
            continue;
        }
        poll_buckets(sync);
        pthread_mutex_unlock(&sync->lock);
        nanosleep(&(struct timespec){0, 1000000}, NULL);
        pthread_mutex_lock(&sync->lock);
    }
    pthread_mutex_unlock(&sync->lock);
    return NULL;
}

void rb_grad_sync_node_done(void *user, const rb_node *node)
{
    rb_grad_sync *sync = user;
    if (!sync->in_step)
        return;
    if (sync->has_progress)
        pthread_mutex_lock(&sync->lock);
    for (int slot = 0; slot < RB_NODE_MAX_PARAMS; slot++) {
        long i = node->param[slot];
        bucket *bk;
        if (i < 0 || sync->bucket_of[i] < 0 || sync->g->params[i].owner != node)
            continue;
        bk = &sync->buckets[sync->bucket_of[i]];
        /* buckets start in order, so every rank issues the same sequence */
        if (--bk->pending == 0)
            for (size_t b = 0; b < sync->n_buckets && sync->buckets[b].pending == 0; b++)
                if (!sync->buckets[b].started)
                    start_bucket(sync, &sync->buckets[b]);
    }
    poll_buckets(sync);
    if (sync->has_progress) {
        if (!sync->polling && sync->n_buckets > 0 && sync->buckets[0].started) {
            sync->polling = true;
            pthread_cond_signal(&sync->wake);
        }
        pthread_mutex_unlock(&sync->lock);
    }
}

rb_status rb_grad_sync_finish(rb_grad_sync *sync)
{
    double t0 = rb_monotonic_seconds(), first = t0, last = t0;
    rb_status s = RB_OK;
    if (!sync->in_step)
        return rb_error_set(RB_ERR_INTERNAL, "gradient sums finished without a step begun");
    if (sync->has_progress) { /* from here this thread alone calls MPI on the buckets */
        pthread_mutex_lock(&sync->lock);
        sync->polling = false;
        pthread_mutex_unlock(&sync->lock);
    }
    sync->in_step = false;
    for (size_t b = 0; b < sync->n_buckets; b++)
        if (!sync->buckets[b].started)
            start_bucket(sync, &sync->buckets[b]);
    for (size_t b = 0; b < sync->n_buckets; b++) {
        bucket *bk = &sync->buckets[b];
        if (!bk->done) {
            rb_status w = rb_dist_wait(bk->request);
            if (w != RB_OK && s == RB_OK)
                s = w;
            bk->done_at = rb_monotonic_seconds();
            if (w == RB_OK)
                copy_out(sync, bk);
        }
        if (bk->started_at < first)
            first = bk->started_at;
        if (bk->done_at > last)
            last = bk->done_at;
    }
    if (s == RB_OK && sync->error != RB_OK)
        s = sync->error;
    if (s != RB_OK)
        return rb_error_prefix("summing gradients across ranks: ");
    sync->stats.steps++;
    sync->stats.reduce_seconds += last - first;
    sync->stats.exposed_seconds += rb_monotonic_seconds() - t0;
    return RB_OK;
}

void rb_grad_sync_get_stats(const rb_grad_sync *sync, rb_grad_sync_stats *out) { *out = sync->stats; }

rb_status rb_grad_sync_broadcast_values(rb_graph *g)
{
    for (size_t i = 0; i < g->n_params; i++) {
        rb_status s = rb_dist_broadcast(g->params[i].value, (size_t)g->params[i].numel * sizeof(float), 0);
        if (s != RB_OK)
            return rb_error_prefix("copying '%s' from rank 0: ", g->params[i].name);
    }
    return RB_OK;
}

rb_status rb_grad_sync_share_buffers(rb_grad_sync *sync)
{
    rb_graph *g = sync->g;
    float *at = sync->buffers;
    rb_status s;
    if (sync->buffer_floats == 0)
        return RB_OK;
    for (size_t i = 0; i < g->n_params; i++)
        if (g->params[i].grad == NULL) {
            memcpy(at, g->params[i].value, (size_t)g->params[i].numel * sizeof *at);
            at += g->params[i].numel;
        }
    if ((s = rb_dist_broadcast(sync->buffers, sync->buffer_floats * sizeof(float), 0)) != RB_OK)
        return rb_error_prefix("copying rank 0's running statistics: ");
    at = sync->buffers;
    for (size_t i = 0; i < g->n_params; i++)
        if (g->params[i].grad == NULL) {
            memcpy(g->params[i].value, at, (size_t)g->params[i].numel * sizeof *at);
            at += g->params[i].numel;
        }
    return RB_OK;
}
