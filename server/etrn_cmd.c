/* etrn_cmd.c — parses an ETRN argument and chooses the reply (RFC 1985 §5, §5.1, §7).
 *
 *   etrn_parse(" @Foo.Test ", 10, 0, &rq, &why)   -> OK, option '@', node "foo.test"
 *   etrn_parse("a_b.test", 8, 0, &rq, &why)       -> BAD, "'a_b.test': label 'a_b' has ..."
 *   etrn_reply_choose(ETRN_OUTCOME_STARTED, &rq, 14, ETRN_REPLY_COUNTED, 0, NULL, &r) -> 253 2.0.0
 *
 * Guarantees: the node is mandatory (no argument → 500, R1985-5.1); exactly one argument
 * (R1985-2.3); a plain or '@' node is an LDH domain (R5321-4.1.2) and a plain node is
 * fully qualified (R1985-5.4); nodes are lowercased (R5321-2.4) unless a test-only defect
 * says otherwise; address literals are refused with 501 (a documented choice, §3-A8).
 * Every reply carries an enhanced code of its own class (R2034-3/4a). */
#include <string.h>

#include "etrn_cmd.h"
#include "etrnd_config.h"
#include "strbuf.h"

static int etrn_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* The argument quoted for an error message: printable ASCII only, at most 64 octets. */
static void etrn_quote(const char *s, size_t len, char *out, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < len && i < 64 && j + 4 < n; i++)
        out[j++] = ((unsigned char)s[i] > 0x20 && (unsigned char)s[i] < 0x7f) ? s[i] : '?';
    if (len > 64 && j + 4 < n) {
        memcpy(out + j, "...", 3);
        j += 3;
    }
    out[j] = '\0';
}

static enum etrn_syntax etrn_bad(struct etrn_err *why, const char *fmt, const char *arg)
{
    err_set(why, fmt, arg);
    return ETRN_SYNTAX_BAD;
}

enum etrn_syntax etrn_parse(const char *args, size_t len, unsigned flags,
                            struct etrn_request *rq, struct etrn_err *why)
{
    memset(rq, 0, sizeof *rq);
    while (len > 0 && etrn_blank(args[0])) {
        args++;
        len--;
    }
    while (len > 0 && etrn_blank(args[len - 1]))
        len--;
    if (len == 0) {
        err_set(why, "ETRN needs a node name");
        return ETRN_SYNTAX_MISSING;
    }
    char q[80];
    etrn_quote(args, len, q, sizeof q);
    for (size_t i = 0; i < len; i++) {
        if (etrn_blank(args[i]))
            return etrn_bad(why, "'%s': ETRN takes a single node name", q);
        if ((unsigned char)args[i] < 0x21 || (unsigned char)args[i] > 0x7e)
            return etrn_bad(why, "'%s': invalid character in node name", q);
    }
    /* '@' or '#', a name of DOMAIN_MAX octets and its optional trailing dot */
    if (len > DOMAIN_MAX + 2)
        return etrn_bad(why, "'%s': node name too long", q);

    char opt = args[0];
    if (opt == '#') {
        const char *name = args + 1;
        size_t nl = len - 1;
        if (nl == 0)
            return etrn_bad(why, "'%s': a queue name must follow '#'", q);
        if (nl > ETRN_QUEUE_NAME_MAX)
            return etrn_bad(why, "'%s': queue name too long", q);
        rq->option = ETRN_OPTION_HASH;
        memcpy(rq->node, name, nl);
        rq->node[nl] = '\0';
        str_format(rq->display, sizeof rq->display, "#%s", rq->node);
        return ETRN_SYNTAX_OK;
    }
    int at = opt == '@';
    const char *dom = args + at;
    size_t dl = len - (size_t)at;
    if (at && dl == 0)
        return etrn_bad(why, "'%s': a domain must follow '@'", q);
    if (at && (flags & ETRN_PARSE_IGNORE_AT))
        at = 0;   /* test-only defect: '@foo.test' is read as 'foo.test' */
    if (dom[0] == '[')
        return etrn_bad(why, "'%s': address literals are not accepted, name the node by its domain", q);
    if (at && dl == 1 && dom[0] == '.') {
        /* "@." names the root: valid syntax, refused by policy as far too broad (R1985-8.2). */
        rq->option = ETRN_OPTION_AT;
        str_copy(rq->display, sizeof rq->display, "@.");
        return ETRN_SYNTAX_OK;
    }
    struct etrn_err derr;
    if (domain_check(dom, dl, at ? 0 : DOMAIN_REQUIRE_FQDN, &derr) < 0) {
        err_set(why, "%s", derr.msg);
        return ETRN_SYNTAX_BAD;
    }
    char raw[DOMAIN_MAX + 2];
    if (dl >= sizeof raw)   /* domain_check refuses these already; never overflow raw */
        return etrn_bad(why, "'%s': node name too long", q);
    memcpy(raw, dom, dl);
    raw[dl] = '\0';
    if (flags & ETRN_PARSE_CASE_SENSITIVE) {
        /* test-only defect: the node is kept exactly as typed */
        if (str_copy(rq->node, sizeof rq->node, raw) < 0)
            return etrn_bad(why, "'%s': node name too long", q);
    } else if (domain_normalize(raw, rq->node, sizeof rq->node) < 0) {
        return etrn_bad(why, "'%s': node name too long", q);
    }
    rq->option = at ? ETRN_OPTION_AT : ETRN_OPTION_NONE;
    str_format(rq->display, sizeof rq->display, "%s%s", at ? "@" : "", rq->node);
    return ETRN_SYNTAX_OK;
}

