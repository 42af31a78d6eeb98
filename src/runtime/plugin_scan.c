/* Checking plugin files without trusting them, and remembering the verdicts.
 *
 * Loading a shared object runs its constructors: code that can crash, call
 * exit() or never return. So the registry never opens an unknown file in its
 * own process. rb_scan_file forks a child that only dlopens the file, checks
 * its descriptor, writes the verdict to a pipe and _exit()s; the parent
 * waits with a time limit and turns a crash, an exit or a hang into a
 * refusal. Only plugins a command then uses are opened in-process.
 *
 * Why fork without exec is safe here: the child calls no code of the
 * parent's threads. glibc's fork resets the malloc and dynamic-loader locks
 * in the child, so dlopen and malloc work there even when other threads
 * existed (robusta scans when the registry is first needed, before the
 * engine starts its OpenMP/oneDNN threads, but embedding programs may not);
 * the child never returns into the caller, never flushes the parent's stdio
 * buffers (its stdout goes to /dev/null, the parent flushes before forking)
 * and leaves with _exit(). A plugin that calls exit() in its constructor
 * runs the parent's atexit handlers in the child only, and is refused.
 *
 * Verdicts are cached in a small text file, keyed by path and by the file's
 * device, inode, size, mtime and ctime: a warm listing only stats files. The
 * cache is rewritten atomically; a cache that does not parse, or comes from
 * another robusta version, is ignored whole. */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <robusta/log.h>
#include <robusta/plugin.h>
#include <robusta/version.h>

#include "runtime/plugin_scan.h"
#include "sys/internal.h"

static int valid_plugin_name(const char *name)
{
    size_t n = 0;
    if (name == NULL || name[0] == '\0')
        return 0;
    for (const char *c = name; *c; c++, n++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '_'))
            return 0;
    return n <= 64;
}

static size_t expected_ops_size(rb_plugin_kind kind)
{
    switch (kind) {
    case RB_PLUGIN_ARCH: return sizeof(rb_arch_ops);
    case RB_PLUGIN_ATTACK: return sizeof(rb_attack_ops);
    case RB_PLUGIN_TASK: return sizeof(rb_task_ops);
    }
    return 0;
}

/* The bytes of a table up to the end of its last required member: a
 * shorter table cannot be complete. */
static size_t required_ops_size(rb_plugin_kind kind)
{
    switch (kind) {
    case RB_PLUGIN_ARCH: return offsetof(rb_arch_ops, build) + sizeof(void (*)(void));
    case RB_PLUGIN_ATTACK: return offsetof(rb_attack_ops, project) + sizeof(void (*)(void));
    case RB_PLUGIN_TASK: return offsetof(rb_task_ops, metrics_destroy) + sizeof(void (*)(void));
    }
    return 0;
}

/* The first required callback that is NULL, or NULL when all are there;
 * `ops` is a table of this robusta's full size. */
static const char *missing_callback(rb_plugin_kind kind, const rb_plugin_ops_copy *ops)
{
    switch (kind) {
    case RB_PLUGIN_ARCH: return ops->arch.build == NULL ? "build" : NULL;
    case RB_PLUGIN_ATTACK:
        if (ops->attack.run != NULL)
            return NULL;
        if (ops->attack.step == NULL && ops->attack.project == NULL)
            return "run (or step and project)";
        if (ops->attack.step == NULL)
            return "step";
        if (ops->attack.project == NULL)
            return "project";
        return NULL;
    case RB_PLUGIN_TASK: {
        const rb_task_ops *t = &ops->task;
        const char *names[] = {"stages", "build_head", "build_loss", "decode", "metrics_create",
                               "metrics_accumulate", "metrics_finalize", "metrics_destroy"};
        const bool there[] = {t->stages, t->build_head, t->build_loss, t->decode, t->metrics_create,
                              t->metrics_accumulate, t->metrics_finalize, t->metrics_destroy};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (!there[i])
                return names[i];
        return NULL;
    }
    }
    return "ops";
}

void rb_scan_copy_ops(const rb_plugin *p, rb_plugin_ops_copy *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out, p->ops.header, p->ops_size);
}

