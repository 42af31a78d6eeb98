/* The plugin loader: a good plugin of every kind and shape loads; every
 * refusal class is refused with its one-line message; folders and search
 * paths are scanned in order; plugins that crash, exit or hang while loading
 * are refused without harm to the caller, and only used plugins are opened
 * in the caller's process. */
#include "config.h"

#include <time.h>

#include <robusta/robusta.h>

#include "testutil.h"

static rb_registry *reg;

static void setup(void)
{
    ck_assert_int_eq(rb_registry_create(&reg), RB_OK);
}

static void teardown(void)
{
    rb_registry_destroy(reg);
    reg = NULL;
}

START_TEST(good_plugins_of_every_kind_load)
{
    static const char *const names[] = {"good_attack", "good_run_attack", "good_arch", "good_task"};
    const rb_plugin *p;
    char path[PATH_MAX];
    for (size_t i = 0; i < 4; i++) {
        fixture_path(names[i], path, sizeof path);
        ck_assert_msg(rb_registry_load_file(reg, path) == RB_OK, "%s", rb_last_error());
        ck_assert_str_eq(rb_registry_path(reg, i), path);
    }
    ck_assert_uint_eq(rb_registry_count(reg), 4);
    ck_assert_uint_eq(rb_registry_refusal_count(reg), 0);

    ck_assert_int_eq(rb_registry_find(reg, RB_PLUGIN_ATTACK, "good-attack", &p), RB_OK);
    ck_assert_str_eq(p->version, "2.1");
    ck_assert_str_eq(p->summary, "a step-based fixture");
    ck_assert_str_eq(p->params[0].name, "eps");
    ck_assert_ptr_nonnull(p->ops.attack->step);
    ck_assert_int_eq(rb_registry_find(reg, RB_PLUGIN_ATTACK, "good-run-attack", &p), RB_OK);
    ck_assert_ptr_nonnull(p->ops.attack->run);
    ck_assert_int_eq(rb_registry_find(reg, RB_PLUGIN_ARCH, "good-arch", &p), RB_OK);
    ck_assert_int_eq(p->kind, RB_PLUGIN_ARCH);
    ck_assert_int_eq(rb_registry_find(reg, RB_PLUGIN_TASK, "good-task", &p), RB_OK);
    ck_assert_int_eq(p->ops.task->dataset_kind, RB_DATASET_SEGMENTATION);
    ck_assert_str_eq(p->ops.task->primary_metric, "score");
    ck_assert_ptr_eq(rb_registry_get(reg, 3), p);
    ck_assert_ptr_null(rb_registry_get(reg, 4));
}
END_TEST

START_TEST(find_suggests_and_respects_kind)
{
    const rb_plugin *p = (const rb_plugin *)0x1;
    char path[PATH_MAX];
    fixture_path("good_attack", path, sizeof path);
    ck_assert_int_eq(rb_registry_load_file(reg, path), RB_OK);
    ck_assert_int_eq(rb_registry_find(reg, RB_PLUGIN_ATTACK, "good-atack", &p), RB_ERR_NOT_FOUND);
    ck_assert_ptr_null(p);
    ck_assert_str_eq(rb_last_error(), "unknown attack plugin 'good-atack'; did you mean 'good-attack'?");
    /* The name exists, but as an attack, not an arch. */
    ck_assert_int_eq(rb_registry_find(reg, RB_PLUGIN_ARCH, "good-attack", &p), RB_ERR_NOT_FOUND);
    ck_assert_str_eq(rb_last_error(),
                     "unknown arch plugin 'good-attack' (robusta plugins lists those found; "
                     "RB_PLUGIN_PATH adds folders)");
}
END_TEST

