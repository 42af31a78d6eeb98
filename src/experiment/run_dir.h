/* The run folder's housekeeping, shared by training, transfer and resume
 * (robusta/train.h describes the folder): one writer at a time (a lock),
 * no litter (stale temporary files of killed runs), a run id that ties the
 * checkpoints to their config.json, and the logs reconciled with the
 * checkpoint at resume. Internal to the library. */
#ifndef ROBUSTA_EXPERIMENT_RUN_DIR_H
#define ROBUSTA_EXPERIMENT_RUN_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <robusta/status.h>

/* The lock file in a run folder. */
#define RB_RUN_LOCK_NAME ".lock"
/* A run id: 128 random bits as 32 lower-case hex digits. */
#define RB_RUN_ID_LEN 32

/* Takes the folder's lock (an exclusive flock on DIR/.lock, which then holds
 * "PID robusta COMMAND") without waiting, for the life of the run; *fd is
 * the descriptor to give rb_run_dir_unlock. Held by another process:
 * RB_ERR_IO, "DIR is in use by process PID (robusta COMMAND); ...". */
rb_status rb_run_dir_lock(const char *dir, const char *command, int *fd);
/* Releases a lock and removes DIR/.lock (fd < 0: none), so a finished or
 * refused run leaves no lock file behind. */
void rb_run_dir_unlock(const char *dir, int fd);

/* Removes the temporary files a killed run left in `dir`: the run's own
 * files' names followed by ".tmp." and six characters (rb_atomic_file_open).
 * Call with the lock held. Nothing else is touched. */
rb_status rb_run_dir_remove_stale(const char *dir);

/* A new random run id into out[RB_RUN_ID_LEN + 1]. */
rb_status rb_run_id_new(char *out);

/* The rows of a log (log.csv when csv_header is given, else log.jsonl) that
 * a run resumed at `epoch` keeps: those of epochs 1..epoch, after the CSV
 * header. Rows past `epoch` are dropped and missing epochs named, each with
 * a warning; a missing or empty log starts afresh with a warning. A log that
 * is not this run's (another header, another kind of row) or not a log
 * (a line that does not parse, epochs out of order, a cut line) is refused
 * with RB_ERR_CORRUPT naming the file and line. *kept is malloc'd (free it);
 * for CSV it begins with the header. */
rb_status rb_run_log_reconcile(const char *path, const char *csv_header, bool adversarial, int64_t epoch,
                               char **kept, size_t *kept_len);

#endif /* ROBUSTA_EXPERIMENT_RUN_DIR_H */
