/* scenario.h — the scenario language: conformance scenarios (etrncheck) and topology
 * files (etrnsim) parsed into a validated tree of steps, each naming its file:line.
 *
 *   struct scenario sc; struct etrn_err err;
 *   if (scenario_parse_file(&sc, "fixtures/scenarios/flush/basic.scn", &err) < 0)
 *       die(err.msg);             // "fixtures/scenarios/flush/basic.scn:14: unknown step 'expcet'"
 *   for (i = 0; i < sc.nsteps; i++) run(&sc.steps[i]);  ... scenario_free(&sc);
 *
 * docs/SCENARIOS.md is the reference. In short: a file is lines of blank-separated words;
 * '#' at the start of a word starts a comment (except in the free text of send, send-raw
 * and hostile ... script); "double quotes" group words. Header lines (scenario, title,
 * cites, level, requires, timeout, description) say what is checked; world lines (dns,
 * dns-quirk, dns-clear, sink, sink-behave, external, link), at, queue, wait, client ...
 * end, hostile and outcome lines are steps run in order. Inside client: send, send-raw,
 * send-repeat, expect, expect-close, expect-silence, starttls, wait, drain, close and
 * repeat N ... end. Client scenarios (etrncheck client) instead hold one relay ... end block
 * (on, ehlo-keywords, tls, nodes) and expect-client checks.
 *
 * Guarantees: a parsed scenario is complete and consistent (every header present, every
 * block closed, every number, duration, code pattern, level and requirement ID valid,
 * every sink used in an outcome declared); the parser never reads more than
 * SCENARIO_FILE_MAX bytes or SCENARIO_LINE_MAX per line, and every error names file:line.
 * Variables ($node, ${sink1}) are kept as written; scenario_expand() resolves them at run
 * time through the caller's lookup function. */
#ifndef ETRN_SCENARIO_H
#define ETRN_SCENARIO_H

#include <stddef.h>
#include "err.h"
#include "strbuf.h"

#define SCENARIO_FILE_MAX   (1024 * 1024)
#define SCENARIO_LINE_MAX   4096
#define SCENARIO_WORDS_MAX  64        /* words on one line */
#define SCENARIO_STEPS_MAX  4096      /* steps in one file, nested ones included */
#define SCENARIO_CODES_MAX  16        /* alternatives in one code pattern */
#define SCENARIO_KEYWORDS_MAX 8       /* with-keyword / without-keyword per expect */
#define SCENARIO_REPEAT_MAX 100000    /* repeat N, send-repeat N, expect ... times N */
#define SCENARIO_COPIES_MAX 256       /* client ... copies N */
#define SCENARIO_QUEUE_MAX  100000    /* queue N */
#define SCENARIO_EXPAND_MAX 65536     /* longest expanded text */

/* The level of a requirement as the spec words it; a broken check at that level gives
 * FAIL (MUST), WARN (SHOULD) or INFO (MAY, INFO). NONE means "inherit the scenario's". */
enum scenario_level {
    SCENARIO_LEVEL_NONE = 0,
    SCENARIO_LEVEL_MUST,
    SCENARIO_LEVEL_SHOULD,
    SCENARIO_LEVEL_MAY,
    SCENARIO_LEVEL_INFO
};

enum scenario_step_kind {
    /* top level */
    SCENARIO_STEP_WORLD,          /* dns | dns-quirk | dns-clear | sink | sink-behave |
                                     external | link ...: argv is the world line */
    SCENARIO_STEP_AT,             /* at DUR LINE...: duration_ms, and argv + 2 the line */
    SCENARIO_STEP_QUEUE,          /* queue N to ADDR[,ADDR...] [from ADDR] [size SIZE] */
    SCENARIO_STEP_CLIENT,         /* client [NAME] [from ADDR] [to ADDR] [copies N] ... end */
    SCENARIO_STEP_HOSTILE,        /* hostile KIND [count N] [interval DUR] [from ADDR]
                                     [script TEXT...] */
    SCENARIO_STEP_OUTCOME,        /* outcome ... */
    /* both (wait at top level, wait/sleep in a client) */
    SCENARIO_STEP_WAIT,           /* wait DUR */
    /* inside a client block */
    SCENARIO_STEP_SEND,           /* send TEXT          (CRLF appended; no escapes) */
    SCENARIO_STEP_SEND_RAW,       /* send-raw TEXT      (\r \n \t \\ \xNN; nothing appended) */
    SCENARIO_STEP_SEND_REPEAT,    /* send-repeat N TEXT (N copies of TEXT CRLF, one write) */
    SCENARIO_STEP_EXPECT,         /* expect CODES [options] [else ...] [record ...] */
    SCENARIO_STEP_EXPECT_CLOSE,   /* expect-close [within DUR] [else ...] */
    SCENARIO_STEP_EXPECT_SILENCE, /* expect-silence DUR [else ...] */
    SCENARIO_STEP_STARTTLS,       /* starttls [else ...] */
    SCENARIO_STEP_DRAIN,          /* drain [DUR]: read and discard replies until quiet */
    SCENARIO_STEP_CLOSE,          /* close: the client drops the connection */
    SCENARIO_STEP_REPEAT,         /* repeat N ... end */
    /* client conformance (docs/SCENARIOS.md "Client scenarios"): the runner plays the relay
     * and a client program under test talks to it */
    SCENARIO_STEP_RELAY,          /* relay ... end: the scripted relay; children RELAY_RULE */
    SCENARIO_STEP_RELAY_RULE,     /* inside relay: on VERB ... | ehlo-keywords KW... |
                                     tls offered|required | nodes N */
    SCENARIO_STEP_EXPECT_CLIENT   /* expect-client CHECK... [else ...] [record ...] */
};

