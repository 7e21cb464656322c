/* fuzz_smtp_line.c — libFuzzer target for the SMTP line reader (lib/smtp_line.c).
 *
 *   scripts/run-fuzz smtp_line 60      # build with clang -fsanitize=fuzzer,address and run 60 s
 *
 * The input is split into chunks at arbitrary points (first byte = chunk size) to exercise
 * lines arriving in pieces; each returned line must respect the limit and its length. */
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <stdlib.h>
#include <event2/buffer.h>

#include "smtp_line.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t chunk = (size_t)data[0] % 64 + 1;
    size_t limit = data[1] & 1 ? SMTP_TEXT_LINE_MAX : SMTP_COMMAND_LINE_MAX;
    data += 2;
    size -= 2;
    struct evbuffer *in = evbuffer_new();
    if (in == NULL)
        return 0;
    struct smtp_line_reader rd;
    smtp_line_reader_init(&rd, limit);
    struct smtp_line line;
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        evbuffer_add(in, data + off, n);
        enum smtp_line_status st;
        while ((st = smtp_line_read(&rd, in, &line)) != SMTP_LINE_INCOMPLETE) {
            if (st == SMTP_LINE_OK && line.len + 2 > limit)
                abort(); /* a returned line never exceeds the limit */
        }
        if (evbuffer_get_length(in) > limit)
            abort(); /* memory held stays bounded by the limit */
    }
    evbuffer_free(in);
    return 0;
}
