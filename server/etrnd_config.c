/* etrnd_config.c — reads and validates etrnd's configuration file (etrnd.conf(5)).
 *
 *   struct etrnd_config *c; struct etrn_err err;
 *   if (etrnd_config_load(&c, "etrnd.conf", &err) < 0) die(err.msg);  // "etrnd.conf:7: ..."
 *   etrnd_config_holds_domain(c, "a.node.test");  etrnd_config_free(c);
 *
 * Guarantees: a file that loads is complete and consistent — every value parsed, every
 * domain and address valid, every key known (config_check_unused), every file named by
 * the TLS and AUTH settings readable, no key but etrn_allow given twice — and a file
 * that does not load leaves nothing behind, so a broken file can never half-start etrnd
 * or half-apply a reload. Every
 * error names file:line (or the file, for a required setting that is missing). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "etrnd_config.h"
#include "log.h"
#include "strbuf.h"

#define ETRND_CONFIG_LIST_MAX 10000   /* items in one list setting */

/* Test-only defects: those this file's neighbours implement. etrnd's front end
 * (smtpd.c/etrn_cmd.c) and the queue runner (flush.c). A name not listed is a typo. */
static const char *const etrnd_known_defects[] = {
    "etrn_not_advertised", "etrn_accept_malformed", "etrn_wrong_count",
    "etrn_case_sensitive", "etrn_ignore_at", "etrn_block_reply",
    "deliver_to_requester", "ignore_mx_preference", "no_mx_fallthrough",
    "deliver_twice", "never_deliver", "lose_after_failure",
};

static char *etrnd_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

static void etrnd_free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void etrnd_config_free(struct etrnd_config *c)
{
    if (c == NULL)
        return;
    free(c->file);
    free(c->listen);
    free(c->spool);
    free(c->log_file);
    free(c->pid_file);
    etrnd_free_strings(c->etrn_domains, c->netrn_domains);
    free(c->mynetworks);
    for (size_t i = 0; i < c->nqueues; i++)
        etrnd_free_strings(c->queues[i].domains, c->queues[i].ndomains);
    free(c->queues);
    for (size_t i = 0; i < c->netrn_rules; i++) {
        free(c->etrn_rules[i].nets);
        etrnd_free_strings(c->etrn_rules[i].users, c->etrn_rules[i].nusers);
    }
    free(c->etrn_rules);
    free(c->routes);
    free(c->tls_cert_file);
    free(c->tls_key_file);
    free(c->auth_password_file);
    etrnd_free_strings(c->defects, c->ndefects);
    free(c);
}

/* --- small value parsers --------------------------------------------------- */

static int cfg_string(struct config *cfg, const char *key, char **out, int required,
                      struct etrn_err *err)
{
    const struct config_entry *e = config_get(cfg, key);
    if (e == NULL) {
        if (required)
            return err_set(err, "%s: %s: required setting is missing", cfg->file, key);
        return 0;
    }
    if (e->value[0] == '\0')
        return config_err(err, e, "empty value");
    free(*out);
    *out = etrnd_strdup(e->value);
    if (*out == NULL)
        return config_err(err, e, "out of memory");
    return 0;
}

static int cfg_bool(struct config *cfg, const char *key, int *out, struct etrn_err *err)
{
    const struct config_entry *e = config_get(cfg, key);
    return e ? config_parse_bool(e, out, err) : 0;
}