/* Checks a descriptor of `object_size` bytes (its ELF symbol's size); on
 * failure writes the reason into `why`. */
static int descriptor_ok(const rb_plugin *p, size_t object_size, char *why, size_t size)
{
    const char *missing;
    rb_plugin_ops_copy ops;
    if (p->abi_version != RB_PLUGIN_ABI_VERSION) {
        snprintf(why, size,
                 "built for plugin ABI %u, but robusta %s loads ABI %u: rebuild it against "
                 "this robusta's headers%s",
                 p->abi_version, RB_VERSION_STRING, RB_PLUGIN_ABI_VERSION,
                 p->abi_version < 2
                     ? " (since ABI 2 plugins are defined with RB_ARCH_PLUGIN, RB_ATTACK_PLUGIN or RB_TASK_PLUGIN)"
                     : "");
        return 0;
    }
    if (p->struct_size != sizeof(rb_plugin)) {
        snprintf(why, size,
                 "descriptor size is %u bytes, but ABI %u's is %zu: rebuild it against this "
                 "robusta's headers",
                 p->struct_size, RB_PLUGIN_ABI_VERSION, sizeof(rb_plugin));
        return 0;
    }
    if (object_size < sizeof(rb_plugin)) {
        snprintf(why, size, "its %s symbol is %zu bytes, but a descriptor is %zu",
                 RB_PLUGIN_SYMBOL, object_size, sizeof(rb_plugin));
        return 0;
    }
    if (p->kind != RB_PLUGIN_ARCH && p->kind != RB_PLUGIN_ATTACK && p->kind != RB_PLUGIN_TASK) {
        snprintf(why, size, "unknown plugin kind %d (1 arch, 2 attack and 3 task are known)",
                 (int)p->kind);
        return 0;
    }
    if (!valid_plugin_name(p->name)) {
        snprintf(why, size, "plugin name '%s' is not 1-64 lower-case letters, digits, '-' or '_'",
                 p->name ? p->name : "(null)");
        return 0;
    }
    if (p->version == NULL || p->summary == NULL) {
        snprintf(why, size, "'%s' has no %s", p->name, p->version == NULL ? "version" : "summary");
        return 0;
    }
    if (p->params != NULL && rb_param_specs_validate(p->params) != RB_OK) {
        snprintf(why, size, "'%s' declares a bad parameter table: %s", p->name, rb_last_error());
        return 0;
    }
    if (p->ops.header == NULL) {
        snprintf(why, size, "'%s' has no ops table", p->name);
        return 0;
    }
    if ((uintptr_t)p->ops.header % _Alignof(void *) != 0) {
        snprintf(why, size, "'%s': its ops table is misaligned (address %p)", p->name,
                 (const void *)p->ops.header);
        return 0;
    }
    if (p->ops_size < sizeof(rb_ops_header)) {
        snprintf(why, size, "'%s': its ops table is %u bytes, too short for even its kind", p->name, p->ops_size);
        return 0;
    }
    if (p->ops.header->kind != p->kind) {
        snprintf(why, size,
                 "'%s': the descriptor says %s plugin but its ops table is for kind %d (%s): "
                 "define both with one RB_%s_PLUGIN",
                 p->name, rb_plugin_kind_str(p->kind), (int)p->ops.header->kind,
                 rb_plugin_kind_str(p->ops.header->kind),
                 p->kind == RB_PLUGIN_ARCH ? "ARCH" : p->kind == RB_PLUGIN_ATTACK ? "ATTACK" : "TASK");
        return 0;
    }
    if (p->ops_size > expected_ops_size(p->kind)) {
        snprintf(why, size,
                 "'%s': its %s ops table is %u bytes, longer than this robusta's %zu: it was built "
                 "for a newer robusta; rebuild it against this one's headers or upgrade robusta",
                 p->name, rb_plugin_kind_str(p->kind), p->ops_size, expected_ops_size(p->kind));
        return 0;
    }
    if (p->ops_size < required_ops_size(p->kind)) {
        snprintf(why, size,
                 "'%s': its %s ops table is %u bytes, too short to hold the required callbacks "
                 "(%zu bytes): rebuild it against this robusta's headers",
                 p->name, rb_plugin_kind_str(p->kind), p->ops_size, required_ops_size(p->kind));
        return 0;
    }
    rb_scan_copy_ops(p, &ops);
    if (p->kind == RB_PLUGIN_TASK) {
        if (ops.task.dataset_kind < RB_DATASET_CLASSIFICATION ||
            ops.task.dataset_kind > RB_DATASET_SEGMENTATION) {
            snprintf(why, size, "'%s' asks for unknown dataset kind %d", p->name,
                     (int)ops.task.dataset_kind);
            return 0;
        }
        if (ops.task.primary_metric == NULL || ops.task.primary_metric[0] == '\0') {
            snprintf(why, size, "'%s' names no primary_metric (the metric that ranks models)", p->name);
            return 0;
        }
    }
    if ((missing = missing_callback(p->kind, &ops)) != NULL) {
        snprintf(why, size, "'%s' lacks the required %s callback %s", p->name,
                 rb_plugin_kind_str(p->kind), missing);
        return 0;
    }
    return 1;
}


