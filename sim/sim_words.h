/* sim_words.h — the argument words of simulator setup lines: durations, sizes, codes.
 *
 *   unsigned long long ms; if (sim_words_duration_ms("latency", argv[i], &ms, &err) < 0) ...
 *   sim_words_size("bandwidth", "10k", &bytes, &err);     // 10240
 *   sim_words_code("reject-rcpt", "450", &code, &err);     // 400..599, or "off" -> 0
 *
 * Durations need a unit (ms, s, m, h) so "latency 50" is an error rather than a guess;
 * sizes take k/M (1024-based). Errors name the word: "latency: '50' needs a unit". */
#ifndef ETRN_SIM_WORDS_H
#define ETRN_SIM_WORDS_H

#include "err.h"

int sim_words_duration_ms(const char *word, const char *arg, unsigned long long *out,
                          struct etrn_err *err);
int sim_words_size(const char *word, const char *arg, unsigned long long *out,
                   struct etrn_err *err);
int sim_words_uint(const char *word, const char *arg, unsigned long long max,
                   unsigned long long *out, struct etrn_err *err);
/* An SMTP reply code 400..599, or "off" (0). */
int sim_words_code(const char *word, const char *arg, int *out, struct etrn_err *err);
/* If argv[*i + 1] is "on" or "off", consumes it; returns 1 for on, 0 for off. */
int sim_words_flag(char *const *argv, int argc, int *i);

#endif
