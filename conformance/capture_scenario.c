/* capture_scenario.c — pairs the SMTP commands and replies of an imported capture into
 * dialogues, finds the node, its mail servers and its DNS records, and writes the scenario.
 *
 *   capture_dialogues_build(&d, &cap, &opts, &err);
 *   capture_scenario_format(&d, &cap, &opts, &text, &err);
 *   capture_dialogues_free(&d);
 *
 * Guarantees: every text taken from the capture is bounded and escaped before it reaches a
 * scenario line (send-raw escapes for anything unprintable, "$$" for '$'); the scenario holds
 * at most SCENARIO_STEPS_MAX steps; the expectations are the captured reply codes exactly. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <ldns/ldns.h>

#include "capture_scenario.h"
#include "domain.h"
#include "netaddr.h"
#include "scenario.h"

#define SEND_RAW_CHUNK 3000            /* escaped octets per send-raw line */
#define STEP_BUDGET (SCENARIO_STEPS_MAX - 64)
#define NOTES_MAX 32

/* ---- small helpers ----------------------------------------------------------------------- */

static char *dup_n(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s == NULL)
        return NULL;
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static void dialogue_note(struct capture_dialogues *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void dialogue_note(struct capture_dialogues *d, const char *fmt, ...)
{
    if (d->nnotes >= NOTES_MAX)
        return;
    if (d->notes == NULL && (d->notes = calloc(NOTES_MAX, sizeof *d->notes)) == NULL)
        return;
    char buf[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    d->notes[d->nnotes] = dup_n(buf, strlen(buf));
    if (d->notes[d->nnotes])
        d->nnotes++;
}

static int host_text(const struct sockaddr_storage *ss, char *buf, size_t n)
{
    return netaddr_format_host((const struct sockaddr *)ss, buf, n);
}

static int same_endpoint(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    char x[NETADDR_TEXT_MAX], y[NETADDR_TEXT_MAX];
    if (netaddr_format((const struct sockaddr *)a, x, sizeof x) < 0 ||
        netaddr_format((const struct sockaddr *)b, y, sizeof y) < 0)
        return 0;
    return strcmp(x, y) == 0;
}

static int is_word_char(int c)
{
    return isalnum(c) || c == '-' || c == '_';
}

/* ---- replies ------------------------------------------------------------------------------ */

struct parsed_reply {
    int code;
    struct strbuf text;
    size_t nlines;
    int lists_etrn;
    long count;
};

static void reply_count_253(struct parsed_reply *r)
{
    r->count = -1;
    if (r->code != 253)
        return;
    const char *p = r->text.data;
    /* "OK, 14 pending messages ..." after an optional enhanced code "2.0.0 " */
    if (isdigit((unsigned char)p[0]) && p[1] == '.') {
        while (*p && *p != ' ')
            p++;
    }
    while (*p && *p != '\n' && !isdigit((unsigned char)*p))
        p++;
    if (isdigit((unsigned char)*p)) {
        long v = 0;
        while (isdigit((unsigned char)*p) && v < 100000000)
            v = v * 10 + (*p++ - '0');
        r->count = v;
    }
}

/* Splits the server's bytes into replies. Lines that are not "DDD[ -]..." are replies of
 * their own with code -1, so the pairing never stalls on garbage. */
static int replies_parse(const unsigned char *data, size_t len, struct parsed_reply **out,
                         size_t *nout, int *incomplete)
{
    struct parsed_reply *v = NULL;
    size_t n = 0, cap = 0;
    struct parsed_reply *cur = NULL;
    size_t pos = 0;
    *incomplete = 0;
    while (pos < len) {
        const unsigned char *nl = memchr(data + pos, '\n', len - pos);
        if (nl == NULL) {
            *incomplete = 1;
            break;
        }
        size_t ll = (size_t)(nl - (data + pos));
        const char *line = (const char *)data + pos;
        pos += ll + 1;
        if (ll && line[ll - 1] == '\r')
            ll--;
        int code = -1, more = 0;
        if (ll >= 3 && isdigit((unsigned char)line[0]) && isdigit((unsigned char)line[1]) &&
            isdigit((unsigned char)line[2]) && (ll == 3 || line[3] == ' ' || line[3] == '-')) {
            code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
            more = ll > 3 && line[3] == '-';
        }
        if (cur == NULL || cur->code != code || code < 0) {
            if (n >= CAPTURE_SESSION_STEPS_MAX) {
                *incomplete = 1;
                break;
            }
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 16;
                struct parsed_reply *nv = realloc(v, nc * sizeof *nv);
                if (nv == NULL)
                    break;
                v = nv;
                cap = nc;
            }
            cur = &v[n++];
            memset(cur, 0, sizeof *cur);
            cur->code = code;
            strbuf_init(&cur->text, CAPTURE_REPLY_TEXT_MAX);
        }
        const char *t = code >= 0 ? line + (ll > 3 ? 4 : 3) : line;
        size_t tl = code >= 0 ? (ll > 3 ? ll - 4 : 0) : ll;
        if (cur->nlines)
            strbuf_append(&cur->text, "\n", 1);
        strbuf_append(&cur->text, t, tl);
        if (cur->nlines > 0 && tl >= 4 && str_ncasecmp(t, "ETRN", 4) == 0 &&
            (tl == 4 || t[4] == ' '))
            cur->lists_etrn = 1;
        cur->nlines++;
        if (!more || code < 0) {
            reply_count_253(cur);
            cur = NULL;
        }
    }
    if (cur != NULL) {   /* the last reply's final line never came */
        reply_count_253(cur);
        *incomplete = 1;
    }
    *out = v;
    *nout = n;
    return 0;
}

static void replies_free(struct parsed_reply *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        strbuf_free(&v[i].text);
    free(v);
}

/* ---- sessions ----------------------------------------------------------------------------- */

static int looks_smtp(const struct capture_stream *s)
{
    const struct capture_half *srv = &s->to_client, *cli = &s->to_server;
    if (srv->len >= 4 && isdigit(srv->data[0]) && isdigit(srv->data[1]) && isdigit(srv->data[2]) &&
        (srv->data[3] == ' ' || srv->data[3] == '-'))
        return 1;
    if (cli->len >= 5 && (str_ncasecmp((const char *)cli->data, "EHLO ", 5) == 0 ||
                          str_ncasecmp((const char *)cli->data, "HELO ", 5) == 0 ||
                          str_ncasecmp((const char *)cli->data, "LHLO ", 5) == 0))
        return 1;
    return 0;
}

static struct capture_exchange *exchange_add(struct capture_session *se, size_t *cap)
{
    if (se->n >= CAPTURE_SESSION_STEPS_MAX)
        return NULL;
    if (se->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct capture_exchange *v = realloc(se->v, nc * sizeof *v);
        if (v == NULL)
            return NULL;
        se->v = v;
        *cap = nc;
    }
    struct capture_exchange *x = &se->v[se->n++];
    memset(x, 0, sizeof *x);
    x->count = -1;
    return x;
}

static void exchange_take_reply(struct capture_exchange *x, struct parsed_reply *r)
{
    x->code = r->code;
    x->reply = strbuf_detach(&r->text);
    x->nlines = r->nlines;
    x->lists_etrn = r->lists_etrn;
    x->count = r->count;
}

static int command_is(const char *cmd, const char *verb)
{
    size_t n = strlen(verb);
    return str_ncasecmp(cmd, verb, n) == 0 && (cmd[n] == '\0' || cmd[n] == ' ');
}

/* Pairs the client's lines with the server's replies, in order. */
static int session_pair(struct capture_dialogues *d, const struct capture *cap, size_t si,
                        struct capture_session *se)
{
    const struct capture_stream *s = &cap->streams[si];
    char desc[200];
    capture_stream_describe(s, desc, sizeof desc);
    struct parsed_reply *rv = NULL;
    size_t nr = 0, ri = 0, xcap = 0;
    int srv_incomplete = 0;
    replies_parse(s->to_client.data, s->to_client.len, &rv, &nr, &srv_incomplete);
    se->stream = si;
    se->sink = -1;
    if (s->to_server.holes || s->to_client.holes)
        se->incomplete = 1;

    /* The greeting: the server speaks first, when the capture saw the connection open. */
    if (nr > 0 && (s->sure_of_roles || rv[0].code == 220)) {
        struct capture_exchange *x = exchange_add(se, &xcap);
        if (x == NULL)
            goto full;
        exchange_take_reply(x, &rv[ri++]);
    } else if (!s->sure_of_roles) {
        dialogue_note(d, "%s: %s: the capture begins inside the session; the greeting is missing",
                      cap->name, desc);
    }

    const unsigned char *p = s->to_server.data;
    size_t len = s->to_server.len, pos = 0;
    int in_body = 0;
    size_t body_start = 0;
    while (pos < len && !se->starttls) {
        const unsigned char *nl = memchr(p + pos, '\n', len - pos);
        if (nl == NULL) {
            if (!in_body)
                dialogue_note(d, "%s: %s: the client's last line has no line ending; it is left "
                              "out", cap->name, desc);
            se->incomplete = 1;
            break;
        }
        size_t ll = (size_t)(nl - (p + pos));
        size_t line_start = pos;
        pos += ll + 1;
        int bare_lf = !(ll && p[line_start + ll - 1] == '\r');
        size_t text_len = bare_lf ? ll : ll - 1;
        if (in_body) {
            if (text_len == 1 && p[line_start] == '.') {
                struct capture_exchange *x = exchange_add(se, &xcap);
                if (x == NULL)
                    goto full;
                size_t bl = pos - body_start;
                if (bl > CAPTURE_BODY_MAX) {
                    dialogue_note(d, "%s: %s: a message of %zu octets is cut to its first %u",
                                  cap->name, desc, bl, CAPTURE_BODY_MAX);
                    /* keep the head and the final dot so the dialogue still pairs */
                    x->body = malloc(CAPTURE_BODY_MAX + 5);
                    if (x->body == NULL)
                        goto full;
                    memcpy(x->body, p + body_start, CAPTURE_BODY_MAX);
                    memcpy(x->body + CAPTURE_BODY_MAX, "\r\n.\r\n", 5);
                    x->body_len = CAPTURE_BODY_MAX + 5;
                } else {
                    x->body = malloc(bl ? bl : 1);
                    if (x->body == NULL)
                        goto full;
                    memcpy(x->body, p + body_start, bl);
                    x->body_len = bl;
                }
                if (ri < nr)
                    exchange_take_reply(x, &rv[ri++]);
                in_body = 0;
            }
            continue;
        }
        struct capture_exchange *x = exchange_add(se, &xcap);
        if (x == NULL)
            goto full;
        size_t keep = text_len;
        if (keep > CAPTURE_COMMAND_MAX) {
            dialogue_note(d, "%s: %s: a client line of %zu octets is cut to %d", cap->name,
                          desc, text_len, CAPTURE_COMMAND_MAX);
            keep = CAPTURE_COMMAND_MAX;
        }
        x->command = dup_n((const char *)p + line_start, keep);
        if (x->command == NULL)
            goto full;
        x->bare_lf = bare_lf;
        if (ri < nr)
            exchange_take_reply(x, &rv[ri++]);
        if (command_is(x->command, "ETRN"))
            se->has_etrn = 1;
        if (command_is(x->command, "DATA") && x->code == 354) {
            in_body = 1;
            body_start = pos;
        }
        if (command_is(x->command, "STARTTLS") && x->code == 220) {
            se->starttls = 1;
            dialogue_note(d, "%s: %s: the session went on under TLS after STARTTLS; what "
                          "followed is encrypted and not imported", cap->name, desc);
        }
        if (command_is(x->command, "BDAT")) {
            dialogue_note(d, "%s: %s: BDAT chunks are not imported; the session stops there",
                          cap->name, desc);
            se->incomplete = 1;
            break;
        }
    }
    /* replies nobody asked for (a 421 before closing, say) — not after TLS began */
    while (!se->starttls && ri < nr) {
        struct capture_exchange *x = exchange_add(se, &xcap);
        if (x == NULL)
            goto full;
        exchange_take_reply(x, &rv[ri++]);
    }
    if (srv_incomplete)
        se->incomplete = 1;
    replies_free(rv, nr);
    return 0;
full:
    dialogue_note(d, "%s: %s: more than %d steps (or out of memory); the rest is left out",
                  cap->name, desc, CAPTURE_SESSION_STEPS_MAX);
    se->incomplete = 1;
    replies_free(rv, nr);
    return 0;
}

/* ---- names -------------------------------------------------------------------------------- */

/* The node an ETRN command names: "ETRN @Node.Test." → "node.test"; '#' queues are not. */
static void etrn_node(const char *cmd, char *out, size_t n)
{
    out[0] = '\0';
    const char *a = cmd + 4;
    while (*a == ' ')
        a++;
    if (*a == '@')
        a++;
    if (*a == '#' || *a == '\0')
        return;
    size_t l = strcspn(a, " ");
    if (l == 0 || l >= n)
        return;
    for (size_t i = 0; i < l; i++)
        if (!(isalnum((unsigned char)a[i]) || a[i] == '-' || a[i] == '.' || a[i] == '_'))
            return;
    char tmp[256];
    if (l >= sizeof tmp)
        return;
    memcpy(tmp, a, l);
    tmp[l] = '\0';
    if (domain_normalize(tmp, out, n) < 0 || out[0] == '\0' || strchr(out, '.') == NULL)
        out[0] = '\0';
}

static int sink_index(const struct capture_dialogues *d, const char *addr)
{
    for (size_t i = 0; i < d->nsinks; i++)
        if (strcmp(d->sinks[i], addr) == 0)
            return (int)i;
    return -1;
}

static int sink_add(struct capture_dialogues *d, const char *addr)
{
    int k = sink_index(d, addr);
    if (k >= 0)
        return k;
    if (d->nsinks >= CAPTURE_SINKS_MAX)
        return -1;
    d->sinks[d->nsinks] = dup_n(addr, strlen(addr));
    if (d->sinks[d->nsinks] == NULL)
        return -1;
    return (int)d->nsinks++;
}

/* Appends text with the node's names and the sinks' addresses as variables, '$' as "$$".
 * raw: escape for send-raw (\r \n \t \\ \xNN). */
static int templ_append(const struct capture_dialogues *d, const char *in, size_t n, int raw,
                        struct strbuf *out)
{
    size_t nodelen = strlen(d->node);
    for (size_t i = 0; i < n;) {
        unsigned char prev = i ? (unsigned char)in[i - 1] : ' ';
        if (nodelen && i + nodelen <= n && !is_word_char(prev) &&
            str_ncasecmp(in + i, d->node, nodelen) == 0) {
            size_t e = i + nodelen;
            int ok = e == n || !is_word_char((unsigned char)in[e]);
            if (ok && e < n && in[e] == '.' && e + 1 < n && is_word_char((unsigned char)in[e + 1]))
                ok = 0;   /* "node.test.example" is another domain */
            if (ok) {
                int upper = 0, lower = 0;
                for (size_t k = i; k < e; k++) {
                    upper |= isupper((unsigned char)in[k]) != 0;
                    lower |= islower((unsigned char)in[k]) != 0;
                }
                if (strbuf_append_str(out, upper && !lower ? "$NODE" : "$node") < 0)
                    return -1;
                i = e;
                continue;
            }
        }
        if (!isalnum(prev) && prev != '.' && prev != ':') {
            int matched = 0;
            for (size_t k = 0; k < d->nsinks && !matched; k++) {
                size_t al = strlen(d->sinks[k]);
                if (i + al > n || memcmp(in + i, d->sinks[k], al) != 0)
                    continue;
                size_t e = i + al;
                int v6 = strchr(d->sinks[k], ':') != NULL;
                if (e < n && (isalnum((unsigned char)in[e]) ||
                              (in[e] == '.' && e + 1 < n && isdigit((unsigned char)in[e + 1])) ||
                              (v6 && in[e] == ':')))
                    continue;
                char var[32];
                snprintf(var, sizeof var, e < n && in[e] == '_' ? "${sink%zu}" : "$sink%zu", k + 1);
                if (strbuf_append_str(out, var) < 0)
                    return -1;
                i = e;
                matched = 1;
            }
            if (matched)
                continue;
        }
        unsigned char c = (unsigned char)in[i++];
        int r;
        if (c == '$')
            r = strbuf_append(out, "$$", 2);
        else if (!raw)
            r = strbuf_append(out, &c, 1);
        else if (c == '\\')
            r = strbuf_append(out, "\\\\", 2);
        else if (c == '\r')
            r = strbuf_append(out, "\\r", 2);
        else if (c == '\n')
            r = strbuf_append(out, "\\n", 2);
        else if (c == '\t')
            r = strbuf_append(out, "\\t", 2);
        else if (c < 0x20 || c >= 0x7f)
            r = strbuf_appendf(out, "\\x%02x", c);
        else
            r = strbuf_append(out, &c, 1);
        if (r < 0)
            return -1;
    }
    return 0;
}

/* A command fits `send` when it is printable ASCII with no blanks at either end (the parser
 * takes the rest of the line) and ended with CRLF; otherwise it needs send-raw. */
static int command_needs_raw(const struct capture_exchange *x)
{
    const char *c = x->command;
    size_t n = strlen(c);
    if (x->bare_lf || n == 0 || c[0] == ' ' || c[0] == '\t' || c[n - 1] == ' ' || c[n - 1] == '\t')
        return 1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)c[i] < 0x20 || (unsigned char)c[i] >= 0x7f)
            return 1;
    return 0;
}

