/* target.h — bringing the server under test up and down from its profile, and running
 * the profile's helper commands (reset, queue listing) with bounded time and output.
 *
 *   struct target_proc t; target_proc_init(&t);
 *   target_write_config(prof, &err);                  // config_template → config_file
 *   target_start(prof, &t, &err);  target_wait_ready(prof, &t, &err);
 *   target_run(prof, prof->reset, 30000, &out, &err);  // sh -c, synchronous
 *   target_stop(prof, &t);
 *
 * Commands run under /bin/sh -c after {placeholder} expansion (profile.h), in their own
 * process group, with stdout and stderr appended to {workdir}/target.log. target_stop
 * sends SIGTERM to the group, waits up to 5 s, then SIGKILL: nothing is left running.
 * target_cmd_start runs a command asynchronously on an event_base (for queue listing
 * during a scenario): its output is collected up to TARGET_OUTPUT_MAX and it is killed
 * when its time is up. */
#ifndef ETRN_TARGET_H
#define ETRN_TARGET_H

#include <sys/types.h>
#include "err.h"
#include "profile.h"
#include "strbuf.h"

#define TARGET_OUTPUT_MAX (4u * 1024 * 1024)

struct event_base;

struct target_proc {
    pid_t pid;                  /* 0: not started by us */
    int exited;
    int status;
};

void target_proc_init(struct target_proc *t);
int target_write_config(const struct target_profile *p, struct etrn_err *err);
int target_start(const struct target_profile *p, struct target_proc *t, struct etrn_err *err);
/* Waits until the target accepts TCP connections (or its process exits, or start_timeout). */
int target_wait_ready(const struct target_profile *p, struct target_proc *t,
                      struct etrn_err *err);
/* 1 if the process we started has exited (fills t->status). */
int target_has_exited(struct target_proc *t);
void target_stop(const struct target_profile *p, struct target_proc *t);
/* Runs a command to completion within timeout_ms; out gets its stdout (bounded). */
int target_run(const struct target_profile *p, const char *cmd, unsigned long long timeout_ms,
               struct strbuf *out, struct etrn_err *err);
/* The last lines of {workdir}/target.log (for error messages). */
void target_log_tail(const struct target_profile *p, char *buf, size_t n);

struct target_cmd;
typedef void (*target_cmd_cb)(struct target_cmd *c, int ok, const char *output,
                              const char *why, void *arg);
int target_cmd_start(struct target_cmd **out, struct event_base *base,
                     const struct target_profile *p, const char *cmd,
                     unsigned long long timeout_ms, target_cmd_cb cb, void *arg,
                     struct etrn_err *err);
/* Kills the command if still running and frees (cb is not called). */
void target_cmd_free(struct target_cmd *c);

#endif
