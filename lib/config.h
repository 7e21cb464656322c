/* config.h — the `key = value` configuration file reader shared by every etrnkit program.
 *
 *   struct config cfg; struct etrn_err err;
 *   if (config_load_file(&cfg, "etrnd.conf", &err) < 0) die(err.msg);   // "etrnd.conf:7: ..."
 *   const struct config_entry *e = config_get(&cfg, "listen");
 *   config_free(&cfg);
 *
 * Syntax: one `key = value` per line; keys are [A-Za-z0-9_.@#-]+ and compared
 * case-sensitively; '#' at line start or after whitespace starts a comment; blank
 * lines ignored; a line starting with whitespace continues the previous value
 * (joined with one space). A key given twice keeps both entries; config_get returns
 * the last. Every entry remembers file and line so callers can name the place in
 * their own errors with config_err(). */
#ifndef ETRN_CONFIG_H
#define ETRN_CONFIG_H

#include <stddef.h>
#include "err.h"

struct config_entry {
    char *key;
    char *value;       /* trimmed; may be "" */
    const char *file;  /* points into struct config */
    int line;
    int used;          /* set by config_get/config_next; see config_check_unused */
};

struct config {
    struct config_entry *entries;
    size_t n;
    char *file;        /* the name given at load time */
};

int config_load_file(struct config *cfg, const char *path, struct etrn_err *err);
/* name is used in error messages in place of a file name. */
int config_load_string(struct config *cfg, const char *name, const char *text,
                       struct etrn_err *err);
void config_free(struct config *cfg);

/* The last entry with this key, or NULL. Marks it (and earlier ones) used. */
const struct config_entry *config_get(struct config *cfg, const char *key);
/* Iterates entries whose key starts with prefix (e.g. "route."); *pos starts at 0. */
const struct config_entry *config_next(struct config *cfg, const char *prefix, size_t *pos);
/* Fails with "file:line: unknown setting 'key'" for the first entry never looked up. */
int config_check_unused(const struct config *cfg, struct etrn_err *err);

/* Sets err to "file:line: key: message" and returns -1. */
int config_err(struct etrn_err *err, const struct config_entry *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Value parsers; each names the entry's file:line on error. */
int config_parse_uint(const struct config_entry *e, unsigned long min, unsigned long max,
                      unsigned long *out, struct etrn_err *err);
int config_parse_bool(const struct config_entry *e, int *out, struct etrn_err *err);
/* "90", "90s", "15m", "2h", "5d", "250ms" → milliseconds. */
int config_parse_duration_ms(const struct config_entry *e, unsigned long long *out_ms,
                             struct etrn_err *err);
/* "1024", "10k", "10M" → bytes. */
int config_parse_size(const struct config_entry *e, unsigned long long *out,
                      struct etrn_err *err);
/* Splits a comma- and/or whitespace-separated list. *items is a malloc'd array of
 * malloc'd strings; free with config_list_free. An empty value gives n = 0. */
int config_split_list(const char *value, char ***items, size_t *n);
void config_list_free(char **items, size_t n);

#endif
