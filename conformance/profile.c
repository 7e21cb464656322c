/* profile.c — target profiles: key = value files (lib/config.h) and the same keys as
 * command-line options, with defaults, validation and {placeholder} expansion.
 *
 *   profile_init(&p); profile_load_file(&p, path, &err); profile_set(&p, k, v, "--k", &err);
 *   profile_finish(&p, &err);  profile_expand(&p, p.start, &cmd, &err);
 *   profile_free(&p);
 *
 * Guarantees: after profile_finish every required value is present and parsed (target
 * address, ports, durations); errors name the file:line or the option. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "domain.h"
#include "profile.h"
#include "scenario.h"

static const char *const keys[] = {
    "name", "description", "target", "dns_listen", "node_suffix", "foreign_suffix",
    "source", "denied_source", "hostname", "locked_suffix", "hash_queue",
    "hash_queue_domain", "submission", "ehlo_name", "capabilities", "start", "stop",
    "reset", "queue_list", "config_template", "config_file", "scenarios", "work_dir",
    "sink_port", "jobs", "start_timeout", "step_timeout", "scenario_timeout",
    "flush_timeout", "quiet_timeout", "queue_settle", NULL};

const char *const *profile_keys(void)
{
    return keys;
}

int profile_is_key(const char *key)
{
    for (size_t i = 0; keys[i]; i++)
        if (strcmp(keys[i], key) == 0)
            return 1;
    return 0;
}

void profile_init(struct target_profile *p)
{
    memset(p, 0, sizeof *p);
    p->sink_port = 2526;
    p->jobs = 1;
    p->start_timeout_ms = 15000;
    p->step_timeout_ms = 10000;
    p->scenario_timeout_ms = 120000;
    p->flush_timeout_ms = 30000;
    p->quiet_timeout_ms = 2000;
}

static void set_str(char **slot, const char *v)
{
    free(*slot);
    *slot = strdup(v);
}

void profile_free(struct target_profile *p)
{
    char **strs[] = {&p->name, &p->description, &p->dir, &p->target, &p->dns_listen,
                     &p->node_suffix, &p->foreign_suffix, &p->source, &p->denied_source,
                     &p->hostname, &p->locked_suffix, &p->hash_queue,
                     &p->hash_queue_domain, &p->submission, &p->ehlo_name, &p->start, &p->stop, &p->reset,
                     &p->queue_list, &p->config_template, &p->config_file, &p->scenarios,
                     &p->work_dir, &p->dns_addr, &p->root, &p->bin};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        free(*strs[i]);
    config_list_free(p->capabilities, p->ncapabilities);
    memset(p, 0, sizeof *p);
}

static int parse_ms(const char *v, const char *where, const char *key,
                    unsigned long long *out, struct etrn_err *err)
{
    if (scenario_duration_parse(v, out) < 0 || *out == 0)
        return err_set(err, "%s: %s: '%s' is not a duration (250ms, 10s, 5m)", where, key, v);
    return 0;
}

int profile_set(struct target_profile *p, const char *key, const char *value,
                const char *where, struct etrn_err *err)
{
    struct { const char *key; char **slot; } strs[] = {
        {"name", &p->name}, {"description", &p->description}, {"target", &p->target},
        {"dns_listen", &p->dns_listen}, {"node_suffix", &p->node_suffix},
        {"foreign_suffix", &p->foreign_suffix}, {"source", &p->source},
        {"denied_source", &p->denied_source}, {"hostname", &p->hostname},
        {"locked_suffix", &p->locked_suffix}, {"hash_queue", &p->hash_queue},
        {"hash_queue_domain", &p->hash_queue_domain}, {"submission", &p->submission},
        {"ehlo_name", &p->ehlo_name}, {"start", &p->start}, {"stop", &p->stop},
        {"reset", &p->reset}, {"queue_list", &p->queue_list},
        {"config_template", &p->config_template}, {"config_file", &p->config_file},
        {"scenarios", &p->scenarios}, {"work_dir", &p->work_dir},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (strcmp(key, strs[i].key) == 0) {
            if (value[0] == '\0') {   /* an empty value unsets (e.g. --start '') */
                free(*strs[i].slot);
                *strs[i].slot = NULL;
                return 0;
            }
            set_str(strs[i].slot, value);
            return *strs[i].slot ? 0 : err_set(err, "%s: out of memory", where);
        }
    if (strcmp(key, "capabilities") == 0) {
        config_list_free(p->capabilities, p->ncapabilities);
        p->capabilities = NULL;
        p->ncapabilities = 0;
        if (config_split_list(value, &p->capabilities, &p->ncapabilities) < 0)
            return err_set(err, "%s: capabilities: out of memory", where);
        return 0;
    }
    if (strcmp(key, "sink_port") == 0 || strcmp(key, "jobs") == 0) {
        char *end;
        long v = strtol(value, &end, 10);
        long max = key[0] == 's' ? 65535 : 64;
        if (*end != '\0' || value[0] == '\0' || v < 1 || v > max)
            return err_set(err, "%s: %s: '%s' is not a number from 1 to %ld", where, key,
                           value, max);
        if (key[0] == 's')
            p->sink_port = (int)v;
        else
            p->jobs = (unsigned)v;
        return 0;
    }
    struct { const char *key; unsigned long long *slot; } durs[] = {
        {"start_timeout", &p->start_timeout_ms}, {"step_timeout", &p->step_timeout_ms},
        {"scenario_timeout", &p->scenario_timeout_ms}, {"flush_timeout", &p->flush_timeout_ms},
        {"quiet_timeout", &p->quiet_timeout_ms}, {"queue_settle", &p->queue_settle_ms},
    };
    for (size_t i = 0; i < sizeof durs / sizeof durs[0]; i++)
        if (strcmp(key, durs[i].key) == 0)
            return parse_ms(value, where, key, durs[i].slot, err);
    struct strbuf known;
    strbuf_init(&known, 1024);
    for (size_t i = 0; keys[i]; i++)
        strbuf_appendf(&known, "%s%s", i ? ", " : "", keys[i]);
    err_set(err, "%s: unknown setting '%s' (known: %s)", where, key, known.data);
    strbuf_free(&known);
    return -1;
}

