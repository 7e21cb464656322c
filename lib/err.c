/* err.c — fills the caller-visible error object (see err.h).
 *
 *   return err_set(err, "%s:%d: unknown setting '%s'", file, line, key);
 *
 * Messages are truncated safely at ETRN_ERR_MAX; a NULL err is accepted and ignored. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

int err_set(struct etrn_err *err, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int err_set_errno(struct etrn_err *err, const char *fmt, ...)
{
    int saved = errno;
    if (err == NULL)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof err->msg)
        snprintf(err->msg + n, sizeof err->msg - (size_t)n, ": %s", strerror(saved));
    errno = saved;
    return -1;
}

int err_prefix(struct etrn_err *err, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    char old[ETRN_ERR_MAX];
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof err->msg - 3)
        return -1;
    /* Append ": old", truncating the old message to what is left. */
    size_t pos = (size_t)n;
    err->msg[pos++] = ':';
    err->msg[pos++] = ' ';
    size_t room = sizeof err->msg - 1 - pos;
    size_t ol = strlen(old);
    if (ol > room)
        ol = room;
    memcpy(err->msg + pos, old, ol);
    err->msg[pos + ol] = '\0';
    return -1;
}