/* The ELF facts of the descriptor symbol: it must be a data object, aligned
 * for rb_plugin and at least as large as the fields read before its size is
 * known. Reading a function's code as a descriptor is undefined behaviour. */
static int symbol_ok(const void *sym, char *why, size_t size, size_t *object_size)
{
    Dl_info info;
    const ElfW(Sym) *elf = NULL;
    unsigned type;

    if (dladdr1(sym, &info, (void **)&elf, RTLD_DL_SYMENT) == 0 || elf == NULL) {
        snprintf(why, size, "its %s symbol lies outside any loaded object", RB_PLUGIN_SYMBOL);
        return 0;
    }
    type = ELF64_ST_TYPE(elf->st_info);
    if (type == STT_FUNC || type == STT_GNU_IFUNC) {
        snprintf(why, size,
                 "its %s symbol is a function, not a const struct rb_plugin (declare it with "
                 "RB_PLUGIN_EXPORT const rb_plugin " RB_PLUGIN_SYMBOL " = {...})",
                 RB_PLUGIN_SYMBOL);
        return 0;
    }
    if (type != STT_OBJECT) {
        snprintf(why, size, "its %s symbol is not a data object (ELF symbol type %u)",
                 RB_PLUGIN_SYMBOL, type);
        return 0;
    }
    if ((uintptr_t)sym % _Alignof(rb_plugin) != 0) {
        snprintf(why, size, "its %s symbol is misaligned (address %p)", RB_PLUGIN_SYMBOL, sym);
        return 0;
    }
    if (elf->st_size < offsetof(rb_plugin, kind)) {
        snprintf(why, size, "its %s symbol is %zu bytes, too small for a descriptor",
                 RB_PLUGIN_SYMBOL, (size_t)elf->st_size);
        return 0;
    }
    *object_size = (size_t)elf->st_size;
    return 1;
}

const rb_plugin *rb_scan_check_handle(void *handle, char *why, size_t size)
{
    const rb_plugin *p;
    size_t object_size;
    void *sym;

    dlerror();
    sym = dlsym(handle, RB_PLUGIN_SYMBOL);
    if (sym == NULL) {
        snprintf(why, size, "not a robusta plugin: it exports no %s symbol", RB_PLUGIN_SYMBOL);
        return NULL;
    }
    if (!symbol_ok(sym, why, size, &object_size))
        return NULL;
    p = sym;
    if (!descriptor_ok(p, object_size, why, size))
        return NULL;
    return p;
}

/* ------------------------------------------------------------ child scan */

double rb_scan_timeout(void)
{
    const char *text = getenv("RB_PLUGIN_SCAN_TIMEOUT");
    char *end;
    double t;
    if (text == NULL || text[0] == '\0')
        return 5.0;
    errno = 0;
    t = strtod(text, &end);
    if (errno != 0 || *end != '\0' || !(t > 0.0 && t <= 3600.0)) {
        static int warned; /* once a process, not once a file */
        if (!warned++)
            rb_log(RB_LOG_WARN,
                   "RB_PLUGIN_SCAN_TIMEOUT=%s is not a number of seconds in (0, 3600]; using 5",
                   text);
        return 5.0;
    }
    return t;
}