int profile_load_file(struct target_profile *p, const char *path, struct etrn_err *err)
{
    struct config cfg;
    if (config_load_file(&cfg, path, err) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < cfg.n && rc == 0; i++) {
        char where[600];
        snprintf(where, sizeof where, "%s:%d", cfg.entries[i].file, cfg.entries[i].line);
        rc = profile_set(p, cfg.entries[i].key, cfg.entries[i].value, where, err);
    }
    config_free(&cfg);
    if (rc == 0) {
        const char *slash = strrchr(path, '/');
        free(p->dir);
        p->dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
        if (p->dir == NULL)
            return err_set(err, "%s: out of memory", path);
        if (p->name == NULL) {
            const char *base = slash ? slash + 1 : path;
            const char *dot = strrchr(base, '.');
            p->name = dot ? strndup(base, (size_t)(dot - base)) : strdup(base);
        }
    }
    return rc;
}

static int default_str(char **slot, const char *v)
{
    if (*slot == NULL)
        *slot = strdup(v);
    return *slot ? 0 : -1;
}

int profile_finish(struct target_profile *p, struct etrn_err *err)
{
    if (p->target == NULL)
        return err_set(err, "no target: give --target HOST:PORT or a profile with target = ...");
    if (default_str(&p->dns_listen, "127.0.0.1:5353") < 0 ||
        default_str(&p->node_suffix, "etrn.test") < 0 ||
        default_str(&p->foreign_suffix, "not-served.example") < 0 ||
        default_str(&p->source, "127.0.0.1") < 0 ||
        default_str(&p->ehlo_name, "etrncheck.example") < 0 ||
        default_str(&p->scenarios, "fixtures/scenarios") < 0 ||
        default_str(&p->name, "") < 0 || default_str(&p->description, "") < 0 ||
        default_str(&p->dir, ".") < 0)
        return err_set(err, "out of memory");
    struct etrn_err e;
    if (netaddr_parse(p->target, 25, &p->target_addr, &e) < 0)
        return err_set(err, "target: %s", e.msg);
    if (netaddr_format_host((struct sockaddr *)&p->target_addr.ss, p->target_host,
                            sizeof p->target_host) < 0)
        return err_set(err, "target: cannot format '%s'", p->target);
    p->target_port = netaddr_port((struct sockaddr *)&p->target_addr.ss);
    struct netaddr a;
    if (netaddr_parse(p->dns_listen, 53, &a, &e) < 0)
        return err_set(err, "dns_listen: %s", e.msg);
    if (netaddr_parse(p->source, 0, &a, &e) < 0)
        return err_set(err, "source: %s", e.msg);
    if (p->denied_source && netaddr_parse(p->denied_source, 0, &a, &e) < 0)
        return err_set(err, "denied_source: %s", e.msg);
    if (p->submission && netaddr_parse(p->submission, 587, &a, &e) < 0)
        return err_set(err, "submission: %s", e.msg);
    if (p->locked_suffix && domain_check(p->locked_suffix, strlen(p->locked_suffix), 0, NULL) < 0)
        return err_set(err, "locked_suffix '%s' is not a domain", p->locked_suffix);
    if (p->config_template && p->config_file == NULL)
        return err_set(err, "config_template needs config_file (where to write it)");
    if (domain_check(p->node_suffix, strlen(p->node_suffix), 0, NULL) < 0 ||
        domain_check(p->foreign_suffix, strlen(p->foreign_suffix), 0, NULL) < 0)
        return err_set(err, "node_suffix '%s' or foreign_suffix '%s' is not a domain",
                       p->node_suffix, p->foreign_suffix);
    return 0;
}

