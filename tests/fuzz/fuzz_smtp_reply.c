/* fuzz_smtp_reply.c — libFuzzer target for the SMTP reply parser (lib/smtp_reply.c).
 *
 *   scripts/run-fuzz smtp_reply 60
 *
 * Feeds arbitrary bytes in chunks; every reply the parser returns must have a code in
 * 200..599 and at least one line, and the parser must always make progress. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <event2/buffer.h>

#include "smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = (size_t)data[0] % 128 + 1;
    data++;
    size--;
    struct evbuffer *in = evbuffer_new();
    if (in == NULL)
        return 0;
    struct smtp_reply r;
    smtp_reply_init(&r);
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        evbuffer_add(in, data + off, n);
        for (int guard = 0; guard < 100000; guard++) {
            struct etrn_err err = {{0}};
            size_t before = evbuffer_get_length(in);
            enum smtp_reply_status st = smtp_reply_parse(in, &r, &err);
            if (st == SMTP_REPLY_INCOMPLETE)
                break;
            if (st == SMTP_REPLY_OK && (r.code < 200 || r.code > 599 || r.nlines == 0))
                abort();
            if (evbuffer_get_length(in) >= before)
                abort(); /* OK or MALFORMED must consume input */
        }
    }
    smtp_reply_free(&r);
    evbuffer_free(in);
    return 0;
}
