/* profile.h — a target profile: where the server under test listens, what it can do, and
 * how etrncheck brings it up, resets it and lists its queue (docs/TARGETS.md).
 *
 *   struct target_profile p; profile_init(&p);
 *   profile_load_file(&p, "fixtures/targets/etrnd.profile", &err);    // key = value
 *   profile_set(&p, "target", "127.0.0.1:2525", "--target", &err);      // options override
 *   profile_finish(&p, &err);       // defaults, validation
 *   profile_expand(&p, "{bin}/etrnd -c {workdir}/etrnd.conf", &out, &err);
 *
 * Every key is also a command-line option (--key, '_' written as '-'). Commands and the
 * config template use {placeholders}; an unknown placeholder is an error. */
#ifndef ETRN_PROFILE_H
#define ETRN_PROFILE_H

#include <stddef.h>
#include "err.h"
#include "netaddr.h"
#include "strbuf.h"

struct target_profile {
    char *name;
    char *description;
    char *dir;                    /* the profile file's folder (for relative paths); "." */
    char *target;                 /* host:port of the SMTP listener under test */
    char *dns_listen;             /* where the simulator DNS answers */
    char *node_suffix;            /* $node = sN-RUN.<node_suffix> */
    char *foreign_suffix;         /* $foreign = sN-RUN.<foreign_suffix> */
    char *source;                 /* the runner's client address (and the requester sink) */
    char *denied_source;          /* a client address refused ETRN, or NULL */
    char *hostname;               /* the target's own host name ($relay), or NULL */
    char *locked_suffix;          /* $locked = sN-RUN.<locked_suffix>: served, but ETRN from
                                     the runner's source is refused (policy); or NULL */
    char *hash_queue;             /* a named queue for `ETRN #NAME` ($hashqueue), or NULL */
    char *hash_queue_domain;      /* a domain in that queue ($hashdomain) */
    char *submission;             /* HOST:PORT of a submission listener ($submission) */
    char *ehlo_name;              /* what the runner says in EHLO when injecting */
    char **capabilities;          /* starttls, auth, counted-replies, ... */
    size_t ncapabilities;
    char *start, *stop, *reset, *queue_list;   /* shell commands, or NULL */
    char *config_template;        /* file written to config_file before start, or NULL */
    char *config_file;
    char *scenarios;              /* folder of .scn files */
    char *work_dir;               /* NULL: a fresh /tmp/etrncheck.XXXXXX */
    int sink_port;
    unsigned jobs;
    unsigned long long start_timeout_ms;
    unsigned long long step_timeout_ms;
    unsigned long long scenario_timeout_ms;
    unsigned long long flush_timeout_ms;   /* default `within` for positive outcomes */
    unsigned long long quiet_timeout_ms;   /* default `within` for negative outcomes */
    unsigned long long queue_settle_ms;    /* pause after each `queue` step (0): lets a target
                                            * that queues asynchronously (Postfix) file the
                                            * new mail before the scenario goes on */
    /* derived by profile_finish */
    struct netaddr target_addr;
    char target_host[NETADDR_TEXT_MAX];
    int target_port;
    /* set by the runner */
    char *dns_addr;               /* the live DNS address */
    char *root;                   /* the etrnkit tree ({root}) */
    char *bin;                    /* the programs' folder ({bin}) */
};

void profile_init(struct target_profile *p);
void profile_free(struct target_profile *p);
int profile_load_file(struct target_profile *p, const char *path, struct etrn_err *err);
/* Sets one key; where names the source in errors ("file:7", "--target"). Unknown keys
 * fail with the list of known ones. */
int profile_set(struct target_profile *p, const char *key, const char *value,
                const char *where, struct etrn_err *err);
/* 1 if key is a profile key (for option parsing: "--node-suffix" → "node_suffix"). */
int profile_is_key(const char *key);
/* The keys, NULL-terminated (for usage text). */
const char *const *profile_keys(void);
int profile_finish(struct target_profile *p, struct etrn_err *err);
int profile_has_capability(const struct target_profile *p, const char *cap);
/* Expands {workdir} {target} {target_host} {target_port} {dns} {dns_host} {dns_port}
 * {sink_port} {node_suffix} {source} {denied_source} {hostname} {root} {bin}
 * {config_file} {profile_dir}; "{{" is '{'. */
int profile_expand(const struct target_profile *p, const char *in, struct strbuf *out,
                   struct etrn_err *err);

#endif