static int make_templates(struct capture_dialogues *d)
{
    struct strbuf sb;
    strbuf_init(&sb, SCENARIO_EXPAND_MAX * 4);
    for (size_t i = 0; i < d->n; i++) {
        struct capture_session *se = &d->v[i];
        for (size_t k = 0; k < se->n; k++) {
            struct capture_exchange *x = &se->v[k];
            if (x->command) {
                strbuf_reset(&sb);
                int raw = command_needs_raw(x);
                x->templ_raw = raw;
                if (templ_append(d, x->command, strlen(x->command), raw, &sb) < 0)
                    goto fail;
                if (raw && strbuf_append_str(&sb, x->bare_lf ? "\\n" : "\\r\\n") < 0)
                    goto fail;
                if ((x->command_templ = strbuf_detach(&sb)) == NULL)
                    goto fail;
            }
            if (x->body) {
                strbuf_reset(&sb);
                if (templ_append(d, (const char *)x->body, x->body_len, 1, &sb) < 0)
                    goto fail;
                if ((x->body_templ = strbuf_detach(&sb)) == NULL)
                    goto fail;
            }
        }
    }
    strbuf_free(&sb);
    return 0;
fail:
    strbuf_free(&sb);
    return -1;
}

/* ---- DNS ---------------------------------------------------------------------------------- */