/* Replaces control characters (a plugin's name may hold anything) so that
 * a reason stays one line and one cache field. */
static void one_line(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

static void copy_truncated(char *out, size_t size, const char *s)
{
    size_t n = strlen(s);
    if (n >= size)
        n = size - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

static void write_all(int fd, const char *data, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, data, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        data += w;
        n -= (size_t)w;
    }
}

/* The child: no return. Reports 'L' once dlopen returned, then "O<kind>
 * <name>\n" or "R<reason>\n". */
static void scan_child(int fd, const char *openable)
{
    static const int deadly[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS, SIGTRAP};
    struct rlimit no_core = {0, 0};
    char why[768], line[900];
    const rb_plugin *p;
    void *handle;
    int null_fd;

    /* Die of the signal itself (sanitizer runtimes would catch it and exit
     * 1), leave no core file, print nothing on the caller's stdout. */
    for (size_t i = 0; i < sizeof deadly / sizeof deadly[0]; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        sigaction(deadly[i], &sa, NULL);
    }
    setrlimit(RLIMIT_CORE, &no_core);
    if ((null_fd = open("/dev/null", O_WRONLY)) >= 0) {
        dup2(null_fd, STDOUT_FILENO);
        close(null_fd);
    }
    handle = dlopen(openable, RTLD_NOW | RTLD_LOCAL);
    write_all(fd, "L", 1);
    if (handle == NULL) {
        const char *err = dlerror();
        snprintf(line, sizeof line,
                 "Rnot a robusta plugin: cannot load it as a shared object (%s)",
                 err ? err : "unknown dlopen error");
    } else if ((p = rb_scan_check_handle(handle, why, sizeof why)) == NULL) {
        snprintf(line, sizeof line, "R%s", why);
    } else {
        snprintf(line, sizeof line, "O%d %s", (int)p->kind, p->name);
    }
    one_line(line);
    write_all(fd, line, strlen(line));
    write_all(fd, "\n", 1);
    _exit(0);
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    case SIGABRT: return "SIGABRT";
    case SIGKILL: return "SIGKILL";
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGPIPE: return "SIGPIPE";
    case SIGSYS: return "SIGSYS";
    case SIGTRAP: return "SIGTRAP";
    }
    return NULL;
}

static void describe_signal(int sig, char *out, size_t size)
{
    const char *name = signal_name(sig);
    if (name != NULL)
        snprintf(out, size, "%s", name);
    else
        snprintf(out, size, "signal %d", sig);
}

/* Waits up to `deadline` (monotonic seconds) for the child; kills it
 * when the time is up. Returns its wait status, or -1 when it could not be
 * reaped (SIGCHLD ignored) . */
static int reap(pid_t pid, double deadline, int *timed_out)
{
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            return -1;
        if (rb_monotonic_seconds() >= deadline) {
            *timed_out = 1;
            kill(pid, SIGKILL);
            while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
                ;
            return r == pid ? status : -1;
        }
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
}

