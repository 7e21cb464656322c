/* spool_index.h — the spool's in-memory index: domain → entries (oldest first), entry id →
 * entry, queue id → body reference count. No I/O: spool.c keeps it in step with the disk.
 *
 *   struct spool_index ix; spool_index_init(&ix);
 *   dom = spool_index_domain_ref(&ix, "node.test"); body = spool_index_body_ref(&ix, qid);
 *   spool_index_entry_link(&ix, e, body, dom);  n = spool_index_count(&ix, "node.test", 0);
 *
 * Guarantees: spool_index_count for an exact domain is O(1); with subdomains it is
 * O(number of domains with entries), never O(entries). Linking never fails (everything it
 * needs is allocated beforehand), so a durable commit can always be indexed. */
#ifndef ETRND_SPOOL_INDEX_H
#define ETRND_SPOOL_INDEX_H

#include <stddef.h>
#include <stdint.h>

/* Intrusive hash-chain node: first member of every indexed struct. */
struct spool_index_node {
    struct spool_index_node *next;
    uint64_t hash;
};

struct spool_index_table {
    struct spool_index_node **slots;
    size_t nslots;      /* a power of two, or 0 before the first insert */
    size_t n;
};

struct spool_index_body {
    struct spool_index_node node;
    uint64_t qid;
    size_t refs;        /* entries that still need this body */
};

struct spool_index_cursor;

struct spool_index_domain {
    struct spool_index_node node;
    char *name;                             /* lowercase */
    size_t count;
    struct spool_index_entry *head, *tail;  /* oldest first */
    size_t slot;                            /* position in spool_index.domains */
    struct spool_index_cursor *cursors;     /* open walks; they keep the domain alive */
};

/* A walk over one domain's entries, oldest first, that stays valid while entries are
 * linked and unlinked under it: it hands out each entry at most once, including entries
 * linked after it was opened, as long as they sort after the last one handed out. */
struct spool_index_cursor {
    struct spool_index_domain *dom;         /* NULL once the index was freed */
    struct spool_index_cursor *prev, *next; /* in dom->cursors */
    struct spool_index_entry *at;           /* next to hand out; NULL: none yet */
    uint64_t last_qid;                      /* the last handed out, if started */
    uint32_t last_n;
    int started;
    size_t ahead;                           /* entries after the last handed out */
};

struct spool_index_entry {
    struct spool_index_node node;
    uint64_t qid;
    uint32_t n;
    struct spool_index_body *body;
    struct spool_index_domain *dom;
    struct spool_index_entry *prev, *next;  /* in dom, oldest first */
};

struct spool_index {
    struct spool_index_table bodies, domains_by_name, entries;
    struct spool_index_domain **domains;    /* every domain with count > 0 (or referenced) */
    size_t ndomains, domains_cap;
    size_t total;                           /* linked entries */
};

void spool_index_init(struct spool_index *ix);
void spool_index_free(struct spool_index *ix);   /* frees every body, domain and entry */

/* Bodies: found or created with refs 0 (NULL: out of memory). */
struct spool_index_body *spool_index_body_find(struct spool_index *ix, uint64_t qid);
struct spool_index_body *spool_index_body_ref(struct spool_index *ix, uint64_t qid);
/* Removes and frees a body (call when refs is 0). */
void spool_index_body_drop(struct spool_index *ix, struct spool_index_body *b);

/* Domains: name must already be normalized (lowercase, no trailing dot). */
struct spool_index_domain *spool_index_domain_find(struct spool_index *ix, const char *name);
struct spool_index_domain *spool_index_domain_ref(struct spool_index *ix, const char *name);
/* Frees d if it has no entries (undoes a spool_index_domain_ref that was not used). */
void spool_index_domain_release(struct spool_index *ix, struct spool_index_domain *d);

/* Entries. new: allocated, not linked (NULL: out of memory); free with free(). link: into
 * the id table, body->refs++ and dom's list in (qid, n) order — O(1) for the newest. */
struct spool_index_entry *spool_index_entry_new(uint64_t qid, uint32_t n);
void spool_index_entry_link(struct spool_index *ix, struct spool_index_entry *e,
                            struct spool_index_body *body, struct spool_index_domain *dom);
struct spool_index_entry *spool_index_entry_find(struct spool_index *ix, uint64_t qid, uint32_t n);
/* Unlinks and frees e; frees its domain when it was the last entry there. Returns the
 * body with refs already decremented (the caller drops it when refs reaches 0). */
struct spool_index_body *spool_index_entry_unlink(struct spool_index *ix, struct spool_index_entry *e);

/* domain must be normalized. */
size_t spool_index_count(const struct spool_index *ix, const char *domain, int subdomains);
/* Matching entries oldest first, in a malloc'd array (NULL with *n 0 when none).
 * -1: out of memory. */
int spool_index_collect(struct spool_index *ix, const char *domain, int subdomains,
                        struct spool_index_entry ***out, size_t *n);

/* Cursors: open on a domain (created if it has no entries yet; NULL: out of memory),
 * next hands out the oldest entry not yet handed out (NULL: none for now), close releases
 * the domain. Every operation is O(1) plus O(cursors on the domain) in link/unlink. */
struct spool_index_cursor *spool_index_cursor_open(struct spool_index *ix, const char *domain);
struct spool_index_entry *spool_index_cursor_next(struct spool_index_cursor *c);
void spool_index_cursor_close(struct spool_index *ix, struct spool_index_cursor *c);

/* (qid, n) order: negative, 0, positive. */
int spool_index_entry_cmp(const struct spool_index_entry *a, const struct spool_index_entry *b);

#endif