struct dns_rec {
    char owner[256];
    char type[8];
    char rdata[300];
    char target[256];             /* MX exchange / CNAME target, lower case, or "" */
};

static void rdf_text(const ldns_rdf *rdf, char *out, size_t n)
{
    out[0] = '\0';
    if (rdf == NULL)
        return;
    char *s = ldns_rdf2str(rdf);
    if (s == NULL)
        return;
    size_t l = strlen(s);
    if (l > 1 && s[l - 1] == '.')
        s[--l] = '\0';
    str_copy(out, n, s);
    free(s);
}

static int printable_name(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '-' || *s == '.' || *s == '_'))
            return 0;
    return 1;
}

static int rec_relevant(const struct dns_rec *v, const char *want, size_t n, const char *owner,
                        const char *node)
{
    if (node[0] && domain_is_within(owner, node))
        return 1;
    for (size_t i = 0; i < n; i++)
        if (want[i] && v[i].target[0] && domain_equal(v[i].target, owner))
            return 1;
    return 0;
}

static void dns_collect(struct capture_dialogues *d, const struct capture *cap)
{
    struct dns_rec *v = calloc(CAPTURE_DNS_LINES_MAX, sizeof *v);
    char *want = calloc(CAPTURE_DNS_LINES_MAX, 1);
    char (*quirks)[300] = calloc(16, sizeof *quirks);
    size_t n = 0, nq = 0;
    if (v == NULL || want == NULL || quirks == NULL)
        goto out;
    for (size_t i = 0; i < cap->ndns; i++) {
        ldns_pkt *pkt = NULL;
        if (ldns_wire2pkt(&pkt, cap->dns[i].data, cap->dns[i].len) != LDNS_STATUS_OK || pkt == NULL)
            continue;
        if (!ldns_pkt_qr(pkt)) {
            ldns_pkt_free(pkt);
            continue;
        }
        ldns_pkt_rcode rc = ldns_pkt_get_rcode(pkt);
        if (rc == LDNS_RCODE_SERVFAIL || rc == LDNS_RCODE_REFUSED) {
            ldns_rr_list *q = ldns_pkt_question(pkt);
            if (q && ldns_rr_list_rr_count(q) > 0 && nq < 16) {
                char qn[256];
                rdf_text(ldns_rr_owner(ldns_rr_list_rr(q, 0)), qn, sizeof qn);
                str_lower(qn);
                if (printable_name(qn) && d->node[0] && domain_is_within(qn, d->node))
                    snprintf(quirks[nq++], sizeof quirks[0], "%s %s", qn,
                             rc == LDNS_RCODE_SERVFAIL ? "servfail" : "refused");
            }
        }
        ldns_rr_list *an = ldns_pkt_answer(pkt);
        ldns_rr_list *ad = ldns_pkt_additional(pkt);
        ldns_rr_list *lists[2] = {an, ad};
        for (int li = 0; li < 2; li++) {
            size_t cnt = lists[li] ? ldns_rr_list_rr_count(lists[li]) : 0;
            for (size_t k = 0; k < cnt && n < CAPTURE_DNS_LINES_MAX; k++) {
                ldns_rr *rr = ldns_rr_list_rr(lists[li], k);
                ldns_rr_type t = ldns_rr_get_type(rr);
                struct dns_rec r;
                memset(&r, 0, sizeof r);
                rdf_text(ldns_rr_owner(rr), r.owner, sizeof r.owner);
                str_lower(r.owner);
                if (!printable_name(r.owner))
                    continue;
                if (t == LDNS_RR_TYPE_A || t == LDNS_RR_TYPE_AAAA) {
                    str_copy(r.type, sizeof r.type, t == LDNS_RR_TYPE_A ? "A" : "AAAA");
                    rdf_text(ldns_rr_rdf(rr, 0), r.rdata, sizeof r.rdata);
                } else if (t == LDNS_RR_TYPE_MX && ldns_rr_rd_count(rr) == 2) {
                    char pref[16];
                    str_copy(r.type, sizeof r.type, "MX");
                    rdf_text(ldns_rr_rdf(rr, 0), pref, sizeof pref);
                    rdf_text(ldns_rr_rdf(rr, 1), r.target, sizeof r.target);
                    str_lower(r.target);
                    if (!printable_name(r.target))
                        continue;
                    snprintf(r.rdata, sizeof r.rdata, "%s %s", pref, r.target);
                } else if (t == LDNS_RR_TYPE_CNAME) {
                    str_copy(r.type, sizeof r.type, "CNAME");
                    rdf_text(ldns_rr_rdf(rr, 0), r.target, sizeof r.target);
                    str_lower(r.target);
                    if (!printable_name(r.target))
                        continue;
                    str_copy(r.rdata, sizeof r.rdata, r.target);
                } else {
                    continue;
                }
                if (r.rdata[0] == '\0' || r.rdata[0] == ' ')
                    continue;
                if (!printable_name(r.rdata) && t != LDNS_RR_TYPE_MX &&
                    strspn(r.rdata, "0123456789abcdefABCDEF.:") != strlen(r.rdata))
                    continue;
                int dup = 0;
                for (size_t j = 0; j < n; j++)
                    if (strcmp(v[j].owner, r.owner) == 0 && strcmp(v[j].type, r.type) == 0 &&
                        strcmp(v[j].rdata, r.rdata) == 0)
                        dup = 1;
                if (!dup)
                    v[n++] = r;
            }
        }
        ldns_pkt_free(pkt);
    }
    /* the node's own names, and the hosts its MX and CNAME records point at (a fixpoint) */
    for (int round = 0; round < 8; round++) {
        int changed = 0;
        for (size_t i = 0; i < n; i++)
            if (!want[i] && rec_relevant(v, want, n, v[i].owner, d->node)) {
                want[i] = 1;
                changed = 1;
            }
        if (!changed)
            break;
    }
    for (size_t i = 0; i < n; i++)
        if (want[i] && (strcmp(v[i].type, "A") == 0 || strcmp(v[i].type, "AAAA") == 0))
            sink_add(d, v[i].rdata);
    struct strbuf sb;
    for (size_t i = 0; i < n && d->ndns_lines < CAPTURE_DNS_LINES_MAX; i++) {
        if (!want[i])
            continue;
        strbuf_init(&sb, SCENARIO_LINE_MAX);
        char line[700];
        snprintf(line, sizeof line, "%s %s %s", v[i].owner, v[i].type, v[i].rdata);
        if (strbuf_append_str(&sb, "dns         ") == 0 &&
            templ_append(d, line, strlen(line), 0, &sb) == 0)
            d->dns_lines[d->ndns_lines] = strbuf_detach(&sb);
        if (d->dns_lines[d->ndns_lines])
            d->ndns_lines++;
        strbuf_free(&sb);
    }
    for (size_t i = 0; i < nq && d->ndns_lines < CAPTURE_DNS_LINES_MAX; i++) {
        strbuf_init(&sb, SCENARIO_LINE_MAX);
        if (strbuf_append_str(&sb, "dns-quirk   ") == 0 &&
            templ_append(d, quirks[i], strlen(quirks[i]), 0, &sb) == 0)
            d->dns_lines[d->ndns_lines] = strbuf_detach(&sb);
        if (d->dns_lines[d->ndns_lines])
            d->ndns_lines++;
        strbuf_free(&sb);
    }
out:
    free(v);
    free(want);
    free(quirks);
}