static int cfg_uint(struct config *cfg, const char *key, unsigned long min, unsigned long max,
                    unsigned *out, struct etrn_err *err)
{
    const struct config_entry *e = config_get(cfg, key);
    if (e == NULL)
        return 0;
    unsigned long v;
    if (config_parse_uint(e, min, max, &v, err) < 0)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* A duration of at least min_ms (0: any). */
static int cfg_duration(struct config *cfg, const char *key, unsigned long long min_ms,
                        unsigned long long *out, struct etrn_err *err)
{
    const struct config_entry *e = config_get(cfg, key);
    if (e == NULL)
        return 0;
    unsigned long long v;
    if (config_parse_duration_ms(e, &v, err) < 0)
        return -1;
    if (v < min_ms)
        return config_err(err, e, "'%s' is shorter than %llums", e->value, min_ms);
    /* A year is far beyond any sane timeout and keeps timeval arithmetic safe. */
    if (v > 366ULL * 86400000ULL)
        return config_err(err, e, "'%s' is longer than a year", e->value);
    *out = v;
    return 0;
}

static int cfg_readable(const struct config_entry *e, struct etrn_err *err)
{
    if (access(e->value, R_OK) < 0)
        return config_err(err, e, "cannot read '%s'", e->value);
    return 0;
}

/* Checks and lowercases a domain list value into a malloc'd array. */
static int cfg_domain_list(const struct config_entry *e, unsigned flags, char ***out, size_t *n,
                           struct etrn_err *err)
{
    char **items;
    size_t k;
    if (config_split_list(e->value, &items, &k) < 0)
        return config_err(err, e, "out of memory");
    if (k > ETRND_CONFIG_LIST_MAX) {
        config_list_free(items, k);
        return config_err(err, e, "more than %d items", ETRND_CONFIG_LIST_MAX);
    }
    for (size_t i = 0; i < k; i++) {
        struct etrn_err why;
        if (domain_check(items[i], strlen(items[i]), flags, &why) < 0) {
            config_err(err, e, "%s", why.msg);
            config_list_free(items, k);
            return -1;
        }
        char norm[DOMAIN_MAX + 1];
        if (domain_normalize(items[i], norm, sizeof norm) < 0) {
            config_err(err, e, "'%s' is too long", items[i]);
            config_list_free(items, k);
            return -1;
        }
        memcpy(items[i], norm, strlen(norm) + 1);  /* never longer than the original */
    }
    *out = items;
    *n = k;
    return 0;
}

/* --- etrn_allow ------------------------------------------------------------ */

/* The separator is the first ':' with whitespace (or the end) on either side, so that
 * patterns like "queue:uucp" and clients like "user:alice" or "::1" keep theirs. */
static const char *etrn_rule_separator(const char *v)
{
    for (const char *p = v; *p; p++) {
        if (*p != ':')
            continue;
        int before = p == v || p[-1] == ' ' || p[-1] == '\t';
        int after = p[1] == '\0' || p[1] == ' ' || p[1] == '\t';
        if (before || after)
            return p;
    }
    return NULL;
}

static int etrn_rule_pattern(const struct config_entry *e, const char *word, char *out,
                             size_t n, struct etrn_err *err)
{
    struct etrn_err why;
    if (strcmp(word, "*") == 0)
        return str_copy(out, n, "*");
    const char *queue = NULL;
    if (word[0] == '#')
        queue = word + 1;
    else if (str_ncasecmp(word, "queue:", 6) == 0)
        queue = word + 6;
    if (queue != NULL) {
        size_t ql = strlen(queue);
        if (ql == 0 || ql >= sizeof ((struct etrnd_queue *)0)->name)
            return config_err(err, e, "'%s': a queue name of 1 to 63 characters is needed", word);
        for (size_t i = 0; i < ql; i++)
            if ((unsigned char)queue[i] <= 32 || (unsigned char)queue[i] >= 127)
                return config_err(err, e, "'%s': invalid character in queue name", word);
        if (str_format(out, n, "#%s", queue) < 0)
            return config_err(err, e, "'%s' is too long", word);
        return 0;
    }
    int at = word[0] == '@';
    const char *dom = word + at;
    if (domain_check(dom, strlen(dom), at ? 0 : DOMAIN_REQUIRE_FQDN, &why) < 0)
        return config_err(err, e, "pattern %s", why.msg);
    char norm[DOMAIN_MAX + 1];
    if (domain_normalize(dom, norm, sizeof norm) < 0 ||
        str_format(out, n, "%s%s", at ? "@" : "", norm) < 0)
        return config_err(err, e, "'%s' is too long", word);
    return 0;
}

static int etrn_rule_add_net(struct etrnd_etrn_rule *r, const struct netmask *m)
{
    struct netmask *v = realloc(r->nets, (r->nnets + 1) * sizeof *v);
    if (v == NULL)
        return -1;
    r->nets = v;
    r->nets[r->nnets++] = *m;
    return 0;
}

static int etrn_rule_parse(const struct config_entry *e, struct etrnd_etrn_rule *r,
                           struct etrn_err *err)
{
    memset(r, 0, sizeof *r);
    const char *sep = etrn_rule_separator(e->value);
    if (sep == NULL)
        return config_err(err, e, "expected 'PATTERN : CLIENT ...' (e.g. '@foo.test : 192.0.2.0/24 user:alice')%s",
                          e->value[0] == '\0' ? "; note that '#' after a space starts a comment: write queue patterns as queue:NAME" : "");
    char pat[DOMAIN_MAX + 8];
    size_t pl = (size_t)(sep - e->value);
    while (pl > 0 && (e->value[pl - 1] == ' ' || e->value[pl - 1] == '\t'))
        pl--;
    if (pl == 0)
        return config_err(err, e, "missing node pattern before ':'");
    if (pl >= sizeof pat)
        return config_err(err, e, "node pattern too long");
    memcpy(pat, e->value, pl);
    pat[pl] = '\0';
    if (strpbrk(pat, " \t") != NULL)
        return config_err(err, e, "'%s': one node pattern per rule", pat);
    if (etrn_rule_pattern(e, pat, r->pattern, sizeof r->pattern, err) < 0)
        return -1;

    char **who;
    size_t nwho;
    if (config_split_list(sep + 1, &who, &nwho) < 0)
        return config_err(err, e, "out of memory");
    if (nwho == 0) {
        config_list_free(who, nwho);
        return config_err(err, e, "no clients after ':' (addresses, networks, user:NAME or any)");
    }
    if (nwho > ETRND_CONFIG_LIST_MAX) {
        config_list_free(who, nwho);
        return config_err(err, e, "more than %d clients", ETRND_CONFIG_LIST_MAX);
    }
    int rc = 0;
    for (size_t i = 0; i < nwho && rc == 0; i++) {
        const char *w = who[i];
        struct netmask m;
        struct etrn_err why;
        if (str_ncasecmp(w, "user:", 5) == 0) {
            if (w[5] == '\0' || strchr(w + 5, ':') != NULL) {
                rc = config_err(err, e, "'%s': expected user:NAME", w);
                break;
            }
            char **v = realloc(r->users, (r->nusers + 1) * sizeof *v);
            char *u = etrnd_strdup(w + 5);
            if (v != NULL)
                r->users = v;
            if (v == NULL || u == NULL) {
                free(u);
                rc = config_err(err, e, "out of memory");
                break;
            }
            r->users[r->nusers++] = u;
        } else if (str_casecmp(w, "any") == 0) {
            struct netmask all4, all6;
            if (netmask_parse("0.0.0.0/0", &all4, &why) < 0 || netmask_parse("::/0", &all6, &why) < 0 ||
                etrn_rule_add_net(r, &all4) < 0 || etrn_rule_add_net(r, &all6) < 0)
                rc = config_err(err, e, "out of memory");
        } else if (netmask_parse(w, &m, &why) == 0) {
            if (etrn_rule_add_net(r, &m) < 0)
                rc = config_err(err, e, "out of memory");
        } else {
            rc = config_err(err, e, "'%s': not an address, network, user:NAME or any", w);
        }
    }
    config_list_free(who, nwho);
    if (rc < 0) {
        free(r->nets);
        etrnd_free_strings(r->users, r->nusers);
        memset(r, 0, sizeof *r);
    }
    return rc;
}

static int cfg_etrn_rules(struct config *cfg, struct etrnd_config *c, struct etrn_err *err)
{
    /* etrn_allow repeats, so every entry counts (config_get would give only the last). */
    for (size_t i = 0; i < cfg->n; i++) {
        struct config_entry *e = &cfg->entries[i];
        if (strcmp(e->key, "etrn_allow") != 0)
            continue;
        e->used = 1;
        if (c->netrn_rules >= ETRND_CONFIG_LIST_MAX)
            return config_err(err, e, "more than %d rules", ETRND_CONFIG_LIST_MAX);
        struct etrnd_etrn_rule *v = realloc(c->etrn_rules, (c->netrn_rules + 1) * sizeof *v);
        if (v == NULL)
            return config_err(err, e, "out of memory");
        c->etrn_rules = v;
        if (etrn_rule_parse(e, &c->etrn_rules[c->netrn_rules], err) < 0)
            return -1;
        c->netrn_rules++;
    }
    return 0;
}

/* --- route.DOMAIN and queue.NAME ------------------------------------------ */

struct cfg_route_src {                 /* a route with the entry it came from, for errors */
    struct etrnd_route r;
    const struct config_entry *e;
};

static int cfg_route_src_cmp(const void *a, const void *b)
{
    const struct cfg_route_src *x = a, *y = b;
    int c = strcmp(x->r.domain, y->r.domain);
    if (c != 0)
        return c;
    return x->e->line < y->e->line ? -1 : x->e->line > y->e->line;
}

/* Routes end up sorted by domain so that etrnd_config_route is a binary search: a
 * provider may configure one for each of thousands of sites. */
static int cfg_routes(struct config *cfg, struct etrnd_config *c, struct etrn_err *err)
{
    size_t pos = 0, n = 0, cap = 0;
    struct cfg_route_src *v = NULL;
    const struct config_entry *e;
    int rc = 0;
    while (rc == 0 && (e = config_next(cfg, "route.", &pos)) != NULL) {
        const char *dom = e->key + 6;
        struct etrn_err why;
        struct netaddr a;
        char norm[DOMAIN_MAX + 1];
        if (domain_check(dom, strlen(dom), 0, &why) < 0)
            rc = config_err(err, e, "%s", why.msg);
        else if (domain_normalize(dom, norm, sizeof norm) < 0)
            rc = config_err(err, e, "domain too long");
        else if (netaddr_parse(e->value, c->smtp_port, &a, &why) < 0)
            rc = config_err(err, e, "%s (a numeric host:port is needed)", why.msg);
        else if (netaddr_port((struct sockaddr *)&a.ss) <= 0)
            rc = config_err(err, e, "'%s': port 0 is not a destination", e->value);
        else if (n >= ETRND_CONFIG_LIST_MAX)
            rc = config_err(err, e, "more than %d routes", ETRND_CONFIG_LIST_MAX);
        if (rc < 0)
            break;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct cfg_route_src *nv = realloc(v, ncap * sizeof *nv);
            if (nv == NULL) {
                rc = config_err(err, e, "out of memory");
                break;
            }
            v = nv;
            cap = ncap;
        }
        memset(&v[n], 0, sizeof v[n]);
        memcpy(v[n].r.domain, norm, strlen(norm) + 1);
        v[n].r.addr = a;
        v[n].e = e;
        n++;
    }
    if (rc == 0 && n > 0) {
        qsort(v, n, sizeof *v, cfg_route_src_cmp);
        for (size_t i = 1; i < n && rc == 0; i++)
            if (strcmp(v[i].r.domain, v[i - 1].r.domain) == 0)
                rc = config_err(err, v[i].e, "a route for %s is already set (line %d)",
                                v[i].r.domain, v[i - 1].e->line);
        if (rc == 0 && (c->routes = calloc(n, sizeof *c->routes)) == NULL)
            rc = config_err(err, v[0].e, "out of memory");
        for (size_t i = 0; rc == 0 && i < n; i++)
            c->routes[i] = v[i].r;
        if (rc == 0)
            c->nroutes = n;
    }
    free(v);
    return rc;
}