void rb_scan_file(const char *openable, double timeout_s, rb_scan_result *out)
{
    char buf[1024];
    size_t used = 0;
    int fds[2], status, timed_out = 0, loaded;
    double deadline = rb_monotonic_seconds() + timeout_s;
    pid_t pid;

    memset(out, 0, sizeof *out);
    if (pipe(fds) != 0) {
        snprintf(out->reason, sizeof out->reason, "cannot scan it: pipe: %s", strerror(errno));
        out->transient = 1;
        return;
    }
    fflush(NULL); /* a child calling exit() would write the parent's buffers again */
    pid = fork();
    if (pid < 0) {
        snprintf(out->reason, sizeof out->reason, "cannot scan it: fork: %s", strerror(errno));
        out->transient = 1;
        close(fds[0]);
        close(fds[1]);
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        scan_child(fds[1], openable);
    }
    close(fds[1]);
    for (;;) {
        double left = deadline - rb_monotonic_seconds();
        struct pollfd pfd = {fds[0], POLLIN, 0};
        ssize_t n;
        int r;
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        r = poll(&pfd, 1, (int)(left * 1000.0) + 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue; /* the deadline check above ends the wait */
        n = read(fds[0], buf + used, sizeof buf - 1 - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        used += (size_t)n;
        if (used == sizeof buf - 1 || memchr(buf, '\n', used) != NULL)
            break;
    }
    close(fds[0]);
    buf[used] = '\0';
    if (timed_out)
        deadline = 0; /* kill at once */
    status = reap(pid, deadline, &timed_out);
    loaded = used > 0 && buf[0] == 'L';

    if (loaded && used > 2 && strchr(buf, '\n') != NULL) {
        char *line = buf + 1, *nl = strchr(line, '\n');
        *nl = '\0';
        if (line[0] == 'O') {
            int kind;
            char *space = strchr(line + 1, ' ');
            if (space != NULL && sscanf(line + 1, "%d", &kind) == 1 &&
                strlen(space + 1) < sizeof out->name) {
                out->ok = 1;
                out->kind = (rb_plugin_kind)kind;
                snprintf(out->name, sizeof out->name, "%s", space + 1);
                return;
            }
        } else if (line[0] == 'R') {
            copy_truncated(out->reason, sizeof out->reason, line + 1);
            return;
        }
        snprintf(out->reason, sizeof out->reason, "its scan reported garbage");
        return;
    }
    if (timed_out) {
        out->timed_out = timeout_s;
        snprintf(out->reason, sizeof out->reason,
                 "it did not finish loading within %g s (its constructors never returned); "
                 "RB_PLUGIN_SCAN_TIMEOUT sets the limit",
                 timeout_s);
    } else if (status != -1 && WIFSIGNALED(status)) {
        char sig[32];
        describe_signal(WTERMSIG(status), sig, sizeof sig);
        if (loaded)
            snprintf(out->reason, sizeof out->reason,
                     "it crashed with %s while its descriptor was read", sig);
        else
            snprintf(out->reason, sizeof out->reason, "its constructor crashed with %s", sig);
    } else if (status != -1 && WIFEXITED(status)) {
        snprintf(out->reason, sizeof out->reason, "it called exit(%d) while %s",
                 WEXITSTATUS(status), loaded ? "its descriptor was read" : "loading");
    } else {
        snprintf(out->reason, sizeof out->reason, "its scan ended without a verdict");
        out->transient = 1;
    }
}

/* ------------------------------------------------------------ cache */

void rb_scan_key_of(const struct stat *st, rb_scan_key *key)
{
    key->dev = (long long)st->st_dev;
    key->ino = (long long)st->st_ino;
    key->size = (long long)st->st_size;
    key->mtime_s = (long long)st->st_mtim.tv_sec;
    key->mtime_ns = (long long)st->st_mtim.tv_nsec;
    key->ctime_s = (long long)st->st_ctim.tv_sec;
    key->ctime_ns = (long long)st->st_ctim.tv_nsec;
}

int rb_scan_key_equal(const rb_scan_key *a, const rb_scan_key *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime_s == b->mtime_s && a->mtime_ns == b->mtime_ns && a->ctime_s == b->ctime_s &&
           a->ctime_ns == b->ctime_ns;
}

typedef struct cache_entry {
    char *path;
    rb_scan_key key;
    rb_scan_result result;
} cache_entry;

struct rb_scan_cache {
    char *file; /* NULL: no persistent cache */
    cache_entry *items;
    size_t count, capacity;
    int dirty;
};

#define CACHE_MAGIC "robusta-plugin-scan 1"
#define CACHE_LIMIT (4u << 20)
#define CACHE_MAX_ENTRIES 4096

/* The cache file's name, or NULL for none. */
static char *cache_file_name(void)
{
    const char *env = getenv("RB_PLUGIN_CACHE");
    char path[PATH_MAX];
    if (env != NULL && env[0] != '\0') {
        if (strcmp(env, "off") == 0 || strcmp(env, "none") == 0 || strcmp(env, "0") == 0)
            return NULL;
        return strdup(env);
    }
    if (rb_user_cache_path("plugin-scan", path, sizeof path) != RB_OK) {
        rb_error_clear();
        return NULL;
    }
    return strdup(path);
}

static void cache_clear(rb_scan_cache *c)
{
    for (size_t i = 0; i < c->count; i++)
        free(c->items[i].path);
    c->count = 0;
}

static cache_entry *cache_find(const rb_scan_cache *c, const char *path)
{
    for (size_t i = 0; i < c->count; i++)
        if (strcmp(c->items[i].path, path) == 0)
            return &c->items[i];
    return NULL;
}

static int cache_add(rb_scan_cache *c, const char *path, const rb_scan_key *key,
                     const rb_scan_result *result)
{
    cache_entry *e = cache_find(c, path);
    if (e == NULL) {
        if (c->count == c->capacity) {
            size_t want = c->capacity ? c->capacity * 2 : 16;
            cache_entry *bigger;
            if (c->count >= CACHE_MAX_ENTRIES)
                return 0;
            if ((bigger = realloc(c->items, want * sizeof *bigger)) == NULL)
                return 0;
            c->items = bigger;
            c->capacity = want;
        }
        e = &c->items[c->count];
        if ((e->path = strdup(path)) == NULL)
            return 0;
        c->count++;
    }
    e->key = *key;
    e->result = *result;
    return 1;
}

/* The header line: a cache written by another version (other messages,
 * another ABI) or by another build of the library (its checks may differ
 * within a version while it is developed) is not used. */
static void cache_header(char *out, size_t size)
{
    Dl_info info;
    struct stat st;
    long long built = 0;
    if (dladdr((void *)cache_header, &info) != 0 && info.dli_fname != NULL && stat(info.dli_fname, &st) == 0)
        built = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    snprintf(out, size, CACHE_MAGIC " robusta %s abi %u build %lld", RB_VERSION_STRING,
             (unsigned)RB_PLUGIN_ABI_VERSION, built);
}

/* One record: PATH \t dev ino size mtime_s mtime_ns ctime_s ctime_ns \t
 * O kind name | R reason | T limit reason. Returns 0 on anything
 * unexpected. */
static int parse_record(rb_scan_cache *c, char *line)
{
    char *tab1 = strchr(line, '\t'), *tab2, *verdict;
    rb_scan_key key;
    rb_scan_result result;
    int used = 0;

    if (tab1 == NULL || tab1 == line)
        return 0;
    *tab1 = '\0';
    if ((tab2 = strchr(tab1 + 1, '\t')) == NULL)
        return 0;
    *tab2 = '\0';
    if (sscanf(tab1 + 1, "%lld %lld %lld %lld %lld %lld %lld%n", &key.dev, &key.ino, &key.size,
               &key.mtime_s, &key.mtime_ns, &key.ctime_s, &key.ctime_ns, &used) != 7 ||
        tab1[1 + used] != '\0')
        return 0;
    memset(&result, 0, sizeof result);
    verdict = tab2 + 1;
    if (verdict[0] == 'O') {
        int kind, n = 0;
        if (sscanf(verdict + 1, "%d %n", &kind, &n) != 1 || n == 0 ||
            (kind != RB_PLUGIN_ARCH && kind != RB_PLUGIN_ATTACK && kind != RB_PLUGIN_TASK) ||
            !valid_plugin_name(verdict + 1 + n))
            return 0;
        result.ok = 1;
        result.kind = (rb_plugin_kind)kind;
        snprintf(result.name, sizeof result.name, "%s", verdict + 1 + n);
    } else if (verdict[0] == 'R' && verdict[1] != '\0' &&
               strlen(verdict + 1) < sizeof result.reason) {
        snprintf(result.reason, sizeof result.reason, "%s", verdict + 1);
    } else if (verdict[0] == 'T') {
        int n = 0;
        if (sscanf(verdict + 1, "%lf %n", &result.timed_out, &n) != 1 || n == 0 ||
            !(result.timed_out > 0) || verdict[1 + n] == '\0' ||
            strlen(verdict + 1 + n) >= sizeof result.reason)
            return 0;
        snprintf(result.reason, sizeof result.reason, "%s", verdict + 1 + n);
    } else {
        return 0;
    }
    return cache_add(c, line, &key, &result);
}

rb_scan_cache *rb_scan_cache_open(void)
{
    rb_scan_cache *c = calloc(1, sizeof *c);
    unsigned char *data = NULL;
    size_t size = 0;
    char header[128], *text, *line;
    int good = 1;

    if (c == NULL)
        return NULL;
    if ((c->file = cache_file_name()) == NULL)
        return c;
    if (rb_file_read_all(c->file, CACHE_LIMIT, &data, &size) != RB_OK) {
        rb_error_clear();
        return c; /* none yet, or unreadable: start empty */
    }
    text = (char *)data;
    cache_header(header, sizeof header);
    if (memchr(text, '\0', size) != NULL || size == 0 || text[size - 1] != '\n')
        good = 0;
    else {
        text[size - 1] = '\0';
        line = strtok(text, "\n");
        if (line == NULL || strcmp(line, header) != 0)
            good = 0;
        while (good && (line = strtok(NULL, "\n")) != NULL)
            good = parse_record(c, line);
    }
    if (!good) {
        rb_log(RB_LOG_DEBUG, "plugin scan cache %s is not one this robusta wrote; scanning afresh",
               c->file);
        cache_clear(c);
        c->dirty = 1; /* replace it */
    }
    free(data);
    return c;
}

int rb_scan_cache_get(const rb_scan_cache *c, const char *path, const rb_scan_key *key,
                      double timeout_s, rb_scan_result *out)
{
    const cache_entry *e = c ? cache_find(c, path) : NULL;
    if (e == NULL || !rb_scan_key_equal(&e->key, key))
        return 0;
    if (e->result.timed_out > 0 && e->result.timed_out < timeout_s)
        return 0; /* the limit was raised since: give it the new one */
    *out = e->result;
    return 1;
}

void rb_scan_cache_put(rb_scan_cache *c, const char *path, const rb_scan_key *key,
                       const rb_scan_result *result)
{
    if (c == NULL || c->file == NULL || result->transient || strpbrk(path, "\t\n") != NULL)
        return;
    if (cache_add(c, path, key, result))
        c->dirty = 1;
}

void rb_scan_cache_flush(rb_scan_cache *c)
{
    char header[128];
    size_t cap = 256, len = 0;
    char *text;

    if (c == NULL || c->file == NULL || !c->dirty)
        return;
    for (size_t i = 0; i < c->count; i++)
        cap += strlen(c->items[i].path) + 1100;
    if ((text = malloc(cap)) == NULL)
        return;
    cache_header(header, sizeof header);
    len += (size_t)snprintf(text + len, cap - len, "%s\n", header);
    for (size_t i = 0; i < c->count; i++) {
        const cache_entry *e = &c->items[i];
        const rb_scan_key *k = &e->key;
        struct stat st;
        if (stat(e->path, &st) != 0)
            continue; /* forget files that are gone */
        len += (size_t)snprintf(text + len, cap - len, "%s\t%lld %lld %lld %lld %lld %lld %lld\t",
                                e->path, k->dev, k->ino, k->size, k->mtime_s, k->mtime_ns,
                                k->ctime_s, k->ctime_ns);
        if (e->result.ok)
            len += (size_t)snprintf(text + len, cap - len, "O%d %s\n", (int)e->result.kind,
                                    e->result.name);
        else if (e->result.timed_out > 0)
            len += (size_t)snprintf(text + len, cap - len, "T%.17g %s\n", e->result.timed_out,
                                    e->result.reason);
        else
            len += (size_t)snprintf(text + len, cap - len, "R%s\n", e->result.reason);
    }
    if (rb_make_parent_folders(c->file) != RB_OK || rb_file_write_atomic(c->file, text, len) != RB_OK) {
        rb_log(RB_LOG_DEBUG, "plugin scan cache not written: %s", rb_last_error());
        rb_error_clear();
    }
    free(text);
    c->dirty = 0;
}

void rb_scan_cache_close(rb_scan_cache *c)
{
    if (c == NULL)
        return;
    cache_clear(c);
    free(c->items);
    free(c->file);
    free(c);
}
