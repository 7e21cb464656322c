/* spool_index.c — the spool's in-memory index: per-domain entry lists with counts, an id
 * table and body reference counts, so ETRN never scans the spool.
 *
 *   dom = spool_index_domain_ref(&ix, "node.test");          // before the disk work
 *   spool_index_entry_link(&ix, e, body, dom);               // after it: cannot fail
 *   spool_index_count(&ix, "foo.test", 1);                   // walks domains, not entries
 *   c = spool_index_cursor_open(&ix, "node.test"); e = spool_index_cursor_next(c);
 *
 * Guarantees: an exact-domain count is one hash lookup; a subdomain count or collect
 * visits each domain with entries once; each domain list stays in (qid, n) order, which is
 * arrival order because queue ids grow with time. Chained hash tables double when the
 * load passes 1; a failed resize only makes chains longer, it never loses anything. */
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "spool_index.h"

/* ------------------------------------------------------------------ hashing */

static uint64_t spool_index_mix(uint64_t x)
{
    /* splitmix64 finalizer: queue ids differ mostly in low bits. */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static uint64_t spool_index_hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return spool_index_mix(h);
}

static uint64_t spool_index_hash_entry(uint64_t qid, uint32_t n)
{
    return spool_index_mix(qid ^ ((uint64_t)n * 0x9e3779b97f4a7c15ULL));
}

/* ------------------------------------------------------------ chained table */

static void spool_index_table_grow(struct spool_index_table *t)
{
    size_t nslots = t->nslots ? t->nslots * 2 : 64;
    struct spool_index_node **slots = calloc(nslots, sizeof(*slots));
    if (!slots)
        return;   /* keep the old table: longer chains, nothing lost */
    for (size_t i = 0; i < t->nslots; i++) {
        struct spool_index_node *nd = t->slots[i];
        while (nd) {
            struct spool_index_node *next = nd->next;
            size_t k = (size_t)(nd->hash & (nslots - 1));
            nd->next = slots[k];
            slots[k] = nd;
            nd = next;
        }
    }
    free(t->slots);
    t->slots = slots;
    t->nslots = nslots;
}

/* Inserting needs at least one slot: callers reserve it with spool_index_table_reserve. */
static int spool_index_table_reserve(struct spool_index_table *t)
{
    if (t->nslots == 0 || t->n >= t->nslots)
        spool_index_table_grow(t);
    return t->nslots ? 0 : -1;
}

static void spool_index_table_insert(struct spool_index_table *t, struct spool_index_node *nd)
{
    size_t k = (size_t)(nd->hash & (t->nslots - 1));
    nd->next = t->slots[k];
    t->slots[k] = nd;
    t->n++;
}

static void spool_index_table_remove(struct spool_index_table *t, struct spool_index_node *nd)
{
    struct spool_index_node **pp = &t->slots[nd->hash & (t->nslots - 1)];
    while (*pp && *pp != nd)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = nd->next;
        t->n--;
    }
}

static struct spool_index_node *spool_index_table_first(const struct spool_index_table *t,
                                                        uint64_t hash)
{
    if (t->nslots == 0)
        return NULL;
    return t->slots[hash & (t->nslots - 1)];
}

/* ------------------------------------------------------------------ index */

void spool_index_init(struct spool_index *ix)
{
    memset(ix, 0, sizeof(*ix));
}

void spool_index_free(struct spool_index *ix)
{
    for (size_t i = 0; i < ix->bodies.nslots; i++) {
        struct spool_index_node *nd = ix->bodies.slots[i];
        while (nd) {
            struct spool_index_node *next = nd->next;
            free(nd);
            nd = next;
        }
    }
    /* Every linked entry is in its domain's list (the id table may have missed one). */
    for (size_t i = 0; i < ix->ndomains; i++) {
        for (struct spool_index_cursor *c = ix->domains[i]->cursors; c; c = c->next)
            c->dom = NULL;      /* closing it later is then harmless */
        struct spool_index_entry *e = ix->domains[i]->head;
        while (e) {
            struct spool_index_entry *next = e->next;
            free(e);
            e = next;
        }
        free(ix->domains[i]->name);
        free(ix->domains[i]);
    }
    free(ix->entries.slots);
    free(ix->bodies.slots);
    free(ix->domains_by_name.slots);
    free(ix->domains);
    memset(ix, 0, sizeof(*ix));
}

struct spool_index_body *spool_index_body_find(struct spool_index *ix, uint64_t qid)
{
    uint64_t h = spool_index_mix(qid);
    for (struct spool_index_node *nd = spool_index_table_first(&ix->bodies, h); nd; nd = nd->next) {
        struct spool_index_body *b = (struct spool_index_body *)nd;
        if (nd->hash == h && b->qid == qid)
            return b;
    }
    return NULL;
}