/* Loading fixture `name` is refused with exactly `reason`. */
static void expect_refusal(const char *name, const char *reason)
{
    char path[PATH_MAX], message[2 * PATH_MAX + 1024];
    size_t before = rb_registry_refusal_count(reg);
    fixture_path(name, path, sizeof path);
    ck_assert_int_eq(rb_registry_load_file(reg, path), RB_ERR_PLUGIN);
    snprintf(message, sizeof message, "plugin %s refused: %s", path, reason);
    ck_assert_str_eq(rb_last_error(), message);
    ck_assert_uint_eq(rb_registry_refusal_count(reg), before + 1);
    ck_assert_str_eq(rb_registry_refusal_path(reg, before), path);
    ck_assert_str_eq(rb_registry_refusal_reason(reg, before), reason);
    ck_assert_uint_eq((size_t)count_lines(message), 1);
}

START_TEST(every_refusal_class_has_its_message)
{
    char expected[512];
    expect_refusal("bad_abi", "built for plugin ABI 99, but robusta " RB_VERSION_STRING
                              " loads ABI 3: rebuild it against this robusta's headers");
    expect_refusal("old_abi", "built for plugin ABI 1, but robusta " RB_VERSION_STRING
                              " loads ABI 3: rebuild it against this robusta's headers (since ABI 2 plugins are "
                              "defined with RB_ARCH_PLUGIN, RB_ATTACK_PLUGIN or RB_TASK_PLUGIN)");
    snprintf(expected, sizeof expected,
             "descriptor size is 24 bytes, but ABI 3's is %zu: rebuild it against this "
             "robusta's headers",
             sizeof(rb_plugin));
    expect_refusal("bad_size", expected);
    expect_refusal("bad_kind", "unknown plugin kind 42 (1 arch, 2 attack and 3 task are known)");
    expect_refusal("bad_name", "plugin name 'Bad Name' is not 1-64 lower-case letters, digits, '-' or '_'");
    expect_refusal("bad_params", "'bad-params' declares a bad parameter table: parameter 'norm': "
                                 "bad default: --norm: 'l3' is not one of l2|linf; did you mean l2?");
    snprintf(expected, sizeof expected,
             "'hand-made': its attack ops table is 16 bytes, too short to hold the required callbacks "
             "(%zu bytes): rebuild it against this robusta's headers",
             offsetof(rb_attack_ops, project) + sizeof(void *));
    expect_refusal("bad_ops_size", expected);
    snprintf(expected, sizeof expected,
             "'hand-made': its attack ops table is %zu bytes, longer than this robusta's %zu: it was built "
             "for a newer robusta; rebuild it against this one's headers or upgrade robusta",
             sizeof(rb_attack_ops) + sizeof(void *), sizeof(rb_attack_ops));
    expect_refusal("long_ops", expected);
    /* The ABI-1 mistake that crashed `robusta plugins`: the kinds disagree. */
    expect_refusal("wrong_table", "'hand-made': the descriptor says attack plugin but its ops table is for kind 1 "
                                  "(arch): define both with one RB_ATTACK_PLUGIN");
    expect_refusal("no_ops", "'hand-made' has no ops table");
    expect_refusal("missing_project", "'half-attack' lacks the required attack callback project");
    expect_refusal("missing_build", "'good-arch' lacks the required arch callback build");
    expect_refusal("missing_metrics", "'good-task' lacks the required task callback metrics_finalize");
    expect_refusal("no_descriptor", "not a robusta plugin: it exports no rb_plugin_descriptor symbol");
    ck_assert_uint_eq(rb_registry_count(reg), 0);
}
END_TEST

/* A table from an older robusta (shorter, ending at project) loads; the
 * callbacks it lacks read as NULL in the copy callers get. */
START_TEST(short_ops_tables_read_missing_callbacks_as_null)
{
    const rb_plugin *p;
    char path[PATH_MAX];
    fixture_path("short_ops", path, sizeof path);
    ck_assert_msg(rb_registry_load_file(reg, path) == RB_OK, "%s", rb_last_error());
    ck_assert_int_eq(rb_registry_find(reg, RB_PLUGIN_ATTACK, "hand-made", &p), RB_OK);
    ck_assert_ptr_nonnull(p->ops.attack->step);
    ck_assert_ptr_nonnull(p->ops.attack->project);
    ck_assert_ptr_null(p->ops.attack->run); /* past the plugin's table: zero, not its neighbour's bytes */
    ck_assert_uint_eq(p->ops_size, sizeof(rb_attack_ops));
    ck_assert_int_eq(p->ops.header->kind, RB_PLUGIN_ATTACK);
    ck_assert_str_eq(rb_plugin_path(p), path);
}
END_TEST