static int cfg_queues(struct config *cfg, struct etrnd_config *c, struct etrn_err *err)
{
    size_t pos = 0;
    const struct config_entry *e;
    while ((e = config_next(cfg, "queue.", &pos)) != NULL) {
        const char *name = e->key + 6;
        size_t nl = strlen(name);
        if (nl == 0 || nl >= sizeof c->queues[0].name)
            return config_err(err, e, "a queue name of 1 to 63 characters is needed");
        for (size_t i = 0; i < c->nqueues; i++)
            if (str_casecmp(c->queues[i].name, name) == 0)
                return config_err(err, e, "queue '%s' is already defined", name);
        if (c->nqueues >= ETRND_CONFIG_LIST_MAX)
            return config_err(err, e, "more than %d queues", ETRND_CONFIG_LIST_MAX);
        struct etrnd_queue *v = realloc(c->queues, (c->nqueues + 1) * sizeof *v);
        if (v == NULL)
            return config_err(err, e, "out of memory");
        c->queues = v;
        struct etrnd_queue *q = &c->queues[c->nqueues];
        memset(q, 0, sizeof *q);
        memcpy(q->name, name, nl + 1);
        if (cfg_domain_list(e, 0, &q->domains, &q->ndomains, err) < 0)
            return -1;
        c->nqueues++;
        if (q->ndomains == 0)
            return config_err(err, e, "a queue needs at least one domain");
    }
    return 0;
}

