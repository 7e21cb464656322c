/* err.h — the caller-visible error object every etrnkit function fills on failure.
 *
 *   struct etrn_err err = {0};
 *   if (config_load_file(&cfg, path, &err) < 0) fprintf(stderr, "%s\n", err.msg);
 *
 * Library code never prints or exits: it returns -1 (or an enum) and leaves one
 * human-readable sentence here, already naming the place (file:line, peer, id). */
#ifndef ETRN_ERR_H
#define ETRN_ERR_H

#include <stddef.h>

#define ETRN_ERR_MAX 512

struct etrn_err {
    char msg[ETRN_ERR_MAX];
};

/* Formats msg (truncating safely) and returns -1, so callers can write
 * `return err_set(err, "...")`. err may be NULL. */
int err_set(struct etrn_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Like err_set, with ": strerror(errno)" appended (errno read at entry). */
int err_set_errno(struct etrn_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefixes an existing message: "prefix: old message". Returns -1. */
int err_prefix(struct etrn_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
