/* test_spool.c — the spool's guarantees: durable commits that survive reopening, one
 * entry per destination domain sharing one body, the per-domain index (exact and
 * label-aligned subdomain lookups), removal, durable envelope updates, recovery from
 * every kind of file a crash can leave, quarantine instead of silent loss, the lock.
 * Each test works in its own mkdtemp directory under /tmp, removed afterwards. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "spool.h"
#include "spool_envelope.h"
#include "strbuf.h"

struct fixture {
    char dir[64];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f || str_copy(f->dir, sizeof f->dir, "/tmp/test_spool.XXXXXX") < 0 || !mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    unsetenv("ETRND_SPOOL_NO_FSYNC");
    *state = f;
    return 0;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    nftw(f->dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    unsetenv("ETRND_SPOOL_NO_FSYNC");
    return 0;
}

/* ----------------------------------------------------------------- helpers */

static struct spool *open_spool(const char *dir)
{
    struct spool *sp = NULL;
    struct etrn_err err = { "" };
    int rc = spool_open(&sp, dir, &err);
    if (rc < 0)
        fail_msg("spool_open: %s", err.msg);
    return sp;
}

/* Commits text for rcpts; the qid goes to qid (if not NULL). */
static void commit(struct spool *sp, const char *sender, const char *text, char *const *rcpts,
                   size_t n, char *qid)
{
    struct spool_writer *w;
    struct etrn_err err = { "" };
    char q[SPOOL_ID_MAX];
    assert_int_equal(spool_writer_begin(sp, &w, &err), 0);
    assert_int_equal(spool_writer_write(w, text, strlen(text), &err), 0);
    assert_int_equal(spool_writer_size(w), strlen(text));
    if (spool_writer_commit(w, sender, rcpts, n, q, &err) < 0)
        fail_msg("commit: %s", err.msg);
    assert_int_equal(strlen(q), 16);
    if (qid)
        memcpy(qid, q, SPOOL_ID_MAX);
}

static void commit1(struct spool *sp, const char *rcpt, char *qid)
{
    char *r[1] = { (char *)rcpt };
    commit(sp, "s@origin.test", "Subject: t\r\n\r\nhello\r\n", r, 1, qid);
}

/* The file name under dir/area/<bucket>/ (any bucket): 1 and its path if found. */
static int find_in_buckets(const char *dir, const char *area, const char *name, char *path, size_t n)
{
    for (unsigned b = 0; b < 256; b++) {
        char p[512];
        struct stat st;
        str_format(p, sizeof p, "%s/%s/%02x/%s", dir, area, b, name);
        if (stat(p, &st) == 0) {
            str_copy(path, n, p);
            return 1;
        }
    }
    return 0;
}

/* Regular files under dir/sub (recursively, bounded depth). */
static size_t count_files(const char *path, int depth)
{
    DIR *d = opendir(path);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char p[512];
        struct stat st;
        str_format(p, sizeof p, "%s/%s", path, de->d_name);
        if (lstat(p, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode) && depth < 4)
            n += count_files(p, depth + 1);
        else if (S_ISREG(st.st_mode))
            n++;
    }
    closedir(d);
    return n;
}

static size_t count_area(const char *dir, const char *area)
{
    char p[512];
    str_format(p, sizeof p, "%s/%s", dir, area);
    return count_files(p, 0);
}

static void write_file(const char *path, const char *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    close(fd);
}

static size_t read_file(const char *path, char *buf, size_t n)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t r = read(fd, buf, n - 1);
    close(fd);
    assert_true(r >= 0);
    buf[r] = '\0';
    return (size_t)r;
}

static struct spool_entry *get_first(struct spool *sp, const char *domain)
{
    char **ids;
    size_t n;
    struct etrn_err err;
    struct spool_entry *e = NULL;
    assert_int_equal(spool_collect(sp, domain, 0, &ids, &n, &err), 0);
    assert_true(n >= 1);
    assert_int_equal(spool_entry_get(sp, ids[0], &e, &err), 0);
    spool_ids_free(ids, n);
    return e;
}

/* ------------------------------------------------------------------- tests */

static void test_spool_commit_survives_reopen(void **state)
{
    struct fixture *f = *state;
    struct spool *sp = open_spool(f->dir);
    assert_true(spool_is_durable(sp));
    char qid[SPOOL_ID_MAX];
    char *r[2] = { "<u@Node.Test>", "v@node.test" };
    const char *text = "Subject: round trip\r\n\r\nbody line\r\n";
    commit(sp, "<s@origin.test>", text, r, 2, qid);
    assert_int_equal(spool_count(sp, "node.test", 0), 1);
    spool_close(sp);

    sp = open_spool(f->dir);
    assert_int_equal(spool_total(sp), 1);
    assert_int_equal(spool_count(sp, "NODE.test.", 0), 1);   /* case and trailing dot ignored */
    struct spool_entry *e = get_first(sp, "node.test");
    assert_string_equal(e->qid, qid);
    char want_id[SPOOL_ID_MAX];
    str_format(want_id, sizeof want_id, "%s.0", qid);
    assert_string_equal(e->id, want_id);
    assert_string_equal(e->domain, "node.test");
    assert_string_equal(e->sender, "s@origin.test");
    assert_int_equal(e->nrcpt, 2);
    assert_string_equal(e->rcpts[0], "u@Node.Test");
    assert_string_equal(e->rcpts[1], "v@node.test");
    assert_int_equal(e->size, strlen(text));
    assert_int_equal(e->attempts, 0);
    assert_int_equal(e->last_attempt, 0);
    assert_string_equal(e->last_error, "");
    assert_true(e->arrival > 0);

    int fd;
    struct etrn_err err;
    assert_int_equal(spool_body_open(sp, e->id, &fd, &err), 0);
    char buf[256];
    ssize_t got = read(fd, buf, sizeof buf);
    close(fd);
    assert_int_equal(got, (ssize_t)strlen(text));
    assert_memory_equal(buf, text, strlen(text));
    spool_entry_free(e);
    spool_close(sp);
}