/* ---- building ----------------------------------------------------------------------------- */

static void rcpt_address(const char *cmd, char *out, size_t n)
{
    out[0] = '\0';
    const char *lt = strchr(cmd, '<');
    const char *gt = lt ? strchr(lt, '>') : NULL;
    if (lt && gt && gt > lt + 1 && (size_t)(gt - lt - 1) < n) {
        memcpy(out, lt + 1, (size_t)(gt - lt - 1));
        out[gt - lt - 1] = '\0';
    }
}

int capture_dialogues_build(struct capture_dialogues *d, const struct capture *cap,
                            const struct capture_scenario_options *o, struct etrn_err *err)
{
    memset(d, 0, sizeof *d);
    if (cap->nstreams) {
        d->v = calloc(cap->nstreams, sizeof *d->v);
        if (d->v == NULL)
            return err_set(err, "%s: out of memory", cap->name);
    }
    for (size_t i = 0; i < cap->nstreams; i++) {
        if (!looks_smtp(&cap->streams[i]))
            continue;
        struct capture_session *se = &d->v[d->n++];
        session_pair(d, cap, i, se);
        d->nsmtp++;
        if (se->has_etrn)
            d->netrn++;
    }
    /* the node: the first ETRN that names one */
    for (size_t i = 0; i < d->n && d->node[0] == '\0'; i++)
        for (size_t k = 0; k < d->v[i].n && d->node[0] == '\0'; k++)
            if (d->v[i].v[k].command && command_is(d->v[i].v[k].command, "ETRN"))
                etrn_node(d->v[i].v[k].command, d->node, sizeof d->node);
    /* roles: a session from the relay's host to a server other than the relay is a delivery */
    for (size_t i = 0; i < d->n; i++) {
        struct capture_session *se = &d->v[i];
        const struct capture_stream *s = &cap->streams[se->stream];
        se->role = CAPTURE_ROLE_CLIENT;
        if (se->has_etrn)
            continue;
        int to_relay = 0, from_relay_host = 0;
        for (size_t k = 0; k < d->n; k++) {
            if (!d->v[k].has_etrn)
                continue;
            const struct capture_stream *r = &cap->streams[d->v[k].stream];
            char a[NETADDR_TEXT_MAX], b[NETADDR_TEXT_MAX];
            if (same_endpoint(&s->server, &r->server))
                to_relay = 1;
            if (host_text(&s->client, a, sizeof a) == 0 && host_text(&r->server, b, sizeof b) == 0 &&
                strcmp(a, b) == 0)
                from_relay_host = 1;
        }
        if (!to_relay && from_relay_host)
            se->role = CAPTURE_ROLE_DELIVERY;
    }
    /* sinks: the servers deliveries went to, in order */
    for (size_t i = 0; i < d->n; i++) {
        struct capture_session *se = &d->v[i];
        if (se->role != CAPTURE_ROLE_DELIVERY)
            continue;
        char a[NETADDR_TEXT_MAX];
        if (host_text(&cap->streams[se->stream].server, a, sizeof a) == 0)
            se->sink = sink_add(d, a);
        for (size_t k = 0; k < se->n; k++)
            if (se->v[k].body && se->v[k].code >= 200 && se->v[k].code < 300)
                se->accepted++;
    }
    dns_collect(d, cap);
    /* what to queue first: what was delivered, or what a 253 said was pending */
    long delivered = 0, pending = 0;
    char rcpt[256] = "";
    for (size_t i = 0; i < d->n; i++) {
        struct capture_session *se = &d->v[i];
        se->kept = se->role == CAPTURE_ROLE_CLIENT && se->n > 0 &&
                   (se->has_etrn || (o && o->all_sessions));
        if (se->role == CAPTURE_ROLE_DELIVERY) {
            delivered += se->accepted;
            for (size_t k = 0; k < se->n && rcpt[0] == '\0'; k++)
                if (se->v[k].command && command_is(se->v[k].command, "RCPT"))
                    rcpt_address(se->v[k].command, rcpt, sizeof rcpt);
        }
        if (se->kept)
            for (size_t k = 0; k < se->n; k++)
                if (se->v[k].count > pending)
                    pending = se->v[k].count;
    }
    d->queue_count = d->node[0] ? (delivered > pending ? delivered : pending) : 0;
    if (d->queue_count > 1000) {
        dialogue_note(d, "%s: %ld messages pending; the scenario queues 1000", cap->name,
                      d->queue_count);
        d->queue_count = 1000;
    }
    if (d->queue_count) {
        struct strbuf sb;
        strbuf_init(&sb, sizeof d->queue_to - 1);
        if (rcpt[0] && strspn(rcpt, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "0123456789.-_+@") == strlen(rcpt) &&
            templ_append(d, rcpt, strlen(rcpt), 0, &sb) == 0 && strstr(sb.data, "$node"))
            str_copy(d->queue_to, sizeof d->queue_to, sb.data);
        else
            str_copy(d->queue_to, sizeof d->queue_to, "user@$node");
        strbuf_free(&sb);
    }
    if (make_templates(d) < 0) {
        capture_dialogues_free(d);
        return err_set(err, "%s: out of memory", cap->name);
    }
    return 0;
}

