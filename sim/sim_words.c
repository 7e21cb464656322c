/* sim_words.c — parses the argument words of simulator setup lines (see sim_words.h).
 *
 *   sim_words_duration_ms("tarpit", "1s", &ms, &err);
 *   sim_words_size("bandwidth", "10k", &n, &err);
 *
 * Guarantees: no overflow goes unreported; every error names the word and the argument. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sim_words.h"

static int number_prefix(const char *word, const char *arg, unsigned long long *v,
                         const char **rest, struct etrn_err *err)
{
    if (arg == NULL)
        return err_set(err, "%s: missing argument", word);
    if (*arg < '0' || *arg > '9')
        return err_set(err, "%s: '%s' is not a number", word, arg);
    char *end;
    errno = 0;
    *v = strtoull(arg, &end, 10);
    if (errno != 0)
        return err_set(err, "%s: '%s' is too large", word, arg);
    *rest = end;
    return 0;
}

static int scale(const char *word, const char *arg, unsigned long long v,
                 unsigned long long mult, unsigned long long *out, struct etrn_err *err)
{
    if (mult != 0 && v > (unsigned long long)-1 / mult)
        return err_set(err, "%s: '%s' is too large", word, arg);
    *out = v * mult;
    return 0;
}

int sim_words_duration_ms(const char *word, const char *arg, unsigned long long *out,
                          struct etrn_err *err)
{
    unsigned long long v;
    const char *rest;
    if (number_prefix(word, arg, &v, &rest, err) < 0)
        return -1;
    if (*rest == '\0')
        return err_set(err, "%s: '%s' needs a unit (e.g. %sms or %ss)", word, arg, arg, arg);
    if (strcmp(rest, "ms") == 0)
        return scale(word, arg, v, 1, out, err);
    if (strcmp(rest, "s") == 0)
        return scale(word, arg, v, 1000, out, err);
    if (strcmp(rest, "m") == 0 || strcmp(rest, "min") == 0)
        return scale(word, arg, v, 60000, out, err);
    if (strcmp(rest, "h") == 0)
        return scale(word, arg, v, 3600000, out, err);
    return err_set(err, "%s: '%s' is not a duration (e.g. 250ms, 10s, 5m, 1h)", word, arg);
}

int sim_words_size(const char *word, const char *arg, unsigned long long *out,
                   struct etrn_err *err)
{
    unsigned long long v;
    const char *rest;
    if (number_prefix(word, arg, &v, &rest, err) < 0)
        return -1;
    if (*rest == '\0' || strcmp(rest, "b") == 0)
        return scale(word, arg, v, 1, out, err);
    if (strcmp(rest, "k") == 0 || strcmp(rest, "K") == 0)
        return scale(word, arg, v, 1024, out, err);
    if (strcmp(rest, "M") == 0 || strcmp(rest, "m") == 0)
        return scale(word, arg, v, 1048576, out, err);
    return err_set(err, "%s: '%s' is not a size (e.g. 100, 10k, 2M)", word, arg);
}

int sim_words_uint(const char *word, const char *arg, unsigned long long max,
                   unsigned long long *out, struct etrn_err *err)
{
    unsigned long long v;
    const char *rest;
    if (number_prefix(word, arg, &v, &rest, err) < 0)
        return -1;
    if (*rest != '\0')
        return err_set(err, "%s: '%s' is not a number", word, arg);
    if (v > max)
        return err_set(err, "%s: '%s' is larger than %llu", word, arg, max);
    *out = v;
    return 0;
}

int sim_words_code(const char *word, const char *arg, int *out, struct etrn_err *err)
{
    if (arg == NULL)
        return err_set(err, "%s: missing reply code (e.g. 450, 554, or off)", word);
    if (strcmp(arg, "off") == 0) {
        *out = 0;
        return 0;
    }
    unsigned long long v;
    if (sim_words_uint(word, arg, 999, &v, err) < 0)
        return -1;
    if (v < 400 || v > 599)
        return err_set(err, "%s: '%s' is not a 4xx or 5xx reply code", word, arg);
    *out = (int)v;
    return 0;
}

int sim_words_flag(char *const *argv, int argc, int *i)
{
    if (*i + 1 < argc) {
        if (strcmp(argv[*i + 1], "on") == 0) {
            (*i)++;
            return 1;
        }
        if (strcmp(argv[*i + 1], "off") == 0) {
            (*i)++;
            return 0;
        }
    }
    return 1;
}
