/* Replays a fuzz corpus without libFuzzer: a main() that feeds every file
 * of the folders given (default: FUZZ_CORPUS, set at build time) to the
 * harness it is linked with, each in an allocation of exactly its size.
 * `make check` runs one such program per harness, so every committed
 * corpus file (seeds and the regression inputs of past findings) goes
 * through its parser on every build, sanitizers included when configured.
 * Fails when a folder is missing or empty; a crash or a harness's abort
 * fails it too, after the file's name is printed. */
#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    long n;
    uint8_t *bytes;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        if (f != NULL)
            fclose(f);
        return 1;
    }
    bytes = malloc(n > 0 ? (size_t)n : 1);
    if (bytes == NULL || fread(bytes, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        free(bytes);
        fclose(f);
        return 1;
    }
    fclose(f);
    printf("replay: %s (%ld bytes)\n", path, n);
    fflush(stdout);
    LLVMFuzzerTestOneInput(bytes, (size_t)n);
    free(bytes);
    return 0;
}

static int replay_dir(const char *dir, size_t *count)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int failed = 0;
    if (d == NULL) {
        fprintf(stderr, "replay: cannot open the corpus folder %s\n", dir);
        return 1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, cap * sizeof *names);
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name); /* the same order on every file system */
    for (size_t k = 0; k < n; k++) {
        size_t len = strlen(dir) + strlen(names[k]) + 2;
        char *path = malloc(len);
        snprintf(path, len, "%s/%s", dir, names[k]);
        failed |= replay_file(path);
        free(path);
        free(names[k]);
    }
    free(names);
    *count += n;
    return failed;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    int failed = 0;
    if (argc > 1)
        for (int k = 1; k < argc; k++)
            failed |= replay_dir(argv[k], &count);
    else
        failed = replay_dir(FUZZ_CORPUS, &count);
    if (count == 0) {
        fprintf(stderr, "replay: no corpus files\n");
        return 1;
    }
    printf("replay: %zu inputs, %s\n", count, failed ? "some unreadable" : "all passed");
    return failed;
}
