/* log.h — one-line logging for every etrnkit program.
 *
 *   log_open("etrnd", LOG_LEVEL_INFO, NULL);          // stderr; or a file path
 *   log_info("%s: from=<%s> size=%zu", qid, sender, size);
 *
 * Each line: "2026-11-22T10:00:00.123Z etrnd[pid]: info: text". Lines are written with a
 * single write(2) so concurrent processes sharing a file do not interleave mid-line;
 * a line is cut at 2048 bytes (newline included) and control characters become '?'.
 * Logging never fails loudly: an unwritable log is ignored after the first error. */
#ifndef ETRN_LOG_H
#define ETRN_LOG_H

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* path NULL or "-" means stderr. Returns -1 if the file cannot be opened (stderr kept). */
int log_open(const char *ident, enum log_level level, const char *path);
void log_set_level(enum log_level level);
/* Parses "error|warn|info|debug"; -1 if unknown. */
int log_level_parse(const char *s, enum log_level *out);
void log_close(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
