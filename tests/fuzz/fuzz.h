/* Shared by the libFuzzer harnesses in tests/fuzz/: each fuzz_NAME.c defines
 * LLVMFuzzerTestOneInput for one parser of untrusted bytes. The same file
 * links with libFuzzer (make fuzz) or with replay.c, a plain main() that
 * feeds it every file of tests/fuzz/corpus/NAME/ (make check).
 *
 * A harness checks what the in-test mutation fuzzing (tests/check_fuzz.c)
 * checks: an input either parses, and is then read to its end, or fails
 * with a message of one non-empty line. Anything else aborts, which both
 * drivers report as a failure. */
#ifndef ROBUSTA_FUZZ_H
#define ROBUSTA_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/robusta.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Mutants may warn; the messages are checked instead. */
static inline void fuzz_init(void)
{
    static int done;
    if (!done) {
        rb_log_set_level(RB_LOG_ERROR);
        done = 1;
    }
}

/* A refusal's message: one line, not empty. */
static inline void fuzz_expect_one_line(const char *parser, rb_status s)
{
    const char *m = rb_last_error();
    if (s != RB_OK && m != NULL && m[0] != '\0' && strchr(m, '\n') == NULL)
        return;
    fprintf(stderr, "%s: status %d with message '%s': not a one-line refusal\n", parser, (int)s, m ? m : "(null)");
    abort();
}

/* Aborts with `what` unless `ok`: for properties of accepted inputs. */
static inline void fuzz_assert(int ok, const char *parser, const char *what)
{
    if (!ok) {
        fprintf(stderr, "%s: %s\n", parser, what);
        abort();
    }
}

/* A copy of `size` bytes with a terminator, for parsers of C strings. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        abort();
    if (size > 0)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