START_TEST(duplicate_names_are_refused)
{
    char first[PATH_MAX], message[PATH_MAX + 128];
    fixture_path("good_attack", first, sizeof first);
    ck_assert_int_eq(rb_registry_load_file(reg, first), RB_OK);
    snprintf(message, sizeof message, "duplicate plugin name 'good-attack': already loaded from %s",
             first);
    expect_refusal("duplicate_name", message);
    ck_assert_uint_eq(rb_registry_count(reg), 1);
    /* The same file reached again is not a duplicate: it is the same plugin. */
    ck_assert_int_eq(rb_registry_load_file(reg, first), RB_OK);
    ck_assert_uint_eq(rb_registry_count(reg), 1);
}
END_TEST

START_TEST(files_that_are_not_shared_objects_are_refused)
{
    char dir[PATH_MAX], path[PATH_MAX + 32];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/notes.so", dir);
    write_text(path, "not an ELF file\n");
    ck_assert_int_eq(chmod(path, 0644), 0);
    ck_assert_int_eq(rb_registry_load_file(reg, path), RB_ERR_PLUGIN);
    ck_assert_msg(strstr(rb_last_error(), "refused: not a robusta plugin: cannot load it as a shared object (") != NULL,
                  "%s", rb_last_error());
    ck_assert_int_eq(count_lines(rb_last_error()), 1);
    /* A folder where a file was expected. */
    ck_assert_int_eq(rb_registry_load_file(reg, dir), RB_ERR_PLUGIN);
    ck_assert_ptr_nonnull(strstr(rb_last_error(), "refused: not a regular file"));
    snprintf(path, sizeof path, "%s/missing.so", dir);
    ck_assert_int_eq(rb_registry_load_file(reg, path), RB_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(rb_last_error(), "missing.so: no such file"));
    remove_temp_dir(dir);
}
END_TEST

START_TEST(writable_files_and_folders_are_refused)
{
    char dir[PATH_MAX], good[PATH_MAX], copy[PATH_MAX + 32], expected[4 * PATH_MAX];
    make_temp_dir(dir, sizeof dir);
    fixture_path("good_attack", good, sizeof good);
    snprintf(copy, sizeof copy, "%s/good_attack.so", dir);

    copy_file(good, copy, 0664); /* group-writable file */
    ck_assert_int_eq(rb_registry_load_file(reg, copy), RB_ERR_PLUGIN);
    snprintf(expected, sizeof expected,
             "plugin %s refused: the file is writable by group or others (chmod go-w %s)", copy,
             copy);
    ck_assert_str_eq(rb_last_error(), expected);

    ck_assert_int_eq(chmod(copy, 0646), 0); /* other-writable file */
    ck_assert_int_eq(rb_registry_load_file(reg, copy), RB_ERR_PLUGIN);
    ck_assert_str_eq(rb_last_error(), expected);

    ck_assert_int_eq(chmod(copy, 0755), 0);
    ck_assert_int_eq(chmod(dir, 0757), 0); /* other-writable folder */
    ck_assert_int_eq(rb_registry_load_file(reg, copy), RB_ERR_PLUGIN);
    snprintf(expected, sizeof expected,
             "plugin %s refused: its folder %s is writable by group or others (chmod go-w %s)",
             copy, dir, dir);
    ck_assert_str_eq(rb_last_error(), expected);
    /* Scanning that folder refuses the folder itself, loading nothing. */
    ck_assert_int_eq(rb_registry_load_dir(reg, dir), RB_ERR_PLUGIN);
    ck_assert_ptr_nonnull(strstr(rb_last_error(), "the folder is writable by group or others"));
    ck_assert_uint_eq(rb_registry_count(reg), 0);

    ck_assert_int_eq(chmod(dir, 0700), 0); /* fixed: now it loads */
    ck_assert_int_eq(rb_registry_load_file(reg, copy), RB_OK);
    ck_assert_uint_eq(rb_registry_count(reg), 1);
    ck_assert_uint_eq(rb_registry_refusal_count(reg), 4);
    remove_temp_dir(dir);
}
END_TEST