void capture_dialogues_free(struct capture_dialogues *d)
{
    for (size_t i = 0; i < d->n; i++) {
        for (size_t k = 0; k < d->v[i].n; k++) {
            struct capture_exchange *x = &d->v[i].v[k];
            free(x->command);
            free(x->command_templ);
            free(x->body);
            free(x->body_templ);
            free(x->reply);
        }
        free(d->v[i].v);
    }
    free(d->v);
    for (size_t i = 0; i < d->nsinks; i++)
        free(d->sinks[i]);
    for (size_t i = 0; i < d->ndns_lines; i++)
        free(d->dns_lines[i]);
    for (size_t i = 0; i < d->nnotes; i++)
        free(d->notes[i]);
    free(d->notes);
    memset(d, 0, sizeof *d);
}

const char *capture_dialogues_lookup(const char *name, void *arg)
{
    struct capture_dialogues *d = arg;
    static __thread char upper[256];
    if (strcmp(name, "node") == 0)
        return d->node;
    if (strcmp(name, "NODE") == 0) {
        str_copy(upper, sizeof upper, d->node);
        for (char *c = upper; *c; c++)
            *c = (char)toupper((unsigned char)*c);
        return upper;
    }
    if (strncmp(name, "sink", 4) == 0 && isdigit((unsigned char)name[4])) {
        char *end;
        unsigned long k = strtoul(name + 4, &end, 10);
        if (*end == '\0' && k >= 1 && k <= d->nsinks)
            return d->sinks[k - 1];
    }
    return NULL;
}