struct spool_index_body *spool_index_body_ref(struct spool_index *ix, uint64_t qid)
{
    struct spool_index_body *b = spool_index_body_find(ix, qid);
    if (b)
        return b;
    if (spool_index_table_reserve(&ix->bodies) < 0)
        return NULL;
    b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->qid = qid;
    b->node.hash = spool_index_mix(qid);
    spool_index_table_insert(&ix->bodies, &b->node);
    return b;
}

void spool_index_body_drop(struct spool_index *ix, struct spool_index_body *b)
{
    spool_index_table_remove(&ix->bodies, &b->node);
    free(b);
}

struct spool_index_domain *spool_index_domain_find(struct spool_index *ix, const char *name)
{
    uint64_t h = spool_index_hash_str(name);
    for (struct spool_index_node *nd = spool_index_table_first(&ix->domains_by_name, h); nd;
         nd = nd->next) {
        struct spool_index_domain *d = (struct spool_index_domain *)nd;
        if (nd->hash == h && strcmp(d->name, name) == 0)
            return d;
    }
    return NULL;
}

struct spool_index_domain *spool_index_domain_ref(struct spool_index *ix, const char *name)
{
    struct spool_index_domain *d = spool_index_domain_find(ix, name);
    if (d)
        return d;
    if (ix->ndomains == ix->domains_cap) {
        size_t cap = ix->domains_cap ? ix->domains_cap * 2 : 64;
        struct spool_index_domain **p = realloc(ix->domains, cap * sizeof(*p));
        if (!p)
            return NULL;
        ix->domains = p;
        ix->domains_cap = cap;
    }
    if (spool_index_table_reserve(&ix->domains_by_name) < 0)
        return NULL;
    d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->name = strdup(name);
    if (!d->name) {
        free(d);
        return NULL;
    }
    d->node.hash = spool_index_hash_str(name);
    spool_index_table_insert(&ix->domains_by_name, &d->node);
    d->slot = ix->ndomains;
    ix->domains[ix->ndomains++] = d;
    return d;
}

void spool_index_domain_release(struct spool_index *ix, struct spool_index_domain *d)
{
    if (!d || d->count > 0 || d->cursors)
        return;
    spool_index_table_remove(&ix->domains_by_name, &d->node);
    struct spool_index_domain *last = ix->domains[--ix->ndomains];
    ix->domains[d->slot] = last;
    last->slot = d->slot;
    free(d->name);
    free(d);
}

int spool_index_entry_cmp(const struct spool_index_entry *a, const struct spool_index_entry *b)
{
    if (a->qid != b->qid)
        return a->qid < b->qid ? -1 : 1;
    if (a->n != b->n)
        return a->n < b->n ? -1 : 1;
    return 0;
}

/* ------------------------------------------------------------------ cursors */

/* 1 when e sorts at or before the last entry c handed out (c will never hand it out). */
static int spool_index_cursor_passed(const struct spool_index_cursor *c,
                                     const struct spool_index_entry *e)
{
    if (!c->started)
        return 0;
    if (e->qid != c->last_qid)
        return e->qid < c->last_qid;
    return e->n <= c->last_n;
}

struct spool_index_cursor *spool_index_cursor_open(struct spool_index *ix, const char *domain)
{
    struct spool_index_cursor *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    struct spool_index_domain *d = spool_index_domain_ref(ix, domain);
    if (!d) {
        free(c);
        return NULL;
    }
    c->dom = d;
    c->at = d->head;
    c->ahead = d->count;
    c->next = d->cursors;
    if (d->cursors)
        d->cursors->prev = c;
    d->cursors = c;
    return c;
}

struct spool_index_entry *spool_index_cursor_next(struct spool_index_cursor *c)
{
    struct spool_index_entry *e = c->dom ? c->at : NULL;
    if (!e)
        return NULL;
    c->at = e->next;
    c->last_qid = e->qid;
    c->last_n = e->n;
    c->started = 1;
    c->ahead--;
    return e;
}

void spool_index_cursor_close(struct spool_index *ix, struct spool_index_cursor *c)
{
    if (!c)
        return;
    struct spool_index_domain *d = c->dom;
    if (d) {
        if (c->prev)
            c->prev->next = c->next;
        else
            d->cursors = c->next;
        if (c->next)
            c->next->prev = c->prev;
        spool_index_domain_release(ix, d);
    }
    free(c);
}