/* --- the whole file --------------------------------------------------------- */

static void etrnd_default_hostname(char *out, size_t n)
{
    char host[256];
    struct etrn_err ignored;
    if (gethostname(host, sizeof host) == 0) {
        host[sizeof host - 1] = '\0';
        if (domain_check(host, strlen(host), DOMAIN_REQUIRE_FQDN, &ignored) == 0 &&
            domain_normalize(host, out, n) == 0)
            return;
    }
    str_copy(out, n, "localhost.localdomain");
}

static void etrnd_config_defaults(struct etrnd_config *c)
{
    etrnd_default_hostname(c->myhostname, sizeof c->myhostname);
    c->log_level = LOG_LEVEL_INFO;
    c->etrn_enabled = 1;
    c->etrn_rate_limit = 20;
    c->etrn_rate_window_ms = 60000;
    c->etrn_reply_style = ETRN_REPLY_COUNTED;
    c->smtp_port = 25;
    c->max_per_destination = 2;
    c->max_deliveries = 20;
    c->retry_interval_ms = 0;
    c->max_queue_life_ms = 5ULL * 86400000ULL;
    c->timeout_connect_ms = 30000;
    c->timeout_greeting_ms = 300000;
    c->timeout_mail_ms = 300000;
    c->timeout_rcpt_ms = 300000;
    c->timeout_data_ms = 120000;
    c->timeout_block_ms = 180000;
    c->timeout_dot_ms = 600000;
    c->delivery_starttls = 1;
    c->message_size_limit = 10ULL * 1024 * 1024;
    c->max_recipients = 100;
    c->max_sessions = 1000;
    c->max_sessions_per_client = 50;
    c->timeout_idle_ms = 300000;
    c->max_errors = 20;
}

