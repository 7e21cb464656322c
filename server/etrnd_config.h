/* etrnd_config.h — etrnd's settings, read from a `key = value` file (lib/config.h).
 *
 *   struct etrnd_config *c; struct etrn_err err;
 *   if (etrnd_config_load(&c, "etrnd.conf", &err) < 0) { fprintf(stderr, "%s\n", err.msg); exit(2); }
 *   ... c->myhostname, c->etrn_domains[i] ...
 *   etrnd_config_free(c);
 *
 * Loading validates everything (a typo, an unknown key or a bad value is refused with
 * file:line) so that a broken file never causes a partial start or a partial reload.
 * The setting names are a contract documented in docs/man/etrnd.conf.5. */
#ifndef ETRND_CONFIG_H
#define ETRND_CONFIG_H

#include <stddef.h>
#include "err.h"
#include "netaddr.h"
#include "domain.h"

struct etrnd_route {                 /* route.DOMAIN = host:port (fixed next hop, no MX) */
    char domain[DOMAIN_MAX + 1];
    struct netaddr addr;
};

struct etrnd_queue {                 /* queue.NAME = domain, domain   ('ETRN #NAME' flushes them) */
    char name[64];
    char **domains;
    size_t ndomains;
};

struct etrnd_etrn_rule {             /* etrn_allow = NODE-PATTERN : who, who ... (see etrnd.conf(5)) */
    char pattern[DOMAIN_MAX + 2];    /* "node.test", "@foo.test" (node and subdomains), "#uucp", "*" */
    struct netmask *nets;            /* clients allowed by address */
    size_t nnets;
    char **users;                    /* clients allowed by AUTH user name */
    size_t nusers;
};

struct etrnd_config {
    char *file;                          /* path it was loaded from (for reload) */

    /* listening and identity */
    struct netaddr *listen;              /* listen = addr:port, ... (at least one) */
    size_t nlisten;
    char myhostname[DOMAIN_MAX + 1];     /* default: gethostname() if it is an FQDN, else "localhost.localdomain" */
    char *spool;                         /* spool = DIR (required) */
    char *log_file;                      /* log_file = PATH; default stderr */
    int log_level;                       /* log_level = error|warn|info|debug; default info */
    char *pid_file;                      /* pid_file = PATH; optional */

    /* what is held for ETRN and who may relay */
    char **etrn_domains;                 /* etrn_domains = a.test, b.test */
    size_t netrn_domains;
    struct netmask *mynetworks;          /* mynetworks = 127.0.0.0/8, ... default none */
    size_t nmynetworks;
    struct etrnd_queue *queues;          /* queue.NAME = ... */
    size_t nqueues;

    /* ETRN policy */
    int etrn_enabled;                    /* etrn = yes|no; default yes */
    struct etrnd_etrn_rule *etrn_rules;  /* etrn_allow = ... (repeatable); none = everyone may ETRN any etrn_domain */
    size_t netrn_rules;
    int etrn_require_auth;               /* etrn_require_auth = yes|no; default no */
    unsigned etrn_rate_limit;            /* etrn_rate_limit = N  ETRN commands per client address per etrn_rate_window; 0 = off; default 20 */
    unsigned long long etrn_rate_window_ms; /* etrn_rate_window = 60s */
    int etrn_reply_style;                /* etrn_reply = counted (250/251/253, default) | plain (250 always) */
    int etrn_require_helo;               /* etrn_require_helo = yes|no; default no */

    /* delivery */
    struct netaddr dns_server;           /* dns_server = addr:port; dns_server_set = 0 → system resolver */
    int dns_server_set;
    int smtp_port;                       /* smtp_port = 25 */
    struct etrnd_route *routes;          /* route.DOMAIN = host:port; sorted by domain (strcmp) */
    size_t nroutes;
    unsigned max_per_destination;        /* delivery_concurrency = 2 connections per destination domain */
    unsigned max_deliveries;             /* delivery_max_connections = 20 in total */
    unsigned long long retry_interval_ms;/* retry_interval = 0 (off: held mail waits for ETRN) */
    unsigned long long max_queue_life_ms;/* max_queue_lifetime = 5d, then bounce */
    unsigned long long timeout_connect_ms;  /* smtp_connect_timeout = 30s */
    unsigned long long timeout_greeting_ms; /* smtp_greeting_timeout = 5m  (RFC 5321 §4.5.3.2.1) */
    unsigned long long timeout_mail_ms;     /* smtp_mail_timeout = 5m */
    unsigned long long timeout_rcpt_ms;     /* smtp_rcpt_timeout = 5m */
    unsigned long long timeout_data_ms;     /* smtp_data_timeout = 2m (DATA initiation) */
    unsigned long long timeout_block_ms;    /* smtp_block_timeout = 3m (each data block) */
    unsigned long long timeout_dot_ms;      /* smtp_dot_timeout = 10m (after final dot) */
    int delivery_starttls;               /* delivery_starttls = yes|no; default yes (opportunistic) */

    /* server side limits and timeouts */
    unsigned long long message_size_limit; /* message_size_limit = 10M (advertised in SIZE) */
    unsigned max_recipients;             /* max_recipients = 100 */
    unsigned max_sessions;               /* max_sessions = 1000 */
    unsigned max_sessions_per_client;    /* max_sessions_per_client = 50 per address; 0 = no limit; mynetworks exempt */
    unsigned long long timeout_idle_ms;  /* smtpd_timeout = 5m (RFC 5321 §4.5.3.2.7) */
    unsigned max_errors;                 /* smtpd_max_errors = 20, then 421 and close */

    /* TLS and AUTH */
    char *tls_cert_file;                 /* tls_cert_file = PEM; STARTTLS offered when both set */
    char *tls_key_file;                  /* tls_key_file = PEM */
    char *auth_password_file;            /* auth_password_file = FILE of "user:password" lines; AUTH offered (after TLS) when set */
    int auth_allow_plaintext;            /* auth_allow_plaintext = no; yes offers AUTH without TLS (tests only) */

    /* test-only defects for the mutation check (etrncheck must catch each) */
    char **defects;                      /* defect = name, name  (see etrnd.conf(5); never in production) */
    size_t ndefects;
};

#define ETRN_REPLY_COUNTED 0
#define ETRN_REPLY_PLAIN   1

int etrnd_config_load(struct etrnd_config **out, const char *path, struct etrn_err *err);
void etrnd_config_free(struct etrnd_config *c);

/* 1 if domain (normalised) is an etrn_domain or a subdomain of one. */
int etrnd_config_holds_domain(const struct etrnd_config *c, const char *domain);
/* The fixed route for domain, or NULL (exact match on the domain, case-insensitive).
 * A binary search: routes must be sorted by domain, as etrnd_config_load leaves them
 * (a hand-built config calls etrnd_config_sort_routes). */
const struct etrnd_route *etrnd_config_route(const struct etrnd_config *c, const char *domain);
void etrnd_config_sort_routes(struct etrnd_route *routes, size_t n);
/* The named queue, or NULL. */
const struct etrnd_queue *etrnd_config_queue(const struct etrnd_config *c, const char *name);
/* 1 if the test-only defect name is switched on. */
int etrnd_config_defect(const struct etrnd_config *c, const char *name);

#endif
