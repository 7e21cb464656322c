/* inject.h — puts a scenario's mail into the target's queue through its own SMTP port
 * (the `queue N to ADDR` step): EHLO, then MAIL, RCPT, DATA per message, then QUIT.
 *
 *   struct inject_spec s = {.base = base, .target = sa, .count = 3, .rcpts = ..., ...};
 *   inject_start(&ij, &s, on_done, arg, &err);
 *   on_done(ij, ok, why, arg) once; inject_free(ij);
 *
 * Every message gets a unique Message-ID from inject_message_id(seq, run, index), so the
 * sinks' journal tells this scenario's mail from any other. Commands are pipelined when
 * the target offers PIPELINING. Every reply is awaited for at most timeout_ms; a refusal,
 * a malformed reply, a close or a timeout ends the injection with ok = 0 and the reason
 * (the runner reports it as ERROR: the run broke, not necessarily the target). */
#ifndef ETRN_INJECT_H
#define ETRN_INJECT_H

#include <stddef.h>
#include <sys/socket.h>
#include "err.h"
#include "pcap_writer.h"

struct event_base;
struct inject;

struct inject_spec {
    struct event_base *base;
    const struct sockaddr *target;
    socklen_t target_len;
    const char *source;            /* bind address, or NULL */
    const char *ehlo_name;
    const char *from;              /* envelope sender */
    char *const *rcpts;            /* envelope recipients, each message */
    size_t nrcpts;
    unsigned long count;           /* messages */
    unsigned long first_index;     /* index of the first message (for Message-IDs) */
    unsigned long long size;       /* approximate octets per message; 0 = small */
    unsigned seq;                  /* the scenario's sequence number */
    const char *run;               /* the run token */
    unsigned long long timeout_ms; /* per reply */
    struct pcap_writer *pcap;
};

typedef void (*inject_done_cb)(struct inject *ij, int ok, const char *why, void *arg);

int inject_start(struct inject **out, const struct inject_spec *spec, inject_done_cb cb,
                 void *arg, struct etrn_err *err);
void inject_free(struct inject *ij);
/* Messages accepted by the target so far. */
unsigned long inject_accepted(const struct inject *ij);

/* "<s17.m3.9f3a@etrncheck.invalid>" */
int inject_message_id(unsigned seq, const char *run, unsigned long index, char *buf, size_t n);
/* Parses an ID made by inject_message_id; returns 0 and the index if seq and run match. */
int inject_message_index(const char *id, unsigned seq, const char *run, unsigned long *index);

#endif