/* ---- the scenario text -------------------------------------------------------------------- */

static void scenario_id_from(const char *path, char *out, size_t n)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t l = strcspn(base, ".");
    if (l == 0)
        l = strlen(base);
    size_t o = 0;
    const char *prefix = "capture.";
    for (const char *c = prefix; *c && o + 1 < n; c++)
        out[o++] = *c;
    for (size_t i = 0; i < l && o + 1 < n && i < 80; i++) {
        char c = (char)tolower((unsigned char)base[i]);
        out[o++] = (isalnum((unsigned char)c) || c == '-' || c == '_') ? c : '-';
    }
    if (o == strlen(prefix) && o + 1 < n)
        out[o++] = 'x';
    out[o] = '\0';
}

/* The length of one indivisible unit of templated send-raw text: an escape, a variable, or
 * a character, so that a line break between units keeps every line decodable. */
static size_t escape_unit(const char *b)
{
    if (b[0] == '\\')
        return b[1] == 'x' ? 4 : 2;
    if (b[0] != '$')
        return 1;
    if (b[1] == '$')
        return 2;
    if (b[1] == '{') {
        const char *e = strchr(b, '}');
        return e ? (size_t)(e - b) + 1 : 1;
    }
    size_t n = 1;
    while (isalnum((unsigned char)b[n]) || b[n] == '_')
        n++;
    return n;
}