struct spool_index_entry *spool_index_entry_new(uint64_t qid, uint32_t n)
{
    struct spool_index_entry *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->qid = qid;
    e->n = n;
    e->node.hash = spool_index_hash_entry(qid, n);
    return e;
}

void spool_index_entry_link(struct spool_index *ix, struct spool_index_entry *e,
                            struct spool_index_body *body, struct spool_index_domain *dom)
{
    /* The table always has slots here: reserving is retried, and the first body or
     * domain reference already needed memory, so an empty table is only possible if
     * the very first allocation failed; then the entry still goes into its list. */
    if (spool_index_table_reserve(&ix->entries) == 0)
        spool_index_table_insert(&ix->entries, &e->node);
    e->body = body;
    e->dom = dom;
    body->refs++;
    /* Newest entries arrive last: walk back from the tail while it is newer. */
    struct spool_index_entry *after = dom->tail;
    while (after && spool_index_entry_cmp(after, e) > 0)
        after = after->prev;
    e->prev = after;
    e->next = after ? after->next : dom->head;
    if (e->next)
        e->next->prev = e;
    else
        dom->tail = e;
    if (after)
        after->next = e;
    else
        dom->head = e;
    dom->count++;
    ix->total++;
    for (struct spool_index_cursor *c = dom->cursors; c; c = c->next) {
        if (!spool_index_cursor_passed(c, e)) {
            c->ahead++;
            if (!c->at || spool_index_entry_cmp(e, c->at) < 0)
                c->at = e;
        }
    }
}

struct spool_index_entry *spool_index_entry_find(struct spool_index *ix, uint64_t qid, uint32_t n)
{
    uint64_t h = spool_index_hash_entry(qid, n);
    for (struct spool_index_node *nd = spool_index_table_first(&ix->entries, h); nd; nd = nd->next) {
        struct spool_index_entry *e = (struct spool_index_entry *)nd;
        if (nd->hash == h && e->qid == qid && e->n == n)
            return e;
    }
    return NULL;
}

struct spool_index_body *spool_index_entry_unlink(struct spool_index *ix, struct spool_index_entry *e)
{
    if (ix->entries.nslots)
        spool_index_table_remove(&ix->entries, &e->node);
    struct spool_index_domain *dom = e->dom;
    for (struct spool_index_cursor *c = dom->cursors; c; c = c->next) {
        if (c->at == e)
            c->at = e->next;
        if (!spool_index_cursor_passed(c, e))
            c->ahead--;
    }
    if (e->prev)
        e->prev->next = e->next;
    else
        dom->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        dom->tail = e->prev;
    dom->count--;
    ix->total--;
    struct spool_index_body *body = e->body;
    body->refs--;
    free(e);
    spool_index_domain_release(ix, dom);
    return body;
}

size_t spool_index_count(const struct spool_index *ix, const char *domain, int subdomains)
{
    if (!subdomains) {
        struct spool_index_domain *d = spool_index_domain_find((struct spool_index *)ix, domain);
        return d ? d->count : 0;
    }
    size_t n = 0;
    for (size_t i = 0; i < ix->ndomains; i++)
        if (domain_is_within(ix->domains[i]->name, domain))
            n += ix->domains[i]->count;
    return n;
}

static int spool_index_cmp_ptr(const void *a, const void *b)
{
    return spool_index_entry_cmp(*(struct spool_index_entry *const *)a,
                                 *(struct spool_index_entry *const *)b);
}

int spool_index_collect(struct spool_index *ix, const char *domain, int subdomains,
                        struct spool_index_entry ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t total = spool_index_count(ix, domain, subdomains);
    if (total == 0)
        return 0;
    struct spool_index_entry **arr = malloc(total * sizeof(*arr));
    if (!arr)
        return -1;
    size_t k = 0, ndom = 0;
    if (!subdomains) {
        struct spool_index_domain *d = spool_index_domain_find(ix, domain);
        for (struct spool_index_entry *e = d ? d->head : NULL; e && k < total; e = e->next)
            arr[k++] = e;
    }
    for (size_t i = 0; subdomains && i < ix->ndomains; i++) {
        struct spool_index_domain *d = ix->domains[i];
        if (!domain_is_within(d->name, domain))
            continue;
        ndom++;
        for (struct spool_index_entry *e = d->head; e && k < total; e = e->next)
            arr[k++] = e;
    }
    /* Each list is already oldest first; only a merge of several domains needs sorting. */
    if (ndom > 1)
        qsort(arr, k, sizeof(*arr), spool_index_cmp_ptr);
    *out = arr;
    *n = k;
    return 0;
}
