/* dns_malformed.c — the only place that writes DNS bytes by hand, and only broken ones.
 *
 *   len = dns_malformed_cut_off(wire, len);            // a message ending mid-record
 *   len = dns_malformed_pointer_loop(q, qlen, out, n); // an owner name pointing at itself
 *
 * What field bugs look like on the wire: a middlebox or a buggy server cutting a datagram
 * without setting TC, and a compression pointer that loops. Guarantees: never reads past
 * the given lengths, never writes past outmax, and the ID and question always match the
 * query so resolvers cannot discard the packet as unrelated. */
#include <string.h>

#include "dns_malformed.h"

size_t dns_malformed_skip_name(const uint8_t *wire, size_t len, size_t off)
{
    /* At most 128 labels fit in 255 octets; more means garbage. */
    for (int labels = 0; labels < 128; labels++) {
        if (off >= len)
            return 0;
        uint8_t c = wire[off];
        if (c == 0)
            return off + 1;
        if ((c & 0xc0) == 0xc0)
            return off + 2 <= len ? off + 2 : 0;
        if ((c & 0xc0) != 0)
            return 0;
        off += (size_t)c + 1;
    }
    return 0;
}

size_t dns_malformed_cut_off(const uint8_t *wire, size_t len)
{
    if (len <= DNS_HEADER_LEN)
        return len;
    unsigned qdcount = (unsigned)wire[4] << 8 | wire[5];
    unsigned ancount = (unsigned)wire[6] << 8 | wire[7];
    size_t off = DNS_HEADER_LEN;
    for (unsigned i = 0; i < qdcount; i++) {
        size_t end = dns_malformed_skip_name(wire, len, off);
        if (end == 0 || end + 4 > len)
            return len;
        if (ancount == 0)
            /* Nothing to cut in the answer: end inside the question's name. */
            return off + (end - off) / 2 > off ? off + (end - off) / 2 : off + 1;
        off = end + 4;
    }
    if (ancount == 0)
        return DNS_HEADER_LEN + 1;
    size_t end = dns_malformed_skip_name(wire, len, off);
    if (end == 0 || end + 10 > len)
        return len;
    size_t rdlength = (size_t)wire[end + 8] << 8 | wire[end + 9];
    size_t rdata = end + 10;
    if (rdlength < 2)
        return end + 5;   /* inside the fixed part (TTL) */
    /* An RDLENGTH that runs past the packet (inconsistent input) must not cut past it. */
    return rdata + rdlength / 2 < len ? rdata + rdlength / 2 : len;
}

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

size_t dns_malformed_pointer_loop(const uint8_t *query, size_t qlen, uint8_t *out,
                                  size_t outmax)
{
    if (qlen <= DNS_HEADER_LEN)
        return 0;
    size_t qend = dns_malformed_skip_name(query, qlen, DNS_HEADER_LEN);
    if (qend == 0 || qend + 4 > qlen)
        return 0;
    qend += 4;
    size_t answer = qend;
    size_t total = answer + 2 + 10 + 4;
    if (total > outmax || answer > 0x3fff)
        return 0;
    memcpy(out, query, qend);
    out[2] = (uint8_t)(0x80 | 0x04 | (query[2] & 0x79));   /* QR, AA; opcode and RD kept */
    out[3] = 0x80;                                          /* RA, NOERROR */
    put16(out + 4, 1);
    put16(out + 6, 1);
    put16(out + 8, 0);
    put16(out + 10, 0);
    uint8_t *p = out + answer;
    put16(p, 0xc000 | (unsigned)answer);   /* the owner name is a pointer to itself */
    put16(p + 2, 1);                       /* A */
    put16(p + 4, 1);                       /* IN */
    put16(p + 6, 0);
    put16(p + 8, 60);                      /* TTL */
    put16(p + 10, 4);
    p[12] = 127, p[13] = 0, p[14] = 0, p[15] = 2;
    return total;
}