/* lib/config keeps every entry of a key given twice and config_get takes the last, which
 * would silently drop the first etrn_domains or listen line of a file edited in two places.
 * Only etrn_allow is a repeatable rule list. Quadratic, but files are small and this runs
 * once per load. */
static int etrnd_config_refuse_duplicates(const struct config *cfg, struct etrn_err *err)
{
    for (size_t i = 0; i < cfg->n; i++) {
        const struct config_entry *e = &cfg->entries[i];
        if (strcmp(e->key, "etrn_allow") == 0)
            continue;
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->entries[j].key, e->key) == 0)
                return config_err(err, e, "set twice (first at line %d); only etrn_allow repeats",
                                  cfg->entries[j].line);
    }
    return 0;
}

static int etrnd_config_parse(struct config *cfg, struct etrnd_config *c, struct etrn_err *err)
{
    const struct config_entry *e;
    struct etrn_err why;

    if (etrnd_config_refuse_duplicates(cfg, err) < 0)
        return -1;

    /* listening and identity */
    if ((e = config_get(cfg, "listen")) == NULL)
        return err_set(err, "%s: listen: required setting is missing", cfg->file);
    {
        char **items;
        size_t k;
        if (config_split_list(e->value, &items, &k) < 0)
            return config_err(err, e, "out of memory");
        if (k == 0 || k > 64) {
            config_list_free(items, k);
            return config_err(err, e, "1 to 64 addr:port items are needed");
        }
        c->listen = calloc(k, sizeof *c->listen);
        if (c->listen == NULL) {
            config_list_free(items, k);
            return config_err(err, e, "out of memory");
        }
        for (size_t i = 0; i < k; i++)
            if (netaddr_parse(items[i], 25, &c->listen[i], &why) < 0) {
                config_list_free(items, k);
                return config_err(err, e, "%s", why.msg);
            }
        c->nlisten = k;
        config_list_free(items, k);
    }
    if ((e = config_get(cfg, "myhostname")) != NULL) {
        if (domain_check(e->value, strlen(e->value), DOMAIN_REQUIRE_FQDN, &why) < 0)
            return config_err(err, e, "%s", why.msg);
        if (domain_normalize(e->value, c->myhostname, sizeof c->myhostname) < 0)
            return config_err(err, e, "too long");
    }
    if (cfg_string(cfg, "spool", &c->spool, 1, err) < 0 ||
        cfg_string(cfg, "log_file", &c->log_file, 0, err) < 0 ||
        cfg_string(cfg, "pid_file", &c->pid_file, 0, err) < 0)
        return -1;
    if ((e = config_get(cfg, "log_level")) != NULL) {
        enum log_level lv;
        if (log_level_parse(e->value, &lv) < 0)
            return config_err(err, e, "'%s' is not error, warn, info or debug", e->value);
        c->log_level = (int)lv;
    }

    /* what is held and who may relay */
    if ((e = config_get(cfg, "etrn_domains")) != NULL &&
        cfg_domain_list(e, DOMAIN_REQUIRE_FQDN, &c->etrn_domains, &c->netrn_domains, err) < 0)
        return -1;
    if ((e = config_get(cfg, "mynetworks")) != NULL &&
        netmask_parse_list(e->value, &c->mynetworks, &c->nmynetworks, &why) < 0)
        return config_err(err, e, "%s", why.msg);

    /* ETRN policy */
    if (cfg_bool(cfg, "etrn", &c->etrn_enabled, err) < 0 ||
        cfg_bool(cfg, "etrn_require_auth", &c->etrn_require_auth, err) < 0 ||
        cfg_bool(cfg, "etrn_require_helo", &c->etrn_require_helo, err) < 0 ||
        cfg_uint(cfg, "etrn_rate_limit", 0, 1000000, &c->etrn_rate_limit, err) < 0 ||
        cfg_duration(cfg, "etrn_rate_window", 1, &c->etrn_rate_window_ms, err) < 0)
        return -1;
    if ((e = config_get(cfg, "etrn_reply")) != NULL) {
        if (str_casecmp(e->value, "counted") == 0)
            c->etrn_reply_style = ETRN_REPLY_COUNTED;
        else if (str_casecmp(e->value, "plain") == 0)
            c->etrn_reply_style = ETRN_REPLY_PLAIN;
        else
            return config_err(err, e, "'%s' is not counted or plain", e->value);
    }
    if (cfg_etrn_rules(cfg, c, err) < 0)
        return -1;

    /* delivery; smtp_port first, it is the default port of route.DOMAIN */
    if (cfg_uint(cfg, "smtp_port", 1, 65535, (unsigned *)&c->smtp_port, err) < 0)
        return -1;
    if ((e = config_get(cfg, "dns_server")) != NULL) {
        if (netaddr_parse(e->value, 53, &c->dns_server, &why) < 0)
            return config_err(err, e, "%s", why.msg);
        c->dns_server_set = 1;
    }
    if (cfg_routes(cfg, c, err) < 0 || cfg_queues(cfg, c, err) < 0)
        return -1;
    if (cfg_uint(cfg, "delivery_concurrency", 1, 1000, &c->max_per_destination, err) < 0 ||
        cfg_uint(cfg, "delivery_max_connections", 1, 10000, &c->max_deliveries, err) < 0 ||
        cfg_duration(cfg, "retry_interval", 0, &c->retry_interval_ms, err) < 0 ||
        cfg_duration(cfg, "max_queue_lifetime", 1000, &c->max_queue_life_ms, err) < 0 ||
        cfg_duration(cfg, "smtp_connect_timeout", 1, &c->timeout_connect_ms, err) < 0 ||
        cfg_duration(cfg, "smtp_greeting_timeout", 1, &c->timeout_greeting_ms, err) < 0 ||
        cfg_duration(cfg, "smtp_mail_timeout", 1, &c->timeout_mail_ms, err) < 0 ||
        cfg_duration(cfg, "smtp_rcpt_timeout", 1, &c->timeout_rcpt_ms, err) < 0 ||
        cfg_duration(cfg, "smtp_data_timeout", 1, &c->timeout_data_ms, err) < 0 ||
        cfg_duration(cfg, "smtp_block_timeout", 1, &c->timeout_block_ms, err) < 0 ||
        cfg_duration(cfg, "smtp_dot_timeout", 1, &c->timeout_dot_ms, err) < 0 ||
        cfg_bool(cfg, "delivery_starttls", &c->delivery_starttls, err) < 0)
        return -1;
    if (c->max_per_destination > c->max_deliveries)
        c->max_per_destination = c->max_deliveries;

    /* server side limits */
    if ((e = config_get(cfg, "message_size_limit")) != NULL) {
        if (config_parse_size(e, &c->message_size_limit, err) < 0)
            return -1;
        if (c->message_size_limit < 1024 || c->message_size_limit > (1ULL << 40))
            return config_err(err, e, "'%s' is outside 1k..1T", e->value);
    }
    if (cfg_uint(cfg, "max_recipients", 1, 100000, &c->max_recipients, err) < 0 ||
        cfg_uint(cfg, "max_sessions", 1, 100000, &c->max_sessions, err) < 0 ||
        cfg_uint(cfg, "max_sessions_per_client", 0, 100000, &c->max_sessions_per_client, err) < 0 ||
        cfg_duration(cfg, "smtpd_timeout", 1000, &c->timeout_idle_ms, err) < 0 ||
        cfg_uint(cfg, "smtpd_max_errors", 1, 100000, &c->max_errors, err) < 0)
        return -1;

    /* TLS and AUTH */
    const struct config_entry *cert = config_get(cfg, "tls_cert_file");
    const struct config_entry *key = config_get(cfg, "tls_key_file");
    if ((cert == NULL) != (key == NULL)) {
        e = cert ? cert : key;
        return config_err(err, e, "tls_cert_file and tls_key_file are needed together");
    }
    if (cert != NULL && (cfg_readable(cert, err) < 0 || cfg_readable(key, err) < 0))
        return -1;
    if (cfg_string(cfg, "tls_cert_file", &c->tls_cert_file, 0, err) < 0 ||
        cfg_string(cfg, "tls_key_file", &c->tls_key_file, 0, err) < 0)
        return -1;
    if ((e = config_get(cfg, "auth_password_file")) != NULL && cfg_readable(e, err) < 0)
        return -1;
    if (cfg_string(cfg, "auth_password_file", &c->auth_password_file, 0, err) < 0 ||
        cfg_bool(cfg, "auth_allow_plaintext", &c->auth_allow_plaintext, err) < 0)
        return -1;

    /* test-only defects */
    if ((e = config_get(cfg, "defect")) != NULL) {
        if (config_split_list(e->value, &c->defects, &c->ndefects) < 0)
            return config_err(err, e, "out of memory");
        for (size_t i = 0; i < c->ndefects; i++) {
            size_t k, nk = sizeof etrnd_known_defects / sizeof etrnd_known_defects[0];
            for (k = 0; k < nk; k++)
                if (strcmp(c->defects[i], etrnd_known_defects[k]) == 0)
                    break;
            if (k == nk)
                return config_err(err, e, "unknown defect '%s' (see etrnd.conf(5))", c->defects[i]);
        }
    }
    return config_check_unused(cfg, err);
}