START_TEST(folders_load_in_name_order_and_log_refusals)
{
    char dir[PATH_MAX], from[PATH_MAX], to[PATH_MAX + 32];
    static const char *const files[] = {"good_task", "bad_abi", "good_arch"};
    captured log = {0};
    make_temp_dir(dir, sizeof dir);
    for (size_t i = 0; i < 3; i++) {
        fixture_path(files[i], from, sizeof from);
        snprintf(to, sizeof to, "%s/%s.so", dir, files[i]);
        copy_file(from, to, 0755);
    }
    snprintf(to, sizeof to, "%s/README.txt", dir); /* not *.so: ignored */
    write_text(to, "hello\n");
    rb_log_set_level(RB_LOG_INFO);
    rb_log_set_sink(capture_sink, &log);
    ck_assert_int_eq(rb_registry_load_dir(reg, dir), RB_OK);
    rb_log_set_sink(NULL, NULL);
    ck_assert_uint_eq(rb_registry_count(reg), 2);
    ck_assert_str_eq(rb_registry_get(reg, 0)->name, "good-arch");
    ck_assert_str_eq(rb_registry_get(reg, 1)->name, "good-task");
    ck_assert_uint_eq(rb_registry_refusal_count(reg), 1);
    ck_assert_int_eq(log.count, 1); /* one refusal, one warning */
    ck_assert_int_eq(log.level[0], RB_LOG_WARN);
    ck_assert_ptr_nonnull(strstr(log.message[0], "bad_abi.so refused: built for plugin ABI 99"));
    ck_assert_int_eq(rb_registry_load_dir(reg, "/nonexistent/robusta"), RB_ERR_NOT_FOUND);
    remove_temp_dir(dir);
}
END_TEST

START_TEST(search_path_order_and_shadowing)
{
    char a[PATH_MAX], b[PATH_MAX], from[PATH_MAX], to[PATH_MAX + 32], list[3 * PATH_MAX];
    const rb_plugin *p;
    make_temp_dir(a, sizeof a);
    make_temp_dir(b, sizeof b);
    fixture_path("good_attack", from, sizeof from);
    snprintf(to, sizeof to, "%s/x.so", a);
    copy_file(from, to, 0755);
    snprintf(to, sizeof to, "%s/x.so", b);
    copy_file(from, to, 0755);
    fixture_path("good_arch", from, sizeof from);
    snprintf(to, sizeof to, "%s/y.so", b);
    copy_file(from, to, 0755);
    /* Empty entries and missing folders are skipped; the first folder wins. */
    snprintf(list, sizeof list, "%s::/nonexistent/robusta:%s", a, b);
    ck_assert_int_eq(rb_registry_load_path(reg, list), RB_OK);
    ck_assert_int_eq(rb_registry_find(reg, RB_PLUGIN_ATTACK, "good-attack", &p), RB_OK);
    ck_assert_int_eq(rb_registry_find(reg, RB_PLUGIN_ARCH, "good-arch", &p), RB_OK);
    snprintf(to, sizeof to, "%s/x.so", a);
    ck_assert_str_eq(rb_registry_path(reg, 0), to);
    ck_assert_uint_ge(rb_registry_refusal_count(reg), 1);
    snprintf(to, sizeof to, "%s/x.so", b);
    ck_assert_str_eq(rb_registry_refusal_path(reg, 0), to);
    ck_assert_ptr_nonnull(strstr(rb_registry_refusal_reason(reg, 0), "duplicate plugin name 'good-attack'"));
    remove_temp_dir(a);
    remove_temp_dir(b);
}
END_TEST