static int emit_expect(struct strbuf *out, const struct capture_exchange *x, long queued)
{
    struct scenario_codes codes;
    char text[8];
    snprintf(text, sizeof text, "%03d", x->code >= 0 && x->code <= 999 ? x->code : 0);
    if (x->code < 0 || scenario_codes_parse(text, &codes, NULL) < 0)
        return strbuf_append_str(out, "  expect    any\n");
    int r = strbuf_appendf(out, "  expect    %03d", x->code);
    if (r == 0 && x->lists_etrn)
        r = strbuf_append_str(out, " with-keyword ETRN");
    if (r == 0 && x->code == 253 && x->count > 0 && x->count == queued)
        r = strbuf_appendf(out, " queued %ld", x->count);
    if (r == 0)
        r = strbuf_append_str(out, "\n");
    return r;
}

/* One line of comment, with anything unprintable or overlong made safe. */
static int emit_comment(struct strbuf *out, const char *prefix, const char *text)
{
    if (strbuf_append_str(out, prefix) < 0)
        return -1;
    for (size_t i = 0; text[i] && i < 300; i++) {
        unsigned char c = (unsigned char)text[i];
        char ch = (c < 0x20 || c >= 0x7f) ? '?' : c == '"' ? '\'' : (char)c;
        if (strbuf_append(out, &ch, 1) < 0)
            return -1;
    }
    return strbuf_append_str(out, "\n");
}

int capture_scenario_format(const struct capture_dialogues *d, const struct capture *cap,
                            const struct capture_scenario_options *o, struct strbuf *out,
                            struct etrn_err *err)
{
    size_t kept = 0;
    for (size_t i = 0; i < d->n; i++)
        kept += d->v[i].kept;
    if (kept == 0) {
        if (d->nsmtp == 0)
            return err_set(err, "%s: no SMTP session found (%zu packets, %zu TCP streams)",
                           cap->name, cap->npackets, cap->nstreams);
        if (o && o->all_sessions)
            return err_set(err, "%s: no SMTP session holds a whole command or reply (%zu TCP "
                           "streams, %zu SMTP sessions)", cap->name, cap->nstreams, d->nsmtp);
        return err_set(err, "%s: no SMTP session with ETRN (%zu TCP streams, %zu SMTP sessions; "
                       "--all-sessions keeps sessions without ETRN)", cap->name, cap->nstreams,
                       d->nsmtp);
    }
    char id[128];
    if (o && o->id)
        str_copy(id, sizeof id, o->id);
    else
        scenario_id_from(cap->name, id, sizeof id);
    const char *base = strrchr(cap->name, '/');
    base = base ? base + 1 : cap->name;
    int any_keyword = 0;
    for (size_t i = 0; i < d->n; i++)
        for (size_t k = 0; d->v[i].kept && k < d->v[i].n; k++)
            any_keyword |= d->v[i].v[k].lists_etrn;

