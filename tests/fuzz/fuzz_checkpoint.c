/* libFuzzer harness: .rbt checkpoints (rb_checkpoint_parse).
 *
 * The first byte chooses the mode. Even: the rest is a whole file, parsed
 * with every tensor decompressed and verified (bit 1 set: index only, as
 * `inspect` reads). Odd: the rest is "LEN(2 bytes, little-endian) JSON
 * header, then the data section", and the harness writes the preamble
 * around it with a correct length and CRC-32, so that mutations reach the
 * JSON and index checks that the CRC otherwise guards. */
#include "config.h"

#include <zlib.h>

#include "fuzz.h"

static void parse(const uint8_t *bytes, size_t size, unsigned flags)
{
    rb_checkpoint *c = NULL;
    rb_status s = rb_checkpoint_parse(&c, bytes, size, "fuzz.rbt", flags);
    if (s != RB_OK) {
        fuzz_expect_one_line("checkpoint", s);
        return;
    }
    for (size_t k = 0; k < rb_checkpoint_count(c); k++) {
        rb_checkpoint_tensor t;
        unsigned sum = 0;
        fuzz_assert(rb_checkpoint_get(c, k, &t) == RB_OK, "checkpoint", "an indexed tensor cannot be got");
        if (t.data != NULL) /* NULL for index-only loads */
            for (size_t b = 0; b < t.nbytes; b++)
                sum += ((const unsigned char *)t.data)[b];
        (void)sum;
    }
    fuzz_assert(rb_checkpoint_metadata(c) != NULL, "checkpoint", "accepted without metadata");
    rb_checkpoint_destroy(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    if (size < 1)
        return 0;
    if ((data[0] & 1u) == 0) {
        /* an exact-size copy, so that a read past the end is caught */
        uint8_t *copy = malloc(size - 1 ? size - 1 : 1);
        memcpy(copy, data + 1, size - 1);
        parse(copy, size - 1, (data[0] & 2u) ? RB_CHECKPOINT_INDEX_ONLY : 0);
        free(copy);
        return 0;
    }
    if (size < 3)
        return 0;
    {
        size_t h = (size_t)data[1] | (size_t)data[2] << 8, rest = size - 3;
        size_t total;
        uint8_t *file;
        uint32_t crc, zero = 0, version = RB_CHECKPOINT_VERSION;
        uint64_t h64;
        if (h > rest)
            h = rest;
        h64 = h;
        total = 32 + rest;
        file = malloc(total);
        crc = (uint32_t)crc32(0L, data + 3, (uInt)h);
        memcpy(file, RB_CHECKPOINT_MAGIC, 8);
        memcpy(file + 8, &version, 4); /* little-endian hosts only, as the format */
        memcpy(file + 12, &zero, 4);
        memcpy(file + 16, &h64, 8);
        memcpy(file + 24, &crc, 4);
        memcpy(file + 28, &zero, 4);
        memcpy(file + 32, data + 3, rest);
        parse(file, total, (data[0] & 2u) ? RB_CHECKPOINT_INDEX_ONLY : 0);
        free(file);
    }
    return 0;
}