START_TEST(default_path_reads_the_environment)
{
    const rb_plugin *p;
    setenv("RB_PLUGIN_PATH", test_env("RB_TEST_FIXTURES"), 1);
    rb_log_set_level(RB_LOG_ERROR); /* the fixture folder is full of refusals */
    ck_assert_int_eq(rb_registry_load_default(reg), RB_OK);
    ck_assert_int_eq(rb_registry_find(reg, RB_PLUGIN_TASK, "good-task", &p), RB_OK);
    ck_assert_int_eq(rb_registry_find(reg, RB_PLUGIN_ATTACK, "good-run-attack", &p), RB_OK);
    ck_assert_uint_ge(rb_registry_refusal_count(reg), 11);
    ck_assert_str_eq(rb_registry_install_dir(), RB_PLUGIN_DIR);
}
END_TEST

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The unsafe fixtures, the good_attack fixture and a dangling symlink in a
 * fresh folder; in name order, the refusals expected of them. */
static const char *const unsafe_files[] = {"ctor_exit", "ctor_hang", "ctor_segv",
                                           "function_descriptor", "marker"};
static const struct {
    const char *file, *reason;
} unsafe_refusals[] = {
    {"ctor_exit.so", "it called exit(0) while loading"},
    {"ctor_hang.so", "it did not finish loading within 1 s (its constructors never returned); "
                     "RB_PLUGIN_SCAN_TIMEOUT sets the limit"},
    {"ctor_segv.so", "its constructor crashed with SIGSEGV"},
    {"dangling.so", "dangling symlink to /nonexistent/robusta/gone.so (remove it or install its "
                    "target)"},
    {"function_descriptor.so",
     "its rb_plugin_descriptor symbol is a function, not a const struct rb_plugin (declare it "
     "with RB_PLUGIN_EXPORT const rb_plugin rb_plugin_descriptor = {...})"},
};

static void make_unsafe_dir(char *dir, size_t size)
{
    char from[PATH_MAX], to[PATH_MAX + 64];
    make_temp_dir(dir, size);
    for (size_t i = 0; i < sizeof unsafe_files / sizeof unsafe_files[0]; i++) {
        snprintf(from, sizeof from, "%s/%s.so", test_env("RB_TEST_UNSAFE_FIXTURES"),
                 unsafe_files[i]);
        snprintf(to, sizeof to, "%s/%s.so", dir, unsafe_files[i]);
        copy_file(from, to, 0755);
    }
    fixture_path("good_attack", from, sizeof from);
    snprintf(to, sizeof to, "%s/good_attack.so", dir);
    copy_file(from, to, 0755);
    snprintf(to, sizeof to, "%s/dangling.so", dir);
    ck_assert_int_eq(symlink("/nonexistent/robusta/gone.so", to), 0);
}

/* `r` found good-attack and marker-attack and refused exactly the rest. */
static void expect_unsafe_verdicts(rb_registry *r, const char *dir)
{
    char path[PATH_MAX + 64];
    size_t n = sizeof unsafe_refusals / sizeof unsafe_refusals[0];
    ck_assert_uint_eq(rb_registry_count(r), 2);
    ck_assert_str_eq(rb_registry_name(r, 0), "good-attack");
    ck_assert_str_eq(rb_registry_name(r, 1), "marker-attack");
    ck_assert_int_eq(rb_registry_kind(r, 1), RB_PLUGIN_ATTACK);
    ck_assert_uint_eq(rb_registry_refusal_count(r), n);
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, unsafe_refusals[i].file);
        ck_assert_str_eq(rb_registry_refusal_path(r, i), path);
        ck_assert_str_eq(rb_registry_refusal_reason(r, i), unsafe_refusals[i].reason);
    }
}

static int exists(const char *path)
{
    return access(path, F_OK) == 0;
}