/* A reply-code pattern: "250|251|2xx|any|none". Each alternative is three characters,
 * digits or 'x' (any digit); "any" is stored as "xxx"; "none" accepts silence. */
struct scenario_codes {
    char alt[SCENARIO_CODES_MAX][4];
    size_t n;
    int none;                     /* "none": no reply within the bound also passes */
};

/* How a check that fails is judged, and what it records when it passes. */
struct scenario_check {
    enum scenario_level level;    /* else LEVEL: NONE = the scenario's level */
    char **reqs;                  /* else LEVEL REQ...: none = the scenario's cites */
    size_t nreqs;
    enum scenario_level record;   /* record LEVEL: note what was observed (NONE: don't) */
    char **record_reqs;           /* record LEVEL REQ...: none = this check's reqs */
    size_t nrecord_reqs;
};

struct scenario_expect {
    struct scenario_codes codes;
    char *with_keyword[SCENARIO_KEYWORDS_MAX];     /* EHLO reply lists it */
    size_t nwith;
    char *without_keyword[SCENARIO_KEYWORDS_MAX];  /* EHLO reply does not list it */
    size_t nwithout;
    char *bare_keyword[SCENARIO_KEYWORDS_MAX];     /* listed, and with no parameters */
    size_t nbare;
    char *text_glob;              /* text GLOB: the reply text matches (case-insensitive) */
    long queued;                  /* queued N: 251 needs N = 0, 252/253 need N > 0, 253's
                                     count must be N; -1 = not checked */
    int enhanced;                 /* enhanced: an enhanced code whose class matches */
    int single_line;              /* single-line: a one-line reply */
    unsigned long times;          /* times N: N replies, each matching (default 1) */
    unsigned long long within_ms; /* within DUR: bound for the reply (0: the default) */
};

enum scenario_outcome_kind {
    SCENARIO_OUTCOME_DELIVERED,           /* delivered N|all to SINK [within DUR] */
    SCENARIO_OUTCOME_NOT_DELIVERED,       /* nothing delivered to SINK [within DUR]
                                             (also: not delivered to SINK ...) */
    SCENARIO_OUTCOME_NOTHING_TO_REQUESTER,/* nothing delivered to the requester [within DUR] */
    SCENARIO_OUTCOME_NO_DUPLICATES,       /* no duplicates */
    SCENARIO_OUTCOME_AT_MOST_COPIES,      /* at most N copies */
    SCENARIO_OUTCOME_CONNECTED,           /* connected to SINK [within DUR] */
    SCENARIO_OUTCOME_NO_CONNECTION,       /* no connection to SINK [within DUR] */
    SCENARIO_OUTCOME_TRIED_BEFORE,        /* tried SINK before SINK2 */
    SCENARIO_OUTCOME_STILL_QUEUED,        /* still queued [N|all] */
    SCENARIO_OUTCOME_TARGET_ALIVE         /* target alive [within DUR] */
};

struct scenario_outcome {
    enum scenario_outcome_kind kind;
    long count;                   /* N, or -1 for "all" (every message queued so far) */
    char *sink;                   /* SINK (a declared node; "any" for delivered/nothing
                                     delivered: every node of the scenario) */
    char *sink2;                  /* tried SINK before SINK2 */
    unsigned long long within_ms; /* 0: the default for this kind */
};

struct scenario_queue {
    unsigned long count;
    char *to;                     /* ADDR[,ADDR...] as written (variables unexpanded) */
    char *from;                   /* NULL: the runner's default sender */
    unsigned long long size;      /* approximate message size in octets; 0: small */
};

struct scenario_client {
    char *name;                   /* NULL: "client" */
    char *from;                   /* source address (variables allowed); NULL: --source */
    char *to;                     /* HOST:PORT to connect to instead of the target */
    unsigned long copies;         /* sessions run at the same time (default 1) */
};

struct scenario_hostile {
    char *kind;                   /* slow-sender | command-flood | pipelined-burst |
                                     disconnect-mid-command | garbage | overlong-line */
    unsigned long count;          /* 0: the kind's default */
    unsigned long long interval_ms;
    char *from;
    char *script;                 /* free text with escapes; NULL: "NOOP" */
};

/* One line of a relay block. For `on VERB [conn N] [nth N] [delay DUR] [pace DUR]
 * reply CODE [TEXT]` / `on VERB ... close`: the reply text is the step's text (escapes
 * \n between lines of a multi-line reply; variables expanded at run time). */