int profile_has_capability(const struct target_profile *p, const char *cap)
{
    for (size_t i = 0; i < p->ncapabilities; i++)
        if (str_casecmp(p->capabilities[i], cap) == 0)
            return 1;
    /* derived capabilities */
    if (strcmp(cap, "queue-list") == 0)
        return p->queue_list != NULL;
    if (strcmp(cap, "denied-source") == 0)
        return p->denied_source != NULL;
    if (strcmp(cap, "hostname") == 0)
        return p->hostname != NULL;
    if (strcmp(cap, "locked-nodes") == 0)
        return p->locked_suffix != NULL;
    if (strcmp(cap, "hash-queue") == 0)
        return p->hash_queue != NULL && p->hash_queue_domain != NULL;
    if (strcmp(cap, "submission") == 0)
        return p->submission != NULL;
    return 0;
}

static const char *host_part(const char *addr, char *buf, size_t n)
{
    struct netaddr a;
    if (addr == NULL || netaddr_parse(addr, 0, &a, NULL) < 0 ||
        netaddr_format_host((struct sockaddr *)&a.ss, buf, n) < 0)
        return NULL;
    return buf;
}

static const char *port_part(const char *addr, char *buf, size_t n)
{
    struct netaddr a;
    if (addr == NULL || netaddr_parse(addr, 0, &a, NULL) < 0)
        return NULL;
    snprintf(buf, n, "%d", netaddr_port((struct sockaddr *)&a.ss));
    return buf;
}

int profile_expand(const struct target_profile *p, const char *in, struct strbuf *out,
                   struct etrn_err *err)
{
    char port[16], sinkport[16], dnshost[NETADDR_TEXT_MAX], dnsport[16];
    const char *dns = p->dns_addr ? p->dns_addr : p->dns_listen;
    snprintf(port, sizeof port, "%d", p->target_port);
    snprintf(sinkport, sizeof sinkport, "%d", p->sink_port);
    struct { const char *name; const char *value; } vars[] = {
        {"workdir", p->work_dir},
        {"target", p->target},
        {"target_host", p->target_host},
        {"target_port", port},
        {"dns", dns},
        {"dns_host", host_part(dns, dnshost, sizeof dnshost)},
        {"dns_port", port_part(dns, dnsport, sizeof dnsport)},
        {"sink_port", sinkport},
        {"node_suffix", p->node_suffix},
        {"source", p->source},
        {"denied_source", p->denied_source},
        {"hostname", p->hostname},
        {"locked_suffix", p->locked_suffix},
        {"hash_queue", p->hash_queue},
        {"hash_queue_domain", p->hash_queue_domain},
        {"submission", p->submission},
        {"foreign_suffix", p->foreign_suffix},
        {"root", p->root ? p->root : "."},
        {"bin", p->bin ? p->bin : "bin"},
        {"config_file", p->config_file},
        {"profile_dir", p->dir ? p->dir : "."},
    };
    for (const char *s = in; *s;) {
        if (s[0] == '{' && s[1] == '{') {
            if (strbuf_append(out, "{", 1) < 0)
                return err_set(err, "expanded text too long");
            s += 2;
            continue;
        }
        if (*s != '{') {
            if (strbuf_append(out, s, 1) < 0)
                return err_set(err, "expanded text too long");
            s++;
            continue;
        }
        const char *close = strchr(s, '}');
        if (close == NULL)
            return err_set(err, "'{' without '}' in '%s'", in);
        size_t len = (size_t)(close - s - 1);
        size_t i;
        for (i = 0; i < sizeof vars / sizeof vars[0]; i++)
            if (strlen(vars[i].name) == len && strncmp(vars[i].name, s + 1, len) == 0)
                break;
        if (i == sizeof vars / sizeof vars[0])
            return err_set(err, "unknown placeholder '{%.*s}'", (int)len, s + 1);
        if (vars[i].value == NULL)
            return err_set(err, "placeholder '{%s}' has no value (set %s in the profile)",
                           vars[i].name, vars[i].name);
        if (strcmp(vars[i].name, "config_file") == 0 && strchr(vars[i].value, '{')) {
            /* config_file is itself a template ({workdir}/etrnd.conf); expanded without
             * itself so that a self-reference ends in an error, not a loop */
            struct target_profile inner = *p;
            inner.config_file = NULL;
            if (profile_expand(&inner, vars[i].value, out, err) < 0)
                return -1;
        } else if (strbuf_append_str(out, vars[i].value) < 0) {
            return err_set(err, "expanded text too long");
        }
        s = close + 1;
    }
    return 0;
}