START_TEST(crashing_exiting_and_hanging_plugins_are_refused)
{
    char dir[PATH_MAX], work[PATH_MAX], cache[PATH_MAX + 32], marker[PATH_MAX + 32], pid[32];
    const rb_plugin *p;
    rb_registry *again;
    unsigned char *text;
    size_t size;
    double t0, first, second;

    make_unsafe_dir(dir, sizeof dir);
    make_temp_dir(work, sizeof work);
    snprintf(cache, sizeof cache, "%s/cache/scan", work); /* its folder is made */
    snprintf(marker, sizeof marker, "%s/marker", work);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    setenv("RB_PLUGIN_CACHE", cache, 1);
    setenv("RB_PLUGIN_SCAN_TIMEOUT", "1", 1);
    setenv("RB_FIXTURE_MARKER", marker, 1);
    setenv("RB_FIXTURE_MAIN_PID", pid, 1);
    rb_log_set_level(RB_LOG_ERROR);

    /* This process survives the scan, which waits for the hang once. */
    t0 = seconds_now();
    ck_assert_int_eq(rb_registry_load_dir(reg, dir), RB_OK);
    first = seconds_now() - t0;
    ck_assert_msg(first >= 1.0 && first < 3.0, "the scan took %.2f s; its limit is 1 s a file", first);
    expect_unsafe_verdicts(reg, dir);

    /* Scanning opened nothing here; a lookup opens only what it finds. */
    ck_assert(!exists(marker));
    ck_assert_int_eq(rb_registry_find(reg, RB_PLUGIN_ATTACK, "good-attack", &p), RB_OK);
    ck_assert_int_eq(p->ops.attack->step(NULL, NULL, NULL), RB_OK);
    ck_assert(!exists(marker));
    ck_assert_int_eq(rb_registry_find(reg, RB_PLUGIN_ATTACK, "marker-attack", &p), RB_OK);
    ck_assert_str_eq(p->summary, "marks its loading");
    text = read_whole_file(marker, &size);
    ck_assert_uint_eq(size, 7);
    ck_assert_int_eq(memcmp(text, "loaded\n", 7), 0);
    free(text);

    /* The verdicts were cached: the hang is not waited for again. */
    ck_assert(exists(cache));
    ck_assert_int_eq(rb_registry_create(&again), RB_OK);
    t0 = seconds_now();
    ck_assert_int_eq(rb_registry_load_dir(again, dir), RB_OK);
    second = seconds_now() - t0;
    ck_assert_msg(second < 0.5, "a cached scan took %.2f s", second);
    expect_unsafe_verdicts(again, dir);
    rb_registry_destroy(again);

    /* A timeout is remembered only under the limit it had: raised, the
     * file is given the new limit. */
    setenv("RB_PLUGIN_SCAN_TIMEOUT", "1.5", 1);
    ck_assert_int_eq(rb_registry_create(&again), RB_OK);
    t0 = seconds_now();
    ck_assert_int_eq(rb_registry_load_dir(again, dir), RB_OK);
    second = seconds_now() - t0;
    ck_assert_msg(second >= 1.5 && second < 3.5, "the rescan took %.2f s; its limit is 1.5 s", second);
    ck_assert_str_eq(rb_registry_refusal_reason(again, 1),
                     "it did not finish loading within 1.5 s (its constructors never returned); "
                     "RB_PLUGIN_SCAN_TIMEOUT sets the limit");
    rb_registry_destroy(again);
    setenv("RB_PLUGIN_SCAN_TIMEOUT", "1", 1);

    /* A garbage cache is ignored whole and replaced. */
    write_text(cache, "robusta-plugin-scan 1 robusta 0.0.0 abi 1\n/x\t1 2\tO2 good-attack\n");
    ck_assert_int_eq(rb_registry_create(&again), RB_OK);
    ck_assert_int_eq(rb_registry_load_dir(again, dir), RB_OK);
    expect_unsafe_verdicts(again, dir);
    rb_registry_destroy(again);
    text = read_whole_file(cache, &size);
    ck_assert_msg(size > 40 && memcmp(text, "robusta-plugin-scan 1 robusta " RB_VERSION_STRING " abi",
                                      strlen("robusta-plugin-scan 1 robusta " RB_VERSION_STRING " abi")) == 0,
                  "%.*s", (int)size, (const char *)text);
    free(text);
    write_text(cache, "\x01\x02 not a cache at all");
    ck_assert_int_eq(rb_registry_create(&again), RB_OK);
    ck_assert_int_eq(rb_registry_load_dir(again, dir), RB_OK);
    expect_unsafe_verdicts(again, dir);
    rb_registry_destroy(again);

    /* No cache at all: still the same verdicts, and no file written. */
    ck_assert_int_eq(unlink(cache), 0);
    setenv("RB_PLUGIN_CACHE", "off", 1);
    ck_assert_int_eq(rb_registry_create(&again), RB_OK);
    ck_assert_int_eq(rb_registry_load_dir(again, dir), RB_OK);
    expect_unsafe_verdicts(again, dir);
    rb_registry_destroy(again);
    ck_assert(!exists(cache));

    unsetenv("RB_PLUGIN_SCAN_TIMEOUT");
    unsetenv("RB_FIXTURE_MARKER");
    remove_temp_dir(dir);
    remove_temp_dir(work);
}
END_TEST