static void test_spool_null_sender_is_kept(void **state)
{
    struct fixture *f = *state;
    struct spool *sp = open_spool(f->dir);
    char *r[1] = { "u@node.test" };
    commit(sp, "<>", "x\r\n", r, 1, NULL);
    spool_close(sp);
    sp = open_spool(f->dir);
    struct spool_entry *e = get_first(sp, "node.test");
    assert_string_equal(e->sender, "");
    spool_entry_free(e);
    spool_close(sp);
}

static void test_spool_multi_domain_message_shares_one_body(void **state)
{
    struct fixture *f = *state;
    struct spool *sp = open_spool(f->dir);
    char qid[SPOOL_ID_MAX];
    char *r[4] = { "a@one.test", "b@two.test", "c@ONE.test", "a@one.test" };
    commit(sp, "s@origin.test", "shared\r\n", r, 4, qid);
    assert_int_equal(spool_total(sp), 2);
    assert_int_equal(spool_count(sp, "one.test", 0), 1);
    assert_int_equal(spool_count(sp, "two.test", 0), 1);
    assert_int_equal(count_area(f->dir, "msg"), 1);
    assert_int_equal(count_area(f->dir, "env"), 2);

    struct spool_entry *one = get_first(sp, "one.test");
    struct spool_entry *two = get_first(sp, "two.test");
    assert_string_equal(one->qid, qid);
    assert_string_equal(two->qid, qid);
    assert_string_not_equal(one->id, two->id);
    assert_int_equal(one->nrcpt, 2);   /* the duplicate a@one.test is stored once */
    assert_string_equal(one->rcpts[0], "a@one.test");
    assert_string_equal(one->rcpts[1], "c@ONE.test");
    assert_int_equal(two->nrcpt, 1);
    assert_string_equal(two->rcpts[0], "b@two.test");
    spool_entry_free(one);
    spool_entry_free(two);

    char **doms;
    size_t *counts, n;
    struct etrn_err err;
    assert_int_equal(spool_domains(sp, &doms, &counts, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(doms[0], "one.test");
    assert_string_equal(doms[1], "two.test");
    assert_int_equal(counts[0], 1);
    assert_int_equal(counts[1], 1);
    spool_ids_free(doms, n);
    free(counts);
    spool_close(sp);
}

static void test_spool_counts_and_collects_exact_domain_and_subdomains(void **state)
{
    struct fixture *f = *state;
    struct spool *sp = open_spool(f->dir);
    char q1[SPOOL_ID_MAX], q2[SPOOL_ID_MAX], q3[SPOOL_ID_MAX], q4[SPOOL_ID_MAX];
    commit1(sp, "u@foo.test", q1);
    commit1(sp, "u@a.foo.test", q2);
    commit1(sp, "u@xfoo.test", q3);
    commit1(sp, "u@foo.test", q4);

    assert_int_equal(spool_count(sp, "foo.test", 0), 2);
    assert_int_equal(spool_count(sp, "foo.test", 1), 3);      /* foo.test, a.foo.test */
    assert_int_equal(spool_count(sp, "a.foo.test", 1), 1);
    assert_int_equal(spool_count(sp, "xfoo.test", 0), 1);
    assert_int_equal(spool_count(sp, "oo.test", 1), 0);       /* not label-aligned */
    assert_int_equal(spool_count(sp, "test", 1), 4);
    assert_int_equal(spool_count(sp, "nothing.test", 0), 0);
    assert_int_equal(spool_count(sp, "", 1), 0);

    char **ids;
    size_t n;
    struct etrn_err err;
    assert_int_equal(spool_collect(sp, "foo.test", 1, &ids, &n, &err), 0);
    assert_int_equal(n, 3);
    /* Oldest first across the two domains. */
    assert_true(strncmp(ids[0], q1, 16) == 0);
    assert_true(strncmp(ids[1], q2, 16) == 0);
    assert_true(strncmp(ids[2], q4, 16) == 0);
    spool_ids_free(ids, n);

    assert_int_equal(spool_collect(sp, "foo.test", 0, &ids, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_true(strncmp(ids[0], q1, 16) == 0);
    assert_true(strncmp(ids[1], q4, 16) == 0);
    spool_ids_free(ids, n);

    assert_int_equal(spool_collect(sp, "nothing.test", 1, &ids, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(ids);
    (void)q3;
    spool_close(sp);
}

static void test_spool_remove_deletes_body_only_with_last_entry(void **state)
{
    struct fixture *f = *state;
    struct spool *sp = open_spool(f->dir);
    char qid[SPOOL_ID_MAX];
    char *r[2] = { "a@one.test", "b@two.test" };
    commit(sp, "s@origin.test", "text\r\n", r, 2, qid);
    char body[512], id[SPOOL_ID_MAX];
    assert_true(find_in_buckets(f->dir, "msg", qid, body, sizeof body));
    struct etrn_err err;

    str_format(id, sizeof id, "%s.0", qid);
    assert_int_equal(spool_remove(sp, id, &err), 0);
    assert_int_equal(spool_count(sp, "one.test", 0), 0);
    assert_int_equal(spool_count(sp, "two.test", 0), 1);
    assert_int_equal(access(body, F_OK), 0);              /* two.test still needs it */
    assert_int_equal(spool_remove(sp, id, &err), -1);     /* already gone */
    assert_non_null(strstr(err.msg, "no such"));

    struct spool_entry *e = get_first(sp, "two.test");
    int fd;
    assert_int_equal(spool_body_open(sp, e->id, &fd, &err), 0);
    close(fd);
    assert_int_equal(spool_remove(sp, e->id, &err), 0);
    spool_entry_free(e);
    assert_int_equal(access(body, F_OK), -1);
    assert_int_equal(spool_total(sp), 0);
    assert_int_equal(count_area(f->dir, "env"), 0);
    assert_int_equal(count_area(f->dir, "msg"), 0);
    spool_close(sp);

    sp = open_spool(f->dir);
    assert_int_equal(spool_total(sp), 0);                 /* a removed entry does not come back */
    spool_close(sp);
}

/* Removals are group-committed: each marks its bucket until spool_sync_removals fsyncs
 * it, and the removal itself is visible (index and disk) at once. */
/* A cursor walks a domain oldest first, each entry once, without copying the domain:
 * removals under it (including the entry it stands on) and commits made while it is
 * open are handled, and an empty domain it keeps alive is not listed. */
static void test_spool_cursor_walks_each_entry_once_under_changes(void **state)
{
    struct fixture *f = *state;
    struct spool *sp = open_spool(f->dir);
    char q[5][SPOOL_ID_MAX], id[SPOOL_ID_MAX], got[SPOOL_ID_MAX];
    struct etrn_err err;
    for (int i = 0; i < 4; i++)
        commit1(sp, "u@node.test", q[i]);
    commit1(sp, "u@other.test", NULL);

    struct spool_cursor *c = NULL;
    assert_int_equal(spool_cursor_open(sp, "Node.Test.", &c, &err), 0);
    assert_int_equal(spool_cursor_remaining(c), 4);
    assert_int_equal(spool_cursor_next(c, got), 1);           /* oldest first */
    assert_true(strncmp(got, q[0], 16) == 0);
    assert_int_equal(spool_cursor_remaining(c), 3);

    /* The entry already handed out goes (delivered): nothing ahead changes. */
    assert_int_equal(spool_remove(sp, got, &err), 0);
    assert_int_equal(spool_cursor_remaining(c), 3);
    /* The entry the cursor stands on goes: the walk moves past it. */
    str_format(id, sizeof id, "%s.0", q[1]);
    assert_int_equal(spool_remove(sp, id, &err), 0);
    assert_int_equal(spool_cursor_remaining(c), 2);
    assert_int_equal(spool_cursor_next(c, got), 1);
    assert_true(strncmp(got, q[2], 16) == 0);
    assert_int_equal(spool_cursor_next(c, got), 1);
    assert_true(strncmp(got, q[3], 16) == 0);
    assert_int_equal(spool_cursor_next(c, got), 0);           /* nothing more for now */
    assert_int_equal(spool_cursor_remaining(c), 0);

    /* Mail committed while the walk is open joins it, once. */
    commit1(sp, "w@node.test", q[4]);
    assert_int_equal(spool_cursor_remaining(c), 1);
    assert_int_equal(spool_cursor_next(c, got), 1);
    assert_true(strncmp(got, q[4], 16) == 0);
    assert_int_equal(spool_cursor_next(c, got), 0);

    /* Emptied while open: the domain stays known to the cursor but is not listed. */
    for (int i = 2; i < 5; i++) {
        str_format(id, sizeof id, "%s.0", q[i]);
        assert_int_equal(spool_remove(sp, id, &err), 0);
    }
    assert_int_equal(spool_count(sp, "node.test", 0), 0);
    char **domains = NULL;
    size_t *counts = NULL, nd = 0;
    assert_int_equal(spool_domains(sp, &domains, &counts, &nd, &err), 0);
    assert_int_equal(nd, 1);
    assert_string_equal(domains[0], "other.test");
    assert_int_equal(counts[0], 1);
    spool_ids_free(domains, nd);
    free(counts);
    commit1(sp, "x@node.test", q[0]);                         /* after emptying: still seen */
    assert_int_equal(spool_cursor_next(c, got), 1);
    assert_true(strncmp(got, q[0], 16) == 0);
    spool_cursor_close(c);

    /* A cursor on a domain with no mail yet sees the first message. */
    assert_int_equal(spool_cursor_open(sp, "later.test", &c, &err), 0);
    assert_int_equal(spool_cursor_next(c, got), 0);
    commit1(sp, "y@later.test", q[1]);
    assert_int_equal(spool_cursor_next(c, got), 1);
    assert_true(strncmp(got, q[1], 16) == 0);
    spool_cursor_close(c);

    assert_int_equal(spool_cursor_open(sp, "", &c, &err), -1);
    assert_non_null(strstr(err.msg, "not a domain"));
    assert_null(c);
    spool_close(sp);
}

/* Two cursors on one domain walk independently. */
static void test_spool_cursors_on_one_domain_are_independent(void **state)
{
    struct fixture *f = *state;
    struct spool *sp = open_spool(f->dir);
    char q[3][SPOOL_ID_MAX], got[SPOOL_ID_MAX];
    struct etrn_err err;
    for (int i = 0; i < 3; i++)
        commit1(sp, "u@node.test", q[i]);
    struct spool_cursor *a = NULL, *b = NULL;
    assert_int_equal(spool_cursor_open(sp, "node.test", &a, &err), 0);
    assert_int_equal(spool_cursor_open(sp, "node.test", &b, &err), 0);
    assert_int_equal(spool_cursor_next(a, got), 1);
    assert_int_equal(spool_cursor_next(a, got), 1);
    assert_true(strncmp(got, q[1], 16) == 0);
    assert_int_equal(spool_cursor_remaining(a), 1);
    assert_int_equal(spool_cursor_remaining(b), 3);
    assert_int_equal(spool_remove(sp, got, &err), 0);         /* q[1]: behind a, ahead of b */
    assert_int_equal(spool_cursor_remaining(a), 1);
    assert_int_equal(spool_cursor_remaining(b), 2);
    assert_int_equal(spool_cursor_next(b, got), 1);
    assert_true(strncmp(got, q[0], 16) == 0);
    assert_int_equal(spool_cursor_next(b, got), 1);
    assert_true(strncmp(got, q[2], 16) == 0);
    spool_cursor_close(a);
    assert_int_equal(spool_cursor_next(b, got), 0);
    spool_cursor_close(b);
    assert_int_equal(spool_count(sp, "node.test", 0), 2);
    spool_close(sp);
}

static void test_spool_removals_wait_for_group_commit(void **state)
{
    struct fixture *f = *state;
    struct spool *sp = open_spool(f->dir);
    char qid[SPOOL_ID_MAX], id[SPOOL_ID_MAX];
    struct etrn_err err;
    /* 2 removals stay below the syncfs threshold (one fsync per bucket); 12 spread over
     * enough buckets to take the one-syncfs path. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < (round == 0 ? 2 : 12); i++) {
            commit1(sp, "u@node.test", qid);
            str_format(id, sizeof id, "%s.0", qid);
            assert_int_equal(spool_remove(sp, id, &err), 0);
            assert_true(spool_removals_pending(sp) >= 1);
        }
        assert_int_equal(spool_sync_removals(sp, &err), 0);
        assert_int_equal(spool_removals_pending(sp), 0);
    }
    assert_int_equal(spool_count(sp, "node.test", 0), 0);
    assert_int_equal(count_area(f->dir, "env"), 0);
    assert_int_equal(spool_sync_removals(sp, &err), 0);
    assert_int_equal(spool_removals_pending(sp), 0);
    assert_int_equal(spool_sync_removals(sp, &err), 0);   /* nothing left: a no-op */
    spool_close(sp);
    sp = open_spool(f->dir);
    assert_int_equal(spool_total(sp), 0);
    spool_close(sp);
}

static void test_spool_rcpts_done_and_note_attempt_survive_reopen(void **state)
{
    struct fixture *f = *state;
    struct spool *sp = open_spool(f->dir);
    char *r[3] = { "a@node.test", "b@node.test", "c@node.test" };
    commit(sp, "s@origin.test", "text\r\n", r, 3, NULL);
    struct spool_entry *e = get_first(sp, "node.test");
    char id[SPOOL_ID_MAX];
    str_copy(id, sizeof id, e->id);
    spool_entry_free(e);
    struct etrn_err err;
    char *done[2] = { "<a@node.test>", "c@node.test" };
    assert_int_equal(spool_rcpts_done(sp, id, done, 2, &err), 0);
    assert_int_equal(spool_note_attempt(sp, id, 1700000123, "451 4.3.0 try later\r\ninjected", &err), 0);
    assert_int_equal(spool_note_attempt(sp, id, 1700000456, "421 closing", &err), 0);
    spool_close(sp);

    sp = open_spool(f->dir);
    e = get_first(sp, "node.test");
    assert_string_equal(e->id, id);
    assert_int_equal(e->nrcpt, 1);
    assert_string_equal(e->rcpts[0], "b@node.test");
    assert_int_equal(e->attempts, 2);
    assert_int_equal(e->last_attempt, 1700000456);
    assert_string_equal(e->last_error, "421 closing");
    spool_entry_free(e);

    assert_int_equal(spool_note_attempt(sp, id, 1, "451 a\r\nb", &err), 0);
    e = get_first(sp, "node.test");
    assert_string_equal(e->last_error, "451 a??b");        /* no line breaks in envelopes */
    spool_entry_free(e);

    /* The last recipient done: the entry and its body go. */
    char *last[1] = { "b@node.test" };
    assert_int_equal(spool_rcpts_done(sp, id, last, 1, &err), 0);
    assert_int_equal(spool_total(sp), 0);
    assert_int_equal(count_area(f->dir, "msg"), 0);
    spool_close(sp);
}

static void test_spool_recovers_after_torn_write(void **state)
{
    struct fixture *f = *state;
    struct spool *sp = open_spool(f->dir);
    char qa[SPOOL_ID_MAX], qb[SPOOL_ID_MAX], qc[SPOOL_ID_MAX], qd[SPOOL_ID_MAX];
    commit1(sp, "u@node.test", qa);                               /* committed */
    char *rb[2] = { "u@a.test", "u@b.test" };
    commit(sp, "s@origin.test", "b\r\n", rb, 2, qb);              /* committed, two domains */
    commit1(sp, "u@c.test", qc);                                   /* made uncommitted below */
    commit1(sp, "u@d.test", qd);                                   /* made an orphan below */
    spool_close(sp);

    char path[512], name[64], to[512], text[4096];
    /* A body being received when the crash came. */
    str_format(path, sizeof path, "%s/tmp/%s", f->dir, "0000000000000001");
    write_file(path, "Subject: partial\r\n", 18);
    /* C: crash before its envelope was renamed into place (the client got no 250). */
    str_format(name, sizeof name, "%s.0", qc);
    assert_true(find_in_buckets(f->dir, "env", name, path, sizeof path));
    str_format(to, sizeof to, "%s/tmp/%s", f->dir, name);
    assert_int_equal(rename(path, to), 0);
    /* A half-written envelope of an update of A (fileio_write_file_atomic's temporary). */
    str_format(name, sizeof name, "%s.0", qa);
    assert_true(find_in_buckets(f->dir, "env", name, path, sizeof path));
    size_t len = read_file(path, text, sizeof text);
    str_format(to, sizeof to, "%s.tmp.999", path);
    write_file(to, text, len / 2);
    /* A half-written commit envelope of a message with no body anywhere. */
    str_format(path, sizeof path, "%s/tmp/%s", f->dir, "0000000000000002.0");
    write_file(path, text, len / 2);
    /* D: every envelope gone (crash between its removal and its body's). */
    str_format(name, sizeof name, "%s.0", qd);
    assert_true(find_in_buckets(f->dir, "env", name, path, sizeof path));
    assert_int_equal(unlink(path), 0);

    sp = open_spool(f->dir);
    const struct spool_recovery *rec = spool_recovery_report(sp);
    assert_int_equal(spool_total(sp), 3);
    assert_int_equal(spool_count(sp, "node.test", 0), 1);
    assert_int_equal(spool_count(sp, "a.test", 0), 1);
    assert_int_equal(spool_count(sp, "b.test", 0), 1);
    assert_int_equal(spool_count(sp, "c.test", 0), 0);
    assert_int_equal(spool_count(sp, "d.test", 0), 0);
    assert_int_equal(rec->entries, 3);
    assert_int_equal(rec->bodies, 2);
    assert_int_equal(rec->tmp_removed, 4);
    assert_int_equal(rec->orphans_removed, 2);                   /* C's and D's bodies */
    assert_int_equal(rec->quarantined, 0);
    assert_int_equal(count_area(f->dir, "tmp"), 0);
    assert_int_equal(count_area(f->dir, "msg"), 2);
    assert_int_equal(count_area(f->dir, "env"), 3);
    struct spool_entry *e = get_first(sp, "node.test");
    assert_string_equal(e->qid, qa);
    spool_entry_free(e);
    spool_close(sp);

    /* Recovery is stable: a second open finds nothing more to do. */
    sp = open_spool(f->dir);
    rec = spool_recovery_report(sp);
    assert_int_equal(spool_total(sp), 3);
    assert_int_equal(rec->tmp_removed + rec->orphans_removed + rec->quarantined + rec->completed, 0);
    spool_close(sp);
}

static void test_spool_completes_interrupted_multi_domain_commit(void **state)
{
    struct fixture *f = *state;
    struct spool *sp = open_spool(f->dir);
    char q[SPOOL_ID_MAX];
    char *r[3] = { "u@e1.test", "u@e2.test", "u@e3.test" };
    commit(sp, "s@origin.test", "e\r\n", r, 3, q);
    spool_close(sp);
    /* The crash came after envelope 0 was renamed: 1 and 2 are still in tmp/. */
    for (int n = 1; n <= 2; n++) {
        char name[64], path[512], to[512];
        str_format(name, sizeof name, "%s.%d", q, n);
        assert_true(find_in_buckets(f->dir, "env", name, path, sizeof path));
        str_format(to, sizeof to, "%s/tmp/%s", f->dir, name);
        assert_int_equal(rename(path, to), 0);
    }
    sp = open_spool(f->dir);
    assert_int_equal(spool_recovery_report(sp)->completed, 2);
    assert_int_equal(spool_total(sp), 3);
    assert_int_equal(spool_count(sp, "e2.test", 0), 1);
    assert_int_equal(spool_count(sp, "e3.test", 0), 1);
    assert_int_equal(count_area(f->dir, "tmp"), 0);
    spool_close(sp);
}

static void test_spool_discards_multi_domain_commit_with_no_envelope_in_place(void **state)
{
    struct fixture *f = *state;
    struct spool *sp = open_spool(f->dir);
    char q[SPOOL_ID_MAX];
    char *r[2] = { "u@e1.test", "u@e2.test" };
    commit(sp, "s@origin.test", "e\r\n", r, 2, q);
    spool_close(sp);
    for (int n = 0; n <= 1; n++) {
        char name[64], path[512], to[512];
        str_format(name, sizeof name, "%s.%d", q, n);
        assert_true(find_in_buckets(f->dir, "env", name, path, sizeof path));
        str_format(to, sizeof to, "%s/tmp/%s", f->dir, name);
        assert_int_equal(rename(path, to), 0);
    }
    sp = open_spool(f->dir);
    assert_int_equal(spool_total(sp), 0);          /* wholly absent, not half delivered */
    assert_int_equal(count_area(f->dir, "msg"), 0);
    assert_int_equal(count_area(f->dir, "tmp"), 0);
    spool_close(sp);
}

static void test_spool_abort_leaves_nothing(void **state)
{
    struct fixture *f = *state;
    struct spool *sp = open_spool(f->dir);
    struct spool_writer *w;
    struct etrn_err err;
    assert_int_equal(spool_writer_begin(sp, &w, &err), 0);
    assert_int_equal(spool_writer_write(w, "abc", 3, &err), 0);
    assert_int_equal(count_area(f->dir, "tmp"), 1);
    spool_writer_abort(w);
    assert_int_equal(count_area(f->dir, "tmp"), 0);
    assert_int_equal(count_area(f->dir, "msg"), 0);
    assert_int_equal(count_area(f->dir, "env"), 0);
    assert_int_equal(spool_total(sp), 0);

    /* A failed commit (a recipient without a domain) takes everything back too. */
    assert_int_equal(spool_writer_begin(sp, &w, &err), 0);
    assert_int_equal(spool_writer_write(w, "abc", 3, &err), 0);
    char *r[2] = { "u@node.test", "postmaster" };
    char q[SPOOL_ID_MAX];
    assert_int_equal(spool_writer_commit(w, "s@origin.test", r, 2, q, &err), -1);
    assert_non_null(strstr(err.msg, "postmaster"));
    assert_int_equal(count_area(f->dir, "tmp") + count_area(f->dir, "msg") + count_area(f->dir, "env"), 0);
    assert_int_equal(spool_total(sp), 0);
    assert_int_equal(spool_count(sp, "node.test", 0), 0);
    spool_close(sp);
}

static void test_spool_quarantines_envelope_without_body(void **state)
{
    struct fixture *f = *state;
    struct spool *sp = open_spool(f->dir);
    char qa[SPOOL_ID_MAX], qb[SPOOL_ID_MAX];
    commit1(sp, "u@node.test", qa);
    commit1(sp, "u@node.test", qb);
    spool_close(sp);
    char path[512], name[64];
    assert_true(find_in_buckets(f->dir, "msg", qa, path, sizeof path));
    assert_int_equal(unlink(path), 0);

    sp = open_spool(f->dir);
    const struct spool_recovery *rec = spool_recovery_report(sp);
    assert_int_equal(rec->quarantined, 1);
    str_format(name, sizeof name, "%s.0", qa);
    assert_non_null(strstr(rec->quarantined_names[0], name));
    assert_non_null(strstr(rec->quarantined_names[0], "body is missing"));
    assert_int_equal(spool_count(sp, "node.test", 0), 1);   /* B is untouched */
    str_format(path, sizeof path, "%s/corrupt/%s", f->dir, name);
    assert_int_equal(access(path, F_OK), 0);                  /* kept for a human, not deleted */
    spool_close(sp);
}

static void test_spool_quarantines_corrupt_envelope_and_keeps_its_body(void **state)
{
    struct fixture *f = *state;
    struct spool *sp = open_spool(f->dir);
    char q[SPOOL_ID_MAX];
    commit1(sp, "u@node.test", q);
    spool_close(sp);
    char path[512], name[64], text[4096];
    str_format(name, sizeof name, "%s.0", q);
    assert_true(find_in_buckets(f->dir, "env", name, path, sizeof path));
    size_t len = read_file(path, text, sizeof text);
    char *p = strstr(text, "node.test");
    assert_non_null(p);
    p[0] = 'm';                                               /* a flipped byte */
    write_file(path, text, len);

    sp = open_spool(f->dir);
    const struct spool_recovery *rec = spool_recovery_report(sp);
    assert_int_equal(rec->quarantined, 1);
    assert_non_null(strstr(rec->quarantined_names[0], "checksum"));
    assert_int_equal(spool_total(sp), 0);
    str_format(path, sizeof path, "%s/corrupt/%s", f->dir, name);
    assert_int_equal(access(path, F_OK), 0);
    str_format(path, sizeof path, "%s/corrupt/%s", f->dir, q);
    assert_int_equal(access(path, F_OK), 0);                  /* the message text is kept */
    spool_close(sp);
}

static void test_spool_lock_refuses_second_open(void **state)
{
    struct fixture *f = *state;
    struct spool *sp = open_spool(f->dir);
    struct spool *sp2 = NULL;
    struct etrn_err err = { "" };
    assert_int_equal(spool_open(&sp2, f->dir, &err), -1);
    assert_null(sp2);
    assert_non_null(strstr(err.msg, "in use"));
    char pid[32];
    str_format(pid, sizeof pid, "pid %ld", (long)getpid());
    assert_non_null(strstr(err.msg, pid));
    spool_close(sp);
    assert_int_equal(spool_open(&sp2, f->dir, &err), 0);
    spool_close(sp2);
}

static void test_spool_readonly_open_reads_a_held_spool(void **state)
{
    struct fixture *f = *state;
    struct spool *sp = open_spool(f->dir);
    commit1(sp, "u@node.test", NULL);
    commit1(sp, "u@other.test", NULL);
    struct spool *ro = NULL;
    struct etrn_err err = { "" };
    assert_int_equal(spool_open_readonly(&ro, f->dir, &err), 0);
    assert_int_equal(spool_total(ro), 2);
    assert_int_equal(spool_count(ro, "node.test", 0), 1);
    struct spool_entry *e = get_first(ro, "node.test");
    assert_int_equal(spool_remove(ro, e->id, &err), -1);
    assert_non_null(strstr(err.msg, "read-only"));
    spool_entry_free(e);
    struct spool_writer *w;
    assert_int_equal(spool_writer_begin(ro, &w, &err), -1);
    spool_close(ro);
    assert_int_equal(spool_total(sp), 2);                     /* the holder is unaffected */
    spool_close(sp);
}

static void test_spool_bulk_commit_of_1000_messages_survives_reopen(void **state)
{
    struct fixture *f = *state;
    struct spool *sp = open_spool(f->dir);
    char first[SPOOL_ID_MAX] = "", prev[SPOOL_ID_MAX] = "";
    for (int i = 0; i < 1000; i++) {
        char rcpt[64], q[SPOOL_ID_MAX];
        str_format(rcpt, sizeof rcpt, "u%d@n%d.bulk.test", i, i % 10);
        commit1(sp, rcpt, q);
        assert_true(strcmp(q, prev) > 0);                     /* qids sort by arrival */
        str_copy(prev, sizeof prev, q);
        if (i == 0)
            str_copy(first, sizeof first, q);
    }
    spool_close(sp);
    sp = open_spool(f->dir);
    assert_int_equal(spool_total(sp), 1000);
    assert_int_equal(spool_count(sp, "bulk.test", 1), 1000);
    for (int d = 0; d < 10; d++) {
        char dom[32];
        str_format(dom, sizeof dom, "n%d.bulk.test", d);
        assert_int_equal(spool_count(sp, dom, 0), 100);
    }
    char **ids;
    size_t n;
    struct etrn_err err;
    assert_int_equal(spool_collect(sp, "bulk.test", 1, &ids, &n, &err), 0);
    assert_int_equal(n, 1000);
    assert_true(strncmp(ids[0], first, 16) == 0);
    for (size_t i = 1; i < n; i++)
        assert_true(strcmp(ids[i - 1], ids[i]) < 0);          /* oldest first */
    spool_ids_free(ids, n);
    /* A new message after the restart sorts after every old one. */
    char q[SPOOL_ID_MAX];
    commit1(sp, "u@n0.bulk.test", q);
    assert_true(strcmp(q, prev) > 0);
    spool_close(sp);
}

static void test_spool_qid_never_reuses_one_found_on_disk(void **state)
{
    struct fixture *f = *state;
    struct spool *sp = open_spool(f->dir);
    spool_close(sp);
    /* A body from "the future" (a clock that went back since): its qid must not recur. */
    char path[512];
    str_format(path, sizeof path, "%s/tmp/7fffffffffff0000", f->dir);
    write_file(path, "x", 1);
    sp = open_spool(f->dir);
    char q[SPOOL_ID_MAX];
    commit1(sp, "u@node.test", q);
    assert_true(strcmp(q, "7fffffffffff0000") > 0);
    spool_close(sp);
}

static void test_spool_fsync_is_on_unless_benchmark_switch_set(void **state)
{
    struct fixture *f = *state;
    struct spool *sp = open_spool(f->dir);
    assert_int_equal(spool_is_durable(sp), 1);
    spool_close(sp);
    setenv("ETRND_SPOOL_NO_FSYNC", "0", 1);
    sp = open_spool(f->dir);
    assert_int_equal(spool_is_durable(sp), 1);
    spool_close(sp);
    setenv("ETRND_SPOOL_NO_FSYNC", "1", 1);
    sp = open_spool(f->dir);
    assert_int_equal(spool_is_durable(sp), 0);
    commit1(sp, "u@node.test", NULL);                         /* still works, just not durable */
    assert_int_equal(spool_count(sp, "node.test", 0), 1);
    spool_close(sp);
    unsetenv("ETRND_SPOOL_NO_FSYNC");
}

static void test_spool_rejects_unusable_ids_and_addresses(void **state)
{
    struct fixture *f = *state;
    struct spool *sp = open_spool(f->dir);
    struct etrn_err err;
    struct spool_entry *e;
    int fd;
    assert_int_equal(spool_entry_get(sp, "not-an-id", &e, &err), -1);
    assert_int_equal(spool_entry_get(sp, "0123456789abcdef.0", &e, &err), -1);
    assert_int_equal(spool_body_open(sp, "../../etc/passwd", &fd, &err), -1);
    assert_int_equal(spool_remove(sp, "0123456789abcdef.0/..", &err), -1);

    struct spool_writer *w;
    char q[SPOOL_ID_MAX];
    char *bad[1] = { "u\r\nrcpt <x@evil.test>@node.test" };
    assert_int_equal(spool_writer_begin(sp, &w, &err), 0);
    assert_int_equal(spool_writer_commit(w, "s@origin.test", bad, 1, q, &err), -1);
    assert_int_equal(spool_writer_begin(sp, &w, &err), 0);
    assert_int_equal(spool_writer_commit(w, "s@origin.test", bad, 0, q, &err), -1);
    assert_int_equal(spool_total(sp), 0);
    assert_int_equal(count_area(f->dir, "tmp") + count_area(f->dir, "msg"), 0);
    spool_close(sp);
}

/* The child commits three-domain messages and reports each qid once commit returned
 * (the moment etrnd would send 250); the parent kills it with SIGKILL at a varying
 * instant. After recovery every reported message is wholly present, every message
 * present is whole (all three entries), and no temporary file is left. */
static void test_spool_keeps_every_acknowledged_message_across_kill_9(void **state)
{
    struct fixture *f = *state;
    static char acked[4096][17];
    size_t nacked = 0, prev_c1 = 0, prev_nacked = 0;
    for (int round = 0; round < 8; round++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            struct spool *sp;
            struct etrn_err err;
            if (spool_open(&sp, f->dir, &err) < 0)
                _exit(2);
            char *r[3] = { "u@k1.test", "u@k2.test", "u@k3.test" };
            for (int i = 0; i < 2000; i++) {
                struct spool_writer *w;
                char q[SPOOL_ID_MAX];
                if (spool_writer_begin(sp, &w, &err) < 0 || spool_writer_write(w, "m\r\n", 3, &err) < 0 ||
                    spool_writer_commit(w, "s@origin.test", r, 3, q, &err) < 0)
                    _exit(3);
                if (write(fds[1], q, 16) != 16)
                    _exit(4);
            }
            _exit(0);
        }
        close(fds[1]);
        /* Let it run a varying while (wait for its first ack, then 0..15 ms more). */
        char q[17] = "";
        ssize_t got = read(fds[0], q, 16);
        struct timespec ts = { 0, (long)(round * 2) * 1000000L + (long)(rand() % 1000) * 1000L };
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        while (got == 16) {
            q[16] = '\0';
            if (nacked < sizeof acked / sizeof acked[0])
                memcpy(acked[nacked++], q, 17);
            got = read(fds[0], q, 16);
        }
        close(fds[0]);

        struct spool *sp = open_spool(f->dir);
        assert_int_equal(count_area(f->dir, "tmp"), 0);
        assert_int_equal(spool_recovery_report(sp)->quarantined, 0);
        for (size_t i = 0; i < nacked; i++)
            for (int n = 0; n < 3; n++) {
                char id[SPOOL_ID_MAX];
                struct spool_entry *e;
                struct etrn_err err;
                str_format(id, sizeof id, "%s.%d", acked[i], n);
                if (spool_entry_get(sp, id, &e, &err) < 0)
                    fail_msg("round %d: acknowledged %s lost: %s", round, id, err.msg);
                spool_entry_free(e);
            }
        size_t c1 = spool_count(sp, "k1.test", 0);
        assert_int_equal(spool_count(sp, "k2.test", 0), c1);
        assert_int_equal(spool_count(sp, "k3.test", 0), c1);
        assert_true(c1 >= nacked);
        /* Per round at most one message more than acknowledged: the one whose commit was
         * under way (visible after its renames, killed during the fsyncs or before the
         * ack reached the pipe). Earlier rounds' extras stay, so the bound is per round. */
        assert_true(c1 - prev_c1 <= (nacked - prev_nacked) + 1);
        prev_c1 = c1;
        prev_nacked = nacked;
        assert_int_equal(count_area(f->dir, "msg"), c1);
        spool_close(sp);
    }
    assert_true(nacked > 0);
}

static void test_spool_envelope_parse_rejects_torn_text(void **state)
{
    (void)state;
    struct spool_entry e;
    memset(&e, 0, sizeof e);
    str_copy(e.id, sizeof e.id, "0123456789abcdef.3");
    str_copy(e.qid, sizeof e.qid, "0123456789abcdef");
    str_copy(e.domain, sizeof e.domain, "node.test");
    char *r[1] = { "u@node.test" };
    e.rcpts = r;
    e.nrcpt = 1;
    e.arrival = 1700000000;
    struct strbuf sb;
    strbuf_init(&sb, SPOOL_ENVELOPE_MAX);
    struct etrn_err err;
    assert_int_equal(spool_envelope_format(&e, &sb, &err), 0);
    struct spool_entry back;
    assert_int_equal(spool_envelope_parse(sb.data, sb.len, &back, &err), 0);
    assert_string_equal(back.id, "0123456789abcdef.3");
    assert_string_equal(back.rcpts[0], "u@node.test");
    spool_envelope_clear(&back);
    for (size_t cut = 0; cut < sb.len; cut++)                 /* every torn prefix fails */
        assert_int_equal(spool_envelope_parse(sb.data, cut, &back, &err), -1);
    strbuf_free(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_spool_commit_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_null_sender_is_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_multi_domain_message_shares_one_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_counts_and_collects_exact_domain_and_subdomains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_remove_deletes_body_only_with_last_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_cursor_walks_each_entry_once_under_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_cursors_on_one_domain_are_independent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_removals_wait_for_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_rcpts_done_and_note_attempt_survive_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_recovers_after_torn_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_completes_interrupted_multi_domain_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_discards_multi_domain_commit_with_no_envelope_in_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_abort_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_quarantines_envelope_without_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_quarantines_corrupt_envelope_and_keeps_its_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_lock_refuses_second_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_readonly_open_reads_a_held_spool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_bulk_commit_of_1000_messages_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_qid_never_reuses_one_found_on_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_fsync_is_on_unless_benchmark_switch_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_rejects_unusable_ids_and_addresses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_keeps_every_acknowledged_message_across_kill_9, setup, teardown),
        cmocka_unit_test(test_spool_envelope_parse_rejects_torn_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
