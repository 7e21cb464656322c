/* log.c — one-line logs with UTC timestamps, written with a single write(2) per line.
 *
 *   log_open("etrnd", LOG_LEVEL_INFO, "/var/log/etrnd.log");
 *   log_info("%s: from=<%s>", qid, sender);
 *
 * A log that cannot be written is given up silently after the first failure: logging must
 * never take a mail server down. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "strbuf.h"

#define LOG_LINE_MAX 2048

static char log_ident[32] = "etrnkit";
static enum log_level log_threshold = LOG_LEVEL_INFO;
static int log_fd = 2;
static int log_owns_fd;
static int log_broken;

int log_open(const char *ident, enum log_level level, const char *path)
{
    str_copy(log_ident, sizeof log_ident, ident ? ident : "etrnkit");
    log_threshold = level;
    log_broken = 0;
    if (path == NULL || strcmp(path, "-") == 0) {
        log_close();
        return 0;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    log_close();
    log_fd = fd;
    log_owns_fd = 1;
    return 0;
}

void log_set_level(enum log_level level)
{
    log_threshold = level;
}

int log_level_parse(const char *s, enum log_level *out)
{
    static const char *const names[] = { "error", "warn", "info", "debug" };
    for (int i = 0; i < 4; i++)
        if (str_casecmp(s, names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    return -1;
}

void log_close(void)
{
    if (log_owns_fd)
        close(log_fd);
    log_fd = 2;
    log_owns_fd = 0;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    static const char *const names[] = { "error", "warning", "info", "debug" };
    if ((int)level < (int)LOG_LEVEL_ERROR || level > LOG_LEVEL_DEBUG)
        level = LOG_LEVEL_ERROR;
    if (level > log_threshold || log_broken)
        return;
    /* At most LOG_LINE_MAX bytes go out, the newline included. */
    char line[LOG_LINE_MAX + 1];
    struct timeval tv;
    if (gettimeofday(&tv, NULL) < 0)
        memset(&tv, 0, sizeof tv);
    struct tm tm;
    if (gmtime_r(&tv.tv_sec, &tm) == NULL)
        memset(&tm, 0, sizeof tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld]: %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (long)(tv.tv_usec / 1000), log_ident, (long)getpid(),
                     names[level]);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + len, sizeof line - len, fmt, ap);
    va_end(ap);
    if (m > 0)
        len += (size_t)m < sizeof line - len ? (size_t)m : sizeof line - len - 1;
    if (len > LOG_LINE_MAX - 1)
        len = LOG_LINE_MAX - 1;
    /* One line per record: control characters from peers never split a log line. */
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
            line[i] = '?';
    line[len++] = '\n';
    ssize_t w;
    do
        w = write(log_fd, line, len);
    while (w < 0 && errno == EINTR);
    if (w < 0)
        log_broken = 1;
}
