/* Helpers shared by the Check suites: paths handed in by make check,
 * temporary folders, and running the robusta command. */
#ifndef RB_TESTUTIL_H
#define RB_TESTUTIL_H

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <robusta/log.h>

/* An environment variable that make check sets; fails the test if absent. */
static inline const char *test_env(const char *name)
{
    const char *v = getenv(name);
    ck_assert_msg(v != NULL && v[0] != '\0', "%s is not set: run the tests with make check", name);
    return v;
}

/* PATH of fixture plugin NAME (built in tests/plugins/.libs). */
static inline void fixture_path(const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s.so", test_env("RB_TEST_FIXTURES"), name);
}

/* A fresh private folder under TMPDIR (mode 0700). */
static inline void make_temp_dir(char *out, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(out, size, "%s/robusta-test-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    ck_assert_msg(mkdtemp(out) != NULL, "mkdtemp: %s", strerror(errno));
}

static inline void copy_file(const char *from, const char *to, mode_t mode)
{
    char buf[65536];
    ssize_t n;
    int in = open(from, O_RDONLY), out;
    ck_assert_msg(in >= 0, "open %s: %s", from, strerror(errno));
    out = open(to, O_WRONLY | O_CREAT | O_TRUNC, mode);
    ck_assert_msg(out >= 0, "create %s: %s", to, strerror(errno));
    while ((n = read(in, buf, sizeof buf)) > 0)
        ck_assert_int_eq(write(out, buf, (size_t)n), n);
    close(in);
    close(out);
    ck_assert_int_eq(chmod(to, mode), 0);
}

static inline void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "create %s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

/* Removes a folder made by make_temp_dir and the files directly in it. */
/* A whole file in a new malloc'd buffer (one spare byte); fails the test on error. */
static inline unsigned char *read_whole_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long len;
    ck_assert_msg(f != NULL, "open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *size = (size_t)len;
    return buf;
}

/* Names in a folder other than . and .. (to see that no temporary file is left). */
static inline int count_dir_entries(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static inline void remove_temp_dir(const char *dir)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* A log sink that keeps what it receives: rb_log_set_sink(capture_sink, &c). */
#define MAX_CAPTURED 32

typedef struct captured {
    int count; /* messages received, including any past MAX_CAPTURED */
    rb_log_level level[MAX_CAPTURED];
    char message[MAX_CAPTURED][512];
} captured;

static inline void capture_sink(rb_log_level level, const char *message, void *user)
{
    captured *c = user;
    if (c->count < MAX_CAPTURED) {
        c->level[c->count] = level;
        snprintf(c->message[c->count], sizeof c->message[c->count], "%s", message);
    }
    c->count++;
}

/* Output of one run of the robusta command. */
typedef struct run_result {
    int code;
    char out[65536];
    char err[16384];
} run_result;

static inline void slurp(int fd, char *buf, size_t size)
{
    size_t used = 0;
    ssize_t n;
    lseek(fd, 0, SEEK_SET);
    while (used + 1 < size && (n = read(fd, buf + used, size - 1 - used)) > 0)
        used += (size_t)n;
    buf[used] = '\0';
}

/* Runs `program` (a path) with `args` (NULL-terminated), environment as
 * given by make check plus `extra_env` ("NAME=value" or NULL). With
 * `deadline` > 0 the child gets alarm(deadline) before exec, so a command
 * that hangs dies of SIGALRM (code 142) and the test fails instead of
 * hanging. */
static inline void run_program_deadline(run_result *r, const char *program, const char *extra_env, unsigned deadline,
                                        const char *const *args)
{
    char out_path[] = "/tmp/robusta-out-XXXXXX", err_path[] = "/tmp/robusta-err-XXXXXX";
    int out = mkstemp(out_path), err = mkstemp(err_path), status;
    const char *argv[64];
    size_t n = 0;
    pid_t pid;

    ck_assert(out >= 0 && err >= 0);
    unlink(out_path);
    unlink(err_path);
    argv[n++] = program;
    for (size_t i = 0; args[i] != NULL && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        dup2(out, 1);
        dup2(err, 2);
        if (extra_env != NULL)
            putenv((char *)extra_env);
        if (deadline > 0)
            alarm(deadline);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    r->code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    slurp(out, r->out, sizeof r->out);
    slurp(err, r->err, sizeof r->err);
    close(out);
    close(err);
}

/* run_program_deadline on the built robusta. */
static inline void run_robusta_deadline(run_result *r, const char *extra_env, unsigned deadline,
                                        const char *const *args)
{
    run_program_deadline(r, test_env("RB_TEST_ROBUSTA"), extra_env, deadline, args);
}

static inline void run_robusta(run_result *r, const char *extra_env, const char *const *args)
{
    run_robusta_deadline(r, extra_env, 0, args);
}

/* Number of lines in s (a last line without a newline counts). */
static inline int count_lines(const char *s)
{
    int n = 0;
    for (const char *c = s; *c; c++)
        n += *c == '\n';
    if (s[0] && s[strlen(s) - 1] != '\n')
        n++;
    return n;
}

/* Runs a suite and returns the exit status for the automake harness. */
static inline int run_suite(Suite *suite)
{
    SRunner *runner = srunner_create(suite);
    int failed;
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif /* RB_TESTUTIL_H */