int etrnd_config_load(struct etrnd_config **out, const char *path, struct etrn_err *err)
{
    *out = NULL;
    struct config cfg;
    if (config_load_file(&cfg, path, err) < 0)
        return -1;
    struct etrnd_config *c = calloc(1, sizeof *c);
    if (c == NULL) {
        config_free(&cfg);
        return err_set(err, "%s: out of memory", path);
    }
    etrnd_config_defaults(c);
    c->file = etrnd_strdup(path);
    if (c->file == NULL || etrnd_config_parse(&cfg, c, err) < 0) {
        if (c->file == NULL)
            err_set(err, "%s: out of memory", path);
        etrnd_config_free(c);
        config_free(&cfg);
        return -1;
    }
    config_free(&cfg);
    *out = c;
    return 0;
}

/* --- lookups ---------------------------------------------------------------- */

int etrnd_config_holds_domain(const struct etrnd_config *c, const char *domain)
{
    for (size_t i = 0; i < c->netrn_domains; i++)
        if (domain_is_within(domain, c->etrn_domains[i]))
            return 1;
    return 0;
}

static int cfg_route_cmp(const void *a, const void *b)
{
    return strcmp(((const struct etrnd_route *)a)->domain, ((const struct etrnd_route *)b)->domain);
}

void etrnd_config_sort_routes(struct etrnd_route *routes, size_t n)
{
    if (n > 1)
        qsort(routes, n, sizeof *routes, cfg_route_cmp);
}

const struct etrnd_route *etrnd_config_route(const struct etrnd_config *c, const char *domain)
{
    struct etrnd_route key;
    if (c->nroutes == 0 || domain_normalize(domain, key.domain, sizeof key.domain) < 0)
        return NULL;
    return bsearch(&key, c->routes, c->nroutes, sizeof *c->routes, cfg_route_cmp);
}

const struct etrnd_queue *etrnd_config_queue(const struct etrnd_config *c, const char *name)
{
    for (size_t i = 0; i < c->nqueues; i++)
        if (str_casecmp(c->queues[i].name, name) == 0)
            return &c->queues[i];
    return NULL;
}

int etrnd_config_defect(const struct etrnd_config *c, const char *name)
{
    for (size_t i = 0; i < c->ndefects; i++)
        if (strcmp(c->defects[i], name) == 0)
            return 1;
    return 0;
}