struct scenario_relay_rule {
    char *verb;                   /* CONNECT, EHLO, HELO, ETRN, STARTTLS, QUIT, NOOP, RSET,
                                     OTHER (upper case); NULL for the other relay lines */
    unsigned long conn;           /* only on the Nth connection (0: every) */
    unsigned long nth;            /* only the Nth such command of a connection (0: every) */
    unsigned long long delay_ms;  /* before the reply */
    unsigned long long pace_ms;   /* between the lines of a multi-line reply */
    int code;                     /* 0: no reply (close) */
    int close;                    /* close the connection after the reply (421 implies it) */
};

struct scenario_step {
    enum scenario_step_kind kind;
    const char *file;             /* points into struct scenario */
    int line;
    char **argv;                  /* the words as written (for SEND*: [keyword, text]) */
    int argc;
    char *text;                   /* send / send-raw / send-repeat text, unexpanded */
    unsigned long count;          /* repeat N, send-repeat N */
    unsigned long long duration_ms;   /* at, wait, expect-silence, drain, expect-close within */
    struct scenario_check check;  /* expect*, starttls, outcome */
    struct scenario_expect expect;
    struct scenario_outcome outcome;
    struct scenario_queue queue;
    struct scenario_client client;
    struct scenario_hostile hostile;
    struct scenario_relay_rule relay; /* RELAY_RULE */
    struct scenario_step *children;   /* client and repeat blocks */
    size_t nchildren;
};

struct scenario {
    char *file;
    char *id;                     /* scenario ID: [a-z0-9][a-z0-9._-]* */
    char *title;
    char *description;            /* description lines joined by '\n'; "" if none */
    char **cites;                 /* requirement IDs this scenario can fail on */
    size_t ncites;
    enum scenario_level level;
    char **requires;              /* target capabilities needed (else SKIP) */
    size_t nrequires;
    unsigned long long timeout_ms;/* whole-scenario bound; 0: the runner's default */
    char **sinks;                 /* node names declared by sink / external lines */
    size_t nsinks;
    struct scenario_step *steps;
    size_t nsteps;
    size_t nsteps_total;          /* nested steps included */
    int topology;                 /* parsed with scenario_parse_topology */
};

/* Parses a scenario file. On failure sc is left empty (nothing to free). */
int scenario_parse_file(struct scenario *sc, const char *path, struct etrn_err *err);
/* name stands for the file name in errors and in step->file. */
int scenario_parse_string(struct scenario *sc, const char *name, const char *text,
                          struct etrn_err *err);
/* A topology file (etrnsim -c): only world lines, at and wait; no header lines. */
int scenario_parse_topology(struct scenario *sc, const char *path, struct etrn_err *err);
int scenario_parse_topology_string(struct scenario *sc, const char *name, const char *text,
                                   struct etrn_err *err);
void scenario_free(struct scenario *sc);

/* Splits one line into words the way the parser does (blanks separate, "quotes" group,
 * '#' at the start of a word ends the line). words[] point into line, which is modified.
 * Returns the count, or -1 if there are more than max words or a quote is not closed. */
int scenario_split_words(char *line, char **words, int max, struct etrn_err *err);

/* Variable lookup: the value of $name, or NULL if there is no such variable. */
typedef const char *(*scenario_var_lookup)(const char *name, void *arg);
/* Appends in with $name / ${name} replaced (names are [A-Za-z0-9_]+, longest match;
 * "$$" is a literal '$'). An unknown variable fails with "unknown variable '$x'". The
 * result is at most SCENARIO_EXPAND_MAX octets. */
int scenario_expand(const char *in, scenario_var_lookup lookup, void *arg,
                    struct strbuf *out, struct etrn_err *err);
/* Decodes \r \n \t \\ \xNN (send-raw, script) and appends the bytes. */
int scenario_unescape(const char *in, struct strbuf *out, struct etrn_err *err);

/* "MUST", "SHOULD", "MAY", "INFO" (or "" for NONE). */
const char *scenario_level_name(enum scenario_level l);
/* Accepts MUST/SHOULD/MAY/INFO and the verdict words FAIL/WARN/INFO, any case. */
int scenario_level_parse(const char *word, enum scenario_level *out);
/* 1 if id looks like a requirement ID: R<rfc>-<section-and-letters>, R<rfc>/<rfc>[-...]. */
int scenario_requirement_id_valid(const char *id);
/* "250|25x|any" → codes; -1 with a reason if malformed. */
int scenario_codes_parse(const char *text, struct scenario_codes *out, struct etrn_err *err);
int scenario_codes_match(const struct scenario_codes *c, int code);
/* Formats codes back as "250|25x". */
int scenario_codes_format(const struct scenario_codes *c, char *buf, size_t n);
/* "250ms", "10s", "5m", "1h" (a unit is required) → milliseconds. */
int scenario_duration_parse(const char *text, unsigned long long *out_ms);
/* Case-insensitive glob with '*' and '?'; 1 on match. */
int scenario_glob_match(const char *pattern, const char *text);
const char *scenario_step_kind_name(enum scenario_step_kind k);

#endif
