/* config.c — reads `key = value` files; every entry remembers its file and line.
 *
 *   config_load_file(&cfg, "etrnd.conf", &err);   // "etrnd.conf:7: expected 'key = value'"
 *   config_get(&cfg, "listen");  config_next(&cfg, "route.", &pos);
 *
 * Syntax in config.h. Lines are limited to 4096 bytes and files to 1 MiB, so a runaway
 * file cannot exhaust memory; both limits give a file:line error. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fileio.h"
#include "strbuf.h"

#define CONFIG_FILE_MAX (1024 * 1024)
#define CONFIG_LINE_MAX 4096

static int config_key_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '@' || c == '#' || c == '-';
}

/* Cuts a comment: '#' at the start or after whitespace. */
static void config_strip_comment(char *s)
{
    for (char *p = s; *p; p++)
        if (*p == '#' && (p == s || p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            return;
        }
}

static int config_add(struct config *cfg, size_t *cap, const char *key, size_t klen,
                      const char *value, int line)
{
    if (cfg->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct config_entry *v = realloc(cfg->entries, nc * sizeof *v);
        if (v == NULL)
            return -1;
        cfg->entries = v;
        *cap = nc;
    }
    struct config_entry *e = &cfg->entries[cfg->n];
    e->key = strndup(key, klen);
    e->value = strdup(value);
    if (e->key == NULL || e->value == NULL) {
        free(e->key);
        free(e->value);
        return -1;
    }
    e->file = cfg->file;
    e->line = line;
    e->used = 0;
    cfg->n++;
    return 0;
}

/* Appends continuation text to the last entry's value. */
static int config_continue(struct config *cfg, const char *more)
{
    struct config_entry *e = &cfg->entries[cfg->n - 1];
    size_t a = strlen(e->value), b = strlen(more);
    if (a + b + 2 > CONFIG_FILE_MAX)
        return -1;
    char *v = realloc(e->value, a + b + 2);
    if (v == NULL)
        return -1;
    if (a > 0)
        v[a++] = ' ';
    memcpy(v + a, more, b + 1);
    e->value = v;
    return 0;
}

int config_load_string(struct config *cfg, const char *name, const char *text,
                       struct etrn_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->file = strdup(name);
    if (cfg->file == NULL)
        return err_set(err, "%s: out of memory", name);
    size_t cap = 0;
    int lineno = 0;
    const char *p = text;
    char buf[CONFIG_LINE_MAX + 1];
    while (*p) {
        lineno++;
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > CONFIG_LINE_MAX) {
            err_set(err, "%s:%d: line longer than %d bytes", name, lineno, CONFIG_LINE_MAX);
            goto fail;
        }
        memcpy(buf, p, len);
        buf[len] = '\0';
        p = nl ? nl + 1 : p + len;
        if (memchr(buf, '\0', len) != NULL && strlen(buf) != len) {
            err_set(err, "%s:%d: NUL byte in line", name, lineno);
            goto fail;
        }
        int continuation = (buf[0] == ' ' || buf[0] == '\t');
        config_strip_comment(buf);
        char *s = str_trim(buf);
        if (*s == '\0')
            continue;
        if (continuation) {
            if (cfg->n == 0) {
                err_set(err, "%s:%d: continuation line without a setting before it", name, lineno);
                goto fail;
            }
            if (config_continue(cfg, s) < 0) {
                err_set(err, "%s:%d: out of memory", name, lineno);
                goto fail;
            }
            continue;
        }
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            err_set(err, "%s:%d: expected 'key = value'", name, lineno);
            goto fail;
        }
        size_t klen = (size_t)(eq - s);
        while (klen > 0 && (s[klen - 1] == ' ' || s[klen - 1] == '\t'))
            klen--;
        if (klen == 0) {
            err_set(err, "%s:%d: missing key before '='", name, lineno);
            goto fail;
        }
        for (size_t i = 0; i < klen; i++)
            if (!config_key_char((unsigned char)s[i])) {
                err_set(err, "%s:%d: invalid character '%c' in key", name, lineno,
                        (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?');
                goto fail;
            }
        char *value = str_trim(eq + 1);
        if (config_add(cfg, &cap, s, klen, value, lineno) < 0) {
            err_set(err, "%s:%d: out of memory", name, lineno);
            goto fail;
        }
    }
    return 0;
fail:
    config_free(cfg);
    return -1;
}

int config_load_file(struct config *cfg, const char *path, struct etrn_err *err)
{
    struct strbuf sb;
    strbuf_init(&sb, CONFIG_FILE_MAX);
    memset(cfg, 0, sizeof *cfg);
    if (fileio_read_file(path, &sb, CONFIG_FILE_MAX, err) < 0) {
        strbuf_free(&sb);
        return -1;
    }
    if (strlen(sb.data) != sb.len) {
        /* Find the line of the first NUL for the message. */
        int line = 1;
        for (size_t i = 0; i < sb.len && sb.data[i]; i++)
            if (sb.data[i] == '\n')
                line++;
        strbuf_free(&sb);
        return err_set(err, "%s:%d: NUL byte in line", path, line);
    }
    int rc = config_load_string(cfg, path, sb.data, err);
    strbuf_free(&sb);
    return rc;
}

void config_free(struct config *cfg)
{
    for (size_t i = 0; i < cfg->n; i++) {
        free(cfg->entries[i].key);
        free(cfg->entries[i].value);
    }
    free(cfg->entries);
    free(cfg->file);
    memset(cfg, 0, sizeof *cfg);
}

const struct config_entry *config_get(struct config *cfg, const char *key)
{
    struct config_entry *found = NULL;
    for (size_t i = 0; i < cfg->n; i++)
        if (strcmp(cfg->entries[i].key, key) == 0) {
            cfg->entries[i].used = 1;
            found = &cfg->entries[i];
        }
    return found;
}

const struct config_entry *config_next(struct config *cfg, const char *prefix, size_t *pos)
{
    size_t pl = strlen(prefix);
    for (; *pos < cfg->n; (*pos)++) {
        struct config_entry *e = &cfg->entries[*pos];
        if (strncmp(e->key, prefix, pl) == 0) {
            e->used = 1;
            (*pos)++;
            return e;
        }
    }
    return NULL;
}

int config_check_unused(const struct config *cfg, struct etrn_err *err)
{
    for (size_t i = 0; i < cfg->n; i++)
        if (!cfg->entries[i].used)
            return err_set(err, "%s:%d: unknown setting '%s'", cfg->entries[i].file,
                           cfg->entries[i].line, cfg->entries[i].key);
    return 0;
}

int config_err(struct etrn_err *err, const struct config_entry *e, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    char msg[ETRN_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set(err, "%s:%d: %s: %s", e->file, e->line, e->key, msg);
}

int config_parse_uint(const struct config_entry *e, unsigned long min, unsigned long max,
                      unsigned long *out, struct etrn_err *err)
{
    const char *v = e->value;
    char *end = NULL;
    if (*v < '0' || *v > '9')
        return config_err(err, e, "'%s' is not a number", v);
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (*end != '\0')
        return config_err(err, e, "'%s' is not a number", v);
    if (errno == ERANGE || x < min || x > max)
        return config_err(err, e, "%s is out of range %lu..%lu", v, min, max);
    *out = (unsigned long)x;
    return 0;
}

int config_parse_bool(const struct config_entry *e, int *out, struct etrn_err *err)
{
    static const char *const yes[] = { "yes", "true", "on", "1" };
    static const char *const no[] = { "no", "false", "off", "0" };
    for (int i = 0; i < 4; i++) {
        if (str_casecmp(e->value, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (str_casecmp(e->value, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return config_err(err, e, "'%s' is not yes or no", e->value);
}

/* Number with a unit suffix; units is a table of {suffix, multiplier}. */
static int config_parse_scaled(const struct config_entry *e, const char *const *suffixes,
                               const unsigned long long *mult, size_t nunits,
                               unsigned long long dflt, unsigned long long *out, const char *what,
                               struct etrn_err *err)
{
    const char *v = e->value;
    if (*v < '0' || *v > '9')
        return config_err(err, e, "'%s' is not a %s", v, what);
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno == ERANGE)
        return config_err(err, e, "'%s' is too large", v);
    unsigned long long m = dflt;
    while (*end == ' ' || *end == '\t')   /* "10 M" reads as well as "10M" */
        end++;
    if (*end != '\0') {
        size_t i;
        for (i = 0; i < nunits; i++)
            if (strcmp(end, suffixes[i]) == 0)
                break;
        if (i == nunits)
            return config_err(err, e, "'%s' is not a %s", v, what);
        m = mult[i];
    }
    if (m != 0 && x > ~0ULL / m)
        return config_err(err, e, "'%s' is too large", v);
    *out = x * m;
    return 0;
}

int config_parse_duration_ms(const struct config_entry *e, unsigned long long *out_ms,
                             struct etrn_err *err)
{
    static const char *const suf[] = { "ms", "s", "m", "h", "d" };
    static const unsigned long long mult[] = { 1, 1000, 60000, 3600000, 86400000 };
    return config_parse_scaled(e, suf, mult, 5, 1000, out_ms,
                               "duration (e.g. 250ms, 30s, 5m, 2h, 5d)", err);
}

int config_parse_size(const struct config_entry *e, unsigned long long *out,
                      struct etrn_err *err)
{
    static const char *const suf[] = { "k", "K", "m", "M", "g", "G" };
    static const unsigned long long mult[] = { 1024ULL, 1024ULL, 1048576ULL, 1048576ULL,
                                               1073741824ULL, 1073741824ULL };
    return config_parse_scaled(e, suf, mult, 6, 1, out, "size (e.g. 1024, 10k, 10M)", err);
}

int config_split_list(const char *value, char ***items, size_t *n)
{
    *items = NULL;
    *n = 0;
    size_t cap = 0;
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '\0')
            break;
        size_t len = strcspn(p, " \t,");
        if (*n == cap) {
            cap = cap ? cap * 2 : 4;
            char **v = realloc(*items, cap * sizeof *v);
            if (v == NULL)
                goto fail;
            *items = v;
        }
        (*items)[*n] = strndup(p, len);
        if ((*items)[*n] == NULL)
            goto fail;
        (*n)++;
        p += len;
    }
    return 0;
fail:
    config_list_free(*items, *n);
    *items = NULL;
    *n = 0;
    return -1;
}

void config_list_free(char **items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(items[i]);
    free(items);
}