    int r = 0;
    r |= strbuf_append_str(out, "# Imported by `etrncheck import` from ");
    r |= emit_comment(out, "", cap->name);
    r |= strbuf_appendf(out, "#   %zu packets, %zu TCP streams, %zu SMTP sessions (%zu with ETRN, "
                        "%zu kept), %zu DNS datagrams\n", cap->npackets, cap->nstreams,
                        d->nsmtp, d->netrn, kept, cap->ndns);
    if (d->node[0])
        r |= strbuf_appendf(out, "#   the node %s is $node\n", d->node);
    for (size_t i = 0; i < d->nsinks; i++)
        r |= strbuf_appendf(out, "#   %s is $sink%zu\n", d->sinks[i], i + 1);
    for (size_t i = 0; i < cap->nnotes; i++)
        r |= emit_comment(out, "# note: ", cap->notes[i]);
    for (size_t i = 0; i < d->nnotes; i++)
        r |= emit_comment(out, "# note: ", d->notes[i]);
    r |= strbuf_appendf(out, "scenario    %s\n", id);
    r |= strbuf_append_str(out, "title       ");
    r |= emit_comment(out, "The server gives the replies captured in ", base);
    r |= strbuf_append_str(out, "description Every expect is a reply code the server gave in the "
                                "captured session; a difference is a FAIL at that step.\n");
    r |= strbuf_appendf(out, "cites       R1985-5.2 R1985-5.1.7%s\n", any_keyword ? " R1985-2.2" : "");
    r |= strbuf_append_str(out, "level       MUST\n");
    for (size_t i = 0; i < d->nsinks; i++)
        r |= strbuf_appendf(out, "sink        sink%zu\n", i + 1);
    for (size_t i = 0; i < d->ndns_lines; i++)
        r |= strbuf_appendf(out, "%s\n", d->dns_lines[i]);
    int node_mx = 0;
    for (size_t i = 0; i < d->ndns_lines; i++)
        if (strncmp(d->dns_lines[i], "dns         $node MX", 20) == 0)
            node_mx = 1;
    int delivered_any = 0;
    for (size_t i = 0; i < d->n; i++)
        if (d->v[i].role == CAPTURE_ROLE_DELIVERY && d->v[i].sink >= 0)
            delivered_any = 1;
    if (!node_mx && d->node[0] && d->nsinks > 0 && delivered_any) {
        r |= strbuf_append_str(out, "# the capture holds no MX answer for the node: route it to "
                                    "the first mail server the relay delivered to\n");
        r |= strbuf_append_str(out, "dns         $node MX 10 mx1.$node\n");
        r |= strbuf_append_str(out, "dns         mx1.$node A $sink1\n");
    }
    if (d->queue_count > 0)
        r |= strbuf_appendf(out, "queue       %ld to %s\n", d->queue_count, d->queue_to);
    if (r)
        return err_set(err, "%s: the scenario is too large", cap->name);

    size_t steps = 8 + d->nsinks + d->ndns_lines;
    int cut = 0;
    for (size_t i = 0; i < d->n && !cut; i++) {
        const struct capture_session *se = &d->v[i];
        if (!se->kept)
            continue;
        char desc[200];
        capture_stream_describe(&cap->streams[se->stream], desc, sizeof desc);
        r |= strbuf_appendf(out, "client                 # %s%s%s\n", desc,
                            se->incomplete ? " (incomplete)" : "",
                            se->starttls ? " (TLS after STARTTLS, not imported)" : "");
        steps++;
        size_t block_start = steps;
        for (size_t k = 0; k < se->n; k++) {
            const struct capture_exchange *x = &se->v[k];
            if (steps + 2 + (x->body_templ ? strlen(x->body_templ) / SEND_RAW_CHUNK + 1 : 0) >
                STEP_BUDGET) {
                r |= strbuf_append_str(out, "  # the rest of the capture is left out: a "
                                            "scenario holds at most 4096 steps\n");
                cut = 1;
                break;
            }
            if (x->command) {
                r |= strbuf_appendf(out, "  %-9s %s\n", x->templ_raw ? "send-raw" : "send",
                                    x->command_templ ? x->command_templ : "");
                steps++;
            }
            if (x->body_templ) {
                /* cut at escape boundaries so every line decodes on its own */
                const char *b = x->body_templ;
                size_t bl = strlen(b), at = 0;
                while (at < bl) {
                    size_t take = bl - at < SEND_RAW_CHUNK ? bl - at : SEND_RAW_CHUNK;
                    if (at + take < bl) {
                        size_t k2 = at;
                        while (k2 < at + take) {
                            size_t step = escape_unit(b + k2);
                            if (k2 + step > at + take)
                                break;
                            k2 += step;
                        }
                        take = k2 - at;
                    }
                    r |= strbuf_appendf(out, "  send-raw  %.*s\n", (int)take, b + at);
                    steps++;
                    at += take;
                }
            }
            if (x->code != 0) {
                r |= emit_expect(out, x, d->queue_count);
                steps++;
            }
        }
        if (steps == block_start) {   /* a block may not be empty */
            r |= strbuf_append_str(out, "  close\n");
            steps++;
        }
        r |= strbuf_append_str(out, "end\n");
        if (r)
            return err_set(err, "%s: the scenario is too large", cap->name);
    }
    for (size_t s = 0; s < d->nsinks; s++) {
        unsigned acc = 0;
        int seen = 0;
        for (size_t i = 0; i < d->n; i++)
            if (d->v[i].role == CAPTURE_ROLE_DELIVERY && d->v[i].sink == (int)s) {
                acc += d->v[i].accepted;
                seen = 1;
            }
        if (seen && acc > 0 && d->queue_count > 0)
            r |= strbuf_appendf(out, "outcome     delivered %u to sink%zu within 30s\n", acc, s + 1);
    }
    if (delivered_any && d->queue_count > 0)
        r |= strbuf_append_str(out, "outcome     no duplicates\n");
    if (r)
        return err_set(err, "%s: the scenario is too large", cap->name);
    return 0;
}
