/* robusta/dist.h: the processes of a data-parallel job (MPI), behind one
 * small interface.
 *
 * A job is N processes ("ranks", 0 .. N-1) started together by `mpirun -np
 * N` or Slurm's `srun`; rank 0 is the one that writes. Everything here also
 * works in a single process, and in a build without MPI (`./configure`
 * without `--with-mpi`), where the job is always one rank and every
 * collective below returns at once with its buffer unchanged: code that
 * calls them needs no #ifdef, and nothing outside src/sys/dist.c includes
 * mpi.h.
 *
 *     if ((s = rb_dist_init(&argc, &argv)) != RB_OK) { print; exit(2); }
 *     ... every rank: the same model, its share of each batch ...
 *     rb_dist_allreduce_sum(grads, n, RB_DIST_F32);   // in place, all ranks
 *     if (rb_dist_rank() == 0) write the checkpoint;
 *     rb_dist_barrier();
 *     rb_dist_finalize();
 *
 * Every rank must call the collectives (allreduce, broadcast, barrier,
 * agree, gather) in the same order with the same counts, as in MPI. They
 * run on the calling thread; call them from one thread per process.
 *
 * Faults: a rank that fails returns its error like any robusta call; the
 * program then ends the job with rb_dist_abort, so the other ranks never
 * wait forever in a collective it will not reach. */
#ifndef ROBUSTA_DIST_H
#define ROBUSTA_DIST_H

#include <stdbool.h>
#include <stddef.h>

#include <robusta/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Starts the job's communication (MPI_Init_thread, funneled) when the
 * process was started by mpirun/srun as one of several, and is a no-op in
 * a lone process. In a build without MPI that was started as one of
 * several processes it fails (RB_ERR_NOT_AVAILABLE) with one line saying
 * how to build with MPI: N copies each training alone would be wrong, not
 * slow. Call once, before any other robusta call that may use the job. */
RB_API rb_status rb_dist_init(int *argc, char ***argv);

/* Ends the job's communication (MPI_Finalize) after a barrier; a no-op when
 * rb_dist_init started none. */
RB_API void rb_dist_finalize(void);

/* Ends every rank of the job at once with exit status `code` (MPI_Abort);
 * exit(code) in a lone process. For a rank that failed: the others may be
 * waiting in a collective it will never reach. */
RB_API void rb_dist_abort(int code);

/* This process's rank (0 in a lone process) and the number of ranks (1). */
RB_API int rb_dist_rank(void);
RB_API int rb_dist_size(void);

/* While `alone` is true this rank works as a lone process: rank 0 of 1,
 * every collective returning at once. For independent work dealt to the
 * ranks (a grid's runs): code below, such as rb_train, then runs as it
 * does in one process. rb_dist_abort still ends the whole job. */
RB_API void rb_dist_set_alone(bool alone);

/* Whether a second thread of this process may test its own requests
 * (rb_dist_test) while this one runs collectives: the MPI library granted
 * MPI_THREAD_MULTIPLE. False in a lone process. */
RB_API bool rb_dist_threads_may_call(void);

/* Whether this build can run multi-rank jobs (configure --with-mpi). */
RB_API bool rb_dist_available(void);

/* The element types the reductions take. */
typedef enum rb_dist_type { RB_DIST_F32, RB_DIST_F64, RB_DIST_I64 } rb_dist_type;

/* Sums `count` elements across ranks, in place: afterwards every rank holds
 * the same sums, bit for bit. */
RB_API rb_status rb_dist_allreduce_sum(void *data, size_t count, rb_dist_type type);

/* Copies `bytes` bytes from rank `root`'s buffer into every other rank's. */
RB_API rb_status rb_dist_broadcast(void *data, size_t bytes, int root);

/* Returns once every rank has called it; a rank that waits sleeps
 * between polls rather than spinning a core. */
RB_API rb_status rb_dist_barrier(void);

/* Checks that every rank passes the same text (a version, the options,
 * the plugin set): RB_ERR_INVALID_ARGUMENT on every rank otherwise, with
 * one line, `what` then the first rank whose text differs from rank 0's
 * and both texts around the first difference ("the options differ
 * between ranks: rank 1 has "...--lr 0.2" where rank 0 has "...--lr
 * 0.1""). */
RB_API rb_status rb_dist_agree(const char *what, const char *text);

/* Rank 0 receives each rank's `bytes[rank]` bytes, concatenated in rank
 * order, into `out` (at least the sum of bytes[]); the other ranks pass
 * out = NULL. `bytes` must be the same on every rank. */
RB_API rb_status rb_dist_gather(const void *data, const size_t *bytes, void *out);

/* A sum started now and finished later (MPI_Iallreduce), for gradients
 * reduced while backward still runs. A request is made once and reused,
 * so steps allocate nothing. Progress is made inside MPI calls: poll with
 * rb_dist_test between pieces of work; rb_dist_wait finishes the sum.
 * Until then the buffer belongs to MPI. In a lone process a sum is
 * complete as soon as it starts. */
typedef struct rb_dist_request rb_dist_request;

RB_API rb_status rb_dist_request_create(rb_dist_request **out);
/* Waits for a sum still running, then frees; NULL is accepted. */
RB_API void rb_dist_request_destroy(rb_dist_request *request);
/* Starts summing `count` floats in place; the request must be idle (never
 * started, or waited for). */
RB_API rb_status rb_dist_iallreduce_sum(rb_dist_request *request, float *data, size_t count);
/* Lets the sum progress; *done says whether it is complete (an idle
 * request is). */
RB_API rb_status rb_dist_test(rb_dist_request *request, bool *done);
/* Waits until the sum is complete; the request is idle again. */
RB_API rb_status rb_dist_wait(rb_dist_request *request);

#ifdef __cplusplus
}
#endif

#endif /* ROBUSTA_DIST_H */
