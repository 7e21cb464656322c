/* domain.h — domain-name knowledge: syntax checks, case-insensitive comparison and
 * label-aligned subdomain tests, as RFC 5321 §4.1.2 and RFC 1985 §5/§5.3 need them.
 *
 *   if (domain_check(arg, strlen(arg), DOMAIN_REQUIRE_FQDN, &err) < 0) reply 501 err.msg;
 *   domain_equal("Node.Test", "node.test.")      -> 1
 *   domain_is_within("a.foo.test", "foo.test")   -> 1;  domain_is_within("xfoo.test", "foo.test") -> 0
 *
 * Names are LDH (letters, digits, hyphen) labels of 1..63 octets, no label starts or
 * ends with '-', the whole name is at most 253 octets without the optional trailing
 * dot (255 on the wire). Comparison is ASCII case-insensitive and ignores one trailing dot. */
#ifndef ETRN_DOMAIN_H
#define ETRN_DOMAIN_H

#include <stddef.h>
#include "err.h"

#define DOMAIN_MAX 253          /* text form, without trailing dot */
#define DOMAIN_LABEL_MAX 63

#define DOMAIN_REQUIRE_FQDN 0x1u   /* at least two labels (RFC 1985 §5: "fully qualified") */
#define DOMAIN_ALLOW_UNDERSCORE 0x2u  /* accept '_' (DNS service labels; never for ETRN) */

/* 0 if valid; -1 with a reason in err ("label 'a_b' has invalid character '_'"). */
int domain_check(const char *name, size_t len, unsigned flags, struct etrn_err *err);
int domain_equal(const char *a, const char *b);
/* 1 if name equals parent or ends with "." parent (label-aligned), case-insensitive. */
int domain_is_within(const char *name, const char *parent);
/* Copies name lowercased without trailing dot into out (size n); -1 if it does not fit. */
int domain_normalize(const char *name, char *out, size_t n);
/* Number of labels ("a.b.c" -> 3; "" -> 0). */
size_t domain_label_count(const char *name);
/* The domain part of an address "user@Dom.Example" (after the last '@'), or NULL if
 * there is no '@'. Usually a pointer into addr; for a bracketed "<user@dom>" the '>' is
 * stripped and the result is a per-thread copy valid until the next call (NULL if the
 * domain is longer than DOMAIN_MAX + 1). */
const char *domain_of_address(const char *addr);

#endif