static void etrn_set(struct etrn_reply *r, int code, const char *enh)
{
    r->code = code;
    str_copy(r->enh, sizeof r->enh, enh);
}

void etrn_reply_choose(enum etrn_outcome o, const struct etrn_request *rq, size_t count,
                       int style, unsigned flags, const char *detail, struct etrn_reply *r)
{
    const char *node = rq && rq->display[0] ? rq->display : "?";
    memset(r, 0, sizeof *r);
    if ((flags & ETRN_REPLY_ACCEPT_MALFORMED) &&
        (o == ETRN_OUTCOME_SYNTAX_MISSING || o == ETRN_OUTCOME_SYNTAX_BAD)) {
        /* test-only defect: a malformed request is "accepted" */
        etrn_set(r, 250, "2.0.0");
        str_format(r->text, sizeof r->text, "OK, queuing for node %s started", node);
        return;
    }
    switch (o) {
    case ETRN_OUTCOME_STARTED:
        etrn_set(r, 250, "2.0.0");
        if (flags & ETRN_REPLY_WRONG_COUNT) {
            r->code = 253;
            str_format(r->text, sizeof r->text, "OK, %zu pending messages for node %s started",
                       count + 1, node);
        } else if (style == ETRN_REPLY_PLAIN) {
            str_format(r->text, sizeof r->text, "OK, queuing for node %s started", node);
        } else if (count == 0) {
            r->code = 251;
            str_format(r->text, sizeof r->text, "OK, no messages waiting for node %s", node);
        } else {
            r->code = 253;
            str_format(r->text, sizeof r->text, "OK, %zu pending messages for node %s started",
                       count, node);
        }
        return;
    case ETRN_OUTCOME_FAILED:
        etrn_set(r, 458, "4.3.0");
        str_format(r->text, sizeof r->text, "Unable to queue messages for node %s", node);
        return;
    case ETRN_OUTCOME_SYNTAX_MISSING:
        etrn_set(r, 500, "5.5.2");
        str_copy(r->text, sizeof r->text, "Syntax: ETRN [@|#]node");
        return;
    case ETRN_OUTCOME_SYNTAX_BAD:
        etrn_set(r, 501, "5.5.4");
        str_format(r->text, sizeof r->text, "Syntax error in parameters: %s",
                   detail && detail[0] ? detail : "ETRN [@|#]node");
        return;
    case ETRN_OUTCOME_DISABLED:
        etrn_set(r, 502, "5.5.1");
        str_copy(r->text, sizeof r->text, "ETRN is not available here");
        return;
    case ETRN_OUTCOME_NEED_HELO:
        etrn_set(r, 503, "5.5.1");
        str_copy(r->text, sizeof r->text, "Send HELO or EHLO first");
        return;
    case ETRN_OUTCOME_IN_TRANSACTION:
        etrn_set(r, 503, "5.5.1");
        str_copy(r->text, sizeof r->text, "ETRN is not allowed inside a mail transaction");
        return;
    case ETRN_OUTCOME_RATE_LIMITED:
        etrn_set(r, 458, "4.7.0");
        str_copy(r->text, sizeof r->text, "Too many ETRN requests, try later");
        return;
    case ETRN_OUTCOME_NOT_HELD:
        etrn_set(r, 459, "4.7.1");
        str_format(r->text, sizeof r->text, "Node %s not allowed: not a node held here", node);
        return;
    case ETRN_OUTCOME_TOO_BROAD:
        etrn_set(r, 459, "4.7.1");
        str_format(r->text, sizeof r->text, "Node %s not allowed: too broad", node);
        return;
    case ETRN_OUTCOME_QUEUE_UNKNOWN:
        etrn_set(r, 459, "4.5.4");
        str_format(r->text, sizeof r->text, "Node %s not allowed: queue name unknown", node);
        return;
    case ETRN_OUTCOME_AUTH_REQUIRED:
        etrn_set(r, 459, "4.7.1");
        str_format(r->text, sizeof r->text, "Node %s not allowed: authentication required", node);
        return;
    case ETRN_OUTCOME_CLIENT_REFUSED:
        etrn_set(r, 459, "4.7.1");
        str_format(r->text, sizeof r->text, "Node %s not allowed: not permitted for this client", node);
        return;
    }
    etrn_set(r, 458, "4.3.0");
    str_format(r->text, sizeof r->text, "Unable to queue messages for node %s", node);
}

const char *etrn_outcome_name(enum etrn_outcome o)
{
    switch (o) {
    case ETRN_OUTCOME_STARTED: return "started";
    case ETRN_OUTCOME_FAILED: return "failed";
    case ETRN_OUTCOME_SYNTAX_MISSING: return "no-argument";
    case ETRN_OUTCOME_SYNTAX_BAD: return "syntax";
    case ETRN_OUTCOME_DISABLED: return "disabled";
    case ETRN_OUTCOME_NEED_HELO: return "need-helo";
    case ETRN_OUTCOME_IN_TRANSACTION: return "in-transaction";
    case ETRN_OUTCOME_RATE_LIMITED: return "rate-limited";
    case ETRN_OUTCOME_NOT_HELD: return "not-held";
    case ETRN_OUTCOME_TOO_BROAD: return "too-broad";
    case ETRN_OUTCOME_QUEUE_UNKNOWN: return "queue-unknown";
    case ETRN_OUTCOME_AUTH_REQUIRED: return "auth-required";
    case ETRN_OUTCOME_CLIENT_REFUSED: return "client-refused";
    }
    return "unknown";
}