START_TEST(a_plugin_changed_after_its_scan_is_checked_again)
{
    char dir[PATH_MAX], from[PATH_MAX], to[PATH_MAX + 32], message[2 * PATH_MAX];
    const rb_plugin *p = (const rb_plugin *)0x1;
    setenv("RB_PLUGIN_CACHE", "off", 1);
    rb_log_set_level(RB_LOG_ERROR);
    make_temp_dir(dir, sizeof dir);
    fixture_path("good_attack", from, sizeof from);
    snprintf(to, sizeof to, "%s/x.so", dir);
    copy_file(from, to, 0755);
    ck_assert_int_eq(rb_registry_load_dir(reg, dir), RB_OK);
    ck_assert_uint_eq(rb_registry_count(reg), 1);
    /* Replaced by another plugin before its first use. */
    ck_assert_int_eq(unlink(to), 0);
    fixture_path("good_arch", from, sizeof from);
    copy_file(from, to, 0755);
    ck_assert_int_eq(rb_registry_find(reg, RB_PLUGIN_ATTACK, "good-attack", &p), RB_ERR_PLUGIN);
    ck_assert_ptr_null(p);
    snprintf(message, sizeof message,
             "plugin %s refused: changed since it was scanned: it is now arch plugin 'good-arch'",
             to);
    ck_assert_str_eq(rb_last_error(), message);
    ck_assert_ptr_null(rb_registry_get(reg, 0));
    ck_assert_uint_eq(rb_registry_refusal_count(reg), 1);
    remove_temp_dir(dir);
}
END_TEST

START_TEST(kind_names)
{
    ck_assert_str_eq(rb_plugin_kind_str(RB_PLUGIN_ARCH), "arch");
    ck_assert_str_eq(rb_plugin_kind_str(RB_PLUGIN_ATTACK), "attack");
    ck_assert_str_eq(rb_plugin_kind_str(RB_PLUGIN_TASK), "task");
    ck_assert_str_eq(rb_plugin_kind_str((rb_plugin_kind)7), "unknown");
    rb_registry_destroy(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("registry");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, good_plugins_of_every_kind_load);
    tcase_add_test(tc, find_suggests_and_respects_kind);
    tcase_add_test(tc, every_refusal_class_has_its_message);
    tcase_add_test(tc, short_ops_tables_read_missing_callbacks_as_null);
    tcase_add_test(tc, duplicate_names_are_refused);
    tcase_add_test(tc, files_that_are_not_shared_objects_are_refused);
    tcase_add_test(tc, writable_files_and_folders_are_refused);
    tcase_add_test(tc, folders_load_in_name_order_and_log_refusals);
    tcase_add_test(tc, search_path_order_and_shadowing);
    tcase_add_test(tc, default_path_reads_the_environment);
    tcase_add_test(tc, crashing_exiting_and_hanging_plugins_are_refused);
    tcase_add_test(tc, a_plugin_changed_after_its_scan_is_checked_again);
    tcase_add_test(tc, kind_names);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
